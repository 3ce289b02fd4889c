//! The API's edge against clients that are not who they say (issue 26, findings 4 to 6), on an
//! `lbaasd` process serving an honest load balancer throughout: made-up methods neither grow
//! the host nor its metrics, a web page that rebinds its name to the host or posts across
//! sites drives nothing, and bad ids, oversized bodies and panics get Octavia's answers.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lbaas_tests::appliance::FakeAppliance;
use lbaas_tests::control::{Client, id_of};
use lbaas_tests::process::Server;
use serde_json::{Value, json};

/// One request on a connection of its own; the answer's status and body.
fn raw(address: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the host");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    stream.write_all(request).expect("send");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A request with `headers` and `body`, closing the connection after the answer.
fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        text.push_str(&format!("Host: {address}\r\n"));
    }
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    raw(address, &bytes)
}

/// A host with one honest load balancer ACTIVE on a registered HAProxy device (a stand-in
/// agent), and who talks to it.
struct World {
    server: Server,
    address: SocketAddr,
    admin: Client,
    honest: String,
    _agent: FakeAppliance,
    _data: tempfile::TempDir,
}

impl World {
    fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let driver_dir = lbaas_tests::driver_dir();
        let server = Server::start(data.path(), &driver_dir, &["--no-spawn"]);
        let address: SocketAddr = server
            .url
            .trim_start_matches("http://")
            .parse()
            .expect("address");
        let admin = Client::new(&server.url).as_project("admin-project");
        admin.create(
            "/v2/admin/networks",
            &json!({"network": {"id": "net-vip", "subnets": [{"id": "subnet-vip", "cidr": "127.0.152.0/24"}]}}),
        );
        let agent = FakeAppliance::start();
        admin.create(
            "/v2/admin/devices",
            &json!({"device": {"name": "haproxy-1", "kind": "virtual", "driver": "haproxy",
                    "management_url": agent.url(), "capacity": 8}}),
        );
        let tenant = Client::new(&server.url).as_project("tenant");
        let lb = tenant.create(
            "/v2/lbaas/loadbalancers",
            &json!({"loadbalancer": {"name": "honest", "vip_subnet_id": "subnet-vip",
                    "listeners": [{"protocol": "HTTP", "protocol_port": 80}]}}),
        );
        let honest = id_of(&lb, "loadbalancer");
        assert_eq!(tenant.settle(&honest)["provisioning_status"], "ACTIVE");
        Self {
            server,
            address,
            admin,
            honest,
            _agent: agent,
            _data: data,
        }
    }

    /// The honest load balancer is still there, ACTIVE.
    fn honest_untouched(&self) {
        let (status, lb) = self
            .admin
            .get(&format!("/v2/lbaas/loadbalancers/{}", self.honest));
        assert_eq!(status, 200, "{lb}");
        assert_eq!(lb["loadbalancer"]["provisioning_status"], "ACTIVE", "{lb}");
    }

    fn metrics(&self) -> String {
        let (status, text) = self.admin.text("/metrics");
        assert_eq!(status, 200, "{text}");
        text
    }

    fn loadbalancers(&self) -> usize {
        let (_, body) = self.admin.get("/v2/lbaas/loadbalancers");
        body["loadbalancers"].as_array().map_or(0, Vec::len)
    }
}

/// One host for the three findings (starting a host with its drivers is most of the time):
/// each attack in turn, the honest load balancer checked after each.
#[test]
fn the_edge_holds_before_authentication() {
    let world = World::start();
    made_up_methods_neither_grow_the_host_nor_its_metrics(&world);
    a_web_page_cannot_drive_the_api(&world);
    bad_ids_and_oversized_bodies_get_octavias_answers(&world);
}

/// xorshift64: the methods are random, and the same on every run.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn method(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from(b'A' + (self.next() % 26) as u8))
            .collect()
    }
}

