//! The Octavia-compatible API over real HTTP, with the real driver components: service types,
//! devices, a load balancer created as a full tree and driven to ACTIVE, child changes, batch
//! member updates, cascade delete, project isolation, failures ending in ERROR, durability
//! across a restart, and a table of bad requests.

use std::collections::HashMap;

use lbaas_host::api::Auth;
use lbaas_host::api::auth::TokenGrant;
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane, Options};
use serde_json::{Value, json};

fn grant(project: &str, roles: &[&str]) -> TokenGrant {
    TokenGrant {
        project_id: project.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

fn tokens() -> Auth {
    Auth::Tokens(HashMap::from([
        ("admin-token".to_owned(), grant("admin-project", &["admin"])),
        (
            "alice-token".to_owned(),
            grant("project-a", &["load-balancer_member"]),
        ),
        (
            "bob-token".to_owned(),
            grant("project-b", &["load-balancer_member"]),
        ),
        (
            "audit-token".to_owned(),
            grant("project-a", &["load-balancer_observer"]),
        ),
    ]))
}

/// Networks, one HAProxy device behind `agent`, one flavor per bundled driver.
struct World {
    haproxy_flavor: String,
    acme_flavor: String,
    haproxy_device: String,
}

fn setup(admin: &Client, agent: &FakeAppliance, acme_appliance: &FakeAppliance) -> World {
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public", "vlan": 100,
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.10.0/24", "gateway_ip": "127.0.10.1"}]}}),
    );
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-app", "name": "app", "vlan": 201,
                "subnets": [{"id": "subnet-app", "cidr": "10.0.1.0/24"}]}}),
    );
    let device = admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                "management_url": agent.url(), "capacity": 10,
                "credentials": {"type": "bearer", "token": "s3cret"}}}),
    );
    assert!(
        device["device"].get("credentials").is_none(),
        "credentials leak: {device}"
    );
    assert_eq!(device["device"]["credentials_set"], true);
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "adc-1", "kind": "physical", "driver": "acme-adc",
                "management_url": acme_appliance.url(), "capacity": 8, "cluster": "east",
                "metadata": {"max-vlans-per-interface": "2"}}}),
    );
    let profile = |provider: &str, data: Value| {
        admin.create(
            "/v2/lbaas/flavorprofiles",
            &json!({"flavorprofile": {"name": format!("{provider}-profile"), "provider_name": provider,
                    "flavor_data": data.to_string()}}),
        )["flavorprofile"]["id"]
            .as_str()
            .expect("profile id")
            .to_owned()
    };
    let flavor = |name: &str, profile: String| {
        admin.create(
            "/v2/lbaas/flavors",
            &json!({"flavor": {"name": name, "flavor_profile_id": profile}}),
        )["flavor"]["id"]
            .as_str()
            .expect("flavor id")
            .to_owned()
    };
    World {
        haproxy_flavor: flavor("low-cost-lb", profile("haproxy", json!({"maxconn": 20000}))),
        acme_flavor: flavor(
            "high-perf-lb",
            profile("acme-adc", json!({"cluster": "east"})),
        ),
        haproxy_device: device["device"]["id"]
            .as_str()
            .expect("device id")
            .to_owned(),
    }
}

fn web_tree(flavor: &str) -> Value {
    json!({"loadbalancer": {
        "name": "shop", "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
        "listeners": [{
            "name": "http", "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {
                "name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [
                    {"address": "10.0.1.11", "protocol_port": 8080},
                    {"address": "10.0.1.12", "protocol_port": 8080, "weight": 5}
                ],
                "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
                                  "url_path": "/healthz"}
            }
        }]
    }})
}

fn id(value: &Value, kind: &str) -> String {
    value[kind]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} id in {value}"))
        .to_owned()
}

fn last_config(agent: &FakeAppliance, lb: &str) -> String {
    let path = format!("/v1/loadbalancers/{lb}/config");
    agent
        .received()
        .iter()
        .rev()
        .find(|r| r.method == "PUT" && r.path == path)
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .unwrap_or_default()
}

