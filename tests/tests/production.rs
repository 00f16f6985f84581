//! Production posture: production is the default and fails closed (issue 22), and it starts
//! with a live payment gateway's settings (issue 21).

mod common;

use common::*;

#[tokio::test]
async fn production_is_the_default_fails_closed_and_starts_with_stripe_settings() {
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let jwks = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../domain/tests/fixtures/test-jwks.json")
        .display()
        .to_string();
    let redis = gateway_testkit::redis_url();
    let base: Vec<(&str, String)> = vec![
        ("APP_ENV", "production".into()),
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", redis),
        ("API_BIND", format!("127.0.0.1:{port}")),
        ("PORTAL_BASE_URL", "https://partners.example".into()),
        ("JWT_JWKS_FILE", jwks),
        ("EMAIL_TRANSPORT", "smtp".into()),
        ("SMTP_URL", "smtp://127.0.0.1:2525?tls=required".into()),
        ("JWT_ISSUER", "https://login.example/".into()),
        ("JWT_AUDIENCE", "api://partner-benefits".into()),
        (
            "KEY_ENCRYPTION_KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=".into(),
        ),
        ("PAYMENT_GATEWAY", "stripe".into()),
        ("RUST_LOG", "info".into()),
    ];
    let api = gateway_testkit::system::bin_path("gateway-api");
    let run = |command: &str, env: Vec<(&str, String)>| {
        let mut c = tokio::process::Command::new(&api);
        c.arg(command)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env)
            .kill_on_drop(true);
        c
    };
    let command = |extra: &[(&str, &str)]| {
        let mut env = base.clone();
        env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
        run("serve", env)
    };
    let output = |mut c: tokio::process::Command| async move {
        tokio::time::timeout(std::time::Duration::from_secs(60), c.output())
            .await
            .expect("the api exits")
            .unwrap()
    };

    // APP_ENV unset is production: no dev secret, no dev issuer, no sandbox; every missing
    // setting named at once.
    let out = output(run(
        "serve",
        base.iter()
            .filter(|(k, _)| ["DATABASE_URL", "REDIS_URL", "API_BIND"].contains(k))
            .cloned()
            .collect(),
    ))
    .await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "JWT_ISSUER is required",
        "JWT_AUDIENCE is required",
        "production needs JWT_JWKS_FILE or JWT_JWKS_URL",
        "SMTP_URL is required",
        "KEY_ENCRYPTION_KEYS (or KEY_ENCRYPTION_KEY) is required",
        "PORTAL_BASE_URL must be the portal's https:// address",
        "PAYMENT_GATEWAY=sandbox",
    ] {
        assert!(stderr.contains(needle), "`{needle}` not in: {stderr}");
    }

    // `seed` makes the demo operator only in development.
    let mut prod_seed = base.clone();
    prod_seed.push(("STRIPE_SECRET_KEY", "sk_live_pbg_not_a_real_key".into()));
    prod_seed.push((
        "STRIPE_WEBHOOK_SECRET",
        "whsec_pbg_not_a_real_secret".into(),
    ));
    let out = output(run("seed", prod_seed)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let operators = "SELECT count(*) AS n FROM operators WHERE subject = 'demo-operator'";
    assert_eq!(
        count_in(&db, operators).await,
        0,
        "no demo operator in production"
    );
    let dev_seed = vec![
        ("APP_ENV", "development".to_owned()),
        ("DATABASE_URL", db.url.clone()),
        ("REDIS_URL", gateway_testkit::redis_url()),
    ];
    let out = output(run("seed", dev_seed)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count_in(&db, operators).await,
        1,
        "the demo operator in development"
    );
    // Without Stripe's settings: refused, every missing one named at once.
    let out = output(command(&[])).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("STRIPE_SECRET_KEY is required"), "{stderr}");
    assert!(
        stderr.contains("STRIPE_WEBHOOK_SECRET is required"),
        "{stderr}"
    );
    // With them (and nothing insecure): it starts.
    let mut child = command(&[
        ("STRIPE_SECRET_KEY", "sk_live_pbg_not_a_real_key"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_pbg_not_a_real_secret"),
    ])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the production api exited: {status}");
        }
        let up = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success());
        if up {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the production api did not answer within 30 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    child.kill().await.unwrap();
    db.remove().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_starts_while_the_identity_provider_is_down_and_is_ready_once_its_keys_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // An identity provider's JWKS endpoint, down at first.
    let up = Arc::new(AtomicBool::new(false));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let jwks = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../domain/tests/fixtures/test-jwks.json"),
    )
    .unwrap();
    let serving = up.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = sock.read(&mut buf).await;
            let resp = if serving.load(Ordering::SeqCst) {
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{jwks}",
                    jwks.len()
                )
            } else {
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_owned()
            };
            let _ = sock.write_all(resp.as_bytes()).await;
        }
    });
    let sys = gateway_testkit::TestSystem::start_with(&[("JWT_JWKS_URL", url.as_str())])
        .await
        .expect("the api starts while the identity provider is down");
    let ready = || async {
        let r = sys
            .http()
            .get(format!("{}/readyz", sys.api_url))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    let (status, body) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["jwks"], "loading");
    assert_eq!(body["postgres"], "ok");
    up.store(true, Ordering::SeqCst);
    eventually(30, "ready once the keys loaded", || async {
        let (status, body) = ready().await;
        (status == 200 && body["jwks"] == "ok").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn graphql_js_introspection_query_works_in_development_and_is_off_when_disabled() {
    let query = include_str!("../fixtures/graphql-js-introspection.graphql");
    let sys = gateway_testkit::TestSystem::start().await.unwrap();
    let r = sys.gql(None, query, serde_json::json!({})).await;
    assert!(r["errors"].is_null(), "{:#}", r["errors"]);
    let types = r["data"]["__schema"]["types"].as_array().unwrap();
    assert!(
        types.iter().any(|t| t["name"] == "Subscription"),
        "the whole schema came back"
    );
    // Introspection may nest deeper than other documents, but not without end.
    let mut deep = String::from("{ __schema { types { name ");
    for _ in 0..10 {
        deep.push_str("fields { type { ");
    }
    deep.push_str("name ");
    deep.push_str(&"} } ".repeat(10));
    deep.push_str("} } }");
    let r = sys.gql(None, &deep, serde_json::json!({})).await;
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{r:#}"
    );
    drop(sys);

    // Switched off (the production default): nothing of the schema is told.
    let sys = gateway_testkit::TestSystem::start_with(&[("GRAPHQL_INTROSPECTION", "false")])
        .await
        .unwrap();
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .json(&serde_json::json!({"query": query}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let r: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        r["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
        "{r:#}"
    );
    assert!(r["data"].is_null(), "{r:#}");
    // Nor does a misspelt field get a "Did you mean" hint naming a real one.
    let r = sys
        .gql(None, "{ nod(id: 1) { id } }", serde_json::json!({}))
        .await;
    assert_eq!(
        r["errors"][0]["message"], "Unknown field \"nod\" on type \"Query\".",
        "{r:#}"
    );
    // __typename is not introspection of the schema: still answered.
    let r = sys.gql(None, "{ __typename }", serde_json::json!({})).await;
    assert_eq!(r["data"]["__typename"], "Query", "{r:#}");
}

#[tokio::test]
async fn every_response_carries_security_headers_and_the_ops_page_a_strict_policy() {
    let sys = gateway_testkit::TestSystem::start().await.unwrap();
    for path in [
        "/healthz",
        "/graphql?query=%7B__typename%7D",
        "/ops",
        "/graphql",
    ] {
        let r = sys
            .http()
            .get(format!("{}{path}", sys.api_url))
            .send()
            .await
            .unwrap();
        let h = r.headers().clone();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert!(
            h.get("strict-transport-security").is_none(),
            "HSTS only in production"
        );
        if path == "/ops" {
            // Only the console's own files run: no inline script or style at all.
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("style-src 'self';"), "{csp}");
            let html = r.text().await.unwrap();
            assert!(!html.contains("<script>"), "{html}");
            assert!(!html.contains("<style"), "{html}");
            continue;
        }
        if path == "/healthz" {
            assert!(csp.starts_with("default-src 'none'"), "{csp}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_starting_together_migrate_once_and_the_worker_answers_health_checks() {
    let db = gateway_testkit::TestDb::create().await.unwrap();
    let fresh = format!(
        "pbg_migrate_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let (server, _) = db.url.rsplit_once('/').unwrap();
    let url = format!("{server}/{fresh}");
    let api = gateway_testkit::system::bin_path("gateway-api");
    // Four api replicas start at once against a database that does not exist yet.
    let runs = (0..4).map(|_| {
        tokio::process::Command::new(&api)
            .arg("migrate")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APP_ENV", "development")
            .env("DATABASE_URL", &url)
            .env("REDIS_URL", gateway_testkit::redis_url())
            .output()
    });
    for out in futures::future::join_all(runs).await {
        let out = out.unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let migrations =
        std::fs::read_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().is_dir())
            .count() as i64;
    let applied = {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        #[derive(diesel::QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = diesel_async::AsyncPgConnection::establish(&url)
            .await
            .unwrap();
        let rows: Vec<N> =
            diesel::sql_query("SELECT count(*) AS n FROM __diesel_schema_migrations")
                .load(&mut conn)
                .await
                .unwrap();
        rows[0].n
    };
    assert_eq!(applied, migrations, "each migration applied once");
    {
        use diesel_async::{AsyncConnection, RunQueryDsl};
        let mut admin = diesel_async::AsyncPgConnection::establish(&db.url)
            .await
            .unwrap();
        diesel::sql_query(format!("DROP DATABASE {fresh} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .unwrap();
    }

    // The worker answers /healthz and /readyz beside its metrics.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let sys = gateway_testkit::TestSystem::start_with(&[("WORKER_METRICS_BIND", bind.as_str())])
        .await
        .unwrap();
    eventually(30, "the worker's readiness", || async {
        let r = reqwest::get(format!("http://{bind}/readyz")).await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await;
    let health = reqwest::get(format!("http://{bind}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    drop(sys);
    db.remove().await.unwrap();
}

#[tokio::test]
async fn an_operation_with_too_many_root_fields_or_aliases_is_refused_before_it_runs() {
    let sys = gateway_testkit::TestSystem::start().await.unwrap();
    let fields = |n: usize, field: &str| {
        (0..n)
            .map(|i| format!("a{i}: {field}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let post = |query: String| {
        let sys = &sys;
        async move {
            let r = sys
                .http()
                .post(format!("{}/graphql", sys.api_url))
                .json(&serde_json::json!({"query": query}))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, r) = post(format!("{{ {} }}", fields(20, "__typename"))).await;
    assert_eq!(status, 200, "twenty root fields run: {r:#}");
    assert_eq!(r["data"]["a19"], "Query");
    let (status, r) = post(format!("{{ {} }}", fields(21, "__typename"))).await;
    assert_eq!(status, 400, "{r:#}");
    assert_eq!(
        r["errors"][0]["extensions"]["code"],
        "GRAPHQL_VALIDATION_FAILED"
    );
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 20 root fields; this one selects 21"),
        "{r:#}"
    );
    // Aliases deeper down, and through a fragment spread twice, count too.
    let query = format!(
        "{{ offers {{ ...F }} again: offers {{ ...F }} }} fragment F on OfferListing {{ {} }}",
        fields(25, "purchasable")
    );
    let (status, r) = post(query).await;
    assert_eq!(status, 400, "{r:#}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 50 aliased fields; this one holds 51"),
        "{r:#}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_request_and_job_context_and_no_secret_of_a_whole_run() {
    let sys = gateway_testkit::TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "debug"),
    ])
    .await
    .unwrap();
    assert!(
        std::env::var("TEST_SHOW_LOGS").is_err(),
        "this test reads the captured logs: run it without TEST_SHOW_LOGS"
    );
    // A whole journey: enroll, verify by the emailed link, save a card, buy.
    let email = "logs@logs-corp.example";
    let (_, token) = enroll(&sys, "logs", email, "Logs Corp").await;
    let verification = verification_token(&sys, email, 1).await;
    sys.gql_ok(
        Some(&token),
        VERIFY,
        serde_json::json!({"token": verification}),
    )
    .await;
    let card = add_card(&sys, &token, SUCCEEDING_CARD).await;
    buy(&sys, &token, "ACTION_PACK", &card).await;
    sys.wait_idle().await;

    let logs = sys.logs();
    let lines: Vec<serde_json::Value> = logs
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{} lines", lines.len());
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "request" && l["span"]["request_id"].is_string()),
        "request lines carry their request id"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["name"] == "job" && l["span"]["queue"] == "email"),
        "job lines carry their queue"
    );
    for secret in [
        token.as_str(),
        verification.as_str(),
        "4242424242424242",
        "4242 4242 4242 4242",
        gateway_domain::config::DEV_JWT_SECRET,
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs: {secret}");
    }
}

#[tokio::test]
async fn invitees_are_checked_as_work_emails_like_the_primary_contact() {
    let sys = gateway_testkit::TestSystem::start().await.unwrap();
    let (_, ga) = enroll(&sys, "invite", "invite@invite-corp.example", "Invite Corp").await;
    for (email, why) in [
        ("someone@gmail.com", "personal email provider"),
        ("admin@invite-corp.example", "role address"),
    ] {
        let r = sys
            .gql(
                Some(&ga),
                ADD_USER,
                serde_json::json!({"email": email, "roles": []}),
            )
            .await;
        assert_eq!(
            r["errors"][0]["extensions"]["code"], "BAD_USER_INPUT",
            "{r:#}"
        );
        assert_eq!(r["errors"][0]["extensions"]["field"], "email");
        assert!(
            r["errors"][0]["message"].as_str().unwrap().contains(why),
            "{r:#}"
        );
    }
    let ok = sys
        .gql(
            Some(&ga),
            ADD_USER,
            serde_json::json!({"email": "grace@invite-corp.example", "roles": []}),
        )
        .await;
    assert!(ok["errors"].is_null(), "{ok:#}");
}

#[tokio::test(flavor = "multi_thread")]
async fn random_operation_names_add_no_metric_series() {
    use futures::StreamExt;
    let sys = gateway_testkit::TestSystem::start().await.unwrap();
    let series = || async {
        let text = sys
            .http()
            .get(&sys.metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("pbg_graphql_requests_total{"))
            .map(str::to_owned)
            .map(|l| l.rsplit_once(' ').unwrap().0.to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let post = |name: String, query: &'static str| {
        let sys = &sys;
        async move {
            sys.http()
                .post(format!("{}/graphql", sys.api_url))
                .json(&serde_json::json!({"query": query, "operationName": name}))
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // A named operation that runs is known by its name; a name that fails is `other`.
    post("Known".into(), "query Known { __typename }").await;
    post("Unknown1".into(), "{ __typename }").await;
    let before = series().await;
    assert!(
        before.iter().any(|s| s.contains("operation=\"Known\"")),
        "{before:?}"
    );
    assert!(
        before.iter().any(|s| s.contains("operation=\"other\"")),
        "{before:?}"
    );
    // Ten thousand requests naming random operations the document does not have.
    futures::stream::iter(0..10_000)
        .map(|i| {
            post(
                format!("Random{i}x{}", uuid::Uuid::new_v4().simple()),
                "{ __typename }",
            )
        })
        .buffer_unordered(32)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(series().await, before, "no series were added");
}

#[tokio::test(flavor = "multi_thread")]
async fn at_capacity_the_api_sheds_load_with_503_and_retry_after_and_health_checks_still_answer() {
    // Room for two GraphQL requests; two purchases hold it while the gateway stalls.
    let sys = gateway_testkit::TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("HTTP_MAX_CONCURRENT", "2"),
        ("FAULT_GATEWAY_DELAY_MS", "4000"),
    ])
    .await
    .unwrap();
    let mut buyers = Vec::new();
    for tag in ["shed1", "shed2"] {
        let (_, ga) = authorized_partner(&sys, tag).await;
        let card = add_card(&sys, &ga, SUCCEEDING_CARD).await;
        buyers.push((ga, card));
    }
    let purchases = futures::future::join_all(buyers.iter().map(|(ga, card)| {
        sys.gql_ok(
            Some(ga),
            PURCHASE,
            purchase_input("ACTION_PACK", "shed-1", card),
        )
    }));
    let probe = async {
        eventually(20, "both purchases at the gateway", || async {
            let n = count(
                &sys,
                "SELECT count(*) AS n FROM sandbox_calls WHERE finished_at IS NULL",
            )
            .await;
            (n == 2).then_some(())
        })
        .await;
        let shed = sys
            .http()
            .post(format!("{}/graphql", sys.api_url))
            .json(&serde_json::json!({"query": "{ __typename }"}))
            .send()
            .await
            .unwrap();
        let status = shed.status().as_u16();
        let retry = shed
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = shed.json().await.unwrap();
        let health = sys
            .http()
            .get(format!("{}/healthz", sys.api_url))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        (status, retry, body, health)
    };
    let (done, (status, retry, body, health)) = tokio::join!(purchases, probe);
    assert_eq!(status, 503, "{body:#}");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(body["errors"][0]["extensions"]["code"], "OVERLOADED");
    assert_eq!(health, 200, "health checks are never shed");
    for d in done {
        assert_eq!(d["purchaseOffer"]["status"], "PAID");
    }
    // With room again, requests run.
    let r = sys.gql(None, "{ __typename }", serde_json::json!({})).await;
    assert_eq!(r["data"]["__typename"], "Query");
}

#[tokio::test]
async fn metrics_are_private_and_their_gauges_read_once_per_interval() {
    let token = "metrics-".repeat(5);
    let sys = gateway_testkit::TestSystem::start_with(&[("METRICS_TOKEN", token.as_str())])
        .await
        .unwrap();
    let on_api = |bearer: Option<String>| {
        let mut req = sys.http().get(format!("{}/metrics", sys.api_url));
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        async move { req.send().await.unwrap() }
    };
    // On API_BIND, only with the metrics token.
    for bearer in [None, Some("wrong".to_owned()), Some(token[1..].to_owned())] {
        let resp = on_api(bearer).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    }
    let resp = on_api(Some(token.clone())).await;
    assert_eq!(resp.status(), 200);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("pbg_sql_statements_total"));
    // Without a token configured, API_BIND has no /metrics at all.
    let (_replica, second) = sys.spawn_api_with(&[("METRICS_TOKEN", "")]).await.unwrap();
    let resp = sys
        .http()
        .get(format!("{second}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // The private listener needs no token. The gauges come from Postgres once per
    // METRICS_CACHE_MS (5 s by default): the scrapes after the first send no SQL.
    let statements = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("pbg_sql_statements_total "))
            .unwrap_or_else(|| panic!("no pbg_sql_statements_total in {text}"))
            .parse()
            .unwrap()
    };
    tokio::time::sleep(std::time::Duration::from_millis(5_100)).await;
    let first = sys.metrics().await;
    assert!(first.contains("pbg_outbox_lag_seconds"), "{first}");
    assert!(first.contains("pbg_emails{status=\"DEAD\"} 0"), "{first}");
    assert!(!first.contains("pbg_emails{status=\"SENT\"}"), "{first}");
    let a = statements(&first);
    let b = statements(&sys.metrics().await);
    let c = statements(&sys.metrics().await);
    assert!(
        b > a,
        "the first scrape read the gauges from Postgres ({a} → {b})"
    );
    assert_eq!(c, b, "the next scrapes reused them");
}

#[tokio::test]
async fn slow_clients_are_cut_off_by_the_header_read_and_whole_request_timeouts() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let sys = gateway_testkit::TestSystem::start_with(&[
        ("HTTP_HEADER_READ_TIMEOUT_MS", "1000"),
        ("HTTP_REQUEST_TIMEOUT_MS", "1500"),
    ])
    .await
    .unwrap();
    let addr = sys.api_url.trim_start_matches("http://").to_owned();
    /// Everything the server sends until it closes the connection (at most 10 s).
    async fn until_closed(s: &mut tokio::net::TcpStream) -> String {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("the server closed the connection within 10 s")
                .unwrap_or(0);
            if n == 0 {
                return String::from_utf8_lossy(&all).into_owned();
            }
            all.extend_from_slice(&buf[..n]);
        }
    }

    // Slowloris: a request head that never ends is cut off after the header-read timeout.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = std::time::Instant::now();
    s.write_all(b"POST /graphql HTTP/1.1\r\nHost: api\r\nX-Slow: 1\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut s).await;
    let took = started.elapsed();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(
        took >= std::time::Duration::from_millis(900) && took < std::time::Duration::from_secs(5),
        "closed after {took:?}"
    );

    // A body that never completes: 408 REQUEST_TIMEOUT once the whole request's time is up.
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = std::time::Instant::now();
    s.write_all(
        b"POST /graphql HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"query\": \"{ __typename",
    )
    .await
    .unwrap();
    let answer = until_closed(&mut s).await;
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"REQUEST_TIMEOUT\""), "{answer}");
    assert!(
        took >= std::time::Duration::from_millis(1400) && took < std::time::Duration::from_secs(6),
        "answered after {took:?}"
    );

    // A client that sends its request promptly is served as ever.
    let ok = sys.gql(None, "{ __typename }", serde_json::json!({})).await;
    assert_eq!(ok["data"]["__typename"], "Query", "{ok}");
}

#[tokio::test]
async fn metric_names_follow_prometheus_conventions() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let worker_bind = format!("127.0.0.1:{port}");
    let sys = gateway_testkit::TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("WORKER_METRICS_BIND", worker_bind.as_str()),
    ])
    .await
    .unwrap();
    // Some traffic: a journey with an email job, and a refused request.
    authorized_partner(&sys, "names").await;
    let refused = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 415);
    let api = sys.metrics().await;
    let worker = eventually(30, "the worker's job metrics", || async {
        let t = sys
            .http()
            .get(format!("http://{worker_bind}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        t.contains("pbg_job_duration_seconds_count").then_some(t)
    })
    .await;
    for (process, text) in [("api", &api), ("worker", &worker)] {
        let types: Vec<(&str, &str)> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split_once(' ').unwrap())
            .collect();
        assert!(types.len() > 5, "{process}: {text}");
        for (name, kind) in &types {
            assert!(
                name.starts_with("pbg_") || name.starts_with("process_"),
                "{process}: `{name}` has neither the pbg_ prefix nor the standard process_ one"
            );
            if *kind == "counter" {
                assert!(
                    name.ends_with("_total"),
                    "{process}: counter `{name}` without _total"
                );
            }
            if name.contains("duration") || name.contains("lag") {
                assert!(
                    name.ends_with("_seconds"),
                    "{process}: `{name}` is not in seconds"
                );
            }
        }
        for (name, kind) in [
            ("pbg_sql_statements_total", "counter"),
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
        ] {
            assert!(
                types.contains(&(name, kind)),
                "{process}: no {kind} {name} in {text}"
            );
        }
    }
    for needle in [
        "pbg_http_responses_total{status=\"200\"}",
        "pbg_http_responses_total{status=\"415\"} 1",
        "pbg_db_pool_connections{state=\"in_use\"}",
        "pbg_db_pool_connections{state=\"idle\"}",
        "pbg_db_pool_waiting 0",
    ] {
        assert!(api.contains(needle), "no `{needle}` in {api}");
    }
}

/// `scripts/run` runs the api and the worker; stopping it (TERM, as a terminal's Ctrl-C or a
/// supervisor does) stops both, leaving no worker behind.
#[tokio::test]
async fn scripts_run_serves_and_stopping_it_stops_the_worker_too() {
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (port, metrics) = (free(), free());
    let database = format!(
        "pbg_run_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let api = gateway_testkit::system::bin_path("gateway-api");
    let target = api.parent().unwrap().parent().unwrap().to_owned();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mail = std::env::temp_dir().join(&database);
    let mut run = tokio::process::Command::new("bash")
        .arg(root.join("scripts/run"))
        .env("PBG_NO_BUILD", "1")
        .env("CARGO_TARGET_DIR", &target)
        .env("DATABASE_URL", gateway_testkit::admin_database_url())
        .env("REDIS_URL", gateway_testkit::redis_url())
        .env("PBG_DATABASE", &database)
        .env("QUEUE_PREFIX", &database)
        .env("API_BIND", format!("127.0.0.1:{port}"))
        .env("METRICS_BIND", format!("127.0.0.1:{metrics}"))
        .env("EMAIL_FILE_DIR", &mail)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let script = run.id().unwrap();
    let http = reqwest::Client::new();
    eventually(120, "scripts/run answering /readyz", || async {
        let r = http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .ok()?;
        r.status().is_success().then_some(())
    })
    .await;
    let children = |name: &'static str| {
        let out = std::process::Command::new("pgrep")
            .args(["-P", &script.to_string(), "-x", name])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().parse::<i32>().unwrap())
            .collect::<Vec<_>>()
    };
    let worker = children("gateway-worker");
    assert_eq!(worker.len(), 1, "one worker under scripts/run");
    let alive = |pid: i32| std::path::Path::new(&format!("/proc/{pid}")).exists();

    // TERM the script: both processes end with it.
    std::process::Command::new("kill")
        .args(["-TERM", &script.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), run.wait())
        .await
        .expect("scripts/run ended within 30 s of TERM")
        .unwrap();
    assert!(!status.success(), "stopped by a signal: {status}");
    eventually(10, "the worker gone", || async {
        (!alive(worker[0])).then_some(())
    })
    .await;
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the api still listens"
    );

    use diesel_async::{AsyncConnection, RunQueryDsl};
    let mut admin =
        diesel_async::AsyncPgConnection::establish(&gateway_testkit::admin_database_url())
            .await
            .unwrap();
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&mail);
}

