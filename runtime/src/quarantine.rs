//! Failed calls in a row and the quarantine they lead to: counted per export, kept in a
//! [`QuarantineStore`] so that a restart does not lift one, lifted by an admin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use lbaas_core::audit;

use crate::error::Failure;
use crate::host::DriverContext;
use crate::identity::LoadedIdentity;

/// Where quarantines are kept, so that a restart does not lift one.
pub trait QuarantineStore: Send + Sync {
    /// Why version `sha256` is quarantined, if it is.
    fn quarantined(&self, sha256: &str) -> Option<String>;
    /// Keeps `identity`'s quarantine and why.
    fn quarantine(&self, identity: &LoadedIdentity, reason: &str);
    /// Forgets version `sha256`'s quarantine.
    fn release(&self, sha256: &str);
}

/// One driver version's failed calls in a row of each export, and the quarantine they lead
/// to. Counted per export: a driver whose `translate` always fails is broken even while its
/// `select` works.
#[derive(Default)]
pub(crate) struct Health {
    failures: Mutex<HashMap<&'static str, u32>>,
    quarantine: Mutex<Option<String>>,
    /// Where the quarantine is kept, when the host keeps records.
    store: Option<Arc<dyn QuarantineStore>>,
}

impl Health {
    /// The health of version `sha256` kept in `store`: quarantined when the store remembers it
    /// so.
    pub(crate) fn kept_in(store: Option<Arc<dyn QuarantineStore>>, sha256: &str) -> Self {
        let reason = store.as_ref().and_then(|store| store.quarantined(sha256));
        Self {
            failures: Mutex::default(),
            quarantine: Mutex::new(reason),
            store,
        }
    }

    fn quarantine(&self) -> MutexGuard<'_, Option<String>> {
        self.quarantine.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failures(&self) -> MutexGuard<'_, HashMap<&'static str, u32>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn succeeded(&self, function: &'static str) {
        if let Some(count) = self.failures().get_mut(function) {
            *count = 0;
        }
    }

    /// Counts a failed call of `function`; at `after` in a row the version is quarantined:
    /// logged, counted, audited and kept.
    pub(crate) fn failed(
        &self,
        context: &DriverContext,
        after: u32,
        function: &'static str,
        failure: &Failure,
    ) {
        let failures = {
            let mut failures = self.failures();
            let count = failures.entry(function).or_default();
            *count += 1;
            *count
        };
        if failures < after {
            return;
        }
        let mut quarantine = self.quarantine();
        if quarantine.is_some() {
            return;
        }
        let reason = format!("{failures} failed `{function}` calls in a row, the last: {failure}");
        let identity = &context.identity;
        tracing::error!(driver = %identity.name, version = %identity.version, %reason, "driver quarantined");
        context
            .metrics
            .quarantined(identity.name.as_str(), &identity.version);
        context.audit.append(vec![context.event(
            "lifecycle.quarantine",
            Some(function.to_owned()),
            0,
            audit::Outcome::Denied,
            0,
            Some(reason.clone()),
        )]);
        if let Some(store) = &self.store {
            store.quarantine(identity, &reason);
        }
        *quarantine = Some(reason);
    }

    /// A call of `function` was under way when the host stopped (found at the next start):
    /// audited durably, and counted as a failure towards quarantine.
    pub(crate) fn interrupted(
        &self,
        context: &DriverContext,
        after: u32,
        function: &'static str,
        detail: String,
    ) {
        let failure = Failure::Interrupted(detail);
        context.audit.append_durable(vec![context.event(
            failure.audit_name(),
            Some(function.to_owned()),
            0,
            audit::Outcome::Denied,
            0,
            Some(failure.to_string()),
        )]);
        self.failed(context, after, function, &failure);
    }

    /// Why the version is quarantined, when it is.
    pub(crate) fn reason(&self) -> Option<String> {
        self.quarantine().clone()
    }

    /// Takes on a quarantine decided (or lifted) elsewhere: by another host sharing the store,
    /// which already recorded and audited it.
    pub(crate) fn follow(&self, reason: Option<String>) {
        let lifted = reason.is_none();
        *self.quarantine() = reason;
        if lifted {
            self.failures().clear();
        }
    }

    /// Lifts the quarantine (an admin's decision, audited); false when there was none.
    pub(crate) fn release(&self, context: &DriverContext, by: &str) -> bool {
        let lifted = self.quarantine().take();
        self.failures().clear();
        if let Some(store) = &self.store {
            store.release(&context.identity.sha256);
        }
        if lifted.is_some() {
            context.audit.append(vec![context.event(
                "lifecycle.release",
                None,
                0,
                audit::Outcome::Ok,
                0,
                Some(format!("released by {by}")),
            )]);
        }
        lifted.is_some()
    }
}
