//! The LBaaS host: the driver runtime (wasmtime), driver-private state, the device directory
//! drivers reach through the host, and the HTTP server.

#![deny(unsafe_code)]

pub mod devices;
pub mod ids;
pub mod runtime;
pub mod server;
pub mod state;

pub use ids::{DriverName, InvalidId};
