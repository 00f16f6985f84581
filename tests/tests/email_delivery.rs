//! Email delivery survives an SMTP server that refuses, and a Redis that forgets.

mod common;

use common::*;
use gateway_testkit::TestSystem;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_refusing_smtp_server_delays_but_does_not_lose_email() {
    let sys = TestSystem::start_with(&[("EMAIL_MAX_ATTEMPTS", "20")])
        .await
        .unwrap();
    sys.smtp.refuse(true);
    enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(sys.smtp.to("alice@contoso.com").is_empty());
    sys.smtp.refuse(false);
    let mails = sys
        .smtp
        .wait_for("alice@contoso.com", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(mails.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn flushed_queue_is_rebuilt_from_postgres() {
    // Stop the worker so nothing is relayed; enroll (an email is due); then make it look as if
    // the job had been pushed to Redis and Redis had been flushed: the outbox row is marked
    // dispatched and the queue's keys are deleted. Only the sweep can bring the email back.
    let sys = TestSystem::start_with(&[("REDISPATCH_AFTER_SECS", "1")])
        .await
        .unwrap();
    let mut sys = sys;
    if let Some(mut w) = sys.worker.take() {
        w.kill().await.unwrap();
    }
    sys.smtp.refuse(false);
    enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    flush_queued_jobs(&sys).await;
    sys.start_worker().unwrap();
    let mails = sys
        .smtp
        .wait_for("alice@contoso.com", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(mails.len(), 1);
}

/// Emails to queue in the kill test, and the worker's concurrency there.
const BULK: usize = 400;
const CONCURRENCY: usize = 4;

#[tokio::test(flavor = "multi_thread")]
async fn one_email_one_send_a_worker_killed_mid_batch_resends_at_most_those_in_flight() {
    let concurrency = CONCURRENCY.to_string();
    let mut sys = TestSystem::start_with(&[
        ("REDISPATCH_AFTER_SECS", "1"),
        ("EMAIL_SMTP_TIMEOUT_MS", "1000"),
        ("WORKER_CONCURRENCY", concurrency.as_str()),
    ])
    .await
    .unwrap();
    // A slow relay, so the kill lands while batches are being sent.
    sys.smtp.delay_each(40);
    let recipients: Vec<String> = (0..BULK).map(|i| format!("r{i}@bulk.example")).collect();
    {
        let mut conn = sys.db.connect().await.unwrap();
        let ctx = serde_json::json!({"first_name": "Ada", "legal_name": "Bulk Ltd", "link": "https://p/x",
                                     "expires_at": "2026-12-10 10:00 UTC", "mpn_id": "1234567"});
        let queued: Vec<_> = recipients
            .iter()
            .map(|to| gateway_domain::email::Queued {
                partner_id: None,
                template: gateway_domain::email::Template::Verification,
                to,
                ctx: ctx.clone(),
            })
            .collect();
        gateway_domain::email::queue_many(&mut conn, &queued)
            .await
            .unwrap();
    }
    // Kill -9 in the middle: some delivered, not all.
    eventually(60, "a quarter of the emails delivered", || async {
        (sys.smtp.accepted() as usize >= BULK / 4).then_some(())
    })
    .await;
    sys.worker.as_mut().unwrap().kill().await.unwrap();
    let before = sys.smtp.accepted() as usize;
    assert!(
        before > 0 && before < BULK,
        "the kill must land mid-work: {before} of {BULK} delivered before it"
    );
    sys.smtp.delay_each(0);
    sys.start_worker().unwrap();
    eventually(60, "every email delivered", || async {
        let ids: std::collections::HashSet<String> = sys
            .smtp
            .all()
            .iter()
            .filter_map(|m| m.header("Message-ID"))
            .collect();
        (ids.len() == BULK).then_some(())
    })
    .await;
    // The emails in flight at the kill were accepted by the server but never marked: after
    // their lease they are sent again, and then every row is SENT. (The killed worker's jobs
    // stay in its in-flight set until apalis recovers them; they find their emails sent.)
    eventually(60, "every email marked sent", || async {
        (count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status = 'SENT'",
        )
        .await
            == BULK as i64)
            .then_some(())
    })
    .await;
    let all = sys.smtp.all();
    let repeats = all.len() - BULK;
    // In flight at the kill: each of the CONCURRENCY jobs sends SENDS_AT_ONCE at a time.
    let in_flight = CONCURRENCY * gateway_domain::email::SENDS_AT_ONCE;
    assert!(
        repeats <= in_flight,
        "{repeats} emails delivered twice; at most the {in_flight} in flight may be"
    );
    // A repeat carries the same Message-ID as the first delivery, and each recipient got one
    // Message-ID.
    for r in &recipients {
        let ids: std::collections::HashSet<String> = sys
            .smtp
            .to(r)
            .iter()
            .map(|m| m.header("Message-ID").expect("a Message-ID"))
            .collect();
        assert_eq!(ids.len(), 1, "{r}: {ids:?}");
    }
    eprintln!("{before} delivered before the kill; {repeats} delivered twice (bound {in_flight})");
}
