//! Several hosts on one PostgreSQL database: the backends keep the storage contracts, hosts
//! share one write lock, one revision and one audit chain, a job is held by one host at a time
//! and taken over when its host dies, and driver lifecycle steps taken on one host hold on the
//! others. Each test starts its own PostgreSQL (`lbaas_tests::postgres`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::audit::{Event, Outcome};
use lbaas_host::builder::StoreChoice;
use lbaas_host::model::Job;
use lbaas_host::store::{Batch, Fleet as _, StoreExt as _};
use lbaas_postgres::{Database, PgAudit, PgStateStore, PgStore};
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane, Options, id_of};
use lbaas_tests::process::Server;
use lbaas_tests::{drivers, postgres};
use serde_json::{Value, json};

fn open(url: &str, host: &str, lease: Duration) -> Arc<Database> {
    Arc::new(Database::open(url, host, lease).expect("open the database"))
}

fn event(function: &str) -> Event {
    Event {
        driver: "haproxy".into(),
        version: "0.1.0".into(),
        sha256: "ab".into(),
        function: function.into(),
        target: Some("key".into()),
        bytes: 3,
        outcome: Outcome::Ok,
        duration_us: 7,
        detail: None,
    }
}

fn job(id: &str) -> Job {
    Job {
        id: id.into(),
        loadbalancer_id: id.into(),
        created_at: "now".into(),
        attempts: 0,
    }
}

