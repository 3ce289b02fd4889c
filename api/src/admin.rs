//! Admin extensions under `/v2/admin/`: the device registry and the network model VIPs are
//! allocated from. Admins register shared devices; where the operator allows it
//! (`--device-registration members`), a project member may register a private virtual device
//! for its own project. A management URL is an IP literal inside the device networks and never
//! one of the host's own listening sockets: the host sends requests there, with credentials.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::devices::{
    self, DeviceSpec, DeviceUpdateSpec, DryRunSpec, MigrateSpec,
};
use lbaas_control::octavia::networks::{self, SharedNetworkSpec};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::{Api, listing, views};
use crate::edge::Base;
use lbaas_control::snapshot::{device_visible, network_visible};
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
    device: DeviceSpec,
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
    device: DeviceUpdateSpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkEnvelope {
    network: SharedNetworkSpec,
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
    placement: DryRunSpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct MigrateEnvelope {
    #[serde(default)]
    migrate: MigrateSpec,
}

async fn create_device(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<DeviceEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let view = api
        .write(move |plane, snapshot| {
            let change = devices::create(plane, snapshot, &ctx, body.device)?;
            Ok(change.map(|device| views::device(snapshot, &device)))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "device": view }))))
}

async fn update_device(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<DeviceUpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |plane, snapshot| {
            let change = devices::update(plane, snapshot, &ctx, &id, body.device)?;
            Ok(change.map(|device| views::device(snapshot, &device)))
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
        .write(move |_, snapshot| Ok(devices::delete(snapshot, &ctx, &id)?))
        .await?;
    // A device a provisioner started is stopped with its record, by the host that started it.
    api.plane.retire_device(&device).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn create_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<NetworkEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let network = api
        .write(move |_, snapshot| Ok(networks::register(snapshot, body.network)?))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "network": views::network(&network) })),
    ))
}

async fn delete_network(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| Ok(networks::unregister(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the scheduler would decide for a hypothetical load balancer; changes nothing.
async fn dry_run(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<DryRunEnvelope>,
) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    api.read(move |plane, snapshot| {
        let explanation = devices::dry_run(plane, snapshot, &ctx, body.placement)?;
        Ok(Json(json!({ "placement": explanation })))
    })
    .await
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
    let view = api
        .write(move |_, snapshot| {
            let change = devices::migrate(snapshot, &ctx, &id, body.migrate)?;
            Ok(change.map(|lb| views::loadbalancer(snapshot, &lb)))
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "loadbalancer": view }))))
}
