//! The real Acme ADC driver component: appliance limits enforced in `select`, JSON rendered by
//! `translate`, allocations recorded by `apply` in its private state, which survives a restart.

use lbaas_host::runtime::{DeviceKind, Hints, LoadBalancer, Verdict};
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::model::*;
use lbaas_tests::{TestHost, drivers};

fn verdict<'a>(hints: &'a Hints, id: &str) -> &'a Verdict {
    &hints
        .devices
        .iter()
        .find(|hint| hint.device_id == id)
        .unwrap_or_else(|| panic!("no hint for {id}: {hints:?}"))
        .verdict
}

fn rejection(hints: &Hints, id: &str) -> String {
    match verdict(hints, id) {
        Verdict::Reject(reason) => reason.clone(),
        Verdict::Score(score) => panic!("{id} was accepted with score {score}"),
    }
}

fn score(hints: &Hints, id: &str) -> i32 {
    match verdict(hints, id) {
        Verdict::Score(score) => *score,
        Verdict::Reject(reason) => panic!("{id} was rejected: {reason}"),
    }
}

/// An appliance with one interface of two VLANs.
fn small_appliance(id: &str, cluster: &str) -> lbaas_host::runtime::Device {
    with_metadata(
        device(id, DeviceKind::Physical, 32, Some(cluster)),
        "max-vlans-per-interface",
        "2",
    )
}

fn simple_lb(id: &str, vip: &str, vip_vlan: u16, member_vlan: u16) -> LoadBalancer {
    let mut lb = web_shop(id, vip);
    lb.vip_network = network(&format!("net-{vip_vlan}"), "192.0.2.0/24", Some(vip_vlan));
    lb.member_networks = vec![network(
        &format!("net-{member_vlan}"),
        "10.0.1.0/24",
        Some(member_vlan),
    )];
    lb
}

#[test]
fn capabilities_describe_a_physical_appliance() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    let driver = host.load(&drivers().acme_adc);
    let caps = driver.reported_capabilities();
    assert_eq!(caps.name, "acme-adc");
    assert!(!caps.can_spawn);
    assert_eq!(caps.device_kinds, vec![DeviceKind::Physical]);
    assert!(!caps.limits.overlapping_ips);
    assert_eq!(caps.limits.max_vlans_per_interface, Some(4));
    driver
        .validate_flavor(&flavor(
            "high-perf",
            &[("cluster", "east"), ("spread", "true")],
        ))
        .expect("valid flavor");
    let error = driver
        .validate_flavor(&flavor("high-perf", &[("spread", "sometimes")]))
        .expect_err("bad spread");
    assert!(error.to_string().contains("spread"), "{error}");
}

