//! Listeners: one frontend of a load balancer, on one protocol and port. The checks Octavia
//! makes of a listener's fields, its create (alone or in a full tree), update and delete.

use std::collections::BTreeMap;

use lbaas_core::ids::now;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Caller;
use super::certificates::{Resolved, TlsRefs};
use super::fields::{self, Decided, Int};
use super::pools::{self, PoolCreate};
use super::status::{self, Step};
use super::tls::ListenerTls;
use super::tree::{
    child_change, delete_child, ensure_mutable, ensure_writable, new_common, touch_parent,
};
use crate::Error;
use crate::model::{Listener, LoadBalancer, Protocol};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use crate::store::Batch;

/// Longest timeout Octavia accepts, in milliseconds (one year).
const MAX_TIMEOUT_MS: u32 = 31_536_000;

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
    /// Read as text, so that an unknown protocol gets Octavia's message for the field.
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

/// A listener's TLS fields (certificates, client authentication, ciphers and versions, ALPN,
/// HSTS: Octavia v2.8 to v2.27), as [`ListenerTls`] reads them, for the create and the update
/// body alike: checked by Octavia's rules, then answered 501 naming the first one set, since no
/// driver of this host implements them yet.
macro_rules! listener_tls {
    ($body:ty) => {
        impl $body {
            fn tls(&self) -> ListenerTls<'_> {
                ListenerTls {
                    default_tls_container_ref: &self.default_tls_container_ref,
                    sni_container_refs: &self.sni_container_refs,
                    client_ca_tls_container_ref: &self.client_ca_tls_container_ref,
                    client_authentication: &self.client_authentication,
                    client_crl_container_ref: &self.client_crl_container_ref,
                    tls_ciphers: &self.tls_ciphers,
                    tls_versions: &self.tls_versions,
                    alpn_protocols: &self.alpn_protocols,
                    hsts_max_age: &self.hsts_max_age,
                    hsts_include_subdomains: &self.hsts_include_subdomains,
                    hsts_preload: &self.hsts_preload,
                }
            }
        }
    };
}

listener_tls!(ListenerCreate);
listener_tls!(ListenerUpdate);

impl ListenerCreate {
    /// The certificate references this listener makes, to resolve before the write
    /// ([`ControlPlane::resolve_tls`]). Octavia's rules for the fields come first: nothing is
    /// read for a listener that may not name it.
    pub fn tls_refs(&self) -> Decided<TlsRefs> {
        let protocol = serde_json::from_value(Value::String(self.protocol.clone()));
        match protocol {
            // Certificates of a metrics listener are the provider's 501 (see `build`, which
            // names it): none is read.
            Ok(Protocol::Prometheus) => return Ok(TlsRefs::default()),
            Ok(protocol) => self.tls().check_create(protocol, self.inserts_headers())?,
            Err(_) => {}
        }
        self.tls().refs()
    }

    /// In a full tree: the references of this listener, its inline default pool and the pools
    /// its policies define inline.
    pub fn tree_tls_refs(&self) -> Decided<TlsRefs> {
        let mut refs = self.tls_refs()?;
        if let Some(pool) = &self.default_pool {
            refs.extend(pool.tls_refs()?);
        }
        for policy in self.l7policies.iter().flatten() {
            if let Some(pool) = super::l7policies::inline_pool(policy) {
                refs.extend(pool.tls_refs()?);
            }
        }
        Ok(refs)
    }

    fn inserts_headers(&self) -> bool {
        self.insert_headers.as_ref().is_some_and(|h| !h.is_empty())
    }
}

fn timeout(field: &str, value: Option<u32>, default: u32) -> Decided<u32> {
    let value = value.unwrap_or(default);
    if value > MAX_TIMEOUT_MS {
        return Err(Error::invalid(format!(
            "{field} {value} is out of range 0-{MAX_TIMEOUT_MS}"
        )));
    }
    Ok(value)
}

