//! A simulated Acme ADC appliance: the management API the `acme-adc` driver speaks, with the
//! appliance's own limits enforced on its side, so the driver's `apply` and `remove` run over
//! real HTTP against something that can say no.
//!
//! | request | does |
//! |---|---|
//! | `PUT /api/v3/network/vlans/{tag}` | creates VLAN `tag` on interface `1.N` (`{"tag", "interface", "network", "cidr"}`); at most `max_vlans_per_interface` per interface, only existing interfaces |
//! | `DELETE /api/v3/network/vlans/{tag}` | removes it, unless a virtual service still uses it |
//! | `GET /api/v3/network/vlans` | every VLAN |
//! | `PUT /api/v3/partitions/{p}/virtual-services/{id}` | stores an `acme.adc/v3` `VirtualService`; its VIP may not be another service's (no overlapping IPs), its VLANs must exist, at most `max_virtual_services` |
//! | `GET`, `DELETE` the same path | reads or removes it |
//! | `GET /api/v3/virtual-services` | every service, all partitions |
//! | `PUT /api/v3/certificates/{service}/{name}` | stores a PEM file (certificates, a key, revocation lists) for virtual service `service`; answers nothing of it |
//! | `GET /api/v3/certificates/{service}` | each file's name, kind and SHA-256, never its bytes |
//!
//! A virtual server's `tls` and a pool's `tls` name files of their service; a service naming a
//! file the appliance does not hold is refused. Deleting a service deletes its files.
//!
//! A virtual server of the `prometheus` profile is the appliance's telemetry: it listens on its
//! VIP and port (loopback VIPs: the simulator's reach) and answers with its service's figures
//! in Octavia's metric names, to the sources its `sourceAllowList` admits
//! ([`sync_telemetry`]).
//!
//! Refusals answer `409` (or `400`/`422`) with `{"error": message}`. The configuration survives
//! a restart when a state file is given.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The appliance's hardware and software limits.
#[derive(Debug, Clone)]
pub struct Limits {
    pub interfaces: u32,
    pub max_vlans_per_interface: usize,
    pub max_virtual_services: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            interfaces: 2,
            max_vlans_per_interface: 4,
            max_virtual_services: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vlan {
    pub tag: u16,
    pub interface: String,
    pub network: String,
    pub cidr: String,
}

/// What the appliance holds.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Configuration {
    pub vlans: BTreeMap<u16, Vlan>,
    /// By `partition/id`.
    pub services: BTreeMap<String, Value>,
    /// Certificate files by service id, then name. Never answered back.
    #[serde(default)]
    pub certificates: BTreeMap<String, BTreeMap<String, String>>,
}

/// The largest certificate file the appliance takes.
const MAX_CERTIFICATE: usize = 64 << 10;

/// What a stored file holds, by its PEM labels.
fn kind_of(pem: &str) -> &'static str {
    if pem.contains("PRIVATE KEY-----") {
        "certificate-and-key"
    } else if pem.contains("-----BEGIN X509 CRL-----") {
        "revocation-list"
    } else {
        "certificate-authority"
    }
}

/// The names of the files `service`'s virtual servers and pools use.
fn certificate_names(service: &Value) -> Vec<String> {
    let mut names = Vec::new();
    let mut add = |value: &Value| {
        if let Some(name) = value.as_str() {
            names.push(name.to_owned());
        }
    };
    for server in service["spec"]["virtualServers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        for certificate in server["tls"]["certificates"]
            .as_array()
            .into_iter()
            .flatten()
        {
            add(certificate);
        }
        add(&server["tls"]["clientCa"]);
        add(&server["tls"]["clientCrl"]);
    }
    for pool in service["spec"]["pools"].as_array().into_iter().flatten() {
        add(&pool["tls"]["clientCertificate"]);
        add(&pool["tls"]["ca"]);
        add(&pool["tls"]["crl"]);
    }
    names
}

