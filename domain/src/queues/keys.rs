//! The queues' Redis side, read from the keys apalis-redis 1.0 uses (its own metrics are
//! broken: STACK.md trap 6), and the retention that trims finished jobs in small steps
//! (trap 13).
//!
//! Keys of queue `q` (`{QUEUE_PREFIX}.{name}`): `q:active` (list, waiting), `q:scheduled`
//! (sorted set by due time; retries of failed jobs wait here too), `q:inflight:{worker}` (sets,
//! running), `q:workers` (sorted set of worker names), `q:done` and `q:dead` (sets), `q:data`
//! (hash id → payload) and `q:meta:{id}` (hash: status, attempts, result, done_at).

use redis::aio::ConnectionLike;
use serde::Serialize;

use crate::jobs::queue_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobState {
    /// Waiting in Redis for a worker.
    Pending,
    /// Waiting for a later time in Redis.
    Scheduled,
    /// Held by a worker now.
    Running,
    /// Finished (kept until retention trims it).
    Done,
    /// Failed; waiting for its automatic retry.
    Failed,
    /// Gave up (permanent error or out of attempts): an operator retries or discards it.
    Dead,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueCounts {
    pub queue: String,
    pub pending: i64,
    pub scheduled: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub dead: i64,
}

// A job as operators see it (GraphQL `Job`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, async_graphql::SimpleObject)]
#[graphql(name = "Job")]
pub struct JobInfo {
    pub id: String,
    pub queue: String,
    pub state: JobState,
    /// The payload (IDs only), shortened.
    pub payload: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Due (scheduled, failed) or finished (done, dead) at, in Unix seconds.
    pub at: Option<i64>,
}

pub struct Keys {
    pub base: String,
}

impl Keys {
    pub fn new(prefix: &str, queue: &str) -> Self {
        Self {
            base: queue_name(prefix, queue),
        }
    }
    pub fn active(&self) -> String {
        format!("{}:active", self.base)
    }
    pub fn scheduled(&self) -> String {
        format!("{}:scheduled", self.base)
    }
    pub fn workers(&self) -> String {
        format!("{}:workers", self.base)
    }
    pub fn inflight(&self, worker: &str) -> String {
        format!("{}:inflight:{worker}", self.base)
    }
    pub fn done(&self) -> String {
        format!("{}:done", self.base)
    }
    pub fn dead(&self) -> String {
        format!("{}:dead", self.base)
    }
    pub fn data(&self) -> String {
        format!("{}:data", self.base)
    }
    pub fn meta(&self, id: &str) -> String {
        format!("{}:meta:{id}", self.base)
    }
    pub fn signal(&self) -> String {
        format!("{}:signal", self.base)
    }
}

async fn workers<C: ConnectionLike>(c: &mut C, k: &Keys) -> redis::RedisResult<Vec<String>> {
    redis::cmd("ZRANGE")
        .arg(k.workers())
        .arg(0)
        .arg(-1)
        .query_async(c)
        .await
}

/// Exact counts per state. Scheduled jobs are told apart from failed ones (waiting for a
/// retry) by their status; Redis holds a bounded window, so this stays cheap.
pub async fn counts<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
) -> redis::RedisResult<QueueCounts> {
    let k = Keys::new(prefix, queue);
    let (pending, done, dead): (i64, i64, i64) = redis::pipe()
        .llen(k.active())
        .scard(k.done())
        .scard(k.dead())
        .query_async(c)
        .await?;
    let mut running = 0;
    for w in workers(c, &k).await? {
        let n: i64 = redis::cmd("SCARD")
            .arg(k.inflight(&w))
            .query_async(c)
            .await?;
        running += n;
    }
    let scheduled_ids: Vec<String> = redis::cmd("ZRANGE")
        .arg(k.scheduled())
        .arg(0)
        .arg(-1)
        .query_async(c)
        .await?;
    let mut failed = 0;
    if !scheduled_ids.is_empty() {
        let mut p = redis::pipe();
        for id in &scheduled_ids {
            p.hget(k.meta(id), "status");
        }
        let statuses: Vec<Option<String>> = p.query_async(c).await?;
        failed = statuses
            .iter()
            .filter(|s| matches!(s.as_deref(), Some("Failed")))
            .count() as i64;
    }
    Ok(QueueCounts {
        queue: queue.to_owned(),
        pending,
        scheduled: scheduled_ids.len() as i64 - failed,
        running,
        done,
        failed,
        dead,
    })
}

/// When the oldest job waiting in the queue's list was relayed (`queued_at`, unix seconds,
/// which the relay writes into each payload), looking at both ends of the list.
pub async fn oldest_queued_at<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
) -> redis::RedisResult<Option<f64>> {
    let k = Keys::new(prefix, queue);
    let (first, last): (Option<String>, Option<String>) = redis::pipe()
        .lindex(k.active(), 0)
        .lindex(k.active(), -1)
        .query_async(c)
        .await?;
    let mut oldest: Option<f64> = None;
    for id in [first, last].into_iter().flatten() {
        let data: Option<Vec<u8>> = redis::cmd("HGET")
            .arg(k.data())
            .arg(&id)
            .query_async(c)
            .await?;
        let at = data
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d).ok())
            .and_then(|v| v["queued_at"].as_f64());
        if let Some(at) = at {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
    }
    Ok(oldest)
}

