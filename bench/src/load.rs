//! A closed-loop HTTP load generator: `connections` tasks, each with its own keep-alive
//! connection, send GraphQL requests back to back until the deadline. Latencies go into
//! HDR histograms (µs); requests sent during the warm-up are not recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

/// Makes the next request (None: nothing left to send).
pub type NextRequest = Arc<dyn Fn() -> Option<Request> + Send + Sync>;
/// Says whether a response body is a success.
pub type Check = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

pub struct Request {
    pub token: String,
    pub body: Value,
}

pub struct Outcome {
    pub latency: Histogram<u64>,
    /// SQL statements per request, from the api's `x-sql-statements` header.
    pub statements: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    pub fn ms(&self, quantile: f64) -> f64 {
        self.latency.value_at_quantile(quantile) as f64 / 1000.0
    }
}

/// Runs the load. `next` makes each request; `check` says whether a response body is a
/// success (an error message otherwise). Stops at the deadline or when `next` returns None.
pub async fn run(
    url: &str,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    next: NextRequest,
    check: Check,
) -> anyhow::Result<Outcome> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let deadline = measure_from + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()?;
        let (url, next, check) = (url.to_owned(), next.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
                statements: Histogram::new_with_bounds(1, 10_000, 3).expect("histogram"),
                ok: 0,
                errors: 0,
                first_error: None,
                elapsed: Duration::ZERO,
            };
            let mut last = measure_from;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let Some(req) = next() else { break };
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .bearer_auth(&req.token)
                    .json(&req.body)
                    .send()
                    .await;
                let (statements, verdict) = match result {
                    Ok(resp) => {
                        let statements = resp
                            .headers()
                            .get("x-sql-statements")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        let verdict = match resp.json::<Value>().await {
                            Ok(body) => check(&body),
                            Err(e) => Err(format!("unreadable response: {e}")),
                        };
                        (statements, verdict)
                    }
                    Err(e) => (None, Err(format!("request failed: {e}"))),
                };
                let took = sent.elapsed();
                if sent < measure_from {
                    continue;
                }
                last = Instant::now();
                match verdict {
                    Ok(()) => {
                        out.ok += 1;
                        let _ = out.latency.record(took.as_micros().max(1) as u64);
                        if let Some(n) = statements {
                            let _ = out.statements.record(n.max(1));
                        }
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                    }
                }
            }
            out.elapsed = last.saturating_duration_since(measure_from);
            out
        }));
    }
    let mut total = Outcome {
        latency: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        statements: Histogram::new_with_bounds(1, 10_000, 3)?,
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let o = t.await?;
        total.latency.add(&o.latency)?;
        total.statements.add(&o.statements)?;
        total.ok += o.ok;
        total.errors += o.errors;
        if total.first_error.is_none() {
            total.first_error = o.first_error;
        }
        total.elapsed = total.elapsed.max(o.elapsed);
    }
    total.elapsed = total.elapsed.max(Duration::from_millis(1));
    Ok(total)
}

/// A GraphQL body is a success when it has data and no errors.
pub fn graphql_ok(body: &Value) -> Result<(), String> {
    match body.get("errors") {
        Some(e) if !e.as_array().is_some_and(|a| a.is_empty()) => Err(e.to_string()),
        _ if body.get("data").is_some_and(|d| !d.is_null()) => Ok(()),
        _ => Err(format!("no data: {body}")),
    }
}
