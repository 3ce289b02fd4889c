//! What every part of the control plane shares and nothing more: the records the store keeps
//! (in the vocabulary of Octavia's v2 API), validated identifiers, and the admin API's answers
//! as types, which the host serializes and `lbaasctl` reads. Serde only: no storage, no HTTP,
//! no Wasm.

pub mod audit;
pub mod ids;
pub mod model;
pub mod views;

pub use ids::{DriverName, InvalidId};

use std::path::{Path, PathBuf};

/// Where a component's signature lives: `FILE.wasm.sig` beside `FILE.wasm`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}
