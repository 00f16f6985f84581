//! The outbox relay: moves due outbox rows to their Redis queues. Rows are locked with
//! SKIP LOCKED and marked dispatched in the same transaction as the push, so several relays
//! share the work; a crash after the push but before the commit only means a duplicate job,
//! which idempotent jobs absorb.
//!
//! Redis holds only a bounded window of each queue: the relay tops a queue up to
//! `RELAY_REDIS_WATERMARK` jobs waiting (active + scheduled) and leaves the rest in Postgres.
//! apalis-redis stops its worker when about 8,000 jobs are due at once (STACK.md trap 11);
//! with the window, a backlog of any size drains.
//!
//! Outbox rows carry one email each; the relay packs the email rows it claims together into
//! jobs of up to `EMAIL_BATCH` (the window counts jobs, so it claims that many times more
//! rows for the email queue).

use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use gateway_domain::config::Config;
use gateway_domain::db::prelude::*;
use gateway_domain::db::DbPool;
use gateway_domain::jobs::{Job, SendEmail, QUEUES};
use gateway_domain::redis_conn::RedisConn;
use gateway_domain::{outbox, AppError};

const BATCH: i64 = 500;
/// Email outbox rows claimed per pass (packed into jobs of `EMAIL_BATCH`).
const EMAIL_ROWS: i64 = 5_000;
/// How soon the relay looks again at a queue whose Redis window was full.
const WINDOW_POLL: Duration = Duration::from_millis(10);

pub async fn run(config: Arc<Config>, pool: DbPool, redis: RedisConn) {
    let mut storages: Vec<(&str, RedisStorage<serde_json::Value, RedisConn>)> = QUEUES
        .iter()
        .map(|q| {
            (
                *q,
                RedisStorage::new(redis.clone()).with_config(crate::queue_config(&config, q)),
            )
        })
        .collect();
    // When each queue is looked at again: one whose last claim found nothing waits a relay
    // interval, so a busy queue's passes do not pay for seven empty claims each.
    let mut idle_until = vec![Instant::now(); storages.len()];
    loop {
        let mut moved_any = false;
        let mut window_full = false;
        let now = Instant::now();
        for (i, (queue, storage)) in storages.iter_mut().enumerate() {
            if now < idle_until[i] {
                continue;
            }
            let room = match room_in_redis(&mut redis.clone(), &config, queue).await {
                Ok(room) => room,
                Err(e) => {
                    tracing::warn!(queue, error = %e, "cannot read the queue's Redis backlog; will retry");
                    continue;
                }
            };
            if room == 0 {
                window_full = true;
                continue;
            }
            let (limit, pack) = if *queue == SendEmail::QUEUE {
                let per_job = config.email.batch.max(1) as i64;
                // At most EMAIL_ROWS per pass, so the first jobs reach Redis quickly.
                ((room * per_job).min(EMAIL_ROWS), per_job as usize)
            } else {
                (room.min(BATCH), 1)
            };
            match relay_once(&pool, queue, storage, limit, pack).await {
                Ok(0) => idle_until[i] = Instant::now() + config.jobs.relay_interval,
                Ok(n) => moved_any |= n as i64 == limit,
                Err(e) => tracing::warn!(queue, error = %e, "outbox relay pass failed; will retry"),
            }
        }
        if !moved_any {
            // A full window means a backlog the workers are eating into: look again soon (a
            // Redis read, no SQL), so they never wait a whole interval for their next jobs.
            let pause = if window_full {
                config.jobs.relay_interval.min(WINDOW_POLL)
            } else {
                let next = idle_until.iter().min().copied().unwrap_or(now);
                next.saturating_duration_since(Instant::now())
                    .clamp(Duration::from_millis(1), config.jobs.relay_interval)
            };
            tokio::time::sleep(pause).await;
        }
    }
}

/// How many more jobs the queue's Redis window takes (0 when full).
async fn room_in_redis(redis: &mut RedisConn, config: &Config, queue: &str) -> anyhow::Result<i64> {
    let q = crate::queue_config(config, queue);
    let (active, scheduled): (i64, i64) = redis::pipe()
        .llen(q.active_jobs_list())
        .zcard(q.scheduled_jobs_set())
        .query_async(redis)
        .await?;
    Ok((config.jobs.redis_watermark as i64 - active - scheduled).max(0))
}

async fn relay_once(
    pool: &DbPool,
    queue: &str,
    storage: &mut RedisStorage<serde_json::Value, RedisConn>,
    limit: i64,
    pack: usize,
) -> anyhow::Result<usize> {
    let started = Instant::now();
    let mut conn = pool.get().await?;
    let got_connection = started.elapsed();
    let storage = storage.clone();
    let mut claimed = Duration::ZERO;
    let mut pushed = Duration::ZERO;
    let n = conn
        .transaction::<_, anyhow::Error, _>(async |conn| {
            let rows = outbox::claim_due(conn, queue, limit)
                .await
                .map_err(app_err)?;
            claimed = started.elapsed();
            if rows.is_empty() {
                return Ok(0);
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let mut payloads: Vec<serde_json::Value> =
                rows.into_iter().map(|r| r.payload).collect();
            if pack > 1 {
                payloads = SendEmail::merge(payloads, pack);
            }
            // When it entered Redis: the queue's latency for operators (`queues::overview`).
            let queued_at = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
            for p in &mut payloads {
                if let Some(obj) = p.as_object_mut() {
                    obj.insert("queued_at".into(), serde_json::Value::from(queued_at));
                }
            }
            let mut storage = storage;
            storage
                .push_bulk(payloads)
                .await
                .map_err(|e| anyhow::anyhow!("push to Redis: {e}"))?;
            pushed = started.elapsed();
            outbox::mark_dispatched(conn, &ids).await.map_err(app_err)?;
            Ok(ids.len())
        })
        .await?;
    if n > 0 {
        tracing::debug!(
            queue,
            n,
            connection_ms = got_connection.as_secs_f64() * 1e3,
            claimed_ms = claimed.as_secs_f64() * 1e3,
            pushed_ms = pushed.as_secs_f64() * 1e3,
            committed_ms = started.elapsed().as_secs_f64() * 1e3,
            "relayed outbox rows"
        );
    }
    Ok(n)
}

pub fn app_err(e: AppError) -> anyhow::Error {
    anyhow::anyhow!("{e:?}")
}
