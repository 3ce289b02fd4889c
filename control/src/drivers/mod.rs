//! The drivers a host serves, and their lifecycle: upload, activate, roll back, canary, drain,
//! disable, delete — while the host runs.
//!
//! Each driver name (one Octavia provider) has any number of uploaded versions, identified by
//! SHA-256, of which at most one is *active*: it takes every new call. Swapping the active
//! version replaces one `Arc` in a map under a short write lock; calls already running hold a
//! clone of the old [`LoadedDriver`] and finish on it, so no call fails because of a swap.
//!
//! A lifecycle step is decided on the driver record by a pure state machine ([`lifecycle`]);
//! the version it needs passes its checks again ([`admission`]) off the write lock; then the
//! record (and, for an upload, the component's bytes) is committed through the control plane's
//! one write path, and the registry follows the commit before the write lock is released.
//! Steps are taken one at a time. Records live in the store (`drivers`), the component bytes
//! beside them (`driver_blobs`, by SHA-256, checked against their key at every load). Every
//! step is recorded in the audit log.

pub mod admission;
pub mod directory;
pub mod lifecycle;
mod steps;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use crate::audit::{self, AuditSink};
use crate::integrity::Trust;
use crate::model::{DriverRecord, FlavorProfile};
use crate::runtime::{self, LoadedDriver, Runtime};
use crate::store::{Batch, Kind, Store, StoreExt, Write, decode};

use admission::Manager;
pub use admission::{MAX_COMPONENT_BYTES, Upload};
pub use lifecycle::{Answer, Facts, LifecycleError, Serving, Step, Transition};

type Result<T, E = LifecycleError> = std::result::Result<T, E>;

fn storage(error: impl std::fmt::Display) -> LifecycleError {
    LifecycleError::Storage(error.to_string())
}

/// One driver name: its record and the versions compiled so far.
struct Line {
    record: DriverRecord,
    active: Option<LoadedDriver>,
    /// The canary version and its share of placements, when one runs.
    canary: Option<(LoadedDriver, u8)>,
    /// Placements decided so far, to spread the canary's share evenly.
    placements: std::sync::atomic::AtomicU64,
    /// Versions loaded in this process, by SHA-256 (the active one among them).
    loaded: HashMap<String, LoadedDriver>,
}

impl Line {
    fn new(record: DriverRecord) -> Self {
        Self {
            record,
            active: None,
            canary: None,
            placements: Default::default(),
            loaded: HashMap::new(),
        }
    }

    /// The version that takes the next placement: the canary for its share (spread evenly:
    /// with 25 %, every fourth), the active version otherwise.
    fn next_placement(&self) -> Option<LoadedDriver> {
        if let Some((canary, percent)) = &self.canary {
            let n = self
                .placements
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let percent = u64::from(*percent);
            if (n + 1) * percent / 100 > n * percent / 100 {
                return Some(canary.clone());
            }
        }
        self.active.clone()
    }
}

/// Times [`Drivers::follow_all`] reads the records again while this host's steps commit.
const FOLLOW_ATTEMPTS: usize = 5;

/// The drivers the host serves, by name. Each active version is one Octavia provider.
#[derive(Default)]
pub struct Drivers {
    lines: RwLock<BTreeMap<String, Line>>,
    manager: Option<Manager>,
    /// Steps this host committed into `lines` so far. Following what the store said is
    /// skipped when a step committed since it was read: the store was read before the step,
    /// and what it said would undo it here (a deleted version back in the registry).
    steps: std::sync::atomic::AtomicU64,
}

impl Drivers {
    /// No drivers at all (tests of everything but drivers).
    pub fn none() -> Self {
        Self::new(Vec::new())
    }

    /// A fixed set of drivers (tools, tests): no uploads, no records.
    pub fn new(drivers: impl IntoIterator<Item = LoadedDriver>) -> Self {
        let lines = drivers
            .into_iter()
            .map(|driver| {
                let identity = driver.identity().clone();
                let record = DriverRecord {
                    name: identity.name.to_string(),
                    active: Some(identity.sha256.clone()),
                    previous: Vec::new(),
                    draining: false,
                    canary: None,
                    publisher: None,
                    versions: vec![admission::version_of(&driver, "fixed", None, None)],
                };
                let mut line = Line::new(record);
                line.active = Some(driver.clone());
                line.loaded.insert(identity.sha256, driver);
                (identity.name.to_string(), line)
            })
            .collect();
        Self {
            lines: RwLock::new(lines),
            manager: None,
            steps: Default::default(),
        }
    }

