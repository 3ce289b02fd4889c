//! The driver's part of placement, as pure logic over the candidates and the allocations it
//! recorded: it enforces the appliance limits the host cannot see and spreads a project's VIPs
//! across a cluster. Natively testable and benchmarkable: the allocations come in through a
//! closure.

use std::collections::BTreeSet;

use lbaas_driver_sdk::{
    Candidate, Device, DeviceHint, DeviceKind, Hints, PlacementRequest, Verdict,
};

use crate::DEFAULT_MAX_VLANS_PER_INTERFACE;
use crate::allocation::DeviceAllocations;

/// Score lost per load balancer the requesting project already has on the device.
const SPREAD_PENALTY: i32 = 200;
/// Score won per requested VLAN the device already carries (less wiring, fewer VLANs used).
const WIRED_BONUS: i32 = 50;

/// VLANs per interface: the device's `max-vlans-per-interface` metadata, or the default.
pub fn vlan_limit(device: &Device) -> u32 {
    device
        .metadata("max-vlans-per-interface")
        .and_then(|value| value.parse().ok())
        .unwrap_or(DEFAULT_MAX_VLANS_PER_INTERFACE)
}

/// Data interfaces: the device's `interfaces` metadata, or one.
pub fn interfaces(device: &Device) -> u32 {
    device
        .metadata("interfaces")
        .and_then(|value| value.parse().ok())
        .unwrap_or(1)
}

pub fn select(
    request: &PlacementRequest,
    candidates: &[Candidate],
    mut allocations_of: impl FnMut(&str) -> DeviceAllocations,
) -> Hints {
    let flavor = request.flavor.as_ref();
    // The flavor's cluster, else the availability zone's.
    let zone = request.availability_zone.as_ref();
    let cluster = flavor
        .and_then(|f| f.get("cluster"))
        .or_else(|| zone.and_then(|z| z.get("cluster")));
    let spread = flavor.and_then(|f| f.get("spread")) != Some("false");
    let wanted: BTreeSet<u16> = std::iter::once(&request.vip_network)
        .chain(request.member_networks.iter())
        .filter_map(|network| network.vlan)
        .collect();

    let devices = candidates
        .iter()
        .map(|candidate| {
            let device = &candidate.device;
            let verdict = match verdict(
                request,
                candidate,
                cluster,
                spread,
                &wanted,
                &mut allocations_of,
            ) {
                Ok(score) => Verdict::Score(score),
                Err(reason) => Verdict::Reject(reason),
            };
            DeviceHint {
                device_id: device.id.clone(),
                verdict,
            }
        })
        .collect();
    Hints {
        devices,
        spawn: None,
    }
}

fn verdict(
    request: &PlacementRequest,
    candidate: &Candidate,
    cluster: Option<&str>,
    spread: bool,
    wanted: &BTreeSet<u16>,
    allocations_of: &mut impl FnMut(&str) -> DeviceAllocations,
) -> Result<i32, String> {
    let device = &candidate.device;
    if device.kind != DeviceKind::Physical {
        return Err("not an Acme appliance (physical device)".into());
    }
    if let Some(cluster) = cluster
        && device.cluster.as_deref() != Some(cluster)
    {
        return Err(format!("not in cluster {cluster}"));
    }
    // The zone's site and management network, against the appliance's own metadata.
    if let Some(zone) = &request.availability_zone {
        for (key, what) in [
            ("compute_zone", "compute zone"),
            ("management_network", "management network"),
        ] {
            if let Some(wanted) = zone.get(key)
                && device.metadata(key) != Some(wanted)
            {
                return Err(format!("not in {what} {wanted}"));
            }
        }
    }
    let capacity = device.capacity.min(crate::appliance::MAX_VIPS_PER_DEVICE);
    if candidate.load_balancers >= capacity {
        return Err(format!(
            "full: {} of {capacity} VIPs",
            candidate.load_balancers
        ));
    }

    let allocations = allocations_of(&device.id);
    if let Some(address) = &request.vip_address
        && let Some(owner) = allocations.vip_owner(address)
        && owner != request.load_balancer_id
    {
        return Err(format!(
            "VIP address {address} already configured on this appliance (no overlapping IPs)"
        ));
    }
    let wired = wanted
        .iter()
        .filter(|vlan| allocations.has_vlan(**vlan))
        .count() as u32;
    let needed = wanted.len() as u32 - wired;
    let limit = vlan_limit(device);
    let free = allocations.free_vlans(limit, interfaces(device));
    if needed > free {
        return Err(format!(
            "VLANs exhausted: needs {needed} new VLAN(s), {free} free ({limit} per interface)"
        ));
    }

    let mut score = candidate.host_score;
    score += 1000 - (candidate.load_balancers * 100 / capacity.max(1)) as i32;
    score += WIRED_BONUS * wired as i32;
    let same_project = candidate.project_load_balancers as i32;
    score += if spread {
        -SPREAD_PENALTY * same_project
    } else {
        SPREAD_PENALTY * same_project
    };
    Ok(score)
}
