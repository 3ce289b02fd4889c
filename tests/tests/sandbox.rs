//! The runtime's sandbox against purpose-built hostile guests: each is stopped or fails
//! cleanly, with an error naming driver, version and function, and the host then serves the
//! next call — of the same driver and of a well-behaved one — normally.

use std::time::{Duration, Instant};

use lbaas_host::audit::{Filter, Outcome, Record};
use lbaas_host::driver_state::StateStore as _;
use lbaas_host::runtime::{DeviceKind, Error, Failure, LoadedDriver, Origin, RuntimeConfig};
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::model::*;
use lbaas_tests::{TestHost, drivers, fixtures};

fn host_with(config: RuntimeConfig) -> (tempfile::TempDir, TestHost) {
    let dir = tempfile::tempdir().expect("temp dir");
    let host = TestHost::open_with(dir.path(), config);
    (dir, host)
}

fn failure(error: Error, driver: &str, function: &str) -> Failure {
    match error {
        Error::Call {
            driver: name,
            version,
            function: called,
            failure,
        } => {
            assert_eq!(name.as_str(), driver);
            assert_eq!(version, "0.0.1");
            assert_eq!(called, function);
            failure
        }
        other => panic!("expected a call failure, got {other}"),
    }
}

/// After a failure, the same driver and a well-behaved driver still answer.
fn host_still_serves(host: &TestHost, hostile: &LoadedDriver) {
    let lb = web_shop("lb-after", "127.0.0.20");
    hostile
        .validate_flavor(&flavor("plain", &[]))
        .expect("the hostile driver's next call runs normally");
    let haproxy = host.load(&drivers().haproxy);
    haproxy
        .translate(&lb, &device("haproxy-1", DeviceKind::Virtual, 4, None))
        .expect("a well-behaved driver runs normally");
}

#[test]
fn endless_loop_is_stopped_at_its_deadline() {
    let (_dir, host) = host_with(RuntimeConfig {
        select_deadline: Duration::from_millis(200),
        ..RuntimeConfig::default()
    });
    let looper = host.load(&fixtures().looper);
    let lb = web_shop("lb-1", "127.0.0.20");
    let request = request_for(&lb);
    let candidates = [candidate(device("d1", DeviceKind::Virtual, 4, None), 0, 0)];
    let started = Instant::now();
    let error = looper
        .select(&request, &candidates)
        .expect_err("must be stopped");
    let message = error.to_string();
    assert_eq!(
        failure(error, "looper", "select"),
        Failure::Deadline(Duration::from_millis(200))
    );
    assert!(
        message.contains("driver looper 0.0.1: `select` ran past its deadline"),
        "{message}"
    );
    // Stopped, not left running: well under the time a runaway would take.
    assert!(started.elapsed() < Duration::from_secs(30));

    // A second runaway call is stopped too, and the instance does not carry over.
    assert!(looper.select(&request, &candidates).is_err());
    host_still_serves(&host, &looper);
    let hits = audited(&host, "looper", "limit.deadline");
    assert_eq!(hits.len(), 2, "{hits:?}");
    assert_eq!(hits[0].event.target.as_deref(), Some("select"));
    assert!(
        hits[0]
            .event
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("200ms"))
    );
}

#[test]
fn unbounded_recursion_hits_the_stack_limit() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    let looper = host.load(&fixtures().looper);
    let error = looper
        .validate_flavor(&flavor("recurse", &[]))
        .expect_err("stack overflow");
    let message = error.to_string();
    let failure = failure(error, "looper", "validate-flavor");
    assert!(matches!(failure, Failure::StackOverflow(_)), "{failure:?}");
    assert!(message.contains("overflowed its stack"), "{message}");
    host_still_serves(&host, &looper);
    assert_eq!(audited(&host, "looper", "limit.stack").len(), 1);
}

#[test]
fn memory_growth_past_the_limit_fails_cleanly() {
    let limit = 32 << 20;
    let (_dir, host) = host_with(RuntimeConfig {
        memory_limit: limit,
        ..RuntimeConfig::default()
    });
    let hog = host.load(&fixtures().memory_hog);
    let lb = web_shop("lb-1", "127.0.0.20");
    let error = hog
        .translate(&lb, &device("d1", DeviceKind::Virtual, 4, None))
        .expect_err("out of memory");
    let message = error.to_string();
    match failure(error, "memory-hog", "translate") {
        Failure::MemoryLimit {
            wanted,
            limit: reported,
        } => {
            assert_eq!(reported, limit);
            assert!(wanted > limit);
        }
        other => panic!("expected a memory-limit failure, got {other}"),
    }
    assert!(
        message.contains("past the limit of 33554432 bytes"),
        "{message}"
    );
    host_still_serves(&host, &hog);
    assert_eq!(audited(&host, "memory-hog", "limit.memory").len(), 1);
}