/// Waits (generously) until `done`; panics naming `what`.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_postgres_backends_keep_the_storage_contracts() {
    let database = postgres::database();
    let db = open(&database.url, "host-a", Duration::from_secs(10));
    lbaas_host::store::check_contract(&PgStore::new(db.clone()));

    // Drivers' namespaces: separate, under quota, in key order.
    use lbaas_host::driver_state::{StateError, StateStore as _};
    let state = PgStateStore::new(db.clone(), 300);
    let name = |n: &str| lbaas_host::DriverName::new(n).expect("name");
    let one = state.namespace(&name("one")).expect("namespace");
    let two = state.namespace(&name("two")).expect("namespace");
    one.set("b", b"2").expect("set");
    one.set("a", b"1").expect("set");
    assert_eq!(one.keys("").expect("keys"), ["a", "b"]);
    assert_eq!(two.keys("").expect("keys"), Vec::<String>::new());
    assert_eq!(one.usage(), 2 * (1 + 1 + 64));
    let refused = one.set("big", &[0; 200]);
    assert!(
        matches!(refused, Err(StateError::QuotaExceeded { .. })),
        "{refused:?}"
    );
    assert!(one.delete("a").expect("delete"));
    assert_eq!(one.usage(), 1 + 1 + 64);
    assert_eq!(one.get("b").expect("get").as_deref(), Some(&b"2"[..]));

    // Two hosts append to one chain.
    let other = open(&database.url, "host-b", Duration::from_secs(10));
    let a = PgAudit::open(db.clone()).expect("audit");
    let b = PgAudit::open(other.clone()).expect("audit");
    let threads: Vec<_> = [a, b]
        .into_iter()
        .map(|log| {
            std::thread::spawn(move || {
                for _ in 0..50 {
                    log.append_all(vec![event("state.get"); 3]).expect("append");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("appender");
    }
    let verified = lbaas_postgres::audit::verify(&db, None);
    assert!(verified.intact(), "{verified:?}");
    assert_eq!(verified.records, 300);
    // An edited record is found.
    database.psql(
        "UPDATE lbaas_audit SET records = convert_to(replace(convert_from(records, 'UTF8'), \
         'state.get', 'state.set'), 'UTF8') WHERE first_seq = (SELECT max(first_seq) FROM lbaas_audit)",
    );
    let verified = lbaas_postgres::audit::verify(&db, None);
    assert!(
        verified
            .broken
            .as_deref()
            .is_some_and(|b| b.contains("edited")),
        "{verified:?}"
    );

    // A database migrated by a newer lbaasd is refused, in words.
    database.psql("INSERT INTO lbaas_schema (version, description) VALUES (99, 'from the future')");
    let newer = Database::open(&database.url, "host-c", Duration::from_secs(10))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        newer.contains("version 99") && newer.contains("upgrade lbaasd"),
        "{newer}"
    );
}

#[test]
fn hosts_share_one_revision_and_a_job_has_one_holder_until_its_lease_runs_out() {
    let database = postgres::database();
    let lease = Duration::from_millis(600);
    let a = PgStore::new(open(&database.url, "host-a", lease));
    let b = PgStore::new(open(&database.url, "host-b", lease));

    let mut locked = a.lock().expect("lock");
    let base = locked.revision();
    let mut batch = Batch::new();
    batch.put(&job("lb-1"));
    let revision = locked.commit(batch.writes()).expect("commit");
    assert_eq!(revision, base + 1);
    drop(locked);

    // Host b catches up from the change log and sees a's write.
    let (now, writes) = b.changes_since(base).expect("changes").expect("kept");
    assert_eq!(now, revision);
    assert_eq!(writes.len(), 1);
    assert!(matches!(b.load::<Job>("lb-1"), Ok(Some(_))));

    // The job is a's while a renews its lease.
    assert!(a.claim("lb-1").expect("claim"));
    assert!(!b.claim("lb-1").expect("claim"), "a holds it");
    assert_eq!(b.claim_expired(10).expect("expired"), Vec::<String>::new());
    let about = lbaas_host::store::HostAbout {
        name: "a".into(),
        version: "test".into(),
        address: "127.0.0.1:1".into(),
    };
    for _ in 0..4 {
        std::thread::sleep(lease / 3);
        a.beat(&about).expect("beat");
    }
    assert!(!b.claim("lb-1").expect("claim"), "a's lease was renewed");

    // a stops renewing: once the lease runs out, b takes the job over, once.
    std::thread::sleep(lease + Duration::from_millis(200));
    assert_eq!(b.claim_expired(10).expect("expired"), ["lb-1"]);
    assert_eq!(a.claim_expired(10).expect("expired"), Vec::<String>::new());
    assert!(!a.claim("lb-1").expect("claim"), "b holds it now");
    let hosts = b.beat(&about).expect("beat");
    let held: Vec<(String, u64, bool)> = hosts
        .iter()
        .map(|h| (h.id.clone(), h.jobs, h.alive))
        .collect();
    assert!(held.contains(&("host-b".into(), 1, true)), "{held:?}");
    assert!(held.contains(&("host-a".into(), 0, false)), "{held:?}");

    // The job's end releases it.
    let mut batch = Batch::new();
    batch.delete::<Job>("lb-1");
    batch.commit(&b).expect("commit");
    assert_eq!(database.psql("SELECT count(*) FROM lbaas_job_leases"), "0");
}

fn network_and_devices(admin: &Client, devices: &[(&str, String, u32)]) {
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "127.0.64.0/18"}]}}),
    );
    for (name, url, capacity) in devices {
        admin.create(
            "/v2/admin/devices",
            &json!({"device": {"name": name, "kind": "virtual", "driver": "haproxy",
                    "management_url": url, "capacity": capacity}}),
        );
    }
}

fn lb_body(name: &str) -> Value {
    json!({"loadbalancer": {"name": name, "vip_subnet_id": "subnet-vip", "provider": "haproxy",
        "listeners": [{"protocol": "TCP", "protocol_port": 80}]}})
}

fn start_host(data: &std::path::Path, url: &str) -> ControlPlane {
    ControlPlane::start_with_options(
        data,
        Auth::None,
        Options {
            store: Some(StoreChoice::Postgres {
                url: url.to_owned(),
                lease: Duration::from_secs(2),
            }),
            ..Options::default()
        },
    )
}

