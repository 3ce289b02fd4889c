//! Driver-private state in PostgreSQL: one namespace per driver (rows keyed by driver and key),
//! with the quota kept in a usage row that each write locks, so hosts writing one namespace at
//! once cannot take it past its quota together. The namespace contract (quota, key rules) is
//! the runtime's.

use std::sync::Arc;

use lbaas_core::DriverName;
use lbaas_core::driver_state::{
    MAX_VALUE_BYTES, Namespace, Result, StateError, StateStore, check_key, entry_cost,
};

use crate::{Database, Error};

fn storage(error: Error) -> StateError {
    StateError::Storage(error.to_string())
}

/// Every driver's namespace, in the shared database.
pub struct PgStateStore {
    db: Arc<Database>,
    quota: u64,
}

impl PgStateStore {
    pub fn new(db: Arc<Database>, quota: u64) -> Self {
        Self { db, quota }
    }
}

impl StateStore for PgStateStore {
    fn namespace(&self, driver: &DriverName) -> Result<Arc<dyn Namespace>> {
        Ok(Arc::new(PgNamespace {
            db: self.db.clone(),
            driver: driver.to_string(),
            quota: self.quota,
        }))
    }
}

struct PgNamespace {
    db: Arc<Database>,
    driver: String,
    quota: u64,
}

/// Why a write was refused inside its transaction, carried out of it.
enum Refused {
    Quota { quota: u64, wanted: u64 },
}

impl Namespace for PgNamespace {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        check_key(key)?;
        let (driver, key) = (self.driver.clone(), key.to_owned());
        self.db
            .with(move |client| async move {
                Ok(client
                    .query_opt(
                        "SELECT value FROM lbaas_driver_state WHERE driver = $1 AND key = $2",
                        &[&driver, &key],
                    )
                    .await?
                    .map(|row| row.get(0)))
            })
            .map_err(storage)
    }

    fn set(&self, key: &str, value: &[u8]) -> Result<()> {
        check_key(key)?;
        if value.len() > MAX_VALUE_BYTES {
            return Err(StateError::ValueTooLarge(value.len()));
        }
        let (driver, key, value, quota) = (
            self.driver.clone(),
            key.to_owned(),
            value.to_vec(),
            self.quota,
        );
        let refused = self
            .db
            .with(move |mut client| async move {
                let tx = client.transaction().await?;
                tx.execute(
                    "INSERT INTO lbaas_driver_usage (driver, used) VALUES ($1, 0)
                     ON CONFLICT (driver) DO NOTHING",
                    &[&driver],
                )
                .await?;
                let used: i64 = tx
                    .query_one(
                        "SELECT used FROM lbaas_driver_usage WHERE driver = $1 FOR UPDATE",
                        &[&driver],
                    )
                    .await?
                    .get(0);
                let old: Option<i32> = tx
                    .query_opt(
                        "SELECT octet_length(value) FROM lbaas_driver_state
                         WHERE driver = $1 AND key = $2",
                        &[&driver, &key],
                    )
                    .await?
                    .map(|row| row.get(0));
                let used = used as u64;
                let old = old.map_or(0, |len| entry_cost(key.len(), len as usize));
                let wanted = used - old.min(used) + entry_cost(key.len(), value.len());
                // A write that does not grow the namespace is allowed even over the quota
                // (a quota lowered since), as in every backend.
                if wanted > quota && wanted > used {
                    return Ok(Some(Refused::Quota { quota, wanted }));
                }
                tx.execute(
                    "INSERT INTO lbaas_driver_state (driver, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT (driver, key) DO UPDATE SET value = EXCLUDED.value",
                    &[&driver, &key, &value],
                )
                .await?;
                tx.execute(
                    "UPDATE lbaas_driver_usage SET used = $2 WHERE driver = $1",
                    &[&driver, &(wanted as i64)],
                )
                .await?;
                tx.commit().await?;
                Ok(None)
            })
            .map_err(storage)?;
        match refused {
            Some(Refused::Quota { quota, wanted }) => {
                Err(StateError::QuotaExceeded { quota, wanted })
            }
            None => Ok(()),
        }
    }

    fn delete(&self, key: &str) -> Result<bool> {
        check_key(key)?;
        let (driver, key) = (self.driver.clone(), key.to_owned());
        self.db
            .with(move |mut client| async move {
                let tx = client.transaction().await?;
                let removed: Option<i32> = tx
                    .query_opt(
                        "DELETE FROM lbaas_driver_state WHERE driver = $1 AND key = $2
                         RETURNING octet_length(value)",
                        &[&driver, &key],
                    )
                    .await?
                    .map(|row| row.get(0));
                let Some(len) = removed else {
                    return Ok(false);
                };
                let cost = entry_cost(key.len(), len as usize) as i64;
                tx.execute(
                    "UPDATE lbaas_driver_usage SET used = greatest(used - $2, 0) WHERE driver = $1",
                    &[&driver, &cost],
                )
                .await?;
                tx.commit().await?;
                Ok(true)
            })
            .map_err(storage)
    }

    fn keys(&self, prefix: &str) -> Result<Vec<String>> {
        if prefix.contains('\0') {
            // No key holds one (`check_key`), and PostgreSQL's text cannot.
            return Ok(Vec::new());
        }
        let (driver, prefix) = (self.driver.clone(), prefix.to_owned());
        self.db
            .with(move |client| async move {
                Ok(client
                    .query(
                        "SELECT key FROM lbaas_driver_state
                         WHERE driver = $1 AND starts_with(key, $2) ORDER BY key",
                        &[&driver, &prefix],
                    )
                    .await?
                    .into_iter()
                    .map(|row| row.get(0))
                    .collect())
            })
            .map_err(storage)
    }

    fn usage(&self) -> u64 {
        let driver = self.driver.clone();
        self.db
            .with(move |client| async move {
                Ok(client
                    .query_opt(
                        "SELECT used FROM lbaas_driver_usage WHERE driver = $1",
                        &[&driver],
                    )
                    .await?
                    .map_or(0, |row| row.get::<_, i64>(0) as u64))
            })
            .unwrap_or(0)
    }
}
