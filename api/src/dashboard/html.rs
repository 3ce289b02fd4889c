//! What every dashboard answer shares: the page headers (a content security policy that
//! allows only this host's own assets), templates rendered, and the two assets.

use askama::Template;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Headers of every page: nothing but this host's own assets runs or loads.
pub(crate) fn page(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            ),
            (CACHE_CONTROL, "no-store"),
            (HeaderName::from_static("x-content-type-options"), "nosniff"),
            // Nothing leaves for other sites; `no-referrer` would also make the browser send
            // `Origin: null` with the page's own forms, which the origin check refuses.
            (HeaderName::from_static("referrer-policy"), "same-origin"),
        ],
        html,
    )
        .into_response()
}

pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => page(status, html),
        Err(error) => ApiError::internal(error).into_response(),
    }
}

pub(crate) async fn stylesheet() -> Response {
    asset("text/css", include_str!("../../assets/dashboard.css"))
}

pub(crate) async fn script() -> Response {
    asset("text/javascript", include_str!("../../assets/dashboard.js"))
}

pub(crate) fn asset(kind: &'static str, body: &'static str) -> Response {
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "max-age=300")], body).into_response()
}
