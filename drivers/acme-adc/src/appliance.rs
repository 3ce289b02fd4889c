//! The Acme appliance's configuration format: one JSON "virtual service" document per load
//! balancer, in the appliance's own vocabulary, and the REST paths it is pushed to.

use std::net::IpAddr;

use lbaas_driver_sdk::prelude::*;
use serde_json::{Value, json};

use crate::allocation::NewVlan;

/// Request headers the appliance adds towards members, by Octavia's names.
pub const INSERT_HEADERS: [&str; 3] = ["X-Forwarded-For", "X-Forwarded-Port", "X-Forwarded-Proto"];

/// Headers about a TLS client's certificate the appliance adds on an offloading virtual
/// server, by Octavia's names.
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

/// VIPs one appliance can hold, whatever its registered capacity.
pub const MAX_VIPS_PER_DEVICE: u32 = 64;

pub fn service_path(lb: &LoadBalancer) -> String {
    format!(
        "/api/v3/partitions/{}/virtual-services/{}",
        lb.project_id, lb.id
    )
}

/// Where the appliance keeps certificate file `name` of `lb`'s virtual service.
pub fn certificate_path(lb: &LoadBalancer, name: &str) -> String {
    format!("/api/v3/certificates/{}/{name}", lb.id)
}

/// Every certificate file `lb` names, with its name on the appliance: a listener's served
/// certificates (default first), client CA and revocation list; a pool's client certificate,
/// CA and revocation list.
pub fn certificate_files(lb: &LoadBalancer) -> Vec<(&TlsFile, String)> {
    let mut files = Vec::new();
    for listener in &lb.listeners {
        let Some(tls) = &listener.tls else { continue };
        let served = tls
            .default_certificate
            .iter()
            .chain(tls.sni_certificates.iter());
        for (i, file) in served.enumerate() {
            files.push((file, format!("{}-crt-{i}", listener.id)));
        }
        files.extend(
            tls.client_ca
                .iter()
                .map(|f| (f, format!("{}-ca", listener.id))),
        );
        files.extend(
            tls.client_crl
                .iter()
                .map(|f| (f, format!("{}-crl", listener.id))),
        );
    }
    for pool in &lb.pools {
        let Some(tls) = &pool.tls else { continue };
        files.extend(
            tls.client_certificate
                .iter()
                .map(|f| (f, format!("{}-client", pool.id))),
        );
        files.extend(tls.ca.iter().map(|f| (f, format!("{}-ca", pool.id))));
        files.extend(tls.crl.iter().map(|f| (f, format!("{}-crl", pool.id))));
    }
    files
}

pub fn vlan_path(vlan: u16) -> String {
    format!("/api/v3/network/vlans/{vlan}")
}

pub fn vlan_body(vlan: &NewVlan) -> Value {
    json!({
        "tag": vlan.vlan,
        "interface": format!("1.{}", vlan.interface + 1),
        "network": vlan.network_id,
        "cidr": vlan.cidr,
    })
}

fn invalid(message: String) -> DriverError {
    DriverError::InvalidInput(message)
}

fn address(what: &str, value: &str) -> Result<IpAddr, DriverError> {
    value
        .parse()
        .map_err(|_| invalid(format!("{what} `{value}` is not an IP address")))
}

/// Renders the virtual-service document for `lb` on `device`.
pub fn render(lb: &LoadBalancer, device: &Device) -> Result<String, DriverError> {
    let vip = address("VIP address", &lb.vip_address)?;
    let virtual_servers = lb
        .listeners
        .iter()
        .map(|listener| {
            Ok(json!({
                "name": listener.id,
                "description": listener.name,
                "destination": { "address": vip.to_string(), "port": listener.protocol_port },
                "profile": profile(listener.protocol)?,
                "connectionLimit": listener.connection_limit.unwrap_or(0),
                "idleTimeoutSeconds": listener.timeout_client_data.div_ceil(1000),
                "sourceAllowList": listener.allowed_cidrs,
                "defaultPool": listener.default_pool_id,
                "insertHeaders": listener
                    .insert_headers
                    .iter()
                    .filter(|h| {
                        h.value == "true"
                            && (INSERT_HEADERS.contains(&h.key.as_str())
                                || (listener.tls.is_some()
                                    && SSL_HEADERS.contains(&h.key.as_str())))
                    })
                    .map(|h| h.key.as_str())
                    .collect::<Vec<_>>(),
                "tls": listener.tls.as_ref().map(|tls| offload(listener, tls)),
                "trafficPolicies": listener
                    .l7_policies
                    .iter()
                    .filter(|p| p.admin_state_up)
                    .map(traffic_policy)
                    .collect::<Vec<_>>(),
                "enabled": listener.admin_state_up && lb.admin_state_up,
            }))
        })
        .collect::<Result<Vec<_>, DriverError>>()?;
    let pools = lb.pools.iter().map(pool).collect::<Result<Vec<_>, _>>()?;
    let vlans: Vec<Value> = std::iter::once(&lb.vip_network)
        .chain(lb.member_networks.iter())
        .filter_map(|network| {
            network
                .vlan
                .map(|tag| json!({ "tag": tag, "network": network.id }))
        })
        .collect();
    let document = json!({
        "apiVersion": "acme.adc/v3",
        "kind": "VirtualService",
        "metadata": {
            "name": lb.id,
            "description": lb.name,
            "partition": lb.project_id,
            "device": device.id,
            "cluster": device.cluster,
        },
        "spec": {
            "vip": vip.to_string(),
            "vlans": vlans,
            "redundancy": redundancy(lb.flavor.as_ref().and_then(|f| f.get("loadbalancer_topology")))
                .ok_or_else(|| DriverError::InvalidInput("unknown loadbalancer_topology".into()))?,
            "virtualServers": virtual_servers,
            "pools": pools,
        },
    });
    serde_json::to_string_pretty(&document)
        .map_err(|e| DriverError::Internal(format!("cannot encode appliance config: {e}")))
}

