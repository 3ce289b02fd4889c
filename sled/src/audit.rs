//! The audit log in sled: the chain ([`lbaas_core::chain`]: how records link, verify and
//! are appended in chunks by one writer thread) in its own tree, each chunk under the key of
//! its first sequence number and stored in one sled batch with the head entry. Entries
//! written one record each by earlier versions stay readable and verifiable. Like every write
//! the host does not acknowledge to a client, records reach the disk with sled's periodic
//! flush (or at once, for [`AuditSink::append_durable`]).

use std::io::Write;

use ed25519_dalek::SigningKey;
use lbaas_core::audit;
use lbaas_core::chain::{self, Appender, AuditError, Chunks, Head, Tip, Walk, decode_entry};
use lbaas_telemetry::Metrics;

pub use lbaas_core::audit::{
    AuditSink, AuditTrail, Checkpoint, Discard, Event, ExportError, Filter, Outcome, Record,
    Verification,
};

/// The tree that holds the chain.
pub const TREE: &str = "audit";
const HEAD: &[u8] = b"head";
const RECORD_PREFIX: u8 = b'r';

fn record_key(seq: u64) -> [u8; 9] {
    let mut key = [RECORD_PREFIX; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn key_seq(key: &[u8]) -> Option<u64> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

fn read_head(tree: &sled::Tree) -> Option<Head> {
    tree.get(HEAD)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
}

/// The chain in a sled tree, appended by its own writer thread.
pub struct AuditLog {
    tree: sled::Tree,
    appender: Appender,
    /// Signs the checkpoints this host gives out.
    signer: Option<SigningKey>,
}

impl AuditLog {
    /// Opens the chain in `db`, its writer counted in `metrics`.
    pub fn open(db: &sled::Db, metrics: &Metrics) -> sled::Result<Self> {
        let tree = db.open_tree(TREE)?;
        let tip = Tip::after(read_head(&tree).as_ref());
        let appender = Appender::start(
            SledChunks {
                tree: tree.clone(),
                tip,
            },
            metrics,
        )
        .map_err(sled::Error::Io)?;
        Ok(Self {
            tree,
            appender,
            signer: None,
        })
    }

    /// Appends `events` in order and waits until they are written; returns the last sequence
    /// number written.
    pub fn append_all(&self, events: Vec<Event>) -> Result<Option<u64>, AuditError> {
        self.appender.append_all(events)
    }

    /// Waits until every event appended before this call is written.
    pub fn sync(&self) {
        self.appender.sync(false);
    }

    /// Records matching `filter`, oldest first, starting after `filter.after`.
    pub fn query(&self, filter: &Filter) -> Vec<Record> {
        self.sync();
        let first = filter.after.map_or(0, |seq| seq.saturating_add(1));
        // The entry holding `first` may start before it (a chunk).
        let start = self
            .tree
            .range(record_key(0)..=record_key(first))
            .next_back()
            .and_then(|entry| entry.ok())
            .map_or(record_key(first).to_vec(), |(key, _)| key.to_vec());
        self.tree
            .range(start..=record_key(u64::MAX).to_vec())
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, bytes)| decode_entry(&bytes).ok())
            .flatten()
            .filter(|record| record.seq >= first && filter.matches(record))
            .take(filter.limit)
            .collect()
    }

    /// Checks the chain.
    pub fn verify(&self) -> Verification {
        self.sync();
        verify_tree(&self.tree, None)
    }

    /// Signs the checkpoints this log gives out with `key`.
    pub fn with_signer(mut self, key: SigningKey) -> Self {
        self.signer = Some(key);
        self
    }

    /// The chain verified and its head as a checkpoint, signed when the log has a signer;
    /// `Err` with the verification when the chain is empty or broken.
    pub fn checkpoint(&self) -> Result<Checkpoint, Verification> {
        chain::checkpoint(self.verify(), self.signer.as_ref())
    }
}

impl AuditTrail for AuditLog {
    fn query(&self, filter: &Filter) -> Vec<Record> {
        AuditLog::query(self, filter)
    }

    fn verify(&self) -> Verification {
        AuditLog::verify(self)
    }

    fn checkpoint(&self) -> Result<Checkpoint, Verification> {
        AuditLog::checkpoint(self)
    }
}

impl AuditSink for AuditLog {
    fn append(&self, events: Vec<Event>) {
        self.appender.append(events);
    }

    fn append_durable(&self, events: Vec<Event>) {
        self.appender.append(events);
        self.appender.sync(true);
    }
}

/// The writer's end: the tree, and where the chain goes on (one host owns a sled database,
/// so the tip it keeps is the stored one).
struct SledChunks {
    tree: sled::Tree,
    tip: Tip,
}

