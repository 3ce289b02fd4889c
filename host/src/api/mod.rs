//! The load-balancer API: Octavia's v2 API (so openstacksdk and the `openstack loadbalancer`
//! CLI work unchanged), the admin extensions under `/v2/admin/`, and the read-only subset of
//! Neutron's API the CLI needs to resolve subnets.
//!
//! Every write takes the API's write lock, validates against a snapshot of the store, commits
//! the change and the job that will finish it in one transaction, and answers only once the
//! commit is durable.

mod admin;
pub mod auth;
mod body;
mod drivers;
pub mod error;
mod flavors;
mod healthmonitors;
mod listeners;
mod loadbalancers;
mod members;
mod neutron;
mod pools;
mod query;
mod security;
mod snapshot;
mod table;
mod validate;
mod views;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::store::{Batch, Store};

pub use crate::drivers::Drivers;
pub use auth::{Auth, Context};
pub use error::{ApiError, ApiResult};
pub use flavors::profile_providers;
pub use loadbalancers::{new_id, now};
pub use snapshot::Snapshot;
pub use table::Table;

/// Tells the worker that a load balancer has a job waiting.
pub type JobSender = tokio::sync::mpsc::UnboundedSender<String>;

pub struct Api {
    pub store: Arc<dyn Store>,
    pub drivers: Arc<Drivers>,
    pub auth: Auth,
    /// The provider of load balancers created without flavor or provider.
    pub default_provider: Option<String>,
    /// Creates virtual devices when a driver asks to spawn one.
    pub provisioner: Option<Arc<dyn crate::provision::Provisioner>>,
    /// Listener traffic totals, fed by the status monitor.
    pub traffic: crate::monitor::Traffic,
    /// The drivers' audit log, when the host keeps one.
    pub audit: Option<Arc<crate::audit::AuditLog>>,
    /// Who may register devices, and where their management endpoints may be.
    pub registration: DeviceRegistration,
    writes: tokio::sync::Mutex<()>,
    /// Every write is flushed to disk before it is answered (the default). Off only to measure
    /// what durability costs: an acknowledged write may then be lost in a crash.
    flush_before_ack: bool,
    /// The store's records, decoded once and kept current by every commit (all writes go
    /// through [`Api::write`]).
    cache: std::sync::Mutex<Cached>,
    /// Signalled when an update of the cached snapshot ends.
    updated: std::sync::Condvar,
    jobs: JobSender,
}

/// Who may register devices and where they may point the host's HTTP client: a management URL
/// is where the host sends requests, with credentials, on a driver's behalf.
#[derive(Debug, Clone)]
pub struct DeviceRegistration {
    /// Networks management URLs must lie in: the same as the runtime's device allow-list
    /// (`--device-network`), checked at registration as at every call.
    pub networks: Vec<crate::net::IpNet>,
    /// Sockets no device may point at: the host's own listening addresses.
    pub reserved: Vec<std::net::SocketAddr>,
    /// Whether project members may register virtual devices of their own project
    /// (`--device-registration members`); by default only admins register devices.
    pub members: bool,
}

impl DeviceRegistration {
    /// The rules that match the runtime's device allow-list: the networks and reserved
    /// sockets every `device-api` call is checked against, so registration refuses what calls
    /// would.
    pub fn for_policy(policy: &crate::runtime::DevicePolicy, members: bool) -> Self {
        Self {
            networks: policy.allowed_networks.clone(),
            reserved: policy.reserved.clone(),
            members,
        }
    }
}

impl Default for DeviceRegistration {
    fn default() -> Self {
        Self::for_policy(&crate::runtime::DevicePolicy::default(), false)
    }
}

/// What a write produced: the batch to commit, the load balancers that now have a job, and
/// the answer.
pub struct Outcome<T> {
    pub batch: Batch,
    pub jobs: Vec<String>,
    pub value: T,
}

impl<T> Outcome<T> {
    pub fn new(batch: Batch, value: T) -> Self {
        Self {
            batch,
            jobs: Vec::new(),
            value,
        }
    }

    pub fn with_job(mut self, lb_id: &str) -> Self {
        self.jobs.push(lb_id.to_owned());
        self
    }
}

impl Api {
    pub fn new(
        store: Arc<dyn Store>,
        drivers: Arc<Drivers>,
        auth: Auth,
        default_provider: Option<String>,
        jobs: JobSender,
    ) -> Self {
        Self {
            store,
            drivers,
            auth,
            default_provider,
            provisioner: None,
            traffic: Default::default(),
            audit: None,
            registration: DeviceRegistration::default(),
            writes: tokio::sync::Mutex::new(()),
            flush_before_ack: true,
            cache: std::sync::Mutex::new(Cached::Missing),
            updated: std::sync::Condvar::new(),
            jobs,
        }
    }

