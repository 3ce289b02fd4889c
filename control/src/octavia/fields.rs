//! Checks of single values Octavia's rules share: names, ports, addresses, CIDRs, the protocol
//! combinations it allows, and the options a request sets.

use std::net::IpAddr;

use crate::Error;
use crate::model::{MonitorType, Protocol};
use crate::net::IpNet;

/// An integer as Octavia takes it: a JSON number, or a string of one (`"80"`), which clients
/// that build bodies from strings send.
pub type Int = serde_with::PickFirst<(serde_with::Same, serde_with::DisplayFromStr)>;

/// What a rule decides: the value, or why Octavia refuses the request.
pub type Decided<T> = Result<T, Error>;

pub fn text(field: &'static str, value: Option<String>, max: usize) -> Decided<String> {
    let value = value.unwrap_or_default();
    if value.chars().count() > max {
        return Err(Error::field(
            field,
            format!("{field} is longer than {max} characters"),
        ));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(Error::field(
            field,
            format!("{field} holds control characters"),
        ));
    }
    Ok(value)
}

/// A field the request must give, or a 400 naming it.
pub fn required<T>(field: &'static str, value: Option<T>) -> Decided<T> {
    value.ok_or_else(|| Error::field(field, format!("{field} is required.")))
}

/// [`text`] that must not be empty.
pub fn required_text(field: &'static str, value: Option<String>, max: usize) -> Decided<String> {
    let value = text(field, value, max)?;
    if value.is_empty() {
        return Err(Error::field(field, format!("{field} is required.")));
    }
    Ok(value)
}

/// A child's `project_id` / `tenant_id`, when given, must be its load balancer's project.
pub fn same_project(project_id: Option<&str>, tenant_id: Option<&str>, owner: &str) -> Decided<()> {
    match project_id.or(tenant_id) {
        Some(project) if project != owner => Err(Error::invalid(format!(
            "project_id {project} is not the project of the load balancer ({owner})"
        ))),
        _ => Ok(()),
    }
}

pub fn port(field: &'static str, value: i64) -> Decided<u16> {
    u16::try_from(value).ok().filter(|p| *p > 0).ok_or_else(|| {
        Error::field(
            field,
            format!("{field} {value} is not a port number (1-65535)"),
        )
    })
}

pub fn ip(field: &'static str, value: &str) -> Decided<IpAddr> {
    value
        .parse()
        .map_err(|_| Error::field(field, format!("{field} `{value}` is not an IP address")))
}

/// `value` as a CIDR, or a 400 naming `field`.
pub fn cidr(field: &'static str, value: &str) -> Decided<IpNet> {
    value.parse().map_err(|_| {
        Error::field(
            field,
            format!("{field} `{value}` is not a CIDR such as 10.0.0.0/24"),
        )
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
        Proxy | ProxyV2 | Prometheus => false,
    }
}

/// A listener of `listener` protocol may have children (pools, L7 policies): Octavia's
/// metrics listener has none.
pub fn listener_has_children(listener: Protocol) -> Decided<()> {
    if listener == Protocol::Prometheus {
        return Err(Error::invalid(format!(
            "Protocol {} listeners cannot have child objects.",
            listener.name()
        )));
    }
    Ok(())
}

/// A pool of `pool` protocol may take the traffic of a listener of `listener` protocol.
pub fn pool_for_listener(listener: Protocol, pool: Protocol) -> Decided<()> {
    listener_has_children(listener)?;
    if !listener_pool_compatible(listener, pool) {
        return Err(Error::invalid(format!(
            "The pool protocol '{}' is invalid while the listener protocol is '{}'.",
            pool.name(),
            listener.name()
        )));
    }
    Ok(())
}

pub fn listener_protocol(name: &str) -> Decided<Protocol> {
    let protocol: Protocol = serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|e| {
            Error::invalid(format!(
                "Invalid input for field/attribute listener.protocol: {e}"
            ))
        })?;
    match protocol {
        Protocol::Proxy | Protocol::ProxyV2 => Err(Error::invalid(format!(
            "protocol {} is a pool protocol, not a listener protocol",
            protocol.name()
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
) -> Decided<()> {
    match options.iter().find(|(_, value)| is_set(value)) {
        Some((name, _)) => Err(Error::unsupported(provider, name)),
        None => Ok(()),
    }
}

/// An object a request body refers to (a pool, listener or load balancer id): a missing one is
/// a bad request naming it, another project's is refused by policy (403), as Octavia answers.
pub fn referenced<T>(found: Result<T, Error>, what: &str, id: &str) -> Decided<T> {
    found.map_err(|error| match error {
        Error::NotFound { .. } => Error::invalid(format!("{what} {id} could not be found.")),
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
