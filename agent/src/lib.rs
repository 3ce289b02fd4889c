//! The device agent (`lbaas-agent`): runs beside one HAProxy and gives the host a small
//! management API, reached through the `device-api` of the HAProxy driver.
//!
//! | request | does |
//! |---|---|
//! | `GET /v1/health` | HAProxy's master and workers, reload counts, load balancers served |
//! | `GET /v1/loadbalancers` | ids of the load balancers configured here |
//! | `PUT /v1/loadbalancers/{id}/config` | checks the `haproxy.cfg` body against the [allow-list](policy) and the load balancer's scope (header `lbaas-scope`, sent by the host) and installs it: a change HAProxy's runtime API makes (member weights, addresses, maintenance, additions and removals: [`live`]) is made through it, without a reload; any other is checked with `haproxy -c` and started by a reload shared with the changes of its [window](RELOAD_WINDOW); answers `{"sha256", "applied"}` and the header `lbaas-applied` (`runtime`, `reload` or `unchanged`). A policy refusal is `422 {"error", "line", "keyword"}` with the header `lbaas-refusal: policy`; on any other failure the previous file stays and the answer is `422 {"error": HAProxy's message}` |
//! | `GET /v1/loadbalancers/{id}/config` | the installed configuration (its SHA-256 in `x-config-sha256`) |
//! | `DELETE /v1/loadbalancers/{id}/config` | removes it and reloads (`404` if unknown); needs the load balancer's scope too |
//! | `PUT /v1/loadbalancers/{id}/certificates/{name}` | stores a PEM file (certificates, a private key, a revocation list: nothing else) for that load balancer's `crt`, `ca-file` and `crl-file` arguments, mode 0600 in the agent's own folder; needs the load balancer's scope. `DELETE` removes it; removing the load balancer's configuration removes them all |
//! | `GET /v1/loadbalancers/{id}/stats` | `{"rows": [...]}`: `show stat` lines of its frontends, backends and servers; their counters count from the agent's start, across reloads |
//! | `GET /v1/history` | `{"entries": [...]}`: every configuration installed, removed or refused here (time, load balancer, SHA-256, bytes, `applied`: `runtime` with the commands sent, or `reload`), oldest first |
//!
//! When the agent was started with a token, every request must carry `Authorization: Bearer
//! <token>`.
//! Changes are serialised: runtime commands and reloads never interleave, and the changes
//! waiting for a reload are checked together and started by one. The configuration a driver
//! rendered is attacker-controlled: nothing reaches HAProxy before [`policy::check`] passed it.

pub mod certificates;
pub mod haproxy;
pub mod live;
pub mod metrics;
pub mod policy;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

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
    /// Held for every change of the files and of the running HAProxy, so checks, installs,
    /// runtime commands and reloads never interleave.
    changes: Mutex<Changes>,
    /// Reloads asked for, and who does them.
    reloads: Reloads,
    /// Whether changes HAProxy's runtime API can make are made through it ([`live`]); when
    /// not, every change is a reload.
    runtime_api: bool,
    /// The counters of each proxy and server (by name) that retired workers reached
    /// ([`Agent::stats`]).
    carried: Mutex<HashMap<(String, String), haproxy::StatRow>>,
    /// Changes waiting for `changes` (held through every reload): whether they come faster
    /// than HAProxy reloads ([`RELOAD_REST`]).
    arriving: AtomicUsize,
}

/// How long the first change that needs a reload waits for others to join it: changes that
/// arrive within it, or while a reload runs, are started by one reload.
pub const RELOAD_WINDOW: Duration = Duration::from_millis(20);

/// When changes came while HAProxy reloaded, the next reload waits as long as that one took,
/// up to this: under a stream of changes HAProxy spends at most half its time reloading (each
/// reload leaves a worker finishing its connections, and on a device with thousands of
/// listeners takes the best part of a second of CPU), and the changes arriving meanwhile share
/// the next reload. A change that finds the device quiet is started at once.
pub const RELOAD_REST: Duration = Duration::from_millis(500);

/// Header of the agent's answer to a configuration: how it reached HAProxy ([`Applied`]). The
/// host records it with the device call; its side of this contract is
/// `lbaas_host::runtime::DEVICE_APPLIED_HEADER`, and a test keeps the two equal.
pub const APPLIED_HEADER: &str = "lbaas-applied";

