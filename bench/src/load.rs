//! An HTTP load generator: `connections` tasks, each with its own keep-alive connection, send
//! GraphQL requests until the deadline, either back to back (closed loop: how much the system
//! answers) or at a fixed total rate (open loop: how fast it answers at that load). Latencies
//! go into HDR histograms (µs); requests due during the warm-up are not recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::Value;

/// Makes the next request (None: nothing left to send).
pub type NextRequest = Arc<dyn Fn() -> Option<Request> + Send + Sync>;
/// Says whether a response body (the bytes as received) is a success.
pub type Check = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

/// How requests are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// Each connection sends its next request as soon as the previous answer is in. Measures
    /// capacity; the latency is then mostly queueing (on average connections ÷ throughput).
    Closed,
    /// Requests fall due at this many per second in all, spread evenly over the connections
    /// (request `k` of connection `c` at `(k × connections + c) / rate` s). A request's latency
    /// counts from when it was due, not from when it could be sent: when the system falls
    /// behind, a connection still waiting for an answer sends late, and that wait is counted
    /// (no coordinated omission, as in wrk2).
    Rate(f64),
    /// Like `Rate`, with arrivals a Poisson process of that rate (each connection's gaps drawn
    /// from an exponential distribution): bursts and lulls as independent clients make them.
    Poisson(f64),
}

impl Pace {
    pub fn is_open(&self) -> bool {
        !matches!(self, Pace::Closed)
    }
}

/// One second of an open-loop run: the requests due in it that succeeded and their latency.
pub struct Second {
    pub ok: u64,
    pub latency: Histogram<u64>,
}

impl Second {
    fn new() -> Self {
        Self {
            ok: 0,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
        }
    }
}

pub struct Request {
    pub token: String,
    /// The JSON body, serialized once by the scenario (the load generator's CPU is taken from
    /// the machine it measures).
    pub body: Vec<u8>,
}

impl Request {
    pub fn json(token: String, body: &Value) -> Self {
        Self {
            token,
            body: serde_json::to_vec(body).expect("a JSON value serializes"),
        }
    }
}

pub struct Outcome {
    pub latency: Histogram<u64>,
    /// SQL statements per request, from the api's `x-sql-statements` header.
    pub statements: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub pace: Pace,
    /// Open loop: each measured second by when its requests were due (a backlog that forms
    /// and drains shows as rising then falling latency).
    pub seconds: Vec<Second>,
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
    urls: &[String],
    pace: Pace,
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
    for connection in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .timeout(Duration::from_secs(30))
            .build()?;
        // Connections take turns over the apis.
        let url = reqwest::Url::parse(&urls[connection % urls.len()])?;
        let (next, check) = (next.clone(), check.clone());
        tasks.push(tokio::spawn(async move {
            let mut out = Outcome {
                latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
                statements: Histogram::new_with_bounds(1, 10_000, 3).expect("histogram"),
                ok: 0,
                errors: 0,
                first_error: None,
                elapsed: Duration::ZERO,
                pace,
                seconds: Vec::new(),
            };
            let mut last = measure_from;
            // Poisson: this connection's own arrivals at rate / connections.
            let mut arrival = start;
            for k in 0u64.. {
                let due = match pace {
                    Pace::Closed => Instant::now(),
                    Pace::Rate(rate) => {
                        let slot = k * connections as u64 + connection as u64;
                        start + Duration::from_secs_f64(slot as f64 / rate)
                    }
                    Pace::Poisson(rate) => {
                        let u: f64 = rand::Rng::random_range(&mut rand::rng(), f64::EPSILON..1.0);
                        arrival += Duration::from_secs_f64(-u.ln() * connections as f64 / rate);
                        arrival
                    }
                };
                if due >= deadline {
                    break;
                }
                if pace.is_open() {
                    tokio::time::sleep_until(due.into()).await;
                }
                let Some(req) = next() else { break };
                let result = client
                    .post(url.clone())
                    .bearer_auth(&req.token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(req.body)
                    .send()
                    .await;
                let (statements, verdict) = match result {
                    Ok(resp) => {
                        let statements = resp
                            .headers()
                            .get("x-sql-statements")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok());
                        let verdict = match resp.bytes().await {
                            Ok(body) => check(&body),
                            Err(e) => Err(format!("unreadable response: {e}")),
                        };
                        (statements, verdict)
                    }
                    Err(e) => (None, Err(format!("request failed: {e}"))),
                };
                let took = due.elapsed();
                if due < measure_from {
                    continue;
                }
                last = Instant::now();
                match verdict {
                    Ok(()) => {
                        out.ok += 1;
                        let _ = out.latency.record(took.as_micros().max(1) as u64);
                        if pace.is_open() {
                            let i = due.duration_since(measure_from).as_secs() as usize;
                            while out.seconds.len() <= i {
                                out.seconds.push(Second::new());
                            }
                            out.seconds[i].ok += 1;
                            let _ = out.seconds[i]
                                .latency
                                .record(took.as_micros().max(1) as u64);
                        }
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
        pace,
        seconds: Vec::new(),
    };
    for t in tasks {
        let o = t.await?;
        for (i, s) in o.seconds.iter().enumerate() {
            while total.seconds.len() <= i {
                total.seconds.push(Second::new());
            }
            total.seconds[i].ok += s.ok;
            total.seconds[i].latency.add(&s.latency)?;
        }
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

/// A GraphQL body is a success when it has data and no errors. It is checked without
/// building the document (serde skips what it does not keep): the load generator's CPU is
/// taken from the machine it measures, and the whole body is still read and must be JSON.
pub fn graphql_ok(body: &[u8]) -> Result<(), String> {
    graphql_data::<serde::de::IgnoredAny>(body).map(|_| ())
}

/// Like [`graphql_ok`], and gives the data as `T`, read in the same pass.
pub fn graphql_data<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    #[derive(serde::Deserialize)]
    struct Envelope<T> {
        data: Option<T>,
        #[serde(default)]
        errors: Option<Vec<serde::de::IgnoredAny>>,
    }
    let envelope: Envelope<T> =
        serde_json::from_slice(body).map_err(|e| format!("unreadable response: {e}"))?;
    let has_errors = envelope.errors.is_some_and(|e| !e.is_empty());
    match (has_errors, envelope.data) {
        (false, Some(data)) => Ok(data),
        _ => Err(match serde_json::from_slice::<Value>(body) {
            Ok(v) if has_errors => v["errors"].to_string(),
            Ok(v) => format!("no data: {v}"),
            Err(e) => format!("unreadable response: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::graphql_ok;

    #[test]
    fn a_graphql_body_succeeds_with_data_and_no_errors() {
        assert!(graphql_ok(br#"{"data":{"partner":{"id":"1","list":[1,{"a":null}]}}}"#).is_ok());
        assert!(graphql_ok(br#"{"data":{"x":1},"errors":[]}"#).is_ok());
        let e = graphql_ok(br#"{"data":null,"errors":[{"message":"boom"}]}"#).unwrap_err();
        assert!(e.contains("boom"), "{e}");
        let e = graphql_ok(br#"{"data":{"x":1},"errors":[{"message":"partial"}]}"#).unwrap_err();
        assert!(e.contains("partial"), "{e}");
        assert!(graphql_ok(br#"{"data":null}"#)
            .unwrap_err()
            .starts_with("no data"));
        assert!(graphql_ok(b"{}").unwrap_err().starts_with("no data"));
        assert!(graphql_ok(br#"{"data":{"x":"#).is_err());
    }
}
