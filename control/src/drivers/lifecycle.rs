//! The driver lifecycle as a state machine on the driver record: each operator step either is
//! refused (with the reason an operator reads) or becomes a [`Transition`] — the record
//! afterwards, the version that must still pass its checks, what the registry serves once the
//! step is committed, and the audit event. Pure: no loading, no storage, no clock.

use lbaas_core::model::{Canary, DriverRecord, DriverVersion};

/// A lifecycle step refused, or one the host cannot take: one variant per decision, so callers
/// and tests tell refusals apart by kind, not by their words.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("Driver {name} could not be found.")]
    DriverNotFound { name: String },
    /// No version of the driver is named so (SHA-256, prefix or version string).
    #[error("driver {name} has no version `{reference}`")]
    NoSuchVersion { name: String, reference: String },
    /// A prefix or version string that names several versions.
    #[error("`{reference}` names {} versions of {name} ({}); use the SHA-256", shas.len(), shas.join(", "))]
    Ambiguous {
        name: String,
        reference: String,
        shas: Vec<String>,
    },
    #[error("this component (SHA-256 {sha256}) is already uploaded as {name} {version}")]
    AlreadyUploaded {
        name: String,
        version: String,
        sha256: String,
    },
    #[error("driver {name} has no earlier version to roll back to")]
    NoEarlierVersion { name: String },
    #[error("a canary takes 1 to 99 percent of placements, not {percent}")]
    CanaryShare { percent: u8 },
    #[error("driver {name} has no active version for a canary to run beside; activate one")]
    NoActiveVersion { name: String },
    #[error("driver {name} has no canary to promote")]
    NoCanary { name: String },
    /// A drain of a draining driver, or an undrain of one that is not.
    #[error("driver {name} is {} draining", if *draining { "already" } else { "not" })]
    DrainingAlready { name: String, draining: bool },
    #[error("{name} {sha256} is the active version; activate or roll back to another first")]
    DisablingActive { name: String, sha256: String },
    /// A disable of a disabled version, or an enable of one that is not.
    #[error("{name} {version} is {} disabled", if *disabled { "already" } else { "not" })]
    DisabledAlready {
        name: String,
        version: String,
        disabled: bool,
    },
    #[error(
        "{name} {sha256} is the active version and load balancers need it; activate another \
         version first or delete them"
    )]
    InUse { name: String, sha256: String },
    #[error("{name} {version} ({sha256}) is disabled; enable it first")]
    VersionDisabled {
        name: String,
        version: String,
        sha256: String,
    },
    #[error("{name} {version} ({sha256}) is already active")]
    AlreadyActive {
        name: String,
        version: String,
        sha256: String,
    },
    #[error("{name} {sha256} runs as a canary; promote it or roll it back first")]
    RunsAsCanary { name: String, sha256: String },
    /// The component is not acceptable: not a driver, refused by trust, fails a check. The
    /// reason is the admission's own words.
    #[error("{0}")]
    Refused(String),
    #[error("this host's drivers are fixed at start; it does not manage driver versions")]
    Unmanaged,
    #[error("storage: {0}")]
    Storage(String),
}

/// The answer a [`LifecycleError`] is, for those who render it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The driver or version does not exist (`404`).
    NotFound,
    /// The step does not fit the driver's state (`409`).
    Conflict,
    /// The request or the component is not acceptable (`400`).
    Invalid,
    /// The host's own failure (`500`).
    Failed,
}

impl LifecycleError {
    pub fn answer(&self) -> Answer {
        use LifecycleError::*;
        match self {
            DriverNotFound { .. } | NoSuchVersion { .. } => Answer::NotFound,
            CanaryShare { .. } | Refused(_) => Answer::Invalid,
            Storage(_) => Answer::Failed,
            Ambiguous { .. }
            | AlreadyUploaded { .. }
            | NoEarlierVersion { .. }
            | NoActiveVersion { .. }
            | NoCanary { .. }
            | DrainingAlready { .. }
            | DisablingActive { .. }
            | DisabledAlready { .. }
            | InUse { .. }
            | VersionDisabled { .. }
            | AlreadyActive { .. }
            | RunsAsCanary { .. }
            | Unmanaged => Answer::Conflict,
        }
    }
}

