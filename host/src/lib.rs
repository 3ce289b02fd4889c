//! The LBaaS host: the Octavia-compatible API, the durable store and job worker, the driver
//! runtime (wasmtime), driver-private state, and the device directory drivers reach through
//! the host.

#![deny(unsafe_code)]

pub mod api;
pub mod audit;
pub mod drivers;
pub mod monitor;
pub mod placement;
pub mod provision;
pub mod state;
pub mod store;
pub mod worker;

pub use lbaas_core::{DriverName, InvalidId, ids, model};
/// The driver runtime and what it brings: the conformance kit, component integrity, the
/// device directory and networks, conversions to the WIT types.
pub use lbaas_runtime::{self as runtime, conformance, convert, devices, integrity, net};
