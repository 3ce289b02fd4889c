//! Load balancers: the provider a new one goes to (its flavor's, as named, its availability
//! zone's, or the default), its VIP, the full tree created with it, and its update, delete
//! (with `cascade`) and failover.

use lbaas_core::ids::{new_id, now};
use serde::Deserialize;
use serde_json::Value;

use super::Caller;
use super::certificates::{Resolved, TlsRefs};
use super::fields::{self, Decided};
use super::listeners::{self, ListenerCreate};
use super::members;
use super::pools::{self, PoolCreate};
use super::status::{self, Step};
use super::tree::{ensure_mutable, ensure_writable, job, new_common, queue_update};
use super::vip;
use crate::Error;
use crate::model::{LoadBalancer, OperatingStatus};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::{Snapshot, network_visible};
use crate::store::Batch;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerCreate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    vip_address: Option<String>,
    vip_network_id: Option<String>,
    vip_subnet_id: Option<String>,
    vip_port_id: Option<String>,
    vip_qos_policy_id: Option<String>,
    provider: Option<String>,
    flavor_id: Option<String>,
    availability_zone: Option<String>,
    /// More VIPs on other subnets (Octavia v2.26): no driver of this host serves them yet.
    additional_vips: Option<Value>,
    tags: Option<Vec<String>>,
    listeners: Option<Vec<ListenerCreate>>,
    pools: Option<Vec<PoolCreate>>,
}

/// The provider for a new load balancer: from its flavor, else as named, else its availability
/// zone's, else the default. A zone must be enabled and for that provider.
fn provider_for(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    flavor_id: Option<&str>,
    provider: Option<&str>,
    zone: Option<&str>,
) -> Decided<String> {
    let zone_provider = match zone {
        Some(name) => {
            let zone = snapshot.availability_zone(name).map_err(|_| {
                Error::invalid(format!("Availability zone {name} could not be found."))
            })?;
            if !zone.enabled {
                return Err(Error::invalid(format!(
                    "The selected availability_zone is not allowed in this deployment: {name}"
                )));
            }
            let profile = snapshot.availability_zone_profile(&zone.availability_zone_profile_id)?;
            Some(profile.provider_name.as_str())
        }
        None => None,
    };
    let provider = provider.or(if flavor_id.is_none() {
        zone_provider
    } else {
        None
    });
    let chosen = match flavor_id {
        Some(flavor_id) => {
            let flavor = snapshot
                .flavor(flavor_id)
                .map_err(|_| Error::invalid(format!("Flavor {flavor_id} could not be found.")))?;
            if !flavor.enabled {
                return Err(Error::invalid(format!("Flavor {flavor_id} is disabled.")));
            }
            let profile = snapshot.flavorprofile(&flavor.flavor_profile_id)?;
            if let Some(provider) = provider
                && provider != profile.provider_name
            {
                return Err(Error::invalid(format!(
                    "Flavor {flavor_id} is not compatible with provider {provider}."
                )));
            }
            profile.provider_name.clone()
        }
        None => match provider {
            Some(provider) => provider.to_owned(),
            None => plane
                .default_provider()
                .ok_or_else(|| Error::invalid("No provider is loaded on this host."))?,
        },
    };
    if plane.drivers.get(&chosen).is_none() {
        return Err(Error::invalid(format!(
            "Provider '{chosen}' is not enabled."
        )));
    }
    if let (Some(name), Some(zone_provider)) = (zone, zone_provider)
        && zone_provider != chosen
    {
        return Err(Error::invalid(format!(
            "Availability zone {name} is not compatible with provider {chosen}."
        )));
    }
    Ok(chosen)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerUpdate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
    vip_qos_policy_id: Option<Value>,
}

impl LoadBalancerCreate {
    /// The certificate references its listeners make, to resolve before the write
    /// ([`ControlPlane::resolve_tls`]).
    pub fn tls_refs(&self) -> Decided<TlsRefs> {
        let mut all = TlsRefs::default();
        for pool in self.pools.iter().flatten() {
            all.extend(pool.tls_refs()?);
        }
        for listener in self.listeners.iter().flatten() {
            all.extend(listener.tree_tls_refs()?);
        }
        Ok(all)
    }
}

