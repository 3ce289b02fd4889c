//! `/lbaas/pools/{pool_id}/members`: the servers behind a pool, one by one or all at once
//! (the batch `PUT` replaces the whole set).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::octavia::members::{self, MemberCreate, MemberUpdate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::{Api, listing, views};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/pools/{pool_id}/members",
            get(list).post(create).put(batch_update),
        )
        .route(
            "/pools/{pool_id}/members/{id}",
            get(show).put(update).delete(delete),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    member: MemberCreate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchEnvelope {
    members: Vec<MemberCreate>,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    Path(pool_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/pools/{pool_id}/members", base);
    listing(&api, raw, "members", url, move |snapshot| {
        snapshot.pool(&ctx, &pool_id)?;
        let members: Vec<Value> = snapshot.members_of(&pool_id).map(views::member).collect();
        Ok(Box::new(members.into_iter()))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    api.read_one(move |_, snapshot| {
        let member = snapshot.member(&ctx, &pool_id, &id)?;
        Ok(Json(json!({ "member": views::member(member) })))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    member: MemberUpdate,
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(pool_id): Path<String>,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let member = api
        .write(move |plane, snapshot| {
            Ok(members::create(
                plane,
                snapshot,
                &ctx,
                &pool_id,
                body.member,
            )?)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "member": views::member(&member) })),
    ))
}

/// `PUT /pools/{id}/members`: the pool's members become the list given (members matched by
/// address and port are updated, the others created); those not in it are deleted, unless
/// `?additive_only=true` (Octavia v2.11) keeps them.
async fn batch_update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(pool_id): Path<String>,
    RawQuery(raw): RawQuery,
    Body(body): Body<BatchEnvelope>,
) -> ApiResult<StatusCode> {
    ctx.require_member()?;
    let additive = additive_only(raw.as_deref())?;
    api.write(move |plane, snapshot| {
        Ok(members::replace(
            plane,
            snapshot,
            &ctx,
            &pool_id,
            body.members,
            additive,
        )?)
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}

/// The `additive_only` flag of a batch update's query (`true`/`false`, any case; absent: false).
fn additive_only(query: Option<&str>) -> ApiResult<bool> {
    let value = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "additive_only")
        .map(|(_, value)| value.to_ascii_lowercase());
    match value.as_deref() {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid input for additive_only: '{}' is not a boolean.",
            other.escape_debug()
        ))),
    }
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let member = api
        .write(move |plane, snapshot| {
            Ok(members::update(
                plane,
                snapshot,
                &ctx,
                &pool_id,
                &id,
                body.member,
            )?)
        })
        .await?;
    Ok(Json(json!({ "member": views::member(&member) })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((pool_id, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    api.write(move |_, snapshot| Ok(members::delete(snapshot, &ctx, &pool_id, &id)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
