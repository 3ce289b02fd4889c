//! `/lbaas/listeners`: one frontend of a load balancer, on one protocol and port.

use lbaas_control::ControlPlane;
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::model::{Listener, LoadBalancer, Protocol, ProvisioningStatus};
use crate::store::Batch;

use super::auth::Context;
use super::body::Body;
use super::body::Int;
use super::error::{ApiError, ApiResult};
use super::loadbalancers::{child_change, delete_child, ensure_mutable, new_common, touch_parent};
use super::pools::{self, PoolCreate};
use super::{Api, Change, listing, validate, views};
use crate::edge::Base;
use lbaas_control::snapshot::Snapshot;
use lbaas_core::ids::now;

/// Longest timeout Octavia accepts, in milliseconds (one year).
const MAX_TIMEOUT_MS: u32 = 31_536_000;

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

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerCreate {
    loadbalancer_id: Option<String>,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    project_id: Option<String>,
    tenant_id: Option<String>,
    /// Read as text: Octavia's PROMETHEUS is a protocol no driver here serves (501), not an
    /// unknown one (400).
    protocol: String,
    #[serde_as(as = "Int")]
    protocol_port: i64,
    #[serde_as(as = "Option<Int>")]
    connection_limit: Option<i64>,
    default_pool_id: Option<String>,
    /// Full-tree creation only: a new pool for this listener.
    default_pool: Option<PoolCreate>,
    #[serde_as(as = "Option<Int>")]
    timeout_client_data: Option<u32>,
    #[serde_as(as = "Option<Int>")]
    timeout_member_connect: Option<u32>,
    #[serde_as(as = "Option<Int>")]
    timeout_member_data: Option<u32>,
    #[serde_as(as = "Option<Int>")]
    timeout_tcp_inspect: Option<u32>,
    allowed_cidrs: Option<Vec<String>>,
    tags: Option<Vec<String>>,
    insert_headers: Option<Map<String, Value>>,
    default_tls_container_ref: Option<Value>,
    sni_container_refs: Option<Value>,
    l7policies: Option<Vec<Value>>,
    client_ca_tls_container_ref: Option<Value>,
    client_authentication: Option<Value>,
    client_crl_container_ref: Option<Value>,
    tls_ciphers: Option<Value>,
    tls_versions: Option<Value>,
    alpn_protocols: Option<Value>,
    hsts_max_age: Option<Value>,
    hsts_include_subdomains: Option<Value>,
    hsts_preload: Option<Value>,
}

/// A listener's TLS options (certificates, client authentication, ciphers and versions, ALPN,
/// HSTS: Octavia v2.8 to v2.27), which no driver of this host implements yet: accepted, and
/// answered 501 naming the first one set. Both the create and the update body have them.
macro_rules! tls_options {
    ($body:expr) => {
        [
            (
                "default_tls_container_ref",
                &$body.default_tls_container_ref,
            ),
            ("sni_container_refs", &$body.sni_container_refs),
            (
                "client_ca_tls_container_ref",
                &$body.client_ca_tls_container_ref,
            ),
            ("client_authentication", &$body.client_authentication),
            ("client_crl_container_ref", &$body.client_crl_container_ref),
            ("tls_ciphers", &$body.tls_ciphers),
            ("tls_versions", &$body.tls_versions),
            ("alpn_protocols", &$body.alpn_protocols),
            ("hsts_max_age", &$body.hsts_max_age),
            ("hsts_include_subdomains", &$body.hsts_include_subdomains),
            ("hsts_preload", &$body.hsts_preload),
        ]
    };
}

fn timeout(field: &str, value: Option<u32>, default: u32) -> ApiResult<u32> {
    let value = value.unwrap_or(default);
    if value > MAX_TIMEOUT_MS {
        return Err(ApiError::bad_request(format!(
            "{field} {value} is out of range 0-{MAX_TIMEOUT_MS}"
        )));
    }
    Ok(value)
}

fn connection_limit(value: Option<i64>) -> ApiResult<i64> {
    match value.unwrap_or(-1) {
        n if n == -1 || (1..=i64::from(u32::MAX)).contains(&n) => Ok(n),
        n => Err(ApiError::bad_request(format!(
            "connection_limit {n} must be -1 (unlimited) or a positive number"
        ))),
    }
}

