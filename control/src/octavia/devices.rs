//! The device registry (the host's own admin objects, beyond Octavia): admins register shared
//! devices; where the operator allows it (`--device-registration members`), a project member
//! registers a private virtual device for its own project. A management URL is an IP literal
//! inside the device networks and never one of the host's own listening sockets: the host
//! sends requests there, with credentials. Also the admins' placement decisions: a dry run
//! and a migration.

use std::collections::BTreeMap;

use lbaas_core::ids::{new_id, now};
use lbaas_core::model::Credentials;
use serde::Deserialize;

use super::Caller;
use super::fields::{self, Decided};
use super::tree::{ensure_mutable, queue_update, remove, store};
use crate::Error;
use crate::model::{Device, DeviceKind, LoadBalancer, Migration, Protocol};
use crate::plane::{Change, ControlPlane, DeviceRegistration};
use crate::snapshot::Snapshot;
use crate::store::Batch;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    name: Option<String>,
    kind: DeviceKind,
    driver: String,
    management_url: String,
    credentials: Option<Credentials>,
    capacity: i64,
    project_id: Option<String>,
    cluster: Option<String>,
    networks: Option<Vec<String>>,
    metadata: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    availability_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceUpdateSpec {
    name: Option<String>,
    management_url: Option<String>,
    credentials: Option<Credentials>,
    capacity: Option<i64>,
    cluster: Option<String>,
    networks: Option<Vec<String>>,
    metadata: Option<BTreeMap<String, String>>,
    enabled: Option<bool>,
    /// `null` takes the device out of its zone.
    #[serde(default, with = "::serde_with::rust::double_option")]
    availability_zone: Option<Option<String>>,
}

/// A hypothetical load balancer to place.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunSpec {
    project_id: Option<String>,
    vip_subnet_id: Option<String>,
    vip_network_id: Option<String>,
    vip_address: Option<String>,
    flavor_id: Option<String>,
    provider: Option<String>,
    availability_zone: Option<String>,
    #[serde(default)]
    member_networks: Vec<String>,
    #[serde(default)]
    protocols: Vec<Protocol>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MigrateSpec {
    device_id: Option<String>,
}

/// A device's availability zone must exist, and its profile name the device's driver.
fn device_zone(snapshot: &Snapshot, driver: &str, zone: Option<String>) -> Decided<Option<String>> {
    let Some(name) = zone else {
        return Ok(None);
    };
    let zone = snapshot
        .availability_zone(&name)
        .map_err(|_| Error::invalid(format!("Availability zone {name} could not be found.")))?;
    let profile = snapshot.availability_zone_profile(&zone.availability_zone_profile_id)?;
    if profile.provider_name != driver {
        return Err(Error::invalid(format!(
            "Availability zone {name} is for provider {}, not {driver}.",
            profile.provider_name
        )));
    }
    Ok(Some(name))
}

fn capacity(value: i64) -> Decided<u32> {
    u32::try_from(value)
        .ok()
        .filter(|c| (1..=100_000).contains(c))
        .ok_or_else(|| Error::invalid(format!("capacity {value} is out of range 1-100000")))
}

fn management_url(rules: &DeviceRegistration, value: &str) -> Decided<String> {
    let socket = crate::net::url_socket(value).ok_or_else(|| {
        Error::invalid(format!(
            "management_url `{}` must be an http:// or https:// URL with an IP address",
            value.escape_debug()
        ))
    })?;
    if !rules.networks.iter().any(|net| net.contains(&socket.ip())) {
        let networks: Vec<String> = rules.networks.iter().map(ToString::to_string).collect();
        return Err(Error::invalid(format!(
            "management_url address {} is outside the device networks ({}).",
            socket.ip(),
            networks.join(", ")
        )));
    }
    if crate::net::is_reserved(socket, &rules.reserved) {
        return Err(Error::invalid(format!(
            "management_url {socket} is this control plane's own address."
        )));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

fn writable_device<'a>(
    snapshot: &'a Snapshot,
    caller: &impl Caller,
    id: &str,
) -> Decided<&'a Device> {
    let device = snapshot.device(caller, id)?;
    let allowed = match &device.project_id {
        None => caller.is_admin(),
        Some(project) => caller.can_write(project),
    };
    if allowed {
        Ok(device)
    } else {
        Err(Error::Forbidden)
    }
}

/// Registers a device: shared or one project's (admins), or the caller's project's virtual
/// device (members, where the operator allows it).
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    body: DeviceSpec,
) -> Decided<Change<Device>> {
    if !caller.is_admin() && !plane.registration.members {
        return Err(Error::Forbidden);
    }
    // Admins register shared devices (or one project's); members only their own
    // project's virtual balancers.
    let project_id = match (caller.is_admin(), body.project_id) {
        (true, project) => project,
        (false, Some(p)) if p != caller.project() => return Err(Error::Forbidden),
        (false, _) if body.kind != DeviceKind::Virtual => {
            return Err(Error::invalid(
                "A project may only register virtual devices.",
            ));
        }
        (false, _) => Some(caller.project().to_owned()),
    };
    plane.driver_manages(&body.driver, body.kind)?;
    let networks = body.networks.unwrap_or_default();
    for network in &networks {
        snapshot
            .network(caller, network)
            .map_err(|_| Error::invalid(format!("Network {network} could not be found.")))?;
    }
    let availability_zone = device_zone(snapshot, &body.driver, body.availability_zone)?;
    let device = Device {
        id: new_id(),
        name: fields::text("name", body.name, 255)?,
        kind: body.kind,
        driver: body.driver,
        management_url: management_url(&plane.registration, &body.management_url)?,
        credentials: body.credentials,
        capacity: capacity(body.capacity)?,
        project_id,
        cluster: body.cluster,
        networks,
        attachments: BTreeMap::new(),
        metadata: body.metadata.unwrap_or_default(),
        enabled: body.enabled.unwrap_or(true),
        availability_zone,
        provisioned: None,
        host: None,
        created_at: now(),
        updated_at: None,
    };
    Ok(store(device))
}

