//! A spawned device's own network namespace. The device's agent and HAProxy run in
//! `lbaas-<handle>`, joined to the host by one veth pair (`lb<handle>` on the host's side,
//! `eth0` inside): inside, `127.0.0.1` is the namespace's own loopback, so nothing the host
//! listens on there is reachable, and no other device's sockets are either. The host reaches
//! the device's management address and the VIPs it serves through routes over that pair;
//! the device reaches the host's data-plane address (the gateway), where members may listen,
//! and nothing else the host does not forward.
//!
//! The namespace is made and removed with iproute2's `ip`, as the host (root) runs it; the
//! agent joins it before it drops to the device user. It outlives the host, as the device's
//! processes do, and goes with the device (its veth pair and routes with it).

use std::collections::BTreeSet;
use std::fs::File;
use std::net::{IpAddr, Ipv6Addr};
use std::path::PathBuf;

use super::firewall::Firewall;
use super::{ProvisionError, Reach};

/// Where iproute2 keeps named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// The prefix of every device namespace's name.
const PREFIX: &str = "lbaas-";
/// The link-local addresses of the host's and the device's ends of every veth pair (each pair
/// is a link of its own, so every pair has the same two).
const HOST_LINK_LOCAL: &str = "fe80::1";
const DEVICE_LINK_LOCAL: &str = "fe80::2";

/// The network namespace of the device `handle`, and its link to the host.
#[derive(Debug, Clone)]
pub(super) struct Namespace {
    handle: String,
    name: String,
    /// The host's end of the veth pair (at most 15 bytes: `lb` and the 12-digit handle).
    link: String,
    /// The host's addresses on that link.
    gateway: Gateway,
    /// What the device may send into the host over that link.
    firewall: Firewall,
}

/// What a device answers on now: the addresses of its namespace's loopback, and the
/// destinations the host routes over its link through it.
struct Held {
    addresses: BTreeSet<IpAddr>,
    routes: BTreeSet<IpAddr>,
}

impl Namespace {
    /// The namespace of device `handle` of the provisioner whose devices live under `owner`
    /// (that provisioner's [`tag`]), reached from the host at `gateway`.
    pub(super) fn of(owner: &str, handle: &str, gateway: &Gateway) -> Self {
        Self {
            handle: handle.to_owned(),
            name: format!("{PREFIX}{owner}-{handle}"),
            link: format!("lb{}", &handle[..handle.len().min(13)]),
            gateway: gateway.clone(),
            firewall: Firewall::of(owner),
        }
    }

    pub(super) fn name(&self) -> &str {
        &self.name
    }

    /// The device's handle.
    pub(super) fn handle(&self) -> &str {
        &self.handle
    }

    fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    pub(super) fn exists(&self) -> bool {
        self.path().exists()
    }

    /// The namespace, opened for a process to join (`setns`).
    pub(super) fn open(&self) -> Result<File, ProvisionError> {
        File::open(self.path()).map_err(ProvisionError::system(format!(
            "cannot open the network namespace {}",
            self.name
        )))
    }

    /// Makes the namespace: the device's link filtered first (nothing but replies until its
    /// members are allowed), the device at `device` on its side of the pair, the host at its
    /// gateway on its own, a route each way, the host as the device's default route, and
    /// binding to addresses not (yet) local allowed, so HAProxy can bind a VIP before the
    /// host routes it there. With an IPv6 gateway, the same in IPv6: the pair's ends at
    /// fixed link-local addresses, the device at its [`Gateway::device_v6`] address. Whatever
    /// was made is removed again on failure.
    pub(super) fn create(&self, device: IpAddr) -> Result<(), ProvisionError> {
        let made = self.build(device);
        if made.is_err() {
            self.remove();
        }
        made
    }

    fn build(&self, device: IpAddr) -> Result<(), ProvisionError> {
        let (name, link) = (self.name.as_str(), self.link.as_str());
        let device_v6 = self.gateway.device_v6(device);
        let (device, gateway) = (host_prefix(device), host_prefix(self.gateway.v4));
        self.firewall.guard(&self.handle, link)?;
        ip(&["netns", "add", name])?;
        ip(&[
            "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name,
        ])?;
        ip(&["link", "set", link, "up"])?;
        ip(&["-n", name, "link", "set", "lo", "up"])?;
        ip(&["-n", name, "addr", "add", &device, "dev", "eth0"])?;
        ip(&["-n", name, "link", "set", "eth0", "up"])?;
        let via = gateway.split('/').next().unwrap_or_default();
        ip(&["route", "replace", &device, "dev", link, "src", via])?;
        ip(&["-n", name, "route", "add", &gateway, "dev", "eth0"])?;
        ip(&[
            "-n", name, "route", "add", "default", "via", via, "dev", "eth0",
        ])?;
        // Written as `/proc/sys` of a process in the namespace sees it (no `sysctl` needed).
        ip(&[
            "netns",
            "exec",
            name,
            "sh",
            "-c",
            "echo 1 > /proc/sys/net/ipv4/ip_nonlocal_bind && \
             { echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind || [ ! -d /proc/sys/net/ipv6 ]; }",
        ])?;
        if let (Some(v6), Some(device)) = (self.gateway.v6, device_v6) {
            let (v6, device) = (v6.to_string(), format!("{device}/128"));
            let (host_end, device_end) = (
                format!("{HOST_LINK_LOCAL}/64"),
                format!("{DEVICE_LINK_LOCAL}/64"),
            );
            ip(&["addr", "add", &host_end, "dev", link, "nodad"])?;
            ip(&[
                "-n",
                name,
                "addr",
                "add",
                &device_end,
                "dev",
                "eth0",
                "nodad",
            ])?;
            ip(&["-n", name, "addr", "add", &device, "dev", "eth0", "nodad"])?;
            ip(&[
                "-n",
                name,
                "-6",
                "route",
                "add",
                "default",
                "via",
                HOST_LINK_LOCAL,
                "dev",
                "eth0",
            ])?;
            ip(&[
                "route",
                "replace",
                &device,
                "via",
                DEVICE_LINK_LOCAL,
                "dev",
                link,
                "src",
                &v6,
            ])?;
        }
        Ok(())
    }

