//! The audit hash chain as every backend keeps it: how records link, how the chain is walked
//! to verify it, and the writer thread that turns appends into stored chunks. A backend says
//! only how a chunk and its head are stored ([`Chunks`]) and how its entries are read back.
//!
//! Record `n` stores the SHA-256 of record `n - 1` (`prev`) and its own hash over its content
//! and `prev`. A head entry, written in the same atomic write as each chunk of records, names
//! the last sequence number and hash. Walking the chain finds an edited record (it no longer
//! matches its hash, or breaks the next record's `prev`) and a deleted one (a gap in the
//! sequence, or a head that names a missing record). Rewriting the whole chain from the edit
//! onwards, head included, needs a checkpoint kept elsewhere to be caught.
//!
//! Appending is off the drivers' call path: a driver call hands its events, stamped with the
//! time they happened, to one writer thread and returns. The writer stores everything queued
//! since its last write as one *chunk* (a JSON array of records under its first sequence
//! number), so a busy host pays one storage write per burst instead of one per import call.
//! Queries and verification wait for the queue to drain ([`Appender::sync`]), so they see every
//! event appended before them. The queue is bounded: a writer that falls behind slows the
//! callers down rather than growing without limit.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{Checkpoint, Event, Record, Verification};
use lbaas_telemetry::Metrics;

/// `prev` of the first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
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

/// The hash of a record.
pub fn digest(seq: u64, at: &str, event: &Event, prev: &str) -> String {
    let bytes = serde_json::to_vec(&Hashed {
        seq,
        at,
        event,
        prev,
    })
    .unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// The chain's last record: its sequence number and hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Its sequence number.
    pub seq: u64,
    /// Its hash (hex SHA-256).
    pub hash: String,
}

/// The records of one stored entry: a chunk (JSON array) or, as earlier versions wrote, one
/// record (JSON object).
pub fn decode_entry(bytes: &[u8]) -> serde_json::Result<Vec<Record>> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(bytes),
        _ => serde_json::from_slice(bytes).map(|record| vec![record]),
    }
}

/// Where the chain goes on: the next sequence number and the hash the next record links to.
#[derive(Debug, Clone)]
pub struct Tip {
    /// The next record's sequence number.
    pub next: u64,
    /// The hash the next record links to.
    pub prev: String,
}

impl Tip {
    /// The tip after `head`, or of an empty chain.
    pub fn after(head: Option<&Head>) -> Self {
        match head {
            Some(head) => Self {
                next: head.seq + 1,
                prev: head.hash.clone(),
            },
            None => Self {
                next: 0,
                prev: GENESIS.to_owned(),
            },
        }
    }

    /// Links `events`, all stamped `at`, onto the chain, pushing the records to `chunk`.
    pub fn link(&mut self, at: &str, events: Vec<Event>, chunk: &mut Vec<Record>) {
        for event in events {
            let hash = digest(self.next, at, &event, &self.prev);
            chunk.push(Record {
                seq: self.next,
                at: at.to_owned(),
                event,
                prev: std::mem::replace(&mut self.prev, hash.clone()),
                hash,
            });
            self.next += 1;
        }
    }

    /// The head naming the last record linked, if any.
    pub fn head(&self) -> Option<Head> {
        self.next.checked_sub(1).map(|seq| Head {
            seq,
            hash: self.prev.clone(),
        })
    }
}

/// Links each append (its time, its events) after `tip`: the records of one chunk.
pub fn link_all(tip: &mut Tip, appends: Vec<(String, Vec<Event>)>) -> Vec<Record> {
    let mut chunk = Vec::new();
    for (at, events) in appends {
        tip.link(&at, events, &mut chunk);
    }
    chunk
}

/// A walk over the stored entries, in sequence order, that verifies the chain. With a
/// checkpoint, it also requires the checkpoint's record, with its hash, in the chain.
pub struct Walk<'a> {
    expected: u64,
    prev: String,
    checkpoint: Option<&'a Checkpoint>,
    broken: Option<String>,
}

impl<'a> Walk<'a> {
    /// A walk from the chain's start, checking it against `checkpoint` when one is given.
    pub fn new(checkpoint: Option<&'a Checkpoint>) -> Self {
        Self {
            expected: 0,
            prev: GENESIS.to_owned(),
            checkpoint,
            broken: None,
        }
    }

    /// Whether the chain is still whole: stop feeding entries once it is not.
    pub fn intact(&self) -> bool {
        self.broken.is_none()
    }

