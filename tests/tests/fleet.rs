//! Several hosts on one PostgreSQL database: the backends keep the storage contracts, hosts
//! share one write lock, one revision and one audit chain, a job is held by one host at a time
//! and taken over when its host dies, and driver lifecycle steps taken on one host hold on the
//! others. Each test starts its own PostgreSQL (`lbaas_tests::postgres`).

use lbaas_tests::wait_until;
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
use lbaas_tests::postgres;
use lbaas_tests::process::{Server, frozen_lbaasd, start_in_fleet, start_in_fleet_with};
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
        traceparent: None,
        ticket: "t".into(),
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
    // A hostile key is refused in words, as by every backend, and stores nothing.
    let nul = one.set("a\0b", b"x");
    assert!(matches!(nul, Err(StateError::InvalidKey(_))), "{nul:?}");
    assert!(one.delete("a").expect("delete"));
    assert_eq!(one.usage(), 1 + 1 + 64);
    assert_eq!(one.get("b").expect("get").as_deref(), Some(&b"2"[..]));

    // Two hosts append to one chain.
    let other = open(&database.url, "host-b", Duration::from_secs(10));
    let a = PgAudit::open(db.clone(), &Default::default()).expect("audit");
    let b = PgAudit::open(other.clone(), &Default::default()).expect("audit");
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
        &json!({"network": {"id": "net-vip", "vlan": 100,
                "subnets": [{"id": "subnet-vip", "cidr": "127.0.64.0/18"}]}}),
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

/// Two in-process hosts on the database at `url`, each over a data folder of its own (kept
/// as long as they run), and a client of project `p` on each.
struct TwoHosts {
    a: ControlPlane,
    b: ControlPlane,
    on_a: Client,
    on_b: Client,
    _data: [tempfile::TempDir; 2],
}

