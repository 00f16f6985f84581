//! Purchases end to end: catalog, card and bank transfer payments, idempotency, the database's
//! one-per-partner rule under concurrency, invoices and their PDF.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::json;

const OFFERS: &str = r#"query Offers($s: OfferSection!) {
  offers(section: $s) {
    offer { id price { amountMinor currency } termsVersion benefits { code quantity } }
    purchasable reasons { code } quote { total { amountMinor formatted } }
    subscription { id status }
  }
}"#;

#[tokio::test]
async fn buying_action_pack_by_card_is_paid_invoiced_and_idempotent() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "buyer").await;

    let d = sys
        .gql_ok(Some(&ga), OFFERS, json!({"s": "AVAILABLE"}))
        .await;
    let list = d["offers"].as_array().unwrap();
    let maps = list
        .iter()
        .find(|l| l["offer"]["id"] == "ACTION_PACK")
        .unwrap();
    assert_eq!(maps["purchasable"], true, "{maps:#}");
    assert_eq!(maps["quote"]["total"]["formatted"], "USD 475.00");
    assert!(maps["offer"]["benefits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["code"] == "PRODUCT_SUPPORT" && b["quantity"] == 10));
    let silver = list.iter().find(|l| l["offer"]["id"] == "SILVER").unwrap();
    assert_eq!(silver["purchasable"], false);
    assert_eq!(silver["reasons"][0]["code"], "NO_QUALIFICATION");

    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let input = purchase_input("ACTION_PACK", "order-1", &card);
    let first = sys.gql_ok(Some(&ga), PURCHASE, input.clone()).await["purchaseOffer"].clone();
    assert_eq!(first["status"], "PAID", "{first:#}");
    assert_eq!(first["total"]["amountMinor"], 47500);
    assert_eq!(first["subscription"]["status"], "ACTIVE");
    assert_eq!(first["subscription"]["autoRenew"], true);
    let activated = parse_time(&first["subscription"]["activatedAt"]);
    let ad = parse_time(&first["subscription"]["anniversaryDate"]);
    assert_eq!(
        ad,
        activated
            .checked_add_months(chrono::Months::new(12))
            .unwrap()
    );
    let invoice_number = first["invoice"]["number"].as_str().unwrap().to_owned();
    assert!(
        invoice_number.starts_with("INV-") && invoice_number.ends_with("-000001"),
        "{invoice_number}"
    );

    // Same key, same input: the same order, charged once.
    let again = sys.gql_ok(Some(&ga), PURCHASE, input).await["purchaseOffer"].clone();
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["invoice"]["number"], first["invoice"]["number"]);
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        1
    );
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM invoices").await, 1);

    // Same key, other input: refused.
    let mut other = purchase_input("ACTION_PACK", "order-1", &card);
    other["input"]["payment"] = json!({"bankTransfer": {"contactName": "Bo", "contactPhone": "+14255550101", "contactEmail": "bo@buyer-corp.example"}});
    let r = sys.gql(Some(&ga), PURCHASE, other).await;
    assert_eq!(error_code(&r), Some("CONFLICT"), "{r:#}");

    // A second Action Pack with a new key: one per partner.
    let r = sys
        .gql(
            Some(&ga),
            PURCHASE,
            purchase_input("ACTION_PACK", "order-2", &card),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "ALREADY_OWNED"
    );

    let d = sys
        .gql_ok(Some(&ga), OFFERS, json!({"s": "PURCHASED"}))
        .await;
    let ids: Vec<&str> = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["offer"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["NETWORK", "ACTION_PACK"]);

    // The receipt reached the Global admin over SMTP.
    let mails = sys
        .smtp
        .wait_for(
            "buyer@buyer-corp.example",
            2,
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
    let receipt = mails
        .iter()
        .find(|m| {
            m.header("Subject")
                .unwrap_or_default()
                .starts_with("Receipt")
        })
        .expect("receipt");
    assert!(receipt.text().contains(&invoice_number));
    assert!(receipt.text().contains("USD 475.00"));
    // The receipt and the audit record are written in the statement that numbers the
    // invoice: each quotes the number, none keeps the slot that stood for it.
    assert!(
        !receipt.raw.contains("[[invoice-number]]"),
        "{}",
        receipt.raw
    );
    assert_eq!(
        count(
            &sys,
            &format!(
                "SELECT count(*) AS n FROM audit_log
                 WHERE action = 'order.paid' AND details->>'invoice' = '{invoice_number}'"
            )
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &sys,
            "SELECT (SELECT count(*) FROM emails WHERE body_html LIKE '%[[invoice-number]]%'
                 OR body_text LIKE '%[[invoice-number]]%' OR subject LIKE '%[[invoice-number]]%')
               + (SELECT count(*) FROM audit_log WHERE details::text LIKE '%[[invoice-number]]%') AS n"
        )
        .await,
        0
    );

    // The invoice PDF: a real PDF with the totals, for the right roles only.
    let invoice_id = first["invoice"]["id"].as_str().unwrap();
    let url = format!("{}/invoices/{invoice_id}/pdf", sys.api_url);
    let resp = sys.http().get(&url).bearer_auth(&ga).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/pdf");
    let bytes = resp.bytes().await.unwrap();
    let doc = lopdf::Document::load_mem(&bytes).expect("a valid PDF");
    let pages: Vec<u32> = doc.get_pages().keys().cloned().collect();
    let text = doc.extract_text(&pages).unwrap();
    assert!(text.contains(&invoice_number), "{text}");
    assert!(
        text.contains("Total") && text.contains("USD 475.00"),
        "{text}"
    );
    assert!(text.contains("buyer Corp"), "{text}");
    // Its billing address and lines, kept as JSON text (item 28 of docs/BENCHMARKS.md), read
    // back whole through GraphQL and in the PDF.
    let inv = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { invoice(id: $id) { billTo { name mpnId city country }
                lines { description quantity amount { amountMinor } } } }",
            json!({"id": invoice_id}),
        )
        .await;
    let bill_to = &inv["invoice"]["billTo"];
    assert!(
        bill_to["name"].as_str().unwrap().contains("buyer Corp"),
        "{inv}"
    );
    assert_eq!(bill_to["mpnId"].as_str().unwrap().len(), 7, "{inv}");
    assert!(!bill_to["city"].as_str().unwrap().is_empty(), "{inv}");
    let lines = inv["invoice"]["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{inv}");
    for l in lines {
        assert!(l["quantity"].as_i64().unwrap() >= 1, "{inv}");
        assert!(l["amount"]["amountMinor"].as_i64().unwrap() > 0, "{inv}");
        let description = l["description"].as_str().unwrap();
        assert!(text.contains(description), "{description} not in {text}");
    }

    let r = sys.http().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "member@buyer-corp.example", "roles": []}),
    )
    .await;
    let member = sys.token("buyer-member", Some("member@buyer-corp.example"));
    let r = sys
        .http()
        .get(&url)
        .bearer_auth(&member)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (_, stranger) = authorized_partner(&sys, "stranger").await;
    let r = sys
        .http()
        .get(&url)
        .bearer_auth(&stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = sys
        .gql(
            Some(&stranger),
            "query($id: ID!) { invoice(id: $id) { number } }",
            json!({"id": invoice_id}),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_FOUND"));
    let op = operator_token(&sys).await;
    let r = sys.http().get(&url).bearer_auth(&op).send().await.unwrap();
    assert_eq!(r.status(), 200, "operators may download invoices");
    let _ = pid;
}

#[tokio::test]
async fn concurrent_purchases_make_exactly_one_subscription() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (_, ga) = authorized_partner(&sys, "racer").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let attempts = (0..8).map(|i| {
        let input = purchase_input("ACTION_PACK", &format!("race-{i}"), &card);
        let sys = &sys;
        let ga = &ga;
        async move { sys.gql(Some(ga), PURCHASE, input).await }
    });
    let results = futures::future::join_all(attempts).await;
    let paid = results
        .iter()
        .filter(|r| r["data"]["purchaseOffer"]["status"] == "PAID")
        .count();
    let refused = results
        .iter()
        .filter(|r| error_code(r) == Some("NOT_ELIGIBLE"))
        .count();
    assert_eq!((paid, refused), (1, 7), "{results:#?}");
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM subscriptions WHERE offer_id = 'ACTION_PACK'"
        )
        .await,
        1
    );
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM sandbox_charges").await,
        1
    );
}

