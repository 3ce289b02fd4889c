//! `/lbaas/healthmonitors`: how a pool checks its members; at most one per pool.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::healthmonitors::{self, HealthMonitorCreate, HealthMonitorUpdate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::Context;
use super::error::ApiResult;
use super::{Api, listing, views};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/healthmonitors", get(list).post(create))
        .route("/healthmonitors/{id}", get(show).put(update).delete(delete))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    healthmonitor: HealthMonitorCreate,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/healthmonitors", base);
    listing(&api, raw, "healthmonitors", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .healthmonitors
                .iter()
                .filter(move |h| ctx.can_read(&h.common.project_id))
                .map(views::healthmonitor),
        ))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read_one(move |_, snapshot| {
        let hm = snapshot.healthmonitor(&ctx, &id)?;
        Ok(Json(json!({ "healthmonitor": views::healthmonitor(hm) })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    healthmonitor: HealthMonitorUpdate,
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let hm = api
        .write(move |plane, snapshot| {
            Ok(healthmonitors::create(
                plane,
                snapshot,
                &ctx,
                body.healthmonitor,
            )?)
        })
        .await?;
    let view = views::healthmonitor(&hm);
    Ok((StatusCode::CREATED, Json(json!({ "healthmonitor": view }))))
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let hm = api
        .write(move |plane, snapshot| {
            Ok(healthmonitors::update(
                plane,
                snapshot,
                &ctx,
                &id,
                body.healthmonitor,
            )?)
        })
        .await?;
    Ok(Json(json!({ "healthmonitor": views::healthmonitor(&hm) })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(healthmonitors::delete(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
