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

    /// A load balancer that is `PENDING_*` refuses every change.
    pub fn immutable(lb_id: &str) -> Self {
        Self::conflict(format!(
            "Load Balancer {lb_id} is immutable and cannot be updated."
        ))
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

impl From<crate::store::StoreError> for ApiError {
    fn from(error: crate::store::StoreError) -> Self {
        Self::internal(error)
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
