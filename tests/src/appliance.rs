//! A fake appliance management API on loopback: answers every request with 200 (or a status
//! chosen per path) and records what it received, so tests can check what drivers pushed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Shared {
    received: Mutex<Vec<Received>>,
    statuses: Mutex<HashMap<String, u16>>,
    delay_ms: std::sync::atomic::AtomicU64,
    /// Requests that arrived, answered or not (a delayed one counts at once).
    arrived: std::sync::atomic::AtomicU64,
    /// Answer with the request's headers (a device that echoes what it got).
    echo: std::sync::atomic::AtomicBool,
    /// Answer with the last body it was sent (a device that hands back what it keeps).
    echo_bodies: std::sync::atomic::AtomicBool,
    last_body: Mutex<Vec<u8>>,
}

pub struct FakeAppliance {
    pub address: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeAppliance {
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime");
            runtime.block_on(async move {
                let listener = crate::loopback_listener(ready_tx).await;
                let app = Router::new().fallback(record).with_state(state);
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("serve");
            });
        });
        let address = ready_rx.recv().expect("appliance started");
        Self {
            address,
            shared,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("lock").clone()
    }

    /// Requests that have arrived so far, including those still waiting out a delay.
    pub fn arrived(&self) -> u64 {
        self.shared
            .arrived
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Answers every request only after `ms` milliseconds from now on.
    pub fn delay(&self, ms: u64) {
        self.shared
            .delay_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers every request with its own headers as JSON from now on: a device that echoes.
    pub fn echo_headers(&self) {
        self.shared
            .echo
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers every request with the last body it was sent, from now on: a device that keeps
    /// what it gets and hands it to whoever asks.
    pub fn echo_bodies(&self) {
        self.shared
            .echo_bodies
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers requests to `path` with `status` from now on.
    pub fn respond(&self, path: &str, status: u16) {
        self.shared
            .statuses
            .lock()
            .expect("lock")
            .insert(path.into(), status);
    }
}

impl Drop for FakeAppliance {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let path = uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers: HashMap<String, String> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let answer = if shared
        .echo_bodies
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        let mut last = shared.last_body.lock().expect("lock");
        if !body.is_empty() {
            *last = body.to_vec();
        }
        String::from_utf8_lossy(&last).into_owned()
    } else if shared.echo.load(std::sync::atomic::Ordering::Relaxed) {
        serde_json::to_string(&headers).unwrap_or_default()
    } else {
        "{}".to_owned()
    };
    shared
        .arrived
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // A slow device: answers after the delay set by `delay`.
    let delay = shared.delay_ms.load(std::sync::atomic::Ordering::Relaxed);
    if delay > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
    }
    let status = shared
        .statuses
        .lock()
        .expect("lock")
        .get(uri.path())
        .copied()
        .unwrap_or(200);
    shared.received.lock().expect("lock").push(Received {
        method: method.to_string(),
        path,
        headers,
        body: body.to_vec(),
    });
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer,
    )
}
