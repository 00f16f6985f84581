//! The typed TypeScript client (`clients/typescript`, GraphQL Code Generator from
//! `schema.graphql`) runs the portal's journey against the system: enrollment → verification →
//! vetting → purchase → benefits → activation. The api runs in trusted-documents mode with the
//! client's generated `persisted-documents.json` as its manifest, and the client sends hashes
//! only: every document it uses is in the manifest, and nothing else runs.
//!
//! `scripts/test` installs Node.js when missing, runs `npm ci`, checks the generated code is
//! current, type-checks (`tsc --noEmit`) and builds `clients/typescript/dist` before this test.

use std::path::PathBuf;

use gateway_testkit::TestSystem;
use serde_json::{json, Value};

fn client_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("clients")
        .join("typescript")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_typed_client_runs_the_portal_journey_with_trusted_documents_only() {
    let dir = client_dir();
    let journey = dir.join("dist").join("journey.js");
    assert!(
        journey.exists(),
        "{} is missing: scripts/test builds the typed client (npm ci, tsc) before the tests",
        journey.display()
    );
    let manifest = dir.join("src").join("gql").join("persisted-documents.json");
    let mail_dir = std::env::temp_dir().join(format!("pbg-ts-mail-{}", uuid::Uuid::new_v4()));
    let sys = TestSystem::start_with(&[
        ("GRAPHQL_TRUSTED_DOCUMENTS", manifest.to_str().unwrap()),
        ("EMAIL_TRANSPORT", "file"),
        ("EMAIL_FILE_DIR", mail_dir.to_str().unwrap()),
        ("TECHNICAL_ACTIVATION_DELAY_SECS", "172800"),
    ])
    .await
    .unwrap();
    let operator = sys
        .mint_token(&["--sub", "ts-ops", "--operator"])
        .await
        .unwrap();
    let user = sys
        .mint_token(&["--sub", "ts-grace", "--email", "grace@typed-client.example"])
        .await
        .unwrap();

    let out = tokio::process::Command::new("node")
        .arg(&journey)
        .current_dir(&dir)
        .env("PBG_API_URL", &sys.api_url)
        .env("PBG_USER_TOKEN", &user)
        .env("PBG_OPERATOR_TOKEN", &operator)
        .env("PBG_CONTACT_EMAIL", "grace@typed-client.example")
        .output()
        .await
        .expect("node (scripts/test installs Node.js)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the journey failed ({}):\n{stdout}\n{stderr}\napi logs:\n{}",
        out.status,
        sys.logs()
    );
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("the journey's last line is its JSON summary ({e}): {stdout}"));
    assert_eq!(
        seen["agreementVersion"],
        gateway_domain::enrollment::enroll::PARTNER_AGREEMENT_VERSION
    );
    assert_eq!(seen["support"], "ACTIVE", "{seen}");
    assert!(
        seen["accessId"].as_str().unwrap().starts_with("AID"),
        "{seen}"
    );
    assert!(seen["order"].as_str().unwrap().starts_with("ORD"), "{seen}");

    // What the journey did is in Postgres: one paid order, one active subscription.
    let mut conn = sys.db.connect().await.unwrap();
    use diesel_async::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    let paid: N = diesel::sql_query(
        "SELECT count(*) AS n FROM orders o JOIN subscriptions s ON s.partner_id = o.partner_id
         WHERE o.status = 'PAID' AND s.status = 'ACTIVE' AND o.partner_id = $1::uuid",
    )
    .bind::<diesel::sql_types::Text, _>(seen["partnerId"].as_str().unwrap())
    .get_result(&mut conn)
    .await
    .unwrap();
    assert_eq!(paid.n, 1);

    // Trusted documents only: a document the client did not generate is refused.
    let r = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(&operator)
        .json(&json!({"query": "{ jobQueues { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "PERSISTED_QUERY_NOT_IN_LIST",
        "{body}"
    );
    std::fs::remove_dir_all(&mail_dir).ok();
}
