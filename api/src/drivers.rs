//! Driver versions under `/v2/admin/drivers` (admins only): what operators use to change
//! drivers while the host serves.
//!
//! - `GET /drivers`, `GET /drivers/{name}`: each driver — its active version (SHA-256,
//!   capabilities summary, manifest and grant, quarantine), whether it is draining, and every
//!   uploaded version.
//! - `POST /drivers`: the body is a component (`.wasm`); `X-Driver-Signature` may carry its
//!   signature (hex). It is validated, then stored inactive (`?activate=true` activates it too).
//!   201 with the version.
//! - `POST /drivers/{name}/versions/{version}/activate`, `POST /drivers/{name}/rollback`:
//!   change the active version (checked again first). `{version}` is a SHA-256, a unique
//!   prefix of one (8+ hex digits), or a version string.
//! - `POST /drivers/{name}/versions/{version}/canary` with `{"canary": {"percent": N}}`: N %
//!   of new placements go to that version (which serves what it placed); `POST
//!   /drivers/{name}/promote` makes it active; `rollback` ends it.
//! - `POST /drivers/{name}/drain`, `/undrain`: no new placements / placements again.
//! - `POST /drivers/{name}/versions/{version}/disable`, `/enable`.
//! - `DELETE /drivers/{name}/versions/{version}`: a version no load balancer needs.
//! - `POST /drivers/{name}/release`: lifts a quarantine of the active version.

use lbaas_control::ControlPlane;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;

use crate::model::DriverRecord;
use lbaas_control::drivers::{MAX_COMPONENT_BYTES, Step};
use lbaas_core::views::{DriverAnswer, DriverList, DriverView, UploadAnswer, VersionView};

use super::Api;
use super::caller::Context;
use super::error::{ApiError, ApiResult};

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route(
            "/drivers",
            get(list_drivers)
                .post(upload)
                .layer(DefaultBodyLimit::max(MAX_COMPONENT_BYTES + 1)),
        )
        .route("/drivers/{name}", get(show_driver))
        .route("/drivers/{name}/release", post(release))
        .route("/drivers/{name}/rollback", driver_step(|| Step::Rollback))
        .route("/drivers/{name}/promote", driver_step(|| Step::Promote))
        .route("/drivers/{name}/versions/{version}/canary", post(canary))
        .route("/drivers/{name}/drain", driver_step(|| Step::Drain))
        .route("/drivers/{name}/publisher", axum::routing::put(publisher))
        .route("/drivers/{name}/undrain", driver_step(|| Step::Undrain))
        .route("/drivers/{name}/versions/{version}", delete(delete_version))
        .route(
            "/drivers/{name}/versions/{version}/activate",
            version_step(Step::Activate),
        )
        .route(
            "/drivers/{name}/versions/{version}/disable",
            version_step(Step::Disable),
        )
        .route(
            "/drivers/{name}/versions/{version}/enable",
            version_step(Step::Enable),
        )
}

/// A driver: its record with the active version's details on top.
fn view(api: &ControlPlane, record: &DriverRecord) -> DriverView {
    let active = api.drivers.get(&record.name);
    let quarantine = active.as_ref().and_then(|driver| driver.quarantined());
    DriverView {
        name: record.name.clone(),
        version: active.as_ref().map(|d| d.identity().version.clone()),
        sha256: active.as_ref().map(|d| d.identity().sha256.clone()),
        contract: active.as_ref().map(|d| d.contract().to_string()),
        vendor: active.as_ref().map(|d| d.capabilities().vendor.clone()),
        can_spawn: active.as_ref().map(|d| d.capabilities().can_spawn),
        quarantined: quarantine.is_some(),
        quarantine_reason: quarantine,
        manifest: active
            .as_ref()
            .and_then(|d| d.manifest())
            .and_then(|m| serde_json::to_value(m).ok()),
        grant: active
            .as_ref()
            .and_then(|d| serde_json::to_value(d.grant()).ok()),
        draining: record.draining,
        publisher: record.publisher.clone(),
        canary: record.canary.clone(),
        versions: record
            .versions
            .iter()
            .map(|v| VersionView::of(v, record))
            .collect(),
    }
}

/// The answer of every route that shows one driver.
fn answer(api: &ControlPlane, record: &DriverRecord) -> Json<DriverAnswer> {
    Json(DriverAnswer {
        driver: view(api, record),
    })
}

fn record(api: &ControlPlane, name: &str) -> ApiResult<DriverRecord> {
    api.drivers
        .record(name)
        .ok_or_else(|| ApiError::not_found("Driver", name))
}

/// Who made a change, for the audit log.
pub(crate) fn actor(ctx: &Context) -> String {
    format!("admin API, project {}", ctx.project_id)
}

