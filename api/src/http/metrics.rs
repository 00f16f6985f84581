//! `GET /metrics`: Prometheus text, built with the `prometheus` crate's types. The request
//! metrics live for the process (`crate::metrics::Metrics`); the gauges derived from Postgres
//! and Redis are read at most once per METRICS_CACHE_MS for every scraper together
//! ([`GaugeCache`]); a value that could not be read is left out rather than shown stale.
//!
//! `/metrics` is private: served on METRICS_BIND (loopback by default), and on API_BIND only
//! with `Authorization: Bearer <METRICS_TOKEN>`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_domain::queues::{PgCounts, QueueCounts};
use prometheus::{Gauge, IntCounter, IntGaugeVec, Opts, Registry};

use super::{error_response, AppState};

/// What the gauges show, as last read.
#[derive(Default)]
struct Snapshot {
    lag: Option<f64>,
    pg: Option<PgCounts>,
    jobs: Vec<QueueCounts>,
}

/// The last [`Snapshot`] and when it was read. Scrapes that find it older than
/// METRICS_CACHE_MS wait for one of them to read it again (the lock is held while reading).
#[derive(Default)]
pub struct GaugeCache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Snapshot>)>>,
}

impl GaugeCache {
    async fn get(&self, state: &AppState) -> Arc<Snapshot> {
        let mut last = self.last.lock().await;
        if let Some((at, snap)) = last.as_ref() {
            if at.elapsed() < state.config.http.metrics_cache {
                return snap.clone();
            }
        }
        let mut snap = Snapshot::default();
        if let Ok(mut c) = state.pool.get().await {
            snap.lag = gateway_domain::outbox::lag_seconds(&mut c).await.ok();
            snap.pg = gateway_domain::queues::pg_counts(&mut c).await.ok();
        }
        if let Ok(mut r) = state.redis.connection().await {
            for q in gateway_domain::jobs::QUEUES {
                if let Ok(n) =
                    gateway_domain::queues::counts(&mut r, &state.config.redis.queue_prefix, q)
                        .await
                {
                    snap.jobs.push(n);
                }
            }
        }
        let snap = Arc::new(snap);
        *last = Some((Instant::now(), snap.clone()));
        snap
    }
}

/// `/metrics` on METRICS_BIND.
pub(crate) async fn scrape(State(state): State<AppState>) -> Response {
    let derived = crate::metrics::Metrics::scrape_registry();
    let statements = IntCounter::new(
        "sql_statements_total",
        "SQL statements this api process sent to Postgres since it started",
    )
    .expect("valid metric");
    statements.inc_by(gateway_domain::db::statements_total());
    derived
        .register(Box::new(statements))
        .expect("registered once");
    pool_gauges(&derived, &state.pool);
    let snap = state.gauges.get(&state).await;
    postgres_gauges(&derived, &snap);
    queue_gauges(&derived, &snap.jobs);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&derived),
    )
        .into_response()
}

/// `/metrics` on API_BIND: only with METRICS_TOKEN as the bearer token.
pub(super) async fn scrape_public(state: State<AppState>, headers: HeaderMap) -> Response {
    let Some(expected) = state.config.http.metrics_token.as_deref() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "metrics are served on METRICS_BIND (or here with METRICS_TOKEN)",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let same: bool = subtle::ConstantTimeEq::ct_eq(given.as_bytes(), expected.as_bytes()).into();
    if !same {
        let mut resp = error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "send Authorization: Bearer <METRICS_TOKEN>",
        );
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    scrape(state).await
}

/// The api's Postgres pool now: connections in use and idle, and checkouts waiting for one.
fn pool_gauges(registry: &Registry, pool: &gateway_domain::db::DbPool) {
    let status = pool.status();
    let conns = gauge_vec(
        registry,
        "db_pool_connections",
        "Connections of the api's Postgres pool, by state (in_use, idle)",
        &["state"],
    );
    let idle = status.available as i64;
    conns
        .with_label_values(&["in_use"])
        .set(status.size as i64 - idle);
    conns.with_label_values(&["idle"]).set(idle);
    let waiting = prometheus::IntGauge::new(
        "db_pool_waiting",
        "Requests waiting for a connection of the api's Postgres pool",
    )
    .expect("valid metric");
    waiting.set(status.waiting as i64);
    registry
        .register(Box::new(waiting))
        .expect("registered once");
}

/// A gauge family by label, registered in `registry`.
fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    registry
        .register(Box::new(g.clone()))
        .expect("registered once");
    g
}

/// The outbox and due-work backlogs and the emails PENDING and DEAD, from Postgres.
fn postgres_gauges(registry: &Registry, snap: &Snapshot) {
    if let Some(lag) = snap.lag {
        let g = Gauge::new(
            "outbox_lag_seconds",
            "Age of the oldest due outbox row not yet dispatched to Redis",
        )
        .expect("valid metric");
        g.set(lag);
        registry.register(Box::new(g)).expect("registered once");
    }
    let Some(pg) = &snap.pg else {
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
            "Emails waiting to be delivered (PENDING) or given up on (DEAD)",
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
fn queue_gauges(registry: &Registry, jobs: &[QueueCounts]) {
    let g = gauge_vec(
        registry,
        "jobs",
        "Jobs in Redis by queue and state (counted from the queue keys)",
        &["queue", "state"],
    );
    for n in jobs {
        for (s, v) in [
            ("pending", n.pending),
            ("scheduled", n.scheduled),
            ("running", n.running),
            ("done", n.done),
            ("failed", n.failed),
            ("dead", n.dead),
        ] {
            g.with_label_values(&[n.queue.as_str(), s]).set(v);
        }
    }
}
