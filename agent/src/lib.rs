//! The device agent (`lbaas-agent`): runs beside one HAProxy and gives the host a small
//! management API, reached through the `device-api` of the HAProxy driver.
//!
//! | request | does |
//! |---|---|
//! | `GET /v1/health` | HAProxy's master and workers, reload counts, load balancers served |
//! | `GET /v1/loadbalancers` | ids of the load balancers configured here |
//! | `PUT /v1/loadbalancers/{id}/config` | checks the `haproxy.cfg` body against the [allow-list](policy) and the load balancer's scope (header `lbaas-scope`, sent by the host), then with `haproxy -c`, installs it and reloads; answers `{"sha256"}`. A policy refusal is `422 {"error", "line", "keyword"}` with the header `lbaas-refusal: policy`; on any other failure the previous file stays and the answer is `422 {"error": HAProxy's message}` |
//! | `GET /v1/loadbalancers/{id}/config` | the installed configuration (its SHA-256 in `x-config-sha256`) |
//! | `DELETE /v1/loadbalancers/{id}/config` | removes it and reloads (`404` if unknown); needs the load balancer's scope too |
//! | `PUT /v1/loadbalancers/{id}/certificates/{name}` | stores a PEM file (certificates, a private key, a revocation list: nothing else) for that load balancer's `crt`, `ca-file` and `crl-file` arguments, mode 0600 in the agent's own folder; needs the load balancer's scope. `DELETE` removes it; removing the load balancer's configuration removes them all |
//! | `GET /v1/loadbalancers/{id}/stats` | `{"rows": [...]}`: `show stat` lines of its frontends, backends and servers |
//! | `GET /v1/history` | `{"entries": [...]}`: every configuration installed, removed or refused here (time, load balancer, SHA-256, bytes), oldest first |
//!
//! When the agent was started with a token, every request must carry `Authorization: Bearer
//! <token>`.
//! Changes are serialised: one check-install-reload at a time. The configuration a driver
//! rendered is attacker-controlled: nothing reaches HAProxy before [`policy::check`] passed it.

pub mod certificates;
pub mod haproxy;
pub mod metrics;
pub mod policy;

use std::fs;
use std::io::Write as _;
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
pub use policy::{ConfigPolicy, Scope};

/// Header in which the host sends a load balancer's [`Scope`] with its configuration. The host's
/// side of this contract is `lbaas_runtime::scope::SCOPE_HEADER`; a test keeps the two equal.
pub const SCOPE_HEADER: &str = "lbaas-scope";

/// Header of a refusal by the configuration policy, so the host can tell it from HAProxy's own
/// errors (and hold a driver to it). The host's side of this contract is
/// `lbaas_host::runtime::DEVICE_REFUSAL_HEADER`; a test keeps the two equal.
pub const REFUSAL_HEADER: &str = "lbaas-refusal";
/// Entries of the installation history kept in memory for `GET /v1/history`.
const HISTORY_ANSWER: usize = 1000;

/// Largest configuration the agent accepts (the host caps what a driver renders at 1 MiB).
const MAX_CONFIG_BYTES: usize = 2 << 20;

pub struct Agent {
    haproxy: Haproxy,
    policy: ConfigPolicy,
    /// SHA-256 of the bearer token, when one is required.
    token: Option<[u8; 32]>,
    /// Held for every change, so checks, installs and reloads never interleave. It holds the
    /// load balancers whose certificate files changed since their configuration was last
    /// installed: HAProxy reads those files only when it reloads, so the next `put` of such a
    /// load balancer reloads even when its configuration is the same (a rotated certificate).
    changes: Mutex<std::collections::HashSet<String>>,
}

/// An answer other than success: status and message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct Refusal(StatusCode, String, Option<policy::Violation>);

impl Refusal {
    fn new(status: StatusCode, message: String) -> Self {
        Self(status, message, None)
    }

