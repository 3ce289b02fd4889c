//! A job's outcome, as records: `ACTIVE` (pending children settle or leave), the removal of a
//! deleted load balancer's tree, or `ERROR` with the fault.

use crate::snapshot::Snapshot;

use super::wiring::{Retired, retire_if_empty, wire, wire_device};
use crate::model::{
    Common, HealthMonitor, Job, L7Action, L7Policy, L7Rule, Listener, LoadBalancer, Member,
    OperatingStatus, Placement, Pool, ProvisioningStatus,
};
use crate::octavia::status::{self, Step};
use crate::store::Batch;

/// An object the job carried out: `ACTIVE`, with `operating` ([`status::step`]).
pub(super) fn settle(common: &mut Common, operating: OperatingStatus, now: &str) {
    status::step(common, Step::Settle(operating), now);
}

/// The device matches the model: pending children become `ACTIVE` or disappear. Returns the
/// handle of a spawned device a migration left empty.
pub(super) fn succeed(snapshot: &Snapshot, lb_id: &str) -> (Batch, Option<Retired>) {
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
pub(super) fn settle_l7(
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
pub(super) fn remove_all(snapshot: &Snapshot, lb_id: &str) -> (Batch, Option<Retired>) {
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
pub(super) fn fail(snapshot: &Snapshot, lb_id: &str, fault: &str) -> (Batch, Option<Retired>) {
    let mut batch = Batch::new();
    let mut retired = None;
    let now = crate::ids::now();
    let errored = |common: &mut Common| {
        status::step(common, Step::Fail, &now);
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
        status::step(&mut lb.common, Step::Fault, &now);
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
            tls: Default::default(),
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
            tls: Default::default(),
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
