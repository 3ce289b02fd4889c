//! Host-side bindings generated from the WIT contract. Kept private to the runtime; the types
//! callers need are re-exported from [`crate::runtime`].

wasmtime::component::bindgen!({
    path: "../wit/lbaas-driver@0.1.0",
    world: "vendor-driver",
    imports: { default: trappable },
    additional_derives: [PartialEq, serde::Serialize, serde::Deserialize],
});

pub use lbaas::driver::types;
pub use lbaas::driver::{device_api, log, state};