#[tokio::test]
async fn a_declined_card_leaves_no_subscription_and_the_offer_stays_available() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (_, ga) = authorized_partner(&sys, "decline").await;
    let card = add_card(&sys, &ga, DECLINING_CARD).await;
    let d = sys
        .gql_ok(
            Some(&ga),
            PURCHASE,
            purchase_input("ACTION_PACK", "d-1", &card),
        )
        .await;
    let order = &d["purchaseOffer"];
    assert_eq!(order["status"], "PAYMENT_FAILED");
    assert_eq!(order["failureCode"], "CARD_DECLINED");
    assert!(order["subscription"].is_null());
    assert!(order["invoice"].is_null());
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM subscriptions").await,
        0
    );
    let d = sys
        .gql_ok(Some(&ga), OFFERS, json!({"s": "AVAILABLE"}))
        .await;
    let maps = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["offer"]["id"] == "ACTION_PACK")
        .unwrap()
        .clone();
    assert_eq!(maps["purchasable"], true);

    // Bad card input is refused with a code, and the number is not echoed back.
    let r = sys.gql(Some(&ga), ADD_CARD, json!({"card": {"number": "4242 4242 4242 4241", "expMonth": 1, "expYear": 2035, "cvc": "123", "holderName": "A"}})).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));
    assert!(!r.to_string().contains("4241"), "{r}");
    let r = sys.gql(Some(&ga), ADD_CARD, json!({"card": {"number": "4242424242424242", "expMonth": 1, "expYear": 2020, "cvc": "123", "holderName": "A"}})).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));
    // No card number is stored anywhere in our tables.
    assert_eq!(count(&sys, "SELECT count(*) AS n FROM payment_methods WHERE gateway_token LIKE '%4242%' OR last4 <> '0002'").await, 0);
}