/// The appliance's redundancy mode for a flavor's `loadbalancer_topology` (Octavia's names).
pub fn redundancy(topology: Option<&str>) -> Option<&'static str> {
    match topology {
        None | Some("SINGLE") => Some("single"),
        Some("ACTIVE_STANDBY") => Some("active-standby"),
        Some(_) => None,
    }
}

fn profile(protocol: Protocol) -> Result<&'static str, DriverError> {
    match protocol {
        Protocol::Tcp => Ok("fastL4"),
        Protocol::Udp => Ok("udp"),
        Protocol::Sctp => Ok("sctp"),
        Protocol::Http => Ok("http"),
        Protocol::Https => Ok("tcp-passthrough"),
        Protocol::TerminatedHttps => Ok("https-offload"),
        // The appliance's telemetry, serving the service's own figures.
        Protocol::Prometheus => Ok("prometheus"),
        other => Err(DriverError::Unsupported(format!(
            "protocol {other} is not supported by Acme appliances"
        ))),
    }
}

/// Octavia's name of a TLS version, which the appliance uses too.
fn version(version: &TlsVersion) -> &'static str {
    match version {
        TlsVersion::SslV3 => "SSLv3",
        TlsVersion::TlsV1 => "TLSv1",
        TlsVersion::TlsV11 => "TLSv1.1",
        TlsVersion::TlsV12 => "TLSv1.2",
        TlsVersion::TlsV13 => "TLSv1.3",
    }
}

/// A virtual server's TLS offload: the files it serves and checks clients against, by their
/// names on the appliance, and the protocol settings.
fn offload(listener: &Listener, tls: &ListenerTls) -> Value {
    let served = tls
        .default_certificate
        .iter()
        .chain(tls.sni_certificates.iter());
    json!({
        "certificates": served
            .enumerate()
            .map(|(i, _)| format!("{}-crt-{i}", listener.id))
            .collect::<Vec<_>>(),
        "clientAuthentication": match tls.client_authentication {
            ClientAuthentication::None => "none",
            ClientAuthentication::Optional => "request",
            ClientAuthentication::Mandatory => "require",
        },
        "clientCa": tls.client_ca.as_ref().map(|_| format!("{}-ca", listener.id)),
        "clientCrl": tls.client_crl.as_ref().map(|_| format!("{}-crl", listener.id)),
        "ciphers": tls.ciphers,
        "versions": tls.versions.iter().map(version).collect::<Vec<_>>(),
        "alpn": tls.alpn_protocols,
        "hsts": tls.hsts.as_ref().map(|hsts| json!({
            "maxAgeSeconds": hsts.max_age,
            "includeSubdomains": hsts.include_subdomains,
            "preload": hsts.preload,
        })),
    })
}

/// A pool's TLS towards its members, by the files' names on the appliance.
fn reencryption(pool: &Pool, tls: &PoolTls) -> Value {
    json!({
        "clientCertificate": tls.client_certificate.as_ref().map(|_| format!("{}-client", pool.id)),
        "ca": tls.ca.as_ref().map(|_| format!("{}-ca", pool.id)),
        "crl": tls.crl.as_ref().map(|_| format!("{}-crl", pool.id)),
        "verify": tls.ca.is_some(),
        "ciphers": tls.ciphers,
        "versions": tls.versions.iter().map(version).collect::<Vec<_>>(),
        "alpn": tls.alpn_protocols,
    })
}

