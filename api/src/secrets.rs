//! `/v1/secrets`: the host's own key manager, in the shape of Barbican's secrets API, so that a
//! secret's reference is what a listener names exactly as it would name a Barbican secret. A
//! project stores a secret (`POST`, Barbican's body), lists and reads what it stored (never the
//! payload), and deletes it. The rules are the control plane's ([`lbaas_control::secrets`]).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::secrets::NewSecret;
use serde::Deserialize;

use super::Api;
use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use crate::edge::Base;
use crate::model::Secret;
use lbaas_core::views::{SecretList, SecretRef, SecretView};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/v1/secrets", get(list).post(create))
        .route("/v1/secrets/{id}", get(show).delete(delete))
        .route("/v1/secrets/{id}/payload", get(payload))
}

/// A secret's reference: what a listener's `default_tls_container_ref` names.
fn reference(base: &Base, id: &str) -> String {
    format!("{base}/v1/secrets/{id}")
}

/// Barbican's metadata of a secret.
fn view(base: &Base, secret: &Secret) -> SecretView {
    SecretView {
        secret_ref: reference(base, &secret.id),
        name: secret.name.clone(),
        status: "ACTIVE".into(),
        secret_type: secret.secret_type.clone(),
        content_types: [("default".to_owned(), secret.content_type.clone())].into(),
        created: secret.created_at.clone(),
        updated: secret.created_at.clone(),
        expiration: secret.expiration.clone(),
        algorithm: None,
        bit_length: None,
        mode: None,
        creator_id: None,
    }
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    Body(new): Body<NewSecret>,
) -> ApiResult<(StatusCode, Json<SecretRef>)> {
    let secret = api.plane.store_secret(ctx, new).await?;
    Ok((
        StatusCode::CREATED,
        Json(SecretRef {
            secret_ref: reference(&base, &secret.id),
        }),
    ))
}

/// Barbican's paging: `offset` and `limit` (10 by default, at most 100).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
    name: Option<String>,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    query: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<SecretList>> {
    let Query(page) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let mut secrets = api.plane.secrets(ctx).await?;
    if let Some(name) = &page.name {
        secrets.retain(|secret| secret.name.as_deref() == Some(name));
    }
    let total = secrets.len();
    let offset = page.offset.unwrap_or(0);
    let limit = page.limit.unwrap_or(10).clamp(1, 100);
    let shown: Vec<SecretView> = secrets
        .iter()
        .skip(offset)
        .take(limit)
        .map(|secret| view(&base, secret))
        .collect();
    let at = |offset: usize| format!("{base}/v1/secrets?limit={limit}&offset={offset}");
    Ok(Json(SecretList {
        secrets: shown,
        total,
        next: (offset + limit < total).then(|| at(offset + limit)),
        previous: (offset > 0).then(|| at(offset.saturating_sub(limit))),
    }))
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    Path(id): Path<String>,
) -> ApiResult<Json<SecretView>> {
    let secret = api.plane.secret(ctx, id).await?;
    Ok(Json(view(&base, &secret)))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.plane.delete_secret(ctx, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Barbican gives a payload back to its owner; this key store gives it to nobody.
async fn payload(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api.plane.secret(ctx, id).await?;
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        "This key store does not give payloads back: only the host reads them, to configure a \
         load balancer's devices.",
    ))
}
