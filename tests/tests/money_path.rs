//! The money path's rules (PRODUCT.md 2.5, issue 20): cancellation only when asked for
//! explicitly and decided by an operator; a cancellation without a refund ends at the
//! anniversary date; refunds with their own state (pending, refunded, failed), a bank-transfer
//! refund recorded by an operator, transient gateway errors retried with backoff and a cap.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

const REQUEST: &str = r#"mutation($id: ID!) { requestCancellation(subscriptionId: $id, reason: "We no longer need it") { id intent kind status refundEligibilityShown subscriptionId } }"#;
const DECIDE: &str = r#"mutation($id: ID!, $d: CancellationDecision) { resolveServiceRequest(id: $id, resolution: "Handled by billing", decision: $d) { status decision resolution } }"#;
const SUB: &str = r#"query($id: ID!) { subscription(id: $id) { status autoRenew anniversaryDate endsAt endedAt renewalWindow { opensOn } refund { status } } }"#;
const ORDER_REFUND: &str = r#"query($id: ID!) { order(id: $id) { status refunded { amountMinor } refund { status amount { amountMinor } failureReason reference attempts } } }"#;

async fn sub(sys: &TestSystem, token: &str, id: &str) -> Value {
    sys.gql_ok(Some(token), SUB, json!({"id": id})).await["subscription"].clone()
}

async fn order_refund(sys: &TestSystem, token: &str, id: &str) -> Value {
    sys.gql_ok(Some(token), ORDER_REFUND, json!({"id": id}))
        .await["order"]
        .clone()
}

/// A partner with a paid Action Pack: (partner id, token, subscription id, order id).
async fn bought(sys: &TestSystem, tag: &str) -> (String, String, String, String) {
    let (pid, ga) = authorized_partner(sys, tag).await;
    let card = add_card(sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let order_id = order["id"].as_str().unwrap().to_owned();
    (pid, ga, sub_id, order_id)
}

async fn request(sys: &TestSystem, token: &str, sub_id: &str) -> Value {
    sys.gql_ok(Some(token), REQUEST, json!({"id": sub_id}))
        .await["requestCancellation"]
        .clone()
}

async fn jobs_dead(sys: &TestSystem, op: &str, queue: &str) -> i64 {
    let q = sys
        .gql_ok(Some(op), "{ jobQueues { name dead } }", json!({}))
        .await;
    q["jobQueues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == queue)
        .map(|q| q["dead"].as_i64().unwrap())
        .unwrap_or(0)
}

#[tokio::test]
async fn cancellation_is_explicit_a_plain_billing_request_never_cancels() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (_, ga, sub_id, _) = bought(&sys, "plain").await;

    // An invoice question linked to the subscription, resolved: nothing happens to it.
    let plain = sys
        .gql_ok(
            Some(&ga),
            r#"mutation($id: ID!) { createServiceRequest(input: {kind: BILLING, title: "Invoice question", description: "Which VAT number is on it?", severity: MINIMAL, subscriptionId: $id}) { id intent } }"#,
            json!({"id": sub_id}),
        )
        .await["createServiceRequest"]
        .clone();
    assert_eq!(plain["intent"], "GENERAL");
    // A decision on it is refused: only a cancellation request takes one.
    let r = sys
        .gql(Some(&op), DECIDE, json!({"id": plain["id"], "d": "REFUND"}))
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r:#}");
    let done = sys
        .gql_ok(Some(&op), DECIDE, json!({"id": plain["id"], "d": null}))
        .await;
    assert_eq!(done["resolveServiceRequest"]["status"], "CLOSED");
    assert_eq!(done["resolveServiceRequest"]["decision"], Value::Null);
    let s = sub(&sys, &ga, &sub_id).await;
    assert_eq!(
        (s["status"].as_str(), s["autoRenew"].as_bool(), &s["endsAt"]),
        (Some("ACTIVE"), Some(true), &Value::Null),
        "{s:#}"
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM scheduled_actions WHERE kind IN ('REFUND', 'END_AT_ANNIVERSARY')"
        )
        .await,
        0
    );

    // A cancellation request records the eligibility shown, takes one open request at a time,
    // and needs a decision.
    let c = request(&sys, &ga, &sub_id).await;
    assert_eq!(
        (c["intent"].as_str(), c["kind"].as_str()),
        (Some("CANCELLATION"), Some("BILLING"))
    );
    assert_eq!(c["subscriptionId"], sub_id.as_str());
    assert_eq!(c["refundEligibilityShown"]["eligible"], true, "{c:#}");
    assert_eq!(c["refundEligibilityShown"]["amountMinor"], 47500);
    let r = sys.gql(Some(&ga), REQUEST, json!({"id": sub_id})).await;
    assert_eq!(error_code(&r), Some("CONFLICT"), "{r:#}");
    let r = sys
        .gql(Some(&op), DECIDE, json!({"id": c["id"], "d": null}))
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r:#}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "decision");
    // Declined: nothing changes, and the subscription can be asked about again.
    let d = sys
        .gql_ok(Some(&op), DECIDE, json!({"id": c["id"], "d": "DECLINE"}))
        .await;
    assert!(d["resolveServiceRequest"]["resolution"]
        .as_str()
        .unwrap()
        .contains("Declined"));
    assert_eq!(sub(&sys, &ga, &sub_id).await["status"], "ACTIVE");
    request(&sys, &ga, &sub_id).await;
}

#[tokio::test]
async fn not_eligible_ends_at_the_anniversary_with_no_renewal_window_and_no_reminders() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga, sub_id, _) = bought(&sys, "endad").await;
    let email = "endad@endad-corp.example";
    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid, "days": 40, "seconds": 0}),
    )
    .await;
    let c = request(&sys, &ga, &sub_id).await;
    assert_eq!(c["refundEligibilityShown"]["eligible"], false);
    assert_eq!(
        c["refundEligibilityShown"]["reasons"][0]["code"],
        "REFUND_PERIOD_ENDED"
    );
    let d = sys
        .gql_ok(
            Some(&op),
            DECIDE,
            json!({"id": c["id"], "d": "END_AT_ANNIVERSARY"}),
        )
        .await;
    assert!(
        d["resolveServiceRequest"]["resolution"]
            .as_str()
            .unwrap()
            .contains("ends on its anniversary date"),
        "{d:#}"
    );
    let s = sub(&sys, &ga, &sub_id).await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["autoRenew"], false);
    assert_eq!(s["endsAt"], s["anniversaryDate"], "{s:#}");
    let ad = parse_time(&s["anniversaryDate"]);
    // Past the AD and through what would have been the whole window: it ended on the AD, and
    // no reminder of any kind was sent.
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = eventually(30, "the end on the anniversary date", || async {
        let s = sub(&sys, &ga, &sub_id).await;
        (s["status"] == "CANCELLED").then_some(s)
    })
    .await;
    let ended = parse_time(&s["endedAt"]);
    assert!(
        ended >= ad && ended < ad + chrono::Duration::hours(2),
        "ended at {ended}, AD {ad}"
    );
    advance_to(&sys, &op, &pid, ad + chrono::Duration::days(31)).await;
    sys.wait_idle().await;
    assert_eq!(sub(&sys, &ga, &sub_id).await["status"], "CANCELLED");
    assert!(mails_with_subject(&sys, email, "Renew").is_empty());
    assert!(mails_with_subject(&sys, email, "anniversary").is_empty());
    assert!(mails_with_subject(&sys, email, "lapsed").is_empty());
    assert_eq!(
        count(
            &sys,
            &format!(
                "SELECT count(*) AS n FROM scheduled_actions WHERE subject_id = '{sub_id}'
                 AND kind IN ('ENTER_RENEWAL_WINDOW', 'LAPSE', 'REMINDER', 'RENEWAL_CHARGE') AND status = 'DONE'"
            )
        )
        .await,
        0,
        "no window, lapse, reminder or charge ran"
    );
    // Benefits are revoked with the end.
    let b = sys
        .gql_ok(
            Some(&ga),
            "{ benefits { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(
        b["benefits"]["edges"].as_array().unwrap().is_empty(),
        "{b:#}"
    );
}

