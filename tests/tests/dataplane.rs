//! The data plane end to end, through the public API only: the HAProxy driver's load
//! balancers run on devices the host spawns (an `lbaas-agent` and a real HAProxy on a loopback
//! address), and the tests send real traffic through their VIPs to tiny backends.

use lbaas_tests::wait_until;
use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use lbaas_agent::haproxy::running;
use lbaas_host::api::Auth;
use lbaas_host::provision::{LocalProcesses, Provisioner};
use lbaas_keys::testing::Pki;
use lbaas_tests::backend::{Backend, Held, accepts, http_get, http_request, tcp_line};
use lbaas_tests::control::{Client, ControlPlane};
use lbaas_tests::process::host_binary;
use serde_json::{Value, json};

const STATUS_INTERVAL: Duration = Duration::from_millis(200);

/// Stops every device a test's provisioner started, however the test ends.
struct Devices(Arc<LocalProcesses>);

impl Devices {
    fn new(root: &Path, addresses: &str) -> Self {
        let local = LocalProcesses::new(
            host_binary("lbaas-agent"),
            "haproxy".into(),
            root.to_owned(),
            addresses.parse().expect("CIDR"),
            9443,
        )
        .expect("local provisioner");
        Self(Arc::new(local))
    }

    /// Devices in network namespaces of their own, with management addresses from
    /// `addresses` and the host at `gateway` on their links.
    fn isolated(root: &Path, addresses: &str, gateway: &str, gateway_v6: &str) -> Self {
        let local = LocalProcesses::isolated(
            host_binary("lbaas-agent"),
            "haproxy".into(),
            root.to_owned(),
            addresses.parse().expect("CIDR"),
            gateway.parse().expect("gateway"),
            9443,
        )
        .and_then(|local| local.with_ipv6_gateway(gateway_v6.parse().expect("IPv6 gateway")))
        .expect("isolated local provisioner");
        Self(Arc::new(local))
    }

    /// Handles of the device folders.
    fn handles(&self, root: &Path) -> Vec<String> {
        Self::folders(root)
    }

    /// Handles of the device folders under `root`, whoever made them.
    fn folders(root: &Path) -> Vec<String> {
        let mut handles: Vec<String> = std::fs::read_dir(root)
            .map(|dir| {
                dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                    .collect()
            })
            .unwrap_or_default();
        handles.sort();
        handles
    }
}

impl Drop for Devices {
    fn drop(&mut self) {
        self.0.stop_all();
    }
}

/// A control plane whose HAProxy devices it spawns, with a VIP network, and an admin and a
/// tenant to call it. As `lbaasd serve` does by default, each device runs in a network
/// namespace of its own when the tests run as root (CI does), and on a loopback address of the
/// host otherwise. The tests of this file run at once: test `n` takes its own ranges (devices
/// 198.18.1n.0/24 with the host at 198.19.1n.1, VIPs 198.51.100.32n/27, which only this stage
/// routes, to its devices or nowhere; shared: devices 127.13n, VIPs 127.14n). `lbaasd`'s own
/// defaults (198.18.0.0/16, 198.19.0.1) are left to the test of those. Fields drop in
/// order: the host stops before its devices, and the data folder goes last (bind them in
/// reverse when destructuring).
struct Stage {
    plane: ControlPlane,
    admin: Client,
    tenant: Client,
    local: Devices,
    root: std::path::PathBuf,
    /// Where this machine's members listen: the devices' gateway, or loopback.
    members: String,
    /// The shared VIP network's CIDR.
    vips: String,
    /// The same for IPv6 (the network is the test's to make).
    six: Six,
    _unrouted: Vec<Unrouted>,
    data: tempfile::TempDir,
}

impl Stage {
    fn start(n: u8) -> Self {
        if lbaas_tests::is_root() {
            let gateway = format!("198.19.1{n}.1");
            let vips = format!("198.51.100.{}/27", 32 * n);
            let six = Six {
                members: format!("fd00:19:1{n}::1"),
                network: format!("fd00:51:1{n}::/64"),
                vip: format!("fd00:51:1{n}::5"),
            };
            let unrouted = vec![Unrouted::range(&vips), Unrouted::range(&six.network)];
            let devices = format!("198.18.1{n}.0/24");
            let mut stage = Self::with_devices(
                |root| Devices::isolated(root, &devices, &gateway, &six.members),
                &vips,
                &gateway,
            );
            stage.six = six;
            stage._unrouted = unrouted;
            stage
        } else {
            Self::shared(n)
        }
    }

    /// Devices on loopback addresses of the host's own network.
    fn shared(n: u8) -> Self {
        let devices = format!("127.13{n}.0.0/24");
        Self::with_devices(
            |root| Devices::new(root, &devices),
            &format!("127.14{n}.0.0/24"),
            "127.0.0.1",
        )
    }

    /// A stage whose devices `devices` makes in the folder it is given, members listening at
    /// `members`.
    fn with_devices(devices: impl FnOnce(&Path) -> Devices, vips: &str, members: &str) -> Self {
        let data = deep_data_folder();
        let root = data.path().join("devices");
        let local = devices(&root);
        let plane = ControlPlane::start_with_data_plane(
            data.path(),
            Auth::None,
            local.0.clone(),
            STATUS_INTERVAL,
        );
        let admin = plane.client(None).as_project("admin-project");
        let tenant = plane.client(None).as_project("tenant");
        setup_network(&admin, "vip", vips);
        Self {
            plane,
            admin,
            tenant,
            local,
            root,
            members: members.to_owned(),
            vips: vips.to_owned(),
            // Shared devices: IPv6 on the host's loopback, the one IPv6 address a test may use.
            six: Six {
                members: "::1".into(),
                network: "::1/128".into(),
                vip: "::1".into(),
            },
            _unrouted: Vec::new(),
            data,
        }
    }
}

/// A data folder whose path is over 80 bytes: with the devices' folder, a device's and a
/// socket's name added, deeper than a Unix socket's path may be (107 bytes). Every stage's devices, and
/// `lbaasd serve`'s, live in one, so every traffic test shows devices serving from it.
fn deep_data_folder() -> tempfile::TempDir {
    let data = tempfile::Builder::new()
        .prefix("lbaas-a-data-folder-deeper-than-a-unix-socket-path-once-a-device-folder-is-added-")
        .tempdir()
        .expect("temp dir");
    assert!(
        data.path().as_os_str().len() > 80,
        "{}",
        data.path().display()
    );
    data
}

/// Where a stage's IPv6 members listen, its IPv6 VIP network, and the VIP a test takes on it.
struct Six {
    members: String,
    network: String,
    vip: String,
}

/// A test's VIP range routed nowhere but to its devices: a VIP no device serves is refused on
/// the host (an `unreachable` route) instead of being sent towards the machine's default route.
struct Unrouted(String);

impl Unrouted {
    fn range(cidr: &str) -> Self {
        let _ = Command::new("ip")
            .args(["route", "del", cidr])
            .stderr(std::process::Stdio::null())
            .status();
        let added = Command::new("ip")
            .args(["route", "add", "unreachable", cidr])
            .status()
            .is_ok_and(|status| status.success());
        assert!(added, "cannot keep {cidr} from the default route");
        Self(cidr.to_owned())
    }
}

impl Drop for Unrouted {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["route", "del", "unreachable", &self.0])
            .status();
    }
}

fn id(body: &Value, kind: &str) -> String {
    body[kind]["id"].as_str().expect("id").to_owned()
}

fn vip(lb: &Value, port: u16) -> SocketAddr {
    let ip: IpAddr = lb["vip_address"]
        .as_str()
        .expect("VIP")
        .parse()
        .expect("IP");
    SocketAddr::new(ip, port)
}

/// Who answered `count` requests, in order.
fn answers(address: SocketAddr, count: usize) -> Vec<String> {
    (0..count)
        .map(|_| http_get(address).unwrap_or_else(|| "(failed)".into()))
        .collect()
}

fn distinct(answers: &[String]) -> BTreeSet<&str> {
    answers.iter().map(String::as_str).collect()
}

/// Waits until requests to `address` reach exactly `backends`.
fn wait_for_backends(address: SocketAddr, backends: &[&str]) {
    let wanted: BTreeSet<&str> = backends.iter().copied().collect();
    wait_until(&format!("{address} reaches exactly {backends:?}"), || {
        distinct(&answers(address, backends.len() * 4)) == wanted
    });
}

fn operating(client: &Client, path: &str, kind: &str) -> String {
    let (_, body) = client.get(path);
    body[kind]["operating_status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn wait_operating(client: &Client, path: &str, kind: &str, status: &str) {
    wait_until(&format!("{path} is {status}"), || {
        operating(client, path, kind) == status
    });
}

fn settle_active(client: &Client, lb_id: &str) -> Value {
    let lb = client.settle(lb_id);
    assert_eq!(lb["provisioning_status"], "ACTIVE", "{lb}");
    lb
}

fn setup_network(admin: &Client, id: &str, cidr: &str) {
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": format!("net-{id}"), "name": id,
                "subnets": [{"id": format!("subnet-{id}"), "cidr": cidr}]}}),
    );
}

fn haproxy_flavor(admin: &Client) -> String {
    let profile = admin.create(
        "/v2/lbaas/flavorprofiles",
        &json!({"flavorprofile": {"name": "haproxy", "provider_name": "haproxy",
                "flavor_data": json!({"maxconn": 2000}).to_string()}}),
    );
    let flavor = admin.create(
        "/v2/lbaas/flavors",
        &json!({"flavor": {"name": "haproxy", "flavor_profile_id": id(&profile, "flavorprofile")}}),
    );
    id(&flavor, "flavor")
}

fn member(backend: &Backend) -> Value {
    json!({"address": backend.address.ip().to_string(), "protocol_port": backend.port(),
           "name": backend.name})
}

