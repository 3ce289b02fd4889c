//! Driver versions changed while the host serves, through the admin API only: broken versions
//! are refused and the running one keeps serving; a new HAProxy driver version is activated and
//! rolled back three times while eight clients create and delete load balancers, without a
//! single failed request; drain, disable, delete; the active version survives a restart.

use lbaas_tests::wait_until;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::api::auth::TokenGrant;
use lbaas_host::integrity::{self, Trust};
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane, Options};
use lbaas_tests::lifecycle_fixtures;
use serde_json::{Value, json};

fn auth() -> Auth {
    let grant = |project: &str, role: &str| TokenGrant {
        project_id: project.into(),
        roles: vec![role.into()],
    };
    Auth::Tokens(HashMap::from([
        ("admin-token".to_owned(), grant("admin-project", "admin")),
        (
            "tenant-token".to_owned(),
            grant("tenant", "load-balancer_member"),
        ),
    ]))
}

/// A vendor key the host trusts, and a signature of `file` made with it.
struct Vendor {
    _dir: tempfile::TempDir,
    secret: std::path::PathBuf,
    public: std::path::PathBuf,
}

impl Vendor {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("key dir");
        let (secret, public) = integrity::keygen().expect("keygen");
        let secret_file = dir.path().join("vendor.key");
        let public_file = dir.path().join("vendor.pub");
        std::fs::write(&secret_file, secret).expect("write key");
        std::fs::write(&public_file, public).expect("write key");
        Self {
            _dir: dir,
            secret: secret_file,
            public: public_file,
        }
    }

    fn sign(&self, bytes: &[u8]) -> String {
        integrity::sign(&self.secret, bytes).expect("sign")
    }
}

fn start(data: &std::path::Path, vendor: &Vendor) -> ControlPlane {
    ControlPlane::start_with_options(
        data,
        auth(),
        Options {
            trust: Trust::new(std::slice::from_ref(&vendor.public), false, &[]).expect("trust"),
            ..Options::default()
        },
    )
}

