//! What the driver has allocated on each appliance: VLANs per interface and VIP addresses,
//! each with the load balancers that use it. Kept in the driver's private state, one key per
//! device.

use std::collections::{BTreeMap, BTreeSet};

use lbaas_driver_sdk::{DriverError, LoadBalancer};
use serde::{Deserialize, Serialize};

/// The state key of a device's allocations.
pub fn key(device_id: &str) -> String {
    format!("device/{device_id}")
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAllocations {
    /// Interface index → VLAN id → load balancers using the VLAN.
    pub interfaces: BTreeMap<u32, BTreeMap<u16, BTreeSet<String>>>,
    /// VIP address → the load balancer that owns it.
    pub vips: BTreeMap<String, String>,
}

/// A VLAN newly placed on an interface by [`DeviceAllocations::allocate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVlan {
    pub vlan: u16,
    pub interface: u32,
    pub network_id: String,
    pub cidr: String,
}

impl DeviceAllocations {
    pub fn has_vlan(&self, vlan: u16) -> bool {
        self.interfaces
            .values()
            .any(|vlans| vlans.contains_key(&vlan))
    }

    pub fn vlan_count(&self) -> u32 {
        self.interfaces
            .values()
            .map(|vlans| vlans.len() as u32)
            .sum()
    }

    /// VLANs that can still be added across `interfaces` interfaces of `limit` VLANs each.
    pub fn free_vlans(&self, limit: u32, interfaces: u32) -> u32 {
        (limit * interfaces).saturating_sub(self.vlan_count())
    }

    /// The load balancer holding `address`, if any.
    pub fn vip_owner(&self, address: &str) -> Option<&str> {
        self.vips.get(address).map(String::as_str)
    }

    pub fn vlans_of(&self, lb_id: &str) -> Vec<u16> {
        self.interfaces
            .values()
            .flat_map(|vlans| vlans.iter())
            .filter(|(_, users)| users.contains(lb_id))
            .map(|(vlan, _)| *vlan)
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.vips.is_empty() && self.interfaces.values().all(BTreeMap::is_empty)
    }

    /// Records `lb`'s VIP address and VLANs. All or nothing: on error nothing changes.
    /// Applying the same load balancer again changes nothing and adds no VLAN.
    pub fn allocate(
        &mut self,
        lb: &LoadBalancer,
        limit: u32,
        interfaces: u32,
    ) -> Result<Vec<NewVlan>, DriverError> {
        let mut next = self.clone();
        if let Some(owner) = next.vip_owner(&lb.vip_address)
            && owner != lb.id
        {
            return Err(DriverError::DeviceRejected(format!(
                "VIP address {} is already configured on this appliance for load balancer {owner}",
                lb.vip_address
            )));
        }
        // A load balancer's VIP may have moved: drop its old address first.
        next.vips.retain(|_, owner| owner != &lb.id);
        next.vips.insert(lb.vip_address.clone(), lb.id.clone());

        let mut added = Vec::new();
        let networks = std::iter::once(&lb.vip_network).chain(lb.member_networks.iter());
        for network in networks {
            let Some(vlan) = network.vlan else { continue };
            if let Some(users) = next
                .interfaces
                .values_mut()
                .find_map(|vlans| vlans.get_mut(&vlan))
            {
                users.insert(lb.id.clone());
                continue;
            }
            let interface = (0..interfaces)
                .find(|i| next.interfaces.get(i).map_or(0, BTreeMap::len) < limit as usize)
                .ok_or_else(|| {
                    DriverError::DeviceRejected(format!(
                        "VLANs exhausted: {interfaces} interface(s) with {limit} VLANs each are all in use"
                    ))
                })?;
            next.interfaces
                .entry(interface)
                .or_default()
                .insert(vlan, BTreeSet::from([lb.id.clone()]));
            added.push(NewVlan {
                vlan,
                interface,
                network_id: network.id.clone(),
                cidr: network.cidr.clone(),
            });
        }
        *self = next;
        Ok(added)
    }

    /// Forgets `lb_id`; returns the VLANs no load balancer uses any more.
    pub fn release(&mut self, lb_id: &str) -> Vec<u16> {
        self.vips.retain(|_, owner| owner != lb_id);
        let mut freed = Vec::new();
        for vlans in self.interfaces.values_mut() {
            vlans.retain(|vlan, users| {
                users.remove(lb_id);
                let unused = users.is_empty();
                if unused {
                    freed.push(*vlan);
                }
                !unused
            });
        }
        self.interfaces.retain(|_, vlans| !vlans.is_empty());
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbaas_driver_sdk::Network;

    fn lb(id: &str, vip: &str, vlans: &[u16]) -> LoadBalancer {
        let network = |vlan: u16| Network {
            id: format!("net-{vlan}"),
            cidr: "10.0.0.0/24".into(),
            vlan: Some(vlan),
        };
        LoadBalancer {
            id: id.into(),
            name: id.into(),
            project_id: "p".into(),
            vip_address: vip.into(),
            vip_network: network(vlans[0]),
            member_networks: vlans[1..].iter().map(|v| network(*v)).collect(),
            listeners: vec![],
            pools: vec![],
            flavor: None,
            availability_zone: None,
            admin_state_up: true,
        }
    }

    #[test]
    fn vlans_fill_interfaces_in_order_and_are_shared() {
        let mut a = DeviceAllocations::default();
        let added = a
            .allocate(&lb("lb1", "10.0.0.1", &[10, 20, 30]), 2, 2)
            .expect("fits");
        let placed: Vec<(u16, u32)> = added.iter().map(|v| (v.vlan, v.interface)).collect();
        assert_eq!(placed, [(10, 0), (20, 0), (30, 1)]);
        // A second load balancer on VLAN 10 shares it; VLAN 40 takes the last slot.
        let added = a
            .allocate(&lb("lb2", "10.0.0.2", &[10, 40]), 2, 2)
            .expect("fits");
        assert_eq!(added.len(), 1);
        assert_eq!(a.free_vlans(2, 2), 0);
    }

    #[test]
    fn failed_allocation_changes_nothing() {
        let mut a = DeviceAllocations::default();
        a.allocate(&lb("lb1", "10.0.0.1", &[10, 20]), 2, 1)
            .expect("fits");
        let before = a.clone();
        assert!(a.allocate(&lb("lb2", "10.0.0.2", &[10, 30]), 2, 1).is_err());
        assert!(a.allocate(&lb("lb3", "10.0.0.1", &[10]), 2, 1).is_err());
        assert_eq!(a, before);
    }

    #[test]
    fn release_frees_only_unshared_vlans() {
        let mut a = DeviceAllocations::default();
        a.allocate(&lb("lb1", "10.0.0.1", &[10, 20]), 4, 1)
            .expect("fits");
        a.allocate(&lb("lb2", "10.0.0.2", &[10]), 4, 1)
            .expect("fits");
        assert_eq!(a.release("lb1"), vec![20]);
        assert_eq!(a.vip_owner("10.0.0.1"), None);
        assert_eq!(a.release("lb2"), vec![10]);
        assert!(a.is_empty());
    }
}
