//! The queues' Redis side, read from the keys apalis-redis 1.0 uses (its own metrics are
//! broken: STACK.md trap 6), and the retention that trims finished jobs in small steps
//! (trap 13).
//!
//! Keys of queue `q` (`{QUEUE_PREFIX.name}`, braces included: a Redis Cluster hash tag): `q:active` (list, waiting), `q:scheduled`
//! (sorted set by due time; retries of failed jobs wait here too), `q:inflight:{worker}` (sets,
//! running), `q:workers` (sorted set of worker names), `q:done` and `q:dead` (sets), `q:data`
//! (hash id → payload) and `q:meta:{id}` (hash: status, attempts, result, done_at).

use redis::aio::ConnectionLike;
use serde::Serialize;

use crate::jobs::queue_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
/// A job's state in its queue.
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
/// A job in a queue (operators).
pub struct JobInfo {
    /// The job's id in its queue.
    pub id: String,
    /// The queue's name, without the environment prefix.
    pub queue: String,
    /// Where the job is now.
    pub state: JobState,
    /// The payload (IDs only), shortened.
    pub payload: String,
    /// Runs so far.
    pub attempts: i64,
    /// The last run's error, if it failed.
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
    /// The failed attempts of a job (a list of JSON [`Attempt`]s, oldest first).
    pub fn attempts(&self, id: &str) -> String {
        format!("{}:attempts:{id}", self.base)
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
    let failed = are_failed(c, &k, &scheduled_ids)
        .await?
        .into_iter()
        .filter(|f| *f)
        .count() as i64;
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

/// A page of the jobs of one queue in one state: `limit` jobs from position `offset`, and how
/// many there are in all. Waiting jobs come in queue order (next first); scheduled and failed
/// ones by due time; running, finished and dead ones newest first (job ids are ULIDs, which
/// sort by creation time).
pub async fn list<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    state: JobState,
    offset: usize,
    limit: usize,
) -> redis::RedisResult<(Vec<JobInfo>, usize)> {
    let k = Keys::new(prefix, queue);
    let limit = limit.clamp(1, 500);
    let (ids, total) = match state {
        JobState::Pending => {
            let (ids, total): (Vec<String>, usize) = redis::pipe()
                .lrange(k.active(), offset as isize, (offset + limit) as isize - 1)
                .llen(k.active())
                .query_async(c)
                .await?;
            (ids, total)
        }
        JobState::Scheduled | JobState::Failed => {
            let all: Vec<String> = redis::cmd("ZRANGE")
                .arg(k.scheduled())
                .arg(0)
                .arg(-1)
                .query_async(c)
                .await?;
            let failed = are_failed(c, &k, &all).await?;
            let want_failed = state == JobState::Failed;
            let ids: Vec<String> = all
                .into_iter()
                .zip(failed)
                .filter(|(_, f)| *f == want_failed)
                .map(|(id, _)| id)
                .collect();
            let total = ids.len();
            (ids.into_iter().skip(offset).take(limit).collect(), total)
        }
        JobState::Running | JobState::Done | JobState::Dead => {
            let mut ids = match state {
                JobState::Running => {
                    let mut all = Vec::new();
                    for w in workers(c, &k).await? {
                        let ids: Vec<String> = redis::cmd("SMEMBERS")
                            .arg(k.inflight(&w))
                            .query_async(c)
                            .await?;
                        all.extend(ids);
                    }
                    all
                }
                JobState::Done => redis::cmd("SMEMBERS").arg(k.done()).query_async(c).await?,
                _ => redis::cmd("SMEMBERS").arg(k.dead()).query_async(c).await?,
            };
            ids.sort_unstable_by(|a: &String, b| b.cmp(a));
            let total = ids.len();
            (ids.into_iter().skip(offset).take(limit).collect(), total)
        }
    };
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(job) = info(c, &k, queue, state, id).await? {
            out.push(job);
        }
    }
    Ok((out, total))
}

/// Which of these scheduled-set members wait for a retry (status `Failed`).
async fn are_failed<C: ConnectionLike>(
    c: &mut C,
    k: &Keys,
    ids: &[String],
) -> redis::RedisResult<Vec<bool>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let mut p = redis::pipe();
    for id in ids {
        p.hget(k.meta(id), "status");
    }
    let statuses: Vec<Option<String>> = p.query_async(c).await?;
    Ok(statuses
        .iter()
        .map(|s| s.as_deref() == Some("Failed"))
        .collect())
}

/// The job with this id in a queue, in whatever state it is, if Redis has it.
pub async fn find<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    id: &str,
) -> redis::RedisResult<Option<JobInfo>> {
    let k = Keys::new(prefix, queue);
    let (exists, dead, done, score, status): (bool, bool, bool, Option<f64>, Option<String>) =
        redis::pipe()
            .hexists(k.data(), id)
            .sismember(k.dead(), id)
            .sismember(k.done(), id)
            .zscore(k.scheduled(), id)
            .hget(k.meta(id), "status")
            .query_async(c)
            .await?;
    if !exists {
        return Ok(None);
    }
    let state = if dead {
        JobState::Dead
    } else if done {
        JobState::Done
    } else if score.is_some() {
        if status.as_deref() == Some("Failed") {
            JobState::Failed
        } else {
            JobState::Scheduled
        }
    } else if status.as_deref() == Some("Running") {
        JobState::Running
    } else {
        JobState::Pending
    };
    info(c, &k, queue, state, id.to_owned()).await
}