#[test]
fn full_lifecycle_of_a_load_balancer() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), tokens());
    let admin = cp.client(Some("admin-token"));
    let alice = cp.client(Some("alice-token"));
    let bob = cp.client(Some("bob-token"));
    let world = setup(&admin, &agent, &adc);

    // Version discovery and providers, as clients see them.
    let (status, versions) = alice.get("/");
    assert_eq!(status, 200);
    let listed = versions["versions"].as_array().expect("versions");
    assert_eq!(listed[0]["id"], "v2.0");
    assert!(
        listed.iter().any(|v| v["id"] == "v2.14"),
        "zones: {versions}"
    );
    let current: Vec<&Value> = listed.iter().filter(|v| v["status"] == "CURRENT").collect();
    assert_eq!(current.len(), 1, "{versions}");
    assert_eq!(listed.last(), Some(current[0]));
    let (_, amphorae) = admin.get("/v2/octavia/amphorae");
    assert_eq!(amphorae["amphorae"], json!([]), "no amphorae here");
    let (_, providers) = alice.get("/v2/lbaas/providers");
    let names: Vec<&str> = providers["providers"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, ["acme-adc", "haproxy"]);
    // Capabilities are for admins, as in Octavia's policy.
    let (status, _) = alice.get("/v2.0/lbaas/providers/acme-adc/flavor_capabilities");
    assert_eq!(status, 403);
    let (_, caps) = admin.get("/v2.0/lbaas/providers/acme-adc/flavor_capabilities");
    assert_eq!(caps["flavor_capabilities"][0]["name"], "cluster");
    // Filters and `fields` apply, as to every list.
    let (_, caps) =
        admin.get("/v2.0/lbaas/providers/acme-adc/flavor_capabilities?name=cluster&fields=name");
    assert_eq!(caps["flavor_capabilities"], json!([{ "name": "cluster" }]));

    // A full tree in one request: PENDING_CREATE at once, then ACTIVE.
    let created = alice.create("/v2/lbaas/loadbalancers", &web_tree(&world.haproxy_flavor));
    let lb = id(&created, "loadbalancer");
    assert_eq!(
        created["loadbalancer"]["provisioning_status"],
        "PENDING_CREATE"
    );
    assert_eq!(created["loadbalancer"]["vip_address"], "127.0.10.2");
    let active = alice.settle(&lb);
    assert_eq!(active["provisioning_status"], "ACTIVE", "{active}");
    assert_eq!(active["operating_status"], "ONLINE");
    assert_eq!(active["provider"], "haproxy");
    let config = last_config(&agent, &lb);
    assert!(config.contains("bind 127.0.10.2:80"), "{config}");
    assert!(config.contains("10.0.1.12:8080 weight 5"), "{config}");
    assert!(
        config.contains("maxconn 20000"),
        "flavor metadata reaches the driver: {config}"
    );
    let put = agent
        .received()
        .into_iter()
        .find(|r| r.method == "PUT")
        .expect("a PUT");
    assert_eq!(
        put.headers.get("authorization").map(String::as_str),
        Some("Bearer s3cret")
    );

    // The status tree.
    let (_, tree) = alice.get(&format!("/v2/lbaas/loadbalancers/{lb}/status"));
    let listener_tree = &tree["statuses"]["loadbalancer"]["listeners"][0];
    // Octavia's tree: pools only under the listeners that use them.
    assert!(
        tree["statuses"]["loadbalancer"].get("pools").is_none(),
        "{tree}"
    );
    assert_eq!(listener_tree["provisioning_status"], "ACTIVE");
    let pool_tree = &listener_tree["pools"][0];
    assert_eq!(pool_tree["members"].as_array().map(Vec::len), Some(2));
    assert_eq!(pool_tree["health_monitor"]["type"], "HTTP");
    assert_eq!(pool_tree["members"][0]["operating_status"], "ONLINE");
    let pool = pool_tree["id"].as_str().expect("pool id").to_owned();
    // A network that holds a VIP stays, through the admin API as through Neutron's.
    let (status, body) = admin.delete("/v2/admin/networks/net-vip");
    assert_eq!(status, 409, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .is_some_and(|f| f.contains("has its VIP on it")),
        "{body}"
    );

    // Another project sees none of it: lists leave it out, and Octavia's policy refuses it by
    // id (403).
    let (status, listed) = bob.get("/v2/lbaas/loadbalancers");
    assert_eq!(status, 200);
    assert_eq!(listed["loadbalancers"], json!([]));
    assert_eq!(bob.get(&format!("/v2/lbaas/loadbalancers/{lb}")).0, 403);
    assert_eq!(bob.get(&format!("/v2/lbaas/pools/{pool}/members")).0, 403);
    assert_eq!(
        bob.delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"))
            .0,
        403
    );
    assert_eq!(
        bob.get(&format!("/v2/admin/devices/{}", world.haproxy_device))
            .0,
        404
    );
    // An observer of the project reads but cannot write.
    let auditor = cp.client(Some("audit-token"));
    assert_eq!(auditor.get(&format!("/v2/lbaas/loadbalancers/{lb}")).0, 200);
    assert_eq!(
        auditor
            .put(
                &format!("/v2/lbaas/loadbalancers/{lb}"),
                &json!({"loadbalancer": {"name": "x"}})
            )
            .0,
        403
    );
    // Without a token: 401.
    assert_eq!(cp.client(None).get("/v2/lbaas/loadbalancers").0, 401);

    // Add a member: the load balancer goes PENDING_UPDATE, then ACTIVE with it configured.
    let member = alice.create(
        &format!("/v2/lbaas/pools/{pool}/members"),
        &json!({"member": {"address": "10.0.1.13", "protocol_port": 8080, "backup": true}}),
    );
    assert_eq!(member["member"]["provisioning_status"], "PENDING_CREATE");
    assert_eq!(alice.settle(&lb)["provisioning_status"], "ACTIVE");
    assert!(
        last_config(&agent, &lb)
            .contains("10.0.1.13:8080 weight 1 check inter 5s fall 3 rise 2 backup")
    );

    // Batch update: replace the member set.
    let (status, _) = alice.put(
        &format!("/v2/lbaas/pools/{pool}/members"),
        &json!({"members": [
            {"address": "10.0.1.12", "protocol_port": 8080, "weight": 2},
            {"address": "10.0.1.20", "protocol_port": 8080}
        ]}),
    );
    assert_eq!(status, 202);
    assert_eq!(alice.settle(&lb)["provisioning_status"], "ACTIVE");
    let (_, members) = alice.get(&format!("/v2/lbaas/pools/{pool}/members"));
    let mut addresses: Vec<(String, u64)> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["address"].as_str().unwrap_or_default().to_owned(),
                m["weight"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    addresses.sort();
    assert_eq!(
        addresses,
        [("10.0.1.12".to_owned(), 2), ("10.0.1.20".to_owned(), 1)]
    );
    let config = last_config(&agent, &lb);
    assert!(
        !config.contains("10.0.1.11") && !config.contains("10.0.1.13"),
        "{config}"
    );

    // Update the pool's algorithm.
    let (status, _) = alice.put(
        &format!("/v2/lbaas/pools/{pool}"),
        &json!({"pool": {"lb_algorithm": "LEAST_CONNECTIONS"}}),
    );
    assert_eq!(status, 200);
    assert_eq!(alice.settle(&lb)["provisioning_status"], "ACTIVE");
    assert!(last_config(&agent, &lb).contains("balance leastconn"));

    // Paging and filters.
    let second = alice.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "second", "vip_network_id": "net-vip"}}),
    );
    let second = id(&second, "loadbalancer");
    alice.settle(&second);
    let (_, page) = alice.get("/v2/lbaas/loadbalancers?limit=1");
    assert_eq!(page["loadbalancers"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["loadbalancers_links"][0]["rel"], "next");
    let (_, named) = alice.get("/v2/lbaas/loadbalancers?name=second&fields=id&fields=name");
    assert_eq!(
        named["loadbalancers"],
        json!([{"id": second, "name": "second"}])
    );

    // Deleting a load balancer with children needs cascade; cascade removes it everywhere.
    assert_eq!(
        alice.delete(&format!("/v2/lbaas/loadbalancers/{lb}")).0,
        400
    );
    assert_eq!(
        alice
            .delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"))
            .0,
        204
    );
    assert_eq!(alice.settle(&lb), Value::Null);
    assert!(
        agent
            .received()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.contains(&lb))
    );
    assert_eq!(alice.get(&format!("/v2/lbaas/pools/{pool}")).0, 404);

    // The acme flavor places on the appliance, which records the VLANs.
    let on_adc = alice.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "fast", "vip_subnet_id": "subnet-vip", "flavor_id": world.acme_flavor,
                "listeners": [{"protocol": "TCP", "protocol_port": 443}]}}),
    );
    let on_adc = id(&on_adc, "loadbalancer");
    assert_eq!(alice.settle(&on_adc)["provider"], "acme-adc");
    assert!(
        adc.received()
            .iter()
            .any(|r| r.path == "/api/v3/network/vlans/100")
    );
}

