//! API errors, answered with Octavia's fault body: `{"faultcode", "faultstring", "debuginfo"}`.
//! Internal errors are logged in full and answered with a generic message.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!("{what} {id} could not be found."),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Policy does not allow this request to be performed.",
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
    }

    /// What the provider's driver cannot do: `501`, with Octavia's faultstring, which clients
    /// and Octavia's test suite take as "not implemented here" rather than a broken request.
    pub fn unsupported(provider: &str, option: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            format!("Provider '{provider}' does not support a requested option: {option}"),
        )
    }

    /// A load balancer that is `PENDING_*` refuses every change.
    pub fn immutable(lb_id: &str) -> Self {
        Self::conflict(format!(
            "Load Balancer {lb_id} is immutable and cannot be updated."
        ))
    }

    /// The store cannot be reached now: logged; the caller may try again.
    pub fn unavailable(error: impl std::fmt::Display) -> Self {
        tracing::warn!(%error, "the store is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The host cannot reach its database right now. Try again.",
        )
    }

    /// Something on the host's side failed: logged, never shown.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "request failed inside the host");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The host could not complete the request; the error is logged.",
        )
    }
}

impl From<lbaas_control::octavia::ProviderError> for ApiError {
    fn from(error: lbaas_control::octavia::ProviderError) -> Self {
        lbaas_control::Error::from(error).into()
    }
}

/// A tenant's address the control plane keeps off its own: `400` with the reason.
impl From<lbaas_control::addresses::Refused> for ApiError {
    fn from(refused: lbaas_control::addresses::Refused) -> Self {
        Self::bad_request(refused.0)
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Unavailable(_) => Self::unavailable(error),
            other => Self::internal(other),
        }
    }
}

/// The control plane's errors as answers: what it could not find is `404`, a refused driver
/// lifecycle step is what the refusal says, and the host's own failures are `500` (logged,
/// never shown).
impl From<lbaas_control::Error> for ApiError {
    fn from(error: lbaas_control::Error) -> Self {
        use lbaas_control::Error;
        match error {
            Error::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, error.to_string()),
            Error::Forbidden | Error::OverQuota { .. } => {
                Self::new(StatusCode::FORBIDDEN, error.to_string())
            }
            Error::Invalid { .. } => Self::bad_request(error.to_string()),
            Error::Unsupported { .. } => Self::new(StatusCode::NOT_IMPLEMENTED, error.to_string()),
            Error::Immutable { .. } | Error::Conflict(_) => Self::conflict(error.to_string()),
            Error::Lifecycle(error) => error.into(),
            Error::Store(store) => store.into(),
            Error::TooLarge { .. } => Self::new(StatusCode::PAYLOAD_TOO_LARGE, error.to_string()),
            Error::NoKeyManager => Self::new(StatusCode::NOT_IMPLEMENTED, error.to_string()),
            Error::KeyManagerUnavailable(ref why) => {
                tracing::error!(reason = %why, "the key manager is unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, error.to_string())
            }
            Error::Task(_) | Error::Inconsistent(_) | Error::Sealed(_) => Self::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let faultcode = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        let body = json!({
            "faultcode": faultcode,
            "faultstring": self.message,
            "debuginfo": null,
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<lbaas_control::drivers::LifecycleError> for ApiError {
    fn from(error: lbaas_control::drivers::LifecycleError) -> Self {
        use lbaas_control::drivers::Answer;
        match error.answer() {
            Answer::NotFound => ApiError::new(StatusCode::NOT_FOUND, error.to_string()),
            Answer::Conflict => ApiError::conflict(error.to_string()),
            Answer::Invalid => ApiError::bad_request(error.to_string()),
            Answer::Failed => ApiError::internal(error),
        }
    }
}
