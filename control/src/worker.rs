//! The job worker: makes each device match the stored model. A job names a load balancer;
//! running it places the load balancer (if it has no device yet), has the driver `translate`
//! and `apply` the configuration — or `remove` it for a deletion — and records the outcome:
//! `ACTIVE`, or `ERROR` with a fault message the user can read. Jobs live in the store, so a
//! restarted host resumes every unfinished one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedReceiver;
use tracing::Instrument as _;

use crate::devices::{DeviceDirectory, DeviceEndpoint};
use crate::plane::{Change, ControlPlane};
use crate::snapshot::Snapshot;
use lbaas_core::metrics::metrics;
use lbaas_scheduler::Decision;

use crate::error::Error;
use crate::model::{
    Common, Device, HealthMonitor, Job, L7Action, L7Policy, L7Rule, Listener, LoadBalancer, Member,
    OperatingStatus, Placement, Pool, ProvisioningStatus,
};
use crate::provision::{ProvisionError, Provisioner};
use crate::runtime::{self as wit, LoadedDriver};
use crate::store::{Batch, Store, StoreExt};
use crate::tasks::Stop;
use crate::{DriverName, convert, placement};

/// Why a job ended its load balancer in `ERROR`. Its text is the load balancer's fault, which
/// the tenant reads: rendered here, in one place.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No device has room for the load balancer, and none could be made.
    #[error("{0}")]
    NoCapacity(String),
    /// The provisioner could not start the device a driver asked for.
    #[error("provisioning a new {driver} device failed: {source}")]
    Provision {
        driver: String,
        #[source]
        source: ProvisionError,
    },
    /// The load balancer's provider is not a driver this host serves.
    #[error("provider {0} is not loaded on this host")]
    NotLoaded(String),
    /// The version that serves the load balancer is quarantined.
    #[error(
        "driver {driver} {version} is quarantined ({reason}); an admin can release it \
         (POST /v2/admin/drivers/{driver}/release)"
    )]
    Quarantined {
        driver: String,
        version: String,
        reason: String,
    },
    /// A record the job needs is gone (the device, the VIP network).
    #[error("{0}")]
    Gone(String),
    /// The load balancer's flavor cannot be given to the driver.
    #[error("{0}")]
    Flavor(String),
    /// The driver's call failed: its own error, a trap, a limit, the device's answer.
    #[error("{0}")]
    Driver(#[from] wit::Error),
    /// The host stopped while the driver ran this job's calls, too many times to run again.
    #[error(
        "the host stopped {times} times while driver {driver} {version} ran this load \
         balancer's calls; they are not run again"
    )]
    Interrupted {
        times: u32,
        driver: String,
        version: String,
    },
    /// The control plane could not read or record the job's progress.
    #[error(transparent)]
    ControlPlane(#[from] Error),
    /// The stored job no longer carries this run's ticket: another run finished it, or a newer
    /// change was acknowledged meanwhile. The run commits nothing; never a fault.
    #[error("the job was finished by another run, or superseded by a newer change")]
    Superseded,
}

/// Resolves device ids for the runtime's `device-api` from the device registry.
pub struct StoreDevices {
    store: Arc<dyn Store>,
}

impl StoreDevices {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }
}

impl DeviceDirectory for StoreDevices {
    fn endpoint(&self, device_id: &str) -> Option<DeviceEndpoint> {
        let device: Device = self.store.load(device_id).ok()??;
        Some(DeviceEndpoint {
            device_id: device.id,
            driver: DriverName::new(device.driver).ok()?,
            management_url: device.management_url,
            credentials: device.credentials,
        })
    }
}

/// Hands the provisioner the devices it started that the registry still holds, before any
/// job runs: it restarts what is missing and stops what no record names.
pub async fn adopt_devices(api: &Arc<ControlPlane>) {
    let Some(provisioner) = api.provisioner.clone() else {
        return;
    };
    let handles = api
        .read(|api, snapshot| {
            Ok::<_, Error>(
                snapshot
                    .devices
                    .iter()
                    .filter(|d| api.owns(d))
                    .filter_map(|d| d.provisioned.clone())
                    .collect::<Vec<_>>(),
            )
        })
        .await;
    // Without the registry nothing can be told apart from an orphan: leave everything be.
    let Ok(handles) = handles else {
        tracing::error!("cannot read the device registry; spawned devices are not adopted");
        return;
    };
    let _ = crate::spawn_blocking(move || provisioner.adopt(&handles)).await;
}