#[test]
fn translate_renders_the_appliance_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    let driver = host.load(&drivers().acme_adc);
    let lb = web_shop("lb-1", "192.0.2.10");
    let config = driver
        .translate(&lb, &small_appliance("adc-1", "east"))
        .expect("translate");
    assert_eq!(config.content_type, "application/json");
    let doc: serde_json::Value = serde_json::from_str(&config.body).expect("valid JSON");
    assert_eq!(doc["kind"], "VirtualService");
    assert_eq!(doc["metadata"]["partition"], "project-a");
    assert_eq!(doc["spec"]["vip"], "192.0.2.10");
    assert_eq!(
        doc["spec"]["virtualServers"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(doc["spec"]["virtualServers"][0]["destination"]["port"], 80);
    assert_eq!(
        doc["spec"]["pools"][2]["loadBalancingMethod"],
        "source-address-hash"
    );
    assert_eq!(doc["spec"]["pools"][2]["members"][1]["priorityGroup"], 0);
    assert_eq!(doc["spec"]["pools"][2]["members"][2]["state"], "disabled");
    assert_eq!(doc["spec"]["vlans"].as_array().map(Vec::len), Some(3));
}

#[test]
fn select_enforces_vlan_limits_and_vip_uniqueness_and_state_survives_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let appliance = FakeAppliance::start();
    let adc1 = small_appliance("adc-1", "east");
    let adc2 = small_appliance("adc-2", "east");
    let first = simple_lb("lb-1", "192.0.2.10", 100, 200);
    {
        let host = TestHost::open(dir.path());
        host.register_device("adc-1", "acme-adc", &appliance.url());
        let driver = host.load(&drivers().acme_adc);

        // Both appliances are empty: both fit.
        let candidates = [candidate(adc1.clone(), 0, 0), candidate(adc2.clone(), 0, 0)];
        let hints = driver
            .select(&request_for(&first), &candidates)
            .expect("select");
        score(&hints, "adc-1");
        score(&hints, "adc-2");

        // Configure lb-1 on adc-1: it takes VLANs 100 and 200, both slots of its interface.
        let config = driver.translate(&first, &adc1).expect("translate");
        driver.apply(&first, &adc1, &config).expect("apply");
        let received = appliance.received();
        let paths: Vec<&str> = received.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/api/v3/network/vlans/100",
                "/api/v3/network/vlans/200",
                "/api/v3/partitions/project-a/virtual-services/lb-1"
            ]
        );
        let vlan: serde_json::Value = serde_json::from_slice(&received[0].body).expect("json");
        assert_eq!(vlan["interface"], "1.1");
        host.shutdown();
    }

    // A restarted host: the driver's records are still there.
    let host = TestHost::open(dir.path());
    host.register_device("adc-1", "acme-adc", &appliance.url());
    let driver = host.load(&drivers().acme_adc);
    let candidates = [candidate(adc1.clone(), 1, 1), candidate(adc2.clone(), 0, 0)];

    // Same VIP address again: adc-1 already holds it.
    let same_vip = simple_lb("lb-2", "192.0.2.10", 100, 200);
    let hints = driver
        .select(&request_for(&same_vip), &candidates)
        .expect("select");
    let reason = rejection(&hints, "adc-1");
    assert!(
        reason.contains("192.0.2.10") && reason.contains("overlapping"),
        "{reason}"
    );
    score(&hints, "adc-2");

    // A new VLAN: adc-1 has no VLAN slot left.
    let new_vlan = simple_lb("lb-3", "192.0.2.11", 100, 300);
    let hints = driver
        .select(&request_for(&new_vlan), &candidates)
        .expect("select");
    let reason = rejection(&hints, "adc-1");
    assert!(reason.contains("VLANs exhausted"), "{reason}");

    // The same VLANs as lb-1 need no new slot: adc-1 fits, and scores for being wired already,
    // but loses against adc-2 because the project's VIPs are spread across the cluster.
    let same_vlans = simple_lb("lb-4", "192.0.2.12", 100, 200);
    let hints = driver
        .select(&request_for(&same_vlans), &candidates)
        .expect("select");
    assert!(score(&hints, "adc-2") > score(&hints, "adc-1"), "{hints:?}");
    // Without spreading, the wired appliance wins.
    let mut packed = request_for(&same_vlans);
    packed.flavor = Some(flavor("pack", &[("spread", "false")]));
    let hints = driver.select(&packed, &candidates).expect("select");
    assert!(score(&hints, "adc-1") > score(&hints, "adc-2"), "{hints:?}");

    // Removing lb-1 frees its VIP and VLANs on the appliance and in the driver's records.
    driver.remove(&first, &adc1).expect("remove");
    let hints = driver
        .select(&request_for(&same_vip), &candidates)
        .expect("select");
    score(&hints, "adc-1");
    let deleted: Vec<String> = appliance
        .received()
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        deleted,
        [
            "/api/v3/partitions/project-a/virtual-services/lb-1",
            "/api/v3/network/vlans/100",
            "/api/v3/network/vlans/200"
        ]
    );
}

#[test]
fn apply_refuses_a_vip_the_device_already_holds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let appliance = FakeAppliance::start();
    let host = TestHost::open(dir.path());
    host.register_device("adc-1", "acme-adc", &appliance.url());
    let driver = host.load(&drivers().acme_adc);
    let adc1 = small_appliance("adc-1", "east");
    let first = simple_lb("lb-1", "192.0.2.10", 100, 200);
    let config = driver.translate(&first, &adc1).expect("translate");
    driver.apply(&first, &adc1, &config).expect("apply");
    // Applying the same load balancer again is idempotent.
    driver.apply(&first, &adc1, &config).expect("re-apply");

    let clash = simple_lb("lb-2", "192.0.2.10", 100, 200);
    let config = driver.translate(&clash, &adc1).expect("translate");
    let error = driver.apply(&clash, &adc1, &config).expect_err("VIP clash");
    assert!(error.to_string().contains("already configured"), "{error}");
    // Nothing was pushed for the refused load balancer.
    assert!(
        appliance
            .received()
            .iter()
            .all(|r| !r.path.contains("lb-2"))
    );
}

