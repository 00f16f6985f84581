//! Benefits end to end: keys, technical activation (with a live update over WebSocket),
//! support balances, Go-To-Market offers, Visual Studio seats, Azure credit, permissions.

mod common;

use std::time::Duration;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

/// Activations take an hour (technical) or two (GTM) of partner time: only the test clock
/// makes them complete.
const ENV: &[(&str, &str)] = &[
    ("AUTO_AUTHORIZE", "true"),
    ("TECHNICAL_ACTIVATION_DELAY_SECS", "3600"),
    ("GTM_ACTIVATION_DELAY_SECS", "7200"),
];

/// An authorized partner that bought an Action Pack: (partner id, GA token, subscription).
async fn action_pack_partner(sys: &TestSystem, tag: &str) -> (String, String, Value) {
    let (pid, ga) = authorized_partner(sys, tag).await;
    let card = add_card(sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(sys, &ga, "ACTION_PACK", &card).await;
    (pid, ga, order["subscription"].clone())
}

const REVEAL: &str = "mutation($id: ID!, $ack: Boolean!) { revealProductKey(benefitId: $id, acknowledgeRefundLoss: $ack) { key product instructions } }";

#[tokio::test]
async fn revealing_a_key_is_audited_and_ends_refund_eligibility_only_when_acknowledged() {
    let sys = TestSystem::start_with(ENV).await.unwrap();
    let (_, ga, sub) = action_pack_partner(&sys, "keys").await;
    let d = sys
        .gql_ok(Some(&ga), BENEFITS, json!({"c": "SOFTWARE"}))
        .await;
    let edges = d["benefits"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{d:#}");
    let win = &edges[0]["node"];
    assert_eq!(
        (win["code"].as_str(), win["quantity"].as_i64()),
        (Some("WINDOWS_10_ENTERPRISE"), Some(10))
    );
    assert_eq!(win["key"]["revealed"], false);
    let id = win["id"].as_str().unwrap();

    // Refund still possible: the API says what revealing costs, and reveals nothing.
    let r = sys
        .gql(Some(&ga), REVEAL, json!({"id": id, "ack": false}))
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"));
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "REFUND_ACKNOWLEDGEMENT_REQUIRED"
    );
    let e = sys
        .gql_ok(
            Some(&ga),
            "query($id: ID!) { refundEligibility(subscriptionId: $id) { eligible } }",
            json!({"id": sub["id"]}),
        )
        .await;
    assert_eq!(e["refundEligibility"]["eligible"], true);

    let k = sys
        .gql_ok(Some(&ga), REVEAL, json!({"id": id, "ack": true}))
        .await;
    let key = k["revealProductKey"]["key"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 29);
    assert_eq!(key.split('-').count(), 5);
    // Same key again (now without acknowledgement: nothing left to lose).
    let again = sys
        .gql_ok(Some(&ga), REVEAL, json!({"id": id, "ack": false}))
        .await;
    assert_eq!(again["revealProductKey"]["key"], key.as_str());

    let e = sys.gql_ok(Some(&ga), "query($id: ID!) { refundEligibility(subscriptionId: $id) { eligible reasons { code } } }", json!({"id": sub["id"]})).await;
    assert_eq!(e["refundEligibility"]["eligible"], false);
    assert_eq!(e["refundEligibility"]["reasons"][0]["code"], "KEY_REVEALED");

    // Audited, without the key; stored encrypted.
    let log = sys
        .gql_ok(
            Some(&ga),
            "{ auditLog(first: 50) { edges { node { action details } } } }",
            json!({}),
        )
        .await;
    let reveals: Vec<&Value> = log["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["action"] == "product_key.revealed")
        .collect();
    assert_eq!(reveals.len(), 2);
    assert!(!log.to_string().contains(&key));
    assert_eq!(count(&sys, &format!("SELECT count(*) AS n FROM product_keys WHERE position('{key}'::bytea IN ciphertext) > 0")).await, 0);

    // License-based cloud keys come with their redemption instructions.
    let o365 = benefit(&sys, &ga, "OFFICE_365_E3").await;
    let k = sys
        .gql_ok(Some(&ga), REVEAL, json!({"id": o365["id"], "ack": false}))
        .await;
    assert!(k["revealProductKey"]["instructions"]
        .as_str()
        .unwrap()
        .contains("Redeem this token once"));

    // Downloads for a language and an OS; bad language refused with a code.
    let dl = sys.gql_ok(Some(&ga), "query($id: ID!) { softwareDownloads(benefitId: $id, language: \"de-DE\", os: WINDOWS_X64) { fileName url } }", json!({"id": id})).await;
    assert!(dl["softwareDownloads"][0]["url"]
        .as_str()
        .unwrap()
        .contains("/de-DE/x64/"));
    let r = sys.gql(Some(&ga), "query($id: ID!) { softwareDownloads(benefitId: $id, language: \"klingon\", os: WINDOWS_X64) { url } }", json!({"id": id})).await;
    assert_eq!(error_code(&r), Some("BAD_USER_INPUT"));

    // Members may look but not reveal; another partner does not see it at all.
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "m@keys-corp.example", "roles": []}),
    )
    .await;
    let member = sys.token("keys-member", Some("m@keys-corp.example"));
    let r = sys
        .gql(Some(&member), REVEAL, json!({"id": id, "ack": true}))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let (_, stranger) = authorized_partner(&sys, "keythief").await;
    let r = sys
        .gql(Some(&stranger), REVEAL, json!({"id": id, "ack": true}))
        .await;
    assert_eq!(error_code(&r), Some("NOT_FOUND"));
}

