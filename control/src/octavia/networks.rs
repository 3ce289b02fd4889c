//! Networks and subnets, the model VIPs are allocated from: the operator's (shared, through
//! the admin API, possibly on a VLAN of their own) and a project's own (through the subset of
//! Neutron's API clients use). A project's subnet keeps off the host's and the operator's
//! networks; a network or subnet a VIP or member is on stays.

use lbaas_core::ids::{new_id, now};
use serde::Deserialize;

use super::Caller;
use super::fields::{self, Decided};
use super::tree::{remove, store};
use crate::Error;
use crate::model::{Network, Subnet};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;

/// Networks and subnets a project may have: Neutron's default quotas.
pub const MAX_NETWORKS: usize = 100;
pub const MAX_SUBNETS: usize = 100;

/// Neutron's network attributes this host keeps or accepts (`admin_state_up`, port security
/// and the MTU have no meaning here and are accepted as Neutron's defaults).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(alias = "tenant_id")]
    project_id: Option<String>,
    #[serde(default)]
    shared: bool,
    #[serde(default)]
    admin_state_up: Option<bool>,
    #[serde(default)]
    port_security_enabled: Option<bool>,
}

/// A project subnet's attributes, as Neutron's API takes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetSpec {
    network_id: String,
    cidr: Option<String>,
    ip_version: u8,
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    gateway_ip: Option<String>,
    #[serde(alias = "tenant_id")]
    project_id: Option<String>,
    #[serde(default)]
    enable_dhcp: Option<bool>,
    subnetpool_id: Option<String>,
    ipv6_address_mode: Option<String>,
    ipv6_ra_mode: Option<String>,
}

/// A network the operator registers (shared unless it names a project), with its subnets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedNetworkSpec {
    id: Option<String>,
    name: Option<String>,
    project_id: Option<String>,
    vlan: Option<i64>,
    subnets: Vec<SharedSubnetSpec>,
}

/// A subnet of a network the operator registers.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedSubnetSpec {
    id: Option<String>,
    name: Option<String>,
    cidr: String,
    gateway_ip: Option<String>,
}

/// Neutron's `409` when a project already has `count` of `MAX` `resource`s.
fn over_quota(count: usize, max: usize, resource: &str) -> Decided<()> {
    if count >= max {
        return Err(Error::conflict(format!(
            "Quota exceeded for resources: ['{resource}']. A project has at most {max}."
        )));
    }
    Ok(())
}

/// The network `id` if the caller may change it: its project's member, or an admin.
fn owned<'a>(caller: &impl Caller, snapshot: &'a Snapshot, id: &str) -> Decided<&'a Network> {
    let network = snapshot
        .network(caller, id)
        .map_err(|_| Error::not_found("Network", id))?;
    match &network.project_id {
        Some(project) if caller.can_write(project) => Ok(network),
        _ if caller.is_admin() => Ok(network),
        _ => Err(Error::Forbidden),
    }
}

/// What on the host still uses a subnet of `network` (`subnet`: only that one): a network or
/// subnet in use is not deleted, whether through Neutron's API or the admin one.
fn in_use(snapshot: &Snapshot, network: &Network, subnet: Option<&str>) -> Option<String> {
    let ours = |id: &str| {
        network.subnets.iter().any(|s| s.id == id) && subnet.is_none_or(|only| only == id)
    };
    if let Some(lb) = snapshot
        .loadbalancers
        .iter()
        .find(|lb| ours(&lb.vip_subnet_id))
    {
        return Some(format!("load balancer {} has its VIP on it", lb.common.id));
    }
    snapshot
        .members
        .iter()
        .find(|m| m.subnet_id.as_deref().is_some_and(ours))
        .map(|m| format!("member {} is on it", m.common.id))
}

fn checked_id(value: Option<String>) -> Decided<String> {
    match value {
        None => Ok(new_id()),
        Some(id)
            if !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Ok(id)
        }
        Some(id) => Err(Error::invalid(format!(
            "id `{}` may only hold letters, digits, '-' and '_'",
            id.escape_debug()
        ))),
    }
}

/// A checked new subnet: its CIDR, its gateway inside it, its id free (among `pending` too).
fn new_subnet(
    snapshot: &Snapshot,
    pending: &[Subnet],
    id: Option<String>,
    name: Option<String>,
    cidr: String,
    gateway_ip: Option<String>,
) -> Decided<Subnet> {
    let net = fields::cidr("cidr", &cidr)?;
    if let Some(gateway) = &gateway_ip
        && !net.contains(&fields::ip("gateway_ip", gateway)?)
    {
        return Err(Error::invalid(format!(
            "gateway_ip {gateway} is outside {cidr}"
        )));
    }
    let id = checked_id(id)?;
    let taken = snapshot
        .networks
        .iter()
        .flat_map(|n| &n.subnets)
        .chain(pending)
        .any(|s| s.id == id);
    if taken {
        return Err(Error::conflict(format!("Subnet {id} already exists.")));
    }
    Ok(Subnet {
        id,
        name: fields::text("name", name, 255)?,
        cidr,
        gateway_ip,
    })
}

