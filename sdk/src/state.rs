//! Typed access to the driver's private key-value namespace. Values are stored as JSON, so a
//! driver's records stay readable in an audit export.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::DriverError;
use crate::bindings::lbaas::driver::state as raw;

pub use raw::StateError;

/// Reads and decodes a value; `None` when the key is absent.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, DriverError> {
    match raw::get(key)? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| DriverError::State(format!("state key `{key}` holds invalid JSON: {e}"))),
        None => Ok(None),
    }
}

/// Encodes and stores a value.
pub fn put<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), DriverError> {
    let bytes = serde_json::to_vec(value)
        .map_err(|e| DriverError::Internal(format!("cannot encode state key `{key}`: {e}")))?;
    raw::set(key, &bytes)?;
    Ok(())
}

/// Reads a value, lets `change` modify it (starting from `Default` when absent), and stores it.
pub fn update<T, R>(key: &str, change: impl FnOnce(&mut T) -> R) -> Result<R, DriverError>
where
    T: Serialize + DeserializeOwned + Default,
{
    let mut value = get::<T>(key)?.unwrap_or_default();
    let result = change(&mut value);
    put(key, &value)?;
    Ok(result)
}

/// Deletes a key; true when it existed.
pub fn delete(key: &str) -> Result<bool, DriverError> {
    Ok(raw::delete(key)?)
}

/// Keys starting with `prefix`, in order.
pub fn keys(prefix: &str) -> Result<Vec<String>, DriverError> {
    Ok(raw::keys(prefix)?)
}

/// Raw bytes, for drivers that keep their own encoding.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, DriverError> {
    Ok(raw::get(key)?)
}

/// Raw bytes, for drivers that keep their own encoding.
pub fn put_bytes(key: &str, value: &[u8]) -> Result<(), DriverError> {
    Ok(raw::set(key, value)?)
}

impl From<StateError> for DriverError {
    fn from(error: StateError) -> Self {
        DriverError::State(match error {
            StateError::QuotaExceeded(why) => format!("quota exceeded: {why}"),
            StateError::InvalidKey(why) => format!("invalid key: {why}"),
            StateError::Storage(why) => format!("storage failed: {why}"),
        })
    }
}