#[test]
fn failures_end_in_error_with_a_readable_fault() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    let world = setup(&admin, &agent, &adc);
    let tenant = cp.client(None).as_project("project-a");

    // The device answers slowly: long enough that the two changes below surely arrive while
    // the create is still pending (300 ms proved too short on a busy machine).
    agent.delay(1500);
    let lb = id(
        &tenant.create("/v2/lbaas/loadbalancers", &web_tree(&world.haproxy_flavor)),
        "loadbalancer",
    );
    // While PENDING_*, every change is refused with 409.
    let (status, body) = tenant.put(
        &format!("/v2/lbaas/loadbalancers/{lb}"),
        &json!({"loadbalancer": {"name": "x"}}),
    );
    assert_eq!(status, 409, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("immutable")
    );
    assert_eq!(
        tenant
            .delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"))
            .0,
        409
    );
    assert_eq!(tenant.settle(&lb)["provisioning_status"], "ACTIVE");
    agent.delay(0);

    let path = "/v1/loadbalancers/LB/config";
    let second = id(
        &tenant.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"vip_subnet_id": "subnet-vip"}}),
        ),
        "loadbalancer",
    );
    tenant.settle(&second);
    agent.respond(&path.replace("LB", &second), 503);
    let (status, _) = tenant.post(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": second, "protocol": "TCP", "protocol_port": 22}}),
    );
    assert_eq!(status, 201);
    let failed = tenant.settle(&second);
    assert_eq!(failed["provisioning_status"], "ERROR");
    let fault = failed["fault"].as_str().unwrap_or_default();
    assert!(
        fault.contains("503") && fault.contains("haproxy"),
        "{fault}"
    );
    let (_, listeners) = tenant.get(&format!("/v2/lbaas/listeners?loadbalancer_id={second}"));
    assert_eq!(listeners["listeners"][0]["provisioning_status"], "ERROR");

    // No device can take it: ERROR with "no capacity".
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-x", "subnets": [{"id": "subnet-x", "cidr": "127.0.20.0/24"}]}}),
    );
    let (_, devices) = admin.get("/v2/admin/devices?driver=acme-adc");
    let adc_id = devices["devices"][0]["id"]
        .as_str()
        .expect("adc")
        .to_owned();
    assert_eq!(
        admin
            .put(
                &format!("/v2/admin/devices/{adc_id}"),
                &json!({"device": {"enabled": false}})
            )
            .0,
        200
    );
    let stranded = id(
        &tenant.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"vip_subnet_id": "subnet-x", "flavor_id": world.acme_flavor}}),
        ),
        "loadbalancer",
    );
    let stranded = tenant.settle(&stranded);
    assert_eq!(stranded["provisioning_status"], "ERROR");
    assert!(
        stranded["fault"]
            .as_str()
            .unwrap_or_default()
            .contains("no capacity"),
        "{stranded}"
    );

    // A device in use cannot be deleted; an ERROR load balancer can be.
    let (status, body) = admin.delete(&format!("/v2/admin/devices/{}", world.haproxy_device));
    assert_eq!(status, 409, "{body}");
}

#[test]
fn acknowledged_writes_survive_a_restart_and_jobs_resume() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let adc = FakeAppliance::start();
    let lb;
    {
        let cp = ControlPlane::start(data.path(), Auth::None);
        let admin = cp.client(None);
        let world = setup(&admin, &agent, &adc);
        // The device is slow: the host stops while the job's call waits at the device.
        agent.delay(2_000);
        let before = agent.arrived();
        lb = id(
            &admin.create("/v2/lbaas/loadbalancers", &web_tree(&world.haproxy_flavor)),
            "loadbalancer",
        );
        lbaas_tests::wait_until("the job's call reached the device", || {
            agent.arrived() > before
        });
        let (_, shown) = admin.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
        assert_eq!(
            shown["loadbalancer"]["provisioning_status"], "PENDING_CREATE",
            "the job was not in flight when the host stopped: {shown}"
        );
        cp.stop();
    }
    agent.delay(0);
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    // ACTIVE now can only come from the job run again by the restarted host.
    let settled = admin.settle(&lb);
    assert_eq!(settled["provisioning_status"], "ACTIVE", "{settled}");
    let config = format!("/v1/loadbalancers/{lb}/config");
    assert!(
        agent
            .received()
            .iter()
            .any(|r| r.method == "PUT" && r.path == config),
        "the resumed job never applied the configuration"
    );
    let (_, flavors) = admin.get("/v2/lbaas/flavors");
    assert_eq!(flavors["flavors"].as_array().map(Vec::len), Some(2));
}

