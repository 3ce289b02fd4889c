//! The embedded default for every storage trait, in one sled database a host opens once: the
//! control plane's records ([`store::SledStore`]), each driver's private namespace
//! ([`driver_state::SledStateStore`]) and the drivers' audit chain ([`audit::AuditLog`]).

#![deny(unsafe_code)]

pub mod audit;
pub mod driver_state;
pub mod store;

pub use store::{DEFAULT_CACHE_BYTES, SledStore, open_database};