/// The member of `pool_id` that points at `backend`.
fn member_id(client: &Client, pool_id: &str, backend: &Backend) -> String {
    let (_, body) = client.get(&format!("/v2/lbaas/pools/{pool_id}/members"));
    body["members"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["protocol_port"] == backend.port())
        .and_then(|m| m["id"].as_str())
        .expect("member of the backend")
        .to_owned()
}

/// The id of the first of `lb_id`'s `kind` (`pools`, `listeners`) of `protocol`.
fn child_of(client: &Client, kind: &str, lb_id: &str, protocol: &str) -> String {
    let (_, body) = client.get(&format!("/v2/lbaas/{kind}?loadbalancer_id={lb_id}"));
    body[kind]
        .as_array()
        .expect(kind)
        .iter()
        .find(|child| child["protocol"] == protocol)
        .and_then(|child| child["id"].as_str())
        .unwrap_or_else(|| panic!("{lb_id} has no {protocol} among its {kind}"))
        .to_owned()
}

fn pool_of(client: &Client, lb_id: &str, protocol: &str) -> String {
    child_of(client, "pools", lb_id, protocol)
}

fn listener_of(client: &Client, lb_id: &str, protocol: &str) -> String {
    child_of(client, "listeners", lb_id, protocol)
}

/// A load balancer of the HAProxy driver named `name`: one HTTP listener on `port` with a
/// round-robin pool of `backend`.
fn web_lb(name: &str, port: u16, backend: &Backend) -> Value {
    json!({"loadbalancer": {
        "name": name, "vip_subnet_id": "subnet-vip", "provider": "haproxy",
        "listeners": [{"protocol": "HTTP", "protocol_port": port,
                       "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                        "members": [member(backend)]}}]}})
}

fn devices(admin: &Client) -> Vec<Value> {
    let (_, body) = admin.get("/v2/admin/devices");
    body["devices"].as_array().cloned().unwrap_or_default()
}

#[test]
fn traffic_flows_through_spawned_haproxy_devices() {
    // Bound in this order so they drop in reverse: the host, then its devices, then the folder.
    let Stage {
        _unrouted,
        members,
        six: _,
        vips: _,
        data: _data,
        root,
        local,
        tenant,
        admin,
        plane,
    } = Stage::start(0);
    let flavor = haproxy_flavor(&admin);
    let b0 = Backend::start_on("b0", &members);
    let mut b1 = Backend::start_on("b1", &members);
    let b2 = Backend::start_on("b2", &members);

    // An HTTP listener with a monitored round-robin pool, and a TCP listener.
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
        "name": "web", "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
        "listeners": [
            {"name": "http", "protocol": "HTTP", "protocol_port": 8080,
             "default_pool": {"name": "web", "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                              "members": [member(&b0), member(&b1)],
                              "healthmonitor": {"type": "HTTP", "delay": 1, "timeout": 1,
                                                "max_retries": 1, "max_retries_down": 1,
                                                "url_path": "/"}}},
            {"name": "raw", "protocol": "TCP", "protocol_port": 9090,
             "default_pool": {"name": "raw", "protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                              "members": [member(&b0), member(&b1), member(&b2)]}}
        ]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = settle_active(&tenant, &lb_id);
    assert_eq!(lb["provider"], "haproxy");
    let (http, tcp) = (vip(&lb, 8080), vip(&lb, 9090));
    let spawned = devices(&admin);
    assert_eq!(spawned.len(), 1, "one device spawned: {spawned:?}");
    assert_eq!(spawned[0]["spawned"], true);
    // The operator's explanation names the device started for it, and why.
    let device_id = spawned[0]["id"].as_str().expect("device id");
    let explained = Command::new(host_binary("lbaasctl"))
        .args(["--url", &plane.url, "placement", "explain", &lb_id])
        .output()
        .expect("run lbaasctl");
    let explained = String::from_utf8_lossy(&explained.stdout);
    assert!(
        explained.contains(&format!("spawned device {device_id} ("))
            && explained.contains("for haproxy: no device"),
        "{explained}"
    );

    // Round robin: every backend in turn.
    let first = answers(http, 6);
    assert_eq!(distinct(&first), BTreeSet::from(["b0", "b1"]), "{first:?}");
    assert!(first.windows(2).all(|w| w[0] != w[1]), "in turn: {first:?}");
    // Raw TCP passes through.
    let raw = tcp_line(tcp, "hello").expect("TCP through the VIP");
    assert!(["b0", "b1", "b2"].contains(&raw.as_str()), "{raw}");
    // A long-lived connection, held across every reload below.
    let mut held = Held::open(tcp).expect("long-lived connection");
    assert_eq!(
        held.echo("one").as_deref(),
        Some(format!("{}: one", held.backend).as_str())
    );
    // Counted as active by the listener (until a reload hands it to a retiring worker, whose
    // counters HAProxy no longer reports).
    let raw_listener = listener_of(&tenant, &lb_id, "TCP");
    wait_until("the held connection shows as active", || {
        let (_, stats) = tenant.get(&format!("/v2/lbaas/listeners/{raw_listener}/stats"));
        stats["stats"]["active_connections"].as_u64() >= Some(1)
    });

    // A backend stops: its member goes ERROR, the pool and load balancer DEGRADED, and the
    // traffic goes to the other one.
    let http_pool = pool_of(&tenant, &lb_id, "HTTP");
    let m1 = format!(
        "/v2/lbaas/pools/{http_pool}/members/{}",
        member_id(&tenant, &http_pool, &b1)
    );
    wait_operating(&tenant, &m1, "member", "ONLINE");
    b1.stop();
    wait_operating(&tenant, &m1, "member", "ERROR");
    wait_operating(
        &tenant,
        &format!("/v2/lbaas/pools/{http_pool}"),
        "pool",
        "DEGRADED",
    );
    wait_operating(
        &tenant,
        &format!("/v2/lbaas/loadbalancers/{lb_id}"),
        "loadbalancer",
        "DEGRADED",
    );
    let (_, tree) = tenant.get(&format!("/v2/lbaas/loadbalancers/{lb_id}/status"));
    assert_eq!(
        tree["statuses"]["loadbalancer"]["operating_status"], "DEGRADED",
        "{tree}"
    );
    assert_eq!(distinct(&answers(http, 6)), BTreeSet::from(["b0"]));
    // It comes back.
    b1.restart();
    wait_operating(&tenant, &m1, "member", "ONLINE");
    wait_operating(
        &tenant,
        &format!("/v2/lbaas/pools/{http_pool}"),
        "pool",
        "ONLINE",
    );
    wait_operating(
        &tenant,
        &format!("/v2/lbaas/loadbalancers/{lb_id}"),
        "loadbalancer",
        "ONLINE",
    );
    wait_for_backends(http, &["b0", "b1"]);

    // SOURCE_IP: one client, one backend.
    let pool_path = format!("/v2/lbaas/pools/{http_pool}");
    let change = |path: &str, body: Value| {
        let (status, answer) = tenant.put(path, &body);
        assert_eq!(status, 200, "PUT {path}: {answer}");
        settle_active(&tenant, &lb_id);
    };
    change(&pool_path, json!({"pool": {"lb_algorithm": "SOURCE_IP"}}));
    assert_eq!(distinct(&answers(http, 8)).len(), 1);
    // Back to round robin, with a third member.
    change(&pool_path, json!({"pool": {"lb_algorithm": "ROUND_ROBIN"}}));
    tenant.create(
        &format!("/v2/lbaas/pools/{http_pool}/members"),
        &json!({"member": member(&b2)}),
    );
    settle_active(&tenant, &lb_id);
    wait_for_backends(http, &["b0", "b1", "b2"]);
    // Weight 0 takes b0 out of rotation; admin state down takes b1 out.
    let m0 = format!(
        "/v2/lbaas/pools/{http_pool}/members/{}",
        member_id(&tenant, &http_pool, &b0)
    );
    change(&m0, json!({"member": {"weight": 0}}));
    wait_for_backends(http, &["b1", "b2"]);
    change(&m1, json!({"member": {"admin_state_up": false}}));
    wait_for_backends(http, &["b2"]);
    wait_operating(&tenant, &m1, "member", "OFFLINE");
    // Those three member changes (one new, one weight, one admin state) reached HAProxy through
    // its runtime API, without a reload: the device's history and the host's audit say so.
    let handle = local.handles(&root).pop().expect("a device");
    let history = device_history(&root, &handle);
    let applied: Vec<&str> = history
        .iter()
        .rev()
        .take(3)
        .map(|entry| entry["applied"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(applied, ["runtime"; 3], "{history:?}");
    assert_eq!(
        history[0]["applied"], "reload",
        "a new load balancer is a reload"
    );
    let (_, audit) = admin.get("/v2/admin/audit?function=device-api.send");
    let runtime = audit["audit"].as_array().map_or(0, |records| {
        records
            .iter()
            .filter(|r| {
                r["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("applied by runtime"))
            })
            .count()
    });
    assert_eq!(runtime, 3, "{audit}");

    // The connection opened before all those reloads is still open.
    assert_eq!(
        held.echo("two").as_deref(),
        Some(format!("{}: two", held.backend).as_str())
    );

    // Real counters.
    wait_until("the load balancer's stats count the traffic", || {
        let (_, stats) = tenant.get(&format!("/v2/lbaas/loadbalancers/{lb_id}/stats"));
        stats["stats"]["bytes_in"].as_u64() > Some(1000)
            && stats["stats"]["bytes_out"].as_u64() > Some(1000)
            && stats["stats"]["total_connections"].as_u64() >= Some(30)
    });

    // A second load balancer lands on the same device and leaves the first undisturbed.
    let second = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "second", "vip_subnet_id": "subnet-vip", "flavor_id": flavor,
            "listeners": [{"protocol": "HTTP", "protocol_port": 8080,
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member(&b2)]}}]}}),
    );
    let second_id = id(&second, "loadbalancer");
    let second_lb = settle_active(&tenant, &second_id);
    let second_http = vip(&second_lb, 8080);
    assert_eq!(
        devices(&admin).len(),
        1,
        "the second load balancer shares the device"
    );
    assert_eq!(devices(&admin)[0]["load_balancers"], 2);
    wait_for_backends(second_http, &["b2"]);
    wait_for_backends(http, &["b2"]);
    assert_eq!(
        held.echo("three").as_deref(),
        Some(format!("{}: three", held.backend).as_str())
    );

    // HAProxy refuses a configuration (its port is taken): the load balancer ends ERROR with
    // HAProxy's message, and what ran before keeps running.
    let blocker = listen_where_served(&local, &root, vip(&second_lb, 7070));
    tenant.create(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": second_id, "protocol": "TCP", "protocol_port": 7070}}),
    );
    let refused = tenant.settle(&second_id);
    assert_eq!(refused["provisioning_status"], "ERROR", "{refused}");
    let fault = refused["fault"].as_str().unwrap_or_default();
    assert!(
        fault.contains("cannot bind socket") && fault.contains("7070"),
        "HAProxy's message in the fault: {fault}"
    );
    drop(blocker);
    wait_for_backends(second_http, &["b2"]);
    wait_for_backends(http, &["b2"]);
    assert_eq!(
        held.echo("four").as_deref(),
        Some(format!("{}: four", held.backend).as_str())
    );

    // Cascade delete closes the VIP's ports; the device stays for the second load balancer.
    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"));
    assert_eq!(status, 204);
    assert!(tenant.settle(&lb_id).is_null(), "deleted");
    assert!(
        !accepts(http) && !accepts(tcp),
        "the first VIP's ports are closed"
    );
    wait_for_backends(second_http, &["b2"]);
    let handles = local.handles(&root);
    assert_eq!(handles.len(), 1);
    let pids = local.0.processes(&handles[0]);
    assert_eq!(pids.len(), 2, "agent and HAProxy run");

    // The last load balancer goes: the spawned device is deleted and its processes stop.
    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{second_id}?cascade=true"));
    assert_eq!(status, 204, "an ERROR load balancer can be deleted");
    assert!(tenant.settle(&second_id).is_null());
    assert!(
        devices(&admin).is_empty(),
        "the empty spawned device is gone"
    );
    wait_until("its processes stop and its folder is gone", || {
        local.0.processes(&handles[0]).is_empty() && local.handles(&root).is_empty()
    });
    for pid in pids {
        assert!(!running(pid), "process {pid} stopped");
    }
    assert!(!accepts(second_http));
    plane.stop();
}

#[test]
fn spawned_devices_outlive_the_host_and_are_adopted() {
    let Stage {
        _unrouted,
        members,
        six: _,
        vips: _,
        data,
        root,
        local,
        tenant,
        admin: _admin,
        plane,
    } = Stage::start(1);
    let b0 = Backend::start_on("b0", &members);
    let b1 = Backend::start_on("b1", &members);
    let created = tenant.create("/v2/lbaas/loadbalancers", &web_lb("web", 8080, &b0));
    let lb_id = id(&created, "loadbalancer");
    let http = vip(&settle_active(&tenant, &lb_id), 8080);
    wait_for_backends(http, &["b0"]);
    let handle = local.handles(&root).pop().expect("a device folder");
    let pids = local.0.processes(&handle);
    let (agent, haproxy) = (pids[0], pids[1]);

    // The host stops; the device keeps serving, even when its agent dies too.
    plane.stop();
    wait_for_backends(http, &["b0"]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill the agent");
    wait_until("the agent is gone", || {
        local.0.processes(&handle) == [haproxy]
    });
    wait_for_backends(http, &["b0"]);
    // A device no record names (as if the host died between starting it and recording it).
    let orphan = local
        .0
        .provision(
            "haproxy",
            &lbaas_scheduler::SpawnSpec {
                name: "orphan".into(),
                capacity: 1,
                metadata: Default::default(),
            },
        )
        .expect("start an unrecorded device")
        .handle
        .expect("handle");
    let orphan_pids = local.0.processes(&orphan);
    assert_eq!(orphan_pids.len(), 2);

    // The host starts again: the orphan is stopped, the known device gets a new agent that
    // adopts the HAProxy still serving.
    let plane = ControlPlane::start_with_data_plane(
        data.path(),
        Auth::None,
        local.0.clone(),
        STATUS_INTERVAL,
    );
    let tenant = plane.client(None).as_project("tenant");
    assert_eq!(local.handles(&root), std::slice::from_ref(&handle));
    for pid in orphan_pids {
        assert!(!running(pid), "orphan process {pid} stopped");
    }
    let adopted = local.0.processes(&handle);
    assert_eq!(adopted.len(), 2, "agent and HAProxy run");
    assert_ne!(adopted[0], agent, "a new agent");
    assert_eq!(adopted[1], haproxy, "the same HAProxy, adopted");

    // And it is managed as before.
    let pool = pool_of(&tenant, &lb_id, "HTTP");
    tenant.create(
        &format!("/v2/lbaas/pools/{pool}/members"),
        &json!({"member": member(&b1)}),
    );
    settle_active(&tenant, &lb_id);
    wait_for_backends(http, &["b0", "b1"]);
    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"));
    assert_eq!(status, 204);
    assert!(tenant.settle(&lb_id).is_null());
    wait_until("the device stops with its last load balancer", || {
        local.0.processes(&handle).is_empty()
    });
    assert!(!accepts(http));
    plane.stop();
}

/// The uid a process runs as (`/proc/<pid>/status`).
/// The agent's history of device `handle`: what it installed, removed and refused, and how.
fn device_history(root: &Path, handle: &str) -> Vec<Value> {
    let history = std::fs::read_to_string(root.join(handle).join("history.jsonl"))
        .expect("the agent's history");
    history
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Child processes of `pid` (HAProxy's workers, of its master).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A hostile version of the HAProxy driver renders `program`, `stats socket`, `http-request
/// return ... file` and `external-check` into its configuration and tells the host every apply
/// succeeded. The agent refuses each by its allow-list (naming line and keyword), the host
/// holds the driver to the refusal, and the load balancer serving beside them is untouched.
/// The device runs as the dedicated user, which cannot read the host's database.
#[test]
fn a_driver_cannot_make_a_device_run_commands() {
    // Bound in this order so they drop in reverse: the host, then its devices, then the folder.
    let Stage {
        _unrouted,
        members,
        six: _,
        vips: _,
        data,
        root,
        local,
        tenant,
        admin,
        plane,
    } = Stage::start(2);
    let b0 = Backend::start_on("b0", &members);
    let honest = tenant.create("/v2/lbaas/loadbalancers", &web_lb("honest", 8080, &b0));
    let honest_id = id(&honest, "loadbalancer");
    let honest_http = vip(&settle_active(&tenant, &honest_id), 8080);
    wait_for_backends(honest_http, &["b0"]);

    // The hostile version becomes the active HAProxy driver.
    let bytes = std::fs::read(&lbaas_tests::lifecycle_fixtures().haproxy_inject).expect("fixture");
    let (status, body) = admin.upload("/v2/admin/drivers?activate=true", bytes, &[]);
    assert_eq!(status, 201, "{body}");

    let attacks = [
        ("inject-program", "program"),
        ("inject-stats-socket", "stats"),
        // Its frontend binds a port the load balancer has no listener on: refused by the
        // scope the host sent before its `http-request return ... file` line is read (the
        // agent's own tests refuse that line alone).
        ("inject-file", "bind"),
        ("inject-external-check", "option"),
    ];
    for (port, (name, keyword)) in (9100..).zip(attacks) {
        let created = tenant.create("/v2/lbaas/loadbalancers", &web_lb(name, port, &b0));
        let lb_id = id(&created, "loadbalancer");
        // What the attack would have created.
        let target = std::path::PathBuf::from(format!("/tmp/lbaas-pwned-{lb_id}"));
        let lb = tenant.settle(&lb_id);
        assert_eq!(lb["provisioning_status"], "ERROR", "{name}: {lb}");
        let fault = lb["fault"].as_str().unwrap_or_default();
        assert!(
            fault.contains("policy refuses") && fault.contains(&format!("`{keyword}`")),
            "{name}: the fault names the keyword: {fault}"
        );
        assert!(
            fault.contains("line "),
            "{name}: the fault names the line: {fault}"
        );
        assert!(!target.exists(), "{name}: nothing ran on the device");
        assert!(!accepts(vip(&lb, port)), "{name}: nothing listens");
        assert!(!accepts(vip(&lb, port + 1)), "{name}: no leaking frontend");
    }
    // The honest load balancer kept serving throughout.
    wait_for_backends(honest_http, &["b0"]);

    // Audited: each refused device call, with the digest of what was sent.
    let (_, audit) = admin.get("/v2/admin/audit?function=device-api.send&outcome=denied");
    let refused: Vec<&Value> = audit["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|r| {
            r["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("refused by the device")
        })
        .collect();
    assert_eq!(refused.len(), attacks.len(), "{audit}");
    for record in &refused {
        assert_eq!(record["version"], "0.6.6");
        let detail = record["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("body sha256 "), "{detail}");
    }
    let (_, failures) = admin.get("/v2/admin/audit?function=device.refused");
    assert_eq!(
        failures["audit"].as_array().map(Vec::len),
        Some(attacks.len()),
        "{failures}"
    );
    // The device keeps its own history of what it installed and refused.
    let handle = local.handles(&root).pop().expect("a device");
    let entries = device_history(&root, &handle);
    assert_eq!(
        entries.iter().filter(|e| e["action"] == "refused").count(),
        attacks.len()
    );
    assert!(
        entries
            .iter()
            .all(|e| e["sha256"].as_str().is_some_and(|d| d.len() == 64))
    );

    // Least privilege: the device runs as the dedicated user (when the host may switch
    // users), its folder is closed to others, and that user cannot read the host's database.
    if let Some(user) = local.0.device_user() {
        let pids = local.0.processes(&handle);
        assert_eq!(pids.len(), 2, "agent and HAProxy run");
        let workers = children(pids[1]);
        assert!(!workers.is_empty(), "HAProxy has workers");
        for pid in pids.iter().chain(&workers) {
            assert_eq!(
                uid_of(*pid),
                Some(user.uid),
                "process {pid} runs as the device user"
            );
        }
        // HAProxy's workers are shut in an empty, read-only folder of the device's own.
        for pid in &workers {
            let jail = std::fs::read_link(format!("/proc/{pid}/root")).expect("a worker's root");
            assert!(
                jail.starts_with(root.join(&handle)) && jail.ends_with("jail"),
                "worker {pid} lives in {}",
                jail.display()
            );
            assert_eq!(
                std::fs::read_dir(&jail).map(Iterator::count).ok(),
                Some(0),
                "the jail is empty"
            );
        }
        use std::os::unix::fs::MetadataExt;
        let folder = std::fs::metadata(root.join(&handle)).expect("device folder");
        assert_eq!((folder.uid(), folder.mode() & 0o777), (user.uid, 0o700));
        use std::os::unix::process::CommandExt;
        let db = data.path().join("db").join("conf");
        assert!(db.exists());
        for (program, arg) in [("cat", &db), ("ls", &data.path().join("db"))] {
            let output = std::process::Command::new(program)
                .arg(arg)
                .uid(user.uid)
                .gid(user.gid)
                .output()
                .expect("run as the device user");
            assert!(
                !output.status.success(),
                "the device user read {}",
                arg.display()
            );
            assert!(
                String::from_utf8_lossy(&output.stderr).contains("Permission denied"),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    } else {
        // CI runs as root: there, a skipped check is a failure.
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run as root: the device user's privilege checks cannot be skipped"
        );
        eprintln!("not root: devices run as the host's user; the privilege checks are skipped");
    }
    plane.stop();
}

/// L7 policies and inserted headers with real traffic through a spawned HAProxy: a path goes
/// to its pool, a redirect answers its code and location (a sample expression in the URL stays
/// text), a rejected request is refused; rejects come first, then redirects, then pools, each
/// by position (the amphora's precedence); a policy to a pool that is down falls through; the
/// members see the `X-Forwarded-*` headers; backups share the load when the primary is
/// down; and an HTTP/1.1 health check sends the monitor's domain as its `Host`.
#[test]
fn l7_policies_and_inserted_headers_shape_real_traffic() {
    let Stage {
        _unrouted,
        members,
        six: _,
        vips: _,
        data: _data,
        root: _root,
        local: _local,
        tenant,
        admin: _admin,
        plane: _plane,
    } = Stage::start(4);
    let web = Backend::start_on("web", &members);
    let api = Backend::start_on("api", &members);
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "l7", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 8080,
                           "insert_headers": {"X-Forwarded-For": "true",
                                              "X-Forwarded-Port": "true",
                                              "X-Forwarded-Proto": "true"},
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member(&web)]}}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = settle_active(&tenant, &lb_id);
    let listener_id = lb["listeners"][0]["id"]
        .as_str()
        .expect("listener")
        .to_owned();
    let pool = tenant.create(
        "/v2/lbaas/pools",
        &json!({"pool": {"loadbalancer_id": lb_id, "protocol": "HTTP",
                         "lb_algorithm": "ROUND_ROBIN", "name": "api"}}),
    );
    let api_pool = id(&pool, "pool");
    settle_active(&tenant, &lb_id);
    tenant.create(
        &format!("/v2/lbaas/pools/{api_pool}/members"),
        &json!({"member": member(&api)}),
    );
    settle_active(&tenant, &lb_id);

    let policies = [
        json!({"action": "REDIRECT_TO_POOL", "redirect_pool_id": api_pool, "position": 1,
               "rules": [{"type": "PATH", "compare_type": "STARTS_WITH", "value": "/api"}]}),
        json!({"action": "REJECT",
               "rules": [{"type": "HEADER", "compare_type": "EQUAL_TO", "key": "X-Block",
                          "value": "yes"}]}),
        json!({"action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/moved",
               "redirect_http_code": 301,
               "rules": [{"type": "PATH", "compare_type": "EQUAL_TO", "value": "/old"}]}),
        json!({"action": "REDIRECT_PREFIX", "redirect_prefix": "https://new.example.com",
               "rules": [{"type": "HOST_NAME", "compare_type": "EQUAL_TO",
                          "value": "old.example.com"}]}),
        // A sample expression in a URL would read the device's environment: it stays text.
        json!({"action": "REDIRECT_TO_URL", "redirect_url": "https://example.com/%[env(HOME)]",
               "rules": [{"type": "PATH", "compare_type": "EQUAL_TO", "value": "/leak"}]}),
        json!({"action": "REDIRECT_TO_POOL", "redirect_pool_id": api_pool,
               "rules": [{"type": "COOKIE", "compare_type": "EQUAL_TO", "key": "beta",
                          "value": "on"},
                         {"type": "FILE_TYPE", "compare_type": "EQUAL_TO", "value": "json",
                          "invert": true}]}),
    ];
    for policy in policies {
        let mut policy = policy;
        policy["listener_id"] = json!(listener_id);
        tenant.create("/v2/lbaas/l7policies", &json!({ "l7policy": policy }));
        settle_active(&tenant, &lb_id);
    }
    let (_, listed) = tenant.get(&format!("/v2/lbaas/l7policies?listener_id={listener_id}"));
    let positions: Vec<u64> = listed["l7policies"]
        .as_array()
        .expect("policies")
        .iter()
        .filter_map(|p| p["position"].as_u64())
        .collect();
    assert_eq!(positions.len(), 6, "{listed}");

    let vip = vip(&lb, 8080);
    let get = |host: &str, path: &str, headers: &[(&str, &str)]| {
        http_request(vip, host, path, headers).expect("an answer through the VIP")
    };
    wait_until("the L7 policies are live", || {
        http_request(vip, "lb", "/api/v1", &[]).is_some_and(|a| a.body == "api")
    });
    assert_eq!(get("lb", "/shop", &[]).body, "web");
    // The amphora's precedence: a matching reject wins over the pool policy at position 1.
    assert_eq!(get("lb", "/api/x", &[("X-Block", "yes")]).status, 403);
    assert_eq!(get("lb", "/shop", &[("X-Block", "yes")]).status, 403);
    let moved = get("lb", "/old", &[]);
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("https://example.com/moved"));
    let prefixed = get("old.example.com", "/a/b?c=d", &[]);
    assert_eq!(prefixed.status, 302);
    assert_eq!(
        prefixed.header("location"),
        Some("https://new.example.com/a/b?c=d")
    );
    let leak = get("lb", "/leak", &[]);
    assert_eq!(leak.status, 302);
    assert_eq!(
        leak.header("location"),
        Some("https://example.com/%[env(HOME)]")
    );
    // Cookie and inverted file type: both must hold.
    assert_eq!(get("lb", "/x.html", &[("Cookie", "beta=on")]).body, "api");
    assert_eq!(get("lb", "/x.json", &[("Cookie", "beta=on")]).body, "web");

    // HAProxy sends header names in lower case (HTTP/2's spelling).
    let echoed = get("lb", "/headers", &[]).body.to_ascii_lowercase();
    assert!(echoed.starts_with("web"), "{echoed}");
    // The host reaches VIPs from where members listen (the gateway, or loopback).
    assert!(
        echoed.contains(&format!("x-forwarded-for: {members}")),
        "{echoed}"
    );
    assert!(echoed.contains("x-forwarded-port: 8080"), "{echoed}");
    assert!(echoed.contains("x-forwarded-proto: http"), "{echoed}");

    // A policy sending to a pool that is down is left out, as the amphora leaves it: the
    // request falls through to the default pool instead of getting a 503.
    let (status, body) = tenant.put(
        &format!("/v2/lbaas/pools/{api_pool}"),
        &json!({"pool": {"admin_state_up": false}}),
    );
    assert_eq!(status, 200, "{body}");
    settle_active(&tenant, &lb_id);
    wait_until("a down pool's policy is left out", || {
        http_request(vip, "lb", "/api/v1", &[]).is_some_and(|a| a.body == "web")
    });

    // Deleting the pool a policy sends to turns the policy into a reject, as in Octavia.
    let (status, _) = tenant.delete(&format!("/v2/lbaas/pools/{api_pool}"));
    assert_eq!(status, 204);
    settle_active(&tenant, &lb_id);
    assert_eq!(get("lb", "/api/x", &[]).status, 403);
    let (_, status_tree) = tenant.get(&format!("/v2/lbaas/loadbalancers/{lb_id}/status"));
    let tree = &status_tree["statuses"]["loadbalancer"]["listeners"][0]["l7policies"];
    assert_eq!(tree.as_array().map(Vec::len), Some(6), "{status_tree}");
    assert_eq!(tree[0]["action"], "REJECT", "{status_tree}");

    // Backups share the load once the primary is down, as the amphora's `option allbackups`
    // has them: not only the first.
    let (first, second) = (
        Backend::start_on("backup-1", &members),
        Backend::start_on("backup-2", &members),
    );
    let gone = Backend::start_on("gone", &members);
    let gone_member = member(&gone);
    drop(gone);
    let backup = |backend: &Backend| {
        let mut body = member(backend);
        body["backup"] = json!(true);
        body
    };
    let spare = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "backups", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 8090,
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [gone_member, backup(&first),
                                                        backup(&second)],
                                            "healthmonitor": {"type": "TCP", "delay": 1,
                                                              "timeout": 1, "max_retries": 1,
                                                              "max_retries_down": 1}}},
                          // A TCP listener in front of an HTTP pool, as Octavia allows.
                          {"protocol": "TCP", "protocol_port": 8091,
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member(&first)]}}]}}),
    );
    let spare = settle_active(&tenant, &id(&spare, "loadbalancer"));
    let spare_vip = SocketAddr::new(
        spare["vip_address"]
            .as_str()
            .expect("VIP")
            .parse()
            .expect("IP"),
        8090,
    );
    wait_for_backends(spare_vip, &["backup-1", "backup-2"]);
    wait_for_backends(SocketAddr::new(spare_vip.ip(), 8091), &["backup-1"]);

    // An HTTP/1.1 check names its site as the amphora's does (`http-check send hdr Host`): the
    // member answers its check only to that Host, so it is ONLINE with the domain and ERROR
    // once the monitor names another.
    let site = Backend::start_on("site", &members);
    let checked = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "checked", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 8092,
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member(&site)],
                                            "healthmonitor": {
                                                "type": "HTTP", "delay": 1, "timeout": 1,
                                                "max_retries": 1, "max_retries_down": 1,
                                                "url_path": "/host-is/www.example.com",
                                                "http_version": 1.1,
                                                "domain_name": "www.example.com"}}}]}}),
    );
    let checked_id = id(&checked, "loadbalancer");
    settle_active(&tenant, &checked_id);
    let site_pool = pool_of(&tenant, &checked_id, "HTTP");
    let (_, pool) = tenant.get(&format!("/v2/lbaas/pools/{site_pool}"));
    let monitor_id = pool["pool"]["healthmonitor_id"]
        .as_str()
        .expect("monitor")
        .to_owned();
    let (_, monitor) = tenant.get(&format!("/v2/lbaas/healthmonitors/{monitor_id}"));
    assert_eq!(monitor["healthmonitor"]["http_version"], json!(1.1));
    assert_eq!(monitor["healthmonitor"]["domain_name"], "www.example.com");
    let site_member = format!(
        "/v2/lbaas/pools/{site_pool}/members/{}",
        member_id(&tenant, &site_pool, &site)
    );
    wait_operating(&tenant, &site_member, "member", "ONLINE");
    let (status, body) = tenant.put(
        &format!("/v2/lbaas/healthmonitors/{monitor_id}"),
        &json!({"healthmonitor": {"domain_name": "other.example.com"}}),
    );
    assert_eq!(status, 200, "{body}");
    settle_active(&tenant, &checked_id);
    wait_operating(&tenant, &site_member, "member", "ERROR");
}

