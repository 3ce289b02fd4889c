//! The drivers a host serves, and their lifecycle: upload, activate, roll back, drain, disable,
//! delete — while the host runs.
//!
//! Each driver name (one Octavia provider) has any number of uploaded versions, identified by
//! SHA-256, of which at most one is *active*: it takes every new call. Swapping the active
//! version replaces one `Arc` in a map under a short write lock; calls already running hold a
//! clone of the old [`LoadedDriver`] and finish on it, so no call fails because of a swap.
//!
//! A version is validated before it is stored (trust, compile, instantiate, `capabilities`, the
//! WIT version, `validate-flavor` on every flavor profile that names it) and again before it is
//! activated. Records live in the store (`drivers`), the component bytes beside them
//! (`driver_blobs`, by SHA-256, checked against their key at every load). Every change is
//! recorded in the audit log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use sha2::{Digest, Sha256};

use crate::audit::{self, AuditSink};
use crate::integrity::{self, Trust};
use crate::model::{Canary, DriverRecord, DriverVersion, FlavorProfile};
use crate::runtime::{self, LoadedDriver, Runtime};
use crate::store::{Batch, Kind, Store, StoreExt, Write};

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The component is not acceptable: not a driver, refused by trust, fails a check.
    #[error("{0}")]
    Invalid(String),
    #[error("this host's drivers are fixed at start; it does not manage driver versions")]
    Unmanaged,
    #[error("storage: {0}")]
    Storage(String),
}

pub type Result<T, E = LifecycleError> = std::result::Result<T, E>;

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

/// What the registry needs to change drivers: where to compile, whom to trust, where to keep.
struct Manager {
    runtime: Runtime,
    trust: Trust,
    store: Arc<dyn Store>,
    audit: Arc<dyn AuditSink>,
    /// One lifecycle change at a time.
    changes: Mutex<()>,
    /// Whether uploads must pass the conformance kit.
    conformance: bool,
}

/// The drivers the host serves, by name. Each active version is one Octavia provider.
#[derive(Default)]
pub struct Drivers {
    lines: RwLock<BTreeMap<String, Line>>,
    manager: Option<Manager>,
}

/// What happened to one file of the driver folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOutcome {
    /// Uploaded and activated.
    Activated {
        name: String,
        version: String,
        sha256: String,
    },
    /// Already known; nothing to do.
    Known {
        sha256: String,
    },
    Refused {
        reason: String,
    },
}

