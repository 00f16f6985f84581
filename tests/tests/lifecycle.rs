//! The subscription lifecycle end to end, driven by a partner's test clock: auto-renewal,
//! reminders, the renewal window, lapse, failing cards, refunds.

mod common;

use std::time::Duration;

use chrono::{DateTime, Utc};
use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::json;

const INVOICES: &str =
    "{ invoices { edges { node { number total { amountMinor } periodStart periodEnd } } } }";

async fn invoice_count(sys: &TestSystem, token: &str) -> usize {
    sys.gql_ok(Some(token), INVOICES, json!({})).await["invoices"]["edges"]
        .as_array()
        .unwrap()
        .len()
}

/// Waits until the subscription satisfies `pred`.
async fn wait_sub(
    sys: &TestSystem,
    token: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    eventually(30, what, || async {
        let s = subscription(sys, token, id).await;
        pred(&s).then_some(s)
    })
    .await
}

/// Waits until the system is idle (nothing due, queued or running), so that anything it
/// should not do (a duplicate email, a second charge) has had its chance.
async fn settle(sys: &TestSystem) {
    sys.wait_idle().await;
}

/// Lets 1.5 s pass, where only time can show that something did not happen (a re-dispatch
/// after `REDISPATCH_AFTER_SECS`, 1 s there) or the system cannot become idle.
async fn past_redispatch() {
    tokio::time::sleep(Duration::from_millis(1500)).await;
}

#[tokio::test]
async fn auto_renewal_charges_once_and_moves_the_term_by_exactly_one_year() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "renew").await;
    let op = operator_token(&sys).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);

    // A portal following the subscription hears of the renewal without polling.
    let (mut ws, now) = subscribe_live(&sys, &ga, &format!("subscription {{ subscriptionUpdated(subscriptionId: \"{sub_id}\") {{ term status }} }}")).await;
    assert_eq!(now["subscriptionUpdated"]["term"], 1);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let pushed = next_json(&mut ws).await;
    assert_eq!(
        pushed["payload"]["data"]["subscriptionUpdated"]["term"], 2,
        "{pushed}"
    );
    let s = wait_sub(&sys, &ga, &sub_id, "the renewal", |s| s["term"] == 2).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["autoRenew"], true);
    assert_eq!(
        parse_time(&s["termStartedAt"]),
        ad,
        "the new term starts at the old AD"
    );
    assert_eq!(
        parse_time(&s["anniversaryDate"]),
        ad.checked_add_months(chrono::Months::new(12)).unwrap()
    );
    settle(&sys).await;
    assert_eq!(invoice_count(&sys, &ga).await, 2);
    let renewal_key = format!("renewal:{sub_id}:1");
    assert_eq!(
        count(
            &sys,
            &format!(
                "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key = '{renewal_key}'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        2
    );

    // Running the same renewal job again changes nothing: the action is done.
    let action: i64 = count(&sys, &format!("SELECT count(*) AS n FROM scheduled_actions WHERE subject_id = '{sub_id}' AND kind = 'RENEWAL_CHARGE' AND term = 1 AND status = 'DONE'")).await;
    assert_eq!(action, 1);
    count(&sys, &format!(
        "WITH a AS (SELECT id FROM scheduled_actions WHERE subject_id = '{sub_id}' AND kind = 'RENEWAL_CHARGE' AND term = 1)
         INSERT INTO outbox (queue, payload) SELECT 'renewal', jsonb_build_object('v', 1, 'action_id', a.id) FROM a
         RETURNING 1::bigint AS n"
    ))
    .await;
    // Even the gateway, asked again with the term's key, returns the first charge.
    settle(&sys).await;
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL"
        )
        .await,
        0,
        "the duplicate job ran"
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        2
    );
    assert_eq!(invoice_count(&sys, &ga).await, 2);
    let s = subscription(&sys, &ga, &sub_id).await;
    assert_eq!(s["term"], 2);
    // Two receipts, one per paid order.
    eventually(30, "two receipts", || async {
        (mails_with_subject(&sys, "renew@renew-corp.example", "Receipt").len() == 2).then_some(())
    })
    .await;
    settle(&sys).await;
    assert_eq!(
        mails_with_subject(&sys, "renew@renew-corp.example", "Receipt").len(),
        2
    );
}