/// The active version of `driver`.
fn active(admin: &Client, driver: &str) -> String {
    let (status, body) = admin.get(&format!("/v2/admin/drivers/{driver}"));
    assert_eq!(status, 200, "{body}");
    body["driver"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn refused_upload(admin: &Client, bytes: Vec<u8>, headers: &[(&str, &str)], expected: &str) {
    let (status, body) = admin.upload("/v2/admin/drivers", bytes, headers);
    assert_eq!(status, 400, "{body}");
    let message = body["faultstring"].as_str().unwrap_or_default();
    assert!(
        message.contains(expected),
        "expected {expected:?} in {message:?}"
    );
}

fn audit(admin: &Client, query: &str) -> Vec<Value> {
    let (status, body) = admin.get(&format!("/v2/admin/audit?{query}"));
    assert_eq!(status, 200, "{body}");
    body["audit"].as_array().cloned().unwrap_or_default()
}

fn lb_body(name: &str, flavor: &str) -> Value {
    json!({"loadbalancer": {"name": name, "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
            "listeners": [{"protocol": "TCP", "protocol_port": 443}]}})
}

/// What the eight clients saw.
#[derive(Default)]
struct Churn {
    cycles: usize,
    failures: Vec<String>,
    /// Placements per driver version.
    placed_by: BTreeMap<String, usize>,
}

/// One client: create, wait for ACTIVE, read the placement, delete, wait until gone — until
/// `stop`. Anything else is a failure.
fn churn(client: &Client, flavor: &str, n: usize, stop: &AtomicBool, seen: &Mutex<Churn>) {
    let fail = |what: String| seen.lock().expect("lock").failures.push(what);
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let (status, created) = client.post(
            "/v2/lbaas/loadbalancers",
            &lb_body(&format!("churn-{n}-{i}"), flavor),
        );
        if status != 201 {
            fail(format!("create answered {status}: {created}"));
            continue;
        }
        let id = created["loadbalancer"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let lb = client.settle(&id);
        if lb["provisioning_status"] != "ACTIVE" {
            fail(format!("load balancer {id} ended {lb}"));
            continue;
        }
        let (status, placement) = client.get(&format!("/v2/admin/loadbalancers/{id}/placement"));
        let version = placement["placement"]["placed_by"]["version"]
            .as_str()
            .map(str::to_owned);
        match (status, version) {
            (200, Some(version)) => {
                *seen
                    .lock()
                    .expect("lock")
                    .placed_by
                    .entry(version)
                    .or_default() += 1
            }
            _ => fail(format!("placement of {id} answered {status}: {placement}")),
        }
        let (status, body) = client.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"));
        if status != 204 {
            fail(format!("delete of {id} answered {status}: {body}"));
            continue;
        }
        let gone = client.settle(&id);
        if !gone.is_null() {
            fail(format!("load balancer {id} was not deleted: {gone}"));
            continue;
        }
        seen.lock().expect("lock").cycles += 1;
    }
}

#[test]
fn driver_versions_change_while_the_host_serves() {
    let data = tempfile::tempdir().expect("data dir");
    let vendor = Vendor::new();
    let fixtures = lifecycle_fixtures();
    let agent = FakeAppliance::start();
    let plane = start(data.path(), &vendor);
    // Admins only; the clients act with both roles (the placement record is an admin view).
    let admin = plane.client(Some("admin-token"));
    let tenant = plane.client(Some("tenant-token"));
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "127.0.60.0/22"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                "management_url": agent.url(), "capacity": 10000}}),
    );
    let profile = admin.create(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": "hp", "provider_name": "haproxy",
                "flavor_data": "{\"maxconn\": 20000}"}}),
    );
    let flavor = admin.create(
        "/v2/lbaas/flavors",
        &json!({"flavor": {"name": "low-cost-lb", "enabled": true,
                "flavor_profile_id": profile["flavorprofile"]["id"]}}),
    );
    let flavor = flavor["flavor"]["id"].as_str().expect("flavor").to_owned();
    assert_eq!(active(&admin, "haproxy"), "0.1.0");

    // Only admins change drivers.
    let next = std::fs::read(&fixtures.haproxy_next).expect("haproxy-next");
    let (status, _) = tenant.upload("/v2/admin/drivers", next.clone(), &[]);
    assert_eq!(status, 403);

    // Broken versions are refused before they are stored; the running version stays.
    let read = |path: &std::path::Path| std::fs::read(path).expect("fixture");
    refused_upload(
        &admin,
        read(&fixtures.broken_caps),
        &[],
        "capabilities are broken in this build",
    );
    refused_upload(
        &admin,
        read(&fixtures.haproxy_picky),
        &[],
        "picky refuses flavor",
    );
    refused_upload(
        &admin,
        read(&fixtures.future_wit),
        &[],
        "lbaas:driver@9.0.0",
    );
    let forged = vendor.sign(b"some other bytes");
    refused_upload(
        &admin,
        next.clone(),
        &[("x-driver-signature", &forged)],
        "signature",
    );
    refused_upload(
        &admin,
        b"not a component".to_vec(),
        &[],
        "not a WebAssembly file",
    );
    let (status, body) = admin.upload("/v2/admin/drivers", Vec::new(), &[]);
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        audit(&admin, "function=lifecycle.refused").len(),
        5,
        "each refusal is audited"
    );
    assert_eq!(active(&admin, "haproxy"), "0.1.0");
    let (_, record) = admin.get("/v2/admin/drivers/haproxy");
    assert_eq!(
        record["driver"]["versions"].as_array().map(Vec::len),
        Some(1)
    );

    // The good version, signed: stored, inactive.
    let signature = vendor.sign(&next);
    let (status, uploaded) = admin.upload(
        "/v2/admin/drivers",
        next.clone(),
        &[("x-driver-signature", &signature)],
    );
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["version"]["version"], "0.1.1");
    assert_eq!(uploaded["version"]["state"], "INACTIVE");
    assert!(uploaded["version"]["signed_by"].is_string(), "{uploaded}");
    assert_eq!(active(&admin, "haproxy"), "0.1.0");
    let (status, _) = admin.upload(
        "/v2/admin/drivers",
        next.clone(),
        &[("x-driver-signature", &signature)],
    );
    assert_eq!(status, 409, "uploaded once");

    // Eight clients create and delete load balancers while the version changes six times.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Churn::default()));
    let clients: Vec<_> = (0..8)
        .map(|n| {
            let (client, flavor, stop, seen) =
                (admin.clone(), flavor.clone(), stop.clone(), seen.clone());
            std::thread::spawn(move || churn(&client, &flavor, n, &stop, &seen))
        })
        .collect();
    let started = Instant::now();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(2500));
        let (status, body) = admin.post(
            "/v2/admin/drivers/haproxy/versions/0.1.1/activate",
            &json!({}),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["driver"]["version"], "0.1.1");
        std::thread::sleep(Duration::from_millis(2500));
        let (status, body) = admin.post("/v2/admin/drivers/haproxy/rollback", &json!({}));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["driver"]["version"], "0.1.0");
    }
    std::thread::sleep(Duration::from_secs(30).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let seen = seen.lock().expect("lock");
    assert!(
        seen.failures.is_empty(),
        "{} failures, the first: {:#?}",
        seen.failures.len(),
        &seen.failures[..seen.failures.len().min(5)]
    );
    assert!(seen.cycles >= 16, "too few cycles: {}", seen.cycles);
    assert_eq!(
        seen.placed_by.keys().collect::<Vec<_>>(),
        ["0.1.0", "0.1.1"],
        "both versions placed load balancers: {:?}",
        seen.placed_by
    );
    assert_eq!(
        seen.placed_by.values().sum::<usize>(),
        seen.cycles,
        "every placement names its version"
    );
    println!(
        "churn: {} create/delete cycles, placements by version {:?}",
        seen.cycles, seen.placed_by
    );
    drop(seen);
    // The folder's version at start, then three activations.
    let activations = audit(&admin, "driver=haproxy&function=lifecycle.activate");
    assert_eq!(activations.len(), 4, "{activations:#?}");
    assert_eq!(
        audit(&admin, "driver=haproxy&function=lifecycle.rollback").len(),
        3
    );
    let (_, all) = admin.get("/v2/lbaas/loadbalancers");
    assert_eq!(
        all["loadbalancers"],
        json!([]),
        "every load balancer ended DELETED"
    );

    // A canary: half of the new placements go to 0.1.1, which serves what it placed.
    let (status, body) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/canary",
        &json!({"canary": {"percent": 50}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["driver"]["version"], "0.1.0",
        "the active version stays"
    );
    assert_eq!(body["driver"]["canary"]["percent"], 50);
    let placed: Vec<(String, String)> = (0..4)
        .map(|i| {
            let lb = admin.create(
                "/v2/lbaas/loadbalancers",
                &lb_body(&format!("canary-{i}"), &flavor),
            );
            let id = lb["loadbalancer"]["id"].as_str().expect("id").to_owned();
            assert_eq!(admin.settle(&id)["provisioning_status"], "ACTIVE");
            let (_, placement) = admin.get(&format!("/v2/admin/loadbalancers/{id}/placement"));
            let version = placement["placement"]["placed_by"]["version"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            (id, version)
        })
        .collect();
    let canaries = placed.iter().filter(|(_, v)| v == "0.1.1").count();
    assert_eq!(canaries, 2, "{placed:?}");
    for bad in [json!({"canary": {"percent": 0}}), json!({"percent": 5})] {
        let (status, body) = admin.post("/v2/admin/drivers/haproxy/versions/0.1.1/canary", &bad);
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = admin.delete("/v2/admin/drivers/haproxy/versions/0.1.1");
    assert_eq!(status, 409, "a running canary stays: {body}");
    // Promoted, it serves everything; rolled back, 0.1.0 does again.
    let (status, body) = admin.post("/v2/admin/drivers/haproxy/promote", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["driver"]["version"], "0.1.1");
    assert!(body["driver"]["canary"].is_null(), "{body}");
    let (status, _) = admin.post("/v2/admin/drivers/haproxy/promote", &json!({}));
    assert_eq!(status, 409, "no canary left");
    let (status, _) = admin.post("/v2/admin/drivers/haproxy/rollback", &json!({}));
    assert_eq!(status, 200);
    // A canary ended by rollback leaves the active version alone.
    let (status, _) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/canary",
        &json!({"canary": {"percent": 25}}),
    );
    assert_eq!(status, 200);
    let (status, body) = admin.post("/v2/admin/drivers/haproxy/rollback", &json!({}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["driver"]["version"], "0.1.0");
    assert!(body["driver"]["canary"].is_null(), "{body}");
    for (id, _) in &placed {
        let (status, _) = admin.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"));
        assert_eq!(status, 204);
        assert!(admin.settle(id).is_null());
    }

    // The first activation of 0.1.1 converted 0.1.0's state (its `migrate-state` ran, as a
    // 0.2.0 contract driver); a version whose migration fails is refused, the old one stays.
    let migrated = audit(&admin, "driver=haproxy&version=0.1.1&function=state.set");
    assert!(
        migrated
            .iter()
            .any(|r| r["target"] == "migrated-from/0.1.0"),
        "{migrated:#?}"
    );
    let stuck = std::fs::read(&fixtures.haproxy_stuck).expect("haproxy-stuck");
    let signature = vendor.sign(&stuck);
    let (status, body) = admin.upload(
        "/v2/admin/drivers",
        stuck,
        &[("x-driver-signature", &signature)],
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.2/activate",
        &json!({}),
    );
    assert_eq!(status, 400, "{body}");
    let message = body["faultstring"].as_str().unwrap_or_default();
    assert!(
        message.contains("state migration failed")
            && message.contains("fixture migration always fails"),
        "{message}"
    );
    assert_eq!(active(&admin, "haproxy"), "0.1.0");
    let (status, _) = admin.delete("/v2/admin/drivers/haproxy/versions/0.1.2");
    assert_eq!(status, 204);

    // Drain: no new placements; the load balancers there keep working.
    let kept = admin.create("/v2/lbaas/loadbalancers", &lb_body("kept", &flavor));
    let kept_id = kept["loadbalancer"]["id"].as_str().expect("id").to_owned();
    assert_eq!(admin.settle(&kept_id)["provisioning_status"], "ACTIVE");
    let (status, drained) = admin.post("/v2/admin/drivers/haproxy/drain", &json!({}));
    assert_eq!(status, 200, "{drained}");
    assert_eq!(drained["driver"]["draining"], true);
    let held = admin.create("/v2/lbaas/loadbalancers", &lb_body("held", &flavor));
    let held = admin.settle(held["loadbalancer"]["id"].as_str().expect("id"));
    assert_eq!(held["provisioning_status"], "ERROR", "{held}");
    let (status, _) = admin.put(
        &format!("/v2/lbaas/loadbalancers/{kept_id}"),
        &json!({"loadbalancer": {"description": "still served"}}),
    );
    assert_eq!(status, 200);
    assert_eq!(admin.settle(&kept_id)["provisioning_status"], "ACTIVE");
    let (status, _) = admin.post("/v2/admin/drivers/haproxy/undrain", &json!({}));
    assert_eq!(status, 200);
    let again = admin.create("/v2/lbaas/loadbalancers", &lb_body("again", &flavor));
    let again = admin.settle(again["loadbalancer"]["id"].as_str().expect("id"));
    assert_eq!(again["provisioning_status"], "ACTIVE", "{again}");

    // Disable and delete: the active version stays put while load balancers need it.
    let (status, body) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.0/disable",
        &json!({}),
    );
    assert_eq!(status, 409, "the active version: {body}");
    let (status, body) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/disable",
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/activate",
        &json!({}),
    );
    assert_eq!(status, 409, "disabled: {body}");
    let (status, _) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/enable",
        &json!({}),
    );
    assert_eq!(status, 200);
    let (status, body) = admin.delete("/v2/admin/drivers/haproxy/versions/0.1.0");
    assert_eq!(status, 409, "load balancers need it: {body}");
    let (status, body) = admin.post(
        "/v2/admin/drivers/haproxy/versions/nope/activate",
        &json!({}),
    );
    assert_eq!(status, 404, "{body}");

    // The last activation survives a restart, even with the old file still in the folder.
    let (status, _) = admin.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/activate",
        &json!({}),
    );
    assert_eq!(status, 200);
    plane.stop();
    let plane = start(data.path(), &vendor);
    let admin = plane.client(Some("admin-token"));
    assert_eq!(active(&admin, "haproxy"), "0.1.1");
    let (_, kept) = admin.get(&format!("/v2/lbaas/loadbalancers/{kept_id}"));
    assert_eq!(kept["loadbalancer"]["provisioning_status"], "ACTIVE");
    // An inactive version no load balancer needs can go.
    let (status, body) = admin.delete("/v2/admin/drivers/haproxy/versions/0.1.0");
    assert_eq!(status, 204, "{body}");
    let (_, record) = admin.get("/v2/admin/drivers/haproxy");
    assert_eq!(
        record["driver"]["versions"].as_array().map(Vec::len),
        Some(1)
    );
    let (_, verified) = admin.get("/v2/admin/audit/verify");
    assert_eq!(verified["intact"], true, "{verified}");
    plane.stop();
}