#[test]
fn panic_becomes_a_readable_error() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    let panicker = host.load(&fixtures().panicker);
    let mut lb = web_shop("lb-9", "127.0.0.20");
    lb.name = "explode".into();
    let error = panicker
        .translate(&lb, &device("d1", DeviceKind::Virtual, 4, None))
        .expect_err("panic");
    let message = error.to_string();
    assert!(matches!(
        failure(error, "panicker", "translate"),
        Failure::Trap { .. }
    ));
    assert!(
        message.contains("fixture panic: cannot translate load balancer lb-9"),
        "the guest's panic message is in the error: {message}"
    );
    assert!(
        message.starts_with("driver panicker 0.0.1: `translate` trapped"),
        "{message}"
    );
    host_still_serves(&host, &panicker);
    assert_eq!(audited(&host, "panicker", "call.trap").len(), 1);
}

#[test]
fn snoop_reaches_nothing_outside_its_sandbox() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    // Another driver's secrets: acme-adc records an allocation on a device.
    let appliance = FakeAppliance::start();
    host.register_device("adc-1", "acme-adc", &appliance.url());
    let acme = host.load(&drivers().acme_adc);
    let lb = web_shop("lb-1", "192.0.2.10");
    let adc = device("adc-1", DeviceKind::Physical, 8, None);
    let config = acme.translate(&lb, &adc).expect("translate");
    acme.apply(&lb, &adc, &config).expect("apply");
    let requests_before = appliance.received().len();

    // A socket the snoop will try to reach directly.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");

    let snoop = host.load(&fixtures().snoop);
    let mut probe = web_shop(
        "lb-snoop",
        &listener.local_addr().expect("address").to_string(),
    );
    probe.name = "device/adc-1".into();
    let report = snoop
        .translate(&probe, &adc)
        .expect("the snoop reports what it got");
    let report: serde_json::Value = serde_json::from_str(&report.body).expect("json report");

    for read in report["state_reads"].as_array().expect("state reads") {
        assert_eq!(read["found"], false, "read another driver's state: {read}");
    }
    assert_eq!(report["own_keys"], serde_json::json!([]));
    assert!(report["file"]["Err"].is_string(), "opened a file: {report}");
    assert!(
        report["dir"]["Err"].is_string(),
        "listed a directory: {report}"
    );
    assert_eq!(report["env"], serde_json::json!([]), "saw the environment");
    assert!(
        report["socket"]["Err"].is_string(),
        "opened a socket: {report}"
    );
    assert!(
        listener.accept().is_err(),
        "a connection reached the listener"
    );
    let device_call = report["device_call"]["Err"]
        .as_str()
        .expect("device call refused");
    assert!(
        device_call.contains("no device `adc-1` for driver snoop"),
        "{device_call}"
    );
    let not_granted = report["device_call_not_granted"]["Err"]
        .as_str()
        .expect("a call its manifest does not ask for is refused");
    assert!(
        not_granted.contains("path /admin/factory-reset is not granted to driver snoop"),
        "{not_granted}"
    );
    assert_eq!(
        appliance.received().len(),
        requests_before,
        "the snoop reached acme's appliance"
    );

    // The state the snoop looked for is really there, for its owner: another load balancer
    // with the same VIP is refused on that device.
    let other = web_shop("lb-other", "192.0.2.10");
    let hints = acme
        .select(&request_for(&other), &[candidate(adc.clone(), 1, 1)])
        .expect("select");
    assert!(
        format!("{hints:?}").contains("already configured"),
        "{hints:?}"
    );

    // The audit log shows what the snoop attempted: state reads, all inside its own (empty)
    // namespace, and a device call that was refused.
    // A call's successful reads are one record naming every key read.
    let reads = audited(&host, "snoop", "state.get");
    assert!(
        reads
            .iter()
            .all(|r| r.event.bytes == 0 && r.event.outcome == Outcome::Ok)
    );
    let keys: Vec<String> = reads
        .iter()
        .flat_map(|r| lbaas_tests::audited_keys(r.event.target.as_deref()))
        .collect();
    assert_eq!(keys.len(), 4, "{reads:?}");
    assert!(keys.iter().any(|k| k == "driver/acme-adc/device/adc-1"));
    let sends = audited(&host, "snoop", "device-api.send");
    assert_eq!(sends.len(), 2, "{sends:?}");
    assert_eq!(sends[0].event.outcome, Outcome::Denied);
    assert!(
        sends[0]
            .event
            .target
            .as_deref()
            .is_some_and(|t| t.starts_with("adc-1 "))
    );
    // acme-adc's own calls are there too, allowed.
    assert!(
        audited(&host, "acme-adc", "device-api.send")
            .iter()
            .all(|r| r.event.outcome == Outcome::Ok)
    );
    assert!(host.audit.verify().intact());
}