#[test]
fn select_rejects_wrong_kind_wrong_cluster_and_full_devices() {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    let driver = host.load(&drivers().acme_adc);
    let lb = simple_lb("lb-1", "192.0.2.10", 100, 200);
    let mut request = request_for(&lb);
    request.flavor = Some(flavor("east-only", &[("cluster", "east")]));
    let candidates = [
        candidate(device("vm", DeviceKind::Virtual, 10, Some("east")), 0, 0),
        candidate(small_appliance("west-1", "west"), 0, 0),
        candidate(small_appliance("east-full", "east"), 32, 0),
        candidate(small_appliance("east-ok", "east"), 3, 0),
    ];
    let hints = driver.select(&request, &candidates).expect("select");
    assert!(rejection(&hints, "vm").contains("physical"));
    assert!(rejection(&hints, "west-1").contains("cluster east"));
    assert!(rejection(&hints, "east-full").contains("full"));
    score(&hints, "east-ok");
}

/// UDP and SCTP listeners with SOURCE_IP_PORT pools and an SCTP monitor: what the HAProxy
/// driver answers 501 for, the Acme appliance serves.
#[test]
fn udp_sctp_and_source_ip_port_render_for_the_appliance() {
    use lbaas_host::runtime::{Algorithm, HealthMonitorKind, Protocol};
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    let driver = host.load(&drivers().acme_adc);
    let caps = driver.reported_capabilities();
    for protocol in [Protocol::Udp, Protocol::Sctp] {
        assert!(caps.protocols.contains(&protocol), "{protocol:?}");
    }
    assert!(caps.algorithms.contains(&Algorithm::SourceIpPort));

    let mut lb = simple_lb("lb-l4", "192.0.2.20", 100, 200);
    let members = vec![
        member("m1", "10.0.1.5", 5060),
        member("m2", "10.0.1.6", 5060),
    ];
    let mut sip = pool(
        "sip",
        Protocol::Udp,
        Algorithm::SourceIpPort,
        members.clone(),
    );
    let mut signalling = pool("sig", Protocol::Sctp, Algorithm::SourceIpPort, members);
    let mut monitor = http_monitor("hm-sctp");
    (
        monitor.kind,
        monitor.http_method,
        monitor.url_path,
        monitor.expected_codes,
    ) = (HealthMonitorKind::Sctp, None, None, None);
    signalling.health_monitor = Some(monitor);
    let mut udp_monitor = http_monitor("hm-udp");
    (
        udp_monitor.kind,
        udp_monitor.http_method,
        udp_monitor.url_path,
        udp_monitor.expected_codes,
    ) = (HealthMonitorKind::UdpConnect, None, None, None);
    sip.health_monitor = Some(udp_monitor);
    lb.listeners = vec![
        listener("l-udp", Protocol::Udp, 5060, Some("sip")),
        listener("l-sctp", Protocol::Sctp, 3868, Some("sig")),
    ];
    lb.pools = vec![sip, signalling];
    let config = driver
        .translate(&lb, &small_appliance("adc-1", "east"))
        .expect("translate");
    let doc: serde_json::Value = serde_json::from_str(&config.body).expect("valid JSON");
    let servers = &doc["spec"]["virtualServers"];
    assert_eq!(servers[0]["profile"], "udp", "{doc}");
    assert_eq!(servers[1]["profile"], "sctp", "{doc}");
    for pool in doc["spec"]["pools"].as_array().expect("pools") {
        assert_eq!(
            pool["loadBalancingMethod"], "source-address-port-hash",
            "{doc}"
        );
    }
    let monitors: Vec<&serde_json::Value> = doc["spec"]["pools"]
        .as_array()
        .expect("pools")
        .iter()
        .filter_map(|p| p.get("monitor"))
        .collect();
    let kinds: Vec<&str> = monitors.iter().filter_map(|m| m["type"].as_str()).collect();
    assert!(kinds.contains(&"sctp") && kinds.contains(&"udp"), "{doc}");
}

