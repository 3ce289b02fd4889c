//! `lbaasd`: the LBaaS host. `serve` runs the host with a folder of driver components;
//! `driver inspect` loads one component and prints what it reports.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use lbaas_host::addresses::sockets_of_url;
use lbaas_host::api::Auth;
use lbaas_host::api::keystone::{Keystone, KeystoneConfig};
use lbaas_host::audit;
use lbaas_host::builder::{DriverSource, HostBuilder, StoreChoice};
use lbaas_host::devices::StaticDevices;
use lbaas_host::driver_state::SledStateStore;
use lbaas_host::integrity::{self, Trust};
use lbaas_host::net::IpNet;
use lbaas_host::provision::{LocalProcesses, Provisioner};
use lbaas_host::runtime::{LoadedDriver, Runtime, RuntimeConfig};

/// Where `cargo drivers` puts the bundled drivers.
const BUNDLED_DRIVERS: &str = "target/wasm/wasm32-wasip2/release";

#[derive(Parser)]
#[command(
    name = "lbaasd",
    version,
    about = "LBaaS control plane with WebAssembly vendor drivers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:9876")]
        listen: SocketAddr,
        /// Folder for the database and the compiled-driver cache.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Folder of driver components (`*.wasm`, each optionally signed in `FILE.wasm.sig`):
        /// a file not seen before is uploaded and activated, at start and while serving.
        #[arg(long, default_value = BUNDLED_DRIVERS)]
        driver_dir: PathBuf,
        /// How often the driver folder is looked at for new files.
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
        driver_poll: std::time::Duration,
        /// Networks device management endpoints may be in (repeatable). Default: loopback.
        #[arg(long = "device-network", value_name = "CIDR")]
        device_networks: Vec<IpNet>,
        /// `none` (Octavia's noauth: everything allowed; loopback listen addresses only),
        /// `tokens` (with --tokens-file) or `keystone` (with --keystone-url and the host's
        /// service user).
        #[arg(long, default_value = "none", value_parser = ["none", "tokens", "keystone"])]
        auth: String,
        /// Who may register devices: `admins`, or also project `members` (a virtual device of
        /// their own project).
        #[arg(long, default_value = "admins", value_parser = ["admins", "members"])]
        device_registration: String,
        /// JSON object mapping tokens to {"project_id", "roles"}, for --auth tokens.
        #[arg(long, value_name = "FILE")]
        tokens_file: Option<PathBuf>,
        /// Where clients reach the API when not at --listen (behind a proxy or a DNS name),
        /// e.g. https://lb.example.com: links in answers use it, and a request whose `Host` or
        /// `Origin` names anything but the listen address or this is refused.
        #[arg(long, value_name = "URL")]
        public_url: Option<String>,
        /// Jobs the worker runs at once.
        #[arg(long, default_value_t = 4)]
        workers: usize,
        #[command(flatten)]
        store: StoreArg,
        /// On PostgreSQL: how long a host's heartbeat and job leases last. A host silent this
        /// long is taken for dead and another host finishes its jobs.
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
        lease: std::time::Duration,
        /// MiB of database pages kept cached in memory.
        #[arg(long, default_value_t = lbaas_host::store::DEFAULT_CACHE_BYTES >> 20)]
        cache_mib: u64,
        #[command(flatten)]
        keystone: KeystoneArgs,
        #[command(flatten)]
        audit_key: AuditKey,
        #[command(flatten)]
        data_plane: DataPlane,
        #[command(flatten)]
        trust: TrustArgs,
        #[command(flatten)]
        observe: Observe,
    },
    /// Work with driver components.
    Driver {
        #[command(subcommand)]
        command: DriverCommand,
    },
    /// Copy a stopped host's sled data folder into an empty PostgreSQL database: every
    /// record, every driver's state and the audit chain (verified on both sides). Then start
    /// `lbaasd serve --store URL` with the same --data-dir.
    MigrateStore {
        /// The data folder of the host to move (stopped).
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The PostgreSQL URL to copy into (or LBAAS_STORE).
        #[arg(long, env = "LBAAS_STORE", value_name = "URL", hide_env_values = true)]
        to: String,
    },
    /// Check or export the drivers' audit log (with the host stopped; a running host serves
    /// GET /v2/admin/audit and /v2/admin/audit/verify).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the hash chain; exit 1 if a record was edited or deleted.
    Verify {
        /// The host's data folder.
        #[arg(default_value = "./data")]
        data_dir: PathBuf,
        /// A checkpoint taken earlier (`audit checkpoint`, or `GET /v2/admin/audit/checkpoint`)
        /// and kept outside the data folder: records cut off the end, or rewritten before it,
        /// are found even when the chain's own head was rewritten to match.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
        /// The host's checkpoint public key (`audit public-key`), kept with the checkpoint:
        /// the checkpoint must carry this key's signature. Without it, a signed checkpoint is
        /// checked against the key it names only.
        #[arg(long, value_name = "FILE", requires = "checkpoint")]
        checkpoint_key: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Verify the chain and print a signed checkpoint of its head (JSON), to keep elsewhere.
    Checkpoint {
        /// The host's data folder.
        #[arg(default_value = "./data")]
        data_dir: PathBuf,
        /// Where to write; default: standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        audit_key: AuditKey,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Print the public key that checks this host's checkpoints (hex), to keep elsewhere.
    PublicKey {
        /// The host's data folder.
        #[arg(default_value = "./data")]
        data_dir: PathBuf,
        #[command(flatten)]
        audit_key: AuditKey,
    },
    /// Write every record as JSON Lines.
    Export {
        /// The host's data folder.
        #[arg(default_value = "./data")]
        data_dir: PathBuf,
        /// Where to write; default: standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        store: StoreArg,
    },
}

/// Which store holds the chain the audit commands read.
#[derive(clap::Args)]
struct StoreArg {
    /// Where records, drivers' state and the audit chain are kept: `sled` (in --data-dir, one
    /// host) or a PostgreSQL URL (`postgres://user:password@host/db`) that several hosts share.
    /// Read from LBAAS_STORE when not given, so a password need not be on the command line.
    #[arg(
        long,
        env = "LBAAS_STORE",
        default_value = "sled",
        value_name = "sled|URL",
        hide_env_values = true
    )]
    store: String,
}