pub type Result<T, E = LifecycleError> = std::result::Result<T, E>;

/// What an operator asks of a driver. Versions are named by a SHA-256, a unique prefix of one
/// (8 hex digits or more), or a version string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A new version, admitted already: it is stored, inactive.
    Add(DriverVersion),
    Activate(String),
    /// Back to the version active before (or, during a canary, the end of the canary).
    Rollback,
    /// `percent` (1..=99) of new placements go to the version.
    Canary(String, u8),
    /// The canary becomes the active version.
    Promote,
    Drain,
    Undrain,
    /// Hands the name to another publisher key, or frees it.
    Publisher(Option<String>),
    Disable(String),
    Enable(String),
    Delete(String),
}

/// What a step is decided against besides the record.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Now, RFC 3339 (stamped on an activated version).
    pub now: String,
    /// Whether load balancers of the driver exist (its active version may not be deleted).
    pub in_use: bool,
}

/// A version that must load and pass the checks again before the step commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admit {
    pub sha256: String,
    /// Whether the version converts the active version's state first (`migrate-state`).
    pub migrate: bool,
}

/// What the registry serves once the step is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serving {
    Unchanged,
    /// The version takes every new call (the swap; running calls keep theirs).
    Active(String),
    /// The version takes its share of placements beside the active one.
    Canary(String, u8),
    /// The canary ends: the active version takes every placement again.
    CanaryEnded,
    /// The version is no longer kept loaded.
    Unloaded(String),
    /// The version is gone, and with it the active version when it was that one.
    Deleted {
        sha256: String,
        was_active: bool,
    },
    /// The driver's last version is gone: the driver is no longer a provider.
    Removed {
        sha256: String,
        was_active: bool,
    },
}

/// A step decided: everything the registry needs to commit and follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The record afterwards; `None` once its last version is deleted.
    pub record: Option<DriverRecord>,
    pub admit: Option<Admit>,
    pub serving: Serving,
    /// The audit event's function (`lifecycle.activate`) and detail, and the version it is
    /// about.
    pub event: &'static str,
    pub detail: String,
    pub version: Option<DriverVersion>,
}

impl Transition {
    fn new(record: DriverRecord, event: &'static str) -> Self {
        Self {
            record: Some(record),
            admit: None,
            serving: Serving::Unchanged,
            event,
            detail: String::new(),
            version: None,
        }
    }

    /// The SHA-256 whose stored bytes go with this step (a deleted version's).
    pub fn deleted_blob(&self) -> Option<&str> {
        match &self.serving {
            Serving::Deleted { sha256, .. } | Serving::Removed { sha256, .. } => Some(sha256),
            _ => None,
        }
    }

    /// Whether the step deletes the active version.
    pub fn deletes_active(&self) -> bool {
        matches!(
            self.serving,
            Serving::Deleted {
                was_active: true,
                ..
            } | Serving::Removed {
                was_active: true,
                ..
            }
        )
    }
}

/// The record of a driver name seen for the first time.
pub fn new_record(name: &str) -> DriverRecord {
    DriverRecord {
        name: name.to_owned(),
        active: None,
        previous: Vec::new(),
        draining: false,
        canary: None,
        publisher: None,
        versions: Vec::new(),
    }
}