const ACTIVATE: &str = "mutation($id: ID!) { activateTechnicalBenefit(benefitId: $id, acknowledgeRefundLoss: true) { activation { state expectedCompletionAt } } }";
const SIG_REQUEST: &str = r#"mutation { createServiceRequest(input: {kind: TECHNICAL_SUPPORT, title: "Cloud outage", description: "Tenant down", severity: CRITICAL, signatureCloudSupport: true}) { id } }"#;
const SUPPORT_REQUEST: &str = r#"mutation($k: ServiceRequestKind!, $h: Int) { createServiceRequest(input: {kind: $k, title: "Help", description: "Please", severity: MODERATE, advisoryHours: $h}) { id } }"#;

#[tokio::test]
async fn technical_activation_completes_on_the_clock_with_ids_pushed_over_websocket() {
    let sys = TestSystem::start_with(ENV).await.unwrap();
    let (pid, ga, _) = action_pack_partner(&sys, "tech").await;
    let op = operator_token(&sys).await;
    let support = benefit(&sys, &ga, "PRODUCT_SUPPORT").await;
    let id = support["id"].as_str().unwrap().to_owned();
    assert_eq!(support["activation"]["state"], "NOT_ACTIVATED");
    assert_eq!(support["remaining"], 10);

    // No activated support contract yet: a technical request is refused with the reason.
    let r = sys
        .gql(
            Some(&ga),
            SUPPORT_REQUEST,
            json!({"k": "TECHNICAL_SUPPORT"}),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"), "{r:#}");

    let (mut ws, now) = subscribe_live(&sys, &ga, &format!("subscription {{ benefitUpdated(benefitId: \"{id}\") {{ id activation {{ state }} accessId contractId }} }}")).await;
    assert_eq!(
        now["benefitUpdated"]["activation"]["state"],
        "NOT_ACTIVATED"
    );

    let a = sys.gql_ok(Some(&ga), ACTIVATE, json!({"id": id})).await;
    assert_eq!(
        a["activateTechnicalBenefit"]["activation"]["state"],
        "ACTIVATION_PENDING"
    );
    let expected = parse_time(&a["activateTechnicalBenefit"]["activation"]["expectedCompletionAt"]);
    let pushed = next_json(&mut ws).await;
    assert_eq!(
        pushed["payload"]["data"]["benefitUpdated"]["activation"]["state"], "ACTIVATION_PENDING",
        "{pushed}"
    );
    // The activation waits for its time.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        benefit(&sys, &ga, "PRODUCT_SUPPORT").await["activation"]["state"],
        "ACTIVATION_PENDING"
    );

    advance_to(&sys, &op, &pid, expected + chrono::Duration::minutes(5)).await;
    let pushed = next_json(&mut ws).await;
    let b = &pushed["payload"]["data"]["benefitUpdated"];
    assert_eq!(b["activation"]["state"], "ACTIVE", "{pushed}");
    assert!(b["accessId"].as_str().unwrap().starts_with("AID"));
    assert!(b["contractId"].as_str().unwrap().starts_with("CT"));

    // Every partner user sees the IDs; operators do not.
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "m@tech-corp.example", "roles": []}),
    )
    .await;
    let member = sys.token("tech-member", Some("m@tech-corp.example"));
    assert!(benefit(&sys, &member, "PRODUCT_SUPPORT").await["accessId"].is_string());
    let seen = sys
        .gql_ok(
            Some(&op),
            "query($id: ID!) { benefit(id: $id) { accessId activation { state } } }",
            json!({"id": id}),
        )
        .await;
    assert!(seen["benefit"]["accessId"].is_null());

    // Action Pack has no Signature Cloud Support.
    let r = sys.gql(Some(&member), SIG_REQUEST, json!({})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "NO_BALANCE",
        "{r:#}"
    );
    // A technical request uses an incident; presales requests use Action Pack hours.
    sys.gql_ok(
        Some(&member),
        SUPPORT_REQUEST,
        json!({"k": "TECHNICAL_SUPPORT"}),
    )
    .await;
    assert_eq!(benefit(&sys, &ga, "PRODUCT_SUPPORT").await["remaining"], 9);
    sys.gql_ok(
        Some(&member),
        SUPPORT_REQUEST,
        json!({"k": "PRESALES_DEPLOYMENT", "h": 2}),
    )
    .await;
    assert_eq!(benefit(&sys, &ga, "ADVISORY_HOURS").await["remaining"], 3);
    let r = sys
        .gql(
            Some(&member),
            SUPPORT_REQUEST,
            json!({"k": "PRESALES_DEPLOYMENT", "h": 4}),
        )
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"));
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"],
        "NO_BALANCE"
    );
    assert_eq!(
        benefit(&sys, &ga, "ADVISORY_HOURS").await["remaining"],
        3,
        "nothing half-written"
    );
}