/// The audit records of `driver` whose function is or starts with `function`.
fn audited(host: &TestHost, driver: &str, function: &str) -> Vec<Record> {
    host.audit.query(&Filter {
        driver: Some(driver.into()),
        function: Some(function.into()),
        limit: 10_000,
        ..Filter::default()
    })
}

#[test]
fn floods_fail_the_call_with_the_limit_named() {
    let (_dir, host) = host_with(RuntimeConfig {
        state_quota: 1 << 20,
        ..RuntimeConfig::default()
    });
    let looper = host.load(&fixtures().looper);
    let device = device("d1", DeviceKind::Virtual, 4, None);
    let named = |name: &str| {
        let mut lb = web_shop("lb-flood", "127.0.0.20");
        lb.name = name.into();
        lb
    };

    // The log.
    let error = looper
        .translate(&named("flood"), &device)
        .expect_err("flood");
    let message = error.to_string();
    assert!(
        matches!(failure(error, "looper", "translate"), Failure::Limit(_)),
        "{message}"
    );
    assert!(
        message.contains("more than 1000 log messages in one call"),
        "{message}"
    );
    let logs = audited(&host, "looper", "log.log");
    assert_eq!(
        logs.len(),
        1,
        "one summary, not a record per message: {logs:?}"
    );
    assert_eq!(audited(&host, "looper", "limit.import").len(), 1);

    // The returned configuration.
    let error = looper.translate(&named("huge"), &device).expect_err("huge");
    let message = error.to_string();
    assert!(
        matches!(
            failure(error, "looper", "translate"),
            Failure::OutputTooLarge { .. }
        ),
        "{message}"
    );
    assert!(
        message.contains("more than the 1048576-byte limit"),
        "{message}"
    );
    assert_eq!(audited(&host, "looper", "limit.output").len(), 1);

    // Private state past its quota: the driver gets the quota error as a value, and passes it on.
    let error = looper
        .translate(&named("hoard"), &device)
        .expect_err("hoard");
    let message = error.to_string();
    assert!(matches!(error, Error::Refused { .. }), "{message}");
    assert!(message.contains("quota"), "{message}");
    let denied: Vec<Record> = audited(&host, "looper", "state.set")
        .into_iter()
        .filter(|r| r.event.outcome == Outcome::Denied)
        .collect();
    assert_eq!(denied.len(), 1, "the write past the quota is recorded");
    host_still_serves(&host, &looper);
    assert!(host.audit.verify().intact());
}