#[tokio::test]
async fn traces_follow_a_request_through_the_outbox_into_its_job() {
    use gateway_testkit::otlp::attribute;
    let otlp = gateway_testkit::OtlpSink::start().await.unwrap();
    let sys = gateway_testkit::TestSystem::start_with(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.url.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("RUST_LOG", "info"),
    ])
    .await
    .unwrap();
    // A client's own trace: the request joins it.
    let client_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let resp = sys
        .http()
        .post(format!("{}/graphql", sys.api_url))
        .bearer_auth(sys.token("traced", Some("traced@traced-corp.example")))
        .header(
            "traceparent",
            format!("00-{client_trace}-00f067aa0ba902b7-01"),
        )
        .json(&serde_json::json!({
            "query": ENROLL,
            "operationName": "Enroll",
            "variables": enroll_input("Traced Corp", "traced@traced-corp.example"),
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    sys.smtp
        .wait_for(
            "traced@traced-corp.example",
            1,
            std::time::Duration::from_secs(30),
        )
        .await
        .unwrap();
    // The api's request span, and the worker's email job span as its child, in one trace.
    let (request, job) = eventually(30, "the request and job spans exported", || async {
        let spans = otlp.spans();
        let request = spans
            .iter()
            .find(|s| s["service"] == "gateway-api" && s["name"] == "request")?
            .clone();
        let job = spans
            .iter()
            .find(|s| {
                s["service"] == "gateway-worker"
                    && s["name"] == "job"
                    && attribute(s, "queue") == Some("email")
            })?
            .clone();
        Some((request, job))
    })
    .await;
    assert_eq!(
        attribute(&request, "operation"),
        Some("Enroll"),
        "{request}"
    );
    assert_eq!(
        request["traceId"]
            .as_str()
            .map(str::to_lowercase)
            .as_deref(),
        Some(client_trace),
        "{request}"
    );
    assert_eq!(
        job["traceId"], request["traceId"],
        "the job continues the request's trace: {job}"
    );
    assert_eq!(job["parentSpanId"], request["spanId"], "{job}");
}
