//! Log output for both binaries: `LOG_FORMAT=text` (the default, for people) or `json` (one
//! JSON object per line, with the fields of the spans it happened in: the api's request id,
//! operation, partner and user; the worker's queue and job), filtered by `RUST_LOG`. Read from
//! the environment before the configuration, so configuration errors come out in the chosen
//! format too. Nothing secret is ever a field: tokens, keys, card data and verification links
//! are not logged (`tests/tests/production.rs` checks a whole run's logs).

/// Sets up logging to stderr, and trace export when OTEL_EXPORTER_OTLP_ENDPOINT is set
/// (`crate::telemetry`; keep the guard until the process ends, it flushes the last spans).
/// `default_filter` applies when `RUST_LOG` is unset; `service` names the process in traces.
pub fn init(default_filter: &str, service: &str) -> Option<crate::telemetry::Guard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_filter.into());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match std::env::var("LOG_FORMAT").as_deref() {
        Ok("json") => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        _ => fmt.boxed(),
    };
    let (otel, guard) = match crate::telemetry::pipeline(service) {
        Some((tracer, guard)) => (
            Some(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
            ),
            Some(guard),
        ),
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .init();
    guard
}
