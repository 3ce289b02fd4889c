//! The driver runtime: loads driver components, and calls them inside a sandbox.
//!
//! One [`wasmtime::Engine`] serves every driver. Each loaded driver version keeps an
//! `InstancePre` (imports resolved once); every call gets a fresh store and instance from the
//! pooling allocator, a deadline (epoch interruption), a memory limit and a stack limit. A trap
//! never escapes: the instance is dropped and the caller gets an [`Error::Call`] naming the
//! driver, its version and the function.

mod bindings;
mod cache;
mod compat;
pub mod conformance;
pub mod convert;
pub mod devices;
mod engine;
mod host;
pub mod integrity;
pub mod manifest;
pub use lbaas_core::net;
pub mod permissions;
pub mod scope;
pub mod state;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, Trap};

use crate::devices::DeviceDirectory;
use crate::state::StateStore;
use lbaas_core::DriverName;
use lbaas_core::audit::{self, AuditSink, Discard};
use lbaas_core::capabilities::Capabilities;
use lbaas_telemetry::Metrics;

use bindings::{DriverInstance, DriverPre};
use host::{DriverContext, HostState, LogLimiter};

pub use bindings::types::{
    Algorithm, AvailabilityZone, Candidate, Device, DeviceConfig, DeviceHint, DeviceKind,
    DriverCapabilities, DriverError, Entry, Features, Flavor, FlavorKey, HealthMonitor,
    HealthMonitorKind, Hints, L7Action, L7Compare, L7Policy, L7Rule, L7RuleKind, Limits, Listener,
    ListenerCounters, LoadBalancer, LoadBalancerStatus, Member, MemberHealth, MemberStatus,
    Network, PersistenceKind, PlacementRequest, Pool, Protocol, SessionPersistence, SpawnSpec,
    Verdict,
};
pub use cache::Origin;
pub use host::REFUSAL_HEADER as DEVICE_REFUSAL_HEADER;
pub use permissions::DevicePolicy;

/// Limits and knobs of the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Longest a call may run: `select`, which sits on the placement path…
    pub select_deadline: Duration,
    /// …`apply`, `remove` and `status`, which wait for devices…
    pub device_deadline: Duration,
    /// …and every other export.
    pub call_deadline: Duration,
    /// Failed calls in a row (traps, deadlines, limits) after which a driver version is
    /// quarantined: no new placements until an admin releases it.
    pub quarantine_after: u32,
    /// `log` calls one driver call may make.
    pub max_log_calls: u32,
    /// Import calls of any kind one driver call may make (each may leave an audit record).
    pub max_import_calls: u32,
    /// Bytes of audit records (keys, device ids, details) one driver call may leave; past it
    /// the call fails, so what the host keeps for a call is bounded by the grant.
    pub max_audit_bytes: usize,
    /// Largest linear memory of a driver instance, in bytes.
    pub memory_limit: usize,
    /// Largest wasm stack, in bytes.
    pub stack_limit: usize,
    /// Driver instances alive at once (the pooling allocator's size).
    pub max_instances: u32,
    /// Largest configuration `translate` may return, in bytes.
    pub max_config_bytes: usize,
    /// Bytes of private state per driver.
    pub state_quota: u64,
    /// Driver log messages per second (after a burst of ten times as many).
    pub log_rate: u32,
    pub device_policy: DevicePolicy,
    /// Pooling instance allocator (the default); `false` allocates on demand, for comparison.
    pub pooling: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            select_deadline: Duration::from_millis(500),
            device_deadline: Duration::from_secs(30),
            call_deadline: Duration::from_secs(2),
            quarantine_after: 5,
            max_log_calls: 1_000,
            max_import_calls: 10_000,
            max_audit_bytes: 1 << 20,
            memory_limit: 64 << 20,
            stack_limit: 512 << 10,
            max_instances: 64,
            max_config_bytes: 1 << 20,
            state_quota: 16 << 20,
            log_rate: 50,
            device_policy: DevicePolicy::default(),
            pooling: true,
        }
    }
}

