//! Octavia's quotas: how many load balancers, listeners, pools, members and health monitors a
//! project may have. Admins set them (`PUT`), reset them (`DELETE`), and read every project's;
//! a project reads its own. Every create counts what it adds against them and is refused with
//! `403` once a quota is met.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Common, Quota};
use crate::store::{Batch, Record, Write};
use lbaas_control::{Snapshot, Table};

use super::auth::Context;
use super::body::{Body, Int};
use super::error::{ApiError, ApiResult};
use super::{Api, Change, listing};
use crate::edge::Base;

/// Octavia's bounds of a quota value.
const MIN_QUOTA: i64 = -1;
const MAX_QUOTA: i64 = 2_000_000_000;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/quotas", get(list))
        .route("/quotas/{project_id}", get(show).put(update).delete(reset))
        .route("/quotas/{project_id}/default", get(defaults))
}

/// What the host allows a project without a quota of its own: no limit.
fn default_quota(project_id: &str) -> Quota {
    Quota {
        project_id: project_id.to_owned(),
        loadbalancer: Some(-1),
        listener: Some(-1),
        pool: Some(-1),
        member: Some(-1),
        healthmonitor: Some(-1),
        l7policy: Some(-1),
        l7rule: Some(-1),
    }
}

/// A project's quotas in force: its own where set, the defaults elsewhere.
fn effective(snapshot: &Snapshot, project_id: &str) -> Quota {
    merged(snapshot.quotas.find(project_id), project_id)
}

/// `own` quotas where set, the defaults elsewhere.
fn merged(own: Option<&Quota>, project_id: &str) -> Quota {
    let defaults = default_quota(project_id);
    let Some(own) = own else {
        return defaults;
    };
    Quota {
        project_id: project_id.to_owned(),
        loadbalancer: own.loadbalancer.or(defaults.loadbalancer),
        listener: own.listener.or(defaults.listener),
        pool: own.pool.or(defaults.pool),
        member: own.member.or(defaults.member),
        healthmonitor: own.healthmonitor.or(defaults.healthmonitor),
        l7policy: own.l7policy.or(defaults.l7policy),
        l7rule: own.l7rule.or(defaults.l7rule),
    }
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

/// One counted kind: Octavia's name for it in the refusal, its quota, and how many objects
/// of it the project would have after the batch (`None` when the batch adds none).
struct Counted {
    name: &'static str,
    limit: fn(&Quota) -> Option<i64>,
    demand: fn(&Snapshot, &str, &Batch) -> Option<usize>,
}

const COUNTED: [Counted; 7] = [
    Counted {
        name: "Load Balancer",
        limit: |q| q.loadbalancer,
        demand: |s, p, b| demand(&s.loadbalancers, |r| &r.common, p, b),
    },
    Counted {
        name: "Listener",
        limit: |q| q.listener,
        demand: |s, p, b| demand(&s.listeners, |r| &r.common, p, b),
    },
    Counted {
        name: "Pool",
        limit: |q| q.pool,
        demand: |s, p, b| demand(&s.pools, |r| &r.common, p, b),
    },
    Counted {
        name: "Member",
        limit: |q| q.member,
        demand: |s, p, b| demand(&s.members, |r| &r.common, p, b),
    },
    Counted {
        name: "Health Monitor",
        limit: |q| q.healthmonitor,
        demand: |s, p, b| demand(&s.healthmonitors, |r| &r.common, p, b),
    },
    Counted {
        name: "L7 Policy",
        limit: |q| q.l7policy,
        demand: |s, p, b| demand(&s.l7policies, |r| &r.common, p, b),
    },
    Counted {
        name: "L7 Rule",
        limit: |q| q.l7rule,
        demand: |s, p, b| demand(&s.l7rules, |r| &r.common, p, b),
    },
];

/// The records of `table`'s kind that `batch` adds (ids not in the table yet) plus those
/// `project_id` has; `None`, without counting them, when the batch adds none.
fn demand<T: Record>(
    table: &Table<T>,
    common: fn(&T) -> &Common,
    project_id: &str,
    batch: &Batch,
) -> Option<usize> {
    let added = batch
        .writes()
        .iter()
        .filter(|w| matches!(w, Write::Put { kind, id, .. } if *kind == T::KIND && table.find(id).is_none()))
        .count();
    (added > 0).then(|| {
        added
            + table
                .iter()
                .filter(|r| common(r).project_id == project_id)
                .count()
    })
}

/// Refuses a write that would take `project_id` past a quota: every object `batch` creates
/// (a record not in the snapshot yet) counts. Octavia's `403` and message.
pub fn enforce(snapshot: &Snapshot, project_id: &str, batch: &Batch) -> ApiResult<()> {
    let quota = effective(snapshot, project_id);
    for counted in &COUNTED {
        let Some(limit) = (counted.limit)(&quota).filter(|l| *l >= 0) else {
            continue;
        };
        let Some(total) = (counted.demand)(snapshot, project_id, batch) else {
            continue;
        };
        if total > usize::try_from(limit).unwrap_or(usize::MAX) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("Quota has been met for resources: {}", counted.name),
            ));
        }
    }
    Ok(())
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
                .filter(move |q| ctx.can_read(&q.project_id))
                .map(move |q| view(&effective(snapshot, &q.project_id))),
        ))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(project_id): Path<String>,
) -> ApiResult<Json<Value>> {
    if !ctx.can_read(&project_id) {
        return Err(ApiError::forbidden());
    }
    api.read_one(move |_, snapshot| {
        Ok(Json(
            json!({ "quota": view(&effective(snapshot, &project_id)) }),
        ))
    })
    .await
}