#[tokio::test]
async fn a_failing_provider_leaves_the_benefit_failed_with_a_reason_and_it_can_be_retried() {
    let mut env = ENV.to_vec();
    env.push(("PROVISIONING", "simulated-failing"));
    let sys = TestSystem::start_with(&env).await.unwrap();
    let (pid, ga, _) = action_pack_partner(&sys, "fail").await;
    let op = operator_token(&sys).await;
    let id = benefit(&sys, &ga, "PRODUCT_SUPPORT").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sys.gql_ok(Some(&ga), ACTIVATE, json!({"id": id})).await;
    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid, "days": 1, "seconds": 0}),
    )
    .await;
    let b = eventually(30, "the failure", || async {
        let b = benefit(&sys, &ga, "PRODUCT_SUPPORT").await;
        (b["activation"]["state"] == "FAILED").then_some(b)
    })
    .await;
    assert!(b["activation"]["failureReason"]
        .as_str()
        .unwrap()
        .contains("could not create a contract"));
    let again = sys.gql_ok(Some(&ga), ACTIVATE, json!({"id": id})).await;
    assert_eq!(
        again["activateTechnicalBenefit"]["activation"]["state"],
        "ACTIVATION_PENDING"
    );
}

#[tokio::test]
async fn go_to_market_needs_a_marketing_contact_emails_instructions_and_activates() {
    let sys = TestSystem::start_with(ENV).await.unwrap();
    let (pid, ga) = authorized_partner(&sys, "gtm").await;
    let op = operator_token(&sys).await;
    sys.gql_ok(Some(&op), "mutation($p: ID!) { recordQualification(partnerId: $p, competency: \"SECURITY\", level: SILVER, qualifiedOn: \"2026-10-01\") { level } }", json!({"p": pid})).await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "SILVER", &card).await;
    let ad = parse_time(&order["subscription"]["anniversaryDate"]);
    // Security is a cloud competency: Signature Cloud Support is unlimited.
    let scs = benefit(&sys, &ga, "SIGNATURE_CLOUD_SUPPORT").await;
    assert!(
        scs["quantity"].is_null() && scs["remaining"].is_null(),
        "{scs:#}"
    );
    assert_eq!(benefit(&sys, &ga, "VS_ENTERPRISE").await["quantity"], 5);
    // Unlimited Signature Cloud Support, once its contract is active, takes requests without
    // running out.
    let scs_id = scs["id"].as_str().unwrap().to_owned();
    let a = sys.gql_ok(Some(&ga), ACTIVATE, json!({"id": scs_id})).await;
    let due = parse_time(&a["activateTechnicalBenefit"]["activation"]["expectedCompletionAt"]);
    advance_to(&sys, &op, &pid, due + chrono::Duration::minutes(1)).await;
    eventually(30, "the Signature Cloud Support contract", || async {
        (benefit(&sys, &ga, "SIGNATURE_CLOUD_SUPPORT").await["activation"]["state"] == "ACTIVE")
            .then_some(())
    })
    .await;
    sys.gql_ok(Some(&ga), SIG_REQUEST, json!({})).await;
    let scs = benefit(&sys, &ga, "SIGNATURE_CLOUD_SUPPORT").await;
    assert_eq!(
        (scs["used"].as_i64(), scs["remaining"].is_null()),
        (Some(1), true)
    );
    let gtm = benefit(&sys, &ga, "GTM_SILVER_CORE").await;
    let id = gtm["id"].as_str().unwrap().to_owned();
    const GTM: &str = "mutation($id: ID!) { activateGoToMarketOffer(benefitId: $id, acknowledgeRefundLoss: true) { activation { state expectedCompletionAt } expiresAt } }";
    let r = sys.gql(Some(&ga), GTM, json!({"id": id})).await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "MARKETING_CONTACT_REQUIRED",
        "{r:#}"
    );

    let user = sys
        .gql_ok(
            Some(&ga),
            ADD_USER,
            json!({"email": "mia@gtm-corp.example", "roles": []}),
        )
        .await["addUser"]["id"]
        .clone();
    const CONTACT: &str = "mutation($i: MarketingContactInput!) { setMarketingContact(input: $i) { email language } }";
    let input = |email: &str, phone: &str, lang: &str| json!({"i": {"userId": user, "email": email, "phone": phone, "language": lang}});
    for (bad, field) in [
        (
            input("gtm@gtm-corp.example", "+14255550123", "en-US"),
            "email",
        ),
        (
            input("mia@gtm-corp.example", "425-555-0123", "en-US"),
            "phone",
        ),
        (
            input("mia@gtm-corp.example", "+14255550123", "english"),
            "language",
        ),
        (input("not-an-email", "+14255550123", "en-US"), "email"),
    ] {
        let r = sys.gql(Some(&ga), CONTACT, bad).await;
        assert_eq!(error_code(&r), Some("BAD_USER_INPUT"), "{r:#}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field);
    }
    sys.gql_ok(
        Some(&ga),
        CONTACT,
        input("mia@gtm-corp.example", "+14255550123", "en-US"),
    )
    .await;

    let a = sys.gql_ok(Some(&ga), GTM, json!({"id": id})).await;
    assert_eq!(
        a["activateGoToMarketOffer"]["activation"]["state"],
        "ACTIVATION_PENDING"
    );
    // (Mia's first email is her invitation; the second the instructions.)
    sys.smtp
        .wait_for("mia@gtm-corp.example", 2, Duration::from_secs(30))
        .await
        .unwrap();
    let mails = mails_with_subject(&sys, "mia@gtm-corp.example", "Silver Core");
    assert_eq!(mails.len(), 1);
    assert!(mails[0].text().contains("Next steps"));
    let expected = parse_time(&a["activateGoToMarketOffer"]["activation"]["expectedCompletionAt"]);
    advance_to(&sys, &op, &pid, expected + chrono::Duration::minutes(1)).await;
    let b = eventually(30, "the GTM activation", || async {
        let b = benefit(&sys, &ga, "GTM_SILVER_CORE").await;
        (b["activation"]["state"] == "ACTIVE").then_some(b)
    })
    .await;
    assert_eq!(
        parse_time(&b["expiresAt"]),
        ad,
        "active until the end of the package's term"
    );
}

