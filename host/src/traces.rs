//! The host's logs and, when an OTLP endpoint is configured, its traces: the `tracing` spans
//! the host already makes (a `request` per API request, a `job` per job run, `driver.call` and
//! `device.call` inside them) exported over OTLP/HTTP by OpenTelemetry's batch exporter, which
//! runs on a thread of its own and never holds a request up.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Flushes and stops the trace exporter when dropped (at the end of `main`).
pub struct Traces(Option<SdkTracerProvider>);

impl Drop for Traces {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take()
            && let Err(error) = provider.shutdown()
        {
            eprintln!("warning: cannot flush the last traces: {error}");
        }
    }
}

/// Installs the process's subscriber: logs to standard error (filtered by `RUST_LOG`), and
/// with `otlp_endpoint` (a collector's base URL, e.g. `http://127.0.0.1:4318`) every span of
/// the host's own crates exported as traces.
pub fn init(otlp_endpoint: Option<&str>) -> anyhow::Result<Traces> {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        );
    let Some(endpoint) = otlp_endpoint else {
        tracing_subscriber::registry().with(logs).init();
        return Ok(Traces(None));
    };
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot export traces to {endpoint}: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("lbaasd")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build();
    let tracer = provider.tracer("lbaasd");
    // Spans of the host's crates only, at info and above: not the libraries' own.
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(EnvFilter::new(
            "warn,lbaas_api=info,lbaas_control=info,lbaas_runtime=info,lbaas_host=info",
        ));
    tracing_subscriber::registry().with(logs).with(spans).init();
    lbaas_telemetry::traces::exporting();
    Ok(Traces(Some(provider)))
}