    /// The configuration policy's refusal (a line, or the scope a change came with).
    fn policy(violation: policy::Violation) -> Self {
        let message = format!("the device's configuration policy refused it: {violation}");
        Self(StatusCode::UNPROCESSABLE_ENTITY, message, Some(violation))
    }

    /// The message sent as `error`.
    pub fn message(&self) -> &str {
        &self.1
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self.2 {
            None => (self.0, Json(json!({"error": self.1}))).into_response(),
            Some(violation) => (
                self.0,
                [(REFUSAL_HEADER, "policy")],
                Json(json!({
                    "error": self.1,
                    "line": violation.line,
                    "keyword": violation.keyword,
                })),
            )
                .into_response(),
        }
    }
}

type Answer<T> = Result<T, Refusal>;

/// A configuration and its SHA-256, computed once: answered, and kept in the history.
pub struct Config<'a> {
    pub text: &'a str,
    pub sha256: String,
}

impl<'a> Config<'a> {
    pub fn new(text: &'a str) -> Self {
        Self {
            text,
            sha256: hex::encode(Sha256::digest(text.as_bytes())),
        }
    }
}

impl Agent {
    /// Starts (or adopts) the HAProxy whose files live in `state_dir` and whose sockets live
    /// in `socket_dir` (the state folder when `None`).
    pub fn start(
        haproxy_binary: PathBuf,
        state_dir: &Path,
        socket_dir: Option<&Path>,
        token: Option<&str>,
        policy: ConfigPolicy,
    ) -> Result<Self, haproxy::HaproxyError> {
        let haproxy = Haproxy::new(haproxy_binary, state_dir.to_owned())
            .with_sockets(socket_dir.unwrap_or(state_dir).to_owned());
        haproxy.start_or_adopt()?;
        let policy = ConfigPolicy {
            certificates: Some(certificates::root(state_dir)),
            ..policy
        };
        Ok(Self {
            haproxy,
            policy,
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
            changes: Mutex::new(Default::default()),
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

    fn history_file(&self) -> PathBuf {
        self.haproxy.state_dir().join("history.jsonl")
    }

    /// Appends to the installation history: what was installed, removed or refused here.
    fn record(&self, id: &str, action: &str, config: &Config<'_>, detail: Option<&str>) {
        let entry = json!({
            "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "loadbalancer": id,
            "action": action,
            "sha256": config.sha256,
            "bytes": config.text.len(),
            "detail": detail,
        });
        let written = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.history_file())
            .and_then(|mut file| writeln!(file, "{entry}"));
        if let Err(error) = written {
            tracing::error!(%error, "cannot append to the installation history");
        }
    }

    /// The newest entries of the installation history, oldest first.
    pub fn history(&self) -> Vec<Value> {
        let text = fs::read_to_string(self.history_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(HISTORY_ANSWER)..]
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// Checks `config` against the policy, then together with every other installed file,
    /// installs it and reloads. When the check or the reload fails, the previous file is put
    /// back.
    pub fn put(&self, id: &str, config: &Config<'_>, scope: Option<&Scope>) -> Answer<bool> {
        let mut rotated = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let text = config.text;
        let checked = scoped(id, scope).and_then(|scope| policy::check(text, &self.policy, scope));
        if let Err(violation) = checked {
            tracing::warn!(loadbalancer = id, %violation, "configuration refused by policy");
            let refusal = Refusal::policy(violation);
            self.record(id, "refused", config, Some(refusal.message()));
            return Err(refusal);
        }
        let target = self.config_file(id);
        let previous = fs::read_to_string(&target).ok();
        if previous.as_deref() == Some(text) && !rotated.contains(id) {
            return Ok(false);
        }
        let candidate = self.haproxy.conf_dir().join(format!("{id}.candidate"));
        fs::write(&candidate, text).map_err(internal)?;
        let mut files: Vec<PathBuf> = self
            .installed()
            .into_iter()
            .filter(|f| f != &target)
            .collect();
        files.push(candidate.clone());
        if let Err(message) = self.haproxy.check(&files) {
            let _ = fs::remove_file(&candidate);
            return Err(Refusal::new(
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
            return Err(Refusal::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("HAProxy could not start the configuration: {message}"),
            ));
        }
        rotated.remove(id);
        // HAProxy has loaded what the configuration names; what it does not name goes.
        let pruned = certificates::prune(self.haproxy.state_dir(), id, text).map_err(internal)?;
        tracing::info!(
            loadbalancer = id,
            bytes = text.len(),
            pruned,
            "configuration installed"
        );
        self.record(id, "installed", config, None);
        Ok(previous.is_none())
    }

    /// Removes a load balancer's configuration and reloads; false when it was not here. Only
    /// that load balancer's own job may remove it: its scope comes with the request.
    pub fn delete(&self, id: &str, scope: Option<&Scope>) -> Answer<bool> {
        scoped(id, scope).map_err(Refusal::policy)?;
        let _change = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        let target = self.config_file(id);
        let Ok(previous) = fs::read_to_string(&target) else {
            return Ok(false);
        };
        fs::remove_file(&target).map_err(internal)?;
        if let Err(message) = self.haproxy.reload() {
            fs::write(&target, previous).map_err(internal)?;
            return Err(Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                message.to_string(),
            ));
        }
        // Its keys go with it: nothing of a removed load balancer stays on the device.
        certificates::remove_all(self.haproxy.state_dir(), id).map_err(internal)?;
        tracing::info!(loadbalancer = id, "configuration removed");
        self.record(id, "removed", &Config::new(&previous), None);
        Ok(true)
    }

    /// Stores certificate file `name` of load balancer `id`; only that load balancer's own job
    /// may (its scope comes with the request).
    pub fn put_certificate(
        &self,
        id: &str,
        name: &str,
        scope: Option<&Scope>,
        body: &[u8],
    ) -> Answer<()> {
        scoped(id, scope).map_err(Refusal::policy)?;
        let mut rotated = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        if certificates::store(self.haproxy.state_dir(), id, name, body)? {
            rotated.insert(id.to_owned());
        }
        Ok(())
    }

    /// Removes certificate file `name` of load balancer `id`, with its scope too.
    pub fn delete_certificate(&self, id: &str, name: &str, scope: Option<&Scope>) -> Answer<()> {
        scoped(id, scope).map_err(Refusal::policy)?;
        let _change = self.changes.lock().unwrap_or_else(|e| e.into_inner());
        Ok(certificates::remove(self.haproxy.state_dir(), id, name)?)
    }

    /// The stats rows of the load balancer's own sections.
    pub fn stats(&self, id: &str) -> Answer<Vec<haproxy::StatRow>> {
        let config = fs::read_to_string(self.config_file(id)).map_err(|_| not_found(id))?;
        let sections = haproxy::sections(&config);
        let rows = self
            .haproxy
            .stats()
            .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        Ok(rows
            .into_iter()
            .filter(|row| sections.contains(&row.proxy))
            .collect())
    }

    /// The frontends and backends of the load balancer whose configuration defines the
    /// frontend `name`, if one does.
    pub fn sections_with_frontend(&self, name: &str) -> Option<Vec<String>> {
        self.installed().iter().find_map(|path| {
            let config = fs::read_to_string(path).ok()?;
            let defines = config.lines().any(|line| {
                let mut words = line.split_whitespace();
                words.next() == Some("frontend") && words.next() == Some(name)
            });
            defines.then(|| haproxy::sections(&config))
        })
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

/// The scope the host sent, if it is for load balancer `id`.
fn scoped<'a>(id: &str, scope: Option<&'a Scope>) -> Result<&'a Scope, policy::Violation> {
    let refuse = |reason: String| policy::Violation {
        line: 0,
        keyword: SCOPE_HEADER.into(),
        reason,
    };
    match scope {
        Some(scope) if scope.loadbalancer == id => Ok(scope),
        Some(_) => Err(refuse(format!(
            "names another load balancer than {id}: a job changes its own load balancer only"
        ))),
        None => Err(refuse(
            "is missing: the host names what each load balancer may reach, and nothing is \
             changed without it"
                .into(),
        )),
    }
}

/// The [`Scope`] the host sent with a request, if any; a header that is not one is refused.
fn scope_of(headers: &axum::http::HeaderMap) -> Answer<Option<Scope>> {
    let Some(value) = headers.get(SCOPE_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| serde_json::from_str(text).ok())
        .map(Some)
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("the {SCOPE_HEADER} header is not a scope"),
            )
        })
}

