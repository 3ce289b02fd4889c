//! `/lbaas/healthmonitors`: how a pool checks its members; at most one per pool.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{HealthMonitor, MonitorType, Pool, ProvisioningStatus};
use crate::store::Batch;

use super::auth::Context;
use super::body::Body;
use super::body::Int;
use super::error::{ApiError, ApiResult};
use super::loadbalancers::{child_change, delete_child, ensure_mutable, new_common, touch_parent};
use super::{Api, Change, listing, validate, views};
use crate::edge::Base;
use lbaas_control::snapshot::Snapshot;
use lbaas_core::ids::now;

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

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthMonitorCreate {
    pool_id: Option<String>,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: MonitorType,
    #[serde_as(as = "Int")]
    delay: i64,
    #[serde_as(as = "Int")]
    timeout: i64,
    #[serde_as(as = "Int")]
    max_retries: i64,
    #[serde_as(as = "Option<Int>")]
    max_retries_down: Option<i64>,
    http_method: Option<String>,
    url_path: Option<String>,
    expected_codes: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    tags: Option<Vec<String>>,
    http_version: Option<serde_json::Value>,
    domain_name: Option<serde_json::Value>,
}

/// The numbers of a monitor, checked as Octavia checks them.
struct Timing {
    delay: u32,
    timeout: u32,
    max_retries: u32,
    max_retries_down: u32,
}

fn timing(delay: i64, timeout: i64, max_retries: i64, max_retries_down: i64) -> ApiResult<Timing> {
    let range = |field: &str, value: i64, low: i64, high: i64| {
        if (low..=high).contains(&value) {
            Ok(value as u32)
        } else {
            Err(ApiError::bad_request(format!(
                "{field} {value} is out of range {low}-{high}"
            )))
        }
    };
    let timing = Timing {
        delay: range("delay", delay, 0, 2_147_483_647)?,
        timeout: range("timeout", timeout, 0, 2_147_483_647)?,
        max_retries: range("max_retries", max_retries, 1, 10)?,
        max_retries_down: range("max_retries_down", max_retries_down, 1, 10)?,
    };
    // Octavia accepts a timeout longer than the delay (a check may outlast the interval).
    Ok(timing)
}

fn http_fields(
    kind: MonitorType,
    method: Option<String>,
    path: Option<String>,
    codes: Option<String>,
) -> ApiResult<(Option<String>, Option<String>, Option<String>)> {
    if !matches!(kind, MonitorType::Http | MonitorType::Https) {
        if method.is_some() || path.is_some() || codes.is_some() {
            return Err(ApiError::bad_request(
                "http_method, url_path and expected_codes only apply to HTTP and HTTPS monitors",
            ));
        }
        return Ok((None, None, None));
    }
    let method = method.unwrap_or_else(|| "GET".into());
    const METHODS: [&str; 9] = [
        "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
    ];
    if !METHODS.contains(&method.as_str()) {
        return Err(ApiError::bad_request(format!(
            "http_method `{method}` is not an HTTP method"
        )));
    }
    let path = path.unwrap_or_else(|| "/".into());
    if !path.starts_with('/') || !path.bytes().all(|b| b.is_ascii_graphic()) || path.len() > 2048 {
        return Err(ApiError::bad_request(format!(
            "url_path `{}` must start with '/' and hold no spaces or control characters",
            path.escape_debug()
        )));
    }
    let codes = codes.unwrap_or_else(|| "200".into());
    let valid_code =
        |c: &str| c.len() == 3 && c.parse::<u16>().is_ok_and(|n| (100..=599).contains(&n));
    let valid = codes.split(',').all(|part| match part.split_once('-') {
        Some((low, high)) => valid_code(low) && valid_code(high) && low <= high,
        None => valid_code(part),
    });
    if !valid {
        return Err(ApiError::bad_request(format!(
            "expected_codes `{codes}` must look like 200, 200,202 or 200-204"
        )));
    }
    Ok((Some(method), Some(path), Some(codes)))
}