    /// Removes the namespace, its veth pair, the host's routes over it and its filter.
    /// Nothing to remove is not an error.
    pub(super) fn remove(&self) {
        if let Err(error) = ip(&["link", "del", &self.link]) {
            tracing::debug!(%error, link = self.link.as_str(), "no veth pair to remove");
        }
        self.firewall.forget(&self.handle, &self.link);
        if self.exists()
            && let Err(error) = ip(&["netns", "del", &self.name])
        {
            tracing::warn!(%error, namespace = self.name.as_str(), "cannot remove a device's network namespace");
        }
    }

    /// Makes the device answer on exactly `reach.vips` (the VIPs of the load balancers on
    /// it): a VIP it no longer serves is withdrawn, a missing one added, the rest left alone
    /// (two `ip` listings when nothing changed).
    pub(super) fn serve(&self, device: IpAddr, reach: &Reach) -> Result<(), ProvisionError> {
        let held = self.held(device)?;
        let stale: BTreeSet<IpAddr> = held.addresses.union(&held.routes).copied().collect();
        for vip in stale.difference(&reach.vips) {
            self.forget(*vip, &held)?;
        }
        for vip in &reach.vips {
            self.add(device, *vip, &held)?;
        }
        Ok(())
    }

    /// Lets the device open connections to exactly `reach.targets`, and to nothing else.
    pub(super) fn allow(&self, reach: &Reach) -> Result<(), ProvisionError> {
        self.firewall
            .allow(&self.handle, &self.link, &reach.targets)
    }

    fn add(&self, device: IpAddr, vip: IpAddr, held: &Held) -> Result<(), ProvisionError> {
        let address = host_prefix(vip);
        if !held.addresses.contains(&vip) {
            ip(&["-n", &self.name, "addr", "add", &address, "dev", "lo"])?;
        }
        // From the gateway: the device answers the host there, and clients on this machine show
        // as it (not as whichever address the host would pick).
        let route = match vip {
            IpAddr::V4(_) => Some((device.to_string(), self.gateway.v4.to_string())),
            IpAddr::V6(_) => self
                .gateway
                .v6
                .map(|v6| (DEVICE_LINK_LOCAL.to_owned(), v6.to_string())),
        };
        if let Some((via, src)) = route
            && !held.routes.contains(&vip)
        {
            ip(&[
                "route", "replace", &address, "via", &via, "dev", &self.link, "src", &src,
            ])?;
        }
        Ok(())
    }

    fn forget(&self, vip: IpAddr, held: &Held) -> Result<(), ProvisionError> {
        let address = host_prefix(vip);
        if held.addresses.contains(&vip) {
            ip(&["-n", &self.name, "addr", "del", &address, "dev", "lo"])?;
        }
        if held.routes.contains(&vip) {
            ip(&["route", "del", &address, "dev", &self.link])?;
        }
        Ok(())
    }

    /// What the device answers on now: every address of its loopback but loopback's own, and
    /// every route the host has through it (`via`: not the route to the device itself).
    fn held(&self, device: IpAddr) -> Result<Held, ProvisionError> {
        let listed = ip(&["-n", &self.name, "-o", "addr", "show", "dev", "lo"])?;
        let addresses = listed
            .lines()
            .filter_map(|line| {
                let mut words = line.split_whitespace();
                words.find(|w| *w == "inet" || *w == "inet6")?;
                words.next()?.split('/').next()?.parse::<IpAddr>().ok()
            })
            .filter(|ip| !ip.is_loopback())
            .collect();
        let mut listed = ip(&["-o", "route", "show", "dev", &self.link])?;
        let device_v6 = self.gateway.device_v6(device);
        if device_v6.is_some() {
            listed.push_str(&ip(&["-o", "-6", "route", "show", "dev", &self.link])?);
        }
        let routes = listed
            .lines()
            .filter(|line| line.split_whitespace().any(|w| w == "via"))
            .filter_map(|line| line.split_whitespace().next()?.parse::<IpAddr>().ok())
            .filter(|ip| Some(*ip) != device_v6.map(IpAddr::V6))
            .collect();
        Ok(Held { addresses, routes })
    }