/// Changes a device the caller may write; its zone only by an admin, its capacity not below
/// what it carries.
pub fn update(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    body: DeviceUpdateSpec,
) -> Decided<Change<Device>> {
    let mut device = writable_device(snapshot, caller, id)?.clone();
    if let Some(name) = body.name {
        device.name = fields::text("name", Some(name), 255)?;
    }
    if let Some(url) = body.management_url {
        device.management_url = management_url(&plane.registration, &url)?;
    }
    if let Some(credentials) = body.credentials {
        device.credentials = Some(credentials);
    }
    if let Some(value) = body.capacity {
        let value = capacity(value)?;
        let load = snapshot.load_of(id);
        if (value as usize) < load {
            return Err(Error::conflict(format!(
                "Device {id} carries {load} load balancers; capacity cannot drop to {value}."
            )));
        }
        device.capacity = value;
    }
    if let Some(cluster) = body.cluster {
        device.cluster = Some(cluster);
    }
    if let Some(networks) = body.networks {
        device.networks = networks;
    }
    if let Some(metadata) = body.metadata {
        device.metadata = metadata;
    }
    if let Some(enabled) = body.enabled {
        device.enabled = enabled;
    }
    if let Some(zone) = body.availability_zone {
        if !caller.is_admin() {
            return Err(Error::Forbidden);
        }
        device.availability_zone = device_zone(snapshot, &device.driver, zone)?;
    }
    device.updated_at = Some(now());
    Ok(store(device))
}

/// Deletes a device the caller may write that carries no load balancer. The change's value is
/// the device, for the host that started it to stop it.
pub fn delete(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<Device>> {
    let device = writable_device(snapshot, caller, id)?.clone();
    let load = snapshot.load_of(id);
    if load > 0 {
        return Err(Error::conflict(format!(
            "Device {id} still carries {load} load balancers; move or delete them first."
        )));
    }
    Ok(remove::<Device>(id).map(|()| device))
}

/// Moves a load balancer off its device (admins): placement runs again, or takes the device
/// named; the configuration is applied there, then removed from the old device.
pub fn migrate(
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    spec: MigrateSpec,
) -> Decided<Change<LoadBalancer>> {
    let to = spec.device_id;
    let lb = snapshot.loadbalancer(caller, id)?;
    ensure_mutable(lb)?;
    let from = lb
        .device_id
        .clone()
        .ok_or_else(|| Error::conflict(format!("Load Balancer {id} is on no device.")))?;
    if let Some(to) = &to {
        let device = snapshot
            .devices
            .iter()
            .find(|d| &d.id == to)
            .ok_or_else(|| Error::invalid(format!("Device {to} could not be found.")))?;
        if device.id == from {
            return Err(Error::invalid(format!(
                "Load Balancer {id} is already on device {to}."
            )));
        }
        if device.driver != lb.provider {
            return Err(Error::invalid(format!(
                "Device {to} is managed by {}, not by {}.",
                device.driver, lb.provider
            )));
        }
    }
    let mut lb = lb.clone();
    lb.migration = Some(Migration { from, to });
    let mut batch = Batch::new();
    queue_update(&mut lb, &mut batch);
    Ok(Change::new(batch, lb).with_job(id))
}

/// What the scheduler would decide for a hypothetical load balancer (admins); changes
/// nothing.
pub fn dry_run(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    spec: DryRunSpec,
) -> Decided<lbaas_core::placement::Explanation> {
    let (network, _) = super::vip::vip_location(
        snapshot.networks.iter(),
        spec.vip_subnet_id.as_deref(),
        spec.vip_network_id.as_deref(),
    )?;
    for id in &spec.member_networks {
        snapshot
            .network(caller, id)
            .map_err(|_| Error::invalid(format!("Network {id} could not be found.")))?;
    }
    let provider = match (&spec.flavor_id, &spec.provider) {
        (Some(flavor), _) => {
            let flavor = snapshot
                .flavor(flavor)
                .map_err(|_| Error::invalid(format!("Flavor {flavor} could not be found.")))?;
            snapshot
                .flavorprofile(&flavor.flavor_profile_id)?
                .provider_name
                .clone()
        }
        (None, Some(provider)) => provider.clone(),
        (None, None) => plane
            .default_provider()
            .ok_or_else(|| Error::invalid("No provider is loaded on this host."))?,
    };
    let target = crate::placement::Target {
        loadbalancer_id: "dry-run".into(),
        project_id: spec
            .project_id
            .unwrap_or_else(|| caller.project().to_owned()),
        vip_address: spec.vip_address,
        vip_network: network.id.clone(),
        member_networks: spec.member_networks,
        protocols: spec.protocols,
        flavor_id: spec.flavor_id,
        provider,
        availability_zone: spec.availability_zone,
        exclude: None,
        only: None,
    };
    Ok(crate::placement::decide(&plane.drivers, snapshot, &target).recorded())
}