impl From<certificates::Refused> for Refusal {
    fn from(refused: certificates::Refused) -> Self {
        Refusal::new(refused.status(), refused.to_string())
    }
}

fn internal(error: std::io::Error) -> Refusal {
    Refusal::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("agent storage: {error}"),
    )
}

fn not_found(id: &str) -> Refusal {
    Refusal::new(
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
        Err(Refusal::new(
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
        .route(
            "/v1/loadbalancers/{id}/certificates/{name}",
            axum::routing::put(put_certificate).delete(delete_certificate),
        )
        .route("/v1/loadbalancers/{id}/stats", get(stats))
        .route("/v1/history", get(history))
        .layer(DefaultBodyLimit::max(MAX_CONFIG_BYTES))
        .layer(middleware::from_fn_with_state(agent.clone(), authenticate))
        .with_state(agent)
}

async fn authenticate(State(agent): State<Arc<Agent>>, request: Request, next: Next) -> Response {
    if !agent.authorised(&request) {
        return Refusal::new(
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
        .map_err(|e| Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

async fn health(State(agent): State<Arc<Agent>>) -> Answer<Json<Value>> {
    blocking(move || {
        let processes = agent.haproxy.processes().map_err(|e| {
            Refusal::new(
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

async fn history(State(agent): State<Arc<Agent>>) -> Answer<Json<Value>> {
    let entries = blocking(move || Ok(agent.history())).await?;
    Ok(Json(json!({"entries": entries})))
}

async fn show_config(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
) -> Answer<([(&'static str, String); 1], String)> {
    let id = checked(&id)?;
    let config = fs::read_to_string(agent.config_file(id)).map_err(|_| not_found(id))?;
    let digest = hex::encode(Sha256::digest(config.as_bytes()));
    Ok(([("x-config-sha256", digest)], config))
}

async fn put_config(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> Answer<(StatusCode, Json<Value>)> {
    checked(&id)?;
    let scope = scope_of(&headers)?;
    let (created, sha256) = blocking(move || {
        let config = Config::new(&body);
        Ok((agent.put(&id, &config, scope.as_ref())?, config.sha256))
    })
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(json!({ "sha256": sha256 }))))
}

async fn delete_config(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
    headers: axum::http::HeaderMap,
) -> Answer<StatusCode> {
    checked(&id)?;
    let scope = scope_of(&headers)?;
    let id2 = id.clone();
    match blocking(move || agent.delete(&id2, scope.as_ref())).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(not_found(&id)),
    }
}

async fn put_certificate(
    State(agent): State<Arc<Agent>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Answer<StatusCode> {
    checked(&id)?;
    let scope = scope_of(&headers)?;
    blocking(move || agent.put_certificate(&id, &name, scope.as_ref(), &body)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_certificate(
    State(agent): State<Arc<Agent>>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    headers: axum::http::HeaderMap,
) -> Answer<StatusCode> {
    checked(&id)?;
    let scope = scope_of(&headers)?;
    blocking(move || agent.delete_certificate(&id, &name, scope.as_ref())).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn stats(
    State(agent): State<Arc<Agent>>,
    UrlPath(id): UrlPath<String>,
) -> Answer<Json<Value>> {
    checked(&id)?;
    let rows = blocking(move || agent.stats(&id)).await?;
    Ok(Json(json!({"rows": rows})))
}