    /// An entry that could not be read from storage.
    pub fn unreadable(&mut self, error: impl std::fmt::Display) {
        self.brake(format!("unreadable: {error}"));
    }

    fn brake(&mut self, why: String) {
        if self.broken.is_none() {
            self.broken = Some(why);
        }
    }

    /// The next stored entry: its key's sequence number and its bytes.
    pub fn entry(&mut self, first: u64, bytes: &[u8]) {
        if !self.intact() {
            return;
        }
        let expected = self.expected;
        if first != expected {
            return self.brake(format!(
                "record {expected} is missing (the next one is {first}): deleted"
            ));
        }
        let Ok(records) = decode_entry(bytes) else {
            return self.brake(format!("record {first} is not a valid record: edited"));
        };
        for record in records {
            if let Err(why) = self.record(record) {
                return self.brake(why);
            }
        }
    }

    fn record(&mut self, record: Record) -> Result<(), String> {
        let seq = self.expected;
        if record.seq > seq {
            return Err(format!(
                "record {seq} is missing (the next one is {}): deleted",
                record.seq
            ));
        }
        if record.seq != seq || record.prev != self.prev {
            return Err(format!(
                "record {seq} does not follow record {}: edited or reordered",
                seq.wrapping_sub(1)
            ));
        }
        if digest(record.seq, &record.at, &record.event, &record.prev) != record.hash {
            return Err(format!("record {seq} does not match its hash: edited"));
        }
        if let Some(checkpoint) = self.checkpoint
            && checkpoint.records == seq + 1
            && checkpoint.hash != record.hash
        {
            return Err(format!(
                "record {seq} is not the one the checkpoint of {} names: the chain was rewritten",
                checkpoint.at
            ));
        }
        self.prev = record.hash;
        self.expected += 1;
        Ok(())
    }

    /// What the walk found, given the stored head entry.
    pub fn finish(self, head: Option<Head>) -> Verification {
        let records = self.expected;
        let broken = |why: String| Verification {
            records,
            head: None,
            broken: Some(why),
        };
        if let Some(why) = self.broken {
            return broken(why);
        }
        let verification = match head {
            None if records == 0 => Verification {
                records: 0,
                head: None,
                broken: None,
            },
            None => return broken("the head entry is missing".into()),
            Some(head) if head.seq + 1 != records || head.hash != self.prev => {
                return broken(format!(
                    "the head names record {} but the chain ends at record {}: records deleted \
                     at the end",
                    head.seq,
                    records as i128 - 1
                ));
            }
            Some(head) => Verification {
                records,
                head: Some(head.hash),
                broken: None,
            },
        };
        match self.checkpoint {
            Some(checkpoint) if records < checkpoint.records => broken(format!(
                "the chain ends at record {} but the checkpoint of {} names record {}: records \
                 deleted at the end",
                records as i128 - 1,
                checkpoint.at,
                checkpoint.records as i128 - 1
            )),
            _ => verification,
        }
    }
}

/// The chain verified and its head as a checkpoint, signed with `signer` when there is one;
/// `Err` with the verification when the chain is empty or broken.
pub fn checkpoint(
    verification: Verification,
    signer: Option<&ed25519_dalek::SigningKey>,
) -> Result<Checkpoint, Verification> {
    match (Checkpoint::of(&verification), signer) {
        (Some(checkpoint), Some(key)) => Ok(checkpoint.signed(key)),
        (Some(checkpoint), None) => Ok(checkpoint),
        (None, _) => Err(verification),
    }
}

/// Why events did not reach the audit chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The backend could not store or flush a chunk: its own words.
    #[error("{0}")]
    Storage(String),
    /// The writer thread is gone (the host is stopping).
    #[error("the audit writer has stopped")]
    Stopped,
}

/// How a backend stores the chain: each call links a burst of appends after the stored head
/// and stores them as one chunk, with the new head, in one atomic write.
pub trait Chunks: Send + 'static {
    /// Links `appends` (time, events), in order, and stores them; returns the sequence number
    /// of the first record linked.
    fn store(&mut self, appends: Vec<(String, Vec<Event>)>) -> Result<u64, AuditError>;
    /// Makes every stored chunk durable.
    fn flush(&mut self) -> Result<(), AuditError>;
}

/// What the writer thread is asked to do.
enum Message {
    Append {
        events: Vec<Event>,
        at: SystemTime,
        /// Told the last sequence number written (or the error) when asked.
        written: Option<mpsc::Sender<Result<Option<u64>, AuditError>>>,
    },
    /// Answered once everything queued before it is written (and made durable, when asked).
    Sync {
        tell: mpsc::Sender<()>,
        durable: bool,
    },
}

