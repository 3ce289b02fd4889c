//! Pools: one backend of a load balancer: its algorithm, persistence, members and health
//! monitor. The checks Octavia makes of a pool, its create (alone, for a listener, or in a
//! full tree), update and delete.

use lbaas_core::ids::now;
use serde::Deserialize;

use super::Caller;
use super::certificates::{Resolved, TlsRefs};
use super::fields::{self, Decided};
use super::healthmonitors::{self, HealthMonitorCreate};
use super::members::{self, MemberCreate};
use super::status::{self, Step};
use super::tls::PoolTls;
use super::tree::{
    child_change, delete_child, ensure_mutable, ensure_writable, new_common, touch_parent,
};
use crate::Error;
use crate::model::{
    LbAlgorithm, LoadBalancer, PersistenceType, Pool, Protocol, SessionPersistence,
};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use crate::store::Batch;

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

fn persistence(value: Option<SessionPersistence>) -> Decided<Option<SessionPersistence>> {
    let Some(value) = value else { return Ok(None) };
    match (value.kind, value.cookie_name.as_deref()) {
        (PersistenceType::AppCookie, None) => {
            return Err(Error::invalid(
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
                return Err(Error::invalid(format!(
                    "cookie_name `{}` is not a valid cookie name.",
                    name.escape_debug()
                )));
            }
        }
        (_, Some(_)) => {
            return Err(Error::invalid(
                "cookie_name is only valid with APP_COOKIE persistence.",
            ));
        }
        (_, None) => {}
    }
    Ok(Some(value))
}

/// A pool's TLS fields towards its members (Octavia v2.8 to v2.24), as [`PoolTls`] reads them,
/// for the create and the update body alike: checked by Octavia's rules, then answered 501
/// naming the first one set, since no driver of this host implements them yet.
macro_rules! pool_tls {
    ($body:ty) => {
        impl $body {
            fn tls(&self) -> PoolTls<'_> {
                PoolTls {
                    tls_enabled: self.tls_enabled.map(serde_json::Value::Bool),
                    tls_container_ref: &self.tls_container_ref,
                    ca_tls_container_ref: &self.ca_tls_container_ref,
                    crl_container_ref: &self.crl_container_ref,
                    tls_ciphers: &self.tls_ciphers,
                    tls_versions: &self.tls_versions,
                    alpn_protocols: &self.alpn_protocols,
                }
            }
        }
    };
}

pool_tls!(PoolCreate);
pool_tls!(PoolUpdate);

impl PoolCreate {
    /// The certificate references this pool makes, to resolve before the write
    /// ([`ControlPlane::resolve_tls`]), after Octavia's rules for the fields.
    pub fn tls_refs(&self) -> Decided<TlsRefs> {
        self.tls().check_create()?;
        self.tls().refs()
    }
}

/// Checks and builds a pool of `lb`, its certificate references resolved into `resolved`.
fn build(
    plane: &ControlPlane,
    lb: &LoadBalancer,
    body: &mut PoolCreate,
    resolved: &Resolved,
) -> Decided<Pool> {
    body.tls().check_create()?;
    body.tls().refs()?.ensure_in(resolved)?;
    let tls = body.tls().stored()?;
    plane.provider_renders_pool_tls(&lb.provider, &tls)?;
    fields::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &lb.common.project_id,
    )?;
    plane.provider_supports(&lb.provider, Some(body.protocol), Some(body.lb_algorithm))?;
    let session_persistence = persistence(body.session_persistence.take())?;
    if session_persistence
        .as_ref()
        .is_some_and(|p| p.kind != PersistenceType::SourceIp)
        && body.protocol != Protocol::Http
    {
        return Err(Error::invalid("Cookie persistence needs an HTTP pool."));
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
        tls,
    })
}

