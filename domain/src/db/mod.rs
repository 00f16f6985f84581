//! Postgres access: the pool, embedded migrations, the diesel schema and row models.

pub mod models;
pub mod schema;

use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use diesel_async::AsyncPgConnection as PgConn;

pub type DbPool = Pool<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

pub fn pool(url: &str, size: usize) -> anyhow::Result<DbPool> {
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url);
    Ok(Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// Runs pending migrations. Diesel's harness is synchronous: run it on a blocking thread.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    use diesel_async::AsyncConnection;
    let conn = AsyncPgConnection::establish(url).await?;
    tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await?
}

/// What query code imports: diesel's query-building traits and diesel-async's `RunQueryDsl`
/// (diesel's own prelude would bring the blocking `RunQueryDsl` and clash).
pub mod prelude {
    pub use diesel::{
        BoolExpressionMethods, ExpressionMethods, NullableExpressionMethods, OptionalExtension,
        PgArrayExpressionMethods, PgJsonbExpressionMethods, QueryDsl, SelectableHelper,
    };
    pub use diesel_async::{AsyncConnection, RunQueryDsl};
}
