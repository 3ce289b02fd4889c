//! The control plane's records: Octavia's resources (load balancers and their children,
//! flavors), the admin extensions (devices, networks), and jobs. What the store keeps, in the
//! vocabulary of Octavia's v2 API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Bumped when a record's stored shape changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// Octavia's provisioning states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProvisioningStatus {
    Active,
    Deleted,
    Error,
    PendingCreate,
    PendingUpdate,
    PendingDelete,
}

impl ProvisioningStatus {
    pub fn is_pending(self) -> bool {
        matches!(
            self,
            Self::PendingCreate | Self::PendingUpdate | Self::PendingDelete
        )
    }
}

/// Octavia's operating states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperatingStatus {
    Online,
    Draining,
    Offline,
    Degraded,
    Error,
    NoMonitor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
    #[serde(rename = "TERMINATED_HTTPS")]
    TerminatedHttps,
    #[serde(rename = "PROXY")]
    Proxy,
    #[serde(rename = "PROXYV2")]
    ProxyV2,
    /// Octavia's metrics listener (API 2.25): the load balancer's metrics in Prometheus' text
    /// format. A listener protocol only; such a listener has no pools and no L7 policies.
    #[serde(rename = "PROMETHEUS")]
    Prometheus,
}

impl Protocol {
    /// Octavia's name of the protocol (`TCP`, `TERMINATED_HTTPS`, `PROXYV2`, …).
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Https => "HTTPS",
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::TerminatedHttps => "TERMINATED_HTTPS",
            Protocol::Proxy => "PROXY",
            Protocol::ProxyV2 => "PROXYV2",
            Protocol::Prometheus => "PROMETHEUS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LbAlgorithm {
    RoundRobin,
    LeastConnections,
    SourceIp,
    SourceIpPort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitorType {
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
    #[serde(rename = "PING")]
    Ping,
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "TLS-HELLO")]
    TlsHello,
    #[serde(rename = "UDP-CONNECT")]
    UdpConnect,
    #[serde(rename = "SCTP")]
    Sctp,
}

/// The HTTP version of an HTTP(S) health check's request (Octavia's `http_version`, a number
/// in its API: `1.0` or `1.1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HttpVersion {
    #[serde(rename = "1.0")]
    Http10,
    #[serde(rename = "1.1")]
    Http11,
}