fn two_hosts(url: &str) -> TwoHosts {
    let data = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    let (a, b) = (
        start_host(data[0].path(), url),
        start_host(data[1].path(), url),
    );
    let (on_a, on_b) = (
        Client::new(&a.url).as_project("p"),
        Client::new(&b.url).as_project("p"),
    );
    TwoHosts {
        a,
        b,
        on_a,
        on_b,
        _data: data,
    }
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
    let agent = FakeAppliance::start();
    let TwoHosts {
        a,
        b,
        on_a: admin_a,
        on_b: admin_b,
        _data,
    } = two_hosts(&database.url);
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

/// Waits until load balancer `id` is `ACTIVE`, polling fast (a client that deletes the moment
/// it may).
fn until_active(client: &Client, id: &str) {
    wait_until("the load balancer is ACTIVE", || {
        let (_, lb) = client.get(&format!("/v2/lbaas/loadbalancers/{id}"));
        lb["loadbalancer"]["provisioning_status"] == "ACTIVE"
    });
}

/// Issue 32's interleavings, made deterministic with a slow device. A run of a job that ends
/// after the job was finished elsewhere, or after a newer change was acknowledged, must not
/// commit its outcome: (1) the same job queued twice on one host (a restarted host queues the
/// jobs it held both from the store and when it takes its expired leases back), the second run
/// starting once the first has finished; (2) a lease taken over while its first holder still
/// runs the job. In both, a delete acknowledged in between stays acknowledged.
#[test]
fn a_late_run_of_an_older_job_never_undoes_an_acknowledged_delete() {
    let database = postgres::database();
    let agent = FakeAppliance::start();
    let TwoHosts {
        a,
        b,
        on_a,
        on_b,
        _data,
    } = two_hosts(&database.url);
    network_and_devices(&on_a, &[("d1", agent.url(), 10)]);

    // (1) A rename on a, and the same job queued on a a second time.
    let first = id_of(
        &on_a.create("/v2/lbaas/loadbalancers", &lb_body("queued-twice")),
        "loadbalancer",
    );
    until_active(&on_a, &first);
    agent.delay(1500);
    let (status, _) = on_a.put(
        &format!("/v2/lbaas/loadbalancers/{first}"),
        &json!({"loadbalancer": {"name": "renamed"}}),
    );
    assert_eq!(status, 200);
    a.plane.enqueue(first.clone());
    // b may not have heard of the rename yet: its ACTIVE must be the one after it.
    wait_until("b sees the renamed load balancer ACTIVE", || {
        let (_, lb) = on_b.get(&format!("/v2/lbaas/loadbalancers/{first}"));
        lb["loadbalancer"]["name"] == "renamed"
            && lb["loadbalancer"]["provisioning_status"] == "ACTIVE"
    });
    let (status, body) = on_b.delete(&format!("/v2/lbaas/loadbalancers/{first}?cascade=true"));
    assert_eq!(status, 204, "{body}");
    let lb = on_b.settle(&first);
    assert!(lb.is_null(), "the acknowledged delete was undone: {lb}");

    // (2) a runs a rename slowly; its lease runs out meanwhile and b takes the job over.
    agent.delay(0);
    let second = id_of(
        &on_a.create("/v2/lbaas/loadbalancers", &lb_body("taken-over")),
        "loadbalancer",
    );
    until_active(&on_a, &second);
    agent.delay(3000);
    let (status, _) = on_a.put(
        &format!("/v2/lbaas/loadbalancers/{second}"),
        &json!({"loadbalancer": {"name": "renamed"}}),
    );
    assert_eq!(status, 200);
    // a's call to the device has started when its lease runs out (a host whose heartbeat
    // stalled) and b takes the job over, as b's heartbeat does with an expired lease.
    wait_until("a's call reached the device", || {
        agent
            .received()
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains(&second))
    });
    let b_id = b.plane.host_id().unwrap_or_default().to_owned();
    database.psql(&format!(
        "UPDATE lbaas_job_leases SET host = '{b_id}' WHERE job = '{second}'"
    ));
    // b's call ends well after a's.
    agent.delay(6000);
    b.plane.enqueue(second.clone());
    wait_until("b's call reached the device", || {
        agent
            .received()
            .iter()
            .filter(|r| r.method == "PUT" && r.path.contains(&second))
            .count()
            >= 2
    });
    until_active(&on_a, &second);
    let (status, body) = on_a.delete(&format!("/v2/lbaas/loadbalancers/{second}?cascade=true"));
    assert_eq!(status, 204, "{body}");
    let lb = on_a.settle(&second);
    assert!(lb.is_null(), "the acknowledged delete was undone: {lb}");
    agent.delay(0);
    // Nothing is left pending or leased.
    wait_until("every job has ended", || {
        database.psql("SELECT count(*) FROM lbaas_job_leases") == "0"
    });
    a.stop();
    b.stop();
}

/// What the clients of one churn had acknowledged, and every answer they did not expect.
#[derive(Default)]
struct Churned {
    created: Vec<String>,
    /// The last name each renamed load balancer was acknowledged with.
    renamed: std::collections::BTreeMap<String, String>,
    deleted: Vec<String>,
    /// Deleted or not: the host died with the delete in flight, its answer never came.
    in_doubt: Vec<String>,
    /// Answers outside what the API promises for the request (a 5xx of a live host among
    /// them), as `METHOD path: status body`.
    unexpected: Vec<String>,
}

impl Churned {
    fn absorb(&mut self, other: Churned) {
        self.created.extend(other.created);
        self.renamed.extend(other.renamed);
        self.deleted.extend(other.deleted);
        self.in_doubt.extend(other.in_doubt);
        self.unexpected.extend(other.unexpected);
    }
}

/// Where a churn's clients send their requests: the address of each host slot, which a test
/// points at a live host while the slot's own host is down.
type Hosts = Arc<std::sync::RwLock<Vec<String>>>;

/// One churn client: sends each request to the next host slot in turn.
struct ChurnClient {
    hosts: Hosts,
    clients: std::collections::HashMap<String, Client>,
    turn: usize,
}

impl ChurnClient {
    /// The request's answer, or `None` when none came (the host is down or died meanwhile).
    fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Option<(u16, Value)> {
        self.turn += 1;
        let url = {
            let hosts = self.hosts.read().unwrap_or_else(|e| e.into_inner());
            hosts[self.turn % hosts.len()].clone()
        };
        self.clients
            .entry(url.clone())
            .or_insert_with(|| Client::new(&url).as_project("p"))
            .try_call(method, path, body)
    }
}

