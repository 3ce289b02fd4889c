//! Checks shared by the resources: names, ports, addresses, CIDRs, Octavia's protocol
//! combinations, and VIP allocation from the network model.

use std::net::IpAddr;

use crate::net::IpNet;

use crate::model::{LbAlgorithm, MonitorType, Network, Protocol, Subnet};

use super::error::{ApiError, ApiResult};

pub fn text(field: &str, value: Option<String>, max: usize) -> ApiResult<String> {
    let value = value.unwrap_or_default();
    if value.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field} is longer than {max} characters"
        )));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ApiError::bad_request(format!(
            "{field} holds control characters"
        )));
    }
    Ok(value)
}

/// A child's `project_id` / `tenant_id`, when given, must be its load balancer's project.
pub fn same_project(
    project_id: Option<&str>,
    tenant_id: Option<&str>,
    owner: &str,
) -> ApiResult<()> {
    match project_id.or(tenant_id) {
        Some(project) if project != owner => Err(ApiError::bad_request(format!(
            "project_id {project} is not the project of the load balancer ({owner})"
        ))),
        _ => Ok(()),
    }
}

pub fn port(field: &str, value: i64) -> ApiResult<u16> {
    u16::try_from(value).ok().filter(|p| *p > 0).ok_or_else(|| {
        ApiError::bad_request(format!("{field} {value} is not a port number (1-65535)"))
    })
}

pub fn ip(field: &str, value: &str) -> ApiResult<IpAddr> {
    value
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{field} `{value}` is not an IP address")))
}

/// `value` as a CIDR, or a 400 naming `field`.
pub fn cidr(field: &str, value: &str) -> ApiResult<IpNet> {
    value.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{field} `{value}` is not a CIDR such as 10.0.0.0/24"
        ))
    })
}

/// The ids of the other subnets, of any project, whose range overlaps `subnet`'s.
pub fn overlapping_subnets<'a>(
    snapshot: &'a lbaas_control::Snapshot,
    subnet: &Subnet,
) -> std::collections::HashSet<&'a str> {
    let Ok(range) = subnet.cidr.parse::<IpNet>() else {
        return Default::default();
    };
    snapshot
        .networks
        .iter()
        .flat_map(|n| &n.subnets)
        .filter(|other| other.id != subnet.id)
        .filter(|other| {
            other
                .cidr
                .parse::<IpNet>()
                .is_ok_and(|o| range.contains(&o.network()) || o.contains(&range.network()))
        })
        .map(|other| other.id.as_str())
        .collect()
}

/// Whether two networks are apart on the data plane: each on a VLAN of its own, which the
/// devices honour. Otherwise an address on one is the same address on the other.
pub fn isolated(a: &Network, b: &Network) -> bool {
    matches!((a.vlan, b.vlan), (Some(x), Some(y)) if x != y)
}

/// Picks the VIP address: the requested one (inside the subnet, not taken) or the lowest free
/// host address that is not the gateway, preferring one no other subnet's VIP uses
/// (`elsewhere`: projects' networks may overlap, and an appliance that cannot hold one address
/// twice then still takes both). Addresses are parsed once: a search that parsed every taken
/// address for every candidate made the `n`-th create on a subnet cost `n²` parses.
pub fn allocate_vip(
    subnet: &Subnet,
    requested: Option<&str>,
    taken: &[&str],
    elsewhere: &[&str],
) -> ApiResult<String> {
    let cidr = cidr("subnet cidr", &subnet.cidr)?;
    let parse = |list: &[&str]| -> std::collections::HashSet<IpAddr> {
        list.iter().filter_map(|t| t.parse().ok()).collect()
    };
    let taken = parse(taken);
    if let Some(requested) = requested {
        let address = ip("vip_address", requested)?;
        if !cidr.contains(&address) {
            return Err(ApiError::bad_request(format!(
                "vip_address {requested} is not inside subnet {} ({})",
                subnet.id, subnet.cidr
            )));
        }
        if taken.contains(&address) {
            return Err(ApiError::conflict(format!(
                "IP address {requested} is already allocated on subnet {}",
                subnet.id
            )));
        }
        return Ok(address.to_string());
    }
    let gateway = subnet
        .gateway_ip
        .as_deref()
        .and_then(|g| g.parse::<IpAddr>().ok());
    let free = |candidate: &IpAddr| Some(*candidate) != gateway && !taken.contains(candidate);
    let elsewhere = parse(elsewhere);
    crate::net::hosts(&cidr)
        .take(elsewhere.len() + taken.len() + 2)
        .find(|candidate| free(candidate) && !elsewhere.contains(candidate))
        .or_else(|| crate::net::hosts(&cidr).find(free))
        .map(|address| address.to_string())
        .ok_or_else(|| {
            ApiError::conflict(format!("Subnet {} has no free IP address left", subnet.id))
        })
}

