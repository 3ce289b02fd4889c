//! Placement through the HTTP API with the real Wasm drivers: decisions explained, dry runs,
//! and the placement rules of the original discussion that this scheduler covers so far.

use lbaas_host::api::Auth;
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane};
use serde_json::{Value, json};

fn id(value: &Value, kind: &str) -> String {
    value[kind]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no {kind} id in {value}"))
        .to_owned()
}

fn network(admin: &Client, id: &str, vlan: u16, cidr: &str) {
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": id, "vlan": vlan, "subnets": [{"id": format!("{id}-subnet"), "cidr": cidr}]}}),
    );
}

fn device(admin: &Client, body: Value) -> String {
    id(
        &admin.create("/v2/admin/devices", &json!({ "device": body })),
        "device",
    )
}

fn flavor(admin: &Client, name: &str, provider: &str, data: Value) -> String {
    let profile = admin.create(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": name, "provider_name": provider, "flavor_data": data.to_string()}}),
    );
    let profile = id(&profile, "flavorprofile");
    id(
        &admin.create(
            "/v2/lbaas/flavors",
            &json!({"flavor": {"name": name, "flavor_profile_id": profile}}),
        ),
        "flavor",
    )
}

/// Creates a load balancer with one member on `member_net` and waits for it to settle.
fn create_lb(client: &Client, vip_net: &str, member_net_address: &str, flavor: &str) -> Value {
    let created = client.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"vip_subnet_id": format!("{vip_net}-subnet"), "flavor_id": flavor,
            "listeners": [{"protocol": "TCP", "protocol_port": 443, "default_pool": {
                "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": member_net_address, "protocol_port": 8443}]}}]}}),
    );
    client.settle(&id(&created, "loadbalancer"))
}

fn device_of(admin: &Client, lb: &Value) -> String {
    let lb_id = lb["id"].as_str().expect("lb id");
    let (status, placement) = admin.get(&format!("/v2/admin/loadbalancers/{lb_id}/placement"));
    assert_eq!(status, 200, "{placement}");
    placement["placement"]["device_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn decisions_are_explained_and_dry_runs_change_nothing() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.0.80.0/24");
    network(&admin, "app", 201, "10.1.0.0/24");
    let wired = device(
        &admin,
        json!({"name": "wired", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 10, "networks": ["vip", "app"]}),
    );
    let bare = device(
        &admin,
        json!({"name": "bare", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 10}),
    );
    let off = device(
        &admin,
        json!({"name": "off", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 10, "enabled": false}),
    );
    let plain = flavor(&admin, "plain", "haproxy", json!({}));

    // Dry run first: the wired device would win; nothing is created or reserved.
    let (status, dry) = admin.post(
        "/v2/admin/placements/dry-run",
        &json!({"placement": {"vip_subnet_id": "vip-subnet", "member_networks": ["app"], "protocols": ["TCP"], "flavor_id": plain}}),
    );
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        dry["placement"]["outcome"]["device_id"],
        wired.as_str(),
        "{dry}"
    );
    assert_eq!(
        admin.get("/v2/lbaas/loadbalancers").1["loadbalancers"],
        json!([])
    );

    let lb = create_lb(&admin, "vip", "10.1.0.11", &plain);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    assert_eq!(device_of(&admin, &lb), wired);
    let lb_id = lb["id"].as_str().expect("id");
    let (_, placement) = admin.get(&format!("/v2/admin/loadbalancers/{lb_id}/placement"));
    let candidates = placement["placement"]["explanation"]["candidates"]
        .as_array()
        .expect("candidates")
        .clone();
    assert_eq!(candidates.len(), 3);
    let report = |device: &str| {
        candidates
            .iter()
            .find(|c| c["device_id"] == device)
            .expect("report")
            .clone()
    };
    assert_eq!(report(&off)["filtered_by"], "disabled");
    assert_eq!(report(&wired)["weighers"]["wired"], 100.0);
    assert_eq!(report(&bare)["weighers"]["wired"], 0.0);
    assert!(
        report(&wired)["driver_verdict"]["score"].is_number(),
        "{}",
        report(&wired)
    );
    assert_eq!(report(&bare)["offered"], true);
    assert_eq!(
        placement["placement"]["explanation"]["outcome"]["result"],
        "placed"
    );
}

