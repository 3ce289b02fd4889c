//! Admin extensions under `/v2/admin/`: the device registry and the network model VIPs are
//! allocated from. Admins register shared devices; where the operator allows it
//! (`--device-registration members`), a project member may register a private virtual device
//! for its own project. A management URL is an IP literal inside the device networks and never
//! one of the host's own listening sockets: the host sends requests there, with credentials.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Device, DeviceKind, Network, Subnet};
use crate::store::Batch;
use lbaas_core::model::Credentials;

use super::auth::Context;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::{Api, Change, listing, validate, views};
use crate::edge::Base;
use lbaas_control::snapshot::{device_visible, network_visible};
use lbaas_core::ids::{new_id, now};
use lbaas_core::views::{HostList, PlacementAnswer, PlacementView};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/devices", get(list_devices).post(create_device))
        .route(
            "/devices/{id}",
            get(show_device).put(update_device).delete(delete_device),
        )
        .route("/networks", get(list_networks).post(create_network))
        .route("/networks/{id}", get(show_network).delete(delete_network))
        .route("/loadbalancers/{id}/placement", get(show_placement))
        .route("/loadbalancers/{id}/migrate", axum::routing::put(migrate))
        .route("/placements/dry-run", axum::routing::post(dry_run))
        .route("/hosts", get(list_hosts))
}

