//! `/lbaas/quotas`: admins set a project's quotas (`PUT`), reset them (`DELETE`), and read
//! every project's; a project reads its own. The rules, and the count every create passes, are
//! the control plane's ([`lbaas_control::octavia::quotas`]).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::Quota;
use lbaas_control::octavia::quotas::{self, QuotaKind};

use super::body::{Body, Int};
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::{Api, listing};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/quotas", get(list))
        .route("/quotas/{project_id}", get(show).put(update).delete(reset))
        .route("/quotas/{project_id}/default", get(defaults))
}

/// Octavia's view: both spellings of the two renamed keys.
fn view(quota: &Quota) -> Value {
    let value = |v: Option<i64>| v.unwrap_or(-1);
    json!({
        "project_id": quota.project_id,
        "loadbalancer": value(quota.loadbalancer),
        "load_balancer": value(quota.loadbalancer),
        "listener": value(quota.listener),
        "pool": value(quota.pool),
        "member": value(quota.member),
        "healthmonitor": value(quota.healthmonitor),
        "health_monitor": value(quota.healthmonitor),
        "l7policy": value(quota.l7policy),
        "l7rule": value(quota.l7rule),
    })
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/quotas", base);
    listing(&api, raw, "quotas", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .quotas
                .iter()
                .filter(move |q| ctx.can_read_quotas(&q.project_id))
                .map(move |q| view(&quotas::effective(snapshot, &q.project_id))),
        ))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    if !ctx.can_read_quotas(&project_id) {
        return Err(ApiError::forbidden());
    }
    api.read_one(move |_, snapshot| {
        Ok(Json(
            json!({ "quota": view(&quotas::effective(snapshot, &project_id)) }),
        ))
    })
    .await
}

async fn defaults(ctx: Context, Path(project_id): Path<String>) -> ApiResult<Json<Value>> {
    if !ctx.can_read_quotas(&project_id) {
        return Err(ApiError::forbidden());
    }
    Ok(Json(
        json!({ "quota": view(&quotas::default_quota(&project_id)) }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaEnvelope {
    quota: QuotaBody,
}

/// Octavia's names, with the two deprecated spellings it still takes.
#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuotaBody {
    #[serde_as(as = "Option<Int>")]
    loadbalancer: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    load_balancer: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    listener: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    pool: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    member: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    healthmonitor: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    health_monitor: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    l7policy: Option<i64>,
    #[serde_as(as = "Option<Int>")]
    l7rule: Option<i64>,
}

/// Sets any or all of a project's quotas (admins); `202` with the quotas now in force.
async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(project_id): Path<String>,
    Body(body): Body<QuotaEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_quota_admin()?;
    let body = body.quota;
    use QuotaKind::*;
    let values = [
        (LoadBalancer, "load_balancer", body.load_balancer),
        (LoadBalancer, "loadbalancer", body.loadbalancer),
        (Listener, "listener", body.listener),
        (Pool, "pool", body.pool),
        (Member, "member", body.member),
        (HealthMonitor, "health_monitor", body.health_monitor),
        (HealthMonitor, "healthmonitor", body.healthmonitor),
        (L7Policy, "l7policy", body.l7policy),
        (L7Rule, "l7rule", body.l7rule),
    ];
    let quota = api
        .write(move |_, snapshot| Ok(quotas::set(snapshot, &project_id, &values)?))
        .await?;
    let view = view(&quota);
    Ok((StatusCode::ACCEPTED, Json(json!({ "quota": view }))))
}

/// Resets a project's quotas to the defaults (admins).
async fn reset(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_quota_admin()?;
    api.write(move |_, _| Ok(quotas::reset(&project_id)))
        .await?;
    Ok(StatusCode::ACCEPTED)
}
