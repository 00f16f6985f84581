//! The walking skeleton, end to end: GraphQL → Postgres → outbox → Redis → worker → SMTP.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn enroll_verify_authorize_invite_and_audit() {
    let sys = TestSystem::start().await.unwrap();
    let alice = sys.token("alice-sub", Some("alice@contoso.com"));

    // A signed-in identity without a partner: `me` says so.
    let me = sys.gql_ok(Some(&alice), ME, json!({})).await;
    assert!(me["me"]["user"].is_null() && me["me"]["partner"].is_null());

    // Enroll.
    let data = sys
        .gql_ok(
            Some(&alice),
            ENROLL,
            enroll_input("Contoso Ltd", "alice@contoso.com"),
        )
        .await;
    let partner = &data["enrollPartner"]["partner"];
    let partner_id = partner["id"].as_str().unwrap().to_owned();
    let mpn = partner["mpnId"].as_str().unwrap();
    assert_eq!(mpn.len(), 7);
    assert!(mpn.chars().all(|c| c.is_ascii_digit()));
    assert_eq!(
        partner["vetting"],
        json!({"status": "PENDING", "subStatus": "EMAIL_OWNERSHIP"})
    );
    assert_eq!(partner["tenantCreated"], json!(true));
    assert!(partner["networkMembership"]["since"].is_string());
    let user = &data["enrollPartner"]["user"];
    assert_eq!(user["roles"], json!(["GLOBAL_ADMIN", "ADMIN_AGENT"]));

    // The verification email arrives over SMTP, with text and HTML parts.
    let mails = sys
        .smtp
        .wait_for("alice@contoso.com", 1, Duration::from_secs(20))
        .await
        .unwrap();
    let mail = &mails[0];
    assert!(mail.header("subject").unwrap().contains("Contoso Ltd"));
    assert!(mail.part("text/html").is_some(), "HTML part present");
    let token = token_from(&mail.text());
    assert!(token.len() >= 40);

    // Follow the link (no sign-in needed): ownership proven, on to employment verification.
    let v = sys.gql_ok(None, VERIFY, json!({"token": token})).await;
    assert_eq!(
        v["verifyPrimaryContactEmail"],
        json!({"vettingStatus": "PENDING", "vettingSubStatus": "EMPLOYMENT_VERIFICATION"})
    );
    // Single use.
    let again = sys.gql(None, VERIFY, json!({"token": token})).await;
    assert_eq!(error_code(&again), Some("NOT_ELIGIBLE"));
    assert_eq!(
        again["errors"][0]["extensions"]["reasons"][0]["code"],
        "TOKEN_USED"
    );

    // The operator authorizes.
    let op = operator_token(&sys).await;
    let d = sys
        .gql_ok(
            Some(&op),
            DECIDE,
            json!({"id": partner_id, "d": "AUTHORIZE"}),
        )
        .await;
    assert_eq!(d["decideVetting"]["vetting"]["status"], "AUTHORIZED");
    // A partner user cannot decide vetting.
    let forbidden = sys
        .gql(
            Some(&alice),
            DECIDE,
            json!({"id": partner_id, "d": "AUTHORIZE"}),
        )
        .await;
    assert_eq!(error_code(&forbidden), Some("FORBIDDEN"));

    // Invite Bob; his invitation arrives; he signs in and is linked.
    let added = sys
        .gql_ok(
            Some(&alice),
            ADD_USER,
            json!({"email": "bob@contoso.com", "roles": ["MPN_PARTNER_ADMIN"]}),
        )
        .await;
    assert_eq!(added["addUser"]["status"], "INVITED");
    let invites = sys
        .smtp
        .wait_for("bob@contoso.com", 1, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(invites[0].text().contains("Contoso Ltd"));
    assert!(invites[0].text().contains("MPN_PARTNER_ADMIN"));
    let bob = sys.token("bob-sub", Some("bob@contoso.com"));
    let me = sys.gql_ok(Some(&bob), ME, json!({})).await;
    assert_eq!(me["me"]["partner"]["id"], json!(partner_id));
    assert_eq!(me["me"]["user"]["status"], "ACTIVE");
    assert_eq!(me["me"]["user"]["roles"], json!(["MPN_PARTNER_ADMIN"]));
    // Bob is not a user admin.
    let denied = sys
        .gql(
            Some(&bob),
            ADD_USER,
            json!({"email": "eve@contoso.com", "roles": []}),
        )
        .await;
    assert_eq!(error_code(&denied), Some("FORBIDDEN"));

    // The audit log tells the story, newest first, with request ids.
    let log = sys
        .gql_ok(
            Some(&alice),
            "{ auditLog(first: 50) { edges { node { action actorKind targetType requestId } } } }",
            json!({}),
        )
        .await;
    let actions: Vec<&str> = log["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "user.invited",
            "partner.vetting_decided",
            "partner.contact_email_verified",
            "partner.enrolled"
        ]
    );
    assert!(log["auditLog"]["edges"][0]["node"]["requestId"].is_string());
    // Bob (not Global admin) cannot read it.
    assert_eq!(
        error_code(
            &sys.gql(
                Some(&bob),
                "{ auditLog { edges { node { action } } } }",
                json!({})
            )
            .await
        ),
        Some("FORBIDDEN")
    );

    // Delivered emails no longer hold their bodies (they carried a token).
    use diesel::sql_types::BigInt;
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = sys.db.connect().await.unwrap();
    let left: N = diesel::sql_query(
        "SELECT count(*) AS n FROM emails WHERE status = 'SENT' AND body_text IS NOT NULL",
    )
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(left.n, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partner_cannot_see_or_touch_another_partners_data() {
    let sys = TestSystem::start().await.unwrap();
    let (contoso, alice) = enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    let (fabrikam, carol) = enroll(&sys, "carol-sub", "carol@fabrikam.com", "Fabrikam Inc").await;
    assert_ne!(contoso, fabrikam);

    let bob = sys
        .gql_ok(
            Some(&alice),
            ADD_USER,
            json!({"email": "bob@contoso.com", "roles": []}),
        )
        .await;
    let bob_id = bob["addUser"]["id"].as_str().unwrap().to_owned();
    let sr = sys
        .gql_ok(
            Some(&alice),
            r#"mutation { createServiceRequest(input: {kind: OTHER, title: "VM won't start", description: "Since Monday", severity: MODERATE}) { id } }"#,
            json!({}),
        )
        .await;
    let sr_id = sr["createServiceRequest"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Carol reads her own partner; naming Contoso's ids answers NOT_FOUND everywhere.
    let own = sys
        .gql_ok(Some(&carol), "{ partner { legalName } }", json!({}))
        .await;
    assert_eq!(own["partner"]["legalName"], "Fabrikam Inc");
    let cases = [
        (
            "query($id: ID!) { partner(id: $id) { legalName } }",
            json!({"id": contoso}),
        ),
        (
            "query($id: ID!) { serviceRequest(id: $id) { title } }",
            json!({"id": sr_id}),
        ),
        (
            "query($id: ID!) { auditLog(partnerId: $id) { edges { node { action } } } }",
            json!({"id": contoso}),
        ),
        (
            "mutation($id: ID!) { updateUserRoles(userId: $id, roles: [GLOBAL_ADMIN]) { id } }",
            json!({"id": bob_id}),
        ),
        (
            "mutation($id: ID!) { removeUser(userId: $id) { id } }",
            json!({"id": bob_id}),
        ),
        (
            "mutation($id: ID!) { addServiceRequestNote(id: $id, body: \"hi\") { id } }",
            json!({"id": sr_id}),
        ),
    ];
    for (q, vars) in cases {
        let resp = sys.gql(Some(&carol), q, vars).await;
        assert_eq!(error_code(&resp), Some("NOT_FOUND"), "{q}: {resp}");
    }
    // And lists show only her own.
    let list = sys
        .gql_ok(
            Some(&carol),
            "{ serviceRequests { edges { node { id } } } users { totalCount nodes { email } } }",
            json!({}),
        )
        .await;
    assert_eq!(list["serviceRequests"]["edges"], json!([]));
    assert_eq!(
        list["users"],
        json!({"totalCount": 1, "nodes": [{"email": "carol@fabrikam.com"}]})
    );
    // Bob's roles are unchanged.
    let users = sys
        .gql_ok(
            Some(&alice),
            "{ users { nodes { email roles } } }",
            json!({}),
        )
        .await;
    assert!(users["users"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["email"] == "bob@contoso.com" && u["roles"] == json!([])));
}

#[tokio::test(flavor = "multi_thread")]
async fn role_rules_user_admin_and_the_last_global_admin() {
    let sys = TestSystem::start().await.unwrap();
    let (_, alice) = enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    let me = sys.gql_ok(Some(&alice), ME, json!({})).await;
    let alice_id = me["me"]["user"]["id"].as_str().unwrap().to_owned();
    let ua = sys
        .gql_ok(
            Some(&alice),
            ADD_USER,
            json!({"email": "uma@contoso.com", "roles": ["USER_ADMIN"]}),
        )
        .await;
    let uma_id = ua["addUser"]["id"].as_str().unwrap().to_owned();
    let uma = sys.token("uma-sub", Some("uma@contoso.com"));

    // The last Global admin can neither be demoted nor removed.
    let demote = "mutation($id: ID!, $r: [TenantRole!]!) { updateUserRoles(userId: $id, roles: $r) { roles } }";
    let resp = sys
        .gql(
            Some(&alice),
            demote,
            json!({"id": alice_id, "r": ["ADMIN_AGENT"]}),
        )
        .await;
    assert_eq!(error_code(&resp), Some("NOT_ELIGIBLE"));
    assert_eq!(
        resp["errors"][0]["extensions"]["reasons"][0]["code"],
        "LAST_GLOBAL_ADMIN"
    );
    let resp = sys
        .gql(
            Some(&alice),
            "mutation($id: ID!) { removeUser(userId: $id) { id } }",
            json!({"id": alice_id}),
        )
        .await;
    assert_eq!(error_code(&resp), Some("NOT_ELIGIBLE"));

    // The User admin manages plain roles, but cannot grant, revoke or touch Global admin.
    let ok = sys
        .gql_ok(
            Some(&uma),
            ADD_USER,
            json!({"email": "max@contoso.com", "roles": ["ADMIN_AGENT"]}),
        )
        .await;
    assert_eq!(ok["addUser"]["roles"], json!(["ADMIN_AGENT"]));
    let resp = sys
        .gql(
            Some(&uma),
            ADD_USER,
            json!({"email": "gia@contoso.com", "roles": ["GLOBAL_ADMIN"]}),
        )
        .await;
    assert_eq!(error_code(&resp), Some("FORBIDDEN"));
    let resp = sys
        .gql(
            Some(&uma),
            demote,
            json!({"id": uma_id, "r": ["USER_ADMIN", "GLOBAL_ADMIN"]}),
        )
        .await;
    assert_eq!(error_code(&resp), Some("FORBIDDEN"));
    let resp = sys
        .gql(
            Some(&uma),
            "mutation($id: ID!) { removeUser(userId: $id) { id } }",
            json!({"id": alice_id}),
        )
        .await;
    assert_eq!(error_code(&resp), Some("FORBIDDEN"));

    // With a second Global admin, the first may step down.
    sys.gql_ok(
        Some(&alice),
        demote,
        json!({"id": uma_id, "r": ["USER_ADMIN", "GLOBAL_ADMIN"]}),
    )
    .await;
    let r = sys
        .gql_ok(
            Some(&alice),
            demote,
            json!({"id": alice_id, "r": ["ADMIN_AGENT"]}),
        )
        .await;
    assert_eq!(r["updateUserRoles"]["roles"], json!(["ADMIN_AGENT"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn resend_is_rate_limited_and_supersedes_the_old_link() {
    let sys = TestSystem::start_with(&[("VERIFICATION_RESEND_INTERVAL_SECS", "1")])
        .await
        .unwrap();
    let (_, alice) = enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    let first = verification_token(&sys, "alice@contoso.com", 1).await;

    let resend = "mutation { resendVerificationEmail { sentAt } }";
    let resp = sys.gql(Some(&alice), resend, json!({})).await;
    assert_eq!(error_code(&resp), Some("RATE_LIMITED"), "{resp}");
    assert!(
        resp["errors"][0]["extensions"]["retryAfter"]
            .as_i64()
            .unwrap()
            >= 1
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sys.gql_ok(Some(&alice), resend, json!({})).await;
    let second = verification_token(&sys, "alice@contoso.com", 2).await;
    assert_ne!(first, second);

    let old = sys.gql(None, VERIFY, json!({"token": first})).await;
    assert_eq!(
        old["errors"][0]["extensions"]["reasons"][0]["code"],
        "TOKEN_SUPERSEDED"
    );
    let bogus = sys
        .gql(None, VERIFY, json!({"token": "not-a-real-token"}))
        .await;
    assert_eq!(error_code(&bogus), Some("BAD_USER_INPUT"));
    sys.gql_ok(None, VERIFY, json!({"token": second})).await;
    let done = sys.gql(Some(&alice), resend, json!({})).await;
    assert_eq!(
        done["errors"][0]["extensions"]["reasons"][0]["code"],
        "ALREADY_VERIFIED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_links_are_refused() {
    let sys = TestSystem::start_with(&[("VERIFICATION_TOKEN_TTL_SECS", "1")])
        .await
        .unwrap();
    enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    let token = verification_token(&sys, "alice@contoso.com", 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let resp = sys.gql(None, VERIFY, json!({"token": token})).await;
    assert_eq!(
        resp["errors"][0]["extensions"]["reasons"][0]["code"],
        "TOKEN_EXPIRED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn legal_profile_edits_reopen_verification_of_changed_fields() {
    let sys = TestSystem::start_with(&[("AUTO_AUTHORIZE", "true")])
        .await
        .unwrap();
    let (_, alice) = enroll(&sys, "alice-sub", "alice@contoso.com", "Contoso Ltd").await;
    let token = verification_token(&sys, "alice@contoso.com", 1).await;
    let v = sys.gql_ok(None, VERIFY, json!({"token": token})).await;
    assert_eq!(
        v["verifyPrimaryContactEmail"]["vettingStatus"],
        "AUTHORIZED"
    );

    let update = r#"mutation($i: UpdateLegalProfileInput!) { updateLegalProfile(input: $i) {
        legalName vetting { status subStatus fieldsUnderVerification } primaryContact { phone } } }"#;
    let phone_only = sys
        .gql_ok(
            Some(&alice),
            update,
            json!({"i": {"contactPhone": "+14255550199"}}),
        )
        .await;
    assert_eq!(
        phone_only["updateLegalProfile"]["vetting"]["status"],
        "AUTHORIZED"
    );
    let renamed = sys
        .gql_ok(
            Some(&alice),
            update,
            json!({"i": {"legalName": "Contoso Holdings Ltd"}}),
        )
        .await;
    assert_eq!(
        renamed["updateLegalProfile"]["vetting"],
        json!({"status": "PENDING", "subStatus": "BUSINESS_VERIFICATION", "fieldsUnderVerification": ["LEGAL_NAME"]})
    );
}