impl Drivers {
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
                    versions: vec![version_of(&driver, "fixed", None, None)],
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
            changes: Mutex::new(()),
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
        })
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

    /// Validates a component and stores it as a new, inactive version. `profiles` are the
    /// flavor profiles to check it against (those naming its driver are checked).
    pub fn upload(
        &self,
        bytes: &[u8],
        signature: Option<&str>,
        source: &str,
        profiles: &[FlavorProfile],
    ) -> Result<(DriverRecord, DriverVersion)> {
        let manager = self.manager()?;
        let _change = manager.lock();
        self.upload_locked(manager, bytes, signature, source, profiles)
    }

    fn upload_locked(
        &self,
        manager: &Manager,
        bytes: &[u8],
        signature: Option<&str>,
        source: &str,
        profiles: &[FlavorProfile],
    ) -> Result<(DriverRecord, DriverVersion)> {
        let sha256 = hex::encode(Sha256::digest(bytes));
        // The refusal, audited with `detail` (what the component answered, bounded and on one
        // line) when the answer to the uploader leaves it out.
        let refuse_with = |reason: String, detail: Option<String>| {
            let reason = crate::runtime::printable(&reason, 2048);
            let detail = detail.map_or_else(
                || reason.clone(),
                |detail| format!("{reason}: {}", crate::runtime::printable(&detail, 8192)),
            );
            manager.audit_event(
                "",
                None,
                "lifecycle.refused",
                Some(format!("{source} ({sha256})")),
                audit::Outcome::Denied,
                detail,
            );
            LifecycleError::Invalid(reason)
        };
        let refuse = |reason: String| refuse_with(reason, None);
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(refuse(format!(
                "the component is {} bytes, more than the {MAX_COMPONENT_BYTES}-byte limit",
                bytes.len()
            )));
        }
        if let Some((name, version)) = self.find_sha(&sha256) {
            return Err(LifecycleError::Conflict(format!(
                "this component (SHA-256 {sha256}) is already uploaded as {name} {version}"
            )));
        }
        let accepted = manager
            .trust
            .check(bytes, signature)
            .map_err(|e| refuse(format!("refused: {e}")))?;
        // Until every check passed, the component runs cut off from the live state and devices
        // of the name it claims: nothing an unapproved component does touches them.
        let isolated = manager
            .runtime
            .load_isolated(bytes, &format!("{source} ({})", &sha256[..12]))
            .map_err(|e| refuse(e.to_string()))?;
        let name = isolated.name().to_string();
        // A name belongs to the key that signed its first trusted version.
        let publisher = self.record(&name).and_then(|record| record.publisher);
        if let Some(owner) = &publisher
            && accepted.signed_by.as_ref() != Some(owner)
        {
            let by = match &accepted.signed_by {
                Some(key) => format!("signed by {key}"),
                None => "unsigned".to_owned(),
            };
            return Err(refuse(format!(
                "the driver name {name} belongs to the publisher key {owner}; this component is \
                 {by} (an admin may hand the name over: PUT /v2/admin/drivers/{name}/publisher)"
            )));
        }
        check(&isolated, profiles).map_err(&refuse)?;
        if manager.conformance {
            let report = crate::conformance::check(&isolated);
            if !report.passed() {
                // The checks by name only: what the component answered stays out of the
                // answer (it is in the audit record, and `lbaasd driver check` shows it).
                let failed = report.failed_checks();
                return Err(refuse_with(
                    format!(
                        "it fails {} of the conformance kit's {} checks: {} (what the driver \
                         answered is in the audit log, lifecycle.refused; `lbaasd driver check \
                         FILE` runs the kit locally)",
                        failed.len(),
                        report.checks.len(),
                        failed.join("; ")
                    ),
                    Some(report.failures().join("; ")),
                ));
            }
        }
        let driver = manager
            .runtime
            .bind(&isolated)
            .map_err(|e| refuse(e.to_string()))?;
        let version = version_of(
            &driver,
            source,
            signature.map(str::to_owned),
            accepted.signed_by,
        );
        let mut lines = self.write();
        let line = lines.entry(name.clone()).or_insert_with(|| {
            Line::new(DriverRecord {
                name: name.clone(),
                active: None,
                previous: Vec::new(),
                draining: false,
                canary: None,
                publisher: None,
                versions: Vec::new(),
            })
        });
        let mut record = line.record.clone();
        record.versions.push(version.clone());
        if record.publisher.is_none() {
            record.publisher.clone_from(&version.signed_by);
        }
        let mut batch = Batch::new();
        batch.put(&record);
        let mut writes = batch.writes().to_vec();
        writes.push(Write::Put {
            kind: Kind::DriverBlob,
            id: sha256.clone(),
            bytes: bytes.to_vec(),
        });
        manager.commit(&writes)?;
        line.record = record.clone();
        line.loaded.insert(sha256.clone(), driver);
        drop(lines);
        manager.audit_event(
            &name,
            Some(&version),
            "lifecycle.upload",
            Some(source.to_owned()),
            audit::Outcome::Ok,
            format!("{} bytes", bytes.len()),
        );
        tracing::info!(driver = %name, version = %version.version, %sha256, source, "driver version uploaded");
        Ok((record, version))
    }

    fn find_sha(&self, sha256: &str) -> Option<(String, String)> {
        self.read().values().find_map(|line| {
            line.record
                .version(sha256)
                .map(|v| (line.record.name.clone(), v.version.clone()))
        })
    }

    /// Makes `reference` (a SHA-256, a unique prefix of one, or a version string) the active
    /// version of `name`, after checking it again. The previous active version becomes the
    /// rollback target.
    pub fn activate(
        &self,
        name: &str,
        reference: &str,
        by: &str,
        profiles: &[FlavorProfile],
    ) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let record = self.record_of(name)?;
        let sha = resolve(&record, reference)?;
        self.switch(manager, name, &sha, by, profiles, Switch::Activate)
    }

    /// Goes back to the version active before the current one.
    pub fn rollback(
        &self,
        name: &str,
        by: &str,
        profiles: &[FlavorProfile],
    ) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let record = self.record_of(name)?;
        if let Some(canary) = &record.canary {
            // Rolling back a canary ends it: the active version takes every placement again.
            let version = record.version(&canary.sha256).cloned();
            let mut updated = record.clone();
            updated.canary = None;
            self.store_record(manager, updated, |line| line.canary = None)?;
            manager.audit_event(
                name,
                version.as_ref(),
                "lifecycle.rollback",
                Some(by.to_owned()),
                audit::Outcome::Ok,
                "canary ended".into(),
            );
            return self.record_of(name);
        }
        let sha = record
            .previous
            .iter()
            .rev()
            .find(|sha| record.version(sha).is_some_and(|v| !v.disabled))
            .cloned()
            .ok_or_else(|| {
                LifecycleError::Conflict(format!(
                    "driver {name} has no earlier version to roll back to"
                ))
            })?;
        self.switch(manager, name, &sha, by, profiles, Switch::Rollback)
    }

    fn record_of(&self, name: &str) -> Result<DriverRecord> {
        self.record(name)
            .ok_or_else(|| LifecycleError::NotFound(format!("Driver {name} could not be found.")))
    }

    /// Everything a version must pass before it serves: not disabled, not already active,
    /// loadable, not quarantined, the upload checks again, and (when `migrate`) the state
    /// migration from the active version.
    fn prepare(
        &self,
        manager: &Manager,
        name: &str,
        sha: &str,
        event: &str,
        profiles: &[FlavorProfile],
        migrate: bool,
    ) -> Result<(DriverRecord, DriverVersion, LoadedDriver)> {
        let record = self.record_of(name)?;
        let version = record
            .version(sha)
            .cloned()
            .ok_or_else(|| LifecycleError::NotFound(format!("no version {sha} of {name}")))?;
        if version.disabled {
            return Err(LifecycleError::Conflict(format!(
                "{name} {} ({sha}) is disabled; enable it first",
                version.version
            )));
        }
        if record.active.as_deref() == Some(sha) {
            return Err(LifecycleError::Conflict(format!(
                "{name} {} ({sha}) is already active",
                version.version
            )));
        }
        let loaded = self
            .read()
            .get(name)
            .and_then(|l| l.loaded.get(sha).cloned());
        let driver = match loaded {
            Some(driver) => driver,
            None => manager.load_stored(&record, sha)?,
        };
        let refused = |reason: String| {
            manager.audit_event(
                name,
                Some(&version),
                "lifecycle.refused",
                Some(event.to_owned()),
                audit::Outcome::Denied,
                reason.clone(),
            );
            LifecycleError::Invalid(format!(
                "{name} {} was not activated: {reason}",
                version.version
            ))
        };
        if let Some(reason) = driver.quarantined() {
            return Err(refused(format!("it is quarantined ({reason})")));
        }
        check(&driver, profiles).map_err(&refused)?;
        if migrate {
            // The state the active version left carries over; the new one converts it first.
            let from = self
                .read()
                .get(name)
                .and_then(|line| line.active.as_ref().map(|d| d.identity().version.clone()))
                .unwrap_or_default();
            driver
                .migrate_state(&from)
                .map_err(|e| refused(format!("its state migration failed: {e}")))?;
        }
        Ok((record, version, driver))
    }

    fn switch(
        &self,
        manager: &Manager,
        name: &str,
        sha: &str,
        by: &str,
        profiles: &[FlavorProfile],
        how: Switch,
    ) -> Result<DriverRecord> {
        // A promoted canary migrated its state when it started.
        let migrate = !matches!(how, Switch::Promote);
        let (record, version, driver) =
            self.prepare(manager, name, sha, how.event(), profiles, migrate)?;
        let mut updated = record.clone();
        match how {
            Switch::Activate | Switch::Promote => {
                if let Some(old) = updated.active.take() {
                    updated.previous.retain(|s| s != &old);
                    updated.previous.push(old);
                }
            }
            Switch::Rollback => {}
        }
        updated.previous.retain(|s| s != sha);
        updated.active = Some(sha.to_owned());
        updated.canary = None;
        let now = crate::ids::now();
        if let Some(v) = updated.versions.iter_mut().find(|v| v.sha256 == sha) {
            v.activated_at = Some(now);
        }
        let mut batch = Batch::new();
        batch.put(&updated);
        manager.commit(batch.writes())?;
        {
            let mut lines = self.write();
            if let Some(line) = lines.get_mut(name) {
                line.record = updated.clone();
                line.loaded.insert(sha.to_owned(), driver.clone());
                // The swap: new calls take this version; running calls keep theirs.
                line.active = Some(driver);
                line.canary = None;
            }
        }
        manager.audit_event(
            name,
            Some(&version),
            how.event(),
            Some(by.to_owned()),
            audit::Outcome::Ok,
            format!("active: {} ({sha})", version.version),
        );
        tracing::info!(driver = name, version = %version.version, sha256 = sha, "driver version {}", how.done());
        Ok(updated)
    }

    /// Starts a canary: `percent` (1..=99) of new placements of `name` go to `reference`,
    /// which serves the load balancers it placed; the active version serves the rest.
    /// Checked (and its state migrated) as an activation is.
    pub fn start_canary(
        &self,
        name: &str,
        reference: &str,
        percent: u8,
        by: &str,
        profiles: &[FlavorProfile],
    ) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        if !(1..=99).contains(&percent) {
            return Err(LifecycleError::Invalid(format!(
                "a canary takes 1 to 99 percent of placements, not {percent}"
            )));
        }
        let record = self.record_of(name)?;
        if record.active.is_none() {
            return Err(LifecycleError::Conflict(format!(
                "driver {name} has no active version for a canary to run beside; activate one"
            )));
        }
        let sha = resolve(&record, reference)?;
        let (record, version, driver) =
            self.prepare(manager, name, &sha, "lifecycle.canary", profiles, true)?;
        let mut updated = record;
        updated.canary = Some(Canary {
            sha256: sha.clone(),
            percent,
        });
        self.store_record(manager, updated, |line| {
            line.loaded.insert(sha.clone(), driver.clone());
            line.canary = Some((driver, percent));
        })?;
        manager.audit_event(
            name,
            Some(&version),
            "lifecycle.canary",
            Some(by.to_owned()),
            audit::Outcome::Ok,
            format!("{percent}% of placements"),
        );
        self.record_of(name)
    }

    /// Makes the canary the active version.
    pub fn promote(
        &self,
        name: &str,
        by: &str,
        profiles: &[FlavorProfile],
    ) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let canary = self.record_of(name)?.canary.ok_or_else(|| {
            LifecycleError::Conflict(format!("driver {name} has no canary to promote"))
        })?;
        self.switch(manager, name, &canary.sha256, by, profiles, Switch::Promote)
    }

    /// Drains `name` (no new placements; its load balancers keep working) or ends the drain.
    pub fn set_draining(&self, name: &str, draining: bool, by: &str) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let mut record = self.record_of(name)?;
        if record.draining == draining {
            return Err(LifecycleError::Conflict(format!(
                "driver {name} is {} draining",
                if draining { "already" } else { "not" }
            )));
        }
        record.draining = draining;
        self.store_record(manager, record, |_| {})?;
        manager.audit_event(
            name,
            None,
            if draining {
                "lifecycle.drain"
            } else {
                "lifecycle.undrain"
            },
            Some(by.to_owned()),
            audit::Outcome::Ok,
            String::new(),
        );
        self.record_of(name)
    }

    /// Hands a driver name to another publisher key (or frees it: `None`): an admin's
    /// decision, audited. Versions already stored stay; new ones must be signed by the key.
    pub fn set_publisher(
        &self,
        name: &str,
        publisher: Option<String>,
        by: &str,
    ) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let mut record = self.record_of(name)?;
        let before = record.publisher.clone();
        record.publisher.clone_from(&publisher);
        self.store_record(manager, record, |_| {})?;
        manager.audit_event(
            name,
            None,
            "lifecycle.publisher",
            Some(by.to_owned()),
            audit::Outcome::Ok,
            format!(
                "publisher {} -> {}",
                before.as_deref().unwrap_or("none"),
                publisher.as_deref().unwrap_or("none")
            ),
        );
        self.record_of(name)
    }

    /// Disables (refused for activation) or enables a version. The active one cannot be
    /// disabled: activate another first.
    pub fn set_disabled(
        &self,
        name: &str,
        reference: &str,
        disabled: bool,
        by: &str,
    ) -> Result<DriverRecord> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let mut record = self.record_of(name)?;
        let sha = resolve(&record, reference)?;
        refuse_canary(&record, &sha)?;
        if disabled && record.active.as_deref() == Some(sha.as_str()) {
            return Err(LifecycleError::Conflict(format!(
                "{name} {sha} is the active version; activate or roll back to another first"
            )));
        }
        let Some(version) = record.versions.iter_mut().find(|v| v.sha256 == sha) else {
            return Err(LifecycleError::NotFound(format!(
                "no version {sha} of {name}"
            )));
        };
        if version.disabled == disabled {
            return Err(LifecycleError::Conflict(format!(
                "{name} {} is {} disabled",
                version.version,
                if disabled { "already" } else { "not" }
            )));
        }
        version.disabled = disabled;
        let version = version.clone();
        self.store_record(manager, record, |line| {
            if disabled {
                line.loaded.remove(&sha);
            }
        })?;
        manager.audit_event(
            name,
            Some(&version),
            if disabled {
                "lifecycle.disable"
            } else {
                "lifecycle.enable"
            },
            Some(by.to_owned()),
            audit::Outcome::Ok,
            String::new(),
        );
        self.record_of(name)
    }

    /// Deletes a version and its bytes. The active version may go only when `in_use` is false
    /// (no load balancer of the driver is left); the driver then stops being a provider.
    pub fn delete_version(
        &self,
        name: &str,
        reference: &str,
        in_use: bool,
        by: &str,
    ) -> Result<Option<DriverRecord>> {
        let manager = self.manager()?;
        let _change = manager.lock();
        let mut record = self.record_of(name)?;
        let sha = resolve(&record, reference)?;
        refuse_canary(&record, &sha)?;
        let active = record.active.as_deref() == Some(sha.as_str());
        if active && in_use {
            return Err(LifecycleError::Conflict(format!(
                "{name} {sha} is the active version and load balancers need it; activate another \
                 version first or delete them"
            )));
        }
        let Some(position) = record.versions.iter().position(|v| v.sha256 == sha) else {
            return Err(LifecycleError::NotFound(format!(
                "no version {sha} of {name}"
            )));
        };
        let version = record.versions.remove(position);
        record.previous.retain(|s| s != &sha);
        if active {
            record.active = None;
        }
        let mut writes = vec![Write::Delete {
            kind: Kind::DriverBlob,
            id: sha.clone(),
        }];
        let remaining = if record.versions.is_empty() {
            writes.push(Write::Delete {
                kind: Kind::Driver,
                id: name.to_owned(),
            });
            None
        } else {
            let mut batch = Batch::new();
            batch.put(&record);
            writes.extend(batch.writes().iter().cloned());
            Some(record.clone())
        };
        manager.commit(&writes)?;
        {
            let mut lines = self.write();
            match &remaining {
                None => {
                    lines.remove(name);
                }
                Some(record) => {
                    if let Some(line) = lines.get_mut(name) {
                        line.record = record.clone();
                        line.loaded.remove(&sha);
                        if active {
                            line.active = None;
                        }
                    }
                }
            }
        }
        manager.audit_event(
            name,
            Some(&version),
            "lifecycle.delete",
            Some(by.to_owned()),
            audit::Outcome::Ok,
            String::new(),
        );
        Ok(remaining)
    }

    fn store_record(
        &self,
        manager: &Manager,
        record: DriverRecord,
        also: impl FnOnce(&mut Line),
    ) -> Result<()> {
        let mut batch = Batch::new();
        batch.put(&record);
        manager.commit(batch.writes())?;
        let mut lines = self.write();
        if let Some(line) = lines.get_mut(&record.name) {
            line.record = record;
            also(line);
        }
        Ok(())
    }

    /// Directory mode: uploads and activates each file not seen before (a signature beside it
    /// as `FILE.wasm.sig`); a file already uploaded is activated only if its driver has no
    /// active version. A file that fails any check is refused, audited and logged; the running
    /// version stays.
    pub fn sync_files(&self, files: &[PathBuf], profiles: &[FlavorProfile]) -> Vec<FileOutcome> {
        let Ok(manager) = self.manager() else {
            return Vec::new();
        };
        files
            .iter()
            .map(|path| {
                let outcome = self.sync_file(manager, path, profiles);
                match &outcome {
                    Ok(FileOutcome::Activated {
                        name,
                        version,
                        sha256,
                    }) => {
                        tracing::info!(file = %path.display(), driver = name, version, sha256, "driver file activated");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::error!(file = %path.display(), %error, "driver file refused; the running version stays");
                    }
                }
                outcome.unwrap_or_else(|error| FileOutcome::Refused {
                    reason: error.to_string(),
                })
            })
            .collect()
    }

    fn sync_file(
        &self,
        manager: &Manager,
        path: &Path,
        profiles: &[FlavorProfile],
    ) -> Result<FileOutcome> {
        let bytes = std::fs::read(path)
            .map_err(|e| LifecycleError::Invalid(format!("cannot read {}: {e}", path.display())))?;
        let signature = std::fs::read_to_string(integrity::signature_path(path)).ok();
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let by = format!("directory {}", path.display());
        let _change = manager.lock();
        let (name, version) = match self.find_sha(&sha256) {
            Some((name, version)) => {
                let inactive = self.read().get(&name).is_some_and(|l| l.active.is_none());
                if !inactive {
                    return Ok(FileOutcome::Known { sha256 });
                }
                (name, version)
            }
            None => {
                let source = format!("directory {}", path.display());
                let (record, version) =
                    self.upload_locked(manager, &bytes, signature.as_deref(), &source, profiles)?;
                (record.name, version.version)
            }
        };
        match self.switch(manager, &name, &sha256, &by, profiles, Switch::Activate) {
            Ok(_) | Err(LifecycleError::Conflict(_)) => Ok(FileOutcome::Activated {
                name,
                version,
                sha256,
            }),
            Err(error) => Err(error),
        }
    }
}