/// The allowed CIDRs, each of the VIP's IP version (traffic to the VIP comes from that
/// family only), as Octavia checks them.
fn cidrs(values: Option<Vec<String>>, vip_address: &str) -> ApiResult<Vec<String>> {
    let values = values.unwrap_or_default();
    let vip = vip_address.parse::<std::net::IpAddr>().ok();
    for value in &values {
        let cidr = validate::cidr("allowed_cidrs", value)?;
        if let Some(vip) = vip
            && vip.is_ipv4() != cidr.addr().is_ipv4()
        {
            return Err(ApiError::bad_request(format!(
                "Validation failure: CIDR {value} IP version incompatible with VIP {vip_address} IP \
                 version."
            )));
        }
    }
    Ok(values)
}

/// Checks and builds a listener of `lb`, given the listeners it already has.
fn build<'a>(
    api: &ControlPlane,
    lb: &LoadBalancer,
    siblings: impl Iterator<Item = &'a Listener>,
    body: &mut ListenerCreate,
) -> ApiResult<Listener> {
    validate::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &lb.common.project_id,
    )?;
    let protocol = validate::listener_protocol(&lb.provider, &body.protocol)?;
    let protocol_port = validate::port("protocol_port", body.protocol_port)?;
    if let Ok(vip) = lb.vip_address.parse() {
        api.addresses
            .bind(std::net::SocketAddr::new(vip, protocol_port))?;
    }
    validate::unsupported_options(&lb.provider, &tls_options!(body))?;
    let insert_headers = insert_headers(api, &lb.provider, protocol, body.insert_headers.take())?;
    validate::provider_supports(api, &lb.provider, Some(protocol), None)?;
    // One port per transport: UDP, SCTP and the TCP-based protocols may share a number.
    let transport = |p: Protocol| match p {
        Protocol::Udp | Protocol::Sctp => p,
        _ => Protocol::Tcp,
    };
    let clash = |l: &Listener| {
        l.protocol_port == protocol_port && transport(l.protocol) == transport(protocol)
    };
    if siblings.into_iter().any(clash) {
        return Err(ApiError::conflict(format!(
            "Another Listener on this Load Balancer is already using protocol_port {protocol_port}"
        )));
    }
    Ok(Listener {
        common: new_common(
            &lb.common.project_id,
            body.name.take(),
            body.description.take(),
            body.admin_state_up,
            body.tags.take(),
        )?,
        loadbalancer_id: lb.common.id.clone(),
        protocol,
        protocol_port,
        connection_limit: connection_limit(body.connection_limit)?,
        default_pool_id: None,
        timeout_client_data: timeout("timeout_client_data", body.timeout_client_data, 50_000)?,
        timeout_member_connect: timeout(
            "timeout_member_connect",
            body.timeout_member_connect,
            5_000,
        )?,
        timeout_member_data: timeout("timeout_member_data", body.timeout_member_data, 50_000)?,
        timeout_tcp_inspect: timeout("timeout_tcp_inspect", body.timeout_tcp_inspect, 0)?,
        allowed_cidrs: cidrs(body.allowed_cidrs.take(), &lb.vip_address)?,
        insert_headers,
    })
}

/// The headers Octavia lets an HTTP listener insert.
const INSERT_HEADERS: [&str; 3] = ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"];

