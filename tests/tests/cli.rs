//! The `lbaasd` binary as an operator runs it: `driver inspect` on good and bad files, and
//! `serve` answering on loopback, restarting from the compiled-driver cache.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, id_of};
use lbaas_tests::drivers;
use lbaas_tests::process::{Server, lbaasd};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;
use serde_json::json;

#[test]
fn inspect_prints_capabilities_as_json() {
    let output = lbaasd()
        .args(["driver", "inspect"])
        .arg(&drivers().acme_adc)
        .output()
        .expect("run lbaasd");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON on stdout");
    assert_eq!(report["name"], "acme-adc");
    assert_eq!(report["capabilities"]["vendor"], "Acme Networks");
    assert_eq!(report["capabilities"]["can_spawn"], false);
    assert_eq!(report["sha256"].as_str().map(str::len), Some(64));
}

/// `--auth none` makes every caller an admin: the host refuses to offer that beyond loopback.
#[test]
fn noauth_refuses_a_listen_address_beyond_loopback() {
    let data = tempfile::tempdir().expect("temp dir");
    let output = lbaasd()
        .args([
            "serve",
            "--listen",
            "0.0.0.0:0",
            "--auth",
            "none",
            "--no-spawn",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .expect("run lbaasd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--auth none") && stderr.contains("loopback"),
        "{stderr}"
    );
    assert!(
        !data.path().join("db").exists(),
        "refused before anything was opened"
    );
}

#[test]
fn inspect_refuses_a_file_that_is_not_a_driver() {
    let dir = tempfile::tempdir().expect("temp dir");
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, "definitely not wasm").expect("write");
    let output = lbaasd()
        .args(["driver", "inspect"])
        .arg(&junk)
        .output()
        .expect("run lbaasd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("not a valid driver component: it is not a WebAssembly file"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let missing = dir.path().join("missing.wasm");
    let output = lbaasd()
        .args(["driver", "inspect"])
        .arg(&missing)
        .output()
        .expect("run lbaasd");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read"));
}

#[test]
fn serve_answers_and_restarts_from_the_compile_cache() {
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = tempfile::tempdir().expect("driver dir");
    std::fs::copy(&drivers().haproxy, driver_dir.path().join("haproxy.wasm")).expect("copy");
    std::fs::copy(&drivers().acme_adc, driver_dir.path().join("acme-adc.wasm")).expect("copy");
    std::fs::write(driver_dir.path().join("broken.wasm"), "junk").expect("write");

    let server = Server::start(data.path(), driver_dir.path(), &[]);
    let (url, log) = (server.url.clone(), server.log());
    let health: serde_json::Value = ureq::get(&format!("{url}/healthz"))
        .call()
        .expect("healthz")
        .body_mut()
        .read_json()
        .expect("json");
    assert_eq!(health["status"], "ok");
    let providers: serde_json::Value = ureq::get(&format!("{url}/v2/lbaas/providers"))
        .call()
        .expect("providers")
        .body_mut()
        .read_json()
        .expect("json");
    let names: Vec<&str> = providers["providers"]
        .as_array()
        .expect("providers")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(names, ["acme-adc", "haproxy"]);
    assert!(
        log.iter()
            .any(|l| l.contains("broken.wasm") && l.contains("not a WebAssembly file")),
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("origin=Compiled")).count(),
        2,
        "{log:#?}"
    );
    drop(server);

    // A restart deserialises the cached compilation instead of compiling again.
    let server = Server::start(data.path(), driver_dir.path(), &[]);
    let log = server.log();
    assert_eq!(
        log.iter().filter(|l| l.contains("origin=Cache")).count(),
        2,
        "{log:#?}"
    );
    assert_eq!(
        log.iter().filter(|l| l.contains("origin=Compiled")).count(),
        0,
        "{log:#?}"
    );
}

