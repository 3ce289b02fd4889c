//! The control plane's one read path and one write path.
//!
//! Reads see a [`Snapshot`] of every record, decoded once and kept current by each commit.
//! Every write — a tenant's change, a job's progress, a driver lifecycle step — takes the write
//! lock, decides on a fresh snapshot, commits the [`Change`] it returns in one transaction,
//! runs the change's commit hooks while still holding the lock, and is answered only once the
//! commit is durable.
//!
//! On a store several hosts share ([`crate::store::Fleet`]), the write lock is also the
//! fleet's: a write takes this host's lock, then the one every host shares, and decides on a
//! snapshot caught up to the store's revision at that moment, so invariants that span records
//! (a device's capacity, one job per load balancer) hold across hosts. Reads use the cached
//! snapshot, which follows other hosts' commits as their revisions are announced: from the
//! change log, or by loading everything again when it is too far behind.

use std::sync::Arc;

use crate::drivers::Drivers;
use crate::error::Error;
use crate::net::IpNet;
use crate::observed::Traffic;
use crate::provision::Provisioner;
use crate::snapshot::Snapshot;
use crate::store::{Batch, Store};

/// Tells the worker that a load balancer has a job waiting.
pub type JobSender = tokio::sync::mpsc::UnboundedSender<String>;

/// The application: records, drivers, devices and the paths every read and write takes. The
/// API, the worker, the status monitor and the driver folder's watcher all act through it.
pub struct ControlPlane {
    pub store: Arc<dyn Store>,
    pub drivers: Arc<Drivers>,
    /// The provider load balancers created without flavor or provider get, while it is
    /// active.
    preferred_provider: Option<String>,
    /// Creates virtual devices when a driver asks to spawn one.
    pub provisioner: Option<Arc<dyn Provisioner>>,
    /// Listener traffic totals, fed by the status monitor.
    pub traffic: Traffic,
    /// What this control plane counts: its requests, jobs, placements and its drivers' calls.
    metrics: lbaas_telemetry::Metrics,
    /// What the status monitor last found of each device it polls.
    pub device_health: crate::observed::DeviceHealth,
    /// Who may register devices, and where their management endpoints may be.
    pub registration: DeviceRegistration,
    /// Where tenants' VIPs, members and monitors may point, and which subnets projects may
    /// have.
    pub addresses: crate::addresses::AddressRules,
    writes: tokio::sync::Mutex<()>,
    /// One hand-over of devices' reach to the provisioner at a time ([`ControlPlane::route_devices`]).
    pub(crate) routing: std::sync::Mutex<()>,
    /// Every write is flushed to disk before it is answered (the default). Off only to measure
    /// what durability costs: an acknowledged write may then be lost in a crash.
    flush_before_ack: bool,
    /// The store's records, decoded once and kept current by every commit (all writes go
    /// through [`ControlPlane::write`]).
    cache: std::sync::Mutex<Cached>,
    /// Signalled when an update of the cached snapshot ends.
    updated: std::sync::Condvar,
    jobs: JobSender,
    /// The newest revision of the shared store this host has heard of: a cached snapshot
    /// older than it is caught up before it is read.
    latest: std::sync::atomic::AtomicU64,
    /// The hosts sharing the store, as the last heartbeat found them.
    pub(crate) hosts: std::sync::Mutex<Vec<lbaas_core::views::HostView>>,
    /// Handles of devices this host spawned whose records another host deleted: stopped by the
    /// fleet task here, since no other host may stop them.
    pub(crate) orphans: std::sync::Mutex<Vec<String>>,
    /// What the host's own key manager seals secrets with, when it has one
    /// ([`ControlPlane::with_local_keys`]).
    pub(crate) keys: Option<Arc<lbaas_keys::Sealer>>,
    /// The cloud's key manager, when secrets are kept there instead
    /// ([`ControlPlane::with_external_keys`]).
    pub(crate) external_keys: Option<Arc<dyn crate::key_manager::ExternalKeys>>,
    /// When the served certificates this host read expire, by reference: what the metrics and
    /// the dashboard show for certificates the host's records do not describe (Barbican's).
    pub(crate) expiries_seen: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

/// Who may register devices and where they may point the host's HTTP client: a management URL
/// is where the host sends requests, with credentials, on a driver's behalf.
#[derive(Debug, Clone)]
pub struct DeviceRegistration {
    /// Networks management URLs must lie in: the same as the runtime's device allow-list
    /// (`--device-network`), checked at registration as at every call.
    pub networks: Vec<IpNet>,
    /// Sockets no device may point at: the host's own listening addresses.
    pub reserved: Vec<std::net::SocketAddr>,
    /// Whether project members may register virtual devices of their own project
    /// (`--device-registration members`); by default only admins register devices.
    pub members: bool,
}

impl DeviceRegistration {
    /// The rules that match the runtime's device allow-list: the networks and reserved
    /// sockets every `device-api` call is checked against, so registration refuses what calls
    /// would.
    pub fn for_policy(policy: &crate::runtime::DevicePolicy, members: bool) -> Self {
        Self {
            networks: policy.allowed_networks.clone(),
            reserved: policy.reserved.clone(),
            members,
        }
    }
}

impl Default for DeviceRegistration {
    fn default() -> Self {
        Self::for_policy(&crate::runtime::DevicePolicy::default(), false)
    }
}

/// Runs after a change is committed, before the write lock is released: it brings what lives
/// beside the store (the driver registry's loaded versions) to the committed state.
type CommitHook = Box<dyn FnOnce(&ControlPlane) + Send>;

/// What a write decided: the batch to commit, the load balancers that now have a job, what
/// must follow the commit, and the answer.
pub struct Change<T> {
    pub batch: Batch,
    pub jobs: Vec<String>,
    pub value: T,
    hooks: Vec<CommitHook>,
}

impl<T> Change<T> {
    pub fn new(batch: Batch, value: T) -> Self {
        Self {
            batch,
            jobs: Vec::new(),
            value,
            hooks: Vec::new(),
        }
    }