/// Finding 4: 10,000 unauthenticated requests with made-up methods (some of 64 KiB) are each
/// answered 405 and counted under one label value; the scrape and the host's memory stay where
/// they were.
fn made_up_methods_neither_grow_the_host_nor_its_metrics(world: &World) {
    let before = world.metrics();
    let resident_before = world.server.resident_bytes();
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for i in 0..10_000 {
        let len = if i % 500 == 0 {
            64 << 10
        } else {
            1 + (random.next() % 40) as usize
        };
        let method = random.method(len);
        let (status, _) = request(world.address, &method, "/v2/lbaas/loadbalancers", &[], b"");
        // A made-up method that happens to be a real one is answered as such.
        if !["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"].contains(&method.as_str())
        {
            assert_eq!(status, 405, "{method:.40}");
        }
    }
    let after = world.metrics();
    let resident_after = world.server.resident_bytes();
    assert!(
        after.len() < before.len() + 8_192,
        "the scrape grew from {} to {} bytes",
        before.len(),
        after.len()
    );
    assert!(
        after.contains("method=\"other\""),
        "made-up methods are counted as `other`"
    );
    for line in after
        .lines()
        .filter(|l| l.starts_with("lbaas_http_requests_total"))
    {
        let method = line
            .split("method=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default();
        assert!(
            [
                "GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS", "other"
            ]
            .contains(&method),
            "{line}"
        );
    }
    // The finding kept 254 MiB for 2,000 requests; what stays now is the allocator's noise.
    assert!(
        resident_after < resident_before + (64 << 20),
        "resident memory grew from {resident_before} to {resident_after} bytes"
    );
    world.honest_untouched();
}

/// Finding 5: what a web page in the operator's browser can send. After rebinding its own
/// name to the host, its requests carry that name in `Host` and `Origin`; from its own site, a
/// form's simple POST. Neither creates anything, and the dashboard's forms are behind the same
/// edge.
fn a_web_page_cannot_drive_the_api(world: &World) {
    let lbs = world.loadbalancers();
    let body =
        json!({"loadbalancer": {"name": "from-a-page", "vip_subnet_id": "subnet-vip"}}).to_string();
    let rebound = format!("rebound.example:{}", world.address.port());
    let origin = format!("http://{rebound}");
    let (status, answer) = request(
        world.address,
        "POST",
        "/v2/lbaas/loadbalancers",
        &[
            ("Host", &rebound),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    let fault: Value = serde_json::from_str(&answer).expect("a fault");
    assert!(
        fault["faultstring"]
            .as_str()
            .unwrap_or_default()
            .contains("Host"),
        "{fault}"
    );
    // The right Host, another site's Origin.
    let (status, answer) = request(
        world.address,
        "POST",
        "/v2/lbaas/loadbalancers",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(status, 403, "{answer}");
    // A form posted across sites sends no Origin (older browsers) and a simple content type.
    let (status, answer) = request(
        world.address,
        "POST",
        "/v2/lbaas/loadbalancers",
        &[("Content-Type", "text/plain")],
        body.as_bytes(),
    );
    assert_eq!(status, 415, "{answer}");
    // The dashboard's buttons, from a rebound page.
    let (status, _) = request(
        world.address,
        "POST",
        "/dashboard/drivers/haproxy/rollback",
        &[
            ("Host", &rebound),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        b"csrf=x",
    );
    assert_eq!(status, 400);
    // And reading through a rebound name is refused as well.
    let (status, _) = request(
        world.address,
        "GET",
        "/v2/lbaas/loadbalancers",
        &[("Host", &rebound)],
        b"",
    );
    assert_eq!(status, 400);
    assert_eq!(world.loadbalancers(), lbs, "nothing was created");
    // The host's own name in a link is the one it was reached at.
    let (status, answer) = request(
        world.address,
        "GET",
        "/",
        &[("Host", &format!("localhost:{}", world.address.port()))],
        b"",
    );
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(&format!("http://localhost:{}/v2/", world.address.port())),
        "{answer}"
    );
    world.honest_untouched();
}

/// Finding 6: an id that is no id, a body over the limit, and the Octavia faults they get;
/// nothing stored changes.
fn bad_ids_and_oversized_bodies_get_octavias_answers(world: &World) {
    let json = [("Content-Type", "application/json")];
    let quota = json!({"quota": {"load_balancer": 5}}).to_string();
    let (status, answer) = request(
        world.address,
        "PUT",
        "/v2/lbaas/quotas/a%00b",
        &json,
        quota.as_bytes(),
    );
    assert_eq!(status, 400, "{answer}");
    let long = format!("/v2/lbaas/loadbalancers/{}", "a".repeat(300));
    let (status, answer) = request(world.address, "GET", &long, &[], b"");
    assert_eq!(status, 400, "{answer}");
    let huge = format!(
        "{{\"loadbalancer\": {{\"name\": \"{}\"}}}}",
        "x".repeat(3 << 20)
    );
    let (status, answer) = request(
        world.address,
        "PUT",
        &format!("/v2/lbaas/loadbalancers/{}", world.honest),
        &json,
        huge.as_bytes(),
    );
    assert_eq!(status, 413, "{answer}");
    let fault: Value = serde_json::from_str(&answer).expect("a fault");
    assert_eq!(fault["faultcode"], "Client", "{fault}");
    let (_, quotas) = world.admin.get("/v2/lbaas/quotas");
    assert!(!quotas.to_string().contains("a\\u0000b"), "{quotas}");
    world.honest_untouched();
}
