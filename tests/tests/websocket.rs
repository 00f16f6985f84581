//! GraphQL over WebSocket keeps no rights past its token (issue 22, item 2): the socket closes
//! when the token expires, each event is checked against the caller as they are then, only
//! subscriptions run over it, and a socket is bounded (init timeout, 20 subscriptions,
//! message size).

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::{SinkExt, StreamExt};
use gateway_testkit::TestSystem;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` (graphql-transport-ws) and, given a token, initialises it.
async fn open(sys: &TestSystem, token: Option<&str>) -> Ws {
    let url = format!("{}/graphql/ws", sys.api_url.replace("http://", "ws://"));
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket");
    if let Some(token) = token {
        send(
            &mut ws,
            json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}),
        )
        .await;
        let ack = next_json(&mut ws).await;
        assert_eq!(ack["type"], "connection_ack", "{ack}");
    }
    ws
}

async fn send(ws: &mut Ws, msg: Value) {
    ws.send(Message::text(msg.to_string())).await.unwrap();
}

async fn subscribe_to(ws: &mut Ws, id: &str, query: &str) {
    send(
        ws,
        json!({"id": id, "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
}

/// The close frame the server sends next (skipping pings and anything else), within `secs`.
async fn close_code(ws: &mut Ws, secs: u64) -> (u16, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .unwrap_or_else(|_| panic!("no close frame within {secs} s"));
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string())
            }
            Some(Ok(Message::Close(None))) | None => panic!("closed without a close frame"),
            Some(Err(e)) => panic!("socket failed before a close frame: {e}"),
            Some(Ok(_)) => {}
        }
    }
}

fn follow(sub_id: &str) -> String {
    format!(
        "subscription {{ subscriptionUpdated(subscriptionId: \"{sub_id}\") {{ id autoRenew }} }}"
    )
}

#[tokio::test]
async fn a_socket_runs_only_subscriptions_twenty_at_most_and_closes_when_its_token_expires() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (_, ga) = authorized_partner(&sys, "wsock").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();

    // The same user with a token that expires in 6 s.
    let ttl = Duration::from_secs(6);
    let short = sys.token_for("wsock", Some("wsock@wsock-corp.example"), ttl);
    let minted = Instant::now();
    let mut ws = open(&sys, Some(&short)).await;

    // Queries and mutations belong to POST /graphql, under its limits.
    for (id, doc) in [
        ("q", "{ me { user { id } } }"),
        (
            "m",
            "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }",
        ),
    ] {
        send(
            &mut ws,
            json!({"id": id, "type": "subscribe", "payload": {"query": doc, "variables": {"id": sub_id}}}),
        )
        .await;
        let answer = next_json(&mut ws).await;
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(
            answer["payload"]["errors"][0]["extensions"]["code"], "SUBSCRIPTIONS_ONLY",
            "{answer}"
        );
        assert!(answer["payload"]["data"].is_null(), "{answer}");
        let done = next_json(&mut ws).await;
        assert_eq!(done, json!({"id": id, "type": "complete"}));
    }
    assert_eq!(
        subscription(&sys, &ga, &sub_id).await["autoRenew"],
        true,
        "the mutation sent over the socket did not run"
    );

    // Twenty subscriptions run; the twenty-first is refused until one completes.
    for i in 1..=20 {
        subscribe_to(&mut ws, &format!("s{i}"), &follow(&sub_id)).await;
        let first = next_json(&mut ws).await;
        assert_eq!(first["type"], "next", "{first}");
        assert_eq!(first["id"], format!("s{i}"));
    }
    subscribe_to(&mut ws, "s21", &follow(&sub_id)).await;
    let refused = next_json(&mut ws).await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert_eq!(refused["id"], "s21");
    assert_eq!(
        refused["payload"][0]["extensions"]["code"],
        "TOO_MANY_SUBSCRIPTIONS"
    );
    send(&mut ws, json!({"id": "s1", "type": "complete"})).await;
    let done = next_json(&mut ws).await;
    assert_eq!(done, json!({"id": "s1", "type": "complete"}));
    subscribe_to(&mut ws, "s21", &follow(&sub_id)).await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "next", "{first}");
    assert_eq!(first["id"], "s21");

    // The token expires: the server closes the socket (4401), not before.
    let (code, reason) = close_code(&mut ws, 20).await;
    assert_eq!(code, 4401, "{reason}");
    assert!(
        minted.elapsed() + Duration::from_secs(1) >= ttl,
        "closed after {:?}, before the token expired",
        minted.elapsed()
    );

    // A socket that never initialises is closed after 10 s (graphql-transport-ws' 4408).
    let opened = Instant::now();
    let mut idle = open(&sys, None).await;
    let (code, reason) = close_code(&mut idle, 20).await;
    assert_eq!(code, 4408, "{reason}");
    assert!(
        opened.elapsed() >= Duration::from_secs(9),
        "{:?}",
        opened.elapsed()
    );

    // A message over 16 KiB ends the socket; nothing of it runs.
    let mut big = open(&sys, Some(&ga)).await;
    let padding = "#".repeat(20 * 1024);
    let _ = big
        .send(Message::text(
            json!({"id": "big", "type": "subscribe", "payload": {"query": format!("{}\n{padding}", follow(&sub_id))}})
                .to_string(),
        ))
        .await;
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .expect("the oversized message ends the socket within 10 s");
    assert_eq!(end, None, "the oversized subscription was answered");
}

#[tokio::test]
async fn a_removed_user_hears_no_more_events_on_an_open_socket() {
    let sys = TestSystem::start_with(BILLING_ENV).await.unwrap();
    let (_, ga) = authorized_partner(&sys, "wsleave").await;
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    let order = buy(&sys, &ga, "ACTION_PACK", &card).await;
    let sub_id = order["subscription"]["id"].as_str().unwrap().to_owned();

    let bob_email = "bob@wsleave-corp.example";
    let bob_id = sys
        .gql_ok(
            Some(&ga),
            ADD_USER,
            json!({"email": bob_email, "roles": ["GLOBAL_ADMIN"]}),
        )
        .await["addUser"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let bob = sys.token("wsleave-bob", Some(bob_email));
    let me = sys.gql_ok(Some(&bob), ME, json!({})).await;
    assert_eq!(me["me"]["user"]["id"], bob_id.as_str(), "{me}");

    let (mut bob_ws, now) = subscribe_live(&sys, &bob, &follow(&sub_id)).await;
    assert_eq!(now["subscriptionUpdated"]["autoRenew"], true);
    let (mut ga_ws, _) = subscribe_live(&sys, &ga, &follow(&sub_id)).await;

    sys.gql_ok(
        Some(&ga),
        "mutation($id: ID!) { removeUser(userId: $id) { id } }",
        json!({"id": bob_id}),
    )
    .await;
    sys.gql_ok(
        Some(&ga),
        "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }",
        json!({"id": sub_id}),
    )
    .await;

    // The admin who stayed hears the change; the removed user gets FORBIDDEN, and the
    // subscription ends.
    let seen = next_json(&mut ga_ws).await;
    assert_eq!(
        seen["payload"]["data"]["subscriptionUpdated"]["autoRenew"], false,
        "{seen}"
    );
    let refused = next_json(&mut bob_ws).await;
    assert_eq!(refused["type"], "next", "{refused}");
    assert!(
        refused["payload"]["data"].is_null(),
        "the removed user saw the subscription: {refused}"
    );
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{refused}"
    );
    let done = next_json(&mut bob_ws).await;
    assert_eq!(done, json!({"id": "1", "type": "complete"}));
}

/// The console's socket (`/ops/ws`) opens only on a console session, from the console's own
/// origin, with the session's CSRF token in `connection_init`; it pushes `queueStats` and
/// closes (4401) once the session is signed out.
#[tokio::test(flavor = "multi_thread")]
async fn the_consoles_socket_needs_its_session_origin_and_csrf_token_and_ends_with_the_session() {
    let sys = TestSystem::start().await.unwrap();
    let op = operator_token(&sys).await;
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/ops/session", sys.api_url))
        .json(&json!({"token": op}))
        .send()
        .await
        .unwrap();
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = r.json::<Value>().await.unwrap()["csrfToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let host = sys.api_url.trim_start_matches("http://").to_owned();
    let connect = |cookie: Option<&str>, origin: &str| {
        let mut req = format!("ws://{host}/ops/ws").into_client_request().unwrap();
        let h = req.headers_mut();
        h.insert(
            "Sec-WebSocket-Protocol",
            "graphql-transport-ws".parse().unwrap(),
        );
        h.insert("Origin", origin.parse().unwrap());
        if let Some(c) = cookie {
            h.insert("Cookie", c.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    let status = |r: Result<_, tokio_tungstenite::tungstenite::Error>| match r {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("{e}"),
        Ok(_) => 101,
    };
    let own = format!("http://{host}");
    assert_eq!(status(connect(None, &own).await), 401, "no session");
    assert_eq!(
        status(connect(Some(&cookie), "https://evil.example").await),
        403,
        "another site's page"
    );

    // The session's CSRF token is required in connection_init.
    let (mut ws, _) = connect(Some(&cookie), &own).await.unwrap();
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"csrfToken": "guess"}}),
    )
    .await;
    let (code, _) = close_code(&mut ws, 10).await;
    assert_eq!(code, 4403);

    let (mut ws, _) = connect(Some(&cookie), &own).await.unwrap();
    send(
        &mut ws,
        json!({"type": "connection_init", "payload": {"csrfToken": csrf}}),
    )
    .await;
    assert_eq!(next_json(&mut ws).await["type"], "connection_ack");
    subscribe_to(&mut ws, "s", "subscription { queueStats { name pending } }").await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "next", "{first}");
    assert!(
        first["payload"]["data"]["queueStats"]
            .as_array()
            .unwrap()
            .len()
            >= 3
    );

    // Signing out (elsewhere) ends the socket within the session check's interval.
    let r = http
        .delete(format!("{}/ops/session", sys.api_url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (code, reason) = close_code(&mut ws, 15).await;
    assert_eq!(code, 4401, "{reason}");
    assert!(reason.contains("session"), "{reason}");
}
