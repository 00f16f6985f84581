//! Order rows (PRODUCT.md 2.4): inserting, paying, failing, locking and listing orders, and
//! the idempotency keys of purchases and renewals (the same key with the same input returns
//! the first order; with other input, CONFLICT). Bank-transfer details are kept as JSON
//! (`orders.bank_transfer`) to stay within diesel's 32-column tables.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::orders;
use crate::db::writes::with_writes;
use crate::db::PgConn;
use crate::due;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::providers::payments::GatewayError;

/// Days a bank-transfer order waits for its funds.
pub const BANK_TRANSFER_DAYS: i64 = 30;

/// What a bank-transfer order keeps about the transfer (column `orders.bank_transfer`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankTransferDetails {
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    /// The payment reference an operator recorded when confirming the funds.
    pub reference: Option<String>,
}

/// The contact for paying an order by electronic bank transfer (a purchase or a renewal).
#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct BankTransferInput {
    /// Who arranges the transfer at the partner.
    pub contact_name: String,
    /// E.164, for example +14255550100.
    pub contact_phone: String,
    /// That contact's work email; the transfer instructions are sent there.
    pub contact_email: String,
}

impl BankTransferInput {
    /// The contact, checked; `at` is where the input sits (`payment.bankTransfer`), for errors.
    pub fn details(&self, at: &str) -> AppResult<BankTransferDetails> {
        Ok(BankTransferDetails {
            contact_name: crate::validation::text(
                &format!("{at}.contactName"),
                &self.contact_name,
                200,
            )?,
            contact_phone: crate::validation::phone_e164(
                &format!("{at}.contactPhone"),
                &self.contact_phone,
            )?,
            contact_email: crate::validation::email(
                &format!("{at}.contactEmail"),
                &self.contact_email,
            )?,
            reference: None,
        })
    }
}

impl Order {
    pub fn bank_details(&self) -> Option<BankTransferDetails> {
        self.bank_transfer
            .as_ref()
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }
}

pub fn idempotency_key(raw: &str) -> AppResult<String> {
    let key = raw.trim();
    if key.is_empty() || key.len() > 200 || !key.chars().all(|c| c.is_ascii_graphic()) {
        return Err(AppError::bad_input(
            "idempotencyKey",
            "give an idempotency key of 1 to 200 visible ASCII characters",
        ));
    }
    Ok(key.to_owned())
}

pub fn request_hash(input: &serde_json::Value) -> String {
    hex::encode(Sha256::digest(input.to_string().as_bytes()))
}

/// The order stored under this key, if the input matches; CONFLICT if it does not.
pub async fn replay(
    mut conn: &PgConn,
    partner_id: Uuid,
    key: &str,
    hash: &str,
) -> AppResult<Option<Order>> {
    let existing: Option<Order> = orders::table
        .filter(orders::partner_id.eq(partner_id))
        .filter(orders::idempotency_key.eq(key))
        .select(Order::as_select())
        .first(&mut conn)
        .await
        .optional()?;
    match existing {
        Some(o) if o.request_hash == hash => Ok(Some(o)),
        Some(_) => Err(AppError::Conflict(
            "this idempotency key was already used with different input".into(),
        )),
        None => Ok(None),
    }
}

pub fn new_number() -> String {
    let id = Uuid::new_v4().simple().to_string().to_uppercase();
    format!("ORD-{}", &id[..12])
}

pub(crate) async fn insert(conn: &PgConn, order: NewOrder) -> AppResult<Order> {
    insert_many(conn, vec![order])
        .await?
        .pop()
        .ok_or_else(|| AppError::Internal("order insert returned nothing".into()))
}

/// Inserts orders in one statement; returns them in the given order.
pub(crate) async fn insert_many(mut conn: &PgConn, new: Vec<NewOrder>) -> AppResult<Vec<Order>> {
    let ids: Vec<Uuid> = new.iter().map(|o| o.id).collect();
    let mut rows: Vec<Order> = diesel::insert_into(orders::table)
        .values(&new)
        .returning(Order::as_returning())
        .reuse_for_rows(new.len())
        .get_results(&mut conn)
        .await?;
    rows.sort_by_key(|o| ids.iter().position(|id| *id == o.id));
    Ok(rows)
}

