//! `lbaasd`, the composition root: it opens the storage backends, builds the driver runtime and
//! registry, wires the control plane, the API and the background tasks, and serves. What each
//! part does lives in its own crate; this one only puts them together (and re-exports them
//! under one roof for the tests and benchmarks).

#![deny(unsafe_code)]

pub mod builder;
pub mod migrate;
pub mod traces;

pub use builder::{DriverSource, HostBuilder};
pub use lbaas_api as api;
pub use lbaas_control::{
    ControlPlane, addresses, drivers, monitor, octavia, placement, plane, provision, snapshot,
    worker,
};
pub use lbaas_core::{DriverName, InvalidId, ids, model};
/// The driver runtime and what it brings: the conformance kit, component integrity, the
/// device directory and networks.
pub use lbaas_runtime::{self as runtime, conformance, devices, integrity, net};
/// The embedded storage backends.
pub use lbaas_sled::{audit, driver_state};
/// The control plane's metrics registry and trace context.
pub use lbaas_telemetry as telemetry;

/// The control plane's store: the trait and its in-memory backend, and the sled backend.
pub mod store {
    pub use lbaas_core::store::*;
    pub use lbaas_sled::store::*;
}