async fn defaults(ctx: Context, Path(project_id): Path<String>) -> ApiResult<Json<Value>> {
    if !ctx.can_read(&project_id) {
        return Err(ApiError::forbidden());
    }
    Ok(Json(json!({ "quota": view(&default_quota(&project_id)) })))
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

/// A quota value in Octavia's bounds, or a 400 naming it.
fn bounded(field: &str, value: Option<i64>) -> ApiResult<Option<i64>> {
    match value {
        Some(v) if !(MIN_QUOTA..=MAX_QUOTA).contains(&v) => Err(ApiError::bad_request(format!(
            "Invalid input for field/attribute quota.{field}: {v} is out of range \
             {MIN_QUOTA}-{MAX_QUOTA}"
        ))),
        other => Ok(other),
    }
}

/// Sets any or all of a project's quotas (admins); `202` with the quotas now in force.
async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(project_id): Path<String>,
    Body(body): Body<QuotaEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_admin()?;
    let body = body.quota;
    let view = api
        .write(move |_, snapshot| {
            let mut quota = snapshot
                .quotas
                .find(&project_id)
                .cloned()
                .unwrap_or_else(|| Quota {
                    project_id: project_id.clone(),
                    ..Quota::default()
                });
            let set = |slot: &mut Option<i64>, field: &str, value: Option<i64>| {
                if let Some(value) = bounded(field, value)? {
                    *slot = Some(value);
                }
                Ok::<_, ApiError>(())
            };
            set(&mut quota.loadbalancer, "load_balancer", body.load_balancer)?;
            set(&mut quota.loadbalancer, "loadbalancer", body.loadbalancer)?;
            set(&mut quota.listener, "listener", body.listener)?;
            set(&mut quota.pool, "pool", body.pool)?;
            set(&mut quota.member, "member", body.member)?;
            set(
                &mut quota.healthmonitor,
                "health_monitor",
                body.health_monitor,
            )?;
            set(
                &mut quota.healthmonitor,
                "healthmonitor",
                body.healthmonitor,
            )?;
            set(&mut quota.l7policy, "l7policy", body.l7policy)?;
            set(&mut quota.l7rule, "l7rule", body.l7rule)?;
            let mut batch = Batch::new();
            batch.put(&quota);
            Ok(Change::new(batch, view(&merged(Some(&quota), &project_id))))
        })
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "quota": view }))))
}

/// Resets a project's quotas to the defaults (admins).
async fn reset(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(project_id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, _| {
        let mut batch = Batch::new();
        batch.delete::<Quota>(&project_id);
        Ok(Change::new(batch, ()))
    })
    .await?;
    Ok(StatusCode::ACCEPTED)
}