/// The audit chain of a stopped sled host, or of the hosts' PostgreSQL database (which may be
/// read while they run).
enum Chain {
    Sled(sled::Db),
    Postgres(Box<lbaas_postgres::Database>),
}

impl Chain {
    fn open(data_dir: &Path, store: &StoreArg) -> anyhow::Result<Self> {
        match store_choice(&store.store, lbaas_postgres::DEFAULT_LEASE)? {
            StoreChoice::Sled => Ok(Chain::Sled(open_existing(data_dir)?)),
            StoreChoice::Postgres { url, lease } => Ok(Chain::Postgres(Box::new(
                lbaas_postgres::Database::open(&url, "audit", lease).with_context(|| {
                    format!(
                        "cannot use the PostgreSQL database {}",
                        lbaas_postgres::redact(&url)
                    )
                })?,
            ))),
        }
    }

    fn verify(
        &self,
        checkpoint: Option<&audit::Checkpoint>,
    ) -> anyhow::Result<audit::Verification> {
        Ok(match (self, checkpoint) {
            (Chain::Sled(db), Some(checkpoint)) => audit::verify_against(db, checkpoint)?,
            (Chain::Sled(db), None) => audit::verify(db)?,
            (Chain::Postgres(db), checkpoint) => lbaas_postgres::audit::verify(db, checkpoint),
        })
    }

    fn export(&self, out: &mut dyn std::io::Write) -> anyhow::Result<u64> {
        match self {
            Chain::Sled(db) => audit::export(db, out),
            Chain::Postgres(db) => lbaas_postgres::audit::export(db, out),
        }
    }
}

