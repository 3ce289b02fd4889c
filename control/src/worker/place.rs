//! Placement within a job: the scheduler decides on a snapshot, the device is reserved under
//! the write lock after checking its room again, and a device a driver asked for is spawned.

use std::sync::Arc;

use crate::plane::{Change, ControlPlane};
use lbaas_scheduler::Decision;

use super::fault::JobError;
use super::ticket::holds;
use super::wiring::{Retired, release};
use crate::error::Error;
use crate::model::{Device, Placement, ProvisioningStatus};
use crate::placement;
use crate::provision::Provisioner;
use crate::store::Batch;

/// Attempts at placing before giving up on a device taken by concurrent placements.
pub(super) const PLACEMENT_ATTEMPTS: usize = 5;

/// Places the load balancer if it has no device yet: the scheduler decides on a snapshot
/// (asking the drivers, without the write lock), then the device is reserved under the write
/// lock after checking again that it still has room. The decision is recorded either way.
pub(super) async fn place(
    api: &Arc<ControlPlane>,
    lb_id: &str,
    ticket: &str,
) -> Result<(), JobError> {
    for _ in 0..PLACEMENT_ATTEMPTS {
        let id = lb_id.to_owned();
        let decision = api
            .read(move |api, snapshot| {
                let Some(lb) = snapshot.loadbalancer_by_id(&id) else {
                    return Ok(None);
                };
                let migrating = lb
                    .migration
                    .as_ref()
                    .is_some_and(|m| lb.device_id.as_deref() == Some(m.from.as_str()));
                if (lb.device_id.is_some() && !migrating)
                    || lb.common.provisioning_status == ProvisioningStatus::PendingDelete
                {
                    return Ok(None);
                }
                let target = placement::Target::of(snapshot, lb);
                let started = std::time::Instant::now();
                let decided = placement::decide(&api.drivers, snapshot, &target);
                let outcome = match decided.explanation.outcome {
                    Decision::Placed { .. } => "placed",
                    Decision::Spawn { .. } => "spawn",
                    Decision::NoCapacity { .. } => "no_capacity",
                };
                api.metrics().placement(outcome, started.elapsed());
                Ok::<_, Error>(Some((decided, target.availability_zone)))
            })
            .await?;
        let Some((decided, zone)) = decision else {
            return Ok(());
        };
        let placed_by = decided.placed_by();
        let recorded = decided.recorded();
        let explanation = decided.explanation;
        let spawned = match (&explanation.outcome, &api.provisioner) {
            (Decision::Spawn { driver, spec, .. }, Some(provisioner)) => {
                Some(provision_device(api, provisioner, driver, spec, zone).await?)
            }
            _ => None,
        };
        let handle = spawned.as_ref().and_then(|d| d.provisioned.clone());
        let (id, ticket) = (lb_id.to_owned(), ticket.to_owned());
        let reserved = api
            .write(move |api, snapshot| {
                if !holds(api, &id, &ticket)? {
                    return Ok(Change::new(Batch::new(), Err(JobError::Superseded)));
                }
                let record = Placement {
                    loadbalancer_id: id.clone(),
                    decided_at: crate::ids::now(),
                    explanation: recorded.clone(),
                    placed_by: placed_by.clone(),
                    spawned_device: spawned.as_ref().map(|d| d.id.clone()),
                };
                let mut batch = Batch::new();
                batch.put(&record);
                let Some(lb) = snapshot.loadbalancer_by_id(&id) else {
                    // Deleted meanwhile: the next round finds nothing to place.
                    return Ok(Change::new(Batch::new(), Ok(false)));
                };
                let result = match &explanation.outcome {
                    Decision::Placed { device_id, driver } => {
                        let room = snapshot
                            .devices
                            .iter()
                            .find(|d| &d.id == device_id)
                            .is_some_and(|d| d.enabled && snapshot.load_of(device_id) < d.capacity as usize);
                        if !room {
                            // Taken meanwhile: decide again.
                            return Ok(Change::new(Batch::new(), Ok(false)));
                        }
                        let mut lb = lb.clone();
                        lb.device_id = Some(device_id.clone());
                        lb.provider = driver.clone();
                        batch.put(&lb);
                        Ok(true)
                    }
                    Decision::Spawn { driver, .. } => match spawned {
                        Some(device) => {
                            let mut lb = lb.clone();
                            lb.device_id = Some(device.id.clone());
                            lb.provider = driver.clone();
                            batch.put(&device).put(&lb);
                            Ok(true)
                        }
                        None => Err(JobError::NoCapacity(format!(
                            "no capacity: driver {driver} asked for a new device, and this host has no provisioner"
                        ))),
                    },
                    Decision::NoCapacity { reason } => Err(JobError::NoCapacity(reason.clone())),
                };
                Ok::<_, Error>(Change::new(batch, result))
            })
            .await;
        let stored = matches!(reserved, Ok(Ok(true)));
        if !stored {
            // A device started for this load balancer and not recorded must not linger.
            release(
                api,
                handle.map(|handle| Retired {
                    handle,
                    host: api.host_id().map(str::to_owned),
                }),
            )
            .await;
        }
        match reserved? {
            Ok(true) => return Ok(()),
            Ok(false) => continue,
            Err(fault) => return Err(fault),
        }
    }
    Err(JobError::NoCapacity(
        "no capacity: devices kept filling up while this load balancer was being placed".into(),
    ))
}

/// Has the provisioner create the device a driver asked for; returns its registry record.
pub(super) async fn provision_device(
    api: &Arc<ControlPlane>,
    provisioner: &Arc<dyn Provisioner>,
    driver: &str,
    spec: &lbaas_scheduler::SpawnSpec,
    zone: Option<String>,
) -> Result<Device, JobError> {
    let (provisioner, name, wanted) = (provisioner.clone(), driver.to_owned(), spec.clone());
    let provisioned = crate::spawn_blocking(move || provisioner.provision(&name, &wanted))
        .await
        .map_err(Error::from)?
        .map_err(|source| JobError::Provision {
            driver: driver.to_owned(),
            source,
        })?;
    tracing::info!(driver, name = spec.name.as_str(), "spawned a device");
    Ok(Device {
        id: crate::ids::new_id(),
        name: spec.name.clone(),
        kind: crate::model::DeviceKind::Virtual,
        driver: driver.to_owned(),
        management_url: provisioned.management_url,
        credentials: provisioned.credentials,
        capacity: spec.capacity.max(1),
        project_id: None,
        cluster: None,
        networks: Vec::new(),
        attachments: Default::default(),
        metadata: spec.metadata.clone(),
        enabled: true,
        // A device spawned for a load balancer is in its zone.
        availability_zone: zone,
        provisioned: provisioned.handle,
        // Its processes run here: only this host adopts, revives or stops them.
        host: api.host_id().map(str::to_owned),
        created_at: crate::ids::now(),
        updated_at: None,
    })
}
