//! The conformance kit: what a driver version must show before the host stores it, also run
//! offline by `lbaasd driver check FILE.wasm` so vendors can put it in their own CI.
//!
//! - its capabilities are well formed (a version, device kinds, protocols, algorithms, distinct
//!   flavor keys) and agree with its manifest;
//! - `validate-flavor` accepts an empty flavor and answers an unknown key with an error value;
//! - `select` is safe and deterministic on no, one and many (32) candidates, and hints only at
//!   devices it was offered;
//! - `translate` accepts every protocol and algorithm the driver claims;
//! - no call traps or passes its deadline, memory or output limits.
//!
//! `apply` and `remove` need a device, so they are not called.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::{
    Algorithm, Candidate, CertificateInfo, ClientAuthentication, Device, DeviceKind, Entry, Error,
    Flavor, Listener, ListenerTls, LoadBalancer, LoadedDriver, Member, Network, PlacementRequest,
    Pool, Protocol, TlsFile, TlsVersion,
};

/// Candidates in the "many" case: what the scheduler's top-K never exceeds by much.
const MANY: usize = 32;

/// One check of the kit.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it checks, in words.
    pub name: String,
    /// `None` when it passed; why not otherwise.
    pub failure: Option<String>,
}

/// What the kit found of one driver version.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The driver's name.
    pub driver: String,
    /// Its version.
    pub version: String,
    /// Its component's SHA-256.
    pub sha256: String,
    /// Every check, in the order run.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.failure.is_none())
    }

    /// The names of the failed checks (the kit's words only, nothing the driver answered).
    pub fn failed_checks(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.failure.is_some())
            .map(|c| c.name.as_str())
            .collect()
    }

    /// The failed checks, in words.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter_map(|c| c.failure.as_ref().map(|f| format!("{}: {f}", c.name)))
            .collect()
    }

    /// A readable report, one line per check.
    pub fn render(&self) -> String {
        let mut out = format!(
            "conformance of {} {} ({})\n",
            self.driver,
            self.version,
            &self.sha256[..self.sha256.len().min(12)]
        );
        for check in &self.checks {
            match &check.failure {
                None => out.push_str(&format!("  ok    {}\n", check.name)),
                Some(why) => out.push_str(&format!("  FAIL  {}: {why}\n", check.name)),
            }
        }
        let failed = self.checks.iter().filter(|c| c.failure.is_some()).count();
        out.push_str(&format!(
            "{} checks, {} passed, {failed} failed\n",
            self.checks.len(),
            self.checks.len() - failed
        ));
        out
    }
}

/// Runs every check on a loaded driver.
pub fn check(driver: &LoadedDriver) -> Report {
    let identity = driver.identity();
    let mut checks = Vec::new();
    let mut record = |name: &str, result: Result<(), String>| {
        checks.push(Check {
            name: name.to_owned(),
            failure: result.err(),
        })
    };
    record("capabilities are well formed", capabilities(driver));
    record(
        "validate-flavor answers with values",
        validate_flavor(driver),
    );
    let kind = device_kind(driver);
    for count in [0, 1, MANY] {
        record(
            &format!("select on {count} candidates is safe and deterministic"),
            select(driver, kind, count),
        );
    }
    // Each combination the driver reported, named as Octavia names it (the host's
    // capabilities are the reported ones converted element by element).
    let (reported, named) = (driver.reported_capabilities(), driver.capabilities());
    for (protocol, protocol_name) in reported.protocols.iter().zip(&named.protocols) {
        for (algorithm, algorithm_name) in reported.algorithms.iter().zip(&named.algorithms) {
            record(
                &format!(
                    "translate accepts {} with {}",
                    protocol_name.name(),
                    lbaas_core::views::name(algorithm_name)
                ),
                translate(driver, kind, *protocol, *algorithm),
            );
        }
    }
    Report {
        driver: identity.name.to_string(),
        version: identity.version.clone(),
        sha256: identity.sha256.clone(),
        checks,
    }
}

