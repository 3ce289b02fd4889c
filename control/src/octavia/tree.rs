//! The object tree's shared rules: a new object's first fields, a load balancer that refuses
//! changes while `PENDING_*`, and the change to a child, which moves its load balancer to
//! `PENDING_UPDATE` with the job that makes the device match.

use lbaas_core::ids::{new_id, now};

use super::Caller;
use super::fields::{Decided, text};
use super::status::{self, Step};
use crate::Error;
use crate::model::{
    Common, HealthMonitor, Job, Listener, LoadBalancer, Member, OperatingStatus, Pool,
    ProvisioningStatus,
};
use crate::plane::Change;
use crate::snapshot::Snapshot;
use crate::store::{Batch, Record};

/// The fields every new object starts with: `PENDING_CREATE`, `OFFLINE`, a fresh id.
pub fn new_common(
    project_id: &str,
    name: Option<String>,
    description: Option<String>,
    admin_state_up: Option<bool>,
    tags: Option<Vec<String>>,
) -> Decided<Common> {
    let created_at = now();
    let mut common = Common {
        id: new_id(),
        project_id: project_id.to_owned(),
        name: text("name", name, 255)?,
        description: text("description", description, 255)?,
        admin_state_up: admin_state_up.unwrap_or(true),
        provisioning_status: ProvisioningStatus::PendingCreate,
        operating_status: OperatingStatus::Offline,
        created_at: created_at.clone(),
        updated_at: None,
        tags: tags.unwrap_or_default(),
    };
    status::step(&mut common, Step::Create, &created_at);
    Ok(common)
}

pub use super::status::ensure_mutable;

/// The caller may change objects of `project_id`.
pub fn ensure_writable(caller: &impl Caller, project_id: &str) -> Decided<()> {
    if caller.can_write(project_id) {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

/// The objects a create names as its parents, as the request names them.
#[derive(Debug, Default, Clone)]
pub struct Parents {
    pub loadbalancer_id: Option<String>,
    pub listener_id: Option<String>,
}

/// Octavia's order for a create that names certificates: the parents it names exist (a 400
/// otherwise) and the caller may change them (a 403), before any reference is checked with
/// the caller's rights: an outsider learns nothing about references from a 400.
pub fn authorize_parents(
    snapshot: &Snapshot,
    caller: &impl Caller,
    parents: &Parents,
) -> Decided<()> {
    if let Some(id) = &parents.loadbalancer_id {
        let lb = super::fields::referenced(snapshot.loadbalancer(caller, id), "Load Balancer", id)?;
        ensure_writable(caller, &lb.common.project_id)?;
    }
    if let Some(id) = &parents.listener_id {
        let listener = super::fields::referenced(snapshot.listener(caller, id), "Listener", id)?;
        ensure_writable(caller, &listener.common.project_id)?;
    }
    Ok(())
}

/// A change to a child: the load balancer must not be `PENDING_*`, and moves to
/// `PENDING_UPDATE` with a job that makes the device match.
pub fn touch_parent(snapshot: &Snapshot, lb_id: &str, batch: &mut Batch) -> Decided<()> {
    let lb = snapshot.parent(lb_id)?;
    ensure_mutable(lb)?;
    queue_update(&mut lb.clone(), batch);
    Ok(())
}

/// Puts `lb` in `PENDING_UPDATE` with the job that makes its device match, into `batch`.
pub fn queue_update(lb: &mut LoadBalancer, batch: &mut Batch) {
    status::step(&mut lb.common, Step::Update, &now());
    batch.put(lb).put(&job(&lb.common.id));
}

/// A change that stores `record` as it is, answering it.
pub fn store<R: Record>(record: R) -> Change<R> {
    let mut batch = Batch::new();
    batch.put(&record);
    Change::new(batch, record)
}

/// A change that deletes the record `id` of kind `R`.
pub fn remove<R: Record>(id: &str) -> Change<()> {
    let mut batch = Batch::new();
    batch.delete::<R>(id);
    Change::new(batch, ())
}

/// The job of a load balancer. One job per load balancer: a newer change supersedes an
/// unfinished older one.
pub fn job(lb_id: &str) -> Job {
    Job::new(lb_id, lbaas_telemetry::traces::traceparent())
}

/// A record that belongs to one load balancer.
pub trait Child: Record + Clone + Send + 'static {
    fn common(&self) -> &Common;
    fn common_mut(&mut self) -> &mut Common;
    fn loadbalancer_id(&self) -> &str;
}

macro_rules! child {
    ($ty:ty) => {
        impl Child for $ty {
            fn common(&self) -> &Common {
                &self.common
            }
            fn common_mut(&mut self) -> &mut Common {
                &mut self.common
            }
            fn loadbalancer_id(&self) -> &str {
                &self.loadbalancer_id
            }
        }
    };
}

child!(Listener);
child!(Pool);
child!(Member);
child!(HealthMonitor);

/// Records a new or changed child; its load balancer moves to `PENDING_UPDATE` with a job.
pub fn child_change<R: Record, T>(
    snapshot: &Snapshot,
    lb_id: &str,
    child: &R,
    value: T,
) -> Decided<Change<T>> {
    let mut batch = Batch::new();
    touch_parent(snapshot, lb_id, &mut batch)?;
    batch.put(child);
    Ok(Change::new(batch, value).with_job(lb_id))
}

/// Deletes a child the caller may write: it becomes `PENDING_DELETE`, and the job that
/// removes it from the device is queued.
pub fn delete_child<C: Caller, R: Child>(
    snapshot: &Snapshot,
    caller: &C,
    id: &str,
    find: for<'a> fn(&'a Snapshot, &C, &str) -> Result<&'a R, Error>,
) -> Decided<Change<()>> {
    let child = find(snapshot, caller, id)?;
    ensure_writable(caller, &child.common().project_id)?;
    let mut child = child.clone();
    status::step(child.common_mut(), Step::Delete, &now());
    let lb_id = child.loadbalancer_id().to_owned();
    child_change(snapshot, &lb_id, &child, ())
}
