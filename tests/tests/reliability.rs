//! Reliability of the job system under faults: backlogs far beyond what apalis-redis can hold,
//! a worker killed mid-batch, graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use gateway_testkit::TestSystem;

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(gateway_testkit::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Jobs of `queue` waiting in Redis (active list + scheduled set).
async fn waiting(conn: &mut redis::aio::MultiplexedConnection, prefix: &str, queue: &str) -> i64 {
    let (a, s): (i64, i64) = redis::pipe()
        .llen(format!("{prefix}.{queue}:active"))
        .zcard(format!("{prefix}.{queue}:scheduled"))
        .query_async(conn)
        .await
        .unwrap();
    a + s
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backlog_far_above_8000_jobs_drains_with_redis_holding_a_bounded_window() {
    // A worker outage during a renewal storm: 12,000 jobs pile up in one queue. apalis-redis
    // stops near 8,000 due jobs; the relay keeps Redis under the watermark and drains the rest
    // from Postgres as room appears.
    const JOBS: i64 = 12_000;
    const WATERMARK: i64 = 1_000;
    let mut sys = TestSystem::start_with(&[("RELAY_REDIS_WATERMARK", "1000")])
        .await
        .unwrap();
    if let Some(mut w) = sys.worker.take() {
        w.kill().await.unwrap();
    }
    let (pid, _) = enroll(&sys, "storm", "storm@storm-corp.example", "Storm Corp").await;
    // Due work that is already done: each job runs, finds nothing to do, and completes.
    count(&sys, &format!(
        "WITH a AS (
             INSERT INTO scheduled_actions (id, partner_id, kind, subject_id, term, tag, due_at, status)
             SELECT gen_random_uuid(), '{pid}', 'REMINDER', gen_random_uuid(), 1, 'AD-30', now(), 'DONE'
             FROM generate_series(1, {JOBS}) RETURNING id),
         o AS (INSERT INTO outbox (queue, payload) SELECT 'reminder', jsonb_build_object('v', 1, 'action_id', a.id) FROM a RETURNING 1)
         SELECT count(*) AS n FROM o"
    ))
    .await;
    sys.start_worker().unwrap();
    let mut redis = redis_conn().await;
    let mut peak = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        peak = peak.max(waiting(&mut redis, &sys.queue_prefix, "reminder").await);
        let left = count(
            &sys,
            "SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL",
        )
        .await;
        let done: i64 = redis::cmd("SCARD")
            .arg(format!("{}.reminder:done", sys.queue_prefix))
            .query_async(&mut redis)
            .await
            .unwrap();
        if left == 0 && done >= JOBS {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "backlog did not drain: {left} rows still in the outbox, {done} jobs done"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        peak <= WATERMARK,
        "Redis held {peak} waiting jobs, above the watermark"
    );
    assert!(peak > 0, "the sampling saw the window in use");
    assert_eq!(waiting(&mut redis, &sys.queue_prefix, "reminder").await, 0);
}
