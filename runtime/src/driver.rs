//! One loaded driver version ([`LoadedDriver`]): its identity, its capabilities, and its
//! exports, each run in a fresh store and instance by [`call`].

use std::sync::Arc;

use wasmtime::Store;

use crate::bindings::types::{
    AvailabilityZone, Candidate, Device, DeviceConfig, DriverCapabilities, DriverError, Flavor,
    Hints, LoadBalancer, LoadBalancerStatus, PlacementRequest,
};
use crate::bindings::{DriverInstance, DriverPre};
use crate::cache::Origin;
use crate::certificates::CertificateFiles;
use crate::config::RuntimeConfig;
use crate::error::{DeviceRefusal, Error, Failure, Result, classify};
use crate::host::{DriverContext, HostState};
use crate::identity::LoadedIdentity;
use crate::quarantine::Health;
use crate::{engine, manifest, scope};
use lbaas_core::DriverName;
use lbaas_core::audit;
use lbaas_core::capabilities::Capabilities;

pub(crate) struct LoadedInner {
    pub(crate) pre: DriverPre,
    pub(crate) context: Arc<DriverContext>,
    /// What the driver answered to `capabilities` at load, in the contract's types.
    pub(crate) reported: DriverCapabilities,
    /// The same in the host's types.
    pub(crate) capabilities: Capabilities,
    pub(crate) origin: Origin,
    pub(crate) config: RuntimeConfig,
    pub(crate) health: Health,
    pub(crate) manifest: Option<manifest::Manifest>,
    /// Bytes of the component.
    pub(crate) size: usize,
    /// Deadlines need the epoch to advance for as long as the driver can be called, even
    /// after the runtime that loaded it is gone.
    pub(crate) _ticker: Arc<engine::EpochTicker>,
}

/// One loaded driver version, ready to call. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct LoadedDriver {
    pub(crate) inner: Arc<LoadedInner>,
}

impl std::fmt::Debug for LoadedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedDriver")
            .field("identity", &self.inner.context.identity)
            .finish()
    }
}

impl LoadedDriver {
    /// Who this version is.
    pub fn identity(&self) -> &LoadedIdentity {
        &self.inner.context.identity
    }

    /// The driver's name.
    pub fn name(&self) -> &DriverName {
        &self.identity().name
    }

    /// What the driver supports, as it reported when it was loaded, in the host's types.
    pub fn capabilities(&self) -> &Capabilities {
        &self.inner.capabilities
    }

    /// The driver's `capabilities` answer at load, in the contract's types (the conformance
    /// kit and a vendor's tests compare it with a later answer).
    pub fn reported_capabilities(&self) -> &DriverCapabilities {
        &self.inner.reported
    }

    /// What the driver asked for, when it carries a manifest.
    pub fn manifest(&self) -> Option<&manifest::Manifest> {
        self.inner.manifest.as_ref()
    }

    /// What the host enforces for it: its requests under the operator's caps.
    pub fn grant(&self) -> &manifest::Grant {
        &self.inner.context.grant
    }

    /// Bytes of the component.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Whether the compiled code came from the on-disk cache.
    pub fn origin(&self) -> Origin {
        self.inner.origin
    }

