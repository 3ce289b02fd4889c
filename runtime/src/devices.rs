//! The device directory as the driver runtime sees it: how to reach a device's management
//! endpoint and with which credentials. Drivers never see this; they name a device by id.

use std::collections::HashMap;
use std::sync::RwLock;

use lbaas_core::DriverName;

pub use lbaas_core::model::Credentials;

/// Where and how to reach one device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceEndpoint {
    /// The device's id.
    pub device_id: String,
    /// The driver that manages the device; only it may send requests there.
    pub driver: DriverName,
    /// Base URL of the management API, e.g. `http://127.0.0.1:9443`.
    pub management_url: String,
    /// The credentials the host sends with every request (never shown to drivers).
    pub credentials: Option<Credentials>,
}

/// Resolves device ids to endpoints. The control plane's device registry implements this.
pub trait DeviceDirectory: Send + Sync {
    /// The endpoint of `device_id`, if the device is known.
    fn endpoint(&self, device_id: &str) -> Option<DeviceEndpoint>;
}

/// An in-memory directory, for tools and tests.
#[derive(Debug, Default)]
pub struct StaticDevices {
    devices: RwLock<HashMap<String, DeviceEndpoint>>,
}

impl StaticDevices {
    /// An empty directory.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `endpoint`.
    pub fn insert(&self, endpoint: DeviceEndpoint) {
        let mut devices = self.devices.write().unwrap_or_else(|e| e.into_inner());
        devices.insert(endpoint.device_id.clone(), endpoint);
    }

    /// Forgets `device_id`.
    pub fn remove(&self, device_id: &str) {
        let mut devices = self.devices.write().unwrap_or_else(|e| e.into_inner());
        devices.remove(device_id);
    }
}

impl DeviceDirectory for StaticDevices {
    fn endpoint(&self, device_id: &str) -> Option<DeviceEndpoint> {
        let devices = self.devices.read().unwrap_or_else(|e| e.into_inner());
        devices.get(device_id).cloned()
    }
}
