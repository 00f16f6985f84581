#![allow(dead_code)]
//! Shared GraphQL documents and flows of the end-to-end tests.

use gateway_testkit::TestSystem;
use serde_json::{json, Value};
use std::time::Duration;

pub const ENROLL: &str = r#"mutation Enroll($input: EnrollPartnerInput!) {
  enrollPartner(input: $input) {
    partner { id mpnId legalName tenantCreated vetting { status subStatus } networkMembership { since }
              primaryContact { email emailVerified } }
    user { id email roles status }
  }
}"#;

pub const VERIFY: &str = r#"mutation Verify($token: String!) {
  verifyPrimaryContactEmail(token: $token) { vettingStatus vettingSubStatus }
}"#;

pub const DECIDE: &str = r#"mutation Decide($id: ID!, $d: VettingDecision!, $r: String) {
  decideVetting(partnerId: $id, decision: $d, reason: $r) { id vetting { status subStatus reason } }
}"#;

pub const ADD_USER: &str = r#"mutation Add($email: String!, $roles: [TenantRole!]!) {
  addUser(email: $email, roles: $roles) { id email roles status }
}"#;

pub const ME: &str = r#"{ me { identity { subject email } user { id email roles status } partner { id legalName } operator { name } } }"#;

pub fn enroll_input(legal_name: &str, contact_email: &str) -> Value {
    json!({"input": {
        "legalName": legal_name,
        "address": {"lines": ["1 Microsoft Way"], "city": "Redmond", "region": "WA", "postalCode": "98052", "country": "US"},
        "primaryContact": {"firstName": "Ada", "lastName": "Lovelace", "email": contact_email, "phone": "+14255550100"},
        "acceptPartnerAgreement": true,
        "agreementVersion": gateway_domain::enrollment::enroll::PARTNER_AGREEMENT_VERSION,
    }})
}

/// Pulls the single-use token out of the verification email's link.
pub fn token_from(text: &str) -> String {
    let at = text.find("token=").expect("link with token") + "token=".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Enrolls a partner for `subject` and returns (partner id, enrolling user's token).
pub async fn enroll(
    sys: &TestSystem,
    subject: &str,
    email: &str,
    legal_name: &str,
) -> (String, String) {
    let token = sys.token(subject, Some(email));
    let data = sys
        .gql_ok(Some(&token), ENROLL, enroll_input(legal_name, email))
        .await;
    (
        data["enrollPartner"]["partner"]["id"]
            .as_str()
            .unwrap()
            .to_owned(),
        token,
    )
}

pub async fn operator_token(sys: &TestSystem) -> String {
    let mut conn = sys.db.connect().await.unwrap();
    gateway_domain::seed::ensure_operator(
        &mut conn,
        "op-e2e",
        "op@partners.example",
        "Olga Operator",
    )
    .await
    .unwrap();
    sys.token("op-e2e", None)
}

pub async fn verification_token(sys: &TestSystem, email: &str, nth: usize) -> String {
    let mails = sys
        .smtp
        .wait_for(email, nth, Duration::from_secs(20))
        .await
        .unwrap();
    token_from(&mails[nth - 1].text())
}

pub const ADD_CARD: &str = r#"mutation Card($card: CardInput!) {
  addPaymentMethod(card: $card) { id brand last4 }
}"#;

pub const PURCHASE: &str = r#"mutation Buy($input: PurchaseInput!) {
  purchaseOffer(input: $input) {
    id number status kind failureCode failureMessage expiresAt
    total { amountMinor formatted } tax { amountMinor } discount { amountMinor }
    subscription { id status autoRenew term activatedAt anniversaryDate }
    invoice { id number total { amountMinor } }
  }
}"#;

pub const SUBSCRIPTION: &str = r#"query Sub($id: ID!) {
  subscription(id: $id) {
    id status autoRenew term termStartedAt anniversaryDate renewalFailures lastRenewalError
    renewalWindow { opensOn lastDay }
    canRenew { eligible reasons { code at } }
  }
}"#;

pub const ADVANCE: &str = r#"mutation Adv($p: ID!, $days: Int!, $seconds: Int!) {
  advanceTestClock(partnerId: $p, days: $days, seconds: $seconds) { now offsetSeconds }
}"#;

pub const TEST_CLOCK: &str =
    r#"query Clock($p: ID!) { testClock(partnerId: $p) { now offsetSeconds } }"#;