/// How `--auth keystone` reaches Keystone, as keystonemiddleware's `[keystone_authtoken]`.
#[derive(clap::Args)]
struct KeystoneArgs {
    /// Keystone's public endpoint (`http://keystone:5000`, with or without `/v3`).
    #[arg(long, value_name = "URL")]
    keystone_url: Option<String>,
    /// The host's service user, which asks Keystone about callers' tokens: it needs the
    /// `service` (or `admin`) role.
    #[arg(long, value_name = "NAME", default_value = "octavia")]
    keystone_user: String,
    /// File holding the service user's password (its first line).
    #[arg(long, value_name = "FILE")]
    keystone_password_file: Option<PathBuf>,
    /// Project the service user's token is scoped to.
    #[arg(long, value_name = "NAME", default_value = "service")]
    keystone_project: String,
    /// Domain id of the service user and of its project.
    #[arg(long, value_name = "ID", default_value = "default")]
    keystone_domain: String,
    /// How long a validated token is trusted before Keystone is asked again (a revoked token
    /// is refused at most this long after its revocation).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    keystone_cache: std::time::Duration,
}

impl KeystoneArgs {
    /// The Keystone client, its settings checked by getting the host's own token.
    fn connect(&self) -> anyhow::Result<Auth> {
        let Some(url) = &self.keystone_url else {
            bail!("--auth keystone needs --keystone-url URL");
        };
        let Some(file) = &self.keystone_password_file else {
            bail!("--auth keystone needs --keystone-password-file FILE");
        };
        let password = std::fs::read_to_string(file).with_context(|| {
            format!("cannot read the Keystone password file {}", file.display())
        })?;
        let mut config = KeystoneConfig::new(
            url,
            &self.keystone_user,
            password.lines().next().unwrap_or_default(),
        );
        config.project = self.keystone_project.clone();
        config.user_domain = self.keystone_domain.clone();
        config.project_domain = self.keystone_domain.clone();
        config.cache_for = self.keystone_cache;
        let keystone = Keystone::new(config);
        keystone.check()?;
        Ok(Auth::Keystone(Arc::new(keystone)))
    }
}

/// Where the key that signs audit checkpoints is.
#[derive(clap::Args)]
struct AuditKey {
    /// Secret ed25519 key (hex) that signs audit checkpoints, created (mode 0600) when missing.
    /// Default: `audit.key` in the data folder; keep it elsewhere so that someone with the data
    /// folder cannot sign checkpoints.
    #[arg(long = "audit-key", value_name = "FILE")]
    file: Option<PathBuf>,
}

impl AuditKey {
    fn path(&self, data_dir: &Path) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit.key"))
    }
}

fn checkpoint_signer(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    integrity::signing_key_file(path)
        .with_context(|| format!("cannot read or create the audit key {}", path.display()))
}

/// What the host tells operators beyond its logs: metrics and traces.
#[derive(clap::Args)]
struct Observe {
    /// Also serve `GET /metrics` (Prometheus) without authentication on this address, for a
    /// Prometheus server. Without it, admins read `/metrics` on the API's address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Export traces (one per request and per job, driver and device calls inside) over
    /// OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
}

/// Where spawned devices' management addresses come from: on the host's loopback, or, in
/// namespaces of their own, a range the host routes to them.
const SHARED_SPAWN_RANGE: &str = "127.128.0.0/16";
const ISOLATED_SPAWN_RANGE: &str = "198.18.0.0/16";

/// Which network spawned devices run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    Auto,
    Namespace,
    Shared,
}