async fn list_drivers(State(api): State<Arc<Api>>, ctx: Context) -> ApiResult<Json<DriverList>> {
    ctx.require_admin()?;
    let drivers = api
        .drivers
        .records()
        .iter()
        .map(|record| view(&api, record))
        .collect();
    Ok(Json(DriverList { drivers }))
}

async fn show_driver(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
) -> ApiResult<Json<DriverAnswer>> {
    ctx.require_admin()?;
    Ok(answer(&api, &record(&api, &name)?))
}

async fn release(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
) -> ApiResult<Json<DriverAnswer>> {
    ctx.require_admin()?;
    let driver = api
        .drivers
        .get(&name)
        .ok_or_else(|| ApiError::not_found("Driver", &name))?;
    if !driver.release(&format!("project {}", ctx.project_id)) {
        return Err(ApiError::conflict(format!(
            "Driver {name} is not quarantined."
        )));
    }
    Ok(answer(&api, &record(&api, &name)?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UploadQuery {
    #[serde(default)]
    activate: bool,
}

async fn upload(
    State(api): State<Arc<Api>>,
    ctx: Context,
    query: Result<Query<UploadQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<UploadAnswer>)> {
    ctx.require_admin()?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "The request body must be a driver component (.wasm).",
        ));
    }
    let signature = match headers.get("x-driver-signature") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::bad_request("X-Driver-Signature must be hex text."))?
                .to_owned(),
        ),
    };
    let (mut record, version) = api
        .plane
        .upload_driver(body.to_vec(), signature, "upload")
        .await?;
    if query.activate {
        record = api
            .plane
            .driver_step(
                &record.name,
                Step::Activate(version.sha256.clone()),
                &actor(&ctx),
            )
            .await?
            .unwrap_or(record);
    }
    Ok((
        StatusCode::CREATED,
        Json(UploadAnswer {
            version: VersionView::of(&version, &record),
            driver: view(&api, &record),
        }),
    ))
}

/// `POST` of a route that takes one lifecycle step of the driver it names.
fn driver_step(step: fn() -> Step) -> MethodRouter<Arc<Api>> {
    post(
        move |State(api): State<Arc<Api>>, ctx: Context, Path(name): Path<String>| async move {
            ctx.require_admin()?;
            self::step(&api, &ctx, &name, step()).await
        },
    )
}

/// `POST` of a route that takes one lifecycle step with the driver version it names.
fn version_step(step: fn(String) -> Step) -> MethodRouter<Arc<Api>> {
    post(
        move |State(api): State<Arc<Api>>,
              ctx: Context,
              Path((name, version)): Path<(String, String)>| async move {
            ctx.require_admin()?;
            self::step(&api, &ctx, &name, step(version)).await
        },
    )
}

/// Takes one lifecycle step and answers with the driver afterwards.
async fn step(api: &Api, ctx: &Context, name: &str, step: Step) -> ApiResult<Json<DriverAnswer>> {
    let record = api
        .plane
        .driver_step(name, step, &actor(ctx))
        .await?
        .ok_or_else(|| ApiError::not_found("Driver", name))?;
    Ok(answer(api, &record))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryEnvelope {
    canary: CanaryBody,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CanaryBody {
    percent: u8,
}

async fn canary(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((name, version)): Path<(String, String)>,
    body: Result<Json<CanaryEnvelope>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<DriverAnswer>> {
    ctx.require_admin()?;
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "Expected {{\"canary\": {{\"percent\": 1..99}}}}: {}",
            e.body_text()
        ))
    })?;
    step(
        &api,
        &ctx,
        &name,
        Step::Canary(version, body.canary.percent),
    )
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublisherEnvelope {
    /// The id of a trusted key (`lbaasd driver keygen` prints it), or null to free the name.
    publisher: Option<String>,
}

/// Hands a driver name to another publisher key: new versions must be signed by it.
async fn publisher(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(name): Path<String>,
    body: Result<Json<PublisherEnvelope>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<Json<DriverAnswer>> {
    ctx.require_admin()?;
    let Json(body) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "Expected {{\"publisher\": \"KEY-ID\" or null}}: {}",
            e.body_text()
        ))
    })?;
    if let Some(key) = &body.publisher
        && (key.len() != 16 || !key.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(ApiError::bad_request(format!(
            "publisher `{}` is not a key id (16 hex digits)",
            key.escape_debug()
        )));
    }
    step(&api, &ctx, &name, Step::Publisher(body.publisher)).await
}

async fn delete_version(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.plane
        .driver_step(&name, Step::Delete(version), &actor(&ctx))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