impl Chunks for SledChunks {
    fn store(&mut self, appends: Vec<(String, Vec<Event>)>) -> Result<u64, AuditError> {
        let mut tip = self.tip.clone();
        let first = tip.next;
        let chunk = chain::link_all(&mut tip, appends);
        let mut batch = sled::Batch::default();
        batch.insert(
            &record_key(first),
            serde_json::to_vec(&chunk).unwrap_or_default(),
        );
        if let Some(head) = tip.head() {
            batch.insert(HEAD, serde_json::to_vec(&head).unwrap_or_default());
        }
        self.tree
            .apply_batch(batch)
            .map_err(|e| AuditError::Storage(e.to_string()))?;
        self.tip = tip;
        Ok(first)
    }

    fn flush(&mut self) -> Result<(), AuditError> {
        self.tree
            .flush()
            .map(drop)
            .map_err(|e| AuditError::Storage(e.to_string()))
    }
}

/// Walks the chain; with a checkpoint, also requires its record, with its hash, in the chain.
fn verify_tree(tree: &sled::Tree, checkpoint: Option<&Checkpoint>) -> Verification {
    let mut walk = Walk::new(checkpoint);
    for entry in tree.scan_prefix([RECORD_PREFIX]) {
        if !walk.intact() {
            break;
        }
        match entry {
            Ok((key, bytes)) => match key_seq(&key) {
                Some(first) => walk.entry(first, &bytes),
                None => walk.unreadable("a record key is malformed"),
            },
            Err(error) => walk.unreadable(error),
        }
    }
    walk.finish(read_head(tree))
}

/// Checks the chain in a database (the host must not be running on it).
pub fn verify(db: &sled::Db) -> sled::Result<Verification> {
    Ok(verify_tree(&db.open_tree(TREE)?, None))
}

/// Checks the chain in a database against a checkpoint taken earlier: a chain cut short of it,
/// or rewritten before it, is broken even when its own head entry was rewritten to match.
pub fn verify_against(db: &sled::Db, checkpoint: &Checkpoint) -> sled::Result<Verification> {
    Ok(verify_tree(&db.open_tree(TREE)?, Some(checkpoint)))
}

/// Every record, oldest first.
pub fn records(db: &sled::Db) -> Result<Vec<Record>, ExportError> {
    let unreadable = |e: &dyn std::fmt::Display| ExportError::Read(e.to_string());
    let tree = db.open_tree(TREE).map_err(|e| unreadable(&e))?;
    let mut records = Vec::new();
    for entry in tree.scan_prefix([RECORD_PREFIX]) {
        let (_, bytes) = entry.map_err(|e| unreadable(&e))?;
        records.extend(decode_entry(&bytes).map_err(|e| unreadable(&e))?);
    }
    Ok(records)
}