/// How an installed configuration reached HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It was already installed.
    Unchanged,
    /// Through HAProxy's runtime API, without a reload ([`live`]).
    Runtime,
    /// By a reload (shared with the other changes of its window); `true` when the load
    /// balancer was new here.
    Reload(bool),
}

impl Applied {
    pub fn name(self) -> &'static str {
        match self {
            Applied::Unchanged => "unchanged",
            Applied::Runtime => "runtime",
            Applied::Reload(_) => "reload",
        }
    }
}

#[derive(Default)]
struct Changes {
    /// Load balancers whose certificate files changed since their configuration was last
    /// installed: HAProxy reads those files only when it reloads, so the next `put` of such a
    /// load balancer reloads even when its configuration is the same (a rotated certificate).
    rotated: HashSet<String>,
    /// Changes for the next reload, in the order they came.
    pending: Vec<Pending>,
}

/// A change waiting for the reload that starts it.
struct Pending {
    ticket: u64,
    id: String,
    /// The new file (also written beside `conf.d`'s as `<id>.<ticket>.candidate`, which
    /// HAProxy does not read, for `haproxy -c`); `None` removes the load balancer.
    next: Option<String>,
    /// The file it replaced (`None`: there was none), once installed: put back if HAProxy
    /// cannot start the change.
    previous: Option<String>,
}

/// Who reloads: the first waiting change finding nobody at it leads, reloading for every
/// change pending then, and publishes each one's outcome by its ticket.
#[derive(Default)]
struct Reloads {
    state: Mutex<ReloadState>,
    done: Condvar,
}

#[derive(Default)]
struct ReloadState {
    next_ticket: u64,
    /// When the last reload ended, how long it took, and whether changes came meanwhile.
    last: Option<(std::time::Instant, Duration, bool)>,
    leading: bool,
    outcomes: HashMap<u64, Result<(), String>>,
}

impl Reloads {
    fn ticket(&self) -> u64 {
        let mut state = lock(&self.state);
        state.next_ticket += 1;
        state.next_ticket
    }