/// The bad requests whose answer depends on a loaded provider (Octavia loads the driver before
/// it validates a listener, and a provider's missing option is its 501), end to end. The
/// others, with no driver needed, are `api/tests/api_oneshot.rs`'s table.
#[test]
fn bad_requests_to_a_provider_get_clear_answers() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), tokens());
    let admin = cp.client(Some("admin-token"));
    let alice = cp.client(Some("alice-token"));
    let world = setup(&admin, &agent, &adc);
    let lb = id(
        &alice.create("/v2/lbaas/loadbalancers", &web_tree(&world.haproxy_flavor)),
        "loadbalancer",
    );
    alice.settle(&lb);

    let lbs = "/v2/lbaas/loadbalancers";
    let listeners = "/v2/lbaas/listeners";
    let body_4 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "HTTP", "protocol_port": 80}}}}"#
    );
    let body_5 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "TCP", "protocol_port": 81, "allowed_cidrs": ["10.0.0.0/33"]}}}}"#
    );
    let body_6 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "UDP", "protocol_port": 53}}}}"#
    );
    let body_7 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "TCP", "protocol_port": 82}}}}"#
    );
    let body_9 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "HTTP", "protocol_port": 83, "insert_headers": {{"X-Forwarded-Host": "true"}}}}}}"#
    );
    let body_10 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "TCP", "protocol_port": 84, "allowed_cidrs": ["2001:db8::/32"]}}}}"#
    );
    // A monitor type the driver does not declare: Octavia's 501 at the API, not a load
    // balancer in ERROR once the driver refuses to render it.
    let pool = id(
        &alice.create(
            "/v2/lbaas/pools",
            &serde_json::json!({"pool": {"loadbalancer_id": lb, "protocol": "HTTP",
                                         "lb_algorithm": "ROUND_ROBIN"}}),
        ),
        "pool",
    );
    alice.settle(&lb);
    let body_11 = format!(
        r#"{{"healthmonitor": {{"pool_id": "{pool}", "type": "PING", "delay": 5, "timeout": 3, "max_retries": 2}}}}"#
    );
    let body_12 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "TERMINATED_HTTPS", "protocol_port": 443, "default_tls_container_ref": null}}}}"#
    );
    // Octavia's metrics listener: no children, no inserted headers, and no provider here
    // serves its metrics over TLS.
    let body_13 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "PROMETHEUS", "protocol_port": 9100, "default_pool_id": "{pool}"}}}}"#
    );
    let body_14 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "PROMETHEUS", "protocol_port": 9100, "insert_headers": {{"X-Forwarded-For": "true"}}}}}}"#
    );
    let body_15 = format!(
        r#"{{"listener": {{"loadbalancer_id": "{lb}", "protocol": "PROMETHEUS", "protocol_port": 9100, "sni_container_refs": ["https://barbican.example/v1/containers/1"]}}}}"#
    );
    let cases: Vec<(&Client, &str, String, &str, u16, &str)> = vec![
        (
            &alice,
            "POST",
            listeners.into(),
            &body_13,
            400,
            "Protocol PROMETHEUS listeners cannot have child objects.",
        ),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_14,
            400,
            "insert_headers are only supported for HTTP listeners, not PROMETHEUS",
        ),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_15,
            501,
            "does not support a requested option: PROMETHEUS listeners with TLS",
        ),
        (
            &alice,
            "POST",
            lbs.into(),
            r#"{"loadbalancer": {"vip_subnet_id": "subnet-vip", "vip_address": "10.9.9.9"}}"#,
            400,
            "not inside",
        ),
        (
            &alice,
            "POST",
            lbs.into(),
            r#"{"loadbalancer": {"vip_subnet_id": "subnet-vip", "vip_address": "127.0.10.2"}}"#,
            409,
            "already allocated",
        ),
        (
            &alice,
            "POST",
            lbs.into(),
            r#"{"loadbalancer": {"vip_subnet_id": "subnet-vip", "provider": "f5"}}"#,
            400,
            "Provider 'f5'",
        ),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_4,
            409,
            "already using protocol_port 80",
        ),
        (&alice, "POST", listeners.into(), &body_5, 400, "not a CIDR"),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_6,
            501,
            "does not support a requested option: protocol UDP",
        ),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_9,
            400,
            "header X-Forwarded-Host is not one of",
        ),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_10,
            400,
            "IP version incompatible with VIP",
        ),
        // TLS options no driver implements: Octavia's 501 for a provider's missing option,
        // after Octavia's own rules for the fields (a TLS listener needs a certificate).
        (
            &alice,
            "POST",
            "/v2/lbaas/healthmonitors".into(),
            &body_11,
            501,
            "does not support a requested option: health monitor type PING",
        ),
        (
            &alice,
            "POST",
            listeners.into(),
            &body_12,
            400,
            "must be provided for TERMINATED_HTTPS protocol listeners",
        ),
        (
            &admin,
            "POST",
            "/v2/lbaas/flavorprofiles".into(),
            r#"{"flavorprofile": {"name": "x", "provider_name": "haproxy", "flavor_data": "{\"maxconn\": \"lots\"}"}}"#,
            400,
            "rejected the flavor metadata",
        ),
        (
            &admin,
            "POST",
            "/v2/lbaas/flavorprofiles".into(),
            r#"{"flavorprofile": {"name": "x", "provider_name": "haproxy", "flavor_data": "{\"compute_flavor\": \"m1\"}"}}"#,
            501,
            "does not support a requested option: flavor metadata key 'compute_flavor'",
        ),
        (
            &admin,
            "POST",
            "/v2/lbaas/flavorprofiles".into(),
            r#"{"flavorprofile": {"name": "x", "provider_name": "haproxy", "flavor_data": "[1]"}}"#,
            400,
            "JSON object",
        ),
        (
            &admin,
            "POST",
            "/v2/admin/devices".into(),
            r#"{"device": {"kind": "virtual", "driver": "haproxy", "management_url": "ftp://x", "capacity": 1}}"#,
            400,
            "http://",
        ),
        (
            &admin,
            "POST",
            "/v2/admin/devices".into(),
            r#"{"device": {"kind": "virtual", "driver": "haproxy", "management_url": "http://127.0.0.1:1", "capacity": 0}}"#,
            400,
            "capacity 0",
        ),
        (
            &admin,
            "POST",
            "/v2/admin/devices".into(),
            r#"{"device": {"kind": "physical", "driver": "haproxy", "management_url": "http://127.0.0.1:1", "capacity": 1}}"#,
            400,
            "does not manage",
        ),
        (
            &admin,
            "POST",
            "/v2/admin/devices".into(),
            r#"{"device": {"kind": "virtual", "driver": "haproxy", "management_url": "http://10.9.9.9:9443", "capacity": 1}}"#,
            400,
            "outside the device networks",
        ),
        (
            &admin,
            "POST",
            "/v2/admin/devices".into(),
            r#"{"device": {"kind": "virtual", "driver": "haproxy", "management_url": "http://localhost:9443", "capacity": 1}}"#,
            400,
            "IP address",
        ),
    ];
    for (client, method, path, body, expected, words) in cases {
        let body = (!body.is_empty()).then_some(body);
        let (status, answer) = client.call(method, &path, body);
        assert_eq!(
            status, expected,
            "{method} {path} {body:?} answered {status}: {answer}"
        );
        let fault = answer["faultstring"].as_str().unwrap_or_default();
        assert!(
            fault.contains(words),
            "{method} {path} {body:?}: `{fault}` should mention `{words}`"
        );
        // 501 (an option the provider does not support) is the server's side, as Octavia's.
        let code = if expected >= 500 { "Server" } else { "Client" };
        assert_eq!(answer["faultcode"], code);
    }
    // Nothing stored was harmed: the load balancer is still ACTIVE with its tree.
    let (_, tree) = alice.get(&format!("/v2/lbaas/loadbalancers/{lb}/status"));
    assert_eq!(
        tree["statuses"]["loadbalancer"]["provisioning_status"],
        "ACTIVE"
    );
    assert_eq!(
        tree["statuses"]["loadbalancer"]["listeners"][0]["pools"][0]["members"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // A quota met refuses the create with Octavia's 403; reset, creates go through again.
    let quota = "/v2/lbaas/quotas/project-a";
    let (status, answer) = admin.call("PUT", quota, Some(r#"{"quota": {"listener": 0}}"#));
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = alice.call("POST", listeners, Some(&body_7));
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["faultstring"],
        "Quota has been met for resources: Listener"
    );
    let (status, _) = admin.call("DELETE", quota, None);
    assert_eq!(status, 202);

    // Failover is an admin's: 202, the configuration applied again, ACTIVE where it was.
    let failover = format!("/v2/lbaas/loadbalancers/{lb}/failover");
    let (status, answer) = alice.call("PUT", &failover, None);
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = admin.call("PUT", &failover, None);
    assert_eq!(status, 202, "{answer}");
    let settled = admin.settle(&lb);
    assert_eq!(settled["provisioning_status"], "ACTIVE", "{settled}");
    assert!(settled["updated_at"].is_string(), "{settled}");
    let (status, _) = admin.call("PUT", "/v2/lbaas/loadbalancers/nope/failover", None);
    assert_eq!(status, 404);
}

#[test]
fn private_devices_serve_only_their_project() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    // The operator lets members register their own devices (admins only by default).
    let cp = ControlPlane::start_with_options(
        data.path(),
        tokens(),
        Options {
            members_register_devices: true,
            ..Options::default()
        },
    );
    let admin = cp.client(Some("admin-token"));
    let alice = cp.client(Some("alice-token"));
    let bob = cp.client(Some("bob-token"));

    // Version documents under both prefixes.
    for prefix in ["/v2", "/v2.0"] {
        let (status, doc) = alice.get(prefix);
        assert_eq!(status, 200, "{prefix}");
        assert_eq!(doc["version"]["status"], "CURRENT");
    }

    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "127.0.70.0/24"}]}}),
    );
    // A project member registers its own virtual balancer; it belongs to the project.
    let device = alice.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "my-haproxy", "kind": "virtual", "driver": "haproxy",
                "management_url": agent.url(), "capacity": 5}}),
    );
    let device_id = id(&device, "device");
    assert_eq!(device["device"]["project_id"], "project-a");
    // Still only virtual ones, never aimed at the control plane itself.
    let (status, body) = alice.post(
        "/v2/admin/devices",
        &json!({"device": {"kind": "physical", "driver": "acme-adc",
                "management_url": agent.url(), "capacity": 1}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("only register virtual")
    );
    let (status, body) = alice.post(
        "/v2/admin/devices",
        &json!({"device": {"kind": "virtual", "driver": "haproxy",
                "management_url": cp.url.replace("127.0.0.1", "127.0.0.9"), "capacity": 1}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("own address"),
        "{body}"
    );
    // Only that project and admins see it.
    assert_eq!(alice.get(&format!("/v2/admin/devices/{device_id}")).0, 200);
    assert_eq!(admin.get(&format!("/v2/admin/devices/{device_id}")).0, 200);
    assert_eq!(bob.get(&format!("/v2/admin/devices/{device_id}")).0, 404);
    assert_eq!(bob.get("/v2/admin/devices").1["devices"], json!([]));
    assert_eq!(
        bob.put(
            &format!("/v2/admin/devices/{device_id}"),
            &json!({"device": {"enabled": false}})
        )
        .0,
        404
    );

    // Only that project's load balancers are placed on it.
    let mine = id(
        &alice.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"vip_subnet_id": "subnet-vip"}}),
        ),
        "loadbalancer",
    );
    assert_eq!(alice.settle(&mine)["provisioning_status"], "ACTIVE");
    let theirs = id(
        &bob.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"vip_subnet_id": "subnet-vip"}}),
        ),
        "loadbalancer",
    );
    let theirs = bob.settle(&theirs);
    assert_eq!(theirs["provisioning_status"], "ERROR");
    assert!(
        theirs["fault"]
            .as_str()
            .unwrap_or_default()
            .contains("no capacity"),
        "{theirs}"
    );
    assert_eq!(
        admin.get(&format!("/v2/admin/devices/{device_id}")).1["device"]["load_balancers"],
        1
    );
}

