//! The Stripe adapter (`PAYMENT_GATEWAY=stripe`): a small typed client over `reqwest`
//! (ARCHITECTURE.md says why not a Stripe crate). The API never sees a card number: the SPA
//! creates a PaymentMethod with Stripe's browser library and `addPaymentMethod` attaches it to
//! the partner's Customer ([`PaymentGateway::attach_payment_method`]); the token we keep is
//! `{customer}/{payment method}`.
//!
//! - Charges are PaymentIntents confirmed off-session. Our charge key goes in the intent's
//!   metadata (`charge_key`), and `find_charge` answers from Stripe (search by that metadata),
//!   never from our tables, so a crash between a charge and its booking settles from the
//!   gateway's truth. Before creating an intent, `charge` looks the key up, so a repeat is one
//!   charge even where `Idempotency-Key` is not honoured (localstripe ignores it).
//! - `Idempotency-Key` is the charge key plus a short digest of the card and amount: a repeat
//!   of the same request is one request at Stripe, while a retry with another card (after a
//!   decline) is a new one (Stripe would answer a reused key with the cached decline).
//! - Declines: `card_declined` with a hard reason (stolen, lost, pickup, do not honour, …) or
//!   an expired card is a hard decline (no retries, auto-renew off); other declines and an
//!   authentication the cardholder must give are soft; network errors, 429 and 5xx are
//!   transient; other 4xx are invalid requests.
//! - Refunds are Stripe Refunds with `refund_key` in their metadata, looked up before one is
//!   made (localstripe would refund twice).
//!
//! Nothing secret is logged: the secret key only travels in the Authorization header.

use async_trait::async_trait;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::payments::{AttachedCard, CardDetails, CardToken, Charge, GatewayError, PaymentGateway};

/// Stripe's decline codes that mean the card must not be charged again.
const HARD_DECLINES: &[&str] = &[
    "stolen_card",
    "lost_card",
    "pickup_card",
    "do_not_honor",
    "fraudulent",
    "restricted_card",
    "revocation_of_authorization",
    "revocation_of_all_authorizations",
    "stop_payment_order",
    "card_not_supported",
    "invalid_account",
    "new_account_information_available",
];

/// Pages of 100 payment intents read at most when the search API is not there (localstripe).
const LIST_PAGES: usize = 50;

pub struct StripeGateway {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl std::fmt::Debug for StripeGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StripeGateway")
            .field("base", &self.base)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// What a Stripe call failed with: no answer at all, or an HTTP error with Stripe's body.
enum Failure {
    Network(String),
    Http(u16, Value),
}

impl Failure {
    /// Stripe's error, mapped to the gateway outcomes.
    fn into_gateway(self) -> GatewayError {
        match self {
            Failure::Network(m) => GatewayError::Transient(format!("Stripe did not answer: {m}")),
            Failure::Http(status, body) => error_of(status, &body),
        }
    }
}

/// Maps a Stripe error response to a gateway outcome.
pub fn error_of(status: u16, body: &Value) -> GatewayError {
    let e = &body["error"];
    let message = e["message"]
        .as_str()
        .unwrap_or("the payment gateway refused the request")
        .to_owned();
    let code = e["code"].as_str().unwrap_or_default();
    let decline = e["decline_code"].as_str().unwrap_or_default();
    match status {
        429 | 500..=599 => GatewayError::Transient(message),
        401 | 403 => GatewayError::Transient(
            "the payment gateway refused our credentials (check STRIPE_SECRET_KEY)".into(),
        ),
        402 | 400 if code == "card_declined" || code == "expired_card" => {
            if code == "expired_card" || HARD_DECLINES.contains(&decline) {
                GatewayError::HardDeclined(with_reason(&message, decline))
            } else {
                GatewayError::Declined(with_reason(&message, decline))
            }
        }
        402 => GatewayError::Declined(message),
        _ => GatewayError::Invalid(message),
    }
}

fn with_reason(message: &str, decline: &str) -> String {
    if decline.is_empty() {
        message.to_owned()
    } else {
        format!("{message} ({decline})")
    }
}

/// The charge of a PaymentIntent that succeeded.
fn charge_of(pi: &Value, currency: &str) -> Option<Charge> {
    (pi["status"] == "succeeded").then(|| Charge {
        id: pi["id"].as_str().unwrap_or_default().to_owned(),
        amount_minor: pi["amount"].as_i64().unwrap_or_default(),
        currency: currency.to_owned(),
    })
}

impl StripeGateway {
    pub fn new(base: &str, secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            secret: secret.to_owned(),
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let resp = req
            .bearer_auth(&self.secret)
            .header("Stripe-Version", "2024-06-20")
            .send()
            .await
            .map_err(|e| Failure::Network(e.without_url().to_string()))?;
        let status = resp.status().as_u16();
        let body: Value = resp
            .json()
            .await
            .map_err(|e| Failure::Network(format!("unreadable answer: {}", e.without_url())))?;
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(Failure::Http(status, body))
        }
    }

