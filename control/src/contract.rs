//! The control plane's records in the driver contract's types: what `select`, `translate`,
//! `apply`, `remove` and the profile checks receive. The contract's types come from the
//! runtime; which record becomes which of them is the control plane's to say.

use lbaas_core::model;
use lbaas_runtime as wit;

/// Why a flavor's or availability zone's profile data is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileDataError {
    /// It is not JSON.
    #[error("flavor_data is not valid JSON: {0}")]
    NotJson(String),
    /// It is JSON, but not an object.
    #[error("flavor_data must be a JSON object")]
    NotAnObject,
    /// A key's value is an array, an object or null.
    #[error("flavor_data key `{key}` must be a string, number or boolean, not {value}")]
    NotScalar {
        /// The key.
        key: String,
        /// Its value.
        value: String,
    },
    /// The `scheduler` key is not the placement weights.
    #[error(
        "flavor_data `scheduler` must be an object of least_loaded, wired, project_affinity, network_affinity numbers: {0}"
    )]
    Weights(String),
}

/// A protocol in the contract's type.
pub fn protocol(p: model::Protocol) -> wit::Protocol {
    match p {
        model::Protocol::Http => wit::Protocol::Http,
        model::Protocol::Https => wit::Protocol::Https,
        model::Protocol::Tcp => wit::Protocol::Tcp,
        model::Protocol::Udp => wit::Protocol::Udp,
        model::Protocol::Sctp => wit::Protocol::Sctp,
        model::Protocol::TerminatedHttps => wit::Protocol::TerminatedHttps,
        model::Protocol::Proxy => wit::Protocol::Proxy,
        model::Protocol::ProxyV2 => wit::Protocol::ProxyV2,
        model::Protocol::Prometheus => wit::Protocol::Prometheus,
    }
}

/// An algorithm in the contract's type.
pub fn algorithm(a: model::LbAlgorithm) -> wit::Algorithm {
    match a {
        model::LbAlgorithm::RoundRobin => wit::Algorithm::RoundRobin,
        model::LbAlgorithm::LeastConnections => wit::Algorithm::LeastConnections,
        model::LbAlgorithm::SourceIp => wit::Algorithm::SourceIp,
        model::LbAlgorithm::SourceIpPort => wit::Algorithm::SourceIpPort,
    }
}

fn monitor_kind(t: model::MonitorType) -> wit::HealthMonitorKind {
    match t {
        model::MonitorType::Http => wit::HealthMonitorKind::Http,
        model::MonitorType::Https => wit::HealthMonitorKind::Https,
        model::MonitorType::Ping => wit::HealthMonitorKind::Ping,
        model::MonitorType::Tcp => wit::HealthMonitorKind::Tcp,
        model::MonitorType::TlsHello => wit::HealthMonitorKind::TlsHello,
        model::MonitorType::UdpConnect => wit::HealthMonitorKind::UdpConnect,
        model::MonitorType::Sctp => wit::HealthMonitorKind::Sctp,
    }
}

fn persistence(p: &model::SessionPersistence) -> wit::SessionPersistence {
    wit::SessionPersistence {
        kind: match p.kind {
            model::PersistenceType::SourceIp => wit::PersistenceKind::SourceIp,
            model::PersistenceType::HttpCookie => wit::PersistenceKind::HttpCookie,
            model::PersistenceType::AppCookie => wit::PersistenceKind::AppCookie,
        },
        cookie_name: p.cookie_name.clone(),
    }
}

/// A network as drivers see it.
pub fn network(n: &model::Network) -> wit::Network {
    wit::Network {
        id: n.id.clone(),
        cidr: n
            .subnets
            .first()
            .map(|s| s.cidr.clone())
            .unwrap_or_default(),
        vlan: n.vlan,
    }
}

