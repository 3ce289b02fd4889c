//! Provisioners create virtual devices when a driver asks to spawn one, and stop them when the
//! device is deleted. [`LocalProcesses`] runs each device as an `lbaas-agent` and its HAProxy on
//! a fresh loopback address; [`FixedEndpoint`] registers every spawned device at one known
//! management endpoint.

mod firewall;
mod local;
mod netns;
pub mod privilege;

use lbaas_scheduler::SpawnSpec;

use crate::devices::Credentials;

pub use local::LocalProcesses;

/// What one device's network gives it: the VIPs it answers on (the host routes them to it), and
/// the only sockets it may open connections to (its load balancers' members, for traffic and
/// health checks). Everything else it sends is dropped before it reaches the host or beyond.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    pub vips: std::collections::BTreeSet<std::net::IpAddr>,
    pub targets: std::collections::BTreeSet<std::net::SocketAddr>,
}

/// Why a device could not be provisioned or released, by whose move it is: an operator's
/// (`Unavailable`, `Program`), the machine's (`System`, `Exhausted`), the device's own start
/// (`Start`), or the caller's (`Unsupported`, `UnknownHandle`).
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// This provisioner does not make devices of that driver.
    #[error("this host spawns HAProxy devices only; driver {0}'s devices cannot be spawned here")]
    Unsupported(String),
    /// The host, as set up, cannot spawn devices (an operator must change something).
    #[error("{0}")]
    Unavailable(String),
    /// A program a device runs is missing or cannot be run.
    #[error("cannot run {program}: {source}{hint}", hint = program_hint(.program, .source))]
    Program {
        program: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Every management address of the range is taken.
    #[error("no free management address left in {0}")]
    Exhausted(String),
    /// The machine refused a step (files, permissions, randomness).
    #[error("{what}: {source}")]
    System {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The device's programs started but did not come up.
    #[error("{0}")]
    Start(String),
    /// A handle that names nothing this provisioner started.
    #[error("`{0}` is not a local device handle")]
    UnknownHandle(String),
}

/// What to do about a program that did not run, in plain words.
fn program_hint(program: &std::path::Path, error: &std::io::Error) -> &'static str {
    let haproxy = program
        .file_name()
        .is_some_and(|name| name.to_string_lossy().starts_with("haproxy"));
    match error.kind() {
        std::io::ErrorKind::NotFound if program == std::path::Path::new("ip") => {
            " (iproute2 was not found: install it, e.g. `apt-get install iproute2`)"
        }
        std::io::ErrorKind::NotFound if program == std::path::Path::new("nft") => {
            " (nftables was not found: install it, e.g. `apt-get install nftables`)"
        }
        std::io::ErrorKind::NotFound if haproxy => {
            " (HAProxy was not found: install it, e.g. `apt-get install haproxy`, or name it \
             with lbaasd serve --haproxy PATH)"
        }
        std::io::ErrorKind::NotFound => {
            " (not found: install it, or name it with lbaasd serve --agent PATH / --haproxy PATH)"
        }
        std::io::ErrorKind::PermissionDenied => " (not executable by the host)",
        _ => "",
    }
}

impl ProvisionError {
    fn system(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Self {
        let what = what.into();
        move |source| Self::System { what, source }
    }

    /// A failed step named `what` rather than by its whole command line.
    fn about(self, what: &str) -> Self {
        match self {
            Self::System { source, .. } => Self::System {
                what: what.to_owned(),
                source,
            },
            other => other,
        }
    }
}

/// Runs a system program (`ip`, `nft`) with `args`, `input` on its standard input; its output,
/// or what it said when it failed.
fn run(program: &str, args: &[&str], input: Option<&str>) -> Result<String, ProvisionError> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let spawned = Command::new(program)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = spawned.map_err(|source| ProvisionError::Program {
        program: program.into(),
        source,
    })?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(input.as_bytes())
            .map_err(ProvisionError::system(format!("cannot write to {program}")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(ProvisionError::system(format!("cannot run {program}")))?;
    if !output.status.success() {
        return Err(ProvisionError::System {
            what: format!("{program} {}", args.join(" ")),
            source: std::io::Error::other(
                String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Where a new device can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub management_url: String,
    pub credentials: Option<Credentials>,
    /// The provisioner's own name for what it started, kept in the device record and handed
    /// back to [`Provisioner::release`].
    pub handle: Option<String>,
}

pub trait Provisioner: Send + Sync {
    /// Creates a device of `driver` as `spec` asks; blocking.
    fn provision(&self, driver: &str, spec: &SpawnSpec) -> Result<Provisioned, ProvisionError>;

    /// Stops what [`Provisioner::provision`] started for a device being deleted; blocking.
    fn release(&self, handle: &str) -> Result<(), ProvisionError> {
        let _ = handle;
        Ok(())
    }

    /// At start, before any placement: restarts what the devices named by `handles` (those
    /// the registry holds) need, and stops anything it started that no record names.
    fn adopt(&self, handles: &[String]) {
        let _ = handles;
    }

    /// Restarts what the devices named by `handles` need, where it is gone; called
    /// periodically. Never stops anything: a device being provisioned has no record yet.
    fn revive(&self, handles: &[String]) {
        let _ = handles;
    }

    /// Makes the device `handle` answer on exactly `reach.vips` and call nothing but
    /// `reach.targets`, where the provisioner gives devices networks of their own; called after
    /// every change to what the load balancers on it need, and periodically to mend what a
    /// failed call left.
    fn serve(&self, handle: &str, reach: &Reach) -> Result<(), ProvisionError> {
        let _ = (handle, reach);
        Ok(())
    }

    /// [`Provisioner::serve`], checked against what the device's network holds now (not what
    /// was last handed over): called every status round, it puts back what something else
    /// took away.
    fn mend(&self, handle: &str, reach: &Reach) -> Result<(), ProvisionError> {
        self.serve(handle, reach)
    }

    /// The host stops (its devices keep running): whatever only serves devices while it runs
    /// goes when no device is left.
    fn close(&self) {}

    /// The network the devices' management addresses come from, which no tenant address may
    /// point into.
    fn management_range(&self) -> Option<crate::net::IpNet> {
        None
    }

    /// The host's addresses on the devices' own networks (their gateway), where members on
    /// this machine listen and no VIP may be.
    fn host_addresses(&self) -> Vec<std::net::IpAddr> {
        Vec::new()
    }
}

/// Registers every spawned device at one management endpoint.
#[derive(Debug, Clone)]
pub struct FixedEndpoint {
    pub management_url: String,
}

impl Provisioner for FixedEndpoint {
    fn provision(&self, _driver: &str, _spec: &SpawnSpec) -> Result<Provisioned, ProvisionError> {
        Ok(Provisioned {
            management_url: self.management_url.clone(),
            credentials: None,
            handle: None,
        })
    }
}