    /// Serves the audit log under `/v2/admin/audit`.
    /// Sets who may register devices and where they may point.
    pub fn with_device_registration(mut self, registration: DeviceRegistration) -> Self {
        self.registration = registration;
        self
    }

    pub fn with_audit(mut self, audit: Arc<crate::audit::AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Answers writes without waiting for the disk: for measuring what durability costs only
    /// (an acknowledged write may be lost in a crash).
    pub fn acknowledge_before_flush(mut self) -> Self {
        self.flush_before_ack = false;
        self
    }

    /// Lets drivers spawn devices through `provisioner`.
    pub fn with_provisioner(mut self, provisioner: Arc<dyn crate::provision::Provisioner>) -> Self {
        self.provisioner = Some(provisioner);
        self
    }

    /// The current snapshot: the cached one, or one loaded from the store. While a writer
    /// brings the cached one up to date, waits for it (microseconds) rather than loading
    /// every record again.
    fn snapshot(&self) -> ApiResult<Arc<Snapshot>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            match &*cache {
                Cached::Ready(snapshot) => return Ok(snapshot.clone()),
                Cached::Updating => {
                    cache = self.updated.wait(cache).unwrap_or_else(|e| e.into_inner());
                }
                Cached::Missing => break,
            }
        }
        let snapshot = Arc::new(Snapshot::load(&*self.store)?);
        *cache = Cached::Ready(snapshot.clone());
        Ok(snapshot)
    }

    /// Takes the cached snapshot out to update it in place; readers wait until the update
    /// ends (however it ends: the guard ends it when dropped).
    fn begin_update(&self) -> Update<'_> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let taken = match std::mem::replace(&mut *cache, Cached::Updating) {
            Cached::Ready(snapshot) => Some(snapshot),
            Cached::Missing | Cached::Updating => None,
        };
        Update {
            api: self,
            taken,
            ended: false,
        }
    }

    /// Runs `read` on a snapshot of the store, off the async threads.
    pub async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Api, &Snapshot) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let api = self.clone();
        tokio::task::spawn_blocking(move || {
            let snapshot = api.snapshot()?;
            read(&api, &snapshot)
        })
        .await
        .map_err(ApiError::internal)?
    }

    /// Runs a small `read` (one object and its view) where the request is: on the async
    /// thread when the snapshot is in memory, saving the hop to the blocking pool and back
    /// (a third of a `GET` of one load balancer); in the blocking pool when the snapshot must
    /// be loaded from the store first.
    pub async fn read_one<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Api, &Snapshot) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        let cached = match &*self.cache.lock().unwrap_or_else(|e| e.into_inner()) {
            Cached::Ready(snapshot) => Some(snapshot.clone()),
            Cached::Missing | Cached::Updating => None,
        };
        match cached {
            Some(snapshot) => read(self, &snapshot),
            None => self.read(read).await,
        }
    }

    /// Runs `write` under the write lock on a fresh snapshot, commits what it returns, makes it
    /// durable, and wakes the worker for the jobs it created.
    pub async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        write: impl FnOnce(&Api, &Snapshot) -> ApiResult<Outcome<T>> + Send + 'static,
    ) -> ApiResult<T> {
        let api = self.clone();
        let outcome = {
            let _lock = self.writes.lock().await;
            tokio::task::spawn_blocking(move || {
                let snapshot = api.snapshot()?;
                let outcome = write(&api, &snapshot)?;
                if outcome.batch.is_empty() {
                    return Ok(outcome);
                }
                if let Err(error) = outcome.batch.commit(&*api.store) {
                    api.begin_update().finish(None);
                    return Err(error.into());
                }
                // Readers keep the snapshot they hold; the cache moves on. Taken out of the
                // cache, it is usually updated in place rather than copied (with shared
                // records, a copy is of the changed kinds' pointers).
                drop(snapshot);
                let mut update = api.begin_update();
                let next = update.taken.take().map_or_else(
                    || Snapshot::load(&*api.store).ok().map(Arc::new),
                    |mut next| {
                        Arc::make_mut(&mut next)
                            .apply(outcome.batch.writes())
                            .ok()
                            .map(|()| next)
                    },
                );
                update.finish(next);
                Ok::<_, ApiError>(outcome)
            })
            .await
            .map_err(ApiError::internal)??
        };
        // Durable before acknowledged; concurrent writers share the flush.
        if self.flush_before_ack {
            let store = self.store.clone();
            tokio::task::spawn_blocking(move || store.flush())
                .await
                .map_err(ApiError::internal)??;
        }
        for lb in outcome.jobs {
            let _ = self.jobs.send(lb);
        }
        Ok(outcome.value)
    }

    /// Runs a blocking driver call (validate-flavor) off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        tokio::task::spawn_blocking(call)
            .await
            .map_err(ApiError::internal)
    }
}