/// Decides `step` on `record`.
pub fn decide(record: &DriverRecord, step: &Step, facts: &Facts) -> Result<Transition> {
    let name = &record.name;
    let mut next = record.clone();
    match step {
        Step::Add(version) => {
            if record.version(&version.sha256).is_some() {
                return Err(LifecycleError::AlreadyUploaded {
                    name: name.clone(),
                    version: version.version.clone(),
                    sha256: version.sha256.clone(),
                });
            }
            next.versions.push(version.clone());
            if next.publisher.is_none() {
                next.publisher.clone_from(&version.signed_by);
            }
            let mut transition = Transition::new(next, "lifecycle.upload");
            transition.detail = format!("{} bytes", version.size);
            transition.version = Some(version.clone());
            Ok(transition)
        }
        Step::Activate(reference) => {
            let sha = resolve(record, reference)?;
            switch(record, &sha, Switch::Activate, facts)
        }
        Step::Rollback => {
            if let Some(canary) = &record.canary {
                next.canary = None;
                let mut transition = Transition::new(next, "lifecycle.rollback");
                transition.serving = Serving::CanaryEnded;
                transition.detail = "canary ended".into();
                transition.version = record.version(&canary.sha256).cloned();
                return Ok(transition);
            }
            let sha = record
                .previous
                .iter()
                .rev()
                .find(|sha| record.version(sha).is_some_and(|v| !v.disabled))
                .cloned()
                .ok_or_else(|| LifecycleError::NoEarlierVersion { name: name.clone() })?;
            switch(record, &sha, Switch::Rollback, facts)
        }
        Step::Canary(reference, percent) => {
            if !(1..=99).contains(percent) {
                return Err(LifecycleError::CanaryShare { percent: *percent });
            }
            if record.active.is_none() {
                return Err(LifecycleError::NoActiveVersion { name: name.clone() });
            }
            let sha = resolve(record, reference)?;
            let version = activatable(record, &sha)?;
            next.canary = Some(Canary {
                sha256: sha.clone(),
                percent: *percent,
            });
            let mut transition = Transition::new(next, "lifecycle.canary");
            transition.admit = Some(Admit {
                sha256: sha.clone(),
                migrate: true,
            });
            transition.serving = Serving::Canary(sha, *percent);
            transition.detail = format!("{percent}% of placements");
            transition.version = Some(version.clone());
            Ok(transition)
        }
        Step::Promote => {
            let canary = record
                .canary
                .as_ref()
                .ok_or_else(|| LifecycleError::NoCanary { name: name.clone() })?;
            switch(record, &canary.sha256, Switch::Promote, facts)
        }
        Step::Drain | Step::Undrain => {
            let draining = matches!(step, Step::Drain);
            if record.draining == draining {
                return Err(LifecycleError::DrainingAlready {
                    name: name.clone(),
                    draining,
                });
            }
            next.draining = draining;
            Ok(Transition::new(
                next,
                if draining {
                    "lifecycle.drain"
                } else {
                    "lifecycle.undrain"
                },
            ))
        }
        Step::Publisher(publisher) => {
            next.publisher.clone_from(publisher);
            let mut transition = Transition::new(next, "lifecycle.publisher");
            transition.detail = format!(
                "publisher {} -> {}",
                record.publisher.as_deref().unwrap_or("none"),
                publisher.as_deref().unwrap_or("none")
            );
            Ok(transition)
        }
        Step::Disable(reference) | Step::Enable(reference) => {
            let disabled = matches!(step, Step::Disable(_));
            let sha = resolve(record, reference)?;
            refuse_canary(record, &sha)?;
            if disabled && record.active.as_deref() == Some(sha.as_str()) {
                return Err(LifecycleError::DisablingActive {
                    name: name.clone(),
                    sha256: sha,
                });
            }
            let version = next
                .versions
                .iter_mut()
                .find(|v| v.sha256 == sha)
                .ok_or_else(|| no_such_version(record, &sha))?;
            if version.disabled == disabled {
                return Err(LifecycleError::DisabledAlready {
                    name: name.clone(),
                    version: version.version.clone(),
                    disabled,
                });
            }
            version.disabled = disabled;
            let version = version.clone();
            let mut transition = Transition::new(
                next,
                if disabled {
                    "lifecycle.disable"
                } else {
                    "lifecycle.enable"
                },
            );
            if disabled {
                transition.serving = Serving::Unloaded(sha);
            }
            transition.version = Some(version);
            Ok(transition)
        }
        Step::Delete(reference) => {
            let sha = resolve(record, reference)?;
            refuse_canary(record, &sha)?;
            let was_active = record.active.as_deref() == Some(sha.as_str());
            if was_active && facts.in_use {
                return Err(in_use(name, &sha));
            }
            let position = next
                .versions
                .iter()
                .position(|v| v.sha256 == sha)
                .ok_or_else(|| no_such_version(record, &sha))?;
            let version = next.versions.remove(position);
            next.previous.retain(|s| s != &sha);
            if was_active {
                next.active = None;
            }
            let last = next.versions.is_empty();
            let mut transition = Transition::new(next, "lifecycle.delete");
            if last {
                transition.record = None;
                transition.serving = Serving::Removed {
                    sha256: sha,
                    was_active,
                };
            } else {
                transition.serving = Serving::Deleted {
                    sha256: sha,
                    was_active,
                };
            }
            transition.version = Some(version);
            Ok(transition)
        }
    }
}

