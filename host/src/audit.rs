//! The audit log: what every driver did (each import call) and what happened to it (limits
//! hit, quarantine, release), as a hash chain in its own sled tree.
//!
//! Record `n` stores the SHA-256 of record `n - 1` (`prev`) and its own hash over its content
//! and `prev`. A head entry, written in the same atomic batch as each record, names the last
//! sequence number and hash. [`verify`] walks the chain: an edited record no longer matches its
//! hash (or breaks the next record's `prev`), a deleted record leaves a gap in the sequence or
//! a head that names a missing record. (Rewriting the whole chain from the edit onwards, head
//! included, needs the export or the head hash kept elsewhere to be caught.)
//!
//! Drivers' import calls are collected during one call and appended together, so auditing
//! costs one batch per driver call, not one write per import.

use std::io::Write;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The tree that holds the chain.
pub const TREE: &str = "audit";
const HEAD: &[u8] = b"head";
const RECORD_PREFIX: u8 = b'r';
/// `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Whether what was attempted happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Ok,
    /// Refused by the host's policy (permissions, quotas, limits).
    Denied,
    /// Attempted and failed (device unreachable, storage error, trap).
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing to record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub driver: String,
    pub version: String,
    pub sha256: String,
    /// The import (`state.set`, `device-api.send`, `log.log`), or a lifecycle event
    /// (`lifecycle.quarantine`, `limit.deadline`, …).
    pub function: String,
    /// The device, state key or export touched.
    pub target: Option<String>,
    /// Bytes sent or stored.
    pub bytes: u64,
    pub outcome: Outcome,
    pub duration_us: u64,
    /// What happened, in words (a status code, an error).
    pub detail: Option<String>,
}

/// An event in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub seq: u64,
    /// RFC 3339, microseconds, UTC.
    pub at: String,
    #[serde(flatten)]
    pub event: Event,
    pub prev: String,
    pub hash: String,
}

/// What the hash covers: everything but the hash itself, in a fixed order.
#[derive(Serialize)]
struct Hashed<'a> {
    seq: u64,
    at: &'a str,
    event: &'a Event,
    prev: &'a str,
}

fn digest(seq: u64, at: &str, event: &Event, prev: &str) -> String {
    let bytes = serde_json::to_vec(&Hashed {
        seq,
        at,
        event,
        prev,
    })
    .unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    hash: String,
}

