//! `lbaasd`'s command line: every command and its options, and what the options make of
//! the host (its store, Keystone, the data plane, trust).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use lbaas_host::api::keystone::{Keystone, KeystoneConfig};
use lbaas_host::api::{Auth, Policy};
use lbaas_host::builder::StoreChoice;
use lbaas_host::integrity::Trust;
use lbaas_host::net::IpNet;
use lbaas_host::provision::{LocalProcesses, Provisioner};

/// Where `cargo drivers` puts the bundled drivers.
pub(crate) const BUNDLED_DRIVERS: &str = "target/wasm/wasm32-wasip2/release";

#[derive(Parser)]
#[command(
    name = "lbaasd",
    version,
    about = "LBaaS control plane with WebAssembly vendor drivers"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once at start; the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(crate) enum Command {
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
        /// Which roles the API honours, as the policy files Octavia ships: `default`
        /// (Keystone's `reader`, `member`, `manager` and `admin`, and Octavia's
        /// `load-balancer_*` roles beside them), `advanced` (Octavia's roles alone) or
        /// `keystone-default-roles` (Keystone's alone; `load-balancer_admin` stays an admin).
        #[arg(
            long,
            default_value = "default",
            value_name = "default|advanced|keystone-default-roles"
        )]
        policy: Policy,
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
        secrets_key: SecretsKey,
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
pub(crate) enum AuditCommand {
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
pub(crate) struct StoreArg {
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
    pub(crate) store: String,
}

/// How `--auth keystone` reaches Keystone, as keystonemiddleware's `[keystone_authtoken]`.
#[derive(clap::Args)]
pub(crate) struct KeystoneArgs {
    /// Keystone's public endpoint (`http://keystone:5000`, with or without `/v3`).
    #[arg(long, value_name = "URL")]
    pub(crate) keystone_url: Option<String>,
    /// The host's service user, which asks Keystone about callers' tokens: it needs the
    /// `service` (or `admin`) role.
    #[arg(long, value_name = "NAME", default_value = "octavia")]
    pub(crate) keystone_user: String,
    /// File holding the service user's password (its first line).
    #[arg(long, value_name = "FILE")]
    pub(crate) keystone_password_file: Option<PathBuf>,
    /// Project the service user's token is scoped to.
    #[arg(long, value_name = "NAME", default_value = "service")]
    pub(crate) keystone_project: String,
    /// Domain id of the service user and of its project.
    #[arg(long, value_name = "ID", default_value = "default")]
    pub(crate) keystone_domain: String,
    /// How long a validated token is trusted before Keystone is asked again (a revoked token
    /// is refused at most this long after its revocation).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub(crate) keystone_cache: std::time::Duration,
}

impl KeystoneArgs {
    /// The Keystone client, its settings checked by getting the host's own token.
    pub(crate) fn connect(&self) -> anyhow::Result<Auth> {
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
pub(crate) struct AuditKey {
    /// Secret ed25519 key (hex) that signs audit checkpoints, created (mode 0600) when missing.
    /// Default: `audit.key` in the data folder; keep it elsewhere so that someone with the data
    /// folder cannot sign checkpoints.
    #[arg(long = "audit-key", value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
}

impl AuditKey {
    pub(crate) fn path(&self, data_dir: &Path) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| data_dir.join("audit.key"))
    }
}

/// Where the key that seals the local key manager's secrets is.
#[derive(clap::Args)]
pub(crate) struct SecretsKey {
    /// Key (32 bytes, hex) the host seals tenants' secrets (certificate bundles) under before
    /// they reach the database, created (mode 0600) when missing. Default: `secrets.key` in the
    /// data folder; keep it elsewhere (and back it up apart from the database) so that a copy
    /// of the database holds no readable secret. Hosts sharing a PostgreSQL database need the
    /// same key.
    #[arg(long = "secrets-key", value_name = "FILE")]
    pub(crate) secrets_key: Option<PathBuf>,
    /// Where the certificates listeners and pools name are kept: `local` (the host's own
    /// store, `/v1/secrets`, sealed under --secrets-key) or `barbican` (OpenStack Barbican, as
    /// Octavia uses it; needs --auth keystone).
    #[arg(long, default_value = "local", value_parser = ["local", "barbican"])]
    pub(crate) key_manager: String,
    /// Barbican's endpoint, for --key-manager barbican. Default: the public endpoint of the
    /// `key-manager` service in Keystone's catalog.
    #[arg(long, value_name = "URL")]
    pub(crate) barbican_url: Option<String>,
}

impl SecretsKey {
    /// Barbican's endpoint under --key-manager barbican (asked of Keystone's catalog when not
    /// given); `None` for the host's own key manager.
    pub(crate) fn barbican(&self, auth: &Auth) -> anyhow::Result<Option<String>> {
        match (self.key_manager.as_str(), &self.barbican_url) {
            ("barbican", given) => {
                let Auth::Keystone(keystone) = auth else {
                    bail!(
                        "--key-manager barbican needs --auth keystone: Barbican's access lists \
                         name Keystone users, and callers show Barbican their own tokens"
                    );
                };
                match given {
                    Some(url) => Ok(Some(url.clone())),
                    None => match keystone.public_endpoint("key-manager")? {
                        Some(url) => Ok(Some(url)),
                        None => bail!(
                            "Keystone's catalog has no public key-manager endpoint: give \
                             --barbican-url URL"
                        ),
                    },
                }
            }
            (_, Some(_)) => bail!("--barbican-url needs --key-manager barbican"),
            _ => Ok(None),
        }
    }