    /// Handles of every device namespace of the provisioner `owner` on this machine.
    pub(super) fn all(owner: &str) -> Vec<String> {
        let prefix = format!("{PREFIX}{owner}-");
        std::fs::read_dir(NETNS_DIR)
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|name| name.strip_prefix(&prefix).map(str::to_owned))
            .collect()
    }
}

/// A provisioner's mark on the namespaces it makes, from the folder its devices live in: two
/// hosts on one machine never take each other's namespaces for orphans.
pub(super) fn tag(root: &std::path::Path) -> String {
    use sha2::Digest as _;
    let root = root.canonicalize().unwrap_or_else(|_| root.to_owned());
    let digest = sha2::Sha256::digest(root.as_os_str().as_encoded_bytes());
    hex::encode(&digest[..4])
}

/// Addresses the host routes to one address each (`/32`, `/128` routes: devices'
/// management addresses and VIPs), whoever routed them.
pub(super) fn routed() -> Result<BTreeSet<IpAddr>, ProvisionError> {
    let listed = ip(&["-o", "route", "show"])?;
    Ok(listed
        .lines()
        .filter_map(|line| line.split_whitespace().next()?.parse::<IpAddr>().ok())
        .collect())
}

/// Whether this host can give devices namespaces of their own: root, iproute2 and nftables.
pub(super) fn available() -> Result<(), ProvisionError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(ProvisionError::Unavailable(
            "devices get network namespaces of their own only when the host runs as root".into(),
        ));
    }
    ip(&["netns", "list"])?;
    super::firewall::available()
}

/// The host's addresses on the devices' links: addresses of the host's loopback interface
/// (there from the start, so members can listen on them), which the host answers for on every
/// device's link: one IPv4, and an IPv6 one where IPv6 VIPs are routed to devices.
#[derive(Debug, Clone)]
pub(super) struct Gateway {
    v4: IpAddr,
    v6: Option<Ipv6Addr>,
}

impl Gateway {
    pub(super) fn at(v4: IpAddr, v6: Option<Ipv6Addr>) -> Self {
        Self { v4, v6 }
    }

    fn all(&self) -> impl Iterator<Item = IpAddr> {
        std::iter::once(self.v4).chain(self.v6.map(IpAddr::V6))
    }

    /// Puts the addresses on the host, where they are not yet.
    pub(super) fn ensure(&self) -> Result<(), ProvisionError> {
        for address in self.all() {
            ip(&["addr", "replace", &host_prefix(address), "dev", "lo"])?;
        }
        Ok(())
    }

    pub(super) fn addresses(&self) -> Vec<IpAddr> {
        self.all().collect()
    }

    /// The IPv4 address, every gateway's.
    pub(super) fn v4(&self) -> IpAddr {
        self.v4
    }

    /// The IPv6 address of the device whose IPv4 address is `device`: the IPv6 gateway's
    /// /96 with the IPv4 address as its last 32 bits (`fd00:198:19::1` and 198.18.0.7 give
    /// `fd00:198:19::c612:7`); none without an IPv6 gateway.
    fn device_v6(&self, device: IpAddr) -> Option<Ipv6Addr> {
        let (IpAddr::V4(device), Some(gateway)) = (device, self.v6) else {
            return None;
        };
        let mut octets = gateway.octets();
        octets[12..].copy_from_slice(&device.octets());
        Some(Ipv6Addr::from(octets))
    }

    /// Whether a device (of any provisioner on this machine) still reaches the host here:
    /// the host's route to its management address leaves from the gateway.
    pub(super) fn in_use(&self) -> bool {
        let src = self.v4.to_string();
        ip(&["-o", "route", "show"]).map_or(true, |listed| {
            listed.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.any(|w| w == "src") && words.next() == Some(src.as_str())
            })
        })
    }

    /// Takes the addresses off the host again (once no device uses them).
    pub(super) fn remove(&self) {
        for address in self.all() {
            if let Err(error) = ip(&["addr", "del", &host_prefix(address), "dev", "lo"]) {
                tracing::debug!(%error, %address, "no gateway address to remove");
            }
        }
    }
}

/// `address` as a one-address prefix (`/32`, `/128`).
fn host_prefix(address: IpAddr) -> String {
    match address {
        IpAddr::V4(_) => format!("{address}/32"),
        IpAddr::V6(_) => format!("{address}/128"),
    }
}

/// Runs `ip` with `args`; its output, or what it said when it failed.
fn ip(args: &[&str]) -> Result<String, ProvisionError> {
    super::run("ip", args, None)
}

/// Moves the calling process into the network namespace `namespace` (opened before the fork).
/// For `pre_exec`: a system call only, no allocation.
pub(super) fn enter(namespace: &File) -> std::io::Result<()> {
    nix::sched::setns(namespace, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}