/// IPv6 end to end: a VIP on an IPv6 subnet and a member on IPv6, through a spawned HAProxy
/// (in its own namespace: the VIP routed to it, the member at the host's IPv6 gateway; shared:
/// both on the loopback `::1`, the one IPv6 address of the host's a test may use).
#[test]
fn ipv6_vips_and_members_carry_traffic_and_metrics_listeners_serve_their_own() {
    let Stage {
        _unrouted,
        members,
        six,
        vips: _,
        data: _data,
        root: _root,
        local: _local,
        tenant,
        admin,
        plane: _plane,
    } = Stage::start(3);
    admin.create(
        "/v2/admin/networks",
        &json!({"network": {"id": "net-vip6", "name": "vip6",
                "subnets": [{"id": "subnet-vip6", "cidr": six.network}]}}),
    );
    let backend = Backend::start_on("six", &six.members);
    // The host reaches IPv6 VIPs from where IPv6 members listen.
    let client = format!("{}/128", six.members);
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "v6", "vip_subnet_id": "subnet-vip6", "vip_address": six.vip,
            "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 8096,
                           "allowed_cidrs": [client],
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member(&backend)]}}]}}),
    );
    let lb = settle_active(&tenant, &id(&created, "loadbalancer"));
    assert_eq!(lb["vip_address"], six.vip.as_str());
    let vip = vip(&lb, 8096);
    assert!(vip.is_ipv6());
    wait_for_backends(vip, &["six"]);
    // An allowed CIDR of the other IP version than the VIP is refused, as Octavia refuses it.
    let (status, body) = tenant.post(
        "/v2/lbaas/listeners",
        &json!({"listener": {"loadbalancer_id": lb["id"], "protocol": "TCP",
                "protocol_port": 8097, "allowed_cidrs": ["10.0.0.0/8"]}}),
    );
    assert_eq!(status, 400, "{body}");
    metrics_listeners_show_their_own_load_balancer(&tenant, &admin, &members, &lb);
}