#[tokio::test]
async fn with_auto_renew_off_reminders_come_once_each_and_renewal_is_only_inside_the_window() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "remind").await;
    let email = "remind@remind-corp.example";
    let op = operator_token(&sys).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);
    let off = sys
        .gql_ok(
            Some(&ga),
            "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { autoRenew } }",
            json!({"id": sub_id}),
        )
        .await;
    assert_eq!(off["turnOffAutoRenew"]["autoRenew"], false);

    let reminders = |n: usize| {
        let sys = &sys;
        async move {
            eventually(30, &format!("reminder {n}"), || async {
                let got = mails_with_subject(sys, email, "anniversary").len()
                    + mails_with_subject(sys, email, "Renew Microsoft Action Pack by").len();
                (got >= n).then_some(got)
            })
            .await;
            settle(sys).await;
            let got = mails_with_subject(sys, email, "anniversary").len()
                + mails_with_subject(sys, email, "Renew Microsoft Action Pack by").len();
            assert_eq!(got, n, "exactly {n} reminders by now");
        }
    };
    for (days, n) in [(-30, 1), (-15, 2), (-1, 3)] {
        advance_to(
            &sys,
            &op,
            &pid,
            ad + chrono::Duration::days(days) + chrono::Duration::hours(1),
        )
        .await;
        reminders(n).await;
    }
    // Not inside the window yet: refused with the date it opens.
    // The quote first: what renewing costs and the terms to accept.
    let q = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { renewalQuote(subscriptionId: $id) { termsVersion quote { price { amountMinor } discount { amountMinor } tax { amountMinor } total { amountMinor } } } }",
            json!({"id": sub_id}),
        )
        .await["renewalQuote"]
        .clone();
    assert_eq!(q["quote"]["total"]["amountMinor"], 47500, "{q:#}");
    assert_eq!(q["quote"]["discount"]["amountMinor"], 0);
    let terms = q["termsVersion"].as_str().unwrap().to_owned();
    let renew = json!({"input": {"subscriptionId": sub_id, "idempotencyKey": "renew-1", "paymentMethodId": card, "acceptTermsVersion": terms}});
    const RENEW: &str = "mutation($input: RenewInput!) { renewSubscription(input: $input) { status total { amountMinor } subscription { term autoRenew anniversaryDate } } }";
    let r = sys.gql(Some(&ga), RENEW, renew.clone()).await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    let reason = &r["errors"][0]["extensions"]["reasons"][0];
    assert_eq!(reason["code"], "RENEWAL_WINDOW_NOT_OPEN");
    let opens = (ad.date_naive() + chrono::Days::new(1)).to_string();
    assert_eq!(reason["at"], opens.as_str());

    // AD: the window state; AD+1: the reminder, and "Renew" works.
    advance_to(
        &sys,
        &op,
        &pid,
        ad + chrono::Duration::days(1) + chrono::Duration::hours(1),
    )
    .await;
    reminders(4).await;
    let s = wait_sub(&sys, &ga, &sub_id, "the renewal window", |s| {
        s["status"] == "IN_RENEWAL_WINDOW"
    })
    .await;
    assert_eq!(s["canRenew"]["eligible"], true);
    // Other terms than the current ones: refused, naming them.
    let mut stale = renew.clone();
    stale["input"]["acceptTermsVersion"] = json!("2019-01");
    let r = sys.gql(Some(&ga), RENEW, stale.clone()).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r:#}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "acceptTermsVersion");
    let r = sys.gql_ok(Some(&ga), RENEW, renew.clone()).await;
    let o = &r["renewSubscription"];
    assert_eq!(o["status"], "PAID");
    assert_eq!(o["subscription"]["term"], 2);
    assert_eq!(
        o["subscription"]["autoRenew"], true,
        "a manual renewal turns auto-renew on"
    );
    assert_eq!(
        parse_time(&o["subscription"]["anniversaryDate"]),
        ad.checked_add_months(chrono::Months::new(12)).unwrap(),
        "counted from the old anniversary date, not the payment date"
    );
    // The same renewal sent again: the same order, no second charge; the same key with other
    // input is a conflict.
    let again = sys.gql_ok(Some(&ga), RENEW, renew.clone()).await;
    assert_eq!(again["renewSubscription"]["subscription"]["term"], 2);
    let mut other = renew;
    other["input"]["paymentMethodId"] = json!(add_card(&sys, &ga, SUCCEEDING_CARD).await);
    let r = sys.gql(Some(&ga), RENEW, other).await;
    assert_eq!(
        error_code(&r),
        Some("CONFLICT"),
        "a replayed key with other input: {r:#}"
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        2
    );
    // Past the old term's AD+23 nothing more arrives: that reminder belonged to term 1.
    advance_to(&sys, &op, &pid, ad + chrono::Duration::days(24)).await;
    settle(&sys).await;
    reminders(4).await;
}