/// The refusal to delete an active version load balancers still need.
pub fn in_use(name: &str, sha: &str) -> LifecycleError {
    LifecycleError::InUse {
        name: name.to_owned(),
        sha256: sha.to_owned(),
    }
}

#[derive(Clone, Copy)]
enum Switch {
    Activate,
    Rollback,
    Promote,
}

/// A version becomes the active one.
fn switch(record: &DriverRecord, sha: &str, how: Switch, facts: &Facts) -> Result<Transition> {
    let version = activatable(record, sha)?.clone();
    let mut next = record.clone();
    match how {
        Switch::Activate | Switch::Promote => {
            if let Some(old) = next.active.take() {
                next.previous.retain(|s| s != &old);
                next.previous.push(old);
            }
        }
        Switch::Rollback => {}
    }
    next.previous.retain(|s| s != sha);
    next.active = Some(sha.to_owned());
    next.canary = None;
    if let Some(v) = next.versions.iter_mut().find(|v| v.sha256 == sha) {
        v.activated_at = Some(facts.now.clone());
    }
    let event = match how {
        Switch::Activate => "lifecycle.activate",
        Switch::Rollback => "lifecycle.rollback",
        Switch::Promote => "lifecycle.promote",
    };
    let mut transition = Transition::new(next, event);
    // A promoted canary converted its state when it started.
    transition.admit = Some(Admit {
        sha256: sha.to_owned(),
        migrate: !matches!(how, Switch::Promote),
    });
    transition.serving = Serving::Active(sha.to_owned());
    transition.detail = format!("active: {} ({sha})", version.version);
    transition.version = Some(version);
    Ok(transition)
}

/// The version, if it may serve: known, enabled, not active already.
fn activatable<'r>(record: &'r DriverRecord, sha: &str) -> Result<&'r DriverVersion> {
    let name = &record.name;
    let version = record
        .version(sha)
        .ok_or_else(|| no_such_version(record, sha))?;
    let named = || (name.clone(), version.version.clone(), sha.to_owned());
    if version.disabled {
        let (name, version, sha256) = named();
        return Err(LifecycleError::VersionDisabled {
            name,
            version,
            sha256,
        });
    }
    if record.active.as_deref() == Some(sha) {
        let (name, version, sha256) = named();
        return Err(LifecycleError::AlreadyActive {
            name,
            version,
            sha256,
        });
    }
    Ok(version)
}

/// A canary version stays until the canary ends (promote or roll back).
fn refuse_canary(record: &DriverRecord, sha: &str) -> Result<()> {
    if record.canary.as_ref().is_some_and(|c| c.sha256 == sha) {
        return Err(LifecycleError::RunsAsCanary {
            name: record.name.clone(),
            sha256: sha.to_owned(),
        });
    }
    Ok(())
}

/// The refusal of a version `record` does not have.
pub fn no_such_version(record: &DriverRecord, reference: &str) -> LifecycleError {
    LifecycleError::NoSuchVersion {
        name: record.name.clone(),
        reference: reference.to_owned(),
    }
}