    /// The same change, answering `map(value)`: how a caller renders what a rule decided.
    pub fn map<U>(self, map: impl FnOnce(T) -> U) -> Change<U> {
        Change {
            batch: self.batch,
            jobs: self.jobs,
            value: map(self.value),
            hooks: self.hooks,
        }
    }

    pub fn with_job(mut self, lb_id: &str) -> Self {
        self.jobs.push(lb_id.to_owned());
        self
    }

    /// Runs `hook` once the batch is committed, still under the write lock (so the next
    /// write sees what it did). It does not run when the commit fails.
    pub fn on_commit(mut self, hook: impl FnOnce(&ControlPlane) + Send + 'static) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }
}

impl ControlPlane {
    pub fn new(
        store: Arc<dyn Store>,
        drivers: Arc<Drivers>,
        preferred_provider: Option<String>,
        jobs: JobSender,
    ) -> Self {
        Self {
            store,
            drivers,
            preferred_provider,
            provisioner: None,
            traffic: Traffic::default(),
            metrics: lbaas_telemetry::Metrics::default(),
            device_health: Default::default(),
            registration: DeviceRegistration::default(),
            addresses: Default::default(),
            writes: tokio::sync::Mutex::new(()),
            routing: std::sync::Mutex::new(()),
            flush_before_ack: true,
            cache: std::sync::Mutex::new(Cached::Missing),
            updated: std::sync::Condvar::new(),
            jobs,
            latest: std::sync::atomic::AtomicU64::new(0),
            hosts: std::sync::Mutex::new(Vec::new()),
            orphans: std::sync::Mutex::new(Vec::new()),
            keys: None,
            external_keys: None,
            expiries_seen: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Notes that the shared store reached `revision`: the next read catches up to it.
    pub fn learn(&self, revision: u64) {
        self.latest
            .fetch_max(revision, std::sync::atomic::Ordering::AcqRel);
    }

    fn is_current(&self, snapshot: &Snapshot) -> bool {
        snapshot.revision >= self.latest.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Queues the job of load balancer `lb_id` for this host's worker.
    pub fn enqueue(&self, lb_id: String) {
        let _ = self.jobs.send(lb_id);
    }

    /// The provider of load balancers created without flavor or provider: the preferred one
    /// while it is active, else the first active driver.
    pub fn default_provider(&self) -> Option<String> {
        self.preferred_provider
            .as_deref()
            .and_then(|name| self.drivers.get(name))
            .or_else(|| self.drivers.all().into_iter().next())
            .map(|driver| driver.name().to_string())
    }

    /// Counts in `metrics` (the registry its driver runtime and audit writer count in too),
    /// rather than in a registry of its own.
    pub fn with_metrics(mut self, metrics: lbaas_telemetry::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// What this control plane counts.
    pub fn metrics(&self) -> &lbaas_telemetry::Metrics {
        &self.metrics
    }

    /// Sets who may register devices and where they may point.
    pub fn with_device_registration(mut self, registration: DeviceRegistration) -> Self {
        self.registration = registration;
        self
    }

    /// What the host keeps from tenants' addresses: its own sockets and reserved networks.
    pub fn with_address_rules(mut self, rules: crate::addresses::AddressRules) -> Self {
        self.addresses = rules;
        self
    }

    /// Answers writes without waiting for the disk: for measuring what durability costs only
    /// (an acknowledged write may be lost in a crash).
    pub fn acknowledge_before_flush(mut self) -> Self {
        self.flush_before_ack = false;
        self
    }

    /// Lets drivers spawn devices through `provisioner`.
    pub fn with_provisioner(mut self, provisioner: Arc<dyn Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// The current snapshot: the cached one, brought up to the newest revision heard of when
    /// another host committed since, or one loaded from the store. While another thread
    /// brings the cached one up to date, waits for it rather than loading every record again.
    pub(crate) fn snapshot(&self) -> Result<Arc<Snapshot>, Error> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let stale = loop {
            match &*cache {
                Cached::Ready(snapshot) if self.is_current(snapshot) => {
                    return Ok(snapshot.clone());
                }
                Cached::Ready(snapshot) => break Some(snapshot.clone()),
                Cached::Updating => {
                    cache = self.updated.wait(cache).unwrap_or_else(|e| e.into_inner());
                }
                Cached::Missing => break None,
            }
        };
        *cache = Cached::Updating;
        drop(cache);
        // Ends the update however `refresh` ends: a failure leaves no snapshot cached.
        let update = Update {
            plane: self,
            taken: None,
            ended: false,
        };
        // The registry's steps before the store is read: one committed meanwhile is newer
        // than what the store said.
        let read_at = self.drivers.steps_taken();
        let (next, follow) = self.refresh(stale)?;
        update.finish(Some(next.clone()));
        // The registry follows once readers have the snapshot again: loading a version another
        // host activated compiles it, and reads need not wait for that.
        match follow {
            Follow::Nothing => {}
            Follow::Writes(writes) => self.drivers.follow_stored(&writes, read_at),
            Follow::All => self.drivers.follow_all(read_at),
        }
        Ok(next)
    }

    /// `stale` brought up to the shared store's revision from its change log, or, without
    /// one (or too far behind it), every record loaded again; and what the driver registry
    /// must follow.
    fn refresh(&self, stale: Option<Arc<Snapshot>>) -> Result<(Arc<Snapshot>, Follow), Error> {
        let fleet = self.store.fleet();
        if let (Some(mut next), Some(fleet)) = (stale.clone(), fleet)
            && let Some((revision, writes)) = fleet.changes_since(next.revision)?
        {
            self.note_orphans(&next, &writes);
            let snapshot = Arc::make_mut(&mut next);
            snapshot.apply(&writes)?;
            snapshot.revision = revision;
            return Ok((next, Follow::Writes(writes)));
        }
        let next = Arc::new(Snapshot::load(&*self.store)?);
        // Changes this host could not read one by one may have touched the drivers.
        let follow = if stale.is_some() && fleet.is_some() {
            Follow::All
        } else {
            Follow::Nothing
        };
        Ok((next, follow))
    }

    /// Notes the devices this host spawned that `writes` (another host's) delete: their
    /// processes are this host's to stop.
    fn note_orphans(&self, before: &Snapshot, writes: &[crate::store::Write]) {
        let gone = writes.iter().filter_map(|write| match write {
            crate::store::Write::Delete {
                kind: crate::store::Kind::Device,
                id,
            } => before.device_by_id(id),
            _ => None,
        });
        let handles: Vec<String> = gone
            .filter(|device| self.owns(device))
            .filter_map(|device| device.provisioned.clone())
            .collect();
        if !handles.is_empty() {
            self.orphans
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(handles);
        }
    }

    /// Takes the cached snapshot out to update it in place; readers wait until the update
    /// ends (however it ends: the guard ends it when dropped).
    fn begin_update(&self) -> Update<'_> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let taken = match std::mem::replace(&mut *cache, Cached::Updating) {
            Cached::Ready(snapshot) => Some(snapshot),
            Cached::Missing | Cached::Updating => None,
        };
        Update {
            plane: self,
            taken,
            ended: false,
        }
    }

    /// Runs `read` on a snapshot of the store, off the async threads.
    pub async fn read<T, E>(
        self: &Arc<Self>,
        read: impl FnOnce(&ControlPlane, &Snapshot) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let plane = self.clone();
        crate::spawn_blocking(move || {
            let snapshot = plane.snapshot()?;
            read(&plane, &snapshot)
        })
        .await
        .map_err(Error::from)?
    }

    /// Runs a small `read` (one object and its view) where the request is: on the async
    /// thread when the snapshot is in memory, saving the hop to the blocking pool and back
    /// (a third of a `GET` of one load balancer); in the blocking pool when the snapshot must
    /// be loaded from the store first.
    pub async fn read_one<T, E>(
        self: &Arc<Self>,
        read: impl FnOnce(&ControlPlane, &Snapshot) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let cached = match &*self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Cached::Ready(snapshot) if self.is_current(snapshot) => Some(snapshot.clone()),
            Cached::Ready(_) | Cached::Missing | Cached::Updating => None,
        };
        match cached {
            Some(snapshot) => read(self, &snapshot),
            None => self.read(read).await,
        }
    }

    /// Runs `write` under the write lock on a fresh snapshot, commits what it returns, runs its
    /// commit hooks, makes it durable, and wakes the worker for the jobs it created.
    pub async fn write<T, E>(
        self: &Arc<Self>,
        write: impl FnOnce(&ControlPlane, &Snapshot) -> Result<Change<T>, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<Error> + Send + 'static,
    {
        let plane = self.clone();
        let change = {
            let _lock = self.writes.lock().await;
            crate::spawn_blocking(move || plane.commit(write))
                .await
                .map_err(Error::from)??
        };
        // Durable before acknowledged; concurrent writers share the flush.
        if self.flush_before_ack {
            let store = self.store.clone();
            crate::spawn_blocking(move || store.flush())
                .await
                .map_err(Error::from)?
                .map_err(Error::from)?;
        }
        for lb in change.jobs {
            let _ = self.jobs.send(lb);
        }
        Ok(change.value)
    }

    /// The part of a write under the lock: decide, commit, bring the snapshot and the registry
    /// up to date. On a shared store, the fleet's write lock is held from before the snapshot
    /// is read until the hooks have run.
    fn commit<T, E: From<Error>>(
        &self,
        write: impl FnOnce(&ControlPlane, &Snapshot) -> Result<Change<T>, E>,
    ) -> Result<Change<T>, E> {
        let mut locked = match self.store.fleet() {
            Some(fleet) => Some(fleet.lock().map_err(Error::from)?),
            None => None,
        };
        if let Some(locked) = &locked {
            self.learn(locked.revision());
        }
        let snapshot = self.snapshot()?;
        let mut change = write(self, &snapshot)?;
        if change.batch.is_empty() && change.hooks.is_empty() {
            return Ok(change);
        }
        let committed = match locked.as_mut() {
            Some(locked) => locked.commit(change.batch.writes()).map(Some),
            None => change.batch.commit(&*self.store).map(|()| None),
        };
        let revision = match committed {
            Ok(revision) => revision,
            Err(error) => {
                self.begin_update().finish(None);
                return Err(Error::from(error).into());
            }
        };
        // Readers keep the snapshot they hold; the cache moves on. Taken out of the cache, it
        // is usually updated in place rather than copied (with shared records, a copy is of
        // the changed kinds' pointers).
        drop(snapshot);
        let mut update = self.begin_update();
        let next = update.taken.take().map_or_else(
            || Snapshot::load(&*self.store).ok().map(Arc::new),
            |mut next| {
                let snapshot = Arc::make_mut(&mut next);
                snapshot.apply(change.batch.writes()).ok()?;
                // This commit follows the snapshot's revision directly, or the snapshot keeps
                // its revision and catches up (its own writes again included) on next read.
                if let Some(revision) = revision
                    && snapshot.revision + 1 == revision
                {
                    snapshot.revision = revision;
                }
                Some(next)
            },
        );
        if let Some(revision) = revision {
            self.learn(revision);
        }
        update.finish(next);
        for hook in std::mem::take(&mut change.hooks) {
            hook(self);
        }
        drop(locked);
        Ok(change)
    }

    /// Runs a blocking call (a driver's validate-flavor) off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Error> {
        Ok(crate::spawn_blocking(call).await?)
    }
}

/// An update of the cached snapshot in progress.
struct Update<'a> {
    plane: &'a ControlPlane,
    /// The snapshot to update, if one was cached.
    taken: Option<Arc<Snapshot>>,
    ended: bool,
}

impl Update<'_> {
    /// Ends the update: the new snapshot, or none (the next reader loads one).
    fn finish(mut self, snapshot: Option<Arc<Snapshot>>) {
        self.end(snapshot);
    }