#[test]
fn the_driver_folder_activates_new_files_and_refuses_broken_ones() {
    let data = tempfile::tempdir().expect("data dir");
    let folder = tempfile::tempdir().expect("driver folder");
    let fixtures = lifecycle_fixtures();
    let copy = |from: &std::path::Path, name: &str| {
        // Written aside and renamed in, as a deployment tool would: never seen half-written.
        let partial = folder.path().join(format!("{name}.partial"));
        std::fs::copy(from, &partial).expect("copy");
        std::fs::rename(&partial, folder.path().join(name)).expect("rename");
    };
    copy(&lbaas_tests::drivers().haproxy, "haproxy.wasm");
    copy(&lbaas_tests::drivers().acme_adc, "acme-adc.wasm");
    let server = lbaas_tests::process::Server::start(
        data.path(),
        folder.path(),
        &["--driver-poll", "100ms", "--no-spawn"],
    );
    let admin = Client::new(&server.url).as_project("operators");
    assert_eq!(active(&admin, "haproxy"), "0.1.0");

    // A new version dropped in is uploaded and activated.
    copy(&fixtures.haproxy_next, "haproxy-0.1.1.wasm");
    wait_until("haproxy 0.1.1 is active", || {
        active(&admin, "haproxy") == "0.1.1"
    });
    let (_, record) = admin.get("/v2/admin/drivers/haproxy");
    let versions = record["driver"]["versions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(versions.len(), 2, "{record}");
    assert!(
        versions[1]["source"]
            .as_str()
            .is_some_and(|s| s.starts_with("directory ") && s.ends_with("haproxy-0.1.1.wasm")),
        "{record}"
    );

    // Broken files are refused and logged; the running version stays.
    std::fs::write(
        folder.path().join("corrupt.wasm"),
        b"\0asm\x0d\0\x01\0garbage",
    )
    .expect("write");
    copy(&fixtures.future_wit, "haproxy-9.wasm");
    wait_until("both broken files are refused", || {
        audit(&admin, "function=lifecycle.refused").len() == 2
    });
    let refusals = audit(&admin, "function=lifecycle.refused");
    let details: Vec<String> = refusals
        .iter()
        .map(|r| format!("{} {}", r["target"], r["detail"]))
        .collect();
    assert!(
        details.iter().any(|d| d.contains("corrupt.wasm")),
        "{details:#?}"
    );
    assert!(
        details
            .iter()
            .any(|d| d.contains("haproxy-9.wasm") && d.contains("lbaas:driver@9.0.0")),
        "{details:#?}"
    );
    let log = server.log();
    assert!(
        log.iter()
            .any(|l| l.contains("corrupt.wasm") && l.contains("driver file refused")),
        "{log:#?}"
    );
    assert_eq!(active(&admin, "haproxy"), "0.1.1");
    // Nothing is retried until the file changes: a later scan, seen to run because it refuses
    // a third file (the newest, so the last a scan looks at), refuses the first two no more.
    copy(&fixtures.broken_caps, "broken-caps.wasm");
    wait_until("the third broken file is refused", || {
        audit(&admin, "function=lifecycle.refused").len() >= 3
    });
    let refused: Vec<String> = audit(&admin, "function=lifecycle.refused")
        .iter()
        .map(|r| r["target"].to_string())
        .collect();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    for file in ["corrupt.wasm", "haproxy-9.wasm", "broken-caps.wasm"] {
        assert_eq!(
            refused.iter().filter(|t| t.contains(file)).count(),
            1,
            "{file}: {refused:#?}"
        );
    }
}

#[test]
fn a_driver_built_against_contract_0_1_keeps_serving() {
    let data = tempfile::tempdir().expect("data dir");
    let vendor = Vendor::new();
    let agent = FakeAppliance::start();
    let plane = start(data.path(), &vendor);
    let admin = plane.client(Some("admin-token"));
    // The bundled drivers follow the newest contract.
    let (_, haproxy) = admin.get("/v2/admin/drivers/haproxy");
    assert_eq!(haproxy["driver"]["contract"], "lbaas:driver@0.5.0");

    let legacy = std::fs::read(&lifecycle_fixtures().frozen_0_1).expect("frozen fixture");
    let (status, uploaded) = admin.upload("/v2/admin/drivers?activate=true", legacy, &[]);
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["version"]["wit"], "lbaas:driver@0.1.0");
    assert_eq!(uploaded["driver"]["contract"], "lbaas:driver@0.1.0");
    assert_eq!(uploaded["version"]["state"], "ACTIVE");

    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "127.0.61.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "legacy-1", "kind": "virtual", "driver": "legacy",
                "management_url": agent.url(), "capacity": 10}}),
    );
    let created = admin.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "old-contract", "vip_subnet_id": "subnet-vip",
                "provider": "legacy", "listeners": [{"protocol": "TCP", "protocol_port": 80}]}}),
    );
    let lb = admin.settle(created["loadbalancer"]["id"].as_str().expect("id"));
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    assert_eq!(lb["provider"], "legacy");
    plane.stop();
}

