//! `/lbaas/pools`: one backend of a load balancer: its algorithm, persistence, members and
//! health monitor.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::pools::{self, PoolCreate, PoolUpdate};
use lbaas_control::octavia::tree::Parents;
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::Context;
use super::error::ApiResult;
use super::{Api, listing, views};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/pools", get(list).post(create))
        .route("/pools/{id}", get(show).put(update).delete(delete))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    pool: PoolCreate,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/pools", base);
    listing(&api, raw, "pools", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .pools
                .iter()
                .filter(move |p| ctx.can_read(&p.common.project_id))
                .map(|p| {
                    let mut view = views::pool(snapshot, p);
                    view["loadbalancer_id"] = json!(p.loadbalancer_id);
                    view
                }),
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
        let pool = snapshot.pool(&ctx, &id)?;
        Ok(Json(json!({ "pool": views::pool(snapshot, pool) })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    pool: PoolUpdate,
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let resolved = api
        .resolve_tls(&ctx, body.pool.tls_refs(), body.pool.parents())
        .await?;
    let view = api
        .write(move |plane, snapshot| {
            let change = pools::create(plane, snapshot, &ctx, body.pool, &resolved)?;
            Ok(change.map(|(pool, listener_id)| {
                let mut view = views::pool(snapshot, &pool);
                if let Some(listener_id) = listener_id {
                    view["listeners"] = json!([{ "id": listener_id }]);
                }
                view
            }))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "pool": view }))))
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let (reader, pool_id) = (ctx.clone(), id.clone());
    let current = api
        .read(move |_, snapshot| Ok(pools::current_tls(snapshot, &reader, &pool_id)?))
        .await?;
    let resolved = api
        .resolve_tls(&ctx, body.pool.tls_refs(&current), Parents::default())
        .await?;
    let view = api
        .write(move |plane, snapshot| {
            let change = pools::update(plane, snapshot, &ctx, &id, body.pool, &resolved)?;
            Ok(change.map(|pool| views::pool(snapshot, &pool)))
        })
        .await?;
    Ok(Json(json!({ "pool": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(pools::delete(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