#[derive(Clone, Copy)]
enum Switch {
    Activate,
    Rollback,
    Promote,
}

impl Switch {
    fn event(self) -> &'static str {
        match self {
            Switch::Activate => "lifecycle.activate",
            Switch::Rollback => "lifecycle.rollback",
            Switch::Promote => "lifecycle.promote",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Switch::Activate => "activated",
            Switch::Rollback => "rolled back to",
            Switch::Promote => "promoted",
        }
    }
}

impl Manager {
    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.changes.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn commit(&self, writes: &[Write]) -> Result<()> {
        self.store.commit(writes).map_err(storage)?;
        self.store.flush().map_err(storage)
    }

    /// Loads a stored version: its bytes must still match their SHA-256, and pass the
    /// operator's trust.
    fn load_stored(&self, record: &DriverRecord, sha: &str) -> Result<LoadedDriver> {
        let version = record.version(sha).ok_or_else(|| {
            LifecycleError::NotFound(format!("no version {sha} of {}", record.name))
        })?;
        let bytes = self
            .store
            .get(Kind::DriverBlob, sha)
            .map_err(storage)?
            .ok_or_else(|| {
                LifecycleError::Invalid(format!("the bytes of {} {sha} are missing", record.name))
            })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha {
            return Err(LifecycleError::Invalid(format!(
                "the stored bytes of {} {sha} hash to {actual}: refusing to run them",
                record.name
            )));
        }
        self.trust
            .check(&bytes, version.signature.as_deref())
            .map_err(|e| LifecycleError::Invalid(format!("refused: {e}")))?;
        let driver = self
            .runtime
            .load(&bytes, &format!("{} {}", record.name, version.version))
            .map_err(|e| LifecycleError::Invalid(e.to_string()))?;
        if driver.name().as_str() != record.name {
            return Err(LifecycleError::Invalid(format!(
                "stored version {sha} reports driver {}, not {}",
                driver.name(),
                record.name
            )));
        }
        Ok(driver)
    }