    fn call<R>(
        &self,
        function: &'static str,
        run: impl FnOnce(&DriverInstance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        self.call_scoped(function, None, CertificateFiles::default(), run)
    }

    /// [`LoadedDriver::call`] whose device calls to one device carry a load balancer's
    /// [`scope::Scope`], and which may send `certificates` there.
    fn call_scoped<R>(
        &self,
        function: &'static str,
        scope: Option<scope::DeviceScope>,
        certificates: CertificateFiles,
        run: impl FnOnce(&DriverInstance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        let inner = &self.inner;
        let result = call(
            &inner.config,
            &inner.pre,
            &inner.context,
            function,
            (scope, certificates),
            run,
        );
        match &result {
            Ok(_) => inner.health.succeeded(function),
            Err(Error::Call { failure, .. }) => self.failed(function, failure),
            Err(_) => {}
        }
        result
    }

    /// Counts a failed call; quarantines the driver version at the configured count.
    fn failed(&self, function: &'static str, failure: &Failure) {
        let inner = &self.inner;
        inner.health.failed(
            &inner.context,
            inner.config.quarantine_after,
            function,
            failure,
        );
    }

    /// Records that a call of this version was under way when the host stopped (found at the
    /// next start): audited, and counted as a failure of `function` towards quarantine.
    pub fn interrupted(&self, function: &'static str, detail: String) {
        let inner = &self.inner;
        inner.health.interrupted(
            &inner.context,
            inner.config.quarantine_after,
            function,
            detail,
        );
    }

    /// Why the driver version is quarantined, when it is.
    pub fn quarantined(&self) -> Option<String> {
        self.inner.health.reason()
    }

    /// Takes on a quarantine decided (or lifted) elsewhere: by another host sharing the store,
    /// which already recorded and audited it.
    pub fn follow_quarantine(&self, reason: Option<String>) {
        self.inner.health.follow(reason);
    }

    /// Lifts the quarantine (an admin's decision, recorded); false when there was none.
    pub fn release(&self, by: &str) -> bool {
        self.inner.health.release(&self.inner.context, by)
    }

    fn event(
        &self,
        function: &str,
        target: Option<String>,
        outcome: audit::Outcome,
        detail: Option<String>,
    ) -> audit::Event {
        self.inner
            .context
            .event(function, target, 0, outcome, 0, detail)
    }

    fn refused(&self, function: &'static str, error: DriverError) -> Error {
        let identity = self.identity();
        self.inner
            .context
            .metrics
            .refusal(identity.name.as_str(), &identity.version, function);
        Error::Refused {
            driver: identity.name.clone(),
            version: identity.version.clone(),
            function,
            error,
        }
    }

    fn too_large(
        &self,
        function: &'static str,
        what: &'static str,
        size: usize,
        limit: usize,
    ) -> Error {
        let identity = self.identity();
        let failure = Failure::OutputTooLarge { what, size, limit };
        self.inner
            .context
            .metrics
            .limit_hit(identity.name.as_str(), &identity.version, "output");
        self.inner.context.audit.append(vec![self.event(
            failure.audit_name(),
            Some(function.to_owned()),
            audit::Outcome::Denied,
            Some(failure.to_string()),
        )]);
        self.failed(function, &failure);
        Error::Call {
            driver: identity.name.clone(),
            version: identity.version.clone(),
            function,
            failure,
        }
    }

    /// Creates a store and an instance, and drops them: what every call pays before the driver
    /// runs. Shows that the driver can still be instantiated.
    pub fn check_instantiate(&self) -> Result<()> {
        self.call("instantiate", |_, _| Ok(()))
    }

    /// Asks the driver again for its capabilities.
    pub fn fetch_capabilities(&self) -> Result<DriverCapabilities> {
        self.call("capabilities", |d, s| d.capabilities(s))
    }

    /// Asks the driver whether it takes `flavor` (`validate-flavor`).
    pub fn validate_flavor(&self, flavor: &Flavor) -> Result<()> {
        self.call("validate-flavor", |d, s| d.validate_flavor(s, flavor))?
            .map_err(|e| self.refused("validate-flavor", e))
    }

    /// Asks the driver whether it takes `zone` (`validate-availability-zone`).
    pub fn validate_availability_zone(&self, zone: &AvailabilityZone) -> Result<()> {
        self.call("validate-availability-zone", |d, s| {
            d.validate_availability_zone(s, zone)
        })?
        .map_err(|e| self.refused("validate-availability-zone", e))
    }

    /// Asks the driver to judge `candidates` for `request` (`select`).
    pub fn select(&self, request: &PlacementRequest, candidates: &[Candidate]) -> Result<Hints> {
        let hints = self.call("select", |d, s| d.select(s, request, candidates))?;
        // A hint for a device that was not offered is ignored rather than trusted.
        if hints.devices.len() > candidates.len() {
            return Err(self.too_large("select", "hints", hints.devices.len(), candidates.len()));
        }
        Ok(hints)
    }

    /// Asks the driver for `device`'s configuration of `lb` (`translate`).
    pub fn translate(&self, lb: &LoadBalancer, device: &Device) -> Result<DeviceConfig> {
        let config = self
            .call("translate", |d, s| d.translate(s, lb, device))?
            .map_err(|e| self.refused("translate", e))?;
        let limit = self.inner.config.max_config_bytes;
        if config.body.len() > limit {
            return Err(self.too_large("translate", "a configuration", config.body.len(), limit));
        }
        Ok(config)
    }

    /// Pushes `config` to `device`; the device learns from the host, not from the driver, what
    /// `lb`'s configuration may reach ([`scope`]).
    pub fn apply(&self, lb: &LoadBalancer, device: &Device, config: &DeviceConfig) -> Result<()> {
        self.apply_with(lb, device, config, CertificateFiles::default())
    }

    /// [`LoadedDriver::apply`] for a load balancer whose `tls-file` handles name `certificates`:
    /// the driver may have the host send them to `device` during this call.
    pub fn apply_with(
        &self,
        lb: &LoadBalancer,
        device: &Device,
        config: &DeviceConfig,
        certificates: CertificateFiles,
    ) -> Result<()> {
        let scope = scope::Scope::of(lb, &self.inner.context.policy.reserved).for_device(device);
        self.call_scoped("apply", Some(scope), certificates, |d, s| {
            d.apply(s, lb, device, config)
        })?
        .map_err(|e| self.refused("apply", e))
    }

    /// Removes `lb` from `device`, whose requests carry `lb`'s scope (a device removes only
    /// the load balancer the job is for).
    pub fn remove(&self, lb: &LoadBalancer, device: &Device) -> Result<()> {
        let scope = scope::Scope::of(lb, &self.inner.context.policy.reserved).for_device(device);
        self.call_scoped(
            "remove",
            Some(scope),
            CertificateFiles::default(),
            |d, s| d.remove(s, lb, device),
        )?
        .map_err(|e| self.refused("remove", e))
    }

    /// The contract version the driver implements (`lbaas:driver@0.5.0`).
    pub fn contract(&self) -> &'static str {
        self.inner.pre.contract()
    }

    /// Whether the driver's contract is `contract` or newer (an unknown name is newer than
    /// every contract).
    pub fn contract_at_least(&self, contract: &str) -> bool {
        let position = |name: &str| crate::bindings::CONTRACTS.iter().position(|c| *c == name);
        position(self.contract()) >= Some(position(contract).unwrap_or(usize::MAX))
    }

    /// Converts the state `from_version` of this driver left, before this version becomes
    /// active. A driver of contract 0.1.0 has nothing to run: `Ok(false)`.
    pub fn migrate_state(&self, from_version: &str) -> Result<bool> {
        match self.call("migrate-state", |d, s| d.migrate_state(s, from_version))? {
            None => Ok(false),
            Some(result) => result
                .map(|()| true)
                .map_err(|e| self.refused("migrate-state", e)),
        }
    }

    /// Member health and listener counters, as the device reports them.
    pub fn status(&self, lb: &LoadBalancer, device: &Device) -> Result<LoadBalancerStatus> {
        let status = self
            .call("status", |d, s| d.status(s, lb, device))?
            .map_err(|e| self.refused("status", e))?;
        // One entry per listener and member the host asked about, at most.
        let members: usize = lb.pools.iter().map(|p| p.members.len()).sum();
        let reported = status.listeners.len() + status.members.len();
        let limit = lb.listeners.len() + members;
        if reported > limit {
            return Err(self.too_large("status", "status entries", reported, limit));
        }
        Ok(status)
    }
}

/// Runs one export in a fresh store and instance; turns every way it can fail into an error
/// naming driver, version and function. The instance is dropped afterwards, trap or not.
pub(crate) fn call<R>(
    config: &RuntimeConfig,
    pre: &DriverPre,
    context: &Arc<DriverContext>,
    function: &'static str,
    (scope, certificates): (Option<scope::DeviceScope>, CertificateFiles),
    run: impl FnOnce(&DriverInstance, &mut Store<HostState>) -> wasmtime::Result<R>,
) -> Result<R> {
    let identity = &context.identity;
    let span = tracing::info_span!(
        "driver.call",
        driver = %identity.name,
        version = %identity.version,
        export = function,
        outcome = tracing::field::Empty,
    );
    let _entered = span.enter();
    let engine = pre.engine();
    let deadline = context.grant.deadline(function);
    let mut store = Store::new(
        engine,
        HostState::new(context.clone(), context.grant.memory_bytes, deadline)
            .with_scope(scope)
            .with_certificates(certificates),
    );
    store.limiter(|state| state.limiter());
    store.set_epoch_deadline(engine::ticks(deadline));
    store.epoch_deadline_trap();

    let started = std::time::Instant::now();
    let result = pre
        .instantiate(&mut store)
        .map_err(|e| (e, true))
        .and_then(|driver| run(&driver, &mut store).map_err(|e| (e, false)));
    let refusal = store.data_mut().take_device_refusal();
    let mut events = store.data_mut().take_audit();
    // What the driver made of a device's policy refusal does not matter: the call failed.
    let result = match (result, refusal) {
        (Ok(_), Some(refusal)) => Err((wasmtime::Error::new(DeviceRefusal(refusal)), false)),
        (result, _) => result,
    };
    let took = started.elapsed();
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    span.record("outcome", outcome);
    context.metrics.driver_call(
        identity.name.as_str(),
        &identity.version,
        function,
        outcome,
        took,
    );
    let result = result.map_err(|(error, instantiating)| {
        let failure = classify(config, deadline, &store, &error, instantiating);
        if let Some(limit) = failure.limit() {
            context
                .metrics
                .limit_hit(identity.name.as_str(), &identity.version, limit);
        }
        events.push(context.event(
            failure.audit_name(),
            Some(function.to_owned()),
            0,
            audit::Outcome::Denied,
            took.as_micros() as u64,
            Some(failure.to_string()),
        ));
        tracing::warn!(
            driver = %identity.name,
            version = %identity.version,
            function,
            %failure,
            "driver call failed"
        );
        Error::Call {
            driver: identity.name.clone(),
            version: identity.version.clone(),
            function,
            failure,
        }
    });
    context.audit.append(events);
    result
}
