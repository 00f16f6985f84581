//! Paused queues: while a queue is paused the relay keeps its jobs in the outbox
//! (`outbox::claim_due` skips it) and a worker that still receives one hands it back to the
//! outbox without running it; resuming lets them flow again. Kept in Postgres
//! (`queue_pauses`): a pause survives restarts and every process sees it.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::known_queue;
use crate::audit::{self, Actor};
use crate::db::prelude::*;
use crate::db::schema::queue_pauses;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};

/// The paused queues, with when and by whom.
pub async fn paused(mut conn: &PgConn) -> AppResult<Vec<(String, DateTime<Utc>, String)>> {
    Ok(queue_pauses::table
        .select((
            queue_pauses::queue,
            queue_pauses::paused_at,
            queue_pauses::paused_by,
        ))
        .load(&mut conn)
        .await?)
}

/// Pauses a queue (operators); pausing a paused queue changes nothing. Audited.
pub async fn pause(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    queue: &str,
) -> AppResult<()> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let n = diesel::insert_into(queue_pauses::table)
            .values((
                queue_pauses::queue.eq(queue),
                queue_pauses::paused_by.eq(format!("{:?} {}", actor.kind, actor.id)),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if n > 0 {
            audit::record(
                conn,
                actor,
                None,
                "queue.paused",
                ("queue", queue.to_owned()),
                json!({}),
            )
            .await?;
        }
        Ok(())
    })
    .await
}

/// Resumes a queue (operators); resuming a running queue changes nothing. Audited.
pub async fn resume(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    queue: &str,
) -> AppResult<()> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let n = diesel::delete(queue_pauses::table.find(queue))
            .execute(conn)
            .await?;
        if n > 0 {
            audit::record(
                conn,
                actor,
                None,
                "queue.resumed",
                ("queue", queue.to_owned()),
                json!({}),
            )
            .await?;
        }
        Ok(())
    })
    .await
}