#[test]
fn children_are_deleted_one_by_one() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    let world = setup(&admin, &agent, &adc);
    let lb = id(
        &admin.create("/v2/lbaas/loadbalancers", &web_tree(&world.haproxy_flavor)),
        "loadbalancer",
    );
    admin.settle(&lb);
    let (_, tree) = admin.get(&format!("/v2/lbaas/loadbalancers/{lb}/status"));
    let listener = tree["statuses"]["loadbalancer"]["listeners"][0]["id"]
        .as_str()
        .expect("listener")
        .to_owned();
    let pool_tree = &tree["statuses"]["loadbalancer"]["listeners"][0]["pools"][0];
    let pool = pool_tree["id"].as_str().expect("pool").to_owned();
    let monitor = pool_tree["health_monitor"]["id"]
        .as_str()
        .expect("monitor")
        .to_owned();

    assert_eq!(
        admin
            .delete(&format!("/v2/lbaas/healthmonitors/{monitor}"))
            .0,
        204
    );
    assert_eq!(admin.settle(&lb)["provisioning_status"], "ACTIVE");
    assert_eq!(
        admin.get(&format!("/v2/lbaas/healthmonitors/{monitor}")).0,
        404
    );
    assert_eq!(
        admin.get(&format!("/v2/lbaas/pools/{pool}")).1["pool"]["healthmonitor_id"],
        Value::Null
    );
    assert!(!last_config(&agent, &lb).contains("httpchk"));

    assert_eq!(admin.delete(&format!("/v2/lbaas/pools/{pool}")).0, 204);
    admin.settle(&lb);
    assert_eq!(admin.get(&format!("/v2/lbaas/pools/{pool}")).0, 404);
    assert_eq!(admin.get(&format!("/v2/lbaas/pools/{pool}/members")).0, 404);
    assert_eq!(
        admin.get(&format!("/v2/lbaas/listeners/{listener}")).1["listener"]["default_pool_id"],
        Value::Null
    );
    assert!(!last_config(&agent, &lb).contains("backend"));

    assert_eq!(
        admin.delete(&format!("/v2/lbaas/listeners/{listener}")).0,
        204
    );
    admin.settle(&lb);
    assert_eq!(admin.get(&format!("/v2/lbaas/listeners/{listener}")).0, 404);
    assert!(!last_config(&agent, &lb).contains("frontend"));
    // With no children left, a plain delete works.
    assert_eq!(
        admin.delete(&format!("/v2/lbaas/loadbalancers/{lb}")).0,
        204
    );
    assert_eq!(admin.settle(&lb), Value::Null);
}

