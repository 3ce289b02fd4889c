//! JSON request bodies with readable 400s: malformed JSON, wrong types, unknown fields and
//! missing envelopes all say what is wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::error::ApiError;

pub use lbaas_control::octavia::fields::Int;

/// A JSON body decoded into `T`.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The request body is larger than this API accepts.",
                )
            } else {
                ApiError::bad_request(format!("Cannot read the request body: {e}"))
            }
        })?;
        if bytes.is_empty() {
            return Err(ApiError::bad_request(
                "The request body is empty; a JSON object is expected.",
            ));
        }
        // The error names the field it is about (`loadbalancer.vip_subnet_id`), as Octavia's
        // "Invalid input for field/attribute …" does.
        let mut json = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut json)
            .map(Body)
            .map_err(|e| {
                let path = e.path().to_string();
                let error = e.into_inner();
                if path == "." || error.is_syntax() || error.is_eof() {
                    ApiError::bad_request(format!("Invalid input: {error}"))
                } else {
                    ApiError::bad_request(format!(
                        "Invalid input for field/attribute {path}: {error}"
                    ))
                }
            })
    }
}
