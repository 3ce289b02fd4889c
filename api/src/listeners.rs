//! `/lbaas/listeners`: one frontend of a load balancer, on one protocol and port.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::listeners::{self, ListenerCreate, ListenerUpdate};
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
        .route("/listeners", get(list).post(create))
        .route("/listeners/{id}", get(show).put(update).delete(delete))
        .route("/listeners/{id}/stats", get(stats))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    listener: ListenerCreate,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/listeners", base);
    listing(&api, raw, "listeners", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .listeners
                .iter()
                .filter(move |l| ctx.can_read(&l.common.project_id))
                .map(|l| {
                    let mut view = views::listener(snapshot, l);
                    // Filterable by the load balancer, as the CLI does.
                    view["loadbalancer_id"] = json!(l.loadbalancer_id);
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
        let listener = snapshot.listener(&ctx, &id)?;
        Ok(Json(
            json!({ "listener": views::listener(snapshot, listener) }),
        ))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    listener: ListenerUpdate,
}

async fn stats(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |api, snapshot| {
        snapshot.listener(&ctx, &id)?;
        Ok(Json(views::stats(api.traffic.listener(&id))))
    })
    .await
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let resolved = api
        .resolve_tls(&ctx, body.listener.tls_refs(), body.listener.parents())
        .await?;
    let view = api
        .write(move |plane, snapshot| {
            let change = listeners::create(plane, snapshot, &ctx, body.listener, &resolved)?;
            Ok(change.map(|listener| views::listener(snapshot, &listener)))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "listener": view }))))
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let (reader, listener_id) = (ctx.clone(), id.clone());
    let current = api
        .read(move |_, snapshot| Ok(listeners::current(snapshot, &reader, &listener_id)?))
        .await?;
    let resolved = api
        .resolve_tls(&ctx, body.listener.tls_refs(&current), Parents::default())
        .await?;
    let view = api
        .write(move |plane, snapshot| {
            let change = listeners::update(plane, snapshot, &ctx, &id, body.listener, &resolved)?;
            Ok(change.map(|listener| views::listener(snapshot, &listener)))
        })
        .await?;
    Ok(Json(json!({ "listener": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(listeners::delete(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