/// L7 policies inside a full load balancer tree, as Octavia takes them: a policy's pool by the
/// name of a pool of the tree, or defined inline; rules with the policy; positions in order.
#[test]
fn l7_policies_come_in_a_full_tree() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), tokens());
    let admin = cp.client(Some("admin-token"));
    let alice = cp.client(Some("alice-token"));
    setup(&admin, &agent, &adc);
    let http_pool = |name: &str| {
        json!({"name": name, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
               "members": [{"address": "10.0.1.20", "protocol_port": 80}]})
    };
    let created = alice.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"vip_subnet_id": "subnet-vip", "provider": "haproxy",
        "pools": [http_pool("api")],
        "listeners": [{"protocol": "HTTP", "protocol_port": 80,
            "default_pool": http_pool("web"),
            "l7policies": [
                {"action": "REDIRECT_TO_POOL", "redirect_pool": {"name": "api"},
                 "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}]},
                {"action": "REDIRECT_TO_POOL", "redirect_pool": http_pool("static"),
                 "position": 1,
                 "rules": [{"type": "FILE_TYPE", "compare_type": "EQUAL_TO", "value": "css"}]},
                {"action": "REJECT",
                 "rules": [{"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X-Bot",
                            "value": "yes"}]}
            ]}]}}),
    );
    let lb_id = created["loadbalancer"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let lb = alice.settle(&lb_id);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    let listener = lb["listeners"][0]["id"].as_str().expect("listener");
    let (_, listed) = alice.get(&format!("/v2/lbaas/l7policies?listener_id={listener}"));
    let mut policies: Vec<Value> = listed["l7policies"].as_array().cloned().unwrap_or_default();
    policies.sort_by_key(|p| p["position"].as_u64());
    let summary: Vec<(u64, &str, usize)> = policies
        .iter()
        .map(|p| {
            (
                p["position"].as_u64().unwrap_or_default(),
                p["action"].as_str().unwrap_or_default(),
                p["rules"].as_array().map_or(0, Vec::len),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, "REDIRECT_TO_POOL", 1),
            (2, "REDIRECT_TO_POOL", 1),
            (3, "REJECT", 1)
        ],
        "{listed}"
    );
    let (_, pools) = alice.get(&format!("/v2/lbaas/pools?loadbalancer_id={lb_id}"));
    let pool_id = |name: &str| {
        pools["pools"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == name))
            .map(|p| p["id"].clone())
            .unwrap_or_default()
    };
    assert_eq!(policies[0]["redirect_pool_id"], pool_id("static"));
    assert_eq!(policies[1]["redirect_pool_id"], pool_id("api"));
    assert_eq!(policies[0]["provisioning_status"], "ACTIVE");

    // A reference to a pool the tree does not define is refused, and nothing is stored.
    let (status, body) = alice.post(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 81,
                "l7policies": [{"action": "REDIRECT_TO_POOL", "redirect_pool": {"name": "nope"},
                                "rules": []}]}]}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .is_some_and(|f| f.contains("Pool 'nope' was referenced")),
        "{body}"
    );
}

// The same suite with its hosts on PostgreSQL.
lbaas_tests::also_on_postgres!(
    full_lifecycle_of_a_load_balancer,
    failures_end_in_error_with_a_readable_fault,
    acknowledged_writes_survive_a_restart_and_jobs_resume,
    bad_requests_to_a_provider_get_clear_answers,
    private_devices_serve_only_their_project,
    children_are_deleted_one_by_one,
    l7_policies_come_in_a_full_tree,
);