pub const SUCCEEDING_CARD: &str = "4242 4242 4242 4242";
pub const DECLINING_CARD: &str = "4000 0000 0000 0002";
pub const HARD_DECLINING_CARD: &str = "4100 0000 0000 0019";
pub const TRANSIENT_CARD: &str = "4000 0000 0000 0119";

/// The worker runs due work quickly in tests; a year of partner time passes by test clock.
pub const BILLING_ENV: &[(&str, &str)] = &[("AUTO_AUTHORIZE", "true")];

/// Enrolls and verifies a partner (AUTO_AUTHORIZE makes it AUTHORIZED); returns (partner id,
/// Global admin token). The Global admin is also the primary contact.
pub async fn authorized_partner(sys: &TestSystem, tag: &str) -> (String, String) {
    let email = format!("{tag}@{tag}-corp.example");
    let (pid, token) = enroll(sys, tag, &email, &format!("{tag} Corp")).await;
    let t = verification_token(sys, &email, 1).await;
    sys.gql_ok(Some(&token), VERIFY, json!({"token": t})).await;
    (pid, token)
}

pub async fn add_card(sys: &TestSystem, token: &str, number: &str) -> String {
    let d = sys
        .gql_ok(
            Some(token),
            ADD_CARD,
            json!({"card": {"number": number, "expMonth": 12, "expYear": 2035, "cvc": "123", "holderName": "Ada Lovelace"}}),
        )
        .await;
    d["addPaymentMethod"]["id"].as_str().unwrap().to_owned()
}

pub fn purchase_input(offer: &str, key: &str, card_id: &str) -> Value {
    json!({"input": {
        "offerId": offer, "idempotencyKey": key, "acceptTermsVersion": "2021-06",
        "payment": {"paymentMethodId": card_id}
    }})
}

/// Buys by card and returns the order (asserting it was paid).
pub async fn buy(sys: &TestSystem, token: &str, offer: &str, card_id: &str) -> Value {
    let d = sys
        .gql_ok(
            Some(token),
            PURCHASE,
            purchase_input(offer, &uuid::Uuid::new_v4().to_string(), card_id),
        )
        .await;
    assert_eq!(d["purchaseOffer"]["status"], "PAID", "{d:#}");
    d["purchaseOffer"].clone()
}

pub async fn subscription(sys: &TestSystem, token: &str, id: &str) -> Value {
    sys.gql_ok(Some(token), SUBSCRIPTION, json!({"id": id}))
        .await["subscription"]
        .clone()
}

pub fn parse_time(v: &Value) -> chrono::DateTime<chrono::Utc> {
    v.as_str()
        .expect("a date-time")
        .parse()
        .expect("RFC 3339 date-time")
}

/// Moves the partner's clock to `target` (plus real time that passes meanwhile).
pub async fn advance_to(
    sys: &TestSystem,
    op: &str,
    pid: &str,
    target: chrono::DateTime<chrono::Utc>,
) {
    let now =
        parse_time(&sys.gql_ok(Some(op), TEST_CLOCK, json!({"p": pid})).await["testClock"]["now"]);
    let secs = (target - now).num_seconds();
    assert!(secs > 0, "the clock is already past {target}");
    sys.gql_ok(
        Some(op),
        ADVANCE,
        json!({"p": pid, "days": 0, "seconds": secs}),
    )
    .await;
}

/// Polls `check` until it returns Some, or fails after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Emails to `to` whose subject contains `needle`.
pub fn mails_with_subject(
    sys: &TestSystem,
    to: &str,
    needle: &str,
) -> Vec<gateway_testkit::ReceivedEmail> {
    sys.smtp
        .to(to)
        .into_iter()
        .filter(|m| m.header("Subject").is_some_and(|s| s.contains(needle)))
        .collect()
}

/// Rows of a one-column count query against the test database.
pub async fn count(sys: &TestSystem, sql: &str) -> i64 {
    count_in(&sys.db, sql).await
}

/// [`count`] against a database of its own (no system running).
pub async fn count_in(db: &gateway_testkit::TestDb, sql: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = db.connect().await.unwrap();
    let rows: Vec<N> = diesel::sql_query(sql).load(&mut conn).await.unwrap();
    rows[0].n
}

/// A graphql-transport-ws client: connects, authenticates, subscribes.
pub async fn subscribe(
    sys: &TestSystem,
    token: &str,
    query: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("{}/graphql/ws", sys.api_url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    futures::SinkExt::send(&mut ws, Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})
            .to_string(),
    ))
    .await
    .unwrap();
    let ack = next_json(&mut ws).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    futures::SinkExt::send(
        &mut ws,
        Message::text(
            json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string(),
        ),
    )
    .await
    .unwrap();
    ws
}