/// Jobs of one queue in one state (at most `limit`).
pub async fn list<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    state: JobState,
    limit: usize,
) -> redis::RedisResult<Vec<JobInfo>> {
    let k = Keys::new(prefix, queue);
    let limit = limit.clamp(1, 500);
    let mut out = Vec::new();
    for id in ids_in(c, &k, state, limit).await? {
        if let Some(job) = info(c, &k, queue, state, id).await? {
            out.push(job);
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The ids of the jobs that may be in `state` (scheduled and failed jobs share a set; the
/// caller tells them apart by status).
async fn ids_in<C: ConnectionLike>(
    c: &mut C,
    k: &Keys,
    state: JobState,
    limit: usize,
) -> redis::RedisResult<Vec<String>> {
    Ok(match state {
        JobState::Pending => {
            redis::cmd("LRANGE")
                .arg(k.active())
                .arg(0)
                .arg(limit as i64 - 1)
                .query_async(c)
                .await?
        }
        JobState::Scheduled | JobState::Failed => {
            redis::cmd("ZRANGE")
                .arg(k.scheduled())
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await?
        }
        JobState::Running => {
            let mut all = Vec::new();
            for w in workers(c, k).await? {
                let ids: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(k.inflight(&w))
                    .query_async(c)
                    .await?;
                all.extend(ids);
            }
            all
        }
        JobState::Done => {
            redis::cmd("SRANDMEMBER")
                .arg(k.done())
                .arg(limit)
                .query_async(c)
                .await?
        }
        JobState::Dead => redis::cmd("SMEMBERS").arg(k.dead()).query_async(c).await?,
    })
}

/// One job as operators see it; None when it is not in `state` after all.
async fn info<C: ConnectionLike>(
    c: &mut C,
    k: &Keys,
    queue: &str,
    state: JobState,
    id: String,
) -> redis::RedisResult<Option<JobInfo>> {
    let (payload, meta): (Option<Vec<u8>>, std::collections::HashMap<String, String>) =
        redis::pipe()
            .hget(k.data(), &id)
            .hgetall(k.meta(&id))
            .query_async(c)
            .await?;
    let status = meta.get("status").map(String::as_str);
    let this = match state {
        JobState::Scheduled if status == Some("Failed") => return Ok(None),
        JobState::Failed if status != Some("Failed") => return Ok(None),
        s => s,
    };
    let mut payload = payload
        .map(|p| String::from_utf8_lossy(&p).into_owned())
        .unwrap_or_default();
    if payload.chars().count() > 500 {
        payload = payload.chars().take(500).collect::<String>() + "…";
    }
    let at = if matches!(state, JobState::Scheduled | JobState::Failed) {
        redis::cmd("ZSCORE")
            .arg(k.scheduled())
            .arg(&id)
            .query_async::<Option<f64>>(c)
            .await?
            .map(|s| s as i64)
    } else {
        meta.get("done_at").and_then(|d| d.parse().ok())
    };
    Ok(Some(JobInfo {
        id,
        queue: queue.to_owned(),
        state: this,
        payload,
        attempts: meta
            .get("attempts")
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        last_error: meta
            .get("result")
            .filter(|r| !r.is_empty() && status != Some("Done"))
            .cloned(),
        at,
    }))
}

/// The payload of a job (for operators' retry logic), if Redis still has it.
pub async fn payload<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    id: &str,
) -> redis::RedisResult<Option<Vec<u8>>> {
    redis::cmd("HGET")
        .arg(Keys::new(prefix, queue).data())
        .arg(id)
        .query_async(c)
        .await
}

/// Removes a job wherever it waits (dead, scheduled, active) with its data. Returns whether
/// it was found.
pub async fn discard<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    id: &str,
) -> redis::RedisResult<bool> {
    let k = Keys::new(prefix, queue);
    let (a, b, d, e): (i64, i64, i64, i64) = redis::pipe()
        .srem(k.dead(), id)
        .zrem(k.scheduled(), id)
        .lrem(k.active(), 0, id)
        .hdel(k.data(), id)
        .query_async(c)
        .await?;
    let _: i64 = redis::cmd("DEL").arg(k.meta(id)).query_async(c).await?;
    Ok(a + b + d + e > 0)
}

const TRIM: &str = r#"
-- KEYS[1] done set, KEYS[2] data hash; ARGV[1] meta key prefix, ARGV[2] cutoff (unix s),
-- ARGV[3] cursor, ARGV[4] batch. Removes finished jobs older than the cutoff.
local scan = redis.call('SSCAN', KEYS[1], ARGV[3], 'COUNT', ARGV[4])
local removed = 0
for _, id in ipairs(scan[2]) do
  local meta = ARGV[1] .. id
  local done_at = tonumber(redis.call('HGET', meta, 'done_at') or '0')
  if done_at <= tonumber(ARGV[2]) then
    redis.call('SREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', meta)
    removed = removed + 1
  end
end
return {scan[1], removed}
"#;

/// One step of retention: looks at up to `batch` finished jobs from `cursor` and removes those
/// finished before `cutoff` (unix seconds). Returns the next cursor ("0" when a pass is over)
/// and how many were removed. Small steps keep Redis responsive (no blocking vacuum).
pub async fn trim_done<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    cutoff: i64,
    cursor: &str,
    batch: usize,
) -> redis::RedisResult<(String, i64)> {
    let k = Keys::new(prefix, queue);
    redis::Script::new(TRIM)
        .key(k.done())
        .key(k.data())
        .arg(format!("{}:meta:", k.base))
        .arg(cutoff)
        .arg(cursor)
        .arg(batch)
        .invoke_async(c)
        .await
}

/// Puts a job back on its queue as it was (a payload we cannot read), with fresh attempts.
pub async fn requeue_as_is<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    id: &str,
) -> redis::RedisResult<()> {
    let k = Keys::new(prefix, queue);
    redis::pipe()
        .srem(k.dead(), id)
        .zrem(k.scheduled(), id)
        .hset(k.meta(id), "status", "Pending")
        .hset(k.meta(id), "attempts", 0)
        .rpush(k.active(), id)
        .lpush(k.signal(), 1)
        .query_async(c)
        .await
}