    /// Waits for the outcome of the change with `ticket`, leading the reloads (`lead`) while
    /// nobody else does.
    fn wait(
        &self,
        ticket: u64,
        lead: impl Fn() -> Vec<(u64, Result<(), String>)>,
    ) -> Result<(), String> {
        let mut state = lock(&self.state);
        loop {
            if let Some(outcome) = state.outcomes.remove(&ticket) {
                return outcome;
            }
            if state.leading {
                state = self.done.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            state.leading = true;
            drop(state);
            // Whatever happens in `lead`, the lead is given back and the others woken.
            struct Release<'a>(&'a Reloads, Vec<(u64, Result<(), String>)>);
            impl Drop for Release<'_> {
                fn drop(&mut self) {
                    let mut state = lock(&self.0.state);
                    state.leading = false;
                    state.outcomes.extend(self.1.drain(..));
                    self.0.done.notify_all();
                }
            }
            let mut release = Release(self, Vec::new());
            release.1 = lead();
            drop(release);
            state = lock(&self.state);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
            changes: Mutex::default(),
            reloads: Reloads::default(),
            runtime_api: true,
            carried: Mutex::default(),
            arriving: AtomicUsize::new(0),
        })
    }

    /// The lock of a change, counted while waited for.
    fn change(&self) -> MutexGuard<'_, Changes> {
        self.arriving.fetch_add(1, Ordering::Relaxed);
        let changes = lock(&self.changes);
        self.arriving.fetch_sub(1, Ordering::Relaxed);
        changes
    }

    /// Every change by a reload, none through the runtime API (`--reload-only`).
    pub fn reload_only(self) -> Self {
        Self {
            runtime_api: false,
            ..self
        }
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

    /// Appends to the installation history: what was installed, removed or refused here, and
    /// for a change that reached HAProxy how ([`Applied::name`]).
    fn record(
        &self,
        id: &str,
        action: &str,
        config: &Config<'_>,
        applied: Option<&str>,
        detail: Option<&str>,
    ) {
        let entry = json!({
            "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "loadbalancer": id,
            "action": action,
            "applied": applied,
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

    /// Checks `config` against the policy and installs it: through HAProxy's runtime API when
    /// it differs from the running file only in what that API changes ([`live`]), otherwise
    /// by a reload shared with the changes of its window (checked by `haproxy -c` first). When
    /// HAProxy refuses it or cannot start it, the previous file stays.
    pub fn put(&self, id: &str, config: &Config<'_>, scope: Option<&Scope>) -> Answer<Applied> {
        let text = config.text;
        let checked = scoped(id, scope).and_then(|scope| policy::check(text, &self.policy, scope));
        let changes = self.change();
        if let Err(violation) = checked {
            tracing::warn!(loadbalancer = id, %violation, "configuration refused by policy");
            let refusal = Refusal::policy(violation);
            self.record(id, "refused", config, None, Some(refusal.message()));
            return Err(refusal);
        }
        let target = self.config_file(id);
        let previous = fs::read_to_string(&target).ok();
        let rotated = changes.rotated.contains(id);
        if previous.as_deref() == Some(text) && !rotated {
            return Ok(Applied::Unchanged);
        }
        // The runtime API changes what runs: only when what runs is the file.
        let running = self.runtime_api && !rotated && !changes.pending.iter().any(|p| p.id == id);
        let commands = previous
            .as_deref()
            .filter(|_| running)
            .and_then(|previous| live::plan(previous, text));
        if let Some(commands) = commands {
            set_file(&target, Some(text)).map_err(internal)?;
            match self.haproxy.apply(&commands) {
                Ok(()) => {
                    tracing::info!(
                        loadbalancer = id,
                        commands = commands.len(),
                        "configuration applied without a reload"
                    );
                    let detail = commands.join("; ");
                    self.record(id, "installed", config, Some("runtime"), Some(&detail));
                    return Ok(Applied::Runtime);
                }
                // HAProxy may have taken part of it: a reload starts the file whole.
                Err(refused) => {
                    tracing::info!(
                        loadbalancer = id,
                        %refused,
                        "the runtime API did not take the change: reloading"
                    );
                    set_file(&target, previous.as_deref()).map_err(internal)?;
                }
            }
        }
        let ticket = self.reloads.ticket();
        set_file(&self.candidate_file(id, ticket), Some(text)).map_err(internal)?;
        let created = previous.is_none();
        self.reload_for(changes, ticket, id, Some(text.to_owned()))
            .map_err(|message| Refusal::new(StatusCode::UNPROCESSABLE_ENTITY, message))?;
        Ok(Applied::Reload(created))
    }

    /// Where change `ticket` of load balancer `id` waits for `haproxy -c`.
    fn candidate_file(&self, id: &str, ticket: u64) -> PathBuf {
        self.haproxy
            .conf_dir()
            .join(format!("{id}.{ticket}.candidate"))
    }

    /// Queues a change for the next reload and waits for its outcome: `next` is the new file,
    /// `None` removes it.
    fn reload_for(
        &self,
        mut changes: MutexGuard<'_, Changes>,
        ticket: u64,
        id: &str,
        next: Option<String>,
    ) -> Result<(), String> {
        changes.pending.push(Pending {
            ticket,
            id: id.to_owned(),
            next,
            previous: None,
        });
        drop(changes);
        self.reloads.wait(ticket, || self.reload_pending())
    }

    /// The changes pending after a short window, checked together by one `haproxy -c` and
    /// started by one reload. What HAProxy refuses together is found alone: a refused file is
    /// refused by itself, and when the files it accepted cannot start together, each is put
    /// back and started alone, so one load balancer's broken change fails only itself.
    fn reload_pending(&self) -> Vec<(u64, Result<(), String>)> {
        let rest = lock(&self.reloads.state)
            .last
            .filter(|(_, _, busy)| *busy)
            .map_or(Duration::ZERO, |(ended, took, _)| {
                took.min(RELOAD_REST).saturating_sub(ended.elapsed())
            });
        std::thread::sleep(RELOAD_WINDOW.max(rest));
        let mut changes = lock(&self.changes);
        let mut batch = std::mem::take(&mut changes.pending);
        let mut outcomes: Vec<Option<Result<(), String>>> = vec![None; batch.len()];
        self.check_batch(&batch, &mut outcomes);
        let mut started = Vec::new();
        for (i, pending) in batch.iter_mut().enumerate() {
            if outcomes[i].is_none() {
                match self.install(pending) {
                    Ok(()) => started.push(i),
                    Err(error) => outcomes[i] = Some(Err(error)),
                }
            }
        }
        if !started.is_empty() {
            match self.reload() {
                Ok(()) => started.iter().for_each(|&i| outcomes[i] = Some(Ok(()))),
                Err(error) if started.len() == 1 => {
                    self.write_back(&batch[started[0]], false);
                    outcomes[started[0]] = Some(Err(not_started(&error)));
                }
                Err(error) => {
                    tracing::warn!(
                        changes = started.len(),
                        %error,
                        "HAProxy could not start a window's changes together: trying each alone"
                    );
                    for &i in started.iter().rev() {
                        self.write_back(&batch[i], false);
                    }
                    for &i in &started {
                        self.write_back(&batch[i], true);
                        outcomes[i] = Some(self.reload().map_err(|error| {
                            self.write_back(&batch[i], false);
                            not_started(&error)
                        }));
                    }
                }
            }
        }
        batch
            .into_iter()
            .zip(outcomes)
            .map(|(pending, outcome)| {
                let outcome = outcome.unwrap_or_else(|| Err("not applied".into()));
                if outcome.is_ok() {
                    self.started(&mut changes, &pending);
                }
                if pending.next.is_some() {
                    let _ = fs::remove_file(self.candidate_file(&pending.id, pending.ticket));
                }
                (pending.ticket, outcome)
            })
            .collect()
    }

    /// `haproxy -c` of the batch's new files together with the base; when it refuses them,
    /// each alone, and those refused alone are refused.
    fn check_batch(&self, batch: &[Pending], outcomes: &mut [Option<Result<(), String>>]) {
        let candidate = |p: &Pending| {
            p.next
                .is_some()
                .then(|| self.candidate_file(&p.id, p.ticket))
        };
        let candidates: Vec<PathBuf> = batch.iter().filter_map(candidate).collect();
        // The other load balancers' files were checked when they came; what only their union
        // refuses (a name or an address taken twice) fails the reload, which puts them back.
        if candidates.is_empty() || self.haproxy.check(&candidates).is_ok() {
            return;
        }
        for (pending, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            if let Some(candidate) = candidate(pending)
                && let Err(message) = self.haproxy.check(&[candidate])
            {
                *outcome = Some(Err(format!("HAProxy refused the configuration: {message}")));
            }
        }
    }

    /// Puts a checked change in `conf.d`, keeping what it replaces.
    fn install(&self, pending: &mut Pending) -> Result<(), String> {
        let target = self.config_file(&pending.id);
        pending.previous = fs::read_to_string(&target).ok();
        set_file(&target, pending.next.as_deref())
            .map_err(|error| format!("agent storage: {error}"))
    }

    /// Puts load balancer `pending.id`'s file back as it was before the change, or (`again`)
    /// as the change makes it.
    fn write_back(&self, pending: &Pending, again: bool) {
        let text = match again {
            true => &pending.next,
            false => &pending.previous,
        };
        if let Err(error) = set_file(&self.config_file(&pending.id), text.as_deref()) {
            tracing::error!(loadbalancer = pending.id, %error, "cannot restore a configuration");
        }
    }

    /// What follows a change HAProxy started: the certificate files it no longer names go (all
    /// of them with a removed load balancer), and the history records it.
    fn started(&self, changes: &mut Changes, pending: &Pending) {
        let id = pending.id.as_str();
        let cleaned = match &pending.next {
            Some(text) => {
                changes.rotated.remove(id);
                certificates::prune(self.haproxy.state_dir(), id, text).map(|pruned| {
                    tracing::info!(
                        loadbalancer = id,
                        bytes = text.len(),
                        pruned,
                        "configuration installed"
                    );
                    self.record(id, "installed", &Config::new(text), Some("reload"), None);
                })
            }
            None => certificates::remove_all(self.haproxy.state_dir(), id).map(|()| {
                tracing::info!(loadbalancer = id, "configuration removed");
                let previous = pending.previous.as_deref().unwrap_or_default();
                let sections = haproxy::sections(previous);
                lock(&self.carried).retain(|(proxy, _), _| !sections.contains(proxy));
                self.record(id, "removed", &Config::new(previous), Some("reload"), None);
            }),
        };
        if let Err(error) = cleaned {
            tracing::error!(loadbalancer = id, %error, "cannot clean the certificate files");
        }
    }

    /// Removes a load balancer's configuration and reloads; false when it was not here. Only
    /// that load balancer's own job may remove it: its scope comes with the request.
    pub fn delete(&self, id: &str, scope: Option<&Scope>) -> Answer<bool> {
        scoped(id, scope).map_err(Refusal::policy)?;
        let changes = self.change();
        let pending = changes.pending.iter().any(|p| p.id == id);
        if !pending && !self.config_file(id).exists() {
            return Ok(false);
        }
        let ticket = self.reloads.ticket();
        self.reload_for(changes, ticket, id, None)
            .map_err(|message| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, message))?;
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
        let mut changes = lock(&self.changes);
        if certificates::store(self.haproxy.state_dir(), id, name, body)? {
            changes.rotated.insert(id.to_owned());
        }
        Ok(())
    }

    /// Removes certificate file `name` of load balancer `id`, with its scope too.
    pub fn delete_certificate(&self, id: &str, name: &str, scope: Option<&Scope>) -> Answer<()> {
        scoped(id, scope).map_err(Refusal::policy)?;
        let _changes = lock(&self.changes);
        Ok(certificates::remove(self.haproxy.state_dir(), id, name)?)
    }

    /// The stats rows of the load balancer's own sections.
    /// Their counters count from the agent's start: what earlier workers counted is added.
    pub fn stats(&self, id: &str) -> Answer<Vec<haproxy::StatRow>> {
        let config = fs::read_to_string(self.config_file(id)).map_err(|_| not_found(id))?;
        let sections = haproxy::sections(&config);
        let rows = self
            .haproxy
            .stats()
            .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
        let carried = lock(&self.carried);
        Ok(rows
            .into_iter()
            .filter(|row| sections.contains(&row.proxy))
            .map(
                |row| match carried.get(&(row.proxy.clone(), row.server.clone())) {
                    Some(earlier) => earlier.add_to(row),
                    None => row,
                },
            )
            .collect())
    }

    /// A reload, after which the counters the retiring worker reached are carried: a new
    /// worker counts from zero, and however fast reloads follow each other (they are coalesced
    /// and several may come between two readings of the host), nothing counted is lost but
    /// what the retiring worker counts after it.
    fn reload(&self) -> Result<(), haproxy::HaproxyError> {
        let before = self.haproxy.stats().unwrap_or_default();
        let started = std::time::Instant::now();
        let reloaded = self.haproxy.reload();
        let busy = self.arriving.load(Ordering::Relaxed) > 0;
        lock(&self.reloads.state).last = Some((std::time::Instant::now(), started.elapsed(), busy));
        reloaded?;
        let mut carried = lock(&self.carried);
        for row in before {
            let earlier = carried
                .entry((row.proxy.clone(), row.server.clone()))
                .or_default();
            *earlier = earlier.add_to(row);
        }
        Ok(())
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

/// Puts a file of `conf.d` in state `text`: written whole or not at all, or (`None`) gone.
fn set_file(path: &Path, text: Option<&str>) -> std::io::Result<()> {
    match text {
        Some(text) => {
            let temporary = path.with_extension("writing");
            fs::write(&temporary, text).and_then(|()| fs::rename(&temporary, path))
        }
        None => fs::remove_file(path).or_else(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Ok(()),
            _ => Err(e),
        }),
    }
}

fn not_started(error: &haproxy::HaproxyError) -> String {
    format!("HAProxy could not start the configuration: {error}")
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
) -> Answer<(StatusCode, [(&'static str, &'static str); 1], Json<Value>)> {
    checked(&id)?;
    let scope = scope_of(&headers)?;
    let (applied, sha256) = blocking(move || {
        let config = Config::new(&body);
        Ok((agent.put(&id, &config, scope.as_ref())?, config.sha256))
    })
    .await?;
    let status = match applied {
        Applied::Reload(true) => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((
        status,
        [(APPLIED_HEADER, applied.name())],
        Json(json!({ "sha256": sha256, "applied": applied.name() })),
    ))
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
