//! Orders: purchase by card or bank transfer, confirmation, cancellation, expiry, settlement
//! and refunds (PRODUCT.md 2.4).
//!
//! A card purchase runs in two transactions around the gateway call. The first reserves: it
//! writes the order (PROCESSING) and the subscription (PENDING_PAYMENT), so a concurrent
//! duplicate purchase fails on the database's one-live-subscription index *before* anything
//! is charged, and it records a SETTLE_ORDER action. The second books the gateway's answer.
//! If the process dies in between, the settle job asks the gateway (by the order's charge key)
//! and finishes the order either way.

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::billing::gateway::GatewayError;
use crate::billing::{format_money, invoices, payment_methods, quote};
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders, subscriptions};
use crate::db::writes::{with_writes, Write};
use crate::db::PgConn;
use crate::email::{self, Template};
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::lifecycle::actions::{self, Outcome};
use crate::lifecycle::notify;
use crate::lifecycle::subscriptions as subs;
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::validation as v;

/// Days a bank-transfer order waits for its funds.
pub const BANK_TRANSFER_DAYS: i64 = 30;

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct BankTransferInput {
    pub contact_name: String,
    /// E.164, for example +14255550100.
    pub contact_phone: String,
    pub contact_email: String,
}

#[derive(Debug, Clone, async_graphql::OneofObject)]
pub enum PaymentInput {
    /// A saved card (see `addPaymentMethod`), charged at once.
    PaymentMethodId(async_graphql::ID),
    /// Electronic bank transfer: the order waits for the funds (30 days at most).
    BankTransfer(BankTransferInput),
}

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct PurchaseInput {
    /// `ACTION_PACK`, `SILVER` or `GOLD`.
    pub offer_id: String,
    /// The same key with the same input returns the first result; with other input, CONFLICT.
    pub idempotency_key: String,
    /// The version of the offer terms the buyer accepted (the offer's `termsVersion`).
    pub accept_terms_version: String,
    pub payment: PaymentInput,
    /// Competency packages: the competencies to bind (each qualified at the package's level).
    /// Default: every competency the partner is qualified for at that level.
    pub competencies: Option<Vec<String>>,
}

/// What a bank-transfer order keeps about the transfer (column `orders.bank_transfer`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BankTransferDetails {
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    /// The payment reference an operator recorded when confirming the funds.
    pub reference: Option<String>,
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
    Ok(with_writes(
        vec![Box::new(actions::cancel_rows(&ids, settling, &[]))],
        paid,
    )
    .reuse()
    .get_result(&mut conn)
    .await
    .optional()?)
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

async fn lock(conn: &mut PgConn, id: Uuid) -> AppResult<Order> {
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
    let partner_id = principal.scope(partner_id)?;
    let mut q = orders::table
        .filter(orders::partner_id.eq(partner_id))
        .order(orders::id.desc())
        .limit(limit)
        .select(Order::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(orders::status.eq(s));
    }
    if let Some(b) = before {
        q = q.filter(orders::id.lt(b));
    }
    Ok(q.load(&mut conn).await?)
}