/// The flavor's `loadbalancer_topology` becomes the appliance's redundancy mode; a zone's
/// `compute_zone` and `management_network` keep its load balancers on appliances whose metadata
/// names them.
#[test]
fn topology_and_zone_keys_reach_the_appliance() {
    use lbaas_host::runtime::AvailabilityZone;
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    let driver = host.load(&drivers().acme_adc);
    for topology in ["SINGLE", "ACTIVE_STANDBY"] {
        driver
            .validate_flavor(&flavor("ha", &[("loadbalancer_topology", topology)]))
            .expect(topology);
    }
    let error = driver
        .validate_flavor(&flavor("ha", &[("loadbalancer_topology", "TRIPLE")]))
        .expect_err("an unknown topology");
    assert!(
        error.to_string().contains("SINGLE or ACTIVE_STANDBY"),
        "{error}"
    );
    let mut lb = web_shop("lb-ha", "192.0.2.30");
    let appliance = small_appliance("adc-1", "east");
    let rendered = |lb: &LoadBalancer| -> serde_json::Value {
        let config = driver.translate(lb, &appliance).expect("translate");
        serde_json::from_str(&config.body).expect("valid JSON")
    };
    assert_eq!(rendered(&lb)["spec"]["redundancy"], "single");
    lb.flavor = Some(flavor("ha", &[("loadbalancer_topology", "ACTIVE_STANDBY")]));
    assert_eq!(rendered(&lb)["spec"]["redundancy"], "active-standby");

    let zone = |entries: &[(&str, &str)]| AvailabilityZone {
        name: "zone-a".into(),
        metadata: flavor("zone-a", entries).metadata,
    };
    driver
        .validate_availability_zone(&zone(&[
            ("compute_zone", "site-1"),
            ("management_network", "oob-1"),
        ]))
        .expect("valid zone");
    driver
        .validate_availability_zone(&zone(&[("compute_zone", " ")]))
        .expect_err("an empty site");
    let lb = simple_lb("lb-z", "192.0.2.31", 100, 200);
    let mut request = request_for(&lb);
    request.availability_zone = Some(zone(&[("compute_zone", "site-1")]));
    let candidates = [
        candidate(
            with_metadata(small_appliance("here", "east"), "compute_zone", "site-1"),
            0,
            0,
        ),
        candidate(
            with_metadata(small_appliance("there", "east"), "compute_zone", "site-2"),
            0,
            0,
        ),
        candidate(small_appliance("unknown", "east"), 0, 0),
    ];
    let hints = driver.select(&request, &candidates).expect("select");
    score(&hints, "here");
    assert!(rejection(&hints, "there").contains("compute zone site-1"));
    assert!(rejection(&hints, "unknown").contains("compute zone site-1"));
}

/// L7 policies become appliance traffic policies (the rule's values as JSON strings, never
/// spliced into syntax), inserted headers and PROXY pools reach the appliance.
#[test]
fn l7_policies_headers_and_proxy_pools_render_for_the_appliance() {
    use lbaas_host::runtime::{
        Algorithm, Entry, L7Action, L7Compare, L7Policy, L7Rule, L7RuleKind, Protocol,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    let driver = host.load(&drivers().acme_adc);
    let caps = driver.reported_capabilities();
    assert_eq!(caps.features.l7_actions.len(), 4);
    assert!(caps.protocols.contains(&Protocol::ProxyV2));

    let mut lb = simple_lb("lb-l7", "192.0.2.40", 100, 200);
    let mut http = listener("l-http", Protocol::Http, 80, Some("web"));
    http.insert_headers = vec![Entry {
        key: "X-Forwarded-For".into(),
        value: "true".into(),
    }];
    http.l7_policies = vec![L7Policy {
        id: "p1".into(),
        name: "api".into(),
        action: L7Action::RedirectToPool,
        position: 1,
        redirect_pool_id: Some("api".into()),
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        rules: vec![L7Rule {
            id: "r1".into(),
            kind: L7RuleKind::Path,
            compare: L7Compare::StartsWith,
            key: None,
            value: "/api\"}, {\"injected".into(),
            invert: false,
            admin_state_up: true,
        }],
        admin_state_up: true,
    }];
    lb.listeners = vec![http];
    lb.pools = vec![
        pool("web", Protocol::Http, Algorithm::RoundRobin, Vec::new()),
        pool("api", Protocol::ProxyV2, Algorithm::RoundRobin, Vec::new()),
    ];
    let config = driver
        .translate(&lb, &small_appliance("adc-1", "east"))
        .expect("translate");
    let doc: serde_json::Value = serde_json::from_str(&config.body).expect("valid JSON");
    let server = &doc["spec"]["virtualServers"][0];
    assert_eq!(
        server["insertHeaders"],
        serde_json::json!(["X-Forwarded-For"])
    );
    let policy = &server["trafficPolicies"][0];
    assert_eq!(policy["action"]["type"], "forward");
    assert_eq!(policy["action"]["pool"], "api");
    assert_eq!(policy["conditions"][0]["operator"], "starts-with");
    assert_eq!(policy["conditions"][0]["value"], "/api\"}, {\"injected");
    assert_eq!(doc["spec"]["pools"][1]["proxyProtocol"], "v2");
    assert_eq!(
        doc["spec"]["pools"][0]["proxyProtocol"],
        serde_json::Value::Null
    );
}
