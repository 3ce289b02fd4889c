//! Records as Octavia's API shows them: field names, relation lists (`[{"id": …}]`), and the
//! attributes clients expect even when this host does not use them.

use crate::monitor::Counters;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{
    Device, Flavor, FlavorProfile, HealthMonitor, Listener, LoadBalancer, Member, Network, Pool,
};

use super::snapshot::Snapshot;

fn object(record: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(record) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn ids<'a>(ids: impl Iterator<Item = &'a str>) -> Value {
    Value::Array(ids.map(|id| json!({ "id": id })).collect())
}

/// `project_id` is also shown as the legacy `tenant_id`.
fn with_tenant(mut map: Map<String, Value>) -> Map<String, Value> {
    if let Some(project) = map.get("project_id").cloned() {
        map.insert("tenant_id".into(), project);
    }
    map
}

pub fn loadbalancer(snapshot: &Snapshot, lb: &LoadBalancer) -> Value {
    let mut map = with_tenant(object(lb));
    map.remove("device_id");
    let id = lb.common.id.as_str();
    map.insert(
        "listeners".into(),
        ids(snapshot.listeners_of(id).map(|l| l.common.id.as_str())),
    );
    map.insert(
        "pools".into(),
        ids(snapshot.pools_of(id).map(|p| p.common.id.as_str())),
    );
    map.insert("vip_qos_policy_id".into(), Value::Null);
    map.insert("availability_zone".into(), Value::Null);
    map.insert("additional_vips".into(), json!([]));
    Value::Object(map)
}

pub fn listener(_snapshot: &Snapshot, listener: &Listener) -> Value {
    let mut map = with_tenant(object(listener));
    let lb = map.remove("loadbalancer_id").unwrap_or(Value::Null);
    map.insert("loadbalancers".into(), json!([{ "id": lb }]));
    if listener.allowed_cidrs.is_empty() {
        map.insert("allowed_cidrs".into(), Value::Null);
    }
    for key in [
        "default_tls_container_ref",
        "client_ca_tls_container_ref",
        "client_crl_container_ref",
        "tls_ciphers",
        "tls_versions",
        "alpn_protocols",
        "hsts_max_age",
    ] {
        map.insert(key.into(), Value::Null);
    }
    map.insert("sni_container_refs".into(), json!([]));
    map.insert("insert_headers".into(), json!({}));
    map.insert("l7policies".into(), json!([]));
    map.insert("client_authentication".into(), json!("NONE"));
    Value::Object(map)
}

pub fn pool(snapshot: &Snapshot, pool: &Pool) -> Value {
    let mut map = with_tenant(object(pool));
    let lb = map.remove("loadbalancer_id").unwrap_or(Value::Null);
    let id = pool.common.id.as_str();
    map.insert("loadbalancers".into(), json!([{ "id": lb }]));
    map.insert(
        "listeners".into(),
        ids(snapshot
            .listeners
            .iter()
            .filter(|l| l.default_pool_id.as_deref() == Some(id))
            .map(|l| l.common.id.as_str())),
    );
    map.insert(
        "members".into(),
        ids(snapshot.members_of(id).map(|m| m.common.id.as_str())),
    );
    map.insert("tls_enabled".into(), json!(false));
    for key in [
        "tls_container_ref",
        "ca_tls_container_ref",
        "crl_container_ref",
        "tls_ciphers",
        "tls_versions",
        "alpn_protocols",
    ] {
        map.insert(key.into(), Value::Null);
    }
    Value::Object(map)
}

pub fn member(member: &Member) -> Value {
    let mut map = with_tenant(object(member));
    map.remove("loadbalancer_id");
    map.remove("pool_id");
    map.insert("vnic_type".into(), json!("normal"));
    Value::Object(map)
}

pub fn healthmonitor(hm: &HealthMonitor) -> Value {
    let mut map = with_tenant(object(hm));
    map.remove("loadbalancer_id");
    let pool = map.remove("pool_id").unwrap_or(Value::Null);
    map.insert("pools".into(), json!([{ "id": pool }]));
    map.insert("http_version".into(), Value::Null);
    map.insert("domain_name".into(), Value::Null);
    Value::Object(map)
}

pub fn flavorprofile(profile: &FlavorProfile) -> Value {
    Value::Object(object(profile))
}

pub fn flavor(flavor: &Flavor) -> Value {
    Value::Object(object(flavor))
}

/// A device without its credentials: only whether some are set.
pub fn device(snapshot: &Snapshot, device: &Device) -> Value {
    let mut map = object(device);
    map.remove("credentials");
    map.remove("provisioned");
    map.insert("spawned".into(), json!(device.provisioned.is_some()));
    map.insert(
        "credentials_set".into(),
        json!(device.credentials.is_some()),
    );
    map.insert("load_balancers".into(), json!(snapshot.load_of(&device.id)));
    Value::Object(map)
}

pub fn network(network: &Network) -> Value {
    Value::Object(object(network))
}

/// Octavia's statistics object.
pub fn stats(counters: Counters) -> Value {
    json!({"stats": {
        "active_connections": counters.active_connections,
        "bytes_in": counters.bytes_in,
        "bytes_out": counters.bytes_out,
        "request_errors": counters.request_errors,
        "total_connections": counters.total_connections,
    }})
}
