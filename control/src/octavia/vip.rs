//! Where a VIP goes: its network and subnet, and a free address on it, given that projects'
//! networks may overlap and devices share one data plane unless VLANs keep them apart.

use std::collections::HashSet;
use std::net::IpAddr;

use super::fields::{Decided, cidr, ip};
use crate::Error;
use crate::model::{Network, Subnet};
use crate::net::IpNet;

/// The ids of the other subnets, of any project, whose range overlaps `subnet`'s.
pub fn overlapping_subnets<'a>(snapshot: &'a crate::Snapshot, subnet: &Subnet) -> HashSet<&'a str> {
    let Ok(range) = subnet.cidr.parse::<IpNet>() else {
        return Default::default();
    };
    snapshot
        .networks
        .iter()
        .flat_map(|n| &n.subnets)
        .filter(|other| other.id != subnet.id)
        .filter(|other| {
            other
                .cidr
                .parse::<IpNet>()
                .is_ok_and(|o| range.contains(&o.network()) || o.contains(&range.network()))
        })
        .map(|other| other.id.as_str())
        .collect()
}

/// Whether two networks are apart on the data plane: each on a VLAN of its own, which the
/// devices honour. Otherwise an address on one is the same address on the other.
pub fn isolated(a: &Network, b: &Network) -> bool {
    matches!((a.vlan, b.vlan), (Some(x), Some(y)) if x != y)
}

/// Picks the VIP address: the requested one (inside the subnet, not taken) or the lowest free
/// host address that is not the gateway, preferring one no other subnet's VIP uses
/// (`elsewhere`: projects' networks may overlap, and an appliance that cannot hold one address
/// twice then still takes both). Addresses are parsed once: a search that parsed every taken
/// address for every candidate made the `n`-th create on a subnet cost `n²` parses.
pub fn allocate_vip(
    subnet: &Subnet,
    requested: Option<&str>,
    taken: &[&str],
    elsewhere: &[&str],
) -> Decided<String> {
    let cidr = cidr("subnet cidr", &subnet.cidr)?;
    let parse =
        |list: &[&str]| -> HashSet<IpAddr> { list.iter().filter_map(|t| t.parse().ok()).collect() };
    let taken = parse(taken);
    if let Some(requested) = requested {
        let address = ip("vip_address", requested)?;
        if !cidr.contains(&address) {
            return Err(Error::invalid(format!(
                "vip_address {requested} is not inside subnet {} ({})",
                subnet.id, subnet.cidr
            )));
        }
        if taken.contains(&address) {
            return Err(Error::conflict(format!(
                "IP address {requested} is already allocated on subnet {}",
                subnet.id
            )));
        }
        return Ok(address.to_string());
    }
    let gateway = subnet
        .gateway_ip
        .as_deref()
        .and_then(|g| g.parse::<IpAddr>().ok());
    let free = |candidate: &IpAddr| Some(*candidate) != gateway && !taken.contains(candidate);
    let elsewhere = parse(elsewhere);
    crate::net::hosts(&cidr)
        .take(elsewhere.len() + taken.len() + 2)
        .find(|candidate| free(candidate) && !elsewhere.contains(candidate))
        .or_else(|| crate::net::hosts(&cidr).find(free))
        .map(|address| address.to_string())
        .ok_or_else(|| Error::conflict(format!("Subnet {} has no free IP address left", subnet.id)))
}

/// The network and subnet a VIP goes on, from `vip_subnet_id` or `vip_network_id`.
pub fn vip_location<'a>(
    networks: impl Iterator<Item = &'a Network>,
    subnet_id: Option<&str>,
    network_id: Option<&str>,
) -> Decided<(&'a Network, &'a Subnet)> {
    let networks: Vec<&Network> = networks.collect();
    match (subnet_id, network_id) {
        (Some(subnet_id), network_id) => networks
            .iter()
            .find_map(|n| {
                n.subnets
                    .iter()
                    .find(|s| s.id == subnet_id)
                    .map(|s| (*n, s))
            })
            .filter(|(n, _)| network_id.is_none_or(|id| id == n.id))
            .ok_or_else(|| Error::invalid(format!("Subnet {subnet_id} could not be found."))),
        (None, Some(network_id)) => {
            let network = networks
                .iter()
                .find(|n| n.id == network_id)
                .ok_or_else(|| {
                    Error::invalid(format!("Network {network_id} could not be found."))
                })?;
            let subnet = network.subnets.first().ok_or_else(|| {
                Error::invalid(format!(
                    "Network {network_id} has no subnet to allocate a VIP from."
                ))
            })?;
            Ok((network, subnet))
        }
        (None, None) => Err(Error::invalid(
            "One of vip_subnet_id or vip_network_id must be specified.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subnet(cidr: &str, gateway: Option<&str>) -> Subnet {
        Subnet {
            id: "s".into(),
            name: "s".into(),
            cidr: cidr.into(),
            gateway_ip: gateway.map(Into::into),
        }
    }

    #[test]
    fn vip_allocation_prefers_addresses_no_other_subnet_uses() {
        let s = subnet("10.1.1.0/29", None);
        let elsewhere = ["10.1.1.1", "10.1.1.2"];
        assert_eq!(
            allocate_vip(&s, None, &[], &elsewhere).ok().as_deref(),
            Some("10.1.1.3")
        );
        // With nothing else free, an address another subnet uses is still this one's to give.
        let taken = ["10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.6"];
        assert_eq!(
            allocate_vip(&s, None, &taken, &elsewhere).ok().as_deref(),
            Some("10.1.1.1")
        );
    }

    #[test]
    fn vip_allocation_skips_gateway_and_taken() {
        let s = subnet("192.0.2.0/29", Some("192.0.2.1"));
        assert_eq!(
            allocate_vip(&s, None, &[], &[]).ok().as_deref(),
            Some("192.0.2.2")
        );
        assert_eq!(
            allocate_vip(&s, None, &["192.0.2.2", "192.0.2.3"], &[])
                .ok()
                .as_deref(),
            Some("192.0.2.4")
        );
        let all = [
            "192.0.2.2",
            "192.0.2.3",
            "192.0.2.4",
            "192.0.2.5",
            "192.0.2.6",
        ];
        assert!(allocate_vip(&s, None, &all, &[]).is_err());
        assert!(allocate_vip(&s, Some("10.0.0.1"), &[], &[]).is_err());
        assert!(allocate_vip(&s, Some("192.0.2.3"), &["192.0.2.3"], &[]).is_err());
        assert_eq!(
            allocate_vip(&s, Some("192.0.2.6"), &[], &[])
                .ok()
                .as_deref(),
            Some("192.0.2.6")
        );
    }
}
