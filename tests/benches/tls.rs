//! TLS termination on a spawned HAProxy device (issue 28): full handshakes per second through a
//! `TERMINATED_HTTPS` listener the host configured, against — the baseline — the same HAProxy
//! binary configured by hand with the same certificate and key, the same TLS versions and ALPN,
//! in front of the same member; and how long a listener update with a new certificate takes to
//! reach clients (from the `PUT` to the first handshake that gets the new certificate).
//!
//! Handshakes: `openssl s_time -new` (a full handshake per connection, no resumption) for
//! [`SECONDS`] s, [`RUNS`] runs of each, alternating; RSA-2048 keys, so the server's private-key
//! operation is the cost measured. Rotation: [`ROTATIONS`] updates, alternating two bundles.
//! Results go to `target/bench/tls.json` for `cargo xtask bench`.
//!
//! `cargo bench -p lbaas-tests --bench tls` (needs `haproxy` and `openssl`)

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_host::provision::LocalProcesses;
use lbaas_keys::testing::{Pki, RSA_PKCS8};
use lbaas_tests::backend::Backend;
use lbaas_tests::control::ControlPlane;
use lbaas_tests::process::host_binary;
use serde_json::json;

const RUNS: usize = 5;
const SECONDS: u64 = 5;
const ROTATIONS: usize = 7;
const SNI: &str = "www.example.com";

/// Full handshakes per second against `address`, over about [`SECONDS`] s.
fn handshakes_per_second(address: SocketAddr) -> f64 {
    let started = Instant::now();
    let output = Command::new("openssl")
        .args(["s_time", "-connect", &address.to_string(), "-new", "-time"])
        .arg(SECONDS.to_string())
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_time");
    let took = started.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&output.stdout);
    // "1231 connections in 3 real seconds, …": the count is exact, the seconds are not.
    let connections: f64 = text
        .lines()
        .find(|line| line.contains("connections in") && line.contains("real seconds"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("s_time printed no count: {text}"));
    connections / took
}

