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
                                                "members": [{"address": "127.0.0.1", "protocol_port": 8080}]}}]}}),
    );
    let first_id = id(&first, "loadbalancer");
    let first_lb = tenant.settle(&first_id);
    assert_eq!(first_lb["provisioning_status"], "ACTIVE", "{first_lb}");
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