/// Every device holding more load balancers than its capacity, counted from each load
/// balancer's placement (not from the host's own load figures).
fn over_capacity(admin: &Client) -> Vec<String> {
    let (_, devices) = admin.get("/v2/admin/devices");
    let (_, lbs) = admin.get("/v2/lbaas/loadbalancers?limit=10000");
    let mut on: std::collections::BTreeMap<String, u64> = Default::default();
    for lb in lbs["loadbalancers"].as_array().cloned().unwrap_or_default() {
        let id = lb["id"].as_str().unwrap_or_default();
        let (_, placed) = admin.get(&format!("/v2/admin/loadbalancers/{id}/placement"));
        if let Some(device) = placed["placement"]["device_id"].as_str() {
            *on.entry(device.to_owned()).or_default() += 1;
        }
    }
    devices["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|device| {
            let id = device["id"].as_str().unwrap_or_default();
            let (held, capacity) = (
                on.get(id).copied().unwrap_or(0),
                device["capacity"].as_u64().unwrap_or(0),
            );
            (held > capacity).then(|| format!("{id}: {held} > {capacity}"))
        })
        .collect()
}

/// The load balancers whose configuration the device holds: put and not removed since.
fn configured(agent: &FakeAppliance) -> std::collections::BTreeSet<String> {
    let mut held = std::collections::BTreeSet::new();
    for request in agent.received() {
        let Some(id) = request
            .path
            .strip_prefix("/v1/loadbalancers/")
            .and_then(|rest| rest.strip_suffix("/config"))
        else {
            continue;
        };
        match request.method.as_str() {
            "PUT" => held.insert(id.to_owned()),
            "DELETE" => held.remove(id),
            _ => false,
        };
    }
    held
}