/// The receipts of paid orders, rendered with [`invoices::NUMBER_SLOT`] for the invoice
/// number, each with the order whose number it quotes (for [`invoices::issue_last`]).
pub(crate) fn receipts_quoting(
    svc: &Services,
    to: &std::collections::HashMap<Uuid, Vec<String>>,
    paid: &[invoices::ToInvoice<'_>],
) -> AppResult<Vec<(Uuid, NewEmail)>> {
    let mut quoting = Vec::new();
    for o in paid {
        let receipt = notify::compose(
            Template::OrderReceipt,
            vec![receipt_of(
                svc,
                to,
                o.partner,
                o.offer,
                o.order,
                invoices::NUMBER_SLOT,
                o.period,
            )],
        );
        quoting.extend(
            email::render_many(&receipt)?
                .into_iter()
                .map(|e| (o.order.id, e)),
        );
    }
    Ok(quoting)
}

/// Receipt recipients by partner ([`notify::recipients_of`]).
type Recipients = std::collections::HashMap<Uuid, Vec<String>>;

/// What a purchase has read for its checks and its booking uses: the partner, the offer, the
/// receipt's recipients and the offer's benefit allocations.
type Known<'a> = (&'a Partner, &'a Offer, &'a Recipients, &'a [OfferBenefit]);

/// One receipt's recipients and context (for `notify::compose`).
fn receipt_of<'a>(
    svc: &Services,
    to: &'a std::collections::HashMap<Uuid, Vec<String>>,
    partner: &'a Partner,
    offer: &Offer,
    order: &Order,
    invoice_number: &str,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> (
    &'a Partner,
    &'a [String],
    serde_json::Value,
    serde_json::Value,
) {
    (
        partner,
        to.get(&partner.id).map(Vec::as_slice).unwrap_or_default(),
        notify::base_context(&svc.config, partner, offer),
        json!({
            "order_number": order.number,
            "invoice_number": invoice_number,
            "total": format_money(order.total_minor, &order.currency),
            "kind": match order.kind { OrderKind::Purchase => "purchase", OrderKind::Renewal => "renewal" },
            "period_start": period.0.date_naive().to_string(),
            "period_end": period.1.date_naive().to_string(),
        }),
    )
}

/// Books the payment of a purchase order: PAID, then [`book_paid`]. Inside the caller's
/// transaction, with the order locked.
async fn book_payment(
    conn: &mut PgConn,
    svc: &Services,
    order: &Order,
    charge_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Order> {
    let paid = set_paid(conn, order.id, order.status, charge_id, now)
        .await?
        .ok_or_else(|| AppError::Internal(format!("order {} changed while locked", order.id)))?;
    book_paid(conn, svc, paid, now, None).await
}

/// What follows the payment of a purchase order (already PAID by [`set_paid`], which cancels
/// its settlement and expiry): the subscription's first term, the invoice and the receipt.
/// `known`: the order's partner, offer, receipt recipients and allocations when the caller has
/// read them already (a purchase, for its checks, milliseconds before), otherwise they are
/// read here.
async fn book_paid(
    conn: &mut PgConn,
    svc: &Services,
    order: Order,
    now: DateTime<Utc>,
    known: Option<Known<'_>>,
) -> AppResult<Order> {
    let sub_id = order
        .subscription_id
        .ok_or_else(|| AppError::Internal(format!("order {} has no subscription", order.id)))?;
    let sub = subs::activate(conn, svc, sub_id, now, known.map(|k| k.3)).await?;
    let loaded;
    let (partner, offer, to) = match known {
        Some((partner, offer, to, _)) => (partner, offer, to),
        None => {
            let partner = crate::enrollment::load_partner(conn, order.partner_id).await?;
            let offer = catalog::offer(conn, &order.offer_id).await?;
            let to = notify::recipients_of(conn, &[&partner], false).await?;
            loaded = (partner, offer, to);
            (&loaded.0, &loaded.1, &loaded.2)
        }
    };
    let period = (
        sub.term_started_at.unwrap_or(now),
        sub.anniversary_at.unwrap_or(now),
    );
    // Numbering the invoice locks the year's counter until commit, which serializes every
    // purchase: the receipt and the audit record are made first, quoting a slot for the
    // number, and go in the one statement that numbers the invoice, last before COMMIT.
    let paid = audit::entries_of(
        &Actor::system("billing"),
        "order.paid",
        vec![(
            Some(order.partner_id),
            ("order", order.id.to_string()),
            json!({
                "number": order.number,
                "invoice": invoices::NUMBER_SLOT,
                "total_minor": order.total_minor,
            }),
        )],
    );
    let to_invoice = invoices::ToInvoice {
        order: &order,
        offer,
        partner,
        period,
        issued_at: now,
    };
    let receipt = receipts_quoting(svc, to, std::slice::from_ref(&to_invoice))?;
    let paid = paid.into_iter().map(|a| (order.id, a)).collect();
    invoices::issue_last(conn, &[to_invoice], receipt, paid).await?;
    Ok(order)
}

/// A card order that will not be paid: the reserved subscription is released.
async fn book_failure(conn: &mut PgConn, order: &Order, e: &GatewayError) -> AppResult<Order> {
    actions::cancel_pending(conn, order.id, Some(&[ActionKind::SettleOrder])).await?;
    let failed = set_failed(conn, order.id, e).await?;
    diesel::update(orders::table.find(order.id))
        .set(orders::subscription_id.eq(None::<Uuid>))
        .reuse()
        .execute(conn)
        .await?;
    if let Some(sub_id) = order.subscription_id {
        diesel::delete(
            subscriptions::table
                .find(sub_id)
                .filter(subscriptions::status.eq(SubscriptionStatus::PendingPayment)),
        )
        .execute(conn)
        .await?;
    }
    Ok(Order {
        subscription_id: None,
        ..failed
    })
}

/// What a purchase writes before it charges: the subscription held for the partner, the
/// order, its due work (settlement or expiry) and its audit record.
struct Reservation<'a> {
    subscription: &'a NewSubscription,
    order: &'a NewOrder,
    work: &'a [NewScheduledAction],
    audit: &'a [AuditEntry],
}

impl Reservation<'_> {
    /// All of it in one statement ([`crate::db::writes`]): all or nothing without a
    /// transaction of its own. Another live subscription to the offer is ALREADY_OWNED; the
    /// same idempotency key stored meanwhile is a conflict (the caller replays).
    async fn insert(&self, mut conn: &PgConn) -> AppResult<Order> {
        let writes: Vec<Write> = vec![
            Box::new(diesel::insert_into(subscriptions::table).values(self.subscription)),
            Box::new(actions::insert_rows(self.work)),
            Box::new(audit::insert_rows(self.audit)),
        ];
        let order = diesel::insert_into(orders::table)
            .values(self.order)
            .returning(Order::as_returning());
        with_writes(writes, order)
            .reuse()
            .get_result(&mut conn)
            .await
            .map_err(|e| match unique_constraint(&e) {
                Some("subscriptions_one_live_per_offer") => AppError::not_eligible(
                    "ALREADY_OWNED",
                    "the partner already holds or is buying this offer (one per partner)",
                ),
                _ => e.into(),
            })
    }
}

