//! Where tenants' addresses may point. A tenant names the addresses the data plane binds (VIPs)
//! and sends traffic and health checks to (members, monitor addresses); through them a tenant
//! must not reach the control plane, the devices' management sockets or another tenant's VIP.
//!
//! Refused everywhere, after IPv4-mapped and IPv4-compatible IPv6 addresses are read as the IPv4
//! address they carry ([`canonical`]): unspecified, multicast, link-local and broadcast
//! addresses, the networks the operator keeps (the spawn range of devices' management
//! addresses), and every socket the host listens on or calls (API, metrics, database, OTLP,
//! Keystone) and every device's management socket. Tenants' own subnets may not overlap
//! loopback, those special ranges, the operator's reserved networks, the operator's shared
//! networks or the host's own addresses.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use crate::net::canonical;
use crate::net::{is_reserved, url_socket};

use crate::net::IpNet;

use crate::model::{Member, Network};
use crate::snapshot::Snapshot;

/// The host's side of the rules: what it keeps for itself.
#[derive(Debug, Clone, Default)]
pub struct AddressRules {
    /// Sockets the host listens on or calls.
    pub host_sockets: Vec<SocketAddr>,
    /// Networks the operator keeps for the control plane (the spawn range).
    pub reserved_networks: Vec<IpNet>,
    /// Addresses at which devices reach this host itself (the gateway of devices in
    /// namespaces of their own): members may listen there, but never on a port of the host's
    /// own sockets, and no VIP or project subnet may hold one.
    pub host_addresses: Vec<IpAddr>,
    /// Where devices' management endpoints may be (`--device-network`, the spawn range): no
    /// project subnet overlaps them, and no VIP is routed or bound inside them but on loopback
    /// (devices sharing the host's network serve VIPs there).
    pub device_networks: Vec<IpNet>,
}

/// Why an address or a network was refused, for the tenant's `400`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// What no tenant address may be, whatever the host's configuration: its name, when refused.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        ip if ip.is_unspecified() => Some("the unspecified address"),
        ip if ip.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_link_local() => Some("a link-local address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("an address of 0.0.0.0/8"),
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some("a link-local address"),
        _ => None,
    }
}

/// Networks no tenant subnet may overlap, whatever the host's configuration.
const SPECIAL_NETWORKS: [&str; 8] = [
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "255.255.255.255/32",
    "::1/128",
    "fe80::/10",
    "ff00::/8",
];

fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

impl AddressRules {
    /// Why `ip` may not be a tenant's address at all, if it may not.
    pub fn address(&self, what: &str, ip: IpAddr) -> Result<(), Refused> {
        let ip = canonical(ip);
        if let Some(name) = special(ip) {
            return Err(Refused(format!("{what} {ip} is {name}.")));
        }
        if let Some(net) = self.reserved_networks.iter().find(|n| n.contains(&ip)) {
            return Err(Refused(format!(
                "{what} {ip} is inside {net}, which the operator keeps for the control plane."
            )));
        }
        Ok(())
    }

    /// Whether the host may route `vip` to a device in a namespace of its own: never an
    /// address a tenant may not hold, nor loopback (always the host's own), nor one the host
    /// itself listens on or calls (a route there would hand the host's own traffic to the
    /// device).
    pub fn routable(&self, vip: IpAddr) -> bool {
        let vip = canonical(vip);
        self.address("VIP", vip).is_ok()
            && !vip.is_loopback()
            && !self.host_sockets.iter().any(|s| canonical(s.ip()) == vip)
            && !self.host_addresses.contains(&vip)
            && self.device_network(vip).is_none()
    }

    /// The device network `ip` is inside, if any.
    fn device_network(&self, ip: IpAddr) -> Option<&IpNet> {
        self.device_networks.iter().find(|n| n.contains(&ip))
    }

    /// Whether `socket` is on an address of the host where a host socket's port answers.
    fn at_host(&self, socket: SocketAddr) -> bool {
        self.host_addresses.contains(&canonical(socket.ip()))
            && self.host_sockets.iter().any(|s| s.port() == socket.port())
    }

    /// Why traffic or health checks may not be sent to `socket`, if they may not: the address
    /// rules, the host's own sockets and every device's management socket.
    pub fn target(
        &self,
        snapshot: &Snapshot,
        what: &str,
        socket: SocketAddr,
    ) -> Result<(), Refused> {
        self.address(what, socket.ip())?;
        if is_reserved(socket, &self.host_sockets) || self.at_host(socket) {
            return Err(Refused(format!(
                "{what} {socket} is a socket of the control plane."
            )));
        }
        let device = snapshot.devices.iter().any(|device| {
            url_socket(&device.management_url).is_some_and(|m| is_reserved(socket, &[m]))
        });
        if device {
            return Err(Refused(format!(
                "{what} {socket} is a device's management socket."
            )));
        }
        Ok(())
    }