/// Runs the worker until `stop`: `concurrency` jobs at a time, fed by `jobs` and, first, by
/// every job left in the store by a previous run. Once stopped, it starts no new job and waits
/// for the running ones to end (each within its driver calls' deadlines); jobs still queued
/// stay in the store for the next start.
pub async fn run_jobs(
    api: Arc<ControlPlane>,
    mut jobs: UnboundedReceiver<String>,
    concurrency: usize,
    mut stop: Stop,
) {
    // The load balancers whose job is running, and whether they were asked for again
    // meanwhile (a change committed while the job ran, which it may not have seen).
    let running: Arc<Mutex<HashMap<String, bool>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let store = api.store.clone();
    let leftover = crate::spawn_blocking(move || store.all::<Job>())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    if !leftover.is_empty() {
        tracing::info!(jobs = leftover.len(), "resuming unfinished jobs");
    }
    let mut queue: std::collections::VecDeque<String> = leftover
        .into_iter()
        .map(|job| job.loadbalancer_id)
        .collect();
    loop {
        let lb_id = match queue.pop_front() {
            Some(lb_id) => lb_id,
            None => tokio::select! {
                () = stop.requested() => break,
                next = jobs.recv() => match next {
                    Some(lb_id) => lb_id,
                    None => break,
                },
                // Reaps finished jobs as they end, so the set holds only running ones.
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            },
        };
        {
            let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(again) = running.get_mut(&lb_id) {
                *again = true;
                continue;
            }
            running.insert(lb_id.clone(), false);
        }
        let permit = tokio::select! {
            () = stop.requested() => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (api, running, mut stop) = (api.clone(), running.clone(), stop.clone());
        tasks.spawn(async move {
            loop {
                // On a shared store, another host may hold this job (or have finished it).
                let again = match api.claim(&lb_id).await {
                    Ok(true) => run(&api, &lb_id).await == Ran::Superseded,
                    Ok(false) => false,
                    Err(error) => {
                        tracing::warn!(loadbalancer = lb_id.as_str(), %error, "cannot claim a job; trying again");
                        tokio::select! {
                            () = stop.requested() => false,
                            () = tokio::time::sleep(CLAIM_RETRY) => true,
                        }
                    }
                };
                let mut running = running.lock().unwrap_or_else(|e| e.into_inner());
                if again || running.get(&lb_id) == Some(&true) {
                    running.insert(lb_id.clone(), false);
                    continue;
                }
                running.remove(&lb_id);
                break;
            }
            drop(permit);
        });
    }
    if !tasks.is_empty() {
        tracing::info!(jobs = tasks.len(), "waiting for running jobs to end");
    }
    while tasks.join_next().await.is_some() {}
}

/// How long a job waits before asking again whose it is, when the store could not say.
const CLAIM_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// How a run of a job ended, for the loop that runs it.
#[derive(Debug, PartialEq, Eq)]
enum Ran {
    /// Its outcome is recorded, or there was no job to run (an earlier run finished it).
    Ended,
    /// A newer change superseded the job it started from: the newer job is to be run.
    Superseded,
}

/// Runs the job of one load balancer to its end, whatever happens, in a `job` span that
/// continues the trace of the request that asked for it. The job is read first: what the run
/// does, and whether its outcome may commit, follows the ticket stored now.
async fn run(api: &Arc<ControlPlane>, lb_id: &str) -> Ran {
    let (store, id) = (api.store.clone(), lb_id.to_owned());
    let job = match crate::spawn_blocking(move || store.load::<Job>(&id)).await {
        Ok(Ok(Some(job))) => job,
        // Finished already (queued twice, or by another host): nothing to do.
        Ok(Ok(None)) => return Ran::Ended,
        Ok(Err(error)) => {
            tracing::warn!(loadbalancer = lb_id, %error, "cannot read a job; it waits for its next turn");
            return Ran::Ended;
        }
        Err(error) => {
            tracing::warn!(loadbalancer = lb_id, %error, "cannot read a job; it waits for its next turn");
            return Ran::Ended;
        }
    };
    let span = tracing::info_span!("job", loadbalancer = lb_id);
    lbaas_core::traces::continue_trace(&span, job.traceparent.as_deref());
    run_job(api, lb_id, &job.ticket).instrument(span).await
}

async fn run_job(api: &Arc<ControlPlane>, lb_id: &str, ticket: &str) -> Ran {
    let started = std::time::Instant::now();
    metrics().jobs_running.inc();
    let outcome = converge(api, lb_id, ticket).await;
    metrics().jobs_running.dec();
    let ended = match &outcome {
        Ok(Step::Done) => "succeeded",
        Ok(Step::Removed) => "deleted",
        Err(JobError::Superseded) => "superseded",
        Err(_) => "failed",
    };
    metrics().job(ended, started.elapsed());
    let fault = match outcome {
        Ok(_) => return Ran::Ended,
        Err(JobError::Superseded) => {
            tracing::info!(
                loadbalancer = lb_id,
                "a newer change superseded this job's run; its outcome is dropped"
            );
            return Ran::Superseded;
        }
        Err(fault) => fault,
    };
    tracing::warn!(loadbalancer = lb_id, %fault, "provisioning failed");
    let (lb, ticket) = (lb_id.to_owned(), ticket.to_owned());
    let retired = api
        .write(move |api, snapshot| {
            if !holds(api, &lb, &ticket)? {
                return Ok(Change::new(Batch::new(), Err(JobError::Superseded)));
            }
            let (batch, retired) = fail(snapshot, &lb, &fault.to_string());
            Ok::<_, Error>(Change::new(batch, Ok(retired)))
        })
        .await;
    match retired {
        Ok(Ok(retired)) => {
            release(api, retired).await;
            Ran::Ended
        }
        Ok(Err(_)) => Ran::Superseded,
        Err(error) => {
            tracing::error!(loadbalancer = lb_id, %error, "cannot record a job's outcome");
            Ran::Ended
        }
    }
}

/// Whether the stored job of `lb_id` still carries `ticket`: read under the write lock, in the
/// write that commits a run's outcome, so no other outcome of the same job, and no newer
/// change, can come between.
fn holds(api: &ControlPlane, lb_id: &str, ticket: &str) -> Result<bool, Error> {
    Ok(api
        .store
        .load::<Job>(lb_id)?
        .is_some_and(|job| job.ticket == ticket))
}

enum Step {
    Done,
    Removed,
}

/// What a driver call needs, read from one snapshot.
pub(crate) struct Work {
    pub(crate) lb: LoadBalancer,
    pub(crate) driver: LoadedDriver,
    pub(crate) device: Option<Device>,
    /// The device a migration leaves, once the load balancer is on its new one.
    pub(crate) left: Option<Device>,
    pub(crate) model: wit::LoadBalancer,
}

async fn converge(api: &Arc<ControlPlane>, lb_id: &str, ticket: &str) -> Result<Step, JobError> {
    place(api, lb_id, ticket).await?;

    let id = lb_id.to_owned();
    let work = api
        .read(move |api, snapshot| work(api, snapshot, &id))
        .await?;
    let Some(work) = work else {
        return Ok(Step::Done);
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
        model,
    } = work;
    let call = crate::spawn_blocking(move || -> Result<(), wit::Error> {
        let Some(device) = device else { return Ok(()) };
        let in_service = device.enabled;
        let device = convert::device(&device);
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
        driver.apply(&model, &device, &config)?;
        // Moved: the old device forgets it. A failed or unreachable old device does not hold
        // the move back.
        if let Some(left) = left
            && let Err(error) = driver.remove(&model, &convert::device(&left))
        {
            tracing::warn!(device = left.id.as_str(), %error, "could not remove a migrated load balancer from its old device");
        }
        Ok(())
    })
    .await
    .map_err(Error::from)?;
    call?;

    let (id, ticket) = (lb.common.id.clone(), ticket.to_owned());
    let retired = api
        .write(move |api, snapshot| {
            if !holds(api, &id, &ticket)? {
                return Ok(Change::new(Batch::new(), Err(JobError::Superseded)));
            }
            let (batch, retired) = if deleting {
                remove_all(snapshot, &id)
            } else {
                succeed(snapshot, &id)
            };
            Ok::<_, Error>(Change::new(batch, Ok(retired)))
        })
        .await??;
    release(api, retired).await;
    Ok(if deleting { Step::Removed } else { Step::Done })
}

/// Driver-call attempts of one job that never finished (the host stopped during them) after
/// which the job ends in `ERROR` instead of running them again.
const MAX_UNFINISHED_ATTEMPTS: u32 = 2;

/// Counts, durably, that the job of `lb_id` starts its driver calls; returns how many earlier
/// starts never finished (the job is deleted when it ends, so those are starts the host did
/// not survive). Superseded when the stored job no longer carries `ticket`.
async fn start_attempt(
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

/// Attempts at placing before giving up on a device taken by concurrent placements.
const PLACEMENT_ATTEMPTS: usize = 5;

/// Places the load balancer if it has no device yet: the scheduler decides on a snapshot
/// (asking the drivers, without the write lock), then the device is reserved under the write
/// lock after checking again that it still has room. The decision is recorded either way.
async fn place(api: &Arc<ControlPlane>, lb_id: &str, ticket: &str) -> Result<(), JobError> {
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
                metrics().placement(outcome, started.elapsed());
                Ok::<_, Error>(Some((decided, target.availability_zone)))
            })
            .await?;
        let Some((decided, zone)) = decision else {
            return Ok(());
        };
        let placed_by = decided.placed_by();
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
                    explanation: explanation.clone(),
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
async fn provision_device(
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

/// Has the provisioner stop a device the registry no longer holds, when its processes run on
/// this host (another host's device is stopped by that host, which finds it gone from the
/// registry).
async fn release(api: &Arc<ControlPlane>, retired: Option<Retired>) {
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
    handle: String,
    /// The host whose provisioner runs it, on a shared store.
    host: Option<String>,
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
fn retire_if_empty(
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

/// Attaches the load balancer's device to every network it needs and is not on; releases
/// the attachments it no longer needs (all of them when `keep` is false).
fn wire(snapshot: &Snapshot, lb: &LoadBalancer, keep: bool, batch: &mut Batch) {
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
fn wire_device(
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
    let members: Vec<&Member> = snapshot
        .members
        .iter()
        .filter(|m| m.loadbalancer_id == lb_id)
        .collect();
    let monitors: Vec<&HealthMonitor> = snapshot
        .healthmonitors
        .iter()
        .filter(|h| h.loadbalancer_id == lb_id)
        .collect();
    let vip_network = snapshot
        .networks
        .iter()
        .find(|n| n.id == lb.vip_network_id)
        .map(convert::network)
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
        .map(convert::network)
        .collect();
    let flavor = match lb
        .flavor_id
        .as_deref()
        .and_then(|id| snapshot.flavor(id).ok())
    {
        Some(flavor) => {
            let profile = snapshot.flavorprofile(&flavor.flavor_profile_id)?;
            Some(convert::flavor(&flavor.name, &profile.flavor_data).map_err(JobError::Flavor)?)
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
    let children = convert::Children {
        listeners,
        pools,
        members,
        monitors,
        l7policies,
        l7rules,
    };
    let mut model = convert::load_balancer(lb, &children, vip_network, member_networks, flavor);
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

fn settle(common: &mut Common, operating: OperatingStatus, now: &str) {
    let operating = if common.admin_state_up {
        operating
    } else {
        OperatingStatus::Offline
    };
    common.set_statuses(ProvisioningStatus::Active, operating, now);
}

/// The device matches the model: pending children become `ACTIVE` or disappear. Returns the
/// handle of a spawned device a migration left empty.
fn succeed(snapshot: &Snapshot, lb_id: &str) -> (Batch, Option<Retired>) {
    let mut batch = Batch::new();
    let mut retired = None;
    let now = crate::ids::now();
    let gone = |c: &Common| c.provisioning_status == ProvisioningStatus::PendingDelete;
    let deleted_pools: Vec<&str> = snapshot
        .pools_of(lb_id)
        .filter(|p| gone(&p.common))
        .map(|p| p.common.id.as_str())
        .collect();
    for listener in snapshot.listeners_of(lb_id) {
        settle_l7(
            snapshot,
            &listener.common.id,
            gone(&listener.common),
            &deleted_pools,
            &now,
            &mut batch,
        );
        if gone(&listener.common) {
            batch.delete::<Listener>(&listener.common.id);
            continue;
        }
        let mut listener = listener.clone();
        if listener
            .default_pool_id
            .as_deref()
            .is_some_and(|p| deleted_pools.contains(&p))
        {
            listener.default_pool_id = None;
        }
        settle(&mut listener.common, OperatingStatus::Online, &now);
        batch.put(&listener);
    }
    for pool in snapshot.pools_of(lb_id) {
        let pool_gone = gone(&pool.common);
        let monitor = snapshot.healthmonitor_of(&pool.common.id);
        for member in snapshot.members_of(&pool.common.id) {
            if pool_gone || gone(&member.common) {
                batch.delete::<Member>(&member.common.id);
                continue;
            }
            let mut member = member.clone();
            let live_monitor = monitor.is_some_and(|h| !gone(&h.common));
            settle(
                &mut member.common,
                if live_monitor {
                    OperatingStatus::Online
                } else {
                    OperatingStatus::NoMonitor
                },
                &now,
            );
            batch.put(&member);
        }
        if let Some(hm) = monitor {
            if pool_gone || gone(&hm.common) {
                batch.delete::<HealthMonitor>(&hm.common.id);
            } else {
                let mut hm = hm.clone();
                settle(&mut hm.common, OperatingStatus::Online, &now);
                batch.put(&hm);
            }
        }
        if pool_gone {
            batch.delete::<Pool>(&pool.common.id);
            continue;
        }
        let mut pool = pool.clone();
        if monitor.is_some_and(|h| gone(&h.common)) {
            pool.healthmonitor_id = None;
        }
        // A pool no listener sends traffic to is offline, as Octavia shows it.
        let operating = if attached(snapshot, lb_id, &pool.common.id) {
            OperatingStatus::Online
        } else {
            OperatingStatus::Offline
        };
        settle(&mut pool.common, operating, &now);
        batch.put(&pool);
    }
    if let Some(lb) = snapshot.loadbalancer_by_id(lb_id) {
        wire(snapshot, lb, true, &mut batch);
        let mut lb = lb.clone();
        if let Some(migration) = lb.migration.take() {
            wire_device(snapshot, &lb.common.id, &migration.from, &[], &mut batch);
            retired = retire_if_empty(snapshot, &migration.from, lb_id, &mut batch);
        }
        settle(&mut lb.common, OperatingStatus::Online, &now);
        lb.fault = None;
        batch.put(&lb);
    }
    batch.delete::<Job>(lb_id);
    (batch, retired)
}

/// A listener's L7 policies and rules after a success: those pending deletion (or whose
/// listener is) leave the store, the rest become `ACTIVE`; a policy redirecting to a deleted
/// pool rejects instead.
fn settle_l7(
    snapshot: &Snapshot,
    listener_id: &str,
    listener_gone: bool,
    deleted_pools: &[&str],
    now: &str,
    batch: &mut Batch,
) {
    let gone =
        |c: &Common| listener_gone || c.provisioning_status == ProvisioningStatus::PendingDelete;
    for policy in snapshot.l7policies_of(listener_id) {
        let policy_gone = gone(&policy.common);
        for rule in snapshot.l7rules_of(&policy.common.id) {
            if policy_gone || gone(&rule.common) {
                batch.delete::<L7Rule>(&rule.common.id);
            } else {
                let mut rule = rule.clone();
                settle(&mut rule.common, OperatingStatus::Online, now);
                batch.put(&rule);
            }
        }
        if policy_gone {
            batch.delete::<L7Policy>(&policy.common.id);
            continue;
        }
        let mut policy = policy.clone();
        if policy
            .redirect_pool_id
            .as_deref()
            .is_some_and(|p| deleted_pools.contains(&p))
        {
            policy.redirect_pool_id = None;
            policy.redirect_http_code = None;
            policy.action = L7Action::Reject;
        }
        settle(&mut policy.common, OperatingStatus::Online, now);
        batch.put(&policy);
    }
}

/// Whether a live listener of the load balancer sends traffic to the pool (its default pool).
pub(crate) fn attached(snapshot: &Snapshot, lb_id: &str, pool_id: &str) -> bool {
    let live = |c: &Common| c.provisioning_status != ProvisioningStatus::PendingDelete;
    snapshot
        .listeners_of(lb_id)
        .filter(|l| live(&l.common))
        .any(|l| {
            l.default_pool_id.as_deref() == Some(pool_id)
                || snapshot
                    .l7policies_of(&l.common.id)
                    .iter()
                    .any(|p| live(&p.common) && p.redirect_pool_id.as_deref() == Some(pool_id))
        })
}

/// The load balancer is gone from its device: it and every child leave the store, and so
/// does a spawned device it leaves empty (whose handle is returned).
fn remove_all(snapshot: &Snapshot, lb_id: &str) -> (Batch, Option<Retired>) {
    let mut batch = Batch::new();
    let mut retired = None;
    if let Some(lb) = snapshot.loadbalancer_by_id(lb_id) {
        wire(snapshot, lb, false, &mut batch);
        if let Some(device_id) = &lb.device_id {
            retired = retire_if_empty(snapshot, device_id, lb_id, &mut batch);
        }
    }
    for listener in snapshot.listeners_of(lb_id) {
        for policy in snapshot.l7policies_of(&listener.common.id) {
            for rule in snapshot.l7rules_of(&policy.common.id) {
                batch.delete::<L7Rule>(&rule.common.id);
            }
            batch.delete::<L7Policy>(&policy.common.id);
        }
        batch.delete::<Listener>(&listener.common.id);
    }
    for pool in snapshot.pools_of(lb_id) {
        for member in snapshot.members_of(&pool.common.id) {
            batch.delete::<Member>(&member.common.id);
        }
        if let Some(hm) = snapshot.healthmonitor_of(&pool.common.id) {
            batch.delete::<HealthMonitor>(&hm.common.id);
        }
        batch.delete::<Pool>(&pool.common.id);
    }
    batch
        .delete::<LoadBalancer>(lb_id)
        .delete::<Job>(lb_id)
        .delete::<Placement>(lb_id);
    (batch, retired)
}

/// Provisioning failed: the load balancer and its pending children end in `ERROR`. A spawned
/// device that a load balancer never got onto is retired (its handle returned).
fn fail(snapshot: &Snapshot, lb_id: &str, fault: &str) -> (Batch, Option<Retired>) {
    let mut batch = Batch::new();
    let mut retired = None;
    let now = crate::ids::now();
    let errored = |common: &mut Common| {
        if common.provisioning_status.is_pending() {
            common.set_statuses(ProvisioningStatus::Error, OperatingStatus::Error, &now);
        }
    };
    for listener in snapshot.listeners_of(lb_id) {
        for policy in snapshot.l7policies_of(&listener.common.id) {
            for rule in snapshot.l7rules_of(&policy.common.id) {
                let mut rule = rule.clone();
                errored(&mut rule.common);
                batch.put(&rule);
            }
            let mut policy = policy.clone();
            errored(&mut policy.common);
            batch.put(&policy);
        }
        let mut listener = listener.clone();
        errored(&mut listener.common);
        batch.put(&listener);
    }
    for pool in snapshot.pools_of(lb_id) {
        let mut pool = pool.clone();
        errored(&mut pool.common);
        batch.put(&pool);
        for member in snapshot.members_of(&pool.common.id) {
            let mut member = member.clone();
            errored(&mut member.common);
            batch.put(&member);
        }
        if let Some(hm) = snapshot.healthmonitor_of(&pool.common.id) {
            let mut hm = hm.clone();
            errored(&mut hm.common);
            batch.put(&hm);
        }
    }
    if let Some(lb) = snapshot.loadbalancer_by_id(lb_id) {
        let mut lb = lb.clone();
        // A load balancer that never got onto its device gives the reservation back.
        if lb.common.provisioning_status == ProvisioningStatus::PendingCreate {
            wire(snapshot, &lb, false, &mut batch);
            if let Some(device_id) = lb.device_id.take() {
                retired = retire_if_empty(snapshot, &device_id, lb_id, &mut batch);
            }
        }
        // A failed move leaves it where it was: the new device gives its reservation back.
        if let Some(migration) = lb.migration.take()
            && lb.device_id.as_deref() != Some(migration.from.as_str())
        {
            wire(snapshot, &lb, false, &mut batch);
            if let Some(device_id) = &lb.device_id {
                retired = retire_if_empty(snapshot, device_id, lb_id, &mut batch);
            }
            lb.device_id = Some(migration.from);
        }
        lb.common
            .set_statuses(ProvisioningStatus::Error, OperatingStatus::Error, &now);
        lb.fault = Some(fault.chars().take(1024).collect());
        batch.put(&lb);
    }
    batch.delete::<Job>(lb_id);
    (batch, retired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LbAlgorithm, Protocol};
    use crate::store::{Kind, Record, Write, decode};

    fn common(id: &str) -> Common {
        Common {
            id: id.into(),
            project_id: "p".into(),
            name: String::new(),
            description: String::new(),
            admin_state_up: true,
            provisioning_status: ProvisioningStatus::PendingCreate,
            operating_status: OperatingStatus::Offline,
            created_at: "then".into(),
            updated_at: None,
            tags: Vec::new(),
        }
    }

    fn pool(id: &str) -> Pool {
        Pool {
            common: common(id),
            loadbalancer_id: "lb".into(),
            protocol: Protocol::Http,
            lb_algorithm: LbAlgorithm::RoundRobin,
            session_persistence: None,
            healthmonitor_id: None,
        }
    }

    /// A load balancer being created: one listener sending to pool `used`, and pool `spare`
    /// that no listener names.
    fn pending_tree() -> Snapshot {
        let lb = LoadBalancer {
            common: common("lb"),
            vip_address: "192.0.2.10".into(),
            vip_network_id: "net".into(),
            vip_subnet_id: "subnet".into(),
            vip_port_id: String::new(),
            provider: "haproxy".into(),
            flavor_id: None,
            device_id: None,
            fault: None,
            migration: None,
            availability_zone: None,
        };
        let listener = Listener {
            common: common("listener"),
            loadbalancer_id: "lb".into(),
            protocol: Protocol::Http,
            protocol_port: 80,
            connection_limit: -1,
            default_pool_id: Some("used".into()),
            timeout_client_data: 0,
            timeout_member_connect: 0,
            timeout_member_data: 0,
            timeout_tcp_inspect: 0,
            allowed_cidrs: Vec::new(),
            insert_headers: Default::default(),
        };
        let mut snapshot = Snapshot::empty_for(&lb);
        let mut batch = Batch::new();
        batch.put(&listener).put(&pool("used")).put(&pool("spare"));
        snapshot.apply(batch.writes()).expect("apply");
        snapshot
    }

    /// The record `id` of `kind` as `batch` writes it.
    fn written<R: Record>(batch: &Batch, kind: Kind, id: &str) -> R {
        batch
            .writes()
            .iter()
            .find_map(|write| match write {
                Write::Put {
                    kind: k,
                    id: i,
                    bytes,
                } if *k == kind && i == id => Some(decode(i, bytes).expect("a record")),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{kind:?} {id} is not written"))
    }

    #[test]
    fn a_finished_job_stamps_updated_at_and_leaves_an_unattached_pool_offline() {
        let (batch, _) = succeed(&pending_tree(), "lb");
        let lb: LoadBalancer = written(&batch, Kind::LoadBalancer, "lb");
        assert_eq!(lb.common.provisioning_status, ProvisioningStatus::Active);
        assert!(
            lb.common.updated_at.is_some(),
            "a status change stamps updated_at"
        );
        let used: Pool = written(&batch, Kind::Pool, "used");
        assert_eq!(used.common.operating_status, OperatingStatus::Online);
        let spare: Pool = written(&batch, Kind::Pool, "spare");
        assert_eq!(spare.common.provisioning_status, ProvisioningStatus::Active);
        assert_eq!(spare.common.operating_status, OperatingStatus::Offline);
        assert!(spare.common.updated_at.is_some());
    }

    #[test]
    fn a_failed_job_stamps_updated_at_with_the_fault() {
        let (batch, _) = fail(&pending_tree(), "lb", "no capacity: every device is full");
        let lb: LoadBalancer = written(&batch, Kind::LoadBalancer, "lb");
        assert_eq!(lb.common.provisioning_status, ProvisioningStatus::Error);
        assert!(lb.common.updated_at.is_some());
        assert_eq!(
            lb.fault.as_deref(),
            Some("no capacity: every device is full")
        );
        let listener: Listener = written(&batch, Kind::Listener, "listener");
        assert_eq!(
            listener.common.provisioning_status,
            ProvisioningStatus::Error
        );
        assert!(listener.common.updated_at.is_some());
    }

    #[test]
    fn settling_an_unchanged_status_keeps_updated_at() {
        let mut common = common("x");
        common.provisioning_status = ProvisioningStatus::Active;
        common.operating_status = OperatingStatus::Online;
        common.updated_at = Some("earlier".into());
        settle(&mut common, OperatingStatus::Online, "now");
        assert_eq!(common.updated_at.as_deref(), Some("earlier"));
        settle(&mut common, OperatingStatus::Degraded, "now");
        assert_eq!(common.updated_at.as_deref(), Some("now"));
    }
}