fn unique_constraint(e: &diesel::result::Error) -> Option<&str> {
    match e {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            info,
        ) => info.constraint_name(),
        _ => None,
    }
}

/// Buys an offer. Returns the order: PAID (card charged), PAYMENT_FAILED (with the gateway's
/// code and message), PENDING_PAYMENT (bank transfer), or PROCESSING if an earlier request
/// with the same key is still under way.
pub async fn purchase(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    input: PurchaseInput,
) -> AppResult<Order> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    let key = idempotency_key(&input.idempotency_key)?;
    let mut competencies_req = input.competencies.clone();
    if let Some(c) = competencies_req.as_mut() {
        c.sort();
        c.dedup();
    }
    let payment_json = match &input.payment {
        PaymentInput::PaymentMethodId(id) => json!({"card": id.as_str()}),
        PaymentInput::BankTransfer(b) => {
            json!({"bank": [b.contact_name, b.contact_phone, b.contact_email]})
        }
    };
    let hash = request_hash(&json!({
        "offer": input.offer_id,
        "terms": input.accept_terms_version,
        "payment": payment_json,
        "competencies": competencies_req,
    }));
    // Everything the checks and the booking read, in one round trip (pipelined; Postgres
    // runs the statements one after another as sent). Only a replay would not need the rest.
    let card_id = match &input.payment {
        PaymentInput::PaymentMethodId(id) => Some(v::uuid_id("payment.paymentMethodId", id)),
        PaymentInput::BankTransfer(_) => None,
    };
    let read: &PgConn = conn;
    let partner_ids = [partner_id];
    let offer_ids = [input.offer_id.trim().to_owned()];
    let (replayed, offer, allocations, partner, quals, live, card, offset, to) = futures::join!(
        replay(read, partner_id, &key, &hash),
        catalog::offer(read, &offer_ids[0]),
        catalog::benefits(read, &offer_ids),
        crate::enrollment::load_partner(read, partner_id),
        catalog::qualifications(read, partner_id),
        catalog::live_subscriptions(read, partner_id),
        // The card, or why there is none (a bad id is reported after the checks below).
        async {
            match card_id {
                Some(Ok(id)) => Some(payment_methods::usable(read, partner_id, id).await),
                Some(Err(e)) => Some(Err(e)),
                None => None,
            }
        },
        crate::clock::offset(read, &svc.config, partner_id),
        notify::admins_of(read, &partner_ids),
    );
    if let Some(o) = replayed? {
        return Ok(o);
    }
    let offer = offer.map_err(|_| {
        AppError::bad_input("offerId", format!("unknown offer `{}`", input.offer_id))
    })?;
    if input.accept_terms_version.trim() != offer.terms_version {
        return Err(AppError::bad_input(
            "acceptTermsVersion",
            format!("accept the offer terms, version {}", offer.terms_version),
        ));
    }
    let (partner, quals, live, offset, to) = (partner?, quals?, live?, offset?, to?);
    let allocations = allocations?;
    let blockers = catalog::purchase_blockers(
        &offer,
        partner.vetting_status,
        &live.iter().collect::<Vec<_>>(),
        &quals,
    );
    if !blockers.is_empty() {
        return Err(AppError::NotEligible(blockers));
    }
    let competencies = match offer.level {
        Some(level) => catalog::package_competencies(level, competencies_req.as_deref(), &quals)?,
        None if competencies_req.as_ref().is_some_and(|c| !c.is_empty()) => {
            return Err(AppError::bad_input(
                "competencies",
                "only competency packages are bound to competencies",
            ))
        }
        None => vec![],
    };
    let upgrade = offer.level == Some(CompetencyLevel::Gold)
        && live
            .iter()
            .any(|s| s.offer_id == "SILVER" && s.status.in_good_standing());
    let q = quote::quote(offer.price_minor, &partner.country, upgrade);

    let (payment_kind, card, bank) = match &input.payment {
        PaymentInput::PaymentMethodId(_) => {
            let pm = card.unwrap_or_else(|| Err(AppError::Internal("card not read".into())))?;
            (PaymentKind::Card, Some(pm), None)
        }
        PaymentInput::BankTransfer(b) => (
            PaymentKind::BankTransfer,
            None,
            Some((
                v::text("payment.bankTransfer.contactName", &b.contact_name, 200)?,
                v::phone_e164("payment.bankTransfer.contactPhone", &b.contact_phone)?,
                v::email("payment.bankTransfer.contactEmail", &b.contact_email)?,
            )),
        ),
    };

    let order_id = Uuid::now_v7();
    let sub_id = Uuid::now_v7();
    let placed_by = actor.id.clone();
    let settle_after = chrono::Duration::from_std(svc.config.billing.settle_after)
        .unwrap_or(chrono::Duration::minutes(2));
    let now = crate::clock::now_at(offset);
    let new_sub = NewSubscription {
        id: sub_id,
        partner_id,
        offer_id: offer.id.clone(),
        status: SubscriptionStatus::PendingPayment,
        auto_renew: card.is_some(),
        term: 1,
        competencies: competencies.clone(),
        payment_method_id: card.as_ref().map(|c| c.id),
        upgrade_discount_used: upgrade,
    };
    let new_order = NewOrder {
        id: order_id,
        partner_id,
        number: new_number(),
        kind: OrderKind::Purchase,
        offer_id: offer.id.clone(),
        subscription_id: Some(sub_id),
        term: 1,
        status: if card.is_some() {
            OrderStatus::Processing
        } else {
            OrderStatus::PendingPayment
        },
        payment_kind,
        payment_method_id: card.as_ref().map(|c| c.id),
        bank_transfer: bank.as_ref().map(|b| {
            json!(BankTransferDetails {
                contact_name: b.0.clone(),
                contact_phone: b.1.clone(),
                contact_email: b.2.clone(),
                reference: None,
            })
        }),
        currency: offer.currency.clone(),
        price_minor: q.price_minor,
        discount_minor: q.discount_minor,
        tax_rate_bp: q.tax_rate_bp,
        tax_minor: q.tax_minor,
        total_minor: q.total_minor,
        terms_version: Some(offer.terms_version.clone()),
        competencies,
        idempotency_key: key.clone(),
        request_hash: hash.clone(),
        placed_by,
        placed_at: now,
        expires_at: bank
            .is_some()
            .then(|| now + chrono::Duration::days(BANK_TRANSFER_DAYS)),
        paid_at: None,
        gateway_charge_id: None,
    };
    let due = match new_order.expires_at {
        None => (ActionKind::SettleOrder, now + settle_after),
        Some(expires) => (ActionKind::OrderExpiry, expires),
    };
    let placed = audit::entries_of(
        actor,
        "order.placed",
        vec![(
            Some(partner_id),
            ("order", order_id.to_string()),
            json!({
                "number": new_order.number,
                "offer": offer.id,
                "payment": payment_kind,
                "terms_version": offer.terms_version,
                "total_minor": new_order.total_minor,
                "upgrade_discount": upgrade,
            }),
        )],
    );
    let work = actions::rows_of(&[actions::Due {
        partner_id,
        kind: due.0,
        subject_id: order_id,
        term: 1,
        tag: String::new(),
        due_at: due.1,
    }]);
    let reservation = Reservation {
        subscription: &new_sub,
        order: &new_order,
        work: &work,
        audit: &placed,
    };
    let reserved = match bank {
        // A card order: the reservation alone, one statement (no transaction needed).
        None => reservation.insert(conn).await,
        // A bank-transfer order: with the email of its instructions.
        Some((name, _, email)) => {
            conn.transaction::<_, AppError, _>(async |conn| {
                let order = reservation.insert(conn).await?;
                notify::send(
                    conn,
                    &partner,
                    Template::BankTransferInstructions,
                    std::slice::from_ref(&email),
                    notify::base_context(&svc.config, &partner, &offer),
                    json!({
                        "contact_name": name,
                        "order_number": order.number,
                        "total": format_money(order.total_minor, &order.currency),
                        "expires_on": due.1.date_naive().to_string(),
                    }),
                )
                .await?;
                Ok(order)
            })
            .await
        }
    };
    let order = match reserved {
        Ok(o) => o,
        // The same key arrived concurrently: answer with what the winner stored.
        Err(AppError::Conflict(m)) => {
            return replay(conn, partner_id, &key, &hash)
                .await?
                .ok_or(AppError::Conflict(m))
        }
        Err(e) => return Err(e),
    };
    let Some(card) = card else {
        return Ok(order);
    };

    let result = svc
        .gateway
        .charge(
            &format!("order:{}", order.id),
            &card.gateway_token,
            order.total_minor,
            &order.currency,
        )
        .await;
    conn.transaction::<_, AppError, _>(async |conn| {
        let now = crate::clock::now_at(offset);
        match &result {
            // PAID in the statement that checks it is still PROCESSING (and locks it).
            Ok(charge) => {
                match set_paid(conn, order.id, OrderStatus::Processing, &charge.id, now).await? {
                    Some(paid) => {
                        let known = (&partner, &offer, &to, &allocations[..]);
                        book_paid(conn, svc, paid, now, Some(known)).await
                    }
                    None => lock(conn, order.id).await, // settled meanwhile
                }
            }
            Err(e) => {
                let order = lock(conn, order.id).await?;
                if order.status != OrderStatus::Processing {
                    return Ok(order); // settled meanwhile
                }
                book_failure(conn, &order, e).await
            }
        }
    })
    .await
}

