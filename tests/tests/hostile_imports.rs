//! Hostile imports and hostile devices on a live host, in a test binary of its own: it reads
//! the process's memory and installs the process's log subscriber, which other tests running
//! beside it would disturb.

use std::time::Duration;

use lbaas_host::api::Auth;
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

/// Records in the audit chain.
fn audit_records(admin: &Client) -> u64 {
    let (_, verified) = admin.get("/v2/admin/audit/verify");
    verified["records"].as_u64().expect("records")
}

/// What a tracing subscriber writes, kept to read back: the host's log as an operator sees it.
#[derive(Clone, Default)]
struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

/// The attacks that go through imports and devices rather than the sandbox, each against a
/// live host while an honest load balancer is served beside them: floods of import calls
/// (refused keys, huge keys, a million tiny keys), a log message and a fault that try to forge
/// host log lines, a tarpit device, a device that echoes the credential it was sent, and a
/// device registered at the host's own port. Each offending load balancer ends `ERROR` with a
/// readable fault (the echo is contained rather than failed: the driver sees nothing to leak),
/// the honest one stays `ACTIVE` and a new one still goes `ACTIVE`, each attempt is in the
/// audit log, and the host's memory comes back near its baseline.
#[test]
fn import_floods_and_hostile_devices_are_contained_on_a_live_host() {
    let log = CapturedLog::default();
    let writer = log.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber of this test binary");

    let data = tempfile::tempdir().expect("temp dir");
    let agent = FakeAppliance::start();
    let plane = ControlPlane::start_with_options(
        data.path(),
        Auth::None,
        Options {
            extra_drivers: vec![fixtures().looper.clone(), fixtures().snoop.clone()],
            config: RuntimeConfig {
                device_deadline: Duration::from_millis(1500),
                ..RuntimeConfig::default()
            },
            skip_conformance: true,
            ..Options::default()
        },
    );
    let admin = plane.client(None).as_project("admin-project");
    let tenant = plane.client(None).as_project("tenant");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.63.0/24"}]}}),
    );
    let device = |name: &str, driver: &str, url: &str, extra: Value| {
        let mut body = json!({"name": name, "kind": "virtual", "driver": driver,
                              "management_url": url, "capacity": 50});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        id(
            &admin.create("/v2/admin/devices", &json!({ "device": body })),
            "device",
        )
    };
    let honest_device = device("haproxy-1", "haproxy", &agent.url(), json!({}));
    device("looper-1", "looper", &agent.url(), json!({}));
    let good = create(&tenant, "haproxy", "good");
    assert_eq!(good["provisioning_status"], "ACTIVE", "{good}");
    let good_id = good["id"].as_str().expect("id").to_owned();
    let serving = || {
        let (_, still) = tenant.get(&format!("/v2/lbaas/loadbalancers/{good_id}"));
        assert_eq!(still["loadbalancer"]["provisioning_status"], "ACTIVE");
        let fresh = create(&tenant, "haproxy", "fresh");
        assert_eq!(fresh["provisioning_status"], "ACTIVE", "{fresh}");
    };
    let baseline = lbaas_tests::rss_bytes();
    let records_before = audit_records(&admin);

    // The looper places its load balancers only under a flavor named `calm`.
    let profile = admin.create(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": "looper", "provider_name": "looper", "flavor_data": "{}"}}),
    );
    let calm = id(
        &admin.create(
            "/v2/lbaas/flavors",
            &json!({"flavor": {"name": "calm", "flavor_profile_id": id(&profile, "flavorprofile")}}),
        ),
        "flavor",
    );
    let looper = |name: &str| {
        let created = tenant.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"name": name, "vip_subnet_id": "subnet-vip", "flavor_id": calm,
                    "listeners": [{"protocol": "TCP", "protocol_port": 443}]}}),
        );
        tenant.settle(&id(&created, "loadbalancer"))
    };

    // Import floods: each fails its call at the import budget (huge keys may reach the
    // deadline first: copying half a MiB per call is the guest's time), with a bounded record.
    for attack in ["refused-keys", "huge-keys", "tiny-keys"] {
        let lb = looper(attack);
        assert_eq!(lb["provisioning_status"], "ERROR", "{attack}: {lb}");
        let fault = lb["fault"].as_str().unwrap_or_default();
        assert!(
            fault.contains("more than 10000 import calls")
                || fault.contains("bytes of audit records")
                || (attack == "huge-keys" && fault.contains("ran past its deadline")),
            "{attack}: {fault}"
        );
        serving();
    }
    // A message and a fault that try to forge a host log line and repaint a terminal.
    let forged = looper("forge");
    assert_eq!(forged["provisioning_status"], "ERROR", "{forged}");
    let fault = forged["fault"].as_str().unwrap_or_default();
    assert!(fault.contains("FORGED"), "{fault}");
    assert!(
        !fault.contains('\n') && !fault.contains('\x1b'),
        "the fault is one escaped line: {fault:?}"
    );
    let text = log.text();
    let lines: Vec<&str> = text.lines().filter(|l| l.contains("FORGED")).collect();
    assert!(!lines.is_empty(), "the driver's message is logged");
    for line in &lines {
        assert!(
            !line.starts_with("2026-11-30T00:00:00"),
            "a forged host line: {line}"
        );
        assert!(
            line.contains("looper"),
            "not tagged with its driver: {line}"
        );
    }
    assert!(!text.contains('\x1b'), "an escape sequence reached the log");
    serving();

    // The import-heavy attacks are over: the host's memory is back near where it was (measured
    // before this test reads thousands of audit records itself).
    let grown = lbaas_tests::rss_bytes().saturating_sub(baseline);
    assert!(grown < 48 << 20, "host memory grew by {} MiB", grown >> 20);

    let limits = audit(&admin, "driver=looper&function=limit&limit=100");
    assert!(limits.len() >= 2, "{limits:?}");
    // At most one record per import call, each key cut to its start and digest.
    let recorded = audit_records(&admin) - records_before;
    assert!(recorded <= 3 * 10_001 + 50, "{recorded} records");
    let records = audit(&admin, "driver=looper&limit=10000");
    let longest = records
        .iter()
        .filter_map(|r| r["target"].as_str().map(str::len))
        .max()
        .unwrap_or(0);
    assert!(longest < 400, "an audited key of {longest} bytes");

    // A tarpit device: the call gets what is left of its deadline, not the device timeout.
    let tarpit = FakeAppliance::start();
    tarpit.delay(30_000);
    let tarpit_device = device("haproxy-tarpit", "haproxy", &tarpit.url(), json!({}));
    let enabled = |id: &str, on: bool| {
        let (status, body) = admin.put(
            &format!("/v2/admin/devices/{id}"),
            &json!({"device": {"enabled": on}}),
        );
        assert_eq!(status, 200, "{body}");
    };
    enabled(&honest_device, false);
    let held = create(&tenant, "haproxy", "tarpit");
    enabled(&honest_device, true);
    enabled(&tarpit_device, false);
    assert_eq!(held["provisioning_status"], "ERROR", "{held}");
    let fault = held["fault"].as_str().unwrap_or_default();
    assert!(
        fault.contains("did not answer within") || fault.contains("ran past its deadline"),
        "{fault}"
    );
    assert!(tarpit.arrived() >= 1, "the tarpit was called");
    let sends = audit(&admin, "driver=haproxy&function=device-api.send&limit=1000");
    assert!(
        sends.iter().any(|r| r["detail"]
            .as_str()
            .is_some_and(|d| d.contains("within") && !d.contains("within 10"))),
        "the device call's timeout is what was left of 1.5 s: {sends:?}"
    );
    serving();

    // A device that echoes what it was sent: the snoop gets the echo, redacted, and pushes its
    // report (the echo included) back to the device, which is where a test can read it.
    let echo = FakeAppliance::start();
    echo.echo_headers();
    let echo_device = device(
        "snoop-echo",
        "snoop",
        &echo.url(),
        json!({"credentials": {"type": "bearer", "token": "tok-echo-0123456789abcdef"}}),
    );
    let echoed = create(&tenant, "snoop", &format!("device/{echo_device}"));
    assert_eq!(echoed["provisioning_status"], "ACTIVE", "{echoed}");
    let received = echo.received();
    assert!(
        received
            .iter()
            .filter_map(|r| r.headers.get("authorization"))
            .any(|value| value.contains("tok-echo-0123456789abcdef")),
        "the device got its credential"
    );
    let report = received
        .iter()
        .find(|r| r.method == "PUT")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .expect("the snoop pushed its report");
    assert!(report.contains("[redacted]"), "{report}");
    assert!(
        !report.contains("tok-echo-0123456789abcdef"),
        "the credential reached the driver: {report}"
    );
    serving();

    // A device registered at the host's own port is refused, for admins too.
    let own = plane.url.clone();
    let (status, body) = admin.post(
        "/v2/admin/devices",
        &json!({"device": {"name": "loop", "kind": "virtual", "driver": "haproxy",
                "management_url": own, "capacity": 1}}),
    );
    assert_eq!(status, 400, "{body}");

    // Nothing left pending, the chain intact, the memory back near where it was.
    let (_, all) = tenant.get("/v2/lbaas/loadbalancers");
    for lb in all["loadbalancers"].as_array().expect("list") {
        let state = lb["provisioning_status"].as_str().unwrap_or_default();
        assert!(!state.starts_with("PENDING"), "{lb}");
    }
    let (_, verified) = admin.get("/v2/admin/audit/verify");
    assert_eq!(verified["intact"], true, "{verified}");
    plane.stop();
}
