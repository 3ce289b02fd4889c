//! What the control plane's reads and writes fail with, in its own terms. The API renders
//! these as HTTP answers (in one place: `lbaas-api`'s error module); the worker renders its
//! own [`JobError`](crate::worker::JobError) as a load balancer's fault.

use crate::drivers::LifecycleError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{what} {id} could not be found.")]
    NotFound { what: &'static str, id: String },
    /// The object belongs to a project the caller may not read: Octavia's answer is its
    /// policy refusal (403), not "not found", and clients and its test suite rely on it.
    #[error("Policy does not allow this request to be performed.")]
    Forbidden,
    /// A driver lifecycle step was refused.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// A blocking task of the control plane panicked or was cancelled.
    #[error("a control-plane task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The records contradict each other (a child whose load balancer is missing).
    #[error("inconsistent records: {0}")]
    Inconsistent(String),
}

impl Error {
    pub fn not_found(what: &'static str, id: &str) -> Self {
        Self::NotFound {
            what,
            id: id.to_owned(),
        }
    }
}
