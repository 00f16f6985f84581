//! The worker's own Prometheus metrics (`WORKER_METRICS_BIND`, off when empty): how long jobs
//! run and how they end, per queue. Queue depths and backlogs are on the api's `/metrics`.
//! The same address answers `/healthz` (the process is up) and `/readyz` (Postgres, which
//! holds all the work, answers within two seconds; 503 otherwise).

use std::sync::OnceLock;
use std::time::Instant;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounter, Registry, TextEncoder};

struct WorkerMetrics {
    /// Metrics named `pbg_…` ([`gateway_domain::METRICS_PREFIX`]).
    registry: Registry,
    /// The standard process metrics, unprefixed.
    process: Registry,
    duration: HistogramVec,
}

fn metrics() -> &'static WorkerMetrics {
    static M: OnceLock<WorkerMetrics> = OnceLock::new();
    M.get_or_init(|| {
        let registry = Registry::new_custom(Some(gateway_domain::METRICS_PREFIX.into()), None)
            .expect("metrics prefix");
        let process = Registry::new();
        process
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
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
        WorkerMetrics {
            registry,
            process,
            duration,
        }
    })
}

/// Records one job run that started at `started`.
pub fn observe(queue: &str, outcome: &str, started: Instant) {
    crate::activity::count(queue, outcome);
    metrics()
        .duration
        .with_label_values(&[queue, outcome])
        .observe(started.elapsed().as_secs_f64());
}

fn render() -> String {
    // Read at each scrape: every SQL statement this process sent since it started.
    let statements = IntCounter::new(
        "sql_statements_total",
        "SQL statements this worker process sent to Postgres since it started",
    )
    .expect("metric");
    statements.inc_by(gateway_domain::db::statements_total());
    let read = Registry::new_custom(Some(gateway_domain::METRICS_PREFIX.into()), None)
        .expect("metrics prefix");
    read.register(Box::new(statements)).expect("register");
    let mut families = metrics().registry.gather();
    families.extend(read.gather());
    families.extend(metrics().process.gather());
    let mut buf = Vec::new();
    let _ = TextEncoder::new().encode(&families, &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

/// `/readyz`: Postgres answers within two seconds.
async fn readyz(pool: gateway_domain::db::DbPool) -> axum::response::Response {
    use axum::response::IntoResponse;
    use diesel_async::RunQueryDsl;
    let check = async {
        let mut c = pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut c)
            .await
            .map_err(|e| e.to_string())
    };
    let ok = matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), check).await,
        Ok(Ok(_))
    );
    let status = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({"postgres": if ok { "ok" } else { "unreachable" }});
    (status, axum::Json(body)).into_response()
}

pub async fn serve(bind: String, pool: gateway_domain::db::DbPool) {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(|| async { render() }))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(move || readyz(pool.clone())));
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