/// Floods of import calls (refused keys, huge keys, a million tiny keys) fail the call at the
/// import budget: the host keeps a bounded number of audit records of bounded size for it,
/// and its memory stays near where it was.
#[test]
fn import_floods_are_bounded_by_the_grant() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    let looper = host.load(&fixtures().looper);
    let device = device("d1", DeviceKind::Virtual, 4, None);
    let before = lbaas_tests::rss_bytes();
    for attack in ["refused-keys", "huge-keys", "tiny-keys"] {
        let mut lb = web_shop("lb-flood", "127.0.0.20");
        lb.name = attack.into();
        let error = looper.translate(&lb, &device).expect_err(attack);
        let message = error.to_string();
        // Huge keys (half a MiB each) run into the deadline first: copying them in is the
        // guest's time, not the host's memory.
        let contained = match failure(error, "looper", "translate") {
            Failure::Limit(limit) => {
                limit.contains("import calls") || limit.contains("bytes of audit records")
            }
            Failure::Deadline(_) => attack == "huge-keys",
            _ => false,
        };
        assert!(contained, "{attack}: {message}");
    }
    // At most one record per import call, each key cut to its start and digest.
    let records = host.audit.query(&Filter {
        limit: 1_000_000,
        ..Filter::default()
    });
    assert!(
        records.len() <= 3 * 10_001 + 10,
        "{} records",
        records.len()
    );
    let longest = records
        .iter()
        .filter_map(|r| r.event.target.as_ref().map(String::len))
        .max()
        .unwrap_or(0);
    assert!(longest < 400, "an audited key of {longest} bytes");
    assert!(records.iter().any(|r| {
        r.event
            .target
            .as_deref()
            .is_some_and(|t| t.contains("sha256"))
    }));
    // A million tiny keys did not fit either: each key costs the quota its overhead.
    let tiny = host
        .state
        .namespace(&lbaas_host::DriverName::new("looper").expect("name"))
        .expect("namespace");
    assert!(tiny.keys("t").expect("keys").len() < 10_001);
    let grown = lbaas_tests::rss_bytes().saturating_sub(before);
    assert!(grown < 256 << 20, "the host grew by {} MiB", grown >> 20);
    host_still_serves(&host, &looper);
    assert!(host.audit.verify().intact());
}

#[test]
fn failing_calls_in_a_row_quarantine_a_driver_until_released() {
    let (_dir, host) = host_with(RuntimeConfig {
        quarantine_after: 3,
        ..RuntimeConfig::default()
    });
    let panicker = host.load(&fixtures().panicker);
    let device = device("d1", DeviceKind::Virtual, 4, None);
    let mut explode = web_shop("lb-1", "127.0.0.20");
    explode.name = "explode".into();
    let calm = web_shop("lb-2", "127.0.0.21");
    // A success of the same export starts the count again; other exports do not count.
    assert!(panicker.translate(&explode, &device).is_err());
    assert!(panicker.translate(&explode, &device).is_err());
    panicker.translate(&calm, &device).expect("fine");
    assert!(panicker.translate(&explode, &device).is_err());
    panicker
        .validate_flavor(&flavor("plain", &[]))
        .expect("fine");
    assert!(panicker.translate(&explode, &device).is_err());
    assert_eq!(panicker.quarantined(), None);
    assert!(panicker.translate(&explode, &device).is_err());
    let reason = panicker.quarantined().expect("quarantined");
    assert!(
        reason.contains("3 failed `translate` calls in a row"),
        "{reason}"
    );
    assert!(reason.contains("fixture panic"), "{reason}");
    assert_eq!(audited(&host, "panicker", "lifecycle.quarantine").len(), 1);

    assert!(panicker.release("admin"));
    assert_eq!(panicker.quarantined(), None);
    assert!(!panicker.release("admin"), "nothing left to release");
    let released = audited(&host, "panicker", "lifecycle.release");
    assert_eq!(released.len(), 1);
    assert_eq!(
        released[0].event.detail.as_deref(),
        Some("released by admin")
    );
}

#[test]
fn a_file_that_is_not_a_driver_is_refused_clearly() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    let error = host
        .runtime
        .load(b"not wasm at all", "junk.wasm")
        .expect_err("junk");
    let message = error.to_string();
    assert!(
        message.starts_with("junk.wasm: not a valid driver component"),
        "{message}"
    );

    // A valid core module, but not a component.
    let core = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    let error = host
        .runtime
        .load(&core, "core.wasm")
        .expect_err("core module");
    assert!(error.to_string().contains("component"), "{error}");
}

#[test]
fn a_forged_version_or_vendor_is_refused_without_being_echoed() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    let error = host
        .runtime
        .load_file(&fixtures().forged_identity)
        .expect_err("a driver whose version holds a forged log line");
    let message = error.to_string();
    assert!(
        message.contains("unusable identity: invalid driver version"),
        "{message}"
    );
    assert!(!message.chars().any(char::is_control), "{message:?}");
    assert!(message.len() < 400, "{} bytes: {message}", message.len());
}

