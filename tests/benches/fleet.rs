//! Several hosts on PostgreSQL against one host on sled (the baseline), each load three times
//! on a fresh store:
//!
//! - acknowledged creates per second (16 clients, each create committed with its job before the
//!   answer): one host on sled, one host on PostgreSQL, two hosts on one PostgreSQL database
//!   with the clients split between them;
//! - `GET /v2/lbaas/loadbalancers/{id}` throughput of one host (wrk), on sled and on one of two
//!   hosts sharing PostgreSQL: reads come from each host's snapshot either way;
//! - seconds from a `kill -9` of a host holding 20 jobs in flight to those load balancers
//!   `ACTIVE` through the other host (`--lease 2s`).
//!
//! PostgreSQL runs with fsync on, as a deployment would. Results go to
//! `target/bench/fleet.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench fleet` (needs `wrk`; `cargo xtask bench` installs it)

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::builder::StoreChoice;
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane, Options};
use lbaas_tests::postgres;
use lbaas_tests::process::start_in_fleet;
use serde_json::json;

const CREATES: usize = 400;
const CLIENTS: usize = 16;
const RUNS: usize = 3;
const TAKEN_OVER: usize = 20;

fn host(data: &std::path::Path, store: Option<&str>) -> ControlPlane {
    ControlPlane::start_with_options(
        data,
        Auth::None,
        Options {
            store: store.map(|url| StoreChoice::Postgres {
                url: url.to_owned(),
                lease: Duration::from_secs(10),
            }),
            ..Options::default()
        },
    )
}

fn network(url: &str) {
    Client::new(url).create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net", "subnets": [{"id": "subnet", "cidr": "10.40.0.0/20"}]}}),
    );
}

/// Creates per second, the clients spread over `urls`.
fn creates(urls: &[String]) -> f64 {
    network(&urls[0]);
    let started = Instant::now();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let client = Client::new(&urls[c % urls.len()]).as_project("bench");
            std::thread::spawn(move || {
                for i in 0..CREATES / CLIENTS {
                    let body = json!({"loadbalancer": {"name": format!("{c}-{i}"), "vip_subnet_id": "subnet"}});
                    let (status, answer) = client.post("/v2/lbaas/loadbalancers", &body);
                    assert_eq!(status, 201, "{answer}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("client");
    }
    CREATES as f64 / started.elapsed().as_secs_f64()
}

/// wrk's requests per second for one load balancer's `GET` on the first of `urls`.
fn reads(urls: &[String]) -> f64 {
    network(&urls[0]);
    let client = Client::new(&urls[0]).as_project("bench");
    let created = client.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "read-me", "vip_subnet_id": "subnet"}}),
    );
    let id = created["loadbalancer"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    client.settle(&id);
    lbaas_tests::wrk::wrk(
        &format!("{}/v2/lbaas/loadbalancers/{id}", urls[0]),
        &["X-Project-Id: bench"],
    )
    .requests_per_second
}

/// Seconds from killing a host with jobs in flight to their load balancers `ACTIVE` through the
/// other host.
fn takeover() -> f64 {
    let database = postgres::database();
    let agent = FakeAppliance::start();
    let (data_a, data_b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let a = start_in_fleet(data_a.path(), &database.url);
    let b = start_in_fleet(data_b.path(), &database.url);
    let admin = Client::new(&b.url).as_project("bench");
    network(&b.url);
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "d", "kind": "virtual", "driver": "haproxy",
                "management_url": agent.url(), "capacity": 1000}}),
    );
    // Every job of a's stalls at the device until a is gone.
    agent.delay(60_000);
    let on_a = Client::new(&a.url).as_project("bench");
    let ids: Vec<String> = (0..TAKEN_OVER)
        .map(|i| {
            let body = json!({"loadbalancer": {"name": format!("a-{i}"), "vip_subnet_id": "subnet",
                "provider": "haproxy", "listeners": [{"protocol": "TCP", "protocol_port": 80}]}});
            let created = on_a.create("/v2/lbaas/loadbalancers", &body);
            created["loadbalancer"]["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    while agent.arrived() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    a.kill();
    agent.delay(0);
    let killed = Instant::now();
    for id in &ids {
        let lb = admin.settle(id);
        assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    }
    let seconds = killed.elapsed().as_secs_f64();
    drop(b);
    seconds
}

fn main() {
    // SAFETY: set before any thread of this process reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("LBAAS_PG_FSYNC", "on");
    }
    let mut results: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut record = |figure: &str, value: f64| {
        results.entry(figure.to_owned()).or_default().push(value);
    };
    for _ in 0..RUNS {
        for (figure, measure) in [("creates", creates as fn(&[String]) -> f64), ("get", reads)] {
            let data = tempfile::tempdir().expect("data");
            let one = host(data.path(), None);
            record(
                &format!("sled-1-host-{figure}"),
                measure(std::slice::from_ref(&one.url)),
            );
            one.stop();

            let database = postgres::database();
            let data = tempfile::tempdir().expect("data");
            let one = host(data.path(), Some(&database.url));
            record(
                &format!("postgres-1-host-{figure}"),
                measure(std::slice::from_ref(&one.url)),
            );
            one.stop();

            let database = postgres::database();
            let (data_a, data_b) = (
                tempfile::tempdir().expect("a"),
                tempfile::tempdir().expect("b"),
            );
            let a = host(data_a.path(), Some(&database.url));
            let b = host(data_b.path(), Some(&database.url));
            record(
                &format!("postgres-2-hosts-{figure}"),
                measure(&[a.url.clone(), b.url.clone()]),
            );
            a.stop();
            b.stop();
        }
        record("takeover-seconds", takeover());
    }
    for (figure, runs) in &results {
        println!("fleet/{figure:<28} {runs:.2?}");
    }
    lbaas_tests::record_bench("fleet", &results);
}
