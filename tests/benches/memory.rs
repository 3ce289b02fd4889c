//! The host's resident memory (RSS of this process, in which a whole control plane runs):
//! idle with the bundled drivers, with 20 more driver versions uploaded (and loaded), and with
//! 100,000 load balancers (each with a listener) in the store, the host restarted over it and
//! its snapshot loaded. Results go to `target/bench/memory.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench memory`

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::model::{Common, Listener, LoadBalancer, Protocol};
use lbaas_host::store::{Batch, SledStore};
use lbaas_tests::control::ControlPlane;
use lbaas_tests::lifecycle_fixtures;

const VERSIONS: usize = 20;
const LOAD_BALANCERS: usize = 100_000;

/// Resident memory of this process, in MiB.
fn rss_mib() -> f64 {
    lbaas_tests::rss_bytes() as f64 / (1024.0 * 1024.0)
}

/// `component` with one more custom section: the same driver, another SHA-256.
fn variant(component: &[u8], n: usize) -> Vec<u8> {
    fn leb128(mut value: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"lbaas-bench-variant";
    let payload = n.to_le_bytes();
    let mut body = Vec::new();
    leb128(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0); // custom section
    leb128(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn common(id: String) -> Common {
    lbaas_tests::active_common(id, "bench".into())
}

/// Load balancer `i` and its TCP listener, ACTIVE on one of 1,000 devices.
fn load_balancer(i: usize) -> (LoadBalancer, Listener) {
    let lb = LoadBalancer {
        common: common(format!("lb-{i:06}")),
        vip_address: format!("10.{}.{}.{}", 64 + i / 65536, (i / 256) % 256, i % 256),
        vip_network_id: "net".into(),
        vip_subnet_id: "subnet".into(),
        vip_port_id: String::new(),
        provider: "haproxy".into(),
        flavor_id: None,
        device_id: Some(format!("dev-{:04}", i % 1000)),
        fault: None,
        migration: None,
        availability_zone: None,
    };
    let listener = Listener {
        common: common(format!("listener-{i:06}")),
        loadbalancer_id: lb.common.id.clone(),
        protocol: Protocol::Tcp,
        protocol_port: 80,
        connection_limit: -1,
        default_pool_id: None,
        timeout_client_data: 50_000,
        timeout_member_connect: 5_000,
        timeout_member_data: 50_000,
        timeout_tcp_inspect: 0,
        allowed_cidrs: Vec::new(),
        insert_headers: Default::default(),
        tls: Default::default(),
    };
    (lb, listener)
}

fn main() {
    let data = tempfile::tempdir().expect("temp dir");
    let plane = ControlPlane::start(data.path(), Auth::None);
    let admin = plane.client(None).as_project("bench");
    let mut results: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    std::thread::sleep(Duration::from_secs(1));
    results.insert("idle", vec![rss_mib()]);

    let next = std::fs::read(&lifecycle_fixtures().haproxy_next).expect("haproxy-next");
    for n in 0..VERSIONS {
        let (status, body) = admin.upload("/v2/admin/drivers", variant(&next, n), &[]);
        assert_eq!(status, 201, "version {n}: {body}");
    }
    results.insert("20-versions", vec![rss_mib()]);

    plane.stop();

    // 100,000 load balancers, written to the store as the API would have left them.
    let seeded = Instant::now();
    {
        let db = lbaas_host::store::open_database(
            &data.path().join("db"),
            lbaas_host::store::DEFAULT_CACHE_BYTES,
        )
        .expect("db");
        let store = SledStore::new(db.clone()).expect("store");
        for chunk in 0..LOAD_BALANCERS / 10_000 {
            let mut batch = Batch::new();
            for i in chunk * 10_000..(chunk + 1) * 10_000 {
                let (lb, listener) = load_balancer(i);
                batch.put(&lb).put(&listener);
            }
            batch.commit(&store).expect("commit");
        }
        db.flush().expect("flush");
    }
    let seeded = seeded.elapsed();
    let plane = ControlPlane::start(data.path(), Auth::None);
    let admin = plane.client(None).as_project("bench");
    // One read loads the snapshot (a list would also build every view it filters).
    let (status, shown) = admin.get("/v2/lbaas/loadbalancers/lb-000000");
    assert_eq!(status, 200, "{shown}");
    results.insert("100k-load-balancers", vec![rss_mib()]);

    for (figure, mib) in &results {
        println!("memory/{figure:<20} {:>8.1} MiB", mib[0]);
    }
    println!("{LOAD_BALANCERS} load balancers and listeners written in {seeded:.1?}");
    lbaas_tests::record_bench("memory", &results);
    plane.stop();
}