/// Why a driver call did not produce a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    #[error("ran past its deadline of {0:?} and was stopped")]
    Deadline(Duration),
    #[error("tried to grow its memory to {wanted} bytes, past the limit of {limit} bytes")]
    MemoryLimit { wanted: usize, limit: usize },
    #[error("overflowed its stack (limit {0} bytes)")]
    StackOverflow(usize),
    #[error("trapped: {trap}{}", guest.as_deref().map(|g| format!("; the driver said: {g}")).unwrap_or_default())]
    Trap { trap: String, guest: Option<String> },
    #[error("returned {what} of {size} bytes, more than the {limit}-byte limit")]
    OutputTooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("exceeded a limit: {0}")]
    Limit(String),
    #[error("sent a device what its policy refuses: {0}")]
    DeviceRefused(String),
    #[error("was under way when the host stopped: {0}")]
    Interrupted(String),
}

impl Failure {
    /// The sandbox limit this failure is, if it is one (a metric's label).
    fn limit(&self) -> Option<&'static str> {
        Some(match self {
            Failure::Deadline(_) => "deadline",
            Failure::MemoryLimit { .. } => "memory",
            Failure::StackOverflow(_) => "stack",
            Failure::OutputTooLarge { .. } => "output",
            Failure::Limit(_) => "import",
            Failure::DeviceRefused(_) => "device_policy",
            Failure::Trap { .. } | Failure::Instantiate(_) | Failure::Interrupted(_) => {
                return None;
            }
        })
    }

    /// The audit log's name for this failure.
    fn audit_name(&self) -> &'static str {
        match self {
            Failure::Deadline(_) => "limit.deadline",
            Failure::MemoryLimit { .. } => "limit.memory",
            Failure::StackOverflow(_) => "limit.stack",
            Failure::OutputTooLarge { .. } => "limit.output",
            Failure::Limit(_) => "limit.import",
            Failure::Trap { .. } => "call.trap",
            Failure::Instantiate(_) => "call.instantiate",
            Failure::DeviceRefused(_) => "device.refused",
            Failure::Interrupted(_) => "call.interrupted",
        }
    }
}

impl RuntimeConfig {
    /// The deadline of one export.
    pub fn deadline(&self, function: &str) -> Duration {
        match function {
            "select" => self.select_deadline,
            "apply" | "remove" | "status" => self.device_deadline,
            _ => self.call_deadline,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{origin}: not a valid driver component: {reason}")]
    InvalidComponent { origin: String, reason: String },
    #[error("driver {driver} {version}: `{function}` {failure}")]
    Call {
        driver: DriverName,
        version: String,
        function: &'static str,
        failure: Failure,
    },
    #[error(
        "driver {driver} {version}: `{function}` refused: {}",
        describe_driver_error(error)
    )]
    Refused {
        driver: DriverName,
        version: String,
        function: &'static str,
        error: DriverError,
    },
    #[error("driver state: {0}")]
    State(#[from] crate::state::StateError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("wasm engine: {0}")]
    Engine(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A driver's error in words, for operators and users: its text escaped and bounded, since it
/// reaches faults, logs and terminals.
pub fn describe_driver_error(error: &DriverError) -> String {
    let (what, why) = match error {
        DriverError::InvalidInput(why) => ("invalid input", why),
        DriverError::Unsupported(why) => ("unsupported", why),
        DriverError::DeviceUnreachable(why) => ("device unreachable", why),
        DriverError::DeviceRejected(why) => ("device rejected the request", why),
        DriverError::State(why) => ("driver state", why),
        DriverError::Internal(why) => ("driver bug", why),
    };
    format!("{what}: {}", printable(why, MAX_DRIVER_TEXT))
}

/// Most characters of a driver's own text (an error, a panic message) kept in a fault.
const MAX_DRIVER_TEXT: usize = 2048;

/// Who a loaded driver is: the name it reports, its version, and the digest of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LoadedIdentity {
    pub name: DriverName,
    pub version: String,
    pub sha256: String,
}

struct Shared {
    audit: Arc<dyn AuditSink>,
    metrics: Metrics,
    engine: Engine,
    linker: Linker<HostState>,
    cache: Option<cache::ComponentCache>,
    state: Arc<dyn StateStore>,
    devices: Arc<dyn DeviceDirectory>,
    policy: Arc<DevicePolicy>,
    http: ureq::Agent,
    config: RuntimeConfig,
    ticker: Arc<engine::EpochTicker>,
    /// Set once by the driver registry of a host that keeps records.
    quarantines: std::sync::OnceLock<Arc<dyn QuarantineStore>>,
}

/// The driver runtime. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<Shared>,
}

impl Runtime {
    /// A runtime that keeps no audit log and counts in metrics of its own (tools, benchmarks).
    pub fn new(
        config: RuntimeConfig,
        state: Arc<dyn StateStore>,
        devices: Arc<dyn DeviceDirectory>,
    ) -> Result<Self> {
        Self::audited(
            config,
            state,
            devices,
            Arc::new(Discard),
            Metrics::default(),
        )
    }

