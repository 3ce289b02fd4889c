//! Moving a host from sled onto PostgreSQL (`lbaasd migrate-store`): every record, every
//! driver's private state and the audit chain, copied as they are from a stopped host's data
//! folder into an empty database, the chain verified on both sides.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use lbaas_core::DriverName;
use lbaas_core::driver_state::StateStore as _;
use lbaas_core::model::Device;
use lbaas_core::store::{Batch, Kind, Store, decode};
use lbaas_postgres::{Database, PgStateStore, PgStore};
use lbaas_sled::SledStore;

/// What a migration copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub records: u64,
    pub state_keys: u64,
    pub audit_records: u64,
}

/// Records committed to PostgreSQL at once.
const BATCH: usize = 500;

/// Copies the sled database in `data_dir` into the empty PostgreSQL database at `url`.
///
/// The host's id (`host.id` in the data folder) carries over: the devices it spawned and the
/// jobs it left are its own when it starts on PostgreSQL with the same data folder.
pub fn sled_to_postgres(data_dir: &Path, url: &str) -> anyhow::Result<Moved> {
    let path = data_dir.join("db");
    ensure!(
        path.exists(),
        "there is no sled database in {} to copy",
        data_dir.display()
    );
    let db = sled::open(&path).with_context(|| {
        format!(
            "cannot open the database in {} (is its host still running? stop it first)",
            data_dir.display()
        )
    })?;
    let before = lbaas_sled::audit::verify(&db)?;
    if let Some(broken) = &before.broken {
        bail!(
            "the audit chain in {} is broken ({broken}): it is not copied",
            data_dir.display()
        );
    }
    let host = crate::builder::host_id(data_dir)?;
    let database = Arc::new(
        Database::open(url, &host, lbaas_postgres::DEFAULT_LEASE).with_context(|| {
            format!(
                "cannot use the PostgreSQL database {}",
                lbaas_postgres::redact(url)
            )
        })?,
    );
    let target = PgStore::new(database.clone());
    for kind in Kind::ALL {
        if !target.scan(kind)?.is_empty() {
            bail!(
                "the PostgreSQL database already holds {}: migrate into an empty database",
                kind.tree()
            );
        }
    }

    let source = SledStore::new(db.clone())?;
    let mut records = 0;
    for kind in Kind::ALL {
        let mut batch = Batch::new();
        for (id, bytes) in source.scan(kind)? {
            if kind == Kind::Device {
                // A device this host spawned stays this host's to adopt and stop.
                let mut device: Device = decode(&id, &bytes)?;
                if device.provisioned.is_some() && device.host.is_none() {
                    device.host = Some(host.clone());
                }
                batch.put(&device);
            } else {
                batch.put_raw(kind, &id, bytes);
            }
            records += 1;
            if batch.writes().len() >= BATCH {
                batch.commit(&target)?;
                batch = Batch::new();
            }
        }
        batch.commit(&target)?;
    }

    let state = PgStateStore::new(database.clone(), u64::MAX);
    let mut state_keys = 0;
    for name in db.tree_names() {
        let Some(driver) = name.strip_prefix(b"driver/") else {
            continue;
        };
        let driver = DriverName::new(String::from_utf8_lossy(driver).into_owned())
            .map_err(|e| anyhow::anyhow!("a driver state tree has an invalid name: {e}"))?;
        let namespace = state.namespace(&driver)?;
        for entry in db.open_tree(&name)?.iter() {
            let (key, value) = entry?;
            namespace.set(&String::from_utf8_lossy(&key), &value)?;
            state_keys += 1;
        }
    }

    let audit_records = lbaas_postgres::audit::import(&database, lbaas_sled::audit::records(&db)?)?;
    let after = lbaas_postgres::audit::verify(&database, None);
    ensure!(
        after.intact() && after.records == before.records && after.head == before.head,
        "the copied audit chain does not match the original: {after:?} against {before:?}"
    );
    Ok(Moved {
        records,
        state_keys,
        audit_records,
    })
}