fn connection_limit(value: Option<i64>) -> Decided<i64> {
    match value.unwrap_or(-1) {
        n if n == -1 || (1..=i64::from(u32::MAX)).contains(&n) => Ok(n),
        n => Err(Error::invalid(format!(
            "connection_limit {n} must be -1 (unlimited) or a positive number"
        ))),
    }
}

/// The allowed CIDRs, each of the VIP's IP version (traffic to the VIP comes from that
/// family only), as Octavia checks them.
fn cidrs(values: Option<Vec<String>>, vip_address: &str) -> Decided<Vec<String>> {
    let values = values.unwrap_or_default();
    let vip = vip_address.parse::<std::net::IpAddr>().ok();
    for value in &values {
        let cidr = fields::cidr("allowed_cidrs", value)?;
        if let Some(vip) = vip
            && vip.is_ipv4() != cidr.addr().is_ipv4()
        {
            return Err(Error::invalid(format!(
                "Validation failure: CIDR {value} IP version incompatible with VIP {vip_address} IP \
                 version."
            )));
        }
    }
    Ok(values)
}

/// Checks and builds a listener of `lb`, given the listeners it already has and the
/// certificates its references were resolved to.
fn build<'a>(
    plane: &ControlPlane,
    lb: &LoadBalancer,
    siblings: impl Iterator<Item = &'a Listener>,
    body: &mut ListenerCreate,
    resolved: &Resolved,
) -> Decided<Listener> {
    fields::same_project(
        body.project_id.as_deref(),
        body.tenant_id.as_deref(),
        &lb.common.project_id,
    )?;
    let protocol = fields::listener_protocol(&body.protocol)?;
    let protocol_port = fields::port("protocol_port", body.protocol_port)?;
    if let Ok(vip) = lb.vip_address.parse() {
        plane
            .addresses
            .bind(std::net::SocketAddr::new(vip, protocol_port))?;
    }
    if protocol == Protocol::Prometheus && !body.tls().refs()?.certificates.is_empty() {
        // Octavia serves such metrics over TLS; no driver contract carries it yet.
        return Err(Error::unsupported(&lb.provider, PROMETHEUS_TLS));
    }
    body.tls().check_create(protocol, body.inserts_headers())?;
    body.tls().refs()?.ensure_in(resolved)?;
    let tls = body.tls().stored(protocol)?;
    let insert_headers = insert_headers(plane, &lb.provider, protocol, body.insert_headers.take())?;
    plane.provider_supports(&lb.provider, Some(protocol), None)?;
    plane.provider_renders_listener_tls(&lb.provider, &tls)?;
    // One port per transport: UDP, SCTP and the TCP-based protocols may share a number.
    let transport = |p: Protocol| match p {
        Protocol::Udp | Protocol::Sctp => p,
        _ => Protocol::Tcp,
    };
    let clash = |l: &Listener| {
        l.protocol_port == protocol_port && transport(l.protocol) == transport(protocol)
    };
    if siblings.into_iter().any(clash) {
        return Err(Error::conflict(format!(
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
        tls,
    })
}

/// How a 501 names a metrics listener with certificates.
pub const PROMETHEUS_TLS: &str = "PROMETHEUS listeners with TLS";

/// The headers Octavia lets an HTTP listener insert.
pub const INSERT_HEADERS: [&str; 3] = ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"];
/// The headers about the client's certificate Octavia lets a TERMINATED_HTTPS listener insert.
pub const SSL_HEADERS: [&str; 8] = [
    "X-SSL-Client-Verify",
    "X-SSL-Client-Has-Cert",
    "X-SSL-Client-DN",
    "X-SSL-Client-CN",
    "X-SSL-Issuer",
    "X-SSL-Client-SHA1",
    "X-SSL-Client-Not-Before",
    "X-SSL-Client-Not-After",
];

/// `insert_headers` as Octavia takes it (header name to "true" or "false"), for an HTTP
/// listener; a header the provider does not render is a 501.
fn insert_headers(
    plane: &ControlPlane,
    provider: &str,
    protocol: Protocol,
    given: Option<Map<String, Value>>,
) -> Decided<BTreeMap<String, String>> {
    let given = given.unwrap_or_default();
    if given.is_empty() {
        return Ok(BTreeMap::new());
    }
    if !matches!(protocol, Protocol::Http | Protocol::TerminatedHttps) {
        return Err(Error::invalid(format!(
            "insert_headers are only supported for HTTP listeners, not {}.",
            protocol.name()
        )));
    }
    // Octavia's answer to a client-certificate header on a listener without TLS.
    if protocol != Protocol::TerminatedHttps {
        let ssl: Vec<String> = given
            .keys()
            .filter_map(|name| SSL_HEADERS.iter().find(|h| h.eq_ignore_ascii_case(name)))
            .map(|name| format!("'{name}'"))
            .collect();
        if !ssl.is_empty() {
            return Err(Error::invalid(format!(
                "[{}] is not a valid option for {} protocol listener.",
                ssl.join(", "),
                protocol.name()
            )));
        }
    }
    if !plane.provider_enabled(provider) {
        return Err(super::ProviderError::NotEnabled(provider.to_owned()).into());
    }
    let mut headers = BTreeMap::new();
    for (name, value) in given {
        let Some(known) = INSERT_HEADERS
            .iter()
            .chain(&SSL_HEADERS)
            .find(|h| h.eq_ignore_ascii_case(&name))
        else {
            return Err(Error::invalid(format!(
                "Invalid input for field/attribute insert_headers: header {} is not one of {}, {}.",
                name.escape_debug(),
                INSERT_HEADERS.join(", "),
                SSL_HEADERS.join(", ")
            )));
        };
        let flag = match &value {
            Value::String(text) if text.eq_ignore_ascii_case("true") => "true",
            Value::String(text) if text.eq_ignore_ascii_case("false") => "false",
            Value::Bool(true) => "true",
            Value::Bool(false) => "false",
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid input for field/attribute insert_headers: {known} must be \"true\" \
                     or \"false\"."
                )));
            }
        };
        plane.provider_inserts_header(provider, known)?;
        headers.insert((*known).to_owned(), flag.to_owned());
    }
    Ok(headers)
}

