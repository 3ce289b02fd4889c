//! `/lbaas/pools`: one backend of a load balancer: its algorithm, persistence, members and
//! health monitor.

use lbaas_control::ControlPlane;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use crate::model::{
    LbAlgorithm, LoadBalancer, PersistenceType, Pool, Protocol, ProvisioningStatus,
    SessionPersistence,
};
use crate::store::Batch;

use super::auth::Context;
use super::body::Body;
use super::error::{ApiError, ApiResult};
use super::healthmonitors::{self, HealthMonitorCreate};
use super::loadbalancers::{child_change, delete_child, ensure_mutable, new_common, touch_parent};
use super::members::{self, MemberCreate};
use super::{Api, Change, listing, validate, views};
use crate::edge::Base;
use lbaas_control::snapshot::Snapshot;
use lbaas_core::ids::now;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/pools", get(list).post(create))
        .route("/pools/{id}", get(show).put(update).delete(delete))
}

/// Tells a field given as `null` (`Some(None)`) from a field left out (`None`).
pub fn explicit<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEnvelope {
    pool: PoolCreate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolCreate {
    loadbalancer_id: Option<String>,
    listener_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    protocol: Protocol,
    lb_algorithm: LbAlgorithm,
    session_persistence: Option<SessionPersistence>,
    tags: Option<Vec<String>>,
    tls_enabled: Option<bool>,
    tls_container_ref: Option<serde_json::Value>,
    ca_tls_container_ref: Option<serde_json::Value>,
    crl_container_ref: Option<serde_json::Value>,
    tls_ciphers: Option<serde_json::Value>,
    tls_versions: Option<serde_json::Value>,
    alpn_protocols: Option<serde_json::Value>,
    /// Full-tree creation only.
    members: Option<Vec<MemberCreate>>,
    /// Full-tree creation only.
    healthmonitor: Option<HealthMonitorCreate>,
}

fn persistence(value: Option<SessionPersistence>) -> ApiResult<Option<SessionPersistence>> {
    let Some(value) = value else { return Ok(None) };
    match (value.kind, value.cookie_name.as_deref()) {
        (PersistenceType::AppCookie, None) => {
            return Err(ApiError::bad_request(
                "session_persistence APP_COOKIE needs a cookie_name.",
            ));
        }
        (PersistenceType::AppCookie, Some(name)) => {
            let token = !name.is_empty()
                && name.len() <= 255
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return Err(ApiError::bad_request(format!(
                    "cookie_name `{}` is not a valid cookie name.",
                    name.escape_debug()
                )));
            }
        }
        (_, Some(_)) => {
            return Err(ApiError::bad_request(
                "cookie_name is only valid with APP_COOKIE persistence.",
            ));
        }
        (_, None) => {}
    }
    Ok(Some(value))
}

/// A pool's TLS options towards its members (Octavia v2.8 to v2.24), which no driver of this
/// host implements yet: accepted, and answered 501 naming the first one set.
macro_rules! tls_options {
    ($body:expr) => {
        [
            (
                "tls_enabled",
                &$body.tls_enabled.map(serde_json::Value::Bool),
            ),
            ("tls_container_ref", &$body.tls_container_ref),
            ("ca_tls_container_ref", &$body.ca_tls_container_ref),
            ("crl_container_ref", &$body.crl_container_ref),
            ("tls_ciphers", &$body.tls_ciphers),
            ("tls_versions", &$body.tls_versions),
            ("alpn_protocols", &$body.alpn_protocols),
        ]
    };
}

fn build(api: &ControlPlane, lb: &LoadBalancer, body: &mut PoolCreate) -> ApiResult<Pool> {
    validate::unsupported_options(&lb.provider, &tls_options!(body))?;
    validate::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &lb.common.project_id,
    )?;
    validate::provider_supports(
        api,
        &lb.provider,
        Some(body.protocol),
        Some(body.lb_algorithm),
    )?;
    let session_persistence = persistence(body.session_persistence.take())?;
    if session_persistence
        .as_ref()
        .is_some_and(|p| p.kind != PersistenceType::SourceIp)
        && body.protocol != Protocol::Http
    {
        return Err(ApiError::bad_request(
            "Cookie persistence needs an HTTP pool.",
        ));
    }
    Ok(Pool {
        common: new_common(
            &lb.common.project_id,
            body.name.take(),
            body.description.take(),
            body.admin_state_up,
            body.tags.take(),
        )?,
        loadbalancer_id: lb.common.id.clone(),
        protocol: body.protocol,
        lb_algorithm: body.lb_algorithm,
        session_persistence,
        healthmonitor_id: None,
    })
}

