//! The real HAProxy driver component, called through the runtime: every export, and the
//! rendered configuration checked by `haproxy -c`.

use lbaas_host::runtime::{
    Algorithm, AvailabilityZone, DeviceKind, Error, HealthMonitorKind, HttpVersion,
    PersistenceKind, Protocol, SessionPersistence, Verdict,
};
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::model::*;
use lbaas_tests::{TestHost, drivers, haproxy_check};

fn host() -> (tempfile::TempDir, TestHost) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open(dir.path());
    (dir, host)
}

#[test]
fn capabilities_describe_a_virtual_spawning_driver() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let caps = driver.reported_capabilities();
    assert_eq!(caps.name, "haproxy");
    assert!(caps.can_spawn);
    assert_eq!(caps.device_kinds, vec![DeviceKind::Virtual]);
    for protocol in [Protocol::Tcp, Protocol::Http, Protocol::Https] {
        assert!(caps.protocols.contains(&protocol), "{protocol:?} missing");
    }
    assert_eq!(
        caps.algorithms,
        vec![
            Algorithm::RoundRobin,
            Algorithm::LeastConnections,
            Algorithm::SourceIp
        ]
    );
    assert_eq!(
        driver.fetch_capabilities().expect("capabilities again"),
        *caps
    );
}

#[test]
fn translated_config_is_valid_haproxy() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let lb = web_shop("lb-1", "127.0.0.10");
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let config = driver.translate(&lb, &device).expect("translate");
    assert_eq!(config.content_type, "text/x-haproxy-cfg");
    let cfg = &config.body;

    // One frontend per listener, one backend per pool.
    for section in ["frontend l-http", "frontend l-https", "frontend l-db"] {
        assert!(cfg.contains(section), "{section} missing:\n{cfg}");
    }
    for section in ["backend pool-web", "backend pool-tls", "backend pool-db"] {
        assert!(cfg.contains(section), "{section} missing:\n{cfg}");
    }
    for line in [
        "bind 127.0.0.10:80",
        "maxconn 10000",
        "balance roundrobin",
        "option allbackups",
        "balance leastconn",
        "balance source",
        "option httpchk GET /healthz",
        "http-check expect rstatus ^(200|201|202|203|204)$",
        "option ssl-hello-chk",
        "cookie SRV insert indirect nocache",
        "acl allowed-cidr src 10.0.0.0/8 192.168.0.0/16",
        "tcp-request inspect-delay 2000ms",
        "server m-web-2 10.0.1.12:8080 weight 3 check inter 5s fall 3 rise 2 cookie m-web-2",
        "server m-db-2 10.0.2.32:5432 weight 1 check inter 5s fall 3 rise 2 backup",
        "server m-db-3 10.0.2.33:5432 weight 1 check inter 5s fall 3 rise 2 disabled",
        "timeout connect 5000ms",
    ] {
        assert!(cfg.contains(line), "`{line}` missing:\n{cfg}");
    }

    let verdict = haproxy_check(cfg, &lb);
    assert!(
        verdict.is_ok(),
        "haproxy -c rejected the config: {verdict:?}\n{cfg}"
    );
}

#[test]
fn every_protocol_and_option_combination_passes_haproxy_check() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let mut lb = web_shop("lb-2", "127.0.0.11");
    // PROXY protocol towards members, app-cookie and source-ip persistence, HTTPS monitor on a
    // passthrough pool, monitor address/port, disabled listener, IPv6 member.
    lb.pools[0].session_persistence = Some(SessionPersistence {
        kind: PersistenceKind::AppCookie,
        cookie_name: Some("JSESSIONID".into()),
    });
    lb.pools[1].health_monitor = Some({
        let mut hm = http_monitor("hm-tls");
        hm.kind = HealthMonitorKind::Https;
        hm.expected_codes = Some("200,301".into());
        // The amphora's HTTP/1.1 check naming its site.
        hm.http_version = Some(HttpVersion::Http11);
        hm.domain_name = Some("shop.example.com".into());
        hm
    });
    lb.pools[2].protocol = Protocol::Proxy;
    lb.pools[2].session_persistence = Some(SessionPersistence {
        kind: PersistenceKind::SourceIp,
        cookie_name: None,
    });
    lb.pools[2].members[0].monitor_address = Some("10.0.2.99".into());
    lb.pools[2].members[0].monitor_port = Some(9000);
    lb.pools[2]
        .members
        .push(member("m-db-v6", "fd00::31", 5432));
    lb.listeners[1].admin_state_up = false;
    // The TCP listener cannot front a PROXY pool in a different mode; both are TCP mode.
    lb.flavor = Some(flavor("gold", &[("maxconn", "20000")]));

    let cfg = driver.translate(&lb, &device).expect("translate").body;
    for line in [
        "send-proxy",
        "check-ssl verify none",
        "stick on src",
        "addr 10.0.2.99 port 9000",
        "ipv6@fd00::31:5432",
        "maxconn 20000",
        "http-check expect rstatus ^(200|301)$",
        "option httpchk GET /healthz HTTP/1.1\n    http-check send hdr Host shop.example.com",
        "stick match req.cook(JSESSIONID)",
    ] {
        assert!(cfg.contains(line), "`{line}` missing:\n{cfg}");
    }
    let verdict = haproxy_check(&cfg, &lb);
    assert!(
        verdict.is_ok(),
        "haproxy -c rejected the config: {verdict:?}\n{cfg}"
    );
}