/// The pool a listener may use by default: same load balancer, compatible protocol.
fn check_default_pool(snapshot: &Snapshot, listener: &Listener, pool_id: &str) -> Decided<()> {
    let pool = snapshot
        .pools
        .iter()
        .find(|p| p.common.id == pool_id && p.loadbalancer_id == listener.loadbalancer_id)
        .ok_or_else(|| {
            Error::invalid(format!(
                "Pool {pool_id} could not be found on this load balancer."
            ))
        })?;
    fields::pool_for_listener(listener.protocol, pool.protocol)
}

/// Full-tree creation: adds the listener (and its inline default pool) to `tree`.
pub fn build_tree(
    plane: &ControlPlane,
    tree: &mut Snapshot,
    lb: &LoadBalancer,
    mut body: ListenerCreate,
    resolved: &Resolved,
) -> Decided<()> {
    if body.default_pool_id.is_some() {
        return Err(Error::invalid(
            "In a full load balancer tree, give a listener's pool inline as default_pool.",
        ));
    }
    let mut listener = build(plane, lb, tree.listeners.iter(), &mut body, resolved)?;
    if let Some(pool) = body.default_pool {
        let pool_id = pools::build_tree(plane, tree, lb, pool, Some(listener.protocol), resolved)?;
        check_default_pool(tree, &listener, &pool_id)?;
        listener.default_pool_id = Some(pool_id);
    }
    for policy in body.l7policies.unwrap_or_default() {
        super::l7policies::build_tree(plane, tree, lb, &listener, policy, resolved)?;
    }
    tree.listeners.push(listener);
    Ok(())
}

impl ListenerCreate {
    /// The load balancer the listener is for.
    pub fn parents(&self) -> super::tree::Parents {
        super::tree::Parents {
            loadbalancer_id: self.loadbalancer_id.clone(),
            listener_id: None,
        }
    }
}