    /// Why a member's traffic (its address and port) or health checks (its monitor address and
    /// port, else the same) may not go where it says, if they may not.
    pub fn member(&self, snapshot: &Snapshot, member: &Member) -> Result<(), Refused> {
        let [traffic, check] = member_sockets(member)?;
        self.target(snapshot, "member address", traffic)?;
        self.target(snapshot, "member monitor", check)
    }

    /// Why a listener may not bind `socket` (a VIP and its port), if it may not: the address
    /// rules and the host's own sockets.
    pub fn bind(&self, socket: SocketAddr) -> Result<(), Refused> {
        self.address("VIP", socket.ip())?;
        if is_reserved(socket, &self.host_sockets) {
            return Err(Refused(format!(
                "VIP {socket} is a socket of the control plane."
            )));
        }
        let ip = canonical(socket.ip());
        if self.host_addresses.contains(&ip) {
            return Err(Refused(format!(
                "VIP {ip} is the address devices reach the host at."
            )));
        }
        if let Some(net) = self.device_network(ip).filter(|_| !ip.is_loopback()) {
            return Err(Refused(format!(
                "VIP {ip} is inside {net}, where devices' management endpoints are."
            )));
        }
        Ok(())
    }

    /// Why a project may not have a subnet of `cidr`, if it may not: it contains or overlaps
    /// loopback or another special range, a reserved network, an operator's shared network or
    /// one of the host's own addresses.
    pub fn tenant_subnet(&self, snapshot: &Snapshot, cidr: &IpNet) -> Result<(), Refused> {
        let cidr = match canonical(cidr.addr()) {
            IpAddr::V4(v4) if cidr.addr().is_ipv6() => {
                IpNet::new(IpAddr::V4(v4), cidr.prefix_len().saturating_sub(96))
                    .map_err(|_| Refused(format!("cidr {cidr} is not a usable network.")))?
            }
            _ => *cidr,
        };
        let special = SPECIAL_NETWORKS
            .iter()
            .filter_map(|n| n.parse::<IpNet>().ok());
        if let Some(net) = special.clone().find(|n| overlaps(n, &cidr)) {
            return Err(Refused(format!(
                "cidr {cidr} overlaps {net}, which no project network may use."
            )));
        }
        if let Some(net) = self.reserved_networks.iter().find(|n| overlaps(n, &cidr)) {
            return Err(Refused(format!(
                "cidr {cidr} overlaps {net}, which the operator keeps for the control plane."
            )));
        }
        if let Some(net) = self.device_networks.iter().find(|n| overlaps(n, &cidr)) {
            return Err(Refused(format!(
                "cidr {cidr} overlaps {net}, where devices' management endpoints are."
            )));
        }
        let host = self
            .host_sockets
            .iter()
            .map(|s| canonical(s.ip()))
            .chain(self.host_addresses.iter().copied())
            .find(|ip| cidr.contains(ip));
        if let Some(ip) = host {
            return Err(Refused(format!(
                "cidr {cidr} holds {ip}, an address of the control plane."
            )));
        }
        let shared = snapshot
            .networks
            .iter()
            .filter(|n| n.project_id.is_none())
            .flat_map(|n: &Network| &n.subnets)
            .find(|s| {
                s.cidr
                    .parse::<IpNet>()
                    .is_ok_and(|net| overlaps(&net, &cidr))
            });
        if let Some(subnet) = shared {
            return Err(Refused(format!(
                "cidr {cidr} overlaps {} ({}), a network the operator shares with every project.",
                subnet.id, subnet.cidr
            )));
        }
        Ok(())
    }
}

/// Where a member's traffic goes (its address and port) and its health checks (its monitor
/// address and port, else the same), as written.
pub fn member_sockets(member: &Member) -> Result<[SocketAddr; 2], Refused> {
    let parse = |what: &str, text: &str| {
        text.trim()
            .parse::<IpAddr>()
            .map_err(|_| Refused(format!("{what} {text} is not an IP address.")))
    };
    let address = parse("member address", &member.address)?;
    let check = match &member.monitor_address {
        Some(text) => parse("monitor_address", text)?,
        None => address,
    };
    let port = member.monitor_port.unwrap_or(member.protocol_port);
    Ok([
        SocketAddr::new(address, member.protocol_port),
        SocketAddr::new(check, port),
    ])
}

/// The sockets named by URLs the host calls (`postgres://…@127.0.0.1:5432/db`,
/// `http://127.0.0.1:4318`): IP literals and `localhost` (as both loopback addresses), with the
/// scheme's default port when none is given.
pub fn sockets_of_url(url: &str, default_port: u16) -> Vec<SocketAddr> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    let port = parsed.port().unwrap_or(default_port);
    match parsed.host() {
        Some(url::Host::Ipv4(v4)) => vec![SocketAddr::new(v4.into(), port)],
        Some(url::Host::Ipv6(v6)) => vec![SocketAddr::new(v6.into(), port)],
        Some(url::Host::Domain("localhost")) => vec![
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port),
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), port),
        ],
        _ => Vec::new(),
    }
}