/// One client's churn until `stop`: creates; every third one, once active, renamed; every
/// fourth, deleted with its tree. A request left unanswered by a dying host is in doubt and the
/// client goes on; an answer the API does not promise is recorded.
fn churn_client(hosts: Hosts, n: usize, stop: Arc<AtomicBool>) -> Churned {
    let mut client = ChurnClient {
        hosts,
        clients: Default::default(),
        turn: n,
    };
    let mut seen = Churned::default();
    let odd = |seen: &mut Churned, method: &str, path: &str, (status, body): (u16, Value)| {
        seen.unexpected
            .push(format!("{method} {path}: {status} {body}"));
    };
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        i += 1;
        let body = lb_body(&format!("c{n}-{i}")).to_string();
        let id = match client.call("POST", "/v2/lbaas/loadbalancers", Some(&body)) {
            Some((201, created)) => id_of(&created, "loadbalancer"),
            // Made or not, a create whose answer was lost is no acknowledged change.
            None => continue,
            Some(answer) => {
                odd(&mut seen, "POST", "/v2/lbaas/loadbalancers", answer);
                continue;
            }
        };
        seen.created.push(id.clone());
        if i % 3 != 0 && i % 4 != 0 {
            continue;
        }
        let path = format!("/v2/lbaas/loadbalancers/{id}");
        // Wait (briefly) for it to leave PENDING_CREATE: a change before that is refused.
        for _ in 0..100 {
            match client.call("GET", &path, None) {
                Some((200, lb)) if lb["loadbalancer"]["provisioning_status"] == "ACTIVE" => break,
                // A read through the other host may trail the create by its catch-up
                // (milliseconds; deploy.md): not there yet is no lost change.
                Some((200 | 404, _)) | None => std::thread::sleep(Duration::from_millis(20)),
                Some(answer) => odd(&mut seen, "GET", &path, answer),
            }
        }
        if i % 3 == 0 {
            let name = format!("renamed-{n}-{i}");
            let body = json!({"loadbalancer": {"name": name}}).to_string();
            match client.call("PUT", &path, Some(&body)) {
                Some((200, _)) => {
                    seen.renamed.insert(id.clone(), name);
                }
                // Still pending: Octavia's refusal.
                Some((409, _)) | None => {}
                Some(answer) => odd(&mut seen, "PUT", &path, answer),
            }
        }
        if i % 4 == 0 {
            let path = format!("{path}?cascade=true");
            match client.call("DELETE", &path, None) {
                Some((204, _)) => seen.deleted.push(id),
                Some((409, _)) => {}
                None => seen.in_doubt.push(id),
                Some(answer) => odd(&mut seen, "DELETE", &path, answer),
            }
        }
    }
    seen
}

/// Six clients churning through `hosts` until `stop`; what they saw, together.
fn churn(hosts: &Hosts, stop: &Arc<AtomicBool>) -> Vec<std::thread::JoinHandle<Churned>> {
    (0..6)
        .map(|n| {
            let (hosts, stop) = (hosts.clone(), stop.clone());
            std::thread::spawn(move || churn_client(hosts, n, stop))
        })
        .collect()
}

fn gather(clients: Vec<std::thread::JoinHandle<Churned>>) -> Churned {
    let mut all = Churned::default();
    for client in clients {
        all.absorb(client.join().expect("client"));
    }
    all
}

