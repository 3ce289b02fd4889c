//! The control plane: what the host does, without how it is asked. It owns the records'
//! read and write paths ([`ControlPlane`]), Octavia's rules ([`octavia`]), the host's own key
//! manager ([`secrets`]), the driver registry and its lifecycle, placement, the job worker, the
//! status monitor, device provisioning and the devices' networks. The API above it
//! authenticates, parses and renders, and never sees a driver runtime type; the storage
//! backends below it are behind `lbaas-core`'s traits; the driver runtime beside it runs the
//! components, and only the control plane names its types.

#![deny(unsafe_code)]

pub mod addresses;
pub mod barbican;
pub mod contract;
pub mod drivers;
pub mod error;
pub mod fleet;
pub mod key_manager;
pub mod monitor;
pub mod observed;
pub mod octavia;
pub mod placement;
pub mod plane;
pub mod provision;
mod reach;
pub mod secrets;
pub mod snapshot;
pub mod table;
pub mod tasks;
pub mod worker;

pub use error::Error;
pub use plane::{Change, ControlPlane, DeviceRegistration, JobSender};
pub use snapshot::{Reader, Snapshot};
pub use table::Table;

pub use lbaas_core::{DriverName, audit, ids, model, net, store};
// The sandbox is the control plane's own business: nothing above it names its types.
pub(crate) use lbaas_runtime::{self as runtime, conformance, devices, integrity};

/// [`tokio::task::spawn_blocking`] inside the caller's span: what the blocking call traces
/// (a driver call, a device call) is part of the request or job that made it.
pub(crate) fn spawn_blocking<R: Send + 'static>(
    call: impl FnOnce() -> R + Send + 'static,
) -> tokio::task::JoinHandle<R> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(call))
}
