//! One way to wire a host, for `lbaasd serve` and for the tests: the storage backends (sled in
//! the data folder, or a PostgreSQL database several hosts share), the audited driver runtime, the driver registry and its drivers, the control plane,
//! the API, and the background tasks that shutdown drains.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use lbaas_api::{Api, Auth, Policy};
use lbaas_control::drivers::Drivers;
use lbaas_control::drivers::directory::{self, FileOutcome, FolderWatch};
use lbaas_control::provision::Provisioner;
use lbaas_control::secrets::LocalKeys;
use lbaas_control::tasks::Tasks;
use lbaas_control::worker::StoreDevices;
use lbaas_control::{ControlPlane, DeviceRegistration, fleet, monitor, worker};
use lbaas_core::store::{HostAbout, Store};
use lbaas_postgres::{PgAudit, PgStateStore, PgStore};
use lbaas_runtime::integrity::Trust;
use lbaas_runtime::{Runtime, RuntimeConfig};
use lbaas_sled::audit::AuditLog;
use lbaas_sled::driver_state::SledStateStore;
use lbaas_sled::{DEFAULT_CACHE_BYTES, SledStore};
use lbaas_telemetry::Metrics;
use tokio::sync::mpsc::UnboundedReceiver;

/// Where a host's drivers come from.
#[derive(Debug, Clone)]
pub enum DriverSource {
    /// Directory mode: each new `*.wasm` file is uploaded and activated, at start and every
    /// `poll` while serving; a refused file is audited and logged, the running version stays.
    Folder { dir: PathBuf, poll: Duration },
    /// These files, uploaded and activated at start; any refusal fails the start.
    Files(Vec<PathBuf>),
}

/// Where a host keeps its records, drivers' state and audit chain.
#[derive(Clone)]
pub enum StoreChoice {
    /// sled in the data folder (`db/`): one host, the embedded default.
    Sled,
    /// A PostgreSQL database, which several hosts may share; `lease` is how long a host's job
    /// leases and heartbeat last.
    Postgres { url: String, lease: Duration },
}

impl std::fmt::Debug for StoreChoice {
    /// Never the address's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreChoice::Sled => f.write_str("Sled"),
            StoreChoice::Postgres { url, lease } => f
                .debug_struct("Postgres")
                .field("url", &lbaas_postgres::redact(url))
                .field("lease", lease)
                .finish(),
        }
    }
}

/// This host's id in a fleet: kept in the data folder (`host.id`), so a restarted host takes
/// back its own job leases at once.
pub fn host_id(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join("host.id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        _ => {
            let id = uuid::Uuid::new_v4().to_string();
            std::fs::write(&path, &id)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
    }
}

/// The storage backends a host opened.
struct Backends {
    store: Arc<dyn Store>,
    state: Arc<dyn lbaas_core::driver_state::StateStore>,
    sink: Arc<dyn lbaas_core::audit::AuditSink>,
    trail: Arc<dyn lbaas_core::audit::AuditTrail>,
    /// The sled database, flushed at shutdown.
    db: Option<sled::Db>,
}

/// How to wire a host. Everything but the data folder has the default `lbaasd serve` uses.
pub struct HostBuilder {
    data_dir: PathBuf,
    store_choice: StoreChoice,
    cache_bytes: u64,
    runtime: RuntimeConfig,
    trust: Trust,
    auth: Auth,
    policy: Policy,
    audit_key: Option<PathBuf>,
    secrets_key: Option<PathBuf>,
    /// Barbican's endpoint, when secrets are kept there (needs Keystone).
    barbican: Option<String>,
    drivers: DriverSource,
    provisioner: Option<Arc<dyn Provisioner>>,
    status_interval: Option<Duration>,
    workers: usize,
    members_register_devices: bool,
    conformance: bool,
    flush_before_ack: bool,
    public_url: Option<String>,
    reserved: lbaas_control::addresses::AddressRules,
}

