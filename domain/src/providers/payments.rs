//! The payment gateway seam. Cards reach us only to be tokenized: the gateway keeps the number
//! and gives back a token; we store the token, the brand, the last four digits and the expiry.
//! Every charge carries an idempotency key: a gateway records a *successful* charge under its
//! key and answers a repeat with the same charge, so a job that runs twice never charges twice.
//! Declines and transient failures are not recorded, so the same key can be tried again.
//!
//! The sandbox keeps its books in Postgres (`sandbox_*` tables) so every process sees one
//! gateway and tests can count charges. It has its own small pool: a job that holds a
//! connection while it charges must never wait for the gateway to get one from the same pool
//! (it deadlocked under load before this). A batch of renewal charges is booked in three
//! statements, the two reads pipelined; a live adapter would send a few requests at a time.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::Datelike;
use uuid::Uuid;

use crate::db::prelude::*;
use crate::db::schema::{sandbox_calls, sandbox_cards, sandbox_charges, sandbox_refunds};
use crate::db::DbPool;
use crate::enums::CardBehaviour;

/// Card details as typed by a person. `Debug` never shows the number or the CVC.
#[derive(Clone)]
pub struct CardDetails {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: i32,
    pub cvc: String,
    pub holder_name: String,
}

impl std::fmt::Debug for CardDetails {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CardDetails")
            .field("number", &"[redacted]")
            .field("exp_month", &self.exp_month)
            .field("exp_year", &self.exp_year)
            .field("cvc", &"[redacted]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardToken {
    pub token: String,
    pub brand: String,
    pub last4: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
    pub amount_minor: i64,
    pub currency: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The card was refused; another attempt later may succeed.
    Declined(String),
    /// The card was refused for good (stolen, closed): never try it again.
    HardDeclined(String),
    /// The gateway could not answer; nothing was charged. Try again soon.
    Transient(String),
    /// The request itself is wrong (an unknown card number, an expired card).
    Invalid(String),
}

impl GatewayError {
    /// Stable code stored on orders and shown to partners.
    pub fn code(&self) -> &'static str {
        match self {
            GatewayError::Declined(_) => "CARD_DECLINED",
            GatewayError::HardDeclined(_) => "CARD_HARD_DECLINED",
            GatewayError::Transient(_) => "GATEWAY_UNAVAILABLE",
            GatewayError::Invalid(_) => "INVALID_PAYMENT",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            GatewayError::Declined(m)
            | GatewayError::HardDeclined(m)
            | GatewayError::Transient(m)
            | GatewayError::Invalid(m) => m,
        }
    }
}

/// One charge of [`PaymentGateway::charge_many`].
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub idempotency_key: String,
    pub token: String,
    pub amount_minor: i64,
    pub currency: String,
}

/// What the gateway answered for due work, asked before the work's transaction opens and
/// looked up by idempotency key inside it: no gateway call is ever made while a database lock
/// or transaction is held (`crate::runner`). A key with no answer means the state changed
/// since the question was asked; the work is tried again.
#[derive(Debug, Default)]
pub struct Answers {
    /// Charges made (renewal charges).
    pub charges: HashMap<String, Result<Charge, GatewayError>>,
    /// Charges looked up (reconciliation of an order, a renewal, a lapse).
    pub found: HashMap<String, Result<Option<Charge>, GatewayError>>,
    /// Refunds made: the gateway's refund reference.
    pub refunds: HashMap<String, Result<String, GatewayError>>,
}

/// Requests in flight at once in the default [`PaymentGateway::charge_many`].
const CONCURRENT_CHARGES: usize = 8;