    fn end(&mut self, snapshot: Option<Arc<Snapshot>>) {
        self.ended = true;
        *self.plane.cache.lock().unwrap_or_else(|e| e.into_inner()) = match snapshot {
            Some(snapshot) => Cached::Ready(snapshot),
            None => Cached::Missing,
        };
        self.plane.updated.notify_all();
    }
}

impl Drop for Update<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(None);
        }
    }
}

/// What the driver registry follows after a snapshot caught up with other hosts' commits.
enum Follow {
    Nothing,
    /// The changes read from the log (driver records and quarantines among them, or not).
    Writes(Vec<crate::store::Write>),
    /// Everything: the log no longer held the changes.
    All,
}

/// The cached snapshot.
enum Cached {
    /// None yet, or dropped after a failure: the next reader loads one.
    Missing,
    Ready(Arc<Snapshot>),
    /// A writer is bringing it up to date.
    Updating,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::model::Network;
    use crate::runtime::LoadedDriver;
    use crate::store::{MemoryStore, StoreError, Write};

    fn network(id: &str) -> Network {
        Network {
            id: id.into(),
            name: String::new(),
            project_id: None,
            vlan: None,
            subnets: Vec::new(),
            created_at: "now".into(),
        }
    }

    fn plane(store: Arc<dyn Store>) -> Arc<ControlPlane> {
        let (jobs, _) = tokio::sync::mpsc::unbounded_channel();
        let drivers = Arc::new(Drivers::new(Vec::<LoadedDriver>::new()));
        Arc::new(ControlPlane::new(store, drivers, None, jobs))
    }

