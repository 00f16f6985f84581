//! Rate limits of GraphQL requests, counted in Redis so every api replica shares them.
//!
//! Fixed windows of RATE_LIMIT_WINDOW_SECS, one counter per bucket and window
//! (`{QUEUE_PREFIX}:rl:{bucket}:{who}:{window}`, one pipelined round trip per request):
//! - `caller`: a signed-in caller's requests (RATE_LIMIT_CALLER);
//! - `address`: requests without a caller, per client address (RATE_LIMIT_ADDRESS);
//! - `sensitive`: the mutations abuse aims at (`enrollPartner`, `addUser`,
//!   `addPaymentMethod`, `verifyPrimaryContactEmail`), per caller or, without one, per
//!   address (RATE_LIMIT_SENSITIVE), each root field counting once.
//!
//! When Redis cannot answer (down, or slower than [`REDIS_BUDGET`]) requests pass:
//! availability over strictness. `rate_limit_store_unavailable_total` counts them, and a
//! failed Redis is left alone for a second before the next try.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{OperationType, Selection};
use async_graphql::BatchRequest;
use axum::http::HeaderMap;
use gateway_domain::config::HttpConfig;
use gateway_domain::permissions::Principal;
use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// The mutations with a bucket of their own.
pub const SENSITIVE: &[&str] = &[
    "enrollPartner",
    "addUser",
    "addPaymentMethod",
    "verifyPrimaryContactEmail",
];

/// How long a request waits for Redis before passing unchecked.
pub const REDIS_BUDGET: Duration = Duration::from_millis(250);

pub struct Limiter {
    client: gateway_domain::redis_conn::RedisClient,
    prefix: String,
    window: u64,
    caller: u64,
    address: u64,
    sensitive: u64,
    trust_forwarded_for: bool,
    conn: Mutex<Option<gateway_domain::redis_conn::RedisConn>>,
    /// After a failure, Redis is not tried again before this instant.
    resting_until: Mutex<Option<Instant>>,
    limited: IntCounterVec,
    unavailable: IntCounter,
}

/// A request over a limit: wait this many seconds.
pub struct Limited {
    pub retry_after: u64,
    pub bucket: &'static str,
}

impl Limiter {
    pub fn new(
        client: gateway_domain::redis_conn::RedisClient,
        prefix: &str,
        http: &HttpConfig,
        registry: &Registry,
    ) -> Self {
        let limited = IntCounterVec::new(
            Opts::new(
                "rate_limited_requests_total",
                "GraphQL requests refused with RATE_LIMITED, by bucket",
            ),
            &["bucket"],
        )
        .expect("metric");
        let unavailable = IntCounter::new(
            "rate_limit_store_unavailable_total",
            "GraphQL requests let through unchecked because Redis could not count them",
        )
        .expect("metric");
        registry
            .register(Box::new(limited.clone()))
            .expect("register");
        registry
            .register(Box::new(unavailable.clone()))
            .expect("register");
        Self {
            client,
            prefix: prefix.to_owned(),
            window: http.rate_limit_window_secs.max(1),
            caller: http.rate_limit_caller,
            address: http.rate_limit_address,
            sensitive: http.rate_limit_sensitive,
            trust_forwarded_for: http.trust_forwarded_for,
            conn: Mutex::new(None),
            resting_until: Mutex::new(None),
            limited,
            unavailable,
        }
    }

