//! Provisioners create virtual devices when a driver asks to spawn one. The local-process
//! provisioner comes with the data plane; [`FixedEndpoint`] registers a device at once at a
//! known management endpoint (one agent that serves every spawned device).

use lbaas_scheduler::SpawnSpec;

use crate::devices::Credentials;

/// Where a new device can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub management_url: String,
    pub credentials: Option<Credentials>,
}

pub trait Provisioner: Send + Sync {
    /// Creates a device of `driver` as `spec` asks; blocking.
    fn provision(&self, driver: &str, spec: &SpawnSpec) -> Result<Provisioned, String>;
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
        })
    }
}