#[tokio::test]
async fn a_bank_transfer_refund_stays_pending_until_an_operator_records_the_transfer() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (_, ga) = authorized_partner(&sys, "bankrefund").await;
    let o = sys
        .gql_ok(
            Some(&ga),
            r#"mutation Buy($input: PurchaseInput!) { purchaseOffer(input: $input) { id subscription { id } } }"#,
            json!({"input": {
                "offerId": "ACTION_PACK", "idempotencyKey": "bank-1", "acceptTermsVersion": "2021-06",
                "payment": {"bankTransfer": {"contactName": "Bo Banker", "contactPhone": "+14255550101", "contactEmail": "bo@bankrefund-corp.example"}}
            }}),
        )
        .await["purchaseOffer"]
        .clone();
    let order_id = o["id"].as_str().unwrap().to_owned();
    let sub_id = o["subscription"]["id"].as_str().unwrap().to_owned();
    sys.gql_ok(
        Some(&op),
        "mutation($id: ID!) { confirmBankTransfer(orderId: $id, reference: \"IN-1\") { status } }",
        json!({"id": order_id}),
    )
    .await;
    let c = request(&sys, &ga, &sub_id).await;
    sys.gql_ok(Some(&op), DECIDE, json!({"id": c["id"], "d": "REFUND"}))
        .await;
    assert_eq!(sub(&sys, &ga, &sub_id).await["status"], "CANCELLED");
    // The refund job runs and leaves it pending: no money moved.
    let job_done = format!(
        "SELECT count(*) AS n FROM scheduled_actions WHERE kind = 'REFUND' AND subject_id = '{order_id}' AND status = 'DONE'"
    );
    eventually(30, "the refund job", || async {
        (count(&sys, &job_done).await == 1).then_some(())
    })
    .await;
    let r = order_refund(&sys, &ga, &order_id).await;
    assert_eq!(r["status"], "PAID", "{r:#}");
    assert_eq!(r["refund"]["status"], "REFUND_PENDING");
    assert_eq!(r["refund"]["amount"]["amountMinor"], 47500);
    assert_eq!(
        sub(&sys, &ga, &sub_id).await["refund"]["status"],
        "REFUND_PENDING"
    );
    assert!(mails_with_subject(&sys, "bankrefund@bankrefund-corp.example", "Refund of").is_empty());

    // Only an operator records the transfer; then it is REFUNDED and the partner is told.
    const CONFIRM: &str = r#"mutation($id: ID!) { confirmRefund(orderId: $id, transferReference: "OUT-77") { status refund { status reference } } }"#;
    let r = sys.gql(Some(&ga), CONFIRM, json!({"id": order_id})).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = sys
        .gql_ok(Some(&op), CONFIRM, json!({"id": order_id}))
        .await;
    assert_eq!(r["confirmRefund"]["status"], "REFUNDED");
    assert_eq!(r["confirmRefund"]["refund"]["status"], "REFUNDED");
    assert_eq!(r["confirmRefund"]["refund"]["reference"], "OUT-77");
    let r = sys.gql(Some(&op), CONFIRM, json!({"id": order_id})).await;
    assert_eq!(error_code(&r), Some("CONFLICT"), "recorded once");
    eventually(30, "the refund email", || async {
        (mails_with_subject(
            &sys,
            "bankrefund@bankrefund-corp.example",
            "Refund of USD 475.00",
        )
        .len()
            == 1)
            .then_some(())
    })
    .await;
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_refunds").await,
        0,
        "the card gateway was never asked"
    );

    // A card order's refund belongs to the gateway: an operator cannot record one.
    let (_, ga2, sub2, order2) = bought(&sys, "cardrefund").await;
    let c = request(&sys, &ga2, &sub2).await;
    sys.gql_ok(Some(&op), DECIDE, json!({"id": c["id"], "d": "REFUND"}))
        .await;
    let r = sys.gql(Some(&op), CONFIRM, json!({"id": order2})).await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
}

#[tokio::test]
async fn a_refund_failing_transiently_retries_with_backoff_then_fails_and_is_dead() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga, sub_id, order_id) = bought(&sys, "flaky").await;
    // The card's issuer stops answering after the purchase.
    assert_eq!(
        count(
            &sys,
            "WITH u AS (UPDATE sandbox_cards SET behaviour = 'TRANSIENT' RETURNING 1) SELECT count(*) AS n FROM u"
        )
        .await,
        1
    );
    let c = request(&sys, &ga, &sub_id).await;
    sys.gql_ok(Some(&op), DECIDE, json!({"id": c["id"], "d": "REFUND"}))
        .await;
    let attempts = |n: i64| {
        let sys = &sys;
        let ga = &ga;
        let order_id = &order_id;
        async move {
            eventually(30, &format!("refund attempt {n}"), || async {
                let r = order_refund(sys, ga, order_id).await;
                (r["refund"]["attempts"].as_i64() == Some(n)).then_some(r)
            })
            .await
        }
    };
    let r = attempts(1).await;
    assert_eq!(r["refund"]["status"], "REFUND_PENDING");
    // Backoff: the next attempt is not due a minute later's moment before, but after it.
    let due = |sql_n: i64| {
        format!(
            "SELECT (extract(epoch FROM due_at - now()) / 60)::bigint AS n FROM scheduled_actions
             WHERE kind = 'REFUND' AND subject_id = '{order_id}' AND attempts = {sql_n}"
        )
    };
    let mut waits = Vec::new();
    for n in 1..6 {
        waits.push(count(&sys, &due(n)).await);
        sys.gql_ok(
            Some(&op),
            ADVANCE,
            json!({"p": pid, "days": 0, "seconds": 13 * 3600}),
        )
        .await;
        if n < 5 {
            let r = attempts(n + 1).await;
            assert_eq!(r["refund"]["status"], "REFUND_PENDING", "{r:#}");
        }
    }
    // Each wait is longer than the one before (minutes, measured on the partner's clock).
    assert!(waits.windows(2).all(|w| w[1] > w[0]), "waits {waits:?}");
    let r = eventually(30, "REFUND_FAILED", || async {
        let r = order_refund(&sys, &ga, &order_id).await;
        (r["refund"]["status"] == "REFUND_FAILED").then_some(r)
    })
    .await;
    assert_eq!(r["refund"]["attempts"], 6);
    assert_eq!(r["status"], "PAID", "nothing was paid back");
    assert!(
        r["refund"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("kept failing (6 attempts)"),
        "{r:#}"
    );
    eventually(30, "the dead refund job", || async {
        (jobs_dead(&sys, &op, "refund").await == 1).then_some(())
    })
    .await;
    eventually(30, "the refund-failed email", || async {
        (mails_with_subject(&sys, "flaky@flaky-corp.example", "could not be completed").len() == 1)
            .then_some(())
    })
    .await;
    // Given up for good: more time brings no further attempt.
    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid, "days": 2, "seconds": 0}),
    )
    .await;
    sys.wait_idle().await;
    assert_eq!(
        order_refund(&sys, &ga, &order_id).await["refund"]["attempts"],
        6
    );
}

const ELIGIBILITY: &str =
    "query($id: ID!) { refundEligibility(subscriptionId: $id) { eligible reasons { code message } } }";

