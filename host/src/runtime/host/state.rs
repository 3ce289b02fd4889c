//! The `state` import: the calling driver's own namespace, nothing else. Keys are opaque
//! strings inside that namespace; there is no path to another driver's tree.

use crate::runtime::bindings::state::{Host, StateError};
use crate::state::StateError as StoreError;

use super::HostState;

fn to_guest(error: StoreError) -> StateError {
    match error {
        StoreError::QuotaExceeded { .. } | StoreError::ValueTooLarge(_) => {
            StateError::QuotaExceeded(error.to_string())
        }
        StoreError::InvalidKey(why) => StateError::InvalidKey(why),
        StoreError::Storage(e) => {
            tracing::error!(error = %e, "driver state storage failed");
            StateError::Storage("the host's storage failed".into())
        }
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, StateError>> {
        Ok(self.context.namespace.get(&key).map_err(to_guest))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), StateError>> {
        Ok(self.context.namespace.set(&key, &value).map_err(to_guest))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, StateError>> {
        Ok(self.context.namespace.delete(&key).map_err(to_guest))
    }

    fn keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, StateError>> {
        Ok(self.context.namespace.keys(&prefix).map_err(to_guest))
    }
}
