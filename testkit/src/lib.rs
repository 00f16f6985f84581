//! Test harness: an isolated database per test (cloned from a migrated template), isolated
//! Redis queue names, a real SMTP server in-process, and the real api and worker binaries.

pub mod db;
pub mod oidc;
pub mod otlp;
pub mod pg;
pub mod smtp;
pub mod system;

pub use db::TestDb;
pub use oidc::FakeOidc;
pub use otlp::OtlpSink;
pub use pg::PrivatePostgres;
pub use smtp::{ReceivedEmail, SmtpSink};
pub use system::TestSystem;

use gateway_domain::redis_conn::{RedisClient, RedisConn};
use redis::aio::ConnectionLike;

/// Admin URL of the Postgres server tests create databases on.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The PgBouncer (transaction mode) the tests reach Postgres through, when set
/// (`TEST_PGBOUNCER_URL`, as the PgBouncer pass of scripts/test sets it): the api and worker a
/// test starts then run their pools through it (`DATABASE_POOLER=transaction`), and LISTEN
/// and migrations straight to Postgres (`DATABASE_DIRECT_URL`).
pub fn pgbouncer_url() -> Option<String> {
    std::env::var("TEST_PGBOUNCER_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// Whether the tests run against a Redis Cluster (`REDIS_CLUSTER=true`, as the second pass of
/// scripts/test does); the api and worker the tests start are told the same.
pub fn redis_cluster() -> bool {
    std::env::var("REDIS_CLUSTER").is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"))
}

/// A connection to the tests' Redis, a single server or a cluster.
pub async fn redis_conn() -> RedisConn {
    RedisClient::open_url(&redis_url(), redis_cluster())
        .expect("REDIS_URL")
        .connection()
        .await
        .expect("Redis")
}

/// The Redis keys of the queues under `prefix` (`QUEUE_PREFIX`: a test's or a benchmark
/// run's own); on a cluster, from every master.
pub async fn queue_keys<C: ConnectionLike>(
    redis: &mut C,
    prefix: &str,
) -> redis::RedisResult<Vec<String>> {
    redis::cmd("KEYS")
        // Queue keys start `{prefix.` (`jobs::queue_name`); `{` is no glob character.
        .arg(format!("{{{prefix}.*"))
        .query_async(redis)
        .await
}

/// Deletes the Redis keys of the queues under `prefix`.
pub async fn clear_queues<C: ConnectionLike>(
    redis: &mut C,
    prefix: &str,
) -> redis::RedisResult<()> {
    let keys = queue_keys(redis, prefix).await?;
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(redis).await?;
    }
    Ok(())
}
