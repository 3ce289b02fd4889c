//! The control plane's store in sled, the embedded default: one tree per record kind, each
//! commit one sled transaction across them.

use lbaas_core::store::{Kind, Result, Store, StoreError, Write};

/// Bytes of pages sled keeps cached by default. sled's own default is 1 GiB, which a host
/// with 100,000 load balancers fills: most of its memory was cache.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Opens (or creates) the host's sled database at `path`, caching at most `cache_bytes` of
/// pages.
/// The database folder is closed to other users (spawned devices run as one): it holds device
/// credentials and the audit log.
pub fn open_database(path: &std::path::Path, cache_bytes: u64) -> sled::Result<sled::Db> {
    use std::os::unix::fs::PermissionsExt;
    let db = sled::Config::new()
        .path(path)
        .cache_capacity(cache_bytes)
        .open()?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(db)
}

/// The embedded default: a sled database, one tree per kind.
pub struct SledStore {
    db: sled::Db,
    trees: Vec<sled::Tree>,
}

fn backend(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string())
}

impl SledStore {
    pub fn new(db: sled::Db) -> Result<Self> {
        let trees = Kind::ALL
            .iter()
            .map(|kind| db.open_tree(kind.tree()).map_err(backend))
            .collect::<Result<_>>()?;
        Ok(Self { db, trees })
    }

    fn tree(&self, kind: Kind) -> &sled::Tree {
        &self.trees[kind.index()]
    }
}

impl Store for SledStore {
    fn get(&self, kind: Kind, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .tree(kind)
            .get(id)
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn scan(&self, kind: Kind) -> Result<Vec<(String, Vec<u8>)>> {
        self.tree(kind)
            .iter()
            .map(|entry| {
                let (key, value) = entry.map_err(backend)?;
                Ok((String::from_utf8_lossy(&key).into_owned(), value.to_vec()))
            })
            .collect()
    }

    fn commit(&self, writes: &[Write]) -> Result<()> {
        use sled::Transactional;
        use sled::transaction::{ConflictableTransactionError, TransactionError};

        let trees: &[sled::Tree] = &self.trees;
        trees
            .transaction(|trees| {
                for write in writes {
                    match write {
                        Write::Put { kind, id, bytes } => {
                            trees[kind.index()].insert(id.as_bytes(), bytes.as_slice())?;
                        }
                        Write::Delete { kind, id } => {
                            trees[kind.index()].remove(id.as_bytes())?;
                        }
                    }
                }
                Ok::<_, ConflictableTransactionError<()>>(())
            })
            .map_err(|e: TransactionError<()>| backend(format!("{e:?}")))
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map_err(backend)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sled_store_keeps_the_contract() {
        let db = sled::Config::new().temporary(true).open().expect("db");
        lbaas_core::store::check_contract(&SledStore::new(db).expect("store"));
    }
}
