//! API read throughput and latency with wrk (from the system packages): `GET
//! /v2/lbaas/loadbalancers/{id}` against an in-process control plane, and — the baseline — a
//! static axum handler in the same process answering a body of the same size; and what the
//! API's request layers (metrics and the request span) cost on their own: the static handler
//! behind them against the bare one, under `lbaasd`'s own tracing subscriber, so spans cost
//! what they cost in production. Three runs of each, 16 connections, 2 wrk threads. Results
//! go to `target/bench/api_reads.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench api_reads` (needs `wrk`; `cargo xtask bench` installs it)

use std::collections::BTreeMap;

use lbaas_host::api::Auth;
use lbaas_tests::control::ControlPlane;
use lbaas_tests::wrk::wrk;
use serde_json::json;

const RUNS: usize = 3;

/// A static axum handler answering `body` to `GET /`, on its own runtime thread; behind the
/// API's request layers when `instrumented`.
fn static_server(body: String, instrumented: bool) -> String {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("tokio");
        runtime.block_on(async move {
            let listener = lbaas_tests::loopback_listener(ready_tx).await;
            let app = axum::Router::new().route(
                "/",
                axum::routing::get(move || {
                    let body = body.clone();
                    async move { ([("content-type", "application/json")], body) }
                }),
            );
            let app = if instrumented {
                let at = listener.local_addr().expect("address");
                let edge = std::sync::Arc::new(lbaas_host::api::edge::Edge::new(at));
                lbaas_host::api::metrics::instrument(app, edge, Default::default())
            } else {
                app
            };
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{}/", ready_rx.recv().expect("static server"))
}

fn main() {
    // lbaasd's own subscriber (logs to standard error, no trace exporter).
    let _traces = lbaas_host::traces::init(None).expect("subscriber");
    let data = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start(data.path(), Auth::None);
    let client = plane.client(None).as_project("bench");
    client.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net", "subnets": [{"id": "subnet", "cidr": "10.30.0.0/24"}]}}),
    );
    let created = client.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "read-me", "vip_subnet_id": "subnet",
                "listeners": [{"protocol": "TCP", "protocol_port": 80}]}}),
    );
    let id = created["loadbalancer"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    client.settle(&id);
    let path = format!("/v2/lbaas/loadbalancers/{id}");
    let (status, shown) = client.get(&path);
    assert_eq!(status, 200, "{shown}");
    let baseline = static_server(shown.to_string(), false);
    let instrumented = static_server(shown.to_string(), true);
    let api = format!("{}{path}", plane.url);

    let mut results: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..RUNS {
        for (name, url, headers) in [
            ("static", baseline.as_str(), &[][..]),
            ("instrumented", instrumented.as_str(), &[][..]),
            ("get", api.as_str(), &["X-Project-Id: bench"][..]),
        ] {
            let run = wrk(url, headers);
            results
                .entry(format!("{name}-requests-per-second"))
                .or_default()
                .push(run.requests_per_second);
            results
                .entry(format!("{name}-p50-ms"))
                .or_default()
                .push(run.p50_ms);
            results
                .entry(format!("{name}-p99-ms"))
                .or_default()
                .push(run.p99_ms);
        }
    }
    for (figure, runs) in &results {
        println!("api-reads/{figure:<28} {runs:.3?}");
    }
    lbaas_tests::record_bench("api_reads", &results);
    plane.stop();
}
