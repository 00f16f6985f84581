//! Postgres over TLS, as libpq URLs ask for it (`sslmode`, `sslrootcert`): the api, the worker
//! and migrations run against a private cluster that accepts TCP connections over TLS only,
//! with a self-signed certificate trusted through `sslrootcert`.

mod common;

use common::*;
use gateway_testkit::pg::Options;
use gateway_testkit::{PrivatePostgres, TestSystem};

fn migrate(url: &str) -> (bool, String) {
    let out = std::process::Command::new(gateway_testkit::system::bin_path("gateway-api"))
        .arg("migrate")
        .env("DATABASE_URL", url)
        .env("REDIS_URL", gateway_testkit::redis_url())
        .env("APP_ENV", "test")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_system_runs_on_a_postgres_that_takes_only_tls() {
    let pg = PrivatePostgres::start_with(Options { tls_only: true }).unwrap_or_else(|| {
        panic!("could not start a private PostgreSQL with TLS (initdb, pg_ctl, openssl): run scripts/test, which installs them")
    });
    let base = format!("postgres://postgres@localhost:{}/pbg", pg.port());
    let trusted = format!(
        "{base}?sslmode=verify-full&sslrootcert={}",
        pg.certificate().display()
    );

    // Plain TCP is refused by the server; an untrusted certificate by the client.
    let (ok, err) = migrate(&base);
    assert!(!ok, "a plain connection was accepted");
    assert!(err.contains("pg_hba.conf"), "{err}");
    let (ok, err) = migrate(&format!("{base}?sslmode=verify-full"));
    assert!(!ok, "an untrusted certificate was accepted");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let (ok, err) = migrate(&format!("{base}?sslmode=sometimes"));
    assert!(
        !ok && err.contains("sslmode=sometimes is not one of"),
        "{err}"
    );

    // verify-full with the certificate trusted: the database is made and migrated.
    let (ok, err) = migrate(&trusted);
    assert!(ok, "{err}");
    // require: encrypted without checking the certificate (libpq's meaning).
    let (ok, err) = migrate(&format!("{base}?sslmode=require"));
    assert!(ok, "{err}");

    // The connection is encrypted.
    {
        use diesel_async::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct Ssl {
            #[diesel(sql_type = diesel::sql_types::Bool)]
            ssl: bool,
        }
        let mut conn = gateway_domain::db::connect(&trusted).await.unwrap();
        let row: Ssl =
            diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .get_result(&mut conn)
                .await
                .unwrap();
        assert!(row.ssl);
    }

    // The whole system on it: the api's pool and LISTEN, the worker's pool.
    let sys = TestSystem::start_with(&[("DATABASE_URL", trusted.as_str())])
        .await
        .unwrap();
    let (pid, token) = enroll(&sys, "tls", "tls@tls-corp.example", "TLS Corp").await;
    let t = verification_token(&sys, "tls@tls-corp.example", 1).await;
    let v = sys
        .gql_ok(Some(&token), VERIFY, serde_json::json!({"token": t}))
        .await;
    assert_eq!(
        v["verifyPrimaryContactEmail"]["vettingStatus"], "PENDING",
        "{v}"
    );
    let me = sys.gql_ok(Some(&token), ME, serde_json::json!({})).await;
    assert_eq!(me["me"]["partner"]["id"], pid.as_str());
}
