//! `pbg-bench` (scripts/bench) runs end to end at a small scale: data set, api and worker,
//! every scenario, the report and the plot. The figures are not checked here (targets are
//! read from a full run's output, docs/BENCHMARKS.md); correctness figures are.

use diesel_async::{AsyncConnection, RunQueryDsl};
use gateway_testkit::{admin_database_url, redis_url};

#[tokio::test]
async fn the_benchmark_runs_every_scenario_at_a_small_scale() {
    let dir = std::env::temp_dir().join(format!("pbg-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("BENCHMARKS.md");
    let database = format!(
        "pbg_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let out = tokio::process::Command::new(gateway_testkit::system::bin_path("pbg-bench"))
        .args([
            "--partners",
            "40",
            "--subscriptions",
            "200",
            "--purchase-partners",
            "60",
            "--emails",
            "300",
            "--renewals",
            "50",
            "--jobs",
            "500",
            "--dashboard-secs",
            "2",
            "--purchase-secs",
            "2",
            "--warmup-secs",
            "1",
            "--connections",
            "4",
            "--purchase-connections",
            "4",
            "--storm-limit-secs",
            "120",
            "--drop-database",
        ])
        .arg("--database")
        .arg(&database)
        .arg("--out")
        .arg(&report)
        .env("PG_ADMIN_URL", admin_database_url())
        .env("REDIS_URL", redis_url())
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pbg-bench failed:\n{stdout}\n{stderr}"
    );
    let line = |start: &str| -> String {
        stdout
            .lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line `{start}` in:\n{stdout}"))
            .to_owned()
    };
    assert!(line("| Dashboard: SQL statements per request").ends_with("| yes |"));
    assert!(line("| Dashboard, 4 connections").contains(", 0 errors)"));
    assert!(line("| Purchase: integrity").contains(" 0 partners with two"));
    assert!(line("| 300 email jobs").contains("(300 delivered"));
    assert!(line("| 500 due-action jobs").contains("all done after"));
    assert!(line("| Jobs: worker SQL statements per job").contains("relay and sweep included"));
    let storm = line("| Renewal storm: 50 anniversaries");
    assert!(storm.contains("50 renewed, 50 invoiced"), "{storm}");
    assert!(line("| Renewal storm: duplicates").ends_with("| yes |"));
    let written = std::fs::read_to_string(&report).unwrap();
    assert!(written.contains("<!-- bench:results") && written.contains("### Machine"));
    let svg = std::fs::read_to_string(dir.join("dashboard-latency.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    // `--drop-database` leaves nothing behind: neither the database nor its queues' keys.
    let mut redis = gateway_testkit::redis_conn().await;
    let keys = gateway_testkit::queue_keys(&mut redis, &database)
        .await
        .unwrap();
    assert!(keys.is_empty(), "keys left in Redis: {keys:?}");
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut admin = diesel_async::AsyncPgConnection::establish(&admin_database_url())
        .await
        .unwrap();
    let left: Count = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(&database)
        .get_result(&mut admin)
        .await
        .unwrap();
    assert_eq!(left.n, 0, "database {database} left behind");
    let _ = std::fs::remove_dir_all(&dir);
}