#[test]
fn deadlines_hold_after_the_runtime_that_loaded_the_driver_is_gone() {
    let (_dir, host) = host_with(RuntimeConfig {
        select_deadline: Duration::from_millis(100),
        ..RuntimeConfig::default()
    });
    let looper = host.load(&fixtures().looper);
    drop(host);
    let lb = web_shop("lb-1", "127.0.0.20");
    let candidates = [candidate(device("d1", DeviceKind::Virtual, 4, None), 0, 0)];
    let error = looper
        .select(&request_for(&lb), &candidates)
        .expect_err("still stopped at its deadline");
    assert_eq!(
        failure(error, "looper", "select"),
        Failure::Deadline(Duration::from_millis(100))
    );
}

#[test]
fn a_tampered_cache_file_is_not_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let lb = web_shop("lb-1", "127.0.0.20");
    let device = device("d1", DeviceKind::Virtual, 4, None);
    {
        let host = TestHost::open(dir.path());
        let haproxy = host.load(&drivers().haproxy);
        assert_eq!(haproxy.origin(), Origin::Compiled);
    }
    {
        let host = TestHost::open(dir.path());
        assert_eq!(host.load(&drivers().haproxy).origin(), Origin::Cache);
    }
    // Change one byte of the compiled code on disk.
    let cached = std::fs::read_dir(dir.path().join("cache"))
        .expect("cache dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .expect("a cached component");
    let mut bytes = std::fs::read(&cached).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&cached, bytes).expect("tamper");
    let host = TestHost::open(dir.path());
    let haproxy = host.load(&drivers().haproxy);
    assert_eq!(
        haproxy.origin(),
        Origin::Compiled,
        "the tampered file was not used"
    );
    haproxy
        .translate(&lb, &device)
        .expect("the recompiled driver works");
}

/// Someone who can write the cache folder puts another component's compiled code, with its
/// tag, under the name of a trusted one: the tag is bound to the component and made with a
/// secret kept outside the folder, so the swap is refused, reported, and the trusted driver
/// compiled again.
#[test]
fn swapping_both_cache_files_is_caught() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (haproxy_sha, acme_sha) = {
        let host = TestHost::open(dir.path());
        (
            host.load(&drivers().haproxy).identity().sha256.clone(),
            host.load(&drivers().acme_adc).identity().sha256.clone(),
        )
    };
    let cache = dir.path().join("cache");
    assert!(
        dir.path().join("cache.key").exists(),
        "the secret lives beside the folder"
    );
    let entry = |sha: &str| {
        std::fs::read_dir(&cache)
            .expect("cache dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| {
                p.extension().is_some_and(|e| e == "cwasm")
                    && p.file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(sha))
            })
            .expect("a cached component")
    };
    let haproxy = entry(&haproxy_sha);
    let acme = entry(&acme_sha);
    let tag = |path: &std::path::Path| path.with_extension("cwasm.mac");
    std::fs::copy(&acme, &haproxy).expect("swap the code");
    std::fs::copy(tag(&acme), tag(&haproxy)).expect("swap the tag");

    let host = TestHost::open(dir.path());
    let loaded = host.load(&drivers().haproxy);
    assert_eq!(
        loaded.origin(),
        Origin::Compiled,
        "the swapped code was not used"
    );
    assert_eq!(loaded.name().as_str(), "haproxy");
    let rejected = host.audit.query(&Filter {
        function: Some("cache.rejected".into()),
        limit: 100,
        ..Filter::default()
    });
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].event.outcome, Outcome::Denied);
    assert_eq!(host.load(&drivers().acme_adc).origin(), Origin::Cache);
}

#[test]
fn a_busy_wait_on_the_clock_is_stopped_at_its_deadline() {
    let (_dir, host) = host_with(RuntimeConfig {
        device_deadline: Duration::from_millis(150),
        ..RuntimeConfig::default()
    });
    let looper = host.load(&fixtures().looper);
    let lb = web_shop("lb-1", "127.0.0.20");
    let error = looper
        .remove(&lb, &device("d1", DeviceKind::Virtual, 4, None))
        .expect_err("stopped");
    assert_eq!(
        failure(error, "looper", "remove"),
        Failure::Deadline(Duration::from_millis(150))
    );
    host_still_serves(&host, &looper);
}

