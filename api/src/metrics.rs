//! `GET /metrics`: the host's Prometheus metrics, in Prometheus' text format. The event
//! metrics are kept where things happen, in the control plane's [`Metrics`]; the state gauges (load
//! balancers by status, devices by health, load against capacity, jobs waiting) are read from
//! the records at each scrape. Admins read them through the API; `lbaasd serve
//! --metrics-listen` serves them without authentication on an address of their own, for a
//! Prometheus server on the operators' network.
//!
//! Every request is counted and timed here too, by route template, and runs in a `request`
//! span that a trace exporter turns into the root of the request's trace.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lbaas_telemetry::Metrics;
use lbaas_telemetry::prometheus_client::encoding::EncodeLabelSet;
use lbaas_telemetry::prometheus_client::encoding::prometheus_text;
use lbaas_telemetry::prometheus_client::metrics::family::Family;
use lbaas_telemetry::prometheus_client::metrics::gauge::Gauge;
use lbaas_telemetry::prometheus_client::registry::Registry;
use tracing::Instrument as _;

use crate::model::Job;
use crate::store::StoreExt as _;
use crate::{Api, ApiResult, Context};

pub(crate) fn routes() -> Router<Arc<Api>> {
    Router::new().route("/metrics", get(scrape))
}

/// The metrics alone, unauthenticated, behind an edge of their own (the `Host` must name the
/// metrics listener): for `--metrics-listen`.
pub fn router(api: Arc<Api>, edge: crate::edge::Edge) -> Router {
    Router::new()
        .route("/metrics", get(exposition))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(edge),
            crate::edge::guard,
        ))
        .with_state(api)
}

async fn scrape(State(api): State<Arc<Api>>, ctx: Context) -> ApiResult<Response> {
    ctx.require_admin()?;
    Ok(exposition(State(api)).await)
}