/// A card the browser gave the gateway, attached to the partner's customer there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedCard {
    /// What charges use (`{customer}/{payment method}` for Stripe).
    pub token: String,
    /// The partner's customer at the gateway (kept for the next card).
    pub customer: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
}

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    /// Whether `addPaymentMethod` may send card numbers (`tokenize`); otherwise the browser
    /// gives the card to the gateway and the API gets its id (`attach_payment_method`).
    fn takes_card_numbers(&self) -> bool {
        true
    }
    async fn tokenize(&self, card: &CardDetails) -> Result<CardToken, GatewayError>;
    /// Attaches a payment method the browser created at the gateway to the partner's customer
    /// (made first when `customer` is None); reads back the card's brand, last four and expiry.
    async fn attach_payment_method(
        &self,
        _customer: Option<&str>,
        _partner_id: Uuid,
        _email: &str,
        _payment_method_id: &str,
    ) -> Result<AttachedCard, GatewayError> {
        Err(GatewayError::Invalid(
            "this payment gateway takes the card itself: send card, not paymentMethodId".into(),
        ))
    }
    async fn charge(
        &self,
        idempotency_key: &str,
        token: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Charge, GatewayError>;
    /// Several charges, each with its own key and its own answer, in the order given. A live
    /// gateway answers one request at a time: the default sends a few at once. The sandbox
    /// books a whole batch of renewal charges in a handful of statements.
    async fn charge_many(&self, requests: &[ChargeRequest]) -> Vec<Result<Charge, GatewayError>> {
        let mut answers = Vec::with_capacity(requests.len());
        for chunk in requests.chunks(CONCURRENT_CHARGES) {
            let mut pending = Vec::with_capacity(chunk.len());
            for r in chunk {
                pending.push(self.charge(
                    &r.idempotency_key,
                    &r.token,
                    r.amount_minor,
                    &r.currency,
                ));
            }
            answers.extend(futures::future::join_all(pending).await);
        }
        answers
    }
    /// The successful charge recorded under a key, if any (reconciliation after a crash).
    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, GatewayError>;
    /// Refunds (part of) a charge; a repeated key refunds once.
    async fn refund(
        &self,
        idempotency_key: &str,
        charge_id: &str,
        amount_minor: i64,
    ) -> Result<String, GatewayError>;
}

/// The sandbox's test cards (PRODUCT.md 2.4). Any other number is refused, so a real card
/// number never enters a sandbox.
pub const TEST_CARDS: &[(&str, &str, CardBehaviour)] = &[
    ("4242424242424242", "visa", CardBehaviour::Succeed),
    ("5555555555554444", "mastercard", CardBehaviour::Succeed),
    ("4000000000000002", "visa", CardBehaviour::Decline),
    ("4000000000000119", "visa", CardBehaviour::Transient),
    ("4100000000000019", "visa", CardBehaviour::HardDecline),
];

