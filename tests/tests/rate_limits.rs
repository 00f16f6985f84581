//! Rate limits (issue 22, item 5): per caller, per client address, and a tight bucket for the
//! mutations abuse aims at; counted in Redis so every api replica shares them; requests pass
//! when Redis cannot count.

mod common;

use common::*;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

/// POSTs to `base` and returns (status, Retry-After, body).
async fn post(
    sys: &TestSystem,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> (u16, Option<u64>, Value) {
    let mut req = sys
        .http()
        .post(format!("{base}/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (status, retry, resp.json().await.unwrap())
}

fn assert_limited(status: u16, retry: Option<u64>, body: &Value) {
    assert_eq!(status, 429, "{body}");
    let retry = retry.expect("Retry-After on a 429");
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["extensions"]["retryAfter"].as_u64(),
        Some(retry),
        "{body}"
    );
    assert!(body.get("data").is_none(), "{body}");
}

#[tokio::test]
async fn sensitive_mutations_are_limited_per_caller_across_replicas_and_nothing_is_written() {
    // Product defaults, but for the sensitive bucket made small enough to reach quickly.
    let sys = TestSystem::start_with(&[("AUTO_AUTHORIZE", "true"), ("RATE_LIMIT_SENSITIVE", "5")])
        .await
        .unwrap();
    let (_, ga) = authorized_partner(&sys, "limits").await;
    let (_, other) = authorized_partner(&sys, "otherlim").await;
    let (_second_api, second) = sys.spawn_api().await.unwrap();

    // enrollPartner and verifyPrimaryContactEmail counted two of the caller's five; three more
    // (two here, one on the other replica) pass...
    let add =
        |i: u32| json!({"email": format!("dev{i}@limits-corp.example"), "roles": ["ADMIN_AGENT"]});
    for (base, i) in [(&sys.api_url, 1), (&second, 2)] {
        let (status, _, body) = post(&sys, base, Some(&ga), ADD_USER, add(i)).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
    }
    let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
    assert!(!card.is_empty());

    // ...the sixth is refused on either replica, before it runs: no user is added.
    for base in [&sys.api_url, &second] {
        let (status, retry, body) = post(&sys, base, Some(&ga), ADD_USER, add(9)).await;
        assert_limited(status, retry, &body);
    }
    assert_eq!(
        count(
            &sys,
            "SELECT count(*) AS n FROM users WHERE email = 'dev9@limits-corp.example'"
        )
        .await,
        0
    );
    // The caller's other requests still pass.
    let (status, _, body) = post(&sys, &sys.api_url, Some(&ga), ME, json!({})).await;
    assert_eq!(status, 200, "{body}");
    // Another caller has a bucket of their own (two used by enrolling); two aliases of a
    // sensitive field count twice.
    let (status, _, body) = post(
        &sys,
        &sys.api_url,
        Some(&other),
        ADD_USER,
        json!({"email": "dev1@otherlim-corp.example", "roles": ["ADMIN_AGENT"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let twice = r#"mutation($e1: String!, $e2: String!) {
      a: addUser(email: $e1, roles: [ADMIN_AGENT]) { id }
      b: addUser(email: $e2, roles: [ADMIN_AGENT]) { id }
    }"#;
    let (status, _, body) = post(
        &sys,
        &sys.api_url,
        Some(&other),
        twice,
        json!({"e1": "dev2@otherlim-corp.example", "e2": "dev3@otherlim-corp.example"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, retry, body) = post(
        &sys,
        &sys.api_url,
        Some(&other),
        ADD_USER,
        json!({"email": "dev4@otherlim-corp.example", "roles": ["ADMIN_AGENT"]}),
    )
    .await;
    assert_limited(status, retry, &body);

    let metrics = sys
        .http()
        .get(&sys.metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pbg_rate_limited_requests_total{bucket=\"sensitive\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_address_and_signed_in_callers_per_caller() {
    let sys = TestSystem::start_with(&[("RATE_LIMIT_ADDRESS", "5"), ("RATE_LIMIT_CALLER", "8")])
        .await
        .unwrap();
    let token = sys.token("limited-caller", Some("x@limited.example"));
    for _ in 0..5 {
        let (status, _, body) = post(&sys, &sys.api_url, None, "{ __typename }", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = post(&sys, &sys.api_url, None, "{ __typename }", json!({})).await;
    assert_limited(status, retry, &body);

    // A signed-in caller from the same address counts in a bucket of their own.
    for _ in 0..8 {
        let (status, _, body) = post(&sys, &sys.api_url, Some(&token), ME, json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, retry, body) = post(&sys, &sys.api_url, Some(&token), ME, json!({})).await;
    assert_limited(status, retry, &body);
}

#[tokio::test]
async fn with_redis_unreachable_requests_pass_and_a_metric_counts_them() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{closed}");
    let sys = TestSystem::start_with(&[
        ("REDIS_URL", url.as_str()),
        ("RATE_LIMIT_SENSITIVE", "1"),
        ("RATE_LIMIT_ADDRESS", "1"),
    ])
    .await
    .unwrap();
    for _ in 0..3 {
        let (status, _, body) = post(&sys, &sys.api_url, None, "{ __typename }", json!({})).await;
        assert_eq!(status, 200, "{body}");
    }
    let metrics = sys
        .http()
        .get(&sys.metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("pbg_rate_limit_store_unavailable_total "))
        .unwrap_or_else(|| panic!("no pbg_rate_limit_store_unavailable_total: {metrics}"));
    let n: u64 = line.split(' ').nth(1).unwrap().parse().unwrap();
    assert_eq!(n, 3, "{line}");
}