#[tokio::test]
async fn not_renewed_by_ad_plus_30_it_lapses_and_the_offer_is_available_again() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "lapse").await;
    let email = "lapse@lapse-corp.example";
    let op = operator_token(&sys).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);
    sys.gql_ok(
        Some(&ga),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { autoRenew } }",
        json!({"id": sub_id}),
    )
    .await;

    // The last window day: still renewable.
    let last_day = (ad.date_naive() + chrono::Days::new(30))
        .and_hms_opt(12, 0, 0)
        .unwrap()
        .and_utc();
    advance_to(&sys, &op, &pid, last_day).await;
    let s = wait_sub(&sys, &ga, &sub_id, "the window", |s| {
        s["status"] == "IN_RENEWAL_WINDOW"
    })
    .await;
    assert_eq!(s["canRenew"]["eligible"], true, "{s:#}");
    assert_eq!(
        s["renewalWindow"]["lastDay"],
        (ad.date_naive() + chrono::Days::new(30)).to_string()
    );
    eventually(30, "the AD+23 reminder", || async {
        (!mails_with_subject(&sys, email, "Renew Microsoft Action Pack by").is_empty())
            .then_some(())
    })
    .await;

    // AD+31: lapsed; benefits revoked; the offer can be bought anew.
    advance_to(&sys, &op, &pid, last_day + chrono::Duration::days(1)).await;
    let s = wait_sub(&sys, &ga, &sub_id, "the lapse", |s| s["status"] == "LAPSED").await;
    assert_eq!(s["canRenew"]["eligible"], false);
    eventually(30, "the lapse email", || async {
        (mails_with_subject(&sys, email, "has lapsed").len() == 1).then_some(())
    })
    .await;
    let d = sys
        .gql_ok(
            Some(&ga),
            "{ offers(section: EXPIRED) { offer { id } subscription { id status } } }",
            json!({}),
        )
        .await;
    assert_eq!(d["offers"][0]["subscription"]["id"], sub_id.as_str());
    let d = sys
        .gql_ok(
            Some(&ga),
            "{ offers(section: AVAILABLE) { offer { id } purchasable } }",
            json!({}),
        )
        .await;
    let maps = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["offer"]["id"] == "ACTION_PACK")
        .unwrap()
        .clone();
    assert_eq!(maps["purchasable"], true);
    let again = buy(&sys, &ga, "ACTION_PACK", &card).await;
    assert_ne!(again["subscription"]["id"], sub_id.as_str());
}

#[tokio::test]
async fn a_declining_card_is_retried_on_schedule_with_an_email_each_time() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "retry").await;
    let email = "retry@retry-corp.example";
    let op = operator_token(&sys).await;
    let good = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &good).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);
    let bad = add_card(&sys, &ga, DECLINING_CARD).await;
    sys.gql_ok(Some(&ga), "mutation($s: ID!, $p: ID!) { setSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $p) { id } }", json!({"s": sub_id, "p": bad})).await;

    let failures = |n: usize| {
        let sys = &sys;
        async move {
            let mails = eventually(30, &format!("failure email {n}"), || async {
                let m = mails_with_subject(sys, email, "renewal of Microsoft Action Pack failed");
                (m.len() >= n).then_some(m)
            })
            .await;
            settle(sys).await;
            let m = mails_with_subject(sys, email, "renewal of Microsoft Action Pack failed");
            assert_eq!(m.len(), n, "exactly {n} failure emails");
            mails[n - 1].text()
        }
    };
    // Attempt 1 on the AD, then AD+1, +3, +7, +14, +21, +28; none after.
    let schedule = [0i64, 1, 3, 7, 14, 21, 28];
    for (i, day) in schedule.iter().enumerate() {
        advance_to(
            &sys,
            &op,
            &pid,
            ad + chrono::Duration::days(*day) + chrono::Duration::hours(1),
        )
        .await;
        let text = failures(i + 1).await;
        match schedule.get(i + 1) {
            Some(next) => {
                let next_day = (ad + chrono::Duration::days(*next))
                    .date_naive()
                    .to_string();
                assert!(text.contains(&format!("try again on {next_day}")), "{text}");
            }
            None => assert!(text.contains("will not try this card again"), "{text}"),
        }
    }
    let s = subscription(&sys, &ga, &sub_id).await;
    assert_eq!(
        s["status"], "IN_RENEWAL_WINDOW",
        "benefits keep working in the window"
    );
    assert_eq!(s["renewalFailures"], 7);
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        1,
        "only the purchase was charged"
    );
    advance_to(&sys, &op, &pid, ad + chrono::Duration::days(32)).await;
    wait_sub(&sys, &ga, &sub_id, "the lapse", |s| s["status"] == "LAPSED").await;
    settle(&sys).await;
    failures(7).await;
}

#[tokio::test]
async fn a_hard_decline_stops_retries_and_turns_auto_renew_off() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "hard").await;
    let email = "hard@hard-corp.example";
    let op = operator_token(&sys).await;
    let good = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &good).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);
    let lost = add_card(&sys, &ga, HARD_DECLINING_CARD).await;
    sys.gql_ok(Some(&ga), "mutation($s: ID!, $p: ID!) { setSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $p) { id } }", json!({"s": sub_id, "p": lost})).await;

    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = wait_sub(&sys, &ga, &sub_id, "the failure", |s| {
        s["renewalFailures"] == 1
    })
    .await;
    assert_eq!(s["autoRenew"], false);
    assert_eq!(s["status"], "IN_RENEWAL_WINDOW");
    advance_to(&sys, &op, &pid, ad + chrono::Duration::days(8)).await;
    // The AD+1 reminder of a manual renewal arrives; no further charge attempt does.
    eventually(30, "the AD+1 reminder", || async {
        (mails_with_subject(&sys, email, "Renew Microsoft Action Pack by").len() == 1).then_some(())
    })
    .await;
    settle(&sys).await;
    assert_eq!(mails_with_subject(&sys, email, "failed").len(), 1);
    assert_eq!(subscription(&sys, &ga, &sub_id).await["renewalFailures"], 1);
}

