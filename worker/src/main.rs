//! `gateway-worker`: consumes the job queues, relays the outbox to Redis, and sweeps due
//! work from Postgres. Run as many as you like: the relay and the sweep are safe to run
//! concurrently (row locks, advisory lock), and each job is idempotent.
//!
//! apalis-redis runs with `lock_tasks(false)` (STACK.md trap 10) and a poll interval (trap 1);
//! worker names are unique per process start (trap 4). The worker supervises its apalis
//! workers: apalis ends a worker on a backend error (Redis unreachable) and would restart it at
//! once, in a tight loop; instead any failure stops the set and a fresh set (new names) starts
//! two seconds later, until Redis answers again. SIGTERM still ends the process.

mod activity;
mod jobs;
mod metrics;
mod relay;
mod retention;
mod sweep;

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_redis::{Config as RedisQueueConfig, RedisStorage};
use gateway_domain::config::Config;
use gateway_domain::db::DbPool;
use gateway_domain::email::Mailer;
use gateway_domain::jobs::{queue_name, DueAction, Job, SendEmail, ACTION_QUEUES};
use gateway_domain::redis_conn::{RedisClient, RedisConn};
use gateway_domain::services::Services;

/// What every job handler gets.
pub struct WorkerCtx {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub mailer: Mailer,
    pub services: Services,
    /// The queues operators paused, as last read from Postgres (`jobs::paused`).
    pub paused: jobs::Paused,
}

/// apalis refuses a worker name seen in the last minutes (STACK.md trap 4): make each one
/// unique per process start and restart.
fn worker_name(queue: &str) -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".into());
    format!(
        "{queue}@{host}:{}:{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

pub fn queue_config(config: &Config, queue: &str) -> RedisQueueConfig {
    RedisQueueConfig::default()
        .queue(queue_name(&config.redis.queue_prefix, queue))
        // Leases cost an O(n) LREM per task (STACK.md trap 10); recovery of a dead worker's
        // tasks rests on heartbeats, and on our Postgres sweep in any case.
        .lock_tasks(false)
        .heartbeat_interval(Duration::from_secs(5))
        .batch_size(50)
}

/// One apalis worker per queue. When any of them fails, `failed` is notified so the caller
/// can stop the set and start it again (apalis would restart at once, in a tight loop, while
/// Redis is down).
fn build_monitor(
    config: &Arc<Config>,
    redis: &RedisConn,
    ctx: &Arc<WorkerCtx>,
    failed: Arc<tokio::sync::Notify>,
) -> Monitor {
    let poll = config.jobs.poll_interval;
    let concurrency = config.jobs.concurrency;
    let mut monitor = Monitor::new();
    for queue in ACTION_QUEUES {
        let storage: RedisStorage<DueAction, RedisConn> =
            RedisStorage::new(redis.clone()).with_config(queue_config(config, queue));
        let ctx = ctx.clone();
        monitor = monitor.register(move |_| {
            WorkerBuilder::new(worker_name(queue))
                .backend(storage.clone().poll_with_interval(poll))
                .data(ctx.clone())
                .concurrency(concurrency)
                .catch_panic()
                .enable_tracing()
                .build(
                    move |job: DueAction,
                          ctx: Data<Arc<WorkerCtx>>,
                          id: TaskId,
                          attempt: Attempt| {
                        jobs::actions::run(job, ctx, queue, id, attempt)
                    },
                )
        });
    }
    let email_storage: RedisStorage<SendEmail, RedisConn> =
        RedisStorage::new(redis.clone()).with_config(queue_config(config, SendEmail::QUEUE));
    let email_ctx = ctx.clone();
    monitor
        .register(move |_| {
            WorkerBuilder::new(worker_name(SendEmail::QUEUE))
                .backend(email_storage.clone().poll_with_interval(poll))
                .data(email_ctx.clone())
                .concurrency(concurrency)
                .catch_panic()
                .enable_tracing()
                .build(jobs::email::run)
        })
        .should_restart(move |worker, error| {
            tracing::warn!(worker = %worker.name(), %error, "job worker failed");
            failed.notify_one();
            false
        })
        .shutdown_timeout(Duration::from_secs(20))
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

/// mimalloc instead of glibc malloc: allocation was about 15% of the api's CPU under the
/// dashboard load (docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Kept to the end of main: dropping it flushes the last spans (trace export).
    let _telemetry = gateway_domain::logs::init("info,gateway=debug,apalis=warn", "gateway-worker");
    let config = Arc::new(Config::from_env().map_err(|e| anyhow::anyhow!(e))?);
    let pool = gateway_domain::db::pool_for(&config.database, config.database.pool_size)?;
    let mailer = Mailer::from_config(&config.email)?;
    let redis = RedisClient::open(&config.redis)
        .map_err(|e| anyhow::anyhow!("REDIS_URL: {e}"))?
        .managed()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Redis at REDIS_URL: {e}"))?;
    let ctx = Arc::new(WorkerCtx {
        config: config.clone(),
        pool: pool.clone(),
        mailer,
        services: Services::new(config.clone(), pool.clone())?,
        paused: Default::default(),
    });
    tokio::spawn(jobs::watch_pauses(ctx.paused.clone(), pool.clone()));

    let process = activity::this_process(&config);
    tokio::spawn(activity::run(
        config.clone(),
        redis.clone(),
        process.clone(),
    ));
    let relay = tokio::spawn(relay::run(config.clone(), pool.clone(), redis.clone()));
    let sweep = tokio::spawn(sweep::run(config.clone(), pool.clone()));
    let retention = tokio::spawn(retention::run(config.clone(), redis.clone(), pool.clone()));
    if let Some(bind) = config.jobs.metrics_bind.clone() {
        tokio::spawn(metrics::serve(bind, pool.clone()));
    }

    tracing::info!(prefix = %config.redis.queue_prefix, "worker starting");
    // SIGTERM / Ctrl-C ends the process; a job worker dying (Redis unreachable: apalis ends the
    // worker on a backend error) restarts the whole set after a pause, until Redis is back.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let result = loop {
        let failed = Arc::new(tokio::sync::Notify::new());
        let monitor = build_monitor(&config, &redis, &ctx, failed.clone());
        let mut stop = stop_rx.clone();
        let signal = async move {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => {}
                _ = failed.notified() => {}
            }
            Ok(())
        };
        let result = monitor.run_with_signal(signal).await;
        if *stop_rx.borrow() {
            break result;
        }
        tracing::error!(
            ?result,
            "a job worker failed (is Redis reachable?); restarting the job workers in 2 s"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        if *stop_rx.borrow() {
            break Ok(());
        }
    };
    relay.abort();
    sweep.abort();
    retention.abort();
    // Off the operators' list of processes at once (a crash drops off after 30 s of silence).
    let mut leaving = redis.clone();
    let _ =
        gateway_domain::queues::activity::leave(&mut leaving, &config.redis.queue_prefix, &process)
            .await;
    tracing::info!("worker stopped");
    result.map_err(|e| anyhow::anyhow!("worker monitor: {e}"))
}
