//! Crash safety: load balancers are being created by several clients when `lbaasd` is killed
//! with SIGKILL. After a restart every acknowledged load balancer is there, and none is left
//! `PENDING_*`: the worker resumes the jobs the dead process left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::Client;

use lbaas_tests::process::Server;
use serde_json::json;

/// noauth: the project comes from the request.
fn client(url: &str) -> Client {
    Client::new(url).as_project("project-a")
}

/// A VIP network on `cidr` and one HAProxy device of `capacity` at `management_url`.
fn network_and_device(admin: &Client, cidr: &str, management_url: &str, capacity: u32) {
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": cidr}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                "management_url": management_url, "capacity": capacity}}),
    );
}

#[test]
fn acknowledged_creates_survive_sigkill() {
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = lbaas_tests::driver_dir();
    let agent = FakeAppliance::start();
    // Slow enough that jobs are in flight when the host dies.
    agent.delay(50);

    let server = Server::start(data.path(), &driver_dir, &["--workers", "2"]);
    let admin = client(&server.url);
    network_and_device(&admin, "127.0.48.0/20", &agent.url(), 100_000);

    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|n| {
            let (url, acknowledged, stop) = (server.url.clone(), acknowledged.clone(), stop.clone());
            std::thread::spawn(move || {
                let client = client(&url);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = json!({"loadbalancer": {"name": format!("c{n}-{i}"), "vip_subnet_id": "subnet-vip",
                        "listeners": [{"protocol": "TCP", "protocol_port": 80}]}});
                    match client.try_call("POST", "/v2/lbaas/loadbalancers", Some(&body.to_string())) {
                        Some((201, created)) => {
                            let id = created["loadbalancer"]["id"].as_str().unwrap_or_default().to_owned();
                            acknowledged.lock().expect("lock").push(id);
                        }
                        Some(_) => {}
                        // The host is gone: whatever was not answered was not acknowledged.
                        None => break,
                    }
                }
            })
        })
        .collect();

    std::thread::sleep(Duration::from_millis(1500));
    server.kill();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().expect("client thread");
    }
    let acknowledged = acknowledged.lock().expect("lock").clone();
    assert!(
        acknowledged.len() >= 4,
        "too few creates before the kill: {}",
        acknowledged.len()
    );

    agent.delay(0);
    let server = Server::start(data.path(), &driver_dir, &[]);
    let after = client(&server.url);
    for id in &acknowledged {
        let lb = after.settle(id);
        assert_eq!(
            lb["provisioning_status"], "ACTIVE",
            "acknowledged load balancer {id}: {lb}"
        );
    }
    let (_, listed) = after.get("/v2/lbaas/loadbalancers");
    let listed = listed["loadbalancers"].as_array().expect("list").clone();
    assert!(listed.len() >= acknowledged.len());
    // The creates the kill cut off before their answer are resumed too (after the
    // acknowledged ones, in creation order): each leaves PENDING_*.
    for lb in &listed {
        let id = lb["id"].as_str().unwrap_or_default();
        let settled = after.settle(id);
        assert!(!settled.is_null(), "{id} vanished after restart");
    }
    // The clients outpace the slow device, so the dead host left jobs behind: the new one
    // resumed them.
    let resumed = server
        .log()
        .into_iter()
        .find(|l| l.contains("resuming unfinished jobs"));
    assert!(resumed.is_some(), "{:#?}", server.log());
    eprintln!(
        "{} acknowledged creates before SIGKILL; {}",
        acknowledged.len(),
        resumed.unwrap_or_default()
    );
}

