//! What the workers did and who they are, kept in Redis so every api replica shows the same:
//! - processed and failed jobs per queue per minute (`{prefix}:activity:{minute}`, a hash of
//!   `{queue}:processed` / `{queue}:failed`, kept two hours), which each worker process adds
//!   to every few seconds from its own counters;
//! - the worker processes that are up (`{prefix}:processes`, a hash of `{host}:{pid}` → JSON
//!   with host, pid, queues, concurrency, start and last heartbeat), refreshed on the same beat
//!   and removed on a clean stop; one silent for [`GONE_AFTER_SECS`] no longer shows.

use async_graphql::SimpleObject;
use chrono::{DateTime, TimeZone, Utc};
use redis::aio::ConnectionLike;
use serde::{Deserialize, Serialize};

use crate::jobs::QUEUES;

/// A worker process not heard from for this long is not shown (and is forgotten after ten
/// times as long).
pub const GONE_AFTER_SECS: i64 = 30;

/// How long the per-minute counts are kept.
const KEEP_SECS: i64 = 2 * 3600;

fn activity_key(prefix: &str, minute: i64) -> String {
    format!("{prefix}:activity:{minute}")
}

fn processes_key(prefix: &str) -> String {
    format!("{prefix}:processes")
}

/// Adds a process's counts since its last report to the minute `at` falls in:
/// `(queue, processed, failed)`.
pub async fn record<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    at: DateTime<Utc>,
    counts: &[(&str, u64, u64)],
) -> redis::RedisResult<()> {
    let key = activity_key(prefix, at.timestamp() / 60);
    let mut pipe = redis::pipe();
    for (queue, processed, failed) in counts {
        if *processed > 0 {
            pipe.hincr(&key, format!("{queue}:processed"), *processed)
                .ignore();
        }
        if *failed > 0 {
            pipe.hincr(&key, format!("{queue}:failed"), *failed)
                .ignore();
        }
    }
    pipe.expire(&key, KEEP_SECS).ignore();
    pipe.query_async::<()>(c).await
}

/// One minute of one queue (GraphQL `ThroughputPoint`).
#[derive(Debug, Clone, SimpleObject)]
pub struct ThroughputPoint {
    /// The minute's start.
    pub minute: DateTime<Utc>,
    /// Jobs done in that minute.
    pub processed: i64,
    /// Runs that failed in that minute.
    pub failed: i64,
}

/// One queue's last minutes (GraphQL `QueueThroughput`).
#[derive(Debug, Clone, SimpleObject)]
pub struct QueueThroughput {
    /// The queue's name.
    pub queue: String,
    /// Oldest first, one point per minute, the current (partial) minute last.
    pub points: Vec<ThroughputPoint>,
}

/// Every queue's processed and failed jobs per minute over the last `minutes` (1 to 120).
pub async fn throughput<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    now: DateTime<Utc>,
    minutes: i64,
) -> redis::RedisResult<Vec<QueueThroughput>> {
    let minutes = minutes.clamp(1, 120);
    let last = now.timestamp() / 60;
    let range: Vec<i64> = (last - minutes + 1..=last).collect();
    let mut pipe = redis::pipe();
    for m in &range {
        pipe.hgetall(activity_key(prefix, *m));
    }
    let hashes: Vec<std::collections::HashMap<String, i64>> = pipe.query_async(c).await?;
    Ok(QUEUES
        .iter()
        .map(|q| QueueThroughput {
            queue: (*q).to_owned(),
            points: range
                .iter()
                .zip(&hashes)
                .map(|(m, h)| ThroughputPoint {
                    minute: Utc.timestamp_opt(m * 60, 0).single().unwrap_or(now),
                    processed: h.get(&format!("{q}:processed")).copied().unwrap_or(0),
                    failed: h.get(&format!("{q}:failed")).copied().unwrap_or(0),
                })
                .collect(),
        })
        .collect())
}

/// A worker process as operators see it (GraphQL `WorkerProcess`).
#[derive(Debug, Clone, SimpleObject, Serialize, Deserialize)]
pub struct WorkerProcess {
    /// The host the worker runs on.
    pub host: String,
    /// The worker's process id.
    pub pid: i32,
    /// The queues it consumes.
    pub queues: Vec<String>,
    /// Jobs it runs at once per queue (WORKER_CONCURRENCY).
    pub concurrency: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (every few seconds).
    pub last_heartbeat: DateTime<Utc>,
}

impl WorkerProcess {
    fn field(&self) -> String {
        format!("{}:{}", self.host, self.pid)
    }
}

/// Records that `process` is up now.
pub async fn heartbeat<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    process: &WorkerProcess,
) -> redis::RedisResult<()> {
    let json = serde_json::to_string(process).unwrap_or_default();
    redis::cmd("HSET")
        .arg(processes_key(prefix))
        .arg(process.field())
        .arg(json)
        .query_async(c)
        .await
}

/// Removes `process` (a clean stop).
pub async fn leave<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    process: &WorkerProcess,
) -> redis::RedisResult<()> {
    redis::cmd("HDEL")
        .arg(processes_key(prefix))
        .arg(process.field())
        .query_async(c)
        .await
}

/// The worker processes heard from in the last [`GONE_AFTER_SECS`], longest running first;
/// ones silent for ten times as long are forgotten.
pub async fn processes<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    now: DateTime<Utc>,
) -> redis::RedisResult<Vec<WorkerProcess>> {
    let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(processes_key(prefix))
        .query_async(c)
        .await?;
    let mut up = Vec::new();
    for (field, json) in all {
        let Ok(p) = serde_json::from_str::<WorkerProcess>(&json) else {
            continue;
        };
        let silent = (now - p.last_heartbeat).num_seconds();
        if silent > GONE_AFTER_SECS * 10 {
            let _: redis::RedisResult<()> = redis::cmd("HDEL")
                .arg(processes_key(prefix))
                .arg(field)
                .query_async(c)
                .await;
        } else if silent <= GONE_AFTER_SECS {
            up.push(p);
        }
    }
    up.sort_by_key(|p| p.started_at);
    Ok(up)
}
