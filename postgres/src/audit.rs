//! The audit chain in PostgreSQL: one chain for every host. Each host's writer thread
//! ([`lbaas_core::chain::Appender`]) stores a burst as one chunk row, in a transaction that
//! locks the head row, links the records after it and moves it: hosts appending at once take
//! turns, and the chain stays one sequence.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use lbaas_core::audit::{
    AuditSink, AuditTrail, Checkpoint, Event, ExportError, Filter, Record, Verification,
};
use lbaas_core::chain::{self, Appender, AuditError, Chunks, Head, Tip, Walk, decode_entry};
use lbaas_telemetry::Metrics;

use crate::{Database, Error, Result};

/// Stored entries (first sequence number, bytes), in order, and the head beside them.
type Entries = (Vec<(u64, Vec<u8>)>, Option<Head>);

/// The chain in the shared database.
pub struct PgAudit {
    db: Arc<Database>,
    appender: Appender,
    signer: Option<SigningKey>,
}

impl PgAudit {
    /// Opens the shared chain, this host's writer counted in `metrics`.
    pub fn open(db: Arc<Database>, metrics: &Metrics) -> Result<Self> {
        let appender = Appender::start(PgChunks { db: db.clone() }, metrics)
            .map_err(|e| Error::Pool(format!("cannot start the audit writer: {e}")))?;
        Ok(Self {
            db,
            appender,
            signer: None,
        })
    }

    /// Signs the checkpoints this host gives out with `key`.
    pub fn with_signer(mut self, key: SigningKey) -> Self {
        self.signer = Some(key);
        self
    }

    /// Appends `events` and waits until they are stored; the last sequence number.
    pub fn append_all(&self, events: Vec<Event>) -> Result<Option<u64>> {
        self.appender
            .append_all(events)
            .map_err(|e| Error::Postgres(e.to_string()))
    }

    /// The stored entries from the one holding record `first` on, with the head: one
    /// consistent read.
    fn entries(&self, first: u64) -> Result<Entries> {
        self.appender.sync(false);
        entries(&self.db, first)
    }
}

/// Stored entries holding records from `first` on, in order, and the head.
fn entries(db: &Database, first: u64) -> Result<Entries> {
    db.with(move |mut client| async move {
        let tx = crate::consistent_read(&mut client).await?;
        let rows = tx
            .query(
                "SELECT first_seq, records FROM lbaas_audit WHERE last_seq >= $1
                 ORDER BY first_seq",
                &[&(first as i64)],
            )
            .await?;
        let head = tx
            .query_one("SELECT seq, hash FROM lbaas_audit_head", &[])
            .await?;
        let head = (head.get::<_, i64>(0) >= 0).then(|| Head {
            seq: head.get::<_, i64>(0) as u64,
            hash: head.get(1),
        });
        Ok((
            rows.into_iter()
                .map(|row| (row.get::<_, i64>(0) as u64, row.get(1)))
                .collect(),
            head,
        ))
    })
}

/// Walks the whole chain in `db`; with a checkpoint, also requires its record in the chain.
pub fn verify(db: &Database, checkpoint: Option<&Checkpoint>) -> Verification {
    let mut walk = Walk::new(checkpoint);
    match entries(db, 0) {
        Ok((rows, head)) => {
            for (first, bytes) in rows {
                walk.entry(first, &bytes);
            }
            walk.finish(head)
        }
        Err(error) => {
            walk.unreadable(error);
            walk.finish(None)
        }
    }
}

/// Every record in `db`, oldest first.
pub fn records(db: &Database) -> Result<Vec<Record>> {
    let (rows, _) = entries(db, 0)?;
    let mut records = Vec::new();
    for (first, bytes) in rows {
        records.extend(decode_entry(&bytes).map_err(|e| {
            Error::Postgres(format!("audit entry {first} is not valid records: {e}"))
        })?);
    }
    Ok(records)
}

/// Writes every record as JSON Lines; returns how many.
pub fn export(db: &Database, out: &mut dyn std::io::Write) -> Result<u64, ExportError> {
    let records = records(db).map_err(|e| ExportError::Read(e.to_string()))?;
    lbaas_core::audit::export(records, out)
}

