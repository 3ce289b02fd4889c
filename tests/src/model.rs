//! Realistic inputs for driver calls: load balancers with listeners, pools, members and health
//! monitors, devices and candidates.

use lbaas_host::runtime::{
    Algorithm, Candidate, Device, DeviceKind, Entry, Flavor, HealthMonitor, HealthMonitorKind,
    Listener, LoadBalancer, Member, Network, PersistenceKind, PlacementRequest, Pool, Protocol,
    SessionPersistence,
};

pub fn network(id: &str, cidr: &str, vlan: Option<u16>) -> Network {
    Network {
        id: id.into(),
        cidr: cidr.into(),
        vlan,
    }
}

pub fn member(id: &str, address: &str, port: u16) -> Member {
    Member {
        id: id.into(),
        name: format!("member {id}"),
        address: address.into(),
        protocol_port: port,
        weight: 1,
        backup: false,
        admin_state_up: true,
        subnet_id: Some("members-subnet".into()),
        monitor_address: None,
        monitor_port: None,
    }
}

pub fn listener(id: &str, protocol: Protocol, port: u16, pool: Option<&str>) -> Listener {
    Listener {
        id: id.into(),
        name: format!("listener {id}"),
        protocol,
        protocol_port: port,
        connection_limit: None,
        default_pool_id: pool.map(Into::into),
        timeout_client_data: 50_000,
        timeout_member_connect: 5_000,
        timeout_member_data: 50_000,
        timeout_tcp_inspect: 0,
        allowed_cidrs: vec![],
        admin_state_up: true,
        l7_policies: vec![],
        insert_headers: vec![],
        tls: None,
    }
}

pub fn pool(id: &str, protocol: Protocol, algorithm: Algorithm, members: Vec<Member>) -> Pool {
    Pool {
        id: id.into(),
        name: format!("pool {id}"),
        protocol,
        algorithm,
        members,
        health_monitor: None,
        session_persistence: None,
        admin_state_up: true,
        tls: None,
    }
}

pub fn http_monitor(id: &str) -> HealthMonitor {
    HealthMonitor {
        id: id.into(),
        kind: HealthMonitorKind::Http,
        delay: 5,
        timeout: 3,
        max_retries: 2,
        max_retries_down: 3,
        http_method: Some("GET".into()),
        url_path: Some("/healthz".into()),
        expected_codes: Some("200-204".into()),
        admin_state_up: true,
        http_version: None,
        domain_name: None,
    }
}

/// A web shop's load balancer: HTTP on 80 with cookie persistence and an HTTP monitor, HTTPS
/// passed through on 443 with a TLS check, and a TCP database listener with source-IP balancing,
/// weights, a backup member and a member taken down by its operator.
pub fn web_shop(id: &str, vip: &str) -> LoadBalancer {
    let mut web = pool(
        "pool-web",
        Protocol::Http,
        Algorithm::RoundRobin,
        vec![
            member("m-web-1", "10.0.1.11", 8080),
            member("m-web-2", "10.0.1.12", 8080),
        ],
    );
    web.members[1].weight = 3;
    web.health_monitor = Some(http_monitor("hm-web"));
    web.session_persistence = Some(SessionPersistence {
        kind: PersistenceKind::HttpCookie,
        cookie_name: None,
    });

    let mut tls = pool(
        "pool-tls",
        Protocol::Https,
        Algorithm::LeastConnections,
        vec![
            member("m-tls-1", "10.0.1.21", 8443),
            member("m-tls-2", "10.0.1.22", 8443),
        ],
    );
    tls.health_monitor = Some(HealthMonitor {
        kind: HealthMonitorKind::TlsHello,
        http_method: None,
        url_path: None,
        expected_codes: None,
        ..http_monitor("hm-tls")
    });

    let mut db = pool(
        "pool-db",
        Protocol::Tcp,
        Algorithm::SourceIp,
        vec![
            member("m-db-1", "10.0.2.31", 5432),
            member("m-db-2", "10.0.2.32", 5432),
            member("m-db-3", "10.0.2.33", 5432),
        ],
    );
    db.members[1].backup = true;
    db.members[2].admin_state_up = false;
    db.health_monitor = Some(HealthMonitor {
        kind: HealthMonitorKind::Tcp,
        http_method: None,
        url_path: None,
        expected_codes: None,
        ..http_monitor("hm-db")
    });

    let mut http = listener("l-http", Protocol::Http, 80, Some("pool-web"));
    http.connection_limit = Some(10_000);
    let https = listener("l-https", Protocol::Https, 443, Some("pool-tls"));
    let mut postgres = listener("l-db", Protocol::Tcp, 5432, Some("pool-db"));
    postgres.allowed_cidrs = vec!["10.0.0.0/8".into(), "192.168.0.0/16".into()];
    postgres.timeout_tcp_inspect = 2_000;

    LoadBalancer {
        id: id.into(),
        name: "web shop".into(),
        project_id: "project-a".into(),
        vip_address: vip.into(),
        vip_network: network("net-vip", "192.0.2.0/24", Some(100)),
        member_networks: vec![
            network("net-web", "10.0.1.0/24", Some(201)),
            network("net-db", "10.0.2.0/24", Some(202)),
        ],
        listeners: vec![http, https, postgres],
        pools: vec![web, tls, db],
        flavor: None,
        availability_zone: None,
        admin_state_up: true,
    }
}

pub fn device(id: &str, kind: DeviceKind, capacity: u32, cluster: Option<&str>) -> Device {
    Device {
        id: id.into(),
        name: format!("device {id}"),
        kind,
        capacity,
        cluster: cluster.map(Into::into),
        owner_project: None,
        networks: vec![],
        metadata: vec![],
        availability_zone: None,
    }
}

pub fn with_metadata(mut device: Device, key: &str, value: &str) -> Device {
    device.metadata.push(Entry {
        key: key.into(),
        value: value.into(),
    });
    device
}

pub fn candidate(device: Device, load_balancers: u32, project_load_balancers: u32) -> Candidate {
    Candidate {
        device,
        load_balancers,
        project_load_balancers,
        host_score: 0,
    }
}

/// The placement request for `lb`.
pub fn request_for(lb: &LoadBalancer) -> PlacementRequest {
    PlacementRequest {
        load_balancer_id: lb.id.clone(),
        project_id: lb.project_id.clone(),
        vip_address: Some(lb.vip_address.clone()),
        vip_network: lb.vip_network.clone(),
        member_networks: lb.member_networks.clone(),
        protocols: lb.listeners.iter().map(|l| l.protocol).collect(),
        flavor: lb.flavor.clone(),
        availability_zone: lb.availability_zone.clone(),
    }
}

pub fn flavor(name: &str, metadata: &[(&str, &str)]) -> Flavor {
    Flavor {
        name: name.into(),
        metadata: metadata
            .iter()
            .map(|(key, value)| Entry {
                key: (*key).into(),
                value: (*value).into(),
            })
            .collect(),
    }
}