/// How the host runs the HAProxy devices drivers ask it to spawn, and watches every device.
#[derive(clap::Args)]
struct DataPlane {
    /// The device agent executable. Default: `lbaas-agent` beside `lbaasd`.
    #[arg(long, value_name = "PATH")]
    agent: Option<PathBuf>,
    /// The HAProxy executable spawned devices run.
    #[arg(long, value_name = "PATH", default_value = "haproxy")]
    haproxy: PathBuf,
    /// Range spawned devices take their management addresses from. Default: `198.18.0.0/16`
    /// for devices in namespaces of their own, `127.128.0.0/16` (loopback) for shared ones.
    #[arg(long, value_name = "CIDR")]
    spawn_addresses: Option<IpNet>,
    /// Where spawned devices run: `namespace`, each in a network namespace of its own, joined
    /// to the host by a veth pair the host filters (needs root, iproute2 and nftables):
    /// `127.0.0.1` inside a device is not the host, the host routes each VIP to its device, and
    /// a device may call only its own members; `shared`, in the host's own network on loopback
    /// addresses; `auto` (the default), `namespace` where the host can, else `shared` with a
    /// warning.
    #[arg(long, value_enum, default_value_t = Isolation::Auto)]
    device_isolation: Isolation,
    /// For devices in namespaces of their own: the host's address on every device's link, the
    /// devices' default route, where members on this machine listen.
    #[arg(long, value_name = "ADDR", default_value = "198.19.0.1")]
    device_gateway: std::net::IpAddr,
    /// For devices in namespaces of their own, IPv6: the host's IPv6 address on every device's
    /// link, where members on this machine listen over IPv6; each device's IPv6 address is
    /// this /96 with its IPv4 address as the last 32 bits, and IPv6 VIPs are routed to their
    /// devices. Left out where the kernel has no IPv6.
    #[arg(long, value_name = "ADDR", default_value = "fd00:198:19::1")]
    device_gateway_v6: std::net::Ipv6Addr,
    /// Management port of spawned devices.
    #[arg(long, default_value_t = 9443)]
    agent_port: u16,
    /// Do not spawn devices: load balancers go only on registered devices.
    #[arg(long)]
    no_spawn: bool,
    /// How often device health and traffic counters are read.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    status_interval: std::time::Duration,
}

impl DataPlane {
    /// The provisioner of spawned devices, if any, and where they run, in words for the
    /// banner.
    fn provisioner(
        &self,
        data_dir: &Path,
    ) -> anyhow::Result<(Option<Arc<dyn Provisioner>>, String)> {
        let registered = |why: &str| Ok((None, format!("registered ones only ({why})")));
        if self.no_spawn {
            return registered("--no-spawn");
        }
        let agent = match &self.agent {
            Some(agent) => agent.clone(),
            None => std::env::current_exe()?.with_file_name("lbaas-agent"),
        };
        if !agent.exists() {
            tracing::warn!(agent = %agent.display(), "no device agent: load balancers go only on registered devices");
            return registered("no lbaas-agent");
        }
        let devices = data_dir.join("devices");
        let isolate = match self.device_isolation {
            Isolation::Namespace => true,
            Isolation::Shared => false,
            Isolation::Auto => match LocalProcesses::can_isolate() {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(
                        "spawned devices share the host's network ({error}): a device's \
                         configuration can reach what the host listens on; run the host as root \
                         with iproute2 and nftables to give each device a namespace of its own"
                    );
                    false
                }
            },
        };
        let (local, where_) = if isolate {
            let range = self
                .spawn_addresses
                .unwrap_or(ISOLATED_SPAWN_RANGE.parse()?);
            let local = LocalProcesses::isolated(
                agent,
                self.haproxy.clone(),
                devices,
                range,
                self.device_gateway,
                self.agent_port,
            )?;
            let mut gateway = self.device_gateway.to_string();
            let local = if Path::new("/proc/sys/net/ipv6").exists() {
                gateway = format!("{gateway} and {}", self.device_gateway_v6);
                local.with_ipv6_gateway(self.device_gateway_v6)?
            } else {
                tracing::warn!("the kernel has no IPv6: IPv6 VIPs are not routed to devices");
                local
            };
            (
                local,
                format!(
                    "spawned from {range}, each in a network namespace of its own; members on \
                     this machine listen at {gateway}"
                ),
            )
        } else {
            let range = self.spawn_addresses.unwrap_or(SHARED_SPAWN_RANGE.parse()?);
            let local =
                LocalProcesses::new(agent, self.haproxy.clone(), devices, range, self.agent_port)?;
            (
                local,
                format!("spawned on {range}, in the host's own network"),
            )
        };
        // Said at start in plain words; each load balancer that needs a new device says it
        // again in its fault until it is fixed. Registered devices serve meanwhile.
        if let Err(error) = local.check_programs() {
            tracing::warn!(
                "{error}: load balancers that need a new HAProxy device will fail until this is fixed"
            );
        }
        Ok((Some(Arc::new(local)), where_))
    }
}