fn record_key(seq: u64) -> [u8; 9] {
    let mut key = [RECORD_PREFIX; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Where audit events go. The runtime holds one; [`Discard`] is for tools and tests that do
/// not audit.
pub trait AuditSink: Send + Sync {
    fn append(&self, events: Vec<Event>);
}

/// Drops every event.
#[derive(Debug, Default)]
pub struct Discard;

impl AuditSink for Discard {
    fn append(&self, _events: Vec<Event>) {}
}

/// The chain in a sled tree.
pub struct AuditLog {
    tree: sled::Tree,
    /// The next sequence number and the last hash; held while appending, so the chain stays
    /// a chain.
    head: Mutex<(u64, String)>,
}

impl AuditLog {
    pub fn open(db: &sled::Db) -> sled::Result<Self> {
        let tree = db.open_tree(TREE)?;
        let head = match tree.get(HEAD)? {
            Some(bytes) => serde_json::from_slice::<Head>(&bytes)
                .map(|h| (h.seq + 1, h.hash))
                .unwrap_or((0, GENESIS.to_owned())),
            None => (0, GENESIS.to_owned()),
        };
        Ok(Self {
            tree,
            head: Mutex::new(head),
        })
    }

    /// Appends `events` in order; returns the last sequence number written.
    pub fn append_all(&self, events: Vec<Event>) -> sled::Result<Option<u64>> {
        if events.is_empty() {
            return Ok(None);
        }
        let mut head = self.head.lock().unwrap_or_else(|e| e.into_inner());
        let (mut seq, mut prev) = head.clone();
        let mut batch = sled::Batch::default();
        let at = now();
        for event in events {
            let hash = digest(seq, &at, &event, &prev);
            let record = Record {
                seq,
                at: at.clone(),
                event,
                prev,
                hash: hash.clone(),
            };
            batch.insert(
                &record_key(seq),
                serde_json::to_vec(&record).unwrap_or_default(),
            );
            prev = hash;
            seq += 1;
        }
        let last = Head {
            seq: seq - 1,
            hash: prev.clone(),
        };
        batch.insert(HEAD, serde_json::to_vec(&last).unwrap_or_default());
        self.tree.apply_batch(batch)?;
        *head = (seq, prev);
        Ok(Some(last.seq))
    }

    /// Records matching `filter`, oldest first, starting after `filter.after`.
    pub fn query(&self, filter: &Filter) -> Vec<Record> {
        let start = record_key(filter.after.map_or(0, |seq| seq.saturating_add(1)));
        let end = record_key(u64::MAX);
        self.tree
            .range(start..=end)
            .filter_map(|entry| entry.ok())
            .filter_map(|(_, bytes)| serde_json::from_slice::<Record>(&bytes).ok())
            .filter(|record| filter.matches(record))
            .take(filter.limit)
            .collect()
    }

    /// Checks the chain.
    pub fn verify(&self) -> Verification {
        verify_tree(&self.tree)
    }
}

impl AuditSink for AuditLog {
    fn append(&self, events: Vec<Event>) {
        if let Err(error) = self.append_all(events) {
            tracing::error!(%error, "cannot append to the audit log");
        }
    }
}

/// Which records a query wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub driver: Option<String>,
    pub version: Option<String>,
    pub function: Option<String>,
    pub outcome: Option<Outcome>,
    /// RFC 3339 bounds, inclusive.
    pub since: Option<String>,
    pub until: Option<String>,
    /// Only records after this sequence number.
    pub after: Option<u64>,
    pub limit: usize,
}

impl Filter {
    fn matches(&self, record: &Record) -> bool {
        let event = &record.event;
        self.driver.as_ref().is_none_or(|d| *d == event.driver)
            && self.version.as_ref().is_none_or(|v| *v == event.version)
            && self.function.as_ref().is_none_or(|f| {
                event.function == *f || event.function.starts_with(&format!("{f}."))
            })
            && self.outcome.is_none_or(|o| o == event.outcome)
            && self
                .since
                .as_ref()
                .is_none_or(|s| record.at.as_str() >= s.as_str())
            && self
                .until
                .as_ref()
                .is_none_or(|u| record.at.as_str() <= u.as_str())
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub records: u64,
    pub head: Option<String>,
    /// The first break, in words; `None` when the chain is intact.
    pub broken: Option<String>,
}

impl Verification {
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }
}

fn verify_tree(tree: &sled::Tree) -> Verification {
    let mut expected_seq = 0u64;
    let mut prev = GENESIS.to_owned();
    let broken = |records: u64, why: String| Verification {
        records,
        head: None,
        broken: Some(why),
    };
    for entry in tree.scan_prefix([RECORD_PREFIX]) {
        let (key, bytes) = match entry {
            Ok(entry) => entry,
            Err(error) => return broken(expected_seq, format!("unreadable: {error}")),
        };
        let Some(seq) = key
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
        else {
            return broken(expected_seq, "a record key is malformed".into());
        };
        if seq != expected_seq {
            return broken(
                expected_seq,
                format!("record {expected_seq} is missing (the next one is {seq}): deleted"),
            );
        }
        let Ok(record) = serde_json::from_slice::<Record>(&bytes) else {
            return broken(
                expected_seq,
                format!("record {seq} is not a valid record: edited"),
            );
        };
        if record.seq != seq || record.prev != prev {
            return broken(
                expected_seq,
                format!(
                    "record {seq} does not follow record {}: edited or reordered",
                    seq.wrapping_sub(1)
                ),
            );
        }
        if digest(record.seq, &record.at, &record.event, &record.prev) != record.hash {
            return broken(
                expected_seq,
                format!("record {seq} does not match its hash: edited"),
            );
        }
        prev = record.hash;
        expected_seq += 1;
    }
    let head: Option<Head> = tree
        .get(HEAD)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match head {
        None if expected_seq == 0 => Verification {
            records: 0,
            head: None,
            broken: None,
        },
        None => broken(expected_seq, "the head entry is missing".into()),
        Some(head) if head.seq + 1 != expected_seq || head.hash != prev => broken(
            expected_seq,
            format!(
                "the head names record {} but the chain ends at record {}: records deleted at the end",
                head.seq,
                expected_seq as i128 - 1
            ),
        ),
        Some(head) => Verification {
            records: expected_seq,
            head: Some(head.hash),
            broken: None,
        },
    }
}

/// Checks the chain in a database (the host must not be running on it).
pub fn verify(db: &sled::Db) -> sled::Result<Verification> {
    Ok(verify_tree(&db.open_tree(TREE)?))
}

/// Writes every record as JSON Lines; returns how many.
pub fn export(db: &sled::Db, out: &mut dyn Write) -> anyhow::Result<u64> {
    let tree = db.open_tree(TREE)?;
    let mut count = 0;
    for entry in tree.scan_prefix([RECORD_PREFIX]) {
        let (_, bytes) = entry?;
        out.write_all(&bytes)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

fn now() -> String {
    humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let log = AuditLog::open(&db).expect("log");
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
        let log = AuditLog::open(&db).expect("reopen");
        log.append_all(vec![event("log.log", Outcome::Denied)])
            .expect("append");
        let verified = verify(&db).expect("verify");
        assert!(verified.intact(), "{verified:?}");
        assert_eq!(verified.records, 6);
    }

    #[test]
    fn an_edited_record_is_detected() {
        let (db, log) = log_with(4);
        let tree = db.open_tree(TREE).expect("tree");
        let mut record: Record =
            serde_json::from_slice(&tree.get(record_key(2)).expect("get").expect("record"))
                .expect("json");
        record.event.outcome = Outcome::Ok;
        record.event.target = Some("someone else's key".into());
        tree.insert(record_key(2), serde_json::to_vec(&record).expect("json"))
            .expect("edit");
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
        let tree = db.open_tree(TREE).expect("tree");
        tree.remove(record_key(1)).expect("delete");
        let verified = log.verify();
        assert!(
            verified
                .broken
                .as_deref()
                .is_some_and(|b| b.contains("record 1 is missing")),
            "{verified:?}"
        );

        let (db, log) = log_with(4);
        db.open_tree(TREE)
            .expect("tree")
            .remove(record_key(3))
            .expect("delete");
        let verified = log.verify();
        assert!(
            verified
                .broken
                .as_deref()
                .is_some_and(|b| b.contains("deleted at the end")),
            "{verified:?}"
        );
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