#[tokio::test]
async fn members_cannot_buy_and_unauthorized_partners_are_told_why() {
    let sys = TestSystem::start_with(&[]).await.unwrap();
    let (_, ga) = enroll(
        &sys,
        "pending",
        "pending@pending-corp.example",
        "Pending Corp",
    )
    .await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let r = sys
        .gql(
            Some(&ga),
            PURCHASE,
            purchase_input("ACTION_PACK", "p-1", &card),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"));
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "NOT_AUTHORIZED"
    );
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "m@pending-corp.example", "roles": []}),
    )
    .await;
    let member = sys.token("pending-member", Some("m@pending-corp.example"));
    let r = sys
        .gql(
            Some(&member),
            PURCHASE,
            purchase_input("ACTION_PACK", "p-2", &card),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = sys
        .gql(
            Some(&member),
            "{ invoices { edges { node { number } } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
}

const BANK_ORDER: &str = r#"mutation Buy($input: PurchaseInput!) {
  purchaseOffer(input: $input) { id number status expiresAt subscription { id status } bankTransfer { paymentReference } }
}"#;

fn bank_input(key: &str) -> serde_json::Value {
    json!({"input": {
        "offerId": "ACTION_PACK", "idempotencyKey": key, "acceptTermsVersion": "2021-06",
        "payment": {"bankTransfer": {"contactName": "Bo Banker", "contactPhone": "+14255550101", "contactEmail": "bo@bank-corp.example"}}
    }})
}