/// PAID if the order is still `from`, and its pending settlement or expiry cancelled, in one
/// statement; None otherwise (settled meanwhile; then no pending work of it is left).
pub(crate) async fn set_paid(
    mut conn: &PgConn,
    id: Uuid,
    from: OrderStatus,
    charge_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Option<Order>> {
    let ids = [id];
    let settling = Some(&[ActionKind::SettleOrder, ActionKind::OrderExpiry][..]);
    let paid = diesel::update(orders::table.find(id).filter(orders::status.eq(from)))
        .set((
            orders::status.eq(OrderStatus::Paid),
            orders::paid_at.eq(now),
            orders::gateway_charge_id.eq(Some(charge_id).filter(|c| !c.is_empty())),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning());
    Ok(
        with_writes(vec![Box::new(due::cancel_rows(&ids, settling, &[]))], paid)
            .reuse()
            .get_result(&mut conn)
            .await
            .optional()?,
    )
}

pub(crate) async fn set_failed(conn: &mut PgConn, id: Uuid, e: &GatewayError) -> AppResult<Order> {
    Ok(diesel::update(orders::table.find(id))
        .set((
            orders::status.eq(OrderStatus::PaymentFailed),
            orders::failure_code.eq(e.code()),
            orders::failure_message.eq(e.message()),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning())
        .reuse()
        .get_result(conn)
        .await?)
}

/// A PROCESSING order whose payment turned out to be another order's (the same charge key
/// paid and booked the same thing): CANCELLED with the reason, so nothing is booked twice.
pub(crate) async fn set_superseded(conn: &mut PgConn, id: Uuid, reason: &str) -> AppResult<Order> {
    Ok(diesel::update(orders::table.find(id))
        .set((
            orders::status.eq(OrderStatus::Cancelled),
            orders::failure_code.eq("ALREADY_RENEWED"),
            orders::failure_message.eq(reason),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?)
}

/// An order, read without locking it (what to ask the gateway, before a transaction).
pub(crate) async fn read(conn: &mut PgConn, id: Uuid) -> AppResult<Order> {
    orders::table
        .find(id)
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("order"))
}

pub(crate) async fn lock(conn: &mut PgConn, id: Uuid) -> AppResult<Order> {
    orders::table
        .find(id)
        .for_update()
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("order"))
}

/// An order the caller may see (its partner's; operators any).
pub async fn load_visible(conn: &mut PgConn, principal: &Principal, id: Uuid) -> AppResult<Order> {
    principal.require(Action::ViewPartner)?;
    let mut q = orders::table
        .find(id)
        .select(Order::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(orders::partner_id.eq(principal.scope(None)?));
    }
    q.first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("order"))
}

/// Newest first.
pub async fn list(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    status: Option<OrderStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<Order>> {
    principal.require(Action::ViewPartner)?;
    let mut q = orders_filtered(principal.scope(partner_id)?, status)
        .order(orders::id.desc())
        .limit(limit)
        .select(Order::as_select());
    if let Some(b) = before {
        q = q.filter(orders::id.lt(b));
    }
    Ok(q.load(&mut conn).await?)
}

/// How many orders [`list`] lists over every page (`totalCount`).
pub async fn count(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    status: Option<OrderStatus>,
) -> AppResult<i64> {
    principal.require(Action::ViewPartner)?;
    Ok(orders_filtered(principal.scope(partner_id)?, status)
        .count()
        .get_result(&mut conn)
        .await?)
}

fn orders_filtered(
    partner_id: Uuid,
    status: Option<OrderStatus>,
) -> orders::BoxedQuery<'static, diesel::pg::Pg> {
    let mut q = orders::table
        .filter(orders::partner_id.eq(partner_id))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(orders::status.eq(s));
    }
    q
}