    fn audit_event(
        &self,
        driver: &str,
        version: Option<&DriverVersion>,
        function: &str,
        target: Option<String>,
        outcome: audit::Outcome,
        detail: String,
    ) {
        self.audit.append(vec![audit::Event {
            driver: driver.to_owned(),
            version: version.map(|v| v.version.clone()).unwrap_or_default(),
            sha256: version.map(|v| v.sha256.clone()).unwrap_or_default(),
            function: function.to_owned(),
            target,
            bytes: version.map(|v| v.size).unwrap_or_default(),
            outcome,
            duration_us: 0,
            detail: (!detail.is_empty()).then_some(detail),
        }]);
    }
}

fn version_of(
    driver: &LoadedDriver,
    source: &str,
    signature: Option<String>,
    signed_by: Option<String>,
) -> DriverVersion {
    let identity = driver.identity();
    DriverVersion {
        sha256: identity.sha256.clone(),
        version: identity.version.clone(),
        wit: Some(driver.contract().to_owned()),
        size: driver.size() as u64,
        uploaded_at: crate::ids::now(),
        source: source.to_owned(),
        signature,
        signed_by,
        disabled: false,
        activated_at: None,
    }
}

/// A canary version stays until the canary ends (promote or roll back).
fn refuse_canary(record: &DriverRecord, sha: &str) -> Result<()> {
    if record.canary.as_ref().is_some_and(|c| c.sha256 == sha) {
        return Err(LifecycleError::Conflict(format!(
            "{} {sha} runs as a canary; promote it or roll it back first",
            record.name
        )));
    }
    Ok(())
}

