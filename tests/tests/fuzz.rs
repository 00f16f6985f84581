//! Generated input over the whole GraphQL surface: random variables for every operation the
//! portal uses, mangled documents, deep nesting. Nothing may answer 5xx, panic, hang or come
//! back without an error code. The seed is printed so a failure can be replayed
//! (`FUZZ_SEED=… cargo test -p gateway-e2e --test fuzz`).

mod common;

use common::*;
use gateway_testkit::TestSystem;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

const DOCUMENTS: &[&str] = &[
    "mutation($input: PurchaseInput!) { purchaseOffer(input: $input) { id status } }",
    "mutation($card: CardInput!) { addPaymentMethod(card: $card) { id } }",
    "mutation($input: RenewInput!) { renewSubscription(input: $input) { id } }",
    "mutation($id: ID!) { turnOffAutoRenew(subscriptionId: $id) { id } }",
    "mutation($id: ID!) { cancelOrder(orderId: $id) { id } }",
    "mutation($id: ID!, $r: String!) { confirmBankTransfer(orderId: $id, reference: $r) { id } }",
    "mutation($id: ID!, $a: Boolean) { revealProductKey(benefitId: $id, acknowledgeRefundLoss: $a) { key } }",
    "mutation($id: ID!) { activateTechnicalBenefit(benefitId: $id) { id } }",
    "mutation($id: ID!) { activateGoToMarketOffer(benefitId: $id) { id } }",
    "mutation($i: MarketingContactInput!) { setMarketingContact(input: $i) { email } }",
    "mutation($b: ID!, $u: ID!, $r: ID) { assignVisualStudioSubscription(benefitId: $b, userId: $u, replaceUserId: $r) { id } }",
    "mutation($b: ID!, $u: ID!) { assignAzureUser(benefitId: $b, userId: $u) { id } }",
    "mutation($p: ID!, $d: Int!, $s: Int!) { advanceTestClock(partnerId: $p, days: $d, seconds: $s) { now } }",
    "mutation($p: ID!, $c: String!, $l: CompetencyLevel!, $q: Date!) { recordQualification(partnerId: $p, competency: $c, level: $l, qualifiedOn: $q) { id } }",
    "mutation($input: CreateServiceRequestInput!) { createServiceRequest(input: $input) { id } }",
    "mutation($q: String!, $id: String!) { retryJob(queue: $q, id: $id) }",
    "mutation($q: String!, $id: String!) { discardJob(queue: $q, id: $id) }",
    "mutation($input: EnrollPartnerInput!) { enrollPartner(input: $input) { partner { id } } }",
    "mutation($email: String!, $roles: [TenantRole!]!) { addUser(email: $email, roles: $roles) { id } }",
    "query($s: OfferSection!) { offers(section: $s) { offer { id } reasons { code } } }",
    "query($first: Int, $after: String) { subscriptions(first: $first, after: $after) { edges { node { id } } } }",
    "query($first: Int, $after: String) { invoices(first: $first, after: $after) { edges { node { id } } } }",
    "query($c: BenefitCategory, $first: Int) { benefits(category: $c, first: $first) { edges { node { id } } } }",
    "query($id: ID!) { refundEligibility(subscriptionId: $id) { eligible } }",
    "query($id: ID!, $l: String!, $os: OperatingSystem!) { softwareDownloads(benefitId: $id, language: $l, os: $os) { url } }",
    "query($q: String!, $s: JobState!) { jobs(queue: $q, state: $s) { totalCount nodes { id } } }",
    "query($p: ID!) { testClock(partnerId: $p) { now } }",
];

