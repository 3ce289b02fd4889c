//! Hostile drivers on a live host, through the public API: while the host serves load
//! balancers of a well-behaved driver, each hostile fixture gets load balancers of its own.
//! Each offending load balancer ends `ERROR` (never stuck `PENDING_*`) with a readable fault,
//! the audit log records what was attempted, the other driver's load balancers keep working,
//! the host's memory comes back, and a driver that keeps failing is quarantined until an admin
//! releases it.

use std::time::Duration;

use std::collections::HashMap;

use lbaas_host::api::Auth;
use lbaas_host::api::auth::TokenGrant;
use lbaas_host::runtime::RuntimeConfig;
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane, Options, id_of as id};
use lbaas_tests::fixtures;
use serde_json::{Value, json};

fn create(client: &Client, provider: &str, name: &str) -> Value {
    client.create_loadbalancer(provider, name)
}

fn audit(admin: &Client, query: &str) -> Vec<Value> {
    admin.audit(query)
}

/// One scrape of `GET /metrics`, parsed by a Prometheus exposition parser.
struct Metrics(prometheus_parse::Scrape);

impl Metrics {
    fn scrape(admin: &Client) -> Self {
        let (status, text) = admin.text("/metrics");
        assert_eq!(status, 200, "{text}");
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        Self(prometheus_parse::Scrape::parse(lines).expect("the exposition format"))
    }

    /// The sum of the samples of counter or gauge `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => panic!("{name} is not a counter or gauge"),
            })
            .sum()
    }

    /// How many observations histogram `name` holds for `labels`.
    fn observations(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                _ => panic!("{name} is not a histogram"),
            })
            .sum()
    }
}

