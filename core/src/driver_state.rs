//! Driver-private state as the runtime sees it: one namespace per driver, with a quota, behind
//! [`StateStore`]. Backends (the host's sled store) implement it; [`MemoryNamespace`] is the
//! throw-away namespace upload checks run against. A namespace handle can reach nothing else.

use std::sync::{Arc, Mutex};

use crate::DriverName;

/// Longest key a driver may use, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Largest single value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// What one key costs the quota besides its bytes: the store's own per-entry bookkeeping. A
/// million one-byte keys are not free, and the quota says so.
pub const ENTRY_OVERHEAD: u64 = 64;

/// The bytes an entry counts against the quota.
pub fn entry_cost(key: usize, value: usize) -> u64 {
    (key + value) as u64 + ENTRY_OVERHEAD
}

/// Why a namespace refused a read or a write.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The write would take the namespace past its quota.
    #[error("quota of {quota} bytes exceeded: the namespace would hold {wanted} bytes")]
    QuotaExceeded {
        /// The namespace's quota, in bytes.
        quota: u64,
        /// What it would hold after the write, in bytes.
        wanted: u64,
    },
    /// The key breaks the key rules ([`check_key`]).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The value, of this many bytes, is larger than one value may be.
    #[error("value of {0} bytes is larger than the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLarge(usize),
    /// The backend failed (its own words).
    #[error("storage: {0}")]
    Storage(String),
}

/// A namespace's answer.
pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// One driver's key-value namespace.
pub trait Namespace: Send + Sync {
    /// The value under `key`, if there is one.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Sets `key` to `value`, within the quota.
    fn set(&self, key: &str, value: &[u8]) -> Result<()>;
    /// True when the key existed.
    fn delete(&self, key: &str) -> Result<bool>;
    /// Keys starting with `prefix`, in byte order.
    fn keys(&self, prefix: &str) -> Result<Vec<String>>;
    /// Bytes used: keys, values and [`ENTRY_OVERHEAD`] per entry.
    fn usage(&self) -> u64;
}

/// Hands out namespaces by driver name.
pub trait StateStore: Send + Sync {
    /// The namespace of `driver`, created on first use.
    fn namespace(&self, driver: &DriverName) -> Result<Arc<dyn Namespace>>;
}

/// Refuses keys a namespace does not hold: empty ones, those with a NUL character and those past
/// [`MAX_KEY_BYTES`].
pub fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StateError::InvalidKey("empty".into()));
    }
    // Every backend stores keys as text; PostgreSQL's text holds no NUL, so no backend does.
    if key.contains('\0') {
        return Err(StateError::InvalidKey("contains a NUL character".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "{} bytes, longer than {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// A namespace kept in memory and dropped with its handle: what a component under upload
/// checks writes to, so nothing it does reaches the live state of the name it claims.
pub struct MemoryNamespace {
    quota: u64,
    entries: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MemoryNamespace {
    /// An empty namespace holding at most `quota` bytes.
    pub fn new(quota: u64) -> Self {
        Self {
            quota,
            entries: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, Vec<u8>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Namespace for MemoryNamespace {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.entries().get(key).cloned())
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(value.len()));
        }
        let mut entries = self.entries();
        let used: u64 = entries
            .iter()
            .map(|(k, v)| entry_cost(k.len(), v.len()))
            .sum();
        let old = entries
            .get(key)
            .map_or(0, |v| entry_cost(key.len(), v.len()));
        let wanted = used - old + entry_cost(key.len(), value.len());
        if wanted > self.quota && wanted > used {
            return Err(StateError::QuotaExceeded {
                quota: self.quota,
                wanted,
            });
        }
        entries.insert(key.to_owned(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        Ok(self.entries().remove(key).is_some())
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .entries()
            .keys()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect())
    }

    fn usage(&self) -> u64 {
        self.entries()
            .iter()
            .map(|(k, v)| entry_cost(k.len(), v.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_namespaces_keep_their_quota_and_nothing_else() {
        let scratch = MemoryNamespace::new(ENTRY_OVERHEAD + 10);
        scratch.set("k", b"123456789").expect("fits");
        assert_eq!(
            scratch.get("k").expect("get").as_deref(),
            Some(&b"123456789"[..])
        );
        assert!(matches!(
            scratch.set("j", b""),
            Err(StateError::QuotaExceeded { .. })
        ));
        assert_eq!(scratch.keys("").expect("keys"), vec!["k".to_owned()]);
        assert!(scratch.delete("k").expect("delete"));
        assert_eq!(scratch.usage(), 0);
    }
}
