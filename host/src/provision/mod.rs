//! Provisioners create virtual devices when a driver asks to spawn one, and stop them when the
//! device is deleted. [`LocalProcesses`] runs each device as an `lbaas-agent` and its HAProxy on
//! a fresh loopback address; [`FixedEndpoint`] registers every spawned device at one known
//! management endpoint.

mod local;
pub mod privilege;

use lbaas_scheduler::SpawnSpec;

use crate::devices::Credentials;

pub use local::LocalProcesses;

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
    fn provision(&self, driver: &str, spec: &SpawnSpec) -> Result<Provisioned, String>;

    /// Stops what [`Provisioner::provision`] started for a device being deleted; blocking.
    fn release(&self, handle: &str) -> Result<(), String> {
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
}

/// Registers every spawned device at one management endpoint.
#[derive(Debug, Clone)]
pub struct FixedEndpoint {
    pub management_url: String,
}

impl Provisioner for FixedEndpoint {
    fn provision(&self, _driver: &str, _spec: &SpawnSpec) -> Result<Provisioned, String> {
        Ok(Provisioned {
            management_url: self.management_url.clone(),
            credentials: None,
            handle: None,
        })
    }
}