/// A tenant's address the control plane keeps off its own: `400` with the reason.
impl From<Refused> for crate::Error {
    fn from(refused: Refused) -> Self {
        Self::invalid(refused.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> AddressRules {
        AddressRules {
            host_sockets: vec![
                "127.0.0.1:9876".parse().expect("socket"),
                "0.0.0.0:9100".parse().expect("socket"),
            ],
            reserved_networks: vec!["127.128.0.0/16".parse().expect("cidr")],
            host_addresses: vec!["198.19.0.1".parse().expect("ip")],
            device_networks: vec![
                "127.0.0.0/8".parse().expect("cidr"),
                "10.20.0.0/16".parse().expect("cidr"),
            ],
        }
    }

    /// A VIP route never takes the host's own sockets, the reserved range or a special
    /// address, however the VIP is written.
    #[test]
    fn only_a_tenant_address_the_host_does_not_use_is_routed_to_a_device() {
        let rules = rules();
        let routable = |ip: &str| rules.routable(ip.parse().expect("ip"));
        assert!(routable("203.0.113.7"));
        assert!(!routable("127.0.0.1"), "the API's address");
        assert!(!routable("::ffff:127.0.0.1"), "the API's address, mapped");
        assert!(!routable("127.128.0.9"), "the spawn range");
        assert!(!routable("169.254.169.254"), "link-local");
        assert!(!routable("0.0.0.0"), "unspecified");
        assert!(!routable("198.19.0.1"), "the devices' gateway");
        assert!(!routable("10.20.3.4"), "a device network");
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let mapped: IpAddr = "::ffff:127.128.0.5".parse().expect("ip");
        assert_eq!(
            canonical(mapped),
            "127.128.0.5".parse::<IpAddr>().expect("ip")
        );
        let compatible: IpAddr = "::127.128.0.5".parse().expect("ip");
        assert_eq!(
            canonical(compatible),
            "127.128.0.5".parse::<IpAddr>().expect("ip")
        );
        let loopback: IpAddr = "::1".parse().expect("ip");
        assert_eq!(canonical(loopback), loopback);
        assert!(rules().address("member", mapped).is_err());
    }

    #[test]
    fn targets_are_never_the_control_plane() {
        let rules = rules();
        let snapshot = Snapshot::empty();
        let refused = |socket: &str| {
            rules
                .target(&snapshot, "member", socket.parse().expect("socket"))
                .is_err()
        };
        assert!(refused("127.0.0.1:9876"));
        assert!(refused("[::ffff:127.0.0.1]:9876"));
        assert!(refused("10.1.2.3:9100"), "a listener on every address");
        assert!(refused("0.0.0.0:80"));
        assert!(refused("169.254.169.254:80"));
        assert!(refused("[fe80::1]:80"));
        assert!(refused("224.0.0.1:80"));
        assert!(refused("127.128.0.7:9443"));
        assert!(refused("198.19.0.1:9876"), "the API's port at the gateway");
        assert!(
            refused("198.19.0.1:9100"),
            "a wildcard listener at the gateway"
        );
        assert!(!refused("198.19.0.1:8001"), "a member on this machine");
        assert!(!refused("127.0.0.1:8001"));
        assert!(!refused("10.0.0.5:80"));
        assert!(
            rules
                .bind("127.0.0.1:9876".parse().expect("socket"))
                .is_err()
        );
        assert!(rules.bind("0.0.0.0:8080".parse().expect("socket")).is_err());
        assert!(
            rules
                .bind("198.19.0.1:8080".parse().expect("socket"))
                .is_err()
        );
        assert!(
            rules
                .bind("127.0.50.1:8080".parse().expect("socket"))
                .is_ok(),
            "a VIP on loopback, for devices sharing the host's network"
        );
        assert!(
            rules
                .bind("10.20.3.4:8080".parse().expect("socket"))
                .is_err(),
            "a VIP among devices' management endpoints"
        );
    }

    #[test]
    fn tenant_subnets_keep_off_the_hosts_networks() {
        let rules = rules();
        let snapshot = Snapshot::empty();
        let refused = |cidr: &str| {
            rules
                .tenant_subnet(&snapshot, &cidr.parse().expect("cidr"))
                .is_err()
        };
        for cidr in [
            "0.0.0.0/0",
            "127.0.0.0/8",
            "127.0.50.0/24",
            "169.254.0.0/24",
            "::/0",
            "::1/128",
            "::ffff:127.0.0.0/104",
            "fe80::/64",
            "10.0.0.0/12",
            "198.19.0.0/24",
            "10.20.128.0/17",
            "10.0.0.0/8",
        ] {
            let expect = cidr != "10.0.0.0/12";
            assert_eq!(refused(cidr), expect, "{cidr}");
        }
        assert!(!refused("fdde:1a92:7523:70a0::/64"));
    }
}