impl HttpVersion {
    /// The number Octavia's API shows.
    pub fn number(self) -> f64 {
        match self {
            Self::Http10 => 1.0,
            Self::Http11 => 1.1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PersistenceType {
    SourceIp,
    HttpCookie,
    AppCookie,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionPersistence {
    #[serde(rename = "type")]
    pub kind: PersistenceType,
    #[serde(default)]
    pub cookie_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_timeout: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_granularity: Option<String>,
}

/// Fields every Octavia resource of a project carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Common {
    pub id: String,
    pub project_id: String,
    pub name: String,
    pub description: String,
    pub admin_state_up: bool,
    pub provisioning_status: ProvisioningStatus,
    pub operating_status: OperatingStatus,
    pub created_at: String,
    pub updated_at: Option<String>,
    pub tags: Vec<String>,
}

impl Common {
    /// Sets both statuses; a change stamps `updated_at` with `now`, as Octavia does on every
    /// status change (clients and its test suite wait for `updated_at` after a create).
    pub fn set_statuses(
        &mut self,
        provisioning: ProvisioningStatus,
        operating: OperatingStatus,
        now: &str,
    ) {
        if self.provisioning_status != provisioning || self.operating_status != operating {
            self.provisioning_status = provisioning;
            self.operating_status = operating;
            self.updated_at = Some(now.to_owned());
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadBalancer {
    #[serde(flatten)]
    pub common: Common,
    pub vip_address: String,
    pub vip_network_id: String,
    pub vip_subnet_id: String,
    pub vip_port_id: String,
    pub provider: String,
    pub flavor_id: Option<String>,
    /// The device the load balancer is placed on, once scheduled.
    pub device_id: Option<String>,
    /// Why the last provisioning failed, for the user to read.
    pub fault: Option<String>,
    /// A move to another device the worker has yet to finish.
    #[serde(default)]
    pub migration: Option<Migration>,
    /// The availability zone it was created in (its name).
    #[serde(default)]
    pub availability_zone: Option<String>,
}

/// Moving a load balancer off its device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// The device it leaves.
    pub from: String,
    /// The device the operator named; otherwise the scheduler chooses.
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listener {
    #[serde(flatten)]
    pub common: Common,
    pub loadbalancer_id: String,
    pub protocol: Protocol,
    pub protocol_port: u16,
    /// -1: unlimited.
    pub connection_limit: i64,
    pub default_pool_id: Option<String>,
    pub timeout_client_data: u32,
    pub timeout_member_connect: u32,
    pub timeout_member_data: u32,
    pub timeout_tcp_inspect: u32,
    pub allowed_cidrs: Vec<String>,
    /// Headers added to requests towards members (`X-Forwarded-For` and kin), each "true".
    #[serde(default)]
    pub insert_headers: BTreeMap<String, String>,
    /// TLS towards clients (`TERMINATED_HTTPS`), with Octavia's defaults filled in.
    #[serde(default)]
    pub tls: ListenerTls,
}

/// Whether a listener asks clients for a certificate (Octavia's `client_authentication`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClientAuthentication {
    #[default]
    None,
    Optional,
    Mandatory,
}

/// A listener's TLS settings as Octavia stores them. References name secrets of the key
/// manager; no key material is kept here.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListenerTls {
    pub default_tls_container_ref: Option<String>,
    pub sni_container_refs: Vec<String>,
    pub client_ca_tls_container_ref: Option<String>,
    pub client_authentication: ClientAuthentication,
    pub client_crl_container_ref: Option<String>,
    /// An OpenSSL cipher string; `None` on listeners that do not terminate TLS.
    pub tls_ciphers: Option<String>,
    /// Octavia's version names (`TLSv1.2`); `None` on listeners that do not terminate TLS.
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
    pub hsts_max_age: Option<u32>,
    pub hsts_include_subdomains: bool,
    pub hsts_preload: bool,
}

/// A pool's TLS towards its members, as Octavia stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PoolTls {
    pub tls_enabled: bool,
    /// The client certificate presented to members.
    pub tls_container_ref: Option<String>,
    /// The CA members' certificates must chain to.
    pub ca_tls_container_ref: Option<String>,
    pub crl_container_ref: Option<String>,
    pub tls_ciphers: Option<String>,
    pub tls_versions: Option<Vec<String>>,
    pub alpn_protocols: Option<Vec<String>>,
}

/// What a matching L7 policy does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum L7Action {
    Reject,
    RedirectToUrl,
    RedirectPrefix,
    RedirectToPool,
}

/// What an L7 rule looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum L7RuleType {
    HostName,
    Path,
    FileType,
    Header,
    Cookie,
}

/// How an L7 rule compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum L7CompareType {
    Regex,
    StartsWith,
    EndsWith,
    Contains,
    EqualTo,
}

