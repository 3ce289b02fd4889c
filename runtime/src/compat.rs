//! Drivers of contracts 0.1.0 and 0.2.0 under the current one: what the host sends them is
//! converted to their types, and what they answer back to the current ones.
//!
//! Records keep their field names across versions and enums their case names, so a value
//! crosses through its serde form: a field the older contract lacks is dropped, one it lacks in
//! an answer is filled in where the current contract added it ([`capabilities`]). A load
//! balancer that uses what an older contract cannot carry is refused before the call
//! ([`load_balancer`]), never sent without it.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::{legacy, types};

/// `value` in another version's type of the same shape.
pub fn convert<T: Serialize + ?Sized, U: DeserializeOwned>(value: &T) -> wasmtime::Result<U> {
    let value = serde_json::to_value(value)?;
    Ok(serde_json::from_value(value)?)
}

/// A legacy driver's capabilities: it supports none of what 0.3.0 added.
pub fn capabilities(
    old: &legacy::DriverCapabilities,
) -> wasmtime::Result<types::DriverCapabilities> {
    let mut value = serde_json::to_value(old)?;
    if let Some(fields) = value.as_object_mut() {
        fields.insert(
            "features".into(),
            serde_json::to_value(types::Features {
                l7_actions: Vec::new(),
                l7_rule_kinds: Vec::new(),
                insert_headers: Vec::new(),
                availability_zone_keys: Vec::new(),
            })?,
        );
    }
    Ok(serde_json::from_value(value)?)
}

/// The load balancer for a driver of `contract`, or the refusal when it uses what that
/// contract cannot carry (L7 policies, inserted headers): sent without them, the device would
/// serve traffic the tenant asked to route, redirect or refuse.
pub fn load_balancer(
    lb: &types::LoadBalancer,
    contract: &str,
) -> wasmtime::Result<Result<legacy::LoadBalancer, types::DriverError>> {
    let uses = |what: &str| {
        types::DriverError::Unsupported(format!(
            "{what} cannot be sent to a driver of contract {contract}"
        ))
    };
    if lb.listeners.iter().any(|l| !l.l7_policies.is_empty()) {
        return Ok(Err(uses("L7 policies")));
    }
    if lb.listeners.iter().any(|l| !l.insert_headers.is_empty()) {
        return Ok(Err(uses("insert_headers")));
    }
    convert(lb).map(Ok)
}