/// Six clients churning through both hosts while `victim` (slot `slot`) is killed after a
/// while; the slot then points at the survivor.
fn churn_and_kill(urls: [&str; 2], victim: Server, slot: usize) -> Churned {
    let hosts: Hosts = Arc::new(std::sync::RwLock::new(
        urls.iter().map(|u| u.to_string()).collect(),
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = churn(&hosts, &stop);
    std::thread::sleep(Duration::from_millis(3000));
    victim.kill();
    hosts.write().expect("hosts")[slot] = urls[1 - slot].to_owned();
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Relaxed);
    gather(clients)
}

/// Whether `lb` ended in `ERROR` because its driver calls were cut twice by a dying host: the
/// guard against a driver that takes the host down (`worker::MAX_UNFINISHED_ATTEMPTS`) cannot
/// tell a SIGKILL from such a driver. A failure the tenant sees with its reason, as Octavia
/// reports a failed provisioning, not a change lost.
fn cut_twice(lb: &Value) -> bool {
    lb["provisioning_status"] == "ERROR"
        && lb["fault"]
            .as_str()
            .is_some_and(|fault| fault.starts_with("the host stopped"))
}

/// Every acknowledged change is there (each acknowledged delete gone), no answer was
/// unexpected, nothing is pending, no device is over capacity, the device holds exactly the
/// live load balancers' configurations, the chain is intact. Returns how many load balancers
/// ended [`cut_twice`] instead.
fn check_after_kill(admin: &Client, agent: &FakeAppliance, churned: &Churned) -> usize {
    assert!(
        churned.created.len() >= 20,
        "too few creates: {}",
        churned.created.len()
    );
    assert_eq!(
        churned.unexpected,
        Vec::<String>::new(),
        "answers the API does not promise"
    );
    let mut lost = Vec::new();
    let mut cut = 0;
    for id in &churned.created {
        let lb = admin.settle(id);
        if cut_twice(&lb) {
            cut += 1;
        } else if churned.deleted.contains(id) {
            if !lb.is_null() {
                lost.push(format!("acknowledged delete {id} still there: {lb}"));
            }
            continue;
        }
        if lb.is_null() && churned.in_doubt.contains(id) {
            continue; // its delete went through; only the answer was lost with the host
        }
        if lb["provisioning_status"] != "ACTIVE" {
            lost.push(format!("{id} is not ACTIVE: {lb}"));
        }
        if let Some(name) = churned.renamed.get(id)
            && &lb["name"] != name
        {
            lost.push(format!("{id} lost its acknowledged rename to {name}: {lb}"));
        }
    }
    assert_eq!(lost, Vec::<String>::new(), "acknowledged changes lost");
    assert_eq!(over_capacity(admin), Vec::<String>::new());
    let (_, lbs) = admin.get("/v2/lbaas/loadbalancers?limit=100000");
    let all = lbs["loadbalancers"].as_array().cloned().unwrap_or_default();
    let id = |lb: &Value| lb["id"].as_str().unwrap_or_default().to_owned();
    // One cut twice may or may not have reached the device before the host died.
    let failed: std::collections::BTreeSet<String> =
        all.iter().filter(|lb| cut_twice(lb)).map(id).collect();
    let live: std::collections::BTreeSet<String> =
        all.iter().filter(|lb| !cut_twice(lb)).map(id).collect();
    let held: std::collections::BTreeSet<String> = configured(agent)
        .into_iter()
        .filter(|lb| !failed.contains(lb))
        .collect();
    assert_eq!(held, live, "the device's configurations match the records");
    let (_, verified) = admin.get("/v2/admin/audit/verify");
    assert_eq!(verified["intact"], true, "{verified}");
    cut
}

#[test]
fn kill_9_of_either_host_loses_no_acknowledged_change_and_leaves_nothing_pending() {
    let database = postgres::database();
    let agent = FakeAppliance::start();
    agent.delay(20);
    let (data_a, data_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let a = start_in_fleet(data_a.path(), &database.url);
    let b = start_in_fleet(data_b.path(), &database.url);
    let (url_a, url_b) = (a.url.clone(), b.url.clone());
    let on_b = Client::new(&url_b).as_project("p");
    network_and_devices(&on_b, &[("d1", agent.url(), 400), ("d2", agent.url(), 400)]);

    // a dies: b finishes what a held once a's leases run out.
    let churned = churn_and_kill([&url_a, &url_b], a, 0);
    check_after_kill(&on_b, &agent, &churned);
    let (_, hosts) = on_b.get("/v2/admin/hosts");
    let alive = |hosts: &Value| {
        hosts["hosts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|h| h["alive"] == true)
            .count()
    };
    assert_eq!(alive(&hosts), 1, "{hosts}");

    // a comes back; now b dies, and a finishes what b held.
    let a = start_in_fleet(data_a.path(), &database.url);
    let on_a = Client::new(&a.url).as_project("p");
    let churned = churn_and_kill([&a.url, &url_b], b, 1);
    check_after_kill(&on_a, &agent, &churned);
    drop(a);
}

/// Issue 32's long run, opt-in (`cargo test -p lbaas-tests --test fleet -- --ignored
/// hundreds_of`): six clients churn through two hosts while one of them, in turn, is killed
/// with SIGKILL and restarted, `LBAAS_KILL_CYCLES` times (300 by default); then every
/// acknowledged change is checked. Prints the cycles run and the changes checked.
#[test]
#[ignore = "a long run: hundreds of kill cycles (several minutes)"]
fn hundreds_of_kill_9_cycles_lose_no_acknowledged_change() {
    let cycles: usize = std::env::var("LBAAS_KILL_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(300);
    let database = postgres::database();
    let agent = FakeAppliance::start();
    agent.delay(20);
    let data = [
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    ];
    // One binary for the whole run, whatever is built meanwhile.
    let bin = tempfile::tempdir().expect("bin");
    let lbaasd = frozen_lbaasd(bin.path());
    let start = |data: &tempfile::TempDir| start_in_fleet_with(&lbaasd, data.path(), &database.url);
    let mut servers = [Some(start(&data[0])), Some(start(&data[1]))];
    let url = |server: &Option<Server>| server.as_ref().expect("running").url.clone();
    let hosts: Hosts = Arc::new(std::sync::RwLock::new(vec![
        url(&servers[0]),
        url(&servers[1]),
    ]));
    let admin = Client::new(&url(&servers[0])).as_project("p");
    network_and_devices(
        &admin,
        &[("d1", agent.url(), 100_000), ("d2", agent.url(), 100_000)],
    );

    let stop = Arc::new(AtomicBool::new(false));
    let clients = churn(&hosts, &stop);
    let started = Instant::now();
    // Every host's log, the killed ones' included: what a stuck job's hosts did.
    let mut logs = Vec::new();
    for cycle in 0..cycles {
        let (slot, other) = (cycle % 2, 1 - cycle % 2);
        // Up for 1 to 2 s: some jobs end, some are cut in their driver calls.
        std::thread::sleep(Duration::from_millis(1000 + (cycle as u64 * 397) % 1000));
        logs.extend(servers[slot].take().expect("running").kill());
        hosts.write().expect("hosts")[slot] = url(&servers[other]);
        // Down for 0 to 3 s: some leases (2 s) run out and are taken over, some are taken back.
        std::thread::sleep(Duration::from_millis((cycle as u64 * 631) % 3000));
        let server = start(&data[slot]);
        hosts.write().expect("hosts")[slot] = server.url.clone();
        servers[slot] = Some(server);
        if (cycle + 1) % 25 == 0 {
            eprintln!(
                "{} kill cycles in {:.0} s",
                cycle + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let churned = gather(clients);
    let admin = Client::new(&url(&servers[0])).as_project("p");
    logs.extend(servers.iter().flatten().flat_map(Server::log));
    // The hosts may end the load with a backlog (each job's cost grows with the thousands of
    // load balancers the run leaves); a job that no host runs any more stops the count falling.
    let stuck = still_pending(&admin, Duration::from_secs(60));
    if !stuck.is_empty() {
        let kept = lbaas_tests::target_dir().join("kill-run.log");
        let _ = std::fs::write(&kept, logs.join("\n"));
        eprintln!("every host's log: {}", kept.display());
    }
    assert!(
        stuck.is_empty(),
        "load balancers left PENDING_*:\n{}",
        stuck
            .iter()
            .map(|id| what_holds(&database, &logs, id))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let cut = check_after_kill(&admin, &agent, &churned);
    eprintln!(
        "{cycles} kill cycles in {:.0} s: {} creates, {} renames, {} deletes acknowledged \
         ({} in doubt), 0 lost, 0 unexpected answers, {cut} ended ERROR after two cut runs",
        started.elapsed().as_secs_f64(),
        churned.created.len(),
        churned.renamed.len(),
        churned.deleted.len(),
        churned.in_doubt.len()
    );
}

/// The load balancers still `PENDING_*` once the hosts stop making progress: waits while the
/// count of pending ones keeps falling (a backlog the hosts work through), and returns when it
/// has not fallen for `stall`. Prints the count as it goes.
fn still_pending(admin: &Client, stall: Duration) -> Vec<String> {
    let (mut fewest, mut fell) = (usize::MAX, Instant::now());
    loop {
        let (_, lbs) = admin.get("/v2/lbaas/loadbalancers?limit=100000");
        let pending: Vec<String> = lbs["loadbalancers"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|lb| {
                lb["provisioning_status"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("PENDING_"))
            })
            .map(|lb| lb["id"].as_str().unwrap_or_default().to_owned())
            .collect();
        if pending.len() < fewest {
            (fewest, fell) = (pending.len(), Instant::now());
        }
        if pending.is_empty() || fell.elapsed() > stall {
            return pending;
        }
        eprintln!("{} load balancers pending", pending.len());
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// What the store and the hosts' logs say of the job of load balancer `lb_id`: its stored job,
/// its lease, the hosts, and every log line naming it.
fn what_holds(database: &postgres::Database, logs: &[String], lb_id: &str) -> String {
    let job = database.psql(&format!(
        "SELECT convert_from(data, 'UTF8') FROM lbaas_records WHERE kind = 'jobs' AND id = '{lb_id}'"
    ));
    let record = database.psql(&format!(
        "SELECT convert_from(data, 'UTF8') FROM lbaas_records WHERE kind = 'loadbalancers' AND id = '{lb_id}'"
    ));
    let lease = database.psql(&format!(
        "SELECT host, until, now() FROM lbaas_job_leases WHERE job = '{lb_id}'"
    ));
    let hosts = database.psql("SELECT id, address, heartbeat FROM lbaas_hosts");
    let lines: Vec<&String> = logs.iter().filter(|l| l.contains(lb_id)).collect();
    format!(
        "{lb_id}\n  record: {record}\n  job: {job}\n  lease: {lease}\n  hosts: {hosts}\n  log:\n    {}",
        lines
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n    ")
    )
}

#[test]
fn migrate_store_moves_a_sled_host_onto_postgres_whole() {
    let database = postgres::database();
    let driver_dir = lbaas_tests::driver_dir();
    let agent = FakeAppliance::start();
    let data = tempfile::tempdir().expect("data");
    let server = Server::start(data.path(), &driver_dir, &["--store", "sled"]);
    let admin = Client::new(&server.url).as_project("p");
    network_and_devices(&admin, &[("d1", agent.url(), 10)]);
    // An Acme appliance too: its driver keeps VLAN allocations in its private state.
    let appliance = FakeAppliance::start();
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "adc-1", "kind": "physical", "driver": "acme-adc",
                "management_url": appliance.url(), "capacity": 8,
                "metadata": {"max-vlans-per-interface": "2"}}}),
    );
    let mut ids: Vec<String> = (0..3)
        .map(|i| {
            let created = admin.create("/v2/lbaas/loadbalancers", &lb_body(&format!("m{i}")));
            let id = id_of(&created, "loadbalancer");
            admin.settle(&id);
            id
        })
        .collect();
    let acme = admin.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "acme", "vip_subnet_id": "subnet-vip",
                "provider": "acme-adc", "listeners": [{"protocol": "TCP", "protocol_port": 80}]}}),
    );
    ids.push(id_of(&acme, "loadbalancer"));
    for id in &ids {
        assert_eq!(admin.settle(id)["provisioning_status"], "ACTIVE");
    }
    drop(server);

    // What the sled database holds: records of every kind, drivers' state keys, the chain.
    let (records, state_keys, chain) = {
        let db = sled::open(data.path().join("db")).expect("the stopped host's database");
        let records: usize = lbaas_host::store::Kind::ALL
            .iter()
            .map(|kind| db.open_tree(kind.tree()).expect("tree").len())
            .sum();
        let state_keys: usize = db
            .tree_names()
            .iter()
            .filter(|name| name.starts_with(b"driver/"))
            .map(|name| db.open_tree(name).expect("tree").len())
            .sum();
        (
            records,
            state_keys,
            lbaas_host::audit::records(&db).expect("chain"),
        )
    };
    assert!(state_keys > 0, "the Acme driver kept no state");

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
    assert!(
        said.contains(&format!(
            "copied {records} records, {state_keys} driver state keys and {} audit records",
            chain.len()
        )),
        "{said}"
    );
    assert_eq!(
        database.psql("SELECT count(*) FROM lbaas_records"),
        records.to_string()
    );
    assert_eq!(
        database.psql("SELECT count(*) FROM lbaas_driver_state"),
        state_keys.to_string()
    );
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
    // The chain carried over record for record: the same hashes, then the new host's.
    let exported = lbaas_tests::process::lbaasd()
        .args(["audit", "export", "--store", &database.url])
        .output()
        .expect("audit export");
    let moved: Vec<Value> = String::from_utf8_lossy(&exported.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a record"))
        .collect();
    assert!(moved.len() >= chain.len());
    for (old, new) in chain.iter().zip(&moved) {
        assert_eq!(new["hash"], old.hash.as_str(), "record {} changed", old.seq);
    }
    // The moved host serves on: a new load balancer on PostgreSQL.
    let created = admin.create("/v2/lbaas/loadbalancers", &lb_body("after"));
    assert_eq!(
        admin.settle(&id_of(&created, "loadbalancer"))["provisioning_status"],
        "ACTIVE"
    );
}

/// A provisioner that starts nothing and notes what it is asked: each spawned device answers
/// at `url`, under a handle naming the host.
struct Recording {
    host: &'static str,
    url: String,
    spawned: Mutex<Vec<String>>,
    revived: Mutex<Vec<String>>,
    released: Mutex<Vec<String>>,
    /// Status rounds the host has run (each asks its provisioner to revive its own devices).
    rounds: std::sync::atomic::AtomicUsize,
}

impl Recording {
    fn new(host: &'static str, url: String) -> Arc<Self> {
        Arc::new(Self {
            host,
            url,
            spawned: Mutex::default(),
            revived: Mutex::default(),
            released: Mutex::default(),
            rounds: Default::default(),
        })
    }

    fn seen(list: &Mutex<Vec<String>>) -> Vec<String> {
        list.lock().expect("list").clone()
    }
}

impl lbaas_host::provision::Provisioner for Recording {
    fn provision(
        &self,
        _driver: &str,
        _spec: &lbaas_scheduler::SpawnSpec,
    ) -> Result<lbaas_host::provision::Provisioned, lbaas_host::provision::ProvisionError> {
        let mut spawned = self.spawned.lock().expect("spawned");
        let handle = format!("{}-{}", self.host, spawned.len() + 1);
        spawned.push(handle.clone());
        Ok(lbaas_host::provision::Provisioned {
            management_url: self.url.clone(),
            credentials: None,
            handle: Some(handle),
        })
    }

    fn release(&self, handle: &str) -> Result<(), lbaas_host::provision::ProvisionError> {
        self.released
            .lock()
            .expect("released")
            .push(handle.to_owned());
        Ok(())
    }

    fn revive(&self, handles: &[String]) {
        self.rounds.fetch_add(1, Ordering::SeqCst);
        self.revived
            .lock()
            .expect("revived")
            .extend(handles.iter().cloned());
    }
}

#[test]
fn a_spawned_device_is_run_and_stopped_only_by_the_host_that_spawned_it() {
    let database = postgres::database();
    let agent = FakeAppliance::start();
    let (data_a, data_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let (spawner_a, spawner_b) = (
        Recording::new("a", agent.url()),
        Recording::new("b", agent.url()),
    );
    let host = |data: &std::path::Path, spawner: &Arc<Recording>| {
        ControlPlane::start_with_options(
            data,
            Auth::None,
            Options {
                store: Some(StoreChoice::Postgres {
                    url: database.url.clone(),
                    lease: Duration::from_secs(2),
                }),
                provisioner: Some(spawner.clone()),
                status_interval: Some(Duration::from_millis(200)),
                ..Options::default()
            },
        )
    };
    let (a, b) = (
        host(data_a.path(), &spawner_a),
        host(data_b.path(), &spawner_b),
    );
    let (on_a, on_b) = (
        Client::new(&a.url).as_project("p"),
        Client::new(&b.url).as_project("p"),
    );
    network_and_devices(&on_a, &[]);

    // No device yet: a spawns one for the load balancer created through it.
    let created = on_a.create("/v2/lbaas/loadbalancers", &lb_body("spawned"));
    let id = id_of(&created, "loadbalancer");
    assert_eq!(on_a.settle(&id)["provisioning_status"], "ACTIVE");
    assert_eq!(Recording::seen(&spawner_a.spawned), ["a-1"]);
    let a_id = std::fs::read_to_string(data_a.path().join("host.id")).expect("a's id");
    let (_, devices) = on_b.get("/v2/admin/devices");
    assert_eq!(devices["devices"][0]["host"], a_id.trim(), "{devices}");

    // Only a looks after it, however the status rounds fall.
    wait_until("a revives its own device", || {
        Recording::seen(&spawner_a.revived).contains(&"a-1".to_owned())
    });
    let rounds = spawner_b.rounds.load(Ordering::SeqCst);
    wait_until("b has run three more status rounds", || {
        spawner_b.rounds.load(Ordering::SeqCst) >= rounds + 3
    });
    assert!(
        Recording::seen(&spawner_b.revived).is_empty(),
        "b revived a's device"
    );

    // Deleted through b: b runs the job and retires the device; a stops its processes.
    let (status, body) = on_b.delete(&format!("/v2/lbaas/loadbalancers/{id}?cascade=true"));
    assert_eq!(status, 204, "{body}");
    assert!(on_b.settle(&id).is_null());
    wait_until("a stops the device b retired", || {
        Recording::seen(&spawner_a.released) == ["a-1"]
    });
    assert!(
        Recording::seen(&spawner_b.released).is_empty(),
        "b stopped a's device"
    );
    a.stop();
    b.stop();
}

#[test]
fn hosts_resync_after_their_database_connections_are_cut() {
    let database = postgres::database();
    let agent = FakeAppliance::start();
    let TwoHosts {
        a,
        b,
        on_a,
        on_b,
        _data,
    } = two_hosts(&database.url);
    network_and_devices(&on_a, &[("d1", agent.url(), 50)]);

    // Every connection the hosts hold is cut (the listening ones included), as when the
    // database restarts.
    let cut = database.psql(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = 'lbaasd' AND datname = current_database() \
         AND pid <> pg_backend_pid()",
    );
    assert_ne!(cut, "0", "no connection was cut");

    // Writes through either host work again (a broken pooled connection is replaced, not
    // reused), and each host sees the other's.
    let mut created = None;
    wait_until("a takes writes again", || {
        let (status, body) = on_a.post("/v2/lbaas/loadbalancers", &lb_body("after-cut"));
        created = (status == 201).then(|| id_of(&body, "loadbalancer"));
        created.is_some()
    });
    let id = created.expect("created");
    wait_until("b sees a's load balancer active", || {
        let (status, body) = on_b.get(&format!("/v2/lbaas/loadbalancers/{id}"));
        status == 200 && body["loadbalancer"]["provisioning_status"] == "ACTIVE"
    });
    let (status, body) = on_b.put(
        &format!("/v2/lbaas/loadbalancers/{id}"),
        &json!({"loadbalancer": {"name": "renamed-through-b"}}),
    );
    assert_eq!(status, 200, "{body}");
    wait_until("a sees b's rename", || {
        let (_, body) = on_a.get(&format!("/v2/lbaas/loadbalancers/{id}"));
        body["loadbalancer"]["name"] == "renamed-through-b"
    });
    a.stop();
    b.stop();
}