/// The PEM body of the certificate in `file` (what `s_client` prints of the one served).
fn body_of(pki: &Pki, file: &str) -> String {
    String::from_utf8(pki.read(file))
        .expect("PEM")
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What `s_client` prints of one request to `address` with [`SNI`]: the certificate served
/// among it. A whole request, so the answer comes at once (with none, HAProxy would wait for
/// one until its request timeout).
fn served(address: SocketAddr, pki: &Pki) -> String {
    let request = format!("GET / HTTP/1.1\r\nhost: {SNI}\r\nconnection: close\r\n\r\n");
    lbaas_keys::testing::s_client(address, SNI, &pki.path("root.pem"), None, None, &request)
}

/// An HAProxy configured by hand: the listener the host renders, written as an operator would.
struct ByHand {
    child: std::process::Child,
    address: SocketAddr,
}

impl ByHand {
    fn start(dir: &Path, pki: &Pki, member: SocketAddr) -> Self {
        let pem = dir.join("www.pem");
        std::fs::write(
            &pem,
            pki.concat(&["www.example.com.pem", "int.pem", "www.example.com.key"]),
        )
        .expect("certificate file");
        let address: SocketAddr = format!("127.0.0.1:{}", lbaas_tests::free_loopback_port())
            .parse()
            .expect("address");
        let config = dir.join("haproxy.cfg");
        std::fs::write(
            &config,
            format!(
                "global\n    maxconn 2000\n\
                 defaults\n    mode http\n    timeout connect 5s\n    timeout client 50s\n    \
                 timeout server 50s\n\
                 frontend www\n    bind {address} ssl crt {pem} ssl-min-ver TLSv1.2 alpn h2,http/1.1\n    \
                 default_backend members\n\
                 backend members\n    server m1 {member}\n",
                pem = pem.display(),
            ),
        )
        .expect("haproxy.cfg");
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start haproxy");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(address).is_err() {
            assert!(
                Instant::now() < deadline,
                "the hand-configured HAProxy did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, address }
    }
}

impl Drop for ByHand {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops the spawned devices however the run ends (a panic included): they would hold the VIP.
struct Spawned(Arc<LocalProcesses>);

impl Drop for Spawned {
    fn drop(&mut self) {
        self.0.stop_all();
    }
}

fn main() {
    let data = tempfile::tempdir().expect("temp dir");
    let root = data.path().join("devices");
    let devices = Spawned(Arc::new(
        LocalProcesses::new(
            host_binary("lbaas-agent"),
            "haproxy".into(),
            root.clone(),
            "127.150.0.0/24".parse().expect("CIDR"),
            9443,
        )
        .expect("local provisioner"),
    ));
    let plane = ControlPlane::start_with_data_plane(
        data.path(),
        Auth::None,
        devices.0.clone(),
        Duration::from_millis(200),
    );
    let tenant = plane.client(None).as_project("bench");
    tenant.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip",
                "cidr": "127.151.0.0/24"}]}}),
    );
    let pki = Pki::new();
    pki.leaf("www.example.com", RSA_PKCS8);
    pki.leaf("www-2.example.com", RSA_PKCS8);
    let first = tenant.store_secret("www", &pki.pkcs12("www.example.com"));
    let second = tenant.store_secret("www-2", &pki.pkcs12("www-2.example.com"));
    let member = Backend::start("web");
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "tls", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 8443,
                           "default_tls_container_ref": first,
                           "alpn_protocols": ["h2", "http/1.1"],
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [{"address": "127.0.0.1",
                                                         "protocol_port": member.port()}]}}]}}),
    );
    let lb_id = created["loadbalancer"]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let lb = tenant.settle(&lb_id);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    let vip: SocketAddr = format!("{}:8443", lb["vip_address"].as_str().expect("VIP"))
        .parse()
        .expect("VIP address");
    let listener_id = created["loadbalancer"]["listeners"][0]["id"]
        .as_str()
        .expect("listener id")
        .to_owned();
    let by_hand = ByHand::start(
        data.path(),
        &pki,
        format!("127.0.0.1:{}", member.port())
            .parse()
            .expect("member"),
    );
    let www = body_of(&pki, "www.example.com.pem");
    for address in [vip, by_hand.address] {
        assert!(
            served(address, &pki).contains(&www),
            "{address} serves another certificate"
        );
    }

    let mut results: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..RUNS {
        for (name, address) in [("by-hand", by_hand.address), ("spawned", vip)] {
            let rate = handshakes_per_second(address);
            eprintln!("tls: {name}: {rate:.0} handshakes/s");
            results
                .entry(format!("{name}-handshakes-per-second"))
                .or_default()
                .push(rate);
        }
    }

    // Rotation: from the update's request to the first handshake served the new certificate.
    let bundles = [
        (second.as_str(), body_of(&pki, "www-2.example.com.pem")),
        (first.as_str(), www.clone()),
    ];
    for n in 0..ROTATIONS {
        let (reference, expected) = &bundles[n % 2];
        let started = Instant::now();
        let (status, body) = tenant.put(
            &format!("/v2/lbaas/listeners/{listener_id}"),
            &json!({"listener": {"default_tls_container_ref": reference}}),
        );
        assert_eq!(status, 200, "{body}");
        let deadline = started + Duration::from_secs(30);
        loop {
            let answer = served(vip, &pki);
            if answer.contains(expected.as_str()) {
                break;
            }
            if Instant::now() > deadline {
                let (_, lb) = tenant.get(&format!("/v2/lbaas/loadbalancers/{lb_id}"));
                panic!("the new certificate was never served: {lb}\n{answer}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        eprintln!("tls: rotation {n}: {ms:.0} ms");
        results.entry("rotation-ms".into()).or_default().push(ms);
        tenant.settle(&lb_id);
    }

    lbaas_tests::record_bench("tls", &results);
    drop(by_hand);
    plane.stop();
    drop(devices);
}