/// Creates a load balancer for the caller's project (another's for an admin), with the
/// listeners, pools, members and monitors the request gives. The change's value is the load
/// balancer and its tree.
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    body: LoadBalancerCreate,
    resolved: &Resolved,
) -> Decided<Change<(LoadBalancer, Snapshot)>> {
    if body.vip_port_id.is_some() {
        return Err(Error::invalid(
            "vip_port_id is not supported: give vip_subnet_id or vip_network_id.",
        ));
    }
    if body.vip_qos_policy_id.is_some() {
        return Err(Error::invalid(
            "QoS policies are not supported by this host.",
        ));
    }
    let project =
        caller.owning_project(body.project_id.as_deref().or(body.tenant_id.as_deref()))?;
    // The VIP before the provider, as Octavia validates the request's VIP before it loads the
    // driver.
    let (network, subnet) = vip::vip_location(
        snapshot
            .networks
            .iter()
            .filter(|n| network_visible(caller, n)),
        body.vip_subnet_id.as_deref(),
        body.vip_network_id.as_deref(),
    )?;
    let provider = provider_for(
        plane,
        snapshot,
        body.flavor_id.as_deref(),
        body.provider.as_deref(),
        body.availability_zone.as_deref(),
    )?;
    fields::unsupported_options(&provider, &[("additional_vips", &body.additional_vips)])?;
    // Addresses another subnet of the same range uses (projects' networks overlap):
    // only those subnets' VIPs can collide, so only they are looked at. Devices share
    // one data plane, so a VIP another load balancer holds is taken whatever its
    // subnet, unless the two networks are apart on VLANs of their own.
    let overlapping = vip::overlapping_subnets(snapshot, subnet);
    let (mut taken, mut elsewhere) = (Vec::new(), Vec::new());
    for lb in snapshot.loadbalancers.iter() {
        if lb.vip_subnet_id == subnet.id {
            taken.push(lb.vip_address.as_str());
        } else if overlapping.contains(lb.vip_subnet_id.as_str()) {
            let apart = snapshot
                .networks
                .iter()
                .find(|n| n.id == lb.vip_network_id)
                .is_some_and(|other| vip::isolated(network, other));
            if apart {
                elsewhere.push(lb.vip_address.as_str());
            } else {
                taken.push(lb.vip_address.as_str());
            }
        }
    }
    let vip_address = vip::allocate_vip(subnet, body.vip_address.as_deref(), &taken, &elsewhere)?;
    if let Ok(ip) = vip_address.parse() {
        plane.addresses.address("vip_address", ip)?;
    }
    let common = new_common(
        &project,
        body.name,
        body.description,
        body.admin_state_up,
        body.tags,
    )?;
    let lb = LoadBalancer {
        vip_port_id: new_id(),
        common,
        vip_address,
        vip_network_id: network.id.clone(),
        vip_subnet_id: subnet.id.clone(),
        provider,
        flavor_id: body.flavor_id,
        device_id: None,
        fault: None,
        migration: None,
        availability_zone: body.availability_zone,
    };

    let mut batch = Batch::new();
    let mut tree = Snapshot::empty_for(&lb);
    for pool in body.pools.unwrap_or_default() {
        pools::build_tree(plane, &mut tree, &lb, pool, None, resolved)?;
    }
    for listener in body.listeners.unwrap_or_default() {
        listeners::build_tree(plane, &mut tree, &lb, listener, resolved)?;
    }
    for member in &tree.members {
        members::check_target(plane, snapshot, member)?;
    }
    tree.put_children(&mut batch);
    batch.put(&lb).put(&job(&lb.common.id));
    super::quotas::enforce(snapshot, &lb.common.project_id, &batch)?;
    let lb_id = lb.common.id.clone();
    Ok(Change::new(batch, (lb, tree)).with_job(&lb_id))
}

/// Changes a load balancer the caller may write.
pub fn update(
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    body: LoadBalancerUpdate,
) -> Decided<Change<LoadBalancer>> {
    let lb = snapshot.loadbalancer(caller, id)?;
    ensure_writable(caller, &lb.common.project_id)?;
    ensure_mutable(lb)?;
    if body.vip_qos_policy_id.is_some_and(|v| !v.is_null()) {
        return Err(Error::invalid(
            "QoS policies are not supported by this host.",
        ));
    }
    let mut lb = lb.clone();
    if let Some(name) = body.name {
        lb.common.name = fields::text("name", Some(name), 255)?;
    }
    if let Some(description) = body.description {
        lb.common.description = fields::text("description", Some(description), 255)?;
    }
    if let Some(up) = body.admin_state_up {
        lb.common.admin_state_up = up;
    }
    if let Some(tags) = body.tags {
        lb.common.tags = tags;
    }
    status::step(&mut lb.common, Step::Update, &now());
    let mut batch = Batch::new();
    batch.put(&lb).put(&job(id));
    Ok(Change::new(batch, lb).with_job(id))
}

/// Deletes a load balancer the caller may write; one with listeners or pools only with
/// `cascade`.
pub fn delete(
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    cascade: bool,
) -> Decided<Change<()>> {
    let lb = snapshot.loadbalancer(caller, id)?;
    ensure_writable(caller, &lb.common.project_id)?;
    ensure_mutable(lb)?;
    let has_children =
        snapshot.listeners_of(id).next().is_some() || snapshot.pools_of(id).next().is_some();
    if has_children && !cascade {
        return Err(Error::invalid(format!(
            "Cannot delete Load Balancer {id} - it has children"
        )));
    }
    let mut lb = lb.clone();
    status::step(&mut lb.common, Step::Delete, &now());
    let mut batch = Batch::new();
    batch.put(&lb).put(&job(id));
    Ok(Change::new(batch, ()).with_job(id))
}

/// Applies a load balancer's configuration again (admins): where it is while its device is
/// enabled and the status monitor reaches it, else on a device the scheduler picks.
pub fn failover(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    let lb = snapshot.loadbalancer(caller, id)?;
    ensure_mutable(lb)?;
    let mut lb = lb.clone();
    if let Some(device_id) = lb.device_id.clone() {
        let failed = snapshot.device_by_id(&device_id).is_none_or(|d| !d.enabled)
            || lb.common.operating_status == OperatingStatus::Error;
        if failed {
            lb.migration = Some(crate::model::Migration {
                from: device_id,
                to: None,
            });
        }
    }
    let mut batch = Batch::new();
    queue_update(&mut lb, &mut batch);
    Ok(Change::new(batch, ()).with_job(id))
}
