//! The audit log: what every driver did (each import call; the successful state reads and the
//! log messages of one driver call are one summary record each, naming every key read) and
//! what happened to it (limits hit, quarantine, release), as a hash chain in its own sled tree.
//!
//! Record `n` stores the SHA-256 of record `n - 1` (`prev`) and its own hash over its content
//! and `prev`. A head entry, written in the same atomic batch as each chunk of records, names
//! the last sequence number and hash. [`verify`] walks the chain: an edited record no longer
//! matches its hash (or breaks the next record's `prev`), a deleted record leaves a gap in the
//! sequence or a head that names a missing record. (Rewriting the whole chain from the edit
//! onwards, head included, needs the export or the head hash kept elsewhere to be caught.)
//!
//! Appending is off the drivers' call path: a driver call hands its events, stamped with the
//! time they happened, to one writer thread and returns. The writer hashes them and stores
//! everything queued since its last write as one *chunk* (a JSON array of records under the
//! key of its first sequence number) in one sled batch with the head, so a busy host pays one
//! sled insert per burst instead of one per import call (sled's insert is most of the cost:
//! ~6 µs each). Records written one per entry by earlier versions stay readable and
//! verifiable: an entry is either one record (a JSON object) or a chunk (a JSON array).
//! Queries, verification and [`AuditLog::sync`] wait for the queue to drain, so they see every
//! event appended before them. The queue is bounded: a writer that falls behind slows the
//! callers down rather than growing without limit. Like every write the host does not
//! acknowledge to a client, records reach the disk with sled's periodic flush.

use std::io::Write;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::SystemTime;

use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use lbaas_core::audit::{
    AuditSink, AuditTrail, Checkpoint, Discard, Event, Filter, Outcome, Record, Verification,
};

/// The tree that holds the chain.
pub const TREE: &str = "audit";
const HEAD: &[u8] = b"head";
const RECORD_PREFIX: u8 = b'r';
/// `prev` of the first record.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// How many appends may wait for the writer before callers wait for it.
const QUEUE: usize = 1024;
/// How long the writer lets appends gather after the first one of a burst.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);
/// The most records the writer puts in one chunk.
const CHUNK_RECORDS: usize = 4096;

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

fn key_seq(key: &[u8]) -> Option<u64> {
    key.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

/// The records of one stored entry: a chunk (JSON array) or, as earlier versions wrote, one
/// record (JSON object).
fn decode_entry(bytes: &[u8]) -> serde_json::Result<Vec<Record>> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(bytes),
        _ => serde_json::from_slice(bytes).map(|record| vec![record]),
    }
}

/// What the writer thread is asked to do.
enum Message {
    Append {
        events: Vec<Event>,
        at: SystemTime,
        /// Told the last sequence number written (or the error) when asked.
        written: Option<mpsc::Sender<sled::Result<Option<u64>>>>,
    },
    /// Answered once everything queued before it is written.
    Sync(mpsc::Sender<()>),
}

/// The chain in a sled tree, appended by its own writer thread.
pub struct AuditLog {
    tree: sled::Tree,
    queue: Option<SyncSender<Message>>,
    writer: Option<JoinHandle<()>>,
    /// Signs the checkpoints this host gives out.
    signer: Option<SigningKey>,
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
        let (queue, received) = mpsc::sync_channel(QUEUE);
        let writer = Writer {
            tree: tree.clone(),
            next: head.0,
            prev: head.1,
        };
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(received))
            .map_err(sled::Error::Io)?;
        Ok(Self {
            tree,
            queue: Some(queue),
            writer: Some(writer),
            signer: None,
        })
    }

    fn send(&self, message: Message) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|queue| queue.send(message).is_ok())
    }

    /// Appends `events` in order and waits until they are written; returns the last sequence
    /// number written.
    pub fn append_all(&self, events: Vec<Event>) -> sled::Result<Option<u64>> {
        let (tell, told) = mpsc::channel();
        let sent = self.send(Message::Append {
            events,
            at: SystemTime::now(),
            written: Some(tell),
        });
        self.wake();
        match told.recv() {
            Ok(result) if sent => result,
            _ => Err(sled::Error::ReportableBug(
                "the audit writer has stopped".into(),
            )),
        }
    }

    fn wake(&self) {
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
    }

    /// Waits until every event appended before this call is written.
    pub fn sync(&self) {
        let (tell, told) = mpsc::channel();
        if self.send(Message::Sync(tell)) {
            self.wake();
            let _ = told.recv();
        }
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
        let verification = self.verify();
        match (Checkpoint::of(&verification), &self.signer) {
            (Some(checkpoint), Some(key)) => Ok(checkpoint.signed(key)),
            (Some(checkpoint), None) => Ok(checkpoint),
            (None, _) => Err(verification),
        }
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
        if events.is_empty() {
            return;
        }
        let sent = self.send(Message::Append {
            events,
            at: SystemTime::now(),
            written: None,
        });
        if !sent {
            tracing::error!("cannot append to the audit log: its writer has stopped");
        }
    }

    fn append_durable(&self, events: Vec<Event>) {
        self.append(events);
        self.sync();
        if let Err(error) = self.tree.flush() {
            tracing::error!(%error, "cannot flush the audit log");
        }
    }
}

