//! PgBouncer in transaction mode (Debian's 1.18: no protocol-level prepared statements) in
//! front of Postgres. scripts/test starts one (`PGBOUNCER_URL`) and also runs the purchase,
//! renewal and dashboard tests through it; this file shows why the pools need
//! `DATABASE_POOLER=transaction` there, and that with it they work.

use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, RunQueryDsl};
use gateway_domain::config::{DatabaseConfig, Pooler};
use gateway_domain::db::{self, DbPool};
use gateway_testkit::TestDb;

fn pgbouncer_url() -> String {
    std::env::var("PGBOUNCER_URL").expect(
        "PGBOUNCER_URL is not set: run scripts/test, which starts a PgBouncer in transaction mode",
    )
}

/// `db`'s database, reached through the PgBouncer.
fn through_pgbouncer(db: &TestDb) -> String {
    let bouncer = pgbouncer_url();
    let (base, _) = bouncer.rsplit_once('/').unwrap();
    format!("{base}/{}", db.name)
}

#[derive(diesel::QueryableByName)]
struct N {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// 20 tasks, each sending 25 parameterized statements on connections of `pool`: the errors.
async fn load(pool: &DbPool) -> Vec<String> {
    let tasks = (0..20).map(|t| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut errors = Vec::new();
            for i in 0..25 {
                let mut conn = pool.get().await.unwrap();
                let r =
                    diesel::sql_query("SELECT count(*) AS n FROM partners WHERE legal_name <> $1")
                        .bind::<Text, _>(format!("p{t}-{i}"))
                        .get_result::<N>(&mut *conn)
                        .await;
                match r {
                    Ok(row) => assert_eq!(row.n, 0),
                    Err(e) => errors.push(e.to_string()),
                }
            }
            errors
        })
    });
    let mut errors = Vec::new();
    for t in futures::future::join_all(tasks).await {
        errors.extend(t.unwrap());
    }
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_pgbouncer_in_transaction_mode_statements_must_go_out_unnamed() {
    let db = TestDb::create().await.unwrap();
    let url = through_pgbouncer(&db);

    // Named statements (the default): prepared on one server connection, run on whichever
    // the pooler hands out next.
    let named = db::pool(&url, 10).unwrap();
    let errors = load(&named).await;
    assert!(
        errors.iter().any(|e| e.contains("prepared statement")),
        "named statements through a transaction-mode PgBouncer should fail; errors: {errors:?}"
    );

    // DATABASE_POOLER=transaction: each statement is parsed, bound and run in one message.
    let config = DatabaseConfig {
        url: url.clone(),
        pool_size: 10,
        pooler: Pooler::Transaction,
        direct_url: db.url.clone(),
    };
    let unnamed = db::pool_for(&config, 10).unwrap();
    let errors = load(&unnamed).await;
    assert!(
        errors.is_empty(),
        "{} errors: {:?}",
        errors.len(),
        &errors[..errors.len().min(3)]
    );

    // Transactions hold one server connection: writes and reads inside one see each other.
    let mut conn = unnamed.get().await.unwrap();
    let n = conn
        .transaction::<_, diesel::result::Error, _>(async |c| {
            diesel::sql_query("CREATE TEMP TABLE t (x int) ON COMMIT DROP")
                .execute(c)
                .await?;
            diesel::sql_query("INSERT INTO t SELECT generate_series(1, 3)")
                .execute(c)
                .await?;
            Ok(diesel::sql_query("SELECT count(*) AS n FROM t")
                .get_result::<N>(c)
                .await?
                .n)
        })
        .await
        .unwrap();
    assert_eq!(n, 3);
    drop((conn, named, unnamed));
    db.remove().await.unwrap();
}