    /// The client's address: the peer's, or with HTTP_TRUST_FORWARDED_FOR the last address
    /// of `X-Forwarded-For` (the one the trusted proxy in front of us added).
    pub fn client_address(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
        if self.trust_forwarded_for {
            if let Some(last) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|a| a.parse::<std::net::IpAddr>().is_ok())
            {
                return last.to_owned();
            }
        }
        peer.map(|p| p.ip().to_string())
            .unwrap_or_else(|| "unknown".into())
    }

    /// Counts the request against its buckets; `Err` when one is over its limit.
    pub async fn check(
        &self,
        principal: Option<&Principal>,
        address: &str,
        batch: &mut BatchRequest,
    ) -> Result<(), Limited> {
        let who = match principal {
            Some(p) => format!("u:{}", subject(p)),
            None => format!("a:{address}"),
        };
        let mut buckets: Vec<(&'static str, String, u64, u64)> = Vec::new();
        match principal {
            Some(_) if self.caller > 0 => buckets.push(("caller", who.clone(), self.caller, 1)),
            None if self.address > 0 => buckets.push(("address", who.clone(), self.address, 1)),
            _ => {}
        }
        let sensitive = sensitive_fields(batch);
        if sensitive > 0 && self.sensitive > 0 {
            buckets.push(("sensitive", who, self.sensitive, sensitive));
        }
        if buckets.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let window = now / self.window;
        let retry_after = self.window - now % self.window;
        let mut pipe = redis::pipe();
        for (bucket, who, _, cost) in &buckets {
            let key = format!("{}:rl:{bucket}:{who}:{window}", self.prefix);
            pipe.cmd("INCRBY").arg(&key).arg(*cost);
            pipe.cmd("EXPIRE").arg(&key).arg(self.window * 2).ignore();
        }
        let Some(counts) = self.run(pipe).await else {
            self.unavailable.inc();
            return Ok(());
        };
        for ((bucket, _, limit, _), count) in buckets.iter().zip(counts) {
            if count > *limit {
                self.limited.with_label_values(&[bucket]).inc();
                return Err(Limited {
                    retry_after,
                    bucket,
                });
            }
        }
        Ok(())
    }

    /// Runs the pipeline within [`REDIS_BUDGET`]; `None` when Redis cannot answer.
    async fn run(&self, pipe: redis::Pipeline) -> Option<Vec<u64>> {
        if self
            .resting_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| Instant::now() < t)
        {
            return None;
        }
        let attempt = async {
            let cached = self.conn.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let mut conn = match cached {
                Some(c) => c,
                None => {
                    let c = self.client.connection().await?;
                    *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                    c
                }
            };
            pipe.query_async::<Vec<u64>>(&mut conn).await
        };
        match tokio::time::timeout(REDIS_BUDGET, attempt).await {
            Ok(Ok(counts)) => Some(counts),
            failed => {
                if let Ok(Err(e)) = &failed {
                    tracing::warn!(error = %e, "rate limits: Redis unavailable, letting requests through");
                }
                *self.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
                *self.resting_until.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some(Instant::now() + Duration::from_secs(1));
                None
            }
        }
    }
}

/// The token subject: one bucket per identity, whatever it is to us.
fn subject(p: &Principal) -> &str {
    match p {
        Principal::User { subject, .. }
        | Principal::Operator { subject, .. }
        | Principal::Identity { subject, .. } => subject,
    }
}

/// How many root fields of the batch's mutations are [`SENSITIVE`] (each alias counts, and
/// fragments at the root are looked into).
fn sensitive_fields(batch: &mut BatchRequest) -> u64 {
    use async_graphql::parser::types::{ExecutableDocument, SelectionSet};
    fn walk(doc: &ExecutableDocument, set: &SelectionSet, depth: usize) -> u64 {
        if depth > 8 {
            return 0; // fragment cycles are refused by validation anyway
        }
        let mut n = 0;
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if SENSITIVE.contains(&f.node.name.node.as_str()) {
                        n += 1;
                    }
                }
                Selection::InlineFragment(i) => {
                    n += walk(doc, &i.node.selection_set.node, depth + 1)
                }
                Selection::FragmentSpread(s) => {
                    if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                        n += walk(doc, &f.node.selection_set.node, depth + 1);
                    }
                }
            }
        }
        n
    }
    let requests: Vec<&mut async_graphql::Request> = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(list) => list.iter_mut().collect(),
    };
    let mut n = 0;
    for request in requests {
        let Ok(doc) = request.parsed_query() else {
            continue;
        };
        for (_, op) in doc.operations.iter() {
            if op.node.ty == OperationType::Mutation {
                n += walk(doc, &op.node.selection_set.node, 0);
            }
        }
    }
    n
}
