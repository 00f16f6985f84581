//! Reports this process's work to Redis for the operators' console
//! (`gateway_domain::queues::activity`): every [`EVERY`], the jobs processed and failed per
//! queue since the last report (added to the current minute), and a heartbeat naming the
//! process, its queues and concurrency, and the failed runs since the last report (each job's
//! attempts, for the console's job detail). A clean stop removes the process from the list.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use gateway_domain::config::Config;
use gateway_domain::jobs::QUEUES;
use gateway_domain::queues::activity::{self, WorkerProcess};
use gateway_domain::queues::keys::{self, Attempt};

/// How often the process reports.
pub const EVERY: Duration = Duration::from_secs(2);

/// Processed and failed jobs per queue since the last report.
fn counters() -> &'static HashMap<&'static str, (AtomicU64, AtomicU64)> {
    static C: OnceLock<HashMap<&'static str, (AtomicU64, AtomicU64)>> = OnceLock::new();
    C.get_or_init(|| {
        QUEUES
            .iter()
            .map(|q| (*q, (AtomicU64::new(0), AtomicU64::new(0))))
            .collect()
    })
}

/// Counts one job run: `ok` is processed; anything else (retried, dead) failed.
pub fn count(queue: &str, outcome: &str) {
    if let Some((processed, failed)) = counters().get(queue) {
        if outcome == "ok" {
            processed.fetch_add(1, Ordering::Relaxed);
        } else {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Failed runs not yet reported: (queue, job id, attempt). Bounded: when Redis stays away,
/// the oldest are dropped (they are diagnostics; Postgres keeps each email's and action's own
/// attempts and last error).
type Failures = Mutex<Vec<(&'static str, String, Attempt)>>;

fn failures() -> &'static Failures {
    static F: OnceLock<Failures> = OnceLock::new();
    F.get_or_init(Default::default)
}

const MAX_UNREPORTED_FAILURES: usize = 10_000;

/// `host:pid` of this process.
fn worker_name() -> &'static str {
    static N: OnceLock<String> = OnceLock::new();
    N.get_or_init(|| format!("{}:{}", host(), std::process::id()))
}

fn host() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| {
        std::fs::read_to_string("/etc/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into())
    })
}

/// Records a failed run of job `id` (its `attempt`-th, 1-based), shown in the job's detail
/// after the next report. `outcome` is `retry` or `dead`.
pub fn failed(
    queue: &'static str,
    id: &apalis::prelude::TaskId,
    attempt: usize,
    outcome: &str,
    error: &str,
    started: std::time::Instant,
) {
    let mut error = error.to_owned();
    if error.chars().count() > 500 {
        error = error.chars().take(500).collect::<String>() + "…";
    }
    let a = Attempt {
        attempt: attempt as i32,
        at_ms: chrono::Utc::now().timestamp_millis(),
        outcome: outcome.to_owned(),
        error,
        duration_ms: started.elapsed().as_millis() as i64,
        worker: worker_name().to_owned(),
    };
    let mut f = failures().lock().unwrap_or_else(|p| p.into_inner());
    if f.len() >= MAX_UNREPORTED_FAILURES {
        f.remove(0);
    }
    f.push((queue, id.to_string(), a));
}

/// This process as operators see it.
pub fn this_process(config: &Config) -> WorkerProcess {
    let now = chrono::Utc::now();
    WorkerProcess {
        host: host(),
        pid: std::process::id() as i32,
        queues: QUEUES.iter().map(|q| (*q).to_owned()).collect(),
        concurrency: config.jobs.concurrency as i32,
        started_at: now,
        last_heartbeat: now,
    }
}

/// Reports until the process ends; a failed report keeps its counts for the next one.
pub async fn run(
    config: Arc<Config>,
    redis: gateway_domain::redis_conn::RedisConn,
    mut process: WorkerProcess,
) {
    let prefix = config.redis.queue_prefix.clone();
    let mut redis = redis;
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let taken: Vec<(&str, u64, u64)> = counters()
            .iter()
            .map(|(q, (p, f))| {
                (
                    *q,
                    p.swap(0, Ordering::Relaxed),
                    f.swap(0, Ordering::Relaxed),
                )
            })
            .filter(|(_, p, f)| *p > 0 || *f > 0)
            .collect();
        if !taken.is_empty() {
            if let Err(e) = activity::record(&mut redis, &prefix, now, &taken).await {
                tracing::debug!(error = %e, "activity not recorded; kept for the next report");
                for (q, p, f) in taken {
                    if let Some((processed, failed)) = counters().get(q) {
                        processed.fetch_add(p, Ordering::Relaxed);
                        failed.fetch_add(f, Ordering::Relaxed);
                    }
                }
            }
        }
        let failed: Vec<_> =
            std::mem::take(&mut *failures().lock().unwrap_or_else(|p| p.into_inner()));
        if !failed.is_empty() {
            if let Err(e) = keys::record_attempts(&mut redis, &prefix, &failed).await {
                tracing::debug!(error = %e, "failed attempts not recorded; kept for the next report");
                let mut f = failures().lock().unwrap_or_else(|p| p.into_inner());
                let mut kept = failed;
                kept.append(&mut f);
                kept.truncate(MAX_UNREPORTED_FAILURES);
                *f = kept;
            }
        }
        process.last_heartbeat = now;
        let _ = activity::heartbeat(&mut redis, &prefix, &process).await;
    }
}