/// Checks and builds the monitor of `pool`, of a load balancer of `provider`.
pub fn build(provider: &str, pool: &Pool, body: HealthMonitorCreate) -> ApiResult<HealthMonitor> {
    // The Host header of HTTP checks (Octavia v2.10): no driver of this host sends one yet.
    validate::unsupported_options(
        provider,
        &[
            ("http_version", &body.http_version),
            ("domain_name", &body.domain_name),
        ],
    )?;
    validate::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &pool.common.project_id,
    )?;
    if !validate::monitor_compatible(pool.protocol, body.kind) {
        return Err(ApiError::bad_request(format!(
            "The health monitor type is not valid for a {} pool.",
            validate::protocol_name(pool.protocol)
        )));
    }
    let timing = timing(
        body.delay,
        body.timeout,
        body.max_retries,
        body.max_retries_down.unwrap_or(3),
    )?;
    let (http_method, url_path, expected_codes) = http_fields(
        body.kind,
        body.http_method,
        body.url_path,
        body.expected_codes,
    )?;
    Ok(HealthMonitor {
        common: new_common(
            &pool.common.project_id,
            body.name,
            None,
            body.admin_state_up,
            body.tags,
        )?,
        loadbalancer_id: pool.loadbalancer_id.clone(),
        pool_id: pool.common.id.clone(),
        kind: body.kind,
        delay: timing.delay,
        timeout: timing.timeout,
        max_retries: timing.max_retries,
        max_retries_down: timing.max_retries_down,
        http_method,
        url_path,
        expected_codes,
    })
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let view = api
        .write(move |_, snapshot| {
            let mut body = body.healthmonitor;
            let pool_id = body
                .pool_id
                .take()
                .ok_or_else(|| ApiError::bad_request("pool_id is required."))?;
            let pool = validate::referenced(snapshot.pool(&ctx, &pool_id), "Pool", &pool_id)?;
            if !ctx.can_write(&pool.common.project_id) {
                return Err(ApiError::forbidden());
            }
            ensure_mutable(snapshot.parent(&pool.loadbalancer_id)?)?;
            if snapshot.healthmonitor_of(&pool_id).is_some() {
                return Err(ApiError::conflict(format!(
                    "Pool {pool_id} already has a health monitor."
                )));
            }
            let provider = &snapshot.parent(&pool.loadbalancer_id)?.provider;
            let hm = build(provider, pool, body)?;
            let mut pool = pool.clone();
            pool.healthmonitor_id = Some(hm.common.id.clone());
            let mut batch = Batch::new();
            touch_parent(snapshot, &pool.loadbalancer_id, &mut batch)?;
            batch.put(&hm).put(&pool);
            let lb = pool.loadbalancer_id.clone();
            super::quotas::enforce(snapshot, &hm.common.project_id, &batch)?;
            Ok(Change::new(batch, views::healthmonitor(&hm)).with_job(&lb))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "healthmonitor": view }))))
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

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthMonitorUpdate {
    name: Option<String>,
    #[serde_as(as = "Option<Int>")]
    delay: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    timeout: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    max_retries: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    max_retries_down: Option<i64>,
    http_method: Option<String>,
    url_path: Option<String>,
    expected_codes: Option<String>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
    http_version: Option<serde_json::Value>,
    domain_name: Option<serde_json::Value>,
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |_, snapshot| {
            let current = snapshot.healthmonitor(&ctx, &id)?;
            if !ctx.can_write(&current.common.project_id) {
                return Err(ApiError::forbidden());
            }
            let body = body.healthmonitor;
            validate::unsupported_options(
                &snapshot.parent(&current.loadbalancer_id)?.provider,
                &[
                    ("http_version", &body.http_version),
                    ("domain_name", &body.domain_name),
                ],
            )?;
            let mut hm = current.clone();
            let t = timing(
                body.delay.unwrap_or(i64::from(hm.delay)),
                body.timeout.unwrap_or(i64::from(hm.timeout)),
                body.max_retries.unwrap_or(i64::from(hm.max_retries)),
                body.max_retries_down
                    .unwrap_or(i64::from(hm.max_retries_down)),
            )?;
            (hm.delay, hm.timeout, hm.max_retries, hm.max_retries_down) =
                (t.delay, t.timeout, t.max_retries, t.max_retries_down);
            if body.http_method.is_some()
                || body.url_path.is_some()
                || body.expected_codes.is_some()
            {
                let (method, path, codes) = http_fields(
                    hm.kind,
                    body.http_method.or(hm.http_method.clone()),
                    body.url_path.or(hm.url_path.clone()),
                    body.expected_codes.or(hm.expected_codes.clone()),
                )?;
                (hm.http_method, hm.url_path, hm.expected_codes) = (method, path, codes);
            }
            if let Some(name) = body.name {
                hm.common.name = validate::text("name", Some(name), 255)?;
            }
            if let Some(up) = body.admin_state_up {
                hm.common.admin_state_up = up;
            }
            if let Some(tags) = body.tags {
                hm.common.tags = tags;
            }
            hm.common.provisioning_status = ProvisioningStatus::PendingUpdate;
            hm.common.updated_at = Some(now());
            let lb_id = hm.loadbalancer_id.clone();
            child_change(snapshot, &lb_id, &hm, views::healthmonitor(&hm))
        })
        .await?;
    Ok(Json(json!({ "healthmonitor": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_child(&api, ctx, id, Snapshot::healthmonitor).await
}