/// `GET /v2/admin/hosts`: every host sharing the store, its version, last heartbeat and the
/// jobs it holds.
async fn list_hosts(State(api): State<Arc<Api>>, ctx: Context) -> ApiResult<Json<HostList>> {
    ctx.require_admin()?;
    let plane = api.plane.clone();
    let hosts = api.plane.blocking(move || plane.hosts()).await?;
    Ok(Json(HostList { hosts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceEnvelope {
    device: DeviceCreate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceCreate {
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

/// A device's availability zone must exist, and its profile name the device's driver.
fn device_zone(
    snapshot: &super::Snapshot,
    driver: &str,
    zone: Option<String>,
) -> ApiResult<Option<String>> {
    let Some(name) = zone else {
        return Ok(None);
    };
    let zone = snapshot.availability_zone(&name).map_err(|_| {
        ApiError::bad_request(format!("Availability zone {name} could not be found."))
    })?;
    let profile = snapshot.availability_zone_profile(&zone.availability_zone_profile_id)?;
    if profile.provider_name != driver {
        return Err(ApiError::bad_request(format!(
            "Availability zone {name} is for provider {}, not {driver}.",
            profile.provider_name
        )));
    }
    Ok(Some(name))
}

fn capacity(value: i64) -> ApiResult<u32> {
    u32::try_from(value)
        .ok()
        .filter(|c| (1..=100_000).contains(c))
        .ok_or_else(|| ApiError::bad_request(format!("capacity {value} is out of range 1-100000")))
}

fn management_url(rules: &lbaas_control::DeviceRegistration, value: &str) -> ApiResult<String> {
    let socket = crate::net::url_socket(value).ok_or_else(|| {
        ApiError::bad_request(format!(
            "management_url `{}` must be an http:// or https:// URL with an IP address",
            value.escape_debug()
        ))
    })?;
    if !rules.networks.iter().any(|net| net.contains(&socket.ip())) {
        let networks: Vec<String> = rules.networks.iter().map(ToString::to_string).collect();
        return Err(ApiError::bad_request(format!(
            "management_url address {} is outside the device networks ({}).",
            socket.ip(),
            networks.join(", ")
        )));
    }
    if crate::net::is_reserved(socket, &rules.reserved) {
        return Err(ApiError::bad_request(format!(
            "management_url {socket} is this control plane's own address."
        )));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

async fn create_device(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<DeviceEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    if !ctx.is_admin() && !api.registration.members {
        return Err(ApiError::forbidden());
    }
    let view = api
        .write(move |api, snapshot| {
            let body = body.device;
            // Admins register shared devices (or one project's); members only their own
            // project's virtual balancers.
            let project_id = match (ctx.is_admin(), body.project_id) {
                (true, project) => project,
                (false, Some(p)) if p != ctx.project_id => return Err(ApiError::forbidden()),
                (false, _) if body.kind != DeviceKind::Virtual => {
                    return Err(ApiError::bad_request(
                        "A project may only register virtual devices.",
                    ));
                }
                (false, _) => Some(ctx.project_id.clone()),
            };
            api.driver_manages(&body.driver, body.kind)?;
            let networks = body.networks.unwrap_or_default();
            for network in &networks {
                snapshot.network(&ctx, network).map_err(|_| {
                    ApiError::bad_request(format!("Network {network} could not be found."))
                })?;
            }
            let availability_zone = device_zone(snapshot, &body.driver, body.availability_zone)?;
            let device = Device {
                id: new_id(),
                name: validate::text("name", body.name, 255)?,
                kind: body.kind,
                driver: body.driver,
                management_url: management_url(&api.registration, &body.management_url)?,
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
            let mut batch = Batch::new();
            batch.put(&device);
            Ok(Change::new(batch, views::device(snapshot, &device)))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "device": view }))))
}

async fn list_devices(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/admin/devices", base);
    listing(&api, raw, "devices", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .devices
                .iter()
                .filter(move |d| device_visible(&ctx, d))
                .map(|d| views::device(snapshot, d)),
        ))
    })
    .await
}

async fn show_device(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        Ok(Json(
            json!({ "device": views::device(snapshot, snapshot.device(&ctx, &id)?) }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceUpdateEnvelope {
    device: DeviceUpdate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceUpdate {
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

fn writable_device<'a>(
    snapshot: &'a super::Snapshot,
    ctx: &Context,
    id: &str,
) -> ApiResult<&'a Device> {
    let device = snapshot.device(ctx, id)?;
    let allowed = match &device.project_id {
        None => ctx.is_admin(),
        Some(project) => ctx.can_write(project),
    };
    if allowed {
        Ok(device)
    } else {
        Err(ApiError::forbidden())
    }
}

async fn update_device(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<DeviceUpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |api, snapshot| {
            let mut device = writable_device(snapshot, &ctx, &id)?.clone();
            let body = body.device;
            if let Some(name) = body.name {
                device.name = validate::text("name", Some(name), 255)?;
            }
            if let Some(url) = body.management_url {
                device.management_url = management_url(&api.registration, &url)?;
            }
            if let Some(credentials) = body.credentials {
                device.credentials = Some(credentials);
            }
            if let Some(value) = body.capacity {
                let value = capacity(value)?;
                let load = snapshot.load_of(&id);
                if (value as usize) < load {
                    return Err(ApiError::conflict(format!(
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
                if !ctx.is_admin() {
                    return Err(ApiError::forbidden());
                }
                device.availability_zone = device_zone(snapshot, &device.driver, zone)?;
            }
            device.updated_at = Some(now());
            let mut batch = Batch::new();
            batch.put(&device);
            Ok(Change::new(batch, views::device(snapshot, &device)))
        })
        .await?;
    Ok(Json(json!({ "device": view })))
}

async fn delete_device(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let device = api
        .write(move |_, snapshot| {
            let device = writable_device(snapshot, &ctx, &id)?.clone();
            let load = snapshot.load_of(&id);
            if load > 0 {
                return Err(ApiError::conflict(format!(
                    "Device {id} still carries {load} load balancers; move or delete them first."
                )));
            }
            let mut batch = Batch::new();
            batch.delete::<Device>(&id);
            Ok(Change::new(batch, device))
        })
        .await?;
    // A device a provisioner started is stopped with its record, by the host that started it.
    api.plane.retire_device(&device).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkEnvelope {
    network: NetworkCreate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkCreate {
    id: Option<String>,
    name: Option<String>,
    project_id: Option<String>,
    vlan: Option<i64>,
    subnets: Vec<SubnetCreate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetCreate {
    id: Option<String>,
    name: Option<String>,
    cidr: String,
    gateway_ip: Option<String>,
}

fn checked_id(value: Option<String>) -> ApiResult<String> {
    match value {
        None => Ok(new_id()),
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(id)
        }
        Some(id) => Err(ApiError::bad_request(format!(
            "id `{}` may only hold letters, digits, '-' and '_'",
            id.escape_debug()
        ))),
    }
}

/// A checked new subnet: its CIDR, its gateway inside it, its id free (among `pending` too).
pub(crate) fn new_subnet(
    snapshot: &super::Snapshot,
    pending: &[Subnet],
    id: Option<String>,
    name: Option<String>,
    cidr: String,
    gateway_ip: Option<String>,
) -> ApiResult<Subnet> {
    let net = validate::cidr("cidr", &cidr)?;
    if let Some(gateway) = &gateway_ip
        && !net.contains(&validate::ip("gateway_ip", gateway)?)
    {
        return Err(ApiError::bad_request(format!(
            "gateway_ip {gateway} is outside {cidr}"
        )));
    }
    let id = checked_id(id)?;
    let taken = snapshot
        .networks
        .iter()
        .flat_map(|n| &n.subnets)
        .chain(pending)
        .any(|s| s.id == id);
    if taken {
        return Err(ApiError::conflict(format!("Subnet {id} already exists.")));
    }
    Ok(Subnet {
        id,
        name: validate::text("name", name, 255)?,
        cidr,
        gateway_ip,
    })
}

async fn create_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<NetworkEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let view = api
        .write(move |_, snapshot| {
            let body = body.network;
            let id = checked_id(body.id)?;
            if snapshot.networks.iter().any(|n| n.id == id) {
                return Err(ApiError::conflict(format!("Network {id} already exists.")));
            }
            let vlan = match body.vlan {
                Some(v) if (1..=4094).contains(&v) => Some(v as u16),
                Some(v) => {
                    return Err(ApiError::bad_request(format!(
                        "vlan {v} is out of range 1-4094"
                    )));
                }
                None => None,
            };
            if body.subnets.is_empty() {
                return Err(ApiError::bad_request(
                    "A network needs at least one subnet.",
                ));
            }
            let mut subnets = Vec::new();
            for subnet in body.subnets {
                let subnet = new_subnet(
                    snapshot,
                    &subnets,
                    subnet.id,
                    subnet.name,
                    subnet.cidr,
                    subnet.gateway_ip,
                )?;
                subnets.push(subnet);
            }
            let network = Network {
                id,
                name: validate::text("name", body.name, 255)?,
                project_id: body.project_id,
                vlan,
                subnets,
                created_at: now(),
            };
            let mut batch = Batch::new();
            batch.put(&network);
            Ok(Change::new(batch, views::network(&network)))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "network": view }))))
}

async fn list_networks(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/admin/networks", base);
    listing(&api, raw, "networks", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .networks
                .iter()
                .filter(move |n| network_visible(&ctx, n))
                .map(views::network),
        ))
    })
    .await
}

async fn show_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        Ok(Json(
            json!({ "network": views::network(snapshot.network(&ctx, &id)?) }),
        ))
    })
    .await
}

async fn delete_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| {
        let network = snapshot.network(&ctx, &id)?;
        if let Some(user) = super::neutron::in_use(snapshot, network, None) {
            return Err(ApiError::conflict(format!(
                "Unable to complete operation on network {id}: {user}."
            )));
        }
        let mut batch = Batch::new();
        batch.delete::<Network>(&id);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Why a load balancer is on its device: the recorded decision.
async fn show_placement(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<PlacementAnswer>> {
    ctx.require_admin()?;
    api.read(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        let placement = snapshot
            .placement(&id)
            .ok_or_else(|| ApiError::not_found("Placement of load balancer", &id))?;
        Ok(Json(PlacementAnswer {
            placement: PlacementView {
                decision: placement.clone(),
                device_id: lb.device_id.clone(),
            },
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRunEnvelope {
    placement: DryRun,
}

/// A hypothetical load balancer to place.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DryRun {
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
    protocols: Vec<crate::model::Protocol>,
}

/// What the scheduler would decide for a hypothetical load balancer; changes nothing.
async fn dry_run(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<DryRunEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let body = body.placement;
    api.read(move |api, snapshot| {
        let (network, _) = validate::vip_location(
            snapshot.networks.iter(),
            body.vip_subnet_id.as_deref(),
            body.vip_network_id.as_deref(),
        )?;
        for id in &body.member_networks {
            snapshot
                .network(&ctx, id)
                .map_err(|_| ApiError::bad_request(format!("Network {id} could not be found.")))?;
        }
        let provider = match (&body.flavor_id, &body.provider) {
            (Some(flavor), _) => {
                let flavor = snapshot.flavor(flavor).map_err(|_| {
                    ApiError::bad_request(format!("Flavor {flavor} could not be found."))
                })?;
                snapshot
                    .flavorprofile(&flavor.flavor_profile_id)?
                    .provider_name
                    .clone()
            }
            (None, Some(provider)) => provider.clone(),
            (None, None) => api
                .default_provider()
                .ok_or_else(|| ApiError::bad_request("No provider is loaded on this host."))?,
        };
        let target = crate::placement::Target {
            loadbalancer_id: "dry-run".into(),
            project_id: body.project_id.unwrap_or_else(|| ctx.project_id.clone()),
            vip_address: body.vip_address,
            vip_network: network.id.clone(),
            member_networks: body.member_networks,
            protocols: body.protocols,
            flavor_id: body.flavor_id,
            provider,
            availability_zone: body.availability_zone,
            exclude: None,
            only: None,
        };
        let explanation = crate::placement::decide(&api.drivers, snapshot, &target).explanation;
        Ok(Json(json!({ "placement": explanation })))
    })
    .await
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MigrateEnvelope {
    #[serde(default)]
    migrate: MigrateBody,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MigrateBody {
    device_id: Option<String>,
}

/// Moves a load balancer off its device (disabled or failing): placement runs again (or takes
/// the named device), the configuration is applied there, then removed from the old device.
async fn migrate(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    // The body is optional: without one, the scheduler picks the new device.
    let body: MigrateEnvelope = if body.is_empty() {
        MigrateEnvelope::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("Invalid input: {e}")))?
    };
    let to = body.migrate.device_id;
    let view = api
        .write(move |_, snapshot| {
            let lb = snapshot.loadbalancer(&ctx, &id)?;
            super::loadbalancers::ensure_mutable(lb)?;
            let from = lb.device_id.clone().ok_or_else(|| {
                ApiError::conflict(format!("Load Balancer {id} is on no device."))
            })?;
            if let Some(to) = &to {
                let device = snapshot
                    .devices
                    .iter()
                    .find(|d| &d.id == to)
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("Device {to} could not be found."))
                    })?;
                if device.id == from {
                    return Err(ApiError::bad_request(format!(
                        "Load Balancer {id} is already on device {to}."
                    )));
                }
                if device.driver != lb.provider {
                    return Err(ApiError::bad_request(format!(
                        "Device {to} is managed by {}, not by {}.",
                        device.driver, lb.provider
                    )));
                }
            }
            let mut lb = lb.clone();
            lb.migration = Some(crate::model::Migration { from, to });
            let mut batch = Batch::new();
            super::loadbalancers::queue_update(&mut lb, &mut batch);
            Ok(Change::new(batch, views::loadbalancer(snapshot, &lb)).with_job(&id))
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "loadbalancer": view }))))
}