#[test]
fn acme_limits_reject_devices_the_generic_filters_allow() {
    let data = tempfile::tempdir().expect("temp dir");
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip-a", 100, "127.0.81.0/24");
    network(&admin, "app-a", 201, "10.2.0.0/24");
    network(&admin, "vip-b", 300, "127.0.82.0/24");
    network(&admin, "app-b", 301, "10.3.0.0/24");
    // One appliance, one interface of two VLANs.
    let appliance = device(
        &admin,
        json!({"name": "adc-1", "kind": "physical", "driver": "acme-adc",
        "management_url": adc.url(), "capacity": 32, "cluster": "east",
        "metadata": {"max-vlans-per-interface": "2"}}),
    );
    let fast = flavor(&admin, "high-perf", "acme-adc", json!({"cluster": "east"}));
    let tenant_a = cp.client(None).as_project("a");
    let tenant_b = cp.client(None).as_project("b");

    let first = create_lb(&tenant_a, "vip-a", "10.2.0.11", &fast);
    assert_eq!(first["provisioning_status"], "ACTIVE", "{first}");
    assert_eq!(device_of(&admin, &first), appliance);

    // Capacity, protocol and visibility all allow adc-1, but it has no VLAN slot left.
    let second = create_lb(&tenant_b, "vip-b", "10.3.0.11", &fast);
    assert_eq!(second["provisioning_status"], "ERROR");
    let second_id = second["id"].as_str().expect("id");
    let (_, placement) = admin.get(&format!("/v2/admin/loadbalancers/{second_id}/placement"));
    let report = &placement["placement"]["explanation"]["candidates"][0];
    assert_eq!(report["filtered_by"], Value::Null, "{report}");
    let rejection = report["driver_verdict"]["reject"]
        .as_str()
        .unwrap_or_default();
    assert!(rejection.contains("VLANs exhausted"), "{report}");
    assert!(
        second["fault"]
            .as_str()
            .unwrap_or_default()
            .contains("VLANs exhausted"),
        "{second}"
    );

    // The same VIP address on the same appliance: no overlapping IPs.
    let first_vip = first["vip_address"].as_str().expect("vip");
    let (_, dry) = admin.post(
        "/v2/admin/placements/dry-run",
        &json!({"placement": {"project_id": "c", "vip_subnet_id": "vip-a-subnet", "vip_address": first_vip,
                "member_networks": ["app-a"], "flavor_id": fast}}),
    );
    let rejection = dry["placement"]["candidates"][0]["driver_verdict"]["reject"]
        .as_str()
        .unwrap_or_default();
    assert!(rejection.contains("overlapping"), "{dry}");
}

#[test]
fn a_tenants_vips_spread_across_the_cluster() {
    let data = tempfile::tempdir().expect("temp dir");
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.0.83.0/24");
    network(&admin, "app", 201, "10.4.0.0/24");
    let mut devices = Vec::new();
    for name in ["adc-1", "adc-2"] {
        devices.push(device(
            &admin,
            json!({"name": name, "kind": "physical", "driver": "acme-adc",
            "management_url": adc.url(), "capacity": 32, "cluster": "east"}),
        ));
    }
    let fast = flavor(&admin, "high-perf", "acme-adc", json!({"cluster": "east"}));
    let tenant = cp.client(None).as_project("a");
    let one = create_lb(&tenant, "vip", "10.4.0.11", &fast);
    let two = create_lb(&tenant, "vip", "10.4.0.12", &fast);
    let (d1, d2) = (device_of(&admin, &one), device_of(&admin, &two));
    assert_ne!(
        d1, d2,
        "the driver spreads a project's VIPs across its cluster"
    );
}

