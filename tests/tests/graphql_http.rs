//! GraphQL over HTTP as the GraphQL Foundation's specification says (issue 23, item 1): with
//! `Accept: application/graphql-response+json`, a request error (the document does not parse,
//! does not validate, or its variables do not coerce) is 400 with no `data` entry, in that
//! content type; with `application/json` it stays 200 (the legacy type's rule); a request with
//! no query is 400; a response whose every error is UNAUTHENTICATED is 401 whatever the type.

mod common;

use common::*;
use gateway_testkit::system::error_code;
use gateway_testkit::TestSystem;
use serde_json::{json, Value};

const MODERN: &str = "application/graphql-response+json";

async fn post(
    sys: &TestSystem,
    accept: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, String, Value) {
    let mut req = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .header("accept", accept)
        .json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    (status, ct, r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn request_errors_are_400_without_data_for_graphql_response_json_and_auth_is_401() {
    let sys = TestSystem::start().await.unwrap();
    let token = sys.token("gqlhttp", Some("g@gqlhttp-corp.example"));

    // Validation: an unknown field.
    let (status, ct, body) = post(
        &sys,
        MODERN,
        Some(&token),
        json!({"query": "{ unheardOfField }"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(ct.starts_with(MODERN), "{ct}");
    assert!(body.get("data").is_none(), "no data entry: {body}");
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["message"],
        "Unknown field \"unheardOfField\" on type \"Query\"."
    );
    // Parse: the parser's message, not its dump, with the location.
    let (status, _, body) = post(&sys, MODERN, Some(&token), json!({"query": "{ me "})).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("data").is_none());
    assert_eq!(error_code(&body), Some("GRAPHQL_PARSE_FAILED"), "{body}");
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("Syntax Error: "), "{message}");
    assert!(!message.contains('\n'), "{message}");
    assert_eq!(body["errors"][0]["locations"][0]["line"], 1, "{body}");
    // Variables that do not coerce.
    let (status, _, body) = post(
        &sys,
        MODERN,
        Some(&token),
        json!({"query": "query($id: ID!) { subscription(id: $id) { id } }", "variables": {"id": {"x": 1}}}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.get("data").is_none());
    assert_eq!(
        error_code(&body),
        Some("GRAPHQL_VALIDATION_FAILED"),
        "{body}"
    );

    // The legacy type: the same request error is 200 with data null.
    let (status, ct, body) = post(
        &sys,
        "application/json",
        Some(&token),
        json!({"query": "{ unheardOfField }"}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("application/json"), "{ct}");
    assert!(
        body["data"].is_null() && body.get("data").is_some(),
        "{body}"
    );
    assert_eq!(error_code(&body), Some("GRAPHQL_VALIDATION_FAILED"));

    // No query at all: 400 and a plain message, for either type.
    for accept in [MODERN, "application/json"] {
        let (status, _, body) = post(&sys, accept, Some(&token), json!({"variables": {}})).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["message"],
            "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension."
        );
        assert_eq!(error_code(&body), Some("BAD_REQUEST"));
    }

    // An error while running (not a request error): 200, data present (null).
    let (status, _, body) = post(
        &sys,
        MODERN,
        Some(&operator_token(&sys).await),
        json!({"query": "query($id: ID!) { subscription(id: $id) { id } }",
               "variables": {"id": uuid::Uuid::now_v7().to_string()}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("data").is_some(), "{body}");
    assert_eq!(error_code(&body), Some("NOT_FOUND"), "{body}");

    // Authentication: no token where one is needed, or a bad one: 401 either way.
    let r = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .header("accept", MODERN)
        .json(&json!({"query": "{ me { identity { subject } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"), "{body}");
    let (status, _, body) = post(
        &sys,
        "application/json",
        Some("garbage"),
        json!({"query": "{ __typename }"}),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&body), Some("UNAUTHENTICATED"));
    // A query anyone may send still answers 200 without a token.
    let (status, _, body) = post(&sys, MODERN, None, json!({"query": "{ __typename }"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["__typename"], "Query");
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// Apollo's automatic persisted queries, with the protocol's own messages: a hash alone is
/// unknown at first, the client registers it with the query, then any replica answers the hash
/// alone, over GET too.
#[tokio::test(flavor = "multi_thread")]
async fn automatic_persisted_queries_follow_apollos_protocol_on_every_replica() {
    let sys = TestSystem::start().await.unwrap();
    let query = "query Kind { __typename }";
    let hash = sha256_hex(query);
    let ext = json!({"persistedQuery": {"version": 1, "sha256Hash": hash}});

    let (status, _, body) = post(&sys, "application/json", None, json!({"extensions": ext})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"errors": [{"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}]})
    );
    let (status, _, body) = post(
        &sys,
        "application/json",
        None,
        json!({"query": query, "extensions": ext}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["__typename"], "Query");

    // Another replica knows it (the cache is in Redis), hash only, over GET.
    let (_replica, url) = sys.spawn_api().await.unwrap();
    let r = sys
        .http()
        .get(format!("{url}/graphql"))
        .query(&[
            ("extensions", ext.to_string()),
            ("operationName", "Kind".into()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["__typename"], "Query", "{body}");
    let (status, _, body) = post(&sys, "application/json", None, json!({"extensions": ext})).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["__typename"], "Query", "{body}");

    // A hash that is not the query's, and a version we do not speak.
    let (status, _, body) = post(
        &sys,
        "application/json",
        None,
        json!({"query": "{ __typename }", "extensions": ext}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        "provided sha does not match query"
    );
    let (status, _, body) = post(
        &sys,
        "application/json",
        None,
        json!({"extensions": {"persistedQuery": {"version": 2, "sha256Hash": hash}}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["errors"][0]["message"],
        "Unsupported persisted query version"
    );
}

/// With GRAPHQL_TRUSTED_DOCUMENTS only the manifest's documents run, by hash or by text.
#[tokio::test(flavor = "multi_thread")]
async fn trusted_documents_run_only_what_the_manifest_lists() {
    let listed = "query Kind { __typename }";
    let hash = sha256_hex(listed);
    let manifest = std::env::temp_dir().join(format!("pbg-trusted-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(&manifest, json!({ hash.clone(): listed }).to_string()).unwrap();
    let sys = TestSystem::start_with(&[("GRAPHQL_TRUSTED_DOCUMENTS", manifest.to_str().unwrap())])
        .await
        .unwrap();
    let by_hash = json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash}}});
    let (status, _, body) = post(&sys, "application/json", None, by_hash).await;
    assert_eq!(
        (status, body["data"]["__typename"].clone()),
        (200, json!("Query")),
        "{body}"
    );
    let (status, _, body) = post(&sys, "application/json", None, json!({"query": listed})).await;
    assert_eq!(
        (status, body["data"]["__typename"].clone()),
        (200, json!("Query")),
        "{body}"
    );
    let (status, _, body) = post(
        &sys,
        "application/json",
        None,
        json!({"query": "{ __typename }"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), Some("PERSISTED_QUERY_NOT_IN_LIST"));
    let other = sha256_hex("{ me { identity { subject } } }");
    let (status, _, body) = post(
        &sys,
        "application/json",
        None,
        json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": other}}}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), Some("PERSISTED_QUERY_NOT_IN_LIST"));
    let _ = std::fs::remove_file(&manifest);
}