const REFUND: &str = "query($id: ID!) { refundEligibility(subscriptionId: $id) { eligible reasons { code } deadline amount { amountMinor } } }";
const REQUEST_CANCELLATION: &str = r#"mutation($id: ID!) { requestCancellation(subscriptionId: $id, reason: "Please cancel and refund") { id intent kind refundEligibilityShown } }"#;
const DECIDE: &str = r#"mutation($id: ID!, $d: CancellationDecision!) { resolveServiceRequest(id: $id, resolution: "Handled by billing", decision: $d) { status decision notes { body } } }"#;

/// Asks for the cancellation and returns the request's id.
async fn request_cancellation(sys: &TestSystem, token: &str, sub_id: &str) -> serde_json::Value {
    let r = sys
        .gql_ok(Some(token), REQUEST_CANCELLATION, json!({"id": sub_id}))
        .await;
    assert_eq!(r["requestCancellation"]["intent"], "CANCELLATION");
    assert_eq!(r["requestCancellation"]["kind"], "BILLING");
    r["requestCancellation"]["id"].clone()
}

/// Resolves a cancellation request with `decision`; returns the last note.
async fn decide(sys: &TestSystem, op: &str, sr: &serde_json::Value, decision: &str) -> String {
    let done = sys
        .gql_ok(Some(op), DECIDE, json!({"id": sr, "d": decision}))
        .await;
    assert_eq!(done["resolveServiceRequest"]["decision"], decision);
    done["resolveServiceRequest"]["notes"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_cancellation_within_30_days_is_refunded_and_after_it_is_refused_with_the_reason() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;

    // Within 30 days: eligible, shown in advance; resolving refunds and cancels.
    let (_, ga) = authorized_partner(&sys, "refund").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let e = sys.gql_ok(Some(&ga), REFUND, json!({"id": sub_id})).await;
    assert_eq!(e["refundEligibility"]["eligible"], true, "{e:#}");
    assert_eq!(e["refundEligibility"]["amount"]["amountMinor"], 47500);
    let sr = request_cancellation(&sys, &ga, &sub_id).await;
    let note = decide(&sys, &op, &sr, "REFUND").await;
    assert!(note.contains("refund of USD 475.00"), "{note}");
    let s = subscription(&sys, &ga, &sub_id).await;
    assert_eq!(s["status"], "CANCELLED");
    let order_id = order["id"].as_str().unwrap();
    eventually(30, "the refund", || async {
        let o = sys
            .gql_ok(
                Some(&ga),
                "query($id: ID!) { order(id: $id) { status refunded { amountMinor } refund { status reference } } }",
                json!({"id": order_id}),
            )
            .await;
        (o["order"]["status"] == "REFUNDED").then_some(o)
    })
    .await;
    let o = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { order(id: $id) { refund { status reference amount { amountMinor } } } }",
            json!({"id": order_id}),
        )
        .await;
    assert_eq!(o["order"]["refund"]["status"], "REFUNDED", "{o:#}");
    assert_eq!(o["order"]["refund"]["amount"]["amountMinor"], 47500);
    assert_eq!(
        count(
            &sys,
            "SELECT coalesce(sum(amount_minor), 0)::bigint AS n FROM sandbox_refunds"
        )
        .await,
        47500
    );
    eventually(30, "the refund email", || async {
        (mails_with_subject(&sys, "refund@refund-corp.example", "Refund of USD 475.00").len() == 1)
            .then_some(())
    })
    .await;

    // After 30 days: refused with the reason; resolving turns auto-renew off instead.
    let (pid2, ga2) = authorized_partner(&sys, "late").await;
    let card2 = add_card(&sys, &ga2, SUCCEEDING_CARD).await;
    let order2 = buy(&sys, &ga2, "ACTION_PACK", &card2).await;
    let sub2 = order2["subscription"]["id"].as_str().unwrap().to_owned();
    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid2, "days": 31, "seconds": 0}),
    )
    .await;
    let e = sys.gql_ok(Some(&ga2), REFUND, json!({"id": sub2})).await;
    assert_eq!(e["refundEligibility"]["eligible"], false);
    assert_eq!(
        e["refundEligibility"]["reasons"][0]["code"],
        "REFUND_PERIOD_ENDED"
    );
    let sr2 = request_cancellation(&sys, &ga2, &sub2).await;
    // A refund is not due: the operator cannot choose it.
    let r = sys
        .gql(Some(&op), DECIDE, json!({"id": sr2, "d": "REFUND"}))
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "REFUND_NOT_DUE"
    );
    let note = decide(&sys, &op, &sr2, "END_AT_ANNIVERSARY").await;
    assert!(note.contains("Not eligible for a refund"), "{note}");
    let s = subscription(&sys, &ga2, &sub2).await;
    assert_eq!(
        (s["status"].as_str(), s["autoRenew"].as_bool()),
        (Some("ACTIVE"), Some(false))
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_refunds").await,
        1,
        "only the first partner was refunded"
    );

    // After a key reveal: refused with that reason, even within 30 days.
    let (_, ga3) = authorized_partner(&sys, "revealer").await;
    let card3 = add_card(&sys, &ga3, SUCCEEDING_CARD).await;
    let order3 = buy(&sys, &ga3, "ACTION_PACK", &card3).await;
    let sub3 = order3["subscription"]["id"].as_str().unwrap().to_owned();
    let keys = sys
        .gql_ok(
            Some(&ga3),
            "{ benefits(category: SOFTWARE) { edges { node { id } } } }",
            json!({}),
        )
        .await;
    let key_id = keys["benefits"]["edges"][0]["node"]["id"].clone();
    sys.gql_ok(Some(&ga3), "mutation($id: ID!) { revealProductKey(benefitId: $id, acknowledgeRefundLoss: true) { key } }", json!({"id": key_id})).await;
    let e = sys.gql_ok(Some(&ga3), REFUND, json!({"id": sub3})).await;
    assert_eq!(e["refundEligibility"]["reasons"][0]["code"], "KEY_REVEALED");
    let sr3 = request_cancellation(&sys, &ga3, &sub3).await;
    let note = decide(&sys, &op, &sr3, "END_AT_ANNIVERSARY").await;
    assert!(
        note.contains("Not eligible for a refund") && note.contains("product key was revealed"),
        "{note}"
    );
    assert_eq!(subscription(&sys, &ga3, &sub3).await["status"], "ACTIVE");
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_refunds").await,
        1
    );

    // Only Global admins and MPN partner admins may ask for a cancellation.
    sys.gql_ok(
        Some(&ga2),
        ADD_USER,
        json!({"email": "m@late-corp.example", "roles": ["ADMIN_AGENT"]}),
    )
    .await;
    let agent = sys.token("late-agent", Some("m@late-corp.example"));
    let r = sys
        .gql(Some(&agent), REQUEST_CANCELLATION, json!({"id": sub2}))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
}

