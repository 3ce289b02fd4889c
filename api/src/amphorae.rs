//! `/v2/octavia/amphorae`: Octavia's admin API for the virtual machines of its own provider.
//! This host has no amphorae (its devices are under `/v2/admin/devices`), so the list is empty
//! and every amphora is not found: what clients of API v2.4, v2.7 and v2.21 expect of a
//! deployment without that provider.

use std::sync::Arc;

use axum::extract::Path;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::Api;
use super::caller::Context;
use super::error::{ApiError, ApiResult};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/amphorae", get(list))
        .route("/amphorae/{id}", get(one).delete(one))
        .route("/amphorae/{id}/stats", get(one))
        .route("/amphorae/{id}/config", put(one))
        .route("/amphorae/{id}/failover", put(one))
}

async fn list(ctx: Context) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    Ok(Json(json!({ "amphorae": [], "amphorae_links": [] })))
}

async fn one(ctx: Context, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    Err(ApiError::not_found("Amphora", &id))
}