fn entries(map: &std::collections::BTreeMap<String, String>) -> Vec<wit::Entry> {
    map.iter()
        .map(|(key, value)| wit::Entry {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// A device as drivers see it (its credentials stay with the host).
pub fn device(d: &model::Device) -> wit::Device {
    wit::Device {
        id: d.id.clone(),
        name: d.name.clone(),
        kind: match d.kind {
            model::DeviceKind::Physical => wit::DeviceKind::Physical,
            model::DeviceKind::Virtual => wit::DeviceKind::Virtual,
        },
        capacity: d.capacity,
        cluster: d.cluster.clone(),
        owner_project: d.project_id.clone(),
        networks: d.networks.clone(),
        metadata: entries(&d.metadata),
        availability_zone: d.availability_zone.clone(),
    }
}

/// A flavor's metadata: the profile's `flavor_data` object, scalar values as text.
pub fn flavor(name: &str, flavor_data: &str) -> Result<wit::Flavor, ProfileDataError> {
    let data: serde_json::Value =
        serde_json::from_str(flavor_data).map_err(|e| ProfileDataError::NotJson(e.to_string()))?;
    let object = data.as_object().ok_or(ProfileDataError::NotAnObject)?;
    let metadata = object
        .iter()
        // The host's own keys: eligible providers and scheduler weights.
        .filter(|(key, _)| !matches!(key.as_str(), "providers" | "scheduler"))
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                other => {
                    return Err(ProfileDataError::NotScalar {
                        key: key.clone(),
                        value: other.to_string(),
                    });
                }
            };
            Ok(wit::Entry {
                key: key.clone(),
                value,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(wit::Flavor {
        name: name.to_owned(),
        metadata,
    })
}

/// A load balancer's children, as stored.
fn l7_policy(
    p: &model::L7Policy,
    rules: &[&model::L7Rule],
    pools: &[&model::Pool],
) -> wit::L7Policy {
    let live =
        |c: &model::Common| c.provisioning_status != model::ProvisioningStatus::PendingDelete;
    // A policy whose pool is being deleted rejects, as it will once the pool is gone.
    let pool = p.redirect_pool_id.clone().filter(|id| {
        pools
            .iter()
            .any(|pool| &pool.common.id == id && live(&pool.common))
    });
    let action = match p.action {
        model::L7Action::RedirectToPool if pool.is_none() => wit::L7Action::Reject,
        other => l7_action(other),
    };
    wit::L7Policy {
        id: p.common.id.clone(),
        name: p.common.name.clone(),
        action,
        position: p.position,
        redirect_pool_id: pool.filter(|_| action == wit::L7Action::RedirectToPool),
        redirect_url: p.redirect_url.clone(),
        redirect_prefix: p.redirect_prefix.clone(),
        redirect_http_code: p.redirect_http_code,
        rules: rules
            .iter()
            .filter(|r| r.l7policy_id == p.common.id && live(&r.common))
            .map(|r| wit::L7Rule {
                id: r.common.id.clone(),
                kind: l7_rule_kind(r.kind),
                compare: l7_compare(r.compare_type),
                key: r.key.clone(),
                value: r.value.clone(),
                invert: r.invert,
                admin_state_up: r.common.admin_state_up,
            })
            .collect(),
        admin_state_up: p.common.admin_state_up,
    }
}

/// An L7 action in the contract's type.
pub fn l7_action(a: model::L7Action) -> wit::L7Action {
    match a {
        model::L7Action::Reject => wit::L7Action::Reject,
        model::L7Action::RedirectToUrl => wit::L7Action::RedirectToUrl,
        model::L7Action::RedirectPrefix => wit::L7Action::RedirectPrefix,
        model::L7Action::RedirectToPool => wit::L7Action::RedirectToPool,
    }
}

/// An L7 rule type in the contract's type.
pub fn l7_rule_kind(k: model::L7RuleType) -> wit::L7RuleKind {
    match k {
        model::L7RuleType::HostName => wit::L7RuleKind::HostName,
        model::L7RuleType::Path => wit::L7RuleKind::Path,
        model::L7RuleType::FileType => wit::L7RuleKind::FileType,
        model::L7RuleType::Header => wit::L7RuleKind::Header,
        model::L7RuleType::Cookie => wit::L7RuleKind::Cookie,
    }
}

fn l7_compare(c: model::L7CompareType) -> wit::L7Compare {
    match c {
        model::L7CompareType::Regex => wit::L7Compare::Regex,
        model::L7CompareType::StartsWith => wit::L7Compare::StartsWith,
        model::L7CompareType::EndsWith => wit::L7Compare::EndsWith,
        model::L7CompareType::Contains => wit::L7Compare::Contains,
        model::L7CompareType::EqualTo => wit::L7Compare::EqualTo,
    }
}

/// A load balancer's children, gathered from the snapshot for [`load_balancer`].
pub struct Children<'a> {
    /// Its listeners.
    pub listeners: Vec<&'a model::Listener>,
    /// Its pools.
    pub pools: Vec<&'a model::Pool>,
    /// Its pools' members.
    pub members: Vec<&'a model::Member>,
    /// Its pools' health monitors.
    pub monitors: Vec<&'a model::HealthMonitor>,
    /// Each listener's policies, in `position` order.
    pub l7policies: Vec<&'a model::L7Policy>,
    /// Its policies' rules.
    pub l7rules: Vec<&'a model::L7Rule>,
}

/// A file the job has yet to open: its handle is the secret's reference until
/// [`crate::worker`] swaps it for a random one and the file itself (`CertificateFiles`).
fn pending(reference: &str) -> wit::TlsFile {
    wit::TlsFile {
        handle: reference.to_owned(),
        certificates: Vec::new(),
    }
}

/// Octavia's TLS version names, as the contract has them; a name it does not know is left out.
fn tls_versions(names: Option<&Vec<String>>) -> Vec<wit::TlsVersion> {
    names
        .into_iter()
        .flatten()
        .filter_map(|name| match name.as_str() {
            "SSLv3" => Some(wit::TlsVersion::SslV3),
            "TLSv1" => Some(wit::TlsVersion::TlsV1),
            "TLSv1.1" => Some(wit::TlsVersion::TlsV11),
            "TLSv1.2" => Some(wit::TlsVersion::TlsV12),
            "TLSv1.3" => Some(wit::TlsVersion::TlsV13),
            _ => None,
        })
        .collect()
}

fn listener_tls(tls: &model::ListenerTls) -> wit::ListenerTls {
    wit::ListenerTls {
        default_certificate: tls.default_tls_container_ref.as_deref().map(pending),
        sni_certificates: tls.sni_container_refs.iter().map(|r| pending(r)).collect(),
        client_authentication: match tls.client_authentication {
            model::ClientAuthentication::None => wit::ClientAuthentication::None,
            model::ClientAuthentication::Optional => wit::ClientAuthentication::Optional,
            model::ClientAuthentication::Mandatory => wit::ClientAuthentication::Mandatory,
        },
        client_ca: tls.client_ca_tls_container_ref.as_deref().map(pending),
        client_crl: tls.client_crl_container_ref.as_deref().map(pending),
        ciphers: tls.tls_ciphers.clone(),
        versions: tls_versions(tls.tls_versions.as_ref()),
        alpn_protocols: tls.alpn_protocols.clone().unwrap_or_default(),
        hsts: tls.hsts_max_age.map(|max_age| wit::Hsts {
            max_age,
            include_subdomains: tls.hsts_include_subdomains,
            preload: tls.hsts_preload,
        }),
    }
}

fn pool_tls(tls: &model::PoolTls) -> Option<wit::PoolTls> {
    tls.tls_enabled.then(|| wit::PoolTls {
        client_certificate: tls.tls_container_ref.as_deref().map(pending),
        ca: tls.ca_tls_container_ref.as_deref().map(pending),
        crl: tls.crl_container_ref.as_deref().map(pending),
        ciphers: tls.tls_ciphers.clone(),
        versions: tls_versions(tls.tls_versions.as_ref()),
        alpn_protocols: tls.alpn_protocols.clone().unwrap_or_default(),
    })
}

/// The whole load balancer as a driver sees it. Children marked `PENDING_DELETE` are left
/// out: the device must end up without them.
pub fn load_balancer(
    lb: &model::LoadBalancer,
    children: &Children<'_>,
    vip_network: wit::Network,
    member_networks: Vec<wit::Network>,
    flavor: Option<wit::Flavor>,
) -> wit::LoadBalancer {
    let Children {
        listeners,
        pools,
        members,
        monitors,
        l7policies,
        l7rules,
    } = children;
    let live =
        |c: &model::Common| c.provisioning_status != model::ProvisioningStatus::PendingDelete;
    let wit_pools = pools
        .iter()
        .filter(|p| live(&p.common))
        .map(|p| wit::Pool {
            id: p.common.id.clone(),
            name: p.common.name.clone(),
            protocol: protocol(p.protocol),
            algorithm: algorithm(p.lb_algorithm),
            members: members
                .iter()
                .filter(|m| m.pool_id == p.common.id && live(&m.common))
                .map(|m| wit::Member {
                    id: m.common.id.clone(),
                    name: m.common.name.clone(),
                    address: m.address.clone(),
                    protocol_port: m.protocol_port,
                    weight: m.weight,
                    backup: m.backup,
                    admin_state_up: m.common.admin_state_up,
                    subnet_id: m.subnet_id.clone(),
                    monitor_address: m.monitor_address.clone(),
                    monitor_port: m.monitor_port,
                })
                .collect(),
            health_monitor: monitors
                .iter()
                .find(|h| h.pool_id == p.common.id && live(&h.common))
                .map(|h| wit::HealthMonitor {
                    id: h.common.id.clone(),
                    kind: monitor_kind(h.kind),
                    delay: h.delay,
                    timeout: h.timeout,
                    max_retries: h.max_retries,
                    max_retries_down: h.max_retries_down,
                    http_method: h.http_method.clone(),
                    url_path: h.url_path.clone(),
                    expected_codes: h.expected_codes.clone(),
                    admin_state_up: h.common.admin_state_up,
                    http_version: h.http_version.map(|version| match version {
                        model::HttpVersion::Http10 => wit::HttpVersion::Http10,
                        model::HttpVersion::Http11 => wit::HttpVersion::Http11,
                    }),
                    domain_name: h.domain_name.clone(),
                }),
            session_persistence: p.session_persistence.as_ref().map(persistence),
            admin_state_up: p.common.admin_state_up,
            tls: pool_tls(&p.tls),
        })
        .collect();
    let wit_listeners = listeners
        .iter()
        .filter(|l| live(&l.common))
        .map(|l| wit::Listener {
            id: l.common.id.clone(),
            name: l.common.name.clone(),
            protocol: protocol(l.protocol),
            protocol_port: l.protocol_port,
            connection_limit: u32::try_from(l.connection_limit).ok(),
            default_pool_id: l
                .default_pool_id
                .clone()
                .filter(|id| pools.iter().any(|p| &p.common.id == id && live(&p.common))),
            timeout_client_data: l.timeout_client_data,
            timeout_member_connect: l.timeout_member_connect,
            timeout_member_data: l.timeout_member_data,
            timeout_tcp_inspect: l.timeout_tcp_inspect,
            allowed_cidrs: l.allowed_cidrs.clone(),
            admin_state_up: l.common.admin_state_up,
            l7_policies: l7policies
                .iter()
                .filter(|p| p.listener_id == l.common.id && live(&p.common))
                .map(|p| l7_policy(p, l7rules, pools))
                .collect(),
            insert_headers: entries(&l.insert_headers),
            tls: (l.protocol == model::Protocol::TerminatedHttps).then(|| listener_tls(&l.tls)),
        })
        .collect();
    wit::LoadBalancer {
        id: lb.common.id.clone(),
        name: lb.common.name.clone(),
        project_id: lb.common.project_id.clone(),
        vip_address: lb.vip_address.clone(),
        vip_network,
        member_networks,
        listeners: wit_listeners,
        pools: wit_pools,
        flavor,
        availability_zone: None,
        admin_state_up: lb.common.admin_state_up,
    }
}