/// Creates a listener on a load balancer the caller may change.
pub fn create(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    mut body: ListenerCreate,
    resolved: &Resolved,
) -> Decided<Change<Listener>> {
    let lb_id = fields::required("loadbalancer_id", body.loadbalancer_id.take())?;
    if body.default_pool.is_some() {
        return Err(Error::invalid(
            "default_pool is only accepted in a full load balancer tree; use default_pool_id.",
        ));
    }
    if body.l7policies.as_ref().is_some_and(|p| !p.is_empty()) {
        return Err(Error::invalid(
            "l7policies are only accepted in a full load balancer tree; use POST /v2/lbaas/l7policies.",
        ));
    }
    let lb = fields::referenced(
        snapshot.loadbalancer(caller, &lb_id),
        "Load Balancer",
        &lb_id,
    )?;
    ensure_writable(caller, &lb.common.project_id)?;
    ensure_mutable(lb)?;
    let mut listener = build(
        plane,
        lb,
        snapshot.listeners_of(&lb_id),
        &mut body,
        resolved,
    )?;
    if let Some(pool_id) = body.default_pool_id.take() {
        check_default_pool(snapshot, &listener, &pool_id)?;
        listener.default_pool_id = Some(pool_id);
    }
    let mut batch = Batch::new();
    touch_parent(snapshot, &lb_id, &mut batch)?;
    batch.put(&listener);
    super::quotas::enforce(snapshot, &listener.common.project_id, &batch)?;
    Ok(Change::new(batch, listener).with_job(&lb_id))
}

#[serde_with::serde_as]
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerUpdate {
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    #[serde_as(as = "Option<Int>")]
    connection_limit: Option<i64>,
    /// `null` detaches the default pool.
    #[serde(default, with = "::serde_with::rust::double_option")]
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

impl ListenerUpdate {
    /// The certificate references this change of `current` makes, to resolve before the write
    /// ([`ControlPlane::resolve_tls`]), after Octavia's rules for the fields.
    pub fn tls_refs(&self, current: &Listener) -> Decided<TlsRefs> {
        self.tls()
            .check_update(current.protocol, self.inserts_headers(), &current.tls)?;
        self.tls().update_refs(&current.tls)
    }

    fn inserts_headers(&self) -> bool {
        self.insert_headers.as_ref().is_some_and(|h| !h.is_empty())
    }
}

/// A listener as stored, for [`ListenerUpdate::tls_refs`].
pub fn current(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Listener> {
    Ok(snapshot.listener(caller, id)?.clone())
}

/// Changes a listener the caller may write, its certificate references resolved into
/// `resolved`.
pub fn update(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    id: &str,
    body: ListenerUpdate,
    resolved: &Resolved,
) -> Decided<Change<Listener>> {
    let current = snapshot.listener(caller, id)?;
    ensure_writable(caller, &current.common.project_id)?;
    let provider = &snapshot.parent(&current.loadbalancer_id)?.provider;
    body.tls()
        .check_update(current.protocol, body.inserts_headers(), &current.tls)?;
    body.tls()
        .update_refs(&current.tls)?
        .ensure_in(resolved)
        .map_err(|_| super::certificates::changed_meanwhile("listener"))?;
    let mut listener = current.clone();
    listener.tls = body.tls().updated(&current.tls, current.protocol)?;
    plane.provider_renders_listener_tls(provider, &listener.tls)?;
    if let Some(name) = body.name {
        listener.common.name = fields::text("name", Some(name), 255)?;
    }
    if let Some(description) = body.description {
        listener.common.description = fields::text("description", Some(description), 255)?;
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
    status::step(&mut listener.common, Step::Update, &now());
    let lb_id = listener.loadbalancer_id.clone();
    child_change(snapshot, &lb_id, &listener, listener.clone())
}

/// Deletes a listener the caller may write.
pub fn delete(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    delete_child(snapshot, caller, id, Snapshot::listener)
}
