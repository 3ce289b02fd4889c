//! What a component passes before it is stored as a version, and what a stored version passes
//! again before it serves. A refusal names the check that failed; what the component answered
//! goes to the audit record, bounded and escaped, never to the answer.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::lifecycle::{self, LifecycleError};
use crate::audit::{self, AuditSink};
use crate::integrity::Trust;
use crate::model::{DriverRecord, DriverVersion, FlavorProfile};
use crate::runtime::{self, LoadedDriver, Runtime};
use crate::store::{Kind, Store};

/// Largest component accepted.
pub const MAX_COMPONENT_BYTES: usize = 64 << 20;

/// What the registry needs to change drivers: where to compile, whom to trust, where to keep.
pub(super) struct Manager {
    pub(super) runtime: Runtime,
    pub(super) trust: Trust,
    pub(super) store: Arc<dyn Store>,
    pub(super) audit: Arc<dyn AuditSink>,
    /// One lifecycle step at a time, from its decision to the registry following its commit.
    pub(super) steps: tokio::sync::Mutex<()>,
    /// Whether uploads must pass the conformance kit.
    pub(super) conformance: bool,
}

/// A component that passed every upload check, bound to the live state and devices of its
/// name: ready to be stored as a new, inactive version.
pub struct Admitted {
    pub driver: LoadedDriver,
    pub version: DriverVersion,
    pub bytes: Vec<u8>,
}

/// The upload as the uploader gave it.
pub struct Upload<'a> {
    pub bytes: Vec<u8>,
    /// The signature given with it (hex).
    pub signature: Option<&'a str>,
    /// Where it came from: `upload`, `directory FILE`.
    pub source: &'a str,
}

impl Manager {
    /// Checks an upload: its size, the operator's trust, that it loads and reports a driver
    /// (cut off from the live state and devices of the name it claims until it passes), that
    /// its name's publisher signed it, the checks every version passes, and the conformance
    /// kit. `publisher_of` names the key a driver name belongs to, if any.
    pub(super) fn admit(
        &self,
        upload: Upload<'_>,
        publisher_of: &dyn Fn(&str) -> Option<String>,
        profiles: &[FlavorProfile],
    ) -> Result<Admitted, LifecycleError> {
        let Upload {
            bytes,
            signature,
            source,
        } = upload;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        // The refusal, audited with `detail` (what the component answered, bounded and on one
        // line) when the answer to the uploader leaves it out.
        let refuse_with = |reason: String, detail: Option<String>| {
            let reason = runtime::printable(&reason, 2048);
            let detail = detail.map_or_else(
                || reason.clone(),
                |detail| format!("{reason}: {}", runtime::printable(&detail, 8192)),
            );
            self.audit_event(
                "",
                None,
                "lifecycle.refused",
                Some(format!("{source} ({sha256})")),
                audit::Outcome::Denied,
                detail,
            );
            LifecycleError::Refused(reason)
        };
        let refuse = |reason: String| refuse_with(reason, None);
        if bytes.len() > MAX_COMPONENT_BYTES {
            return Err(refuse(format!(
                "the component is {} bytes, more than the {MAX_COMPONENT_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let accepted = self
            .trust
            .check(&bytes, signature)
            .map_err(|e| refuse(format!("refused: {e}")))?;
        // Until every check passed, the component runs cut off from the live state and devices
        // of the name it claims: nothing an unapproved component does touches them.
        let isolated = self
            .runtime
            .load_isolated(&bytes, &format!("{source} ({})", &sha256[..12]))
            .map_err(|e| refuse(e.to_string()))?;
        let name = isolated.name().to_string();
        // A name belongs to the key that signed its first trusted version.
        if let Some(owner) = publisher_of(&name)
            && accepted.signed_by.as_ref() != Some(&owner)
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
        if self.conformance {
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
        let driver = self
            .runtime
            .bind(&isolated)
            .map_err(|e| refuse(e.to_string()))?;
        let version = version_of(
            &driver,
            source,
            signature.map(str::to_owned),
            accepted.signed_by,
        );
        Ok(Admitted {
            driver,
            version,
            bytes,
        })
    }

    /// Loads a stored version: its bytes must still match their SHA-256, and pass the
    /// operator's trust.
    pub(super) fn load_stored(
        &self,
        record: &DriverRecord,
        sha: &str,
    ) -> Result<LoadedDriver, LifecycleError> {
        let version = record
            .version(sha)
            .ok_or_else(|| lifecycle::no_such_version(record, sha))?;
        let bytes = self
            .store
            .get(Kind::DriverBlob, sha)
            .map_err(|e| LifecycleError::Storage(e.to_string()))?
            .ok_or_else(|| {
                LifecycleError::Refused(format!("the bytes of {} {sha} are missing", record.name))
            })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha {
            return Err(LifecycleError::Refused(format!(
                "the stored bytes of {} {sha} hash to {actual}: refusing to run them",
                record.name
            )));
        }
        self.trust
            .check(&bytes, version.signature.as_deref())
            .map_err(|e| LifecycleError::Refused(format!("refused: {e}")))?;
        let driver = self
            .runtime
            .load(&bytes, &format!("{} {}", record.name, version.version))
            .map_err(|e| LifecycleError::Refused(e.to_string()))?;
        if driver.name().as_str() != record.name {
            return Err(LifecycleError::Refused(format!(
                "stored version {sha} reports driver {}, not {}",
                driver.name(),
                record.name
            )));
        }
        Ok(driver)
    }
}

/// The record of a version, as it is stored.
pub(super) fn version_of(
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

/// The checks a version passes before it is stored or activated, beyond loading: it can be
/// instantiated again, and accepts every flavor profile that names it.
pub(super) fn check(driver: &LoadedDriver, profiles: &[FlavorProfile]) -> Result<(), String> {
    driver
        .check_instantiate()
        .map_err(|e| format!("it cannot be instantiated: {e}"))?;
    let name = driver.name().as_str();
    for profile in profiles {
        if !profile.providers().iter().any(|p| p == name) {
            continue;
        }
        let flavor = crate::contract::flavor(&profile.name, &profile.flavor_data)
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

impl Manager {
    pub(super) fn audit_event(
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
