//! Postgres access: the pool, embedded migrations, the diesel schema (`schema.rs`, generated
//! by `diesel print-schema` from the migrations; a test holds it to them) and row models
//! (`Foo` for reads, `NewFoo` for inserts). `reuse` keeps hot statements prepared, `writes`
//! puts several writes in one statement, `json_text` keeps a `jsonb` column as text.
//!
//! SQL statements are counted per request: a diesel instrumentation hook counts into a
//! task-local counter (DataLoader batches run in tasks that carry the request's counter), for
//! the api's `x-sql-statements` header and `graphql_request_sql_statements`, so an N+1
//! regression shows.

pub mod billing_models;
pub mod json_text;
pub mod models;
pub mod reuse;
pub mod schema;
pub mod tls;
pub mod writes;

use diesel_async::pooled_connection::deadpool::Pool;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

pub use diesel_async::AsyncPgConnection as PgConn;

use crate::config::{DatabaseConfig, Pooler};

pub type DbPool = Pool<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// One connection to `url` (over TLS when its `sslmode` asks; see [`tls`]).
pub use tls::connect;

/// Builds a pool. Checked-out connections are not pinged (`RecyclingMethod::Fast`): the
/// default `Verified` sends `SELECT 1` on every checkout, which doubled the statements of a
/// typical request (docs/BENCHMARKS.md). A connection the server dropped fails its next
/// query, is marked broken and is discarded; the request that met it gets INTERNAL.
///
/// Its connections name the process in `pg_stat_activity.application_name` (`gateway-api`,
/// `gateway-worker`), unless the URL names one already.
pub fn pool(url: &str, size: usize) -> anyhow::Result<DbPool> {
    build_pool(url, size, Pooler::None)
}

/// The pool of DATABASE_URL as configured: through a pooler in transaction mode
/// (`DATABASE_POOLER=transaction`), its connections keep no statement prepared (diesel's
/// cache is off, so `reuse` keeps nothing either) and send each statement unnamed, parsed and
/// run in one message (vendor/diesel-async), which PgBouncer 1.18 keeps on one server.
pub fn pool_for(config: &DatabaseConfig, size: usize) -> anyhow::Result<DbPool> {
    build_pool(&config.url, size, config.pooler)
}

fn build_pool(url: &str, size: usize, pooler: Pooler) -> anyhow::Result<DbPool> {
    use diesel_async::pooled_connection::{ManagerConfig, RecyclingMethod};
    count_statements();
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    // TLS when the URL asks for it (`sslmode`, `sslrootcert`: `tls`).
    config.custom_setup = Box::new(move |url| {
        Box::pin(async move {
            let mut conn = tls::connect(url).await?;
            if pooler == Pooler::Transaction {
                use diesel_async::AsyncConnection;
                conn.set_prepared_statement_cache_size(diesel::connection::CacheSize::Disabled);
            }
            Ok(conn)
        })
    });
    let url = with_application_name(url);
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(url, config);
    Ok(Pool::builder(manager)
        .max_size(size)
        .wait_timeout(Some(std::time::Duration::from_secs(5)))
        .create_timeout(Some(std::time::Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()?)
}

/// `url` with `application_name` set to this program's name, unless it sets one.
fn with_application_name(url: &str) -> String {
    if url.contains("application_name=") {
        return url.to_owned();
    }
    let name = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .unwrap_or_else(|| "gateway".to_owned());
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}application_name={name}")
}

static STATEMENTS_TOTAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

tokio::task_local! {
    /// Statements sent by the task running inside [`counting_statements`].
    static STATEMENTS: std::sync::Arc<std::sync::atomic::AtomicU32>;
}

/// Every statement this process sends (queries, BEGIN/COMMIT, pings), since start.
pub fn statements_total() -> u64 {
    STATEMENTS_TOTAL.load(std::sync::atomic::Ordering::Relaxed)
}

/// Runs `fut`, counting the SQL statements it sends into `counter` (also those of tasks
/// started with the same counter, e.g. DataLoader batches).
pub async fn counting_statements<F: std::future::Future>(
    counter: std::sync::Arc<std::sync::atomic::AtomicU32>,
    fut: F,
) -> F::Output {
    STATEMENTS.scope(counter, fut).await
}

/// Installs, once per process, the diesel instrumentation that counts statements: every
/// connection established afterwards reports each statement it starts.
fn count_statements() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        fn make() -> Option<Box<dyn diesel::connection::Instrumentation>> {
            Some(Box::new(
                |event: diesel::connection::InstrumentationEvent<'_>| {
                    if let diesel::connection::InstrumentationEvent::StartQuery { .. } = event {
                        use std::sync::atomic::Ordering::Relaxed;
                        STATEMENTS_TOTAL.fetch_add(1, Relaxed);
                        let _ = STATEMENTS.try_with(|c| c.fetch_add(1, Relaxed));
                    }
                },
            ))
        }
        if let Err(e) = diesel::connection::set_default_instrumentation(make) {
            tracing::warn!(error = %e, "statement counting is off");
        }
    });
}

/// Creates the database named in `url` when it does not exist yet (connecting to the server's
/// `postgres` database to do so), so a fresh server needs no manual step.
pub async fn ensure_database(url: &str) -> anyhow::Result<()> {
    use diesel_async::RunQueryDsl;
    if tls::connect(url).await.is_ok() {
        return Ok(());
    }
    // The query (sslrootcert=/path/…) may hold slashes: split it off first.
    let (path, query) = url
        .split_once('?')
        .map(|(p, q)| (p, format!("?{q}")))
        .unwrap_or((url, String::new()));
    let (base, name) = path
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database name"))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        anyhow::bail!("cannot create database `{name}`: use letters, digits and `_`");
    }
    let mut admin = tls::connect(&format!("{base}/postgres{query}"))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach Postgres at DATABASE_URL: {e}"))?;
    match diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
    {
        Ok(_) => tracing::info!(database = name, "created database"),
        // Another replica starting at the same moment made it first.
        Err(e) if tls::connect(url).await.is_ok() => {
            tracing::info!(database = name, error = %e, "database made meanwhile by another process");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

/// The advisory lock `migrate` holds: replicas starting together migrate one at a time (the
/// others then find nothing pending).
const MIGRATION_LOCK: i64 = 0x7062_675f_6d69_6772; // "pbg_migr"

/// Runs pending migrations, under [`MIGRATION_LOCK`]. Diesel's harness is synchronous: it runs
/// on a blocking thread.
pub async fn migrate(url: &str) -> anyhow::Result<Vec<String>> {
    use diesel_async::RunQueryDsl;
    let mut lock = tls::connect(url).await?;
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(&mut lock)
        .await?;
    let conn = tls::connect(url).await?;
    let applied = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<String>> {
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await?;
    // Released with the session as well; explicit so the next replica goes on at once.
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<diesel::sql_types::BigInt, _>(MIGRATION_LOCK)
        .execute(&mut lock)
        .await?;
    applied
}

/// What query code imports: diesel's query-building traits and diesel-async's `RunQueryDsl`
/// (diesel's own prelude would bring the blocking `RunQueryDsl` and clash).
pub mod prelude {
    pub use diesel::{
        BoolExpressionMethods, ExpressionMethods, JoinOnDsl, NullableExpressionMethods,
        OptionalExtension, PgArrayExpressionMethods, PgJsonbExpressionMethods, QueryDsl,
        SelectableHelper,
    };
    pub use diesel_async::{AsyncConnection, RunQueryDsl};

    pub use super::reuse::ReuseDsl;
}
