//! Records as Octavia's API shows them: field names, relation lists (`[{"id": …}]`), and the
//! attributes clients expect even when this host does not use them.

use lbaas_control::observed::Counters;
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::model::{
    Device, Flavor, FlavorProfile, HealthMonitor, HttpVersion, L7Policy, L7Rule, Listener,
    LoadBalancer, Member, Network, Pool,
};

use lbaas_control::snapshot::Snapshot;

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
    serde_json::to_value(LoadBalancerView::of(snapshot, lb)).unwrap_or(Value::Null)
}

/// `{"id": …}`, how Octavia names a related object.
#[derive(Serialize)]
pub struct IdRef<'a> {
    id: &'a str,
}

/// A load balancer as Octavia shows it, serialized straight from the record (no intermediate
/// JSON tree: this is the body of the most frequent read). Fields in alphabetical order, as
/// the other views print theirs.
#[derive(Serialize)]
pub struct LoadBalancerView<'a> {
    additional_vips: [(); 0],
    admin_state_up: bool,
    availability_zone: &'a Option<String>,
    created_at: &'a str,
    description: &'a str,
    fault: &'a Option<String>,
    flavor_id: &'a Option<String>,
    id: &'a str,
    listeners: Vec<IdRef<'a>>,
    migration: &'a Option<crate::model::Migration>,
    name: &'a str,
    operating_status: crate::model::OperatingStatus,
    pools: Vec<IdRef<'a>>,
    project_id: &'a str,
    provider: &'a str,
    provisioning_status: crate::model::ProvisioningStatus,
    tags: &'a [String],
    /// `project_id` under its legacy name.
    tenant_id: &'a str,
    updated_at: &'a Option<String>,
    vip_address: &'a str,
    vip_network_id: &'a str,
    vip_port_id: &'a str,
    vip_qos_policy_id: Option<()>,
    vip_subnet_id: &'a str,
}

impl<'a> LoadBalancerView<'a> {
    pub fn of(snapshot: &'a Snapshot, lb: &'a LoadBalancer) -> Self {
        let common = &lb.common;
        let id = common.id.as_str();
        Self {
            additional_vips: [],
            admin_state_up: common.admin_state_up,
            availability_zone: &lb.availability_zone,
            created_at: &common.created_at,
            description: &common.description,
            fault: &lb.fault,
            flavor_id: &lb.flavor_id,
            id,
            listeners: snapshot
                .listeners_of(id)
                .map(|l| IdRef { id: &l.common.id })
                .collect(),
            migration: &lb.migration,
            name: &common.name,
            operating_status: common.operating_status,
            pools: snapshot
                .pools_of(id)
                .map(|p| IdRef { id: &p.common.id })
                .collect(),
            project_id: &common.project_id,
            provider: &lb.provider,
            provisioning_status: common.provisioning_status,
            tags: &common.tags,
            tenant_id: &common.project_id,
            updated_at: &common.updated_at,
            vip_address: &lb.vip_address,
            vip_network_id: &lb.vip_network_id,
            vip_port_id: &lb.vip_port_id,
            vip_qos_policy_id: None,
            vip_subnet_id: &lb.vip_subnet_id,
        }
    }
}

/// A policy with its rules as `[{"id": …}]`.
pub fn l7policy<'a>(policy: &L7Policy, rules: impl Iterator<Item = &'a L7Rule>) -> Value {
    let mut map = object(policy);
    map.remove("loadbalancer_id");
    map.insert("rules".into(), ids(rules.map(|r| r.common.id.as_str())));
    Value::Object(map)
}

pub fn l7rule(rule: &L7Rule) -> Value {
    let mut map = object(rule);
    map.remove("loadbalancer_id");
    map.remove("l7policy_id");
    Value::Object(map)
}

pub fn listener(snapshot: &Snapshot, listener: &Listener) -> Value {
    let mut map = with_tenant(object(listener));
    let lb = map.remove("loadbalancer_id").unwrap_or(Value::Null);
    map.insert("loadbalancers".into(), json!([{ "id": lb }]));
    if listener.allowed_cidrs.is_empty() {
        map.insert("allowed_cidrs".into(), Value::Null);
    }
    flatten_tls(&mut map);
    let policies = snapshot.l7policies_of(&listener.common.id);
    map.insert(
        "l7policies".into(),
        ids(policies.iter().map(|p| p.common.id.as_str())),
    );
    Value::Object(map)
}

/// The stored `tls` settings as Octavia shows them: fields of the object itself.
fn flatten_tls(map: &mut Map<String, Value>) {
    if let Some(Value::Object(tls)) = map.remove("tls") {
        map.extend(tls);
    }
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
    flatten_tls(&mut map);
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
    // A number in Octavia's API; stored as its text.
    map.insert(
        "http_version".into(),
        json!(hm.http_version.map(HttpVersion::number)),
    );
    Value::Object(map)
}

pub fn flavorprofile(profile: &FlavorProfile) -> Value {
    Value::Object(object(profile))
}

pub fn flavor(flavor: &Flavor) -> Value {
    Value::Object(object(flavor))
}

/// A device without its credentials: only whether some are set.
/// A device as the admin API shows it ([`lbaas_core::views::DeviceView`]).
pub fn device(snapshot: &Snapshot, device: &Device) -> Value {
    let view = lbaas_core::views::DeviceView::of(device, snapshot.load_of(&device.id));
    serde_json::to_value(view).unwrap_or(Value::Null)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Common, Migration, OperatingStatus, ProvisioningStatus};

    #[test]
    fn the_direct_load_balancer_view_prints_what_the_generic_one_did() {
        let lb = LoadBalancer {
            common: Common {
                id: "lb-1".into(),
                project_id: "p".into(),
                name: "web \"front\"".into(),
                description: "d".into(),
                admin_state_up: false,
                provisioning_status: ProvisioningStatus::PendingUpdate,
                operating_status: OperatingStatus::Degraded,
                created_at: "2026-11-25T00:00:00".into(),
                updated_at: Some("2026-11-25T00:00:01".into()),
                tags: vec!["a".into(), "b".into()],
            },
            vip_address: "10.0.0.5".into(),
            vip_network_id: "net".into(),
            vip_subnet_id: "subnet".into(),
            vip_port_id: "port".into(),
            provider: "haproxy".into(),
            flavor_id: Some("gold".into()),
            device_id: Some("hidden".into()),
            fault: Some("why".into()),
            migration: Some(Migration {
                from: "dev-a".into(),
                to: None,
            }),
            availability_zone: Some("east".into()),
        };
        let snapshot = Snapshot::empty_for(&lb);
        // The view as it was built before: the record's JSON, adjusted.
        let mut generic = with_tenant(object(&lb));
        generic.remove("device_id");
        generic.insert("listeners".into(), json!([]));
        generic.insert("pools".into(), json!([]));
        generic.insert("vip_qos_policy_id".into(), Value::Null);
        generic.insert("additional_vips".into(), json!([]));
        let direct = serde_json::to_string(&LoadBalancerView::of(&snapshot, &lb)).expect("json");
        assert_eq!(direct, Value::Object(generic).to_string());
    }
}
