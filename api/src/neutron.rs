//! The subset of Neutron's v2.0 API that clients use around load balancers, served from the
//! host's own network model: `openstack loadbalancer create --vip-subnet-id` resolves a subnet
//! through it, and a project creates and deletes networks and subnets of its own for its VIPs
//! and members (as Octavia's test suite does for each test class). Networks an operator
//! registers (`/v2/admin/networks`) are shared; a project's own are visible to it alone.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Network, Subnet};
use crate::store::Batch;

use super::auth::Context;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::{Api, Change, Snapshot, listing, validate};
use lbaas_control::snapshot::network_visible;
use lbaas_core::ids::{new_id, now};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/networks", get(list_networks).post(create_network))
        .route("/networks/{id}", get(show_network).delete(delete_network))
        .route("/subnets", get(list_subnets).post(create_subnet))
        .route("/subnets/{id}", get(show_subnet).delete(delete_subnet))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkEnvelope {
    network: NetworkBody,
}

/// Neutron's network attributes this host keeps or accepts (`admin_state_up`, port security
/// and the MTU have no meaning here and are accepted as Neutron's defaults).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkBody {
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(alias = "tenant_id")]
    project_id: Option<String>,
    #[serde(default)]
    shared: bool,
    #[serde(default)]
    admin_state_up: Option<bool>,
    #[serde(default)]
    port_security_enabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetEnvelope {
    subnet: SubnetBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetBody {
    network_id: String,
    cidr: Option<String>,
    ip_version: u8,
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    gateway_ip: Option<String>,
    #[serde(alias = "tenant_id")]
    project_id: Option<String>,
    #[serde(default)]
    enable_dhcp: Option<bool>,
    subnetpool_id: Option<String>,
    ipv6_address_mode: Option<String>,
    ipv6_ra_mode: Option<String>,
}

async fn create_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<NetworkEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let body = body.network;
    if body.shared {
        ctx.require_admin()?;
    }
    let _ = (body.admin_state_up, body.port_security_enabled);
    validate::text("description", body.description, 255)?;
    let project_id = ctx.owning_project(body.project_id.as_deref())?;
    let network = Network {
        id: new_id(),
        name: validate::text("name", body.name, 255)?,
        project_id: (!body.shared).then_some(project_id),
        vlan: None,
        subnets: Vec::new(),
        created_at: now(),
    };
    let view = network_view(&network);
    api.write(move |_, snapshot| {
        if let Some(project) = &network.project_id {
            let networks = snapshot
                .networks
                .iter()
                .filter(|n| n.project_id.as_ref() == Some(project))
                .count();
            over_quota(networks, MAX_NETWORKS, "network")?;
        }
        let mut batch = Batch::new();
        batch.put(&network);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok((StatusCode::CREATED, Json(json!({ "network": view }))))
}

/// Networks and subnets a project may have: Neutron's default quotas.
pub const MAX_NETWORKS: usize = 100;
pub const MAX_SUBNETS: usize = 100;

/// Neutron's `409` when a project already has `count` of `MAX` `resource`s.
fn over_quota(count: usize, max: usize, resource: &str) -> ApiResult<()> {
    if count >= max {
        return Err(ApiError::conflict(format!(
            "Quota exceeded for resources: ['{resource}']. A project has at most {max}."
        )));
    }
    Ok(())
}

/// The network `id` if the caller may change it: its project's member, or an admin.
fn owned<'a>(ctx: &Context, snapshot: &'a Snapshot, id: &str) -> ApiResult<&'a Network> {
    let network = snapshot
        .network(ctx, id)
        .map_err(|_| ApiError::not_found("Network", id))?;
    match &network.project_id {
        Some(project) if ctx.can_write(project) => Ok(network),
        _ if ctx.is_admin() => Ok(network),
        _ => Err(ApiError::forbidden()),
    }
}

/// What on the host still uses a subnet of `network` (`subnet`: only that one): a network or
/// subnet in use is not deleted, whether through Neutron's API or the admin one.
pub(crate) fn in_use(
    snapshot: &Snapshot,
    network: &Network,
    subnet: Option<&str>,
) -> Option<String> {
    let ours = |id: &str| {
        network.subnets.iter().any(|s| s.id == id) && subnet.is_none_or(|only| only == id)
    };
    if let Some(lb) = snapshot
        .loadbalancers
        .iter()
        .find(|lb| ours(&lb.vip_subnet_id))
    {
        return Some(format!("load balancer {} has its VIP on it", lb.common.id));
    }
    snapshot
        .members
        .iter()
        .find(|m| m.subnet_id.as_deref().is_some_and(ours))
        .map(|m| format!("member {} is on it", m.common.id))
}

