//! What the control plane's reads and writes fail with, in its own terms. The API renders
//! these as HTTP answers (in one place: `lbaas-api`'s error module); the worker renders its
//! own job errors as a load balancer's fault.

use crate::drivers::lifecycle::LifecycleError;
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
    /// A request's value breaks one of Octavia's rules (`400`): `field` names it where one
    /// field is at fault; `reason` says what is wrong, in words for the caller.
    #[error("{reason}")]
    Invalid {
        field: Option<&'static str>,
        reason: String,
    },
    /// The provider lacks an option the request asks for (`501`).
    #[error("Provider '{provider}' does not support a requested option: {option}")]
    Unsupported { provider: String, option: String },
    /// The load balancer is `PENDING_*`: it refuses every change until its job ends (`409`).
    #[error("Load Balancer {lb_id} is immutable and cannot be updated.")]
    Immutable { lb_id: String },
    /// The change would exceed the project's quota of `kind` (`403`).
    #[error("Quota has been met for resources: {kind}")]
    OverQuota { kind: &'static str },
    /// The request collides with what exists (`409`): an address taken, a pool in use.
    #[error("{0}")]
    Conflict(String),
    /// A payload larger than the key store takes (`413`, Barbican's answer).
    #[error("Could not add secret data as it was too large: the limit is {limit} bytes.")]
    TooLarge { limit: usize },
    /// The host was started without a key manager (`501`).
    #[error("This host keeps no secrets: it was started without a key manager.")]
    NoKeyManager,
    /// The cloud's key manager could not be asked about a reference (`503`).
    #[error("The key manager cannot be reached at the moment; try again later.")]
    KeyManagerUnavailable(String),
    /// A stored secret does not open under the host's key (another key, or changed at rest):
    /// the host's fault, logged, never shown.
    #[error("a sealed secret does not open: {0}")]
    Sealed(String),
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

    /// A `400` about the request as a whole (or several of its fields).
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: None,
            reason: reason.into(),
        }
    }

    /// A `400` about one field of the request.
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            field: Some(field),
            reason: reason.into(),
        }
    }

    pub fn conflict(reason: impl Into<String>) -> Self {
        Self::Conflict(reason.into())
    }

    pub fn unsupported(provider: &str, option: impl std::fmt::Display) -> Self {
        Self::Unsupported {
            provider: provider.to_owned(),
            option: option.to_string(),
        }
    }

    pub fn immutable(lb_id: &str) -> Self {
        Self::Immutable {
            lb_id: lb_id.to_owned(),
        }
    }
}