/// A listener's layer-7 policy: applies when all its rules match; the first by `position` wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Policy {
    #[serde(flatten)]
    pub common: Common,
    pub loadbalancer_id: String,
    pub listener_id: String,
    pub action: L7Action,
    /// 1-based, contiguous among the listener's policies.
    pub position: u32,
    pub redirect_pool_id: Option<String>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    pub redirect_http_code: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct L7Rule {
    #[serde(flatten)]
    pub common: Common,
    pub loadbalancer_id: String,
    pub l7policy_id: String,
    #[serde(rename = "type")]
    pub kind: L7RuleType,
    pub compare_type: L7CompareType,
    pub key: Option<String>,
    pub value: String,
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    #[serde(flatten)]
    pub common: Common,
    pub loadbalancer_id: String,
    pub protocol: Protocol,
    pub lb_algorithm: LbAlgorithm,
    pub session_persistence: Option<SessionPersistence>,
    pub healthmonitor_id: Option<String>,
    /// TLS towards the members.
    #[serde(default)]
    pub tls: PoolTls,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    #[serde(flatten)]
    pub common: Common,
    pub loadbalancer_id: String,
    pub pool_id: String,
    pub address: String,
    pub protocol_port: u16,
    pub weight: u32,
    pub backup: bool,
    pub subnet_id: Option<String>,
    pub monitor_address: Option<String>,
    pub monitor_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthMonitor {
    #[serde(flatten)]
    pub common: Common,
    pub loadbalancer_id: String,
    pub pool_id: String,
    #[serde(rename = "type")]
    pub kind: MonitorType,
    pub delay: u32,
    pub timeout: u32,
    pub max_retries: u32,
    pub max_retries_down: u32,
    pub http_method: Option<String>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    /// Records written before the field existed read as unset.
    #[serde(default)]
    pub http_version: Option<HttpVersion>,
    /// The `Host` header of an HTTP/1.1 check request.
    #[serde(default)]
    pub domain_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlavorProfile {
    pub id: String,
    pub name: String,
    /// The provider (driver). Beyond Octavia, `flavor_data` may list several under
    /// `"providers"`; then any of them is eligible.
    pub provider_name: String,
    /// JSON object text, as Octavia keeps it.
    pub flavor_data: String,
}

impl FlavorProfile {
    /// The providers the profile makes eligible: `provider_name`, plus any named in
    /// `flavor_data`'s `"providers"` list.
    pub fn providers(&self) -> Vec<String> {
        let mut providers = vec![self.provider_name.clone()];
        if let Ok(serde_json::Value::Object(data)) =
            serde_json::from_str::<serde_json::Value>(&self.flavor_data)
            && let Some(serde_json::Value::Array(more)) = data.get("providers")
        {
            for name in more.iter().filter_map(serde_json::Value::as_str) {
                if !providers.iter().any(|p| p == name) {
                    providers.push(name.to_owned());
                }
            }
        }
        providers
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flavor {
    pub id: String,
    pub name: String,
    pub description: String,
    pub flavor_profile_id: String,
    pub enabled: bool,
}

/// An availability zone's provider and the metadata its driver validates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityZoneProfile {
    pub id: String,
    pub name: String,
    pub provider_name: String,
    /// JSON object text, as Octavia keeps it.
    pub availability_zone_data: String,
}

/// An availability zone, by its name (Octavia's key for zones). A load balancer created in it
/// is placed only on devices of the zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AvailabilityZone {
    pub name: String,
    pub description: String,
    pub availability_zone_profile_id: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Physical,
    Virtual,
}

/// A device a driver manages. `credentials` are stored, never returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub id: String,
    pub name: String,
    pub kind: DeviceKind,
    pub driver: String,
    pub management_url: String,
    pub credentials: Option<Credentials>,
    pub capacity: u32,
    /// None: shared by every project (admin-registered).
    pub project_id: Option<String>,
    pub cluster: Option<String>,
    /// Network ids the device is wired to: registered with it, or attached by placement.
    pub networks: Vec<String>,
    /// Networks placement attached, each with the load balancers that need it; the last one
    /// to go releases the attachment.
    #[serde(default)]
    pub attachments: BTreeMap<String, std::collections::BTreeSet<String>>,
    pub metadata: BTreeMap<String, String>,
    pub enabled: bool,
    /// The availability zone the device is in.
    #[serde(default)]
    pub availability_zone: Option<String>,
    /// Set when the host's provisioner started the device: its handle for stopping it. Such a
    /// device is deleted, and stopped, once its last load balancer leaves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<String>,
    /// On a store several hosts share: the host whose provisioner started the device. Only it
    /// adopts, restarts and stops the device's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub created_at: String,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub id: String,
    pub name: String,
    pub cidr: String,
    pub gateway_ip: Option<String>,
}

/// A network VIP addresses are allocated from, with its subnets and an optional VLAN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// None: shared.
    pub project_id: Option<String>,
    pub vlan: Option<u16>,
    pub subnets: Vec<Subnet>,
    pub created_at: String,
}

/// Work the worker owes a load balancer: make the device match the stored model (or remove
/// the load balancer when it is `PENDING_DELETE`).
///
/// A load balancer has one job at a time, keyed by its id; each change that asks for one gets
/// a new [`ticket`](Job::ticket). A run's outcome commits only while the stored job still
/// carries the ticket the run started from: a run that ends after its job was finished by
/// another run, or after a newer change was acknowledged, commits nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub loadbalancer_id: String,
    pub created_at: String,
    pub attempts: u32,
    /// The trace of the request that asked for the job (W3C `traceparent`), which the job's
    /// own spans continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Which change this job finishes: new with every change (empty in jobs stored before
    /// tickets existed, which then match only each other).
    #[serde(default)]
    pub ticket: String,
}

