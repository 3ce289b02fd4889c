//! The device agent (`lbaas-agent`): runs beside one HAProxy and gives the host a small
//! management API, reached through the `device-api` of the HAProxy driver.
//!
//! | request | does |
//! |---|---|
//! | `GET /v1/health` | HAProxy's master and workers, reload counts, load balancers served |
//! | `GET /v1/loadbalancers` | ids of the load balancers configured here |
//! | `PUT /v1/loadbalancers/{id}/config` | checks the `haproxy.cfg` body with `haproxy -c`, installs it and reloads; on any failure the previous file stays and the answer is `422 {"error": HAProxy's message}` |
//! | `GET /v1/loadbalancers/{id}/config` | the installed configuration |
//! | `DELETE /v1/loadbalancers/{id}/config` | removes it and reloads (`404` if unknown) |
//! | `GET /v1/loadbalancers/{id}/stats` | `{"rows": [...]}`: `show stat` lines of its frontends, backends and servers |
//!
//! When the agent was started with a token, every request must carry `Authorization: Bearer
//! <token>`.
//! Changes are serialised: one check-install-reload at a time.

pub mod haproxy;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use haproxy::Haproxy;

/// Largest configuration the agent accepts (the host caps what a driver renders at 1 MiB).
const MAX_CONFIG_BYTES: usize = 2 << 20;

pub struct Agent {
    haproxy: Haproxy,
    /// SHA-256 of the bearer token, when one is required.
    token: Option<[u8; 32]>,
    /// Held for every change, so checks, installs and reloads never interleave.
    changes: Mutex<()>,
}

/// An answer other than success: status and message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type Answer<T> = Result<T, Refusal>;

impl Agent {
    /// Starts (or adopts) the HAProxy whose files live in `state_dir`.
    pub fn start(
        haproxy_binary: PathBuf,
        state_dir: &Path,
        token: Option<&str>,
    ) -> Result<Self, String> {
        let haproxy = Haproxy::new(haproxy_binary, state_dir.to_owned());
        haproxy.start_or_adopt()?;
        Ok(Self {
            haproxy,
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            changes: Mutex::new(()),
        })
    }

    pub fn haproxy(&self) -> &Haproxy {
        &self.haproxy
    }

    fn config_file(&self, id: &str) -> PathBuf {
        self.haproxy.conf_dir().join(format!("{id}.cfg"))
    }

    /// Every installed configuration file, sorted.
    fn installed(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = fs::read_dir(self.haproxy.conf_dir())
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "cfg"))
            .collect();
        files.sort();
        files
    }

    /// Checks `config` together with every other installed file, installs it and reloads.
    /// When the check or the reload fails, the previous file is put back.
    pub fn put(&self, id: &str, config: &str) -> Answer<bool> {
        let _change = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.config_file(id);
        let previous = fs::read_to_string(&target).ok();
        if previous.as_deref() == Some(config) {
            return Ok(false);
        }
        let candidate = self.haproxy.conf_dir().join(format!("{id}.candidate"));
        fs::write(&candidate, config).map_err(internal)?;
        let mut files: Vec<PathBuf> = self
            .installed()
            .into_iter()
            .filter(|f| f != &target)
            .collect();
        files.push(candidate.clone());
        if let Err(message) = self.haproxy.check(&files) {
            let _ = fs::remove_file(&candidate);
            return Err(Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("HAProxy refused the configuration: {message}"),
            ));
        }
        fs::rename(&candidate, &target).map_err(internal)?;
        if let Err(message) = self.haproxy.reload() {
            // The running workers still have the old configuration; the files go back to it
            // so that the next reload starts from what is serving.
            match &previous {
                Some(previous) => fs::write(&target, previous).map_err(internal)?,
                None => fs::remove_file(&target).map_err(internal)?,
            }
            return Err(Refusal(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("HAProxy could not start the configuration: {message}"),
            ));
        }
        tracing::info!(
            loadbalancer = id,
            bytes = config.len(),
            "configuration installed"
        );
        Ok(previous.is_none())
    }

    /// Removes a load balancer's configuration and reloads; false when it was not here.
    pub fn delete(&self, id: &str) -> Answer<bool> {
        let _change = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.config_file(id);
        let Ok(previous) = fs::read_to_string(&target) else {
            return Ok(false);
        };
        fs::remove_file(&target).map_err(internal)?;
        if let Err(message) = self.haproxy.reload() {
            fs::write(&target, previous).map_err(internal)?;
            return Err(Refusal(StatusCode::SERVICE_UNAVAILABLE, message));
        }
        tracing::info!(loadbalancer = id, "configuration removed");
        Ok(true)
    }

    /// The stats rows of the load balancer's own sections.
    pub fn stats(&self, id: &str) -> Answer<Vec<haproxy::StatRow>> {
        let config = fs::read_to_string(self.config_file(id)).map_err(|_| not_found(id))?;
        let sections = haproxy::sections(&config);
        let rows = self
            .haproxy
            .stats()
            .map_err(|e| Refusal(StatusCode::SERVICE_UNAVAILABLE, e))?;
        Ok(rows
            .into_iter()
            .filter(|row| sections.contains(&row.proxy))
            .collect())
    }

    fn ids(&self) -> Vec<String> {
        self.installed()
            .iter()
            .filter_map(|path| path.file_stem()?.to_str().map(str::to_owned))
            .collect()
    }

    fn authorised(&self, request: &Request) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        // Digests are compared, so how long a comparison takes says nothing about the
        // token's bytes.
        presented.is_some_and(|token| Sha256::digest(token.as_bytes()).as_slice() == expected)
    }
}