async fn exposition(State(api): State<Arc<Api>>) -> Response {
    let mut registry = Registry::default();
    api.metrics().register(&mut registry);
    match state(&api).await {
        Ok(state) => state.register(&mut registry),
        Err(error) => {
            tracing::warn!(error = %error.message, "cannot read the records for the metrics")
        }
    }
    let mut text = String::new();
    if let Err(error) = prometheus_text::encode(&mut text, &registry) {
        tracing::error!(%error, "cannot encode the metrics");
    }
    ([(CONTENT_TYPE, prometheus_text::CONTENT_TYPE)], text).into_response()
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    provisioning_status: String,
    operating_status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HealthLabels {
    health: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: String,
    driver: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    loadbalancer: String,
    listener: String,
}

/// The state gauges of one scrape.
#[derive(Default)]
struct StateGauges {
    load_balancers: Family<StatusLabels, Gauge>,
    certificate_expiry: Family<ListenerLabels, Gauge>,
    devices: Family<HealthLabels, Gauge>,
    device_load: Family<DeviceLabels, Gauge>,
    device_capacity: Family<DeviceLabels, Gauge>,
    jobs_queued: Gauge,
}

impl StateGauges {
    fn register(self, registry: &mut Registry) {
        registry.register(
            "lbaas_load_balancers",
            "Load balancers, by provisioning and operating status",
            self.load_balancers,
        );
        registry.register(
            "lbaas_tls_certificate_expiry_timestamp_seconds",
            "When a TLS listener's first certificate to expire stops being valid (Unix time)",
            self.certificate_expiry,
        );
        registry.register(
            "lbaas_devices",
            "Devices, by health (up, unreachable, disabled; unknown: not polled by this host)",
            self.devices,
        );
        registry.register(
            "lbaas_device_load_balancers",
            "Load balancers placed on each device",
            self.device_load,
        );
        registry.register(
            "lbaas_device_capacity",
            "Load balancers each device may take",
            self.device_capacity,
        );
        registry.register(
            "lbaas_jobs_queued",
            "Jobs stored and not finished, on every host",
            self.jobs_queued,
        );
    }
}

/// A status's name as the API shows it.
fn status_name(status: &impl serde::Serialize) -> String {
    match serde_json::to_value(status) {
        Ok(serde_json::Value::String(name)) => name,
        _ => "UNKNOWN".to_owned(),
    }
}

async fn state(api: &Arc<Api>) -> ApiResult<StateGauges> {
    let gauges = api
        .read(|plane, snapshot| {
            let gauges = StateGauges::default();
            let mut by_status: BTreeMap<(String, String), i64> = BTreeMap::new();
            for lb in snapshot.loadbalancers.iter() {
                let key = (
                    status_name(&lb.common.provisioning_status),
                    status_name(&lb.common.operating_status),
                );
                *by_status.entry(key).or_default() += 1;
            }
            for ((provisioning_status, operating_status), count) in by_status {
                gauges
                    .load_balancers
                    .get_or_create(&StatusLabels {
                        provisioning_status,
                        operating_status,
                    })
                    .set(count);
            }
            for expiry in plane.certificate_expiries(snapshot)? {
                gauges
                    .certificate_expiry
                    .get_or_create(&ListenerLabels {
                        loadbalancer: expiry.loadbalancer_id,
                        listener: expiry.listener_id,
                    })
                    .set(expiry.not_after);
            }
            // Every health shows, at zero when no device has it, so alerts see the series.
            for health in ["up", "unreachable", "disabled", "unknown"] {
                gauges
                    .devices
                    .get_or_create(&HealthLabels { health })
                    .set(0);
            }
            for device in snapshot.devices.iter() {
                let health = if !device.enabled {
                    "disabled"
                } else {
                    match plane.device_health.of(&device.id) {
                        None => "unknown",
                        Some(None) => "up",
                        Some(Some(_)) => "unreachable",
                    }
                };
                gauges.devices.get_or_create(&HealthLabels { health }).inc();
                let labels = DeviceLabels {
                    device: device.id.clone(),
                    driver: device.driver.clone(),
                };
                gauges
                    .device_load
                    .get_or_create(&labels)
                    .set(snapshot.load_of(&device.id) as i64);
                gauges
                    .device_capacity
                    .get_or_create(&labels)
                    .set(i64::from(device.capacity));
            }
            Ok(gauges)
        })
        .await?;
    let store = api.store.clone();
    let queued = api
        .blocking(move || store.all::<Job>().map(|jobs| jobs.len()))
        .await?
        .unwrap_or_default();
    gauges.jobs_queued.set(queued as i64);
    Ok(gauges)
}

/// `router` behind the API's layers, outermost first: every request counted and timed in
/// `metrics` by route template, method and status inside a `request` span; a handler's panic
/// answered as Octavia's `500` fault; the [edge](crate::edge)'s checks before routing. Public
/// so that the benchmarks can measure what they cost on their own.
pub fn instrument<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    edge: Arc<crate::edge::Edge>,
    metrics: Metrics,
) -> Router<S> {
    // A handler's panic is answered inside the route layer, so its 500 is counted under the
    // route that panicked; the outer catch is for the layers around routing.
    router
        .route_layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::edge::panic_fault,
        ))
        .route_layer(axum::middleware::from_fn(mark_route))
        .layer(axum::middleware::from_fn_with_state(
            edge,
            crate::edge::guard,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            crate::edge::panic_fault,
        ))
        // In an `Arc`: the middleware's state is cloned for every request, and `Metrics` is a
        // handful of shared families (a clone per family would be an atomic count each).
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(metrics),
            observe,
        ))
}

/// The route template a request matched, passed out to [`observe`] on the response.
#[derive(Clone)]
struct Route(MatchedPath);

/// Marks the response with the route the request matched (a route layer: it runs after
/// routing, where the template is known).
async fn mark_route(matched: Option<MatchedPath>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(Route(matched));
    }
    response
}

/// Counts and times every request by route template, method and status, inside a `request`
/// span (the root of its trace).
async fn observe(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    // A fixed set: a made-up method is `other`, never a label value or span name of its own.
    let method = crate::edge::method_label(request.method());
    // The span is the root of the request's trace. When no trace is exported it is kept at
    // `debug`: at `info` the log subscriber formats its fields for every request, which cost
    // a fifth of the API's read throughput (xtask/benchmarks-notes.md).
    let span = if lbaas_telemetry::traces::is_exporting() {
        tracing::info_span!(
            "request",
            otel.kind = "server",
            http.request.method = method,
            url.path = request.uri().path(),
            http.route = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::debug_span!(
            "request",
            http.request.method = method,
            url.path = request.uri().path(),
            http.route = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        )
    };
    let started = Instant::now();
    let response = next.run(request).instrument(span.clone()).await;
    let route = response
        .extensions()
        .get::<Route>()
        .map_or("unmatched", |route| route.0.as_str());
    let status = response.status().as_u16();
    lbaas_telemetry::traces::rename(&span, format_args!("{method} {route}"));
    span.record("http.route", route);
    span.record("http.response.status_code", status);
    metrics.request(method, route, status, started.elapsed());
    response
}