/// Pool protocols a listener protocol may use, as Octavia allows.
pub fn listener_pool_compatible(listener: Protocol, pool: Protocol) -> bool {
    use Protocol::*;
    match listener {
        Tcp => matches!(pool, Http | Https | Proxy | ProxyV2 | Tcp),
        Http | TerminatedHttps => matches!(pool, Http | Proxy | ProxyV2),
        Https => matches!(pool, Https | Proxy | ProxyV2 | Tcp),
        Udp => pool == Udp,
        Sctp => pool == Sctp,
        Proxy | ProxyV2 => false,
    }
}

pub fn listener_protocol(provider: &str, name: &str) -> ApiResult<Protocol> {
    if name == "PROMETHEUS" {
        // Octavia's metrics listener (v2.25): an amphora feature no driver here implements.
        return Err(ApiError::unsupported(
            provider,
            "PROMETHEUS listener protocol",
        ));
    }
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|e| {
            ApiError::bad_request(format!(
                "Invalid input for field/attribute listener.protocol: {e}"
            ))
        })?;
    match protocol {
        Protocol::Proxy | Protocol::ProxyV2 => Err(ApiError::bad_request(format!(
            "protocol {} is a pool protocol, not a listener protocol",
            protocol_name(protocol)
        ))),
        other => Ok(other),
    }
}

/// Health monitor types a pool protocol may use, as Octavia allows.
pub fn monitor_compatible(pool: Protocol, monitor: MonitorType) -> bool {
    match pool {
        Protocol::Udp => matches!(
            monitor,
            MonitorType::UdpConnect | MonitorType::Http | MonitorType::Tcp | MonitorType::Ping
        ),
        Protocol::Sctp => matches!(
            monitor,
            MonitorType::Sctp | MonitorType::Http | MonitorType::Tcp | MonitorType::Ping
        ),
        _ => !matches!(monitor, MonitorType::UdpConnect | MonitorType::Sctp),
    }
}

pub fn protocol_name(protocol: Protocol) -> String {
    crate::views::name(&protocol)
}

/// The network and subnet a VIP goes on, from `vip_subnet_id` or `vip_network_id`.
pub fn vip_location<'a>(
    networks: impl Iterator<Item = &'a Network>,
    subnet_id: Option<&str>,
    network_id: Option<&str>,
) -> ApiResult<(&'a Network, &'a Subnet)> {
    let networks: Vec<&Network> = networks.collect();
    match (subnet_id, network_id) {
        (Some(subnet_id), network_id) => networks
            .iter()
            .find_map(|n| {
                n.subnets
                    .iter()
                    .find(|s| s.id == subnet_id)
                    .map(|s| (*n, s))
            })
            .filter(|(n, _)| network_id.is_none_or(|id| id == n.id))
            .ok_or_else(|| {
                ApiError::bad_request(format!("Subnet {subnet_id} could not be found."))
            }),
        (None, Some(network_id)) => {
            let network = networks
                .iter()
                .find(|n| n.id == network_id)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("Network {network_id} could not be found."))
                })?;
            let subnet = network.subnets.first().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Network {network_id} has no subnet to allocate a VIP from."
                ))
            })?;
            Ok((network, subnet))
        }
        (None, None) => Err(ApiError::bad_request(
            "One of vip_subnet_id or vip_network_id must be specified.",
        )),
    }
}