    /// The registry of a host that manages versions: restores every stored driver and loads
    /// its active version. A version that no longer loads (its bytes changed, the operator's
    /// trust changed) is reported, audited and left inactive.
    pub fn managed(
        runtime: Runtime,
        trust: Trust,
        store: Arc<dyn Store>,
        audit: Arc<dyn AuditSink>,
    ) -> Result<Self> {
        runtime.keep_quarantines(Arc::new(StoredQuarantines(store.clone())));
        let manager = Manager {
            runtime,
            trust,
            store,
            audit,
            steps: tokio::sync::Mutex::new(()),
            conformance: true,
        };
        let records: Vec<DriverRecord> = manager.store.all().map_err(storage)?;
        let mut lines = BTreeMap::new();
        for record in records {
            let mut line = Line::new(record);
            if let Some(canary) = line.record.canary.clone() {
                match manager.load_stored(&line.record, &canary.sha256) {
                    Ok(driver) => {
                        line.loaded.insert(canary.sha256.clone(), driver.clone());
                        line.canary = Some((driver, canary.percent));
                    }
                    Err(error) => {
                        tracing::error!(driver = %line.record.name, sha = %canary.sha256, %error, "cannot restore the canary version; the active version takes every placement");
                    }
                }
            }
            if let Some(sha) = line.record.active.clone() {
                match manager.load_stored(&line.record, &sha) {
                    Ok(driver) => {
                        line.active = Some(driver.clone());
                        line.loaded.insert(sha, driver);
                    }
                    Err(error) => {
                        tracing::error!(driver = %line.record.name, %sha, %error, "cannot restore the active driver version");
                        manager.audit_event(
                            &line.record.name,
                            None,
                            "lifecycle.refused",
                            Some(format!("restore {sha}")),
                            audit::Outcome::Denied,
                            error.to_string(),
                        );
                    }
                }
            }
            lines.insert(line.record.name.clone(), line);
        }
        Ok(Self {
            lines: RwLock::new(lines),
            manager: Some(manager),
            steps: Default::default(),
        })
    }

