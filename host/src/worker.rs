//! The job worker: makes each device match the stored model. A job names a load balancer;
//! running it places the load balancer (if it has no device yet), has the driver `translate`
//! and `apply` the configuration — or `remove` it for a deletion — and records the outcome:
//! `ACTIVE`, or `ERROR` with a fault message the user can read. Jobs live in the store, so a
//! restarted host resumes every unfinished one.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedReceiver;

use crate::api::{Api, Outcome, Snapshot};
use crate::devices::{DeviceDirectory, DeviceEndpoint};
use crate::model::{
    Common, Device, HealthMonitor, Job, Listener, LoadBalancer, Member, OperatingStatus, Pool,
    ProvisioningStatus,
};
use crate::runtime::{self as wit, LoadedDriver};
use crate::store::{Batch, Store, StoreExt};
use crate::{DriverName, convert};

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

/// Starts the worker: `concurrency` jobs at a time, fed by `jobs` and, first, by every job
/// left in the store by a previous run.
pub fn spawn(api: Arc<Api>, mut jobs: UnboundedReceiver<String>, concurrency: usize) {
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    tokio::spawn(async move {
        let store = api.store.clone();
        let leftover = tokio::task::spawn_blocking(move || store.all::<Job>())
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
                None => match jobs.recv().await {
                    Some(lb_id) => lb_id,
                    None => return,
                },
            };
            if !running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(lb_id.clone())
            {
                continue;
            }
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (api, running) = (api.clone(), running.clone());
            tokio::spawn(async move {
                run(&api, &lb_id).await;
                running
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&lb_id);
                drop(permit);
            });
        }
    });
}

/// Runs the job of one load balancer to its end, whatever happens.
async fn run(api: &Arc<Api>, lb_id: &str) {
    let outcome = converge(api, lb_id).await;
    let lb = lb_id.to_owned();
    let recorded = match outcome {
        Ok(Step::Done) => Ok(()),
        Ok(Step::Removed) => Ok(()),
        Err(fault) => {
            tracing::warn!(loadbalancer = lb_id, %fault, "provisioning failed");
            api.write(move |_, snapshot| Ok(Outcome::new(fail(snapshot, &lb, &fault), ())))
                .await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(loadbalancer = lb_id, error = %error.message, "cannot record a job's outcome");
    }
}

enum Step {
    Done,
    Removed,
}

/// What a driver call needs, read from one snapshot.
struct Work {
    lb: LoadBalancer,
    driver: LoadedDriver,
    device: Option<Device>,
    model: wit::LoadBalancer,
}

async fn converge(api: &Arc<Api>, lb_id: &str) -> Result<Step, String> {
    let id = lb_id.to_owned();
    // Place first, reserving the device under the write lock: capacity is re-checked there.
    let placed = api
        .write(move |api, snapshot| {
            let Some(lb) = snapshot.loadbalancers.iter().find(|lb| lb.common.id == id) else {
                let mut batch = Batch::new();
                batch.delete::<Job>(&id);
                return Ok(Outcome::new(batch, None));
            };
            if lb.device_id.is_some()
                || lb.common.provisioning_status == ProvisioningStatus::PendingDelete
            {
                return Ok(Outcome::new(Batch::new(), Some(Ok(()))));
            }
            match place(api, snapshot, lb) {
                Ok(device) => {
                    let mut lb = lb.clone();
                    lb.device_id = Some(device.id.clone());
                    lb.provider = device.driver.clone();
                    let mut batch = Batch::new();
                    batch.put(&lb);
                    Ok(Outcome::new(batch, Some(Ok(()))))
                }
                Err(fault) => Ok(Outcome::new(Batch::new(), Some(Err(fault)))),
            }
        })
        .await
        .map_err(|e| e.message)?;
    match placed {
        None => return Ok(Step::Done),
        Some(Err(fault)) => return Err(fault),
        Some(Ok(())) => {}
    }

    let id = lb_id.to_owned();
    let work = api
        .read(move |api, snapshot| Ok(work(api, snapshot, &id)))
        .await
        .map_err(|e| e.message)??;
    let Some(work) = work else {
        return Ok(Step::Done);
    };

    let deleting = work.lb.common.provisioning_status == ProvisioningStatus::PendingDelete;
    let Work {
        lb,
        driver,
        device,
        model,
    } = work;
    let call = tokio::task::spawn_blocking(move || -> Result<(), String> {
        let Some(device) = device else { return Ok(()) };
        let device = convert::device(&device);
        if deleting {
            return driver.remove(&model, &device).map_err(|e| e.to_string());
        }
        let config = driver
            .translate(&model, &device)
            .map_err(|e| e.to_string())?;
        driver
            .apply(&model, &device, &config)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| format!("driver call aborted: {e}"))?;
    call?;

    let id = lb.common.id.clone();
    api.write(move |_, snapshot| {
        let batch = if deleting {
            remove_all(snapshot, &id)
        } else {
            succeed(snapshot, &id)
        };
        Ok(Outcome::new(batch, ()))
    })
    .await
    .map_err(|e| e.message)?;
    Ok(if deleting { Step::Removed } else { Step::Done })
}

/// The placeholder scheduler: the least loaded enabled device of an eligible provider that
/// the load balancer's project may use and that has room.
fn place<'a>(api: &Api, snapshot: &'a Snapshot, lb: &LoadBalancer) -> Result<&'a Device, String> {
    let providers = eligible_providers(snapshot, lb);
    let candidates = snapshot.devices.iter().filter(|d| {
        providers.contains(&d.driver)
            && api.drivers.get(&d.driver).is_some()
            && d.enabled
            && d.project_id
                .as_deref()
                .is_none_or(|p| p == lb.common.project_id)
            && snapshot.load_of(&d.id) < d.capacity as usize
    });
    candidates
        .min_by(|a, b| {
            let load = |d: &Device| snapshot.load_of(&d.id) as f64 / f64::from(d.capacity.max(1));
            load(a).total_cmp(&load(b)).then_with(|| a.id.cmp(&b.id))
        })
        .ok_or_else(|| {
            format!(
                "no capacity: no enabled device of provider {} can take this load balancer",
                providers.join(" or ")
            )
        })
}

