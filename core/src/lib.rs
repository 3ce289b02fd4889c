//! What every part of the control plane shares and nothing more: the records the store keeps
//! (in the vocabulary of Octavia's v2 API), validated identifiers, and the admin API's answers
//! as types, which the host serializes and `lbaasctl` reads; the storage and audit traits the
//! backends implement. No storage engine, no HTTP, no Wasm.

pub mod audit;
pub mod chain;
pub mod driver_state;
pub mod ids;
pub mod metrics;
pub mod model;
pub mod net;
pub mod store;
pub mod traces;
pub mod views;

pub use ids::{DriverName, InvalidId, check_driver_text, check_driver_version};

use std::path::{Path, PathBuf};

/// Where a component's signature lives: `FILE.wasm.sig` beside `FILE.wasm`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// The short id of a public key (the first 16 hex digits of its SHA-256), as logs and answers
/// name publishers and checkpoint signers.
pub fn key_id(key: &ed25519_dalek::VerifyingKey) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))[..16].to_owned()
}