impl HostBuilder {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            store_choice: StoreChoice::Sled,
            cache_bytes: DEFAULT_CACHE_BYTES,
            runtime: RuntimeConfig::default(),
            trust: Trust::default(),
            auth: Auth::None,
            policy: Policy::default(),
            audit_key: None,
            secrets_key: None,
            barbican: None,
            drivers: DriverSource::Files(Vec::new()),
            provisioner: None,
            status_interval: None,
            workers: 4,
            members_register_devices: false,
            conformance: true,
            flush_before_ack: true,
            public_url: None,
            reserved: Default::default(),
        }
    }

    /// Where records, drivers' state and the audit chain are kept (sled in the data folder by
    /// default).
    pub fn store(mut self, choice: StoreChoice) -> Self {
        self.store_choice = choice;
        self
    }

    /// Where clients reach the API (`https://lb.example.com`), when not at its listen address:
    /// links use it, and `Host` and `Origin` may name it.
    pub fn public_url(mut self, url: Option<String>) -> Self {
        self.public_url = url;
        self
    }

    /// Sockets the host listens on or calls besides its API (metrics, OTLP, Keystone) and
    /// networks it keeps: no tenant address and no device may point there. The API's address,
    /// the database's and the provisioner's management range are added by
    /// [`HostBuilder::build`].
    pub fn reserve(
        mut self,
        sockets: Vec<SocketAddr>,
        networks: Vec<lbaas_control::net::IpNet>,
    ) -> Self {
        self.reserved.host_sockets.extend(sockets);
        self.reserved.reserved_networks.extend(networks);
        self
    }

    /// Bytes of pages the database keeps cached.
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// The driver runtime's limits and device policy (its cache folder and the host's own
    /// address are set by [`HostBuilder::build`]).
    pub fn runtime(mut self, config: RuntimeConfig) -> Self {
        self.runtime = config;
        self
    }

    /// Which components the host accepts.
    pub fn trust(mut self, trust: Trust) -> Self {
        self.trust = trust;
        self
    }

    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// Which roles the API honours (Octavia's default policy unless told).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The key that signs audit checkpoints; by default `audit.key` in the data folder,
    /// created when missing.
    pub fn audit_key(mut self, path: PathBuf) -> Self {
        self.audit_key = Some(path);
        self
    }

    /// Keeps tenants' secrets in the Barbican at `url` (with `--auth keystone`) instead of the
    /// host's own store.
    pub fn barbican(mut self, url: &str) -> Self {
        self.barbican = Some(url.to_owned());
        self
    }

    /// The key the local key manager seals tenants' secrets under; by default `secrets.key` in
    /// the data folder, created when missing.
    pub fn secrets_key(mut self, path: PathBuf) -> Self {
        self.secrets_key = Some(path);
        self
    }

    pub fn drivers(mut self, source: DriverSource) -> Self {
        self.drivers = source;
        self
    }

    /// Lets drivers spawn devices through `provisioner`.
    pub fn provisioner(mut self, provisioner: Arc<dyn Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// Polls every device's status this often (without, the status monitor does not run).
    pub fn status_interval(mut self, interval: Duration) -> Self {
        self.status_interval = Some(interval);
        self
    }

    /// Jobs the worker runs at once.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Lets project members register virtual devices of their own project.
    pub fn members_register_devices(mut self, members: bool) -> Self {
        self.members_register_devices = members;
        self
    }

    /// Stores drivers that fail the conformance kit: for tests of drivers that pass it and
    /// misbehave later. Every other check still runs.
    pub fn without_conformance(mut self) -> Self {
        self.conformance = false;
        self
    }

    /// Answers writes before they reach the disk: for measuring what durability costs only.
    pub fn acknowledge_before_flush(mut self) -> Self {
        self.flush_before_ack = false;
        self
    }

    /// Opens the chosen backends.
    fn open_backends(
        &self,
        state_quota: u64,
        signer: ed25519_dalek::SigningKey,
        metrics: &Metrics,
    ) -> anyhow::Result<Backends> {
        match &self.store_choice {
            StoreChoice::Sled => {
                let path = self.data_dir.join("db");
                let db = lbaas_sled::open_database(&path, self.cache_bytes).with_context(|| {
                    format!("cannot open the database in {}", self.data_dir.display())
                })?;
                let audit = Arc::new(AuditLog::open(&db, metrics)?.with_signer(signer));
                Ok(Backends {
                    store: Arc::new(SledStore::new(db.clone())?),
                    state: Arc::new(SledStateStore::new(db.clone(), state_quota)),
                    sink: audit.clone(),
                    trail: audit,
                    db: Some(db),
                })
            }
            StoreChoice::Postgres { url, lease } => {
                let host = host_id(&self.data_dir)?;
                let database = Arc::new(
                    lbaas_postgres::Database::open(url, &host, *lease).with_context(|| {
                        format!(
                            "cannot use the PostgreSQL database {}",
                            lbaas_postgres::redact(url)
                        )
                    })?,
                );
                let audit = Arc::new(PgAudit::open(database.clone(), metrics)?.with_signer(signer));
                Ok(Backends {
                    store: Arc::new(PgStore::new(database.clone())),
                    state: Arc::new(PgStateStore::new(database, state_quota)),
                    sink: audit.clone(),
                    trail: audit,
                    db: None,
                })
            }
        }
    }

    /// Opens the data folder, builds the runtime and the registry, loads the drivers and wires
    /// the control plane and the API behind `listener` (bound already, so the host's own
    /// address is known to the device allow-lists).
    pub fn build(self, listener: std::net::TcpListener) -> anyhow::Result<Host> {
        let data_dir = &self.data_dir;
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data folder {}", data_dir.display()))?;
        let audit_key = self
            .audit_key
            .clone()
            .unwrap_or_else(|| data_dir.join("audit.key"));
        let signer = lbaas_runtime::integrity::signing_key_file(&audit_key).with_context(|| {
            format!(
                "cannot read or create the audit key {}",
                audit_key.display()
            )
        })?;
        let secrets_key = self
            .secrets_key
            .clone()
            .unwrap_or_else(|| data_dir.join("secrets.key"));
        let keys = LocalKeys::new(&lbaas_core::secret_file(&secrets_key).with_context(|| {
            format!(
                "cannot read or create the secrets key {}",
                secrets_key.display()
            )
        })?);
        // One registry for this control plane: the audit writer, the driver runtime, the
        // worker and the API all count in it.
        let metrics = Metrics::default();
        let Backends {
            store,
            state,
            sink,
            trail,
            db,
        } = self.open_backends(self.runtime.state_quota, signer, &metrics)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let mut config = RuntimeConfig {
            cache_dir: Some(data_dir.join("cache")),
            ..self.runtime
        };
        // Nothing a driver or a tenant names may aim the host's HTTP client, or a device's
        // traffic, at the host itself or at what it calls.
        let mut rules = self.reserved.clone();
        rules.host_sockets.push(address);
        rules.reserved_networks.extend(
            self.provisioner
                .as_ref()
                .and_then(|provisioner| provisioner.management_range()),
        );
        if let Some(provisioner) = &self.provisioner {
            rules.host_addresses.extend(provisioner.host_addresses());
        }
        let barbican = match (&self.barbican, &self.auth) {
            (None, _) => None,
            (Some(url), Auth::Keystone(keystone)) => {
                // The host calls Barbican with its own token: nothing a tenant or driver names
                // may aim there.
                rules
                    .host_sockets
                    .extend(lbaas_control::addresses::sockets_of_url(url, 9311));
                Some(lbaas_control::barbican::Barbican::new(
                    url,
                    keystone.clone(),
                    Duration::from_secs(10),
                )?)
            }
            (Some(_), _) => anyhow::bail!("Barbican as the key manager needs Keystone as the auth"),
        };
        if let StoreChoice::Postgres { url, .. } = &self.store_choice {
            rules
                .host_sockets
                .extend(lbaas_control::addresses::sockets_of_url(url, 5432));
        }
        config.device_policy.reserved = rules.host_sockets.clone();
        // The devices the host spawns are where it put them: their range is a device network.
        if let Some(range) = self
            .provisioner
            .as_ref()
            .and_then(|provisioner| provisioner.management_range())
            && !config
                .device_policy
                .allowed_networks
                .iter()
                .any(|network| network.contains(&range))
        {
            config.device_policy.allowed_networks.push(range);
        }
        // Where devices' management endpoints are: no VIP (a route there would hand the host's
        // calls to a device to whoever serves the VIP) and no project subnet.
        rules.device_networks = config.device_policy.allowed_networks.clone();
        let registration =
            DeviceRegistration::for_policy(&config.device_policy, self.members_register_devices);
        let runtime = Runtime::audited(
            config,
            state,
            Arc::new(StoreDevices::new(store.clone())),
            sink.clone(),
            metrics.clone(),
        )?;
        let mut registry = Drivers::managed(runtime, self.trust, store.clone(), sink)?;
        if !self.conformance {
            registry = registry.without_conformance();
        }
        let (jobs, queue) = tokio::sync::mpsc::unbounded_channel();
        // The bundled HAProxy driver takes load balancers that name no provider, while active.
        let mut plane = ControlPlane::new(store, Arc::new(registry), Some("haproxy".into()), jobs)
            .with_device_registration(registration)
            .with_address_rules(rules)
            .with_metrics(metrics)
            .with_local_keys(keys);
        if let Some(barbican) = barbican {
            plane = plane.with_external_keys(Arc::new(barbican));
        }
        if let Some(provisioner) = self.provisioner {
            plane = plane.with_provisioner(provisioner);
        }
        if !self.flush_before_ack {
            plane = plane.acknowledge_before_flush();
        }
        let plane = Arc::new(plane);
        let mut edge = lbaas_api::edge::Edge::new(address);
        if let Some(url) = &self.public_url {
            edge = edge.public_url(url)?;
        }
        let api = Arc::new(
            Api::new(plane.clone(), self.auth)
                .with_policy(self.policy)
                .with_audit(trail)
                .with_edge(edge),
        );
        Ok(Host {
            plane,
            api,
            db,
            listener,
            address,
            queue,
            drivers: self.drivers,
            status_interval: self.status_interval,
            workers: self.workers,
        })
    }
}