/// `insert_headers` as Octavia takes it (header name to "true" or "false"), for an HTTP
/// listener; a header the provider does not render is a 501.
fn insert_headers(
    api: &ControlPlane,
    provider: &str,
    protocol: Protocol,
    given: Option<Map<String, Value>>,
) -> ApiResult<BTreeMap<String, String>> {
    let given = given.unwrap_or_default();
    if given.is_empty() {
        return Ok(BTreeMap::new());
    }
    if protocol != Protocol::Http {
        return Err(ApiError::bad_request(format!(
            "insert_headers are only supported for HTTP listeners, not {}.",
            validate::protocol_name(protocol)
        )));
    }
    if !api.provider_enabled(provider) {
        return Err(lbaas_control::octavia::ProviderError::NotEnabled(provider.to_owned()).into());
    }
    let mut headers = BTreeMap::new();
    for (name, value) in given {
        let Some(known) = INSERT_HEADERS
            .iter()
            .find(|h| h.eq_ignore_ascii_case(&name))
        else {
            return Err(ApiError::bad_request(format!(
                "Invalid input for field/attribute insert_headers: header {} is not one of {}.",
                name.escape_debug(),
                INSERT_HEADERS.join(", ")
            )));
        };
        let flag = match &value {
            Value::String(text) if text.eq_ignore_ascii_case("true") => "true",
            Value::String(text) if text.eq_ignore_ascii_case("false") => "false",
            Value::Bool(true) => "true",
            Value::Bool(false) => "false",
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Invalid input for field/attribute insert_headers: {known} must be \"true\" \
                     or \"false\"."
                )));
            }
        };
        api.provider_inserts_header(provider, known)?;
        headers.insert((*known).to_owned(), flag.to_owned());
    }
    Ok(headers)
}

/// The pool a listener may use by default: same load balancer, compatible protocol.
fn check_default_pool(snapshot: &Snapshot, listener: &Listener, pool_id: &str) -> ApiResult<()> {
    let pool = snapshot
        .pools
        .iter()
        .find(|p| p.common.id == pool_id && p.loadbalancer_id == listener.loadbalancer_id)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Pool {pool_id} could not be found on this load balancer."
            ))
        })?;
    if !validate::listener_pool_compatible(listener.protocol, pool.protocol) {
        return Err(ApiError::bad_request(format!(
            "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
            validate::protocol_name(pool.protocol),
            validate::protocol_name(listener.protocol)
        )));
    }
    Ok(())
}

/// Full-tree creation: adds the listener (and its inline default pool) to `tree`.
pub fn build_tree(
    api: &ControlPlane,
    tree: &mut Snapshot,
    lb: &LoadBalancer,
    mut body: ListenerCreate,
) -> ApiResult<()> {
    if body.default_pool_id.is_some() {
        return Err(ApiError::bad_request(
            "In a full load balancer tree, give a listener's pool inline as default_pool.",
        ));
    }
    let mut listener = build(api, lb, tree.listeners.iter(), &mut body)?;
    if let Some(pool) = body.default_pool {
        let pool_id = pools::build_tree(api, tree, lb, pool, Some(listener.protocol))?;
        check_default_pool(tree, &listener, &pool_id)?;
        listener.default_pool_id = Some(pool_id);
    }
    for policy in body.l7policies.unwrap_or_default() {
        super::l7policies::build_tree(api, tree, lb, &listener, policy)?;
    }
    tree.listeners.push(listener);
    Ok(())
}

async fn create(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Body(body): Body<CreateEnvelope>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.require_member()?;
    let view = api
        .write(move |api, snapshot| {
            let mut body = body.listener;
            let lb_id = body
                .loadbalancer_id
                .take()
                .ok_or_else(|| ApiError::bad_request("loadbalancer_id is required."))?;
            if body.default_pool.is_some() {
                return Err(ApiError::bad_request("default_pool is only accepted in a full load balancer tree; use default_pool_id."));
            }
            if body.l7policies.as_ref().is_some_and(|p| !p.is_empty()) {
                return Err(ApiError::bad_request(
                    "l7policies are only accepted in a full load balancer tree; use POST /v2/lbaas/l7policies.",
                ));
            }
            let lb = validate::referenced(
                snapshot.loadbalancer(&ctx, &lb_id),
                "Load Balancer",
                &lb_id,
            )?;
            if !ctx.can_write(&lb.common.project_id) {
                return Err(ApiError::forbidden());
            }
            ensure_mutable(lb)?;
            let mut listener = build(api, lb, snapshot.listeners_of(&lb_id), &mut body)?;
            if let Some(pool_id) = body.default_pool_id.take() {
                check_default_pool(snapshot, &listener, &pool_id)?;
                listener.default_pool_id = Some(pool_id);
            }
            let mut batch = Batch::new();
            touch_parent(snapshot, &lb_id, &mut batch)?;
            batch.put(&listener);
            super::quotas::enforce(snapshot, &listener.common.project_id, &batch)?;
            Ok(Change::new(batch, views::listener(snapshot, &listener)).with_job(&lb_id))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "listener": view }))))
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

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenerUpdate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    #[serde_as(as = "Option<Int>")]
    connection_limit: Option<i64>,
    /// `null` detaches the default pool.
    #[serde(default, deserialize_with = "super::pools::explicit")]
    default_pool_id: Option<Option<String>>,
    #[serde_as(as = "Option<Int>")]
    timeout_client_data: Option<u32>,
    #[serde_as(as = "Option<Int>")]
    timeout_member_connect: Option<u32>,
    #[serde_as(as = "Option<Int>")]
    timeout_member_data: Option<u32>,
    #[serde_as(as = "Option<Int>")]
    timeout_tcp_inspect: Option<u32>,
    allowed_cidrs: Option<Vec<String>>,
    insert_headers: Option<Map<String, Value>>,
    tags: Option<Vec<String>>,
    default_tls_container_ref: Option<Value>,
    sni_container_refs: Option<Value>,
    client_ca_tls_container_ref: Option<Value>,
    client_authentication: Option<Value>,
    client_crl_container_ref: Option<Value>,
    tls_ciphers: Option<Value>,
    tls_versions: Option<Value>,
    alpn_protocols: Option<Value>,
    hsts_max_age: Option<Value>,
    hsts_include_subdomains: Option<Value>,
    hsts_preload: Option<Value>,
}

