//! Operators' view of the queues: exact counts, dead jobs, retry and discard, metrics, the
//! /ops page, and retention keeping Redis small.

mod common;

use std::time::Duration;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

const QUEUES: &str =
    "{ jobQueues { name pending scheduled running done failed dead waitingInPostgres } }";

async fn queue(sys: &TestSystem, op: &str, name: &str) -> Value {
    let d = sys.gql_ok(Some(op), QUEUES, json!({})).await;
    d["jobQueues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_email_ends_dead_visible_to_operators_who_retry_it() {
    let sys =
        TestSystem::start_with(&[("EMAIL_MAX_ATTEMPTS", "2"), ("EMAIL_RETRY_BASE_MS", "100")])
            .await
            .unwrap();
    let op = operator_token(&sys).await;
    sys.smtp.refuse(true);
    let (_, ga) = enroll(&sys, "dead", "dead@dead-corp.example", "Dead Corp").await;
    let q = eventually(30, "the email job in the dead set", || async {
        let q = queue(&sys, &op, "email").await;
        (q["dead"] == 1).then_some(q)
    })
    .await;
    assert_eq!(q["pending"], 0);
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status = 'DEAD'"
        )
        .await,
        1
    );
    let jobs = sys
        .gql_ok(
            Some(&op),
            "{ jobs(queue: \"email\", state: DEAD) { totalCount nodes { id attempts lastError payload } } }",
            json!({}),
        )
        .await;
    let job = jobs["jobs"]["nodes"][0].clone();
    assert!(
        job["payload"].as_str().unwrap().contains("email_id"),
        "{job:#}"
    );
    assert!(
        job["lastError"].as_str().unwrap().contains("dead"),
        "{job:#}"
    );

    // Metrics say the same.
    let m = sys
        .http()
        .get(&sys.metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains("pbg_jobs{queue=\"email\",state=\"dead\"} 1"),
        "{m}"
    );
    assert!(m.contains("pbg_emails{status=\"DEAD\"} 1"), "{m}");
    assert!(m.contains("pbg_outbox_lag_seconds"));

    // Only operators see or steer queues.
    let r = sys.gql(Some(&ga), QUEUES, json!({})).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = sys
        .gql(
            Some(&ga),
            "mutation($id: String!) { retryJob(queue: \"email\", id: $id) }",
            json!({"id": job["id"]}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = sys
        .gql(
            Some(&op),
            "mutation { discardJob(queue: \"email\", id: \"nope\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_FOUND"));
    let r = sys
        .gql(
            Some(&op),
            "{ jobs(queue: \"nope\", state: DEAD) { totalCount nodes { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));

    // The SMTP server is back; the operator retries: the email is delivered.
    sys.smtp.refuse(false);
    let d = sys
        .gql_ok(
            Some(&op),
            "mutation($id: String!) { retryJob(queue: \"email\", id: $id) }",
            json!({"id": job["id"]}),
        )
        .await;
    assert_eq!(d["retryJob"], "EMAIL_REVIVED");
    sys.smtp
        .wait_for("dead@dead-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();
    eventually(30, "the email to be SENT", || async {
        (count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status = 'SENT'",
        )
        .await
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(queue(&sys, &op, "email").await["dead"], 0);

    // The page is served.
    let page = sys
        .http()
        .get(format!("{}/ops", sys.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("/ops/app.js"));
    let script = sys
        .http()
        .get(format!("{}/ops/app.js", sys.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("jobQueues"));
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_trims_finished_jobs_so_redis_and_the_outbox_do_not_grow() {
    let sys = TestSystem::start_with(&[
        ("JOB_RETENTION_SECS", "1"),
        ("RETENTION_INTERVAL_MS", "300"),
    ])
    .await
    .unwrap();
    let (pid, _) = enroll(&sys, "trim", "trim@trim-corp.example", "Trim Corp").await;
    queue_noop_jobs(&sys, &pid, "LAPSE", "lifecycle", 2000).await;
    let mut redis = gateway_testkit::redis_conn().await;
    let prefix = sys.queue_prefix.clone();
    let k = gateway_domain::queues::keys::Keys::new(&prefix, "lifecycle");
    eventually(60, "all jobs run and trimmed", || {
        let mut redis = redis.clone();
        let (sys, k) = (&sys, &k);
        async move {
            // Relayed outbox rows go too, once older than the retention.
            let left = count(sys, "SELECT count(*) AS n FROM outbox").await;
            let (done, data, waiting): (i64, i64, i64) = redis::pipe()
                .scard(k.done())
                .hlen(k.data())
                .llen(k.active())
                .query_async(&mut redis)
                .await
                .unwrap();
            (left == 0 && waiting == 0 && done == 0 && data == 0).then_some(())
        }
    })
    .await;
    let metas: Vec<String> = redis::cmd("KEYS")
        .arg(k.meta("*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(metas.is_empty(), "{} metadata keys left", metas.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn payloads_of_unknown_versions_go_to_the_dead_set_with_a_clear_error() {
    let sys = TestSystem::start().await.unwrap();
    let op = operator_token(&sys).await;
    count(
        &sys,
        "WITH o AS (INSERT INTO outbox (queue, payload) VALUES
        ('renewal', '{\"v\": 99, \"action_id\": \"01a1ffac-0000-7000-8000-000000000000\"}'),
        ('email', '{\"v\": 7, \"email_id\": \"01a1ffac-0000-7000-8000-000000000000\"}') RETURNING 1)
        SELECT count(*) AS n FROM o",
    )
    .await;
    for (queue, needle) in [
        ("renewal", "unknown DueAction payload version 99"),
        ("email", "unknown SendEmail payload version 7"),
    ] {
        let job = eventually(30, "the dead job", || async {
            let d = sys
                .gql_ok(
                    Some(&op),
                    "query($q: String!) { jobs(queue: $q, state: DEAD) { totalCount nodes { lastError attempts } } }",
                    json!({"q": queue}),
                )
                .await;
            d["jobs"]["nodes"].as_array().unwrap().first().cloned()
        })
        .await;
        assert!(
            job["lastError"].as_str().unwrap().contains(needle),
            "{job:#}"
        );
        assert_eq!(queue_counts_dead(&sys, &op, queue).await, 1);
    }
}

async fn queue_counts_dead(sys: &TestSystem, op: &str, name: &str) -> i64 {
    queue(sys, op, name).await["dead"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hung_smtp_server_times_out_and_the_email_ends_dead_not_lost() {
    let sys = TestSystem::start_with(&[
        ("EMAIL_MAX_ATTEMPTS", "3"),
        ("EMAIL_RETRY_BASE_MS", "100"),
        ("EMAIL_SMTP_TIMEOUT_MS", "500"),
    ])
    .await
    .unwrap();
    let op = operator_token(&sys).await;
    sys.smtp.stall(true);
    enroll(&sys, "hung", "hung@hung-corp.example", "Hung Corp").await;
    eventually(45, "the email to give up", || async {
        (queue(&sys, &op, "email").await["dead"] == 1).then_some(())
    })
    .await;
    assert_eq!(
        count(
            &sys,
            "SELECT attempts::bigint AS n FROM emails WHERE status = 'DEAD'"
        )
        .await,
        3
    );
    let job = sys
        .gql_ok(
            Some(&op),
            "{ jobs(queue: \"email\", state: DEAD) { totalCount nodes { id lastError } } }",
            json!({}),
        )
        .await["jobs"]["nodes"][0]
        .clone();
    sys.smtp.stall(false);
    let d = sys
        .gql_ok(
            Some(&op),
            "mutation($id: String!) { retryJob(queue: \"email\", id: $id) }",
            json!({"id": job["id"]}),
        )
        .await;
    assert_eq!(d["retryJob"], "EMAIL_REVIVED");
    sys.smtp
        .wait_for("hung@hung-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_worker_reports_job_durations_per_queue() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let sys = TestSystem::start_with(&[("WORKER_METRICS_BIND", bind.as_str())])
        .await
        .unwrap();
    enroll(
        &sys,
        "metered",
        "metered@metered-corp.example",
        "Metered Corp",
    )
    .await;
    sys.smtp
        .wait_for("metered@metered-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let text = eventually(30, "the email job in the worker's metrics", || async {
        let t = sys
            .http()
            .get(format!("http://{bind}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        t.contains("pbg_job_duration_seconds_count{outcome=\"ok\",queue=\"email\"} 1")
            .then_some(t)
    })
    .await;
    assert!(text.contains("pbg_job_duration_seconds_bucket"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn emails_due_together_travel_in_batches_and_each_keeps_its_own_outcome() {
    // Seven emails committed together; EMAIL_BATCH=3 makes three jobs (3 + 3 + 1). One
    // recipient is refused for good: with one attempt allowed that email is DEAD, its job goes
    // to the dead set, and the other two emails of that job are still sent, once.
    let sys = TestSystem::start_with(&[("EMAIL_BATCH", "3"), ("EMAIL_MAX_ATTEMPTS", "1")])
        .await
        .unwrap();
    let op = operator_token(&sys).await;
    sys.smtp.refuse_recipient("reader4@batch.example", true);
    count(
        &sys,
        "WITH e AS (
             INSERT INTO emails (id, template, recipient, subject, body_text, body_html,
                 status, next_attempt_at)
             SELECT ('00000000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, 'test',
                 'reader' || g || '@batch.example',
                 'Batch message ' || g, 'Hello ' || g, '<p>Hello ' || g || '</p>',
                 'PENDING', now()
             FROM generate_series(1, 7) g RETURNING id),
         o AS (INSERT INTO outbox (queue, payload)
             SELECT 'email', jsonb_build_object('v', 1, 'email_id', id) FROM e ORDER BY id
             RETURNING 1)
         SELECT count(*) AS n FROM o",
    )
    .await;
    let q = eventually(30, "three email jobs finished", || async {
        let q = queue(&sys, &op, "email").await;
        (q["done"].as_i64().unwrap() + q["dead"].as_i64().unwrap() == 3).then_some(q)
    })
    .await;
    assert_eq!(
        (q["done"].as_i64(), q["dead"].as_i64()),
        (Some(2), Some(1)),
        "{q:#}"
    );
    for g in [1, 2, 3, 5, 6, 7] {
        let to = format!("reader{g}@batch.example");
        sys.smtp
            .wait_for(&to, 1, Duration::from_secs(10))
            .await
            .unwrap();
    }
    assert!(sys.smtp.to("reader4@batch.example").is_empty());
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM emails
             WHERE status = 'SENT' AND attempts = 1 AND body_text IS NULL AND sent_at IS NOT NULL"
        )
        .await,
        6
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status = 'DEAD'
             AND recipient = 'reader4@batch.example' AND last_error LIKE '%550%'"
        )
        .await,
        1
    );
    // The dead job holds its whole batch: three emails, one of them the dead one.
    let jobs = sys
        .gql_ok(
            Some(&op),
            "{ jobs(queue: \"email\", state: DEAD) { totalCount nodes { id lastError payload } } }",
            json!({}),
        )
        .await;
    let job = jobs["jobs"]["nodes"][0].clone();
    let payload: Value = serde_json::from_str(job["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["more"].as_array().map(Vec::len), Some(2), "{job:#}");
    assert!(
        job["lastError"].as_str().unwrap().contains("dead"),
        "{job:#}"
    );

    // The mailbox exists again; retrying the job revives the dead email only.
    sys.smtp.refuse_recipient("reader4@batch.example", false);
    let d = sys
        .gql_ok(
            Some(&op),
            "mutation($id: String!) { retryJob(queue: \"email\", id: $id) }",
            json!({"id": job["id"]}),
        )
        .await;
    assert_eq!(d["retryJob"], "EMAIL_REVIVED");
    sys.smtp
        .wait_for("reader4@batch.example", 1, Duration::from_secs(30))
        .await
        .unwrap();
    eventually(30, "every email sent", || async {
        (count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status = 'SENT'",
        )
        .await
            == 7)
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for g in 1..=7 {
        let to = format!("reader{g}@batch.example");
        assert_eq!(sys.smtp.to(&to).len(), 1, "{to} sent once");
    }
}

/// The relay's claim: due rows of its queue only, oldest first, at most the limit, locked
/// against another relay. The claim now tells the planner to read the undispatched-rows index
/// in order (item 25 of docs/BENCHMARKS.md); this checks it still claims what it must, on an
/// outbox never analyzed. The plan itself is measured there, not here.
#[tokio::test]
async fn the_relay_claims_the_oldest_due_rows_of_its_queue_up_to_the_limit() {
    use diesel_async::{AsyncConnection, RunQueryDsl};
    use gateway_domain::outbox;
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    // 3,000 due email rows, older the lower the number; one email row due in an hour; 50 due
    // rows of another queue, older than all the email rows.
    diesel::sql_query(
        "INSERT INTO outbox (queue, payload, run_at)
         SELECT 'email', jsonb_build_object('n', g), now() - make_interval(secs => 4000 - g)
         FROM generate_series(1, 3000) g
         UNION ALL SELECT 'email', '{\"n\": 0}', now() + interval '1 hour'
         UNION ALL SELECT 'action', '{}', now() - interval '2 hours' FROM generate_series(1, 50)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let numbers = |rows: &[gateway_domain::db::models::OutboxRow]| -> Vec<i64> {
        rows.iter()
            .map(|r| r.payload["n"].as_i64().unwrap())
            .collect()
    };
    let mut other = db.connect().await.unwrap();
    conn.transaction::<_, gateway_domain::AppError, _>(async |conn| {
        let first = outbox::claim_due(conn, "email", 100).await?;
        assert_eq!(numbers(&first), (1..=100).collect::<Vec<_>>());
        // Another relay meanwhile skips the locked rows and takes the next oldest.
        let next = other
            .transaction::<_, gateway_domain::AppError, _>(async |other| {
                outbox::claim_due(other, "email", 5000).await
            })
            .await?;
        assert_eq!(numbers(&next), (101..=3000).collect::<Vec<_>>());
        Ok(())
    })
    .await
    .unwrap();
    drop((conn, other));
    db.remove().await.unwrap();
}

/// A renewal cancels its subscription's pending work of the old term, but not the charge
/// actions its job runs: those the job marks DONE itself (cancelling them first wrote each
/// row twice; docs/BENCHMARKS.md, item 28). Other subjects' work is left alone.
#[tokio::test]
async fn cancelling_a_subjects_pending_work_leaves_out_the_actions_being_run() {
    use diesel_async::{RunQueryDsl, SimpleAsyncConnection};
    use gateway_domain::due as actions;
    use gateway_domain::enums::ActionKind;
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let mut conn = db.connect().await.unwrap();
    let (partner, sub, other) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    let (running, lapse, reminder) = (
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
        uuid::Uuid::now_v7(),
    );
    conn.batch_execute(&format!(
        "INSERT INTO partners (id, mpn_id, legal_name, address_lines, city, postal_code, country,
             contact_first_name, contact_last_name, contact_email, contact_phone, tenant_id,
             tenant_created, vetting_status, vetting_sub_status, network_member_since)
         VALUES ('{partner}', '7000001', 'Cancel Co', '{{\"1 Main St\"}}', 'Seattle', '98101', 'US',
             'Ada', 'Lovelace', 'ada@cancel.example', '+1 206 555 0100', gen_random_uuid(), true,
             'AUTHORIZED', 'DECISION', now());
         INSERT INTO scheduled_actions (id, partner_id, kind, subject_id, term, due_at, status)
         VALUES ('{running}', '{partner}', 'RENEWAL_CHARGE', '{sub}', 1, now(), 'PENDING'),
                ('{lapse}', '{partner}', 'LAPSE', '{sub}', 1, now() + interval '31 days', 'PENDING'),
                ('{reminder}', '{partner}', 'REMINDER', '{other}', 1, now(), 'PENDING')"
    ))
    .await
    .unwrap();
    let cancelled = actions::cancel_pending_of(&mut conn, &[sub], None, &[running])
        .await
        .unwrap();
    assert_eq!(cancelled, 1, "only the lapse of the renewed subscription");
    #[derive(diesel::QueryableByName)]
    struct Status {
        #[diesel(sql_type = diesel::sql_types::Text)]
        status: String,
    }
    for (id, want) in [
        (running, "PENDING"),
        (lapse, "CANCELLED"),
        (reminder, "PENDING"),
    ] {
        let sql = format!("SELECT status FROM scheduled_actions WHERE id = '{id}'");
        let row: Status = diesel::sql_query(sql).get_result(&mut conn).await.unwrap();
        assert_eq!(row.status, want, "action {id}");
    }
    // Without exceptions every pending action of the subject goes, the kind filter still holds.
    let cancelled = actions::cancel_pending_of(&mut conn, &[sub], Some(&[ActionKind::Lapse]), &[])
        .await
        .unwrap();
    assert_eq!(
        cancelled, 0,
        "the lapse is already cancelled; the charge is another kind"
    );
    let cancelled = actions::cancel_pending_of(&mut conn, &[sub], None, &[])
        .await
        .unwrap();
    assert_eq!(cancelled, 1, "the charge");
    drop(conn);
    db.remove().await.unwrap();
}

const QUEUE_VIEW: &str =
    "{ jobQueues { name pending dead waitingInPostgres paused pausedAt latencySeconds } }";

async fn queue_view(sys: &TestSystem, op: &str, name: &str) -> Value {
    sys.gql_ok(Some(op), QUEUE_VIEW, json!({})).await["jobQueues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == name)
        .cloned()
        .unwrap()
}

#[tokio::test]
async fn a_paused_queue_keeps_its_jobs_in_postgres_until_resumed_and_shows_the_wait() {
    let sys = TestSystem::start_with(&[("AUTO_AUTHORIZE", "true")])
        .await
        .unwrap();
    let op = operator_token(&sys).await;
    let (_, ga) = authorized_partner(&sys, "pauser").await;
    // Only operators steer queues.
    let r = sys
        .gql(
            Some(&ga),
            "mutation { pauseQueue(queue: \"email\") { paused } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r}");
    let r = sys
        .gql(
            Some(&op),
            "mutation { pauseQueue(queue: \"nope\") { paused } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r}");

    // A live view of the queues, pushed once a second to operators.
    let (mut live, _) = {
        let mut ws = subscribe(
            &sys,
            &op,
            "subscription { queueStats { name paused waitingInPostgres latencySeconds } }",
        )
        .await;
        let first = next_json(&mut ws).await;
        assert_eq!(first["type"], "next", "{first}");
        (ws, first)
    };

    let paused = sys
        .gql_ok(
            Some(&op),
            "mutation { pauseQueue(queue: \"email\") { name paused pausedAt } }",
            json!({}),
        )
        .await;
    assert_eq!(paused["pauseQueue"]["paused"], true);
    assert!(paused["pauseQueue"]["pausedAt"].is_string());
    // An invitation email while paused: it waits in Postgres, nobody receives it.
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "held@pauser-corp.example", "roles": ["ADMIN_AGENT"]}),
    )
    .await;
    let early = sys
        .smtp
        .wait_for("held@pauser-corp.example", 1, Duration::from_secs(3))
        .await;
    assert!(early.is_err(), "an email went out of a paused queue");
    let q = queue_view(&sys, &op, "email").await;
    assert_eq!(q["paused"], true);
    assert!(q["waitingInPostgres"].as_i64().unwrap() >= 1, "{q}");
    assert!(
        q["latencySeconds"].as_f64().unwrap() >= 2.0,
        "the wait shows: {q}"
    );
    // The live view says the same.
    // Events come once a second; within ten of them one shows the held email.
    let mut seen = None;
    for _ in 0..10 {
        let m = next_json(&mut live).await;
        let email = m["payload"]["data"]["queueStats"]
            .as_array()
            .and_then(|qs| qs.iter().find(|q| q["name"] == "email"))
            .cloned()
            .unwrap_or_default();
        if email["paused"] == true && email["waitingInPostgres"].as_i64() >= Some(1) {
            seen = Some(email);
            break;
        }
    }
    let seen = seen.expect("queueStats showed the paused email queue with its waiting job");
    assert!(seen["latencySeconds"].as_f64().unwrap() > 0.0, "{seen}");

    // Resumed: the email goes out, and the wait is over.
    let resumed = sys
        .gql_ok(
            Some(&op),
            "mutation { resumeQueue(queue: \"email\") { paused } }",
            json!({}),
        )
        .await;
    assert_eq!(resumed["resumeQueue"]["paused"], false);
    sys.smtp
        .wait_for("held@pauser-corp.example", 1, Duration::from_secs(30))
        .await
        .unwrap();
    let q = eventually(30, "the email queue drained", || async {
        let q = queue_view(&sys, &op, "email").await;
        (q["waitingInPostgres"] == 0 && q["latencySeconds"].as_f64()? < 1.0).then_some(q)
    })
    .await;
    assert_eq!(q["paused"], false);
    let audit = count(
        &sys,
        "SELECT count(*) AS n FROM audit_log WHERE action IN ('queue.paused', 'queue.resumed')",
    )
    .await;
    assert_eq!(audit, 2);
}

#[tokio::test]
async fn dead_jobs_are_retried_or_discarded_in_bulk_with_their_count() {
    let sys = TestSystem::start().await.unwrap();
    let op = operator_token(&sys).await;
    // Five jobs this version cannot read: they go to the renewal queue's dead set.
    count(
        &sys,
        "WITH o AS (INSERT INTO outbox (queue, payload)
           SELECT 'renewal', jsonb_build_object('v', 99, 'action_id', gen_random_uuid())
           FROM generate_series(1, 5) RETURNING 1)
         SELECT count(*) AS n FROM o",
    )
    .await;
    eventually(30, "five dead jobs", || async {
        (queue_view(&sys, &op, "renewal").await["dead"] == 5).then_some(())
    })
    .await;
    let r = sys
        .gql(
            None,
            "mutation { discardDeadJobs(queue: \"renewal\") }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"), "{r}");
    let d = sys
        .gql_ok(
            Some(&op),
            "mutation { discardDeadJobs(queue: \"renewal\") }",
            json!({}),
        )
        .await;
    assert_eq!(d["discardDeadJobs"], 5);
    assert_eq!(queue_view(&sys, &op, "renewal").await["dead"], 0);
    let audited = count(
        &sys,
        "SELECT count(*) AS n FROM audit_log WHERE action = 'queue.dead_discarded' AND details->>'count' = '5'",
    )
    .await;
    assert_eq!(audited, 1);

    // Retried in bulk: each is put back (an unreadable payload as it was), and the count said.
    count(
        &sys,
        "WITH o AS (INSERT INTO outbox (queue, payload)
           SELECT 'renewal', jsonb_build_object('v', 98, 'action_id', gen_random_uuid())
           FROM generate_series(1, 2) RETURNING 1)
         SELECT count(*) AS n FROM o",
    )
    .await;
    eventually(30, "two dead jobs", || async {
        (queue_view(&sys, &op, "renewal").await["dead"] == 2).then_some(())
    })
    .await;
    let d = sys
        .gql_ok(
            Some(&op),
            "mutation { retryDeadJobs(queue: \"renewal\") }",
            json!({}),
        )
        .await;
    assert_eq!(d["retryDeadJobs"], 2);
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'queue.dead_retried' AND details->>'count' = '2'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn due_work_shows_what_is_due_now_and_what_falls_due_this_week() {
    let sys = TestSystem::start_with(&[("AUTO_AUTHORIZE", "true")])
        .await
        .unwrap();
    let op = operator_token(&sys).await;
    let (pid, _) = authorized_partner(&sys, "duework").await;
    // The lifecycle queue paused: a lapse due an hour ago stays due (its job waits in Postgres).
    sys.gql_ok(
        Some(&op),
        "mutation { pauseQueue(queue: \"lifecycle\") { paused } }",
        json!({}),
    )
    .await;
    count(
        &sys,
        &format!(
            "WITH a AS (INSERT INTO scheduled_actions (id, partner_id, kind, subject_id, term, tag, due_at, status)
               VALUES (gen_random_uuid(), '{pid}', 'LAPSE', gen_random_uuid(), 1, '', now() - interval '1 hour', 'PENDING'),
                      (gen_random_uuid(), '{pid}', 'REMINDER', gen_random_uuid(), 1, 'a', now() + interval '2 hours', 'PENDING'),
                      (gen_random_uuid(), '{pid}', 'REMINDER', gen_random_uuid(), 1, 'b', now() + interval '3 days', 'PENDING'),
                      (gen_random_uuid(), '{pid}', 'REMINDER', gen_random_uuid(), 1, 'c', now() + interval '30 days', 'PENDING')
               RETURNING 1)
             SELECT count(*) AS n FROM a"
        ),
    )
    .await;
    let d = sys
        .gql_ok(
            Some(&op),
            "{ dueWork { kind dueNow oldestDueAt next24Hours next7Days } }",
            json!({}),
        )
        .await;
    let kind = |k: &str| {
        d["dueWork"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["kind"] == k)
            .cloned()
            .unwrap_or_else(|| panic!("no {k} in {d}"))
    };
    let lapse = kind("LAPSE");
    assert_eq!(lapse["dueNow"], 1, "{d}");
    let oldest = parse_time(&lapse["oldestDueAt"]);
    let age = chrono::Utc::now() - oldest;
    assert!(
        age > chrono::Duration::minutes(59) && age < chrono::Duration::minutes(65),
        "{lapse}"
    );
    let reminder = kind("REMINDER");
    assert_eq!(reminder["dueNow"], 0);
    assert_eq!(reminder["next24Hours"], 1);
    assert_eq!(
        reminder["next7Days"], 2,
        "the one in 30 days is not this week: {d}"
    );
    let r = sys.gql(None, "{ dueWork { kind } }", json!({})).await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"), "{r}");
}

#[tokio::test]
async fn the_console_sees_the_workers_up_and_what_they_processed_per_minute() {
    let mut sys = TestSystem::start_with(&[("AUTO_AUTHORIZE", "true")])
        .await
        .unwrap();
    let op = operator_token(&sys).await;
    let pid = sys.worker.as_ref().unwrap().id().unwrap() as i64;
    const WORKERS: &str = "{ workers { host pid queues concurrency startedAt lastHeartbeat } }";
    let w = eventually(10, "the worker's heartbeat", || async {
        let d = sys.gql_ok(Some(&op), WORKERS, json!({})).await;
        d["workers"]
            .as_array()?
            .iter()
            .find(|w| w["pid"] == pid)
            .cloned()
    })
    .await;
    assert!(!w["host"].as_str().unwrap().is_empty());
    assert_eq!(w["concurrency"], 8, "WORKER_CONCURRENCY's default: {w}");
    assert!(w["queues"].as_array().unwrap().iter().any(|q| q == "email"));
    let beat = parse_time(&w["lastHeartbeat"]);
    assert!(
        chrono::Utc::now() - beat < chrono::Duration::seconds(10),
        "{w}"
    );

    // Three verification emails sent, two jobs this version cannot read (failed, dead).
    for i in 0..3 {
        authorized_partner(&sys, &format!("minute{i}")).await;
    }
    count(
        &sys,
        "WITH o AS (INSERT INTO outbox (queue, payload)
           SELECT 'renewal', jsonb_build_object('v', 97, 'action_id', gen_random_uuid())
           FROM generate_series(1, 2) RETURNING 1)
         SELECT count(*) AS n FROM o",
    )
    .await;
    const THROUGHPUT: &str =
        "{ queueThroughput(minutes: 5) { queue points { minute processed failed } } }";
    let total = |d: &Value, queue: &str, what: &str| -> i64 {
        d["queueThroughput"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["queue"] == queue)
            .unwrap()["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[what].as_i64().unwrap())
            .sum()
    };
    let d = eventually(20, "the processed and failed jobs reported", || async {
        let d = sys.gql_ok(Some(&op), THROUGHPUT, json!({})).await;
        (total(&d, "email", "processed") >= 3 && total(&d, "renewal", "failed") >= 2).then_some(d)
    })
    .await;
    let email = d["queueThroughput"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "email")
        .unwrap();
    assert_eq!(
        email["points"].as_array().unwrap().len(),
        5,
        "one point per minute"
    );
    assert_eq!(total(&d, "email", "failed"), 0);

    // A clean stop takes the process off the list at once.
    let worker = sys.worker.as_ref().unwrap().id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &worker.to_string()])
        .status()
        .unwrap();
    sys.worker.as_mut().unwrap().wait().await.unwrap();
    let d = sys.gql_ok(Some(&op), WORKERS, json!({})).await;
    assert!(
        !d["workers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["pid"] == pid),
        "{d}"
    );
    let r = sys.gql(None, WORKERS, json!({})).await;
    assert_eq!(error_code(&r), Some("UNAUTHENTICATED"));
}

/// The console's sign-in: an operator token is exchanged once for an HttpOnly, SameSite=Strict
/// cookie scoped to /ops; the console's GraphQL needs that cookie and the session's CSRF token;
/// partners and bad tokens get no session; signing out ends it.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_signs_operators_in_with_a_cookie_and_refuses_requests_without_its_csrf_token()
{
    let sys = TestSystem::start().await.unwrap();
    let op = operator_token(&sys).await;
    let (_, partner) = enroll(&sys, "console", "c@console-corp.example", "Console Corp").await;
    let url = |p: &str| format!("{}{p}", sys.api_url);
    let client = reqwest::Client::new();
    let sign_in = |token: &str| {
        client
            .post(url("/ops/session"))
            .json(&json!({ "token": token }))
            .send()
    };

    let r = sign_in("not-a-token").await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = sign_in(&partner).await.unwrap();
    assert_eq!(
        r.status(),
        403,
        "a partner's token opens no console session"
    );
    assert_eq!(
        r.json::<Value>().await.unwrap()["errors"][0]["extensions"]["code"],
        "FORBIDDEN"
    );

    let r = sign_in(&op).await.unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ops", "Max-Age="] {
        assert!(set.contains(attr), "{attr} missing from the cookie: {set}");
    }
    assert!(
        !set.contains("Secure"),
        "Secure only in production (plain http here)"
    );
    let body: Value = r.json().await.unwrap();
    let csrf = body["csrfToken"].as_str().unwrap().to_owned();
    assert_eq!(body["operator"], "Olga Operator");
    assert!(
        !body.to_string().contains(&op),
        "the token is not echoed back"
    );
    let cookie = set.split(';').next().unwrap().to_owned();
    assert!(!cookie.contains(&op), "the cookie is not the token");

    let graphql = |cookie: Option<&str>, csrf: Option<&str>| {
        let mut req = client
            .post(url("/ops/graphql"))
            .json(&json!({ "query": "{ jobQueues { name } }" }));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    let r = graphql(Some(&cookie), Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), 200);
    let d: Value = r.json().await.unwrap();
    assert!(d["data"]["jobQueues"].as_array().unwrap().len() >= 3, "{d}");

    // A forged cross-site request carries the cookie but cannot know the CSRF token.
    let r = graphql(Some(&cookie), None).await.unwrap();
    assert_eq!(r.status(), 403);
    let r = graphql(Some(&cookie), Some("guess")).await.unwrap();
    assert_eq!(r.status(), 403);
    // No cookie: no session, whatever the header says.
    let r = graphql(None, Some(&csrf)).await.unwrap();
    assert_eq!(r.status(), 401);
    // The cookie is not a bearer token for the main endpoint.
    let r = client
        .post(url("/graphql"))
        .header("cookie", &cookie)
        .json(&json!({ "query": "{ jobQueues { name } }" }))
        .send()
        .await
        .unwrap();
    let d: Value = r.json().await.unwrap();
    assert_eq!(error_code(&d), Some("UNAUTHENTICATED"), "{d}");

    // A reloaded page reads the CSRF token back from its session.
    let r = client
        .get(url("/ops/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["csrfToken"], csrf.as_str());

    // Signing out needs the CSRF token too, clears the cookie and ends the session server-side.
    let r = client
        .delete(url("/ops/session"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = client
        .delete(url("/ops/session"))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    let r = graphql(Some(&cookie), Some(&csrf)).await.unwrap();
    assert_eq!(
        r.status(),
        401,
        "the old cookie is worthless after signing out"
    );
    let mut conn = sys.db.connect().await.unwrap();
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let n: N = diesel::sql_query("SELECT count(*) AS n FROM ops_sessions")
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(n.n, 0);
}

const FIND: &str = r#"query($f: JobFilter!) { findJobs(filter: $f) { id queue state } }"#;
const JOB: &str = r#"query($q: String!, $id: String!) { job(queue: $q, id: $id) {
  job { id queue state attempts lastError }
  payload
  attempts { attempt atMs outcome error durationMs worker }
  subjects { kind id status attempts lastError recipient partnerId mpnId partnerName subscriptionId apiQuery }
  retryWould discardWould
} }"#;

fn queues_of(d: &Value) -> Vec<String> {
    let mut q: Vec<String> = d["findJobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["queue"].as_str().unwrap().to_owned())
        .collect();
    q.sort();
    q.dedup();
    q
}

/// Operators find a partner's jobs across every queue (by name or MPN ID), a subscription's
/// renewal work, or one job by id; page through a state's jobs; and read one job in full:
/// payload, failed attempts, the Postgres objects behind it and what a retry or discard would do.
#[tokio::test(flavor = "multi_thread")]
async fn operators_find_a_partners_jobs_and_read_one_in_full() {
    let mut env = BILLING_ENV.to_vec();
    env.push(("EMAIL_MAX_ATTEMPTS", "1"));
    let sys = TestSystem::start_with(&env).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga) = authorized_partner(&sys, "findme").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad = parse_time(&order["subscription"]["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    eventually(60, "the renewal", || async {
        (subscription(&sys, &ga, &sub_id).await["term"] == 2).then_some(())
    })
    .await;
    eventually(30, "the renewal's emails sent", || async {
        (count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status <> 'SENT'",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    // Another partner, whose verification email goes dead.
    sys.smtp.refuse(true);
    enroll(&sys, "other", "o@other-corp.example", "Other Corp").await;
    eventually(30, "the other partner's dead email", || async {
        (queue(&sys, &op, "email").await["dead"] == 1).then_some(())
    })
    .await;

    // By part of the name, case-insensitive: the partner's renewal, reminder and email jobs,
    // none of the other partner's.
    let by_name = eventually(30, "the renewal job in Redis", || async {
        let d = sys
            .gql_ok(Some(&op), FIND, json!({"f": {"partner": "FINDME"}}))
            .await;
        queues_of(&d).contains(&"renewal".to_owned()).then_some(d)
    })
    .await;
    let queues = queues_of(&by_name);
    assert!(queues.contains(&"email".to_owned()), "{queues:?}");
    let mpn = sys
        .gql_ok(Some(&ga), "{ partner { mpnId } }", json!({}))
        .await["partner"]["mpnId"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_mpn = sys
        .gql_ok(Some(&op), FIND, json!({"f": {"partner": mpn}}))
        .await;
    assert_eq!(by_mpn["findJobs"], by_name["findJobs"]);
    let other = sys
        .gql_ok(Some(&op), FIND, json!({"f": {"partner": "other corp"}}))
        .await;
    let other = other["findJobs"].as_array().unwrap().clone();
    assert_eq!(other.len(), 1, "{other:?}");
    assert_eq!(other[0]["state"], "DEAD");
    assert!(by_name["findJobs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|j| j["id"] != other[0]["id"]));
    // By subscription: its renewal work only (emails belong to the partner, not the package).
    let by_sub = sys
        .gql_ok(Some(&op), FIND, json!({"f": {"subscriptionId": sub_id}}))
        .await;
    let sub_queues = queues_of(&by_sub);
    assert!(sub_queues.contains(&"renewal".to_owned()), "{sub_queues:?}");
    assert!(!sub_queues.contains(&"email".to_owned()), "{sub_queues:?}");
    // By job id, wherever it is; an unknown id finds nothing; no filter is a clear error.
    let d = sys
        .gql_ok(Some(&op), FIND, json!({"f": {"jobId": other[0]["id"]}}))
        .await;
    assert_eq!(d["findJobs"], json!(other));
    let d = sys
        .gql_ok(
            Some(&op),
            FIND,
            json!({"f": {"jobId": "01JZZZZZZZZZZZZZZZZZZZZZZZ"}}),
        )
        .await;
    assert_eq!(d["findJobs"], json!([]));
    let d = sys.gql(Some(&op), FIND, json!({"f": {}})).await;
    assert_eq!(error_code(&d), Some("BAD_USER_INPUT"), "{d}");
    let d = sys
        .gql(Some(&ga), FIND, json!({"f": {"partner": "findme"}}))
        .await;
    assert_eq!(error_code(&d), Some("FORBIDDEN"), "{d}");

    // The dead job in full: its attempt, the email behind it and its partner, and what a retry
    // or a discard would do.
    let id = other[0]["id"].as_str().unwrap();
    let detail = eventually(10, "the failed attempt reported", || async {
        let d = sys
            .gql_ok(Some(&op), JOB, json!({"q": "email", "id": id}))
            .await;
        (!d["job"]["attempts"].as_array().unwrap().is_empty()).then_some(d)
    })
    .await;
    let j = &detail["job"];
    assert!(j["payload"].as_str().unwrap().contains("email_id"), "{j:#}");
    let attempts = j["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{j:#}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["outcome"], "dead");
    assert!(!attempts[0]["error"].as_str().unwrap().is_empty());
    assert!(attempts[0]["worker"].as_str().unwrap().contains(':'));
    let s = &j["subjects"][0];
    assert_eq!(s["kind"], "EMAIL");
    assert_eq!(s["status"], "DEAD");
    assert_eq!(s["recipient"], "o@other-corp.example");
    assert_eq!(s["partnerName"], "Other Corp");
    assert!(s["apiQuery"].as_str().unwrap().starts_with("{ partner(id:"));
    assert!(
        j["retryWould"]
            .as_str()
            .unwrap()
            .starts_with("Revives 1 DEAD email"),
        "{j:#}"
    );
    assert!(
        j["discardWould"].as_str().unwrap().contains("stays DEAD"),
        "{j:#}"
    );
    // The renewal job names its subscription and partner; its apiQuery reads it.
    let renewal = by_sub["findJobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["queue"] == "renewal")
        .unwrap();
    let d = sys
        .gql_ok(Some(&op), JOB, json!({"q": "renewal", "id": renewal["id"]}))
        .await;
    let s = &d["job"]["subjects"][0];
    assert_eq!(s["kind"], "RENEWAL_CHARGE");
    assert_eq!(s["status"], "DONE");
    assert_eq!(s["subscriptionId"], sub_id.as_str());
    assert_eq!(s["mpnId"], mpn.as_str());
    let q = sys
        .gql_ok(Some(&op), s["apiQuery"].as_str().unwrap(), json!({}))
        .await;
    assert_eq!(q["subscription"]["id"], sub_id.as_str());
    assert!(d["job"]["retryWould"]
        .as_str()
        .unwrap()
        .starts_with("Nothing to redo"));
    let d = sys
        .gql_ok(
            Some(&op),
            JOB,
            json!({"q": "email", "id": "01JZZZZZZZZZZZZZZZZZZZZZZZ"}),
        )
        .await;
    assert!(d["job"].is_null());

    // Paging a state's jobs: totalCount, one per page, the cursor moving on.
    const PAGE: &str = r#"query($after: String) { jobs(queue: "email", state: DONE, first: 1, after: $after) {
      totalCount pageInfo { hasNextPage hasPreviousPage endCursor } nodes { id } } }"#;
    let first = sys.gql_ok(Some(&op), PAGE, json!({})).await["jobs"].clone();
    let total = first["totalCount"].as_i64().unwrap();
    assert!(total >= 2, "{first:#}");
    assert_eq!(first["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    assert_eq!(first["pageInfo"]["hasPreviousPage"], false);
    let mut seen = vec![first["nodes"][0]["id"].clone()];
    let mut after = first["pageInfo"]["endCursor"].clone();
    loop {
        let page = sys.gql_ok(Some(&op), PAGE, json!({"after": after})).await["jobs"].clone();
        assert_eq!(page["pageInfo"]["hasPreviousPage"], true);
        seen.push(page["nodes"][0]["id"].clone());
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen.len() as i64, total);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(
        unique.len(),
        seen.len(),
        "newest first, each once: {seen:?}"
    );
    let d = sys.gql(Some(&op), PAGE, json!({"after": "nope"})).await;
    assert_eq!(error_code(&d), Some("BAD_USER_INPUT"), "{d}");
}

/// Where an OpenID Connect provider is configured, operators sign in to the console through
/// it: authorization code with PKCE (S256), the state bound to the browser, codes used once,
/// and the provider's access token opening a session as a pasted token would (operators only).
#[tokio::test(flavor = "multi_thread")]
async fn operators_sign_in_to_the_console_through_openid_connect_with_pkce() {
    let idp = gateway_testkit::FakeOidc::start("pbg-ops").await.unwrap();
    // The browser reaches the api as console.test (a proxy in front of it).
    let redirect = "http://console.test/ops/oidc/callback";
    let sys = TestSystem::start_with(&[
        ("OPS_OIDC_ISSUER", idp.url.as_str()),
        ("OPS_OIDC_CLIENT_ID", "pbg-ops"),
        ("OPS_OIDC_REDIRECT_URL", redirect),
    ])
    .await
    .unwrap();
    let op = operator_token(&sys).await;
    let (_, partner) = enroll(&sys, "oidc", "o@oidc-corp.example", "Oidc Corp").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let config: Value = client
        .get(format!("{}/ops/config", sys.api_url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(config["oidc"], true);

    let cookies = |r: &reqwest::Response| -> Vec<String> {
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    // Start → the provider → back with a code; returns the callback URL (as the api serves
    // it) and this browser's state cookie.
    let round_trip = || async {
        let r = client
            .get(format!("{}/ops/oidc/start", sys.api_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302);
        let set = cookies(&r);
        let state_cookie = set
            .iter()
            .find(|c| c.starts_with("pbg_ops_oidc="))
            .unwrap()
            .clone();
        for attr in ["HttpOnly", "SameSite=Lax", "Path=/ops/oidc"] {
            assert!(state_cookie.contains(attr), "{state_cookie}");
        }
        let to_idp = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            to_idp.starts_with(&format!("{}/authorize?", idp.url)),
            "{to_idp}"
        );
        let r = client.get(&to_idp).send().await.unwrap();
        assert_eq!(r.status(), 302, "{:?}", r.text().await);
        let back = r.headers()["location"].to_str().unwrap().to_owned();
        assert!(back.starts_with(redirect), "{back}");
        (
            back.replace("http://console.test", &sys.api_url),
            state_cookie.split(';').next().unwrap().to_owned(),
        )
    };

    idp.sign_in_as(&op);
    let (callback, state_cookie) = round_trip().await;
    let a = &idp.authorizations()[0];
    assert_eq!(a["code_challenge_method"], "S256");
    assert_eq!(a["code_challenge"].len(), 43, "base64url of a SHA-256");
    assert_eq!(a["redirect_uri"], redirect);
    assert_eq!(a["scope"], "openid");
    assert!(!a["nonce"].is_empty());
    // A callback without this browser's state (a sign-in started elsewhere) is refused.
    let r = client.get(&callback).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let r = client
        .get(&callback)
        .header("cookie", "pbg_ops_oidc=someone-elses")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // This browser's callback: a session, and back to the console.
    let r = client
        .get(&callback)
        .header("cookie", &state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{:?}", r.text().await);
    assert_eq!(r.headers()["location"], "/ops");
    let set = cookies(&r);
    let session = set
        .iter()
        .find(|c| c.starts_with("pbg_ops="))
        .expect("the session cookie");
    assert!(session.contains("HttpOnly") && session.contains("SameSite=Strict"));
    assert!(
        set.iter().any(|c| c.starts_with("pbg_ops_oidc=;")),
        "{set:?}"
    );
    let session = session.split(';').next().unwrap().to_owned();
    let me: Value = client
        .get(format!("{}/ops/session", sys.api_url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["operator"], "Olga Operator");
    // The same callback again: the sign-in was used.
    let r = client
        .get(&callback)
        .header("cookie", &state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A partner's account at the provider opens no console session.
    idp.sign_in_as(&partner);
    let (callback, state_cookie) = round_trip().await;
    let r = client
        .get(&callback)
        .header("cookie", &state_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(cookies(&r).iter().all(|c| !c.starts_with("pbg_ops=")));
}
