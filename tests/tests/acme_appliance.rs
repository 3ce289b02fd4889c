//! The `acme-adc` driver against the simulated appliance (`acme-appliance`, a separate
//! process on loopback), through the public API only: what the driver pushes is what the
//! appliance keeps, and a limit the appliance enforces ends the load balancer in `ERROR` with
//! the appliance's own words.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lbaas_host::api::Auth;
use lbaas_tests::control::{Client, ControlPlane};
use serde_json::{Value, json};

/// The simulator process, killed on drop.
struct Simulator {
    child: Child,
    url: String,
}

impl Simulator {
    fn start(dir: &std::path::Path, extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        std::fs::write(dir.join("token"), "appliance-token").expect("token file");
        let child = Command::new(env!("CARGO_BIN_EXE_acme-appliance"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--token-file")
            .arg(dir.join("token"))
            .arg("--state-file")
            .arg(dir.join("appliance.json"))
            .args(extra)
            .stderr(Stdio::null())
            .spawn()
            .expect("start the simulator");
        let url = format!("http://127.0.0.1:{port}");
        let client = Client::new(&url);
        let deadline = Instant::now() + Duration::from_secs(20);
        while client
            .try_call("GET", "/api/v3/network/vlans", None)
            .is_none()
        {
            assert!(Instant::now() < deadline, "the simulator did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, url }
    }

    /// The appliance's configuration, read over its own API.
    fn get(&self, path: &str) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        agent
            .get(format!("{}{path}", self.url))
            .header("authorization", "Bearer appliance-token")
            .call()
            .expect("simulator answers")
            .body_mut()
            .read_json()
            .expect("JSON")
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn id(body: &Value, kind: &str) -> String {
    body[kind]["id"].as_str().expect("id").to_owned()
}

/// The load balancer's PROMETHEUS listener (API 2.25) is the appliance's telemetry on its VIP:
/// a Prometheus client reads its listeners, pool and member in Octavia's names, from sources
/// its `allowed_cidrs` admit only.
fn metrics_listener_serves_its_service(tenant: &Client, lb: &Value) {
    let lb_id = lb["id"].as_str().expect("id");
    let vip: std::net::IpAddr = lb["vip_address"]
        .as_str()
        .and_then(|a| a.parse().ok())
        .expect("VIP");
    let scraped = std::net::SocketAddr::new(vip, 9100);
    let (_, listeners) = tenant.get(&format!("/v2/lbaas/listeners?loadbalancer_id={lb_id}"));
    let listeners: Vec<(String, String)> = listeners["listeners"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|l| {
            let id = l["id"].as_str().expect("id").to_owned();
            (l["protocol"].as_str().expect("protocol").to_owned(), id)
        })
        .collect();
    let (_, pools) = tenant.get(&format!("/v2/lbaas/pools?loadbalancer_id={lb_id}"));
    let pool = pools["pools"][0]["id"].as_str().expect("pool").to_owned();
    let mut samples = None;
    lbaas_tests::wait_until("the metrics listener answers", || {
        samples = lbaas_tests::scrape(scraped);
        samples.is_some()
    });
    let samples = samples.unwrap_or_default();
    let value = |name: &str, label: &str, id: &str| {
        samples
            .iter()
            .find(|(metric, labels, _)| metric == name && labels.get(label) == Some(&id.into()))
            .map(|(_, _, value)| *value)
    };
    for (protocol, id) in &listeners {
        assert_eq!(
            value("octavia_listener_status", "listener", id),
            Some(1.0),
            "{protocol} listener {id}: {samples:?}"
        );
    }
    assert_eq!(
        value("octavia_pool_active_members", "pool", &pool),
        Some(1.0)
    );
    assert!(
        samples
            .iter()
            .any(|(name, _, v)| name == "octavia_loadbalancer_listeners" && *v == 2.0)
    );
    let metrics = &listeners
        .iter()
        .find(|(protocol, _)| protocol == "PROMETHEUS")
        .expect("the metrics listener")
        .1;
    let (status, body) = tenant.put(
        &format!("/v2/lbaas/listeners/{metrics}"),
        &json!({"listener": {"allowed_cidrs": ["10.0.0.0/8"]}}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(tenant.settle(lb_id)["provisioning_status"], "ACTIVE");
    lbaas_tests::wait_until("the metrics listener refuses this scraper", || {
        lbaas_tests::scrape(scraped).is_none()
    });
}

#[test]
fn the_driver_configures_the_simulated_appliance_and_meets_its_limits() {
    let data = tempfile::tempdir().expect("temp dir");
    // The appliance really has one interface with room for one VLAN; its registration claims
    // more, as a mistaken operator might.
    let appliance = Simulator::start(
        data.path(),
        &["--interfaces", "1", "--max-vlans-per-interface", "1"],
    );
    let plane = ControlPlane::start(data.path(), Auth::None);
    let admin = plane.client(None).as_project("admin-project");
    let tenant = plane.client(None).as_project("tenant");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public", "vlan": 100,
                "subnets": [{"id": "subnet-vip", "cidr": "127.150.0.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-app", "name": "app", "vlan": 201,
                "subnets": [{"id": "subnet-app", "cidr": "10.0.1.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "adc-1", "kind": "physical", "driver": "acme-adc",
                "management_url": appliance.url, "capacity": 8,
                "credentials": {"type": "bearer", "token": "appliance-token"},
                "metadata": {"max-vlans-per-interface": "4", "interfaces": "1"}}}),
    );
    let profile = admin.create(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": "adc", "provider_name": "acme-adc", "flavor_data": "{}"}}),
    );
    let flavor = id(
        &admin.create(
            "/v2/lbaas/flavors",
            &json!({"flavor": {"name": "adc", "flavor_profile_id": id(&profile, "flavorprofile")}}),
        ),
        "flavor",
    );

    // A load balancer on the VIP network's VLAN: the appliance gets the VLAN and the service.
    let first = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "fast", "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
                "listeners": [{"protocol": "HTTP", "protocol_port": 80,
                               "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                                "members": [{"address": "127.0.0.1", "protocol_port": 8080}]}},
                              {"protocol": "PROMETHEUS", "protocol_port": 9100,
                               "allowed_cidrs": ["127.0.0.0/8"]}]}}),
    );
    let first_id = id(&first, "loadbalancer");
    let first_lb = tenant.settle(&first_id);
    assert_eq!(first_lb["provisioning_status"], "ACTIVE", "{first_lb}");
    metrics_listener_serves_its_service(&tenant, &first_lb);
    let vlans = appliance.get("/api/v3/network/vlans");
    assert_eq!(vlans["vlans"][0]["tag"], 100, "{vlans}");
    assert_eq!(vlans["vlans"][0]["interface"], "1.1");
    let services = appliance.get("/api/v3/virtual-services");
    let service = &services["virtualServices"][format!("tenant/{first_id}")];
    assert_eq!(
        service["spec"]["vip"], first_lb["vip_address"],
        "{services}"
    );
    assert_eq!(service["spec"]["pools"][0]["members"][0]["port"], 8080);

    // Members on another VLAN need a second VLAN on the only interface: the appliance says no,
    // whatever its registration claimed, and the load balancer ends ERROR with its reason.
    let second = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "app", "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
                "listeners": [{"protocol": "TCP", "protocol_port": 443,
                               "default_pool": {"protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                                                "members": [{"address": "10.0.1.10", "protocol_port": 443,
                                                             "subnet_id": "subnet-app"}]}}]}}),
    );
    let second_id = id(&second, "loadbalancer");
    let refused = tenant.settle(&second_id);
    assert_eq!(refused["provisioning_status"], "ERROR", "{refused}");
    let fault = refused["fault"].as_str().unwrap_or_default();
    assert!(
        fault.contains("interface 1.1 already carries 1 VLANs"),
        "the appliance's reason: {fault}"
    );
    let services = appliance.get("/api/v3/virtual-services");
    assert_eq!(
        services["virtualServices"].as_object().map(|s| s.len()),
        Some(1),
        "the refused service is not on the appliance: {services}"
    );

    // Cascade delete takes the service and its VLAN off the appliance.
    for lb in [&first_id, &second_id] {
        let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb}?cascade=true"));
        assert_eq!(status, 204);
        assert!(tenant.settle(lb).is_null());
    }
    let services = appliance.get("/api/v3/virtual-services");
    assert_eq!(services["virtualServices"], json!({}), "{services}");
    let vlans = appliance.get("/api/v3/network/vlans");
    assert_eq!(vlans["vlans"], json!([]), "{vlans}");
    plane.stop();
}