/// Projects' networks created through Neutron's API; a shared one only by an admin.
pub fn create(
    snapshot: &Snapshot,
    caller: &impl Caller,
    spec: NetworkSpec,
) -> Decided<Change<Network>> {
    if spec.shared && !caller.is_admin() {
        return Err(Error::Forbidden);
    }
    let _ = (spec.admin_state_up, spec.port_security_enabled);
    fields::text("description", spec.description, 255)?;
    let project_id = caller.owning_project(spec.project_id.as_deref())?;
    let network = Network {
        id: new_id(),
        name: fields::text("name", spec.name, 255)?,
        project_id: (!spec.shared).then_some(project_id),
        vlan: None,
        subnets: Vec::new(),
        created_at: now(),
    };
    if let Some(project) = &network.project_id {
        let networks = snapshot
            .networks
            .iter()
            .filter(|n| n.project_id.as_ref() == Some(project))
            .count();
        over_quota(networks, MAX_NETWORKS, "network")?;
    }
    Ok(store(network))
}

/// Deletes a network the caller may change that no VIP or member is on.
pub fn delete(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    delete_unused(snapshot, owned(caller, snapshot, id)?)
}

/// Deletes an operator's network (admins) that no VIP or member is on.
pub fn unregister(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    delete_unused(snapshot, snapshot.network(caller, id)?)
}

fn delete_unused(snapshot: &Snapshot, network: &Network) -> Decided<Change<()>> {
    let id = &network.id;
    if let Some(user) = in_use(snapshot, network, None) {
        return Err(Error::conflict(format!(
            "Unable to complete operation on network {id}: {user}."
        )));
    }
    Ok(remove::<Network>(id))
}

/// Adds a subnet to a network the caller may change. The change's value is the network with
/// it and the subnet.
pub fn create_subnet(
    plane: &ControlPlane,
    snapshot: &Snapshot,
    caller: &impl Caller,
    spec: SubnetSpec,
) -> Decided<Change<(Network, Subnet)>> {
    if spec.subnetpool_id.is_some() {
        return Err(Error::field(
            "subnetpool_id",
            "Subnet pools are not served here: give the subnet a cidr.",
        ));
    }
    let cidr = spec
        .cidr
        .ok_or_else(|| Error::field("cidr", "A subnet needs a cidr."))?;
    let range = fields::cidr("cidr", &cidr)?;
    let family = if range.addr().is_ipv6() { 6 } else { 4 };
    if spec.ip_version != family {
        return Err(Error::field(
            "ip_version",
            format!("cidr {cidr} is not an IPv{} network.", spec.ip_version),
        ));
    }
    for (field, mode) in [
        ("ipv6_address_mode", &spec.ipv6_address_mode),
        ("ipv6_ra_mode", &spec.ipv6_ra_mode),
    ] {
        match mode.as_deref() {
            None => {}
            Some("slaac" | "dhcpv6-stateful" | "dhcpv6-stateless") if family == 6 => {}
            Some(other) => {
                return Err(Error::field(
                    field,
                    format!(
                        "{field} `{}` is not valid for this subnet.",
                        other.escape_debug()
                    ),
                ));
            }
        }
    }
    let _ = spec.enable_dhcp;
    fields::text("description", spec.description, 255)?;
    if let Some(project) = &spec.project_id {
        caller.owning_project(Some(project))?;
    }
    let mut network = owned(caller, snapshot, &spec.network_id)?.clone();
    if let Some(project) = &network.project_id {
        // A project's subnet keeps off the host's and the operator's networks.
        plane.addresses.tenant_subnet(snapshot, &range)?;
        let subnets = snapshot
            .networks
            .iter()
            .filter(|n| n.project_id.as_ref() == Some(project))
            .map(|n| n.subnets.len())
            .sum();
        over_quota(subnets, MAX_SUBNETS, "subnet")?;
    }
    let subnet = new_subnet(snapshot, &[], None, spec.name, cidr, spec.gateway_ip)?;
    network.subnets.push(subnet.clone());
    Ok(store(network).map(|network| (network, subnet)))
}

/// Removes a subnet no VIP or member is on from a network the caller may change.
pub fn delete_subnet(snapshot: &Snapshot, caller: &impl Caller, id: &str) -> Decided<Change<()>> {
    let (network, _) = snapshot.subnet(caller, id)?;
    let mut network = owned(caller, snapshot, &network.id)?.clone();
    if let Some(user) = in_use(snapshot, &network, Some(id)) {
        return Err(Error::conflict(format!(
            "Unable to complete operation on subnet {id}: {user}."
        )));
    }
    network.subnets.retain(|s| s.id != id);
    Ok(store(network).map(drop))
}

/// Registers an operator's network with its subnets (admins): shared unless it names a
/// project, on a VLAN of its own when it names one.
pub fn register(snapshot: &Snapshot, spec: SharedNetworkSpec) -> Decided<Change<Network>> {
    let id = checked_id(spec.id)?;
    if snapshot.networks.iter().any(|n| n.id == id) {
        return Err(Error::conflict(format!("Network {id} already exists.")));
    }
    let vlan = match spec.vlan {
        Some(v) if (1..=4094).contains(&v) => Some(v as u16),
        Some(v) => {
            return Err(Error::field(
                "vlan",
                format!("vlan {v} is out of range 1-4094"),
            ));
        }
        None => None,
    };
    if spec.subnets.is_empty() {
        return Err(Error::field(
            "subnets",
            "A network needs at least one subnet.",
        ));
    }
    let mut subnets = Vec::new();
    for subnet in spec.subnets {
        let subnet = new_subnet(
            snapshot,
            &subnets,
            subnet.id,
            subnet.name,
            subnet.cidr,
            subnet.gateway_ip,
        )?;
        subnets.push(subnet);
    }
    let network = Network {
        id,
        name: fields::text("name", spec.name, 255)?,
        project_id: spec.project_id,
        vlan,
        subnets,
        created_at: now(),
    };
    Ok(store(network))
}
