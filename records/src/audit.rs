//! The audit log's records as they are read: what a driver did (an [`Event`]), as the chain
//! keeps it (a [`Record`]), and what verifying the chain found. Writing and verifying the
//! chain is the host's (`lbaas-core`'s audit traits, the backends' logs).

use serde::{Deserialize, Serialize};

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

/// What verifying the chain found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
