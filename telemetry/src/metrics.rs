//! The host's Prometheus metrics: what happened (counters and histograms, kept here and
//! updated where it happens) and what is (gauges, read from the records at each scrape by the
//! API, which owns them).
//!
//! A [`Metrics`] is one control plane's: the host builds one and hands a clone to the audit
//! writer, the driver runtime, the control plane and the API. A clone shares every counter
//! (prometheus-client's metrics are shared handles), so there is no process-wide registry and
//! two control planes in one process never see each other's counts.
//!
//! Names follow Prometheus' conventions: an `lbaas_` prefix, base units (seconds), `_total`
//! on counters (added by the encoder). Label values are bounded sets: route templates, never
//! raw paths; driver names and versions, which the runtime has checked to be short labels of
//! a few safe characters before a driver is loaded (and which the encoder escapes anyway).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// An API request: its route template (`/v2/lbaas/loadbalancers/{id}`), method and status.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The request's method, one of a fixed set.
    pub method: String,
    /// The route template it matched.
    pub route: String,
    /// The status answered.
    pub status: u16,
}

/// An API route, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The request's method, one of a fixed set.
    pub method: String,
    /// The route template it matched.
    pub route: String,
}

/// How something ended: a job (`succeeded`, `deleted`, `failed`), a placement (`placed`,
/// `spawn`, `no_capacity`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// How it ended.
    pub outcome: &'static str,
}

/// A call into a driver: which version, which export, and how it ended (`ok`: it answered,
/// if only with an error of its own; `failed`: it trapped or was stopped by a limit).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    /// The driver's name.
    pub driver: String,
    /// Its version.
    pub version: String,
    /// The export called (`select`, `translate`, `apply`, …).
    pub export: &'static str,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// A driver version's export, for latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExportLabels {
    /// The driver's name.
    pub driver: String,
    /// Its version.
    pub version: String,
    /// The export called.
    pub export: &'static str,
}

/// A limit a driver version ran into (`deadline`, `memory`, `stack`, `output`, `import`,
/// `device_policy`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    /// The driver's name.
    pub driver: String,
    /// Its version.
    pub version: String,
    /// The limit it ran into.
    pub limit: &'static str,
}

/// A driver version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    /// The driver's name.
    pub driver: String,
    /// Its version.
    pub version: String,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latencies() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

fn job_durations() -> Histogram {
    // 10 ms to about 5 minutes.
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

fn decision_times() -> Histogram {
    // 50 µs to about 1.6 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// Every event metric of one control plane. Cloning shares the counters.
#[derive(Clone)]
pub struct Metrics {
    /// API requests answered.
    pub http_requests: Family<RequestLabels, Counter>,
    /// Time to answer an API request.
    pub http_request_duration: Histograms<RouteLabels>,
    /// Jobs being worked on.
    pub jobs_running: Gauge,
    /// Job runs finished, by outcome.
    pub jobs: Family<OutcomeLabels, Counter>,
    /// Time a job run took, by outcome.
    pub job_duration: Histograms<OutcomeLabels>,
    /// Placement decisions, by outcome.
    pub placements: Family<OutcomeLabels, Counter>,
    /// Time to decide a placement.
    pub placement_decision: Histogram,
    /// Calls into driver components.
    pub driver_calls: Family<CallLabels, Counter>,
    /// Time of a call into a driver component.
    pub driver_call_duration: Histograms<ExportLabels>,
    /// Driver calls the driver answered with an error of its own.
    pub driver_refusals: Family<ExportLabels, Counter>,
    /// Driver calls stopped by a sandbox limit.
    pub driver_limit_hits: Family<LimitLabels, Counter>,
    /// Driver versions quarantined.
    pub driver_quarantines: Family<VersionLabels, Counter>,
    /// Audit events waiting for the writer.
    pub audit_queue: Gauge,
    /// Time to write one chunk of audit records.
    pub audit_write_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            http_requests: Family::default(),
            http_request_duration: Family::new_with_constructor(latencies),
            jobs_running: Gauge::default(),
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(job_durations),
            placements: Family::default(),
            placement_decision: decision_times(),
            driver_calls: Family::default(),
            driver_call_duration: Family::new_with_constructor(latencies),
            driver_refusals: Family::default(),
            driver_limit_hits: Family::default(),
            driver_quarantines: Family::default(),
            audit_queue: Gauge::default(),
            audit_write_duration: latencies(),
        }
    }
}