fn random_string(rng: &mut StdRng) -> String {
    match rng.random_range(0..8) {
        0 => String::new(),
        1 => "x".repeat(rng.random_range(1..20_000)),
        2 => "ACTION_PACK".into(),
        3 => uuid::Uuid::new_v4().to_string(),
        4 => "'; DROP TABLE partners; --".into(),
        5 => "\u{0}\u{1}\u{202e}ünïcødé 🚀".into(),
        6 => "4242 4242 4242 4242".into(),
        _ => (0..rng.random_range(1..40))
            .map(|_| char::from(rng.random_range(32u8..127)))
            .collect(),
    }
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.random_range(0..10) {
        0 => Value::Null,
        1 => json!(rng.random::<bool>()),
        2 => json!(rng.random::<i64>()),
        3 => json!(rng.random_range(-5i64..5)),
        4 => json!(rng.random::<f64>() * 1e12),
        5 if depth < 3 => Value::Array(
            (0..rng.random_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        6 if depth < 3 => random_object(rng, depth + 1),
        _ => json!(random_string(rng)),
    }
}

const FIELDS: &[&str] = &[
    "offerId",
    "idempotencyKey",
    "acceptTermsVersion",
    "payment",
    "paymentMethodId",
    "bankTransfer",
    "contactName",
    "contactPhone",
    "contactEmail",
    "number",
    "expMonth",
    "expYear",
    "cvc",
    "holderName",
    "subscriptionId",
    "userId",
    "email",
    "phone",
    "language",
    "kind",
    "title",
    "description",
    "severity",
    "advisoryHours",
    "competencies",
    "legalName",
    "address",
];

fn random_object(rng: &mut StdRng, depth: u32) -> Value {
    let mut m = serde_json::Map::new();
    for _ in 0..rng.random_range(0..8) {
        let k = FIELDS[rng.random_range(0..FIELDS.len())];
        m.insert(k.to_owned(), random_value(rng, depth));
    }
    Value::Object(m)
}

fn mangle(rng: &mut StdRng, doc: &str) -> String {
    let mut chars: Vec<char> = doc.chars().collect();
    for _ in 0..rng.random_range(1..6) {
        let at = rng.random_range(0..chars.len().max(1));
        match rng.random_range(0..3) {
            0 if !chars.is_empty() => {
                chars.remove(at.min(chars.len() - 1));
            }
            1 => chars.insert(
                at,
                ['{', '}', '(', ')', '$', '"', ':', '!', '@'][rng.random_range(0..9)],
            ),
            _ => chars.insert(at, char::from(rng.random_range(32u8..127))),
        }
    }
    chars.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn generated_input_never_breaks_the_api() {
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("FUZZ_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    // Rate limits off: the point is to reach every resolver, not the 429 in front of them.
    let sys = TestSystem::start_with(&[
        ("AUTO_AUTHORIZE", "true"),
        ("RATE_LIMIT_CALLER", "0"),
        ("RATE_LIMIT_ADDRESS", "0"),
        ("RATE_LIMIT_SENSITIVE", "0"),
    ])
    .await
    .unwrap();
    let (_, ga) = authorized_partner(&sys, "fuzz").await;
    let op = operator_token(&sys).await;
    let tokens = [
        Some(ga.as_str()),
        Some(op.as_str()),
        None,
        Some("garbage.token.here"),
    ];
    let client = sys.http().clone();
    for i in 0..1500 {
        let doc = DOCUMENTS[rng.random_range(0..DOCUMENTS.len())];
        let query = match rng.random_range(0..10) {
            0 => mangle(&mut rng, doc),
            1 => format!(
                "{{ {}me {{ user {{ id }} }} {} }}",
                "a: __typename ".repeat(rng.random_range(1..300)),
                "}".repeat(rng.random_range(0..3))
            ),
            2 => format!(
                "{{ me {}{} }}",
                "{ partner ".repeat(rng.random_range(10..60)),
                "}".repeat(rng.random_range(10..60))
            ),
            _ => doc.to_owned(),
        };
        let mut vars = serde_json::Map::new();
        for name in [
            "input", "card", "i", "id", "a", "b", "u", "r", "p", "d", "s", "c", "l", "q", "os",
            "email", "roles", "first", "after",
        ] {
            if rng.random_bool(0.7) {
                let v = if ["input", "card", "i"].contains(&name) && rng.random_bool(0.8) {
                    random_object(&mut rng, 0)
                } else {
                    random_value(&mut rng, 0)
                };
                vars.insert(name.to_owned(), v);
            }
        }
        let token = tokens[rng.random_range(0..tokens.len())];
        let mut req = client
            .post(format!("{}/graphql", sys.api_url))
            .json(&json!({"query": query, "variables": Value::Object(vars)}))
            .timeout(std::time::Duration::from_secs(20));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request {i} (seed {seed}) got no answer: {e}"));
        let status = resp.status();
        let body: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("request {i} (seed {seed}): not JSON: {e}"));
        assert!(
            status.as_u16() < 500,
            "request {i} (seed {seed}): {status} for {query} → {body}"
        );
        if let Some(errors) = body.get("errors").and_then(Value::as_array) {
            for e in errors {
                let code = e["extensions"]["code"].as_str();
                assert!(
                    code.is_some(),
                    "request {i} (seed {seed}): error without a code: {e}"
                );
                assert_ne!(
                    code,
                    Some("INTERNAL"),
                    "request {i} (seed {seed}): {query} → {e}"
                );
            }
        }
    }
    let health = client
        .get(format!("{}/healthz", sys.api_url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}