/// An L7 policy as an appliance traffic policy: its conditions (rules that are up) all match,
/// then its action runs; the first matching policy in `order` wins. Values are JSON strings,
/// never spliced into the appliance's syntax.
fn traffic_policy(policy: &L7Policy) -> Value {
    let action = match policy.action {
        L7Action::Reject => json!({ "type": "reject" }),
        L7Action::RedirectToUrl => json!({
            "type": "redirect", "location": policy.redirect_url, "code": policy.redirect_http_code,
        }),
        L7Action::RedirectPrefix => json!({
            "type": "redirect-prefix", "prefix": policy.redirect_prefix,
            "code": policy.redirect_http_code,
        }),
        L7Action::RedirectToPool => json!({ "type": "forward", "pool": policy.redirect_pool_id }),
    };
    let conditions: Vec<Value> = policy
        .rules
        .iter()
        .filter(|r| r.admin_state_up)
        .map(|rule| {
            let subject = match rule.kind {
                L7RuleKind::HostName => "host",
                L7RuleKind::Path => "path",
                L7RuleKind::FileType => "extension",
                L7RuleKind::Header => "header",
                L7RuleKind::Cookie => "cookie",
            };
            let operator = match rule.compare {
                L7Compare::Regex => "matches",
                L7Compare::StartsWith => "starts-with",
                L7Compare::EndsWith => "ends-with",
                L7Compare::Contains => "contains",
                L7Compare::EqualTo => "equals",
            };
            json!({
                "subject": subject, "name": rule.key, "operator": operator,
                "value": rule.value, "negate": rule.invert,
            })
        })
        .collect();
    json!({
        "name": policy.id,
        "description": policy.name,
        "order": policy.position,
        "conditions": conditions,
        "action": action,
    })
}

fn pool(pool: &Pool) -> Result<Value, DriverError> {
    let method = match pool.algorithm {
        Algorithm::RoundRobin => "round-robin",
        Algorithm::LeastConnections => "least-connections-member",
        Algorithm::SourceIp => "source-address-hash",
        Algorithm::SourceIpPort => "source-address-port-hash",
    };
    let members = pool
        .members
        .iter()
        .map(|member| {
            Ok(json!({
                "name": member.id,
                "address": address("member address", &member.address)?.to_string(),
                "port": member.protocol_port,
                "ratio": member.weight,
                "priorityGroup": if member.backup { 0 } else { 10 },
                "state": if member.admin_state_up { "enabled" } else { "disabled" },
            }))
        })
        .collect::<Result<Vec<_>, DriverError>>()?;
    let monitor = match pool.health_monitor.as_ref().filter(|hm| hm.admin_state_up) {
        Some(hm) => Some(monitor(hm)?),
        None => None,
    };
    let persistence = pool.session_persistence.as_ref().map(|p| match p.kind {
        PersistenceKind::SourceIp => json!({ "type": "source-address" }),
        PersistenceKind::HttpCookie => json!({ "type": "cookie-insert" }),
        PersistenceKind::AppCookie => json!({ "type": "cookie-hash", "cookie": p.cookie_name }),
    });
    Ok(json!({
        "name": pool.id,
        "description": pool.name,
        "loadBalancingMethod": method,
        "proxyProtocol": match pool.protocol {
            Protocol::Proxy => Some("v1"),
            Protocol::ProxyV2 => Some("v2"),
            _ => None,
        },
        "minActiveMembers": 1,
        "persistence": persistence,
        "monitor": monitor,
        "members": members,
        "tls": pool.tls.as_ref().map(|tls| reencryption(pool, tls)),
        "enabled": pool.admin_state_up,
    }))
}

fn monitor(hm: &HealthMonitor) -> Result<Value, DriverError> {
    let kind = match hm.kind {
        HealthMonitorKind::Http => "http",
        HealthMonitorKind::Https => "https",
        HealthMonitorKind::Tcp => "tcp",
        HealthMonitorKind::Ping => "icmp",
        HealthMonitorKind::TlsHello => "tls",
        HealthMonitorKind::UdpConnect => "udp",
        HealthMonitorKind::Sctp => "sctp",
    };
    Ok(json!({
        "name": hm.id,
        "type": kind,
        "intervalSeconds": hm.delay,
        "timeoutSeconds": hm.timeout,
        "upAfter": hm.max_retries,
        "downAfter": hm.max_retries_down,
        "send": hm.http_method.as_ref().map(|m| format!("{m} {}", hm.url_path.as_deref().unwrap_or("/"))),
        "httpVersion": hm.http_version.map(|version| match version {
            HttpVersion::Http10 => "1.0",
            HttpVersion::Http11 => "1.1",
        }),
        "hostHeader": hm.domain_name,
        "receiveStatus": hm.expected_codes,
    }))
}
