//! The records the store keeps (in the vocabulary of Octavia's v2 API), validated
//! identifiers, the audit log's records, and the admin API's answers as types, which the host
//! serializes and `lbaasctl` reads. Serde and nothing heavier: no storage, no telemetry, no
//! cryptography, no async.

pub mod audit;
pub mod capabilities;
pub mod ids;
pub mod model;
pub mod placement;
pub mod views;

pub use ids::{DriverName, InvalidId, check_driver_text, check_driver_version};

use std::path::{Path, PathBuf};

/// Where a component's signature lives: `FILE.wasm.sig` beside `FILE.wasm`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}