async fn update(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
    Body(body): Body<UpdateEnvelope>,
) -> ApiResult<Json<Value>> {
    let view = api
        .write(move |plane, snapshot| {
            let current = snapshot.listener(&ctx, &id)?;
            if !ctx.can_write(&current.common.project_id) {
                return Err(ApiError::forbidden());
            }
            let body = body.listener;
            let provider = &snapshot.parent(&current.loadbalancer_id)?.provider;
            validate::unsupported_options(provider, &tls_options!(body))?;
            let mut listener = current.clone();
            if let Some(name) = body.name {
                listener.common.name = validate::text("name", Some(name), 255)?;
            }
            if let Some(description) = body.description {
                listener.common.description =
                    validate::text("description", Some(description), 255)?;
            }
            if let Some(up) = body.admin_state_up {
                listener.common.admin_state_up = up;
            }
            if body.connection_limit.is_some() {
                listener.connection_limit = connection_limit(body.connection_limit)?;
            }
            if let Some(pool) = body.default_pool_id {
                if let Some(pool_id) = &pool {
                    check_default_pool(snapshot, &listener, pool_id)?;
                }
                listener.default_pool_id = pool;
            }
            let l = &mut listener;
            l.timeout_client_data = timeout(
                "timeout_client_data",
                body.timeout_client_data,
                l.timeout_client_data,
            )?;
            l.timeout_member_connect = timeout(
                "timeout_member_connect",
                body.timeout_member_connect,
                l.timeout_member_connect,
            )?;
            l.timeout_member_data = timeout(
                "timeout_member_data",
                body.timeout_member_data,
                l.timeout_member_data,
            )?;
            l.timeout_tcp_inspect = timeout(
                "timeout_tcp_inspect",
                body.timeout_tcp_inspect,
                l.timeout_tcp_inspect,
            )?;
            if body.allowed_cidrs.is_some() {
                let lb = snapshot.parent(&listener.loadbalancer_id)?;
                listener.allowed_cidrs = cidrs(body.allowed_cidrs, &lb.vip_address)?;
            }
            if body.insert_headers.is_some() {
                let lb = snapshot.parent(&listener.loadbalancer_id)?;
                listener.insert_headers =
                    insert_headers(plane, &lb.provider, listener.protocol, body.insert_headers)?;
            }
            if let Some(tags) = body.tags {
                listener.common.tags = tags;
            }
            listener.common.provisioning_status = ProvisioningStatus::PendingUpdate;
            listener.common.updated_at = Some(now());
            let lb_id = listener.loadbalancer_id.clone();
            child_change(
                snapshot,
                &lb_id,
                &listener,
                views::listener(snapshot, &listener),
            )
        })
        .await?;
    Ok(Json(json!({ "listener": view })))
}

async fn delete(
    State(api): State<Arc<Api>>,
    ctx: Context,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    delete_child(&api, ctx, id, Snapshot::listener).await
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
