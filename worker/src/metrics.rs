//! The worker's own Prometheus metrics (`WORKER_METRICS_BIND`, off when empty): how long jobs
//! run and how they end, per queue. Queue depths and backlogs are on the api's `/metrics`.

use std::sync::OnceLock;
use std::time::Instant;

use prometheus::{Encoder, HistogramOpts, HistogramVec, Registry, TextEncoder};

struct WorkerMetrics {
    registry: Registry,
    duration: HistogramVec,
}

fn metrics() -> &'static WorkerMetrics {
    static M: OnceLock<WorkerMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let registry = Registry::new();
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "job_duration_seconds",
                "Job run time by queue and outcome (ok, retry, dead, error)",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["queue", "outcome"],
        )
        .expect("metric");
        registry
            .register(Box::new(duration.clone()))
            .expect("register");
        WorkerMetrics { registry, duration }
    })
}

/// Records one job run that started at `started`.
pub fn observe(queue: &str, outcome: &str, started: Instant) {
    metrics()
        .duration
        .with_label_values(&[queue, outcome])
        .observe(started.elapsed().as_secs_f64());
}

fn render() -> String {
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&metrics().registry.gather(), &mut buf);
    let mut text = String::from_utf8(buf).unwrap_or_default();
    text.push_str(&format!(
        "# HELP sql_statements_total SQL statements this worker process sent to Postgres since it started\n\
         # TYPE sql_statements_total counter\nsql_statements_total {}\n",
        gateway_domain::db::statements_total()
    ));
    text
}

pub async fn serve(bind: String) {
    let app = axum::Router::new().route("/metrics", axum::routing::get(|| async { render() }));
    match tokio::net::TcpListener::bind(&bind).await {
        Ok(listener) => {
            tracing::info!(%bind, "worker metrics listening");
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "worker metrics server stopped");
            }
        }
        Err(e) => tracing::error!(%bind, error = %e, "cannot bind WORKER_METRICS_BIND"),
    }
}