/// Writes every record as JSON Lines; returns how many.
pub fn export(db: &sled::Db, out: &mut dyn Write) -> Result<u64, ExportError> {
    audit::export(records(db)?, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lbaas_core::chain::{GENESIS, digest};

    fn event(function: &str, outcome: Outcome) -> Event {
        Event {
            driver: "haproxy".into(),
            version: "0.1.0".into(),
            sha256: "ab".into(),
            function: function.into(),
            target: Some("key".into()),
            bytes: 3,
            outcome,
            duration_us: 7,
            detail: None,
        }
    }

    fn log_with(records: usize) -> (sled::Db, AuditLog) {
        let db = sled::Config::new().temporary(true).open().expect("db");
        let log = AuditLog::open(&db, &Metrics::default()).expect("log");
        let events = (0..records)
            .map(|i| {
                event(
                    if i % 2 == 0 {
                        "state.get"
                    } else {
                        "device-api.send"
                    },
                    Outcome::Ok,
                )
            })
            .collect();
        log.append_all(events).expect("append");
        (db, log)
    }

    #[test]
    fn an_intact_chain_verifies_and_survives_reopening() {
        let (db, log) = log_with(5);
        assert_eq!(log.verify().records, 5);
        assert!(log.verify().intact());
        drop(log);
        let log = AuditLog::open(&db, &Metrics::default()).expect("reopen");
        log.append_all(vec![event("log.log", Outcome::Denied)])
            .expect("append");
        let verified = verify(&db).expect("verify");
        assert!(verified.intact(), "{verified:?}");
        assert_eq!(verified.records, 6);
    }

    /// Rewrites the stored entry holding record `seq` with `change`.
    fn tamper(db: &sled::Db, seq: u64, change: impl FnOnce(&mut Vec<Record>)) {
        let tree = db.open_tree(TREE).expect("tree");
        let (key, bytes) = tree
            .range(record_key(0)..=record_key(seq))
            .next_back()
            .expect("an entry")
            .expect("readable");
        let mut records = decode_entry(&bytes).expect("records");
        change(&mut records);
        tree.insert(key, serde_json::to_vec(&records).expect("json"))
            .expect("edit");
    }

    #[test]
    fn an_edited_record_is_detected() {
        let (db, log) = log_with(4);
        tamper(&db, 2, |records| {
            records[2].event.outcome = Outcome::Ok;
            records[2].event.target = Some("someone else's key".into());
        });
        let verified = log.verify();
        assert!(
            verified
                .broken
                .as_deref()
                .is_some_and(|b| b.contains("record 2") && b.contains("edited")),
            "{verified:?}"
        );
    }

    #[test]
    fn a_deleted_record_is_detected_in_the_middle_and_at_the_end() {
        let (db, log) = log_with(4);
        tamper(&db, 1, |records| {
            records.remove(1);
        });
        let verified = log.verify();
        assert!(
            verified
                .broken
                .as_deref()
                .is_some_and(|b| b.contains("record 1 is missing")),
            "{verified:?}"
        );

        let (db, log) = log_with(4);
        tamper(&db, 3, |records| {
            records.pop();
        });
        let verified = log.verify();
        assert!(
            verified
                .broken
                .as_deref()
                .is_some_and(|b| b.contains("deleted at the end")),
            "{verified:?}"
        );

        // A whole chunk removed from between two others.
        let (db, log) = log_with(2);
        log.append_all(vec![event("state.set", Outcome::Ok)])
            .expect("append");
        log.append_all(vec![event("state.set", Outcome::Ok)])
            .expect("append");
        db.open_tree(TREE)
            .expect("tree")
            .remove(record_key(2))
            .expect("delete");
        let verified = log.verify();
        assert!(
            verified
                .broken
                .as_deref()
                .is_some_and(|b| b.contains("record 2 is missing (the next one is 3)")),
            "{verified:?}"
        );
    }

    #[test]
    fn records_written_one_per_entry_by_earlier_versions_still_verify_and_answer_queries() {
        let db = sled::Config::new().temporary(true).open().expect("db");
        let tree = db.open_tree(TREE).expect("tree");
        let mut prev = GENESIS.to_owned();
        for seq in 0..3 {
            let at = "2026-11-01T10:00:00.000000Z".to_owned();
            let event = event("state.get", Outcome::Ok);
            let hash = digest(seq, &at, &event, &prev);
            let record = Record {
                seq,
                at,
                event,
                prev,
                hash: hash.clone(),
            };
            tree.insert(record_key(seq), serde_json::to_vec(&record).expect("json"))
                .expect("insert");
            prev = hash;
        }
        let head = Head { seq: 2, hash: prev };
        tree.insert(HEAD, serde_json::to_vec(&head).expect("json"))
            .expect("head");

        let log = AuditLog::open(&db, &Metrics::default()).expect("log");
        assert_eq!(
            log.append_all(vec![event("state.set", Outcome::Denied); 2])
                .expect("append"),
            Some(4)
        );
        let verified = log.verify();
        assert!(verified.intact(), "{verified:?}");
        assert_eq!(verified.records, 5);
        let after_one = log.query(&Filter {
            after: Some(1),
            limit: 10,
            ..Default::default()
        });
        assert_eq!(
            after_one.iter().map(|r| r.seq).collect::<Vec<_>>(),
            [2, 3, 4]
        );
    }

    #[test]
    fn appends_from_many_threads_form_one_chain_and_queries_see_them_all() {
        let db = sled::Config::new().temporary(true).open().expect("db");
        let log = std::sync::Arc::new(AuditLog::open(&db, &Metrics::default()).expect("log"));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for _ in 0..250 {
                        log.append(vec![event("state.get", Outcome::Ok); 3]);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        // No wait in between: the query drains the queue first.
        let all = log.query(&Filter {
            limit: usize::MAX,
            ..Default::default()
        });
        assert_eq!(all.len(), 3000);
        assert!(all.iter().enumerate().all(|(i, r)| r.seq == i as u64));
        let verified = log.verify();
        assert!(verified.intact(), "{verified:?}");
        assert_eq!(verified.records, 3000);
        // What was queued when the log is dropped is written.
        log.append(vec![event("log.log", Outcome::Ok)]);
        drop(std::sync::Arc::into_inner(log).expect("the only handle"));
        assert_eq!(verify(&db).expect("verify").records, 3001);
    }

    #[test]
    fn queries_filter_and_page() {
        let (_db, log) = log_with(6);
        log.append_all(vec![event("state.set", Outcome::Denied)])
            .expect("append");
        let all = |filter: Filter| {
            log.query(&Filter {
                limit: 100,
                ..filter
            })
        };
        assert_eq!(all(Filter::default()).len(), 7);
        assert_eq!(
            all(Filter {
                function: Some("device-api".into()),
                ..Default::default()
            })
            .len(),
            3
        );
        assert_eq!(
            all(Filter {
                outcome: Some(Outcome::Denied),
                ..Default::default()
            })
            .len(),
            1
        );
        assert_eq!(
            all(Filter {
                driver: Some("other".into()),
                ..Default::default()
            })
            .len(),
            0
        );
        let page = log.query(&Filter {
            limit: 2,
            after: Some(3),
            ..Default::default()
        });
        assert_eq!(page.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
        let mut out = Vec::new();
        assert_eq!(export(&_db, &mut out).expect("export"), 7);
        assert_eq!(String::from_utf8(out).expect("utf8").lines().count(), 7);
    }
}
