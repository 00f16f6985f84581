//! The payment gateway seam. Cards reach us only to be tokenized: the gateway keeps the number
//! and gives back a token; we store the token, the brand, the last four digits and the expiry.
//! Every charge carries an idempotency key: a gateway records a *successful* charge under its
//! key and answers a repeat with the same charge, so a job that runs twice never charges twice.
//! Declines and transient failures are not recorded, so the same key can be tried again.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::Datelike;
use uuid::Uuid;

use crate::db::prelude::*;
use crate::db::schema::{sandbox_cards, sandbox_charges, sandbox_refunds};
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

/// Requests in flight at once in the default [`PaymentGateway::charge_many`].
const CONCURRENT_CHARGES: usize = 8;

#[async_trait]
pub trait PaymentGateway: Send + Sync {
    async fn tokenize(&self, card: &CardDetails) -> Result<CardToken, GatewayError>;
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
}

impl SandboxGateway {
    pub fn new(pool: DbPool) -> Self {
        Self { pool }
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

    /// Set-based, one statement for the whole batch: the charges already recorded under these
    /// keys, the cards' behaviours and the INSERT of the new charges (a concurrent charge with
    /// the same key wins the insert and its charge is read back).
    async fn charge_many(&self, requests: &[ChargeRequest]) -> Vec<Result<Charge, GatewayError>> {
        match self.try_charge_many(requests).await {
            Ok(answers) => answers,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn find_charge(&self, idempotency_key: &str) -> Result<Option<Charge>, GatewayError> {
        let mut conn = self.conn().await?;
        find(&mut conn, idempotency_key).await
    }

    async fn refund(
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

/// One request's row of [`charge_statement`].
#[derive(diesel::QueryableByName)]
struct ChargeRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    prior_id: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    prior_amount_minor: Option<i64>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    prior_currency: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    behaviour: Option<CardBehaviour>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    inserted: bool,
}

/// The sandbox's charges in one statement: per request (in order), the charge already
/// recorded under its key and its card's behaviour; and the new charges inserted, the first
/// request of each key that has no charge and whose card succeeds, under its id in
/// `new_ids` (a concurrent charge with the same key wins: `inserted` is then false).
async fn charge_statement(
    mut conn: &crate::db::PgConn,
    requests: &[ChargeRequest],
    new_ids: &[String],
) -> Result<Vec<ChargeRow>, GatewayError> {
    use diesel::sql_types::{Array, BigInt, Text};
    let text = |f: fn(&ChargeRequest) -> &str| -> Vec<&str> { requests.iter().map(f).collect() };
    let rows: Vec<ChargeRow> = diesel::sql_query(
        "WITH r AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[])
                 WITH ORDINALITY AS r(key, token, amount_minor, currency, new_id, ord)),
         p AS (
             SELECT c.idempotency_key, c.id, c.amount_minor, c.currency
             FROM sandbox_charges c WHERE c.idempotency_key = ANY($1)),
         k AS (SELECT token, behaviour FROM sandbox_cards WHERE token = ANY($2)),
         i AS (
             INSERT INTO sandbox_charges (id, idempotency_key, token, amount_minor, currency)
             SELECT DISTINCT ON (r.key) r.new_id, r.key, r.token, r.amount_minor, r.currency
             FROM r JOIN k ON k.token = r.token
             WHERE k.behaviour = $6
                 AND NOT EXISTS (SELECT 1 FROM p WHERE p.idempotency_key = r.key)
             ORDER BY r.key, r.ord
             ON CONFLICT (idempotency_key) DO NOTHING
             RETURNING idempotency_key)
         SELECT p.id AS prior_id, p.amount_minor AS prior_amount_minor,
             p.currency AS prior_currency,
             (SELECT k.behaviour FROM k WHERE k.token = r.token) AS behaviour,
             EXISTS (SELECT 1 FROM i WHERE i.idempotency_key = r.key) AS inserted
         FROM r LEFT JOIN p ON p.idempotency_key = r.key
         ORDER BY r.ord",
    )
    .bind::<Array<Text>, _>(text(|r| &r.idempotency_key))
    .bind::<Array<Text>, _>(text(|r| &r.token))
    .bind::<Array<BigInt>, _>(requests.iter().map(|r| r.amount_minor).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(text(|r| &r.currency))
    .bind::<Array<Text>, _>(new_ids)
    .bind::<Text, _>(CardBehaviour::Succeed)
    .reuse()
    .load(&mut conn)
    .await
    .map_err(transient)?;
    if rows.len() != requests.len() {
        return Err(GatewayError::Transient("sandbox gave no answer".into()));
    }
    Ok(rows)
}

impl SandboxGateway {
    async fn try_charge_many(
        &self,
        requests: &[ChargeRequest],
    ) -> Result<Vec<Result<Charge, GatewayError>>, GatewayError> {
        let conn = self.conn().await?;
        // A charge id for every request; only the first succeeding request of a key that has
        // no charge yet uses its own.
        let new_ids: Vec<String> = requests
            .iter()
            .map(|_| format!("ch_sandbox_{}", Uuid::new_v4().simple()))
            .collect();
        let rows = charge_statement(&conn, requests, &new_ids).await?;
        let mut first: HashMap<&str, (Charge, bool)> = HashMap::new();
        let mut answers = Vec::with_capacity(requests.len());
        let mut lost = Vec::new();
        for ((r, row), new_id) in requests.iter().zip(rows).zip(&new_ids) {
            if let (Some(id), Some(amount_minor), Some(currency)) =
                (row.prior_id, row.prior_amount_minor, row.prior_currency)
            {
                answers.push(Ok(Charge {
                    id,
                    amount_minor,
                    currency,
                }));
                continue;
            }
            answers.push(match row.behaviour {
                None => Err(GatewayError::Invalid("unknown card token".into())),
                Some(CardBehaviour::Decline) => Err(GatewayError::Declined(
                    "the card was declined (insufficient funds)".into(),
                )),
                Some(CardBehaviour::HardDecline) => Err(GatewayError::HardDeclined(
                    "the card was declined and must not be charged again (card reported lost)"
                        .into(),
                )),
                Some(CardBehaviour::Transient) => Err(GatewayError::Transient(
                    "the card network did not answer in time; nothing was charged".into(),
                )),
                Some(CardBehaviour::Succeed) => {
                    // A repeated key within the batch is one charge: the first one's.
                    let (charge, inserted) = first
                        .entry(r.idempotency_key.as_str())
                        .or_insert_with(|| {
                            let charge = Charge {
                                id: new_id.clone(),
                                amount_minor: r.amount_minor,
                                currency: r.currency.clone(),
                            };
                            (charge, row.inserted)
                        })
                        .clone();
                    if !inserted {
                        lost.push((answers.len(), r.idempotency_key.clone()));
                    }
                    Ok(charge)
                }
            });
        }
        if !lost.is_empty() {
            // Keys a concurrent charge recorded first: answer with that charge.
            let keys: Vec<String> = lost.iter().map(|(_, k)| k.clone()).collect();
            let winners: HashMap<String, Charge> =
                find_many(&conn, &keys).await?.into_iter().collect();
            for (i, key) in lost {
                answers[i] = winners
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| GatewayError::Transient("sandbox charge vanished".into()));
            }
        }
        Ok(answers)
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