#[tokio::test]
async fn test_clocks_are_for_operators_only() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "clock").await;
    let r = sys
        .gql(
            Some(&ga),
            ADVANCE,
            json!({"p": pid, "days": 1, "seconds": 0}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let op = operator_token(&sys).await;
    let r = sys
        .gql(
            Some(&op),
            ADVANCE,
            json!({"p": pid, "days": -1, "seconds": 0}),
        )
        .await;
    assert_eq!(
        error_code(&r),
        Some("BAD_USER_INPUT"),
        "clocks only move forward"
    );
    let d = sys
        .gql_ok(
            Some(&op),
            ADVANCE,
            json!({"p": pid, "days": 2, "seconds": 0}),
        )
        .await;
    assert_eq!(d["advanceTestClock"]["offsetSeconds"], 2 * 86_400);
}

#[tokio::test]
async fn due_renewals_survive_a_redis_flush() {
    // The worker is down while three renewals fall due; their jobs are "pushed" and then
    // Redis forgets them. Postgres still holds the due work: the sweep dispatches it again.
    let mut sys =
        TestSystem::start_with(&[("AUTO_AUTHORIZE", "true"), ("REDISPATCH_AFTER_SECS", "1")])
            .await
            .unwrap();
    let op = operator_token(&sys).await;
    let mut subs = Vec::new();
    for tag in ["flusha", "flushb", "flushc"] {
        let (pid, ga) = authorized_partner(&sys, tag).await;
        let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
        let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
        let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);
        subs.push((
            pid,
            ga,
            order["subscription"]["id"].as_str().unwrap().to_owned(),
            ad,
        ));
    }
    if let Some(mut w) = sys.worker.take() {
        w.kill().await.unwrap();
    }
    for (pid, _, _, ad) in &subs {
        advance_to(&sys, &op, pid, *ad + chrono::Duration::hours(2)).await;
    }
    assert!(
        count(
            &sys,
            "SELECT count(*) AS n FROM outbox WHERE queue = 'renewal'"
        )
        .await
            >= 3
    );
    flush_queued_jobs(&sys).await;

    sys.start_worker().unwrap();
    for (_, ga, id, ad) in &subs {
        let s = wait_sub(&sys, ga, id, "the renewal after the flush", |s| {
            s["term"] == 2
        })
        .await;
        assert_eq!(
            parse_time(&s["anniversaryDate"]),
            ad.checked_add_months(chrono::Months::new(12)).unwrap()
        );
    }
    settle(&sys).await;
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        3
    );
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM invoices").await, 6);
}

#[tokio::test]
async fn test_clocks_are_refused_where_they_are_disabled() {
    let sys = TestSystem::start_with(&[("TEST_CLOCKS_ENABLED", "false")])
        .await
        .unwrap();
    let (pid, _) = enroll(
        &sys,
        "noclock",
        "noclock@noclock-corp.example",
        "NoClock Corp",
    )
    .await;
    let op = operator_token(&sys).await;
    let r = sys
        .gql(
            Some(&op),
            ADVANCE,
            json!({"p": pid, "days": 1, "seconds": 0}),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "TEST_CLOCKS_DISABLED"
    );
}