/// Operators: the funds of a bank-transfer order arrived.
pub async fn confirm_bank_transfer(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    order_id: Uuid,
    reference: &str,
) -> AppResult<Order> {
    principal.require(Action::Operate)?;
    let reference = v::text("reference", reference, 200)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let order = lock(conn, order_id).await?;
        if order.status != OrderStatus::PendingPayment {
            return Err(AppError::not_eligible(
                "ORDER_NOT_PENDING",
                format!(
                    "order {} is {}, not waiting for payment",
                    order.number, order.status
                ),
            ));
        }
        let now = crate::clock::now_for(conn, &svc.config, order.partner_id).await?;
        let mut details = order.bank_details().unwrap_or_default();
        details.reference = Some(reference.clone());
        diesel::update(orders::table.find(order.id))
            .set(orders::bank_transfer.eq(json!(details)))
            .execute(conn)
            .await?;
        let order = book_payment(conn, svc, &order, "", now).await?;
        audit::record(
            conn,
            actor,
            Some(order.partner_id),
            "order.bank_transfer_confirmed",
            ("order", order.id.to_string()),
            json!({"number": order.number, "reference": reference}),
        )
        .await?;
        Ok(order)
    })
    .await
}

/// The partner cancels a bank-transfer order that is still waiting for its funds.
pub async fn cancel(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    order_id: Uuid,
) -> AppResult<Order> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let order = lock(conn, order_id).await?;
        if order.partner_id != partner_id {
            return Err(AppError::NotFound("order"));
        }
        if order.status != OrderStatus::PendingPayment {
            return Err(AppError::not_eligible(
                "ORDER_NOT_PENDING",
                format!(
                    "only orders waiting for payment can be cancelled; this one is {}",
                    order.status
                ),
            ));
        }
        let now = crate::clock::now_for(conn, &svc.config, partner_id).await?;
        let order = close_unpaid(conn, &order, OrderStatus::Cancelled, now).await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "order.cancelled",
            ("order", order.id.to_string()),
            json!({"number": order.number}),
        )
        .await?;
        Ok(order)
    })
    .await
}

