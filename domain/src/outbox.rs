//! The transactional outbox. Call [`enqueue`] inside the transaction that changes state; the
//! worker's relay (worker/src/relay.rs) moves due rows to Redis. A crash between commit and
//! enqueue loses nothing: the row is still there.

use crate::db::prelude::*;
use chrono::{DateTime, Utc};
use diesel_async::SimpleAsyncConnection;

use crate::db::models::{NewOutboxRow, OutboxRow};
use crate::db::schema::{outbox, queue_pauses};
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::jobs::Job;

pub async fn enqueue<J: Job>(conn: &mut PgConn, job: &J, run_at: DateTime<Utc>) -> AppResult<()> {
    enqueue_to(conn, J::QUEUE, job, run_at).await
}

/// Like [`enqueue`], onto a queue chosen at run time (payloads shared by several queues).
pub async fn enqueue_to(
    conn: &mut PgConn,
    queue: &str,
    job: &impl serde::Serialize,
    run_at: DateTime<Utc>,
) -> AppResult<()> {
    let payload = serde_json::to_value(job).map_err(AppError::internal)?;
    enqueue_many(conn, &[(queue, payload)], run_at).await
}

/// Like [`enqueue_to`] for many jobs at once: one INSERT for all of them.
pub async fn enqueue_many(
    conn: &mut PgConn,
    jobs: &[(&str, serde_json::Value)],
    run_at: DateTime<Utc>,
) -> AppResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    // Enqueued inside a request (or a job): the job's span continues its trace.
    let traceparent = crate::telemetry::current_traceparent();
    let rows: Vec<NewOutboxRow> = jobs
        .iter()
        .map(|(queue, payload)| {
            let mut payload = payload.clone();
            if let (Some(tp), Some(obj)) = (&traceparent, payload.as_object_mut()) {
                obj.insert("traceparent".into(), serde_json::Value::from(tp.as_str()));
            }
            NewOutboxRow {
                queue: (*queue).to_owned(),
                payload,
                run_at,
            }
        })
        .collect();
    diesel::insert_into(outbox::table)
        .values(&rows)
        .reuse_for_rows(rows.len())
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks up to `limit` due, undispatched rows of one queue (other relays skip them), oldest
/// first; none while the queue is paused (`queue_pauses`, operators' `pauseQueue`). Call inside
/// a transaction and [`mark_dispatched`] before committing.
///
/// The rows are read in the order of the partial index `outbox_undispatched_idx`, which stops
/// after `limit` rows. The planner is told not to collect every due row and sort them
/// instead, the plan it picks when its statistics saw a nearly empty outbox (the usual
/// state, and the table is analyzed rarely): in a burst of 100,000 emails that plan sorted
/// them all, on disk, for each claim, 64 ms against 0.4 ms (docs/BENCHMARKS.md, item 25).
///
/// The claiming transaction commits asynchronously (`synchronous_commit = off`): it waits for
/// no WAL flush, which was about half of a 500-row pass. A commit lost in a crash leaves the
/// rows undispatched and they are relayed again: a duplicate job, which every job absorbs.
pub async fn claim_due(conn: &mut PgConn, queue: &str, limit: i64) -> AppResult<Vec<OutboxRow>> {
    conn.batch_execute(
        "SET LOCAL enable_bitmapscan = off; SET LOCAL enable_sort = off; \
         SET LOCAL synchronous_commit = off",
    )
    .await?;
    Ok(outbox::table
        .filter(outbox::dispatched_at.is_null())
        .filter(outbox::queue.eq(queue))
        .filter(outbox::run_at.le(diesel::dsl::now))
        .filter(diesel::dsl::not(diesel::dsl::exists(
            queue_pauses::table.filter(queue_pauses::queue.eq(queue)),
        )))
        .order((outbox::run_at, outbox::id))
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(OutboxRow::as_select())
        .load(conn)
        .await?)
}

pub async fn mark_dispatched(conn: &mut PgConn, ids: &[i64]) -> AppResult<()> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set(outbox::dispatched_at.eq(diesel::dsl::now))
        .reuse()
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes up to `limit` rows relayed before `before` (they are in Redis or done; keeping them
/// would grow the table without end). Returns how many.
pub async fn trim_dispatched(
    conn: &mut PgConn,
    before: DateTime<Utc>,
    limit: i64,
) -> AppResult<usize> {
    Ok(diesel::sql_query(
        "DELETE FROM outbox WHERE id IN (
             SELECT id FROM outbox WHERE dispatched_at < $1 ORDER BY id LIMIT $2)",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(before)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .reuse()
    .execute(conn)
    .await?)
}

/// Age in seconds of the oldest due row not yet dispatched (0 when none): the relay's lag.
pub async fn lag_seconds(conn: &mut PgConn) -> AppResult<f64> {
    let oldest: Option<DateTime<Utc>> = outbox::table
        .filter(outbox::dispatched_at.is_null())
        .filter(outbox::run_at.le(diesel::dsl::now))
        .select(diesel::dsl::min(outbox::run_at))
        .first(conn)
        .await?;
    Ok(oldest
        .map(|t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0))
}
