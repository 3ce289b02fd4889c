//! Driver-private state in sled, the embedded default: each driver's namespace in its own tree,
//! `driver/<name>`. The namespace contract (quota, key rules) is the runtime's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use lbaas_core::driver_state::*;

use lbaas_core::DriverName;

/// A sled failure, in the state contract's terms.
fn storage(error: sled::Error) -> StateError {
    StateError::Storage(error.to_string())
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
        Ok(Self::new(sled::open(path).map_err(storage)?, quota))
    }

    pub fn tree_name(driver: &DriverName) -> String {
        format!("driver/{driver}")
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(storage)?;
        Ok(())
    }
}

impl StateStore for SledStateStore {
    fn namespace(&self, driver: &DriverName) -> Result<Arc<dyn Namespace>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(namespace) = open.get(driver) {
            return Ok(namespace.clone());
        }
        let tree = self
            .db
            .open_tree(Self::tree_name(driver))
            .map_err(storage)?;
        let mut used = 0;
        for entry in tree.iter() {
            let (key, value) = entry.map_err(storage)?;
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

impl Namespace for SledNamespace {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        Ok(self
            .tree
            .get(key)
            .map_err(storage)?
            .map(|value| value.to_vec()))
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(value.len()));
        }
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let old = self
            .tree
            .get(key)
            .map_err(storage)?
            .map_or(0, |v| entry_cost(key.len(), v.len()));
        let used = self.used.load(Ordering::Acquire);
        let wanted = used - old + entry_cost(key.len(), value.len());
        if wanted > self.quota && wanted > used {
            return Err(StateError::QuotaExceeded {
                quota: self.quota,
                wanted,
            });
        }
        self.tree.insert(key, value).map_err(storage)?;
        self.used.store(wanted, Ordering::Release);
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let _writer = self.write.lock().unwrap_or_else(|e| e.into_inner());
        match self.tree.remove(key).map_err(storage)? {
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
                let key = key.map_err(storage)?;
                // Keys are only ever written from `&str`.
                Ok(String::from_utf8_lossy(&key).into_owned())
            })
            .collect()
    }

    fn usage(&self) -> u64 {
        self.used.load(Ordering::Acquire)
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
        // sled's flusher thread lets go of the file lock shortly after the last handle drops:
        // the reopen waits for it (a lock still held is the only error retried).
        let mut attempts = 0;
        let store = loop {
            match SledStateStore::open(dir.path(), 1000) {
                Err(e) if e.to_string().contains("could not acquire lock") && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.expect("reopen"),
            }
        };
        let ns = store.namespace(&name).expect("ns");
        assert_eq!(ns.usage(), 3 + ENTRY_OVERHEAD);
        assert_eq!(ns.keys("").expect("keys"), vec!["k".to_owned()]);
    }

    #[test]
    fn bad_keys_are_refused() {
        let (_dir, store) = store(1000);
        let ns = store
            .namespace(&DriverName::new("a").expect("name"))
            .expect("ns");
        assert!(matches!(ns.set("", b""), Err(StateError::InvalidKey(_))));
        assert!(matches!(
            ns.set("a\0b", b""),
            Err(StateError::InvalidKey(_))
        ));
        assert!(matches!(
            ns.get(&"k".repeat(600)),
            Err(StateError::InvalidKey(_))
        ));
    }
}