#[tokio::test]
async fn transient_gateway_failures_are_retried_soon_then_count_as_one_decline() {
    let sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("RENEWAL_TRANSIENT_RETRY_SECS", "60"),
    ])
    .await
    .unwrap();
    let (pid, ga) = authorized_partner(&sys, "flaky").await;
    let email = "flaky@flaky-corp.example";
    let op = operator_token(&sys).await;
    let good = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &good).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let ad: DateTime<Utc> = parse_time(&order["subscription"]["anniversaryDate"]);
    let flaky = add_card(&sys, &ga, TRANSIENT_CARD).await;
    sys.gql_ok(Some(&ga), "mutation($s: ID!, $p: ID!) { setSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $p) { id } }", json!({"s": sub_id, "p": flaky})).await;
    let attempts = |n: i64| {
        let sys = &sys;
        let sub_id = sub_id.clone();
        async move {
            eventually(30, &format!("attempt {n}"), || async {
                let a = count(sys, &format!("SELECT attempts::bigint AS n FROM scheduled_actions WHERE subject_id = '{sub_id}' AND kind = 'RENEWAL_CHARGE' AND tag = '1'")).await;
                (a >= n).then_some(())
            })
            .await;
        }
    };
    advance_to(&sys, &op, &pid, ad + chrono::Duration::minutes(1)).await;
    attempts(1).await;
    settle(&sys).await;
    let s = subscription(&sys, &ga, &sub_id).await;
    assert_eq!(
        (s["status"].as_str(), s["renewalFailures"].as_i64()),
        (Some("ACTIVE"), Some(0)),
        "a transient failure is not a decline yet"
    );
    advance_to(&sys, &op, &pid, ad + chrono::Duration::minutes(3)).await;
    attempts(2).await;
    advance_to(&sys, &op, &pid, ad + chrono::Duration::minutes(5)).await;
    let s = wait_sub(
        &sys,
        &ga,
        &sub_id,
        "the third try to count as a failure",
        |s| s["renewalFailures"] == 1,
    )
    .await;
    assert_eq!(s["status"], "IN_RENEWAL_WINDOW");
    eventually(30, "one failure email", || async {
        (mails_with_subject(&sys, email, "failed").len() == 1).then_some(())
    })
    .await;
    let next_day = (ad + chrono::Duration::days(1)).date_naive().to_string();
    assert!(mails_with_subject(&sys, email, "failed")[0]
        .text()
        .contains(&format!("try again on {next_day}")));
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        1
    );
}

