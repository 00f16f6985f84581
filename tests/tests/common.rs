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
        "agreementVersion": gateway_domain::enrollment::PARTNER_AGREEMENT_VERSION,
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