/// TLS on the appliance (issue 28): the driver names each certificate file, the host sends it
/// to the appliance for the load balancer's own virtual service, and the service offloads TLS
/// with the files it holds (SNI, client authentication with its revocation list, HSTS,
/// Octavia's default versions and ciphers) and re-encrypts towards members. The appliance
/// shows each file's kind and digest, never its bytes, and forgets them with the service.
#[test]
fn the_appliance_offloads_tls_with_files_the_host_sent() {
    use lbaas_keys::testing::{EC, Pki};
    let data = tempfile::tempdir().expect("temp dir");
    let appliance = Simulator::start(data.path(), &[]);
    let plane = ControlPlane::start(data.path(), Auth::None);
    let admin = plane.client(None).as_project("admin-project");
    let tenant = plane.client(None).as_project("tenant");
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip", "name": "public", "vlan": 100,
                "subnets": [{"id": "subnet-vip", "cidr": "127.151.0.0/24"}]}}),
    );
    admin.create(
        "/v2/admin/devices",
        &json!({"device": {"name": "adc-1", "kind": "physical", "driver": "acme-adc",
                "management_url": appliance.url, "capacity": 8,
                "credentials": {"type": "bearer", "token": "appliance-token"}}}),
    );
    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    pki.leaf("api.example.com", EC);
    let www = tenant.store_secret("www", &pki.pkcs12("www.example.com"));
    let api = tenant.store_secret("api", &pki.pkcs12("api.example.com"));
    let ca = tenant.store_secret("ca", &pki.concat(&["int.pem", "root.pem"]));
    let crl = tenant.store_secret("crl", &pki.crl("int"));
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "secure", "vip_subnet_id": "subnet-vip",
                "provider": "acme-adc",
                "listeners": [{"protocol": "TERMINATED_HTTPS", "protocol_port": 443,
                               "default_tls_container_ref": www, "sni_container_refs": [api],
                               "client_authentication": "OPTIONAL",
                               "client_ca_tls_container_ref": ca, "client_crl_container_ref": crl,
                               "hsts_max_age": 600,
                               "insert_headers": {"X-SSL-Client-CN": "true"},
                               "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                                "tls_enabled": true, "ca_tls_container_ref": ca,
                                                "members": [{"address": "127.0.0.1",
                                                             "protocol_port": 8443}]}}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = tenant.settle(&lb_id);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");

    let services = appliance.get("/api/v3/virtual-services");
    let service = &services["virtualServices"][format!("tenant/{lb_id}")];
    let server = &service["spec"]["virtualServers"][0];
    assert_eq!(server["profile"], "https-offload", "{service}");
    let offload = &server["tls"];
    assert_eq!(
        offload["certificates"].as_array().map(Vec::len),
        Some(2),
        "{offload}"
    );
    assert_eq!(offload["clientAuthentication"], "request", "{offload}");
    assert_eq!(
        offload["versions"],
        json!(["TLSv1.2", "TLSv1.3"]),
        "{offload}"
    );
    assert_eq!(
        offload["alpn"],
        json!(["h2", "http/1.1", "http/1.0"]),
        "{offload}"
    );
    assert_eq!(offload["hsts"]["maxAgeSeconds"], 600, "{offload}");
    assert!(
        offload["ciphers"]
            .as_str()
            .is_some_and(|c| c.contains("ECDHE-ECDSA-AES128-GCM-SHA256")),
        "{offload}"
    );
    assert_eq!(
        server["insertHeaders"],
        json!(["X-SSL-Client-CN"]),
        "{server}"
    );
    let pool = &service["spec"]["pools"][0]["tls"];
    assert_eq!(pool["verify"], true, "{pool}");

    // Operators see when the listener's certificates expire: the test CA signs for 30 days.
    let (status, metrics) = admin.text("/metrics");
    assert_eq!(status, 200, "{metrics}");
    let listener_id = lb["listeners"][0]["id"].as_str().expect("listener");
    let expiry: i64 = metrics
        .lines()
        .find(|line| {
            line.starts_with("lbaas_tls_certificate_expiry_timestamp_seconds{")
                && line.contains(listener_id)
        })
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no expiry for listener {listener_id}: {metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64;
    let days = (expiry - now) as f64 / 86_400.0;
    assert!((29.0..=31.0).contains(&days), "expires in {days} days");
    // The dashboard lists it too, soonest first.
    let (status, page) = admin.text("/dashboard");
    assert_eq!(status, 200, "{page}");
    let row = page
        .split("<tr data-id=\"")
        .find(|row| row.starts_with(listener_id) && row.contains("<td class=\"days\">"))
        .unwrap_or_else(|| panic!("no certificate row for {listener_id}: {page}"));
    // Thirty days from issue is 30 days left in the second it was signed and 29 after: the
    // dashboard marks a certificate from under 30 days left.
    if row.contains("<td class=\"days\">30</td>") {
        assert!(row.contains("class=\"expiry-ok\""), "{row}");
    } else {
        assert!(row.contains("<td class=\"days\">29</td>"), "{row}");
        assert!(row.contains("class=\"expiry-soon\""), "{row}");
    }

    // Five files: two served certificates with their keys, the CA and the list for clients,
    // the CA for members. Shown by kind and digest only.
    let files = appliance.get(&format!("/api/v3/certificates/{lb_id}"));
    let listed = files["certificates"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(listed.len(), 5, "{files}");
    let kinds: Vec<&str> = listed.iter().filter_map(|f| f["kind"].as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "certificate-and-key")
            .count(),
        2,
        "{files}"
    );
    assert!(kinds.contains(&"revocation-list"), "{files}");
    assert!(!files.to_string().contains("BEGIN"), "{files}");

    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"));
    assert_eq!(status, 204);
    assert!(tenant.settle(&lb_id).is_null());
    let files = appliance.get(&format!("/api/v3/certificates/{lb_id}"));
    assert_eq!(files["certificates"], json!([]), "{files}");
    plane.stop();
}