#[tokio::test]
async fn every_benefit_use_needs_the_refund_acknowledgement_and_ends_eligibility_with_its_own_reason(
) {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    // (use, benefit code, offer, mutation, the reason code it ends eligibility with)
    let uses = [
        ("technical", "PRODUCT_SUPPORT", "ACTION_PACK", "mutation($b: ID!, $a: Boolean) { activateTechnicalBenefit(benefitId: $b, acknowledgeRefundLoss: $a) { id } }", "TECHNICAL_BENEFIT_ACTIVATED"),
        ("gtm", "GTM_SILVER_CORE", "SILVER", "mutation($b: ID!, $a: Boolean) { activateGoToMarketOffer(benefitId: $b, acknowledgeRefundLoss: $a) { id } }", "GTM_OFFER_ACTIVATED"),
        ("seat", "VS_PROFESSIONAL", "ACTION_PACK", "mutation($b: ID!, $u: ID!, $a: Boolean) { assignVisualStudioSubscription(benefitId: $b, userId: $u, acknowledgeRefundLoss: $a) { id } }", "VS_SEAT_ASSIGNED"),
        ("azure", "AZURE_MONTHLY_CREDIT", "ACTION_PACK", "mutation($b: ID!, $u: ID!, $a: Boolean) { assignAzureUser(benefitId: $b, userId: $u, acknowledgeRefundLoss: $a) { id } }", "AZURE_USER_ASSIGNED"),
        ("key", "WINDOWS_10_ENTERPRISE", "ACTION_PACK", "mutation($b: ID!, $a: Boolean) { revealProductKey(benefitId: $b, acknowledgeRefundLoss: $a) { key } }", "KEY_REVEALED"),
    ];
    for (tag, code, offer, doc, reason) in uses {
        let tag = format!("use{tag}");
        let (pid, ga) = authorized_partner(&sys, &tag).await;
        if offer == "SILVER" {
            sys.gql_ok(Some(&op), "mutation($p: ID!) { recordQualification(partnerId: $p, competency: \"SECURITY\", level: SILVER, qualifiedOn: \"2026-10-01\") { level } }", json!({"p": pid})).await;
        }
        let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
        let order = buy(&sys, &ga, offer, &card).await;
        let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
        let user = sys
            .gql_ok(
                Some(&ga),
                ADD_USER,
                json!({"email": format!("dev@{tag}-corp.example"), "roles": []}),
            )
            .await["addUser"]["id"]
            .clone();
        if code.starts_with("GTM") {
            sys.gql_ok(
                Some(&ga),
                "mutation($i: MarketingContactInput!) { setMarketingContact(input: $i) { email } }",
                json!({"i": {"userId": user, "email": format!("dev@{tag}-corp.example"), "phone": "+14255550123", "language": "en-US"}}),
            )
            .await;
        }
        let b = benefit(&sys, &ga, code).await;
        let vars = |ack: bool| json!({"b": b["id"], "u": user, "a": ack});
        let without = doc
            .replace(", $a: Boolean", "")
            .replace(", acknowledgeRefundLoss: $a", "");

        // Without the acknowledgement (left out, or false): refused, nothing used.
        for (doc, ack) in [(without.as_str(), false), (doc, false)] {
            let r = sys.gql(Some(&ga), doc, vars(ack)).await;
            assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{tag}: {r:#}");
            assert_eq!(
                r["errors"][0]["extensions"]["reasons"][0]["code"],
                "REFUND_ACKNOWLEDGEMENT_REQUIRED",
                "{tag}: {r:#}"
            );
        }
        let after = benefit(&sys, &ga, code).await;
        assert_eq!(after["activation"], b["activation"], "{tag}: not activated");
        assert_eq!(
            after["assignments"], b["assignments"],
            "{tag}: not assigned"
        );
        let e = sys
            .gql_ok(Some(&ga), ELIGIBILITY, json!({"id": sub_id}))
            .await;
        assert_eq!(e["refundEligibility"]["eligible"], true, "{tag}: {e:#}");

        // Acknowledged: done, and eligibility ends with this use's own reason.
        sys.gql_ok(Some(&ga), doc, vars(true)).await;
        let e = sys
            .gql_ok(Some(&ga), ELIGIBILITY, json!({"id": sub_id}))
            .await;
        assert_eq!(e["refundEligibility"]["eligible"], false, "{tag}: {e:#}");
        let codes: Vec<&str> = e["refundEligibility"]["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, vec![reason], "{tag}");
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Follows one subscription over the WebSocket; returns once the server says it is live.
async fn follow(sys: &TestSystem, token: &str, sub_id: &str) -> Ws {
    let q = format!("subscription {{ subscriptionUpdated(subscriptionId: \"{sub_id}\") {{ status autoRenew renewalFailures endsAt refund {{ status }} }} }}");
    subscribe_live(sys, token, &q).await.0
}

/// The next pushed state of the subscription (whatever it is).
async fn pushed(ws: &mut Ws) -> Value {
    let m = next_json(ws).await;
    assert_eq!(m["type"], "next", "{m}");
    m["payload"]["data"]["subscriptionUpdated"].clone()
}

#[tokio::test]
async fn subscription_updated_is_pushed_on_every_state_change() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;

    // Auto-renew turned off, the renewal window entered, the lapse.
    let (pid, ga, sub_id, _) = bought(&sys, "wsoff").await;
    let mut ws = follow(&sys, &ga, &sub_id).await;
    sys.gql_ok(
        Some(&ga),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }",
        json!({"id": sub_id}),
    )
    .await;
    let s = pushed(&mut ws).await;
    assert_eq!(
        (s["status"].as_str(), s["autoRenew"].as_bool()),
        (Some("ACTIVE"), Some(false)),
        "auto-renew off: {s}"
    );
    let ad = parse_time(&sub(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = pushed(&mut ws).await;
    assert_eq!(s["status"], "IN_RENEWAL_WINDOW", "window: {s}");
    advance_to(&sys, &op, &pid, ad + chrono::Duration::days(32)).await;
    let s = pushed(&mut ws).await;
    assert_eq!(s["status"], "LAPSED", "lapse: {s}");

    // A failed renewal charge.
    let (pid, ga, sub_id, _) = bought(&sys, "wsfail").await;
    let mut ws = follow(&sys, &ga, &sub_id).await;
    count(
        &sys,
        "WITH u AS (UPDATE sandbox_cards SET behaviour = 'DECLINE' RETURNING 1) SELECT count(*) AS n FROM u",
    )
    .await;
    let ad = parse_time(&sub(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = pushed(&mut ws).await;
    assert_eq!(
        (s["status"].as_str(), s["renewalFailures"].as_i64()),
        (Some("IN_RENEWAL_WINDOW"), Some(1)),
        "failed charge: {s}"
    );

    // A cancellation with a refund: cancelled, then the refund's own state.
    let (_, ga, sub_id, _) = bought(&sys, "wsrefund").await;
    let mut ws = follow(&sys, &ga, &sub_id).await;
    let c = request(&sys, &ga, &sub_id).await;
    sys.gql_ok(Some(&op), DECIDE, json!({"id": c["id"], "d": "REFUND"}))
        .await;
    let s = pushed(&mut ws).await;
    assert_eq!(
        (s["status"].as_str(), s["refund"]["status"].as_str()),
        (Some("CANCELLED"), Some("REFUND_PENDING")),
        "cancelled: {s}"
    );
    let s = pushed(&mut ws).await;
    assert_eq!(s["refund"]["status"], "REFUNDED", "refunded: {s}");

    // A cancellation without one: set to end on the AD, then ended there.
    let (pid, ga, sub_id, _) = bought(&sys, "wsend").await;
    let mut ws = follow(&sys, &ga, &sub_id).await;
    let c = request(&sys, &ga, &sub_id).await;
    sys.gql_ok(
        Some(&op),
        DECIDE,
        json!({"id": c["id"], "d": "END_AT_ANNIVERSARY"}),
    )
    .await;
    let s = pushed(&mut ws).await;
    assert!(
        s["endsAt"].is_string() && s["autoRenew"] == false,
        "set to end: {s}"
    );
    let ad = parse_time(&sub(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = pushed(&mut ws).await;
    assert_eq!(s["status"], "CANCELLED", "ended: {s}");
}

#[tokio::test]
async fn removing_a_user_releases_their_seat_azure_assignment_and_marketing_contact() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (_, ga, _, _) = bought(&sys, "leaver").await;
    let mut users = Vec::new();
    for i in 0..4 {
        let u = sys
            .gql_ok(
                Some(&ga),
                ADD_USER,
                json!({"email": format!("dev{i}@leaver-corp.example"), "roles": []}),
            )
            .await["addUser"]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        users.push(u);
    }
    let leaver = users[0].clone();
    const ASSIGN_VS: &str = "mutation($b: ID!, $u: ID!) { assignVisualStudioSubscription(benefitId: $b, userId: $u, acknowledgeRefundLoss: true) { used } }";
    let vs = benefit(&sys, &ga, "VS_PROFESSIONAL").await["id"].clone();
    for u in &users[..3] {
        sys.gql_ok(Some(&ga), ASSIGN_VS, json!({"b": vs, "u": u}))
            .await;
    }
    let r = sys
        .gql(Some(&ga), ASSIGN_VS, json!({"b": vs, "u": users[3]}))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "NO_SEATS_LEFT",
        "{r:#}"
    );
    let az = benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await["id"].clone();
    sys.gql_ok(
        Some(&ga),
        "mutation($b: ID!, $u: ID!) { assignAzureUser(benefitId: $b, userId: $u, acknowledgeRefundLoss: true) { id } }",
        json!({"b": az, "u": leaver}),
    )
    .await;
    sys.gql_ok(
        Some(&ga),
        "mutation($i: MarketingContactInput!) { setMarketingContact(input: $i) { email } }",
        json!({"i": {"userId": leaver, "email": "dev0@leaver-corp.example", "phone": "+14255550123", "language": "en-US"}}),
    )
    .await;

    sys.gql_ok(
        Some(&ga),
        "mutation($id: ID!) { removeUser(userId: $id) { id } }",
        json!({"id": leaver}),
    )
    .await;
    // The seat is free at once: no 90-day wait, no replaceUserId.
    let d = sys
        .gql_ok(Some(&ga), ASSIGN_VS, json!({"b": vs, "u": users[3]}))
        .await;
    assert_eq!(d["assignVisualStudioSubscription"]["used"], 3);
    let holders = |b: Value| {
        b["assignments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["userId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let seats = holders(benefit(&sys, &ga, "VS_PROFESSIONAL").await);
    assert!(
        !seats.contains(&leaver) && seats.contains(&users[3]),
        "{seats:?}"
    );
    assert!(holders(benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await).is_empty());
    let m = sys
        .gql_ok(Some(&ga), "{ marketingContact { email } }", json!({}))
        .await;
    assert_eq!(m["marketingContact"], Value::Null, "{m:#}");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM audit_log WHERE action = 'benefit.assignment_released'"
        )
        .await,
        2
    );
    // The Global admin hears that GTM offers need a new contact; the removed user does not.
    sys.wait_idle().await;
    assert_eq!(
        mails_with_subject(
            &sys,
            "leaver@leaver-corp.example",
            "needs a new marketing contact"
        )
        .len(),
        1
    );
    assert!(mails_with_subject(&sys, "dev0@leaver-corp.example", "marketing contact").is_empty());
}

#[tokio::test]
async fn subscription_invoices_list_each_term_and_an_mpn_partner_admin_downloads_the_pdf() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga, sub_id, _) = bought(&sys, "subinv").await;
    let ad = parse_time(&sub(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    eventually(30, "the renewal", || async {
        (subscription(&sys, &ga, &sub_id).await["term"] == 2).then_some(())
    })
    .await;
    const INVOICES: &str = "query($id: ID!) { subscription(id: $id) { invoices { id number periodStart total { amountMinor } pdfPath } } }";
    for role in ["MPN_PARTNER_ADMIN", "ADMIN_AGENT"] {
        let email = format!("{}@subinv-corp.example", role.to_lowercase());
        sys.gql_ok(
            Some(&ga),
            ADD_USER,
            json!({"email": email, "roles": [role]}),
        )
        .await;
    }
    let mpa = sys.token("subinv-mpa", Some("mpn_partner_admin@subinv-corp.example"));
    let d = sys
        .gql_ok(Some(&mpa), INVOICES, json!({"id": sub_id}))
        .await;
    let list = d["subscription"]["invoices"].as_array().unwrap();
    assert_eq!(list.len(), 2, "the purchase and the renewal: {d:#}");
    assert!(
        parse_time(&list[0]["periodStart"]) > parse_time(&list[1]["periodStart"]),
        "newest first: {d:#}"
    );
    assert_eq!(list[0]["total"]["amountMinor"], 47500);
    let resp = sys
        .http()
        .get(format!(
            "{}{}",
            sys.api_url,
            list[0]["pdfPath"].as_str().unwrap()
        ))
        .bearer_auth(&mpa)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let bytes = resp.bytes().await.unwrap();
    let doc = lopdf::Document::load_mem(&bytes).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().cloned().collect();
    let text = doc.extract_text(&pages).unwrap();
    assert!(text.contains(list[0]["number"].as_str().unwrap()), "{text}");
    // An Admin agent sees the subscription but not its invoices.
    let agent = sys.token("subinv-agent", Some("admin_agent@subinv-corp.example"));
    let r = sys.gql(Some(&agent), INVOICES, json!({"id": sub_id})).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "{r:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_between_charge_and_booking_charges_once_and_ends_paid_and_active() {
    // The api exits right after the gateway accepted a purchase's charge.
    let mut sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("ORDER_SETTLE_AFTER_SECS", "2"),
        ("REDISPATCH_AFTER_SECS", "2"),
        ("FAULT_CRASH_AFTER_CHARGE", "purchase"),
    ])
    .await
    .unwrap();
    let (pid, ga) = authorized_partner(&sys, "crashbuy").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(&ga)
        .json(&json!({"query": PURCHASE, "variables": purchase_input("ACTION_PACK", "crash-1", &card)}))
        .send()
        .await;
    assert!(resp.is_err(), "the api died mid-request: {resp:?}");
    let status = sys.api.as_mut().unwrap().wait().await.unwrap();
    assert_eq!(status.code(), Some(70), "the fault switch fired");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'order:%'"
        )
        .await,
        1,
        "the gateway charged"
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM orders WHERE status = 'PROCESSING'"
        )
        .await,
        1,
        "nothing was booked"
    );
    sys.env.remove("FAULT_CRASH_AFTER_CHARGE");
    sys.start_api().await.unwrap();
    // The settlement job finds the charge at the gateway and books it.
    let order = eventually(30, "the order settled", || async {
        let o = sys
            .gql_ok(
                Some(&ga),
                "{ orders { edges { node { id status subscription { id status } } } } }",
                json!({}),
            )
            .await;
        let node = o["orders"]["edges"][0]["node"].clone();
        (node["status"] == "PAID").then_some(node)
    })
    .await;
    assert_eq!(order["subscription"]["status"], "ACTIVE");
    // The client retries with its idempotency key: the same order, no second charge.
    let again = sys
        .gql_ok(
            Some(&ga),
            PURCHASE,
            purchase_input("ACTION_PACK", "crash-1", &card),
        )
        .await;
    assert_eq!(again["purchaseOffer"]["id"], order["id"]);
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        1,
        "charged once"
    );

    // The worker exits right after the gateway accepted a renewal charge.
    let op = operator_token(&sys).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    sys.worker.as_mut().unwrap().kill().await.unwrap();
    sys.env
        .insert("FAULT_CRASH_AFTER_CHARGE".into(), "renewal".into());
    sys.start_worker().unwrap();
    let ad = parse_time(&sub(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let status = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        sys.worker.as_mut().unwrap().wait(),
    )
    .await
    .expect("the worker exits at the renewal charge")
    .unwrap();
    assert_eq!(status.code(), Some(70));
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        1
    );
    assert_eq!(
        subscription(&sys, &ga, &sub_id).await["term"],
        1,
        "not booked"
    );
    sys.env.remove("FAULT_CRASH_AFTER_CHARGE");
    sys.start_worker().unwrap();
    let s = eventually(60, "the renewal booked", || async {
        let s = subscription(&sys, &ga, &sub_id).await;
        (s["term"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        1,
        "the renewal was charged once"
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM orders WHERE kind = 'RENEWAL' AND status = 'PAID'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn reminders_reach_admins_and_primary_contact_once_and_failures_reach_the_admins_once() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    // The primary contact is not a user; the Global admin and an MPN partner admin are.
    let (ga_mail, contact, mpa_mail) = (
        "ga@recip-corp.example",
        "grace@recip-corp.example",
        "mpa@recip-corp.example",
    );
    let ga = sys.token("recip-ga", Some(ga_mail));
    let mut input = enroll_input("Recip Corp", contact);
    input["input"]["primaryContact"]["email"] = json!(contact);
    let pid = sys.gql_ok(Some(&ga), ENROLL, input).await["enrollPartner"]["partner"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = verification_token(&sys, contact, 1).await;
    sys.gql_ok(Some(&ga), VERIFY, json!({"token": t})).await;
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": mpa_mail, "roles": ["MPN_PARTNER_ADMIN"]}),
    )
    .await;
    // The invited MPN partner admin signs in once (an invited user is ACTIVE from then on).
    let mpa = sys.token("recip-mpa", Some(mpa_mail));
    let me = sys.gql_ok(Some(&mpa), ME, json!({})).await;
    assert_eq!(me["me"]["user"]["status"], "ACTIVE", "{me:#}");
    // Two subscriptions: one with auto-renew off (reminders), one whose renewal fails.
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let reminded = buy(&sys, &ga, "ACTION_PACK", &card).await["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sys.gql_ok(
        Some(&ga),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }",
        json!({"id": reminded}),
    )
    .await;
    sys.gql_ok(Some(&op), "mutation($p: ID!) { recordQualification(partnerId: $p, competency: \"SECURITY\", level: SILVER, qualifiedOn: \"2026-10-01\") { level } }", json!({"p": pid})).await;
    let failing = buy(&sys, &ga, "SILVER", &card).await["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    count(
        &sys,
        "WITH u AS (UPDATE sandbox_cards SET behaviour = 'DECLINE' RETURNING 1) SELECT count(*) AS n FROM u",
    )
    .await;
    let ad = parse_time(&sub(&sys, &ga, &reminded).await["anniversaryDate"]);
    let other = parse_time(&sub(&sys, &ga, &failing).await["anniversaryDate"]);
    assert!(
        (other - ad).num_seconds().abs() < 60,
        "bought together: {ad} {other}"
    );
    // Past AD−30, AD−15, AD−1, the AD (first charge attempt) and AD+1 (the window's first
    // reminder; the second charge attempt).
    for at in [
        ad - chrono::Duration::days(30),
        ad - chrono::Duration::days(15),
        ad - chrono::Duration::days(1),
        ad,
        ad + chrono::Duration::days(1),
    ] {
        advance_to(&sys, &op, &pid, at + chrono::Duration::hours(2)).await;
        sys.wait_idle().await;
    }
    let with = |to: &str, needle: &str| mails_with_subject(&sys, to, needle).len();
    for to in [ga_mail, mpa_mail, contact] {
        // AD−30, AD−15 and AD−1 before the AD, AD+1 in the window: each once.
        assert_eq!(
            with(to, "Microsoft Action Pack reaches its anniversary"),
            3,
            "{to}"
        );
        assert_eq!(with(to, "Renew Microsoft Action Pack by"), 1, "{to}");
    }
    // Failures go to the Global admins and MPN partner admins (PRODUCT.md 2.5): one per failed
    // attempt (the AD and AD+1), each once.
    assert_eq!(with(ga_mail, "failed"), 2, "{ga_mail}");
    assert_eq!(with(mpa_mail, "failed"), 2, "{mpa_mail}");
    assert_eq!(
        with(contact, "failed"),
        0,
        "the primary contact is not an admin"
    );
}

const ALLOCATIONS: &str =
    "{ benefits(first: 50) { edges { node { code quantity used remaining } } } }";

/// A partner qualified at `level` for `competencies` that bought that package: its
/// allocations by benefit code (quantity; `None` when unlimited), and its token.
async fn package(
    sys: &TestSystem,
    op: &str,
    tag: &str,
    level: &str,
    competencies: &[&str],
) -> (std::collections::BTreeMap<String, Option<i64>>, String) {
    let (pid, ga) = authorized_partner(sys, tag).await;
    for c in competencies {
        sys.gql_ok(Some(op), "mutation($p: ID!, $c: String!, $l: CompetencyLevel!) { recordQualification(partnerId: $p, competency: $c, level: $l, qualifiedOn: \"2026-10-01\") { level } }", json!({"p": pid, "c": c, "l": level})).await;
    }
    let card = add_card(sys, &ga, SUCCEEDING_CARD).await;
    buy(sys, &ga, level, &card).await;
    let d = sys.gql_ok(Some(&ga), ALLOCATIONS, json!({})).await;
    let map = d["benefits"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["code"].as_str().unwrap().to_owned(),
                e["node"]["quantity"].as_i64(),
            )
        })
        .collect();
    (map, ga)
}

#[tokio::test]
async fn silver_and_gold_allocations_from_the_catalog_are_product_2_3s_and_presales_is_unlimited() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let expect = |pairs: &[(&str, Option<i64>)]| {
        pairs
            .iter()
            .map(|(c, q)| (c.to_string(), *q))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // Silver, no cloud competency, one with the Visual Studio bonus (App Development):
    // 15 incidents, Signature Cloud Support 5, 20 advisory hours, 5 + 5 Visual Studio
    // Enterprise, GTM "Silver Core".
    let (silver, silver_ga) = package(
        &sys,
        &op,
        "silverpkg",
        "SILVER",
        &["APP_DEVELOPMENT", "DATA_ANALYTICS"],
    )
    .await;
    assert_eq!(
        silver,
        expect(&[
            ("PRODUCT_SUPPORT", Some(15)),
            ("SIGNATURE_CLOUD_SUPPORT", Some(5)),
            ("ADVISORY_HOURS", Some(20)),
            ("VS_ENTERPRISE", Some(10)),
            ("GTM_SILVER_CORE", Some(1)),
        ])
    );
    // Gold with a cloud competency (Cloud Platform) and App Development, both with the bonus:
    // 20 incidents, unlimited Signature Cloud Support, 50 hours, 10 + 25 × 2 Visual Studio
    // Enterprise, "Gold Core" and "ISV Co-sell ready" (App Development).
    let (gold, _) = package(
        &sys,
        &op,
        "goldpkg",
        "GOLD",
        &["CLOUD_PLATFORM", "APP_DEVELOPMENT"],
    )
    .await;
    assert_eq!(
        gold,
        expect(&[
            ("PRODUCT_SUPPORT", Some(20)),
            ("SIGNATURE_CLOUD_SUPPORT", None),
            ("ADVISORY_HOURS", Some(50)),
            ("VS_ENTERPRISE", Some(60)),
            ("GTM_GOLD_CORE", Some(1)),
            ("GTM_ISV_CO_SELL_READY", Some(1)),
        ])
    );
    // Presales help is unlimited for Silver: more hours than the allocation, twice.
    const PRESALES: &str = r#"mutation($h: Int) { createServiceRequest(input: {kind: PRESALES_DEPLOYMENT, title: "Design review", description: "Please", severity: MINIMAL, advisoryHours: $h}) { id } }"#;
    for _ in 0..2 {
        sys.gql_ok(Some(&silver_ga), PRESALES, json!({"h": 25}))
            .await;
    }
    // An Action Pack partner draws on its 5 hours and is refused beyond them.
    let (_, ap_ga, _, _) = bought(&sys, "presalesap").await;
    sys.gql_ok(Some(&ap_ga), PRESALES, json!({"h": 5})).await;
    let r = sys.gql(Some(&ap_ga), PRESALES, json!({"h": 1})).await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
}

#[tokio::test]
async fn a_visual_studio_seat_is_reassigned_from_day_90_not_day_89() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga, _, _) = bought(&sys, "reassign").await;
    let mut users = Vec::new();
    for i in 0..2 {
        let u = sys
            .gql_ok(
                Some(&ga),
                ADD_USER,
                json!({"email": format!("dev{i}@reassign-corp.example"), "roles": []}),
            )
            .await["addUser"]["id"]
            .clone();
        users.push(u);
    }
    const ASSIGN: &str = "mutation($b: ID!, $u: ID!, $r: ID) { assignVisualStudioSubscription(benefitId: $b, userId: $u, replaceUserId: $r, acknowledgeRefundLoss: true) { assignments { userId assignedAt reassignableFrom } } }";
    let vs = benefit(&sys, &ga, "VS_PROFESSIONAL").await["id"].clone();
    let a = sys
        .gql_ok(
            Some(&ga),
            ASSIGN,
            json!({"b": vs, "u": users[0], "r": null}),
        )
        .await;
    let seat = &a["assignVisualStudioSubscription"]["assignments"][0];
    let assigned = parse_time(&seat["assignedAt"]);
    let from = parse_time(&seat["reassignableFrom"]);
    assert_eq!(from - assigned, chrono::Duration::days(90), "{seat}");
    let move_seat = json!({"b": vs, "u": users[1], "r": users[0]});
    advance_to(
        &sys,
        &op,
        &pid,
        assigned + chrono::Duration::days(89) + chrono::Duration::hours(12),
    )
    .await;
    let r = sys.gql(Some(&ga), ASSIGN, move_seat.clone()).await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "REASSIGNMENT_TOO_EARLY",
        "day 89: {r:#}"
    );
    advance_to(
        &sys,
        &op,
        &pid,
        assigned + chrono::Duration::days(90) + chrono::Duration::minutes(1),
    )
    .await;
    let d = sys.gql_ok(Some(&ga), ASSIGN, move_seat).await;
    let holders: Vec<&Value> = d["assignVisualStudioSubscription"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["userId"])
        .collect();
    assert_eq!(holders, vec![&users[1]], "day 90: moved");
}