fn capabilities(driver: &LoadedDriver) -> Result<(), String> {
    let caps = driver.reported_capabilities();
    let mut problems = Vec::new();
    if caps.version.trim().is_empty() {
        problems.push("no version".to_owned());
    }
    if caps.vendor.trim().is_empty() {
        problems.push("no vendor".to_owned());
    }
    if caps.device_kinds.is_empty() {
        problems.push("no device kinds".to_owned());
    }
    if caps.protocols.is_empty() {
        problems.push("no protocols".to_owned());
    }
    if caps.algorithms.is_empty() {
        problems.push("no algorithms".to_owned());
    }
    if caps.can_spawn && !caps.device_kinds.contains(&DeviceKind::Virtual) {
        problems.push("it can spawn devices but manages no virtual ones".to_owned());
    }
    let mut keys = BTreeSet::new();
    for key in &caps.flavor_keys {
        if key.name.trim().is_empty() {
            problems.push("a flavor key without a name".to_owned());
        } else if !keys.insert(key.name.as_str()) {
            problems.push(format!("flavor key `{}` twice", key.name));
        }
    }
    // Asking again gives the same answer (a driver's identity does not drift).
    match driver.fetch_capabilities() {
        Ok(again) if format!("{again:?}") == format!("{caps:?}") => {}
        Ok(_) => problems.push("a second call reports different capabilities".to_owned()),
        Err(e) => problems.push(e.to_string()),
    }
    if driver.manifest().is_none() {
        problems.push(
            "no manifest (the SDK's `manifest!` writes one): it would get the operator's caps \
             and any device-api method and path"
                .to_owned(),
        );
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn validate_flavor(driver: &LoadedDriver) -> Result<(), String> {
    let empty = Flavor {
        name: "conformance-empty".into(),
        metadata: Vec::new(),
    };
    driver
        .validate_flavor(&empty)
        .map_err(|e| format!("an empty flavor is refused: {e}"))?;
    let unknown = Flavor {
        name: "conformance-unknown".into(),
        metadata: vec![Entry {
            key: "conformance-no-such-key".into(),
            value: "1".into(),
        }],
    };
    match driver.validate_flavor(&unknown) {
        Ok(()) | Err(Error::Refused { .. }) => Ok(()),
        Err(other) => Err(format!("an unknown key: {other}")),
    }
}

/// The kind of device the checks offer: physical when the driver manages physical ones.
fn device_kind(driver: &LoadedDriver) -> DeviceKind {
    let kinds = &driver.reported_capabilities().device_kinds;
    if kinds.contains(&DeviceKind::Physical) {
        DeviceKind::Physical
    } else {
        DeviceKind::Virtual
    }
}

fn network(id: &str, cidr: &str, vlan: u16) -> Network {
    Network {
        id: id.into(),
        cidr: cidr.into(),
        vlan: Some(vlan),
    }
}

fn device(n: usize, kind: DeviceKind) -> Device {
    Device {
        id: format!("conformance-device-{n}"),
        name: format!("conformance device {n}"),
        kind,
        capacity: 100,
        cluster: Some(format!("cluster-{}", n % 4)),
        owner_project: None,
        networks: Vec::new(),
        metadata: vec![Entry {
            key: "interfaces".into(),
            value: "4".into(),
        }],
        availability_zone: None,
    }
}

fn select(driver: &LoadedDriver, kind: DeviceKind, count: usize) -> Result<(), String> {
    let caps = driver.reported_capabilities();
    let request = PlacementRequest {
        load_balancer_id: "conformance-lb".into(),
        project_id: "conformance-project".into(),
        vip_address: Some("192.0.2.10".into()),
        vip_network: network("conformance-vip", "192.0.2.0/24", 100),
        member_networks: vec![network("conformance-members", "198.51.100.0/24", 200)],
        protocols: caps.protocols.iter().take(1).copied().collect(),
        flavor: None,
        availability_zone: None,
    };
    let candidates: Vec<Candidate> = (0..count)
        .map(|n| Candidate {
            device: device(n, kind),
            load_balancers: (n as u32 * 7) % 100,
            project_load_balancers: n as u32 % 3,
            host_score: (n as i32 * 13) % 50,
        })
        .collect();
    let first = driver
        .select(&request, &candidates)
        .map_err(|e| e.to_string())?;
    let second = driver
        .select(&request, &candidates)
        .map_err(|e| e.to_string())?;
    if format!("{first:?}") != format!("{second:?}") {
        return Err("two calls with the same input gave different hints".into());
    }
    let offered: BTreeSet<&str> = candidates.iter().map(|c| c.device.id.as_str()).collect();
    if let Some(stray) = first
        .devices
        .iter()
        .find(|hint| !offered.contains(hint.device_id.as_str()))
    {
        return Err(format!(
            "a hint for device {} that was not offered",
            stray.device_id
        ));
    }
    if first.spawn.is_some() && !caps.can_spawn {
        return Err("asks to spawn a device but does not declare it can".into());
    }
    Ok(())
}

/// A load balancer with one listener and one pool of `protocol` balanced by `algorithm`.
fn sample(protocol: Protocol, algorithm: Algorithm) -> LoadBalancer {
    // PROXY protocols are spoken to members; the listener in front of them is TCP. A
    // TERMINATED_HTTPS listener sends HTTP to its members, and serves a certificate.
    let (listener_protocol, protocol) = match protocol {
        Protocol::Proxy | Protocol::ProxyV2 => (Protocol::Tcp, protocol),
        Protocol::TerminatedHttps => (protocol, Protocol::Http),
        other => (other, other),
    };
    let tls = (listener_protocol == Protocol::TerminatedHttps).then(|| ListenerTls {
        default_certificate: Some(TlsFile {
            handle: "conformance-certificate".into(),
            certificates: vec![CertificateInfo {
                subject: "CN=conformance.example".into(),
                common_name: Some("conformance.example".into()),
                dns_names: vec!["conformance.example".into()],
                not_before: 1_767_225_600,
                not_after: 1_798_761_600,
                fingerprint: "00".repeat(32),
            }],
        }),
        sni_certificates: Vec::new(),
        client_authentication: ClientAuthentication::None,
        client_ca: None,
        client_crl: None,
        ciphers: None,
        versions: vec![TlsVersion::TlsV12, TlsVersion::TlsV13],
        alpn_protocols: vec!["h2".into(), "http/1.1".into()],
        hsts: None,
    });
    let member = |n: u8| Member {
        id: format!("conformance-member-{n}"),
        name: format!("member {n}"),
        address: format!("198.51.100.{n}"),
        protocol_port: 8080,
        weight: 1,
        backup: false,
        admin_state_up: true,
        subnet_id: Some("conformance-members".into()),
        monitor_address: None,
        monitor_port: None,
    };
    let mut lb = LoadBalancer {
        id: "conformance-lb".into(),
        name: "conformance".into(),
        project_id: "conformance-project".into(),
        vip_address: "192.0.2.10".into(),
        vip_network: network("conformance-vip", "192.0.2.0/24", 100),
        member_networks: vec![network("conformance-members", "198.51.100.0/24", 200)],
        listeners: vec![Listener {
            id: "conformance-listener".into(),
            name: "listener".into(),
            protocol: listener_protocol,
            protocol_port: 8443,
            connection_limit: None,
            default_pool_id: Some("conformance-pool".into()),
            timeout_client_data: 50_000,
            timeout_member_connect: 5_000,
            timeout_member_data: 50_000,
            timeout_tcp_inspect: 0,
            allowed_cidrs: Vec::new(),
            admin_state_up: true,
            l7_policies: Vec::new(),
            insert_headers: Vec::new(),
            tls,
        }],
        pools: vec![Pool {
            id: "conformance-pool".into(),
            name: "pool".into(),
            protocol,
            algorithm,
            members: vec![member(11), member(12)],
            health_monitor: None,
            session_persistence: None,
            admin_state_up: true,
            tls: None,
        }],
        flavor: None,
        availability_zone: None,
        admin_state_up: true,
    };
    // A metrics listener has no pool.
    if listener_protocol == Protocol::Prometheus {
        lb.listeners[0].default_pool_id = None;
        lb.pools.clear();
    }
    lb
}

fn translate(
    driver: &LoadedDriver,
    kind: DeviceKind,
    protocol: Protocol,
    algorithm: Algorithm,
) -> Result<(), String> {
    let config = driver
        .translate(&sample(protocol, algorithm), &device(0, kind))
        .map_err(|e| e.to_string())?;
    if config.body.is_empty() {
        return Err("an empty configuration".into());
    }
    Ok(())
}
