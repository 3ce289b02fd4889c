//! What security teams need about drivers, under `/v2/admin/` (admins only; the drivers
//! themselves are in `drivers.rs`):
//!
//! - `GET /audit`: the audit log, filtered by `driver`, `version`, `function` (a name or a
//!   prefix such as `state` or `limit`), `outcome` (`ok`, `denied`, `failed`), `since` and
//!   `until` (RFC 3339), paged with `limit` (default 1000, at most 10000) and `marker` (the last
//!   `seq` seen).
//! - `GET /audit/verify`: checks the hash chain.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use lbaas_core::audit::{AuditTrail, Filter, Outcome, Verification};
use lbaas_core::views::{AuditPage, VerifyAnswer};

use super::Api;
use super::caller::Context;
use super::error::{ApiError, ApiResult};

const DEFAULT_LIMIT: usize = 1_000;
const MAX_LIMIT: usize = 10_000;

pub fn routes() -> Router<Arc<Api>> {
    Router::new()
        .route("/audit", get(query))
        .route("/audit/verify", get(verify))
        .route("/audit/checkpoint", get(checkpoint))
}

fn audit_log(api: &Api) -> ApiResult<Arc<dyn AuditTrail>> {
    api.audit
        .clone()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "This host keeps no audit log."))
}

/// Parses the audit query; unknown parameters and bad values are refused.
fn filter(raw: Option<&str>) -> ApiResult<Filter> {
    let mut filter = Filter {
        limit: DEFAULT_LIMIT,
        ..Filter::default()
    };
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        let value = value.into_owned();
        match key.as_ref() {
            "driver" => filter.driver = Some(value),
            "version" => filter.version = Some(value),
            "function" => filter.function = Some(value),
            "outcome" => {
                filter.outcome = Some(match value.as_str() {
                    "ok" => Outcome::Ok,
                    "denied" => Outcome::Denied,
                    "failed" => Outcome::Failed,
                    other => {
                        return Err(ApiError::bad_request(format!(
                            "outcome `{other}` is not one of ok, denied, failed."
                        )));
                    }
                })
            }
            "since" | "until" => {
                let at = humantime::parse_rfc3339_weak(&value).map_err(|_| {
                    ApiError::bad_request(format!(
                        "{key} `{value}` is not an RFC 3339 time (e.g. 2026-11-25T12:00:00Z)."
                    ))
                })?;
                // Records carry the same form, so they compare as strings.
                let at = humantime::format_rfc3339_micros(at).to_string();
                if key == "since" {
                    filter.since = Some(at);
                } else {
                    filter.until = Some(at);
                }
            }
            "limit" => {
                filter.limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "limit must be a whole number in 1..={MAX_LIMIT}."
                        ))
                    })?
            }
            "marker" => {
                filter.after = Some(value.parse().map_err(|_| {
                    ApiError::bad_request("marker must be a record's seq.".to_owned())
                })?)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown audit query parameter `{other}`."
                )));
            }
        }
    }
    Ok(filter)
}

async fn query(
    State(api): State<Arc<Api>>,
    ctx: Context,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<AuditPage>> {
    ctx.require_admin()?;
    let filter = filter(raw.as_deref())?;
    let log = audit_log(&api)?;
    let records = tokio::task::spawn_blocking(move || log.query(&filter))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(AuditPage { audit: records }))
}

/// The chain's head now, verified, for the operator to keep elsewhere and check later with
/// `lbaasd audit verify --checkpoint FILE`.
async fn checkpoint(State(api): State<Arc<Api>>, ctx: Context) -> ApiResult<Json<Value>> {
    ctx.require_admin()?;
    let log = audit_log(&api)?;
    let checkpoint = tokio::task::spawn_blocking(move || log.checkpoint())
        .await
        .map_err(ApiError::internal)?;
    match checkpoint {
        Ok(checkpoint) => Ok(Json(json!({ "checkpoint": checkpoint }))),
        Err(Verification {
            broken: Some(broken),
            ..
        }) => Err(ApiError::conflict(format!(
            "The audit log is broken; no checkpoint of it: {broken}"
        ))),
        Err(_) => Err(ApiError::conflict("The audit log is empty.")),
    }
}

async fn verify(State(api): State<Arc<Api>>, ctx: Context) -> ApiResult<Json<VerifyAnswer>> {
    ctx.require_admin()?;
    let log = audit_log(&api)?;
    let verification = tokio::task::spawn_blocking(move || log.verify())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(VerifyAnswer::from(&verification)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_queries_are_checked() {
        let parsed = filter(Some(
            "driver=haproxy&outcome=denied&limit=5&marker=9&function=state",
        ))
        .expect("valid");
        assert_eq!(parsed.driver.as_deref(), Some("haproxy"));
        assert_eq!(parsed.outcome, Some(Outcome::Denied));
        assert_eq!((parsed.limit, parsed.after), (5, Some(9)));
        for bad in [
            "outcome=maybe",
            "limit=0",
            "limit=x",
            "since=yesterday",
            "colour=red",
            "marker=-1",
        ] {
            let error = filter(Some(bad)).expect_err(bad);
            assert_eq!(error.status.as_u16(), 400, "{bad}");
        }
    }
}