/// Full-tree creation: adds the pool, its members and monitor to `tree`; returns its id.
pub fn build_tree(
    plane: &ControlPlane,
    tree: &mut Snapshot,
    lb: &LoadBalancer,
    mut body: PoolCreate,
    listener: Option<Protocol>,
    resolved: &Resolved,
) -> Decided<String> {
    if body.loadbalancer_id.is_some() || body.listener_id.is_some() {
        return Err(Error::invalid(
            "In a full load balancer tree, pools take no loadbalancer_id or listener_id.",
        ));
    }
    if let Some(listener) = listener {
        fields::pool_for_listener(listener, body.protocol)?;
    }
    let mut pool = build(plane, lb, &mut body, resolved)?;
    for member in body.members.unwrap_or_default() {
        let member = members::build(&pool, tree.members_of(&pool.common.id), member)?;
        tree.members.push(member);
    }
    if let Some(hm) = body.healthmonitor {
        let hm = healthmonitors::build(plane, &lb.provider, &pool, hm)?;
        pool.healthmonitor_id = Some(hm.common.id.clone());
        tree.healthmonitors.push(hm);
    }
    let id = pool.common.id.clone();
    tree.pools.push(pool);
    Ok(id)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolUpdate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    lb_algorithm: Option<LbAlgorithm>,
    #[serde(default, with = "::serde_with::rust::double_option")]
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

impl PoolUpdate {
    /// The certificate references this change of a pool whose settings are `current` makes,
    /// to resolve before the write ([`ControlPlane::resolve_tls`]), after Octavia's rules for
    /// the fields.
    pub fn tls_refs(&self, current: &crate::model::PoolTls) -> Decided<TlsRefs> {
        self.tls().check_update(current)?;
        self.tls().update_refs(current)
    }
}

/// A pool's TLS settings as stored, for [`PoolUpdate::tls_refs`].
pub fn current_tls(
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
) -> Decided<crate::model::PoolTls> {
    Ok(snapshot.pool(caller, id)?.tls.clone())
}

impl PoolCreate {
    /// The load balancer and the listener the pool is for.
    pub fn parents(&self) -> super::tree::Parents {
        super::tree::Parents {
            loadbalancer_id: self.loadbalancer_id.clone(),
            listener_id: self.listener_id.clone(),
        }
    }
}

/// Creates a pool on a load balancer the caller may change, as the default pool of a listener
/// when the request names one. The change's value is the pool and that listener's id.
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    mut body: PoolCreate,
    resolved: &Resolved,
) -> Decided<Change<(Pool, Option<String>)>> {
    if body.members.is_some() || body.healthmonitor.is_some() {
        return Err(Error::invalid(
            "members and healthmonitor are only accepted in a full load balancer tree.",
        ));
    }
    let mut batch = Batch::new();
    let listener = match body.listener_id.take() {
        Some(listener_id) => {
            let listener = fields::referenced(
                snapshot.listener(caller, &listener_id),
                "Listener",
                &listener_id,
            )?;
            if listener.default_pool_id.is_some() {
                return Err(Error::conflict(format!(
                    "Listener {listener_id} already has a default pool."
                )));
            }
            fields::pool_for_listener(listener.protocol, body.protocol)?;
            Some(listener.clone())
        }
        None => None,
    };
    let lb_id = match (body.loadbalancer_id.take(), &listener) {
        (Some(lb_id), Some(l)) if lb_id != l.loadbalancer_id => {
            return Err(Error::invalid(
                "The listener belongs to another load balancer.",
            ));
        }
        (Some(lb_id), _) => lb_id,
        (None, Some(l)) => l.loadbalancer_id.clone(),
        (None, None) => {
            return Err(Error::invalid(
                "One of loadbalancer_id or listener_id is required.",
            ));
        }
    };
    let lb = fields::referenced(
        snapshot.loadbalancer(caller, &lb_id),
        "Load Balancer",
        &lb_id,
    )?;
    ensure_writable(caller, &lb.common.project_id)?;
    ensure_mutable(lb)?;
    let pool = build(plane, lb, &mut body, resolved)?;
    touch_parent(snapshot, &lb_id, &mut batch)?;
    let listener_id = listener.as_ref().map(|l| l.common.id.clone());
    if let Some(mut listener) = listener {
        listener.default_pool_id = Some(pool.common.id.clone());
        status::step(&mut listener.common, Step::Update, &now());
        batch.put(&listener);
    }
    batch.put(&pool);
    super::quotas::enforce(snapshot, &pool.common.project_id, &batch)?;
    Ok(Change::new(batch, (pool, listener_id)).with_job(&lb_id))
}

/// Changes a pool the caller may write.
pub fn update(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    body: PoolUpdate,
    resolved: &Resolved,
) -> Decided<Change<Pool>> {
    let current = snapshot.pool(caller, id)?;
    ensure_writable(caller, &current.common.project_id)?;
    let lb = snapshot.parent(&current.loadbalancer_id)?;
    body.tls().check_update(&current.tls)?;
    body.tls()
        .update_refs(&current.tls)?
        .ensure_in(resolved)
        .map_err(|_| super::certificates::changed_meanwhile("pool"))?;
    let mut pool = current.clone();
    pool.tls = body.tls().updated(&current.tls)?;
    plane.provider_renders_pool_tls(&lb.provider, &pool.tls)?;
    if let Some(name) = body.name {
        pool.common.name = fields::text("name", Some(name), 255)?;
    }
    if let Some(description) = body.description {
        pool.common.description = fields::text("description", Some(description), 255)?;
    }
    if let Some(up) = body.admin_state_up {
        pool.common.admin_state_up = up;
    }
    if let Some(algorithm) = body.lb_algorithm {
        plane.provider_supports(&lb.provider, None, Some(algorithm))?;
        pool.lb_algorithm = algorithm;
    }
    if let Some(persistence) = body.session_persistence {
        pool.session_persistence = self::persistence(persistence)?;
    }
    if let Some(tags) = body.tags {
        pool.common.tags = tags;
    }
    status::step(&mut pool.common, Step::Update, &now());
    let lb_id = pool.loadbalancer_id.clone();
    child_change(snapshot, &lb_id, &pool, pool.clone())
}

/// Deletes a pool the caller may write.
pub fn delete(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    delete_child(snapshot, caller, id, Snapshot::pool)
}
