//! What this host's spawned devices answer on and may call, from the records: each device's
//! [`Reach`] is the VIPs of the load balancers on it and the sockets of their members (traffic
//! and health checks), every one checked against the address rules again, so a record written
//! before a rule existed cannot open a path the rule closes. A load balancer being deleted
//! gives its device nothing.
//!
//! One computation and hand-over at a time, each from the newest snapshot: a job that routes
//! its device after its driver calls and a status round mending every device can run at once,
//! and the later one never applies older records than the earlier.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::model::ProvisioningStatus;
use crate::plane::ControlPlane;
use crate::provision::Reach;
use crate::snapshot::Snapshot;

impl ControlPlane {
    /// Has the provisioner give this host's devices named in `devices` (every one it owns
    /// when `None`) exactly what their load balancers need now; blocking. A device the
    /// provisioner cannot set up is logged, and the next status round tries again.
    pub(crate) fn route_devices(&self, devices: Option<&[String]>) {
        let Some(provisioner) = self.provisioner.as_ref() else {
            return;
        };
        let _one = self.routing.lock().unwrap_or_else(|e| e.into_inner());
        let snapshot = match self.snapshot() {
            Ok(snapshot) => snapshot,
            Err(error) => {
                tracing::warn!(%error, "cannot read the records to route devices");
                return;
            }
        };
        for (handle, reach) in self.reach(&snapshot, devices) {
            // A job's hand-over (named devices) changes only what changed; the status round's
            // (every device) checks each device's network as it is.
            let given = match devices {
                Some(_) => provisioner.serve(&handle, &reach),
                None => provisioner.mend(&handle, &reach),
            };
            if let Err(error) = given {
                tracing::warn!(handle, %error, "cannot route a device's VIPs and members; the next status round tries again");
            }
        }
    }

    /// The reach of each device this host runs (of those in `only`, when given), by the
    /// provisioner's handle: one pass over load balancers, their members from the snapshot's
    /// indexes by pool.
    fn reach(&self, snapshot: &Snapshot, only: Option<&[String]>) -> Vec<(String, Reach)> {
        let mut reach: HashMap<&str, (String, Reach)> = snapshot
            .devices
            .iter()
            .filter(|d| self.owns(d))
            .filter(|d| only.is_none_or(|only| only.contains(&d.id)))
            .filter_map(|d| Some((d.id.as_str(), (d.provisioned.clone()?, Reach::default()))))
            .collect();
        for lb in snapshot.loadbalancers.iter() {
            if lb.common.provisioning_status == ProvisioningStatus::PendingDelete {
                continue;
            }
            let Some((_, reach)) = lb.device_id.as_deref().and_then(|d| reach.get_mut(d)) else {
                continue;
            };
            if let Ok(vip) = lb.vip_address.parse::<IpAddr>()
                && self.addresses.routable(vip)
            {
                reach.vips.insert(vip);
            }
            let members = snapshot
                .pools_of(&lb.common.id)
                .flat_map(|pool| snapshot.members_of(&pool.common.id));
            for member in members {
                let sockets = crate::addresses::member_sockets(member)
                    .into_iter()
                    .flatten();
                for socket in sockets {
                    if self.addresses.target(snapshot, "member", socket).is_ok() {
                        let canonical = crate::net::canonical(socket.ip());
                        reach
                            .targets
                            .insert(SocketAddr::new(canonical, socket.port()));
                    }
                }
            }
        }
        reach.into_values().collect()
    }
}
