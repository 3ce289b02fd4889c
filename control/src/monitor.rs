//! The status monitor: every few seconds it asks each active load balancer's driver for the
//! device's view (`status`), turns member health into operating statuses as Octavia does, and
//! keeps the listeners' traffic counters for the `stats` endpoints.
//!
//! Octavia's rules: a member failing its checks is `ERROR`, one taken out by configuration
//! `OFFLINE`, one nobody checks `NO_MONITOR`; a pool with some members in `ERROR` is
//! `DEGRADED`, with all of them `ERROR`; a load balancer with a pool in `DEGRADED` or `ERROR`
//! is `DEGRADED`, and one whose device cannot be reached is `ERROR`. Only objects that are
//! `ACTIVE` change: a pending one is the worker's.

use crate::octavia::status::{self, Step};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;
use crate::model::{Common, LoadBalancer, OperatingStatus, ProvisioningStatus};
use crate::observed::Counters;
use crate::plane::{Change, ControlPlane};
use crate::runtime::{self as wit, DriverError, MemberHealth};
use crate::snapshot::Snapshot;
use crate::store::Batch;
use crate::tasks::Stop;
use crate::worker;

/// Status calls running at once in a round.
const CONCURRENCY: usize = 8;

impl From<&wit::ListenerCounters> for Counters {
    fn from(c: &wit::ListenerCounters) -> Self {
        Counters {
            bytes_in: c.bytes_in,
            bytes_out: c.bytes_out,
            active_connections: c.active_connections,
            total_connections: c.total_connections,
            request_errors: c.request_errors,
        }
    }
}

/// What one status call found.
enum Report {
    Status(wit::LoadBalancerStatus),
    /// The driver reports nothing; statuses stay as they are.
    Silent,
    /// The device could not be asked.
    Unreachable(String),
}

/// Polls every `interval` until `stop`.
pub async fn run(api: Arc<ControlPlane>, interval: Duration, mut stop: Stop) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.requested() => return,
            _ = ticker.tick() => round(&api).await,
        }
    }
}

/// One polling round over every active load balancer.
pub async fn round(api: &Arc<ControlPlane>) {
    let Ok(work) = api
        .read(|api, snapshot| {
            // On a shared store: only this host's spawned devices are revived (and routed)
            // here, and each device is polled by one host.
            let served: Vec<String> = snapshot
                .devices
                .iter()
                .filter(|d| api.owns(d))
                .filter_map(|d| d.provisioned.clone())
                .collect();
            let work: Vec<worker::Work> = snapshot
                .loadbalancers
                .iter()
                .filter(|lb| {
                    lb.common.provisioning_status == ProvisioningStatus::Active
                        && lb.device_id.as_deref().is_some_and(|d| api.polls(d))
                })
                .filter_map(|lb| worker::work(api, snapshot, &lb.common.id).ok().flatten())
                .map(|mut work| {
                    // `status` sends no key material, and names none.
                    worker::conceal(&mut work.model);
                    work
                })
                .collect();
            Ok::<_, Error>((served, work))
        })
        .await
    else {
        return;
    };
    let (served, work) = work;
    if let Some(provisioner) = api.provisioner.clone() {
        let api = api.clone();
        let _ = crate::spawn_blocking(move || {
            provisioner.revive(&served);
            api.route_devices(None);
        })
        .await;
    }

    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut calls = tokio::task::JoinSet::new();
    for item in work {
        let permits = permits.clone();
        calls.spawn(async move {
            let _permit = permits.acquire_owned().await;
            let lb_id = item.lb.common.id.clone();
            let device_id = item.device.as_ref().map(|d| d.id.clone());
            let report = crate::spawn_blocking(move || ask(&item)).await;
            (
                lb_id,
                device_id,
                report.unwrap_or_else(|e| Report::Unreachable(e.to_string())),
            )
        });
    }
    let mut reports = Vec::new();
    let mut health: HashMap<String, Option<String>> = HashMap::new();
    while let Some(Ok((lb_id, device_id, report))) = calls.join_next().await {
        if let Some(device_id) = device_id {
            // Unreachable for one of its load balancers is unreachable.
            let why = match &report {
                Report::Unreachable(why) => Some(why.clone()),
                _ => None,
            };
            let entry = health.entry(device_id).or_default();
            if entry.is_none() {
                *entry = why;
            }
        }
        reports.push((lb_id, report));
    }
    api.device_health.replace(health);

    for (_, report) in &reports {
        if let Report::Status(status) = report {
            for listener in &status.listeners {
                api.traffic
                    .record(&listener.listener_id, Counters::from(listener));
            }
        }
    }
    let written = api
        .write(move |_, snapshot| {
            let mut batch = Batch::new();
            for (lb_id, report) in &reports {
                apply(snapshot, lb_id, report, &mut batch);
            }
            Ok::<_, Error>(Change::new(batch, ()))
        })
        .await;
    if let Err(error) = written {
        tracing::warn!(%error, "cannot record operating statuses");
    }
    if let Ok(live) = api
        .read(|_, snapshot| {
            Ok::<_, Error>(
                snapshot
                    .listeners
                    .iter()
                    .map(|l| l.common.id.clone())
                    .collect::<std::collections::HashSet<_>>(),
            )
        })
        .await
    {
        api.traffic.retain(&|id| live.contains(id));
    }
}