#[tokio::test]
async fn a_rejected_partner_is_told_why_and_cannot_buy() {
    let sys = TestSystem::start().await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga) = enroll(
        &sys,
        "rejected",
        "rejected@rejected-corp.example",
        "Rejected Corp",
    )
    .await;
    const DECIDE_VETTING: &str = "mutation($p: ID!, $r: String) { decideVetting(partnerId: $p, decision: REJECT, reason: $r) { vetting { status reason } } }";
    let r = sys
        .gql(Some(&op), DECIDE_VETTING, json!({"p": pid, "r": null}))
        .await;
    assert_eq!(
        error_code(&r),
        Some("BAD_USER_INPUT"),
        "a rejection needs a reason: {r:#}"
    );
    assert_eq!(r["errors"][0]["extensions"]["field"], "reason");
    let r = sys
        .gql(Some(&ga), DECIDE_VETTING, json!({"p": pid, "r": "x"}))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "operators only");
    let d = sys
        .gql_ok(
            Some(&op),
            DECIDE_VETTING,
            json!({"p": pid, "r": "The legal name does not match the registry"}),
        )
        .await;
    assert_eq!(d["decideVetting"]["vetting"]["status"], "REJECTED");
    let me = sys
        .gql_ok(
            Some(&ga),
            "{ me { partner { vetting { status reason } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        me["me"]["partner"]["vetting"]["reason"],
        "The legal name does not match the registry"
    );
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let r = sys
        .gql(
            Some(&ga),
            PURCHASE,
            purchase_input("ACTION_PACK", "rej-1", &card),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM orders").await, 0);
}