/// A device call during which the host dies (here: SIGKILL while the device holds the
/// request) is on record before it was sent; the restarted host counts it against the driver
/// and tries again; after the second such death the job ends `ERROR` instead of looping.
#[test]
fn a_call_that_takes_the_host_down_is_on_record_and_not_run_a_third_time() {
    let data = tempfile::tempdir().expect("data dir");
    let driver_dir = lbaas_tests::driver_dir();
    let device = FakeAppliance::start();
    // It holds every request past the moment the test kills the host.
    device.delay(15_000);
    let wait_for = |arrivals: u64| {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while device.arrived() < arrivals {
            assert!(std::time::Instant::now() < deadline, "no request arrived");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    let server = Server::start(data.path(), &driver_dir, &[]);
    let admin = client(&server.url);
    network_and_device(&admin, "127.0.49.0/24", &device.url(), 10);
    let created = admin.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "fatal", "vip_subnet_id": "subnet-vip",
                "listeners": [{"protocol": "TCP", "protocol_port": 80}]}}),
    );
    let lb_id = created["loadbalancer"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    wait_for(1);
    server.kill();

    // On record although the host died during the call: what was about to be sent, and where.
    let export = || {
        let output = lbaas_tests::process::lbaasd_for(data.path())
            .args(["audit", "export"])
            .arg(data.path())
            .output()
            .expect("lbaasd audit export");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("a record"))
            .collect::<Vec<_>>()
    };
    let records = export();
    let intents: Vec<_> = records
        .iter()
        .filter(|r| r["function"] == "device-api.intent")
        .collect();
    assert_eq!(intents.len(), 1, "{records:#?}");
    assert!(
        intents[0]["target"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("PUT /v1/loadbalancers/{lb_id}/config"))),
        "{intents:?}"
    );
    assert!(
        intents[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("body sha256 "))
    );

    // The restarted host resumes the job, the call takes it down again.
    let server = Server::start(data.path(), &driver_dir, &[]);
    wait_for(2);
    server.kill();

    // The third start ends the job instead of sending the call again.
    let server = Server::start(data.path(), &driver_dir, &[]);
    let lb = client(&server.url).settle(&lb_id);
    assert_eq!(lb["provisioning_status"], "ERROR", "{lb}");
    assert!(
        lb["fault"]
            .as_str()
            .is_some_and(|f| f.contains("the host stopped 2 times") && f.contains("haproxy")),
        "{lb}"
    );
    assert_eq!(device.arrived(), 2, "not sent a third time");
    drop(server);
    let interrupted = export()
        .into_iter()
        .filter(|r| r["function"] == "call.interrupted")
        .count();
    assert_eq!(interrupted, 2, "each death counted against the driver");
}

// The same suite with its hosts on PostgreSQL.
lbaas_tests::also_on_postgres!(
    acknowledged_creates_survive_sigkill,
    a_call_that_takes_the_host_down_is_on_record_and_not_run_a_third_time,
);

/// One host (the embedded store): the same job queued a second time — as a restart and a
/// duplicate wake-up do — while a change is in flight. The second run starts after the first
/// has finished the job; a delete acknowledged meanwhile stays acknowledged (issue 32).
#[test]
fn a_job_queued_twice_never_undoes_an_acknowledged_delete() {
    use lbaas_host::api::Auth;
    use lbaas_tests::control::{ControlPlane, id_of};

    let data = tempfile::tempdir().expect("data dir");
    let agent = FakeAppliance::start();
    let host = ControlPlane::start(data.path(), Auth::None);
    let admin = client(&host.url);
    network_and_device(&admin, "127.0.62.0/24", &agent.url(), 10);
    let lb = json!({"loadbalancer": {"name": "twice", "vip_subnet_id": "subnet-vip",
        "provider": "haproxy", "listeners": [{"protocol": "TCP", "protocol_port": 80}]}});
    let id = id_of(
        &admin.create("/v2/lbaas/loadbalancers", &lb),
        "loadbalancer",
    );
    let path = format!("/v2/lbaas/loadbalancers/{id}");
    assert_eq!(admin.settle(&id)["provisioning_status"], "ACTIVE");
    agent.delay(1500);
    let (status, _) = admin.put(&path, &json!({"loadbalancer": {"name": "renamed"}}));
    assert_eq!(status, 200);
    host.plane.enqueue(id.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while admin.get(&path).1["loadbalancer"]["provisioning_status"] != "ACTIVE" {
        assert!(std::time::Instant::now() < deadline, "never ACTIVE");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, body) = admin.delete(&format!("{path}?cascade=true"));
    assert_eq!(status, 204, "{body}");
    let after = admin.settle(&id);
    assert!(
        after.is_null(),
        "the acknowledged delete was undone: {after}"
    );
    host.stop();
}