fn ask(item: &worker::Work) -> Report {
    let Some(device) = &item.device else {
        return Report::Silent;
    };
    match item
        .driver
        .status(&item.model, &crate::contract::device(device))
    {
        Ok(status) => Report::Status(status),
        Err(crate::runtime::Error::Refused {
            error: DriverError::Unsupported(_),
            ..
        }) => Report::Silent,
        Err(error) => Report::Unreachable(error.to_string()),
    }
}

/// Puts into `batch` the objects of `lb_id` whose operating status the report changes.
fn apply(snapshot: &Snapshot, lb_id: &str, report: &Report, batch: &mut Batch) {
    let Some(lb) = snapshot
        .loadbalancers
        .iter()
        .find(|lb| lb.common.id == lb_id)
    else {
        return;
    };
    if lb.common.provisioning_status != ProvisioningStatus::Active {
        return;
    }
    let status = match report {
        Report::Silent => return,
        Report::Unreachable(why) => {
            if lb.common.operating_status != OperatingStatus::Error {
                tracing::warn!(loadbalancer = lb_id, %why, "device unreachable");
                let mut lb = lb.clone();
                status::step(
                    &mut lb.common,
                    Step::Observe(OperatingStatus::Error),
                    &crate::ids::now(),
                );
                batch.put(&lb);
            }
            return;
        }
        Report::Status(status) => status,
    };
    let health: HashMap<&str, MemberHealth> = status
        .members
        .iter()
        .map(|m| (m.member_id.as_str(), m.health))
        .collect();
    let mut pools_ok = true;
    for pool in snapshot.pools_of(lb_id) {
        let mut enabled = 0;
        let mut failing = 0;
        for member in snapshot.members_of(&pool.common.id) {
            let operating = match health.get(member.common.id.as_str()) {
                _ if !member.common.admin_state_up => OperatingStatus::Offline,
                Some(MemberHealth::Online) => OperatingStatus::Online,
                Some(MemberHealth::Down) => OperatingStatus::Error,
                Some(MemberHealth::Draining) => OperatingStatus::Draining,
                Some(MemberHealth::Disabled) => OperatingStatus::Offline,
                Some(MemberHealth::Unchecked) => OperatingStatus::NoMonitor,
                None => member.common.operating_status,
            };
            if member.common.admin_state_up {
                enabled += 1;
                failing += usize::from(operating == OperatingStatus::Error);
            }
            if let Some(member) = changed(&member.common, operating, |c| {
                let mut m = member.clone();
                m.common = c;
                m
            }) {
                batch.put(&member);
            }
        }
        let operating =
            if !pool.common.admin_state_up || !worker::attached(snapshot, lb_id, &pool.common.id) {
                OperatingStatus::Offline
            } else if failing == 0 {
                OperatingStatus::Online
            } else if failing == enabled {
                OperatingStatus::Error
            } else {
                OperatingStatus::Degraded
            };
        pools_ok &= matches!(
            operating,
            OperatingStatus::Online | OperatingStatus::Offline
        );
        if let Some(pool) = changed(&pool.common, operating, |c| {
            let mut p = pool.clone();
            p.common = c;
            p
        }) {
            batch.put(&pool);
        }
    }
    let operating = lb_operating(lb, pools_ok);
    if let Some(lb) = changed(&lb.common, operating, |c| {
        let mut l = lb.clone();
        l.common = c;
        l
    }) {
        batch.put(&lb);
    }
}

fn lb_operating(lb: &LoadBalancer, pools_ok: bool) -> OperatingStatus {
    if !lb.common.admin_state_up {
        OperatingStatus::Offline
    } else if pools_ok {
        OperatingStatus::Online
    } else {
        OperatingStatus::Degraded
    }
}

/// The object with its new operating status, when it is `ACTIVE` and the status differs.
fn changed<T>(
    common: &Common,
    operating: OperatingStatus,
    rebuild: impl FnOnce(Common) -> T,
) -> Option<T> {
    if common.provisioning_status != ProvisioningStatus::Active
        || common.operating_status == operating
    {
        return None;
    }
    let mut common = common.clone();
    status::step(&mut common, Step::Observe(operating), &crate::ids::now());
    Some(rebuild(common))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(bytes: u64, total: u64, active: u64) -> Counters {
        Counters {
            bytes_in: bytes,
            bytes_out: bytes * 2,
            active_connections: active,
            total_connections: total,
            request_errors: 0,
        }
    }

    #[test]
    fn totals_survive_a_device_reload() {
        let traffic = crate::observed::Traffic::default();
        traffic.record("l1", counters(100, 4, 1));
        traffic.record("l1", counters(150, 6, 2));
        assert_eq!(traffic.listener("l1"), counters(150, 6, 2));
        // Reloaded: the device counts from zero again.
        traffic.record("l1", counters(10, 1, 1));
        assert_eq!(traffic.listener("l1"), counters(160, 7, 1));
        traffic.record("l2", counters(1, 1, 0));
        assert_eq!(traffic.sum(["l1", "l2"]), counters(161, 8, 1));
        traffic.retain(&|id| id == "l2");
        assert_eq!(traffic.listener("l1"), Counters::default());
    }
}