/// A PROMETHEUS listener (API 2.25) of a load balancer that shares its device with `other`:
/// it serves that load balancer's listeners, pools and members in Octavia's metric names, and
/// nothing of `other`'s; its `allowed_cidrs` decide who may scrape; it takes no children.
fn metrics_listeners_show_their_own_load_balancer(
    tenant: &Client,
    admin: &Client,
    members: &str,
    other: &Value,
) {
    let backend = Backend::start_on("metered", members);
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "metered", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [
                {"name": "web", "protocol": "HTTP", "protocol_port": 8100,
                 "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                  "members": [member(&backend)]}},
                {"name": "metrics", "protocol": "PROMETHEUS", "protocol_port": 8101,
                 "allowed_cidrs": [format!("{members}/32")]}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = settle_active(tenant, &lb_id);
    assert_eq!(
        devices(admin).len(),
        1,
        "both load balancers share one device"
    );
    let web = listener_of(tenant, &lb_id, "HTTP");
    let metrics = listener_of(tenant, &lb_id, "PROMETHEUS");
    let pool = pool_of(tenant, &lb_id, "HTTP");
    let member = member_id(tenant, &pool, &backend);
    let served = vip(&lb, 8100);
    let scraped = vip(&lb, 8101);
    wait_for_backends(served, &["metered"]);
    assert_eq!(answers(served, 5).len(), 5);

    let samples = lbaas_tests::scrape(scraped).expect("the metrics listener answers");
    let value = |name: &str, label: &str, id: &str| {
        samples
            .iter()
            .find(|(metric, labels, _)| metric == name && labels.get(label) == Some(&id.into()))
            .map(|(_, _, value)| *value)
    };
    assert!(
        value("octavia_listener_http_requests_total", "listener", &web) >= Some(5.0),
        "{} samples, not the requests of listener {web}",
        samples.len()
    );
    assert!(value("octavia_pool_active_members", "pool", &pool) == Some(1.0));
    assert!(value("octavia_member_weight", "member", &member).is_some());
    assert!(value("octavia_listener_current_sessions", "listener", &metrics).is_some());
    assert!(
        samples
            .iter()
            .any(|(name, _, v)| name == "octavia_loadbalancer_listeners" && *v == 2.0)
    );
    // Only this load balancer's objects, under Octavia's names: nothing of the other load
    // balancer on the device, of the agent's own proxies or of HAProxy's process.
    let ours: BTreeSet<&str> = [
        web.as_str(),
        metrics.as_str(),
        pool.as_str(),
        member.as_str(),
    ]
    .into_iter()
    .collect();
    let (_, theirs) = tenant.get(&format!(
        "/v2/lbaas/listeners?loadbalancer_id={}",
        other["id"].as_str().expect("id")
    ));
    for (name, labels, _) in &samples {
        assert!(name.starts_with("octavia_"), "{name}");
        for label in ["listener", "pool", "member"] {
            if let Some(object) = labels.get(label) {
                assert!(ours.contains(object.as_str()), "{name}: {labels:?}");
            }
        }
    }
    for listener in theirs["listeners"].as_array().expect("listeners") {
        let id = listener["id"].as_str().expect("id");
        assert!(
            !samples
                .iter()
                .any(|(_, labels, _)| labels.values().any(|v| v == id)),
            "the other load balancer's listener {id} shows"
        );
    }
    // HAProxy names the listener to the agent in a header it writes over whatever the client
    // sent: naming the other load balancer's listener still gets this one's lines only.
    let forged_listener = theirs["listeners"][0]["id"].as_str().expect("id");
    let forged = lbaas_tests::scrape_with(scraped, &[("lbaas-listener", forged_listener)])
        .expect("the metrics listener answers");
    for (name, labels, _) in &forged {
        for label in ["listener", "pool", "member"] {
            if let Some(object) = labels.get(label) {
                assert!(ours.contains(object.as_str()), "forged: {name}: {labels:?}");
            }
        }
    }
    assert!(
        forged.iter().any(|(name, labels, _)| {
            name == "octavia_listener_http_requests_total" && labels.get("listener") == Some(&web)
        }),
        "the forged scrape answers with this load balancer's own listener"
    );

    // allowed_cidrs: a scraper outside them is refused, then let in again.
    let path = format!("/v2/lbaas/listeners/{metrics}");
    let (status, body) = tenant.put(
        &path,
        &json!({"listener": {"allowed_cidrs": ["203.0.113.0/24"]}}),
    );
    assert_eq!(status, 200, "{body}");
    settle_active(tenant, &lb_id);
    wait_until("the metrics listener refuses this scraper", || {
        lbaas_tests::scrape(scraped).is_none()
    });
    let (status, body) = tenant.put(
        &path,
        &json!({"listener": {"allowed_cidrs": [format!("{members}/32")]}}),
    );
    assert_eq!(status, 200, "{body}");
    settle_active(tenant, &lb_id);
    wait_until("the metrics listener serves this scraper again", || {
        lbaas_tests::scrape(scraped).is_some()
    });

    // Octavia's rule: a metrics listener has no children.
    let (status, body) = tenant.post(
        "/v2/lbaas/pools",
        &json!({"pool": {"listener_id": metrics, "protocol": "HTTP",
                         "lb_algorithm": "ROUND_ROBIN"}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body["faultstring"]
            .as_str()
            .is_some_and(|f| f.contains("PROMETHEUS listeners cannot have child objects")),
        "{body}"
    );
    let (status, body) = tenant.post(
        "/v2/lbaas/l7policies",
        &json!({"l7policy": {"listener_id": metrics, "action": "REJECT"}}),
    );
    assert_eq!(status, 400, "{body}");
}

/// A fault's or refusal's text.
fn fault_of(body: &Value) -> String {
    body["faultstring"]
        .as_str()
        .or_else(|| body["fault"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Issue 26, findings 1 to 3, with an honest tenant's load balancer serving throughout. Another
/// project aims members and health monitors at the control plane and at a device's agent, takes
/// a subnet over the shared VIP network and the honest VIP; then a hostile version of the
/// driver renders lines the allow-list takes, pointed at the API (a health check that deletes
/// the honest load balancer), at the agent's socket written as an IPv4-mapped address, and at
/// the honest VIP. The API refuses the first, the device the second (the host sends it what
/// each load balancer may reach; the driver cannot), and every attempt is visible.
#[test]
fn tenants_and_drivers_cannot_aim_the_data_plane_at_the_control_plane_or_each_other() {
    let Stage {
        _unrouted,
        members,
        six: _,
        vips,
        data,
        root,
        local,
        tenant,
        admin,
        plane,
    } = Stage::start(5);
    let b0 = Backend::start_on("b0", &members);
    let evil = Backend::start_on("evil", &members);
    let honest = tenant.create("/v2/lbaas/loadbalancers", &web_lb("honest", 8080, &b0));
    let honest_id = id(&honest, "loadbalancer");
    let honest_lb = settle_active(&tenant, &honest_id);
    let honest_http = vip(&honest_lb, 8080);
    wait_for_backends(honest_http, &["b0"]);
    let api: SocketAddr = plane
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("API address");
    let agent: SocketAddr = {
        let device = devices(&admin)
            .pop()
            .expect("the honest load balancer's device");
        let url = device["management_url"].as_str().expect("management URL");
        url.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("agent address")
    };
    let mallory = plane.client(None).as_project("mallory");

    // Finding 1 through the API, with the bundled driver: members and monitor targets at the
    // control plane's sockets (as written, IPv4-mapped) or a device's agent are refused.
    let aimed = [
        json!({"address": api.ip().to_string(), "protocol_port": api.port()}),
        json!({"address": format!("::ffff:{}", api.ip()), "protocol_port": api.port()}),
        json!({"address": members, "protocol_port": evil.port(),
               "monitor_address": api.ip().to_string(), "monitor_port": api.port()}),
        json!({"address": agent.ip().to_string(), "protocol_port": agent.port()}),
        json!({"address": "169.254.169.254", "protocol_port": 80}),
    ];
    for member in aimed {
        let body = json!({"loadbalancer": {
            "name": "aimed", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 9200,
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member.clone()]}}]}});
        let (status, answer) = mallory.post("/v2/lbaas/loadbalancers", &body);
        assert_eq!(status, 400, "{member}: {answer}");
        let fault = fault_of(&answer);
        assert!(
            fault.contains("control plane")
                || fault.contains("management socket")
                || fault.contains("link-local")
                || fault.contains("keeps for the control plane"),
            "{member}: {fault}"
        );
    }
    // The same member added to a load balancer that exists, and a monitor address updated.
    let own = mallory.create("/v2/lbaas/loadbalancers", &web_lb("mallory", 9201, &evil));
    let own_id = id(&own, "loadbalancer");
    settle_active(&mallory, &own_id);
    let pool = pool_of(&mallory, &own_id, "HTTP");
    let (status, answer) = mallory.post(
        &format!("/v2/lbaas/pools/{pool}/members"),
        &json!({"member": {"address": api.ip().to_string(), "protocol_port": api.port()}}),
    );
    assert_eq!(status, 400, "{answer}");
    let member = member_id(&mallory, &pool, &evil);
    let (status, answer) = mallory.put(
        &format!("/v2/lbaas/pools/{pool}/members/{member}"),
        &json!({"member": {"monitor_address": api.ip().to_string(), "monitor_port": api.port()}}),
    );
    assert_eq!(status, 400, "{answer}");

    // Findings 2 and 3: a project's subnet over the shared VIP network, or over everything,
    // and the honest VIP taken on it or on the shared subnet.
    let (_, network) = mallory.post("/v2.0/networks", &json!({"network": {"name": "mine"}}));
    let network_id = network["network"]["id"]
        .as_str()
        .expect("network")
        .to_owned();
    let (base, prefix) = vips.split_once('/').expect("CIDR");
    let half = format!("{base}/{}", prefix.parse::<u8>().expect("prefix") + 1);
    for cidr in [vips.as_str(), &half, "0.0.0.0/0", "169.254.0.0/16"] {
        let (status, answer) = mallory.post(
            "/v2.0/subnets",
            &json!({"subnet": {"network_id": network_id, "cidr": cidr, "ip_version": 4}}),
        );
        assert_eq!(status, 400, "{cidr}: {answer}");
    }
    let (status, answer) = mallory.post(
        "/v2.0/subnets",
        &json!({"subnet": {"network_id": network_id, "cidr": "::/0", "ip_version": 6}}),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = mallory.post(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {"name": "squat", "vip_subnet_id": "subnet-vip",
                "vip_address": honest_lb["vip_address"]}}),
    );
    assert_eq!(status, 409, "{answer}");

    // A hostile version of the driver becomes the active one.
    let bytes = std::fs::read(&lbaas_tests::lifecycle_fixtures().haproxy_inject).expect("fixture");
    let (status, body) = admin.upload("/v2/admin/drivers?activate=true", bytes, &[]);
    assert_eq!(status, 201, "{body}");
    let attacks = [
        (
            format!("aim {api} DELETE /v2/lbaas/loadbalancers/{honest_id}?cascade=true"),
            // Its `option httpchk DELETE …` is no monitor's check; its `server` line is
            // outside the scope too.
            "`option`",
        ),
        (
            format!("aim ipv6@::ffff:{}:{} - -", agent.ip(), agent.port()),
            "management address",
        ),
        (format!("steal {honest_http}"), "`bind`"),
    ];
    for (port, (name, refusal)) in (9210..).zip(&attacks) {
        let created = mallory.create("/v2/lbaas/loadbalancers", &web_lb(name, port, &evil));
        let lb_id = id(&created, "loadbalancer");
        let lb = mallory.settle(&lb_id);
        assert_eq!(lb["provisioning_status"], "ERROR", "{name}: {lb}");
        let fault = lb["fault"].as_str().unwrap_or_default();
        assert!(
            fault.contains("policy refuses") && fault.contains(refusal),
            "{name}: {fault}"
        );
    }
    // Every attempt is on record, once: the device refused each call, with what was sent
    // (a failed job is not retried, so nothing is refused twice).
    let (_, refused) = admin.get("/v2/admin/audit?function=device.refused");
    assert_eq!(
        refused["audit"].as_array().map_or(0, Vec::len),
        attacks.len(),
        "{refused}"
    );
    // The honest load balancer is untouched, after a status round and every job it queued
    // too: it exists, is ACTIVE, and every one of 40 connections to its VIP reaches its own
    // member, none the attacker's.
    plane.status_round();
    let (status, lb) = tenant.get(&format!("/v2/lbaas/loadbalancers/{honest_id}"));
    assert_eq!(status, 200, "{lb}");
    assert_eq!(lb["loadbalancer"]["provisioning_status"], "ACTIVE", "{lb}");
    let served = answers(honest_http, 40);
    assert_eq!(distinct(&served), BTreeSet::from(["b0"]), "{served:?}");
    drop((plane, admin, tenant, local, root, data));
}

/// A socket listening on `address` where the devices of `local` serve it: inside the
/// device's namespace when it has one (bound by a thread that joins it), else on the host.
fn listen_where_served(local: &Devices, root: &Path, address: SocketAddr) -> std::net::TcpListener {
    let handles = local.handles(root);
    let Some(namespace) = handles.iter().find_map(|h| local.0.namespace_of(h)) else {
        return std::net::TcpListener::bind(address).expect("take the port");
    };
    std::thread::spawn(move || {
        let file = std::fs::File::open(format!("/run/netns/{namespace}")).expect("namespace");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("join it");
        std::net::TcpListener::bind(address).expect("take the port")
    })
    .join()
    .expect("listening thread")
}

/// Whether a TCP connection to `address` opens from inside the network namespace `namespace`.
fn connects_from(namespace: &str, address: SocketAddr) -> bool {
    Command::new("ip")
        .args(["netns", "exec", namespace, "timeout", "3", "bash", "-c"])
        .arg(format!(
            "exec 3<>/dev/tcp/{}/{}",
            address.ip(),
            address.port()
        ))
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// The identity of a network namespace, as `/proc` links name it (`net:[…]`).
fn net_namespace_of(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .map(|link| link.display().to_string())
        .unwrap_or_default()
}

/// Whether this test can make device namespaces (as root); under CI, which runs as root, not
/// being able to is a failure, never a skip.
fn namespaces_here() -> bool {
    if lbaas_tests::is_root() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run as root: device namespaces cannot be skipped"
    );
    eprintln!("skipped: device namespaces need root");
    false
}

/// What `program` (`ip`, `nft`) prints for `args`.
fn output_of(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("run it");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ip_output(args: &[&str]) -> String {
    output_of("ip", args)
}

/// Issue 26: devices in namespaces of their own (`lbaasd serve`'s default as root). A spawned
/// device's agent and HAProxy run in a network namespace of their own, and whatever runs there
/// (a configuration that slipped past the agent, a compromised HAProxy) can open connections to
/// its own members and nothing else: not the host's API on loopback or at the gateway, not a
/// service the host runs on every address (as sshd or a database would), not a member of
/// another load balancer. A tenant cannot make the API's port at the gateway a member. The VIP
/// carries real traffic from the host, and the device, once its last load balancer is deleted,
/// leaves no namespace, link, route or firewall chain behind.
#[test]
fn an_isolated_device_reaches_only_its_members_and_leaves_nothing_behind() {
    if !namespaces_here() {
        return;
    }
    let Stage {
        _unrouted,
        members: gateway,
        six: _,
        vips: _,
        data: _data,
        root,
        local,
        tenant,
        admin: _admin,
        plane,
    } = Stage::start(6);
    // A service of the host's on every address, which no load balancer names.
    let host_service = std::net::TcpListener::bind("0.0.0.0:0").expect("a host service");
    let host_service = SocketAddr::new(
        gateway.parse().expect("gateway"),
        host_service.local_addr().expect("port").port(),
    );
    // Members listen at the host's address on the devices' links.
    let b0 = Backend::start_on("b0", &gateway);
    let other = Backend::start_on("other", &gateway);
    let lb_id = id(
        &tenant.create("/v2/lbaas/loadbalancers", &web_lb("isolated", 8080, &b0)),
        "loadbalancer",
    );
    let lb = settle_active(&tenant, &lb_id);
    let http = vip(&lb, 8080);
    assert_eq!(
        http_get(http).as_deref(),
        Some("b0"),
        "traffic through the VIP"
    );

    let handles = local.handles(&root);
    assert_eq!(handles.len(), 1, "{handles:?}");
    let namespace = local
        .0
        .namespace_of(&handles[0])
        .expect("the device's namespace");
    let processes = local.0.processes(&handles[0]);
    assert_eq!(
        processes.len(),
        2,
        "the agent and HAProxy run: {processes:?}"
    );
    let host = net_namespace_of(std::process::id());
    for pid in &processes {
        let theirs = net_namespace_of(*pid);
        assert!(
            !theirs.is_empty() && theirs != host,
            "process {pid} shares the host's network namespace"
        );
    }
    let api: SocketAddr = plane
        .url
        .trim_start_matches("http://")
        .parse()
        .expect("API address");
    let at_gateway = |port: u16| SocketAddr::new(gateway.parse().expect("gateway"), port);
    assert!(
        connects_from(&namespace, b0.address),
        "the device reaches its member at the gateway (the check itself works)"
    );
    assert!(
        !connects_from(&namespace, at_gateway(api.port())),
        "the device reaches the host's API port at the gateway"
    );
    for (target, what) in [
        (api, "the host's API on loopback"),
        (
            host_service,
            "a host service on every address, at the gateway",
        ),
        (other.address, "a member of no load balancer on this device"),
    ] {
        assert!(accepts(target), "{what} answers on the host");
        assert!(
            !connects_from(&namespace, target),
            "the device reaches {what} ({target})"
        );
    }
    let (status, body) = tenant.post(
        &format!(
            "/v2/lbaas/pools/{}/members",
            pool_of(&tenant, &lb_id, "HTTP")
        ),
        &json!({"member": {"address": gateway, "protocol_port": api.port()}}),
    );
    assert_eq!(
        status, 400,
        "the API's port at the gateway as a member: {body}"
    );
    // A member added later is reachable once its job is done, and only then.
    tenant.create(
        &format!(
            "/v2/lbaas/pools/{}/members",
            pool_of(&tenant, &lb_id, "HTTP")
        ),
        &json!({"member": member(&other)}),
    );
    settle_active(&tenant, &lb_id);
    assert!(connects_from(&namespace, other.address), "the new member");
    wait_for_backends(http, &["b0", "other"]);
    // Something else takes the VIP's route and the device's filter away: the status round
    // puts both back.
    let vip_route = format!("{}/32", http.ip());
    assert!(
        Command::new("ip")
            .args(["route", "del", &vip_route])
            .status()
            .is_ok_and(|s| s.success())
    );
    let table = local.0.firewall_table().expect("a firewall table");
    let chain = format!("d_{}", handles[0]);
    assert!(
        Command::new("nft")
            .args(["flush", "chain", "inet", &table, &chain])
            .status()
            .is_ok_and(|s| s.success())
    );
    wait_for_backends(http, &["b0", "other"]);
    assert!(
        nft_output(&["list", "chain", "inet", &table, &chain]).contains("drop"),
        "the device's chain is whole again"
    );
    assert!(
        !connects_from(&namespace, host_service),
        "and filters again"
    );

    // The empty device goes, and takes its namespace, its link, its VIP's route and its
    // firewall chain along.
    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"));
    assert_eq!(status, 204);
    wait_until("the device's namespace is gone", || {
        !ip_output(&["netns", "list"]).contains(&namespace)
    });
    let link = format!("lb{}", handles[0]);
    wait_until("the device's link, routes and chain are gone", || {
        !ip_output(&["link", "show"]).contains(&link)
            && !ip_output(&["route", "show"]).contains(&format!("{} via", http.ip()))
            && !nft_output(&["list", "ruleset"]).contains(&handles[0])
    });
    plane.stop();
    assert!(nft_output(&["list", "tables"]).contains(&table));
    drop(local);
    assert!(
        !ip_output(&["addr", "show", "dev", "lo"]).contains(&format!("{gateway}/")),
        "the gateway address stays after its provisioner stopped everything"
    );
    assert!(
        !nft_output(&["list", "tables"]).contains(&table),
        "the firewall table stays after its provisioner stopped everything"
    );
}

fn nft_output(args: &[&str]) -> String {
    output_of("nft", args)
}

/// The README's walk-through against `lbaasd serve` as it starts by default, as root, with a
/// `--data-dir` deeper than a Unix socket's path may be: the banner says devices get namespaces of their own; backends listen at the default gateway; a
/// load balancer with two members and a health monitor carries traffic through its VIP to
/// both; deleting it stops its device and removes its namespace; and the host, stopped, takes
/// its gateway address and firewall table along.
#[test]
fn lbaasd_serve_isolates_devices_by_default_and_the_walk_through_carries_traffic() {
    if !namespaces_here() {
        return;
    }
    const GATEWAY: &str = "198.19.0.1";
    let _unrouted = Unrouted::range("203.0.113.0/24");
    let data = deep_data_folder();
    let driver_dir = lbaas_tests::driver_dir();
    let server = lbaas_tests::process::Server::start(
        data.path(),
        &driver_dir,
        &["--device-isolation", "auto", "--status-interval", "1s"],
    );
    let banner = server.log().join("\n");
    assert!(
        banner.contains("each in a network namespace of its own")
            && banner.contains(&format!("members on this machine listen at {GATEWAY}")),
        "{banner}"
    );
    let admin = Client::new(&server.url).as_project("admin-project");
    let tenant = Client::new(&server.url).as_project("tenant");
    setup_network(&admin, "public", "203.0.113.0/24");
    let a = Backend::start_on("backend A", GATEWAY);
    let b = Backend::start_on("backend B", GATEWAY);
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "web", "vip_subnet_id": "subnet-public", "provider": "haproxy",
            "listeners": [{"protocol": "HTTP", "protocol_port": 8080,
                           "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                            "members": [member(&a), member(&b)],
                                            "healthmonitor": {"type": "HTTP", "delay": 2,
                                                              "timeout": 1, "max_retries": 2}}}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let http = vip(&settle_active(&tenant, &lb_id), 8080);
    wait_for_backends(http, &["backend A", "backend B"]);
    let devices = data.path().join("devices");
    let handles = Devices::folders(&devices);
    assert_eq!(handles.len(), 1, "{handles:?}");
    let namespace = ip_output(&["netns", "list"])
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .find(|name| name.starts_with("lbaas-") && name.ends_with(&handles[0]))
        .map(str::to_owned)
        .expect("the device's namespace");

    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"));
    assert_eq!(status, 204);
    wait_until("the empty device and its namespace are gone", || {
        Devices::folders(&devices).is_empty() && !ip_output(&["netns", "list"]).contains(&namespace)
    });
    assert!(!accepts(http), "the VIP closed");
    let table = LocalProcesses::firewall_table_of(&devices);
    assert!(nft_output(&["list", "tables"]).contains(&table));
    let log = server.stop();
    let lo = ip_output(&["addr", "show", "dev", "lo"]);
    assert!(
        !lo.contains(&format!("{GATEWAY}/")) && !lo.contains("fd00:198:19::1/"),
        "the gateway addresses stay after the host stopped with no device: {log:#?}"
    );
    assert!(
        !nft_output(&["list", "tables"]).contains(&table),
        "the firewall table stays after the host stopped with no device"
    );
}

/// An HTTPS request through `address` with `openssl s_client`, asking for `sni`, verifying
/// against the test root; what it printed.
fn https(address: SocketAddr, sni: &str, pki: &Pki, identity: Option<&str>, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {sni}\r\nconnection: close\r\n\r\n");
    let (cert, key) = identity
        .map(|name| {
            (
                pki.path(&format!("{name}.pem")),
                pki.path(&format!("{name}.key")),
            )
        })
        .unzip();
    let identity = cert.as_deref().zip(key.as_deref());
    lbaas_keys::testing::s_client(
        address,
        sni,
        &pki.path("root.pem"),
        None,
        identity,
        &request,
    )
}

/// The PEM body of the certificate in `file`: what `s_client` prints of the one it was served.
fn served_certificate(pki: &Pki, file: &str) -> String {
    let pem = String::from_utf8(pki.read(file)).expect("PEM");
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// TLS termination end to end (issue 28), through the public API and a spawned HAProxy: a
/// tenant's bundles in the host's key manager, a TERMINATED_HTTPS listener serving the
/// certificate each client's SNI asks for with ALPN and HSTS, a listener requiring client
/// certificates (a revoked one refused) that tells the member who the client is, and a pool
/// re-encrypting towards a member behind TLS, verified against the pool's CA. The driver names
/// every file by handle; the host alone sends the keys, and the audit log says so without them.
/// Rotating the certificate under steady requests fails none, and deleting the load balancer
/// leaves no key on the device.
#[test]
fn tls_terminates_on_the_device_with_keys_no_driver_holds() {
    use lbaas_keys::testing::{EC, RSA_PKCS8};
    let Stage {
        _unrouted,
        members,
        six: _,
        vips: _,
        data: _data,
        root,
        local: _local,
        tenant,
        admin,
        plane: _plane,
    } = Stage::start(7);
    let pki = Pki::new();
    pki.leaf("www.example.com", EC);
    pki.leaf("api.example.com", RSA_PKCS8);
    pki.leaf("member.example.com", EC);
    pki.leaf("alice.example.com", EC);
    pki.leaf("mallory.example.com", EC);
    pki.revoke("int", "mallory.example.com");
    let www = tenant.store_secret("www", &pki.pkcs12("www.example.com"));
    let api = tenant.store_secret(
        "api",
        &pki.concat(&["api.example.com.key", "int.pem", "api.example.com.pem"]),
    );
    let cas = tenant.store_secret("cas", &pki.concat(&["int.pem", "root.pem"]));
    // HAProxy checks the revocation of every certificate of a client's chain: both CAs' lists.
    let crls = tenant.store_secret("crls", &[pki.crl("int"), pki.crl("root")].concat());
    let web = Backend::start_on("web", &members);
    let secure = pki.s_server(
        members.parse().expect("members' address"),
        "member.example.com.pem",
        "member.example.com.key",
    );
    let pool = |backend: &Backend| json!({"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN", "members": [member(backend)]});
    let created = tenant.create(
        "/v2/lbaas/loadbalancers",
        &json!({"loadbalancer": {
            "name": "tls", "vip_subnet_id": "subnet-vip", "provider": "haproxy",
            "listeners": [
                {"protocol": "TERMINATED_HTTPS", "protocol_port": 8443,
                 "default_tls_container_ref": www, "sni_container_refs": [api],
                 "alpn_protocols": ["h2", "http/1.1"], "hsts_max_age": 31536000,
                 "hsts_include_subdomains": true,
                 "insert_headers": {"X-Forwarded-Proto": "true"},
                 "default_pool": pool(&web)},
                {"protocol": "TERMINATED_HTTPS", "protocol_port": 9443,
                 "default_tls_container_ref": www, "client_authentication": "MANDATORY",
                 "client_ca_tls_container_ref": cas, "client_crl_container_ref": crls,
                 "insert_headers": {"X-SSL-Client-CN": "true", "X-SSL-Client-Verify": "true"},
                 "default_pool": pool(&web)},
                {"protocol": "HTTP", "protocol_port": 8080,
                 "default_pool": {"protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
                                  "tls_enabled": true, "ca_tls_container_ref": cas,
                                  "members": [{"address": secure.address.ip().to_string(),
                                               "protocol_port": secure.address.port()}]}}]}}),
    );
    let lb_id = id(&created, "loadbalancer");
    let lb = settle_active(&tenant, &lb_id);

    // Octavia's defaults where the request set nothing.
    let (_, listeners) = tenant.get(&format!("/v2/lbaas/listeners?loadbalancer_id={lb_id}"));
    let listener = |port: u16| {
        listeners["listeners"]
            .as_array()
            .expect("listeners")
            .iter()
            .find(|l| l["protocol_port"] == port)
            .cloned()
            .expect("listener")
    };
    let front = listener(8443);
    assert_eq!(
        front["tls_versions"],
        json!(["TLSv1.2", "TLSv1.3"]),
        "{front}"
    );
    assert_eq!(
        front["alpn_protocols"],
        json!(["h2", "http/1.1"]),
        "{front}"
    );
    assert!(
        front["tls_ciphers"]
            .as_str()
            .is_some_and(|c| c.starts_with("TLS_AES_128_GCM_SHA256:")),
        "{front}"
    );
    assert_eq!(front["sni_container_refs"], json!([api]), "{front}");
    assert_eq!(listener(9443)["client_authentication"], "MANDATORY");
    assert_eq!(listener(8080)["tls_versions"], Value::Null);
    let reencrypting = pool_of(&tenant, &lb_id, "HTTP");
    let (_, pools) = tenant.get(&format!("/v2/lbaas/pools?loadbalancer_id={lb_id}"));
    assert!(
        pools["pools"].as_array().expect("pools").iter().any(|p| {
            p["tls_enabled"] == true
                && p["ca_tls_container_ref"] == json!(cas)
                && p["alpn_protocols"] == json!(["h2", "http/1.1", "http/1.0"])
        }),
        "{pools} ({reencrypting})"
    );

    // The certificate each SNI asks for, verified against the root; HSTS; the member behind.
    let front = vip(&lb, 8443);
    let answer = |sni: &str| https(front, sni, &pki, None, "/headers");
    wait_until("the TLS listener serves", || {
        answer("www.example.com").contains("\nweb")
    });
    let seen = answer("www.example.com");
    assert!(seen.contains("Verify return code: 0 (ok)"), "{seen}");
    assert!(seen.contains("subject=CN = WWW.EXAMPLE.COM"), "{seen}");
    let lower = seen.to_ascii_lowercase();
    assert!(
        lower.contains("strict-transport-security: max-age=31536000; includesubdomains;"),
        "{seen}"
    );
    assert!(lower.contains("x-forwarded-proto: https"), "{seen}");
    let sni = answer("api.example.com");
    assert!(
        sni.contains("subject=CN = API.EXAMPLE.COM") && sni.contains("Verify return code: 0 (ok)"),
        "{sni}"
    );
    let h2 = lbaas_keys::testing::s_client(
        front,
        "www.example.com",
        &pki.path("root.pem"),
        Some("h2"),
        None,
        "",
    );
    assert!(h2.contains("ALPN protocol: h2"), "{h2}");

    // Client certificates: required, checked against the clients' CA and its lists, and the
    // member told who the client is.
    let guarded = vip(&lb, 9443);
    let alice = https(
        guarded,
        "www.example.com",
        &pki,
        Some("alice.example.com"),
        "/headers",
    );
    let alice_lower = alice.to_ascii_lowercase();
    assert!(alice_lower.contains("\nweb"), "{alice}");
    // `%{+Q}` quotes in logs, not in headers: the member sees the name as it is.
    assert!(
        alice_lower.contains("x-ssl-client-cn: alice.example.com"),
        "{alice}"
    );
    assert!(alice_lower.contains("x-ssl-client-verify: 0"), "{alice}");
    for stranger in [None, Some("mallory.example.com")] {
        let refused = https(guarded, "www.example.com", &pki, stranger, "/headers");
        assert!(!refused.contains("\nweb"), "{stranger:?}: {refused}");
    }

    // Re-encryption: plain HTTP in, TLS to the member, verified against the pool's CA.
    let plain = vip(&lb, 8080);
    wait_until("the re-encrypting pool answers", || {
        http_request(plain, "lb", "/", &[]).is_some_and(|a| a.body.contains("s_server"))
    });

    // The host sent the files; the driver only named them. The audit log says which, by
    // fingerprint, and holds no key.
    let (_, audit) = admin.get("/v2/admin/audit?function=device-api.send-certificate");
    let sent = audit["audit"].as_array().cloned().unwrap_or_default();
    assert_eq!(sent.len(), 6, "{audit}");
    assert!(sent.iter().all(|e| e["outcome"] == "ok"), "{audit}");
    assert!(!audit.to_string().contains("PRIVATE KEY"), "{audit}");
    let folders: Vec<std::path::PathBuf> = Devices::folders(&root)
        .iter()
        .map(|handle| root.join(handle).join("certs").join(&lb_id))
        .filter(|folder| folder.exists())
        .collect();
    assert_eq!(
        folders.len(),
        1,
        "one device holds the load balancer's files"
    );
    let files: Vec<_> = std::fs::read_dir(&folders[0])
        .expect("certificate folder")
        .flatten()
        .collect();
    assert_eq!(files.len(), 6, "{files:?}");
    for file in &files {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = file.metadata().expect("metadata").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{:?}", file.path());
    }

    // Rotation under steady requests: a new certificate and key for www, none failing.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, root_ca) = (stop.clone(), pki.path("root.pem"));
        std::thread::spawn(move || {
            let (mut served, mut failed) = (0, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let seen = lbaas_keys::testing::s_client(
                    front,
                    "www.example.com",
                    &root_ca,
                    None,
                    None,
                    "GET / HTTP/1.1\r\nhost: www.example.com\r\nconnection: close\r\n\r\n",
                );
                if seen.contains("\nweb") {
                    served += 1;
                } else {
                    failed.push(seen);
                }
            }
            (served, failed)
        })
    };
    let before = served_certificate(&pki, "www.example.com.pem");
    pki.leaf("www.example.com", EC);
    let after = served_certificate(&pki, "www.example.com.pem");
    assert_ne!(before, after);
    let rotated = tenant.store_secret("www-2", &pki.pkcs12("www.example.com"));
    let front_id = listener(8443)["id"].as_str().expect("id").to_owned();
    let (status, body) = tenant.put(
        &format!("/v2/lbaas/listeners/{front_id}"),
        &json!({"listener": {"default_tls_container_ref": rotated}}),
    );
    assert_eq!(status, 200, "{body}");
    settle_active(&tenant, &lb_id);
    wait_until("the new certificate is served", || {
        answer("www.example.com").contains(&after)
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (served, failed) = load.join().expect("load");
    assert!(served > 0, "no request was made during the rotation");
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());

    // Deleting the load balancer takes its keys off the device.
    let (status, _) = tenant.delete(&format!("/v2/lbaas/loadbalancers/{lb_id}?cascade=true"));
    assert_eq!(status, 204);
    wait_until("the load balancer is gone", || {
        tenant.get(&format!("/v2/lbaas/loadbalancers/{lb_id}")).0 == 404
    });
    assert!(!folders[0].exists(), "{:?} is still there", folders[0]);
}
