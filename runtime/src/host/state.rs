//! The `state` import: the calling driver's own namespace, nothing else. Keys are opaque
//! strings inside that namespace; there is no path to another driver's tree.

use std::time::Instant;

use crate::bindings::state::{Host, StateError};
use crate::state::StateError as StoreError;
use lbaas_core::audit::Outcome;

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

fn outcome<T>(result: &Result<T, StateError>) -> (Outcome, Option<String>) {
    match result {
        Ok(_) => (Outcome::Ok, None),
        Err(StateError::Storage(why)) => (Outcome::Failed, Some(why.clone())),
        Err(StateError::QuotaExceeded(why) | StateError::InvalidKey(why)) => {
            (Outcome::Denied, Some(why.clone()))
        }
    }
}

impl HostState {
    fn audited<T>(
        &mut self,
        function: &str,
        key: &str,
        bytes: impl FnOnce(&T) -> usize,
        started: Instant,
        result: Result<T, StateError>,
    ) -> Result<T, StateError> {
        let (outcome, detail) = outcome(&result);
        let size = result.as_ref().map(bytes).unwrap_or(0);
        self.audit(
            function,
            Some(key.to_owned()),
            size,
            outcome,
            started,
            detail,
        );
        result
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, StateError>> {
        self.count_import()?;
        let started = Instant::now();
        let result = self.context.namespace.get(&key).map_err(to_guest);
        if let Ok(value) = &result {
            self.audit_read(&key, value.as_ref().map_or(0, Vec::len), started);
            return Ok(result);
        }
        Ok(self.audited("state.get", &key, |_| 0, started, result))
    }

    fn set(&mut self, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), StateError>> {
        self.count_import()?;
        let started = Instant::now();
        let granted = self.context.grant.state_bytes;
        let namespace = &self.context.namespace;
        let wanted = namespace.usage() + crate::state::entry_cost(key.len(), value.len());
        let result = if wanted > granted {
            Err(StateError::QuotaExceeded(format!(
                "the driver's granted state of {granted} bytes would be exceeded ({wanted} bytes)"
            )))
        } else {
            namespace.set(&key, &value).map_err(to_guest)
        };
        let size = value.len();
        Ok(self.audited("state.set", &key, |_| size, started, result))
    }

    fn delete(&mut self, key: String) -> wasmtime::Result<Result<bool, StateError>> {
        self.count_import()?;
        let started = Instant::now();
        let result = self.context.namespace.delete(&key).map_err(to_guest);
        Ok(self.audited("state.delete", &key, |_| 0, started, result))
    }

    fn keys(&mut self, prefix: String) -> wasmtime::Result<Result<Vec<String>, StateError>> {
        self.count_import()?;
        let started = Instant::now();
        let result = self.context.namespace.keys(&prefix).map_err(to_guest);
        Ok(self.audited("state.keys", &prefix, Vec::len, started, result))
    }
}
