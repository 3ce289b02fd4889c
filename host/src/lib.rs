//! The LBaaS host: the Octavia-compatible API, the durable store and job worker, the driver
//! runtime (wasmtime), driver-private state, and the device directory drivers reach through
//! the host.

#![deny(unsafe_code)]

pub mod api;
pub mod audit;
pub mod conformance;
pub mod convert;
pub mod devices;
pub mod drivers;
pub mod integrity;
pub mod monitor;
pub mod net;
pub mod placement;
pub mod provision;
pub mod runtime;
pub mod state;
pub mod store;
pub mod worker;

pub use lbaas_core::{DriverName, InvalidId, ids, model};