impl Drop for AuditLog {
    /// Writes what is queued before the log goes.
    fn drop(&mut self) {
        drop(self.queue.take());
        self.wake();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer thread's end: the next sequence number and the last hash.
struct Writer {
    tree: sled::Tree,
    next: u64,
    prev: String,
}

impl Writer {
    fn run(mut self, received: Receiver<Message>) {
        while let Ok(first) = received.recv() {
            // Let a burst gather: while the writer sleeps rather than waits on the queue,
            // appending costs the caller no wake-up of this thread. `sync` wakes it early.
            std::thread::park_timeout(GATHER);
            // Everything queued now goes into one chunk.
            let mut messages = vec![first];
            let mut records = count(&messages[0]);
            while records < CHUNK_RECORDS {
                match received.try_recv() {
                    Ok(message) => {
                        records += count(&message);
                        messages.push(message);
                    }
                    Err(_) => break,
                }
            }
            self.write(messages);
        }
    }

    fn write(&mut self, messages: Vec<Message>) {
        let (mut seq, mut prev) = (self.next, self.prev.clone());
        let mut chunk = Vec::new();
        let mut waiting = Vec::new();
        let mut synced = Vec::new();
        for message in messages {
            match message {
                Message::Append {
                    events,
                    at,
                    written,
                } => {
                    let appended = !events.is_empty();
                    let at = humantime::format_rfc3339_micros(at).to_string();
                    for event in events {
                        let hash = digest(seq, &at, &event, &prev);
                        chunk.push(Record {
                            seq,
                            at: at.clone(),
                            event,
                            prev,
                            hash: hash.clone(),
                        });
                        prev = hash;
                        seq += 1;
                    }
                    let last = appended.then(|| seq - 1);
                    waiting.extend(written.map(|tell| (tell, last)));
                }
                Message::Sync(tell) => synced.push(tell),
            }
        }
        let result = match chunk.first() {
            None => Ok(()),
            Some(first) => {
                let mut batch = sled::Batch::default();
                batch.insert(
                    &record_key(first.seq),
                    serde_json::to_vec(&chunk).unwrap_or_default(),
                );
                let head = Head {
                    seq: seq - 1,
                    hash: prev.clone(),
                };
                batch.insert(HEAD, serde_json::to_vec(&head).unwrap_or_default());
                self.tree.apply_batch(batch)
            }
        };
        match result {
            Ok(()) => {
                (self.next, self.prev) = (seq, prev);
                for (tell, last) in waiting {
                    let _ = tell.send(Ok(last));
                }
            }
            Err(error) => {
                tracing::error!(%error, records = chunk.len(), "cannot append to the audit log");
                for (tell, _) in waiting {
                    let _ = tell.send(Err(error.clone()));
                }
            }
        }
        for tell in synced {
            let _ = tell.send(());
        }
    }
}

fn count(message: &Message) -> usize {
    match message {
        Message::Append { events, .. } => events.len(),
        Message::Sync(_) => 0,
    }
}

/// Walks the chain; with a checkpoint, also requires its record, with its hash, in the chain.
fn verify_tree(tree: &sled::Tree, checkpoint: Option<&Checkpoint>) -> Verification {
    let verification = walk(tree, checkpoint);
    match checkpoint {
        Some(checkpoint) if verification.intact() && verification.records < checkpoint.records => {
            Verification {
                broken: Some(format!(
                    "the chain ends at record {} but the checkpoint of {} names record {}: \
                     records deleted at the end",
                    verification.records as i128 - 1,
                    checkpoint.at,
                    checkpoint.records as i128 - 1
                )),
                ..verification
            }
        }
        _ => verification,
    }
}

fn walk(tree: &sled::Tree, checkpoint: Option<&Checkpoint>) -> Verification {
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
        let Some(first) = key_seq(&key) else {
            return broken(expected_seq, "a record key is malformed".into());
        };
        if first != expected_seq {
            return broken(
                expected_seq,
                format!("record {expected_seq} is missing (the next one is {first}): deleted"),
            );
        }
        let Ok(records) = decode_entry(&bytes) else {
            return broken(
                expected_seq,
                format!("record {first} is not a valid record: edited"),
            );
        };
        for record in records {
            if record.seq > expected_seq {
                return broken(
                    expected_seq,
                    format!(
                        "record {expected_seq} is missing (the next one is {}): deleted",
                        record.seq
                    ),
                );
            }
            let seq = expected_seq;
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
            if let Some(checkpoint) = checkpoint
                && checkpoint.records == seq + 1
                && checkpoint.hash != record.hash
            {
                return broken(
                    expected_seq,
                    format!(
                        "record {seq} is not the one the checkpoint of {} names: the chain was \
                         rewritten",
                        checkpoint.at
                    ),
                );
            }
            prev = record.hash;
            expected_seq += 1;
        }
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
    Ok(verify_tree(&db.open_tree(TREE)?, None))
}

/// Checks the chain in a database against a checkpoint taken earlier: a chain cut short of it,
/// or rewritten before it, is broken even when its own head entry was rewritten to match.
pub fn verify_against(db: &sled::Db, checkpoint: &Checkpoint) -> sled::Result<Verification> {
    Ok(verify_tree(&db.open_tree(TREE)?, Some(checkpoint)))
}

/// Writes every record as JSON Lines; returns how many.
pub fn export(db: &sled::Db, out: &mut dyn Write) -> anyhow::Result<u64> {
    let tree = db.open_tree(TREE)?;
    let mut count = 0;
    for entry in tree.scan_prefix([RECORD_PREFIX]) {
        let (_, bytes) = entry?;
        for record in decode_entry(&bytes)? {
            serde_json::to_writer(&mut *out, &record)?;
            out.write_all(b"\n")?;
            count += 1;
        }
    }
    Ok(count)
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

        let log = AuditLog::open(&db).expect("log");
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
        let log = std::sync::Arc::new(AuditLog::open(&db).expect("log"));
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
