//! Optional trace export (OpenTelemetry): with `OTEL_EXPORTER_OTLP_ENDPOINT` set, every span at
//! info level (a GraphQL request's `request`, a job's `job`) is exported over OTLP/HTTP with JSON
//! bodies to `<endpoint>/v1/traces`, in batches (the standard `OTEL_BSP_*` settings apply).
//! `OTEL_SERVICE_NAME` names the process (default `gateway-api` / `gateway-worker`).
//!
//! The trace context crosses the outbox: a job enqueued inside a request carries the request
//! span's W3C `traceparent` in its payload ([`current_traceparent`], written by
//! `outbox::enqueue_many`), and the worker makes that the parent of the job's span
//! ([`continue_trace`]), so a job shows in the trace of the request that caused it.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Flushes the spans still buffered when dropped (at the end of `main`).
pub struct Guard(SdkTracerProvider);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.shutdown();
    }
}

/// The export pipeline when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: the tracer for the
/// `tracing` layer, and the guard that flushes at exit.
pub(crate) fn pipeline(
    default_service: &str,
) -> Option<(opentelemetry_sdk::trace::SdkTracer, Guard)> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok()?;
    if endpoint.trim().is_empty() {
        return None;
    }
    use opentelemetry_otlp::{Protocol, WithExportConfig};
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpJson)
        .build()
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}: cannot export traces: {e}");
            return None;
        }
    };
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default_service.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build();
    let tracer = provider.tracer("gateway");
    ENABLED.store(true, Ordering::Relaxed);
    Some((tracer, Guard(provider)))
}

/// The W3C `traceparent` of the current span, when traces are exported and a span is current.
pub fn current_traceparent() -> Option<String> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8()
        )
    })
}

/// Makes the span of `traceparent` (a W3C header value) the parent of `span`; a missing or
/// malformed value leaves `span` a root.
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if !ENABLED.load(Ordering::Relaxed) {
        return;
    }
    let Some(sc) = traceparent.and_then(parse_traceparent) else {
        return;
    };
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
}

fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let mut parts = value.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let sc = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    sc.is_valid().then_some(sc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_values_parse_as_w3c_defines_them() {
        let sc =
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-zzf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