/// A tarpit device (it answers after 12 s) cannot hold a driver call past its deadline:
/// the device call gets what is left of the deadline, not the device timeout.
#[test]
fn a_tarpit_device_does_not_outlast_the_call_deadline() {
    let (_dir, host) = host_with(RuntimeConfig {
        device_deadline: Duration::from_millis(500),
        ..RuntimeConfig::default()
    });
    let haproxy = host.load(&drivers().haproxy);
    let tarpit = FakeAppliance::start();
    // Longer than the 10 s device timeout, which is what the call got before.
    tarpit.delay(12_000);
    host.register_device("haproxy-1", "haproxy", &tarpit.url());
    let lb = web_shop("lb-tarpit", "127.0.0.21");
    let device = device("haproxy-1", DeviceKind::Virtual, 16, None);
    let config = haproxy.translate(&lb, &device).expect("translate");
    let error = haproxy
        .apply(&lb, &device, &config)
        .expect_err("the device never answers in time");
    // The driver sees the device call time out (or, on a loaded machine, the call's deadline
    // passes while it returns): either way the call ends by its deadline.
    let message = error.to_string();
    assert!(
        message.contains("did not answer within") || message.contains("ran past its deadline"),
        "{message}"
    );
    // What the device call was given is what was left of the call's 500 ms, not the 10 s device
    // timeout: the audit record of the call says so.
    let calls = audited(&host, "haproxy", "device-api.send");
    let detail = calls
        .last()
        .and_then(|record| record.event.detail.clone())
        .expect("the device call is audited");
    let given = detail
        .split("within ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_default();
    assert!(given.ends_with("ms"), "a sub-second timeout: {detail}");
}

/// A device that echoes the request it got hands the driver nothing of the credential the
/// host injected.
#[test]
fn an_echoing_device_does_not_leak_the_injected_credential() {
    let (_dir, host) = host_with(RuntimeConfig::default());
    let snoop = host.load(&fixtures().snoop);
    let echo = FakeAppliance::start();
    echo.echo_headers();
    host.devices.insert(lbaas_host::devices::DeviceEndpoint {
        device_id: "snoop-dev".into(),
        driver: lbaas_host::DriverName::new("snoop").expect("name"),
        management_url: echo.url(),
        credentials: Some(lbaas_host::devices::Credentials::Bearer {
            token: "tok-0123456789abcdef".into(),
        }),
    });
    let config = snoop
        .translate(
            &web_shop("lb-echo", "127.0.0.22"),
            &device("snoop-dev", DeviceKind::Virtual, 4, None),
        )
        .expect("the snoop reports");
    let report: serde_json::Value = serde_json::from_str(&config.body).expect("JSON report");
    let answer = report["device_call"]["Ok"]["body"]
        .as_str()
        .expect("the device answered");
    // The device got the credential and echoed its header; the driver sees it redacted.
    let received = echo.received();
    assert!(
        received[0].headers["authorization"].contains("tok-0123456789abcdef"),
        "{received:?}"
    );
    assert!(!config.body.contains("tok-0123456789abcdef"), "{answer}");
    assert!(answer.contains("Bearer [redacted]"), "{answer}");
}

/// A component whose module has a second memory gets no second grant: each memory alone fits
/// the grant, the two together do not. Under the pooling allocator (the default) such a module
/// is not even loaded: a pooled instance has one memory per module.
#[test]
fn a_second_memory_shares_the_grant() {
    let lb = web_shop("lb-pair", "127.0.0.23");
    let device = device("d1", DeviceKind::Virtual, 4, None);

    let (_dir, host) = host_with(RuntimeConfig::default());
    let refused = host
        .runtime
        .load_file(&fixtures().memory_pair_two)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        refused.contains("defined memories count of 2 exceeds the per-instance limit of 1"),
        "{refused}"
    );

    let (_dir, host) = host_with(RuntimeConfig {
        pooling: false,
        ..RuntimeConfig::default()
    });
    let single = host.load(&fixtures().memory_pair);
    let used = single.translate(&lb, &device).expect("40 MiB fits");
    assert!(used.body.ends_with("used 40 MiB"), "{}", used.body);
    let pair = host.load(&fixtures().memory_pair_two);
    let error = pair
        .translate(&lb, &device)
        .expect_err("40 + 40 MiB does not");
    let message = error.to_string();
    assert!(
        matches!(
            failure(error, "memory-pair", "translate"),
            Failure::MemoryLimit { limit, .. } if limit == 64 << 20
        ),
        "{message}"
    );
    assert_eq!(audited(&host, "memory-pair", "limit.memory").len(), 1);
    host_still_serves(&host, &pair);
}