/// A SHA-256, a unique prefix of one (8 hex digits or more), or a version string.
pub fn resolve(record: &DriverRecord, reference: &str) -> Result<String> {
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
        [] => Err(no_such_version(record, reference)),
        many => Err(LifecycleError::Ambiguous {
            name: record.name.clone(),
            reference: reference.to_owned(),
            shas: many.iter().map(|v| v.sha256[..12].to_owned()).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(sha: &str, version: &str) -> DriverVersion {
        DriverVersion {
            sha256: sha.repeat(64 / sha.len()),
            version: version.into(),
            wit: None,
            size: 1,
            uploaded_at: "then".into(),
            source: "upload".into(),
            signature: None,
            signed_by: None,
            disabled: false,
            activated_at: None,
        }
    }

    fn sha(prefix: &str) -> String {
        prefix.repeat(64 / prefix.len())
    }

    /// `1.0` (aa) was active before `1.1` (bb), which is active; `1.2` (cc) is disabled; `2.0`
    /// (dd) is stored and never ran.
    fn serving() -> DriverRecord {
        let mut disabled = version("cc", "1.2");
        disabled.disabled = true;
        DriverRecord {
            name: "haproxy".into(),
            active: Some(sha("bb")),
            previous: vec![sha("aa")],
            draining: false,
            canary: None,
            publisher: None,
            versions: vec![
                version("aa", "1.0"),
                version("bb", "1.1"),
                disabled,
                version("dd", "2.0"),
            ],
        }
    }

    fn with_canary() -> DriverRecord {
        DriverRecord {
            canary: Some(Canary {
                sha256: sha("dd"),
                percent: 25,
            }),
            ..serving()
        }
    }

    fn never_activated() -> DriverRecord {
        DriverRecord {
            active: None,
            previous: Vec::new(),
            ..serving()
        }
    }

    fn one_version() -> DriverRecord {
        DriverRecord {
            active: Some(sha("bb")),
            previous: Vec::new(),
            versions: vec![version("bb", "1.1")],
            ..serving()
        }
    }

    fn draining() -> DriverRecord {
        DriverRecord {
            draining: true,
            ..serving()
        }
    }

    fn facts() -> Facts {
        Facts {
            now: "now".into(),
            in_use: false,
        }
    }

    fn in_use() -> Facts {
        Facts {
            in_use: true,
            ..facts()
        }
    }

    fn admit(prefix: &str, migrate: bool) -> Option<Admit> {
        Some(Admit {
            sha256: sha(prefix),
            migrate,
        })
    }

    type Check = fn(&Transition);
    /// The refusal expected, by its variant.
    type Refusal = fn(&LifecycleError) -> bool;
    /// A case: its name, the record, the step, the facts, and what must come of it.
    type Case = (
        &'static str,
        DriverRecord,
        Step,
        Facts,
        Result<Check, Refusal>,
    );

    fn after(transition: &Transition) -> &DriverRecord {
        transition.record.as_ref().expect("a record afterwards")
    }

    /// Every step from every state that matters: what it leaves, or why it is refused.
    #[test]
    fn each_step_from_each_state() {
        let signed = DriverVersion {
            signed_by: Some("0123456789abcdef".into()),
            ..version("ee", "3.0")
        };
        let table: Vec<Case> = vec![
            (
                "activate a stored version",
                serving(),
                Step::Activate("2.0".into()),
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.active, Some(sha("dd")));
                    assert_eq!(r.previous, vec![sha("aa"), sha("bb")]);
                    assert_eq!(
                        r.version(&sha("dd"))
                            .expect("the version")
                            .activated_at
                            .as_deref(),
                        Some("now")
                    );
                    assert_eq!(t.admit, admit("dd", true));
                    assert_eq!(t.serving, Serving::Active(sha("dd")));
                    assert_eq!(t.event, "lifecycle.activate");
                }),
            ),
            (
                "activate by digest prefix",
                serving(),
                Step::Activate("aaaaaaaa".into()),
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.active, Some(sha("aa")));
                    // The older version leaves the rollback list when it is active again.
                    assert_eq!(r.previous, vec![sha("bb")]);
                }),
            ),
            (
                "activate the active version",
                serving(),
                Step::Activate("1.1".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::AlreadyActive { .. })),
            ),
            (
                "activate a disabled version",
                serving(),
                Step::Activate("1.2".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::VersionDisabled { .. })),
            ),
            (
                "activate an unknown version",
                serving(),
                Step::Activate("9.9".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::NoSuchVersion { .. })),
            ),
            (
                "roll back",
                serving(),
                Step::Rollback,
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.active, Some(sha("aa")));
                    assert!(r.previous.is_empty());
                    assert_eq!(t.serving, Serving::Active(sha("aa")));
                    assert_eq!(t.event, "lifecycle.rollback");
                }),
            ),
            (
                "roll back with nothing before",
                one_version(),
                Step::Rollback,
                facts(),
                Err(|e| matches!(e, LifecycleError::NoEarlierVersion { .. })),
            ),
            (
                "roll back a canary",
                with_canary(),
                Step::Rollback,
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.canary, None);
                    assert_eq!(r.active, Some(sha("bb")), "the active version stays");
                    assert_eq!(t.admit, None);
                    assert_eq!(t.serving, Serving::CanaryEnded);
                    assert_eq!(t.detail, "canary ended");
                }),
            ),
            (
                "start a canary",
                serving(),
                Step::Canary("2.0".into(), 25),
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.canary.as_ref().map(|c| c.percent), Some(25));
                    assert_eq!(r.active, Some(sha("bb")));
                    assert_eq!(t.admit, admit("dd", true));
                    assert_eq!(t.serving, Serving::Canary(sha("dd"), 25));
                }),
            ),
            (
                "a canary of no placements",
                serving(),
                Step::Canary("2.0".into(), 0),
                facts(),
                Err(|e| matches!(e, LifecycleError::CanaryShare { .. })),
            ),
            (
                "a canary of every placement",
                serving(),
                Step::Canary("2.0".into(), 100),
                facts(),
                Err(|e| matches!(e, LifecycleError::CanaryShare { .. })),
            ),
            (
                "a canary beside nothing",
                never_activated(),
                Step::Canary("2.0".into(), 10),
                facts(),
                Err(|e| matches!(e, LifecycleError::NoActiveVersion { .. })),
            ),
            (
                "promote without a canary",
                serving(),
                Step::Promote,
                facts(),
                Err(|e| matches!(e, LifecycleError::NoCanary { .. })),
            ),
            (
                "promote the canary",
                with_canary(),
                Step::Promote,
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.active, Some(sha("dd")));
                    assert_eq!(r.canary, None);
                    assert_eq!(r.previous.last(), Some(&sha("bb")));
                    // Its state was converted when the canary started.
                    assert_eq!(t.admit, admit("dd", false));
                    assert_eq!(t.event, "lifecycle.promote");
                }),
            ),
            (
                "drain",
                serving(),
                Step::Drain,
                facts(),
                Ok(|t| assert!(after(t).draining)),
            ),
            (
                "drain twice",
                draining(),
                Step::Drain,
                facts(),
                Err(|e| matches!(e, LifecycleError::DrainingAlready { draining: true, .. })),
            ),
            (
                "end a drain",
                draining(),
                Step::Undrain,
                facts(),
                Ok(|t| assert!(!after(t).draining)),
            ),
            (
                "end no drain",
                serving(),
                Step::Undrain,
                facts(),
                Err(|e| {
                    matches!(
                        e,
                        LifecycleError::DrainingAlready {
                            draining: false,
                            ..
                        }
                    )
                }),
            ),
            (
                "hand the name over",
                serving(),
                Step::Publisher(Some("0123456789abcdef".into())),
                facts(),
                Ok(|t| {
                    assert_eq!(after(t).publisher.as_deref(), Some("0123456789abcdef"));
                    assert_eq!(t.detail, "publisher none -> 0123456789abcdef");
                }),
            ),
            (
                "disable a stored version",
                serving(),
                Step::Disable("1.0".into()),
                facts(),
                Ok(|t| {
                    assert!(after(t).version(&sha("aa")).expect("the version").disabled);
                    assert_eq!(t.serving, Serving::Unloaded(sha("aa")));
                }),
            ),
            (
                "disable the active version",
                serving(),
                Step::Disable("1.1".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::DisablingActive { .. })),
            ),
            (
                "disable a disabled version",
                serving(),
                Step::Disable("1.2".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::DisabledAlready { disabled: true, .. })),
            ),
            (
                "disable the canary",
                with_canary(),
                Step::Disable("2.0".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::RunsAsCanary { .. })),
            ),
            (
                "enable a disabled version",
                serving(),
                Step::Enable("1.2".into()),
                facts(),
                Ok(|t| {
                    assert!(!after(t).version(&sha("cc")).expect("the version").disabled);
                    assert_eq!(t.serving, Serving::Unchanged);
                }),
            ),
            (
                "delete a version that ran before",
                serving(),
                Step::Delete("1.0".into()),
                in_use(),
                Ok(|t| {
                    let r = after(t);
                    assert!(r.version(&sha("aa")).is_none());
                    assert!(r.previous.is_empty(), "no rollback to a deleted version");
                    assert_eq!(t.deleted_blob(), Some(sha("aa").as_str()));
                }),
            ),
            (
                "delete the active version load balancers need",
                serving(),
                Step::Delete("1.1".into()),
                in_use(),
                Err(|e| matches!(e, LifecycleError::InUse { .. })),
            ),
            (
                "delete the active version nothing needs",
                serving(),
                Step::Delete("1.1".into()),
                facts(),
                Ok(|t| {
                    assert_eq!(after(t).active, None);
                    assert_eq!(
                        t.serving,
                        Serving::Deleted {
                            sha256: sha("bb"),
                            was_active: true
                        }
                    );
                }),
            ),
            (
                "delete the canary",
                with_canary(),
                Step::Delete("2.0".into()),
                facts(),
                Err(|e| matches!(e, LifecycleError::RunsAsCanary { .. })),
            ),
            (
                "delete the last version",
                one_version(),
                Step::Delete("1.1".into()),
                facts(),
                Ok(|t| {
                    assert_eq!(t.record, None);
                    assert!(t.deletes_active());
                    assert_eq!(t.deleted_blob(), Some(sha("bb").as_str()));
                }),
            ),
            (
                "add a version already stored",
                serving(),
                Step::Add(version("aa", "1.0")),
                facts(),
                Err(|e| matches!(e, LifecycleError::AlreadyUploaded { .. })),
            ),
            (
                "add the first signed version",
                serving(),
                Step::Add(signed),
                facts(),
                Ok(|t| {
                    let r = after(t);
                    assert_eq!(r.versions.len(), 5);
                    assert_eq!(r.active, Some(sha("bb")), "stored inactive");
                    // The name belongs to the key that signed its first signed version.
                    assert_eq!(r.publisher.as_deref(), Some("0123456789abcdef"));
                    assert_eq!(t.event, "lifecycle.upload");
                }),
            ),
        ];
        for (case, record, step, facts, expected) in table {
            let decided = decide(&record, &step, &facts);
            match (decided, expected) {
                (Ok(transition), Ok(check)) => {
                    check(&transition);
                    if let Some(after) = &transition.record {
                        assert_eq!(after.name, record.name, "{case}");
                    }
                }
                (Err(error), Err(expected)) => {
                    assert!(expected(&error), "{case}: refused as {error:?}");
                }
                (Ok(transition), Err(_)) => {
                    panic!("{case}: taken ({transition:?}); expected a refusal")
                }
                (Err(error), Ok(_)) => panic!("{case}: refused: {error}"),
            }
        }
    }

    #[test]
    fn versions_are_named_by_digest_prefix_or_unique_version() {
        let record = DriverRecord {
            versions: vec![
                version("ab", "1.0.0"),
                version("ac", "1.1.0"),
                version("cd", "1.1.0"),
            ],
            ..new_record("haproxy")
        };
        assert_eq!(resolve(&record, "1.0.0").expect("by version"), sha("ab"));
        assert_eq!(resolve(&record, "cdcdcdcd").expect("by prefix"), sha("cd"));
        assert_eq!(
            resolve(&record, &"AC".repeat(32)).expect("whole digest, any case"),
            sha("ac")
        );
        let ambiguous = resolve(&record, "1.1.0").expect_err("two builds of 1.1.0");
        assert!(
            matches!(&ambiguous, LifecycleError::Ambiguous { shas, .. } if shas.len() == 2),
            "{ambiguous}"
        );
        assert!(ambiguous.to_string().contains("use the SHA-256"));
        let unknown = |e: &LifecycleError| matches!(e, LifecycleError::NoSuchVersion { .. });
        // A short prefix is not taken as a digest: too easy to hit the wrong version.
        assert!(unknown(&resolve(&record, "ab").expect_err("short prefix")));
        assert!(unknown(&resolve(&record, "2.0.0").expect_err("unknown")));
    }
}