async fn delete_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| {
        let network = owned(&ctx, snapshot, &id)?;
        if let Some(user) = in_use(snapshot, network, None) {
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

async fn create_subnet(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<SubnetEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let body = body.subnet;
    if body.subnetpool_id.is_some() {
        return Err(ApiError::bad_request(
            "Subnet pools are not served here: give the subnet a cidr.",
        ));
    }
    let cidr = body
        .cidr
        .ok_or_else(|| ApiError::bad_request("A subnet needs a cidr."))?;
    let family = if validate::cidr("cidr", &cidr)?.addr().is_ipv6() {
        6
    } else {
        4
    };
    if body.ip_version != family {
        return Err(ApiError::bad_request(format!(
            "cidr {cidr} is not an IPv{} network.",
            body.ip_version
        )));
    }
    for (field, mode) in [
        ("ipv6_address_mode", &body.ipv6_address_mode),
        ("ipv6_ra_mode", &body.ipv6_ra_mode),
    ] {
        match mode.as_deref() {
            None => {}
            Some("slaac" | "dhcpv6-stateful" | "dhcpv6-stateless") if family == 6 => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "{field} `{}` is not valid for this subnet.",
                    other.escape_debug()
                )));
            }
        }
    }
    let _ = body.enable_dhcp;
    validate::text("description", body.description, 255)?;
    if let Some(project) = &body.project_id {
        ctx.owning_project(Some(project))?;
    }
    let view = api
        .write(move |plane, snapshot| {
            let mut network = owned(&ctx, snapshot, &body.network_id)?.clone();
            // A project's subnet keeps off the host's and the operator's networks.
            if network.project_id.is_some() {
                let range = validate::cidr("cidr", &cidr)?;
                plane.addresses.tenant_subnet(snapshot, &range)?;
            }
            if let Some(project) = &network.project_id {
                let subnets = snapshot
                    .networks
                    .iter()
                    .filter(|n| n.project_id.as_ref() == Some(project))
                    .map(|n| n.subnets.len())
                    .sum();
                over_quota(subnets, MAX_SUBNETS, "subnet")?;
            }
            let subnet =
                super::admin::new_subnet(snapshot, &[], None, body.name, cidr, body.gateway_ip)?;
            let view = subnet_view(&network, &subnet);
            network.subnets.push(subnet);
            let mut batch = Batch::new();
            batch.put(&network);
            Ok(Change::new(batch, view))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "subnet": view }))))
}

async fn delete_subnet(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| {
        let (network, _) = snapshot.subnet(&ctx, &id)?;
        let mut network = owned(&ctx, snapshot, &network.id)?.clone();
        if let Some(user) = in_use(snapshot, &network, Some(&id)) {
            return Err(ApiError::conflict(format!(
                "Unable to complete operation on subnet {id}: {user}."
            )));
        }
        network.subnets.retain(|s| s.id != id);
        let mut batch = Batch::new();
        batch.put(&network);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

fn network_view(network: &Network) -> Value {
    let project = network.project_id.clone().unwrap_or_default();
    json!({
        "id": network.id,
        "name": network.name,
        "status": "ACTIVE",
        "created_at": network.created_at,
        "admin_state_up": true,
        "shared": network.project_id.is_none(),
        "project_id": project,
        "tenant_id": project,
        "subnets": network.subnets.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "provider:network_type": if network.vlan.is_some() { "vlan" } else { "flat" },
        "provider:segmentation_id": network.vlan,
    })
}

fn subnet_view(network: &Network, subnet: &Subnet) -> Value {
    let project = network.project_id.clone().unwrap_or_default();
    let ip_version = if subnet.cidr.contains(':') { 6 } else { 4 };
    json!({
        "id": subnet.id,
        "name": subnet.name,
        "network_id": network.id,
        "cidr": subnet.cidr,
        "ip_version": ip_version,
        "gateway_ip": subnet.gateway_ip,
        "enable_dhcp": false,
        "allocation_pools": [],
        "project_id": project,
        "tenant_id": project,
    })
}

async fn list_networks(
    State(api): State<Arc<Api>>,
    ctx: Context,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    listing(&api, raw, "networks", String::new(), move |snapshot| {
        Ok(Box::new(
            snapshot
                .networks
                .iter()
                .filter(move |n| network_visible(&ctx, n))
                .map(network_view),
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
        let network = snapshot
            .network(&ctx, &id)
            .map_err(|_| ApiError::not_found("Network", &id))?;
        Ok(Json(json!({ "network": network_view(network) })))
    })
    .await
}

async fn list_subnets(
    State(api): State<Arc<Api>>,
    ctx: Context,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    listing(&api, raw, "subnets", String::new(), move |snapshot| {
        Ok(Box::new(
            snapshot
                .networks
                .iter()
                .filter(move |n| network_visible(&ctx, n))
                .flat_map(|n| n.subnets.iter().map(move |s| subnet_view(n, s))),
        ))
    })
    .await
}

async fn show_subnet(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        let (network, subnet) = snapshot.subnet(&ctx, &id)?;
        Ok(Json(json!({ "subnet": subnet_view(network, subnet) })))
    })
    .await
}
