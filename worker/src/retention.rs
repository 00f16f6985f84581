//! Retention: apalis keeps every finished job in Redis (data, metadata, done set) and has no
//! remove-on-complete (STACK.md trap 13). This task removes jobs finished more than
//! `JOB_RETENTION_SECS` ago, a few hundred at a time, so Redis memory does not grow with the
//! number of jobs ever run and Redis never blocks on one big vacuum. Any number of workers
//! may run it: removing twice is harmless. Dead jobs stay until an operator acts.

use std::collections::HashMap;
use std::sync::Arc;

use apalis_redis::ConnectionManager;
use gateway_domain::config::Config;
use gateway_domain::jobs::QUEUES;

const STEP: usize = 500;
const STEPS_PER_TICK: usize = 20;

pub async fn run(config: Arc<Config>, redis: ConnectionManager) {
    let mut cursors: HashMap<&str, String> = HashMap::new();
    loop {
        tokio::time::sleep(config.jobs.retention_interval).await;
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