    /// A runtime that records every import call and lifecycle event in `audit`, and counts
    /// its calls, refusals, limits and quarantines in `metrics`.
    pub fn audited(
        config: RuntimeConfig,
        state: Arc<dyn StateStore>,
        devices: Arc<dyn DeviceDirectory>,
        audit: Arc<dyn AuditSink>,
        metrics: Metrics,
    ) -> Result<Self> {
        let engine = engine::build(&config).map_err(|e| Error::Engine(e.to_string()))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| Error::Engine(e.to_string()))?;
        bindings::add_to_linker(&mut linker).map_err(|e| Error::Engine(e.to_string()))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(cache::ComponentCache::new(dir, &engine)?),
            None => None,
        };
        let http: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .timeout_global(Some(config.device_policy.timeout))
            .build()
            .into();
        let ticker = engine::EpochTicker::start(engine.clone())?;
        Ok(Self {
            shared: Arc::new(Shared {
                audit,
                metrics,
                engine,
                linker,
                cache,
                state,
                devices,
                policy: Arc::new(config.device_policy.clone()),
                http,
                config,
                ticker: Arc::new(ticker),
                quarantines: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Where this runtime counts its drivers' calls.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Keeps quarantines in `store` from now on: each version loaded afterwards starts
    /// quarantined when the store says so, and quarantines and releases are written there.
    pub fn keep_quarantines(&self, store: Arc<dyn QuarantineStore>) {
        let _ = self.shared.quarantines.set(store);
    }

    /// A live driver's health: quarantined when the store remembers it so.
    fn health_of(&self, sha256: &str) -> Health {
        let health = Health::default();
        if let Some(reason) = self
            .shared
            .quarantines
            .get()
            .and_then(|store| store.quarantined(sha256))
        {
            *health.quarantine.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        }
        health
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.shared.config
    }

    /// Loads a driver from a `.wasm` file.
    pub fn load_file(&self, path: &Path) -> Result<LoadedDriver> {
        let bytes = std::fs::read(path)?;
        self.load(&bytes, &path.display().to_string())
    }

    /// Loads a driver component: compiles it (or takes it from the cache), links it against
    /// the host's imports, and asks it for its capabilities. `origin` names it in errors.
    pub fn load(&self, bytes: &[u8], origin: &str) -> Result<LoadedDriver> {
        self.bind(&self.load_isolated(bytes, origin)?)
    }

    /// The same driver version bound to its name's live state namespace and the host's devices.
    pub fn bind(&self, driver: &LoadedDriver) -> Result<LoadedDriver> {
        let inner = &driver.inner;
        let identity = (*inner.context.identity).clone();
        let namespace = self.shared.state.namespace(&identity.name)?;
        let context = self.context(
            identity,
            namespace,
            self.shared.devices.clone(),
            inner.context.grant.clone(),
            Binding::Live,
        )?;
        Ok(LoadedDriver {
            inner: Arc::new(LoadedInner {
                pre: inner.pre.clone(),
                context,
                capabilities: inner.capabilities.clone(),
                reported: inner.reported.clone(),
                origin: inner.origin,
                config: inner.config.clone(),
                health: self.health_of(&inner.context.identity.sha256),
                quarantines: self.shared.quarantines.get().cloned(),
                manifest: inner.manifest.clone(),
                size: inner.size,
                _ticker: self.shared.ticker.clone(),
            }),
        })
    }

    /// Loads a driver component cut off from everything live: a throw-away in-memory state
    /// namespace and no devices, whatever name it claims. Upload checks run on such a load, so
    /// a component the operator has not approved reads, writes and reaches nothing real;
    /// [`Runtime::bind`] gives the approved one its namespace and devices.
    pub fn load_isolated(&self, bytes: &[u8], origin: &str) -> Result<LoadedDriver> {
        let shared = &self.shared;
        let sha256 = hex::encode(Sha256::digest(bytes));
        let invalid = |reason: String| Error::InvalidComponent {
            origin: origin.to_owned(),
            reason,
        };
        match bytes.get(..8) {
            Some([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]) => {
                return Err(invalid(
                    "it is a core WebAssembly module, not a component (build it for wasm32-wasip2)"
                        .into(),
                ));
            }
            Some([0x00, 0x61, 0x73, 0x6d, ..]) => {}
            _ => return Err(invalid("it is not a WebAssembly file".into())),
        }
        let manifest = manifest::read(bytes).map_err(|e| invalid(e.to_string()))?;
        let grant = manifest::grant(manifest.as_ref(), &shared.config);
        let cached = match &shared.cache {
            Some(cache) => cache.load(&shared.engine, &sha256),
            None => cache::Lookup::Miss,
        };
        let cached = match cached {
            cache::Lookup::Hit(component) => Some(component),
            cache::Lookup::Miss => None,
            cache::Lookup::Rejected(why) => {
                shared.audit.append(vec![audit::Event {
                    driver: String::new(),
                    version: String::new(),
                    sha256: sha256.clone(),
                    function: "cache.rejected".into(),
                    target: Some(crate::printable(origin, 256)),
                    bytes: bytes.len() as u64,
                    outcome: audit::Outcome::Denied,
                    duration_us: 0,
                    detail: Some(format!("compiled code not used, compiled again: {why}")),
                }]);
                None
            }
        };
        let (component, origin_kind) = match cached {
            Some(component) => (component, Origin::Cache),
            None => {
                let component =
                    Component::new(&shared.engine, bytes).map_err(|e| invalid(format!("{e:#}")))?;
                if let Some(cache) = &shared.cache {
                    cache.store(&sha256, &component);
                }
                (component, Origin::Compiled)
            }
        };
        let instance_pre = shared
            .linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(format!("{e:#}")))?;
        let pre = DriverPre::new(instance_pre).map_err(|e| invalid(format!("{e:#}")))?;
        if let Some(manifest) = &manifest
            && manifest.wit != pre.contract()
        {
            return Err(invalid(format!(
                "its manifest says it targets {} but it implements {}",
                manifest.wit,
                pre.contract()
            )));
        }

        // Until the driver has told its name, calls run under a placeholder identity with an
        // empty, throw-away namespace and no devices (recorded under that placeholder).
        let probe = DriverName::new("unnamed-driver").map_err(|e| invalid(e.to_string()))?;
        let probe_identity = LoadedIdentity {
            name: probe,
            version: "?".into(),
            sha256: sha256.clone(),
        };
        let probe_context = self.context(
            probe_identity,
            Arc::new(NoState),
            Arc::new(crate::devices::StaticDevices::new()),
            grant.clone(),
            Binding::Live,
        )?;
        let capabilities = call(
            &shared.config,
            &pre,
            &probe_context,
            "capabilities",
            None,
            |d, s| d.capabilities(s),
        )?;
        let name = DriverName::new(capabilities.name.clone())
            .map_err(|e| invalid(format!("it reports an unusable name: {e}")))?;
        check_identity(&capabilities)
            .map_err(|e| invalid(format!("it reports an unusable identity: {e}")))?;
        let identity = LoadedIdentity {
            name: name.clone(),
            version: capabilities.version.clone(),
            sha256,
        };
        if let Some(manifest) = &manifest
            && (manifest.name != identity.name.as_str() || manifest.version != identity.version)
        {
            return Err(invalid(format!(
                "its manifest names {} {} but the driver reports {} {}",
                manifest.name, manifest.version, identity.name, identity.version
            )));
        }
        let context = self.context(
            identity,
            Arc::new(crate::state::MemoryNamespace::new(grant.state_bytes)),
            Arc::new(crate::devices::StaticDevices::new()),
            grant,
            Binding::Isolated,
        )?;
        tracing::info!(
            driver = %name,
            version = %capabilities.version,
            sha256 = %context.identity.sha256,
            origin = ?origin_kind,
            "driver loaded"
        );
        Ok(LoadedDriver {
            inner: Arc::new(LoadedInner {
                pre,
                context,
                capabilities: convert::capabilities(&capabilities),
                reported: capabilities,
                origin: origin_kind,
                config: shared.config.clone(),
                health: Health::default(),
                quarantines: None,
                manifest,
                size: bytes.len(),
                _ticker: shared.ticker.clone(),
            }),
        })
    }

    fn context(
        &self,
        identity: LoadedIdentity,
        namespace: Arc<dyn crate::state::Namespace>,
        devices: Arc<dyn DeviceDirectory>,
        grant: manifest::Grant,
        binding: Binding,
    ) -> Result<Arc<DriverContext>> {
        let shared = &self.shared;
        let audit_driver = match binding {
            Binding::Live => identity.name.to_string(),
            Binding::Isolated => format!("unapproved:{}", identity.name),
        };
        let rate = shared.config.log_rate;
        Ok(Arc::new(DriverContext {
            identity: Arc::new(identity),
            namespace,
            devices,
            policy: shared.policy.clone(),
            http: shared.http.clone(),
            log_limiter: LogLimiter::new(rate, rate.saturating_mul(10)),
            audit: shared.audit.clone(),
            metrics: shared.metrics.clone(),
            max_log_calls: shared.config.max_log_calls,
            max_import_calls: shared.config.max_import_calls,
            max_audit_bytes: shared.config.max_audit_bytes,
            audit_driver,
            grant,
        }))
    }
}

/// Where quarantines are kept, so that a restart does not lift one.
pub trait QuarantineStore: Send + Sync {
    /// Why version `sha256` is quarantined, if it is.
    fn quarantined(&self, sha256: &str) -> Option<String>;
    fn quarantine(&self, identity: &LoadedIdentity, reason: &str);
    fn release(&self, sha256: &str);
}

/// What a loaded driver version is bound to.
#[derive(Clone, Copy)]
enum Binding {
    /// Its name's state namespace and the host's devices.
    Live,
    /// A throw-away namespace and no devices (upload checks).
    Isolated,
}

/// The namespace a driver sees before it has a name: reads nothing, keeps nothing.
struct NoState;

impl crate::state::Namespace for NoState {
    fn get(&self, _key: &str) -> crate::state::Result<Option<Vec<u8>>> {
        Ok(None)
    }
    fn set(&self, _key: &str, _value: &[u8]) -> crate::state::Result<()> {
        Err(crate::state::StateError::InvalidKey(
            "no state during capabilities".into(),
        ))
    }
    fn delete(&self, _key: &str) -> crate::state::Result<bool> {
        Ok(false)
    }
    fn keys(&self, _prefix: &str) -> crate::state::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn usage(&self) -> u64 {
        0
    }
}

struct LoadedInner {
    pre: DriverPre,
    context: Arc<DriverContext>,
    /// What the driver answered to `capabilities` at load, in the contract's types.
    reported: DriverCapabilities,
    /// The same in the host's types.
    capabilities: Capabilities,
    origin: Origin,
    config: RuntimeConfig,
    health: Health,
    /// Where this version's quarantine is kept, when the host keeps records.
    quarantines: Option<Arc<dyn QuarantineStore>>,
    manifest: Option<manifest::Manifest>,
    /// Bytes of the component.
    size: usize,
    /// Deadlines need the epoch to advance for as long as the driver can be called, even
    /// after the runtime that loaded it is gone.
    _ticker: Arc<engine::EpochTicker>,
}

/// Failed calls in a row of each export, and the quarantine they lead to. Counted per export:
/// a driver whose `translate` always fails is broken even while its `select` works.
#[derive(Default)]
struct Health {
    failures: std::sync::Mutex<std::collections::HashMap<&'static str, u32>>,
    quarantine: std::sync::Mutex<Option<String>>,
}

impl Health {
    fn succeeded(&self, function: &'static str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = failures.get_mut(function) {
            *count = 0;
        }
    }

    /// Counts a failure; returns how many in a row.
    fn failed(&self, function: &'static str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(function).or_default();
        *count += 1;
        *count
    }

    fn clear(&self) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// One loaded driver version, ready to call. Cheap to clone; calls may run concurrently.
#[derive(Clone)]
pub struct LoadedDriver {
    inner: Arc<LoadedInner>,
}

impl std::fmt::Debug for LoadedDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedDriver")
            .field("identity", &self.inner.context.identity)
            .finish()
    }
}

impl LoadedDriver {
    pub fn identity(&self) -> &LoadedIdentity {
        &self.inner.context.identity
    }

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
        self.call_scoped(function, None, run)
    }