impl AuditTrail for PgAudit {
    fn query(&self, filter: &Filter) -> Vec<Record> {
        let first = filter.after.map_or(0, |seq| seq.saturating_add(1));
        let Ok((rows, _)) = self.entries(first) else {
            return Vec::new();
        };
        rows.iter()
            .filter_map(|(_, bytes)| decode_entry(bytes).ok())
            .flatten()
            .filter(|record| record.seq >= first && filter.matches(record))
            .take(filter.limit)
            .collect()
    }

    fn verify(&self) -> Verification {
        self.appender.sync(false);
        verify(&self.db, None)
    }

    fn checkpoint(&self) -> std::result::Result<Checkpoint, Verification> {
        chain::checkpoint(AuditTrail::verify(self), self.signer.as_ref())
    }
}

impl AuditSink for PgAudit {
    fn append(&self, events: Vec<Event>) {
        self.appender.append(events);
    }

    /// A chunk is durable once PostgreSQL has committed it.
    fn append_durable(&self, events: Vec<Event>) {
        self.appender.append(events);
        self.appender.sync(true);
    }
}

/// The writer's end: each burst in one transaction that moves the shared head.
struct PgChunks {
    db: Arc<Database>,
}

impl Chunks for PgChunks {
    fn store(
        &mut self,
        appends: Vec<(String, Vec<Event>)>,
    ) -> std::result::Result<u64, AuditError> {
        self.db
            .with(move |mut client| async move {
                let tx = client.transaction().await?;
                let head = tx
                    .query_one("SELECT seq, hash FROM lbaas_audit_head FOR UPDATE", &[])
                    .await?;
                let seq: i64 = head.get(0);
                let head = (seq >= 0).then(|| Head {
                    seq: seq as u64,
                    hash: head.get(1),
                });
                let mut tip = Tip::after(head.as_ref());
                let first = tip.next;
                let chunk = chain::link_all(&mut tip, appends);
                let Some(head) = tip.head() else {
                    return Ok(first);
                };
                let bytes = serde_json::to_vec(&chunk).unwrap_or_default();
                tx.execute(
                    "INSERT INTO lbaas_audit (first_seq, last_seq, records) VALUES ($1, $2, $3)",
                    &[&(first as i64), &(head.seq as i64), &bytes],
                )
                .await?;
                tx.execute(
                    "UPDATE lbaas_audit_head SET seq = $1, hash = $2",
                    &[&(head.seq as i64), &head.hash],
                )
                .await?;
                tx.commit().await?;
                Ok(first)
            })
            .map_err(|e| AuditError::Storage(e.to_string()))
    }

    fn flush(&mut self) -> std::result::Result<(), AuditError> {
        Ok(())
    }
}

/// Copies `records` (a whole chain, oldest first, as another backend kept it) into an empty
/// chain in `db`, as they are: their hashes, times and sequence numbers carry over, so the
/// chain verifies as it did and checkpoints taken before stay valid.
pub fn import(db: &Database, records: Vec<Record>) -> Result<u64> {
    let count = records.len() as u64;
    db.with(move |mut client| async move {
        let tx = client.transaction().await?;
        let head: i64 = tx
            .query_one("SELECT seq FROM lbaas_audit_head FOR UPDATE", &[])
            .await?
            .get(0);
        if head >= 0 {
            return Err(Error::Postgres(
                "the database already holds an audit chain: import into an empty database".into(),
            ));
        }
        for chunk in records.chunks(4096) {
            let (Some(first), Some(last)) = (chunk.first(), chunk.last()) else {
                continue;
            };
            let bytes = serde_json::to_vec(chunk).unwrap_or_default();
            tx.execute(
                "INSERT INTO lbaas_audit (first_seq, last_seq, records) VALUES ($1, $2, $3)",
                &[&(first.seq as i64), &(last.seq as i64), &bytes],
            )
            .await?;
        }
        if let Some(last) = records.last() {
            tx.execute(
                "UPDATE lbaas_audit_head SET seq = $1, hash = $2",
                &[&(last.seq as i64), &last.hash],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(count)
    })
}