const ASSIGN_VS: &str = "mutation($b: ID!, $u: ID!, $r: ID) { assignVisualStudioSubscription(benefitId: $b, userId: $u, replaceUserId: $r, acknowledgeRefundLoss: true) { used remaining assignments { email } } }";

#[tokio::test]
async fn visual_studio_seats_are_bounded_and_reassigned_only_after_90_days() {
    let sys = TestSystem::start_with(ENV).await.unwrap();
    let (pid, ga, _) = action_pack_partner(&sys, "vs").await;
    let op = operator_token(&sys).await;
    let vs = benefit(&sys, &ga, "VS_PROFESSIONAL").await;
    let b = vs["id"].as_str().unwrap().to_owned();
    assert_eq!(vs["quantity"], 3);
    let mut users = Vec::new();
    for i in 0..4 {
        let u = sys.gql_ok(Some(&ga), ADD_USER, json!({"email": format!("dev{i}@vs-corp.example"), "roles": if i == 0 { json!(["MPN_PARTNER_ADMIN"]) } else { json!([]) }})).await;
        users.push(u["addUser"]["id"].as_str().unwrap().to_owned());
    }
    for u in &users[..3] {
        sys.gql_ok(Some(&ga), ASSIGN_VS, json!({"b": b, "u": u}))
            .await;
    }
    let r = sys
        .gql(Some(&ga), ASSIGN_VS, json!({"b": b, "u": users[3]}))
        .await;
    assert_eq!(
        r["errors"][0]["extensions"]["reasons"][0]["code"], "NO_SEATS_LEFT",
        "{r:#}"
    );
    let r = sys
        .gql(
            Some(&ga),
            ASSIGN_VS,
            json!({"b": b, "u": users[3], "r": users[0]}),
        )
        .await;
    let reason = &r["errors"][0]["extensions"]["reasons"][0];
    assert_eq!(reason["code"], "REASSIGNMENT_TOO_EARLY", "{r:#}");
    let seat =
        benefit(&sys, &ga, "VS_PROFESSIONAL").await["assignments"][0]["reassignableFrom"].clone();
    assert_eq!(
        reason["at"].as_str().unwrap(),
        &seat.as_str().unwrap()[..10]
    );

    // Only the Global admin assigns (an MPN partner admin may not).
    let mpa = sys.token("vs-mpa", Some("dev0@vs-corp.example"));
    let r = sys
        .gql(Some(&mpa), ASSIGN_VS, json!({"b": b, "u": users[3]}))
        .await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));

    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid, "days": 91, "seconds": 0}),
    )
    .await;
    let d = sys
        .gql_ok(
            Some(&ga),
            ASSIGN_VS,
            json!({"b": b, "u": users[3], "r": users[0]}),
        )
        .await;
    let emails: Vec<&str> = d["assignVisualStudioSubscription"]["assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["email"].as_str().unwrap())
        .collect();
    assert!(
        emails.contains(&"dev3@vs-corp.example") && !emails.contains(&"dev0@vs-corp.example"),
        "{emails:?}"
    );
    assert_eq!(d["assignVisualStudioSubscription"]["used"], 3);
}

