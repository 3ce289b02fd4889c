//! One run of a job: place the load balancer, have its driver `translate` and `apply` (or
//! `remove`) it, and commit the outcome, every write fenced by the job's ticket.

use std::sync::Arc;

use crate::plane::{Change, ControlPlane};

use super::certificates;
use super::fault::JobError;
use super::input::{Work, work};
use super::outcome::{remove_all, succeed};
use super::place::place;
use super::ticket::holds;
use super::wiring::release;
use crate::contract;
use crate::error::Error;
use crate::model::{Job, ProvisioningStatus};
use crate::runtime::{self as wit, CertificateFiles};
use crate::snapshot::Snapshot;
use crate::store::{Batch, StoreExt};

pub(super) enum Step {
    Done,
    Removed,
}

pub(super) async fn converge(
    api: &Arc<ControlPlane>,
    lb_id: &str,
    ticket: &str,
) -> Result<Step, JobError> {
    place(api, lb_id, ticket).await?;

    let id = lb_id.to_owned();
    let work = api
        .read(move |api, snapshot| work(api, snapshot, &id))
        .await?;
    let Some(work) = work else {
        // No load balancer for this job: the job ends, if the records still say so.
        commit(api, lb_id, ticket, Started::Absent).await?;
        return Ok(Step::Removed);
    };

    let deleting = work.lb.common.provisioning_status == ProvisioningStatus::PendingDelete;
    // The driver calls below may take the host down (a hostile driver, a device that kills
    // it): each start is on disk first, so a job whose calls never finished is known at the
    // next start, counted against its driver, and not run a third time.
    let unfinished = start_attempt(api, lb_id, ticket).await?;
    if unfinished > 0 {
        let function = if deleting { "remove" } else { "apply" };
        work.driver.interrupted(
            function,
            format!("the host stopped while load balancer {lb_id}'s `{function}` ran"),
        );
    }
    if unfinished >= MAX_UNFINISHED_ATTEMPTS {
        let identity = work.driver.identity();
        return Err(JobError::Interrupted {
            times: unfinished,
            driver: identity.name.to_string(),
            version: identity.version.clone(),
        });
    }
    let Work {
        lb,
        driver,
        device,
        left,
        mut model,
    } = work;
    // The key material the driver may send: opened for `apply`, none for `remove`.
    let files = if deleting {
        certificates::conceal(&mut model);
        CertificateFiles::default()
    } else {
        let plane = api.clone();
        let (attached, files) = crate::spawn_blocking(move || {
            certificates::attach(&plane, &mut model).map(|files| (model, files))
        })
        .await
        .map_err(Error::from)??;
        model = attached;
        files
    };
    // The device answers on the VIP and reaches the members before its configuration needs
    // them; what a delete or a move leaves behind goes once the calls are done.
    let ids = |devices: &[Option<&crate::model::Device>]| -> Vec<String> {
        devices.iter().flatten().map(|d| d.id.clone()).collect()
    };
    let (before, after) = if deleting {
        (Vec::new(), ids(&[device.as_ref(), left.as_ref()]))
    } else {
        (ids(&[device.as_ref()]), ids(&[left.as_ref()]))
    };
    route(api, before).await;
    let call = crate::spawn_blocking(move || -> Result<(), wit::Error> {
        let Some(device) = device else { return Ok(()) };
        let in_service = device.enabled;
        let device = contract::device(&device);
        if deleting {
            // A device an operator took out of service (disabled: dead, or being replaced)
            // does not hold a delete back: its configuration is removed if it answers, and
            // the load balancer leaves the records either way.
            return match driver.remove(&model, &device) {
                Err(error) if !in_service => {
                    tracing::warn!(device = device.id.as_str(), %error, "could not remove a deleted load balancer from its disabled device");
                    Ok(())
                }
                other => other,
            };
        }
        let config = driver.translate(&model, &device)?;
        driver.apply_with(&model, &device, &config, files)?;
        // Moved: the old device forgets it. A failed or unreachable old device does not hold
        // the move back.
        if let Some(left) = left
            && let Err(error) = driver.remove(&model, &contract::device(&left))
        {
            tracing::warn!(device = left.id.as_str(), %error, "could not remove a migrated load balancer from its old device");
        }
        Ok(())
    })
    .await
    .map_err(Error::from)?;
    call?;
    route(api, after).await;

    let started = if deleting {
        Started::Deleting
    } else {
        Started::Converging
    };
    commit(api, &lb.common.id, ticket, started).await?;
    Ok(if deleting { Step::Removed } else { Step::Done })
}

/// Has the provisioner give `devices` (those this host runs) what their load balancers need
/// now; a failure is mended by the next status round.
async fn route(api: &Arc<ControlPlane>, devices: Vec<String>) {
    if devices.is_empty() || api.provisioner.is_none() {
        return;
    }
    let api = api.clone();
    let _ = crate::spawn_blocking(move || api.route_devices(Some(&devices))).await;
}

/// What the load balancer was when a run read its input: what its outcome is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Started {
    /// Not in the records: the job outlived it.
    Absent,
    /// `PENDING_DELETE`: the outcome removes it.
    Deleting,
    /// Any other state: the outcome makes it `ACTIVE`.
    Converging,
}

impl Started {
    fn of(snapshot: &Snapshot, lb_id: &str) -> Self {
        match snapshot.loadbalancer_by_id(lb_id) {
            None => Self::Absent,
            Some(lb) if lb.common.provisioning_status == ProvisioningStatus::PendingDelete => {
                Self::Deleting
            }
            Some(_) => Self::Converging,
        }
    }
}

/// Commits a run's outcome, under the write lock, only while the stored job still carries
/// `ticket` and the load balancer is still what the run started from; else the run is
/// superseded and commits nothing.
async fn commit(
    api: &Arc<ControlPlane>,
    lb_id: &str,
    ticket: &str,
    started: Started,
) -> Result<(), JobError> {
    let (id, ticket) = (lb_id.to_owned(), ticket.to_owned());
    let retired = api
        .write(move |api, snapshot| {
            if !holds(api, &id, &ticket)? || Started::of(snapshot, &id) != started {
                return Ok(Change::new(Batch::new(), Err(JobError::Superseded)));
            }
            let (batch, retired) = match started {
                Started::Converging => succeed(snapshot, &id),
                Started::Deleting | Started::Absent => remove_all(snapshot, &id),
            };
            Ok::<_, Error>(Change::new(batch, Ok(retired)))
        })
        .await??;
    release(api, retired).await;
    Ok(())
}

/// Driver-call attempts of one job that never finished (the host stopped during them) after
/// which the job ends in `ERROR` instead of running them again.
pub(super) const MAX_UNFINISHED_ATTEMPTS: u32 = 2;

/// Counts, durably, that the job of `lb_id` starts its driver calls; returns how many earlier
/// starts never finished (the job is deleted when it ends, so those are starts the host did
/// not survive). Superseded when the stored job no longer carries `ticket`.
pub(super) async fn start_attempt(
    api: &Arc<ControlPlane>,
    lb_id: &str,
    ticket: &str,
) -> Result<u32, JobError> {
    let (id, ticket) = (lb_id.to_owned(), ticket.to_owned());
    api.write(move |api, _| {
        let mut batch = Batch::new();
        let unfinished = match api.store.load::<Job>(&id)? {
            Some(mut job) if job.ticket == ticket => {
                let unfinished = job.attempts;
                job.attempts += 1;
                batch.put(&job);
                Ok(unfinished)
            }
            _ => Err(JobError::Superseded),
        };
        Ok::<_, Error>(Change::new(batch, unfinished))
    })
    .await?
}
