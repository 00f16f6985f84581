//! Reliability of the job system under faults: backlogs far beyond what apalis-redis can hold,
//! a worker killed mid-batch, graceful shutdown.

mod common;

use std::time::Duration;

use common::*;
use gateway_testkit::TestSystem;

use gateway_domain::queues::keys::Keys;
use gateway_domain::redis_conn::RedisConn;
use gateway_testkit::redis_conn;

/// Jobs of `queue` waiting in Redis (active list + scheduled set).
async fn waiting(conn: &mut RedisConn, prefix: &str, queue: &str) -> i64 {
    let k = Keys::new(prefix, queue);
    let (a, s): (i64, i64) = redis::pipe()
        .llen(k.active())
        .zcard(k.scheduled())
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
    queue_noop_jobs(&sys, &pid, "REMINDER", "reminder", JOBS).await;
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
            .arg(Keys::new(&sys.queue_prefix, "reminder").done())
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

/// Partners that bought an Action Pack and asked for their technical benefit's activation.
async fn partners_with_due_work(
    sys: &TestSystem,
    tags: &[&str],
) -> Vec<(String, String, String, chrono::DateTime<chrono::Utc>)> {
    let mut out = Vec::new();
    for tag in tags {
        let (pid, ga) = authorized_partner(sys, tag).await;
        let card = add_card(sys, &ga, SUCCEEDING_CARD).await;
        let order = buy(sys, &ga, "ACTION_PACK", &card).await;
        let ad = parse_time(&order["subscription"]["anniversaryDate"]);
        let d = sys
            .gql_ok(
                Some(&ga),
                "{ benefits(category: TECHNICAL) { edges { node { id code } } } }",
                serde_json::json!({}),
            )
            .await;
        let tech = d["benefits"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["code"] == "PRODUCT_SUPPORT")
            .unwrap()["node"]["id"]
            .clone();
        sys.gql_ok(
            Some(&ga),
            "mutation($id: ID!) { activateTechnicalBenefit(benefitId: $id, acknowledgeRefundLoss: true) { id } }",
            serde_json::json!({"id": tech}),
        )
        .await;
        out.push((
            pid,
            ga,
            order["subscription"]["id"].as_str().unwrap().to_owned(),
            ad,
        ));
    }
    out
}

async fn all_renewed_and_activated(
    sys: &TestSystem,
    partners: &[(String, String, String, chrono::DateTime<chrono::Utc>)],
) {
    for (_, ga, sub, _) in partners {
        eventually(60, "the renewal", || async {
            (subscription(sys, ga, sub).await["term"] == 2).then_some(())
        })
        .await;
        eventually(60, "the activation", || async {
            let d = sys.gql_ok(Some(ga), "{ benefits(category: TECHNICAL) { edges { node { code activation { state } } } } }", serde_json::json!({})).await;
            let ok = d["benefits"]["edges"].as_array().unwrap().iter().any(|e| e["node"]["code"] == "PRODUCT_SUPPORT" && e["node"]["activation"]["state"] == "ACTIVE");
            ok.then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_mid_batch_loses_nothing_and_charges_nobody_twice() {
    const CHARGED: &str =
        "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'";
    // The kill must land mid-work: some renewals charged, not all. One charge per job and one
    // job at a time make that a window the test can hit; a try that misses it starts over.
    for attempt in 1..=3 {
        let mut sys = TestSystem::start_with(&[
            ("AUTO_AUTHORIZE", "true"),
            ("TECHNICAL_ACTIVATION_DELAY_SECS", "3600"),
            ("REDISPATCH_AFTER_SECS", "3"),
            ("RENEWAL_BATCH", "1"),
            ("WORKER_CONCURRENCY", "1"),
        ])
        .await
        .unwrap();
        let op = operator_token(&sys).await;
        let partners =
            partners_with_due_work(&sys, &["killa", "killb", "killc", "killd", "kille"]).await;
        // A year passes for everyone at once: renewals and activations fall due together,
        // and the worker is killed (SIGKILL) as soon as the first charge is made.
        for (pid, _, _, ad) in &partners {
            advance_to(&sys, &op, pid, *ad + chrono::Duration::hours(2)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while count(&sys, CHARGED).await == 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sys.worker.as_mut().unwrap().kill().await.unwrap();
        let charged_before = count(&sys, CHARGED).await;
        eprintln!("try {attempt}: renewal charges made before the kill: {charged_before} of 5");
        if charged_before == 0 || charged_before == 5 {
            continue;
        }
        sys.start_worker().unwrap();
        all_renewed_and_activated(&sys, &partners).await;
        // A second charge would come from a re-dispatch (REDISPATCH_AFTER_SECS=3): wait past
        // it. (The killed worker's jobs stay in its in-flight set, so the queues never look
        // idle here.)
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(
            count(&sys, CHARGED).await,
            5,
            "each renewal charged exactly once ({charged_before} before the kill)"
        );
        assert_eq!(
            count(
                &sys,
                "SELECT count(*) AS n FROM orders WHERE kind = 'RENEWAL'"
            )
            .await,
            5
        );
        assert_eq!(count(&sys, "SELECT count(*) AS n FROM invoices").await, 10);
        return;
    }
    panic!("three tries and the kill never landed between the first and the last charge");
}

#[tokio::test(flavor = "multi_thread")]
async fn three_workers_do_each_piece_of_work_once() {
    let sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("TECHNICAL_ACTIVATION_DELAY_SECS", "3600"),
        ("REDISPATCH_AFTER_SECS", "2"),
    ])
    .await
    .unwrap();
    let _second = sys.spawn_worker().unwrap();
    let _third = sys.spawn_worker().unwrap();
    let op = operator_token(&sys).await;
    let partners = partners_with_due_work(&sys, &["triplea", "tripleb", "triplec"]).await;
    // One partner renews by hand: reminders are due too.
    let (_, ga0, sub0, _) = &partners[0];
    sys.gql_ok(
        Some(ga0),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }",
        serde_json::json!({"id": sub0}),
    )
    .await;
    for (pid, _, _, ad) in &partners {
        advance_to(
            &sys,
            &op,
            pid,
            *ad - chrono::Duration::days(1) + chrono::Duration::hours(1),
        )
        .await;
    }
    // AD−30, AD−15 and AD−1 reminders for the first partner, each once.
    eventually(60, "three reminders", || async {
        (mails_with_subject(&sys, "triplea@triplea-corp.example", "anniversary").len() >= 3)
            .then_some(())
    })
    .await;
    for (pid, _, _, ad) in &partners[1..] {
        advance_to(&sys, &op, pid, *ad + chrono::Duration::hours(2)).await;
    }
    for (_, ga, sub, _) in &partners[1..] {
        eventually(60, "the renewal", || async {
            (subscription(&sys, ga, sub).await["term"] == 2).then_some(())
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        mails_with_subject(&sys, "triplea@triplea-corp.example", "anniversary").len(),
        3
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        2
    );
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM invoices").await, 5);
    // Receipts: one per paid order, whichever worker booked it.
    eventually(30, "the receipts", || async {
        let mut all = true;
        for (i, (_, ga, _, _)) in partners.iter().enumerate() {
            let expected = if i == 0 { 1 } else { 2 };
            all &= mails_with_subject(&sys, &ga_email(&sys, ga).await, "Receipt").len() == expected;
        }
        all.then_some(())
    })
    .await;
}

async fn ga_email(sys: &TestSystem, token: &str) -> String {
    sys.gql_ok(Some(token), ME, serde_json::json!({})).await["me"]["user"]["email"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_worker_cleanly_and_a_new_one_finishes_the_work() {
    const JOBS: i64 = 3_000;
    let mut sys = TestSystem::start_with(&[]).await.unwrap();
    let (pid, _) = enroll(&sys, "term", "term@term-corp.example", "Term Corp").await;
    queue_noop_jobs(&sys, &pid, "REMINDER", "reminder", JOBS).await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut worker = sys.worker.take().unwrap();
    let pid_s = worker.id().unwrap().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid_s])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), worker.wait())
        .await
        .expect("the worker stops within its shutdown timeout")
        .unwrap();
    assert!(exit.success(), "clean exit after SIGTERM: {exit}");
    sys.start_worker().unwrap();
    let redis = redis_conn().await;
    eventually(90, "every job done after the restart", || {
        let mut redis = redis.clone();
        let prefix = sys.queue_prefix.clone();
        let sys = &sys;
        async move {
            let left = count(
                sys,
                "SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL",
            )
            .await;
            let done: i64 = redis::cmd("SCARD")
                .arg(Keys::new(&prefix, "reminder").done())
                .query_async(&mut redis)
                .await
                .unwrap();
            // Jobs the stopped worker had fetched come back to the queue and run again (they
            // find their rows done): the queue must drain too, not only reach JOBS done.
            let waiting = waiting(&mut redis, &prefix, "reminder").await;
            (left == 0 && done >= JOBS && waiting == 0).then_some(())
        }
    })
    .await;
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM scheduled_actions WHERE status = 'PENDING'"
        )
        .await,
        0,
        "every action done once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_redis_down_for_30_seconds_the_api_keeps_accepting_and_the_worker_catches_up() {
    // A Redis of this test's own, so stopping it disturbs no other test.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start_redis = || {
        std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
    };
    let Ok(mut redis) = start_redis() else {
        panic!("redis-server is not installed: install Debian's redis-server package, or run scripts/test, which installs it");
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let url = format!("redis://127.0.0.1:{port}");
    let sys = TestSystem::start_with(&[("REDIS_URL", url.as_str())])
        .await
        .unwrap();
    enroll(&sys, "before", "before@before-corp.example", "Before Corp").await;
    sys.smtp
        .wait_for("before@before-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();

    redis.kill().unwrap();
    redis.wait().unwrap();
    let ready = sys
        .http()
        .get(format!("{}/readyz", sys.api_url))
        .send()
        .await
        .unwrap();
    // Still ready: the api works through a Redis outage; the body says Redis is down.
    assert_eq!(ready.status(), 200, "ready without Redis");
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["redis"], "unreachable", "{body}");
    // Mutations keep working: their jobs wait in the outbox.
    for i in 0..3 {
        enroll(
            &sys,
            &format!("during{i}"),
            &format!("during{i}@during-corp.example"),
            "During Corp",
        )
        .await;
    }
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(sys.smtp.to("during0@during-corp.example").is_empty());
    let mut redis = start_redis().unwrap();
    for i in 0..3 {
        sys.smtp
            .wait_for(
                &format!("during{i}@during-corp.example"),
                1,
                Duration::from_secs(60),
            )
            .await
            .unwrap_or_else(|e| panic!("email {i} after Redis came back: {e}"));
    }
    let ready = sys
        .http()
        .get(format!("{}/readyz", sys.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    drop(sys);
    let _ = redis.kill();
    let _ = redis.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_postgres_restart_the_api_and_worker_recover_without_a_restart() {
    let Some(pg) = gateway_testkit::PrivatePostgres::start() else {
        panic!("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: install Debian's postgresql package, or run scripts/test, which installs it");
    };
    let url = pg.url();
    let migrated = std::process::Command::new(gateway_testkit::system::bin_path("gateway-api"))
        .arg("migrate")
        .env("DATABASE_URL", &url)
        .env("REDIS_URL", gateway_testkit::redis_url())
        .env("APP_ENV", "test")
        .status()
        .unwrap();
    assert!(migrated.success());
    let sys = TestSystem::start_with(&[("DATABASE_URL", url.as_str())])
        .await
        .unwrap();
    enroll(&sys, "pga", "pga@pga-corp.example", "PgA Corp").await;
    sys.smtp
        .wait_for("pga@pga-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();

    assert!(pg.pg_ctl("stop"));
    let token = sys.token("pgb", Some("pgb@pgb-corp.example"));
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(&token)
        .json(&serde_json::json!({"query": ME}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(status == 503 || status == 200, "{status}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INTERNAL",
        "{body}"
    );
    assert!(
        !body.to_string().contains("connection"),
        "no driver detail leaks: {body}"
    );
    let ready = sys
        .http()
        .get(format!("{}/readyz", sys.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);

    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(pg.pg_ctl("start"));
    // Same processes: the api's pool reconnects, the worker's relay and jobs resume.
    eventually(60, "the api to answer again", || async {
        let r = sys.gql(Some(&token), ME, serde_json::json!({})).await;
        r.get("errors").is_none().then_some(())
    })
    .await;
    enroll(&sys, "pgb", "pgb@pgb-corp.example", "PgB Corp").await;
    sys.smtp
        .wait_for("pgb@pgb-corp.example", 1, Duration::from_secs(60))
        .await
        .unwrap();
    drop(sys);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_behind_tls_and_a_password_carries_the_jobs() {
    // A Redis of this test's own: TLS only (a self-signed certificate), with a password.
    let dir = std::env::temp_dir().join(format!("pbg-redis-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is not installed ({e}): run scripts/test, which installs it")
        });
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let password = format!("pw{}", uuid::Uuid::new_v4().simple());
    let mut redis = std::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--tls-ca-cert-file")
        .arg(&cert)
        .args(["--tls-auth-clients", "no", "--requirepass", &password])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is not installed: run scripts/test, which installs it");
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // `#insecure`: the certificate is self-signed.
    let url = format!("rediss://default:{password}@127.0.0.1:{port}/#insecure");
    let sys = TestSystem::start_with(&[("REDIS_URL", url.as_str())])
        .await
        .unwrap();
    // The enrollment's verification email travels outbox → Redis (TLS) → worker → SMTP.
    enroll(&sys, "tls", "tls@tls-corp.example", "TLS Corp").await;
    sys.smtp
        .wait_for("tls@tls-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("no email through the TLS Redis: {e}\n{}", sys.logs()));
    let ready: serde_json::Value = sys
        .http()
        .get(format!("{}/readyz", sys.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["redis"], "ok", "{ready}");
    assert!(
        !sys.logs().contains(&password),
        "the Redis password is in the logs"
    );
    drop(sys);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
