//! The host's HTTP server. For now it answers `GET /` (what this host runs) and
//! `GET /healthz`; the load-balancer API mounts here.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::runtime::LoadedDriver;

/// What the handlers share.
pub struct AppState {
    pub drivers: Vec<LoadedDriver>,
}

pub fn app(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .with_state(state)
}

async fn root(State(state): State<Arc<AppState>>) -> Json<Value> {
    let drivers: Vec<Value> = state
        .drivers
        .iter()
        .map(|driver| {
            let identity = driver.identity();
            json!({
                "name": identity.name,
                "version": identity.version,
                "sha256": identity.sha256,
            })
        })
        .collect();
    Json(json!({
        "name": "lbaasd",
        "version": env!("CARGO_PKG_VERSION"),
        "drivers": drivers,
    }))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn healthz_answers_ok() {
        let app = app(Arc::new(AppState { drivers: vec![] }));
        let response = app
            .oneshot(
                Request::get("/healthz")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .expect("body");
        assert_eq!(body.as_ref(), br#"{"status":"ok"}"#);
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let app = app(Arc::new(AppState { drivers: vec![] }));
        let response = app
            .oneshot(Request::get("/nope").body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
    }
}
