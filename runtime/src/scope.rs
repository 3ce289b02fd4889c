//! What one load balancer may make its device do, in the host's words. A driver renders the
//! configuration, and it is untrusted: it could point a health check at the control plane or
//! bind another tenant's VIP with lines the device's allow-list accepts. So the host, not the
//! driver, tells the device where this load balancer's configuration may bind, send traffic and
//! health checks: the [`SCOPE_HEADER`] on every request of an `apply` call to the device the load
//! balancer is placed on. The host builds it from the load balancer it hands the driver (the
//! tenant's records, checked by the API), adds it after the driver's own headers, and refuses it
//! among them (`lbaas-*` headers belong to the host), so a driver can neither forge nor widen
//! it; a request without it carries no scope, which the device agent takes as "nothing may be
//! installed".
//!
//! Addresses the host keeps for itself (its own sockets) never enter a scope, whatever the
//! records say.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{Device, HealthMonitorKind, LoadBalancer};

/// The request header carrying a [`Scope`] as JSON. The device agent's side of this contract is
/// `lbaas_agent::SCOPE_HEADER`; a test keeps the two equal.
pub const SCOPE_HEADER: &str = "lbaas-scope";

/// Where one load balancer's configuration may bind, send traffic and health checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The load balancer the call is for.
    pub loadbalancer: String,
    /// The VIP with each listener's port.
    pub binds: Vec<SocketAddr>,
    /// Each member's address and port.
    pub servers: Vec<SocketAddr>,
    /// Where each member's health checks go (its monitor address and port, else its own).
    pub checks: Vec<SocketAddr>,
    /// `METHOD PATH` of each HTTP(S) health monitor.
    pub http_checks: Vec<String>,
}

/// A scope bound to the one device it is sent to.
#[derive(Debug, Clone)]
pub struct DeviceScope {
    /// The device the scope is sent to.
    pub device_id: String,
    /// The load balancer the call is for.
    pub loadbalancer: String,
    /// The header's value.
    pub header: String,
}

impl Scope {
    /// The scope of `lb` as the host hands it to its driver, without any of `reserved` (the
    /// host's own sockets, matched as [`crate::net::is_reserved`] does).
    pub fn of(lb: &LoadBalancer, reserved: &[SocketAddr]) -> Self {
        let ip = |text: &str| text.trim().parse::<IpAddr>().ok();
        let mut scope = Scope {
            loadbalancer: lb.id.clone(),
            binds: Vec::new(),
            servers: Vec::new(),
            checks: Vec::new(),
            http_checks: Vec::new(),
        };
        if let Some(vip) = ip(&lb.vip_address) {
            scope.binds = lb
                .listeners
                .iter()
                .map(|l| SocketAddr::new(vip, l.protocol_port))
                .collect();
        }
        for pool in &lb.pools {
            for member in &pool.members {
                let Some(address) = ip(&member.address) else {
                    continue;
                };
                scope
                    .servers
                    .push(SocketAddr::new(address, member.protocol_port));
                let check = member
                    .monitor_address
                    .as_deref()
                    .and_then(ip)
                    .unwrap_or(address);
                let port = member.monitor_port.unwrap_or(member.protocol_port);
                scope.checks.push(SocketAddr::new(check, port));
            }
            if let Some(monitor) = &pool.health_monitor
                && matches!(
                    monitor.kind,
                    HealthMonitorKind::Http | HealthMonitorKind::Https
                )
            {
                let method = monitor.http_method.as_deref().unwrap_or("GET");
                let path = monitor.url_path.as_deref().unwrap_or("/");
                scope.http_checks.push(format!("{method} {path}"));
            }
        }
        for list in [&mut scope.binds, &mut scope.servers, &mut scope.checks] {
            list.retain(|socket| !crate::net::is_reserved(*socket, reserved));
            list.sort();
            list.dedup();
        }
        scope.http_checks.sort();
        scope.http_checks.dedup();
        scope
    }

    /// The scope as sent to `device`.
    pub fn for_device(&self, device: &Device) -> DeviceScope {
        DeviceScope {
            device_id: device.id.clone(),
            loadbalancer: self.loadbalancer.clone(),
            header: serde_json::to_string(self).unwrap_or_default(),
        }
    }
}
