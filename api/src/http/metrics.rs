//! `GET /metrics`: Prometheus text, built with the `prometheus` crate's types. The request
//! metrics live for the process (`crate::metrics::Metrics`); the gauges derived from Postgres
//! and Redis are read at each scrape into a registry of their own, so a value that cannot be
//! read now is left out rather than shown stale.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use gateway_domain::db::PgConn;
use prometheus::{Gauge, IntCounter, IntGaugeVec, Opts, Registry};

use super::AppState;

pub(super) async fn scrape(State(state): State<AppState>) -> Response {
    let derived = Registry::new();
    let statements = IntCounter::new(
        "sql_statements_total",
        "SQL statements this api process sent to Postgres since it started",
    )
    .expect("valid metric");
    statements.inc_by(gateway_domain::db::statements_total());
    derived
        .register(Box::new(statements))
        .expect("registered once");
    if let Ok(mut c) = state.pool.get().await {
        postgres_gauges(&derived, &mut c).await;
    }
    if let Ok(mut r) = state.redis.get_multiplexed_async_connection().await {
        queue_gauges(&derived, &mut r, &state.config.redis.queue_prefix).await;
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&derived),
    )
        .into_response()
}

/// A gauge family by label, registered in `registry`.
fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

/// The outbox and due-work backlogs and the emails by status, from Postgres.
async fn postgres_gauges(registry: &Registry, c: &mut PgConn) {
    if let Ok(lag) = gateway_domain::outbox::lag_seconds(c).await {
        let g = Gauge::new(
            "outbox_lag_seconds",
            "Age of the oldest due outbox row not yet dispatched to Redis",
        )
        .expect("valid metric");
        g.set(lag);
        registry.register(Box::new(g)).expect("registered once");
    }
    let Ok(pg) = gateway_domain::queues::pg_counts(c).await else {
        return;
    };
    let families = [
        (
            "outbox_waiting",
            "Outbox rows not yet relayed to Redis, by queue",
            "queue",
            &pg.outbox_waiting,
        ),
        (
            "due_work_backlog",
            "Scheduled actions due (on each partner's clock) and not done, by kind",
            "kind",
            &pg.due_backlog,
        ),
        (
            "emails",
            "Emails by delivery status (SENT: delivered, DEAD: gave up)",
            "status",
            &pg.emails,
        ),
    ];
    for (name, help, label, values) in families {
        let g = gauge_vec(registry, name, help, &[label]);
        for (k, n) in values {
            g.with_label_values(&[k.as_str()]).set(*n);
        }
    }
}

/// The jobs in Redis by queue and state, counted from the queue keys.
async fn queue_gauges(
    registry: &Registry,
    r: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) {
    let g = gauge_vec(
        registry,
        "jobs",
        "Jobs in Redis by queue and state (counted from the queue keys)",
        &["queue", "state"],
    );
    for q in gateway_domain::jobs::QUEUES {
        if let Ok(n) = gateway_domain::queues::counts(r, prefix, q).await {
            for (s, v) in [
                ("pending", n.pending),
                ("scheduled", n.scheduled),
                ("running", n.running),
                ("done", n.done),
                ("failed", n.failed),
                ("dead", n.dead),
            ] {
                g.with_label_values(&[q, s]).set(v);
            }
        }
    }
}