    /// A disk that refuses every commit.
    struct Full(MemoryStore);

    impl Store for Full {
        fn get(&self, kind: crate::store::Kind, id: &str) -> crate::store::Result<Option<Vec<u8>>> {
            self.0.get(kind, id)
        }

        fn scan(&self, kind: crate::store::Kind) -> crate::store::Result<Vec<(String, Vec<u8>)>> {
            self.0.scan(kind)
        }

        fn commit(&self, _: &[Write]) -> crate::store::Result<()> {
            Err(StoreError::Backend("no space left on device".into()))
        }

        fn flush(&self) -> crate::store::Result<()> {
            Ok(())
        }
    }

    /// Writes `network` with a hook that notes what it saw in the store.
    async fn put(
        plane: &Arc<ControlPlane>,
        id: &'static str,
        seen: &Arc<Mutex<Vec<bool>>>,
    ) -> Result<(), Error> {
        let seen = seen.clone();
        plane
            .write(move |_, _| {
                let mut batch = Batch::new();
                batch.put(&network(id));
                Ok::<_, Error>(Change::new(batch, ()).on_commit(move |plane| {
                    let stored = plane
                        .store
                        .get(crate::store::Kind::Network, id)
                        .is_ok_and(|r| r.is_some());
                    seen.lock().expect("seen").push(stored);
                }))
            })
            .await
    }