    async fn post(
        &self,
        path: &str,
        form: &[(&str, String)],
        idempotency_key: Option<&str>,
    ) -> Result<Value, Failure> {
        let mut req = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(k) = idempotency_key {
            req = req.header("Idempotency-Key", k);
        }
        self.send(req).await
    }

    async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, Failure> {
        self.send(self.http.get(format!("{}{path}", self.base)).query(query))
            .await
    }

    /// The PaymentIntents whose metadata carries `charge_key`: Stripe's search API, or, where
    /// there is none (localstripe answers 404), the list of intents read page by page.
    async fn intents_with_key(&self, key: &str) -> Result<Vec<Value>, Failure> {
        let query = format!("metadata['charge_key']:'{}'", key.replace('\'', "\\'"));
        match self
            .get("/v1/payment_intents/search", &[("query", query)])
            .await
        {
            Ok(found) => return Ok(list(&found)),
            Err(Failure::Http(404, _)) => {}
            Err(e) => return Err(e),
        }
        let mut matching = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..LIST_PAGES {
            let mut q = vec![("limit", "100".to_owned())];
            if let Some(a) = &after {
                q.push(("starting_after", a.clone()));
            }
            let page = self.get("/v1/payment_intents", &q).await?;
            let items = list(&page);
            matching.extend(
                items
                    .iter()
                    .filter(|pi| pi["metadata"]["charge_key"] == key)
                    .cloned(),
            );
            if page["has_more"] != true {
                break;
            }
            after = items
                .last()
                .and_then(|pi| pi["id"].as_str())
                .map(str::to_owned);
        }
        Ok(matching)
    }
}

fn list(v: &Value) -> Vec<Value> {
    v["data"].as_array().cloned().unwrap_or_default()
}

/// Splits our token `{customer}/{payment method}`.
fn split_token(token: &str) -> Result<(&str, &str), GatewayError> {
    token
        .split_once('/')
        .filter(|(c, p)| c.starts_with("cus_") && !p.is_empty())
        .ok_or_else(|| GatewayError::Invalid("this saved card is not a Stripe card".into()))
}

/// The Idempotency-Key of a charge: the charge key and a digest of the card and amount.
fn idempotency_key(key: &str, token: &str, amount_minor: i64) -> String {
    let digest = Sha256::digest(format!("{token}|{amount_minor}").as_bytes());
    format!("{key}/{}", &hex::encode(digest)[..12])
}

#[async_trait]
impl PaymentGateway for StripeGateway {
    fn takes_card_numbers(&self) -> bool {
        false
    }

    async fn tokenize(&self, _card: &CardDetails) -> Result<CardToken, GatewayError> {
        Err(GatewayError::Invalid(
            "with Stripe, cards are entered in Stripe's browser library: send the PaymentMethod \
             id it created (paymentMethodId), never a card number"
                .into(),
        ))
    }