impl Job {
    /// The job a change to load balancer `lb_id` asks for, with a ticket of its own.
    pub fn new(lb_id: &str, traceparent: Option<String>) -> Self {
        Self {
            id: lb_id.to_owned(),
            loadbalancer_id: lb_id.to_owned(),
            created_at: crate::ids::now(),
            attempts: 0,
            traceparent,
            ticket: crate::ids::new_id(),
        }
    }
}

pub use crate::placement::{PlacedBy, Placement};

/// One driver (an Octavia provider) and the versions an operator has uploaded of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverRecord {
    pub name: String,
    /// SHA-256 of the version that serves the driver's load balancers, if any.
    pub active: Option<String>,
    /// Versions active before, the most recent last: what `rollback` goes back to.
    #[serde(default)]
    pub previous: Vec<String>,
    /// No new placements; existing load balancers keep working.
    #[serde(default)]
    pub draining: bool,
    /// A version taking a share of new placements before it takes all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Canary>,
    /// The trusted key the name belongs to: the signer of its first signed version, or whom an
    /// admin handed it to. Versions signed by another key (or unsigned) are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publisher: Option<String>,
    pub versions: Vec<DriverVersion>,
}

/// A canary: `percent` of new placements go to version `sha256`, which also serves the load
/// balancers it placed; the active version serves the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub sha256: String,
    pub percent: u8,
}

/// A quarantined driver version: no new placements and no calls for its load balancers until
/// an admin releases it. Stored, so a restart does not lift it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantine {
    pub sha256: String,
    pub driver: String,
    pub version: String,
    pub reason: String,
    pub at: String,
}

/// A project's quotas: the most objects of each kind it may have. `None` takes the host's
/// default; -1 is unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub project_id: String,
    pub loadbalancer: Option<i64>,
    pub listener: Option<i64>,
    pub pool: Option<i64>,
    pub member: Option<i64>,
    pub healthmonitor: Option<i64>,
    pub l7policy: Option<i64>,
    pub l7rule: Option<i64>,
}

/// One uploaded driver version. Its bytes are kept by SHA-256 beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriverVersion {
    pub sha256: String,
    /// The version the component reports.
    pub version: String,
    /// The WIT contract it implements (`lbaas:driver@0.3.0`).
    pub wit: Option<String>,
    pub size: u64,
    pub uploaded_at: String,
    /// `upload` (the admin API), `directory` (`--driver-dir`).
    pub source: String,
    /// The signature given with the upload (hex), checked again at every load.
    pub signature: Option<String>,
    /// The trusted key that signed it.
    pub signed_by: Option<String>,
    /// Refused for activation until enabled again.
    #[serde(default)]
    pub disabled: bool,
    pub activated_at: Option<String>,
}

impl DriverRecord {
    pub fn version(&self, sha256: &str) -> Option<&DriverVersion> {
        self.versions.iter().find(|v| v.sha256 == sha256)
    }
}

/// Credentials the host injects into requests to a device. Never shown to a driver.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Credentials {
    Basic { username: String, password: String },
    Bearer { token: String },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, <redacted>)"),
            Credentials::Bearer { .. } => f.write_str("Bearer(<redacted>)"),
        }
    }
}

/// A secret a project stored in the host's own key manager: a certificate bundle (PKCS#12 or
/// PEM) its listeners name by reference, say. Its payload is sealed under the host's secrets
/// key and bound to this record's id and project; nothing else here is secret. The payload is
/// never answered back: only the host opens it, to configure a load balancer's devices.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret {
    pub id: String,
    pub project_id: String,
    pub name: Option<String>,
    /// Barbican's secret type: `certificate`, `private`, `opaque`, …
    pub secret_type: String,
    /// The payload's content type (`text/plain`, `application/octet-stream`, …).
    pub content_type: String,
    pub created_at: String,
    /// When it is gone (RFC 3339), if ever.
    pub expiration: Option<String>,
    /// When the certificate it holds stops being valid (seconds since the Unix epoch): a
    /// bundle's served certificate, or a CA's first; none for anything else.
    #[serde(default)]
    pub not_after: Option<i64>,
    /// The sealed payload, base64.
    pub sealed: String,
}
