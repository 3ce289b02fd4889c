//! Member health and listener counters from the device agent's statistics
//! (`GET /v1/loadbalancers/{id}/stats`): one row per HAProxy proxy and server, named as
//! [`crate::render`] names them — frontends by listener id, backends by pool id, servers by
//! member id.

use serde::Deserialize;

use lbaas_driver_sdk::prelude::*;

/// The agent's answer.
#[derive(Debug, Deserialize)]
pub struct Stats {
    pub rows: Vec<Row>,
}

/// One line of HAProxy's `show stat`, as the agent reports it.
#[derive(Debug, Deserialize)]
pub struct Row {
    /// Frontend or backend name.
    pub proxy: String,
    /// `FRONTEND`, `BACKEND`, or a server name.
    pub server: String,
    /// `OPEN`, `UP`, `DOWN`, `MAINT`, `DRAIN`, `no check`, `UP 1/3`, …
    pub status: String,
    #[serde(default)]
    pub bytes_in: u64,
    #[serde(default)]
    pub bytes_out: u64,
    #[serde(default)]
    pub current_sessions: u64,
    #[serde(default)]
    pub total_sessions: u64,
    #[serde(default)]
    pub request_errors: u64,
}

/// What the rows say about `lb`. Listeners and members the device does not report are left
/// out, so the host keeps what it knew about them.
pub fn from_stats(lb: &LoadBalancer, stats: &Stats) -> LoadBalancerStatus {
    let row = |proxy: &str, server: &str| {
        stats
            .rows
            .iter()
            .find(|row| row.proxy == proxy && row.server == server)
    };
    let listeners = lb
        .listeners
        .iter()
        .filter_map(|listener| {
            let row = row(&listener.id, "FRONTEND")?;
            Some(ListenerCounters {
                listener_id: listener.id.clone(),
                bytes_in: row.bytes_in,
                bytes_out: row.bytes_out,
                active_connections: row.current_sessions,
                total_connections: row.total_sessions,
                request_errors: row.request_errors,
            })
        })
        .collect();
    let members = lb
        .pools
        .iter()
        .flat_map(|pool| pool.members.iter().map(move |member| (pool, member)))
        .filter_map(|(pool, member)| {
            let row = row(&pool.id, &member.id)?;
            Some(MemberStatus {
                member_id: member.id.clone(),
                health: health(&row.status, member),
            })
        })
        .collect();
    LoadBalancerStatus { listeners, members }
}

/// HAProxy's server status, in Octavia's terms. `UP 1/3` (rising) is still down, `DOWN 1/2`
/// (falling) still up, as HAProxy routes them.
fn health(status: &str, member: &Member) -> MemberHealth {
    let word = status.split_whitespace().next().unwrap_or_default();
    match word {
        "UP" if status.contains('/') => MemberHealth::Down,
        "UP" if member.weight == 0 => MemberHealth::Draining,
        "UP" => MemberHealth::Online,
        "DOWN" if status.contains('/') => MemberHealth::Online,
        "DOWN" | "NOLB" => MemberHealth::Down,
        "MAINT" => MemberHealth::Disabled,
        "DRAIN" => MemberHealth::Draining,
        "no" if member.weight == 0 => MemberHealth::Draining,
        "no" => MemberHealth::Unchecked,
        _ => MemberHealth::Down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lb(weights: &[u32]) -> LoadBalancer {
        let members = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Member {
                id: format!("m{i}"),
                name: String::new(),
                address: "127.0.0.1".into(),
                protocol_port: 8000,
                weight,
                backup: false,
                admin_state_up: true,
                subnet_id: None,
                monitor_address: None,
                monitor_port: None,
            })
            .collect();
        let network = Network {
            id: "n1".into(),
            cidr: "127.0.0.0/8".into(),
            vlan: None,
        };
        LoadBalancer {
            id: "lb1".into(),
            name: String::new(),
            project_id: "p".into(),
            vip_address: "127.0.0.10".into(),
            vip_network: network,
            member_networks: Vec::new(),
            listeners: vec![Listener {
                id: "l1".into(),
                name: String::new(),
                protocol: Protocol::Http,
                protocol_port: 80,
                connection_limit: None,
                default_pool_id: Some("p1".into()),
                timeout_client_data: 50_000,
                timeout_member_connect: 5_000,
                timeout_member_data: 50_000,
                timeout_tcp_inspect: 0,
                allowed_cidrs: Vec::new(),
                admin_state_up: true,
                l7_policies: Vec::new(),
                insert_headers: Vec::new(),
                tls: None,
            }],
            pools: vec![Pool {
                id: "p1".into(),
                name: String::new(),
                protocol: Protocol::Http,
                algorithm: Algorithm::RoundRobin,
                members,
                health_monitor: None,
                session_persistence: None,
                admin_state_up: true,
                tls: None,
            }],
            flavor: None,
            availability_zone: None,
            admin_state_up: true,
        }
    }

    fn row(proxy: &str, server: &str, status: &str) -> Row {
        Row {
            proxy: proxy.into(),
            server: server.into(),
            status: status.into(),
            bytes_in: 10,
            bytes_out: 20,
            current_sessions: 1,
            total_sessions: 5,
            request_errors: 2,
        }
    }

    #[test]
    fn maps_haproxy_states_to_member_health() {
        let lb = lb(&[1, 1, 1, 1, 0, 1, 1]);
        let stats = Stats {
            rows: vec![
                row("l1", "FRONTEND", "OPEN"),
                row("p1", "m0", "UP"),
                row("p1", "m1", "DOWN"),
                row("p1", "m2", "UP 1/3"),
                row("p1", "m3", "DOWN 1/2"),
                row("p1", "m4", "UP"),
                row("p1", "m5", "MAINT"),
                row("p1", "m6", "no check"),
                row("other", "m0", "DOWN"),
            ],
        };
        let status = from_stats(&lb, &stats);
        let health: Vec<MemberHealth> = status.members.iter().map(|m| m.health).collect();
        assert_eq!(
            health,
            [
                MemberHealth::Online,
                MemberHealth::Down,
                MemberHealth::Down,
                MemberHealth::Online,
                MemberHealth::Draining,
                MemberHealth::Disabled,
                MemberHealth::Unchecked,
            ]
        );
        assert_eq!(status.listeners.len(), 1);
        let counters = &status.listeners[0];
        assert_eq!(
            (
                counters.bytes_in,
                counters.bytes_out,
                counters.active_connections
            ),
            (10, 20, 1)
        );
        assert_eq!(
            (counters.total_connections, counters.request_errors),
            (5, 2)
        );
    }

    #[test]
    fn unreported_members_are_left_out() {
        let lb = lb(&[1, 1]);
        let stats = Stats {
            rows: vec![row("p1", "m1", "UP")],
        };
        let status = from_stats(&lb, &stats);
        assert_eq!(status.members.len(), 1);
        assert_eq!(status.members[0].member_id, "m1");
        assert!(status.listeners.is_empty());
    }
}
