//! `lbaasctl`'s command line: the target host and its credentials, and every command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lbaasctl",
    version,
    about = "Operate an lbaasd host: drivers, devices, placements, audit"
)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) target: Target,
    /// Print the host's JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Args)]
pub(crate) struct Target {
    /// The host's API.
    #[arg(
        long,
        env = "LBAAS_URL",
        default_value = "http://127.0.0.1:9876",
        global = true
    )]
    pub(crate) url: String,
    /// An admin token (`--auth tokens` hosts).
    #[arg(long, env = "LBAAS_TOKEN", global = true, hide_env_values = true)]
    pub(crate) token: Option<String>,
    /// The project to act as on noauth hosts.
    #[arg(long, env = "LBAAS_PROJECT", default_value = "admin", global = true)]
    pub(crate) project: String,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Driver versions: upload, activate, roll back, drain, inspect.
    #[command(subcommand)]
    Driver(DriverCommand),
    /// Devices in the registry.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Why a load balancer is where it is.
    #[command(subcommand)]
    Placement(PlacementCommand),
    /// The drivers' audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The hosts sharing the control plane's store.
    #[command(subcommand)]
    Host(HostCommand),
    /// Secrets in the host's own key manager: certificate bundles for TLS listeners.
    #[command(subcommand)]
    Secret(SecretCommand),
}

#[derive(Subcommand)]
pub(crate) enum SecretCommand {
    /// Store a file (a PKCS#12 or PEM certificate bundle) for the project; prints its
    /// reference, what a listener's `default_tls_container_ref` names.
    Store {
        file: PathBuf,
        /// A name to find it by.
        #[arg(long)]
        name: Option<String>,
        /// Barbican's secret type.
        #[arg(long = "type", default_value = "certificate")]
        secret_type: String,
    },
    /// The project's secrets (never their payloads).
    List,
    /// One secret's metadata, by reference or id.
    Show { secret: String },
    /// Delete a secret, by reference or id.
    Delete { secret: String },
}

#[derive(Subcommand)]
pub(crate) enum HostCommand {
    /// Every host: version, address, last heartbeat, whether it is alive, jobs held.
    List,
}

#[derive(Subcommand)]
pub(crate) enum DriverCommand {
    /// Every driver with its active version.
    List,
    /// One driver: its active version, grant, and every uploaded version.
    Inspect { name: String },
    /// Upload a component (validated by the host, stored inactive unless --activate).
    Upload {
        file: PathBuf,
        /// Its signature (hex); default: FILE.sig when it exists.
        #[arg(long)]
        signature: Option<PathBuf>,
        /// Activate it once stored.
        #[arg(long)]
        activate: bool,
    },
    /// Make a version active (a SHA-256, a unique prefix of one, or a version string).
    Activate { name: String, version: String },
    /// Send a share of new placements to a version before it takes all.
    Canary {
        name: String,
        version: String,
        /// Share of placements, 1..=99.
        #[arg(long)]
        percent: u8,
    },
    /// Make the canary the active version.
    Promote { name: String },
    /// Go back to the version active before (or end a canary).
    Rollback { name: String },
    /// Stop new placements on a driver (its load balancers keep working); --undo ends it.
    Drain {
        name: String,
        #[arg(long)]
        undo: bool,
    },
    /// Refuse a version for activation; --undo enables it again.
    Disable {
        name: String,
        version: String,
        #[arg(long)]
        undo: bool,
    },
    /// Delete a version no load balancer needs.
    Delete { name: String, version: String },
    /// Lift the quarantine of a driver's active version.
    Release { name: String },
}

#[derive(Subcommand)]
pub(crate) enum DeviceCommand {
    List,
    /// Register a device.
    Add {
        #[arg(long)]
        name: String,
        /// physical or virtual.
        #[arg(long, value_parser = ["physical", "virtual"])]
        kind: String,
        #[arg(long)]
        driver: String,
        #[arg(long)]
        management_url: String,
        /// Load balancers it takes.
        #[arg(long)]
        capacity: u32,
        /// A bearer token the host sends to the device (the driver never sees it).
        #[arg(long, env = "LBAAS_DEVICE_TOKEN", hide_env_values = true)]
        device_token: Option<String>,
        #[arg(long)]
        cluster: Option<String>,
        /// KEY=VALUE (repeatable), e.g. interfaces=4.
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
    },
    /// Take a device out of placement (its load balancers stay); --undo puts it back.
    Disable {
        id: String,
        #[arg(long)]
        undo: bool,
    },
}

#[derive(Subcommand)]
pub(crate) enum PlacementCommand {
    /// The scheduler's explanation of a load balancer's placement.
    Explain { loadbalancer_id: String },
}

#[derive(Subcommand)]
pub(crate) enum AuditCommand {
    /// The newest records (filters as GET /v2/admin/audit).
    Tail {
        #[arg(long)]
        driver: Option<String>,
        #[arg(long)]
        function: Option<String>,
        /// ok, denied or failed.
        #[arg(long)]
        outcome: Option<String>,
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: usize,
        /// Keep printing new records.
        #[arg(long, short)]
        follow: bool,
    },
    /// Check the hash chain (exit 1 when it is broken).
    Verify,
    /// Every record as JSON Lines.
    Export {
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
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