fn eligible_providers(snapshot: &Snapshot, lb: &LoadBalancer) -> Vec<String> {
    lb.flavor_id
        .as_deref()
        .and_then(|id| snapshot.flavor(id).ok())
        .and_then(|flavor| snapshot.flavorprofile(&flavor.flavor_profile_id).ok())
        .map(crate::api::profile_providers)
        .unwrap_or_else(|| vec![lb.provider.clone()])
}

fn work(api: &Api, snapshot: &Snapshot, lb_id: &str) -> Result<Option<Work>, String> {
    let Some(lb) = snapshot
        .loadbalancers
        .iter()
        .find(|lb| lb.common.id == lb_id)
    else {
        return Ok(None);
    };
    let driver = api
        .drivers
        .get(&lb.provider)
        .ok_or_else(|| format!("provider {} is not loaded on this host", lb.provider))?;
    let device = match &lb.device_id {
        Some(id) => Some(
            snapshot
                .devices
                .iter()
                .find(|d| &d.id == id)
                .cloned()
                .ok_or_else(|| format!("device {id} of this load balancer no longer exists"))?,
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
        .ok_or_else(|| format!("VIP network {} no longer exists", lb.vip_network_id))?;
    let mut member_networks: Vec<wit::Network> = Vec::new();
    for member in &members {
        let network = snapshot.networks.iter().find(|n| {
            n.subnets.iter().any(|s| {
                member.subnet_id.as_deref() == Some(s.id.as_str())
                    || crate::api::subnet_contains(&s.cidr, &member.address)
            })
        });
        if let Some(network) = network
            && !member_networks.iter().any(|n| n.id == network.id)
        {
            member_networks.push(convert::network(network));
        }
    }
    let flavor = match lb
        .flavor_id
        .as_deref()
        .and_then(|id| snapshot.flavor(id).ok())
    {
        Some(flavor) => {
            let profile = snapshot
                .flavorprofile(&flavor.flavor_profile_id)
                .map_err(|e| e.message)?;
            Some(convert::flavor(&flavor.name, &profile.flavor_data)?)
        }
        None => None,
    };
    let children = convert::Children {
        listeners,
        pools,
        members,
        monitors,
    };
    let model = convert::load_balancer(lb, &children, vip_network, member_networks, flavor);
    Ok(Some(Work {
        lb: lb.clone(),
        driver,
        device,
        model,
    }))
}

fn settle(common: &mut Common, operating: OperatingStatus) {
    common.provisioning_status = ProvisioningStatus::Active;
    common.operating_status = if common.admin_state_up {
        operating
    } else {
        OperatingStatus::Offline
    };
}

/// The device matches the model: pending children become `ACTIVE` or disappear.
fn succeed(snapshot: &Snapshot, lb_id: &str) -> Batch {
    let mut batch = Batch::new();
    let gone = |c: &Common| c.provisioning_status == ProvisioningStatus::PendingDelete;
    let deleted_pools: Vec<&str> = snapshot
        .pools_of(lb_id)
        .filter(|p| gone(&p.common))
        .map(|p| p.common.id.as_str())
        .collect();
    for listener in snapshot.listeners_of(lb_id) {
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
        settle(&mut listener.common, OperatingStatus::Online);
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
            );
            batch.put(&member);
        }
        if let Some(hm) = monitor {
            if pool_gone || gone(&hm.common) {
                batch.delete::<HealthMonitor>(&hm.common.id);
            } else {
                let mut hm = hm.clone();
                settle(&mut hm.common, OperatingStatus::Online);
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
        settle(&mut pool.common, OperatingStatus::Online);
        batch.put(&pool);
    }
    if let Some(lb) = snapshot
        .loadbalancers
        .iter()
        .find(|lb| lb.common.id == lb_id)
    {
        let mut lb = lb.clone();
        settle(&mut lb.common, OperatingStatus::Online);
        lb.fault = None;
        batch.put(&lb);
    }
    batch.delete::<Job>(lb_id);
    batch
}

/// The load balancer is gone from its device: it and every child leave the store.
fn remove_all(snapshot: &Snapshot, lb_id: &str) -> Batch {
    let mut batch = Batch::new();
    for listener in snapshot.listeners_of(lb_id) {
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
    batch.delete::<LoadBalancer>(lb_id).delete::<Job>(lb_id);
    batch
}

/// Provisioning failed: the load balancer and its pending children end in `ERROR`.
fn fail(snapshot: &Snapshot, lb_id: &str, fault: &str) -> Batch {
    let mut batch = Batch::new();
    let errored = |common: &mut Common| {
        if common.provisioning_status.is_pending() {
            common.provisioning_status = ProvisioningStatus::Error;
            common.operating_status = OperatingStatus::Error;
        }
    };
    for listener in snapshot.listeners_of(lb_id) {
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
    if let Some(lb) = snapshot
        .loadbalancers
        .iter()
        .find(|lb| lb.common.id == lb_id)
    {
        let mut lb = lb.clone();
        lb.common.provisioning_status = ProvisioningStatus::Error;
        lb.common.operating_status = OperatingStatus::Error;
        lb.fault = Some(fault.chars().take(1024).collect());
        batch.put(&lb);
    }
    batch.delete::<Job>(lb_id);
    batch
}