/// A host wired and not yet serving.
pub struct Host {
    plane: Arc<ControlPlane>,
    api: Arc<Api>,
    db: Option<sled::Db>,
    listener: std::net::TcpListener,
    address: SocketAddr,
    queue: UnboundedReceiver<String>,
    drivers: DriverSource,
    status_interval: Option<Duration>,
    workers: usize,
}

impl Host {
    /// Where the API listens.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn plane(&self) -> &Arc<ControlPlane> {
        &self.plane
    }

    /// The API the host serves (for listeners of its own, such as the metrics').
    pub fn api(&self) -> &Arc<Api> {
        &self.api
    }

    /// Loads the drivers (a refused file of [`DriverSource::Files`] fails the start), adopts
    /// the devices spawned by an earlier run, then starts the background tasks: the host is
    /// ready to serve when this returns. Must run inside a Tokio runtime.
    pub async fn start(self) -> anyhow::Result<Serving> {
        let plane = self.plane;
        let watcher = match self.drivers {
            DriverSource::Folder { dir, poll } => {
                let mut watcher = FolderWatch::new(dir);
                watcher.scan(&plane).await;
                Some((watcher, poll))
            }
            DriverSource::Files(files) => {
                let outcomes = plane.sync_driver_files(&files).await;
                for (file, outcome) in files.iter().zip(outcomes) {
                    if let FileOutcome::Refused { reason } = outcome {
                        anyhow::bail!("driver {} was refused: {reason}", file.display());
                    }
                }
                None
            }
        };
        if plane.drivers.all().is_empty() {
            tracing::warn!("no drivers active");
        }
        worker::adopt_devices(&plane).await;
        let mut tasks = Tasks::new();
        let about = HostAbout {
            name: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|name| name.trim().to_owned())
                .unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            address: self.address.to_string(),
        };
        plane.introduce(&about);
        if plane.store.fleet().is_some() {
            tasks.spawn(
                "fleet",
                fleet::run(plane.clone(), about, tasks.stop_signal()),
            );
        }
        tasks.spawn(
            "job worker",
            worker::run_jobs(plane.clone(), self.queue, self.workers, tasks.stop_signal()),
        );
        if let Some(interval) = self.status_interval {
            tasks.spawn(
                "status monitor",
                monitor::run(plane.clone(), interval, tasks.stop_signal()),
            );
        }
        if let Some((watcher, poll)) = watcher {
            tasks.spawn(
                "driver folder",
                directory::watch(plane.clone(), watcher, poll, tasks.stop_signal()),
            );
        }
        Ok(Serving {
            listener: tokio::net::TcpListener::from_std(self.listener)?,
            app: lbaas_api::router(self.api),
            tasks,
            db: self.db,
        })
    }
}

/// A started host: the API not yet accepting, the background tasks running.
pub struct Serving {
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tasks: Tasks,
    db: Option<sled::Db>,
}

impl Serving {
    /// Serves until `shutdown` resolves, then lets open requests finish, drains the
    /// background tasks (running jobs end; queued ones stay stored for the next start) and
    /// flushes the database.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.tasks.drain().await;
        if let Some(db) = self.db {
            db.flush_async().await?;
        }
        Ok(())
    }
}