#[tokio::test]
async fn renewals_due_together_are_charged_in_batches_and_each_keeps_its_own_outcome() {
    // Seven renewal charges fall due in one instant; RENEWAL_BATCH=3 makes three jobs. One
    // batch also holds a charge whose subscription does not exist: that batch's transaction
    // fails, and its actions run one by one so the others are not held back.
    let sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("RENEWAL_BATCH", "3"),
        ("SWEEP_INTERVAL_MS", "200"),
    ])
    .await
    .unwrap();
    let cards = [
        ("batcha", SUCCEEDING_CARD),
        ("batchb", SUCCEEDING_CARD),
        ("batchc", SUCCEEDING_CARD),
        ("batchd", DECLINING_CARD),
        ("batche", HARD_DECLINING_CARD),
        ("batchf", TRANSIENT_CARD),
    ];
    let mut subs = Vec::new();
    for (tag, number) in cards {
        let (pid, ga) = authorized_partner(&sys, tag).await;
        let good = add_card(&sys, &ga, SUCCEEDING_CARD).await;
        let order = buy(&sys, &ga, "ACTION_PACK", &good).await;
        let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
        if number != SUCCEEDING_CARD {
            let renewing = add_card(&sys, &ga, number).await;
            sys.gql_ok(Some(&ga), "mutation($s: ID!, $p: ID!) { setSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $p) { id } }", json!({"s": sub_id, "p": renewing})).await;
        }
        subs.push((tag, pid, ga, sub_id));
    }
    let partners = subs
        .iter()
        .map(|(_, pid, _, _)| format!("'{pid}'"))
        .collect::<Vec<_>>()
        .join(",");
    // Every clock reaches its anniversary + 1 h in one statement (so one sweep sees them all),
    // with a stray charge due first.
    count(
        &sys,
        &format!(
            "WITH clocks AS (
                 INSERT INTO test_clocks (partner_id, offset_seconds)
                 SELECT partner_id, extract(epoch FROM anniversary_at - now())::bigint + 3600
                 FROM subscriptions WHERE partner_id IN ({partners})
                 RETURNING 1),
             stray AS (
                 INSERT INTO scheduled_actions (id, partner_id, kind, subject_id, term, tag, due_at, status)
                 VALUES (gen_random_uuid(), '{}', 'RENEWAL_CHARGE', gen_random_uuid(), 1, '1',
                         now() - interval '1 day', 'PENDING')
                 RETURNING 1)
             SELECT (SELECT count(*) FROM clocks) + (SELECT count(*) FROM stray) AS n",
            subs[0].1
        ),
    )
    .await;

    let by_tag = |tag: &str| subs.iter().find(|s| s.0 == tag).unwrap();
    for tag in ["batcha", "batchb", "batchc"] {
        let (_, _, ga, id) = by_tag(tag);
        let s = wait_sub(&sys, ga, id, "the batched renewal", |s| s["term"] == 2).await;
        assert_eq!(s["status"], "ACTIVE");
    }
    let (_, _, ga, id) = by_tag("batchd");
    let d = wait_sub(&sys, ga, id, "the declined renewal", |s| {
        s["renewalFailures"] == 1
    })
    .await;
    assert_eq!(d["status"], "IN_RENEWAL_WINDOW");
    assert_eq!(d["autoRenew"], true, "a soft decline is tried again");
    let (_, _, ga, id) = by_tag("batche");
    let e = wait_sub(&sys, ga, id, "the hard-declined renewal", |s| {
        s["autoRenew"] == false
    })
    .await;
    assert_eq!(e["status"], "IN_RENEWAL_WINDOW");
    let (_, _, _, f_id) = by_tag("batchf");
    eventually(30, "the transient failure rescheduled", || async {
        (count(&sys, &format!("SELECT count(*) AS n FROM scheduled_actions WHERE subject_id = '{f_id}' AND kind = 'RENEWAL_CHARGE' AND status = 'PENDING' AND attempts = 1 AND last_error IS NOT NULL AND dispatched_at IS NULL")).await == 1).then_some(())
    })
    .await;
    // The stray charge (no such subscription) stays due for good, so this system is never
    // idle: give the pipeline time instead.
    past_redispatch().await;

    // Three jobs of up to three charges went through the renewal queue.
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM outbox WHERE queue = 'renewal'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&sys, "SELECT coalesce(sum(1 + jsonb_array_length(coalesce(payload->'more', '[]'))), 0)::bigint AS n FROM outbox WHERE queue = 'renewal'").await,
        7
    );
    // Charged once each, booked once each, invoices numbered without gaps.
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM orders WHERE kind = 'RENEWAL' AND status = 'PAID'"
        )
        .await,
        3
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM invoices i JOIN orders o ON o.id = i.order_id WHERE o.kind = 'RENEWAL'").await,
        3
    );
    // Six purchases numbered 1..6 of this year, three renewals 1..3 of the anniversaries' year.
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM (SELECT year FROM invoices GROUP BY year
                     HAVING min(seq) = 1 AND max(seq) = count(*) AND count(DISTINCT seq) = count(*)) g").await,
        2,
        "each year's invoices are numbered 1..n without gaps"
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM invoices i JOIN orders o ON o.id = i.order_id
                     WHERE o.kind = 'RENEWAL' AND i.seq BETWEEN 1 AND 3"
        )
        .await,
        3
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'subscription.renewed'"
        )
        .await,
        3
    );
    // The new term's work is scheduled: the next renewal charge; its first month of Azure
    // credit is granted and the second month's grant scheduled.
    let (_, _, _, a_id) = by_tag("batcha");
    assert_eq!(
        count(&sys, &format!("SELECT count(*) AS n FROM scheduled_actions WHERE subject_id = '{a_id}' AND term = 2 AND kind = 'RENEWAL_CHARGE' AND status = 'PENDING'")).await,
        1
    );
    eventually(30, "the new term's first credit month", || async {
        (count(&sys, &format!("SELECT count(*) AS n FROM azure_credit_grants g JOIN entitlements e ON e.id = g.entitlement_id WHERE e.subscription_id = '{a_id}' AND g.month_index = 12")).await == 1).then_some(())
    })
    .await;
    assert_eq!(
        count(&sys, &format!("SELECT count(*) AS n FROM scheduled_actions s JOIN entitlements e ON e.id = s.subject_id WHERE e.subscription_id = '{a_id}' AND s.term = 2 AND s.kind = 'GRANT_AZURE_CREDIT' AND s.status = 'PENDING' AND s.tag = '1'")).await,
        1
    );
    // The stray charge stays pending (and its job went dead), nothing else was held back.
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM scheduled_actions WHERE kind = 'RENEWAL_CHARGE' AND term = 1 AND tag = '1' AND status = 'PENDING' AND attempts = 0").await,
        1
    );
    for tag in ["batcha", "batchb", "batchc"] {
        let email = format!("{tag}@{tag}-corp.example");
        let receipts = eventually(30, "the renewal receipt", || async {
            let r = mails_with_subject(&sys, &email, "Receipt");
            (r.len() == 2).then_some(r)
        })
        .await;
        // Numbered in the batch's one statement: each receipt quotes its own order's
        // invoice, one the purchase's and one the renewal's, of this partner.
        let numbers: Vec<String> = receipts
            .iter()
            .map(|m| {
                let text = m.text();
                let at = text.find("INV-").expect("receipt quotes an invoice number");
                text[at..at + "INV-2026-000000".len()].to_owned()
            })
            .collect();
        let of_partner = |kind: &str| {
            format!(
                "SELECT count(*) AS n FROM invoices i JOIN orders o ON o.id = i.order_id
                 JOIN users u ON u.partner_id = o.partner_id AND u.email = '{email}'
                 WHERE o.kind {kind} AND i.number IN ('{}', '{}')",
                numbers[0], numbers[1]
            )
        };
        assert_eq!(
            count(&sys, &of_partner("IS NOT NULL")).await,
            2,
            "{numbers:?}"
        );
        assert_eq!(
            count(&sys, &of_partner("= 'RENEWAL'")).await,
            1,
            "{numbers:?}"
        );
    }
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM emails WHERE subject || coalesce(body_text, '') || coalesce(body_html, '') LIKE '%[[invoice-number]]%'").await,
        0
    );
    for tag in ["batchd", "batche"] {
        let email = format!("{tag}@{tag}-corp.example");
        eventually(30, "the failure email", || async {
            (!mails_with_subject(&sys, &email, "renewal of Microsoft Action Pack failed")
                .is_empty())
            .then_some(())
        })
        .await;
    }

    // The same batches again (a replayed job): every action is done, nothing changes.
    count(
        &sys,
        "WITH r AS (INSERT INTO outbox (queue, payload)
                    SELECT queue, payload FROM outbox WHERE queue = 'renewal' RETURNING 1)
         SELECT count(*) AS n FROM r",
    )
    .await;
    eventually(30, "the replayed jobs ran", || async {
        (count(
            &sys,
            "SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL",
        )
        .await
            == 0)
            .then_some(())
    })
    .await;
    past_redispatch().await; // the stray charge keeps the system busy
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        3
    );
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM invoices").await, 9);
    for tag in ["batchd", "batche"] {
        let email = format!("{tag}@{tag}-corp.example");
        assert_eq!(
            mails_with_subject(&sys, &email, "renewal of Microsoft Action Pack failed").len(),
            1,
            "{tag}: one failure email"
        );
    }
}