    /// How many steps this host has committed into the registry: taken before the store is
    /// read for [`Drivers::follow_stored`] or [`Drivers::follow_all`].
    pub fn steps_taken(&self) -> u64 {
        self.steps.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stores uploads without running the conformance kit on them — for tests that need a
    /// driver which passed it and misbehaves afterwards. Every other check still runs.
    pub fn without_conformance(mut self) -> Self {
        if let Some(manager) = &mut self.manager {
            manager.conformance = false;
        }
        self
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Line>> {
        self.lines.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Line>> {
        self.lines.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The active version of `name`.
    pub fn get(&self, name: &str) -> Option<LoadedDriver> {
        self.read().get(name).and_then(|line| line.active.clone())
    }

    /// Every active version.
    pub fn all(&self) -> Vec<LoadedDriver> {
        self.read()
            .values()
            .filter_map(|line| line.active.clone())
            .collect()
    }

    /// The versions that take the next load balancer, one per driver that is not draining:
    /// the active version, or the canary for its share of placements. Quarantined versions
    /// take none.
    pub fn placeable(&self) -> Vec<LoadedDriver> {
        self.read()
            .values()
            .filter(|line| !line.record.draining)
            .filter_map(Line::next_placement)
            .filter(|driver| driver.quarantined().is_none())
            .collect()
    }

    /// The version that serves a load balancer of `name` placed by version `placed_by`: the
    /// canary for the load balancers it placed, the active version for every other.
    pub fn serving(&self, name: &str, placed_by: Option<&str>) -> Option<LoadedDriver> {
        let lines = self.read();
        let line = lines.get(name)?;
        match (&line.canary, placed_by) {
            (Some((canary, _)), Some(sha)) if canary.identity().sha256 == sha => {
                Some(canary.clone())
            }
            _ => line.active.clone(),
        }
    }

    /// Every driver's record: its versions and which one is active.
    pub fn records(&self) -> Vec<DriverRecord> {
        self.read()
            .values()
            .map(|line| line.record.clone())
            .collect()
    }

    pub fn record(&self, name: &str) -> Option<DriverRecord> {
        self.read().get(name).map(|line| line.record.clone())
    }

    /// Whether this host changes drivers while it runs.
    pub fn is_managed(&self) -> bool {
        self.manager.is_some()
    }

    fn manager(&self) -> Result<&Manager> {
        self.manager.as_ref().ok_or(LifecycleError::Unmanaged)
    }

    /// The driver and version a component's SHA-256 was uploaded as, under any name.
    pub fn find_sha(&self, sha256: &str) -> Option<(String, String)> {
        self.read().values().find_map(|line| {
            line.record
                .version(sha256)
                .map(|v| (line.record.name.clone(), v.version.clone()))
        })
    }

    /// Decides `step` for driver `name` and admits the version it needs: loaded (or found
    /// loaded), quarantine-free, checked again, its state converted when the step asks for it.
    /// A refused admission is audited. Blocking; nothing is committed yet.
    fn prepare(
        &self,
        name: &str,
        step: &Step,
        facts: &Facts,
        by: &str,
        profiles: &[FlavorProfile],
    ) -> Result<Prepared> {
        let manager = self.manager()?;
        let record = self
            .record(name)
            .ok_or_else(|| LifecycleError::DriverNotFound {
                name: name.to_owned(),
            })?;
        let transition = lifecycle::decide(&record, step, facts)?;
        let driver = match &transition.admit {
            None => None,
            Some(admit) => {
                Some(self.admit_stored(manager, &record, &transition, admit, profiles)?)
            }
        };
        Ok(Prepared {
            name: name.to_owned(),
            transition,
            driver,
            blob: None,
            by: by.to_owned(),
        })
    }

    /// Everything a stored version passes before it serves: it loads, it is not quarantined,
    /// the upload checks pass again, and (when asked) its state migration from the active
    /// version succeeds.
    fn admit_stored(
        &self,
        manager: &Manager,
        record: &DriverRecord,
        transition: &Transition,
        admit: &lifecycle::Admit,
        profiles: &[FlavorProfile],
    ) -> Result<LoadedDriver> {
        let (name, sha) = (&record.name, &admit.sha256);
        let version = transition.version.clone();
        let loaded = self
            .read()
            .get(name.as_str())
            .and_then(|l| l.loaded.get(sha).cloned());
        let driver = match loaded {
            Some(driver) => driver,
            None => manager.load_stored(record, sha)?,
        };
        let refused = |reason: String| {
            manager.audit_event(
                name,
                version.as_ref(),
                "lifecycle.refused",
                Some(transition.event.to_owned()),
                audit::Outcome::Denied,
                reason.clone(),
            );
            LifecycleError::Refused(format!(
                "{name} {} was not activated: {reason}",
                version.as_ref().map_or("", |v| v.version.as_str())
            ))
        };
        if let Some(reason) = driver.quarantined() {
            return Err(refused(format!("it is quarantined ({reason})")));
        }
        admission::check(&driver, profiles).map_err(&refused)?;
        if admit.migrate {
            // The state the active version left carries over; the new one converts it first.
            let from = self
                .read()
                .get(name.as_str())
                .and_then(|line| line.active.as_ref().map(|d| d.identity().version.clone()))
                .unwrap_or_default();
            driver
                .migrate_state(&from)
                .map_err(|e| refused(format!("its state migration failed: {e}")))?;
        }
        Ok(driver)
    }

    /// Admits an upload and decides the step that stores it. Blocking; nothing is committed.
    fn prepare_upload(
        &self,
        upload: Upload<'_>,
        facts: &Facts,
        profiles: &[FlavorProfile],
    ) -> Result<Prepared> {
        let manager = self.manager()?;
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&upload.bytes));
        if let Some((name, version)) = self.find_sha(&sha256) {
            return Err(LifecycleError::AlreadyUploaded {
                name,
                version,
                sha256,
            });
        }
        let source = upload.source.to_owned();
        let publisher_of = |name: &str| self.record(name).and_then(|record| record.publisher);
        let admitted = manager.admit(upload, &publisher_of, profiles)?;
        let name = admitted.driver.name().to_string();
        let record = self
            .record(&name)
            .unwrap_or_else(|| lifecycle::new_record(&name));
        let transition = lifecycle::decide(&record, &Step::Add(admitted.version.clone()), facts)?;
        Ok(Prepared {
            name,
            transition,
            driver: Some(admitted.driver),
            blob: Some(admitted.bytes),
            by: source,
        })
    }

    /// Follows driver records and quarantines committed by another host sharing the store:
    /// the versions each record makes active or canary are loaded (compiled outside the
    /// registry's lock) and swapped in as a step taken here would; a quarantine holds here too.
    /// `read_at` is [`Drivers::steps_taken`] before `changed` was read: when this host has
    /// committed a step since, the records are read again instead.
    pub fn follow_stored(&self, changed: &[Write], read_at: u64) {
        let Ok(manager) = self.manager() else {
            return;
        };
        for write in changed {
            let followed = match write {
                Write::Put {
                    kind: Kind::Driver,
                    id,
                    bytes,
                } => match decode::<DriverRecord>(id, bytes) {
                    Ok(record) => self.follow_record(manager, record, read_at),
                    Err(error) => {
                        tracing::error!(%error, "cannot follow a driver record");
                        true
                    }
                },
                Write::Delete {
                    kind: Kind::Driver,
                    id,
                } => {
                    let mut lines = self.write();
                    let current = self.steps_taken() == read_at;
                    if current {
                        lines.remove(id);
                    }
                    current
                }
                Write::Put {
                    kind: Kind::Quarantine,
                    id,
                    bytes,
                } => {
                    let reason = decode::<crate::model::Quarantine>(id, bytes)
                        .map(|q| q.reason)
                        .unwrap_or_else(|e| format!("its quarantine record cannot be read: {e}"));
                    self.follow_quarantine(id, Some(reason));
                    true
                }
                Write::Delete {
                    kind: Kind::Quarantine,
                    id,
                } => {
                    self.follow_quarantine(id, None);
                    true
                }
                Write::Put { .. } | Write::Delete { .. } => true,
            };
            if !followed {
                // A step of this host's came after these writes were read: the store says
                // what holds now.
                return self.follow_all(self.steps_taken());
            }
        }
    }

    /// Follows every stored driver record: after changes this host could not read one by one.
    /// `read_at` as for [`Drivers::follow_stored`]; the records are read again (a few times at
    /// most) while this host's own steps commit meanwhile.
    pub fn follow_all(&self, read_at: u64) {
        let Ok(manager) = self.manager() else {
            return;
        };
        let mut read_at = read_at;
        for _ in 0..FOLLOW_ATTEMPTS {
            let records = match manager.store.all::<DriverRecord>() {
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(%error, "cannot read the driver records");
                    return;
                }
            };
            let names: Vec<String> = records.iter().map(|r| r.name.clone()).collect();
            let mut current = {
                let mut lines = self.write();
                let current = self.steps_taken() == read_at;
                if current {
                    lines.retain(|name, _| names.contains(name));
                }
                current
            };
            for record in records {
                current = current && self.follow_record(manager, record, read_at);
            }
            if current {
                return;
            }
            read_at = self.steps_taken();
        }
        tracing::warn!("the driver records kept changing while this host followed them");
    }

    /// Follows `record` as the store holds it; false, and nothing changed, when this host
    /// committed a step since `read_at`.
    fn follow_record(&self, manager: &Manager, record: DriverRecord, read_at: u64) -> bool {
        let name = record.name.clone();
        let load = |sha: &str| {
            let loaded = self
                .read()
                .get(&name)
                .and_then(|line| line.loaded.get(sha).cloned());
            loaded.or_else(|| match manager.load_stored(&record, sha) {
                Ok(driver) => Some(driver),
                Err(error) => {
                    tracing::error!(driver = %name, sha, %error, "cannot load a version another host made serve");
                    None
                }
            })
        };
        let active = record.active.as_deref().and_then(&load);
        let canary = record
            .canary
            .as_ref()
            .and_then(|c| load(&c.sha256).map(|driver| (driver, c.percent)));
        // A version uploaded elsewhere is compiled here now, as the uploading host did: its
        // activation, when it comes, is then only a swap on every host.
        let known: Vec<String> = self.read().get(&name).map_or_else(Vec::new, |line| {
            line.record
                .versions
                .iter()
                .map(|v| v.sha256.clone())
                .collect()
        });
        let uploaded: Vec<LoadedDriver> = record
            .versions
            .iter()
            .filter(|v| !known.contains(&v.sha256))
            .filter_map(|v| load(&v.sha256))
            .collect();
        let mut lines = self.write();
        if self.steps_taken() != read_at {
            return false;
        }
        let line = lines
            .entry(name.clone())
            .or_insert_with(|| Line::new(record.clone()));
        for driver in active
            .iter()
            .chain(canary.iter().map(|(d, _)| d))
            .chain(&uploaded)
        {
            line.loaded
                .insert(driver.identity().sha256.clone(), driver.clone());
        }
        line.loaded
            .retain(|sha, _| record.versions.iter().any(|v| v.sha256 == *sha));
        line.active = active;
        line.canary = canary;
        line.record = record;
        true
    }

    fn follow_quarantine(&self, sha256: &str, reason: Option<String>) {
        for line in self.read().values() {
            if let Some(driver) = line.loaded.get(sha256) {
                driver.follow_quarantine(reason.clone());
            }
        }
    }

    /// The registry follows a committed step: the record, and which versions serve.
    fn follow(&self, name: &str, transition: &Transition, driver: Option<LoadedDriver>) {
        let mut lines = self.write();
        self.steps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let Some(record) = &transition.record else {
            lines.remove(name);
            return;
        };
        let line = lines
            .entry(name.to_owned())
            .or_insert_with(|| Line::new(record.clone()));
        line.record = record.clone();
        if let Some(driver) = &driver {
            line.loaded
                .insert(driver.identity().sha256.clone(), driver.clone());
        }
        match (&transition.serving, driver) {
            (Serving::Active(_), Some(driver)) => {
                // The swap: new calls take this version; running calls keep theirs.
                line.active = Some(driver);
                line.canary = None;
            }
            (Serving::Canary(_, percent), Some(driver)) => {
                line.canary = Some((driver, *percent));
            }
            (Serving::CanaryEnded, _) => line.canary = None,
            (Serving::Unloaded(sha), _) => {
                line.loaded.remove(sha);
            }
            (Serving::Deleted { sha256, was_active }, _) => {
                line.loaded.remove(sha256);
                if *was_active {
                    line.active = None;
                }
            }
            (Serving::Active(_) | Serving::Canary(..), None)
            | (Serving::Unchanged | Serving::Removed { .. }, _) => {}
        }
    }
}

/// A lifecycle step decided and admitted, ready to commit.
pub struct Prepared {
    name: String,
    transition: Transition,
    /// The version admitted to serve, or the one uploaded.
    driver: Option<LoadedDriver>,
    /// The component's bytes, for an upload.
    blob: Option<Vec<u8>>,
    /// Who took the step, for the audit log.
    by: String,
}

impl Prepared {}

/// Quarantines kept in the store, one record per driver version, written (and flushed) when
/// a version is quarantined and removed when an admin releases it.
struct StoredQuarantines(Arc<dyn Store>);

impl runtime::QuarantineStore for StoredQuarantines {
    fn quarantined(&self, sha256: &str) -> Option<String> {
        match self.0.load::<crate::model::Quarantine>(sha256) {
            Ok(record) => record.map(|q| q.reason),
            Err(error) => {
                // Unreadable: the version starts quarantined rather than trusted.
                tracing::error!(%error, sha256, "cannot read a driver version's quarantine");
                Some(format!("its quarantine record cannot be read: {error}"))
            }
        }
    }

    fn quarantine(&self, identity: &runtime::LoadedIdentity, reason: &str) {
        let record = crate::model::Quarantine {
            sha256: identity.sha256.clone(),
            driver: identity.name.to_string(),
            version: identity.version.clone(),
            reason: reason.to_owned(),
            at: crate::ids::now(),
        };
        let mut batch = Batch::new();
        batch.put(&record);
        if let Err(error) = batch.commit(&*self.0).and_then(|()| self.0.flush()) {
            tracing::error!(%error, driver = %identity.name, "cannot keep a quarantine; it lasts until the host restarts");
        }
    }

    fn release(&self, sha256: &str) {
        let mut batch = Batch::new();
        batch.delete::<crate::model::Quarantine>(sha256);
        if let Err(error) = batch.commit(&*self.0).and_then(|()| self.0.flush()) {
            tracing::error!(%error, sha256, "cannot remove a released quarantine");
        }
    }
}
