//! A load generator for acknowledged API writes: load balancer creates (each committed with its
//! job and flushed to disk before the answer) from 1 client, the baseline, and from 16 clients
//! at once, each run on a fresh store. Concurrent writers share flushes, so throughput should
//! grow with clients instead of staying at one fsync per create.
//!
//! `cargo bench -p lbaas-tests --bench api_writes`

use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_tests::control::{Client, ControlPlane};
use serde_json::json;

const CREATES: usize = 400;

fn run(clients: usize) -> Duration {
    let data = tempfile::tempdir().expect("temp dir");
    let cp = ControlPlane::start(data.path(), Auth::None);
    let admin = cp.client(None);
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net", "subnets": [{"id": "subnet", "cidr": "10.20.0.0/20"}]}}),
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let client: Client = cp.client(None).as_project("bench");
            std::thread::spawn(move || {
                for i in 0..CREATES / clients {
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
    started.elapsed()
}

fn main() {
    // Criterion-style filters are accepted and ignored: this generator always runs both loads.
    let _ = run(4); // warm-up: page cache, compile cache, allocator
    let baseline = run(1);
    let concurrent = run(16);
    let rate = |d: Duration| CREATES as f64 / d.as_secs_f64();
    println!(
        "api-writes/1-client    {:>8.0} creates/s ({CREATES} in {baseline:.2?})",
        rate(baseline)
    );
    println!(
        "api-writes/16-clients  {:>8.0} creates/s ({CREATES} in {concurrent:.2?})",
        rate(concurrent)
    );
    println!(
        "ratio 16-clients / 1-client throughput: {:.2}",
        rate(concurrent) / rate(baseline)
    );
}
