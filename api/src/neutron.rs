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
use lbaas_control::octavia::networks::{self, NetworkSpec, SubnetSpec};
use lbaas_control::snapshot::network_visible;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Network, Subnet};

use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::{Api, listing};

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
    network: NetworkSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubnetEnvelope {
    subnet: SubnetSpec,
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

async fn create_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<NetworkEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let network = api
        .write(move |_, snapshot| Ok(networks::create(snapshot, &ctx, body.network)?))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "network": network_view(&network) })),
    ))
}

async fn delete_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(networks::delete(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_subnet(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<SubnetEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let (network, subnet) = api
        .write(move |plane, snapshot| {
            Ok(networks::create_subnet(plane, snapshot, &ctx, body.subnet)?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "subnet": subnet_view(&network, &subnet) })),
    ))
}

async fn delete_subnet(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(networks::delete_subnet(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