#[derive(Subcommand)]
enum DriverCommand {
    /// Check a driver component's signature and pins, load it, and print its identity,
    /// capabilities, manifest and grant as JSON.
    Inspect {
        /// The component, e.g. target/wasm/wasm32-wasip2/release/lbaas_driver_haproxy.wasm.
        file: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Run the conformance kit (the checks an upload must pass) on a component; exit 1 when a
    /// check fails.
    Check {
        file: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        trust: TrustArgs,
    },
    /// Make an ed25519 key pair for signing drivers: FILE (secret) and FILE.pub.
    Keygen { file: PathBuf },
    /// Sign a driver component: writes FILE.wasm.sig.
    Sign {
        /// The secret key (from `driver keygen`).
        #[arg(long)]
        key: PathBuf,
        file: PathBuf,
    },
}

/// Which driver components the host runs.
#[derive(clap::Args)]
struct TrustArgs {
    /// A vendor's ed25519 public key (hex, from `driver keygen`) whose signatures are
    /// trusted (repeatable). A component's signature is FILE.wasm.sig beside it.
    #[arg(long = "trusted-key", value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
    /// Refuse unsigned components.
    #[arg(long)]
    require_signatures: bool,
    /// Run only components with this SHA-256 (repeatable).
    #[arg(long = "pin", value_name = "SHA256")]
    pins: Vec<String>,
}

impl TrustArgs {
    fn trust(&self) -> anyhow::Result<Trust> {
        Trust::new(&self.trusted_keys, self.require_signatures, &self.pins)
            .map_err(anyhow::Error::msg)
    }
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let otlp_endpoint = match &cli.command {
        Command::Serve { observe, .. } => observe.otlp_endpoint.as_deref(),
        _ => None,
    };
    // Dropped last: the final traces are flushed once everything else has stopped.
    let _traces = lbaas_host::traces::init(otlp_endpoint)?;
    match cli.command {
        Command::Serve {
            listen,
            data_dir,
            driver_dir,
            driver_poll,
            device_networks,
            auth,
            device_registration,
            tokens_file,
            public_url,
            workers,
            store,
            lease,
            cache_mib,
            keystone,
            audit_key,
            data_plane,
            trust,
            observe,
        } => {
            let auth = match (auth.as_str(), tokens_file) {
                ("tokens", Some(file)) => Auth::tokens_file(&file)?,
                ("tokens", None) => bail!("--auth tokens needs --tokens-file FILE"),
                (_, Some(_)) => bail!("--tokens-file needs --auth tokens"),
                ("keystone", None) => keystone.connect()?,
                _ => Auth::None,
            };
            if matches!(auth, Auth::None) && !listen.ip().is_loopback() {
                bail!(
                    "--auth none lets every caller act as admin: it listens on loopback addresses \
                     only, not {listen} (use --auth keystone or --auth tokens)"
                );
            }
            let sources = Sources {
                data_dir: &data_dir,
                driver_dir: &driver_dir,
                driver_poll,
                cache_mib,
                trust: trust.trust()?,
                audit_key: audit_key.path(&data_dir),
                store: store_choice(&store.store, lease)?,
            };
            let access = Access {
                auth,
                members_register_devices: device_registration == "members",
                public_url,
                keystone: keystone
                    .keystone_url
                    .as_deref()
                    .map(|url| sockets_of_url(url, 5000))
                    .unwrap_or_default(),
            };
            serve(
                listen,
                &sources,
                device_networks,
                access,
                workers,
                &data_plane,
                &observe,
            )
        }
        Command::Driver { command } => match command {
            DriverCommand::Inspect { file, trust } => inspect(&file, &trust.trust()?),
            DriverCommand::Check { file, json, trust } => conformance(&file, json, &trust.trust()?),
            DriverCommand::Keygen { file } => keygen(&file),
            DriverCommand::Sign { key, file } => {
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?;
                let signature = integrity::sign(&key, &bytes).map_err(anyhow::Error::msg)?;
                let path = integrity::signature_path(&file);
                std::fs::write(&path, signature)?;
                println!("{}", path.display());
                Ok(())
            }
        },
        Command::Audit { command } => audit_command(command),
        Command::MigrateStore { data_dir, to } => {
            let moved = lbaas_host::migrate::sled_to_postgres(&data_dir, &to)?;
            println!(
                "copied {} records, {} driver state keys and {} audit records from {} to {}",
                moved.records,
                moved.state_keys,
                moved.audit_records,
                data_dir.display(),
                lbaas_postgres::redact(&to)
            );
            Ok(())
        }
    }
}

/// `--store`: `sled`, or a PostgreSQL URL.
fn store_choice(store: &str, lease: std::time::Duration) -> anyhow::Result<StoreChoice> {
    if store == "sled" {
        return Ok(StoreChoice::Sled);
    }
    if store.starts_with("postgres://") || store.starts_with("postgresql://") {
        return Ok(StoreChoice::Postgres {
            url: store.to_owned(),
            lease,
        });
    }
    bail!(
        "--store must be `sled` or a PostgreSQL URL (postgres://user:password@host:port/database), \
         not {}",
        lbaas_postgres::redact(store)
    )
}

fn keygen(file: &Path) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let (secret, public) = integrity::keygen().map_err(anyhow::Error::msg)?;
    std::fs::OpenOptions::new()
        .create_new(true)
        .write(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot create {} (it must not exist yet)", file.display()))?
        .write_all(secret.as_bytes())?;
    let public_file = integrity::signature_path(file).with_extension("pub");
    std::fs::write(&public_file, &public)?;
    println!(
        "secret key: {}\npublic key: {} ({public})",
        file.display(),
        public_file.display()
    );
    Ok(())
}

/// Checks `file` against the operator's trust and loads it in a throw-away runtime.
fn load_alone(file: &Path, trust: &Trust) -> anyhow::Result<(LoadedDriver, integrity::Accepted)> {
    let (bytes, accepted) = trust
        .check_file(file)
        .map_err(|e| anyhow::anyhow!("{}: refused: {e}", file.display()))?;
    let scratch = sled::Config::new().temporary(true).open()?;
    let state = SledStateStore::new(scratch, 1 << 20);
    let runtime = Runtime::new(
        RuntimeConfig::default(),
        Arc::new(state),
        Arc::new(StaticDevices::new()),
    )?;
    let driver = runtime.load(&bytes, &file.display().to_string())?;
    Ok((driver, accepted))
}

fn inspect(file: &Path, trust: &Trust) -> anyhow::Result<()> {
    let (driver, accepted) = load_alone(file, trust)?;
    let report = serde_json::json!({
        "name": driver.identity().name,
        "version": driver.identity().version,
        "sha256": driver.identity().sha256,
        "contract": driver.contract(),
        "capabilities": driver.capabilities(),
        "manifest": driver.manifest(),
        "grant": driver.grant(),
        "signed_by": accepted.signed_by,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn conformance(file: &Path, json: bool, trust: &Trust) -> anyhow::Result<()> {
    let (driver, _) = load_alone(file, trust)?;
    let report = lbaas_host::conformance::check(&driver);
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render());
    }
    if !report.passed() {
        bail!(
            "{} {} fails {} conformance check(s)",
            report.driver,
            report.version,
            report.failures().len()
        );
    }
    Ok(())
}

fn open_existing(data_dir: &Path) -> anyhow::Result<sled::Db> {
    let path = data_dir.join("db");
    if !path.exists() {
        bail!(
            "no database in {} (is it the host's --data-dir?)",
            data_dir.display()
        );
    }
    sled::open(&path).with_context(|| {
        format!(
            "cannot open the database in {} (a running lbaasd holds it: stop it, or use GET /v2/admin/audit/verify)",
            data_dir.display()
        )
    })
}

/// A checkpoint as `audit checkpoint` writes it, or as the API answers it (`{"checkpoint": …}`).
fn read_checkpoint(path: &Path) -> anyhow::Result<audit::Checkpoint> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a checkpoint", path.display()))?;
    serde_json::from_value(value.get("checkpoint").cloned().unwrap_or(value))
        .with_context(|| format!("{} is not a checkpoint", path.display()))
}

fn audit_command(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify {
            data_dir,
            checkpoint,
            checkpoint_key,
            store,
        } => {
            let chain = Chain::open(&data_dir, &store)?;
            let verification = match checkpoint {
                Some(path) => {
                    let checkpoint = read_checkpoint(&path)?;
                    let trusted = checkpoint_key
                        .map(|file| integrity::public_key_file(&file))
                        .transpose()
                        .map_err(anyhow::Error::msg)?;
                    match checkpoint.check_signature(trusted.as_ref()) {
                        Ok(Some(key)) => println!(
                            "checkpoint of {} records signed by key {key}{}",
                            checkpoint.records,
                            if trusted.is_some() {
                                ""
                            } else {
                                " (pass --checkpoint-key to require the host's key)"
                            }
                        ),
                        Ok(None) => {
                            println!("checkpoint of {} records, unsigned", checkpoint.records)
                        }
                        Err(why) => bail!("{}: {why}", path.display()),
                    }
                    chain.verify(Some(&checkpoint))?
                }
                None => chain.verify(None)?,
            };
            match &verification.broken {
                None => {
                    println!(
                        "audit log intact: {} records, head {}",
                        verification.records,
                        verification.head.as_deref().unwrap_or("(empty)")
                    );
                    Ok(())
                }
                Some(why) => bail!(
                    "audit log broken after {} good records: {why}",
                    verification.records
                ),
            }
        }
        AuditCommand::Checkpoint {
            data_dir,
            output,
            audit_key,
            store,
        } => {
            let signer = checkpoint_signer(&audit_key.path(&data_dir))?;
            let verification = Chain::open(&data_dir, &store)?.verify(None)?;
            if let Some(why) = &verification.broken {
                bail!(
                    "audit log broken after {} good records: {why}",
                    verification.records
                );
            }
            let checkpoint = audit::Checkpoint::of(&verification)
                .ok_or_else(|| anyhow::anyhow!("the audit log is empty: nothing to checkpoint"))?
                .signed(&signer);
            let text = serde_json::to_string_pretty(&checkpoint)?;
            match output {
                Some(path) => std::fs::write(&path, text + "\n")
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => println!("{text}"),
            }
            Ok(())
        }
        AuditCommand::PublicKey {
            data_dir,
            audit_key,
        } => {
            let signer = checkpoint_signer(&audit_key.path(&data_dir))?;
            println!("{}", hex::encode(signer.verifying_key().as_bytes()));
            Ok(())
        }
        AuditCommand::Export {
            data_dir,
            output,
            store,
        } => {
            let chain = Chain::open(&data_dir, &store)?;
            let count = match output {
                Some(path) => {
                    let mut file = std::io::BufWriter::new(
                        std::fs::File::create(&path)
                            .with_context(|| format!("cannot create {}", path.display()))?,
                    );
                    let count = chain.export(&mut file)?;
                    std::io::Write::flush(&mut file)?;
                    count
                }
                None => chain.export(&mut std::io::stdout().lock())?,
            };
            eprintln!("{count} audit records exported");
            Ok(())
        }
    }
}

