//! The audit log's vocabulary: what a driver did (an [`Event`]), as the chain keeps it (a
//! [`Record`]), where events go (an [`AuditSink`]), and what verifying the chain found. The
//! chain itself (hashing, storage, checkpoints) is the host's.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

pub use lbaas_records::audit::{Event, Outcome, Record, Verification};

/// Where audit events go. The runtime holds one; [`Discard`] is for tools and tests that do
/// not audit.
pub trait AuditSink: Send + Sync {
    /// Queues `events` for the log (in order) and returns.
    fn append(&self, events: Vec<Event>);

    /// Appends and returns once the events are on disk: for what must be on record even if
    /// the host dies right after (a device call about to change a device).
    fn append_durable(&self, events: Vec<Event>) {
        self.append(events);
    }
}

/// Drops every event.
#[derive(Debug, Default)]
pub struct Discard;

impl AuditSink for Discard {
    fn append(&self, _events: Vec<Event>) {}
}

/// The audit chain as the API reads it: queries, verification, checkpoints. The host's log
/// implements it over its store; the API sees only this.
pub trait AuditTrail: Send + Sync {
    /// Records matching `filter`, oldest first, starting after `filter.after`.
    fn query(&self, filter: &Filter) -> Vec<Record>;
    /// Walks the whole chain.
    fn verify(&self) -> Verification;
    /// The chain verified and its head as a checkpoint (signed when the log has a key); `Err`
    /// with the verification when the chain is empty or broken.
    fn checkpoint(&self) -> Result<Checkpoint, Verification>;
}

/// Which records a query wants.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Only records of this driver.
    pub driver: Option<String>,
    /// Only records of this driver version.
    pub version: Option<String>,
    /// Only records of this function (an import such as `state.get`, or an event name).
    pub function: Option<String>,
    /// Only records with this outcome.
    pub outcome: Option<Outcome>,
    /// Only records written at or after this time (RFC 3339).
    pub since: Option<String>,
    /// Only records written at or before this time (RFC 3339).
    pub until: Option<String>,
    /// Only records after this sequence number.
    pub after: Option<u64>,
    /// At most this many records.
    pub limit: usize,
}

impl Filter {
    /// Whether `record` passes every condition set.
    pub fn matches(&self, record: &Record) -> bool {
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

/// The chain's head at one moment, for the operator to keep outside the host's data folder:
/// the database's own head entry can be rewritten along with a cut-off tail, a checkpoint kept
/// elsewhere cannot. `verify` against it finds its record, with its hash, still in the chain.
///
/// A host with a checkpoint key signs its checkpoints (ed25519 over [`Checkpoint::message`]),
/// so one kept where others can write is still known to be the host's: checked against the
/// host's public key, an edited checkpoint (fewer records, another hash) is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Records in the chain when the checkpoint was taken (the last one is `records - 1`).
    pub records: u64,
    /// The hash of the last of them.
    pub hash: String,
    /// When it was taken (RFC 3339).
    pub at: String,
    /// The public key (hex) of the host that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The ed25519 signature (hex) of [`Checkpoint::message`] under `key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Checkpoint {
    /// A checkpoint of the chain as `verification` found it; `None` for an empty or broken
    /// chain.
    pub fn of(verification: &Verification) -> Option<Self> {
        match (&verification.broken, &verification.head) {
            (None, Some(hash)) => Some(Self {
                records: verification.records,
                hash: hash.clone(),
                at: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
                key: None,
                signature: None,
            }),
            _ => None,
        }
    }

    /// What is signed: the fields, one per line, after a line naming the format.
    pub fn message(&self) -> String {
        format!(
            "lbaas audit checkpoint v1\n{}\n{}\n{}\n",
            self.records, self.hash, self.at
        )
    }

    /// The checkpoint signed with `key`.
    pub fn signed(mut self, key: &SigningKey) -> Self {
        self.key = Some(hex::encode(key.verifying_key().as_bytes()));
        self.signature = Some(hex::encode(key.sign(self.message().as_bytes()).to_bytes()));
        self
    }

    /// Checks the signature, against `trusted` when given (else against the key the
    /// checkpoint names, which shows only that it was not edited since it was signed). The id
    /// of the key that signed it, `None` when unsigned and no key was asked for.
    pub fn check_signature(
        &self,
        trusted: Option<&VerifyingKey>,
    ) -> Result<Option<String>, String> {
        let (key, signature) = match (&self.key, &self.signature, trusted) {
            (None, None, None) => return Ok(None),
            (Some(key), Some(signature), _) => (key, signature),
            (_, _, Some(_)) | (Some(_), None, _) | (None, Some(_), _) => {
                return Err("the checkpoint is not signed".into());
            }
        };
        let named = <[u8; 32]>::try_from(hex::decode(key).unwrap_or_default())
            .ok()
            .and_then(|bytes| VerifyingKey::from_bytes(&bytes).ok())
            .ok_or("the checkpoint's key is not an ed25519 public key")?;
        if let Some(trusted) = trusted
            && trusted != &named
        {
            return Err(format!(
                "the checkpoint is signed by key {}, not by the host's key {}",
                crate::key_id(&named),
                crate::key_id(trusted)
            ));
        }
        let signature = <[u8; 64]>::try_from(hex::decode(signature).unwrap_or_default())
            .map(|bytes| Signature::from_bytes(&bytes))
            .map_err(|_| "the checkpoint's signature is not 64 bytes of hex")?;
        named
            .verify_strict(self.message().as_bytes(), &signature)
            .map_err(|_| {
                "the checkpoint's signature does not verify: it was edited after it was signed"
                    .to_owned()
            })?;
        Ok(Some(crate::key_id(&named)))
    }
}

/// Why an export of the audit log stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The stored chain could not be read (the backend's words).
    #[error("cannot read the audit log: {0}")]
    Read(String),
    /// The records could not be written out.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes `records` to `out` as JSON Lines, one record per line; returns how many.
pub fn export(records: Vec<Record>, out: &mut dyn std::io::Write) -> Result<u64, ExportError> {
    let mut count = 0;
    for record in records {
        serde_json::to_writer(&mut *out, &record).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}