pub struct Appliance {
    limits: Limits,
    token: Option<String>,
    state_file: Option<PathBuf>,
    config: Mutex<Configuration>,
    /// The metrics endpoints serving, by address: the service and virtual server each is for.
    telemetry: Mutex<BTreeMap<SocketAddr, Endpoint>>,
}

/// One running metrics endpoint.
struct Endpoint {
    service: String,
    server: Value,
    task: tokio::task::AbortHandle,
}

struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

fn conflict(message: String) -> Refusal {
    Refusal(StatusCode::CONFLICT, message)
}

fn invalid(message: impl Into<String>) -> Refusal {
    Refusal(StatusCode::UNPROCESSABLE_ENTITY, message.into())
}

impl Appliance {
    /// An appliance with `limits`, requiring `token` (bearer) when given, keeping its
    /// configuration in `state_file` when given (and starting from what it holds).
    pub fn new(limits: Limits, token: Option<String>, state_file: Option<PathBuf>) -> Self {
        let config = state_file
            .as_ref()
            .and_then(|path| std::fs::read(path).ok())
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        Self {
            limits,
            token,
            state_file,
            config: Mutex::new(config),
            telemetry: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn configuration(&self) -> Configuration {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Configuration> {
        self.config.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `change` on the configuration; keeps the result only if it succeeds.
    fn change<T>(
        &self,
        change: impl FnOnce(&mut Configuration) -> Result<T, Refusal>,
    ) -> Result<T, Refusal> {
        let mut config = self.lock();
        let mut next = config.clone();
        let result = change(&mut next)?;
        if let Some(path) = &self.state_file {
            let bytes = serde_json::to_vec_pretty(&next).unwrap_or_default();
            std::fs::write(path, bytes).map_err(|e| {
                Refusal(
                    StatusCode::INSUFFICIENT_STORAGE,
                    format!("cannot save: {e}"),
                )
            })?;
        }
        *config = next;
        Ok(result)
    }

    fn put_vlan(&self, tag: u16, vlan: Vlan) -> Result<StatusCode, Refusal> {
        if vlan.tag != tag {
            return Err(invalid(format!(
                "body tag {} does not match path tag {tag}",
                vlan.tag
            )));
        }
        let index: Option<u32> = vlan
            .interface
            .strip_prefix("1.")
            .and_then(|n| n.parse().ok());
        if !index.is_some_and(|n| (1..=self.limits.interfaces).contains(&n)) {
            return Err(invalid(format!(
                "interface {} does not exist (this appliance has 1.1 to 1.{})",
                vlan.interface, self.limits.interfaces
            )));
        }
        let limit = self.limits.max_vlans_per_interface;
        self.change(|config| {
            if let Some(existing) = config.vlans.get(&tag) {
                if existing == &vlan {
                    return Ok(StatusCode::OK);
                }
                return Err(conflict(format!(
                    "VLAN {tag} already exists on interface {} for network {}",
                    existing.interface, existing.network
                )));
            }
            let on_interface = config
                .vlans
                .values()
                .filter(|v| v.interface == vlan.interface)
                .count();
            if on_interface >= limit {
                return Err(conflict(format!(
                    "interface {} already carries {on_interface} VLANs, its limit",
                    vlan.interface
                )));
            }
            config.vlans.insert(tag, vlan);
            Ok(StatusCode::CREATED)
        })
    }

    fn delete_vlan(&self, tag: u16) -> Result<StatusCode, Refusal> {
        self.change(|config| {
            if !config.vlans.contains_key(&tag) {
                return Err(Refusal(StatusCode::NOT_FOUND, format!("no VLAN {tag}")));
            }
            if let Some((name, _)) = config
                .services
                .iter()
                .find(|(_, service)| vlan_tags(service).contains(&tag))
            {
                return Err(conflict(format!(
                    "VLAN {tag} is used by virtual service {name}"
                )));
            }
            config.vlans.remove(&tag);
            Ok(StatusCode::NO_CONTENT)
        })
    }

    fn put_service(
        &self,
        partition: &str,
        id: &str,
        service: Value,
    ) -> Result<StatusCode, Refusal> {
        if service["apiVersion"] != "acme.adc/v3" || service["kind"] != "VirtualService" {
            return Err(invalid("expected an acme.adc/v3 VirtualService"));
        }
        if service["metadata"]["name"] != id || service["metadata"]["partition"] != partition {
            return Err(invalid("metadata name and partition must match the path"));
        }
        let vip = service["spec"]["vip"]
            .as_str()
            .filter(|vip| vip.parse::<std::net::IpAddr>().is_ok())
            .ok_or_else(|| invalid("spec.vip must be an IP address"))?
            .to_owned();
        if !service["spec"]["virtualServers"].is_array() || !service["spec"]["pools"].is_array() {
            return Err(invalid("spec.virtualServers and spec.pools must be lists"));
        }
        let key = format!("{partition}/{id}");
        let limit = self.limits.max_virtual_services;
        self.change(|config| {
            if let Some((other, _)) = config
                .services
                .iter()
                .find(|(name, other)| **name != key && other["spec"]["vip"] == vip.as_str())
            {
                return Err(conflict(format!(
                    "address {vip} is already the VIP of virtual service {other} (no overlapping IPs)"
                )));
            }
            if let Some(missing) = vlan_tags(&service)
                .into_iter()
                .find(|tag| !config.vlans.contains_key(tag))
            {
                return Err(conflict(format!("VLAN {missing} does not exist on this appliance")));
            }
            let held = config.certificates.get(id);
            if let Some(missing) = certificate_names(&service)
                .into_iter()
                .find(|name| !held.is_some_and(|files| files.contains_key(name)))
            {
                return Err(invalid(format!(
                    "certificate {missing} is not on this appliance for virtual service {id}"
                )));
            }
            let created = !config.services.contains_key(&key);
            if created && config.services.len() >= limit {
                return Err(conflict(format!("this appliance holds {limit} virtual services, its limit")));
            }
            config.services.insert(key, service);
            Ok(if created { StatusCode::CREATED } else { StatusCode::OK })
        })
    }

    fn put_certificate(
        &self,
        service: &str,
        name: &str,
        body: &[u8],
    ) -> Result<StatusCode, Refusal> {
        let plain = |text: &str| {
            !text.is_empty()
                && text.len() <= 128
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !plain(service) || !plain(name) {
            return Err(invalid("names are letters, digits, '-' and '_'"));
        }
        if body.len() > MAX_CERTIFICATE {
            return Err(Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a certificate file is at most {MAX_CERTIFICATE} bytes"),
            ));
        }
        let pem = std::str::from_utf8(body)
            .ok()
            .filter(|text| text.contains("-----BEGIN "))
            .ok_or_else(|| invalid("a certificate file is PEM"))?
            .to_owned();
        self.change(|config| {
            config
                .certificates
                .entry(service.to_owned())
                .or_default()
                .insert(name.to_owned(), pem);
            Ok(StatusCode::NO_CONTENT)
        })
    }

    /// What the appliance shows of `service`'s files: name, kind and digest.
    fn list_certificates(&self, service: &str) -> Value {
        use sha2::Digest as _;
        let files = self
            .configuration()
            .certificates
            .remove(service)
            .unwrap_or_default();
        let listed: Vec<Value> = files
            .iter()
            .map(|(name, pem)| {
                json!({"name": name, "kind": kind_of(pem),
                       "sha256": hex::encode(sha2::Sha256::digest(pem.as_bytes()))})
            })
            .collect();
        json!({ "certificates": listed })
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|presented| presented == token)
    }
}

fn vlan_tags(service: &Value) -> Vec<u16> {
    service["spec"]["vlans"]
        .as_array()
        .map(|vlans| {
            vlans
                .iter()
                .filter_map(|v| v["tag"].as_u64().and_then(|t| u16::try_from(t).ok()))
                .collect()
        })
        .unwrap_or_default()
}

type Shared = Arc<Appliance>;

fn check(appliance: &Appliance, headers: &HeaderMap) -> Result<(), Refusal> {
    if appliance.authorised(headers) {
        Ok(())
    } else {
        Err(Refusal(StatusCode::UNAUTHORIZED, "bad credentials".into()))
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body)
        .map_err(|e| Refusal(StatusCode::BAD_REQUEST, format!("invalid JSON: {e}")))
}

/// The appliance's management API.
pub fn router(appliance: Shared) -> Router {
    Router::new()
        .route("/api/v3/network/vlans", get(list_vlans))
        .route(
            "/api/v3/network/vlans/{tag}",
            put(put_vlan).delete(delete_vlan),
        )
        .route("/api/v3/virtual-services", get(list_services))
        .route(
            "/api/v3/partitions/{partition}/virtual-services/{id}",
            put(put_service).get(get_service).delete(delete_service),
        )
        .route("/api/v3/certificates/{service}", get(list_certificates))
        .route(
            "/api/v3/certificates/{service}/{name}",
            put(put_certificate),
        )
        .with_state(appliance)
}

async fn list_vlans(State(a): State<Shared>, headers: HeaderMap) -> Result<Json<Value>, Refusal> {
    check(&a, &headers)?;
    Ok(Json(
        json!({"vlans": a.configuration().vlans.into_values().collect::<Vec<_>>()}),
    ))
}

async fn put_vlan(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path(tag): Path<u16>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Refusal> {
    check(&a, &headers)?;
    a.put_vlan(tag, parse(&body)?)
}

async fn delete_vlan(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path(tag): Path<u16>,
) -> Result<StatusCode, Refusal> {
    check(&a, &headers)?;
    a.delete_vlan(tag)
}

async fn list_services(
    State(a): State<Shared>,
    headers: HeaderMap,
) -> Result<Json<Value>, Refusal> {
    check(&a, &headers)?;
    Ok(Json(json!({"virtualServices": a.configuration().services})))
}

async fn put_service(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path((partition, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Refusal> {
    check(&a, &headers)?;
    let status = a.put_service(&partition, &id, parse(&body)?)?;
    sync_telemetry(&a);
    Ok(status)
}

async fn get_service(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path((partition, id)): Path<(String, String)>,
) -> Result<Json<Value>, Refusal> {
    check(&a, &headers)?;
    a.configuration()
        .services
        .remove(&format!("{partition}/{id}"))
        .map(Json)
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, "no such virtual service".into()))
}

async fn delete_service(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path((partition, id)): Path<(String, String)>,
) -> Result<StatusCode, Refusal> {
    check(&a, &headers)?;
    let key = format!("{partition}/{id}");
    let status = a.change(|config| match config.services.remove(&key) {
        Some(_) => {
            config.certificates.remove(&id);
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(Refusal(
            StatusCode::NOT_FOUND,
            "no such virtual service".into(),
        )),
    })?;
    sync_telemetry(&a);
    Ok(status)
}

/// The appliance's telemetry: every enabled virtual server of the `prometheus` profile listens
/// on its VIP and port and answers with its own service's figures, in the metric names
/// Octavia's amphora uses, to the sources its `sourceAllowList` admits (`403` to others).
/// Starts what the configuration asks for and stops what it no longer does; call it within a
/// Tokio runtime.
pub fn sync_telemetry(appliance: &Shared) {
    let config = appliance.configuration();
    let mut wanted = BTreeMap::new();
    for (key, service) in &config.services {
        let servers = service["spec"]["virtualServers"].as_array();
        for server in servers.into_iter().flatten() {
            if server["profile"] != "prometheus" || server["enabled"] == false {
                continue;
            }
            let address = server["destination"]["address"]
                .as_str()
                .and_then(|a| a.parse::<IpAddr>().ok());
            let port = server["destination"]["port"]
                .as_u64()
                .and_then(|p| u16::try_from(p).ok());
            if let (Some(address), Some(port)) = (address, port) {
                wanted.insert(
                    SocketAddr::new(address, port),
                    (key.clone(), server.clone()),
                );
            }
        }
    }
    let mut running = appliance
        .telemetry
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    running.retain(|address, endpoint| {
        let keep = wanted
            .get(address)
            .is_some_and(|(key, server)| *key == endpoint.service && *server == endpoint.server);
        if !keep {
            endpoint.task.abort();
        }
        keep
    });
    for (address, (service, server)) in wanted {
        if running.contains_key(&address) {
            continue;
        }
        // A simulator on loopback serves loopback VIPs only.
        let listener = match std::net::TcpListener::bind(address)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(tokio::net::TcpListener::from_std)
        {
            Ok(listener) if address.ip().is_loopback() => listener,
            Ok(_) => continue,
            Err(error) => {
                eprintln!("acme-appliance: cannot serve metrics on {address}: {error}");
                continue;
            }
        };
        let app = Router::new().fallback(scrape).with_state((
            appliance.clone(),
            service.clone(),
            server.clone(),
        ));
        let task = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        running.insert(
            address,
            Endpoint {
                service,
                server,
                task: task.abort_handle(),
            },
        );
    }
}

async fn scrape(
    State((appliance, service, server)): State<(Shared, String, Value)>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
) -> Response {
    let allowed: Vec<ipnet::IpNet> = server["sourceAllowList"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|cidr| cidr.as_str())
        .filter_map(|cidr| {
            cidr.parse::<ipnet::IpNet>()
                .or_else(|_| cidr.parse::<IpAddr>().map(ipnet::IpNet::from))
                .ok()
        })
        .collect();
    if !allowed.is_empty() && !allowed.iter().any(|net| net.contains(&peer.ip())) {
        return (StatusCode::FORBIDDEN, "source not allowed\n").into_response();
    }
    let config = appliance.configuration();
    let Some(service) = config.services.get(&service) else {
        return (StatusCode::NOT_FOUND, "no such virtual service\n").into_response();
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        service_metrics(service),
    )
        .into_response()
}

/// A virtual service's figures, in Octavia's metric names.
pub fn service_metrics(service: &Value) -> String {
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    let servers = list(&service["spec"]["virtualServers"]);
    let pools = list(&service["spec"]["pools"]);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP octavia_loadbalancer_listeners Number of listeners of the load balancer.\n\
         # TYPE octavia_loadbalancer_listeners gauge\n\
         octavia_loadbalancer_listeners {}",
        servers.len()
    );
    let _ = writeln!(
        out,
        "# HELP octavia_listener_status Whether the listener is enabled on the appliance.\n\
         # TYPE octavia_listener_status gauge"
    );
    for server in &servers {
        let up = server["enabled"] != false;
        let name = server["name"].as_str().unwrap_or_default();
        let _ = writeln!(
            out,
            "octavia_listener_status{{listener=\"{name}\"}} {}",
            u8::from(up)
        );
    }
    let _ = writeln!(
        out,
        "# HELP octavia_pool_active_members Enabled members of the pool.\n\
         # TYPE octavia_pool_active_members gauge"
    );
    for pool in &pools {
        let name = pool["name"].as_str().unwrap_or_default();
        let active = list(&pool["members"])
            .iter()
            .filter(|m| m["state"] == "enabled")
            .count();
        let _ = writeln!(
            out,
            "octavia_pool_active_members{{pool=\"{name}\"}} {active}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP octavia_member_weight Weight of the member.\n\
         # TYPE octavia_member_weight gauge"
    );
    for pool in &pools {
        let name = pool["name"].as_str().unwrap_or_default();
        for member in list(&pool["members"]) {
            let _ = writeln!(
                out,
                "octavia_member_weight{{pool=\"{name}\",member=\"{}\"}} {}",
                member["name"].as_str().unwrap_or_default(),
                member["ratio"].as_u64().unwrap_or(0)
            );
        }
    }
    out
}

async fn put_certificate(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path((service, name)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<StatusCode, Refusal> {
    check(&a, &headers)?;
    a.put_certificate(&service, &name, &body)
}

async fn list_certificates(
    State(a): State<Shared>,
    headers: HeaderMap,
    Path(service): Path<String>,
) -> Result<Json<Value>, Refusal> {
    check(&a, &headers)?;
    Ok(Json(a.list_certificates(&service)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vlan(tag: u16, interface: &str) -> Vlan {
        Vlan {
            tag,
            interface: interface.into(),
            network: format!("net-{tag}"),
            cidr: "10.0.0.0/24".into(),
        }
    }

    fn service(id: &str, vip: &str, vlans: &[u16]) -> Value {
        json!({"apiVersion": "acme.adc/v3", "kind": "VirtualService",
               "metadata": {"name": id, "partition": "p"},
               "spec": {"vip": vip, "vlans": vlans.iter().map(|t| json!({"tag": t})).collect::<Vec<_>>(),
                        "virtualServers": [], "pools": []}})
    }

    fn limits() -> Limits {
        Limits {
            interfaces: 2,
            max_vlans_per_interface: 1,
            max_virtual_services: 2,
        }
    }

    #[test]
    fn enforces_vlan_limits() {
        let a = Appliance::new(limits(), None, None);
        assert_eq!(
            a.put_vlan(100, vlan(100, "1.1")).ok(),
            Some(StatusCode::CREATED)
        );
        assert_eq!(a.put_vlan(100, vlan(100, "1.1")).ok(), Some(StatusCode::OK));
        assert_eq!(
            a.put_vlan(101, vlan(101, "1.1")).err().map(|r| r.0),
            Some(StatusCode::CONFLICT)
        );
        assert_eq!(
            a.put_vlan(102, vlan(102, "1.3")).err().map(|r| r.0),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            a.put_vlan(103, vlan(104, "1.2")).err().map(|r| r.0),
            Some(StatusCode::UNPROCESSABLE_ENTITY)
        );
        assert_eq!(
            a.put_vlan(101, vlan(101, "1.2")).ok(),
            Some(StatusCode::CREATED)
        );
        assert_eq!(a.configuration().vlans.len(), 2);
    }

    #[test]
    fn refuses_overlapping_vips_and_missing_vlans() {
        let a = Appliance::new(limits(), None, None);
        a.put_vlan(100, vlan(100, "1.1")).ok().expect("vlan");
        assert!(
            a.put_service("p", "a", service("a", "10.0.0.5", &[100]))
                .is_ok()
        );
        let overlap = a
            .put_service("p", "b", service("b", "10.0.0.5", &[]))
            .expect_err("refused");
        assert!(overlap.1.contains("overlapping"), "{}", overlap.1);
        let missing = a
            .put_service("p", "c", service("c", "10.0.0.6", &[200]))
            .expect_err("refused");
        assert!(missing.1.contains("VLAN 200"), "{}", missing.1);
        assert!(
            a.put_service("p", "d", service("d", "10.0.0.7", &[]))
                .is_ok()
        );
        let full = a
            .put_service("p", "e", service("e", "10.0.0.8", &[]))
            .expect_err("refused");
        assert!(full.1.contains("limit"), "{}", full.1);
        // A VLAN in use stays.
        assert_eq!(
            a.delete_vlan(100).err().map(|r| r.0),
            Some(StatusCode::CONFLICT)
        );
        assert_eq!(a.configuration().services.len(), 2);
    }

    #[test]
    fn keeps_its_configuration_across_restarts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("appliance.json");
        let a = Appliance::new(limits(), None, Some(file.clone()));
        a.put_vlan(100, vlan(100, "1.1")).ok().expect("vlan");
        let again = Appliance::new(limits(), None, Some(file));
        assert_eq!(again.configuration().vlans.len(), 1);
    }
}
