//! The job queues as operators see them (`jobQueues`, `jobs`, `retryJob`, `discardJob` and the
//! `/ops` page): exact counts per state from the Redis keys (`keys`) plus what Postgres still
//! holds for each queue (`postgres`), job lists, retry and discard. Only operators may see or
//! touch them; a retry or discard is audited in the transaction of its Postgres change.

pub mod activity;
pub mod due_work;
pub mod inspect;
pub mod keys;
pub mod pauses;
pub mod postgres;

use async_graphql::SimpleObject;
use redis::aio::ConnectionLike;
use serde_json::json;

pub use keys::{counts, discard, payload, trim_done, JobInfo, JobState, QueueCounts};
pub use postgres::{pg_counts, PgCounts, Retried};

use crate::audit::{self, Actor};
use crate::db::prelude::*;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::jobs::QUEUES;
use crate::permissions::{Action, Principal};

// A queue with its exact counts per state (GraphQL `JobQueue`).
#[derive(Debug, Clone, SimpleObject)]
/// A queue with its exact counts per state (operators).
pub struct JobQueue {
    /// The queue's name without the environment prefix.
    pub name: String,
    /// Jobs waiting to run.
    pub pending: i64,
    /// Jobs waiting for their time (retries, delays).
    pub scheduled: i64,
    /// Jobs a worker is running now.
    pub running: i64,
    /// Finished jobs kept for JOB_RETENTION_SECS.
    pub done: i64,
    /// Jobs whose last run failed and that will be retried.
    pub failed: i64,
    /// Jobs that gave up (the dead set): retry or discard them.
    pub dead: i64,
    /// Jobs still in Postgres (outbox rows not yet relayed to Redis).
    pub waiting_in_postgres: i64,
    /// Paused by an operator (`pauseQueue`): its jobs stay in Postgres and workers take none.
    pub paused: bool,
    /// When it was paused.
    pub paused_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Latency: the age in seconds of the oldest job waiting to run, in Postgres (due, not yet
    /// relayed) or at the head of the Redis list; 0 when none waits.
    pub latency_seconds: f64,
}

/// One of [`QUEUES`], or BAD_USER_INPUT naming them.
pub fn known_queue(name: &str) -> AppResult<&'static str> {
    QUEUES.iter().find(|q| **q == name).copied().ok_or_else(|| {
        AppError::bad_input(
            "queue",
            format!("unknown queue `{name}`; one of {}", QUEUES.join(", ")),
        )
    })
}

/// Every queue with its exact counts per state (operators).
pub async fn overview<C: ConnectionLike>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    prefix: &str,
) -> AppResult<Vec<JobQueue>> {
    principal.require(Action::Operate)?;
    overview_for_operators(conn, redis, prefix).await
}

/// [`overview`] without the caller's check: for the live `queueStats` feed, computed once per
/// interval for every operator watching (each checked when subscribing).
pub async fn overview_for_operators<C: ConnectionLike>(
    conn: &mut PgConn,
    redis: &mut C,
    prefix: &str,
) -> AppResult<Vec<JobQueue>> {
    let pg = pg_counts(conn).await?;
    let paused = pauses::paused(conn).await?;
    let now = chrono::Utc::now();
    let mut out = Vec::new();
    for q in QUEUES {
        let n = counts(redis, prefix, q).await?;
        let pause = paused.iter().find(|(name, _, _)| name == q);
        let in_postgres = pg
            .outbox_oldest_due
            .iter()
            .find(|(k, _)| k == q)
            .map(|(_, age)| *age)
            .unwrap_or(0.0);
        let in_redis = keys::oldest_queued_at(redis, prefix, q)
            .await?
            .map(|at| (now.timestamp_millis() as f64 / 1000.0 - at).max(0.0))
            .unwrap_or(0.0);
        out.push(JobQueue {
            paused: pause.is_some(),
            paused_at: pause.map(|(_, at, _)| *at),
            latency_seconds: in_postgres.max(in_redis),
            name: (*q).to_owned(),
            pending: n.pending,
            scheduled: n.scheduled,
            running: n.running,
            done: n.done,
            failed: n.failed,
            dead: n.dead,
            waiting_in_postgres: pg
                .outbox_waiting
                .iter()
                .find(|(k, _)| k == q)
                .map(|(_, n)| *n)
                .unwrap_or(0),
        });
    }
    Ok(out)
}

/// Retries a job (operators): Postgres first (an email comes back to life, a due action is
/// queued again through the outbox; audited in the same transaction), then the Redis copy
/// goes. A payload we cannot read is put back on its queue unchanged.
pub async fn retry_job<C: ConnectionLike>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    actor: &Actor,
    prefix: &str,
    queue: &str,
    id: &str,
) -> AppResult<Retried> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    let Some(raw) = payload(redis, prefix, queue, id).await? else {
        return Err(AppError::NotFound("job"));
    };
    let outcome = conn
        .transaction::<_, AppError, _>(async |conn| {
            let outcome = postgres::revive(conn, queue, &raw).await?;
            audit::record(
                conn,
                actor,
                None,
                "job.retried",
                ("job", format!("{queue}/{id}")),
                json!({"outcome": format!("{outcome:?}")}),
            )
            .await?;
            Ok(outcome)
        })
        .await?;
    if outcome == Retried::Requeued {
        keys::requeue_as_is(redis, prefix, queue, id).await?;
    } else {
        discard(redis, prefix, queue, id).await?;
    }
    Ok(outcome)
}

