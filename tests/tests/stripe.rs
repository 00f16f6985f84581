//! The Stripe gateway (`PAYMENT_GATEWAY=stripe`) against localstripe, a Stripe-compatible
//! server that `scripts/test` starts (STRIPE_TEST_API_BASE): cards reach Stripe from the
//! "browser" (here the test, as Stripe.js would), the API only attaches their PaymentMethod
//! ids; purchases, automatic and manual renewals, declines, refunds and a crash between a
//! charge and its booking all settle from what Stripe holds.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

/// The localstripe address; the tests never skip (scripts/test starts it).
fn stripe_base() -> String {
    std::env::var("STRIPE_TEST_API_BASE").expect(
        "STRIPE_TEST_API_BASE is not set: run the tests with scripts/test, which starts localstripe",
    )
}

async fn stripe_system(extra: &[(&str, &str)]) -> TestSystem {
    let base = stripe_base();
    let mut env = vec![
        ("AUTO_AUTHORIZE", "true"),
        ("PAYMENT_GATEWAY", "stripe"),
        ("STRIPE_API_BASE", base.as_str()),
        ("STRIPE_SECRET_KEY", "sk_test_pbg_e2e_secret"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_pbg_e2e_secret"),
        // Everything logged, at every level, is checked for secrets ([`no_secrets_in_logs`]).
        ("RUST_LOG", "debug"),
    ];
    env.extend_from_slice(extra);
    TestSystem::start_with(&env).await.unwrap()
}

/// Neither the secret key, the webhook secret nor a card number appears in anything the api
/// and worker logged (at debug level), and the logs were captured at all.
fn no_secrets_in_logs(sys: &TestSystem) {
    assert!(
        std::env::var("TEST_SHOW_LOGS").is_err(),
        "this test reads the captured logs: run it without TEST_SHOW_LOGS"
    );
    let logs = sys.logs();
    assert!(logs.contains("api listening"), "logs were captured");
    for secret in [
        "sk_test_pbg_e2e_secret",
        "whsec_pbg_e2e_secret",
        "4242424242424242",
        "4000000000000341",
        "5555555555554444",
    ] {
        assert!(!logs.contains(secret), "`{secret}` appears in the logs");
    }
}

/// What Stripe.js does in the browser: the card goes to Stripe, which answers with a
/// PaymentMethod id.
async fn browser_payment_method(number: &str) -> String {
    let pm: Value = reqwest::Client::new()
        .post(format!("{}/v1/payment_methods", stripe_base()))
        // Stripe.js uses the publishable key; localstripe accepts only secret keys.
        .bearer_auth("sk_test_pbg_e2e_secret")
        .form(&[
            ("type", "card"),
            ("card[number]", number),
            ("card[exp_month]", "12"),
            ("card[exp_year]", "2035"),
            ("card[cvc]", "123"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    pm["id"].as_str().expect("a PaymentMethod id").to_owned()
}

/// Stripe's PaymentIntents carrying this charge key in their metadata.
async fn intents_with_key(key: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut q = vec![("limit".to_owned(), "100".to_owned())];
        if let Some(a) = &after {
            q.push(("starting_after".into(), a.clone()));
        }
        let page: Value = reqwest::Client::new()
            .get(format!("{}/v1/payment_intents", stripe_base()))
            .bearer_auth("sk_test_pbg_e2e_secret")
            .query(&q)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let data = page["data"].as_array().cloned().unwrap_or_default();
        found.extend(
            data.iter()
                .filter(|pi| pi["metadata"]["charge_key"] == key)
                .cloned(),
        );
        if page["has_more"] != true || data.is_empty() {
            return found;
        }
        after = data
            .last()
            .and_then(|pi| pi["id"].as_str())
            .map(str::to_owned);
    }
}

const ADD_PM: &str =
    "mutation($pm: String!) { addPaymentMethod(paymentMethodId: $pm) { id brand last4 expMonth expYear } }";

async fn add_stripe_card(sys: &TestSystem, token: &str, number: &str) -> String {
    let pm = browser_payment_method(number).await;
    let d = sys.gql_ok(Some(token), ADD_PM, json!({"pm": pm})).await;
    d["addPaymentMethod"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn stripe_cards_come_from_the_browser_purchases_and_renewals_are_payment_intents() {
    let sys = stripe_system(&[]).await;
    let op = operator_token(&sys).await;
    let (pid, ga) = authorized_partner(&sys, "stripebuy").await;
    // A card number never reaches the API with Stripe.
    let r = sys
        .gql(
            Some(&ga),
            ADD_CARD,
            json!({"card": {"number": "4242424242424242", "expMonth": 12, "expYear": 2035, "cvc": "123", "holderName": "Ada"}}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r:#}");
    assert_eq!(r["errors"][0]["extensions"]["field"], "paymentMethodId");
    // The browser's PaymentMethod, attached: brand, last four and expiry read back from Stripe.
    let pm = browser_payment_method("4242424242424242").await;
    let card = sys.gql_ok(Some(&ga), ADD_PM, json!({"pm": pm})).await["addPaymentMethod"].clone();
    assert_eq!(card["brand"], "visa");
    assert_eq!(card["last4"], "4242");
    assert_eq!(card["expYear"], 2035);
    let bogus = sys
        .gql(Some(&ga), ADD_PM, json!({"pm": "pm_doesnotexist"}))
        .await;
    assert_eq!(error_code(&bogus), Some("BAD_USER_INPUT"), "{bogus:#}");

    let order = buy(&sys, &ga, "ACTION_PACK", card["id"].as_str().unwrap()).await;
    let order_id = order["id"].as_str().unwrap();
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let intents = intents_with_key(&format!("order:{order_id}")).await;
    assert_eq!(intents.len(), 1, "one PaymentIntent for the purchase");
    assert_eq!(intents[0]["status"], "succeeded");
    assert_eq!(intents[0]["amount"], 47500);
    assert_eq!(
        intents[0]["customer"]
            .as_str()
            .map(|c| c.starts_with("cus_")),
        Some(true)
    );
    // A second card goes to the same customer.
    let second = browser_payment_method("5555555555554444").await;
    sys.gql_ok(Some(&ga), ADD_PM, json!({"pm": second})).await;
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM gateway_customers").await,
        1
    );

    // The anniversary: the automatic renewal is a PaymentIntent under the term's key.
    let ad = parse_time(&subscription(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = eventually(60, "the automatic renewal", || async {
        let s = subscription(&sys, &ga, &sub_id).await;
        (s["term"] == 2).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "ACTIVE");
    let renewal = intents_with_key(&format!("renewal:{sub_id}:1")).await;
    assert_eq!(renewal.len(), 1, "charged once: {renewal:#?}");
    assert_eq!(renewal[0]["status"], "succeeded");
    no_secrets_in_logs(&sys);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stripe_decline_puts_the_renewal_in_its_window_and_a_manual_renewal_pays_it() {
    let sys = stripe_system(&[]).await;
    let op = operator_token(&sys).await;
    let (pid, ga) = authorized_partner(&sys, "stripedecline").await;
    let good = add_stripe_card(&sys, &ga, "4242424242424242").await;
    let order = buy(&sys, &ga, "ACTION_PACK", &good).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    // localstripe's 4000 0000 0000 0341 attaches, then declines every charge.
    let declining = add_stripe_card(&sys, &ga, "4000000000000341").await;
    sys.gql_ok(
        Some(&ga),
        "mutation($s: ID!, $p: ID!) { setSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $p) { id } }",
        json!({"s": sub_id, "p": declining}),
    )
    .await;
    let ad = parse_time(&subscription(&sys, &ga, &sub_id).await["anniversaryDate"]);
    advance_to(&sys, &op, &pid, ad + chrono::Duration::hours(1)).await;
    let s = eventually(60, "the declined renewal", || async {
        let s = subscription(&sys, &ga, &sub_id).await;
        (s["renewalFailures"] == 1).then_some(s)
    })
    .await;
    assert_eq!(s["status"], "IN_RENEWAL_WINDOW");
    assert_eq!(s["autoRenew"], true, "a soft decline keeps retrying");
    assert!(
        s["lastRenewalError"].as_str().unwrap().contains("declined"),
        "{s:#}"
    );
    assert!(
        intents_with_key(&format!("renewal:{sub_id}:1"))
            .await
            .iter()
            .all(|pi| pi["status"] != "succeeded"),
        "nothing was taken"
    );

    // Renewing by hand with the good card, inside the window.
    advance_to(
        &sys,
        &op,
        &pid,
        ad + chrono::Duration::days(1) + chrono::Duration::hours(2),
    )
    .await;
    let r = sys
        .gql_ok(
            Some(&ga),
            "mutation($input: RenewInput!) { renewSubscription(input: $input) { status subscription { term status } } }",
            json!({"input": {"subscriptionId": sub_id, "idempotencyKey": "stripe-renew-1", "paymentMethodId": good, "acceptTermsVersion": "2021-06"}}),
        )
        .await;
    assert_eq!(r["renewSubscription"]["status"], "PAID", "{r:#}");
    assert_eq!(r["renewSubscription"]["subscription"]["term"], 2);
    let paid: Vec<Value> = intents_with_key(&format!("renewal:{sub_id}:1"))
        .await
        .into_iter()
        .filter(|pi| pi["status"] == "succeeded")
        .collect();
    assert_eq!(paid.len(), 1, "the term was paid once");
    no_secrets_in_logs(&sys);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stripe_refund_is_a_stripe_refund_and_a_crash_after_the_charge_settles_from_stripe() {
    let mut sys = stripe_system(&[
        ("ORDER_SETTLE_AFTER_SECS", "2"),
        ("REDISPATCH_AFTER_SECS", "2"),
    ])
    .await;
    let op = operator_token(&sys).await;
    let (_, ga) = authorized_partner(&sys, "striperefund").await;
    let card = add_stripe_card(&sys, &ga, "4242424242424242").await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();
    let c = sys
        .gql_ok(
            Some(&ga),
            r#"mutation($id: ID!) { requestCancellation(subscriptionId: $id, reason: "Bought by mistake") { id } }"#,
            json!({"id": sub_id}),
        )
        .await["requestCancellation"]
        .clone();
    sys.gql_ok(
        Some(&op),
        r#"mutation($id: ID!) { resolveServiceRequest(id: $id, resolution: "Refunded", decision: REFUND) { status } }"#,
        json!({"id": c["id"]}),
    )
    .await;
    let refund = eventually(60, "the refund", || async {
        let o = sys
            .gql_ok(
                Some(&ga),
                "query($id: ID!) { order(id: $id) { status refund { status reference } } }",
                json!({"id": order["id"]}),
            )
            .await;
        // The order and its refund change in one transaction, but this request reads them in
        // two statements: wait until both reads see it.
        (o["order"]["refund"]["status"] == "REFUNDED" && o["order"]["status"] == "REFUNDED")
            .then_some(o)
    })
    .await;
    assert_eq!(refund["order"]["status"], "REFUNDED");
    let reference = refund["order"]["refund"]["reference"].as_str().unwrap();
    assert!(reference.starts_with("re_"), "a Stripe Refund: {reference}");
    let mut at_stripe: Value = reqwest::Client::new()
        .get(format!("{}/v1/refunds/{reference}", stripe_base()))
        .bearer_auth("sk_test_pbg_e2e_secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        at_stripe["metadata"]["refund_key"],
        format!("refund:{}", order["id"].as_str().unwrap())
    );
    // Days later the bank returns the refund: Stripe sends refund.failed. The refund turns
    // REFUND_FAILED with the bank's reason and the order is PAID again.
    at_stripe["status"] = json!("failed");
    at_stripe["failure_reason"] = json!("expired_or_canceled_card");
    let event = json!({"id": format!("evt_pbg_{}", uuid::Uuid::new_v4().simple()), "type": "refund.failed", "data": {"object": at_stripe}}).to_string();
    let now = chrono::Utc::now().timestamp();
    let (status, resp) = post_webhook(&sys, &event, &stripe_signature(&event, now)).await;
    assert_eq!(status, 200, "{resp:#}");
    let failed = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { order(id: $id) { status refund { status failureReason } } }",
            json!({"id": order["id"]}),
        )
        .await["order"]
        .clone();
    assert_eq!(failed["status"], "PAID", "{failed:#}");
    assert_eq!(failed["refund"]["status"], "REFUND_FAILED");
    assert!(
        failed["refund"]["failureReason"]
            .as_str()
            .unwrap()
            .contains("expired_or_canceled_card"),
        "{failed:#}"
    );

    // The api dies right after Stripe accepted a purchase's charge: the settlement job finds
    // the PaymentIntent at Stripe (not in our tables) and books it; charged once.
    let (_, ga2) = authorized_partner(&sys, "stripecrash").await;
    let card2 = add_stripe_card(&sys, &ga2, "4242424242424242").await;
    purchase_cut_off_after_charge(&mut sys, &ga2, "stripe-crash-1", &card2).await;
    let settled = eventually(60, "the order settled from Stripe", || async {
        let o = sys
            .gql_ok(
                Some(&ga2),
                "{ orders { edges { node { id status subscription { status } } } } }",
                json!({}),
            )
            .await;
        let node = o["orders"]["edges"][0]["node"].clone();
        (node["status"] == "PAID").then_some(node)
    })
    .await;
    assert_eq!(settled["subscription"]["status"], "ACTIVE");
    let again = sys
        .gql_ok(
            Some(&ga2),
            PURCHASE,
            purchase_input("ACTION_PACK", "stripe-crash-1", &card2),
        )
        .await;
    assert_eq!(again["purchaseOffer"]["id"], settled["id"]);
    let key = format!("order:{}", settled["id"].as_str().unwrap());
    assert_eq!(intents_with_key(&key).await.len(), 1, "charged once");
    no_secrets_in_logs(&sys);
}

/// `Stripe-Signature` for `body` at `t`, computed as Stripe documents it (HMAC-SHA256 with the
/// endpoint's secret over "t.body").
fn stripe_signature(body: &str, t: i64) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"whsec_pbg_e2e_secret").unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn post_webhook(sys: &TestSystem, body: &str, signature: &str) -> (u16, Value) {
    let resp = sys
        .http()
        .post(format!("{}/webhooks/stripe", sys.api_url))
        .header("Stripe-Signature", signature)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn stripe_webhooks_are_verified_recorded_once_and_settle_a_late_payment_at_once() {
    // The settlement of an interrupted order is an hour away: only the webhook can make it
    // happen within the test.
    let mut sys = stripe_system(&[
        ("ORDER_SETTLE_AFTER_SECS", "3600"),
        ("REDISPATCH_AFTER_SECS", "2"),
    ])
    .await;
    let (_, ga) = authorized_partner(&sys, "stripehook").await;
    let card = add_stripe_card(&sys, &ga, "4242424242424242").await;
    purchase_cut_off_after_charge(&mut sys, &ga, "hook-1", &card).await;
    let orders = "{ orders { edges { node { id status } } } }";
    let order =
        sys.gql_ok(Some(&ga), orders, json!({})).await["orders"]["edges"][0]["node"].clone();
    assert_eq!(order["status"], "PROCESSING");
    let intents = intents_with_key(&format!("order:{}", order["id"].as_str().unwrap())).await;
    assert_eq!(intents.len(), 1);
    let now = chrono::Utc::now().timestamp();
    let body = json!({
        "id": format!("evt_pbg_{}", uuid::Uuid::new_v4().simple()),
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": now,
        "data": {"object": intents[0]},
    })
    .to_string();

    // Refused, with Stripe's own messages, and nothing written.
    for (signature, message) in [
        (
            format!("t={now},v1={}", "0".repeat(64)),
            "No signatures found matching the expected signature for payload",
        ),
        (
            stripe_signature(&body, now - 600),
            "Timestamp outside the tolerance zone",
        ),
        (
            String::new(),
            "Unable to extract timestamp and signatures from header",
        ),
        (
            stripe_signature(&body.replace("succeeded", "canceled"), now),
            "No signatures found matching the expected signature for payload",
        ),
    ] {
        let (status, resp) = post_webhook(&sys, &body, &signature).await;
        assert_eq!(status, 400, "{resp:#}");
        assert_eq!(resp["errors"][0]["extensions"]["code"], "BAD_SIGNATURE");
        assert_eq!(resp["errors"][0]["message"], message);
    }
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM gateway_events").await,
        0
    );

    // Signed: recorded, and the order settles from Stripe now rather than in an hour.
    let (status, resp) = post_webhook(&sys, &body, &stripe_signature(&body, now)).await;
    assert_eq!(status, 200, "{resp:#}");
    assert_eq!(resp["replay"], false);
    eventually(30, "the order settled after the webhook", || async {
        let o = sys.gql_ok(Some(&ga), orders, json!({})).await;
        (o["orders"]["edges"][0]["node"]["status"] == "PAID").then_some(())
    })
    .await;
    // Replayed: 200, and nothing changes.
    let (status, resp) = post_webhook(&sys, &body, &stripe_signature(&body, now)).await;
    assert_eq!(status, 200, "{resp:#}");
    assert_eq!(resp["replay"], true);
    sys.wait_idle().await;
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM gateway_events").await,
        1
    );
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM invoices").await, 1);
    // An event about a charge that is not ours is recorded and ignored.
    let other = json!({"id": "evt_pbg_other", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_x", "metadata": {}}}}).to_string();
    let (status, _) = post_webhook(&sys, &other, &stripe_signature(&other, now)).await;
    assert_eq!(status, 200);
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM gateway_events WHERE outcome LIKE 'ignored%'"
        )
        .await,
        1
    );
    no_secrets_in_logs(&sys);
}
