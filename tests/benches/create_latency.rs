//! Create-to-ACTIVE latency of full-tree load balancers (listener, pool, two members, health
//! monitor in one request) from 16 clients at once, on the acme-adc driver whose appliance
//! answers at once (a fake appliance on loopback). Each client creates its load balancers one
//! after another and polls every 2 ms until ACTIVE; the latency runs from sending the create to
//! seeing ACTIVE. The same with one client alone shows what one create costs without queueing.
//! Three runs of each, each on a fresh store. Results go to
//! `target/bench/create_latency.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench create_latency`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, ControlPlane};
use serde_json::{Value, json};

const RUNS: usize = 3;
const CLIENTS: usize = 16;
const PER_CLIENT: usize = 10;
const POLL_MS: u64 = 2;

fn tree(name: &str, flavor: &str) -> Value {
    json!({"loadbalancer": {
        "name": name, "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
        "listeners": [{
            "protocol": "HTTP", "protocol_port": 80,
            "default_pool": {
                "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                "members": [
                    {"address": "10.0.1.11", "protocol_port": 8080},
                    {"address": "10.0.1.12", "protocol_port": 8080}
                ],
                "healthmonitor": {"type": "HTTP", "delay": 5, "timeout": 3, "max_retries": 2,
                                  "url_path": "/healthz"}
            }
        }]
    }})
}

/// Milliseconds from each create to ACTIVE, `clients` creating at once.
fn run(clients: usize) -> Vec<f64> {
    let data = tempfile::tempdir().expect("temp dir");
    let appliance = FakeAppliance::start();
    let plane = ControlPlane::start(data.path(), Auth::None);
    let admin = plane.client(None).as_project("bench");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "vlan": 100,
                "subnets": [{"id": "subnet-vip", "cidr": "10.40.0.0/20"}]}}),
    );
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-app", "vlan": 201,
                "subnets": [{"id": "subnet-app", "cidr": "10.0.1.0/24"}]}}),
    );
    // The driver takes at most 64 VIPs per appliance.
    for n in 0..4 {
        admin.create(
            "/v2/admin/devices",
            &json!({"device": {"name": format!("adc-{n}"), "kind": "physical", "driver": "acme-adc",
                    "management_url": appliance.url(), "capacity": 10000, "cluster": "east"}}),
        );
    }
    let profile = admin.create(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": "acme", "provider_name": "acme-adc",
                "flavor_data": "{\"cluster\": \"east\"}"}}),
    );
    let flavor = admin.create(
        "/v2/lbaas/flavors",
        &json!({"flavor": {"name": "high-perf-lb", "flavor_profile_id": profile["flavorprofile"]["id"]}}),
    );
    let flavor = flavor["flavor"]["id"].as_str().expect("flavor").to_owned();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (client, flavor): (Client, String) = (admin.clone(), flavor.clone());
            std::thread::spawn(move || {
                (0..PER_CLIENT)
                    .map(|i| {
                        let started = Instant::now();
                        let created = client.create(
                            "/v2/lbaas/loadbalancers",
                            &tree(&format!("{c}-{i}"), &flavor),
                        );
                        let id = created["loadbalancer"]["id"]
                            .as_str()
                            .expect("id")
                            .to_owned();
                        loop {
                            let (_, shown) = client.get(&format!("/v2/lbaas/loadbalancers/{id}"));
                            match shown["loadbalancer"]["provisioning_status"].as_str() {
                                Some("ACTIVE") => break,
                                Some(s) if !s.starts_with("PENDING") => {
                                    panic!("load balancer {id} ended {shown}")
                                }
                                _ => std::thread::sleep(Duration::from_millis(POLL_MS)),
                            }
                        }
                        started.elapsed().as_secs_f64() * 1000.0
                    })
                    .collect::<Vec<f64>>()
            })
        })
        .collect();
    let latencies = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client"))
        .collect();
    plane.stop();
    latencies
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() {
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..RUNS {
        // One client alone: what one create costs without queueing behind others.
        for (clients, p50, p99) in [
            (CLIENTS, "p50-ms", "p99-ms"),
            (1, "alone-p50-ms", "alone-p99-ms"),
        ] {
            let mut latencies = run(clients);
            latencies.sort_by(f64::total_cmp);
            results
                .entry(p50)
                .or_default()
                .push(percentile(&latencies, 0.50));
            results
                .entry(p99)
                .or_default()
                .push(percentile(&latencies, 0.99));
        }
    }
    for (figure, runs) in &results {
        println!("create-latency/{figure:<7} {runs:.1?}");
    }
    lbaas_tests::record_bench("create_latency", &results);
}
