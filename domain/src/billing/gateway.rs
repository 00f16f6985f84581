//! The payment gateway seam. Cards reach us only to be tokenized: the gateway keeps the number
//! and gives back a token; we store the token, the brand, the last four digits and the expiry.
//! Every charge carries an idempotency key: a gateway records a *successful* charge under its
//! key and answers a repeat with the same charge, so a job that runs twice never charges twice.
//! Declines and transient failures are not recorded, so the same key can be tried again.

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
        let mut conn = self.conn().await?;
        if let Some(existing) = find(&mut conn, idempotency_key).await? {
            return Ok(existing);
        }
        let behaviour: Option<CardBehaviour> = sandbox_cards::table
            .find(token)
            .select(sandbox_cards::behaviour)
            .first(&mut conn)
            .await
            .optional()
            .map_err(transient)?;
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
            Some(CardBehaviour::Succeed) => {
                let id = format!("ch_sandbox_{}", Uuid::new_v4().simple());
                // A concurrent charge with the same key loses the insert and reads the winner.
                let inserted = diesel::insert_into(sandbox_charges::table)
                    .values((
                        sandbox_charges::id.eq(&id),
                        sandbox_charges::idempotency_key.eq(idempotency_key),
                        sandbox_charges::token.eq(token),
                        sandbox_charges::amount_minor.eq(amount_minor),
                        sandbox_charges::currency.eq(currency),
                    ))
                    .on_conflict(sandbox_charges::idempotency_key)
                    .do_nothing()
                    .execute(&mut conn)
                    .await
                    .map_err(transient)?;
                if inserted == 0 {
                    return find(&mut conn, idempotency_key)
                        .await?
                        .ok_or_else(|| GatewayError::Transient("sandbox charge vanished".into()));
                }
                Ok(Charge {
                    id,
                    amount_minor,
                    currency: currency.to_owned(),
                })
            }
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
    sandbox_charges::table
        .filter(sandbox_charges::idempotency_key.eq(idempotency_key))
        .select((
            sandbox_charges::id,
            sandbox_charges::amount_minor,
            sandbox_charges::currency,
        ))
        .first::<(String, i64, String)>(conn)
        .await
        .optional()
        .map(|r| {
            r.map(|(id, amount_minor, currency)| Charge {
                id,
                amount_minor,
                currency,
            })
        })
        .map_err(transient)
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