/// Luhn check digit validation.
pub fn luhn_ok(number: &str) -> bool {
    if number.len() < 12 || number.len() > 19 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let sum: u32 = number
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = (b - b'0') as u32;
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A local gateway whose books live in the `sandbox_*` tables, on connections of its own:
/// like a remote gateway, what it records survives a rollback of the caller's transaction.
pub struct SandboxGateway {
    pool: DbPool,
    /// FAULT_GATEWAY_DELAY_MS: each call stalls this long first, journaled in `sandbox_calls`
    /// (tests; zero otherwise).
    delay: std::time::Duration,
}

impl SandboxGateway {
    pub fn new(pool: DbPool) -> Self {
        Self::stalling(pool, std::time::Duration::ZERO)
    }

    /// A sandbox whose every call stalls `delay` first (a slow gateway, for the tests that
    /// prove no lock or transaction is held across a gateway call). Each stalled call is
    /// journaled in `sandbox_calls` (started, finished) so a test can see it in flight.
    pub fn stalling(pool: DbPool, delay: std::time::Duration) -> Self {
        Self { pool, delay }
    }

    /// Runs `call` after the configured stall, journaled while stalling.
    async fn stalled<T>(
        &self,
        operation: &str,
        key: &str,
        call: impl std::future::Future<Output = Result<T, GatewayError>>,
    ) -> Result<T, GatewayError> {
        if self.delay.is_zero() {
            return call.await;
        }
        let id: i64 = {
            let mut conn = self.conn().await?;
            diesel::insert_into(sandbox_calls::table)
                .values((
                    sandbox_calls::operation.eq(operation),
                    sandbox_calls::idempotency_key.eq(key),
                ))
                .returning(sandbox_calls::id)
                .get_result(&mut conn)
                .await
                .map_err(transient)?
        };
        tokio::time::sleep(self.delay).await;
        let answer = call.await;
        let mut conn = self.conn().await?;
        diesel::update(sandbox_calls::table.find(id))
            .set(sandbox_calls::finished_at.eq(diesel::dsl::now))
            .execute(&mut conn)
            .await
            .map_err(transient)?;
        answer
    }

    async fn conn(
        &self,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<crate::db::PgConn>, GatewayError>
    {
        self.pool
            .get()
            .await
            .map_err(|e| GatewayError::Transient(format!("sandbox gateway unavailable: {e}")))
    }
}

fn transient(e: diesel::result::Error) -> GatewayError {
    GatewayError::Transient(format!("sandbox gateway: {e}"))
}

#[async_trait]
impl PaymentGateway for SandboxGateway {
    async fn tokenize(&self, card: &CardDetails) -> Result<CardToken, GatewayError> {
        let number: String = card
            .number
            .chars()
            .filter(|c| !c.is_whitespace() && *c != '-')
            .collect();
        if !luhn_ok(&number) {
            return Err(GatewayError::Invalid("the card number is not valid".into()));
        }
        let Some((_, brand, behaviour)) = TEST_CARDS.iter().find(|(n, ..)| *n == number) else {
            return Err(GatewayError::Invalid(
                "the sandbox gateway accepts only its test card numbers".into(),
            ));
        };
        let today = chrono::Utc::now().date_naive();
        if !(1..=12).contains(&card.exp_month)
            || (card.exp_year, card.exp_month) < (today.year(), today.month())
        {
            return Err(GatewayError::Invalid("the card has expired".into()));
        }
        if !(3..=4).contains(&card.cvc.len()) || !card.cvc.bytes().all(|b| b.is_ascii_digit()) {
            return Err(GatewayError::Invalid(
                "the security code is not valid".into(),
            ));
        }
        let token = format!("tok_sandbox_{}", Uuid::new_v4().simple());
        let last4 = number[number.len() - 4..].to_owned();
        let mut conn = self.conn().await?;
        diesel::insert_into(sandbox_cards::table)
            .values((
                sandbox_cards::token.eq(&token),
                sandbox_cards::brand.eq(brand),
                sandbox_cards::last4.eq(&last4),
                sandbox_cards::behaviour.eq(behaviour),
            ))
            .execute(&mut conn)
            .await
            .map_err(transient)?;
        Ok(CardToken {
            token,
            brand: (*brand).to_owned(),
            last4,
        })
    }

    async fn charge(
        &self,
        idempotency_key: &str,
        token: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Charge, GatewayError> {
        let request = ChargeRequest {
            idempotency_key: idempotency_key.to_owned(),
            token: token.to_owned(),
            amount_minor,
            currency: currency.to_owned(),
        };
        self.charge_many(std::slice::from_ref(&request))
            .await
            .pop()
            .unwrap_or_else(|| Err(GatewayError::Transient("sandbox gave no answer".into())))
    }

    /// Set-based: the charges already recorded under these keys, the cards' behaviours, then
    /// one INSERT of the new charges (a concurrent charge with the same key wins the insert and
    /// its charge is read back).
    async fn charge_many(&self, requests: &[ChargeRequest]) -> Vec<Result<Charge, GatewayError>> {
        let keys: Vec<&str> = requests
            .iter()
            .map(|r| r.idempotency_key.as_str())
            .collect();
        match self
            .stalled("charge", &keys.join(","), self.try_charge_many(requests))
            .await
        {
            Ok(answers) => answers,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, GatewayError> {
        self.stalled("find_charge", idempotency_key, async {
            let mut conn = self.conn().await?;
            find(&mut conn, idempotency_key).await
        })
        .await
    }

    async fn refund(
        &self,
        idempotency_key: &str,
        charge_id: &str,
        amount_minor: i64,
    ) -> Result<String, GatewayError> {
        self.stalled(
            "refund",
            idempotency_key,
            self.try_refund(idempotency_key, charge_id, amount_minor),
        )
        .await
    }
}

impl SandboxGateway {
    async fn try_refund(
        &self,
        idempotency_key: &str,
        charge_id: &str,
        amount_minor: i64,
    ) -> Result<String, GatewayError> {
        let mut conn = self.conn().await?;
        let existing: Option<String> = sandbox_refunds::table
            .filter(sandbox_refunds::idempotency_key.eq(idempotency_key))
            .select(sandbox_refunds::id)
            .first(&mut conn)
            .await
            .optional()
            .map_err(transient)?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = format!("re_sandbox_{}", Uuid::new_v4().simple());
        // A charge made with a card that fails transiently fails its refunds the same way (the
        // tests switch a card's behaviour after the purchase to reach this).
        let behaviour: Option<CardBehaviour> = sandbox_charges::table
            .inner_join(
                sandbox_cards::table.on(sandbox_charges::token.eq(sandbox_cards::token.nullable())),
            )
            .filter(sandbox_charges::id.eq(charge_id))
            .select(sandbox_cards::behaviour)
            .first(&mut conn)
            .await
            .optional()
            .map_err(transient)?;
        if behaviour == Some(CardBehaviour::Transient) {
            return Err(GatewayError::Transient(
                "the card's issuer did not answer; try again".into(),
            ));
        }
        conn.transaction::<_, diesel::result::Error, _>(async |conn| {
            let (charged, refunded): (i64, i64) = sandbox_charges::table
                .find(charge_id)
                .select((
                    sandbox_charges::amount_minor,
                    sandbox_charges::refunded_minor,
                ))
                .for_update()
                .first(conn)
                .await?;
            if refunded + amount_minor > charged {
                return Err(diesel::result::Error::RollbackTransaction);
            }
            diesel::insert_into(sandbox_refunds::table)
                .values((
                    sandbox_refunds::id.eq(&id),
                    sandbox_refunds::idempotency_key.eq(idempotency_key),
                    sandbox_refunds::charge_id.eq(charge_id),
                    sandbox_refunds::amount_minor.eq(amount_minor),
                ))
                .execute(conn)
                .await?;
            diesel::update(sandbox_charges::table.find(charge_id))
                .set(sandbox_charges::refunded_minor.eq(refunded + amount_minor))
                .execute(conn)
                .await?;
            Ok(())
        })
        .await
        .map_err(|e| match e {
            diesel::result::Error::RollbackTransaction => {
                GatewayError::Invalid("the refund exceeds what was charged".into())
            }
            diesel::result::Error::NotFound => GatewayError::Invalid("unknown charge".into()),
            other => transient(other),
        })?;
        Ok(id)
    }
}

async fn find(
    conn: &mut crate::db::PgConn,
    idempotency_key: &str,
) -> Result<Option<Charge>, GatewayError> {
    Ok(find_many(conn, &[idempotency_key.to_owned()])
        .await?
        .pop()
        .map(|(_, charge)| charge))
}

/// The charges recorded under these keys, with their keys.
async fn find_many(
    mut conn: &crate::db::PgConn,
    keys: &[String],
) -> Result<Vec<(String, Charge)>, GatewayError> {
    let rows: Vec<(String, String, i64, String)> = sandbox_charges::table
        .filter(sandbox_charges::idempotency_key.eq_any(keys))
        .select((
            sandbox_charges::idempotency_key,
            sandbox_charges::id,
            sandbox_charges::amount_minor,
            sandbox_charges::currency,
        ))
        .load(&mut conn)
        .await
        .map_err(transient)?;
    Ok(rows
        .into_iter()
        .map(|(key, id, amount_minor, currency)| {
            (
                key,
                Charge {
                    id,
                    amount_minor,
                    currency,
                },
            )
        })
        .collect())
}

impl SandboxGateway {
    async fn try_charge_many(
        &self,
        requests: &[ChargeRequest],
    ) -> Result<Vec<Result<Charge, GatewayError>>, GatewayError> {
        let mut conn = self.conn().await?;
        let keys: Vec<String> = requests.iter().map(|r| r.idempotency_key.clone()).collect();
        let tokens: Vec<&str> = requests.iter().map(|r| r.token.as_str()).collect();
        // Both reads in one round trip (pipelined).
        let mut read: &crate::db::PgConn = &conn;
        let (recorded, behaviours) = futures::join!(
            find_many(read, &keys),
            sandbox_cards::table
                .filter(sandbox_cards::token.eq_any(&tokens))
                .select((sandbox_cards::token, sandbox_cards::behaviour))
                .load::<(String, CardBehaviour)>(&mut read),
        );
        let mut recorded: HashMap<String, Charge> = recorded?.into_iter().collect();
        let behaviours: HashMap<String, CardBehaviour> =
            behaviours.map_err(transient)?.into_iter().collect();
        let mut answers = Vec::with_capacity(requests.len());
        let mut new = Vec::new();
        for r in requests {
            let answer = match recorded.get(&r.idempotency_key) {
                Some(c) => Ok(c.clone()),
                None => {
                    let answer = answer_of(behaviours.get(&r.token), r);
                    if let Ok(charge) = &answer {
                        // A repeated key within the batch is one charge.
                        recorded.insert(r.idempotency_key.clone(), charge.clone());
                        new.push((r, charge.clone()));
                    }
                    answer
                }
            };
            answers.push(answer);
        }
        if new.is_empty() {
            return Ok(answers);
        }
        let rows: Vec<_> = new
            .iter()
            .map(|(r, c)| {
                (
                    sandbox_charges::id.eq(&c.id),
                    sandbox_charges::idempotency_key.eq(&r.idempotency_key),
                    sandbox_charges::token.eq(&r.token),
                    sandbox_charges::amount_minor.eq(c.amount_minor),
                    sandbox_charges::currency.eq(&c.currency),
                )
            })
            .collect();
        let inserted: Vec<String> = diesel::insert_into(sandbox_charges::table)
            .values(&rows)
            .on_conflict(sandbox_charges::idempotency_key)
            .do_nothing()
            .returning(sandbox_charges::idempotency_key)
            .reuse_for_rows(rows.len())
            .get_results(&mut conn)
            .await
            .map_err(transient)?;
        if inserted.len() < new.len() {
            // Keys a concurrent charge recorded first: answer with that charge.
            let lost: Vec<String> = new
                .iter()
                .map(|(r, _)| r.idempotency_key.clone())
                .filter(|k| !inserted.contains(k))
                .collect();
            let winners: HashMap<String, Charge> =
                find_many(&conn, &lost).await?.into_iter().collect();
            for (r, answer) in requests.iter().zip(answers.iter_mut()) {
                if lost.contains(&r.idempotency_key) {
                    *answer = winners
                        .get(&r.idempotency_key)
                        .cloned()
                        .ok_or_else(|| GatewayError::Transient("sandbox charge vanished".into()));
                }
            }
        }
        Ok(answers)
    }
}

/// What the sandbox answers a new charge on a card that behaves so.
fn answer_of(behaviour: Option<&CardBehaviour>, r: &ChargeRequest) -> Result<Charge, GatewayError> {
    match behaviour {
        None => Err(GatewayError::Invalid("unknown card token".into())),
        Some(CardBehaviour::Decline) => Err(GatewayError::Declined(
            "the card was declined (insufficient funds)".into(),
        )),
        Some(CardBehaviour::HardDecline) => Err(GatewayError::HardDeclined(
            "the card was declined and must not be charged again (card reported lost)".into(),
        )),
        Some(CardBehaviour::Transient) => Err(GatewayError::Transient(
            "the card network did not answer in time; nothing was charged".into(),
        )),
        Some(CardBehaviour::Succeed) => Ok(Charge {
            id: format!("ch_sandbox_{}", Uuid::new_v4().simple()),
            amount_minor: r.amount_minor,
            currency: r.currency.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn() {
        for (n, ..) in TEST_CARDS {
            assert!(luhn_ok(n), "{n}");
        }
        assert!(!luhn_ok("4242424242424241"));
        assert!(!luhn_ok("4242"));
        assert!(!luhn_ok("42424242424242x2"));
    }

    #[test]
    fn card_debug_hides_the_number() {
        let c = CardDetails {
            number: "4242424242424242".into(),
            exp_month: 1,
            exp_year: 2030,
            cvc: "123".into(),
            holder_name: "A".into(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("4242") && !s.contains("123"), "{s}");
    }
}