    async fn attach_payment_method(
        &self,
        customer: Option<&str>,
        partner_id: uuid::Uuid,
        email: &str,
        payment_method_id: &str,
    ) -> Result<AttachedCard, GatewayError> {
        if !payment_method_id.starts_with("pm_")
            || !payment_method_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(GatewayError::Invalid(
                "a Stripe PaymentMethod id looks like pm_…".into(),
            ));
        }
        let customer = match customer {
            Some(c) => c.to_owned(),
            None => {
                let created = self
                    .post(
                        "/v1/customers",
                        &[
                            ("email", email.to_owned()),
                            ("metadata[partner_id]", partner_id.to_string()),
                        ],
                        Some(&format!("customer:{partner_id}")),
                    )
                    .await
                    .map_err(Failure::into_gateway)?;
                created["id"]
                    .as_str()
                    .ok_or_else(|| GatewayError::Transient("Stripe made no customer".into()))?
                    .to_owned()
            }
        };
        let pm = self
            .post(
                &format!("/v1/payment_methods/{payment_method_id}/attach"),
                &[("customer", customer.clone())],
                None,
            )
            .await
            .map_err(Failure::into_gateway)?;
        let card = &pm["card"];
        Ok(AttachedCard {
            token: format!("{customer}/{payment_method_id}"),
            customer,
            brand: card["brand"].as_str().unwrap_or("card").to_owned(),
            last4: card["last4"].as_str().unwrap_or_default().to_owned(),
            exp_month: card["exp_month"].as_i64().unwrap_or_default() as i32,
            exp_year: card["exp_year"].as_i64().unwrap_or_default() as i32,
        })
    }

    async fn charge(
        &self,
        key: &str,
        token: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Charge, GatewayError> {
        if let Some(done) = self.find_charge(key).await? {
            return Ok(done);
        }
        let (customer, pm) = split_token(token)?;
        let pi = self
            .post(
                "/v1/payment_intents",
                &[
                    ("amount", amount_minor.to_string()),
                    ("currency", currency.to_lowercase()),
                    ("customer", customer.to_owned()),
                    ("payment_method", pm.to_owned()),
                    ("confirm", "true".into()),
                    ("off_session", "true".into()),
                    ("metadata[charge_key]", key.to_owned()),
                ],
                Some(&idempotency_key(key, token, amount_minor)),
            )
            .await
            .map_err(Failure::into_gateway)?;
        match pi["status"].as_str() {
            Some("succeeded") => charge_of(&pi, currency)
                .ok_or_else(|| GatewayError::Transient("Stripe's answer had no charge".into())),
            Some("requires_action") | Some("requires_payment_method") => {
                Err(GatewayError::Declined(
                    "the bank asks the cardholder to authenticate this payment; renew by hand"
                        .into(),
                ))
            }
            Some("processing") => Err(GatewayError::Transient(
                "the payment is still processing at the bank".into(),
            )),
            other => Err(GatewayError::Declined(format!(
                "the payment was not completed ({})",
                other.unwrap_or("no status")
            ))),
        }
    }

    async fn find_charge(&self, key: &str) -> Result<Option<Charge>, GatewayError> {
        let found = self
            .intents_with_key(key)
            .await
            .map_err(Failure::into_gateway)?;
        Ok(found.iter().find_map(|pi| {
            let currency = pi["currency"].as_str().unwrap_or_default().to_uppercase();
            charge_of(pi, &currency)
        }))
    }

    async fn refund(
        &self,
        key: &str,
        charge_id: &str,
        amount_minor: i64,
    ) -> Result<String, GatewayError> {
        let existing = self
            .get(
                "/v1/refunds",
                &[
                    ("payment_intent", charge_id.to_owned()),
                    ("limit", "100".into()),
                ],
            )
            .await
            .map_err(Failure::into_gateway)?;
        if let Some(r) = list(&existing).iter().find(|r| {
            r["metadata"]["refund_key"] == key
                && r["status"] != "failed"
                && r["status"] != "canceled"
        }) {
            return Ok(r["id"].as_str().unwrap_or_default().to_owned());
        }
        let r = self
            .post(
                "/v1/refunds",
                &[
                    ("payment_intent", charge_id.to_owned()),
                    ("amount", amount_minor.to_string()),
                    ("metadata[refund_key]", key.to_owned()),
                ],
                Some(key),
            )
            .await
            .map_err(Failure::into_gateway)?;
        match r["status"].as_str() {
            Some("succeeded") | Some("pending") => {
                Ok(r["id"].as_str().unwrap_or_default().to_owned())
            }
            _ => Err(GatewayError::Invalid(format!(
                "the refund failed ({})",
                r["failure_reason"].as_str().unwrap_or("no reason given")
            ))),
        }
    }
}

/// How old a webhook's signed timestamp may be (Stripe's libraries default to 5 minutes).
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// Why a webhook's `Stripe-Signature` was refused, with the messages of Stripe's own libraries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    Malformed,
    NoV1,
    Mismatch,
    TooOld,
}

impl SignatureError {
    pub fn message(self) -> &'static str {
        match self {
            SignatureError::Malformed => "Unable to extract timestamp and signatures from header",
            SignatureError::NoV1 => "No signatures found with expected scheme",
            SignatureError::Mismatch => {
                "No signatures found matching the expected signature for payload"
            }
            SignatureError::TooOld => "Timestamp outside the tolerance zone",
        }
    }
}

