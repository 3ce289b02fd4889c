//! The load-balancer API: Octavia's v2 API (so openstacksdk and the `openstack loadbalancer`
//! CLI work unchanged), the admin extensions under `/v2/admin/`, and the read-only subset of
//! Neutron's API the CLI needs to resolve subnets.
//!
//! This layer authenticates, maps requests to the control plane's reads and writes, and maps
//! their answers and errors to HTTP; what a write does and when it commits is the control
//! plane's ([`ControlPlane::write`]).

#![deny(unsafe_code)]

mod admin;
mod amphorae;
pub mod auth;
mod availability_zones;
mod body;
mod caller;
mod dashboard;
mod drivers;
pub mod edge;
pub mod error;
mod flavors;
mod healthmonitors;
pub mod keystone;
mod l7policies;
mod listeners;
mod loadbalancers;
mod members;
pub mod metrics;
pub mod neutron;
mod pools;
mod query;
mod quotas;
mod secrets;
mod security;
mod views;

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};
use lbaas_control::{Change, ControlPlane, Snapshot};
use lbaas_core::audit::AuditTrail;
use serde_json::{Value, json};

use crate::edge::Base;
use lbaas_control::{model, store};

pub use auth::Auth;
pub use caller::{Context, Policy};
pub use error::{ApiError, ApiResult};

/// What the handlers share: the control plane they call, how callers are authenticated, and
/// the audit trail admins read.
pub struct Api {
    pub plane: Arc<ControlPlane>,
    pub auth: Auth,
    /// Which roles count ([`Policy`]).
    pub policy: Policy,
    /// The drivers' audit trail, when the host keeps one.
    pub audit: Option<Arc<dyn AuditTrail>>,
    /// What every request passes before routing ([`edge`]).
    pub edge: Arc<edge::Edge>,
}

impl std::ops::Deref for Api {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        &self.plane
    }
}

impl Api {
    /// An API for a host whose address is not known yet: `Host` may only be `127.0.0.1:0`
    /// (handler tests send none); [`Api::with_edge`] gives the real one.
    pub fn new(plane: Arc<ControlPlane>, auth: Auth) -> Self {
        let edge = edge::Edge::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
        Self {
            plane,
            auth,
            policy: Policy::default(),
            audit: None,
            edge: Arc::new(edge),
        }
        .with_edge_of(|edge| edge)
    }

    /// Who the host is to its clients (listen address, public URL).
    pub fn with_edge(self, edge: edge::Edge) -> Self {
        self.with_edge_of(|_| edge)
    }

    fn with_edge_of(mut self, edge: impl FnOnce(edge::Edge) -> edge::Edge) -> Self {
        let noauth = matches!(self.auth, Auth::None);
        self.edge = Arc::new(edge((*self.edge).clone()).noauth(noauth));
        self
    }

    /// Honours the roles of `policy`.
    pub fn with_policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The caller holding `token` (the dashboard's session), under the host's policy: as if
    /// it came in `X-Auth-Token`. Under noauth, the default project's admin.
    pub async fn token_caller(&self, token: &str) -> ApiResult<Context> {
        let mut ctx = self.auth.token_context(token).await?;
        ctx.policy = self.policy;
        Ok(ctx)
    }

    /// Serves the audit trail under `/v2/admin/audit`.
    pub fn with_audit(mut self, audit: Arc<dyn AuditTrail>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// [`ControlPlane::read`], answering API errors.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&ControlPlane, &Snapshot) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        self.plane.read(read).await
    }

    /// [`ControlPlane::read_one`], answering API errors.
    pub async fn read_one<T: Send + 'static>(
        &self,
        read: impl FnOnce(&ControlPlane, &Snapshot) -> ApiResult<T> + Send + 'static,
    ) -> ApiResult<T> {
        self.plane.read_one(read).await
    }

    /// [`ControlPlane::write`], answering API errors.
    pub async fn write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&ControlPlane, &Snapshot) -> ApiResult<Change<T>> + Send + 'static,
    ) -> ApiResult<T> {
        self.plane.write(write).await
    }

    /// The certificate references a request makes (`refs`, or the rule that refused its
    /// fields), resolved with the caller's rights. Before the write lock, never inside it: a
    /// bundle's key derivation holds no other write.
    pub async fn resolve_tls(
        &self,
        ctx: &Context,
        refs: Result<lbaas_control::octavia::certificates::TlsRefs, lbaas_control::Error>,
        parents: lbaas_control::octavia::tree::Parents,
    ) -> ApiResult<lbaas_control::octavia::certificates::Resolved> {
        Ok(self.plane.resolve_tls(ctx.clone(), refs?, parents).await?)
    }

    /// Runs a blocking driver call (validate-flavor) off the async threads.
    pub async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce() -> T + Send + 'static,
    ) -> ApiResult<T> {
        Ok(self.plane.blocking(call).await?)
    }
}

