//! Retention: apalis keeps every finished job in Redis (data, metadata, done set) and has no
//! remove-on-complete (STACK.md trap 13). This task removes jobs finished more than
//! `JOB_RETENTION_SECS` ago, a few hundred at a time, so Redis memory does not grow with the
//! number of jobs ever run and Redis never blocks on one big vacuum. Any number of workers
//! may run it: removing twice is harmless. Dead jobs stay until an operator acts. Outbox rows
//! relayed more than `JOB_RETENTION_SECS` ago are deleted from Postgres the same way.

use std::collections::HashMap;
use std::sync::Arc;

use gateway_domain::config::Config;
use gateway_domain::db::DbPool;
use gateway_domain::jobs::QUEUES;

const STEP: usize = 500;
const STEPS_PER_TICK: usize = 20;

/// Outbox rows deleted per statement.
const OUTBOX_STEP: i64 = 5000;

pub async fn run(config: Arc<Config>, redis: gateway_domain::redis_conn::RedisConn, pool: DbPool) {
    let mut cursors: HashMap<&str, String> = HashMap::new();
    loop {
        tokio::time::sleep(config.jobs.retention_interval).await;
        trim_outbox(&config, &pool).await;
        let cutoff = chrono::Utc::now().timestamp() - config.jobs.retention.as_secs() as i64;
        for queue in QUEUES {
            let mut conn = redis.clone();
            let mut removed = 0;
            for _ in 0..STEPS_PER_TICK {
                let cursor = cursors.get(queue).cloned().unwrap_or_else(|| "0".into());
                match gateway_domain::queues::trim_done(
                    &mut conn,
                    &config.redis.queue_prefix,
                    queue,
                    cutoff,
                    &cursor,
                    STEP,
                )
                .await
                {
                    Ok((next, n)) => {
                        removed += n;
                        let finished = next == "0";
                        cursors.insert(queue, next);
                        if finished {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(queue, error = %e, "retention step failed; will retry");
                        break;
                    }
                }
            }
            if removed > 0 {
                tracing::debug!(queue, removed, "trimmed finished jobs from Redis");
            }
        }
    }
}

async fn trim_outbox(config: &Config, pool: &DbPool) {
    let before = chrono::Utc::now()
        - chrono::Duration::from_std(config.jobs.retention).unwrap_or(chrono::Duration::hours(1));
    let mut conn = match pool.get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "outbox retention: no database connection; will retry");
            return;
        }
    };
    for _ in 0..STEPS_PER_TICK {
        match gateway_domain::outbox::trim_dispatched(&mut conn, before, OUTBOX_STEP).await {
            Ok(n) if (n as i64) < OUTBOX_STEP => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = ?e, "outbox retention step failed; will retry");
                return;
            }
        }
    }
}