#[tokio::test]
async fn azure_credit_is_granted_once_a_month_without_roll_over() {
    let sys = TestSystem::start_with(ENV).await.unwrap();
    let (pid, ga, _) = action_pack_partner(&sys, "azure").await;
    let op = operator_token(&sys).await;
    let az = benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await;
    let b = az["id"].as_str().unwrap().to_owned();
    let user = sys
        .gql_ok(
            Some(&ga),
            ADD_USER,
            json!({"email": "ops@azure-corp.example", "roles": []}),
        )
        .await["addUser"]["id"]
        .clone();
    let d = sys.gql_ok(Some(&ga), "mutation($b: ID!, $u: ID!) { assignAzureUser(benefitId: $b, userId: $u, acknowledgeRefundLoss: true) { assignments { email } } }", json!({"b": b, "u": user})).await;
    assert_eq!(
        d["assignAzureUser"]["assignments"][0]["email"],
        "ops@azure-corp.example"
    );

    let first = eventually(30, "the first month's credit", || async {
        let a = benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await;
        (a["azureCredit"]["monthsGranted"] == 1).then_some(a)
    })
    .await;
    assert_eq!(first["azureCredit"]["balance"]["amountMinor"], 10_000);
    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid, "days": 32, "seconds": 0}),
    )
    .await;
    let second = eventually(30, "the second month's credit", || async {
        let a = benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await;
        (a["azureCredit"]["monthsGranted"] == 2).then_some(a)
    })
    .await;
    assert_eq!(
        second["azureCredit"]["balance"]["amountMinor"], 10_000,
        "no roll-over"
    );
    // The same month's job run again grants nothing more.
    count(&sys, &format!(
        "WITH a AS (SELECT id FROM scheduled_actions WHERE subject_id = '{b}' AND kind = 'GRANT_AZURE_CREDIT' AND status = 'DONE')
         INSERT INTO outbox (queue, payload) SELECT 'credit', jsonb_build_object('v', 1, 'action_id', a.id) FROM a RETURNING 1::bigint AS n"
    )).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM azure_credit_grants").await,
        2
    );
    // The clock jumps two months at once (93 days from the start: months 2 and 3 have begun,
    // month 4 has not): both months are granted, still without roll-over, and month 4 waits.
    sys.gql_ok(
        Some(&op),
        ADVANCE,
        json!({"p": pid, "days": 61, "seconds": 0}),
    )
    .await;
    let fourth = eventually(30, "months three and four", || async {
        let a = benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await;
        (a["azureCredit"]["monthsGranted"] == 4).then_some(a)
    })
    .await;
    assert_eq!(fourth["azureCredit"]["balance"]["amountMinor"], 10_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM azure_credit_grants").await,
        4
    );
    assert_eq!(
        count(&sys, &format!("SELECT count(*) AS n FROM scheduled_actions WHERE subject_id = '{b}' AND kind = 'GRANT_AZURE_CREDIT' AND status = 'PENDING' AND tag = '4'")).await,
        1
    );
}