#[tokio::test]
async fn bank_transfer_orders_wait_expire_after_30_days_or_are_confirmed() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "bank").await;
    let op = operator_token(&sys).await;
    const ORDER: &str =
        "query($id: ID!) { order(id: $id) { status subscription { status } invoice { number } } }";

    let o = sys.gql_ok(Some(&ga), BANK_ORDER, bank_input("b-1")).await["purchaseOffer"].clone();
    assert_eq!(o["status"], "PENDING_PAYMENT");
    assert_eq!(o["subscription"]["status"], "PENDING_PAYMENT");
    let number = o["number"].as_str().unwrap();
    assert_eq!(o["bankTransfer"]["paymentReference"], number);
    let mails = sys
        .smtp
        .wait_for(
            "bo@bank-corp.example",
            1,
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert!(mails[0].text().contains(number) && mails[0].text().contains("USD 475.00"));
    // A second order while one waits: refused with the reason.
    let r = sys.gql(Some(&ga), BANK_ORDER, bank_input("b-2")).await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "ORDER_PENDING",
        "{r:#}"
    );

    let expires = parse_time(&o["expiresAt"]);
    advance_to(&sys, &op, &pid, expires - chrono::Duration::days(1)).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let s = sys.gql_ok(Some(&ga), ORDER, json!({"id": o["id"]})).await;
    assert_eq!(s["order"]["status"], "PENDING_PAYMENT", "not yet 30 days");

    advance_to(&sys, &op, &pid, expires + chrono::Duration::hours(1)).await;
    eventually(20, "the order to expire", || async {
        let s = sys.gql_ok(Some(&ga), ORDER, json!({"id": o["id"]})).await;
        (s["order"]["status"] == "EXPIRED").then_some(s)
    })
    .await;
    let s = sys.gql_ok(Some(&ga), ORDER, json!({"id": o["id"]})).await;
    assert_eq!(s["order"]["subscription"]["status"], "ORDER_EXPIRED");
    sys.smtp
        .wait_for(
            "bo@bank-corp.example",
            2,
            std::time::Duration::from_secs(20),
        )
        .await
        .unwrap();
    assert_eq!(
        mails_with_subject(&sys, "bo@bank-corp.example", "expired unpaid").len(),
        1
    );

    // A new order can be cancelled by the partner …
    let o2 = sys.gql_ok(Some(&ga), BANK_ORDER, bank_input("b-3")).await["purchaseOffer"].clone();
    let c = sys
        .gql_ok(
            Some(&ga),
            "mutation($id: ID!) { cancelOrder(orderId: $id) { status subscription { status } } }",
            json!({"id": o2["id"]}),
        )
        .await;
    assert_eq!(c["cancelOrder"]["status"], "CANCELLED");
    // … and one whose funds arrive is confirmed by an operator: paid, active, invoiced.
    let o3 = sys.gql_ok(Some(&ga), BANK_ORDER, bank_input("b-4")).await["purchaseOffer"].clone();
    let r = sys
        .gql(
            Some(&ga),
            "mutation($id: ID!) { confirmBankTransfer(orderId: $id, reference: \"x\") { status } }",
            json!({"id": o3["id"]}),
        )
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let c = sys.gql_ok(Some(&op), "mutation($id: ID!) { confirmBankTransfer(orderId: $id, reference: \"BANK-REF-77\") { status paidAt invoice { number } subscription { status autoRenew } } }", json!({"id": o3["id"]})).await;
    assert_eq!(c["confirmBankTransfer"]["status"], "PAID");
    assert_eq!(c["confirmBankTransfer"]["subscription"]["status"], "ACTIVE");
    assert_eq!(
        c["confirmBankTransfer"]["subscription"]["autoRenew"], false,
        "no card to charge"
    );
    assert!(c["confirmBankTransfer"]["invoice"]["number"].is_string());
    // The expiry of a paid order does nothing even if its job ran late.
    assert_eq!(count(&sys, &format!("SELECT count(*) AS n FROM scheduled_actions WHERE subject_id = '{}' AND kind = 'ORDER_EXPIRY' AND status = 'PENDING'", o3["id"].as_str().unwrap())).await, 0);
}

#[tokio::test]
async fn silver_needs_a_qualification_and_upgrading_to_gold_takes_25_percent_off() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "comp").await;
    let op = operator_token(&sys).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    const QUALIFY: &str = "mutation($p: ID!, $c: String!, $l: CompetencyLevel!) { recordQualification(partnerId: $p, competency: $c, level: $l, qualifiedOn: \"2026-11-01\") { competency level } }";
    let r = sys
        .gql(
            Some(&ga),
            QUALIFY,
            json!({"p": pid, "c": "APP_DEVELOPMENT", "l": "SILVER"}),
        )
        .await;
    assert_eq!(
        error_code(&r),
        Some("FORBIDDEN"),
        "operators record qualifications"
    );
    let r = sys
        .gql(
            Some(&op),
            QUALIFY,
            json!({"p": pid, "c": "UNDERWATER_BASKETS", "l": "SILVER"}),
        )
        .await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));
    sys.gql_ok(
        Some(&op),
        QUALIFY,
        json!({"p": pid, "c": "APP_DEVELOPMENT", "l": "SILVER"}),
    )
    .await;

    let silver = buy(&sys, &ga, "SILVER", &card).await;
    assert_eq!(silver["total"]["amountMinor"], 190_000);
    let d = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { subscription(id: $id) { competencies } }",
            json!({"id": silver["subscription"]["id"]}),
        )
        .await;
    assert_eq!(
        d["subscription"]["competencies"],
        json!(["APP_DEVELOPMENT"])
    );

    // Gold needs a Gold qualification; with it, and Silver held, the quote shows the discount.
    let r = sys
        .gql(Some(&ga), PURCHASE, purchase_input("GOLD", "g-0", &card))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "NO_QUALIFICATION",
        "{r:#}"
    );
    sys.gql_ok(
        Some(&op),
        QUALIFY,
        json!({"p": pid, "c": "APP_DEVELOPMENT", "l": "GOLD"}),
    )
    .await;
    let d = sys.gql_ok(Some(&ga), "{ offers { offer { id } purchasable quote { discount { amountMinor } total { amountMinor } } } }", json!({})).await;
    let gold = d["offers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["offer"]["id"] == "GOLD")
        .unwrap()
        .clone();
    assert_eq!(gold["purchasable"], true);
    assert_eq!(gold["quote"]["discount"]["amountMinor"], 132_500);
    let order = buy(&sys, &ga, "GOLD", &card).await;
    assert_eq!(order["discount"]["amountMinor"], 132_500);
    assert_eq!(order["total"]["amountMinor"], 397_500);

    // The discount ends refund eligibility of both packages, and says so.
    const REFUND: &str =
        "query($id: ID!) { refundEligibility(subscriptionId: $id) { eligible reasons { code } } }";
    let g = sys
        .gql_ok(
            Some(&ga),
            REFUND,
            json!({"id": order["subscription"]["id"]}),
        )
        .await;
    assert_eq!(
        g["refundEligibility"]["reasons"][0]["code"],
        "UPGRADE_DISCOUNT_USED"
    );
    let s = sys
        .gql_ok(
            Some(&ga),
            REFUND,
            json!({"id": silver["subscription"]["id"]}),
        )
        .await;
    assert_eq!(
        s["refundEligibility"]["reasons"][0]["code"],
        "UPGRADED_TO_GOLD"
    );

    // Invoice numbers of the year run without gaps.
    let d = sys
        .gql_ok(
            Some(&ga),
            "{ invoices { edges { node { number } } } }",
            json!({}),
        )
        .await;
    let mut numbers: Vec<String> = d["invoices"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["number"].as_str().unwrap().to_owned())
        .collect();
    numbers.sort();
    assert_eq!(numbers.len(), 2);
    assert!(
        numbers[0].ends_with("-000001") && numbers[1].ends_with("-000002"),
        "{numbers:?}"
    );
}

