//! What the host tells operators about itself, apart from the records and the audit log:
//!
//! - [`metrics`]: the event metrics (counters and histograms), one [`Metrics`] per control
//!   plane. Whoever does the work holds a clone and records into it; the API registers it
//!   with the state gauges at each scrape. Several control planes in one process (the tests
//!   run many) count apart, so a test asserts exact deltas.
//! - [`traces`]: the W3C trace context a job keeps from the request that made it.
//!
//! Nothing here knows a record, a driver or HTTP: labels are strings and `&'static str` sets.

#![warn(missing_docs)]

pub mod metrics;
pub mod traces;

pub use metrics::Metrics;
pub use prometheus_client;
