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

/// Admin URL of the Postgres server tests create databases on.
pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .or_else(|_| std::env::var("DATABASE_URL"))
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// The Redis keys of the queues under `prefix` (`QUEUE_PREFIX`: a test's or a benchmark
/// run's own).
pub async fn queue_keys(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<Vec<String>> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}.*"))
        .query_async(redis)
        .await
}

/// Deletes the Redis keys of the queues under `prefix`.
pub async fn clear_queues(
    redis: &mut redis::aio::MultiplexedConnection,
    prefix: &str,
) -> redis::RedisResult<()> {
    let keys = queue_keys(redis, prefix).await?;
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(redis).await?;
    }
    Ok(())
}
