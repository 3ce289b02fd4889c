//! What unauthenticated callers can make the host ask Keystone (issue 26, finding 6), against a
//! stand-in Keystone on loopback that counts validations: a refused token is refused again
//! without asking, and no more than `MAX_VALIDATIONS` validations run at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use lbaas_api::keystone::{Keystone, KeystoneConfig, MAX_VALIDATIONS};
use serde_json::json;

#[derive(Default)]
struct Counts {
    validations: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A Keystone that issues the host's token and knows no caller's token, answering each
/// validation after `delay`.
async fn fake_keystone(delay: Duration) -> (String, Arc<Counts>) {
    let counts = Arc::new(Counts::default());
    let seen = counts.clone();
    let issue = || async {
        let body = json!({"token": {"expires_at": "2999-01-01T00:00:00Z"}});
        (
            StatusCode::CREATED,
            [("x-subject-token", "service-token")],
            axum::Json(body),
        )
    };
    let validate = move |_: HeaderMap| {
        let counts = seen.clone();
        async move {
            counts.validations.fetch_add(1, Ordering::SeqCst);
            let now = counts.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            counts.most_in_flight.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(delay).await;
            counts.in_flight.fetch_sub(1, Ordering::SeqCst);
            StatusCode::NOT_FOUND.into_response()
        }
    };
    let app = Router::new().route("/v3/auth/tokens", axum::routing::post(issue).get(validate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, counts)
}

fn keystone(url: &str) -> Arc<Keystone> {
    Arc::new(Keystone::new(KeystoneConfig::new(url, "octavia", "secret")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_token_is_refused_without_asking_again() {
    let (url, counts) = fake_keystone(Duration::ZERO).await;
    let keystone = keystone(&url);
    for _ in 0..50 {
        let refused = keystone.context("made-up").await.expect_err("refused");
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(counts.validations.load(Ordering::SeqCst), 1);
    assert_eq!(keystone.refused_remembered(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn validations_in_flight_are_capped() {
    let (url, counts) = fake_keystone(Duration::from_millis(100)).await;
    let keystone = keystone(&url);
    let callers: Vec<_> = (0..MAX_VALIDATIONS * 3)
        .map(|i| {
            let keystone = keystone.clone();
            tokio::spawn(async move { keystone.context(&format!("token-{i}")).await })
        })
        .collect();
    for caller in callers {
        let answer = caller.await.expect("caller");
        assert_eq!(
            answer.expect_err("refused").status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        counts.validations.load(Ordering::SeqCst),
        MAX_VALIDATIONS * 3
    );
    let most = counts.most_in_flight.load(Ordering::SeqCst);
    assert!(most <= MAX_VALIDATIONS, "{most} validations ran at once");
}