impl FromRequestParts<Arc<Api>> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        api.auth.context(parts)
    }
}

/// Answers a list request: `items` are the views the caller may see, in id order, built as
/// the listing consumes them; the query's filters, sorting, paging and fields apply to them.
pub(crate) async fn listing(
    api: &Arc<Api>,
    raw_query: Option<String>,
    kind: &'static str,
    url: String,
    items: impl for<'s> FnOnce(&'s Snapshot) -> ApiResult<Views<'s>> + Send + 'static,
) -> ApiResult<Json<Value>> {
    let query = query::ListQuery::parse(raw_query.as_deref())?;
    api.read(move |_, snapshot| query.respond(kind, &url, items(snapshot)?).map(Json))
        .await
}

/// An update of the cached snapshot in progress.
struct Update<'a> {
    api: &'a Api,
    /// The snapshot to update, if one was cached.
    taken: Option<Arc<Snapshot>>,
    ended: bool,
}

impl Update<'_> {
    /// Ends the update: the new snapshot, or none (the next reader loads one).
    fn finish(mut self, snapshot: Option<Arc<Snapshot>>) {
        self.end(snapshot);
    }

    fn end(&mut self, snapshot: Option<Arc<Snapshot>>) {
        self.ended = true;
        *self.api.cache.lock().unwrap_or_else(|e| e.into_inner()) = match snapshot {
            Some(snapshot) => Cached::Ready(snapshot),
            None => Cached::Missing,
        };
        self.api.updated.notify_all();
    }
}

impl Drop for Update<'_> {
    fn drop(&mut self) {
        if !self.ended {
            self.end(None);
        }
    }
}

/// The cached snapshot.
enum Cached {
    /// None yet, or dropped after a failure: the next reader loads one.
    Missing,
    Ready(Arc<Snapshot>),
    /// A writer is bringing it up to date.
    Updating,
}

/// Views of a listing, made one at a time.
pub(crate) type Views<'s> = Box<dyn Iterator<Item = Value> + 's>;

/// `http://host:port` of this request, for links.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub fn router(api: Arc<Api>) -> Router {
    let lbaas = Router::new()
        .merge(loadbalancers::routes())
        .merge(listeners::routes())
        .merge(pools::routes())
        .merge(members::routes())
        .merge(healthmonitors::routes())
        .merge(flavors::routes());
    // Neutron's networks and subnets sit beside Octavia's routes: clients without Keystone
    // look them up at the same endpoint, under whichever version prefix they discovered.
    let v2 = Router::new()
        .route("/", get(version))
        .nest("/lbaas", lbaas)
        .nest(
            "/admin",
            admin::routes()
                .merge(security::routes())
                .merge(drivers::routes()),
        )
        .merge(neutron::routes());
    Router::new()
        .route("/", get(versions))
        .route("/healthz", get(healthz))
        .nest("/v2", v2.clone())
        .nest("/v2.0", v2)
        .fallback(not_found)
        .with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The resource could not be found.")
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

fn version_entry(base: &str, id: &str, path: &str, status: &str) -> Value {
    json!({
        "id": id,
        "status": status,
        "updated": "2024-01-01T00:00:00Z",
        "links": [{ "href": format!("{base}/{path}/"), "rel": "self" }],
    })
}

/// `GET /`: Octavia's version list. `v2.0` is the path, `v2.x` the current microversion line.
async fn versions(headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let base = base_url(&headers);
    (
        StatusCode::OK,
        Json(json!({
            "versions": [
                version_entry(&base, "v2.0", "v2", "SUPPORTED"),
                version_entry(&base, "v2.29", "v2", "CURRENT"),
            ]
        })),
    )
}

/// `GET /v2` and `GET /v2.0`: the current version alone.
async fn version(State(_api): State<Arc<Api>>, headers: HeaderMap) -> Json<Value> {
    let base = base_url(&headers);
    Json(json!({ "version": version_entry(&base, "v2.29", "v2", "CURRENT") }))
}