/// Verifies a webhook the way Stripe signs it: `Stripe-Signature: t=<unix time>,v1=<hex>`
/// (several `v1` while a secret is rolled), where each `v1` is HMAC-SHA256 with the endpoint's
/// secret over `"<t>.<raw body>"`; compared in constant time; `t` at most
/// [`WEBHOOK_TOLERANCE_SECS`] from `now`.
pub fn verify_signature(
    secret: &str,
    header: &str,
    payload: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    use hmac::{Hmac, Mac};
    use subtle::ConstantTimeEq;
    let mut timestamp: Option<i64> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse().ok(),
            Some(("v1", s)) => signatures.push(s),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::NoV1);
    }
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|_| SignatureError::Mismatch)?;
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(payload);
    let expected = hex::encode(mac.finalize().into_bytes());
    let matches = signatures
        .iter()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if !matches {
        return Err(SignatureError::Mismatch);
    }
    if (now - t).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(SignatureError::TooOld);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Stripe's documented example scheme, computed independently of `verify_signature`.
    fn signed(secret: &str, t: i64, payload: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{payload}").as_bytes());
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn webhook_signatures_are_checked_like_stripes_libraries_do() {
        let body = r#"{"id":"evt_1","type":"payment_intent.succeeded"}"#;
        let now = 1_800_000_000;
        let good = signed("whsec_test", now, body);
        assert_eq!(
            verify_signature("whsec_test", &good, body.as_bytes(), now),
            Ok(())
        );
        // A rolled secret: one of several v1 signatures matches.
        let rolled = format!("{},v1=deadbeef,v0=abc", good);
        assert_eq!(
            verify_signature("whsec_test", &rolled, body.as_bytes(), now + 10),
            Ok(())
        );
        let tampered = body.replace("evt_1", "evt_2");
        assert_eq!(
            verify_signature("whsec_test", &good, tampered.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_other", &good, body.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature("whsec_test", &good, body.as_bytes(), now + 301),
            Err(SignatureError::TooOld)
        );
        assert_eq!(
            verify_signature("whsec_test", "garbage", body.as_bytes(), now),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(
                "whsec_test",
                &format!("t={now},v0=abc"),
                body.as_bytes(),
                now
            ),
            Err(SignatureError::NoV1)
        );
        assert_eq!(
            SignatureError::Mismatch.message(),
            "No signatures found matching the expected signature for payload"
        );
    }

    fn declined(decline: &str) -> GatewayError {
        error_of(
            402,
            &json!({"error": {"type": "card_error", "code": "card_declined", "decline_code": decline, "message": "Your card was declined."}}),
        )
    }

    #[test]
    fn hard_declines_stop_retries_and_soft_ones_do_not() {
        for hard in ["stolen_card", "lost_card", "pickup_card", "do_not_honor"] {
            assert!(
                matches!(declined(hard), GatewayError::HardDeclined(_)),
                "{hard}"
            );
        }
        for soft in ["insufficient_funds", "generic_decline", ""] {
            assert!(
                matches!(declined(soft), GatewayError::Declined(_)),
                "{soft}"
            );
        }
        let expired = error_of(
            402,
            &json!({"error": {"code": "expired_card", "message": "Your card has expired."}}),
        );
        assert!(matches!(expired, GatewayError::HardDeclined(_)));
    }

    #[test]
    fn server_errors_are_transient_and_bad_requests_invalid() {
        let body = json!({"error": {"message": "boom"}});
        assert!(matches!(error_of(500, &body), GatewayError::Transient(_)));
        assert!(matches!(error_of(503, &body), GatewayError::Transient(_)));
        assert!(matches!(error_of(429, &body), GatewayError::Transient(_)));
        assert!(matches!(error_of(400, &body), GatewayError::Invalid(_)));
        let auth = error_of(
            401,
            &json!({"error": {"message": "Invalid API Key provided: sk_live_abc"}}),
        );
        assert!(!auth.message().contains("sk_live"), "{auth:?}");
    }

    #[test]
    fn a_retry_with_another_card_is_another_request_at_stripe() {
        let a = idempotency_key("renewal:x:1", "cus_1/pm_a", 47500);
        assert_eq!(a, idempotency_key("renewal:x:1", "cus_1/pm_a", 47500));
        assert_ne!(a, idempotency_key("renewal:x:1", "cus_1/pm_b", 47500));
        assert!(a.starts_with("renewal:x:1/"));
    }
}
