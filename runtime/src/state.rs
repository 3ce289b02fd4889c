//! The driver-private state contract, which the `state` import serves: defined beside the other
//! storage traits in `lbaas-core`, implemented by the backends.

pub use lbaas_core::driver_state::*;