/// One HTTP exchange with the dashboard, redirects not followed: status, headers, body.
fn dashboard(
    url: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (u16, ureq::http::HeaderMap, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(token) = cookie {
        request = request.header("cookie", format!("lbaas_session={token}"));
    }
    let request = request
        .body(form.unwrap_or_default().as_bytes().to_vec())
        .expect("request");
    let mut response = agent.run(request).expect("HTTP call");
    let body = response.body_mut().read_to_string().unwrap_or_default();
    (response.status().as_u16(), response.headers().clone(), body)
}

/// The dashboard over plain HTTP (in a browser below): logging in with a
/// token, members refused, pages served with their security headers, what tenants named
/// rendered as text, and forms without the session's token refused.
#[test]
fn the_dashboard_is_for_admins_and_renders_names_as_text() {
    let data = tempfile::tempdir().expect("temp dir");
    let cp = ControlPlane::start(data.path(), tokens());
    let url = cp.url.clone();
    let (agent, adc) = (FakeAppliance::start(), FakeAppliance::start());
    setup(&cp.client(Some("admin-token")), &agent, &adc);
    let alice = cp.client(Some("alice-token"));
    let injected = r#"<b id="injected">x</b>"#;
    let lb = alice.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": injected, "vip_subnet_id": "subnet-vip",
                "provider": "haproxy"}}),
    );
    alice.settle(&id(&lb, "loadbalancer"));

    let (status, headers, _) = dashboard(&url, "GET", "/dashboard", None, None);
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/dashboard/login");
    let (status, _, body) = dashboard(
        &url,
        "POST",
        "/dashboard/login",
        None,
        Some("token=alice-token"),
    );
    assert_eq!(status, 403);
    assert!(body.contains("The dashboard is for admins"), "{body}");
    let (status, _, body) = dashboard(&url, "POST", "/dashboard/login", None, Some("token=nope"));
    assert_eq!(status, 401, "{body}");
    let (status, _, _) = dashboard(&url, "GET", "/dashboard", Some("alice-token"), None);
    assert_eq!(status, 403);

    let (status, headers, _) = dashboard(
        &url,
        "POST",
        "/dashboard/login",
        None,
        Some("token=admin-token"),
    );
    assert_eq!(status, 303);
    let cookie = headers["set-cookie"].to_str().expect("a cookie");
    assert!(cookie.starts_with("lbaas_session=admin-token;"), "{cookie}");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    for page in [
        "/dashboard",
        "/dashboard/drivers",
        "/dashboard/placements",
        "/dashboard/audit",
    ] {
        let (status, headers, body) = dashboard(&url, "GET", page, Some("admin-token"), None);
        assert_eq!(status, 200, "{page}: {body}");
        let policy = headers["content-security-policy"].to_str().expect("CSP");
        assert!(
            policy.contains("default-src 'self'") || policy.contains("default-src 'none'"),
            "{policy}"
        );
        assert!(
            !body.contains("src=\"http") && !body.contains("href=\"http"),
            "{page} loads nothing from elsewhere"
        );
        assert!(!body.contains(injected), "{page}: {body}");
    }
    let (_, _, overview) = dashboard(&url, "GET", "/dashboard", Some("admin-token"), None);
    assert!(overview.contains("id=\"loadbalancers\""), "{overview}");
    assert!(
        overview.contains("&#60;b id=&#34;injected&#34;&#62;"),
        "the name shows, as text: {overview}"
    );
    let (_, _, drivers) = dashboard(&url, "GET", "/dashboard/drivers", Some("admin-token"), None);
    assert!(drivers.contains("id=\"driver-haproxy\""), "{drivers}");
    // A form without the session's token (another site's) changes nothing.
    let (status, _, _) = dashboard(
        &url,
        "POST",
        "/dashboard/drivers/haproxy/rollback",
        Some("admin-token"),
        Some("csrf=forged"),
    );
    assert_eq!(status, 403);
    cp.stop();
}

/// The dashboard in a real headless Chromium: a member is refused; an admin logs in with a
/// token and sees the live records (load balancers with their faults, devices with their load,
/// drivers, placements, the audit tail), including a record created while the page is open;
/// what a tenant named runs no script; the admin rolls a driver back from the page and the API
/// shows it. A screenshot of each page goes to `target/dashboard/`.
#[test]
fn the_dashboard_works_in_a_browser() {
    let data = tempfile::tempdir().expect("temp dir");
    let cp = ControlPlane::start(data.path(), tokens());
    let (agent, adc) = (FakeAppliance::start(), FakeAppliance::start());
    let admin = cp.client(Some("admin-token"));
    let world = setup(&admin, &agent, &adc);
    let alice = cp.client(Some("alice-token"));
    // A name that would run script if it were rendered as HTML.
    let injected = r#"<img src="x" onerror="document.title='owned'">"#;
    let mut created = Vec::new();
    for name in [injected, "web"] {
        let lb = alice.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"name": name, "vip_subnet_id": "subnet-vip",
                    "provider": "haproxy"}}),
        );
        created.push(id(&lb, "loadbalancer"));
    }
    // One that fails on its device, for a fault to show.
    let broken = id(
        &alice.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"name": "broken", "vip_subnet_id": "subnet-vip",
                    "provider": "haproxy"}}),
        ),
        "loadbalancer",
    );
    for lb in &created {
        assert_eq!(alice.settle(lb)["provisioning_status"], "ACTIVE");
    }
    agent.respond(&format!("/v1/loadbalancers/{broken}/config"), 503);
    alice.settle(&broken);
    let (status, _) = alice.post(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": broken, "protocol": "TCP", "protocol_port": 22}}),
    );
    assert_eq!(status, 201);
    let fault = alice.settle(&broken)["fault"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(fault.contains("503"), "{fault}");
    // A second version of the HAProxy driver, active: there is something to roll back.
    let next = std::fs::read(&lbaas_tests::lifecycle_fixtures().haproxy_next).expect("fixture");
    let (status, body) = admin.upload("/v2/admin/drivers?activate=true", next, &[]);
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["driver"]["version"], "0.1.1", "{body}");

    let chromium = lbaas_tests::browser::Chromium::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let browser = chromium.session().await;
        in_the_browser(&browser, &cp.url, &admin, &created, &broken, &fault, &world).await;
        browser.close().await.expect("close the browser");
    });
    cp.stop();
}

/// The element `what` finds once the page has it; the page's source in the panic otherwise.
async fn wait_for(
    browser: &fantoccini::Client,
    what: fantoccini::Locator<'_>,
) -> fantoccini::elements::Element {
    match browser.wait().for_element(what).await {
        Ok(element) => element,
        Err(error) => {
            let page = browser.source().await.unwrap_or_default();
            panic!("{what:?}: {error}\n{page}")
        }
    }
}