#[test]
fn hostile_drivers_fail_alone_and_are_audited() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let fixtures = fixtures();
    let auth = Auth::Tokens(HashMap::from([
        (
            "admin-token".to_owned(),
            TokenGrant {
                project_id: "admin-project".into(),
                roles: vec!["admin".into()],
            },
        ),
        (
            "tenant-token".to_owned(),
            TokenGrant {
                project_id: "tenant".into(),
                roles: vec!["load-balancer_member".into()],
            },
        ),
    ]));
    let plane = ControlPlane::start_with_options(
        data.path(),
        auth,
        Options {
            extra_drivers: vec![
                fixtures.looper.clone(),
                fixtures.memory_hog.clone(),
                fixtures.panicker.clone(),
                fixtures.snoop.clone(),
            ],
            config: RuntimeConfig {
                select_deadline: Duration::from_millis(100),
                memory_limit: 32 << 20,
                quarantine_after: 3,
                ..RuntimeConfig::default()
            },
            // The looper fails it on purpose; the others misbehave only on cue.
            skip_conformance: true,
            ..Options::default()
        },
    );
    let admin = plane.client(Some("admin-token"));
    let tenant = plane.client(Some("tenant-token"));
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.60.0/24"}]}}),
    );
    let mut device_of = std::collections::HashMap::new();
    for driver in ["haproxy", "looper", "memory-hog", "panicker", "snoop"] {
        let device = admin.create(
            "/v2/admin/devices",
            &json!({"device": {"name": format!("{driver}-1"), "kind": "virtual", "driver": driver,
                    "management_url": agent.url(), "capacity": 50}}),
        );
        device_of.insert(driver, id(&device, "device"));
    }
    // What this test did is what moved since here.
    let before = Metrics::scrape(&admin);
    // The well-behaved driver serves throughout.
    let good = create(&tenant, "haproxy", "good");
    assert_eq!(good["provisioning_status"], "ACTIVE", "{good}");
    let baseline = lbaas_tests::rss_bytes();

    let cases = [
        ("looper", "spin", "ran past its deadline of 100ms"),
        ("memory-hog", "hoard", "past the limit of 33554432 bytes"),
        (
            "panicker",
            "explode",
            "fixture panic: cannot translate load balancer",
        ),
    ];
    for round in 0..3 {
        for (driver, name, expected) in cases {
            if round > 0 && driver == "looper" {
                continue; // quarantined below after its first rounds
            }
            let lb = create(&tenant, driver, name);
            assert_eq!(lb["provisioning_status"], "ERROR", "{driver}: {lb}");
            let fault = lb["fault"].as_str().unwrap_or_default();
            assert!(fault.contains(expected), "{driver}: fault {fault:?}");
            // Meanwhile the other driver's load balancers keep working.
            let (_, still) = tenant.get(&format!(
                "/v2/lbaas/loadbalancers/{}",
                good["id"].as_str().expect("id")
            ));
            assert_eq!(still["loadbalancer"]["provisioning_status"], "ACTIVE");
            let fresh = create(&tenant, "haproxy", &format!("good-{driver}-{round}"));
            assert_eq!(fresh["provisioning_status"], "ACTIVE", "{fresh}");
        }
    }
    // Nothing is left pending.
    let (_, all) = tenant.get("/v2/lbaas/loadbalancers");
    for lb in all["loadbalancers"].as_array().expect("list") {
        let state = lb["provisioning_status"].as_str().unwrap_or_default();
        assert!(!state.starts_with("PENDING"), "{lb}");
    }
    // The memory the hostile calls took came back (each memory-hog call grew to 32 MiB).
    let grown = lbaas_tests::rss_bytes().saturating_sub(baseline);
    assert!(grown < 48 << 20, "host memory grew by {grown} bytes");

    // The snoop tries everything and reaches nothing; the audit log shows each attempt.
    let target = format!("device/{}", device_of["haproxy"]);
    let snooped = create(&tenant, "snoop", &target);
    assert_eq!(snooped["provisioning_status"], "ACTIVE", "{snooped}");
    let denied = audit(&admin, "driver=snoop&function=device-api&outcome=denied");
    assert!(
        !denied.is_empty(),
        "the snoop's device call is recorded as denied"
    );
    let reads = audit(&admin, "driver=snoop&function=state.get");
    assert!(
        reads
            .iter()
            .flat_map(|r| lbaas_tests::audited_keys(r["target"].as_str()))
            .any(|key| key == format!("driver/acme-adc/{target}")),
        "{reads:?}"
    );
    for (driver, function) in [
        ("looper", "limit.deadline"),
        ("memory-hog", "limit.memory"),
        ("panicker", "call.trap"),
    ] {
        let hits = audit(&admin, &format!("driver={driver}&function={function}"));
        assert!(!hits.is_empty(), "{driver}: no {function} record");
        assert_eq!(hits[0]["version"], "0.0.1");
    }

    // The memory hog and panicker failed every call: quarantined, no new placements. An admin
    // sees why and releases them.
    let (_, drivers) = admin.get("/v2/admin/drivers");
    let quarantined: Vec<&str> = drivers["drivers"]
        .as_array()
        .expect("drivers")
        .iter()
        .filter(|d| d["quarantined"] == true)
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(quarantined.contains(&"panicker"), "{drivers}");
    assert!(!quarantined.contains(&"haproxy"), "{drivers}");
    let held = create(&tenant, "panicker", "explode");
    assert_eq!(held["provisioning_status"], "ERROR");
    assert_eq!(
        audit(&admin, "driver=panicker&function=lifecycle.quarantine").len(),
        1
    );
    let (status, released) = admin.post("/v2/admin/drivers/panicker/release", &json!({}));
    assert_eq!(status, 200, "{released}");
    assert_eq!(released["driver"]["quarantined"], false);
    let (status, _) = admin.post("/v2/admin/drivers/panicker/release", &json!({}));
    assert_eq!(status, 409, "nothing left to release");
    let calm = create(&tenant, "panicker", "calm");
    assert_eq!(calm["provisioning_status"], "ACTIVE", "{calm}");
    // A driver that panics on every third call: those load balancers end ERROR, the others
    // ACTIVE, and since its failures never come three in a row it is not quarantined.
    let outcomes: Vec<String> = (0..6)
        .map(|_| {
            let lb = create(&tenant, "panicker", "every-third");
            let status = lb["provisioning_status"].as_str().unwrap_or_default();
            format!("{status} {}", lb["fault"])
        })
        .collect();
    let failed: Vec<&String> = outcomes.iter().filter(|o| o.starts_with("ERROR")).collect();
    assert_eq!(failed.len(), 2, "{outcomes:#?}");
    assert!(
        failed[0].contains("call 3 is a third call"),
        "{outcomes:#?}"
    );
    assert!(
        failed[1].contains("call 6 is a third call"),
        "{outcomes:#?}"
    );
    let (_, panicker) = admin.get("/v2/admin/drivers/panicker");
    assert_eq!(panicker["driver"]["quarantined"], false, "{panicker}");

    // The metrics saw all of it: creates answered, jobs that succeeded and failed, the
    // drivers' failed calls and the limits they hit, the quarantines; the state gauges match
    // the records.
    let after = Metrics::scrape(&admin);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let creates = [
        ("method", "POST"),
        ("route", "/v2/lbaas/loadbalancers"),
        ("status", "201"),
    ];
    // 24 creates: the good one, 3 + 2 + 2 hostile ones and as many fresh good ones, the snoop,
    // the panicker held, calmed and six times every third. Each answered 201 and timed.
    assert_eq!(moved("lbaas_http_requests_total", &creates), 24.0);
    assert_eq!(
        after.observations("lbaas_http_request_duration_seconds", &creates[..2]),
        24.0
    );
    // Succeeded: the 8 haproxy ones, the snoop, the calm panicker and 4 of the every-third.
    // Failed: the 7 hostile ones, the held panicker and 2 of the every-third.
    assert_eq!(moved("lbaas_jobs_total", &[("outcome", "succeeded")]), 14.0);
    assert_eq!(moved("lbaas_jobs_total", &[("outcome", "failed")]), 10.0);
    // Every job placed its load balancer but two: the looper's `select` ran out of time, and
    // the quarantined panicker is no candidate.
    assert_eq!(
        moved("lbaas_placements_total", &[("outcome", "placed")]),
        22.0
    );
    assert_eq!(
        moved("lbaas_placements_total", &[("outcome", "no_capacity")]),
        2.0
    );
    let v = ("version", "0.0.1");
    for (driver, limit, hits) in [("looper", "deadline", 1.0), ("memory-hog", "memory", 3.0)] {
        let labels = [("driver", driver), v, ("limit", limit)];
        assert_eq!(
            moved("lbaas_driver_limit_hits_total", &labels),
            hits,
            "{driver}"
        );
    }
    // Three calls before its quarantine, then calls 3 and 6 of the every-third.
    let panicked = [("driver", "panicker"), v, ("outcome", "failed")];
    assert_eq!(moved("lbaas_driver_calls_total", &panicked), 5.0);
    let ok = [
        ("driver", "haproxy"),
        ("export", "apply"),
        ("outcome", "ok"),
    ];
    assert_eq!(moved("lbaas_driver_calls_total", &ok), 8.0);
    // This control plane's registry is its own: a test quarantining the panicker beside this
    // one in the same process does not show here.
    for (driver, quarantines) in [("panicker", 1.0), ("memory-hog", 1.0), ("looper", 0.0)] {
        let labels = [("driver", driver), v];
        assert_eq!(
            moved("lbaas_driver_quarantines_total", &labels),
            quarantines,
            "{driver}"
        );
    }
    let (_, listed) = admin.get("/v2/lbaas/loadbalancers");
    let listed = listed["loadbalancers"].as_array().expect("list");
    for status in ["ACTIVE", "ERROR"] {
        let records = listed
            .iter()
            .filter(|lb| lb["provisioning_status"] == status)
            .count();
        let gauge = after.value("lbaas_load_balancers", &[("provisioning_status", status)]);
        assert_eq!(gauge, records as f64, "{status}");
    }
    assert_eq!(
        after.value("lbaas_devices", &[("health", "up")])
            + after.value("lbaas_devices", &[("health", "unknown")]),
        5.0
    );
    let capacity = [
        ("device", device_of["haproxy"].as_str()),
        ("driver", "haproxy"),
    ];
    assert_eq!(after.value("lbaas_device_capacity", &capacity), 50.0);
    assert_eq!(after.value("lbaas_device_load_balancers", &capacity), 8.0);
    // Tenants do not read the metrics.
    assert_eq!(tenant.text("/metrics").0, 403);
    // Only admins read the audit log.
    for path in [
        "/v2/admin/audit",
        "/v2/admin/audit/verify",
        "/v2/admin/audit/checkpoint",
        "/v2/admin/drivers",
    ] {
        let (status, _) = tenant.get(path);
        assert_eq!(status, 403, "{path}");
    }
    let (status, _) = tenant.post("/v2/admin/drivers/panicker/release", &json!({}));
    assert_eq!(status, 403);

    let (_, verified) = admin.get("/v2/admin/audit/verify");
    assert_eq!(verified["intact"], true, "{verified}");
    assert!(verified["records"].as_u64() > Some(10), "{verified}");
    let (status, checkpoint) = admin.get("/v2/admin/audit/checkpoint");
    assert_eq!(status, 200, "{checkpoint}");
    assert!(
        checkpoint["checkpoint"]["records"].as_u64() >= verified["records"].as_u64(),
        "{checkpoint}"
    );
    assert_eq!(
        checkpoint["checkpoint"]["hash"].as_str().map(str::len),
        Some(64)
    );
    // Signed with the host's key: it checks, and an edited copy does not.
    let mut kept: lbaas_host::audit::Checkpoint =
        serde_json::from_value(checkpoint["checkpoint"].clone()).expect("a checkpoint");
    let host_key = lbaas_host::integrity::signing_key_file(&data.path().join("audit.key"))
        .expect("the host's key")
        .verifying_key();
    assert!(
        kept.check_signature(Some(&host_key))
            .is_ok_and(|id| id.is_some())
    );
    kept.records -= 1;
    assert!(kept.check_signature(Some(&host_key)).is_err());
    plane.stop();
}

