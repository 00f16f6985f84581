//! Job handlers, one file per job; registered in main.rs. Here: what every handler does
//! first, the pause check.

pub mod actions;
pub mod email;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gateway_domain::db::DbPool;

/// The paused queues as last read (every [`PAUSE_POLL`]); read by every job without a statement.
pub type Paused = Arc<RwLock<HashSet<String>>>;

/// How often the worker reads the paused queues.
pub const PAUSE_POLL: Duration = Duration::from_millis(500);

/// Keeps `paused` up to date with `queue_pauses`.
pub async fn watch_pauses(paused: Paused, pool: DbPool) {
    let mut tick = tokio::time::interval(PAUSE_POLL);
    loop {
        tick.tick().await;
        let Ok(conn) = pool.get().await else { continue };
        if let Ok(rows) = gateway_domain::queues::pauses::paused(&conn).await {
            let now: HashSet<String> = rows.into_iter().map(|(q, _, _)| q).collect();
            let mut held = paused.write().unwrap_or_else(|e| e.into_inner());
            if *held != now {
                tracing::info!(paused = ?now, "paused queues");
                *held = now;
            }
        }
    }
}

pub fn is_paused(paused: &Paused, queue: &str) -> bool {
    paused
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .contains(queue)
}

/// A job of a paused queue goes back to the outbox unrun (the relay holds it there until the
/// queue is resumed); its Redis copy is then done. The pause is read again first: a queue
/// resumed since the last poll runs its job here and now (None), instead of sending it round
/// the outbox a second time.
pub async fn hand_back(
    pool: &DbPool,
    paused: &Paused,
    queue: &str,
    job: &impl serde::Serialize,
) -> Option<Result<(), apalis::prelude::BoxDynError>> {
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => return Some(Err(format!("database: {e}").into())),
    };
    match gateway_domain::queues::pauses::paused(&conn).await {
        Ok(rows) if !rows.iter().any(|(q, _, _)| q == queue) => {
            paused
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(queue);
            return None;
        }
        Ok(_) => {}
        Err(e) => return Some(Err(format!("{e:?}").into())),
    }
    if let Err(e) =
        gateway_domain::outbox::enqueue_to(&mut conn, queue, job, chrono::Utc::now()).await
    {
        return Some(Err(format!("{e:?}").into()));
    }
    tracing::info!(queue, "queue paused: job handed back to the outbox");
    Some(Ok(()))
}
