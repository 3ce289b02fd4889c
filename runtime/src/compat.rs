//! Drivers of older contracts under the current one: what the host sends them is converted to
//! their types, and what they answer back to the current ones.
//!
//! Records keep their field names across versions and enums their case names, so a value
//! crosses through its serde form: a field the older contract lacks is dropped, one it lacks in
//! an answer is filled in where a later contract added it ([`capabilities`]). A load balancer
//! that uses what an older contract cannot carry is refused before the call
//! ([`load_balancer`]), never sent without it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::types;

/// `value` in another version's type of the same shape.
pub fn convert<T: Serialize + ?Sized, U: DeserializeOwned>(value: &T) -> wasmtime::Result<U> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::from_value(value)?)
}

/// A legacy driver's capabilities, with what later contracts added to `features` filled in:
/// none of 0.3.0's features (before it) and no TLS (before 0.4.0); every health monitor type,
/// as the host assumed before drivers could say.
pub fn capabilities<T: Serialize>(old: &T) -> wasmtime::Result<types::DriverCapabilities> {
    use types::HealthMonitorKind as Kind;
    let mut value = serde_json::to_value(old)?;
    let none = serde_json::Value::Array(Vec::new());
    let all_monitors = serde_json::to_value([
        Kind::Http,
        Kind::Https,
        Kind::Tcp,
        Kind::Ping,
        Kind::TlsHello,
        Kind::UdpConnect,
        Kind::Sctp,
    ])?;
    if let Some(fields) = value.as_object_mut() {
        let features = fields
            .entry("features")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(features) = features.as_object_mut() {
            for key in [
                "l7_actions",
                "l7_rule_kinds",
                "insert_headers",
                "availability_zone_keys",
                "tls",
            ] {
                features.entry(key).or_insert_with(|| none.clone());
            }
            features
                .entry("health_monitor_kinds")
                .or_insert(all_monitors);
        }
    }
    Ok(serde_json::from_value(value)?)
}

/// The load balancer for a driver of `contract`, or the refusal when it uses what that
/// contract cannot carry (a metrics listener; before 0.4.0, TLS and a monitor's HTTP version or
/// domain; before 0.3.0, L7 policies and inserted headers): sent without them, the device would
/// serve traffic the tenant asked to encrypt, check, route, redirect or refuse.
pub fn load_balancer<U: DeserializeOwned>(
    lb: &types::LoadBalancer,
    contract: &str,
) -> wasmtime::Result<Result<U, types::DriverError>> {
    let uses = |what: &str| {
        types::DriverError::Unsupported(format!(
            "{what} cannot be sent to a driver of contract {contract}"
        ))
    };
    // Every older contract: 0.5.0 is the first with a metrics listener.
    if lb
        .listeners
        .iter()
        .any(|l| l.protocol == types::Protocol::Prometheus)
    {
        return Ok(Err(uses("a PROMETHEUS listener")));
    }
    let version = |name: &str| crate::bindings::CONTRACTS.iter().position(|c| *c == name);
    let before = |release: &str| version(contract) < version(release);
    if before("lbaas:driver@0.4.0")
        && (lb.listeners.iter().any(|l| l.tls.is_some())
            || lb.pools.iter().any(|p| p.tls.is_some()))
    {
        return Ok(Err(uses("TLS")));
    }
    let versioned = |m: &types::HealthMonitor| m.http_version.is_some() || m.domain_name.is_some();
    if before("lbaas:driver@0.4.0")
        && lb
            .pools
            .iter()
            .filter_map(|p| p.health_monitor.as_ref())
            .any(versioned)
    {
        return Ok(Err(uses("a health monitor's http_version or domain_name")));
    }
    let before_l7 = before("lbaas:driver@0.3.0");
    if before_l7 && lb.listeners.iter().any(|l| !l.l7_policies.is_empty()) {
        return Ok(Err(uses("L7 policies")));
    }
    if before_l7 && lb.listeners.iter().any(|l| !l.insert_headers.is_empty()) {
        return Ok(Err(uses("insert_headers")));
    }
    convert(lb).map(Ok)
}