/// A component that claims to be `acme-adc` is uploaded while acme-adc serves. The upload
/// checks run it against a throw-away namespace with no devices: it reads none of acme-adc's
/// state, plants nothing in it, reaches none of its appliances, and what it records in the
/// audit log is marked unapproved. Its refusal carries nothing of acme-adc's.
#[test]
fn a_component_claiming_another_drivers_name_reaches_nothing() {
    let data = tempfile::tempdir().expect("temp dir");
    let appliance = FakeAppliance::start();
    let plane = ControlPlane::start(data.path(), Auth::None);
    let admin = plane.client(None).as_project("admin-project");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.61.0/24"}]}}),
    );
    let device = admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "adc-1", "kind": "physical", "driver": "acme-adc",
                "management_url": appliance.url(), "capacity": 8,
                "credentials": {"type": "basic", "username": "acme", "password": "appliance-secret"}}}),
    );
    let device_id = id(&device, "device");
    // acme-adc keeps its allocations for the device in its own state.
    let first = create(&admin, "acme-adc", "first");
    assert_eq!(first["provisioning_status"], "ACTIVE", "{first}");
    let requests_before = appliance.received().len();
    let acme_records_before = audit(&admin, "driver=acme-adc&limit=1000").len();

    let claim = std::fs::read(&fixtures().name_claim).expect("fixture");
    let (status, body) = admin.upload("/v2/admin/drivers", claim, &[]);
    assert_eq!(status, 400, "{body}");
    let refusal = body["faultstring"].as_str().unwrap_or_default();
    assert!(refusal.contains("conformance kit"), "{refusal}");
    // The answer names the failed checks, not what the component returned.
    assert!(!refusal.contains("device_calls"), "{refusal}");
    // What it reached, from the refusal's audit record: its own throw-away namespace (only
    // what it planted there) and no devices.
    let refused = audit(&admin, "function=lifecycle.refused");
    let detail = refused
        .last()
        .and_then(|r| r["detail"].as_str())
        .unwrap_or_default();
    assert!(detail.contains(r#""device_calls":[]"#), "{detail}");
    assert!(!detail.contains("device/"), "acme-adc's keys: {detail}");
    assert!(!detail.contains(&device_id), "{detail}");
    assert!(!detail.contains("appliance-secret"), "{detail}");
    assert_eq!(
        appliance.received().len(),
        requests_before,
        "the claimant reached acme's appliance"
    );
    // Its audit records are marked unapproved; acme-adc's own are unchanged.
    assert_eq!(
        audit(&admin, "driver=acme-adc&limit=1000").len(),
        acme_records_before,
        "records under the real name"
    );
    let unapproved = audit(
        &admin,
        "driver=unapproved:acme-adc&function=state&limit=1000",
    );
    assert!(
        unapproved
            .iter()
            .any(|r| r["target"] == "planted-by-claimant"),
        "the attempt is on record: {unapproved:?}"
    );
    // acme-adc is untouched: still its version, and its state still holds the first load
    // balancer's VIP (a second one gets another address on the same device).
    let (_, record) = admin.get("/v2/admin/drivers/acme-adc");
    assert_eq!(record["driver"]["version"], "0.1.0", "{record}");
    assert_eq!(
        record["driver"]["versions"].as_array().map(Vec::len),
        Some(1),
        "{record}"
    );
    let second = create(&admin, "acme-adc", "second");
    assert_eq!(second["provisioning_status"], "ACTIVE", "{second}");
    assert_ne!(second["vip_address"], first["vip_address"]);
    plane.stop();
}

/// A quarantine is kept in the store: a restart does not lift it; a release, once made, holds
/// across the next restart too.
#[test]
fn quarantine_survives_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let options = || Options {
        extra_drivers: vec![fixtures().panicker.clone()],
        config: RuntimeConfig {
            quarantine_after: 2,
            ..RuntimeConfig::default()
        },
        skip_conformance: true,
        ..Options::default()
    };
    let plane = ControlPlane::start_with_options(data.path(), Auth::None, options());
    let admin = plane.client(None).as_project("admin-project");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.62.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "panicker-1", "kind": "virtual", "driver": "panicker",
                "management_url": agent.url(), "capacity": 50}}),
    );
    for _ in 0..2 {
        let lb = create(&admin, "panicker", "explode");
        assert_eq!(lb["provisioning_status"], "ERROR", "{lb}");
    }
    let quarantined = |admin: &Client| {
        let (_, driver) = admin.get("/v2/admin/drivers/panicker");
        (
            driver["driver"]["quarantined"] == true,
            driver["driver"]["quarantine_reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    };
    let (held, reason) = quarantined(&admin);
    assert!(
        held && reason.contains("2 failed `translate` calls in a row"),
        "{reason}"
    );
    plane.stop();

    let plane = ControlPlane::start_with_options(data.path(), Auth::None, options());
    let admin = plane.client(None).as_project("admin-project");
    assert_eq!(
        quarantined(&admin),
        (true, reason),
        "kept across the restart"
    );
    let refused = create(&admin, "panicker", "calm");
    assert_eq!(
        refused["provisioning_status"], "ERROR",
        "no new placements: {refused}"
    );
    let (status, released) = admin.post("/v2/admin/drivers/panicker/release", &json!({}));
    assert_eq!(status, 200, "{released}");
    plane.stop();

    let plane = ControlPlane::start_with_options(data.path(), Auth::None, options());
    let admin = plane.client(None).as_project("admin-project");
    assert!(!quarantined(&admin).0, "the release holds across a restart");
    let calm = create(&admin, "panicker", "calm");
    assert_eq!(calm["provisioning_status"], "ACTIVE", "{calm}");
    plane.stop();
}

/// A component with a second memory, against live hosts serving an honest load balancer: with
/// the pooling allocator (the default) its upload is refused, naming the memories; allocating
/// on demand, its load balancer ends `ERROR` at the one memory grant both memories share. The
/// honest load balancer is untouched either way.
#[test]
fn a_second_memory_gets_no_grant_of_its_own() {
    let agent = FakeAppliance::start();
    let serve = |data: &std::path::Path, pooling: bool, extra_drivers| {
        let plane = ControlPlane::start_with_options(
            data,
            Auth::None,
            Options {
                extra_drivers,
                config: RuntimeConfig {
                    pooling,
                    ..RuntimeConfig::default()
                },
                skip_conformance: true,
                ..Options::default()
            },
        );
        let admin = plane.client(None).as_project("admin-project");
        admin.create(
            "/v2/admin/networks",
            &json!({"network": {"id": "net-vip", "name": "public",
                    "subnets": [{"id": "subnet-vip", "cidr": "127.0.64.0/24"}]}}),
        );
        // The memory pair is loaded only where it can be (allocating on demand).
        let drivers: &[&str] = if pooling {
            &["haproxy"]
        } else {
            &["haproxy", "memory-pair"]
        };
        for driver in drivers {
            admin.create(
                "/v2/admin/devices",
                &json!({"device": {"name": format!("{driver}-1"), "kind": "virtual",
                        "driver": driver, "management_url": agent.url(), "capacity": 50}}),
            );
        }
        let good = create(&admin, "haproxy", "good");
        assert_eq!(good["provisioning_status"], "ACTIVE", "{good}");
        (
            plane,
            admin,
            id(&json!({ "loadbalancer": good }), "loadbalancer"),
        )
    };
    let still_active = |admin: &Client, lb: &str| {
        let (_, body) = admin.get(&format!("/v2/lbaas/loadbalancers/{lb}"));
        assert_eq!(body["loadbalancer"]["provisioning_status"], "ACTIVE");
    };

    let pooled = tempfile::tempdir().expect("temp dir");
    let (plane, admin, good) = serve(pooled.path(), true, vec![]);
    let component = std::fs::read(&fixtures().memory_pair_two).expect("fixture");
    let (status, body) = admin.upload("/v2/admin/drivers", component, &[]);
    assert_eq!(status, 400, "{body}");
    let refusal = body["faultstring"].as_str().unwrap_or_default();
    assert!(refusal.contains("defined memories count of 2"), "{refusal}");
    still_active(&admin, &good);
    plane.stop();

    let on_demand = tempfile::tempdir().expect("temp dir");
    let (plane, admin, good) = serve(
        on_demand.path(),
        false,
        vec![fixtures().memory_pair_two.clone()],
    );
    let pair = create(&admin, "memory-pair", "pair");
    assert_eq!(pair["provisioning_status"], "ERROR", "{pair}");
    let fault = pair["fault"].as_str().unwrap_or_default();
    assert!(
        fault.contains("past the limit of 67108864 bytes"),
        "{fault}"
    );
    assert_eq!(
        audit(&admin, "driver=memory-pair&function=limit.memory").len(),
        1
    );
    still_active(&admin, &good);
    let fresh = create(&admin, "haproxy", "fresh");
    assert_eq!(fresh["provisioning_status"], "ACTIVE", "{fresh}");
    plane.stop();
}

/// A driver after the keys it serves gets none (issue 28). The key-thief terminates TLS: the
/// host hands it each certificate file as a handle and sends the file, key included, to the
/// load balancer's own device at the path the driver names under its grant. Then the driver
/// tries every way to the bytes: it reads the file back from its device, which answers with
/// whatever it was last sent; it sends the file to another load balancer's path, to a path
/// not granted for certificates and to a device that is not the load balancer's; it makes up a
/// handle. It puts everything it got on its device, where the test looks for every line of
/// both keys. The audit log records each sending and each refusal.
#[test]
fn a_driver_gets_no_key_whatever_it_tries() {
    use lbaas_keys::testing::{EC, Pki, RSA_PKCS8};
    let data = tempfile::tempdir().expect("temp dir");
    let device = FakeAppliance::start();
    device.echo_bodies();
    let plane = ControlPlane::start_with_options(
        data.path(),
        Auth::None,
        Options {
            extra_drivers: vec![fixtures().key_thief.clone()],
            ..Options::default()
        },
    );
    let admin = plane.client(None).as_project("admin-project");
    let tenant = plane.client(None).as_project("tenant");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.61.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "thief-1", "kind": "virtual", "driver": "key-thief",
                "management_url": device.url(), "capacity": 5}}),
    );
    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    pki.leaf("api.example.com", RSA_PKCS8);
    let www = tenant.store_secret("www", &pki.pkcs12("www.example.com"));
    let api = tenant.store_secret(
        "api",
        &pki.concat(&["api.example.com.pem", "api.example.com.key", "int.pem"]),
    );
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "loot", "vip_subnet_id": "subnet-vip",
                "provider": "key-thief",
                "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 443,
                               "default_tls_container_ref": www,
                               "sni_container_refs": [api]}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = tenant.settle(&lb_id);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");

    let received = device.received();
    // The device got both files, keys included: it is the one that serves them.
    let own = format!("/v1/loadbalancers/{lb_id}/certificates/c");
    let files: Vec<_> = received
        .iter()
        .filter(|r| r.method == "PUT" && r.path.starts_with(&own))
        .collect();
    assert_eq!(files.len(), 2, "{received:?}");
    assert!(
        files
            .iter()
            .all(|r| String::from_utf8_lossy(&r.body).contains("PRIVATE KEY")),
        "the device holds the keys"
    );
    // Nothing reached another load balancer's path, an ungranted path or a made-up file.
    assert!(
        received.iter().all(|r| !r.path.contains("other-lb")
            && r.path != "/echo"
            && !r.path.ends_with("/forged")),
        "{received:?}"
    );
    let loot = received
        .iter()
        .find(|r| r.path == "/loot")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .expect("the driver's loot");
    // Every base64 line of both keys, to look for wherever the driver could have put one.
    let key_lines: Vec<(&str, String)> = ["www.example.com.key", "api.example.com.key"]
        .into_iter()
        .flat_map(|key| {
            let pem = String::from_utf8(pki.read(key)).expect("PEM");
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 16)
                .map(|line| (key, line.to_owned()))
                .collect::<Vec<_>>()
        })
        .collect();
    for (key, line) in &key_lines {
        assert!(
            !loot.contains(line.as_str()),
            "a line of {key} reached the driver: {loot}"
        );
    }
    // What it tried, and what it was told.
    for told in [
        "[redacted]",
        "is not granted to driver key-thief for certificates",
        "certificates go only to the device of the load balancer this call is for",
        "no certificate file",
        "fingerprint",
    ] {
        assert!(loot.contains(told), "`{told}` is not in {loot}");
    }
    let sent = audit(&admin, "function=device-api.send-certificate&outcome=ok");
    assert_eq!(sent.len(), 2, "{sent:?}");
    let refused = audit(
        &admin,
        "function=device-api.send-certificate&outcome=denied",
    );
    assert_eq!(refused.len(), 7, "{refused:?}");
    let audited = serde_json::to_string(&audit(&admin, "driver=key-thief")).expect("JSON");
    for (key, line) in &key_lines {
        assert!(
            !audited.contains(line.as_str()),
            "a line of {key} is in the audit log"
        );
    }
}