/// Every job of a queue whose payload `matches`, newest first, at most `limit`; the data hash
/// is read in steps (`HSCAN`), so a large queue does not block Redis.
pub async fn scan_payloads<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    limit: usize,
    mut matches: impl FnMut(&[u8]) -> bool,
) -> redis::RedisResult<Vec<String>> {
    let k = Keys::new(prefix, queue);
    let mut cursor = "0".to_owned();
    let mut found = Vec::new();
    loop {
        let (next, chunk): (String, Vec<(String, Vec<u8>)>) = redis::cmd("HSCAN")
            .arg(k.data())
            .arg(&cursor)
            .arg("COUNT")
            .arg(500)
            .query_async(c)
            .await?;
        found.extend(
            chunk
                .into_iter()
                .filter(|(_, payload)| matches(payload))
                .map(|(id, _)| id),
        );
        if next == "0" {
            break;
        }
        cursor = next;
    }
    found.sort_unstable_by(|a, b| b.cmp(a));
    found.truncate(limit);
    Ok(found)
}

/// A failed run of a job, as the worker recorded it.
#[derive(
    Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, async_graphql::SimpleObject,
)]
#[graphql(name = "JobAttempt")]
pub struct Attempt {
    /// 1 for the first run.
    pub attempt: i32,
    /// When the run ended, in Unix milliseconds.
    pub at_ms: i64,
    /// `retry` (apalis runs it again) or `dead` (gave up: the dead set).
    pub outcome: String,
    /// The error the run ended with.
    pub error: String,
    /// How long the run took, in milliseconds.
    pub duration_ms: i64,
    /// The worker process (`host:pid`).
    pub worker: String,
}

/// How long a job's failed attempts are kept at most (retention and discards remove them
/// with their job before that).
const ATTEMPTS_KEEP_SECS: i64 = 30 * 24 * 3600;

/// Appends failed attempts, `(queue, job id, attempt)`, in one round trip.
pub async fn record_attempts<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    attempts: &[(&str, String, Attempt)],
) -> redis::RedisResult<()> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut p = redis::pipe();
    for (queue, id, a) in attempts {
        let key = Keys::new(prefix, queue).attempts(id);
        p.rpush(&key, serde_json::to_string(a).unwrap_or_default())
            .ignore()
            .expire(&key, ATTEMPTS_KEEP_SECS)
            .ignore();
    }
    p.query_async(c).await
}

/// The failed attempts of a job, oldest first.
pub async fn attempts<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    id: &str,
) -> redis::RedisResult<Vec<Attempt>> {
    let raw: Vec<String> = redis::cmd("LRANGE")
        .arg(Keys::new(prefix, queue).attempts(id))
        .arg(0)
        .arg(-1)
        .query_async(c)
        .await?;
    Ok(raw
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect())
}

/// The full payload of a job as text (operators' job detail), if Redis still has it.
pub async fn payload_text<C: ConnectionLike>(
    c: &mut C,
    prefix: &str,
    queue: &str,
    id: &str,
) -> redis::RedisResult<Option<String>> {
    Ok(payload(c, prefix, queue, id)
        .await?
        .map(|p| String::from_utf8_lossy(&p).into_owned()))
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
    let _: i64 = redis::cmd("DEL")
        .arg(k.meta(id))
        .arg(k.attempts(id))
        .query_async(c)
        .await?;
    Ok(a + b + d + e > 0)
}

const TRIM: &str = r#"
-- KEYS[1] done set, KEYS[2] data hash; ARGV[1] meta key prefix, ARGV[2] cutoff (unix s),
-- ARGV[3] cursor, ARGV[4] batch, ARGV[5] attempts key prefix. Removes finished jobs older
-- than the cutoff, with their meta and failed attempts.
local scan = redis.call('SSCAN', KEYS[1], ARGV[3], 'COUNT', ARGV[4])
local removed = 0
for _, id in ipairs(scan[2]) do
  local meta = ARGV[1] .. id
  local done_at = tonumber(redis.call('HGET', meta, 'done_at') or '0')
  if done_at <= tonumber(ARGV[2]) then
    redis.call('SREM', KEYS[1], id)
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', meta, ARGV[5] .. id)
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
        .arg(format!("{}:attempts:", k.base))
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

#[cfg(test)]
mod tests {
    use super::Keys;
    use crate::jobs::QUEUES;
    use redis::cluster_routing::Slot;

    #[test]
    fn every_key_of_a_queue_falls_in_its_queues_cluster_slot() {
        // apalis-redis' scripts take several of a queue's keys at once (and build meta keys
        // inside Lua): in a Redis Cluster they must all hash to one slot.
        let mut slots = std::collections::HashSet::new();
        for queue in QUEUES {
            let k = Keys::new("pbg", queue);
            let keys = [
                k.active(),
                k.scheduled(),
                k.workers(),
                k.inflight("email@host:1:abcd"),
                k.done(),
                k.dead(),
                k.data(),
                k.meta("01JABCDEF"),
                k.signal(),
                k.attempts("01JABCDEF"),
            ];
            assert!(
                k.base.starts_with('{') && k.base.ends_with('}'),
                "{}",
                k.base
            );
            let slot = Slot::for_key(&keys[0]);
            for key in &keys {
                assert_eq!(
                    Slot::for_key(key),
                    slot,
                    "{key} is not in {}'s slot",
                    k.base
                );
            }
            slots.insert(format!("{slot:?}"));
        }
        // Different queues spread over the cluster rather than all sharing one node.
        assert!(slots.len() > QUEUES.len() / 2, "{slots:?}");
    }
}