/// The sandbox gateway books a batch of charges in one statement: the answers must still be
/// per request, in order, with one charge per idempotency key (within the batch, across
/// batches and between concurrent batches).
#[tokio::test]
async fn the_sandbox_charges_each_key_once_and_answers_each_request_in_order() {
    use gateway_domain::providers::payments::{
        CardDetails, ChargeRequest, GatewayError, PaymentGateway, SandboxGateway,
    };
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let sandbox = SandboxGateway::new(gateway_domain::db::pool(&db.url, 4).unwrap());
    let card = |number: &str| CardDetails {
        number: number.into(),
        exp_month: 12,
        exp_year: 2040,
        cvc: "123".into(),
        holder_name: "Test".into(),
    };
    let good = sandbox
        .tokenize(&card("4242424242424242"))
        .await
        .unwrap()
        .token;
    let declined = sandbox
        .tokenize(&card("4000000000000002"))
        .await
        .unwrap()
        .token;
    let req = |key: &str, token: &str, amount_minor: i64| ChargeRequest {
        idempotency_key: key.into(),
        token: token.into(),
        amount_minor,
        currency: "USD".into(),
    };
    let answers = sandbox
        .charge_many(&[
            req("k1", &good, 100),
            req("k2", &declined, 200),
            req("k1", &good, 999),
            req("k3", "tok_unknown", 300),
            req("k4", &good, 400),
        ])
        .await;
    let k1 = answers[0].clone().unwrap();
    assert_eq!(k1.amount_minor, 100);
    assert!(
        matches!(answers[1], Err(GatewayError::Declined(_))),
        "{:?}",
        answers[1]
    );
    assert_eq!(
        answers[2].clone().unwrap(),
        k1,
        "a repeated key in the batch is one charge"
    );
    assert!(
        matches!(answers[3], Err(GatewayError::Invalid(_))),
        "{:?}",
        answers[3]
    );
    let k4 = answers[4].clone().unwrap();
    assert_eq!(k4.amount_minor, 400);
    assert_ne!(k4.id, k1.id);

    // Again later, with another amount: the recorded charge, nothing new.
    let again = sandbox
        .charge_many(&[req("k4", &good, 1), req("k1", &good, 1)])
        .await;
    assert_eq!(again[0].clone().unwrap(), k4);
    assert_eq!(again[1].clone().unwrap(), k1);

    // Two batches at once with the same new key: both answer with the one charge recorded.
    let (one, other) = ([req("k5", &good, 500)], [req("k5", &good, 500)]);
    let (a, b) = tokio::join!(sandbox.charge_many(&one), sandbox.charge_many(&other));
    assert_eq!(a[0].clone().unwrap(), b[0].clone().unwrap());

    let n = count_in(&db, "SELECT count(*) AS n FROM sandbox_charges").await;
    assert_eq!(n, 3, "k1, k4 and k5 charged once each");
    db.remove().await.unwrap();
}
