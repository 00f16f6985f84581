//! Bad input gets a clear error code and changes nothing.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::json;

async fn count(sys: &TestSystem, table: &str) -> i64 {
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let mut conn = sys.db.connect().await.unwrap();
    let n: N = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
        .get_result(&mut conn)
        .await
        .unwrap();
    n.n
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_refuses_bad_input_and_writes_nothing() {
    // One identity sends a score of enrollments here, over the default sensitive rate limit
    // (10 a minute, tests/tests/rate_limits.rs): this test is about the validation behind it.
    let sys = TestSystem::start_with(&[("RATE_LIMIT_SENSITIVE", "100")])
        .await
        .unwrap();
    let t = sys.token("x-sub", Some("x@contoso.com"));
    let mut cases = Vec::new();
    let mut input = enroll_input("Contoso", "not-an-email");
    cases.push(("invalid email", input.clone(), "primaryContact.email"));
    input = enroll_input("Contoso", "info@contoso.com");
    cases.push(("role address", input.clone(), "primaryContact.email"));
    input = enroll_input("Contoso", "ada@gmail.com");
    cases.push(("free mail", input.clone(), "primaryContact.email"));
    input = enroll_input("Contoso", "ada@contoso.com");
    input["input"]["acceptPartnerAgreement"] = json!(false);
    cases.push((
        "agreement not accepted",
        input.clone(),
        "acceptPartnerAgreement",
    ));
    input = enroll_input("Contoso", "ada@contoso.com");
    input["input"]["agreementVersion"] = json!("1999-01");
    cases.push(("old agreement", input.clone(), "agreementVersion"));
    input = enroll_input("Contoso", "ada@contoso.com");
    input["input"]["address"]["country"] = json!("XX");
    cases.push(("bad country", input.clone(), "address.country"));
    input = enroll_input("Contoso", "ada@contoso.com");
    input["input"]["primaryContact"]["phone"] = json!("12345");
    cases.push(("bad phone", input.clone(), "primaryContact.phone"));
    input = enroll_input("   ", "ada@contoso.com");
    cases.push(("blank name", input.clone(), "legalName"));
    for (what, vars, field) in cases {
        let resp = sys.gql(Some(&t), ENROLL, vars).await;
        assert_eq!(error_code(&resp), Some("BAD_USER_INPUT"), "{what}: {resp}");
        assert_eq!(resp["errors"][0]["extensions"]["field"], field, "{what}");
    }
    // A missing required field is a GraphQL validation error (variable coercion), coded as
    // other servers code it.
    let resp = sys
        .gql(Some(&t), ENROLL, json!({"input": {"legalName": "x"}}))
        .await;
    assert_eq!(
        error_code(&resp),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{resp}"
    );
    // Without a token.
    let resp = sys
        .gql(None, ENROLL, enroll_input("Contoso", "ada@contoso.com"))
        .await;
    assert_eq!(error_code(&resp), Some("UNAUTHENTICATED"));

    for table in [
        "partners",
        "users",
        "emails",
        "outbox",
        "audit_log",
        "email_verifications",
    ] {
        assert_eq!(count(&sys, table).await, 0, "{table} must be untouched");
    }

    // Enrolling twice is a conflict, and leaves one partner.
    enroll(&sys, "x-sub", "x@contoso.com", "Contoso").await;
    let resp = sys
        .gql(
            Some(&t),
            ENROLL,
            enroll_input("Contoso again", "x@contoso.com"),
        )
        .await;
    assert_eq!(error_code(&resp), Some("CONFLICT"));
    assert_eq!(count(&sys, "partners").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_layer_refuses_what_it_must() {
    let sys = TestSystem::start().await.unwrap();
    let url = format!("{}/graphql", sys.api_url);
    let http = sys.http();

    // Malformed JSON.
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), Some("BAD_USER_INPUT"));

    // CSRF: "simple" content types are refused.
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let r = http
            .post(&url)
            .header("content-type", ct)
            .body(r#"{"query":"{ me { identity { subject } } }"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ct}");
    }
    // Mutations over GET: 405.
    let r = http
        .get(&url)
        .query(&[("query", "mutation { resendVerificationEmail { sentAt } }")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    // Queries over GET work; GraphiQL is served without a query.
    let r = http
        .get(&url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http.get(&url).send().await.unwrap();
    assert!(r.text().await.unwrap().to_lowercase().contains("graphiql"));

    // Oversized body.
    let big = format!(
        r#"{{"query":"{{ __typename }}","variables":{{"x":"{}"}}}}"#,
        "a".repeat(100 * 1024)
    );
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // Too deep.
    let deep = format!(
        "{{ {}__typename{} }}",
        "me { partner { ".repeat(8),
        " } }".repeat(8)
    );
    let resp = sys.gql(Some(&sys.token("s", None)), &deep, json!({})).await;
    assert_eq!(
        error_code(&resp),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{resp}"
    );

    // Batches beyond the limit.
    let batch: Vec<_> = (0..11)
        .map(|_| json!({"query": "{ __typename }"}))
        .collect();
    let r = http.post(&url).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let batch: Vec<_> = (0..2).map(|_| json!({"query": "{ __typename }"})).collect();
    let r = http.post(&url).json(&batch).send().await.unwrap();
    assert_eq!(r.status(), 200);

    // Bad tokens: garbage, wrong secret, alg none.
    for bad in ["garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."] {
        let r = http
            .post(&url)
            .bearer_auth(bad)
            .json(&json!({"query": "{ __typename }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    }
    // Malformed ids are input errors.
    let op = operator_token(&sys).await;
    let resp = sys
        .gql(Some(&op), "{ partner(id: \"nope\") { id } }", json!({}))
        .await;
    assert_eq!(error_code(&resp), Some("BAD_USER_INPUT"));

    // Health, readiness, metrics.
    assert_eq!(
        http.get(format!("{}/healthz", sys.api_url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = http
        .get(format!("{}/readyz", sys.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(
        ready.json::<serde_json::Value>().await.unwrap(),
        json!({"postgres": "ok", "redis": "ok", "jwks": "ok"})
    );
    let metrics = http
        .get(&sys.metrics_url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("pbg_graphql_requests_total"), "{metrics}");
    assert!(metrics.contains("pbg_outbox_lag_seconds"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_allows_only_listed_origins() {
    let sys = TestSystem::start_with(&[("CORS_ALLOWED_ORIGINS", "https://portal.example")])
        .await
        .unwrap();
    let url = format!("{}/graphql", sys.api_url);
    let preflight = |origin: &'static str| {
        sys.http()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://portal.example").await.unwrap();
    assert_eq!(
        ok.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("https://portal.example")
    );
    let evil = preflight("https://evil.example").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    // A client may send its own request id and read the one answered.
    let r = sys
        .http()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://portal.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "x-request-id")
        .send()
        .await
        .unwrap();
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("x-request-id"), "{allowed}");
    let r = sys
        .http()
        .post(&url)
        .header("origin", "https://portal.example")
        .header("x-request-id", "req-from-the-spa-1")
        .json(&json!({"query": "{ __typename }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "req-from-the-spa-1");
    let exposed = r.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}