async fn in_the_browser(
    browser: &fantoccini::Client,
    url: &str,
    admin: &Client,
    created: &[String],
    broken: &str,
    fault: &str,
    world: &World,
) {
    use fantoccini::Locator::{Css, Id};
    let text = |css: &'static str| async move {
        browser
            .find(Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .expect("text")
    };
    let screenshot = |name: &'static str| async move {
        let png = browser.screenshot().await.expect("screenshot");
        std::fs::write(lbaas_tests::browser::screenshot_path(name), png).expect("write");
    };
    let log_in = |token: &'static str| async move {
        browser
            .goto(&format!("{url}/dashboard"))
            .await
            .expect("open");
        // Not logged in: the login form.
        let field = browser.find(Id("token")).await.expect("token field");
        field.send_keys(token).await.expect("type");
        browser
            .find(Id("log-in"))
            .await
            .expect("button")
            .click()
            .await
            .expect("log in");
    };

    // A member is refused at the door: told why, and given no session.
    log_in("alice-token").await;
    let error = wait_for(browser, Id("error")).await;
    let said = error.text().await.expect("text");
    assert!(said.starts_with("The dashboard is for admins"), "{said}");
    screenshot("refused").await;
    browser
        .goto(&format!("{url}/dashboard"))
        .await
        .expect("open");
    wait_for(browser, Id("token")).await;
    assert!(
        browser
            .find_all(Id("live"))
            .await
            .expect("query")
            .is_empty()
    );
    // A wrong token is told so.
    log_in("not-a-token").await;
    let error = wait_for(browser, Id("error")).await;
    assert_eq!(
        error.text().await.expect("text"),
        "This token is not valid."
    );

    // The admin sees the records as the API has them.
    log_in("admin-token").await;
    wait_for(browser, Id("loadbalancers")).await;
    let (_, listed) = admin.get("/v2/lbaas/loadbalancers");
    let listed = listed["loadbalancers"].as_array().expect("list").clone();
    let counts = text("#lb-counts").await;
    for status in ["ACTIVE", "ERROR"] {
        let n = listed
            .iter()
            .filter(|lb| lb["provisioning_status"] == status)
            .count();
        assert!(
            counts.contains(&format!("{n} {status}")),
            "{status}: {counts}"
        );
    }
    for lb in created.iter().map(String::as_str).chain([broken]) {
        let row = browser
            .find(Css(&format!("#loadbalancers tr[data-id='{lb}']")))
            .await
            .unwrap_or_else(|e| panic!("row of {lb}: {e}"));
        let (_, record) = admin.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
        let status = record["loadbalancer"]["provisioning_status"]
            .as_str()
            .expect("status");
        assert!(row.text().await.expect("text").contains(status), "{lb}");
    }
    let broken_row = format!("#loadbalancers tr[data-id='{broken}'] .fault");
    let shown = browser.find(Css(&broken_row)).await.expect("fault cell");
    assert_eq!(shown.text().await.expect("text"), fault);
    // The tenant's name is text: no element came of it and no script ran.
    let name_cell = format!("#loadbalancers tr[data-id='{}'] td", created[0]);
    let cell = browser.find(Css(&name_cell)).await.expect("name cell");
    assert_eq!(
        cell.text().await.expect("text"),
        r#"<img src="x" onerror="document.title='owned'">"#
    );
    assert!(
        browser
            .find_all(Css("#loadbalancers img"))
            .await
            .expect("query")
            .is_empty()
    );
    assert_eq!(browser.title().await.expect("title"), "Overview · lbaasd");
    let device = format!("#devices tr[data-id='{}'] .load span", world.haproxy_device);
    let (_, record) = admin.get(&format!("/v2/admin/devices/{}", world.haproxy_device));
    let load = browser.find(Css(&device)).await.expect("device load");
    assert_eq!(
        load.text().await.expect("text"),
        format!("{}/10", record["device"]["load_balancers"]),
        "{record}"
    );
    screenshot("overview").await;
    // The page keeps itself up to date: a load balancer created now shows without a reload.
    let late = id(
        &admin.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"name": "late", "vip_subnet_id": "subnet-vip"}}),
        ),
        "loadbalancer",
    );
    browser
        .wait()
        .at_most(std::time::Duration::from_secs(20))
        .for_element(Css(&format!("#loadbalancers tr[data-id='{late}']")))
        .await
        .expect("the new load balancer appears by itself");

    // Drivers: the active version, and the rollback button.
    browser
        .goto(&format!("{url}/dashboard/drivers"))
        .await
        .expect("drivers");
    assert_eq!(text("#driver-haproxy .version").await, "0.1.1");
    let state = text("#driver-haproxy tr[data-version='0.1.0'] .state").await;
    assert_eq!(state.to_lowercase(), "inactive");
    let rollback = browser
        .find(Css("#driver-haproxy button.rollback"))
        .await
        .expect("rollback button");
    assert_eq!(rollback.text().await.expect("text"), "Roll back to 0.1.0");
    screenshot("drivers").await;
    rollback.click().await.expect("roll back");
    wait_for(browser, Id("notice")).await;
    assert_eq!(text("#driver-haproxy .version").await, "0.1.0");
    let (_, driver) = admin.get("/v2/admin/drivers/haproxy");
    assert_eq!(
        driver["driver"]["version"], "0.1.0",
        "the API shows the rollback"
    );
    let rolled = admin.audit("driver=haproxy&function=lifecycle.rollback");
    assert_eq!(rolled.len(), 1, "{rolled:?}");

    // Placements: each load balancer's decision with its candidates.
    browser
        .goto(&format!("{url}/dashboard/placements"))
        .await
        .expect("placements");
    for lb in created {
        let decision = format!("#placements tr[data-id='{lb}'] .decision");
        let decision = browser
            .find(Css(&decision))
            .await
            .expect("decision")
            .text()
            .await
            .expect("text");
        assert!(decision.contains(&world.haproxy_device), "{lb}: {decision}");
    }
    screenshot("placements").await;

    // The audit tail, verified, with the rollback in it.
    browser
        .goto(&format!("{url}/dashboard/audit"))
        .await
        .expect("audit");
    let verification = browser
        .find(Id("verification"))
        .await
        .expect("verification");
    assert_eq!(
        verification.attr("class").await.expect("class").as_deref(),
        Some("intact")
    );
    let functions = browser
        .find_all(Css("#audit td:nth-child(5)"))
        .await
        .expect("rows");
    let mut seen = Vec::new();
    for cell in functions {
        seen.push(cell.text().await.expect("text"));
    }
    assert!(seen.iter().any(|f| f == "lifecycle.rollback"), "{seen:?}");
    screenshot("audit").await;
}