/// Full-tree creation: adds the pool, its members and monitor to `tree`; returns its id.
pub fn build_tree(
    api: &ControlPlane,
    tree: &mut Snapshot,
    lb: &LoadBalancer,
    mut body: PoolCreate,
    listener: Option<Protocol>,
) -> ApiResult<String> {
    if body.loadbalancer_id.is_some() || body.listener_id.is_some() {
        return Err(ApiError::bad_request(
            "In a full load balancer tree, pools take no loadbalancer_id or listener_id.",
        ));
    }
    if let Some(listener) = listener
        && !validate::listener_pool_compatible(listener, body.protocol)
    {
        return Err(ApiError::bad_request(format!(
            "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
            validate::protocol_name(body.protocol),
            validate::protocol_name(listener)
        )));
    }
    let mut pool = build(api, lb, &mut body)?;
    for member in body.members.unwrap_or_default() {
        let member = members::build(&pool, tree.members_of(&pool.common.id), member)?;
        tree.members.push(member);
    }
    if let Some(hm) = body.healthmonitor {
        let hm = healthmonitors::build(&lb.provider, &pool, hm)?;
        pool.healthmonitor_id = Some(hm.common.id.clone());
        tree.healthmonitors.push(hm);
    }
    let id = pool.common.id.clone();
    tree.pools.push(pool);
    Ok(id)
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let view = api
        .write(move |api, snapshot| {
            let mut body = body.pool;
            if body.members.is_some() || body.healthmonitor.is_some() {
                return Err(ApiError::bad_request(
                    "members and healthmonitor are only accepted in a full load balancer tree.",
                ));
            }
            let mut batch = Batch::new();
            let listener = match body.listener_id.take() {
                Some(listener_id) => {
                    let listener = validate::referenced(
                        snapshot.listener(&ctx, &listener_id),
                        "Listener",
                        &listener_id,
                    )?;
                    if listener.default_pool_id.is_some() {
                        return Err(ApiError::conflict(format!("Listener {listener_id} already has a default pool.")));
                    }
                    if !validate::listener_pool_compatible(listener.protocol, body.protocol) {
                        return Err(ApiError::bad_request(format!(
                            "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
                            validate::protocol_name(body.protocol),
                            validate::protocol_name(listener.protocol)
                        )));
                    }
                    Some(listener.clone())
                }
                None => None,
            };
            let lb_id = match (body.loadbalancer_id.take(), &listener) {
                (Some(lb_id), Some(l)) if lb_id != l.loadbalancer_id => {
                    return Err(ApiError::bad_request("The listener belongs to another load balancer."));
                }
                (Some(lb_id), _) => lb_id,
                (None, Some(l)) => l.loadbalancer_id.clone(),
                (None, None) => return Err(ApiError::bad_request("One of loadbalancer_id or listener_id is required.")),
            };
            let lb = validate::referenced(
                snapshot.loadbalancer(&ctx, &lb_id),
                "Load Balancer",
                &lb_id,
            )?;
            if !ctx.can_write(&lb.common.project_id) {
                return Err(ApiError::forbidden());
            }
            ensure_mutable(lb)?;
            let pool = build(api, lb, &mut body)?;
            touch_parent(snapshot, &lb_id, &mut batch)?;
            let listener_id = listener.as_ref().map(|l| l.common.id.clone());
            if let Some(mut listener) = listener {
                listener.default_pool_id = Some(pool.common.id.clone());
                listener.common.provisioning_status = ProvisioningStatus::PendingUpdate;
                batch.put(&listener);
            }
            batch.put(&pool);
            let mut view = views::pool(snapshot, &pool);
            if let Some(listener_id) = listener_id {
                view["listeners"] = json!([{ "id": listener_id }]);
            }
            super::quotas::enforce(snapshot, &pool.common.project_id, &batch)?;
            Ok(Change::new(batch, view).with_job(&lb_id))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "pool": view }))))
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolUpdate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    lb_algorithm: Option<LbAlgorithm>,
    #[serde(default, deserialize_with = "explicit")]
    session_persistence: Option<Option<SessionPersistence>>,
    tags: Option<Vec<String>>,
    tls_enabled: Option<bool>,
    tls_container_ref: Option<serde_json::Value>,
    ca_tls_container_ref: Option<serde_json::Value>,
    crl_container_ref: Option<serde_json::Value>,
    tls_ciphers: Option<serde_json::Value>,
    tls_versions: Option<serde_json::Value>,
    alpn_protocols: Option<serde_json::Value>,
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |api, snapshot| {
            let current = snapshot.pool(&ctx, &id)?;
            if !ctx.can_write(&current.common.project_id) {
                return Err(ApiError::forbidden());
            }
            let body = body.pool;
            let lb = snapshot.parent(&current.loadbalancer_id)?;
            validate::unsupported_options(&lb.provider, &tls_options!(body))?;
            let mut pool = current.clone();
            if let Some(name) = body.name {
                pool.common.name = validate::text("name", Some(name), 255)?;
            }
            if let Some(description) = body.description {
                pool.common.description = validate::text("description", Some(description), 255)?;
            }
            if let Some(up) = body.admin_state_up {
                pool.common.admin_state_up = up;
            }
            if let Some(algorithm) = body.lb_algorithm {
                validate::provider_supports(api, &lb.provider, None, Some(algorithm))?;
                pool.lb_algorithm = algorithm;
            }
            if let Some(persistence) = body.session_persistence {
                pool.session_persistence = self::persistence(persistence)?;
            }
            if let Some(tags) = body.tags {
                pool.common.tags = tags;
            }
            pool.common.provisioning_status = ProvisioningStatus::PendingUpdate;
            pool.common.updated_at = Some(now());
            let lb_id = pool.loadbalancer_id.clone();
            child_change(snapshot, &lb_id, &pool, views::pool(snapshot, &pool))
        })
        .await?;
    Ok(Json(json!({ "pool": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_child(&api, ctx, id, Snapshot::pool).await
}