/// Runs `lbaasd` with `args`; (success, stdout, stderr).
fn run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let output = lbaasd().args(args).output().expect("run lbaasd");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn signatures_and_pins_decide_which_drivers_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = |name: &str| dir.path().join(name);
    let driver = path("haproxy.wasm");
    std::fs::copy(&drivers().haproxy, &driver).expect("copy");
    for key in ["vendor", "stranger"] {
        let (ok, _, stderr) = run(&["driver".as_ref(), "keygen".as_ref(), path(key).as_os_str()]);
        assert!(ok, "{stderr}");
    }
    let sign = |key: &str, file: &std::path::Path| {
        let (ok, _, stderr) = run(&[
            "driver".as_ref(),
            "sign".as_ref(),
            "--key".as_ref(),
            path(key).as_os_str(),
            file.as_os_str(),
        ]);
        assert!(ok, "{stderr}");
    };
    let inspect = |file: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec!["driver".into(), "inspect".into()];
        args.push(file.into());
        args.extend(extra.iter().map(|a| (*a).into()));
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        run(&args)
    };
    let trusted = path("vendor.pub");
    let strict = [
        "--trusted-key",
        trusted.to_str().expect("utf8"),
        "--require-signatures",
    ];

    // Unsigned: refused when signatures are required.
    let (ok, _, stderr) = inspect(&driver, &strict);
    assert!(!ok && stderr.contains("unsigned"), "{stderr}");
    // Signed by the trusted vendor: runs, and says who signed it.
    sign("vendor", &driver);
    let (ok, stdout, stderr) = inspect(&driver, &strict);
    assert!(ok, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(report["signed_by"].as_str().map(str::len), Some(16));
    assert_eq!(report["manifest"]["name"], "haproxy");
    assert_eq!(
        report["grant"]["device_api"]["paths"][0],
        "/v1/loadbalancers/"
    );
    // A byte changed after signing: refused.
    let mut bytes = std::fs::read(&driver).expect("read");
    let tampered = path("tampered.wasm");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&tampered, &bytes).expect("write");
    std::fs::copy(
        lbaas_host::integrity::signature_path(&driver),
        lbaas_host::integrity::signature_path(&tampered),
    )
    .expect("copy signature");
    let (ok, _, stderr) = inspect(&tampered, &strict);
    assert!(!ok && stderr.contains("does not verify"), "{stderr}");
    // Signed by a key nobody trusts: refused.
    sign("stranger", &driver);
    let (ok, _, stderr) = inspect(&driver, &strict);
    assert!(!ok && stderr.contains("does not verify"), "{stderr}");
    // Pinned: only the pinned digest runs.
    let (_, stdout, _) = inspect(&driver, &[]);
    let sha256: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let sha256 = sha256["sha256"].as_str().expect("sha256").to_owned();
    assert!(inspect(&driver, &["--pin", &sha256]).0);
    let (ok, _, stderr) = inspect(&drivers().acme_adc, &["--pin", &sha256]);
    assert!(!ok && stderr.contains("is not pinned"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn audit_verify_detects_edited_and_deleted_records() {
    use lbaas_host::audit::{AuditLog, Event, Outcome, Record};
    let data = tempfile::tempdir().expect("data dir");
    let seed = |data: &std::path::Path| {
        let db = sled::open(data.join("db")).expect("db");
        let log = AuditLog::open(&db, &Default::default()).expect("log");
        // One append per event: five stored chunks of one record each.
        for event in (0..5).map(|i| Event {
            driver: "haproxy".into(),
            version: "0.1.0".into(),
            sha256: "ab".into(),
            function: "state.get".into(),
            target: Some(format!("key-{i}")),
            bytes: 0,
            outcome: Outcome::Ok,
            duration_us: 1,
            detail: None,
        }) {
            log.append_all(vec![event]).expect("append");
        }
        drop(log);
        db.flush().expect("flush");
        db
    };
    let verify =
        |data: &std::path::Path| run(&["audit".as_ref(), "verify".as_ref(), data.as_os_str()]);

    let db = seed(data.path());
    drop(db);
    let (ok, stdout, stderr) = verify(data.path());
    assert!(
        ok && stdout.contains("intact: 5 records"),
        "{stdout}{stderr}"
    );
    let (ok, stdout, _) = run(&["audit".as_ref(), "export".as_ref(), data.path().as_os_str()]);
    assert!(ok);
    let records: Vec<Record> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record per line"))
        .collect();
    assert_eq!(records.len(), 5);

    // Someone rewrites what a driver touched.
    let tree = sled::open(data.path().join("db"))
        .expect("db")
        .open_tree("audit")
        .expect("tree");
    let (key, value) = tree
        .scan_prefix(b"r")
        .nth(2)
        .expect("record")
        .expect("readable");
    let mut chunk: Vec<Record> = serde_json::from_slice(&value).expect("a chunk of records");
    chunk[0].event.target = Some("nothing to see".into());
    tree.insert(key, serde_json::to_vec(&chunk).expect("json"))
        .expect("edit");
    tree.flush().expect("flush");
    drop(tree);
    let (ok, _, stderr) = verify(data.path());
    assert!(
        !ok && stderr.contains("record 2 does not match its hash: edited"),
        "{stderr}"
    );

    // Someone deletes a record.
    let other = tempfile::tempdir().expect("data dir");
    let db = seed(other.path());
    let tree = db.open_tree("audit").expect("tree");
    let (key, _) = tree
        .scan_prefix(b"r")
        .nth(1)
        .expect("record")
        .expect("readable");
    tree.remove(key).expect("delete");
    db.flush().expect("flush");
    drop((tree, db));
    let (ok, _, stderr) = verify(other.path());
    assert!(!ok && stderr.contains("record 1 is missing"), "{stderr}");

    let (ok, _, stderr) = verify(&other.path().join("nowhere"));
    assert!(!ok && stderr.contains("no database"), "{stderr}");

    // Someone cuts the last two records off and rewrites the head to match: the chain alone
    // looks intact, the checkpoint the operator kept elsewhere says otherwise.
    let cut = tempfile::tempdir().expect("data dir");
    drop(seed(cut.path()));
    let kept = tempfile::tempdir().expect("the operator's safe place");
    let checkpoint = kept.path().join("audit-checkpoint.json");
    // The signing key lives outside the data folder too; its public half is kept with the
    // checkpoints.
    let key = kept.path().join("audit.key");
    let (ok, _, stderr) = run(&[
        "audit".as_ref(),
        "checkpoint".as_ref(),
        cut.path().as_os_str(),
        "-o".as_ref(),
        checkpoint.as_os_str(),
        "--audit-key".as_ref(),
        key.as_os_str(),
    ]);
    assert!(ok, "{stderr}");
    let (ok, public, stderr) = run(&[
        "audit".as_ref(),
        "public-key".as_ref(),
        cut.path().as_os_str(),
        "--audit-key".as_ref(),
        key.as_os_str(),
    ]);
    assert!(ok && public.trim().len() == 64, "{public}{stderr}");
    let public_key = kept.path().join("audit.pub");
    std::fs::write(&public_key, public.trim()).expect("keep the public key");
    let taken: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).expect("written"))
            .expect("JSON");
    assert_eq!(taken["records"], 5, "{taken}");
    let db = sled::open(cut.path().join("db")).expect("db");
    let tree = db.open_tree("audit").expect("tree");
    let entries: Vec<(sled::IVec, sled::IVec)> = tree
        .scan_prefix(b"r")
        .map(|e| e.expect("readable"))
        .collect();
    for (key, _) in &entries[3..] {
        tree.remove(key).expect("cut");
    }
    let last: Vec<Record> = serde_json::from_slice(&entries[2].1).expect("a chunk of records");
    let head = serde_json::json!({"seq": last[0].seq, "hash": last[0].hash});
    tree.insert("head", serde_json::to_vec(&head).expect("json"))
        .expect("rewrite the head");
    db.flush().expect("flush");
    drop((tree, db));
    let (ok, stdout, stderr) = verify(cut.path());
    assert!(
        ok && stdout.contains("intact: 3 records"),
        "the cut is invisible alone: {stdout}{stderr}"
    );
    let (ok, _, stderr) = run(&[
        "audit".as_ref(),
        "verify".as_ref(),
        cut.path().as_os_str(),
        "--checkpoint".as_ref(),
        checkpoint.as_os_str(),
    ]);
    assert!(
        !ok && stderr.contains("the chain ends at record 2 but the checkpoint")
            && stderr.contains("names record 4: records deleted at the end"),
        "{stderr}"
    );
    let verify_signed = |checkpoint: &std::path::Path| {
        run(&[
            "audit".as_ref(),
            "verify".as_ref(),
            cut.path().as_os_str(),
            "--checkpoint".as_ref(),
            checkpoint.as_os_str(),
            "--checkpoint-key".as_ref(),
            public_key.as_os_str(),
        ])
    };
    let (ok, stdout, stderr) = verify_signed(&checkpoint);
    assert!(!ok && stdout.contains("signed by key"), "{stdout}{stderr}");
    // Editing the kept checkpoint to match the cut chain breaks its signature.
    let mut edited = taken.clone();
    edited["records"] = 3.into();
    edited["hash"] = last[0].hash.clone().into();
    let forged = kept.path().join("edited.json");
    std::fs::write(&forged, edited.to_string()).expect("write");
    let (ok, _, stderr) = verify_signed(&forged);
    assert!(!ok && stderr.contains("does not verify"), "{stderr}");
    // So does signing it again with another key, such as one made in the data folder.
    let (ok, _, stderr) = run(&[
        "audit".as_ref(),
        "checkpoint".as_ref(),
        cut.path().as_os_str(),
        "-o".as_ref(),
        forged.as_os_str(),
    ]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = verify_signed(&forged);
    assert!(!ok && stderr.contains("not by the host's key"), "{stderr}");
    // An unsigned checkpoint is refused when the host's key is asked for.
    let mut unsigned = taken.clone();
    let fields = unsigned.as_object_mut().expect("object");
    fields.remove("key");
    fields.remove("signature");
    std::fs::write(&forged, unsigned.to_string()).expect("write");
    let (ok, _, stderr) = verify_signed(&forged);
    assert!(!ok && stderr.contains("not signed"), "{stderr}");
}

#[test]
fn the_conformance_kit_passes_good_drivers_and_names_what_fails() {
    for driver in [&drivers().haproxy, &drivers().acme_adc] {
        let (ok, stdout, stderr) = run(&["driver".as_ref(), "check".as_ref(), driver.as_os_str()]);
        assert!(ok, "{stdout}{stderr}");
        assert!(stdout.contains(", 0 failed"), "{stdout}");
        assert!(
            stdout.contains("ok    translate accepts TCP with ROUND_ROBIN"),
            "{stdout}"
        );
    }
    // The looper spins in `select`: the kit says so and exits non-zero, in words and in JSON.
    let looper = &lbaas_tests::fixtures().looper;
    let (ok, stdout, stderr) = run(&["driver".as_ref(), "check".as_ref(), looper.as_os_str()]);
    assert!(!ok, "{stdout}");
    assert!(
        stdout.contains("FAIL  select on 1 candidates is safe and deterministic")
            && stdout.contains("deadline"),
        "{stdout}"
    );
    assert!(stderr.contains("fails"), "{stderr}");
    let (ok, stdout, _) = run(&[
        "driver".as_ref(),
        "check".as_ref(),
        "--json".as_ref(),
        looper.as_os_str(),
    ]);
    assert!(!ok);
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json report");
    assert_eq!(report["driver"], "looper");
    assert!(
        report["checks"]
            .as_array()
            .expect("checks")
            .iter()
            .any(|c| c["failure"].is_string())
    );
}

/// The first run of a machine without HAProxy: `lbaasd serve` says so at start in plain words,
/// and a load balancer that needs a new device ends `ERROR` with the same words in its fault,
/// not an agent's backtrace.
#[test]
fn a_missing_haproxy_is_named_at_start_and_in_the_fault() {
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = lbaas_tests::driver_dir();
    let agent = lbaas_tests::process::host_binary("lbaas-agent");
    let server = Server::start(
        data.path(),
        &driver_dir,
        &[
            "--haproxy",
            "/nonexistent/haproxy",
            "--agent",
            agent.to_str().expect("agent path"),
        ],
    );
    let log = server.log().join("\n");
    assert!(
        log.contains("cannot run /nonexistent/haproxy")
            && log.contains("apt-get install haproxy")
            && log.contains("--haproxy PATH"),
        "{log}"
    );
    assert!(
        log.contains("API:       http://")
            && log.contains("dashboard: http://")
            && log.contains("metrics:   http://")
            && log.contains("data:      ")
            && log.contains("secrets:   http://")
            && log.contains("secrets.key"),
        "the start names where things are: {log}"
    );

    let client = lbaas_tests::control::Client::new(&server.url).as_project("p");
    client.create(
        "/v2/admin/networks",
        &serde_json::json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "127.0.90.0/24"}]}}),
    );
    // No device registered: the HAProxy driver asks for a new one.
    let created = client.create(
        "/v2/lbaas/loadbalancers",
        &serde_json::json!({"loadbalancer": {"name": "first", "vip_subnet_id": "subnet-vip",
                "provider": "haproxy", "listeners": [{"protocol": "TCP", "protocol_port": 80}]}}),
    );
    let lb = client.settle(created["loadbalancer"]["id"].as_str().expect("id"));
    assert_eq!(lb["provisioning_status"], "ERROR", "{lb}");
    let fault = lb["fault"].as_str().unwrap_or_default();
    assert!(
        fault.contains("HAProxy was not found") && fault.contains("--haproxy PATH"),
        "{fault}"
    );
    assert!(!fault.contains("libc_start_main"), "{fault}");
}

