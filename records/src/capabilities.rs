//! What a driver version supports, in the host's types: the driver's `capabilities` answer,
//! converted once when the version is loaded. The control plane checks requests against it
//! (Octavia's 501s), the scheduler reads its limits and protocols, and the admin API shows it;
//! none of them sees the driver contract's own types.

use serde::{Deserialize, Serialize};

use crate::model::{DeviceKind, L7Action, L7RuleType, LbAlgorithm, MonitorType, Protocol};

/// A driver version's capabilities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The name it reports (checked to be a usable driver name at load).
    pub name: String,
    /// Who makes it.
    pub vendor: String,
    /// The version it reports.
    pub version: String,
    /// The kinds of device it manages.
    pub device_kinds: Vec<DeviceKind>,
    /// The listener and pool protocols it renders.
    pub protocols: Vec<Protocol>,
    /// The pool algorithms it renders.
    pub algorithms: Vec<LbAlgorithm>,
    /// Whether it asks for new (virtual) devices when none would do.
    pub can_spawn: bool,
    /// Device limits the host's filters enforce before asking it.
    pub limits: Limits,
    /// The metadata keys a flavor profile may set for it.
    pub flavor_keys: Vec<ProfileKey>,
    /// What it supports beyond protocols and algorithms.
    pub features: Features,
}

/// Device limits a driver declares.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// VIPs one device can hold.
    pub max_vips_per_device: Option<u32>,
    /// VLANs one interface can carry.
    pub max_vlans_per_interface: Option<u32>,
    /// Whether one device can hold overlapping addresses (of different projects).
    pub overlapping_ips: bool,
}

/// A metadata key a flavor or availability-zone profile may set, with its help text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileKey {
    /// The key.
    pub name: String,
    /// What it does, as Octavia's capability listings show it.
    pub description: String,
}

/// What a driver supports beyond protocols and algorithms; the host answers 501 for a request
/// that needs anything not listed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Features {
    /// L7 policy actions it renders.
    pub l7_actions: Vec<L7Action>,
    /// L7 rule types it renders.
    pub l7_rule_kinds: Vec<L7RuleType>,
    /// The `insert_headers` names it renders.
    pub insert_headers: Vec<String>,
    /// The metadata keys an availability-zone profile may set for it.
    pub availability_zone_keys: Vec<ProfileKey>,
    /// What of TLS it renders, beyond `TERMINATED_HTTPS` among its protocols.
    pub tls: Vec<TlsFeature>,
    /// The health monitor types it renders.
    pub health_monitor_types: Vec<MonitorType>,
}

/// What of TLS a driver renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TlsFeature {
    /// Several certificates on a listener, chosen by the client's SNI (`sni_container_refs`).
    Sni,
    /// Client certificates checked against a CA and its revocation list.
    ClientAuthentication,
    /// The `Strict-Transport-Security` header (`hsts_*`).
    Hsts,
    /// TLS towards members (`tls_enabled` on pools).
    PoolTls,
    /// A client certificate towards members (a pool's `tls_container_ref`).
    PoolClientCertificate,
}