/// Like [`subscribe`] for a subscription that follows one object: waits for the server's
/// first event (the object as it is now), after which no change can be missed. Returns the
/// socket and that first event's data.
pub async fn subscribe_live(
    sys: &TestSystem,
    token: &str,
    query: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    Value,
) {
    let mut ws = subscribe(sys, token, query).await;
    let first = next_json(&mut ws).await;
    assert_eq!(
        first["type"], "next",
        "the subscription's first event: {first}"
    );
    (ws, first["payload"]["data"].clone())
}

pub async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(30), futures::StreamExt::next(ws))
            .await
            .expect("a websocket message within 30 s")
            .expect("open websocket")
            .expect("websocket message");
        if let Ok(text) = msg.to_text() {
            if !text.is_empty() {
                let v: Value = serde_json::from_str(text).unwrap();
                if v["type"] != "ping" && v["type"] != "pong" {
                    return v;
                }
            }
        }
    }
}

/// Loses every job this test has in Redis, as a flush would, after marking the outbox rows
/// relayed (as if the relay had pushed them just before). Only Postgres can bring them back.
pub async fn flush_queued_jobs(sys: &TestSystem) {
    let mut conn = gateway_testkit::redis_conn().await;
    count(sys, "WITH u AS (UPDATE outbox SET dispatched_at = now() WHERE dispatched_at IS NULL RETURNING 1) SELECT count(*) AS n FROM u").await;
    gateway_testkit::clear_queues(&mut conn, &sys.queue_prefix)
        .await
        .unwrap();
}

/// Queues `n` jobs on `queue` for due actions of `kind` that are already DONE: each job runs,
/// finds nothing to do and completes. Load for queue mechanics, without side effects.
pub async fn queue_noop_jobs(sys: &TestSystem, partner_id: &str, kind: &str, queue: &str, n: i64) {
    count(sys, &format!(
        "WITH a AS (
             INSERT INTO scheduled_actions (id, partner_id, kind, subject_id, term, tag, due_at, status)
             SELECT gen_random_uuid(), '{partner_id}', '{kind}', gen_random_uuid(), 1, '', now(), 'DONE'
             FROM generate_series(1, {n}) RETURNING id),
         o AS (INSERT INTO outbox (queue, payload) SELECT '{queue}', jsonb_build_object('v', 1, 'action_id', a.id) FROM a RETURNING 1)
         SELECT count(*) AS n FROM o"
    ))
    .await;
}

pub const BENEFITS: &str = r#"query($c: BenefitCategory) {
  benefits(category: $c, first: 50) { edges { node {
    id code product category quantity used remaining status offerId expiresAt
    activation { state expectedCompletionAt failureReason }
    accessId contractId key { revealed }
    assignments { userId email reassignableFrom }
    azureCredit { balance { amountMinor } monthsGranted }
  } } }
}"#;

/// The partner's benefit with this code (fails the test when there is none).
pub async fn benefit(sys: &TestSystem, token: &str, code: &str) -> Value {
    let d = sys.gql_ok(Some(token), BENEFITS, json!({})).await;
    d["benefits"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .find(|b| b["code"] == code)
        .unwrap_or_else(|| panic!("no benefit {code} in {d:#}"))
}

/// Restarts the api with `FAULT_CRASH_AFTER_CHARGE=purchase`, sends a card purchase that
/// makes it exit right after the gateway's charge (asserting it did, status 70), and starts
/// it again without the switch: the order is left PROCESSING for settlement.
pub async fn purchase_cut_off_after_charge(
    sys: &mut TestSystem,
    token: &str,
    key: &str,
    card: &str,
) {
    sys.api.as_mut().unwrap().kill().await.unwrap();
    sys.env
        .insert("FAULT_CRASH_AFTER_CHARGE".into(), "purchase".into());
    sys.start_api().await.unwrap();
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(token)
        .json(&json!({"query": PURCHASE, "variables": purchase_input("ACTION_PACK", key, card)}))
        .send()
        .await;
    assert!(resp.is_err(), "the api died mid-request: {resp:?}");
    assert_eq!(
        sys.api.as_mut().unwrap().wait().await.unwrap().code(),
        Some(70)
    );
    sys.env.remove("FAULT_CRASH_AFTER_CHARGE");
    sys.start_api().await.unwrap();
}