/// A SHA-256, a unique prefix of one (8 hex digits or more), or a version string.
fn resolve(record: &DriverRecord, reference: &str) -> Result<String> {
    let reference = reference.trim();
    let by_sha: Vec<&DriverVersion> = if reference.len() >= 8 {
        record
            .versions
            .iter()
            .filter(|v| v.sha256.starts_with(&reference.to_ascii_lowercase()))
            .collect()
    } else {
        Vec::new()
    };
    let matches = if by_sha.is_empty() {
        record
            .versions
            .iter()
            .filter(|v| v.version == reference)
            .collect()
    } else {
        by_sha
    };
    match matches.as_slice() {
        [one] => Ok(one.sha256.clone()),
        [] => Err(LifecycleError::NotFound(format!(
            "driver {} has no version `{reference}`",
            record.name
        ))),
        many => Err(LifecycleError::Conflict(format!(
            "`{reference}` names {} versions of {} ({}); use the SHA-256",
            many.len(),
            record.name,
            many.iter()
                .map(|v| &v.sha256[..12])
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The checks a version passes before it is stored or activated, beyond loading: it can be
/// instantiated again, and accepts every flavor profile that names it.
fn check(driver: &LoadedDriver, profiles: &[FlavorProfile]) -> Result<(), String> {
    driver
        .check_instantiate()
        .map_err(|e| format!("it cannot be instantiated: {e}"))?;
    let name = driver.name().as_str();
    for profile in profiles {
        if !crate::placement::profile_providers(profile)
            .iter()
            .any(|p| p == name)
        {
            continue;
        }
        let flavor = crate::convert::flavor(&profile.name, &profile.flavor_data)
            .map_err(|e| format!("flavor profile {}: {e}", profile.name))?;
        driver.validate_flavor(&flavor).map_err(|e| match e {
            runtime::Error::Refused { error, .. } => format!(
                "it rejects flavor profile {} ({}): {}",
                profile.name,
                profile.id,
                runtime::describe_driver_error(&error)
            ),
            other => format!("flavor profile {}: {other}", profile.name),
        })?;
    }
    Ok(())
}

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

/// The `.wasm` files of `dir`, oldest first (so the newest file of a driver ends active).
pub fn wasm_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, Fingerprint)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if path.extension().is_none_or(|ext| ext != "wasm") {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let fingerprint = Fingerprint {
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        files.push((path, fingerprint));
    }
    files.sort_by(|a, b| (a.1.modified, &a.0).cmp(&(b.1.modified, &b.0)));
    Ok(files)
}

/// What tells a changed file from an unchanged one without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    len: u64,
    modified: Option<std::time::SystemTime>,
}

/// Directory mode: the driver folder and what was last seen in it.
pub struct FolderWatch {
    dir: PathBuf,
    seen: HashMap<PathBuf, Fingerprint>,
}

impl FolderWatch {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            seen: HashMap::new(),
        }
    }

    /// Hands every new or changed file to the registry; what a file became is logged and
    /// audited there. A file is retried only once it changes again.
    pub fn scan(&mut self, drivers: &Drivers, profiles: &[FlavorProfile]) -> Vec<FileOutcome> {
        let files = match wasm_files(&self.dir) {
            Ok(files) => files,
            Err(error) => {
                tracing::error!(dir = %self.dir.display(), %error, "cannot read the driver folder");
                return Vec::new();
            }
        };
        let changed: Vec<PathBuf> = files
            .iter()
            .filter(|(path, print)| self.seen.get(path) != Some(print))
            .map(|(path, _)| path.clone())
            .collect();
        self.seen = files.into_iter().collect();
        if changed.is_empty() {
            return Vec::new();
        }
        drivers.sync_files(&changed, profiles)
    }

    fn has_changes(&self) -> bool {
        wasm_files(&self.dir).is_ok_and(|files| {
            files.len() != self.seen.len()
                || files
                    .iter()
                    .any(|(path, print)| self.seen.get(path) != Some(print))
        })
    }
}

/// Looks at the driver folder every `interval` while the host serves.
pub async fn watch(
    api: Arc<crate::plane::ControlPlane>,
    folder: FolderWatch,
    interval: std::time::Duration,
    mut stop: crate::tasks::Stop,
) {
    let folder = Arc::new(Mutex::new(folder));
    let lock = |folder: &Mutex<FolderWatch>| {
        // A scan that panicked leaves nothing half-done worth refusing to look again.
        folder
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .has_changes()
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.requested() => return,
            _ = ticks.tick() => {}
        }
        let probe = folder.clone();
        let changed = tokio::task::spawn_blocking(move || lock(&probe)).await;
        if !matches!(changed, Ok(true)) {
            continue;
        }
        let scan = folder.clone();
        let result = api
            .read(move |api, snapshot| {
                let mut folder = scan.lock().unwrap_or_else(|e| e.into_inner());
                folder.scan(&api.drivers, &snapshot.flavorprofiles.to_vec());
                Ok::<_, crate::Error>(())
            })
            .await;
        if let Err(error) = result {
            tracing::error!(%error, "cannot look at the driver folder");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> DriverRecord {
        let version = |sha: &str, version: &str| DriverVersion {
            sha256: sha.repeat(64 / sha.len()),
            version: version.into(),
            wit: None,
            size: 1,
            uploaded_at: "now".into(),
            source: "upload".into(),
            signature: None,
            signed_by: None,
            disabled: false,
            activated_at: None,
        };
        DriverRecord {
            name: "haproxy".into(),
            active: None,
            previous: Vec::new(),
            draining: false,
            canary: None,
            publisher: None,
            versions: vec![
                version("ab", "1.0.0"),
                version("ac", "1.1.0"),
                version("cd", "1.1.0"),
            ],
        }
    }

    #[test]
    fn versions_are_named_by_digest_prefix_or_unique_version() {
        let record = record();
        assert_eq!(
            resolve(&record, "1.0.0").expect("by version"),
            "ab".repeat(32)
        );
        assert_eq!(
            resolve(&record, "cdcdcdcd").expect("by prefix"),
            "cd".repeat(32)
        );
        assert_eq!(
            resolve(&record, &"AC".repeat(32)).expect("whole digest, any case"),
            "ac".repeat(32)
        );
        let ambiguous = resolve(&record, "1.1.0").expect_err("two builds of 1.1.0");
        assert!(
            matches!(ambiguous, LifecycleError::Conflict(_)),
            "{ambiguous}"
        );
        assert!(ambiguous.to_string().contains("use the SHA-256"));
        // A short prefix is not taken as a digest: too easy to hit the wrong version.
        assert!(matches!(
            resolve(&record, "ab"),
            Err(LifecycleError::NotFound(_))
        ));
        assert!(matches!(
            resolve(&record, "2.0.0"),
            Err(LifecycleError::NotFound(_))
        ));
    }
}