/// Whether a request sets an option: present, and neither `null`, empty, `false` nor `"NONE"`
/// (the values that mean "off" in Octavia's bodies).
pub fn is_set(value: &Option<serde_json::Value>) -> bool {
    use serde_json::Value;
    match value {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::String(text)) => !text.is_empty() && text != "NONE",
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(map)) => !map.is_empty(),
        Some(_) => true,
    }
}

/// Options of Octavia's API this host's drivers do not implement (TLS termination and
/// re-encryption, HSTS, ALPN, monitor host headers, additional VIPs): the first one set is a
/// 501 naming it, as Octavia answers for an option a provider does not support.
pub fn unsupported_options(
    provider: &str,
    options: &[(&str, &Option<serde_json::Value>)],
) -> ApiResult<()> {
    match options.iter().find(|(_, value)| is_set(value)) {
        Some((name, _)) => Err(ApiError::unsupported(provider, name)),
        None => Ok(()),
    }
}

/// The provider's driver must support the protocol and algorithm asked for.
pub fn provider_supports(
    api: &lbaas_control::ControlPlane,
    provider: &str,
    protocol: Option<Protocol>,
    algorithm: Option<LbAlgorithm>,
) -> ApiResult<()> {
    Ok(api.provider_supports(provider, protocol, algorithm)?)
}

/// An object a request body refers to (a pool, listener or load balancer id): a missing one is
/// a bad request naming it, another project's is refused by policy (403), as Octavia answers.
pub fn referenced<T>(found: Result<T, lbaas_control::Error>, what: &str, id: &str) -> ApiResult<T> {
    found.map_err(|error| match error {
        lbaas_control::Error::NotFound { .. } => {
            ApiError::bad_request(format!("{what} {id} could not be found."))
        }
        other => other.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(cidr: &str, gateway: Option<&str>) -> Subnet {
        Subnet {
            id: "s".into(),
            name: "s".into(),
            cidr: cidr.into(),
            gateway_ip: gateway.map(Into::into),
        }
    }

    #[test]
    fn vip_allocation_prefers_addresses_no_other_subnet_uses() {
        let s = subnet("10.1.1.0/29", None);
        let elsewhere = ["10.1.1.1", "10.1.1.2"];
        assert_eq!(
            allocate_vip(&s, None, &[], &elsewhere).ok().as_deref(),
            Some("10.1.1.3")
        );
        // With nothing else free, an address another subnet uses is still this one's to give.
        let taken = ["10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.6"];
        assert_eq!(
            allocate_vip(&s, None, &taken, &elsewhere).ok().as_deref(),
            Some("10.1.1.1")
        );
    }

    #[test]
    fn vip_allocation_skips_gateway_and_taken() {
        let s = subnet("192.0.2.0/29", Some("192.0.2.1"));
        assert_eq!(
            allocate_vip(&s, None, &[], &[]).ok().as_deref(),
            Some("192.0.2.2")
        );
        assert_eq!(
            allocate_vip(&s, None, &["192.0.2.2", "192.0.2.3"], &[])
                .ok()
                .as_deref(),
            Some("192.0.2.4")
        );
        let all = [
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.5",
            "192.0.2.6",
        ];
        assert!(allocate_vip(&s, None, &all, &[]).is_err());
        assert!(allocate_vip(&s, Some("10.0.0.1"), &[], &[]).is_err());
        assert!(allocate_vip(&s, Some("192.0.2.3"), &["192.0.2.3"], &[]).is_err());
        assert_eq!(
            allocate_vip(&s, Some("192.0.2.6"), &[], &[])
                .ok()
                .as_deref(),
            Some("192.0.2.6")
        );
    }

    #[test]
    fn cidrs_and_ports() {
        assert!(cidr("c", "10.0.0.0/33").is_err());
        assert!(cidr("c", "10.0.0/8").is_err());
        assert!(cidr("c", "fd00::/64").is_ok());
        assert!(port("p", 0).is_err());
        assert!(port("p", 65536).is_err());
        assert_eq!(port("p", 443).ok(), Some(443));
    }
}
