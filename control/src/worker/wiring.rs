//! A device's networks and its retirement: attachments to the VIP and member networks a load
//! balancer needs, and stopping a spawned device once its last load balancer leaves.

use std::sync::Arc;

use crate::plane::ControlPlane;
use crate::snapshot::Snapshot;

use crate::model::{Device, LoadBalancer};
use crate::placement;
use crate::store::Batch;

/// Attaches the load balancer's device to every network it needs and is not on; releases
/// the attachments it no longer needs (all of them when `keep` is false).
pub(super) fn wire(snapshot: &Snapshot, lb: &LoadBalancer, keep: bool, batch: &mut Batch) {
    let Some(device_id) = lb.device_id.as_deref() else {
        return;
    };
    let needed: Vec<String> = if keep {
        let target = placement::Target::of(snapshot, lb);
        std::iter::once(target.vip_network)
            .chain(target.member_networks)
            .collect()
    } else {
        Vec::new()
    };
    wire_device(snapshot, &lb.common.id, device_id, &needed, batch);
}

/// Makes `device`'s attachments for `lb_id` exactly `needed` (beyond what it was registered
/// with).
pub(super) fn wire_device(
    snapshot: &Snapshot,
    lb_id: &str,
    device_id: &str,
    needed: &[String],
    batch: &mut Batch,
) {
    let Some(device) = snapshot.device_by_id(device_id) else {
        return;
    };
    let lb_id = &lb_id.to_owned();
    let mut device = device.clone();
    let before = device.clone();
    for network in needed {
        if !device.networks.contains(network) {
            device.networks.push(network.clone());
            device
                .attachments
                .entry(network.clone())
                .or_default()
                .insert(lb_id.clone());
        } else if let Some(users) = device.attachments.get_mut(network) {
            users.insert(lb_id.clone());
        }
    }
    for (network, users) in device.attachments.iter_mut() {
        if !needed.contains(network) {
            users.remove(lb_id);
        }
    }
    let released: Vec<String> = device
        .attachments
        .iter()
        .filter(|(_, users)| users.is_empty())
        .map(|(network, _)| network.clone())
        .collect();
    for network in &released {
        device.attachments.remove(network);
        device.networks.retain(|n| n != network);
    }
    if device != before {
        batch.put(&device);
    }
}

/// Has the provisioner stop a device the registry no longer holds, when its processes run on
/// this host (another host's device is stopped by that host, which finds it gone from the
/// registry).
pub(super) async fn release(api: &Arc<ControlPlane>, retired: Option<Retired>) {
    let (Some(retired), Some(provisioner)) = (retired, api.provisioner.clone()) else {
        return;
    };
    if !api.is_own(retired.host.as_deref()) {
        return;
    }
    let handle = retired.handle;
    let stopped = crate::spawn_blocking(move || provisioner.release(&handle)).await;
    match stopped {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(%error, "cannot stop a released device"),
        Err(error) => tracing::error!(%error, "stopping a released device aborted"),
    }
}

/// A spawned device deleted from the registry: what stopping its processes needs.
pub(crate) struct Retired {
    pub(super) handle: String,
    /// The host whose provisioner runs it, on a shared store.
    pub(super) host: Option<String>,
}

impl ControlPlane {
    /// Stops the processes of `device` once its record is deleted, when this host's
    /// provisioner started them; another host's device is stopped by that host, which finds it
    /// gone from the registry. Nothing to do for a device no provisioner started.
    pub async fn retire_device(self: &Arc<Self>, device: &Device) {
        let retired = device.provisioned.clone().map(|handle| Retired {
            handle,
            host: device.host.clone(),
        });
        release(self, retired).await;
    }
}

/// A device the provisioner started goes away with the last load balancer on it: deleted
/// from the registry in `batch`; returns it, for stopping once committed.
pub(super) fn retire_if_empty(
    snapshot: &Snapshot,
    device_id: &str,
    leaving: &str,
    batch: &mut Batch,
) -> Option<Retired> {
    let device = snapshot.device_by_id(device_id)?;
    let handle = device.provisioned.clone()?;
    let host = device.host.clone();
    let leaving_here = snapshot
        .loadbalancer_by_id(leaving)
        .is_some_and(|lb| lb.device_id.as_deref() == Some(device_id));
    let others = snapshot.load_of(device_id) > usize::from(leaving_here);
    if others {
        return None;
    }
    batch.delete::<Device>(device_id);
    Some(Retired { handle, host })
}