impl FromRequestParts<Arc<Api>> for Context {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        api: &Arc<Api>,
    ) -> Result<Self, Self::Rejection> {
        let mut ctx = api.auth.context(parts).await?;
        ctx.policy = api.policy;
        if ctx.has_api_role() {
            Ok(ctx)
        } else {
            Err(ApiError::forbidden())
        }
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

/// Views of a listing, made one at a time.
pub(crate) type Views<'s> = Box<dyn Iterator<Item = Value> + 's>;

pub fn router(api: Arc<Api>) -> Router {
    let lbaas = Router::new()
        .merge(loadbalancers::routes())
        .merge(listeners::routes())
        .merge(pools::routes())
        .merge(members::routes())
        .merge(healthmonitors::routes())
        .merge(l7policies::routes())
        .merge(availability_zones::routes())
        .merge(flavors::routes())
        .merge(quotas::routes());
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
    let app = Router::new()
        .route("/", get(versions))
        .route("/healthz", get(healthz))
        .merge(metrics::routes())
        .merge(dashboard::routes())
        .merge(secrets::routes())
        .nest("/v2/octavia", amphorae::routes())
        .nest("/v2", v2.clone())
        .nest("/v2.0", v2)
        .fallback(not_found);
    let edge = api.edge.clone();
    let counted = api.metrics().clone();
    metrics::instrument(app, edge, counted).with_state(api)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "The resource could not be found.")
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// Octavia's API versions this host serves, oldest first, with the day each was released and
/// what it added. Clients enable features by the last one listed, so every feature up to it is
/// served: implemented, or answered 501 naming the option where no driver implements it
/// (TLS, HSTS, ALPN, monitor host headers, additional VIPs), as Octavia answers for an option a
/// provider lacks. Amphorae belong to Octavia's own provider, which this host has none of: its
/// amphora API lists none.
const VERSIONS: [(&str, &str); 27] = [
    ("v2.0", "2016-12-11"),
    ("v2.1", "2018-04-20"),
    ("v2.2", "2018-07-31"),
    ("v2.3", "2018-12-18"),
    ("v2.4", "2018-12-19"),  // amphora statistics
    ("v2.5", "2019-01-21"),  // tags
    ("v2.6", "2019-01-25"),  // flavors
    ("v2.7", "2018-01-25"),  // amphora configuration update
    ("v2.8", "2019-02-12"),  // TLS client authentication (501)
    ("v2.9", "2019-03-04"),  // redirect HTTP codes
    ("v2.10", "2019-03-05"), // monitor host header (501)
    ("v2.11", "2019-06-24"), // additive batch member update
    ("v2.12", "2019-09-11"), // VIP access lists
    ("v2.13", "2019-09-13"), // SOURCE_IP_PORT
    ("v2.14", "2019-11-10"), // availability zones
    ("v2.15", "2020-03-10"), // TLS ciphers (501)
    ("v2.16", "2020-03-15"), // HTTP and TCP monitors of UDP pools
    ("v2.17", "2020-04-29"), // listener TLS versions (501)
    ("v2.18", "2020-04-29"), // pool TLS versions (501)
    ("v2.19", "2020-05-12"), // L7 policy and rule quotas
    ("v2.20", "2020-08-02"), // listener ALPN (501)
    ("v2.21", "2020-09-03"), // amphora delete
    ("v2.22", "2020-09-04"), // PROXYV2 pools
    ("v2.23", "2020-09-07"), // SCTP
    ("v2.24", "2020-10-15"), // pool ALPN (501)
    ("v2.25", "2021-10-02"), // PROMETHEUS listeners
    ("v2.26", "2022-08-29"), // additional VIPs (501)
];

fn version_entry(base: &str, (id, day): (&str, &str), status: &str) -> Value {
    json!({
        "id": id,
        "status": status,
        "updated": format!("{day}T00:00:00Z"),
        "links": [{ "href": format!("{base}/v2/"), "rel": "self" }],
    })
}

/// `GET /`: the versions, the last one `CURRENT`, as Octavia lists them.
async fn versions(Base(base): Base) -> (StatusCode, Json<Value>) {
    let last = VERSIONS.len() - 1;
    let versions: Vec<Value> = VERSIONS
        .iter()
        .enumerate()
        .map(|(i, version)| {
            let status = if i == last { "CURRENT" } else { "SUPPORTED" };
            version_entry(&base, *version, status)
        })
        .collect();
    (StatusCode::OK, Json(json!({ "versions": versions })))
}

/// `GET /v2` and `GET /v2.0`: the current version alone.
async fn version(Base(base): Base) -> Json<Value> {
    let current = VERSIONS[VERSIONS.len() - 1];
    Json(json!({ "version": version_entry(&base, current, "CURRENT") }))
}