    pub(crate) fn path(&self, data_dir: &Path) -> PathBuf {
        self.secrets_key
            .clone()
            .unwrap_or_else(|| data_dir.join("secrets.key"))
    }
}

/// What the host tells operators beyond its logs: metrics and traces.
#[derive(clap::Args)]
pub(crate) struct Observe {
    /// Also serve `GET /metrics` (Prometheus) without authentication on this address, for a
    /// Prometheus server. Without it, admins read `/metrics` on the API's address.
    #[arg(long, value_name = "ADDR")]
    pub(crate) metrics_listen: Option<SocketAddr>,
    /// Export traces (one per request and per job, driver and device calls inside) over
    /// OTLP/HTTP to this collector, e.g. http://127.0.0.1:4318.
    #[arg(long, value_name = "URL", env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub(crate) otlp_endpoint: Option<String>,
}

/// Where spawned devices' management addresses come from: on the host's loopback, or, in
/// namespaces of their own, a range the host routes to them.
pub(crate) const SHARED_SPAWN_RANGE: &str = "127.128.0.0/16";
pub(crate) const ISOLATED_SPAWN_RANGE: &str = "198.18.0.0/16";

/// Which network spawned devices run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Isolation {
    Auto,
    Namespace,
    Shared,
}

/// How the host runs the HAProxy devices drivers ask it to spawn, and watches every device.
#[derive(clap::Args)]
pub(crate) struct DataPlane {
    /// The device agent executable. Default: `lbaas-agent` beside `lbaasd`.
    #[arg(long, value_name = "PATH")]
    pub(crate) agent: Option<PathBuf>,
    /// The HAProxy executable spawned devices run.
    #[arg(long, value_name = "PATH", default_value = "haproxy")]
    pub(crate) haproxy: PathBuf,
    /// Range spawned devices take their management addresses from. Default: `198.18.0.0/16`
    /// for devices in namespaces of their own, `127.128.0.0/16` (loopback) for shared ones.
    #[arg(long, value_name = "CIDR")]
    pub(crate) spawn_addresses: Option<IpNet>,
    /// Where spawned devices run: `namespace`, each in a network namespace of its own, joined
    /// to the host by a veth pair the host filters (needs root, iproute2 and nftables):
    /// `127.0.0.1` inside a device is not the host, the host routes each VIP to its device, and
    /// a device may call only its own members; `shared`, in the host's own network on loopback
    /// addresses; `auto` (the default), `namespace` where the host can, else `shared` with a
    /// warning.
    #[arg(long, value_enum, default_value_t = Isolation::Auto)]
    pub(crate) device_isolation: Isolation,
    /// For devices in namespaces of their own: the host's address on every device's link, the
    /// devices' default route, where members on this machine listen.
    #[arg(long, value_name = "ADDR", default_value = "198.19.0.1")]
    pub(crate) device_gateway: std::net::IpAddr,
    /// For devices in namespaces of their own, IPv6: the host's IPv6 address on every device's
    /// link, where members on this machine listen over IPv6; each device's IPv6 address is
    /// this /96 with its IPv4 address as the last 32 bits, and IPv6 VIPs are routed to their
    /// devices. Left out where the kernel has no IPv6.
    #[arg(long, value_name = "ADDR", default_value = "fd00:198:19::1")]
    device_gateway_v6: std::net::Ipv6Addr,
    /// Management port of spawned devices.
    #[arg(long, default_value_t = 9443)]
    pub(crate) agent_port: u16,
    /// Do not spawn devices: load balancers go only on registered devices.
    #[arg(long)]
    pub(crate) no_spawn: bool,
    /// How often device health and traffic counters are read.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) status_interval: std::time::Duration,
}

impl DataPlane {
    /// The provisioner of spawned devices, if any, and where they run, in words for the
    /// banner.
    pub(crate) fn provisioner(
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
pub(crate) enum DriverCommand {
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
pub(crate) struct TrustArgs {
    /// A vendor's ed25519 public key (hex, from `driver keygen`) whose signatures are
    /// trusted (repeatable). A component's signature is FILE.wasm.sig beside it.
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub(crate) trusted_keys: Vec<PathBuf>,
    /// Refuse unsigned components.
    #[arg(long)]
    pub(crate) require_signatures: bool,
    /// Run only components with this SHA-256 (repeatable).
    #[arg(long = "pin", value_name = "SHA256")]
    pub(crate) pins: Vec<String>,
}

impl TrustArgs {
    pub(crate) fn trust(&self) -> anyhow::Result<Trust> {
        Trust::new(&self.trusted_keys, self.require_signatures, &self.pins)
            .map_err(anyhow::Error::msg)
    }
}

/// `--store`: `sled`, or a PostgreSQL URL.
pub(crate) fn store_choice(store: &str, lease: std::time::Duration) -> anyhow::Result<StoreChoice> {
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

#[cfg(test)]
mod tests {
    /// clap checks a command line's definition only when it parses one: checked here on every
    /// `cargo test`, two arguments of one name fail the build's tests, not an operator's start.
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