/// A driver name belongs to the key that signed its first trusted version: a version signed by
/// another trusted key, or unsigned, is refused until an admin hands the name over (audited).
#[test]
fn a_name_belongs_to_the_key_that_first_signed_it() {
    let data = tempfile::tempdir().expect("temp dir");
    let (first, second) = (Vendor::new(), Vendor::new());
    let plane = ControlPlane::start_with_options(
        data.path(),
        auth(),
        Options {
            trust: Trust::new(&[first.public.clone(), second.public.clone()], false, &[])
                .expect("trust"),
            ..Options::default()
        },
    );
    let admin = plane.client(Some("admin-token"));
    let tenant = plane.client(Some("tenant-token"));
    let fixtures = lifecycle_fixtures();
    let next = std::fs::read(&fixtures.haproxy_next).expect("fixture");
    let stuck = std::fs::read(&fixtures.haproxy_stuck).expect("fixture");

    let (status, uploaded) = admin.upload(
        "/v2/admin/drivers",
        next.clone(),
        &[("x-driver-signature", &first.sign(&next))],
    );
    assert_eq!(status, 201, "{uploaded}");
    let owner = uploaded["version"]["signed_by"]
        .as_str()
        .expect("signed")
        .to_owned();
    let (_, record) = admin.get("/v2/admin/drivers/haproxy");
    assert_eq!(record["driver"]["publisher"], owner.as_str());

    // Another trusted key, and no key at all, cannot publish under the name.
    let (status, body) = admin.upload(
        "/v2/admin/drivers",
        stuck.clone(),
        &[("x-driver-signature", &second.sign(&stuck))],
    );
    assert_eq!(status, 400, "{body}");
    let refusal = body["faultstring"].as_str().unwrap_or_default().to_owned();
    assert!(
        refusal.contains(&format!("belongs to the publisher key {owner}")),
        "{refusal}"
    );
    let other = refusal
        .split("signed by ")
        .nth(1)
        .and_then(|rest| rest.get(..16))
        .expect("the refusal names the other key")
        .to_owned();
    assert_ne!(other, owner);
    refused_upload(&admin, stuck.clone(), &[], "this component is unsigned");

    // Only an admin hands the name over, and it is on record.
    let handover = json!({"publisher": other});
    assert_eq!(
        tenant
            .put("/v2/admin/drivers/haproxy/publisher", &handover)
            .0,
        403
    );
    let (status, body) = admin.put("/v2/admin/drivers/haproxy/publisher", &handover);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["driver"]["publisher"], other.as_str());
    let (status, _) = admin.put(
        "/v2/admin/drivers/haproxy/publisher",
        &json!({"publisher": "not a key"}),
    );
    assert_eq!(status, 400);
    let records = audit(&admin, "driver=haproxy&function=lifecycle.publisher");
    assert_eq!(records.len(), 1, "{records:?}");
    assert!(
        records[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&owner) && d.contains(&other)),
        "{records:?}"
    );
    let (status, body) = admin.upload(
        "/v2/admin/drivers",
        stuck.clone(),
        &[("x-driver-signature", &second.sign(&stuck))],
    );
    assert_eq!(status, 201, "{body}");
    plane.stop();
}

