//! The due-work sweep: dispatches scheduled actions that fell due (on each partner's clock) and
//! re-derives from Postgres the work that should be queued and is not (Redis flushed, a worker
//! killed mid-job). One sweeper at a time across all worker
//! processes, through a transaction-scoped Postgres advisory lock.

use std::sync::Arc;

use diesel::sql_types::Bool;
use gateway_domain::config::Config;
use gateway_domain::db::prelude::*;
use gateway_domain::db::DbPool;

/// Advisory lock key of the sweep ("pbg-sweep").
const SWEEP_LOCK: i64 = 0x7062_672d_7377_6570;

#[derive(diesel::QueryableByName)]
struct Locked {
    #[diesel(sql_type = Bool)]
    locked: bool,
}

pub async fn run(config: Arc<Config>, pool: DbPool) {
    loop {
        tokio::time::sleep(config.jobs.sweep_interval).await;
        if let Err(e) = sweep_once(&config, &pool).await {
            tracing::warn!(error = %e, "due-work sweep failed; will retry");
        }
    }
}

/// Due actions dispatched per transaction. A sweep goes on batch after batch while batches
/// come back full, so a storm of due work (100,000 anniversaries at one instant) is
/// dispatched at once rather than one batch per interval; each batch commits on its own, so
/// the relay starts on the first while the next is read.
const DISPATCH_BATCH: i64 = 1000;

async fn sweep_once(config: &Config, pool: &DbPool) -> anyhow::Result<()> {
    let mut conn = pool.get().await?;
    let stale_after = config.jobs.redispatch_after;
    let mut first = true;
    loop {
        let (emails, actions) = conn
            .transaction::<_, anyhow::Error, _>(async |conn| {
                let lock: Locked =
                    diesel::sql_query("SELECT pg_try_advisory_xact_lock($1) AS locked")
                        .bind::<diesel::sql_types::BigInt, _>(SWEEP_LOCK)
                        .reuse()
                        .get_result(conn)
                        .await?;
                if !lock.locked {
                    return Ok((0, 0));
                }
                let emails = if first {
                    gateway_domain::email::redispatch_stale(conn, stale_after)
                        .await
                        .map_err(crate::relay::app_err)?
                } else {
                    0
                };
                let actions = gateway_domain::due::dispatch_due(conn, config, None, DISPATCH_BATCH)
                    .await
                    .map_err(crate::relay::app_err)?;
                Ok((emails, actions))
            })
            .await?;
        first = false;
        if emails > 0 || actions > 0 {
            tracing::info!(emails, actions, "dispatched due work");
        }
        if (actions as i64) < DISPATCH_BATCH {
            return Ok(());
        }
    }
}
