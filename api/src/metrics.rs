//! Prometheus metrics of the api, served as text on `/metrics` (`http::metrics`).

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// Operation names that may become label values: the first this many that ran without
/// errors. Any other name is counted as `other`, so no client can add series at will.
pub const MAX_KNOWN_OPERATIONS: usize = 100;

#[derive(Clone)]
pub struct Metrics {
    /// Metrics named `pbg_…` ([`gateway_domain::METRICS_PREFIX`]).
    registry: Registry,
    /// The standard process metrics (CPU, resident memory, open files), unprefixed.
    process: Registry,
    pub requests: IntCounterVec,
    /// HTTP responses of the public listener by status code.
    pub responses: IntCounterVec,
    pub latency: HistogramVec,
    pub statements: Histogram,
    /// Operation names seen running without errors ([`MAX_KNOWN_OPERATIONS`] at most).
    known: std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some(gateway_domain::METRICS_PREFIX.into()), None)
            .expect("metrics prefix");
        let process = Registry::new();
        process
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("register");
        let responses = IntCounterVec::new(
            Opts::new(
                "http_responses_total",
                "HTTP responses of the api's public listener, by status code",
            ),
            &["status"],
        )
        .expect("metric");
        registry
            .register(Box::new(responses.clone()))
            .expect("register");
        let requests = IntCounterVec::new(
            Opts::new(
                "graphql_requests_total",
                "GraphQL requests by operation name and outcome (ok, error)",
            ),
            &["operation", "outcome"],
        )
        .expect("metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "graphql_request_duration_seconds",
                "GraphQL request latency by operation name",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["operation"],
        )
        .expect("metric");
        let statements = Histogram::with_opts(
            HistogramOpts::new(
                "graphql_request_sql_statements",
                "SQL statements sent to Postgres per GraphQL HTTP request (batches included)",
            )
            .buckets(vec![
                1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0, 50.0,
            ]),
        )
        .expect("metric");
        registry
            .register(Box::new(statements.clone()))
            .expect("register");
        registry
            .register(Box::new(requests.clone()))
            .expect("register");
        registry
            .register(Box::new(latency.clone()))
            .expect("register");
        Self {
            registry,
            process,
            requests,
            responses,
            latency,
            statements,
            known: Default::default(),
        }
    }

    /// The `operation` label of a request named `name` (as [`Self::operation_label`] made it)
    /// that ran `ok` (without errors) or not: a name the server knows, one it learns now (it ran
    /// without errors and there is room), or `other`.
    pub fn label(&self, name: &str, ok: bool) -> String {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if known.contains(name) {
            return name.to_owned();
        }
        if ok && name != "invalid" && known.len() < MAX_KNOWN_OPERATIONS {
            known.insert(name.to_owned());
            return name.to_owned();
        }
        "other".to_owned()
    }

    /// Where other parts of the api register their metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Operation names are client-chosen: keep the label set bounded and printable.
    pub fn operation_label(name: Option<&str>) -> String {
        match name {
            Some(n)
                if !n.is_empty()
                    && n.len() <= 64
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                n.to_owned()
            }
            Some(_) => "invalid".into(),
            None => "anonymous".into(),
        }
    }

    /// A registry for the values read at a scrape, with the same prefix.
    pub fn scrape_registry() -> Registry {
        Registry::new_custom(Some(gateway_domain::METRICS_PREFIX.into()), None)
            .expect("metrics prefix")
    }

    /// The exposition text of these metrics and of `derived` (read for this scrape).
    pub fn render(&self, derived: &Registry) -> String {
        let mut families = self.registry.gather();
        families.extend(derived.gather());
        families.extend(self.process.gather());
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&families, &mut buf)
            .expect("encode metrics");
        String::from_utf8(buf).expect("utf8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