/// Retries every dead job of a queue (operators), each as [`retry_job`] does (audited one by
/// one), plus one audit record with the count. Returns how many were retried.
pub async fn retry_dead_jobs<C: ConnectionLike>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    actor: &Actor,
    prefix: &str,
    queue: &str,
) -> AppResult<i64> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    let mut done = 0;
    for id in dead_ids(redis, prefix, queue).await? {
        match retry_job(conn, redis, principal, actor, prefix, queue, &id).await {
            Ok(_) => done += 1,
            Err(AppError::NotFound(_)) => {} // gone meanwhile
            Err(e) => return Err(e),
        }
    }
    audit::record(
        conn,
        actor,
        None,
        "queue.dead_retried",
        ("queue", queue.to_owned()),
        json!({"count": done}),
    )
    .await?;
    Ok(done)
}

/// Discards every dead job of a queue (operators), each audited, plus one audit record with
/// the count. Returns how many were discarded.
pub async fn discard_dead_jobs<C: ConnectionLike + Send>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    actor: &Actor,
    prefix: &str,
    queue: &str,
) -> AppResult<i64> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    let mut done = 0;
    for id in dead_ids(redis, prefix, queue).await? {
        match discard_job(conn, redis, principal, actor, prefix, queue, &id).await {
            Ok(()) => done += 1,
            Err(AppError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    audit::record(
        conn,
        actor,
        None,
        "queue.dead_discarded",
        ("queue", queue.to_owned()),
        json!({"count": done}),
    )
    .await?;
    Ok(done)
}

/// Every id in the queue's dead set.
async fn dead_ids<C: ConnectionLike>(
    redis: &mut C,
    prefix: &str,
    queue: &str,
) -> AppResult<Vec<String>> {
    Ok(redis::cmd("SMEMBERS")
        .arg(keys::Keys::new(prefix, queue).dead())
        .query_async(redis)
        .await?)
}

/// Removes a job from its queue for good (operators); its Postgres record, if any, is
/// untouched. The audit record commits only if the job was there to remove.
pub async fn discard_job<C: ConnectionLike + Send>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    actor: &Actor,
    prefix: &str,
    queue: &str,
    id: &str,
) -> AppResult<()> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        audit::record(
            conn,
            actor,
            None,
            "job.discarded",
            ("job", format!("{queue}/{id}")),
            json!({}),
        )
        .await?;
        if discard(redis, prefix, queue, id).await? {
            Ok(())
        } else {
            Err(AppError::NotFound("job"))
        }
    })
    .await
}

/// The most `waitForIdle` waits, whatever it is asked: a minute, and a second less than a
/// request may take (HTTP_REQUEST_TIMEOUT_MS).
pub fn max_idle_wait(config: &crate::config::Config) -> std::time::Duration {
    std::time::Duration::from_secs(60).min(
        config
            .http
            .request_timeout
            .saturating_sub(std::time::Duration::from_secs(1)),
    )
}

/// Waits until the partner (every partner when `None`) is idle, in the sense of
/// [`postgres::busy`]: nothing queued, running or due. Outside production only, for operators
/// (end-to-end tests: advance the clock, wait for idle, assert). Polls Postgres every 50 ms, a
/// fresh pooled connection each time. Returns how long it waited, or TIMEOUT naming what was
/// still busy.
pub async fn wait_for_idle(
    pool: &crate::db::DbPool,
    config: &crate::config::Config,
    principal: &Principal,
    partner_id: Option<uuid::Uuid>,
    timeout: std::time::Duration,
) -> AppResult<std::time::Duration> {
    principal.require(Action::Operate)?;
    if config.is_production() {
        return Err(AppError::not_eligible(
            "NOT_IN_PRODUCTION",
            "waitForIdle is for tests and is not served in production",
        ));
    }
    let max = max_idle_wait(config);
    if timeout.is_zero() || timeout > max {
        return Err(AppError::bad_input(
            "timeoutSeconds",
            format!(
                "wait between 1 and {} seconds (a request may take HTTP_REQUEST_TIMEOUT_MS)",
                max.as_secs()
            ),
        ));
    }
    let started = tokio::time::Instant::now();
    if let Some(partner_id) = partner_id {
        let mut conn = pool.get().await.map_err(AppError::internal)?;
        crate::clock::ensure_partner(&mut conn, partner_id).await?;
    }
    loop {
        let busy = {
            let mut conn = pool.get().await.map_err(AppError::internal)?;
            postgres::busy(&mut conn, partner_id).await?
        };
        if busy.is_empty() {
            return Ok(started.elapsed());
        }
        if started.elapsed() >= timeout {
            let what = busy
                .iter()
                .map(|(kind, n)| format!("{n} {kind}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(AppError::Timeout(format!(
                "still busy after {} s: {what}",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