/// An OTLP collector on loopback: every span `lbaasd` exports to it, decoded.
struct Collector {
    url: String,
    spans: Arc<Mutex<Vec<Span>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Collector {
    fn start() -> Self {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind the collector");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let kept = spans.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP export");
                let mut kept = kept.lock().expect("spans");
                for resource in request.resource_spans {
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans);
                    }
                }
                ([("content-type", "application/x-protobuf")], Vec::new())
            }),
        );
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            spans,
            _runtime: runtime,
        }
    }

    /// The spans received so far.
    fn spans(&self) -> Vec<Span> {
        self.spans.lock().expect("spans").clone()
    }
}

/// A span's string attribute.
fn attribute<'a>(span: &'a Span, key: &str) -> Option<&'a str> {
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(text) => Some(text.as_str()),
            _ => None,
        }
    })
}

/// With `--otlp-endpoint`, a create is one trace: the API request, the job it queued (run
/// later, on the worker), and inside the job the driver's calls and the device calls they
/// made, each carrying the load balancer, driver and version.
#[test]
fn a_create_is_one_trace_from_the_request_to_the_device() {
    let collector = Collector::start();
    let appliance = FakeAppliance::start();
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = tempfile::tempdir().expect("driver dir");
    std::fs::copy(&drivers().haproxy, driver_dir.path().join("haproxy.wasm")).expect("copy");
    let server = Server::start(
        data.path(),
        driver_dir.path(),
        &["--otlp-endpoint", &collector.url],
    );
    let admin = Client::new(&server.url);
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public",
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.61.0/24"}]}}),
    );
    let device = admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                "management_url": appliance.url(), "capacity": 10}}),
    );
    let device_id = id_of(&device, "device");
    let lb = admin.create_loadbalancer("haproxy", "traced");
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    let lb_id = lb["id"].as_str().expect("id");

    // The batch exporter sends every few seconds: wait for the job's device call to arrive.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (job, spans) = loop {
        let spans = collector.spans();
        let job = spans
            .iter()
            .find(|s| s.name == "job" && attribute(s, "loadbalancer") == Some(lb_id))
            .cloned();
        if let Some(job) = job {
            let trace = &job.trace_id;
            if spans
                .iter()
                .any(|s| &s.trace_id == trace && s.name == "device.call")
            {
                break (job, spans);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no trace of the job arrived: {spans:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let trace: Vec<&Span> = spans
        .iter()
        .filter(|s| s.trace_id == job.trace_id)
        .collect();
    let by_id = |id: &[u8]| trace.iter().find(|s| s.span_id == id).copied();
    // The job continues the trace of the request that created the load balancer.
    let request = by_id(&job.parent_span_id).expect("the job's parent is in its trace");
    assert_eq!(request.name, "POST /v2/lbaas/loadbalancers", "{request:#?}");
    assert_eq!(
        attribute(request, "http.route"),
        Some("/v2/lbaas/loadbalancers")
    );
    // Inside the job: the driver's translate and apply, under the job, naming the version...
    let calls: Vec<&&Span> = trace.iter().filter(|s| s.name == "driver.call").collect();
    for export in ["translate", "apply"] {
        let call = calls
            .iter()
            .find(|s| attribute(s, "export") == Some(export) && s.parent_span_id == job.span_id)
            .unwrap_or_else(|| panic!("no {export} call under the job: {trace:#?}"));
        assert_eq!(attribute(call, "driver"), Some("haproxy"));
        assert_eq!(attribute(call, "version"), Some("0.1.0"));
        assert_eq!(attribute(call, "outcome"), Some("ok"));
    }
    // ...and the device calls inside the driver calls, naming the device.
    let device_calls: Vec<&&Span> = trace.iter().filter(|s| s.name == "device.call").collect();
    assert!(!device_calls.is_empty());
    for call in device_calls {
        let parent = by_id(&call.parent_span_id).expect("a device call's parent");
        assert_eq!(parent.name, "driver.call", "{call:#?}");
        assert_eq!(attribute(call, "device"), Some(device_id.as_str()));
        assert_eq!(attribute(call, "outcome"), Some("Ok"));
    }
    // A request that queues no job is a trace of its own.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "POST /v2/admin/devices" && s.trace_id != job.trace_id)
    );
    drop(server);
}
