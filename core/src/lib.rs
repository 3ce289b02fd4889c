//! What every part of the host shares and nothing more: the records, identifiers and views
//! (from `lbaas-records`, re-exported here), the storage and audit traits the backends
//! implement, the audit chain and its checkpoints.
//! No storage engine, no HTTP, no Wasm; metrics and traces are `lbaas-telemetry`'s.

#![warn(missing_docs)]

pub mod audit;
pub mod chain;
pub mod driver_state;
pub mod net;
pub mod secret;
pub mod store;

pub use secret::secret_file;

pub use lbaas_records::{DriverName, InvalidId, check_driver_text, check_driver_version};
pub use lbaas_records::{capabilities, ids, model, placement, signature_path, views};

/// The short id of a public key (the first 16 hex digits of its SHA-256), as logs and answers
/// name publishers and checkpoint signers.
pub fn key_id(key: &ed25519_dalek::VerifyingKey) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))[..16].to_owned()
}
