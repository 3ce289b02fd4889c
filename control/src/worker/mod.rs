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

use crate::DriverName;
use crate::error::Error;
use crate::model::{Device, Job};
use crate::store::{Batch, Store, StoreExt};
use crate::tasks::Stop;

mod certificates;
mod converge;
mod fault;
mod input;
mod outcome;
mod place;
mod ticket;
mod wiring;

pub(crate) use certificates::conceal;
use converge::{Step, converge};
pub use fault::JobError;
pub(crate) use input::{Work, work};
pub(crate) use outcome::attached;
use outcome::fail;
use ticket::holds;
use wiring::release;

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
    let mut sweep = tokio::time::interval(SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    sweep.tick().await;
    loop {
        let lb_id = match queue.pop_front() {
            Some(lb_id) => lb_id,
            None => tokio::select! {
                () = stop.requested() => break,
                next = jobs.recv() => match next {
                    Some(lb_id) => lb_id,
                    None => break,
                },
                // A job of this host's that no run holds (its run could not read it, or could
                // not record its outcome) is run again rather than left pending.
                _ = sweep.tick() => {
                    let own = api.own_jobs().await;
                    let running = running.lock().unwrap_or_else(|e| e.into_inner());
                    queue.extend(own.into_iter().filter(|lb| !running.contains_key(lb)));
                    continue;
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

/// How often the worker looks for jobs of this host's that no run holds.
const SWEEP: std::time::Duration = std::time::Duration::from_secs(10);

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
    let (plane, id) = (api.clone(), lb_id.to_owned());
    let read = crate::spawn_blocking(move || -> Result<Option<Job>, Error> {
        let job = plane.store.load::<Job>(&id)?;
        // On a shared store, the records the run reads are at least as new as its job: the
        // change that asked for it, or a newer one (whose job the fence then finds).
        if let Some(fleet) = plane.store.fleet() {
            plane.learn(fleet.revision()?);
        }
        Ok(job)
    })
    .await;
    let job = match read.map_err(Error::from).and_then(|job| job) {
        Ok(Some(job)) => job,
        // Finished already (queued twice, or by another host): nothing to do.
        Ok(None) => return Ran::Ended,
        Err(error) => {
            tracing::warn!(loadbalancer = lb_id, %error, "cannot read a job; it waits for its next turn");
            return Ran::Ended;
        }
    };
    let span = tracing::info_span!("job", loadbalancer = lb_id);
    lbaas_telemetry::traces::continue_trace(&span, job.traceparent.as_deref());
    run_job(api, lb_id, &job.ticket).instrument(span).await
}

async fn run_job(api: &Arc<ControlPlane>, lb_id: &str, ticket: &str) -> Ran {
    let started = std::time::Instant::now();
    api.metrics().jobs_running.inc();
    let outcome = converge(api, lb_id, ticket).await;
    api.metrics().jobs_running.dec();
    let ended = match &outcome {
        Ok(Step::Done) => "succeeded",
        Ok(Step::Removed) => "deleted",
        Err(JobError::Superseded) => "superseded",
        Err(_) => "failed",
    };
    api.metrics().job(ended, started.elapsed());
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