/// Where the host's state and drivers come from, and which drivers it accepts.
struct Sources<'a> {
    data_dir: &'a Path,
    driver_dir: &'a Path,
    driver_poll: std::time::Duration,
    /// MiB of database pages kept cached.
    cache_mib: u64,
    trust: Trust,
    /// The secret key that signs audit checkpoints.
    audit_key: PathBuf,
    store: StoreChoice,
}

/// Who may call the API, and what members may do beyond their own load balancers.
struct Access {
    auth: Auth,
    members_register_devices: bool,
    public_url: Option<String>,
    /// Where Keystone listens (kept from tenants' addresses and devices, like every socket of
    /// the host).
    keystone: Vec<SocketAddr>,
}

fn serve(
    listen: SocketAddr,
    sources: &Sources<'_>,
    device_networks: Vec<IpNet>,
    Access {
        auth,
        members_register_devices,
        public_url,
        keystone,
    }: Access,
    workers: usize,
    data_plane: &DataPlane,
    observe: &Observe,
) -> anyhow::Result<()> {
    let Sources {
        data_dir,
        driver_dir,
        driver_poll,
        cache_mib,
        trust,
        audit_key,
        store,
    } = sources;
    let mut config = RuntimeConfig::default();
    if !device_networks.is_empty() {
        config.device_policy.allowed_networks = device_networks;
    }
    let listener = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    let mut builder = HostBuilder::new(data_dir)
        .store(store.clone())
        .cache_bytes(*cache_mib << 20)
        .runtime(config)
        .trust(trust.clone())
        .auth(auth)
        .audit_key(audit_key.clone())
        .drivers(DriverSource::Folder {
            dir: driver_dir.to_path_buf(),
            poll: *driver_poll,
        })
        .status_interval(data_plane.status_interval)
        .workers(workers)
        .members_register_devices(members_register_devices)
        .public_url(public_url);
    // What tenants' addresses and devices must never reach besides the API (and the database
    // and the spawn range, which the builder adds): the metrics listener, the trace collector
    // and Keystone.
    let mut sockets = keystone;
    sockets.extend(observe.metrics_listen);
    if let Some(url) = &observe.otlp_endpoint {
        sockets.extend(sockets_of_url(url, 4318));
    }
    builder = builder.reserve(sockets, Vec::new());
    let (provisioner, devices) = data_plane.provisioner(data_dir)?;
    if let Some(provisioner) = &provisioner {
        builder = builder.provisioner(provisioner.clone());
    }
    let metrics_listener = match observe.metrics_listen {
        Some(address) => Some(
            std::net::TcpListener::bind(address)
                .with_context(|| format!("cannot listen on {address} for metrics"))?,
        ),
        None => None,
    };
    let host = builder.build(listener)?;
    let address = host.address();
    let plane = host.plane().clone();
    let api = host.api().clone();
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async {
        let serving = host.start().await?;
        let metrics = match metrics_listener {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                let at = listener.local_addr()?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                let edge = lbaas_host::api::edge::Edge::new(at);
                tokio::spawn(async move {
                    let app = lbaas_host::api::metrics::router(api, edge);
                    if let Err(error) = axum::serve(listener, app).await {
                        tracing::error!(%error, "the metrics listener stopped");
                    }
                });
                format!("http://{at}/metrics (no authentication)")
            }
            None => format!("http://{address}/metrics (admins)"),
        };
        let drivers = plane.drivers.all().len();
        eprintln!(
            "lbaasd is serving\n  API:       http://{address}/v2 (Octavia v2; admin API under /v2/admin)\n  \
             dashboard: http://{address}/dashboard (admins)\n  \
             metrics:   {metrics}\n  \
             traces:    {}\n  \
             data:      {} ({})\n  drivers:   {} active, from {}\n  \
             devices:   {devices}",
            observe
                .otlp_endpoint
                .as_deref()
                .map_or("not exported (--otlp-endpoint URL)".to_owned(), |url| format!("OTLP to {url}")),
            data_dir.display(),
            match store {
                StoreChoice::Sled => "sled".to_owned(),
                StoreChoice::Postgres { url, .. } => lbaas_postgres::redact(url),
            },
            drivers,
            driver_dir.display()
        );
        // Last, so whoever waits for this line (the tests) has the lines above already.
        tracing::info!(%address, drivers, dir = %driver_dir.display(), "lbaasd serving");
        serving.run(shutdown_signal()).await
    })?;
    if let Some(provisioner) = provisioner {
        provisioner.close();
    }
    tracing::info!("lbaasd stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