async fn close_unpaid(
    conn: &mut PgConn,
    order: &Order,
    status: OrderStatus,
    now: DateTime<Utc>,
) -> AppResult<Order> {
    actions::cancel_pending(conn, order.id, None).await?;
    let closed: Order = diesel::update(orders::table.find(order.id))
        .set((orders::status.eq(status), orders::updated_at.eq(Utc::now())))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    if let Some(sub_id) = order.subscription_id {
        let sub_status = if status == OrderStatus::Expired {
            SubscriptionStatus::OrderExpired
        } else {
            SubscriptionStatus::Cancelled
        };
        diesel::update(
            subscriptions::table
                .find(sub_id)
                .filter(subscriptions::status.eq(SubscriptionStatus::PendingPayment)),
        )
        .set((
            subscriptions::status.eq(sub_status),
            subscriptions::ended_at.eq(now),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    }
    Ok(closed)
}

/// Job: a bank-transfer order unpaid after 30 days expires.
pub(crate) async fn expire(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::PendingPayment {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    let order = close_unpaid(conn, &order, OrderStatus::Expired, now).await?;
    let partner = crate::enrollment::load_partner(conn, order.partner_id).await?;
    let offer = catalog::offer(conn, &order.offer_id).await?;
    let mut to = notify::recipients(conn, &partner, false).await?;
    if let Some(c) = order.bank_details().map(|b| b.contact_email) {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&c)) {
            to.push(c);
        }
    }
    notify::send(
        conn,
        &partner,
        Template::OrderExpired,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({"order_number": order.number}),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("billing"),
        Some(order.partner_id),
        "order.expired",
        ("order", order.id.to_string()),
        json!({"number": order.number}),
    )
    .await?;
    Ok(Outcome::Done("expired".into()))
}

/// Job: finishes a card order whose request died between reserving and booking, from the
/// gateway's records.
pub(crate) async fn settle(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::Processing {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    match svc
        .gateway
        .find_charge(&format!("order:{}", order.id))
        .await
    {
        Ok(Some(charge)) => {
            book_payment(conn, svc, &order, &charge.id, now).await?;
            Ok(Outcome::Done(format!("settled as paid ({})", charge.id)))
        }
        Ok(None) => {
            book_failure(
                conn,
                &order,
                &GatewayError::Transient("the payment was interrupted; nothing was charged".into()),
            )
            .await?;
            Ok(Outcome::Done(
                "settled as failed: no charge at the gateway".into(),
            ))
        }
        Err(e) => Ok(Outcome::Retry {
            at: now + chrono::Duration::minutes(1),
            error: e.message().to_owned(),
        }),
    }
}

/// Job: pays back a cancelled subscription's order.
pub(crate) async fn refund(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::Paid {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    let reference = match &order.gateway_charge_id {
        Some(charge) => match svc
            .gateway
            .refund(&format!("refund:{}", order.id), charge, order.total_minor)
            .await
        {
            Ok(id) => id,
            Err(GatewayError::Transient(m)) => {
                return Ok(Outcome::Retry {
                    at: now + chrono::Duration::minutes(5),
                    error: m,
                })
            }
            // Refused for good (an unknown or already refunded charge): trying again would
            // be refused again, forever. The order stays PAID, the refusal is audited and
            // logged, and the action is done with the reason for operators to act on.
            Err(e) => {
                tracing::error!(order = %order.number, code = e.code(), reason = e.message(), "the gateway refused a refund for good");
                audit::record(
                    conn,
                    &Actor::system("billing"),
                    Some(order.partner_id),
                    "order.refund_refused",
                    ("order", order.id.to_string()),
                    json!({"number": order.number, "code": e.code(), "reason": e.message()}),
                )
                .await?;
                return Ok(Outcome::Done(format!(
                    "refund refused by the gateway ({}): {}",
                    e.code(),
                    e.message()
                )));
            }
        },
        // Paid by bank transfer: finance pays it back the same way.
        None => "bank-transfer".to_owned(),
    };
    let order: Order = diesel::update(orders::table.find(order.id))
        .set((
            orders::status.eq(OrderStatus::Refunded),
            orders::refunded_minor.eq(order.total_minor),
            orders::refunded_at.eq(now),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    let partner = crate::enrollment::load_partner(conn, order.partner_id).await?;
    let offer = catalog::offer(conn, &order.offer_id).await?;
    let to = notify::recipients(conn, &partner, false).await?;
    notify::send(
        conn,
        &partner,
        Template::RefundProcessed,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({
            "order_number": order.number,
            "amount": format_money(order.refunded_minor, &order.currency),
        }),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("billing"),
        Some(order.partner_id),
        "order.refunded",
        ("order", order.id.to_string()),
        json!({"number": order.number, "amount_minor": order.refunded_minor, "reference": reference}),
    )
    .await?;
    Ok(Outcome::Done(format!("refunded ({reference})")))
}