fn internal(error: std::io::Error) -> Refusal {
    Refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("agent storage: {error}"),
    )
}

fn not_found(id: &str) -> Refusal {
    Refusal(
        StatusCode::NOT_FOUND,
        format!("load balancer {id} is not configured here"),
    )
}

/// Load balancer ids become file names: they must be plain tokens.
fn checked(id: &str) -> Answer<&str> {
    let plain = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(id)
    } else {
        Err(Refusal(
            StatusCode::BAD_REQUEST,
            "a load balancer id is 1 to 128 letters, digits, `-` or `_`".into(),
        ))
    }
}

/// The agent's HTTP API.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/loadbalancers", get(list))
        .route(
            "/v1/loadbalancers/{id}/config",
            get(show_config).put(put_config).delete(delete_config),
        )
        .route("/v1/loadbalancers/{id}/stats", get(stats))
        .layer(DefaultBodyLimit::max(MAX_CONFIG_BYTES))
        .layer(middleware::from_fn_with_state(agent.clone(), authenticate))
        .with_state(agent)
}

async fn authenticate(State(agent): State<Arc<Agent>>, request: Request, next: Next) -> Response {
    if !agent.authorised(&request) {
        return Refusal(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token".into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Runs blocking agent work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Answer<T> + Send + 'static,
) -> Answer<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Refusal(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn health(State(agent): State<Arc<Agent>>) -> Answer<Json<Value>> {
    blocking(move || {
        let processes = agent.haproxy.processes().map_err(|e| {
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("HAProxy is not running: {e}"),
            )
        })?;
        Ok(Json(json!({
            "status": "ok",
            "haproxy": processes,
            "loadbalancers": agent.ids().len(),
        })))
    })
    .await
}

async fn list(State(agent): State<Arc<Agent>>) -> Json<Value> {
    Json(json!({"loadbalancers": agent.ids()}))
}

async fn show_config(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
) -> Answer<String> {
    let id = checked(&id)?;
    fs::read_to_string(agent.config_file(id)).map_err(|_| not_found(id))
}

async fn put_config(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
    body: String,
) -> Answer<StatusCode> {
    checked(&id)?;
    let created = blocking(move || agent.put(&id, &body)).await?;
    Ok(if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    })
}

async fn delete_config(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
) -> Answer<StatusCode> {
    checked(&id)?;
    let id2 = id.clone();
    match blocking(move || agent.delete(&id2)).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(not_found(&id)),
    }
}

async fn stats(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
) -> Answer<Json<Value>> {
    checked(&id)?;
    let rows = blocking(move || agent.stats(&id)).await?;
    Ok(Json(json!({"rows": rows})))
}