    #[tokio::test]
    async fn a_commit_hook_runs_after_the_commit_and_only_then() {
        let plane = plane(Arc::new(MemoryStore::new()));
        let seen = Arc::new(Mutex::new(Vec::new()));
        put(&plane, "net-1", &seen).await.expect("write");
        assert_eq!(
            *seen.lock().expect("seen"),
            [true],
            "ran once, after the commit"
        );
        let networks = plane
            .read(|_, snapshot| Ok::<_, Error>(snapshot.networks.len()))
            .await
            .expect("read");
        assert_eq!(networks, 1, "the snapshot moved on with the commit");

        // A refused write commits nothing and runs no hook.
        let refused = plane
            .write(|_, _| Err::<Change<()>, _>(Error::not_found("Network", "net-2")))
            .await;
        assert!(matches!(refused, Err(Error::NotFound { .. })));
        assert_eq!(seen.lock().expect("seen").len(), 1);
    }

    #[tokio::test]
    async fn a_failed_commit_runs_no_hook_and_leaves_the_snapshot_as_stored() {
        let plane = plane(Arc::new(Full(MemoryStore::new())));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failed = put(&plane, "net-1", &seen).await;
        assert!(
            matches!(&failed, Err(Error::Store(e)) if e.to_string().contains("no space left")),
            "{failed:?}"
        );
        assert!(
            seen.lock().expect("seen").is_empty(),
            "no hook after a failed commit"
        );
        let networks = plane
            .read(|_, snapshot| Ok::<_, Error>(snapshot.networks.len()))
            .await
            .expect("read");
        assert_eq!(networks, 0, "nothing that was not stored is seen");
    }
}