impl Metrics {
    /// Registers every metric (shared, not copied) in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "lbaas_http_requests",
            "API requests answered, by route template, method and status",
            self.http_requests.clone(),
        );
        registry.register(
            "lbaas_http_request_duration_seconds",
            "Time to answer an API request",
            self.http_request_duration.clone(),
        );
        registry.register(
            "lbaas_jobs_running",
            "Jobs this host is working on",
            self.jobs_running.clone(),
        );
        registry.register(
            "lbaas_jobs",
            "Job runs finished on this host, by outcome (succeeded, deleted, failed)",
            self.jobs.clone(),
        );
        registry.register(
            "lbaas_job_duration_seconds",
            "Time a job run took on this host, by outcome",
            self.job_duration.clone(),
        );
        registry.register(
            "lbaas_placements",
            "Placement decisions, by outcome (placed, spawn, no_capacity)",
            self.placements.clone(),
        );
        registry.register(
            "lbaas_placement_decision_seconds",
            "Time to decide a placement, the drivers' select calls included",
            self.placement_decision.clone(),
        );
        registry.register(
            "lbaas_driver_calls",
            "Calls into driver components, by driver, version, export and outcome (ok, failed)",
            self.driver_calls.clone(),
        );
        registry.register(
            "lbaas_driver_call_duration_seconds",
            "Time of a call into a driver component, instantiation included",
            self.driver_call_duration.clone(),
        );
        registry.register(
            "lbaas_driver_refusals",
            "Driver calls the driver answered with an error of its own (counted as ok calls too)",
            self.driver_refusals.clone(),
        );
        registry.register(
            "lbaas_driver_limit_hits",
            "Driver calls stopped by a sandbox limit (deadline, memory, stack, output, import, device_policy)",
            self.driver_limit_hits.clone(),
        );
        registry.register(
            "lbaas_driver_quarantines",
            "Driver versions quarantined for failing calls in a row",
            self.driver_quarantines.clone(),
        );
        registry.register(
            "lbaas_audit_queue_depth",
            "Audit events waiting for the writer",
            self.audit_queue.clone(),
        );
        registry.register(
            "lbaas_audit_write_duration_seconds",
            "Time to write one chunk of audit records",
            self.audit_write_duration.clone(),
        );
    }

    /// Counts a finished API request.
    /// `method` is one of a fixed set (the API's edge maps any other to `other`) and `route` a
    /// route template, so the label sets stay bounded whatever clients send.
    pub fn request(&self, method: &'static str, route: &str, status: u16, took: Duration) {
        let (method, route) = (method.to_owned(), route.to_owned());
        self.http_request_duration
            .get_or_create(&RouteLabels {
                method: method.clone(),
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.http_requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// Counts a finished driver call.
    pub fn driver_call(
        &self,
        driver: &str,
        version: &str,
        export: &'static str,
        outcome: &'static str,
        took: Duration,
    ) {
        self.driver_call_duration
            .get_or_create(&ExportLabels {
                driver: driver.to_owned(),
                version: version.to_owned(),
                export,
            })
            .observe(took.as_secs_f64());
        self.driver_calls
            .get_or_create(&CallLabels {
                driver: driver.to_owned(),
                version: version.to_owned(),
                export,
                outcome,
            })
            .inc();
    }

    /// Counts a driver's error answer.
    pub fn refusal(&self, driver: &str, version: &str, export: &'static str) {
        self.driver_refusals
            .get_or_create(&ExportLabels {
                driver: driver.to_owned(),
                version: version.to_owned(),
                export,
            })
            .inc();
    }

    /// Counts a sandbox limit a driver version ran into.
    pub fn limit_hit(&self, driver: &str, version: &str, limit: &'static str) {
        self.driver_limit_hits
            .get_or_create(&LimitLabels {
                driver: driver.to_owned(),
                version: version.to_owned(),
                limit,
            })
            .inc();
    }

    /// Counts a quarantine.
    pub fn quarantined(&self, driver: &str, version: &str) {
        self.driver_quarantines
            .get_or_create(&VersionLabels {
                driver: driver.to_owned(),
                version: version.to_owned(),
            })
            .inc();
    }

    /// Counts a placement decision.
    pub fn placement(&self, outcome: &'static str, took: Duration) {
        self.placement_decision.observe(took.as_secs_f64());
        self.placements
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a finished job run.
    pub fn job(&self, outcome: &'static str, took: Duration) {
        self.job_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
        self.jobs.get_or_create(&OutcomeLabels { outcome }).inc();
    }
}
