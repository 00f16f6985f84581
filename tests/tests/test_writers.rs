//! What an end-to-end test writer has (issue 23 items 7–10): tokens from `gateway-api
//! mint-token` (operators, users with roles, expired tokens), the partner agreement's version
//! from the API, `waitForIdle` instead of sleeping, `advanceTestClock(to:)`, captured mail over
//! HTTP (`GET /dev/mail`) with links to the portal (PORTAL_BASE_URL).
//!
//! The first test is the README's example: written as a user would write it against a running
//! system, with plain HTTP and the CLI only (the test kit just starts the system).

use gateway_testkit::TestSystem;
use serde_json::{json, Value};

/// POST a GraphQL operation, as any HTTP client would.
async fn graphql(api: &str, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut req = reqwest::Client::new()
        .post(format!("{api}/graphql"))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// Enrolls a partner as the signed-in identity `token`, with Ada as its primary contact at
/// `email`, accepting agreement `version`; returns the partner's id.
async fn enroll(api: &str, token: &str, legal_name: &str, email: &str, version: &str) -> String {
    let enrolled = graphql(
        api,
        Some(token),
        "mutation Enroll($input: EnrollPartnerInput!) { enrollPartner(input: $input) { partner { id } } }",
        json!({"input": {
            "legalName": legal_name,
            "address": {"lines": ["1 Main St"], "city": "Redmond", "region": "WA", "postalCode": "98052", "country": "US"},
            "primaryContact": {"firstName": "Ada", "lastName": "Lovelace", "email": email, "phone": "+14255550100"},
            "acceptPartnerAgreement": true,
            "agreementVersion": version,
        }}),
    )
    .await;
    enrolled["data"]["enrollPartner"]["partner"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{enrolled}"))
        .to_owned()
}

fn code(resp: &Value) -> Option<&str> {
    resp["errors"][0]["extensions"]["code"].as_str()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_end_to_end_test_as_a_user_writes_it() {
    let mail_dir = std::env::temp_dir().join(format!("pbg-mail-{}", uuid::Uuid::new_v4()));
    let sys = TestSystem::start_with(&[
        ("EMAIL_TRANSPORT", "file"),
        ("EMAIL_FILE_DIR", mail_dir.to_str().unwrap()),
    ])
    .await
    .unwrap();
    let api = sys.api_url.as_str();

    // Tokens from the CLI: an operator, and a signed-in identity that will enroll.
    let operator = sys
        .mint_token(&["--sub", "ops-1", "--operator"])
        .await
        .unwrap();
    let ada = sys
        .mint_token(&["--sub", "ada", "--email", "ada@contoso.example"])
        .await
        .unwrap();

    // The agreement version comes from the API, not from the README.
    let agreement = graphql(
        api,
        None,
        "{ partnerAgreement { name version } }",
        json!({}),
    )
    .await;
    let version = agreement["data"]["partnerAgreement"]["version"]
        .as_str()
        .expect("agreement version")
        .to_owned();
    assert_eq!(
        version,
        gateway_domain::enrollment::enroll::PARTNER_AGREEMENT_VERSION
    );

    let partner = enroll(api, &ada, "Contoso Ltd", "ada@contoso.example", &version).await;

    // No sleeping: wait until the partner's work (the verification email) is done.
    let idle = graphql(
        api,
        Some(&operator),
        "query Idle($p: ID) { waitForIdle(partnerId: $p, timeoutSeconds: 10) { waitedMs } }",
        json!({"p": partner}),
    )
    .await;
    assert!(idle["data"]["waitForIdle"]["waitedMs"].is_i64(), "{idle}");

    // The mail, over HTTP: sent, linking to the portal (PORTAL_BASE_URL), not to the api.
    let mail: Value = reqwest::get(format!("{api}/dev/mail?to=ADA@contoso.example"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let messages = mail["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1, "{mail}");
    let verification = &messages[0];
    assert_eq!(verification["status"], "SENT");
    assert_eq!(verification["to"], "ada@contoso.example");
    assert_eq!(verification["template"], "verification");
    assert_eq!(verification["partnerId"], partner.as_str());
    let link = verification["links"][0].as_str().unwrap();
    let token = link
        .strip_prefix("http://portal.test/verify-email?token=")
        .unwrap_or_else(|| panic!("a link to the portal's /verify-email: {link}"));
    assert!(verification["text"].as_str().unwrap().contains(link));
    // The file transport wrote the same message.
    assert_eq!(std::fs::read_dir(&mail_dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&mail_dir).ok();

    let verified = graphql(
        api,
        Some(&ada),
        "mutation V($t: String!) { verifyPrimaryContactEmail(token: $t) { vettingStatus } }",
        json!({"t": token}),
    )
    .await;
    assert!(verified["errors"].is_null(), "{verified}");

    // Time: move the partner's clock to an instant, absolutely.
    let target = chrono::Utc::now() + chrono::Duration::days(3);
    let moved = graphql(
        api,
        Some(&operator),
        "mutation To($p: ID!, $to: DateTime!) { advanceTestClock(partnerId: $p, to: $to) { now } }",
        json!({"p": partner, "to": target.to_rfc3339()}),
    )
    .await;
    let now: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(moved["data"]["advanceTestClock"]["now"].clone())
            .unwrap_or_else(|_| panic!("{moved}"));
    assert!(
        now >= target && now - target < chrono::Duration::seconds(5),
        "{now} vs {target}"
    );

    // A second user with a chosen role, straight from the CLI.
    let bob = sys
        .mint_token(&[
            "--sub",
            "bob",
            "--email",
            "bob@contoso.example",
            "--partner",
            &partner,
            "--roles",
            "ADMIN_AGENT,mpn-partner-admin",
        ])
        .await
        .unwrap();
    let me = graphql(
        api,
        Some(&bob),
        "{ me { user { roles status } partner { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        me["data"]["me"],
        json!({"user": {"roles": ["ADMIN_AGENT", "MPN_PARTNER_ADMIN"], "status": "ACTIVE"}, "partner": {"id": partner}}),
        "{me}"
    );

    // An expired token, for the expired-token test every client needs.
    let expired = sys
        .mint_token(&["--sub", "ada", "--ttl=-60"])
        .await
        .unwrap();
    let r = reqwest::Client::new()
        .post(format!("{api}/graphql"))
        .bearer_auth(&expired)
        .json(&json!({"query": "{ me { identity { subject } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // RFC 6750: a token that was sent but is not (or no longer) valid.
    assert_eq!(
        r.headers()["www-authenticate"],
        "Bearer error=\"invalid_token\""
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), Some("UNAUTHENTICATED"), "{body}");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_for_idle_waits_for_the_work_and_names_what_is_still_busy() {
    let sys = TestSystem::start().await.unwrap();
    let api = sys.api_url.as_str();
    let operator = sys
        .mint_token(&["--sub", "ops-2", "--operator"])
        .await
        .unwrap();
    const IDLE: &str = "query Idle($p: ID, $t: Int) { waitForIdle(partnerId: $p, timeoutSeconds: $t) { waitedMs } }";

    // Emails held in Postgres (the queue is paused): the partner is busy until they are sent.
    let paused = graphql(
        api,
        Some(&operator),
        r#"mutation { pauseQueue(queue: "email") { paused } }"#,
        json!({}),
    )
    .await;
    assert_eq!(paused["data"]["pauseQueue"]["paused"], true, "{paused}");
    let ada = sys
        .mint_token(&["--sub", "ada2", "--email", "ada@fabrikam.example"])
        .await
        .unwrap();
    let version = gateway_domain::enrollment::enroll::PARTNER_AGREEMENT_VERSION;
    let partner = enroll(api, &ada, "Fabrikam Inc", "ada@fabrikam.example", version).await;
    let busy = graphql(api, Some(&operator), IDLE, json!({"p": partner, "t": 1})).await;
    assert_eq!(code(&busy), Some("TIMEOUT"), "{busy}");
    assert_eq!(
        busy["errors"][0]["message"], "still busy after 1 s: 1 EMAIL",
        "{busy}"
    );
    // The same, for every partner at once.
    let busy = graphql(api, Some(&operator), IDLE, json!({"t": 1})).await;
    assert_eq!(code(&busy), Some("TIMEOUT"), "{busy}");

    // Resumed: waitForIdle returns once the email has gone, so no wait is needed after it.
    graphql(
        api,
        Some(&operator),
        r#"mutation { resumeQueue(queue: "email") { paused } }"#,
        json!({}),
    )
    .await;
    let idle = graphql(api, Some(&operator), IDLE, json!({"p": partner, "t": 10})).await;
    assert!(idle["errors"].is_null(), "{idle}");
    assert!(
        idle["data"]["waitForIdle"]["waitedMs"].as_i64().unwrap() > 0,
        "{idle}"
    );
    assert_eq!(
        sys.smtp.all().len(),
        1,
        "the email was sent before waitForIdle answered"
    );

    // Bounds, callers, and unknown partners.
    let long = graphql(api, Some(&operator), IDLE, json!({"t": 61})).await;
    assert_eq!(code(&long), Some("BAD_USER_INPUT"), "{long}");
    let user = graphql(api, Some(&ada), IDLE, json!({"p": partner, "t": 1})).await;
    assert_eq!(code(&user), Some("FORBIDDEN"), "{user}");
    let unknown = graphql(
        api,
        Some(&operator),
        IDLE,
        json!({"p": uuid::Uuid::now_v7().to_string(), "t": 1}),
    )
    .await;
    assert_eq!(code(&unknown), Some("NOT_FOUND"), "{unknown}");

    // advanceTestClock(to:) moves forward only, and not together with days/seconds.
    const TO: &str = "mutation To($p: ID!, $to: DateTime, $d: Int) { advanceTestClock(partnerId: $p, to: $to, days: $d) { now } }";
    let past = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
    let back = graphql(api, Some(&operator), TO, json!({"p": partner, "to": past})).await;
    assert_eq!(code(&back), Some("BAD_USER_INPUT"), "{back}");
    let future = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    let both = graphql(
        api,
        Some(&operator),
        TO,
        json!({"p": partner, "to": future, "d": 1}),
    )
    .await;
    assert_eq!(code(&both), Some("BAD_USER_INPUT"), "{both}");

    // With SMTP delivery there is no captured mail: the route answers 404.
    let r = reqwest::get(format!("{api}/dev/mail")).await.unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(code(&body), Some("NOT_FOUND"), "{body}");

    // mint-token refuses what it cannot do, saying why.
    let err = sys
        .mint_token(&[
            "--sub",
            "x",
            "--email",
            "x@y.example",
            "--partner",
            &partner,
            "--roles",
            "OWNER",
        ])
        .await
        .unwrap_err();
    assert!(err.contains("unknown role `OWNER`"), "{err}");
    let err = sys
        .mint_token(&[
            "--sub",
            "x",
            "--partner",
            &partner,
            "--roles",
            "ADMIN_AGENT",
        ])
        .await
        .unwrap_err();
    assert!(err.contains("--email"), "{err}");
}
