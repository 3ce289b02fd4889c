//! What a driver call needs, read from one snapshot: the job's input, and the status
//! monitor's.

use crate::plane::ControlPlane;
use crate::snapshot::Snapshot;

use super::fault::JobError;
use crate::model::{Device, HealthMonitor, L7Policy, L7Rule, Listener, LoadBalancer, Member, Pool};
use crate::runtime::{self as wit, LoadedDriver};
use crate::{contract, placement};

/// What a driver call needs, read from one snapshot.
pub(crate) struct Work {
    pub(crate) lb: LoadBalancer,
    pub(crate) driver: LoadedDriver,
    pub(crate) device: Option<Device>,
    /// The device a migration leaves, once the load balancer is on its new one.
    pub(crate) left: Option<Device>,
    pub(crate) model: wit::LoadBalancer,
}

pub(crate) fn work(
    api: &ControlPlane,
    snapshot: &Snapshot,
    lb_id: &str,
) -> Result<Option<Work>, JobError> {
    let Some(lb) = snapshot.loadbalancer_by_id(lb_id) else {
        return Ok(None);
    };
    // A canary serves the load balancers it placed; the active version every other.
    let placed_by = snapshot
        .placement(lb_id)
        .and_then(|p| p.placed_by.as_ref())
        .map(|by| by.sha256.as_str());
    let driver = api
        .drivers
        .serving(&lb.provider, placed_by)
        .ok_or_else(|| JobError::NotLoaded(lb.provider.clone()))?;
    if let Some(reason) = driver.quarantined() {
        return Err(JobError::Quarantined {
            driver: lb.provider.clone(),
            version: driver.identity().version.clone(),
            reason,
        });
    }
    let device = match &lb.device_id {
        Some(id) => Some(
            snapshot
                .devices
                .iter()
                .find(|d| &d.id == id)
                .cloned()
                .ok_or_else(|| {
                    JobError::Gone(format!(
                        "device {id} of this load balancer no longer exists"
                    ))
                })?,
        ),
        None => None,
    };
    let listeners: Vec<&Listener> = snapshot.listeners_of(lb_id).collect();
    let pools: Vec<&Pool> = snapshot.pools_of(lb_id).collect();
    // From the snapshot's indexes by pool: the status monitor builds this for every active
    // load balancer each round, and a scan of every member per load balancer made that round
    // quadratic in the fleet's size.
    let members: Vec<&Member> = pools
        .iter()
        .flat_map(|pool| snapshot.members_of(&pool.common.id))
        .collect();
    let monitors: Vec<&HealthMonitor> = pools
        .iter()
        .filter_map(|pool| snapshot.healthmonitor_of(&pool.common.id))
        .collect();
    let vip_network = snapshot
        .networks
        .iter()
        .find(|n| n.id == lb.vip_network_id)
        .map(contract::network)
        .ok_or_else(|| {
            JobError::Gone(format!(
                "VIP network {} no longer exists",
                lb.vip_network_id
            ))
        })?;
    // The same networks placement wired the device to.
    let member_networks: Vec<wit::Network> = placement::Target::of(snapshot, lb)
        .member_networks
        .iter()
        .filter_map(|id| snapshot.networks.iter().find(|n| &n.id == id))
        .map(contract::network)
        .collect();
    let flavor = match lb
        .flavor_id
        .as_deref()
        .and_then(|id| snapshot.flavor(id).ok())
    {
        Some(flavor) => {
            let profile = snapshot.flavorprofile(&flavor.flavor_profile_id)?;
            Some(contract::flavor(&flavor.name, &profile.flavor_data).map_err(JobError::Flavor)?)
        }
        None => None,
    };
    let l7policies: Vec<&L7Policy> = listeners
        .iter()
        .flat_map(|l| snapshot.l7policies_of(&l.common.id))
        .collect();
    let l7rules: Vec<&L7Rule> = l7policies
        .iter()
        .flat_map(|p| snapshot.l7rules_of(&p.common.id))
        .collect();
    let children = contract::Children {
        listeners,
        pools,
        members,
        monitors,
        l7policies,
        l7rules,
    };
    let mut model = contract::load_balancer(lb, &children, vip_network, member_networks, flavor);
    model.availability_zone =
        placement::availability_zone_of(snapshot, lb.availability_zone.as_deref());
    let left = lb
        .migration
        .as_ref()
        .filter(|m| lb.device_id.as_deref() != Some(m.from.as_str()))
        .and_then(|m| snapshot.device_by_id(&m.from))
        .cloned();
    Ok(Some(Work {
        lb: lb.clone(),
        driver,
        device,
        left,
        model,
    }))
}

impl ControlPlane {
    /// The driver of load balancer `lb_id` and what a job would send it now, from the newest
    /// records (`None` for no such load balancer): for checks that what the API accepts, the
    /// provider renders.
    pub fn driver_input(
        &self,
        lb_id: &str,
    ) -> Result<Option<(LoadedDriver, wit::LoadBalancer)>, crate::Error> {
        let snapshot = self.snapshot()?;
        let work = work(self, &snapshot, lb_id)
            .map_err(|error| crate::Error::Inconsistent(error.to_string()))?;
        Ok(work.map(|work| (work.driver, work.model)))
    }
}