/// The combinations Octavia allows across modes, rendered as the amphora renders them: a PROXY
/// pool behind an HTTP listener speaks HTTP (with the PROXY header first), and a TCP listener
/// hands its connections to an HTTP pool; HAProxy takes both.
#[test]
fn mixed_listener_and_pool_modes_render_as_the_amphora_does() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let mut lb = web_shop("lb-5", "127.0.0.14");
    lb.pools[0].protocol = Protocol::Proxy;
    lb.pools[2].protocol = Protocol::Http;
    lb.pools[2].session_persistence = None;
    let cfg = driver.translate(&lb, &device).expect("translate").body;
    let backend = |name: &str| {
        let start = cfg
            .find(&format!("\nbackend {name}\n"))
            .unwrap_or_else(|| panic!("{name} missing:\n{cfg}"));
        cfg[start..]
            .split("\n\n")
            .next()
            .unwrap_or_default()
            .to_owned()
    };
    let web = backend("pool-web");
    assert!(
        web.contains("mode http") && web.contains("send-proxy"),
        "{web}"
    );
    assert!(backend("pool-db").contains("mode http"), "{cfg}");
    let verdict = haproxy_check(&cfg, &lb);
    assert!(
        verdict.is_ok(),
        "haproxy -c rejected the config: {verdict:?}\n{cfg}"
    );
}

#[test]
fn injection_attempts_are_refused_not_rendered() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let mut lb = web_shop("lb-3", "127.0.0.12");
    lb.pools[0]
        .health_monitor
        .as_mut()
        .expect("monitor")
        .url_path = Some("/ok\n    http-request deny".into());
    let error = driver
        .translate(&lb, &device)
        .expect_err("hostile path must be refused");
    assert!(
        matches!(
            &error,
            Error::Refused {
                function: "translate",
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("URL path"), "{error}");

    let mut lb = web_shop("lb-3", "127.0.0.12");
    lb.pools[0].members[0].id = "m1 10.9.9.9:80\nserver evil".into();
    assert!(driver.translate(&lb, &device).is_err());

    let mut lb = web_shop("lb-3", "not-an-ip");
    lb.listeners.clear();
    let error = driver.translate(&lb, &device).expect_err("bad VIP");
    assert!(error.to_string().contains("not an IP address"), "{error}");
}

#[test]
fn unsupported_features_are_named() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let mut lb = web_shop("lb-4", "127.0.0.13");
    lb.listeners[0].protocol = Protocol::Udp;
    let error = driver.translate(&lb, &device).expect_err("UDP");
    assert!(error.to_string().contains("UDP"), "{error}");

    let mut lb = web_shop("lb-4", "127.0.0.13");
    lb.pools[2].health_monitor.as_mut().expect("monitor").kind = HealthMonitorKind::Ping;
    let error = driver.translate(&lb, &device).expect_err("PING");
    assert!(error.to_string().contains("Ping"), "{error}");
}

#[test]
fn validate_flavor_checks_keys_and_values() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    driver
        .validate_flavor(&flavor(
            "gold",
            &[("maxconn", "100000"), ("spawn-capacity", "4")],
        ))
        .expect("valid flavor");
    let error = driver
        .validate_flavor(&flavor("gold", &[("maxconn", "lots")]))
        .expect_err("bad value");
    assert!(error.to_string().contains("maxconn"), "{error}");
    let error = driver
        .validate_flavor(&flavor("gold", &[("vlan", "7")]))
        .expect_err("unknown key");
    assert!(
        error.to_string().contains("`vlan` is not supported"),
        "{error}"
    );
}

#[test]
fn select_prefers_room_and_spawns_when_everything_is_full() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let lb = web_shop("lb-5", "127.0.0.14");
    let request = request_for(&lb);
    let candidates = vec![
        candidate(device("busy", DeviceKind::Virtual, 10, None), 8, 0),
        candidate(device("idle", DeviceKind::Virtual, 10, None), 1, 0),
        candidate(device("full", DeviceKind::Virtual, 10, None), 10, 0),
        candidate(device("appliance", DeviceKind::Physical, 10, None), 0, 0),
    ];
    let hints = driver.select(&request, &candidates).expect("select");
    let score = |id: &str| match &hints
        .devices
        .iter()
        .find(|h| h.device_id == id)
        .expect("hint")
        .verdict
    {
        Verdict::Score(n) => Some(*n),
        Verdict::Reject(_) => None,
    };
    assert!(score("idle") > score("busy"), "{hints:?}");
    assert_eq!(score("full"), None);
    assert_eq!(score("appliance"), None);
    assert!(hints.spawn.is_none());

    let mut request = request.clone();
    request.flavor = Some(flavor("gold", &[("spawn-capacity", "4")]));
    let hints = driver
        .select(&request, &candidates[2..3])
        .expect("select with nothing free");
    let spawn = hints.spawn.expect("asks to spawn");
    assert_eq!(spawn.capacity, 4);
    assert!(spawn.name.starts_with("haproxy-"));
}