#[test]
fn two_hosts_serve_one_control_plane_and_follow_each_others_driver_steps() {
    let database = postgres::database();
    let (data_a, data_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let agent = FakeAppliance::start();
    let a = start_host(data_a.path(), &database.url);
    let b = start_host(data_b.path(), &database.url);
    let (admin_a, admin_b) = (
        Client::new(&a.url).as_project("p"),
        Client::new(&b.url).as_project("p"),
    );
    network_and_devices(&admin_a, &[("d1", agent.url(), 3), ("d2", agent.url(), 3)]);

    // 200 creates at once through both hosts, on room for 6.
    let answers: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (url, answers) = (
                if t % 2 == 0 { &a.url } else { &b.url }.clone(),
                answers.clone(),
            );
            std::thread::spawn(move || {
                let client = Client::new(&url).as_project("p");
                for i in 0..25 {
                    let (status, body) =
                        client.post("/v2/lbaas/loadbalancers", &lb_body(&format!("t{t}-{i}")));
                    let id = body["loadbalancer"]["id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    answers.lock().expect("answers").push((status, id));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client");
    }
    let answers = answers.lock().expect("answers").clone();
    assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
    let mut active = 0;
    for (_, id) in &answers {
        // Read through the other host than half of them were created on.
        let lb = admin_b.settle(id);
        if lb["provisioning_status"] == "ACTIVE" {
            active += 1;
        }
    }
    assert_eq!(active, 6, "exactly the room there is");
    assert_eq!(over_capacity(&admin_a), Vec::<String>::new());

    // Both hosts are listed, alive.
    wait_until("both hosts are listed alive", || {
        let (_, hosts) = admin_a.get("/v2/admin/hosts");
        hosts["hosts"]
            .as_array()
            .is_some_and(|h| h.len() == 2 && h.iter().all(|h| h["alive"] == true))
    });

    // And so does lbaasctl, in a table.
    let listed = std::process::Command::new(lbaas_tests::process::host_binary("lbaasctl"))
        .args(["--url", &b.url, "host", "list"])
        .env_remove("LBAAS_TOKEN")
        .output()
        .expect("run lbaasctl");
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{table}");
    assert!(
        table.contains(a.url.trim_start_matches("http://"))
            && table.contains(b.url.trim_start_matches("http://"))
            && table.contains("last heartbeat"),
        "{table}"
    );

    // A version activated through a serves the placements b makes.
    let next = std::fs::read(&lbaas_tests::lifecycle_fixtures().haproxy_next).expect("fixture");
    let (status, uploaded) = admin_a.upload("/v2/admin/drivers", next, &[]);
    assert_eq!(status, 201, "{uploaded}");
    let (status, body) = admin_a.post(
        "/v2/admin/drivers/haproxy/versions/0.1.1/activate",
        &json!({}),
    );
    assert_eq!(status, 200, "{body}");
    let started = Instant::now();
    wait_until("b serves 0.1.1", || {
        let (_, driver) = admin_b.get("/v2/admin/drivers/haproxy");
        driver["driver"]["version"] == "0.1.1"
    });
    eprintln!("b followed the activation after {:?}", started.elapsed());
    // Room for one more, placed by b.
    let (_, devices) = admin_b.get("/v2/admin/devices");
    let d1 = devices["devices"][0]["id"]
        .as_str()
        .expect("device")
        .to_owned();
    let (status, body) = admin_b.put(
        &format!("/v2/admin/devices/{d1}"),
        &json!({"device": {"capacity": 4}}),
    );
    assert_eq!(status, 200, "{body}");
    let created = admin_b.create("/v2/lbaas/loadbalancers", &lb_body("on-b"));
    let id = id_of(&created, "loadbalancer");
    assert_eq!(admin_b.settle(&id)["provisioning_status"], "ACTIVE");
    let (_, placed) = admin_a.get(&format!("/v2/admin/loadbalancers/{id}/placement"));
    assert_eq!(
        placed["placement"]["placed_by"]["version"], "0.1.1",
        "{placed}"
    );

    // A quarantine on b holds on a; a release on a lifts it on b.
    let driver = b.plane.drivers.get("haproxy").expect("haproxy on b");
    for _ in 0..5 {
        driver.interrupted("apply", "a test stands in for five failed calls".into());
    }
    assert!(driver.quarantined().is_some());
    wait_until("a sees the quarantine", || {
        let (_, driver) = admin_a.get("/v2/admin/drivers/haproxy");
        driver["driver"]["quarantined"] == true
    });
    let (status, body) = admin_a.post("/v2/admin/drivers/haproxy/release", &json!({}));
    assert_eq!(status, 200, "{body}");
    wait_until("b sees the release", || {
        let (_, driver) = admin_b.get("/v2/admin/drivers/haproxy");
        driver["driver"]["quarantined"] == false
    });

    // One chain for both hosts, intact.
    let (_, verified) = admin_b.get("/v2/admin/audit/verify");
    assert_eq!(verified["intact"], true, "{verified}");
    a.stop();
    b.stop();
}

#[test]
fn kill_9_of_either_host_loses_no_acknowledged_change_and_leaves_nothing_pending() {
    let database = postgres::database();
    let driver_dir = drivers().haproxy.parent().expect("driver dir").to_owned();
    let agent = FakeAppliance::start();
    agent.delay(30);
    let (data_a, data_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let args = [
        "--store",
        database.url.as_str(),
        "--lease",
        "2s",
        "--workers",
        "2",
    ];
    let a = Server::start(data_a.path(), &driver_dir, &args);
    let b = Server::start(data_b.path(), &driver_dir, &args);
    let admin = Client::new(&b.url).as_project("p");
    network_and_devices(
        &admin,
        &[("d1", agent.url(), 150), ("d2", agent.url(), 150)],
    );

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let deleted: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let url = if n % 2 == 0 {
                a.url.clone()
            } else {
                b.url.clone()
            };
            let (acknowledged, deleted, stop) =
                (acknowledged.clone(), deleted.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = Client::new(&url).as_project("p");
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = lb_body(&format!("c{n}-{i}")).to_string();
                    match client.try_call("POST", "/v2/lbaas/loadbalancers", Some(&body)) {
                        Some((201, created)) => {
                            let id = id_of(&created, "loadbalancer");
                            acknowledged.lock().expect("lock").push(id.clone());
                            // Every third one is deleted again, with its tree, once active.
                            if i % 3 == 0 {
                                let settled = client.try_call(
                                    "GET",
                                    &format!("/v2/lbaas/loadbalancers/{id}"),
                                    None,
                                );
                                if settled.is_none() {
                                    break;
                                }
                                std::thread::sleep(Duration::from_millis(100));
                                if let Some((204, _)) = client.try_call(
                                    "DELETE",
                                    &format!("/v2/lbaas/loadbalancers/{id}?cascade=true"),
                                    None,
                                ) {
                                    deleted.lock().expect("lock").push(id);
                                }
                            }
                        }
                        Some(_) => {}
                        None => break,
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(2500));
    a.kill();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    let deleted = deleted.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 8,
        "too few creates: {}",
        acknowledged.len()
    );

    // b finishes what a held once a's leases run out.
    for id in &acknowledged {
        let lb = admin.settle(id);
        if deleted.contains(id) {
            assert!(lb.is_null(), "{id} was deleted: {lb}");
        } else {
            assert_eq!(lb["provisioning_status"], "ACTIVE", "{id}: {lb}");
        }
    }
    assert_eq!(over_capacity(&admin), Vec::<String>::new());
    // Each device's configuration matches the records: every active load balancer's config
    // was pushed, and nothing deleted is left behind.
    let (_, lbs) = admin.get("/v2/lbaas/loadbalancers?limit=10000");
    let live: Vec<String> = lbs["loadbalancers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|lb| lb["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let configured = configured(&agent);
    for id in &live {
        assert!(
            configured.contains(id),
            "{id} has no configuration on its device"
        );
    }
    for id in &deleted {
        assert!(
            !configured.contains(id),
            "{id} was deleted but is still configured"
        );
    }
    let (_, verified) = admin.get("/v2/admin/audit/verify");
    assert_eq!(verified["intact"], true, "{verified}");
    let (_, hosts) = admin.get("/v2/admin/hosts");
    let alive: Vec<bool> = hosts["hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| h["alive"] == true)
        .collect();
    assert_eq!(alive.iter().filter(|a| **a).count(), 1, "{hosts}");
    drop(b);
}

#[test]
fn migrate_store_moves_a_sled_host_onto_postgres_whole() {
    let database = postgres::database();
    let driver_dir = drivers().haproxy.parent().expect("driver dir").to_owned();
    let agent = FakeAppliance::start();
    let data = tempfile::tempdir().expect("data");
    let server = Server::start(data.path(), &driver_dir, &["--store", "sled"]);
    let admin = Client::new(&server.url).as_project("p");
    network_and_devices(&admin, &[("d1", agent.url(), 10)]);
    let ids: Vec<String> = (0..3)
        .map(|i| {
            let created = admin.create("/v2/lbaas/loadbalancers", &lb_body(&format!("m{i}")));
            let id = id_of(&created, "loadbalancer");
            admin.settle(&id);
            id
        })
        .collect();
    let (_, before) = admin.get("/v2/admin/audit/verify");
    drop(server);

    let out = lbaas_tests::process::lbaasd()
        .args(["migrate-store", "--data-dir"])
        .arg(data.path())
        .args(["--to", &database.url])
        .output()
        .expect("run migrate-store");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("audit records"), "{said}");
    // Into an empty database only.
    let again = lbaas_tests::process::lbaasd()
        .args(["migrate-store", "--data-dir"])
        .arg(data.path())
        .args(["--to", &database.url])
        .output()
        .expect("run migrate-store");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("empty database"));

    let server = Server::start(
        data.path(),
        &driver_dir,
        &["--store", database.url.as_str()],
    );
    let admin = Client::new(&server.url).as_project("p");
    for id in &ids {
        assert_eq!(admin.settle(id)["provisioning_status"], "ACTIVE");
    }
    let (_, after) = admin.get("/v2/admin/audit/verify");
    assert_eq!(after["intact"], true, "{after}");
    assert!(
        after["records"].as_u64() >= before["records"].as_u64(),
        "{before} then {after}"
    );
    // The moved host serves on: a new load balancer on PostgreSQL.
    let created = admin.create("/v2/lbaas/loadbalancers", &lb_body("after"));
    assert_eq!(
        admin.settle(&id_of(&created, "loadbalancer"))["provisioning_status"],
        "ACTIVE"
    );
}
