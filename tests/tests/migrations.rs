//! The migrations hold true: every migration runs up, down and up again on a real database
//! and leaves the same schema (`pg_dump --schema-only`), and `domain/src/db/schema.rs` is what
//! `diesel print-schema` makes of the migrated database (diesel.toml). `scripts/test` installs
//! the `diesel` CLI and `pg_dump`; without them these tests fail, saying so.

use std::path::{Path, PathBuf};
use std::process::Command;

use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::MigrationHarness;
use gateway_domain::db::MIGRATIONS;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a tool, failing the test with what to install when it is missing.
fn run(program: &str, args: &[&str], install: &str) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}); {install}"));
    assert!(
        out.status.success(),
        "`{program}` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn schema_dump(url: &str) -> String {
    run(
        "pg_dump",
        &["--schema-only", "--no-owner", "--no-privileges", url],
        "install PostgreSQL's client tools (scripts/test does)",
    )
    .lines()
    // The dump's header names the server and pg_dump versions; the schema is the rest.
    .filter(|l| {
        !l.starts_with("-- Dumped")
            && !l.starts_with("\\restrict")
            && !l.starts_with("\\unrestrict")
    })
    .collect::<Vec<_>>()
    .join("\n")
}

/// What to do with the migrations.
#[derive(Clone, Copy)]
enum Step {
    AllDown,
    NextUp,
    LastDown,
}

/// Runs a step of diesel's harness (synchronous: on a blocking thread). Returns the versions
/// it applied or reverted.
async fn step(url: &str, step: Step) -> Vec<String> {
    let conn = AsyncPgConnection::establish(url).await.expect("connect");
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        let done = match step {
            Step::AllDown => harness.revert_all_migrations(MIGRATIONS),
            Step::NextUp => harness.run_next_migration(MIGRATIONS).map(|v| vec![v]),
            Step::LastDown => harness.revert_last_migration(MIGRATIONS).map(|v| vec![v]),
        };
        done.expect("migration step")
            .iter()
            .map(|v| v.to_string())
            .collect()
    })
    .await
    .expect("migration thread")
}

/// Each migration, from the first: its down.sql restores the schema as it was before it, and
/// up again gives the same schema as the first time. After all of them, the schema is the one
/// the template (all migrations at once) holds.
#[tokio::test]
async fn every_migration_runs_up_down_and_up_again_to_the_same_schema() {
    use diesel_async::RunQueryDsl;
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let migrated = schema_dump(&db.url);
    assert!(migrated.contains("CREATE TABLE public.scheduled_actions"));

    let reverted = step(&db.url, Step::AllDown).await;
    assert_eq!(reverted.len(), migration_count(), "every migration reverts");
    #[derive(diesel::QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        tablename: String,
    }
    let mut conn = db.connect().await.unwrap();
    let left: Vec<Name> =
        diesel::sql_query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
            .load(&mut conn)
            .await
            .unwrap();
    let left: Vec<String> = left.into_iter().map(|n| n.tablename).collect();
    assert_eq!(
        left,
        ["__diesel_schema_migrations"],
        "down.sql leaves tables"
    );
    drop(conn);

    for _ in 0..migration_count() {
        let before = schema_dump(&db.url);
        let version = step(&db.url, Step::NextUp).await;
        let after = schema_dump(&db.url);
        step(&db.url, Step::LastDown).await;
        let undone = schema_dump(&db.url);
        assert!(
            undone == before,
            "the down.sql of {version:?} does not restore the schema before it: {}",
            first_difference(&before, &undone)
        );
        step(&db.url, Step::NextUp).await;
        let again = schema_dump(&db.url);
        assert!(
            again == after,
            "{version:?} up again differs from the first time: {}",
            first_difference(&after, &again)
        );
    }
    assert!(
        schema_dump(&db.url) == migrated,
        "one at a time differs from all at once"
    );
    db.remove().await.unwrap();
}

/// How many migrations there are (folders under migrations/).
fn migration_count() -> usize {
    std::fs::read_dir(root().join("migrations"))
        .expect("migrations/")
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count()
}

fn first_difference(a: &str, b: &str) -> String {
    a.lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| format!("line {}: `{x}` then `{y}`", i + 1))
        .unwrap_or_else(|| "one dump is longer".into())
}

#[tokio::test]
async fn schema_rs_is_what_diesel_print_schema_makes_of_the_migrations() {
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let printed = run(
        "diesel",
        &["print-schema", "--database-url", &db.url],
        "install it with `cargo install diesel_cli --no-default-features --features postgres-bundled` (scripts/test does)",
    );
    let kept = std::fs::read_to_string(root().join("domain/src/db/schema.rs")).unwrap();
    db.remove().await.unwrap();
    assert!(
        printed == kept,
        "domain/src/db/schema.rs drifted from the migrations: run `scripts/schema` and commit it\n{}",
        first_difference(&kept, &printed)
    );
}