/// Octavia's `compute_zone` availability zone key: only devices of that zone take the load
/// balancer, and a device spawned for it carries the zone.
#[test]
fn a_compute_zone_keeps_its_devices_and_labels_what_it_spawns() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let keys = &driver.capabilities().features.availability_zone_keys;
    assert!(
        keys.iter().any(|key| key.name == "compute_zone"),
        "{keys:?}"
    );
    let zone = |entries: &[(&str, &str)]| AvailabilityZone {
        name: "zone-a".into(),
        metadata: flavor("zone-a", entries).metadata,
    };
    driver
        .validate_availability_zone(&zone(&[("compute_zone", "east-1")]))
        .expect("a compute zone");
    for (entries, named) in [
        (&[("compute_zone", "")][..], "compute_zone"),
        (&[("compute_zone", "east 1")][..], "compute_zone"),
        (&[("management_network", "oob")][..], "management_network"),
    ] {
        let error = driver
            .validate_availability_zone(&zone(entries))
            .expect_err("refused");
        assert!(error.to_string().contains(named), "{error}");
    }

    let lb = web_shop("lb-zone", "127.0.0.16");
    let mut request = request_for(&lb);
    request.availability_zone = Some(zone(&[("compute_zone", "east-1")]));
    let east = with_metadata(
        device("east", DeviceKind::Virtual, 10, None),
        "compute_zone",
        "east-1",
    );
    let west = with_metadata(
        device("west", DeviceKind::Virtual, 10, None),
        "compute_zone",
        "west-1",
    );
    let unlabelled = device("plain", DeviceKind::Virtual, 10, None);
    let candidates = vec![
        candidate(east, 0, 0),
        candidate(west, 0, 0),
        candidate(unlabelled, 0, 0),
    ];
    let hints = driver.select(&request, &candidates).expect("select");
    let verdicts: Vec<(&str, bool)> = hints
        .devices
        .iter()
        .map(|h| (h.device_id.as_str(), matches!(h.verdict, Verdict::Score(_))))
        .collect();
    assert_eq!(
        verdicts,
        [("east", true), ("west", false), ("plain", false)],
        "{hints:?}"
    );
    assert!(hints.spawn.is_none());
    let hints = driver
        .select(&request, &candidates[1..])
        .expect("select with no device of the zone");
    let spawn = hints.spawn.expect("asks to spawn");
    assert_eq!(
        spawn
            .metadata
            .iter()
            .map(|e| (e.key.as_str(), e.value.as_str()))
            .collect::<Vec<_>>(),
        [("compute_zone", "east-1")]
    );
}

#[test]
fn apply_and_remove_push_through_the_device_api() {
    let (_dir, host) = host();
    let driver = host.load(&drivers().haproxy);
    let agent = FakeAppliance::start();
    host.register_device("haproxy-1", "haproxy", &agent.url());
    let lb = web_shop("lb-6", "127.0.0.15");
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let config = driver.translate(&lb, &device).expect("translate");
    driver.apply(&lb, &device, &config).expect("apply");
    driver.remove(&lb, &device).expect("remove");

    let received = agent.received();
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0].method, "PUT");
    assert_eq!(received[0].path, "/v1/loadbalancers/lb-6/config");
    assert_eq!(
        received[0].headers.get("content-type").map(String::as_str),
        Some("text/x-haproxy-cfg")
    );
    assert_eq!(received[0].body, config.body.as_bytes());
    assert_eq!(received[1].method, "DELETE");

    // A device that refuses yields the driver's error, with the device's answer.
    agent.respond("/v1/loadbalancers/lb-6/config", 503);
    let error = driver
        .apply(&lb, &device, &config)
        .expect_err("device refused");
    assert!(error.to_string().contains("503"), "{error}");
}

/// `docs/providers.md` says what each bundled provider offers and answers 501 for, as its
/// driver declares it today: rewritten by `cargo xtask providers`, never by hand.
#[test]
fn the_providers_document_matches_what_the_drivers_declare() {
    let path = lbaas_tests::workspace_root().join(lbaas_tests::providers_doc::PATH);
    let written = std::fs::read_to_string(&path).unwrap_or_default();
    let declared = lbaas_tests::providers_doc::render();
    assert!(
        written == declared,
        "{} differs from what the drivers declare: run `cargo xtask providers`\n{declared}",
        path.display()
    );
    // The HAProxy provider's 501s, as the API answers them.
    for line in [
        "| protocol (listeners and pools) | `HTTP`, `HTTPS`, `TCP`, `TERMINATED_HTTPS`, `PROXY`, \
         `PROXYV2`, `PROMETHEUS` | `UDP`, `SCTP` |",
        "| health monitor options | `http_version, domain_name` | — |",
    ] {
        assert!(declared.contains(line), "`{line}` missing:\n{declared}");
    }
}