#[tokio::test]
async fn enrolling_with_an_existing_tenant_links_it_once() {
    let sys = TestSystem::start().await.unwrap();
    let tenant = uuid::Uuid::new_v4().to_string();
    let mut input = enroll_input("Tenant Corp", "ten@tenant-corp.example");
    input["input"]["existingTenantId"] = json!(tenant);
    let token = sys.token("tenant", Some("ten@tenant-corp.example"));
    let d = sys.gql_ok(Some(&token), ENROLL, input.clone()).await;
    let p = &d["enrollPartner"]["partner"];
    assert_eq!(p["tenantCreated"], false, "{d:#}");
    let id = p["id"].clone();
    let t = sys
        .gql_ok(
            Some(&token),
            "{ me { partner { id tenantId tenantCreated } } }",
            json!({}),
        )
        .await;
    assert_eq!(t["me"]["partner"]["id"], id);
    assert_eq!(t["me"]["partner"]["tenantId"], tenant.as_str());
    // Another partner cannot link the same tenant.
    let mut again = enroll_input("Other Corp", "oth@other-corp.example");
    again["input"]["existingTenantId"] = json!(tenant);
    let other = sys.token("other-tenant", Some("oth@other-corp.example"));
    let r = sys.gql(Some(&other), ENROLL, again).await;
    assert_eq!(error_code(&r), Some("CONFLICT"), "{r:#}");
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM partners").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn discard_job_removes_a_real_dead_job_and_is_audited() {
    let sys =
        TestSystem::start_with(&[("EMAIL_MAX_ATTEMPTS", "1"), ("EMAIL_RETRY_BASE_MS", "100")])
            .await
            .unwrap();
    let op = operator_token(&sys).await;
    sys.smtp.refuse(true);
    enroll(
        &sys,
        "discard",
        "discard@discard-corp.example",
        "Discard Corp",
    )
    .await;
    let job = eventually(30, "the dead email job", || async {
        let j = sys
            .gql_ok(
                Some(&op),
                "{ jobs(queue: \"email\", state: DEAD) { totalCount nodes { id } } }",
                json!({}),
            )
            .await;
        j["jobs"]["nodes"][0]["id"].as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(jobs_dead(&sys, &op, "email").await, 1);
    const DISCARD: &str = "mutation($id: String!) { discardJob(queue: \"email\", id: $id) }";
    sys.gql_ok(Some(&op), DISCARD, json!({"id": job})).await;
    assert_eq!(jobs_dead(&sys, &op, "email").await, 0);
    let r = sys.gql(Some(&op), DISCARD, json!({"id": job})).await;
    assert_eq!(error_code(&r), Some("NOT_FOUND"), "gone: {r:#}");
    assert_eq!(
        count(
            &sys,
            &format!("SELECT count(*) AS n FROM audit_log WHERE action = 'job.discarded' AND target_id = 'email/{job}'")
        )
        .await,
        1
    );
    // Its email stays DEAD in Postgres: discarding does not send it.
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM emails WHERE status = 'DEAD'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_request_past_its_time_is_stopped_with_503_and_writes_nothing() {
    use diesel_async::RunQueryDsl;
    let sys = TestSystem::start_with(&[("HTTP_REQUEST_TIMEOUT_MS", "500")])
        .await
        .unwrap();
    let (pid, ga) = enroll(&sys, "slow", "slow@slow-corp.example", "Slow Corp").await;
    // Another session holds the partner's row: adding a user waits for it.
    let mut holder = sys.db.connect().await.unwrap();
    diesel::sql_query("BEGIN")
        .execute(&mut holder)
        .await
        .unwrap();
    diesel::sql_query(format!(
        "SELECT 1 FROM partners WHERE id = '{pid}' FOR UPDATE"
    ))
    .execute(&mut holder)
    .await
    .unwrap();
    let started = std::time::Instant::now();
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(&ga)
        .json(&json!({"query": ADD_USER, "variables": {"email": "late@slow-corp.example", "roles": []}}))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INTERNAL",
        "{body:#}"
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("took too long"),
        "{body:#}"
    );
    assert!(
        waited < std::time::Duration::from_secs(5),
        "stopped after {waited:?}"
    );
    diesel::sql_query("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    sys.wait_idle().await;
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM users WHERE email = 'late@slow-corp.example'"
        )
        .await,
        0,
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_query_over_the_complexity_limit_is_refused_before_it_runs() {
    let sys = TestSystem::start_with(&[("GRAPHQL_MAX_COMPLEXITY", "20")])
        .await
        .unwrap();
    let (_, ga) = enroll(
        &sys,
        "complex",
        "complex@complex-corp.example",
        "Complex Corp",
    )
    .await;
    let small = sys
        .gql(Some(&ga), "{ me { user { id email } } }", json!({}))
        .await;
    assert!(small.get("errors").is_none(), "{small:#}");
    let big = "{ offers { offer { id name description price { amountMinor currency formatted } benefits { code product quantity unit category } } available reasons { code message } } me { user { id email roles status } partner { id legalName mpnId tenantId } } }";
    let r = sys.gql(Some(&ga), big, json!({})).await;
    assert!(r["data"].is_null(), "{r:#}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("complex"),
        "{r:#}"
    );
}

#[tokio::test]
async fn renewing_silver_needs_a_current_qualification_and_without_one_no_charge_is_attempted() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga) = authorized_partner(&sys, "requal").await;
    const QUALIFY: &str = "mutation($p: ID!) { recordQualification(partnerId: $p, competency: \"SECURITY\", level: SILVER, qualifiedOn: \"2026-10-01\") { level } }";
    const WITHDRAW: &str = "mutation($p: ID!) { removeQualification(partnerId: $p, competency: \"SECURITY\", level: SILVER) }";
    sys.gql_ok(Some(&op), QUALIFY, json!({"p": pid})).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let sub_id = buy(&sys, &ga, "SILVER", &card).await["subscription"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = sys.gql(Some(&ga), WITHDRAW, json!({"p": pid})).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"), "operators only");
    assert_eq!(
        sys.gql_ok(Some(&op), WITHDRAW, json!({"p": pid})).await["removeQualification"],
        true
    );
    let r = sys.gql(Some(&op), WITHDRAW, json!({"p": pid})).await;
    assert_eq!(error_code(&r), Some("NOT_FOUND"));

    // On the AD the charge is not attempted; the admins are told why.
    let ad = parse_time(&sub(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = eventually(30, "the renewal attempt", || async {
        let s = subscription(&sys, &ga, &sub_id).await;
        (s["renewalFailures"] == 1).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "IN_RENEWAL_WINDOW");
    assert!(
        s["lastRenewalError"]
            .as_str()
            .unwrap()
            .contains("qualification for SECURITY"),
        "{s:#}"
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        0,
        "no charge attempted"
    );
    sys.wait_idle().await;
    let mails = mails_with_subject(&sys, "requal@requal-corp.example", "failed");
    assert_eq!(mails.len(), 1);
    assert!(
        mails[0].text().contains("qualification for SECURITY"),
        "{}",
        mails[0].text()
    );

    // By hand inside the window: refused with the reason, until the qualification is back.
    advance_to(&sys, &op, &pid, ad + chrono::Duration::days(2)).await;
    // Automatic retries that fell due meanwhile run (and are refused) before anything changes.
    sys.wait_idle().await;
    let q = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { renewalQuote(subscriptionId: $id) { termsVersion } }",
            json!({"id": sub_id}),
        )
        .await;
    let renew = json!({"input": {"subscriptionId": sub_id, "idempotencyKey": "requal-1", "paymentMethodId": card,
                                 "acceptTermsVersion": q["renewalQuote"]["termsVersion"]}});
    const RENEW: &str = "mutation($input: RenewInput!) { renewSubscription(input: $input) { status failureCode subscription { term } } }";
    let r = sys.gql(Some(&ga), RENEW, renew.clone()).await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "QUALIFICATION_REQUIRED"
    );
    sys.gql_ok(Some(&op), QUALIFY, json!({"p": pid})).await;
    let mut again = renew;
    again["input"]["idempotencyKey"] = json!("requal-2");
    let r = sys.gql_ok(Some(&ga), RENEW, again).await;
    // An automatic retry falling due at this moment may renew the term first; the manual order
    // then yields (CANCELLED, ALREADY_RENEWED) and shares its charge key: either way the term
    // is renewed once, with one charge.
    let status = r["renewSubscription"]["status"].as_str().unwrap();
    if status != "PAID" {
        assert_eq!(status, "CANCELLED", "{r:#}");
        assert_eq!(
            r["renewSubscription"]["failureCode"], "ALREADY_RENEWED",
            "{r:#}"
        );
    }
    let s = eventually(30, "the second term", || async {
        let s = subscription(&sys, &ga, &sub_id).await;
        (s["term"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "ACTIVE", "{s:#}");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        1,
        "one charge for the term"
    );
}

/// Auto-renew off, then the partner's clock into the renewal window (AD + 1 day + 1 hour),
/// waiting for the window; returns the terms version a renewal must accept.
async fn into_renewal_window(
    sys: &TestSystem,
    op: &str,
    pid: &str,
    token: &str,
    sub_id: &str,
) -> Value {
    sys.gql_ok(
        Some(token),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { autoRenew } }",
        json!({"id": sub_id}),
    )
    .await;
    let ad = parse_time(&sub(sys, token, sub_id).await["anniversaryDate"]);
    advance_to(
        sys,
        op,
        pid,
        ad + chrono::Duration::days(1) + chrono::Duration::hours(1),
    )
    .await;
    eventually(30, "the renewal window", || async {
        (subscription(sys, token, sub_id).await["status"] == "IN_RENEWAL_WINDOW").then_some(())
    })
    .await;
    sys.gql_ok(
        Some(token),
        "query($id: ID!) { renewalQuote(subscriptionId: $id) { termsVersion } }",
        json!({"id": sub_id}),
    )
    .await["renewalQuote"]["termsVersion"]
        .clone()
}

/// In flight at the sandbox gateway (FAULT_GATEWAY_DELAY_MS journals each stalled call).
async fn calls_in_flight(sys: &TestSystem, key: &str) -> i64 {
    count(
        sys,
        &format!(
            "SELECT count(*) AS n FROM sandbox_calls WHERE idempotency_key = '{key}' AND finished_at IS NULL"
        ),
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn no_gateway_call_under_a_lock_a_stalled_renewal_charge_keeps_no_one_waiting() {
    // Every gateway call stalls 5 s. Partner A's renewal charge is under way at the gateway;
    // meanwhile A's dashboard and A's own change to that subscription answer at once (no lock
    // held on it), another partner's renewal goes through, and no transaction sits open
    // waiting for the gateway.
    let sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("FAULT_GATEWAY_DELAY_MS", "5000"),
    ])
    .await
    .unwrap();
    let op = operator_token(&sys).await;
    let (pa, ga, sa, _) = bought(&sys, "stall-a").await;
    let (pb, gb, sb, _) = bought(&sys, "stall-b").await;
    // B renews by hand: auto-renew off, then into its window.
    let terms = into_renewal_window(&sys, &op, &pb, &gb, &sb).await;
    let card_b = add_card(&sys, &gb, SUCCEEDING_CARD).await;

    // A's anniversary: the automatic renewal charge goes to the gateway and stalls there.
    let ad_a = parse_time(&sub(&sys, &ga, &sa).await["anniversaryDate"]);
    advance_to(&sys, &op, &pa, ad_a + chrono::Duration::hours(1)).await;
    let key_a = format!("renewal:{sa}:1");
    eventually(30, "A's renewal charge at the gateway", || async {
        (calls_in_flight(&sys, &key_a).await == 1).then_some(())
    })
    .await;

    let a_side = async {
        let dashboard = sys
            .gql_ok(
                Some(&ga),
                "{ subscriptions(first: 20) { edges { node { id status term autoRenew } } } orders { edges { node { status } } } invoices(first: 5) { edges { node { number } } } }",
                json!({}),
            )
            .await;
        let off = sys
            .gql_ok(
                Some(&ga),
                "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { autoRenew } }",
                json!({"id": sa}),
            )
            .await;
        let still_charging = calls_in_flight(&sys, &key_a).await;
        // Two seconds into the call: a transaction left open across it would be idle that long.
        eventually(10, "A's charge 2 s at the gateway", || async {
            let n = count(&sys, &format!("SELECT count(*) AS n FROM sandbox_calls WHERE idempotency_key = '{key_a}' AND finished_at IS NULL AND clock_timestamp() - started_at > interval '2 seconds'")).await;
            (n == 1).then_some(())
        })
        .await;
        let idle_in_tx = count(
            &sys,
            "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() \
             AND state LIKE 'idle in transaction%' AND clock_timestamp() - state_change > interval '1 second'",
        )
        .await;
        (dashboard, off, still_charging, idle_in_tx)
    };
    let renew_b = json!({"input": {"subscriptionId": sb, "idempotencyKey": "stall-renew-b", "paymentMethodId": card_b, "acceptTermsVersion": terms}});
    let b_side = sys.gql_ok(
        Some(&gb),
        "mutation($input: RenewInput!) { renewSubscription(input: $input) { status subscription { term } } }",
        renew_b,
    );
    let ((dashboard, off, still_charging, idle_in_tx), renewed_b) = tokio::join!(a_side, b_side);
    assert_eq!(
        dashboard["subscriptions"]["edges"][0]["node"]["term"], 1,
        "A's dashboard answered during the charge: {dashboard:#}"
    );
    assert_eq!(off["turnOffAutoRenew"]["autoRenew"], false);
    assert_eq!(
        still_charging, 1,
        "A's dashboard and its change to the subscription answered while A's charge was still at the gateway"
    );
    assert_eq!(
        idle_in_tx, 0,
        "no transaction stays open while the gateway works"
    );
    assert_eq!(renewed_b["renewSubscription"]["status"], "PAID");
    assert_eq!(renewed_b["renewSubscription"]["subscription"]["term"], 2);
    assert_eq!(
        count(
            &sys,
            &format!(
                "SELECT count(*) AS n FROM sandbox_calls a JOIN sandbox_calls b ON b.idempotency_key = 'renewal:{sb}:1' \
                 WHERE a.idempotency_key = '{key_a}' AND b.started_at < a.finished_at"
            ),
        )
        .await,
        1,
        "B's renewal reached the gateway while A's charge was still there"
    );

    // A's charge went through before the change arrived: the term is booked once, and
    // auto-renew stays off for the next term, as A asked.
    let s = eventually(60, "A's renewal booked", || async {
        let s = subscription(&sys, &ga, &sa).await;
        (s["term"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["autoRenew"], false, "{s:#}");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM orders WHERE kind = 'RENEWAL' AND status = 'PAID'"
        )
        .await,
        2
    );
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'"
        )
        .await,
        2,
        "each renewal charged once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manual_renewal_cut_off_after_its_charge_is_settled_from_the_gateway_once() {
    // The api exits right after the gateway accepted a renewSubscription charge (the order was
    // reserved, PROCESSING, before the call): the settlement job books the term from the
    // gateway's records, and the client's retry gets that order.
    let mut sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("ORDER_SETTLE_AFTER_SECS", "2"),
        ("REDISPATCH_AFTER_SECS", "2"),
        ("FAULT_CRASH_AFTER_CHARGE", "renewal"),
    ])
    .await
    .unwrap();
    let op = operator_token(&sys).await;
    let (pid, ga, sub_id, _) = bought(&sys, "crashrenew").await;
    let terms = into_renewal_window(&sys, &op, &pid, &ga, &sub_id).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    const RENEW: &str = "mutation($input: RenewInput!) { renewSubscription(input: $input) { id status subscription { term autoRenew } } }";
    let input = json!({"input": {"subscriptionId": sub_id, "idempotencyKey": "renew-crash", "paymentMethodId": card, "acceptTermsVersion": terms}});
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(&ga)
        .json(&json!({"query": RENEW, "variables": input}))
        .send()
        .await;
    assert!(resp.is_err(), "the api died mid-request: {resp:?}");
    let status = sys.api.as_mut().unwrap().wait().await.unwrap();
    assert_eq!(status.code(), Some(70), "the fault switch fired");
    let renewal_charges =
        "SELECT count(*) AS n FROM sandbox_charges WHERE idempotency_key LIKE 'renewal:%'";
    assert_eq!(count(&sys, renewal_charges).await, 1, "the gateway charged");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM orders WHERE kind = 'RENEWAL' AND status = 'PROCESSING'"
        )
        .await,
        1,
        "the order was reserved before the charge, and not booked"
    );
    assert_eq!(
        count(
            &sys,
            &format!("SELECT count(*) AS n FROM subscriptions WHERE id = '{sub_id}' AND term = 1")
        )
        .await,
        1,
        "the term was not booked"
    );

    sys.env.remove("FAULT_CRASH_AFTER_CHARGE");
    sys.start_api().await.unwrap();
    let s = eventually(60, "the renewal settled from the gateway", || async {
        let s = subscription(&sys, &ga, &sub_id).await;
        (s["term"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["autoRenew"], true, "a manual renewal turns auto-renew on");
    let again = sys.gql_ok(Some(&ga), RENEW, input).await;
    assert_eq!(again["renewSubscription"]["status"], "PAID", "{again:#}");
    assert_eq!(again["renewSubscription"]["subscription"]["term"], 2);
    assert_eq!(count(&sys, renewal_charges).await, 1, "charged once");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM orders WHERE kind = 'RENEWAL'"
        )
        .await,
        1,
        "one renewal order"
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM invoices").await,
        2,
        "the purchase's invoice and the renewal's"
    );
}

/// Buys an Action Pack by bank transfer and has an operator confirm it: (subscription id,
/// anniversary date).
async fn bought_by_transfer(
    sys: &TestSystem,
    ga: &str,
    op: &str,
    tag: &str,
) -> (String, chrono::DateTime<chrono::Utc>) {
    let o = sys
        .gql_ok(
            Some(ga),
            r#"mutation Buy($input: PurchaseInput!) { purchaseOffer(input: $input) { id subscription { id } } }"#,
            json!({"input": {
                "offerId": "ACTION_PACK", "idempotencyKey": format!("{tag}-buy"), "acceptTermsVersion": "2021-06",
                "payment": {"bankTransfer": {"contactName": "Bo Banker", "contactPhone": "+14255550101", "contactEmail": format!("bo@{tag}-corp.example")}}
            }}),
        )
        .await["purchaseOffer"]
        .clone();
    sys.gql_ok(
        Some(op),
        "mutation($id: ID!) { confirmBankTransfer(orderId: $id, reference: \"IN-1\") { status } }",
        json!({"id": o["id"]}),
    )
    .await;
    let sub_id = o["subscription"]["id"].as_str().unwrap().to_owned();
    let ad = parse_time(&sub(sys, ga, &sub_id).await["anniversaryDate"]);
    (sub_id, ad)
}

const RENEW_BY_TRANSFER: &str = "mutation($input: RenewInput!) { renewSubscription(input: $input) { id number status paymentKind expiresAt subscription { term status } } }";

fn transfer_renewal(sub_id: &str, key: &str, tag: &str) -> Value {
    json!({"input": {"subscriptionId": sub_id, "idempotencyKey": key, "acceptTermsVersion": "2021-06",
        "bankTransfer": {"contactName": "Bo Banker", "contactPhone": "+14255550101", "contactEmail": format!("bo@{tag}-corp.example")}}})
}

#[tokio::test]
async fn renewing_by_bank_transfer_waits_for_an_operator_and_unpaid_at_the_windows_end_lapses() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let op = operator_token(&sys).await;

    // Bought by bank transfer: no card, so auto-renew is off and says why; the reminders say
    // so and how to renew.
    let (pid, ga) = authorized_partner(&sys, "bankrenew").await;
    let (sub_id, ad) = bought_by_transfer(&sys, &ga, &op, "bankrenew").await;
    let s = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { subscription(id: $id) { autoRenew autoRenewOffReason } }",
            json!({"id": sub_id}),
        )
        .await["subscription"]
        .clone();
    assert_eq!(s["autoRenew"], false);
    assert_eq!(s["autoRenewOffReason"], "NO_CARD");
    advance_to(
        &sys,
        &op,
        &pid,
        ad - chrono::Duration::days(30) + chrono::Duration::hours(1),
    )
    .await;
    let reminder = eventually(30, "the AD-30 reminder", || async {
        mails_with_subject(&sys, "bankrenew@bankrenew-corp.example", "anniversary").pop()
    })
    .await;
    let text = reminder.text();
    assert!(text.contains("no saved card"), "{text}");
    assert!(
        text.contains("choose Renew") && text.contains("bank transfer"),
        "{text}"
    );

    // In the window: a renewal by bank transfer waits for the funds until the window's last day.
    advance_to(
        &sys,
        &op,
        &pid,
        ad + chrono::Duration::days(1) + chrono::Duration::hours(1),
    )
    .await;
    eventually(30, "the renewal window", || async {
        (subscription(&sys, &ga, &sub_id).await["status"] == "IN_RENEWAL_WINDOW").then_some(())
    })
    .await;
    let r = sys
        .gql(Some(&ga), RENEW_BY_TRANSFER, json!({"input": {"subscriptionId": sub_id, "idempotencyKey": "no-way", "acceptTermsVersion": "2021-06"}}))
        .await;
    assert_eq!(
        error_code(&r),
        Some("BAD_USER_INPUT"),
        "no way to pay: {r:#}"
    );
    let o = sys
        .gql_ok(
            Some(&ga),
            RENEW_BY_TRANSFER,
            transfer_renewal(&sub_id, "bank-renew-1", "bankrenew"),
        )
        .await["renewSubscription"]
        .clone();
    assert_eq!(o["status"], "PENDING_PAYMENT", "{o:#}");
    assert_eq!(o["paymentKind"], "BANK_TRANSFER");
    assert_eq!(
        o["subscription"]["term"], 1,
        "not renewed before the funds arrive"
    );
    let last_day = (ad.date_naive() + chrono::Days::new(30)).to_string();
    assert_eq!(
        parse_time(&o["expiresAt"]).date_naive().to_string(),
        (ad.date_naive() + chrono::Days::new(31)).to_string()
    );
    let instructions = eventually(30, "the transfer instructions", || async {
        mails_with_subject(&sys, "bo@bankrenew-corp.example", "by bank transfer")
            .into_iter()
            .find(|m| m.text().contains(o["number"].as_str().unwrap()))
    })
    .await;
    let text = instructions.text();
    assert!(text.contains("is renewing"), "{text}");
    assert!(
        text.contains(&last_day),
        "the funds are due by the window's last day: {text}"
    );
    // One transfer awaited at a time.
    let r = sys
        .gql(
            Some(&ga),
            RENEW_BY_TRANSFER,
            transfer_renewal(&sub_id, "bank-renew-2", "bankrenew"),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "RENEWAL_AWAITING_TRANSFER"
    );
    // The same request again: the same order.
    let again = sys
        .gql_ok(
            Some(&ga),
            RENEW_BY_TRANSFER,
            transfer_renewal(&sub_id, "bank-renew-1", "bankrenew"),
        )
        .await;
    assert_eq!(again["renewSubscription"]["id"], o["id"]);
    // The operator confirms the funds: the term is booked, counted from the old AD.
    let c = sys
        .gql_ok(
            Some(&op),
            "mutation($id: ID!) { confirmBankTransfer(orderId: $id, reference: \"IN-2\") { status invoice { number } subscription { term status anniversaryDate autoRenew autoRenewOffReason } } }",
            json!({"id": o["id"]}),
        )
        .await["confirmBankTransfer"]
        .clone();
    assert_eq!(c["status"], "PAID", "{c:#}");
    assert!(c["invoice"]["number"].is_string());
    assert_eq!(c["subscription"]["term"], 2);
    assert_eq!(c["subscription"]["status"], "ACTIVE");
    assert_eq!(
        parse_time(&c["subscription"]["anniversaryDate"]),
        ad.checked_add_months(chrono::Months::new(12)).unwrap()
    );

    // Another partner's transfer never arrives: at the window's end the order expires and the
    // subscription lapses.
    let (pid2, ga2) = authorized_partner(&sys, "banklapse").await;
    let (sub2, ad2) = bought_by_transfer(&sys, &ga2, &op, "banklapse").await;
    advance_to(&sys, &op, &pid2, ad2 + chrono::Duration::days(2)).await;
    eventually(30, "the renewal window", || async {
        (subscription(&sys, &ga2, &sub2).await["status"] == "IN_RENEWAL_WINDOW").then_some(())
    })
    .await;
    let o2 = sys
        .gql_ok(
            Some(&ga2),
            RENEW_BY_TRANSFER,
            transfer_renewal(&sub2, "lapse-1", "banklapse"),
        )
        .await["renewSubscription"]
        .clone();
    assert_eq!(o2["status"], "PENDING_PAYMENT");
    advance_to(
        &sys,
        &op,
        &pid2,
        ad2 + chrono::Duration::days(31) + chrono::Duration::hours(1),
    )
    .await;
    let s2 = eventually(30, "the lapse", || async {
        let s = subscription(&sys, &ga2, &sub2).await;
        (s["status"] == "LAPSED").then_some(s)
    })
    .await;
    assert_eq!(s2["term"], 1);
    let order2 = eventually(30, "the order expired", || async {
        let o = sys
            .gql_ok(
                Some(&ga2),
                "query($id: ID!) { order(id: $id) { status } }",
                json!({"id": o2["id"]}),
            )
            .await;
        (o["order"]["status"] == "EXPIRED").then_some(o)
    })
    .await;
    assert_eq!(order2["order"]["status"], "EXPIRED");
    // Confirming it now is refused: nothing is booked for a lapsed subscription.
    let late = sys
        .gql(
            Some(&op),
            "mutation($id: ID!) { confirmBankTransfer(orderId: $id, reference: \"LATE\") { status } }",
            json!({"id": o2["id"]}),
        )
        .await;
    assert_eq!(error_code(&late), Some("NOT_ELIGIBLE"), "{late:#}");
}
