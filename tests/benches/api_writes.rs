//! A load generator for acknowledged API writes: load balancer creates (each committed with its
//! job and flushed to disk before the answer) from 1 client, the baseline, and from 16 clients
//! at once, each run three times on a fresh store. Concurrent writers share flushes, so
//! throughput should grow with clients instead of staying at one fsync per create. A third load
//! (16 clients, answered before the flush) measures what durability costs. The results go to
//! `target/bench/api_writes.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench api_writes`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_tests::control::{Client, ControlPlane, Options};
use serde_json::json;

const CREATES: usize = 400;
/// Runs of each load; the median is reported, the others give the spread.
const RUNS: usize = 3;

fn run(clients: usize, durable: bool) -> Duration {
    let data = tempfile::tempdir().expect("temp dir");
    let cp = ControlPlane::start_with_options(
        data.path(),
        Auth::None,
        Options {
            acknowledge_before_flush: !durable,
            ..Options::default()
        },
    );
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
    let _ = run(4, true); // warm-up: page cache, compile cache, allocator
    let rate = |d: Duration| CREATES as f64 / d.as_secs_f64();
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for _ in 0..RUNS {
        for (figure, clients, durable) in [
            ("1-client", 1, true),
            ("16-clients", 16, true),
            ("16-clients-no-flush", 16, false),
        ] {
            results
                .entry(figure)
                .or_default()
                .push(rate(run(clients, durable)));
        }
    }
    let median = |runs: &[f64]| {
        let mut sorted = runs.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    for (figure, runs) in &results {
        println!(
            "api-writes/{figure:<11} {:>8.0} creates/s (median of {RUNS}: {runs:.0?})",
            median(runs)
        );
    }
    println!(
        "ratio 16-clients / 1-client throughput: {:.2}",
        median(&results["16-clients"]) / median(&results["1-client"])
    );
    lbaas_tests::record_bench("api_writes", &results);
}