/// The queue in front of a backend's [`Chunks`], and the writer thread that drains it.
pub struct Appender {
    queue: Option<SyncSender<Message>>,
    writer: Option<JoinHandle<()>>,
    metrics: Metrics,
}

impl Appender {
    /// Starts the writer thread in front of `chunks`; the queue's depth and the writes' times
    /// are counted in `metrics`.
    pub fn start(chunks: impl Chunks, metrics: &Metrics) -> std::io::Result<Self> {
        let (queue, received) = mpsc::sync_channel(QUEUE);
        let writer_metrics = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run(chunks, received, &writer_metrics))?;
        Ok(Self {
            queue: Some(queue),
            writer: Some(writer),
            metrics: metrics.clone(),
        })
    }

    fn send(&self, message: Message) -> bool {
        let sent = self
            .queue
            .as_ref()
            .is_some_and(|queue| queue.send(message).is_ok());
        if let Some(writer) = &self.writer {
            writer.thread().unpark();
        }
        sent
    }

    /// Appends `events` in order and waits until they are written; returns the last sequence
    /// number written.
    pub fn append_all(&self, events: Vec<Event>) -> Result<Option<u64>, AuditError> {
        self.metrics.audit_queue.inc_by(events.len() as i64);
        let (tell, told) = mpsc::channel();
        let sent = self.send(Message::Append {
            events,
            at: SystemTime::now(),
            written: Some(tell),
        });
        match told.recv() {
            Ok(result) if sent => result,
            _ => Err(AuditError::Stopped),
        }
    }

    /// Queues `events` and returns.
    pub fn append(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        let queue = self.queue.as_ref();
        let queued = events.len() as i64;
        self.metrics.audit_queue.inc_by(queued);
        let sent = queue.is_some_and(|queue| {
            queue
                .send(Message::Append {
                    events,
                    at: SystemTime::now(),
                    written: None,
                })
                .is_ok()
        });
        if !sent {
            self.metrics.audit_queue.dec_by(queued);
            tracing::error!("cannot append to the audit log: its writer has stopped");
        }
    }

    /// Waits until every event appended before this call is written; with `durable`, until
    /// it is durable too.
    pub fn sync(&self, durable: bool) {
        let (tell, told) = mpsc::channel();
        if self.send(Message::Sync { tell, durable }) {
            let _ = told.recv();
        }
    }
}

impl Drop for Appender {
    /// Writes what is queued before the log goes.
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

fn run(mut chunks: impl Chunks, received: Receiver<Message>, metrics: &Metrics) {
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
        write(&mut chunks, messages, metrics);
    }
}

fn write(chunks: &mut impl Chunks, messages: Vec<Message>, metrics: &Metrics) {
    let mut appends = Vec::new();
    // Each waiting caller, with the records queued up to and including its own.
    let mut waiting = Vec::new();
    let mut synced = Vec::new();
    let mut durable = false;
    let mut linked = 0u64;
    for message in messages {
        match message {
            Message::Append {
                events,
                at,
                written,
            } => {
                let own = events.len() as u64;
                linked += own;
                let at = humantime::format_rfc3339_micros(at).to_string();
                appends.push((at, events));
                waiting.extend(written.map(|tell| (tell, (own > 0).then_some(linked))));
            }
            Message::Sync {
                tell,
                durable: wanted,
            } => {
                durable |= wanted;
                synced.push(tell);
            }
        }
    }
    let stored = if linked == 0 {
        Ok(0)
    } else {
        let started = std::time::Instant::now();
        let stored = chunks.store(appends);
        metrics
            .audit_write_duration
            .observe(started.elapsed().as_secs_f64());
        stored
    };
    metrics.audit_queue.dec_by(linked as i64);
    match stored {
        Ok(first) => {
            for (tell, upto) in waiting {
                let _ = tell.send(Ok(upto.map(|n| first + n - 1)));
            }
        }
        Err(error) => {
            tracing::error!(%error, records = linked, "cannot append to the audit log");
            for (tell, _) in waiting {
                let _ = tell.send(Err(error.clone()));
            }
        }
    }
    if durable && let Err(error) = chunks.flush() {
        tracing::error!(%error, "cannot flush the audit log");
    }
    for tell in synced {
        let _ = tell.send(());
    }
}

fn count(message: &Message) -> usize {
    match message {
        Message::Append { events, .. } => events.len(),
        Message::Sync { .. } => 0,
    }
}
