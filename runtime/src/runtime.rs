//! The [`Runtime`]: one engine and linker for every driver, the cache of compiled code, and
//! loading a component into a [`LoadedDriver`] (checked, named, bound to its namespace).

use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use crate::bindings::DriverPre;
use crate::bindings::types::DriverCapabilities;
use crate::cache::Origin;
use crate::config::RuntimeConfig;
use crate::devices::DeviceDirectory;
use crate::driver::{LoadedDriver, LoadedInner, call};
use crate::error::{Error, Result};
use crate::host::{DriverContext, HostState, LogLimiter};
use crate::identity::LoadedIdentity;
use crate::permissions::DevicePolicy;
use crate::quarantine::{Health, QuarantineStore};
use crate::state::StateStore;
use crate::{bindings, cache, engine, manifest};
use lbaas_core::DriverName;
use lbaas_core::audit::{self, AuditSink, Discard};
use lbaas_telemetry::Metrics;

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
        Health::kept_in(self.shared.quarantines.get().cloned(), sha256)
    }

    /// The runtime's limits and knobs.
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
            (None, Default::default()),
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
                capabilities: crate::capabilities::host(&capabilities),
                reported: capabilities,
                origin: origin_kind,
                config: shared.config.clone(),
                health: Health::default(),
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
