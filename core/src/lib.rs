//! What every part of the control plane shares and nothing more: the records the store keeps
//! (in the vocabulary of Octavia's v2 API), validated identifiers, and the admin API's answers
//! as types, which the host serializes and `lbaasctl` reads. Serde only: no storage, no HTTP,
//! no Wasm.

pub mod audit;
pub mod ids;
pub mod model;
pub mod views;

pub use ids::{DriverName, InvalidId};
