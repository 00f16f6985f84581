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