#[tokio::test]
async fn pending_activations_complete_after_a_redis_flush_and_a_lapse_revokes_benefits() {
    let mut sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("TECHNICAL_ACTIVATION_DELAY_SECS", "3600"),
        ("REDISPATCH_AFTER_SECS", "1"),
    ])
    .await
    .unwrap();
    let op = operator_token(&sys).await;
    let mut partners = Vec::new();
    for tag in ["acta", "actb"] {
        let (pid, ga, sub) = action_pack_partner(&sys, tag).await;
        let id = benefit(&sys, &ga, "PRODUCT_SUPPORT").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        sys.gql_ok(Some(&ga), ACTIVATE, json!({"id": id})).await;
        partners.push((pid, ga, sub));
    }
    if let Some(mut w) = sys.worker.take() {
        w.kill().await.unwrap();
    }
    for (pid, ..) in &partners {
        sys.gql_ok(
            Some(&op),
            ADVANCE,
            json!({"p": pid, "days": 1, "seconds": 0}),
        )
        .await;
    }
    flush_queued_jobs(&sys).await;
    sys.start_worker().unwrap();
    for (_, ga, _) in &partners {
        eventually(30, "the activation after the flush", || async {
            (benefit(&sys, ga, "PRODUCT_SUPPORT").await["activation"]["state"] == "ACTIVE")
                .then_some(())
        })
        .await;
    }

    // Auto-renew off, then past AD+30: lapsed, every benefit revoked.
    let (pid, ga, sub) = &partners[0];
    sys.gql_ok(
        Some(ga),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { autoRenew } }",
        json!({"id": sub["id"]}),
    )
    .await;
    let ad = parse_time(&sub["anniversaryDate"]);
    advance_to(&sys, &op, pid, ad + chrono::Duration::days(32)).await;
    eventually(30, "the lapse", || async {
        let d = sys.gql_ok(Some(ga), BENEFITS, json!({})).await;
        d["benefits"]["edges"]
            .as_array()
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
    let d = sys
        .gql_ok(
            Some(ga),
            "{ benefits(includeRevoked: true) { edges { node { status } } } }",
            json!({}),
        )
        .await;
    assert!(d["benefits"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["node"]["status"] == "REVOKED"));
    let r = sys
        .gql(Some(ga), SUPPORT_REQUEST, json!({"k": "TECHNICAL_SUPPORT"}))
        .await;
    assert_eq!(error_code(&r), Some("NOT_ELIGIBLE"));
}

#[tokio::test]
async fn every_benefit_and_billing_mutation_checks_role_and_partner() {
    let sys = TestSystem::start_with(ENV).await.unwrap();
    let (_, ga, sub) = action_pack_partner(&sys, "guard").await;
    let order_id = sys
        .gql_ok(Some(&ga), "{ orders { edges { node { id } } } }", json!({}))
        .await["orders"]["edges"][0]["node"]["id"]
        .clone();
    sys.gql_ok(
        Some(&ga),
        ADD_USER,
        json!({"email": "m@guard-corp.example", "roles": []}),
    )
    .await;
    let member = sys.token("guard-member", Some("m@guard-corp.example"));
    let (_, other_ga, _) = action_pack_partner(&sys, "intruder").await;
    let key = benefit(&sys, &ga, "WINDOWS_10_ENTERPRISE").await["id"].clone();
    let tech = benefit(&sys, &ga, "PRODUCT_SUPPORT").await["id"].clone();
    let vs = benefit(&sys, &ga, "VS_PROFESSIONAL").await["id"].clone();
    let az = benefit(&sys, &ga, "AZURE_MONTHLY_CREDIT").await["id"].clone();
    let me = sys.gql_ok(Some(&ga), ME, json!({})).await["me"]["user"]["id"].clone();
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let cases: Vec<(&str, Value)> = vec![
        ("mutation($id: ID!) { revealProductKey(benefitId: $id, acknowledgeRefundLoss: true) { key } }", json!({"id": key})),
        ("mutation($id: ID!) { activateTechnicalBenefit(benefitId: $id) { id } }", json!({"id": tech})),
        ("mutation($id: ID!) { activateGoToMarketOffer(benefitId: $id) { id } }", json!({"id": tech})),
        ("mutation($id: ID!) { cancelOrder(orderId: $id) { id } }", json!({"id": order_id})),
        ("mutation($b: ID!, $u: ID!) { assignVisualStudioSubscription(benefitId: $b, userId: $u) { id } }", json!({"b": vs, "u": me})),
        ("mutation($b: ID!, $u: ID!) { assignAzureUser(benefitId: $b, userId: $u) { id } }", json!({"b": az, "u": me})),
        ("mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }", json!({"id": sub["id"]})),
        ("mutation($s: ID!, $p: ID!) { setSubscriptionPaymentMethod(subscriptionId: $s, paymentMethodId: $p) { id } }", json!({"s": sub["id"], "p": card})),
        ("mutation($s: ID!, $p: ID!) { renewSubscription(input: {subscriptionId: $s, idempotencyKey: \"k\", paymentMethodId: $p, acceptTermsVersion: \"2021-06\"}) { id } }", json!({"s": sub["id"], "p": card})),
    ];
    for (doc, vars) in &cases {
        let r = sys.gql(Some(&member), doc, vars.clone()).await;
        assert_eq!(error_code(&r), Some("FORBIDDEN"), "member: {doc} → {r:#}");
        let r = sys.gql(Some(&other_ga), doc, vars.clone()).await;
        assert_eq!(
            error_code(&r),
            Some("NOT_FOUND"),
            "other partner: {doc} → {r:#}"
        );
    }
    let r = sys.gql(Some(&member), "mutation($i: MarketingContactInput!) { setMarketingContact(input: $i) { email } }", json!({"i": {"userId": me, "email": "x@guard-corp.example", "phone": "+14255550100", "language": "en"}})).await;
    assert_eq!(error_code(&r), Some("FORBIDDEN"));
    let r = sys.gql(Some(&other_ga), "mutation($i: MarketingContactInput!) { setMarketingContact(input: $i) { email } }", json!({"i": {"userId": me, "email": "x@guard-corp.example", "phone": "+14255550100", "language": "en"}})).await;
    assert_eq!(error_code(&r), Some("NOT_FOUND"), "another partner's user");
}

/// The Windows key of the caller's Action Pack, revealed (refund loss acknowledged).
async fn reveal_windows_key(sys: &TestSystem, token: &str) -> String {
    let d = sys
        .gql_ok(Some(token), BENEFITS, json!({"c": "SOFTWARE"}))
        .await;
    let id = d["benefits"]["edges"][0]["node"]["id"].clone();
    let k = sys
        .gql_ok(Some(token), REVEAL, json!({"id": id, "ack": true}))
        .await;
    k["revealProductKey"]["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn product_key_encryption_rotates_and_old_keys_decrypt_until_rotated_away() {
    use base64::Engine;
    let b64 = |byte: u8| base64::engine::general_purpose::STANDARD.encode([byte; 32]);
    let (old, new, stranger) = (b64(1), b64(2), b64(3));
    let mut env = ENV.to_vec();
    env.push(("KEY_ENCRYPTION_KEY", old.as_str()));
    let mut sys = TestSystem::start_with(&env).await.unwrap();
    let (_, first) = {
        let (pid, ga, _) = action_pack_partner(&sys, "rotone").await;
        (pid, ga)
    };
    let key = reveal_windows_key(&sys, &first).await;
    let under = |id: &str| format!("SELECT count(*) AS n FROM product_keys WHERE key_id = '{id}'");
    let all = count(&sys, "SELECT count(*) AS n FROM product_keys").await;
    assert!(all > 0);
    assert_eq!(
        count(&sys, &under("default")).await,
        all,
        "KEY_ENCRYPTION_KEY is `default`"
    );

    // A new key goes first in the ring; the old one stays to decrypt.
    sys.stop_api().await;
    let ring = format!("k2027:{new}");
    sys.env.insert("KEY_ENCRYPTION_KEYS".into(), ring.clone());
    sys.start_api().await.unwrap();
    assert_eq!(
        reveal_windows_key(&sys, &first).await,
        key,
        "the old key still decrypts"
    );
    let (_, second, _) = action_pack_partner(&sys, "rottwo").await;
    assert!(
        count(&sys, &under("k2027")).await > 0,
        "new product keys use the first key"
    );
    assert_eq!(count(&sys, &under("default")).await, all);
    {
        use diesel_async::RunQueryDsl;
        let mut conn = sys.db.connect().await.unwrap();
        diesel::sql_query(
            "CREATE TABLE before_rotation AS SELECT id, ciphertext FROM product_keys",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    }

    // The command moves every product key to the first key, once.
    let (ok, out) = sys.api_command(&["rotate-keys", "--batch", "3"], &[]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!(
            "re-encrypted {all} product key(s) under key `k2027`"
        )),
        "{out}"
    );
    assert_eq!(count(&sys, &under("default")).await, 0);
    assert_eq!(
        count(&sys, "SELECT count(*) AS n FROM product_keys p JOIN before_rotation b USING (id) WHERE b.ciphertext = p.ciphertext AND p.key_id = 'k2027'").await,
        count(&sys, &under("k2027")).await - all,
        "the rotated rows were encrypted again; the others left alone"
    );
    let (ok, out) = sys.api_command(&["rotate-keys"], &[]).await;
    assert!(ok, "{out}");
    assert!(out.contains("re-encrypted 0 product key(s)"), "{out}");

    // The old key retired: every key still reveals, the same as before.
    sys.stop_api().await;
    sys.env.remove("KEY_ENCRYPTION_KEY");
    sys.start_api().await.unwrap();
    assert_eq!(reveal_windows_key(&sys, &first).await, key);
    assert_eq!(reveal_windows_key(&sys, &second).await.len(), 29);

    // A ring without the key the rows need: the command says so and fails.
    let stray = format!("other:{stranger}");
    let (ok, out) = sys
        .api_command(&["rotate-keys"], &[("KEY_ENCRYPTION_KEYS", stray.as_str())])
        .await;
    assert!(!ok, "{out}");
    assert!(
        out.contains("under a key KEY_ENCRYPTION_KEYS does not hold"),
        "{out}"
    );
    assert!(
        !out.contains(&new) && !out.contains(&stranger),
        "no key in the output"
    );
}