#[tokio::test]
async fn a_refund_the_gateway_refuses_for_good_is_refund_failed_once_emailed_and_dead_not_retried_forever(
) {
    // Due work still pending would be dispatched again within a second.
    let sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("REDISPATCH_AFTER_SECS", "1"),
        ("SWEEP_INTERVAL_MS", "200"),
    ])
    .await
    .unwrap();
    let op = operator_token(&sys).await;
    let (_, ga) = authorized_partner(&sys, "norefund").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let order_id = order["id"].as_str().unwrap().to_owned();
    // The gateway no longer knows the charge: a refund is refused for good.
    assert_eq!(
        count(
            &sys,
            &format!("WITH d AS (DELETE FROM sandbox_charges WHERE idempotency_key = 'order:{order_id}' RETURNING 1) SELECT count(*) AS n FROM d")
        )
        .await,
        1
    );
    let sr = request_cancellation(&sys, &ga, &sub_id).await;
    decide(&sys, &op, &sr, "REFUND").await;
    let outcome_sql = format!(
        "SELECT count(*) AS n FROM scheduled_actions WHERE kind = 'REFUND' AND subject_id = '{order_id}'
         AND status = 'DONE' AND outcome LIKE 'refund failed: %(INVALID_PAYMENT)'"
    );
    eventually(30, "the refusal recorded", || async {
        (count(&sys, &outcome_sql).await == 1).then_some(())
    })
    .await;
    // Once done, nothing dispatches it again (a job dispatched twice before it finished, as
    // REDISPATCH_AFTER_SECS=1 allows, finds it done), and the refusal is recorded once.
    let dispatched = "SELECT count(*) AS n FROM outbox WHERE queue = 'refund'";
    settle(&sys).await;
    let before = count(&sys, dispatched).await;
    past_redispatch().await;
    past_redispatch().await;
    assert_eq!(count(&sys, dispatched).await, before, "dispatched again");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'order.refund_failed'"
        )
        .await,
        1
    );
    let o = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { order(id: $id) { status refund { status failureReason } } }",
            json!({"id": order_id}),
        )
        .await;
    assert_eq!(o["order"]["status"], "PAID", "nothing was paid back");
    assert_eq!(o["order"]["refund"]["status"], "REFUND_FAILED", "{o:#}");
    assert!(
        o["order"]["refund"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("INVALID_PAYMENT"),
        "{o:#}"
    );
    // The partner is told once; operators see the job in the refund queue's dead set.
    eventually(30, "the refund-failed email", || async {
        (mails_with_subject(
            &sys,
            "norefund@norefund-corp.example",
            "could not be completed",
        )
        .len()
            == 1)
            .then_some(())
    })
    .await;
    eventually(30, "the dead refund job", || async {
        let q = sys
            .gql_ok(Some(&op), "{ jobQueues { name dead } }", json!({}))
            .await;
        q["jobQueues"]
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["name"] == "refund" && q["dead"] == 1)
            .then_some(())
    })
    .await;
    assert!(
        mails_with_subject(
            &sys,
            "norefund@norefund-corp.example",
            "Refund of USD 475.00 for Microsoft Action Pack"
        )
        .len()
            == 1
    );
}