    /// [`LoadedDriver::call`] whose device calls to one device carry a load balancer's
    /// [`scope::Scope`].
    fn call_scoped<R>(
        &self,
        function: &'static str,
        scope: Option<scope::DeviceScope>,
        run: impl FnOnce(&DriverInstance, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R> {
        let inner = &self.inner;
        let result = call(
            &inner.config,
            &inner.pre,
            &inner.context,
            function,
            scope,
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
        let failures = inner.health.failed(function);
        if failures < inner.config.quarantine_after {
            return;
        }
        let mut quarantine = inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if quarantine.is_some() {
            return;
        }
        let reason = format!("{failures} failed `{function}` calls in a row, the last: {failure}");
        let identity = self.identity();
        tracing::error!(driver = %identity.name, version = %identity.version, %reason, "driver quarantined");
        inner
            .context
            .metrics
            .quarantined(identity.name.as_str(), &identity.version);
        inner.context.audit.append(vec![self.event(
            "lifecycle.quarantine",
            Some(function.to_owned()),
            audit::Outcome::Denied,
            Some(reason.clone()),
        )]);
        if let Some(store) = &inner.quarantines {
            store.quarantine(identity, &reason);
        }
        *quarantine = Some(reason);
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

    /// Records that a call of this version was under way when the host stopped (found at the
    /// next start): audited, and counted as a failure of `function` towards quarantine.
    pub fn interrupted(&self, function: &'static str, detail: String) {
        let failure = Failure::Interrupted(detail);
        self.inner.context.audit.append_durable(vec![self.event(
            failure.audit_name(),
            Some(function.to_owned()),
            audit::Outcome::Denied,
            Some(failure.to_string()),
        )]);
        self.failed(function, &failure);
    }

    /// Why the driver version is quarantined, when it is.
    pub fn quarantined(&self) -> Option<String> {
        self.inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes on a quarantine decided (or lifted) elsewhere: by another host sharing the store,
    /// which already recorded and audited it.
    pub fn follow_quarantine(&self, reason: Option<String>) {
        let inner = &self.inner;
        let lifted = reason.is_none();
        *inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = reason;
        if lifted {
            inner.health.clear();
        }
    }

    /// Lifts the quarantine (an admin's decision, recorded); false when there was none.
    pub fn release(&self, by: &str) -> bool {
        let inner = &self.inner;
        let lifted = inner
            .health
            .quarantine
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        inner.health.clear();
        if let Some(store) = &inner.quarantines {
            store.release(&self.identity().sha256);
        }
        if lifted.is_some() {
            inner.context.audit.append(vec![self.event(
                "lifecycle.release",
                None,
                audit::Outcome::Ok,
                Some(format!("released by {by}")),
            )]);
        }
        lifted.is_some()
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

    pub fn validate_flavor(&self, flavor: &Flavor) -> Result<()> {
        self.call("validate-flavor", |d, s| d.validate_flavor(s, flavor))?
            .map_err(|e| self.refused("validate-flavor", e))
    }

    pub fn validate_availability_zone(&self, zone: &AvailabilityZone) -> Result<()> {
        self.call("validate-availability-zone", |d, s| {
            d.validate_availability_zone(s, zone)
        })?
        .map_err(|e| self.refused("validate-availability-zone", e))
    }

    pub fn select(&self, request: &PlacementRequest, candidates: &[Candidate]) -> Result<Hints> {
        let hints = self.call("select", |d, s| d.select(s, request, candidates))?;
        // A hint for a device that was not offered is ignored rather than trusted.
        if hints.devices.len() > candidates.len() {
            return Err(self.too_large("select", "hints", hints.devices.len(), candidates.len()));
        }
        Ok(hints)
    }

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
        let scope = scope::Scope::of(lb, &self.inner.context.policy.reserved).for_device(device);
        self.call_scoped("apply", Some(scope), |d, s| d.apply(s, lb, device, config))?
            .map_err(|e| self.refused("apply", e))
    }

    /// Removes `lb` from `device`, whose requests carry `lb`'s scope (a device removes only
    /// the load balancer the job is for).
    pub fn remove(&self, lb: &LoadBalancer, device: &Device) -> Result<()> {
        let scope = scope::Scope::of(lb, &self.inner.context.policy.reserved).for_device(device);
        self.call_scoped("remove", Some(scope), |d, s| d.remove(s, lb, device))?
            .map_err(|e| self.refused("remove", e))
    }

    /// The contract version the driver implements (`lbaas:driver@0.3.0`).
    pub fn contract(&self) -> &'static str {
        self.inner.pre.contract()
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
fn call<R>(
    config: &RuntimeConfig,
    pre: &DriverPre,
    context: &Arc<DriverContext>,
    function: &'static str,
    scope: Option<scope::DeviceScope>,
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
        HostState::new(context.clone(), context.grant.memory_bytes, deadline).with_scope(scope),
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

/// A device refused by its policy what the driver sent during the call.
#[derive(Debug)]
struct DeviceRefusal(String);

impl std::fmt::Display for DeviceRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DeviceRefusal {}

/// The most flavor keys a driver may declare.
const MAX_FLAVOR_KEYS: usize = 64;

/// What a driver says about itself beyond its name is shown to operators, logged and audited:
/// its version, its vendor and its flavor keys must be short, printable labels. A driver that
/// reports anything else is not loaded.
fn check_identity(caps: &DriverCapabilities) -> std::result::Result<(), lbaas_core::InvalidId> {
    use lbaas_core::{check_driver_text, check_driver_version};
    check_driver_version(&caps.version)?;
    check_driver_text("vendor", &caps.vendor, 128)?;
    if caps.flavor_keys.len() > MAX_FLAVOR_KEYS {
        return Err(lbaas_core::InvalidId {
            what: "flavor key list",
            value: format!("{} keys", caps.flavor_keys.len()),
            why: "holds more than 64 keys",
        });
    }
    for key in &caps.flavor_keys {
        check_driver_text("flavor key", &key.name, 64)?;
        check_driver_text("flavor key help", &key.help, 1024)?;
    }
    Ok(())
}

/// `text` as one line of at most `max` characters: control characters escaped, so that what a
/// driver or a device wrote cannot forge a log line or a record's layout.
pub fn printable(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max));
    for (count, c) in text.chars().enumerate() {
        if count == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

fn classify(
    config: &RuntimeConfig,
    deadline: Duration,
    store: &Store<HostState>,
    error: &wasmtime::Error,
    instantiating: bool,
) -> Failure {
    let state = store.data();
    if let Some(wanted) = state.memory_exceeded() {
        return Failure::MemoryLimit {
            wanted,
            limit: state.context.grant.memory_bytes,
        };
    }
    if let Some(limit) = error.downcast_ref::<host::ImportLimit>() {
        return Failure::Limit(limit.0.clone());
    }
    if let Some(refusal) = error.downcast_ref::<DeviceRefusal>() {
        return Failure::DeviceRefused(refusal.0.clone());
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Failure::Deadline(deadline),
        Some(Trap::StackOverflow) => Failure::StackOverflow(config.stack_limit),
        Some(trap) => Failure::Trap {
            trap: trap.to_string(),
            guest: state.stderr_tail(),
        },
        None if instantiating => Failure::Instantiate(format!("{error:#}")),
        None => Failure::Trap {
            trap: format!("{error:#}"),
            guest: state.stderr_tail(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    /// What a driver or a device wrote stays one line and bounded: a newline cannot forge a
    /// host log line, an escape sequence cannot reach a terminal.
    #[test]
    fn printable_text_is_one_bounded_line() {
        let forged = "ok\n2026-11-30T00:00:00Z  INFO lbaasd: driver released by admin\r\x1b[2J";
        let shown = printable(forged, 200);
        assert!(!shown.contains(['\n', '\r', '\x1b']), "{shown}");
        assert!(shown.starts_with("ok\\n2026"), "{shown}");
        assert!(shown.ends_with("\\r\\u{1b}[2J"), "{shown}");
        assert_eq!(printable(&"é".repeat(10), 4), "éééé…");
        assert_eq!(printable("plain", 10), "plain");
    }
}
