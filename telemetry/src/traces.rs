//! A job's trace continues the request's that made it: the request's span context is kept in
//! the job record as a W3C `traceparent`, and the job's span takes it as its parent, on
//! whichever host runs the job. Without a trace exporter there is no context to keep, and
//! both are no-ops.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

const TRACEPARENT: &str = "traceparent";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Called once a trace exporter is installed: from then on trace context is worth keeping.
pub fn exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// Whether traces are exported, so a job's trace context is worth looking up.
pub fn is_exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The current span's context as a `traceparent`, when a trace is being recorded.
pub fn traceparent() -> Option<String> {
    if !is_exporting() {
        return None;
    }
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Makes `span` a child of the span `traceparent` names (kept by [`traceparent`]). A missing
/// or malformed value leaves `span` the root of a trace of its own.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        // Fails only when no trace layer is installed: then there is nothing to continue.
        let _ = span.set_parent(context);
    }
}

/// Names `span` in its trace once its name is known (a request's route, after routing).
/// `otel.name` recorded late is lost once the span's context was taken (by [`traceparent`]):
/// the exported span is renamed directly.
pub fn rename(span: &tracing::Span, name: std::fmt::Arguments<'_>) {
    if !is_exporting() {
        return;
    }
    let context = span.context();
    let exported = context.span();
    if exported.span_context().is_valid() {
        exported.update_name(name.to_string());
    }
}