/// An L7 policy that rejects: what contracts before 0.3.0 cannot carry.
fn reject_policy() -> lbaas_host::runtime::L7Policy {
    lbaas_host::runtime::L7Policy {
        id: "p1".into(),
        name: String::new(),
        action: lbaas_host::runtime::L7Action::Reject,
        position: 1,
        redirect_pool_id: None,
        redirect_url: None,
        redirect_prefix: None,
        redirect_http_code: None,
        rules: Vec::new(),
        admin_state_up: true,
    }
}

/// A driver built against contract 0.2.0 (as the bundled drivers were before 0.3.0) is served
/// through the legacy types: every export, `status` and `migrate-state` included; a load
/// balancer with L7 policies, which 0.2.0 cannot carry, is refused before the call.
#[test]
fn a_driver_built_against_contract_0_2_keeps_serving() {
    use lbaas_host::runtime::{DeviceKind, Error, Protocol};
    use lbaas_tests::model::{device, listener, web_shop};

    let data = tempfile::tempdir().expect("data dir");
    let host = lbaas_tests::TestHost::open(data.path());
    let driver = host.load(&lifecycle_fixtures().frozen_0_2);
    assert_eq!(driver.contract(), "lbaas:driver@0.2.0");
    assert!(driver.capabilities().features.l7_actions.is_empty());
    assert!(driver.migrate_state("0.1.0").expect("migrate-state runs"));

    let mut lb = web_shop("lb-legacy", "127.0.0.20");
    let on = device("legacy-1", DeviceKind::Virtual, 4, None);
    let config = driver
        .translate(&lb, &on)
        .expect("translate through the legacy types");
    assert!(config.body.contains("lb-legacy"), "{}", config.body);
    let status = driver
        .status(&lb, &on)
        .expect("status through the legacy types");
    let members: usize = lb.pools.iter().map(|p| p.members.len()).sum();
    assert_eq!(status.members.len(), members);

    let mut http = listener("l7", Protocol::Http, 8081, None);
    http.l7_policies.push(reject_policy());
    lb.listeners.push(http);
    match driver.translate(&lb, &on) {
        Err(refused @ Error::Refused { .. }) => {
            let message = refused.to_string();
            assert!(
                message.contains("L7 policies cannot be sent to a driver of contract"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A driver built against contract 0.3.0 (as the bundled drivers were before 0.4.0) is served
/// through its own types, L7 policies included; it supports no TLS, whatever monitor it was
/// sent before, and a load balancer that terminates TLS is refused before the call: sent
/// without its certificates, the device would serve plain HTTP where the tenant asked for TLS.
#[test]
fn a_driver_built_against_contract_0_3_keeps_serving() {
    use lbaas_host::runtime::{
        ClientAuthentication, DeviceKind, Error, ListenerTls, Protocol, TlsFile,
    };
    use lbaas_tests::model::{device, listener, web_shop};

    let data = tempfile::tempdir().expect("data dir");
    let host = lbaas_tests::TestHost::open(data.path());
    let driver = host.load(&lifecycle_fixtures().frozen_0_3);
    assert_eq!(driver.contract(), "lbaas:driver@0.3.0");
    // The API answers 501 for a monitor's http_version or domain_name, which 0.3.0 lacks.
    assert!(driver.contract_at_least("lbaas:driver@0.3.0"));
    assert!(!driver.contract_at_least("lbaas:driver@0.4.0"));
    let features = &driver.capabilities().features;
    assert!(features.tls.is_empty(), "{features:?}");
    assert_eq!(features.health_monitor_types.len(), 7, "{features:?}");
    assert!(driver.migrate_state("0.2.0").expect("migrate-state runs"));

    let mut lb = web_shop("lb-legacy", "127.0.0.20");
    let mut http = listener("l7", Protocol::Http, 8081, None);
    http.l7_policies.push(reject_policy());
    lb.listeners.push(http);
    let on = device("legacy-1", DeviceKind::Virtual, 4, None);
    let config = driver
        .translate(&lb, &on)
        .expect("translate through the 0.3.0 types");
    assert!(config.body.contains("and 1 L7 policies"), "{}", config.body);
    driver.apply(&lb, &on, &config).expect("apply");

    let mut terminated = listener("tls", Protocol::TerminatedHttps, 8443, None);
    terminated.tls = Some(ListenerTls {
        default_certificate: Some(TlsFile {
            handle: "h".into(),
            certificates: Vec::new(),
        }),
        sni_certificates: Vec::new(),
        client_authentication: ClientAuthentication::None,
        client_ca: None,
        client_crl: None,
        ciphers: None,
        versions: Vec::new(),
        alpn_protocols: Vec::new(),
        hsts: None,
    });
    lb.listeners.push(terminated);
    for refused in [
        driver.translate(&lb, &on).map(|_| ()),
        driver.apply(&lb, &on, &config),
    ] {
        match refused {
            Err(refused @ Error::Refused { .. }) => {
                let message = refused.to_string();
                assert!(
                    message
                        .contains("TLS cannot be sent to a driver of contract lbaas:driver@0.3.0"),
                    "{message}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

// The same suite with its hosts on PostgreSQL.
lbaas_tests::also_on_postgres!(
    driver_versions_change_while_the_host_serves,
    the_driver_folder_activates_new_files_and_refuses_broken_ones,
    a_driver_built_against_contract_0_1_keeps_serving,
    a_name_belongs_to_the_key_that_first_signed_it,
    a_driver_built_against_contract_0_2_keeps_serving,
);