#[test]
fn flavor_weights_group_a_projects_load_balancers() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.0.84.0/24");
    for name in ["h-1", "h-2"] {
        device(
            &admin,
            json!({"name": name, "kind": "virtual", "driver": "haproxy",
            "management_url": agent.url(), "capacity": 10}),
        );
    }
    let grouped = flavor(
        &admin,
        "grouped",
        "haproxy",
        json!({"scheduler": {"project_affinity": 3.0}}),
    );
    let tenant = cp.client(None).as_project("a");
    let one = create_lb(&tenant, "vip", "10.5.0.11", &grouped);
    let two = create_lb(&tenant, "vip", "10.5.0.12", &grouped);
    assert_eq!(
        device_of(&admin, &one),
        device_of(&admin, &two),
        "grouped on one device"
    );

    // Weighing load alone (the busy device is now also wired to the VIP network, which would
    // otherwise count for it), the least loaded device takes the next one.
    let plain = flavor(
        &admin,
        "plain",
        "haproxy",
        json!({"scheduler": {"wired": 0.0}}),
    );
    let three = create_lb(&tenant, "vip", "10.5.0.13", &plain);
    assert_ne!(device_of(&admin, &three), device_of(&admin, &one));

    // A bad weights object is refused when the profile is created.
    let (status, body) = admin.post(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": "bad", "provider_name": "haproxy",
                "flavor_data": json!({"scheduler": {"gravity": 1}}).to_string()}}),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn concurrent_creates_never_overbook_a_device() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.0.0/22");
    let capacities = [5u64, 7, 9];
    for (i, capacity) in capacities.iter().enumerate() {
        device(
            &admin,
            json!({"name": format!("h-{i}"), "kind": "virtual", "driver": "haproxy",
            "management_url": agent.url(), "capacity": capacity}),
        );
    }
    let clients: Vec<_> = (0..16)
        .map(|c| {
            let client = cp.client(None).as_project(&format!("p{}", c % 4));
            std::thread::spawn(move || {
                (0..200 / 16 + usize::from(c < 200 % 16))
                    .map(|_| {
                        let created = client.create(
                            "/v2/lbaas/loadbalancers",
                            &json!({"loadbalancer": {"vip_subnet_id": "vip-subnet"}}),
                        );
                        id(&created, "loadbalancer")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let ids: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client"))
        .collect();
    assert_eq!(ids.len(), 200);

    let (mut active, mut refused) = (0, 0);
    for lb in &ids {
        let lb = admin.settle(lb);
        match lb["provisioning_status"].as_str() {
            Some("ACTIVE") => active += 1,
            Some("ERROR") => {
                assert!(
                    lb["fault"]
                        .as_str()
                        .unwrap_or_default()
                        .contains("no capacity"),
                    "{lb}"
                );
                refused += 1;
            }
            other => panic!("unexpected state {other:?}: {lb}"),
        }
    }
    let (_, devices) = admin.get("/v2/admin/devices");
    for device in devices["devices"].as_array().expect("devices") {
        assert!(
            device["load_balancers"].as_u64() <= device["capacity"].as_u64(),
            "over capacity: {device}"
        );
        assert_eq!(
            device["load_balancers"], device["capacity"],
            "capacity left unused: {device}"
        );
    }
    assert_eq!(active, capacities.iter().sum::<u64>());
    assert_eq!(active + refused, 200);
}

#[test]
fn a_full_fleet_spawns_a_new_device_and_wiring_follows_the_load_balancers() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start_with(data.path(), Auth::None, Some(agent.url()));
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.8.0/24");
    network(&admin, "app", 201, "10.6.0.0/24");
    let only = device(
        &admin,
        json!({"name": "h-1", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 1}),
    );
    let plain = flavor(&admin, "plain", "haproxy", json!({"spawn-capacity": 3}));

    // The first fills the only device and wires it to both networks.
    let first = create_lb(&admin, "vip", "10.6.0.11", &plain);
    assert_eq!(device_of(&admin, &first), only);
    let (_, wired) = admin.get(&format!("/v2/admin/devices/{only}"));
    assert_eq!(
        wired["device"]["networks"],
        json!(["vip", "app"]),
        "{wired}"
    );

    // The fleet is full: the haproxy driver asks for a device, which is registered and used.
    let second = create_lb(&admin, "vip", "10.6.0.12", &plain);
    assert_eq!(second["provisioning_status"], "ACTIVE", "{second}");
    let spawned = device_of(&admin, &second);
    assert_ne!(spawned, only);
    let (_, device) = admin.get(&format!("/v2/admin/devices/{spawned}"));
    assert_eq!(device["device"]["capacity"], 3);
    assert!(
        device["device"]["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("haproxy-"),
        "{device}"
    );
    let second_id = second["id"].as_str().expect("id");
    let (_, placement) = admin.get(&format!("/v2/admin/loadbalancers/{second_id}/placement"));
    assert_eq!(
        placement["placement"]["explanation"]["outcome"]["result"], "spawn",
        "{placement}"
    );

    // Deleting the last user of an attachment releases it.
    let first_id = first["id"].as_str().expect("id");
    assert_eq!(
        admin
            .delete(&format!("/v2/lbaas/loadbalancers/{first_id}?cascade=true"))
            .0,
        204
    );
    assert_eq!(admin.settle(first_id), Value::Null);
    let (_, released) = admin.get(&format!("/v2/admin/devices/{only}"));
    assert_eq!(released["device"]["networks"], json!([]), "{released}");
    assert_eq!(released["device"]["load_balancers"], 0);
}

#[test]
fn a_failed_create_gives_its_reservation_back() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.9.0/24");
    let only = device(
        &admin,
        json!({"name": "h-1", "kind": "virtual", "driver": "haproxy",
        "management_url": "http://127.0.0.1:9", "capacity": 1}),
    );
    let plain = flavor(&admin, "plain", "haproxy", json!({}));
    // The device cannot be reached: the create fails, and the device is free again.
    let failed = create_lb(&admin, "vip", "10.7.0.11", &plain);
    assert_eq!(failed["provisioning_status"], "ERROR", "{failed}");
    let (_, device) = admin.get(&format!("/v2/admin/devices/{only}"));
    assert_eq!(device["device"]["load_balancers"], 0, "{device}");
    drop(agent);
}

#[test]
fn a_load_balancer_moves_off_a_disabled_device() {
    let data = tempfile::tempdir().expect("temp dir");
    let (agent_1, agent_2) = (FakeAppliance::start(), FakeAppliance::start());
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.10.0/24");
    let one = device(
        &admin,
        json!({"name": "h-1", "kind": "virtual", "driver": "haproxy",
        "management_url": agent_1.url(), "capacity": 4}),
    );
    let two = device(
        &admin,
        json!({"name": "h-2", "kind": "virtual", "driver": "haproxy",
        "management_url": agent_2.url(), "capacity": 4, "enabled": false}),
    );
    let plain = flavor(&admin, "plain", "haproxy", json!({}));
    let lb = create_lb(&admin, "vip", "10.8.0.11", &plain);
    assert_eq!(device_of(&admin, &lb), one);
    let lb_id = lb["id"].as_str().expect("id").to_owned();

    // h-1 goes out of service; h-2 comes in. Migrate, letting the scheduler choose.
    admin.put(
        &format!("/v2/admin/devices/{one}"),
        &json!({"device": {"enabled": false}}),
    );
    admin.put(
        &format!("/v2/admin/devices/{two}"),
        &json!({"device": {"enabled": true}}),
    );
    let (status, body) = admin.call(
        "PUT",
        &format!("/v2/admin/loadbalancers/{lb_id}/migrate"),
        None,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(admin.settle(&lb_id)["provisioning_status"], "ACTIVE");
    assert_eq!(device_of(&admin, &lb), two);
    let config = format!("/v1/loadbalancers/{lb_id}/config");
    assert!(
        agent_2
            .received()
            .iter()
            .any(|r| r.method == "PUT" && r.path == config)
    );
    assert!(
        agent_1
            .received()
            .iter()
            .any(|r| r.method == "DELETE" && r.path == config)
    );
    assert_eq!(
        admin.get(&format!("/v2/admin/devices/{one}")).1["device"]["networks"],
        json!([])
    );
    assert_eq!(
        admin.get(&format!("/v2/admin/devices/{two}")).1["device"]["networks"],
        json!(["vip"])
    );

    // Back to a named device.
    admin.put(
        &format!("/v2/admin/devices/{one}"),
        &json!({"device": {"enabled": true}}),
    );
    let (status, _) = admin.put(
        &format!("/v2/admin/loadbalancers/{lb_id}/migrate"),
        &json!({"migrate": {"device_id": one}}),
    );
    assert_eq!(status, 202);
    assert_eq!(admin.settle(&lb_id)["provisioning_status"], "ACTIVE");
    assert_eq!(device_of(&admin, &lb), one);
    // Refused: to the device it is on, or a device of another driver.
    let (status, body) = admin.put(
        &format!("/v2/admin/loadbalancers/{lb_id}/migrate"),
        &json!({"migrate": {"device_id": one}}),
    );
    assert_eq!(status, 400, "{body}");
}

#[test]
fn physical_appliances_first_then_virtual_then_a_new_one() {
    let data = tempfile::tempdir().expect("temp dir");
    let (adc, agent) = (FakeAppliance::start(), FakeAppliance::start());
    let cp = ControlPlane::start_with(data.path(), Auth::None, Some(agent.url()));
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.11.0/24");
    let appliance = device(
        &admin,
        json!({"name": "adc-1", "kind": "physical", "driver": "acme-adc",
        "management_url": adc.url(), "capacity": 1, "cluster": "east"}),
    );
    let vm = device(
        &admin,
        json!({"name": "h-1", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 1}),
    );
    // One service type, two eligible drivers: the scheduler compares across them.
    let any = flavor(
        &admin,
        "any-lb",
        "acme-adc",
        json!({"providers": ["haproxy"]}),
    );

    let first = create_lb(&admin, "vip", "10.9.0.11", &any);
    assert_eq!(
        device_of(&admin, &first),
        appliance,
        "the appliance is preferred while it has room"
    );
    assert_eq!(first["provider"], "acme-adc");
    let second = create_lb(&admin, "vip", "10.9.0.12", &any);
    assert_eq!(device_of(&admin, &second), vm, "then the virtual balancer");
    assert_eq!(second["provider"], "haproxy");
    let third = create_lb(&admin, "vip", "10.9.0.13", &any);
    let spawned = device_of(&admin, &third);
    assert!(spawned != appliance && spawned != vm, "then a spawned one");
    assert_eq!(third["provisioning_status"], "ACTIVE");
}

#[test]
fn relative_load_beats_absolute_vip_count() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.12.0/24");
    let plain = flavor(
        &admin,
        "plain",
        "haproxy",
        json!({"scheduler": {"wired": 0.0}}),
    );
    let small = device(
        &admin,
        json!({"name": "small", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 2}),
    );
    let on_small = create_lb(&admin, "vip", "10.10.0.11", &plain);
    assert_eq!(device_of(&admin, &on_small), small);
    let big = device(
        &admin,
        json!({"name": "big", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 100}),
    );
    for i in 0..9 {
        let lb = create_lb(&admin, "vip", &format!("10.10.0.{}", 20 + i), &plain);
        assert_eq!(device_of(&admin, &lb), big);
    }
    // big carries 9 VIPs, small 1: big is still the less loaded (9% against 50%).
    let next = create_lb(&admin, "vip", "10.10.0.40", &plain);
    assert_eq!(device_of(&admin, &next), big);
}

#[test]
fn a_networks_vips_can_be_grouped() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip-x", 100, "127.1.13.0/24");
    network(&admin, "vip-y", 101, "127.1.14.0/24");
    let grouped = flavor(
        &admin,
        "grouped",
        "haproxy",
        json!({"scheduler": {"wired": 0.0, "network_affinity": 3.0}}),
    );
    let first = device(
        &admin,
        json!({"name": "h-1", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 10}),
    );
    let x1 = create_lb(&admin, "vip-x", "10.11.0.11", &grouped);
    assert_eq!(device_of(&admin, &x1), first);
    let second = device(
        &admin,
        json!({"name": "h-2", "kind": "virtual", "driver": "haproxy",
        "management_url": agent.url(), "capacity": 10}),
    );
    // Another VIP on network x joins the first despite h-2 being empty; one on y does not.
    let x2 = create_lb(&admin, "vip-x", "10.11.0.12", &grouped);
    assert_eq!(device_of(&admin, &x2), first);
    let y1 = create_lb(&admin, "vip-y", "10.11.0.13", &grouped);
    assert_eq!(device_of(&admin, &y1), second);
}

#[test]
fn a_failed_move_leaves_the_load_balancer_where_it_was() {
    let data = tempfile::tempdir().expect("temp dir");
    let (agent_1, agent_2) = (FakeAppliance::start(), FakeAppliance::start());
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.1.15.0/24");
    let one = device(
        &admin,
        json!({"name": "h-1", "kind": "virtual", "driver": "haproxy",
        "management_url": agent_1.url(), "capacity": 4}),
    );
    let plain = flavor(&admin, "plain", "haproxy", json!({}));
    let lb = create_lb(&admin, "vip", "10.12.0.11", &plain);
    let lb_id = lb["id"].as_str().expect("id").to_owned();
    assert_eq!(device_of(&admin, &lb), one);

    let two = device(
        &admin,
        json!({"name": "h-2", "kind": "virtual", "driver": "haproxy",
        "management_url": agent_2.url(), "capacity": 4}),
    );
    agent_2.respond(&format!("/v1/loadbalancers/{lb_id}/config"), 503);
    let (status, _) = admin.put(
        &format!("/v2/admin/loadbalancers/{lb_id}/migrate"),
        &json!({"migrate": {"device_id": two}}),
    );
    assert_eq!(status, 202);
    let failed = admin.settle(&lb_id);
    assert_eq!(failed["provisioning_status"], "ERROR");
    assert!(
        failed["fault"].as_str().unwrap_or_default().contains("503"),
        "{failed}"
    );
    assert_eq!(device_of(&admin, &lb), one, "still on its old device");
    assert_eq!(
        admin.get(&format!("/v2/admin/devices/{two}")).1["device"]["load_balancers"],
        0
    );
    assert_eq!(
        admin.get(&format!("/v2/admin/devices/{two}")).1["device"]["networks"],
        json!([])
    );
    assert!(
        !agent_1.received().iter().any(|r| r.method == "DELETE"),
        "the old device kept it"
    );
}

/// Availability zones: a profile's metadata is the driver's to accept, a load balancer created
/// in a zone lands on a device of that zone (the Acme driver also keeps to the profile's
/// cluster), and a zone in use cannot go.
#[test]
fn an_availability_zone_keeps_its_load_balancers_on_its_devices() {
    let data = tempfile::tempdir().expect("temp dir");
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.0.84.0/24");
    network(&admin, "app", 201, "10.5.0.0/24");

    let (_, caps) = admin.get("/v2/lbaas/providers/acme-adc/availability_zone_capabilities");
    assert_eq!(
        caps["availability_zone_capabilities"][0]["name"], "cluster",
        "{caps}"
    );
    let profile = |provider: &str, data: Value| {
        admin.post(
            "/v2/lbaas/availabilityzoneprofiles",
            &json!({"availability_zone_profile": {"name": format!("{provider}-zone"),
                    "provider_name": provider, "availability_zone_data": data.to_string()}}),
        )
    };
    // A key the driver does not declare is an option the provider lacks: 501, naming it.
    let (status, refused) = profile("acme-adc", json!({"rack": "7"}));
    assert_eq!(status, 501, "{refused}");
    assert!(
        refused["faultstring"]
            .as_str()
            .is_some_and(|f| f.contains("availability zone metadata key 'rack'")),
        "{refused}"
    );
    let (status, _) = profile("haproxy", json!({"anything": "x"}));
    assert_eq!(status, 501, "the HAProxy driver declares no zone keys");
    // A declared key with a value the driver refuses is a bad request.
    let (status, refused) = profile("acme-adc", json!({"cluster": " "}));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["faultstring"]
            .as_str()
            .is_some_and(|f| f.contains("rejected the availability zone metadata")),
        "{refused}"
    );
    let (status, east_profile) = profile("acme-adc", json!({"cluster": "east"}));
    assert_eq!(status, 201, "{east_profile}");
    let east_profile = east_profile["availability_zone_profile"]["id"]
        .as_str()
        .expect("profile id")
        .to_owned();
    admin.create(
        "/v2/lbaas/availabilityzones",
        &json!({"availability_zone": {"name": "east", "availability_zone_profile_id": east_profile}}),
    );
    admin.create(
        "/v2/lbaas/availabilityzones",
        &json!({"availability_zone": {"name": "closed", "enabled": false,
                "availability_zone_profile_id": east_profile}}),
    );

    // Three appliances: one in the zone, one outside it, one in it but of another cluster.
    let outside = device(
        &admin,
        json!({"name": "adc-out", "kind": "physical", "driver": "acme-adc",
               "management_url": adc.url(), "capacity": 32, "cluster": "east"}),
    );
    let inside = device(
        &admin,
        json!({"name": "adc-in", "kind": "physical", "driver": "acme-adc",
               "management_url": adc.url(), "capacity": 32, "cluster": "east",
               "availability_zone": "east"}),
    );
    device(
        &admin,
        json!({"name": "adc-west", "kind": "physical", "driver": "acme-adc",
               "management_url": adc.url(), "capacity": 32, "cluster": "west",
               "availability_zone": "east"}),
    );
    let (status, _) = admin.post(
        "/v2/admin/devices",
        &json!({"device": {"name": "adc-x", "kind": "physical", "driver": "haproxy",
                "management_url": adc.url(), "capacity": 1, "availability_zone": "east"}}),
    );
    assert_eq!(
        status, 400,
        "a zone of the Acme driver takes no HAProxy device"
    );

    let tenant = cp.client(None).as_project("a");
    let in_zone = |zone: &str| {
        tenant.post(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"vip_subnet_id": "vip-subnet", "availability_zone": zone,
                "listeners": [{"protocol": "TCP", "protocol_port": 443, "default_pool": {
                    "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                    "members": [{"address": "10.5.0.11", "protocol_port": 8443}]}}]}}),
        )
    };
    for _ in 0..3 {
        let (status, created) = in_zone("east");
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["loadbalancer"]["availability_zone"], "east");
        assert_eq!(created["loadbalancer"]["provider"], "acme-adc");
        let lb = tenant.settle(&id(&created, "loadbalancer"));
        assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
        assert_eq!(device_of(&admin, &lb), inside);
    }
    assert_ne!(inside, outside);
    let (status, body) = in_zone("closed");
    assert_eq!(status, 400, "{body}");
    let (status, body) = in_zone("nowhere");
    assert_eq!(status, 400, "{body}");

    let (status, _) = admin.delete("/v2/lbaas/availabilityzones/east");
    assert_eq!(status, 409, "a zone in use stays");
    let (status, _) = admin.delete(&format!(
        "/v2/lbaas/availabilityzoneprofiles/{east_profile}"
    ));
    assert_eq!(status, 409, "a profile in use stays");
    let (_, zones) = tenant.get("/v2/lbaas/availabilityzones");
    assert_eq!(
        zones["availability_zones"].as_array().map(Vec::len),
        Some(2)
    );
}

/// Failover off a device an operator took out of service: the load balancer moves to a
/// device the scheduler picks, and ends ACTIVE there.
#[test]
fn failover_moves_a_load_balancer_off_a_disabled_device() {
    let data = tempfile::tempdir().expect("temp dir");
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.0.85.0/24");
    network(&admin, "app", 201, "10.6.0.0/24");
    for name in ["adc-1", "adc-2"] {
        device(
            &admin,
            json!({"name": name, "kind": "physical", "driver": "acme-adc",
                   "management_url": adc.url(), "capacity": 8}),
        );
    }
    let created = admin.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"vip_subnet_id": "vip-subnet", "provider": "acme-adc",
            "listeners": [{"protocol": "TCP", "protocol_port": 443, "default_pool": {
                "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": "10.6.0.11", "protocol_port": 8443}]}}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = admin.settle(&lb_id);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    let first = device_of(&admin, &lb);

    let (status, body) = admin.put(
        &format!("/v2/admin/devices/{first}"),
        &json!({"device": {"enabled": false}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin.call(
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{lb_id}/failover"),
        None,
    );
    assert_eq!(status, 202, "{body}");
    let moved = admin.settle(&lb_id);
    assert_eq!(moved["provisioning_status"], "ACTIVE", "{moved}");
    let second = device_of(&admin, &moved);
    assert!(!second.is_empty() && second != first, "{first} -> {second}");
    let (_, devices) = admin.get("/v2/admin/devices");
    let load = |id: &str| {
        devices["devices"]
            .as_array()
            .and_then(|all| all.iter().find(|d| d["id"] == id))
            .map(|d| d["load_balancers"].clone())
    };
    assert_eq!(load(&first), Some(json!(0)));
    assert_eq!(load(&second), Some(json!(1)));
}

/// A device that died keeps its load balancers from being deleted (the driver cannot remove
/// them from it) until an operator takes it out of service: then the deletes go through.
#[test]
fn load_balancers_on_a_dead_device_are_deleted_once_it_is_disabled() {
    let data = tempfile::tempdir().expect("temp dir");
    let adc = FakeAppliance::start();
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    network(&admin, "vip", 100, "127.0.86.0/24");
    network(&admin, "app", 201, "10.7.0.0/24");
    let dead = device(
        &admin,
        json!({"name": "adc-1", "kind": "physical", "driver": "acme-adc",
               "management_url": adc.url(), "capacity": 8}),
    );
    let created = admin.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"vip_subnet_id": "vip-subnet", "provider": "acme-adc",
            "listeners": [{"protocol": "TCP", "protocol_port": 443, "default_pool": {
                "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                "members": [{"address": "10.7.0.11", "protocol_port": 8443}]}}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    assert_eq!(admin.settle(&lb_id)["provisioning_status"], "ACTIVE");

    drop(adc);
    let delete = format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true");
    let (status, body) = admin.delete(&delete);
    assert_eq!(status, 204, "{body}");
    let stuck = admin.settle(&lb_id);
    assert_eq!(stuck["provisioning_status"], "ERROR", "{stuck}");

    let (status, body) = admin.put(
        &format!("/v2/admin/devices/{dead}"),
        &json!({"device": {"enabled": false}}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin.delete(&delete);
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        admin.settle(&lb_id),
        Value::Null,
        "the load balancer is gone"
    );
    let (_, device) = admin.get(&format!("/v2/admin/devices/{dead}"));
    assert_eq!(device["device"]["load_balancers"], 0, "{device}");
}

// The same suite with its hosts on PostgreSQL.
lbaas_tests::also_on_postgres!(
    decisions_are_explained_and_dry_runs_change_nothing,
    acme_limits_reject_devices_the_generic_filters_allow,
    a_tenants_vips_spread_across_the_cluster,
    flavor_weights_group_a_projects_load_balancers,
    concurrent_creates_never_overbook_a_device,
    a_full_fleet_spawns_a_new_device_and_wiring_follows_the_load_balancers,
    a_failed_create_gives_its_reservation_back,
    a_load_balancer_moves_off_a_disabled_device,
    physical_appliances_first_then_virtual_then_a_new_one,
    relative_load_beats_absolute_vip_count,
    a_networks_vips_can_be_grouped,
    a_failed_move_leaves_the_load_balancer_where_it_was,
    an_availability_zone_keeps_its_load_balancers_on_its_devices,
    failover_moves_a_load_balancer_off_a_disabled_device,
    load_balancers_on_a_dead_device_are_deleted_once_it_is_disabled,
);
