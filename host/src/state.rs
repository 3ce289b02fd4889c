//! Driver-private state: one namespace per driver, with a quota. The sled backend keeps each
//! namespace in its own tree, `driver/<name>`; a namespace handle can reach nothing else.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
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

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("quota of {quota} bytes exceeded: the namespace would hold {wanted} bytes")]
    QuotaExceeded { quota: u64, wanted: u64 },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("value of {0} bytes is larger than the {MAX_VALUE_BYTES}-byte limit")]
    ValueTooLarge(usize),
    #[error("storage: {0}")]
    Storage(#[from] sled::Error),
}

pub type Result<T, E = StateError> = std::result::Result<T, E>;

/// One driver's key-value namespace.
pub trait Namespace: Send + Sync {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
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
    fn namespace(&self, driver: &DriverName) -> Result<Arc<dyn Namespace>>;
}

/// The embedded default: a sled database, one tree per driver.
pub struct SledStateStore {
    db: sled::Db,
    quota: u64,
    open: Mutex<HashMap<DriverName, Arc<SledNamespace>>>,
}

impl SledStateStore {
    /// Uses `db`, which the host may share with its other stores.
    pub fn new(db: sled::Db, quota: u64) -> Self {
        Self {
            db,
            quota,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn open(path: &Path, quota: u64) -> Result<Self> {
        Ok(Self::new(sled::open(path)?, quota))
    }

    pub fn tree_name(driver: &DriverName) -> String {
        format!("driver/{driver}")
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

impl StateStore for SledStateStore {
    fn namespace(&self, driver: &DriverName) -> Result<Arc<dyn Namespace>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(namespace) = open.get(driver) {
            return Ok(namespace.clone());
        }
        let tree = self.db.open_tree(Self::tree_name(driver))?;
        let mut used = 0;
        for entry in tree.iter() {
            let (key, value) = entry?;
            used += entry_cost(key.len(), value.len());
        }
        let namespace = Arc::new(SledNamespace {
            tree,
            quota: self.quota,
            used: AtomicU64::new(used),
            write: Mutex::new(()),
        });
        open.insert(driver.clone(), namespace.clone());
        Ok(namespace)
    }
}

struct SledNamespace {
    tree: sled::Tree,
    quota: u64,
    used: AtomicU64,
    /// Serialises writers so the usage count matches the tree.
    write: Mutex<()>,
}

fn check_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(StateError::InvalidKey("empty".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "{} bytes, longer than {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

impl Namespace for SledNamespace {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self.tree.get(key)?.map(|value| value.to_vec()))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(value.len()));
        }
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let old = self
            .tree
            .get(key)?
            .map_or(0, |v| entry_cost(key.len(), v.len()));
        let used = self.used.load(Ordering::Acquire);
        let wanted = used - old + entry_cost(key.len(), value.len());
        if wanted > self.quota && wanted > used {
            return Err(StateError::QuotaExceeded {
                quota: self.quota,
                wanted,
            });
        }
        self.tree.insert(key, value)?;
        self.used.store(wanted, Ordering::Release);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        match self.tree.remove(key)? {
            Some(old) => {
                self.used
                    .fetch_sub(entry_cost(key.len(), old.len()), Ordering::AcqRel);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.tree
            .scan_prefix(prefix)
            .keys()
            .map(|key| {
                let key = key?;
                // Keys are only ever written from `&str`.
                Ok(String::from_utf8_lossy(&key).into_owned())
            })
            .collect()
    }

    fn usage(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// A namespace kept in memory and dropped with its handle: what a component under upload
/// checks writes to, so nothing it does reaches the live state of the name it claims.
pub struct MemoryNamespace {
    quota: u64,
    entries: Mutex<std::collections::BTreeMap<String, Vec<u8>>>,
}

impl MemoryNamespace {
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

    fn store(quota: u64) -> (tempfile::TempDir, SledStateStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SledStateStore::open(dir.path(), quota).expect("open");
        (dir, store)
    }

    #[test]
    fn namespaces_are_separate() {
        let (_dir, store) = store(1 << 20);
        let a = store
            .namespace(&DriverName::new("a").expect("name"))
            .expect("ns");
        let b = store
            .namespace(&DriverName::new("b").expect("name"))
            .expect("ns");
        a.set("k", b"from a").expect("set");
        assert_eq!(b.get("k").expect("get"), None);
        assert_eq!(a.get("k").expect("get").as_deref(), Some(&b"from a"[..]));
    }

    #[test]
    fn quota_counts_keys_and_values() {
        let (_dir, store) = store(100 + 2 * ENTRY_OVERHEAD);
        let ns = store
            .namespace(&DriverName::new("a").expect("name"))
            .expect("ns");
        ns.set("key", &[0; 90 + ENTRY_OVERHEAD as usize])
            .expect("fits");
        assert_eq!(ns.usage(), 93 + 2 * ENTRY_OVERHEAD);
        assert!(matches!(
            ns.set("other", &[0; 10]),
            Err(StateError::QuotaExceeded { .. })
        ));
        // Replacing a value with a smaller one is always allowed, and frees room.
        ns.set("key", &[0; 10]).expect("shrink");
        ns.set("other", &[0; 10]).expect("fits now");
        assert!(ns.delete("key").expect("delete"));
        assert_eq!(ns.usage(), 15 + ENTRY_OVERHEAD);
    }

    #[test]
    fn every_key_costs_its_overhead() {
        let (_dir, store) = store(10 * ENTRY_OVERHEAD);
        let ns = store
            .namespace(&DriverName::new("a").expect("name"))
            .expect("ns");
        // Ten one-byte keys of empty values fill a quota of ten overheads (plus their bytes).
        let stored = (0..20)
            .take_while(|i| ns.set(&format!("{}", i % 10), b"").is_ok() || *i >= 10)
            .count();
        assert!(stored >= 9, "{stored}");
        assert!(matches!(
            ns.set("one-more", b""),
            Err(StateError::QuotaExceeded { .. })
        ));
    }

    #[test]
    fn usage_survives_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let name = DriverName::new("a").expect("name");
        {
            let store = SledStateStore::open(dir.path(), 1000).expect("open");
            store
                .namespace(&name)
                .expect("ns")
                .set("k", b"vv")
                .expect("set");
            store.flush().expect("flush");
        }
        let store = SledStateStore::open(dir.path(), 1000).expect("reopen");
        let ns = store.namespace(&name).expect("ns");
        assert_eq!(ns.usage(), 3 + ENTRY_OVERHEAD);
        assert_eq!(ns.keys("").expect("keys"), vec!["k".to_owned()]);
    }

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

    #[test]
    fn bad_keys_are_refused() {
        let (_dir, store) = store(1000);
        let ns = store
            .namespace(&DriverName::new("a").expect("name"))
            .expect("ns");
        assert!(matches!(ns.set("", b""), Err(StateError::InvalidKey(_))));
        assert!(matches!(
            ns.get(&"k".repeat(600)),
            Err(StateError::InvalidKey(_))
        ));
    }
}
