//! `/lbaas/loadbalancers`: create (alone or as a full tree), list, show, update, delete (with
//! `cascade`), the status tree and statistics.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use lbaas_control::octavia::loadbalancers::{self, LoadBalancerCreate, LoadBalancerUpdate};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::model::{Common, OperatingStatus, ProvisioningStatus};

use super::body::Body;
use super::caller::Context;
use super::error::{ApiError, ApiResult};
use super::query::ListQuery;
use super::{Api, listing, views};
use crate::edge::Base;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/loadbalancers", get(list).post(create))
        .route("/loadbalancers/{id}", get(show).put(update).delete(delete))
        .route("/loadbalancers/{id}/status", get(status))
        .route("/loadbalancers/{id}/stats", get(stats))
        .route("/loadbalancers/{id}/failover", put(failover))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    loadbalancer: LoadBalancerCreate,
}

async fn list(
    State(api): State<Arc<Api>>,
    ctx: Context,
    base: Base,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let url = format!("{}/v2/lbaas/loadbalancers", base);
    listing(&api, raw, "loadbalancers", url, move |snapshot| {
        Ok(Box::new(
            snapshot
                .loadbalancers
                .iter()
                .filter(move |lb| ctx.can_read(&lb.common.project_id))
                .map(|lb| views::loadbalancer(snapshot, lb)),
        ))
    })
    .await
}

async fn show(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let query = ListQuery::parse(raw.as_deref())?;
    api.read_one(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        if query.selects_fields() {
            let view = query.project(views::loadbalancer(snapshot, lb));
            return Ok(Json(json!({ "loadbalancer": view })).into_response());
        }
        #[derive(serde::Serialize)]
        struct Envelope<'a> {
            loadbalancer: views::LoadBalancerView<'a>,
        }
        let body = serde_json::to_vec(&Envelope {
            loadbalancer: views::LoadBalancerView::of(snapshot, lb),
        })
        .map_err(ApiError::internal)?;
        Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEnvelope {
    loadbalancer: LoadBalancerUpdate,
}

async fn status(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |_, snapshot| {
        let lb = snapshot.loadbalancer(&ctx, &id)?;
        let pool_tree = |pool_id: &str| -> Option<Value> {
            let pool = snapshot.pools.iter().find(|p| p.common.id == pool_id)?;
            let (p, o) = statuses(&pool.common);
            let members: Vec<Value> = snapshot
                .members_of(pool_id)
                .map(|m| {
                    let (p, o) = statuses(&m.common);
                    json!({"id": m.common.id, "name": m.common.name, "address": m.address,
                           "protocol_port": m.protocol_port, "provisioning_status": p, "operating_status": o})
                })
                .collect();
            let mut value = json!({"id": pool.common.id, "name": pool.common.name,
                                   "provisioning_status": p, "operating_status": o, "members": members});
            if let Some(hm) = snapshot.healthmonitor_of(pool_id) {
                let (p, o) = statuses(&hm.common);
                value["health_monitor"] = json!({"id": hm.common.id, "name": hm.common.name, "type": hm.kind,
                                                 "provisioning_status": p, "operating_status": o});
            }
            Some(value)
        };
        let listeners: Vec<Value> = snapshot
            .listeners_of(&id)
            .map(|l| {
                let (p, o) = statuses(&l.common);
                let pools: Vec<Value> = l.default_pool_id.as_deref().and_then(pool_tree).into_iter().collect();
                let policies: Vec<Value> = snapshot
                    .l7policies_of(&l.common.id)
                    .into_iter()
                    .map(|policy| {
                        let rules: Vec<Value> = snapshot
                            .l7rules_of(&policy.common.id)
                            .map(|r| {
                                let (p, o) = statuses(&r.common);
                                json!({"id": r.common.id, "type": r.kind,
                                       "provisioning_status": p, "operating_status": o})
                            })
                            .collect();
                        let (p, o) = statuses(&policy.common);
                        json!({"id": policy.common.id, "name": policy.common.name,
                               "action": policy.action, "provisioning_status": p,
                               "operating_status": o, "rules": rules})
                    })
                    .collect();
                json!({"id": l.common.id, "name": l.common.name, "provisioning_status": p,
                       "operating_status": o, "pools": pools, "l7policies": policies})
            })
            .collect();
        // Octavia's tree: pools appear under the listeners that send traffic to them.
        let (p, o) = statuses(&lb.common);
        Ok(Json(json!({"statuses": {"loadbalancer": {
            "id": lb.common.id, "name": lb.common.name, "provisioning_status": p,
            "operating_status": o, "listeners": listeners,
        }}})))
    })
    .await
}

async fn stats(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    api.read(move |api, snapshot| {
        snapshot.loadbalancer(&ctx, &id)?;
        let listeners = snapshot.listeners_of(&id).map(|l| l.common.id.as_str());
        Ok(Json(views::stats(api.traffic.sum(listeners))))
    })
    .await
}

fn statuses(common: &Common) -> (ProvisioningStatus, OperatingStatus) {
    (common.provisioning_status, common.operating_status)
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    // The tree's parent is the load balancer it makes: whose project it is in is the write's
    // rule.
    let resolved = api
        .resolve_tls(&ctx, body.loadbalancer.tls_refs(), Default::default())
        .await?;
    let (lb, tree) = api
        .write(move |plane, snapshot| {
            Ok(loadbalancers::create(
                plane,
                snapshot,
                &ctx,
                body.loadbalancer,
                &resolved,
            )?)
        })
        .await?;
    let view = views::loadbalancer(&tree, &lb);
    Ok((StatusCode::CREATED, Json(json!({ "loadbalancer": view }))))
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |_, snapshot| {
            let change = loadbalancers::update(snapshot, &ctx, &id, body.loadbalancer)?;
            Ok(change.map(|lb| views::loadbalancer(snapshot, &lb)))
        })
        .await?;
    Ok(Json(json!({ "loadbalancer": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> ApiResult<StatusCode> {
    let cascade = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "cascade" && v.eq_ignore_ascii_case("true"));
    api.write(move |_, snapshot| Ok(loadbalancers::delete(snapshot, &ctx, &id, cascade)?))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /loadbalancers/{id}/failover` (admins): the load balancer's configuration is applied
/// again ([`loadbalancers::failover`]). `202` without a body, as Octavia answers; the load
/// balancer is `PENDING_UPDATE` until the job ends.
async fn failover(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.require_admin()?;
    api.write(move |_, snapshot| Ok(loadbalancers::failover(snapshot, &ctx, &id)?))
        .await?;
    Ok(StatusCode::ACCEPTED)
}
