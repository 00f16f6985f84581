//! Buying an offer. A card purchase runs in two steps around the gateway call. The first
//! reserves: it writes the order (PROCESSING) and the subscription (PENDING_PAYMENT) in one
//! statement, so a concurrent duplicate purchase fails on the database's one-live-subscription
//! index *before* anything is charged, and it records a SETTLE_ORDER action. The second books
//! the gateway's answer. If the process dies in between, the settle job asks the gateway (by
//! the order's charge key) and finishes the order either way.
//!
//! The reads of the checks (replay, offer, partner, qualifications, live subscriptions, card,
//! clock offset, the receipt's recipients, the offer's benefit allocations) go in one
//! pipelined round trip: diesel-async pipelines futures polled together on a shared
//! `&AsyncPgConnection`, and Postgres runs them in the order sent. Only statements that do not
//! depend on each other go together; functions that can share the connection take `&PgConn`.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::booking::{book_failure, book_paid, Known};
use crate::audit::{self, Actor};
use crate::billing::orders::{
    self, lock, replay, request_hash, set_paid, BankTransferDetails, BANK_TRANSFER_DAYS,
};
use crate::billing::payment_methods;
use crate::billing::quote::{self, format_money};
use crate::billing::receipts;
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders as orders_t, subscriptions};
use crate::db::writes::{with_writes, Write};
use crate::db::PgConn;
use crate::due;
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::notify;
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::validation as v;

pub use crate::billing::orders::BankTransferInput;

#[derive(Debug, Clone, async_graphql::OneofObject)]
/// How an order is paid: a saved card or a bank transfer (exactly one).
pub enum PaymentInput {
    /// A saved card (see `addPaymentMethod`), charged at once.
    PaymentMethodId(async_graphql::ID),
    /// Electronic bank transfer: the order waits for the funds (30 days at most).
    BankTransfer(BankTransferInput),
}

#[derive(Debug, Clone, async_graphql::InputObject)]
/// A purchase of an offer.
pub struct PurchaseInput {
    /// `ACTION_PACK`, `SILVER` or `GOLD`.
    pub offer_id: String,
    /// The same key with the same input returns the first result; with other input, CONFLICT.
    pub idempotency_key: String,
    /// The version of the offer terms the buyer accepted (the offer's `termsVersion`).
    pub accept_terms_version: String,
    /// How it is paid.
    pub payment: PaymentInput,
    /// Competency packages: the competencies to bind (each qualified at the package's level).
    /// Default: every competency the partner is qualified for at that level.
    pub competencies: Option<Vec<String>>,
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
    let key = orders::idempotency_key(&input.idempotency_key)?;
    let mut competencies = input.competencies.clone();
    if let Some(c) = competencies.as_mut() {
        c.sort();
        c.dedup();
    }
    let hash = request_hash(&json!({
        "offer": input.offer_id,
        "terms": input.accept_terms_version,
        "payment": payment_json(&input.payment),
        "competencies": competencies,
    }));
    let (replayed, reads) = read(conn, svc, partner_id, &input, &key, &hash).await;
    if let Some(o) = replayed? {
        return Ok(o);
    }
    let checked = check(&input, competencies.as_deref(), reads)?;
    let now = crate::clock::now_at(checked.offset);
    let placed = Placed::new(svc, actor, partner_id, &checked, &key, &hash, now);
    let order = match reserve(conn, svc, &checked, &placed).await {
        Ok(o) => o,
        // The same key arrived concurrently: answer with what the winner stored.
        Err(AppError::Conflict(m)) => {
            return replay(conn, partner_id, &key, &hash)
                .await?
                .ok_or(AppError::Conflict(m))
        }
        Err(e) => return Err(e),
    };
    match &checked.payment {
        Payment::Card(card) => charge_and_book(conn, svc, &checked, card, order).await,
        Payment::BankTransfer(..) => Ok(order),
    }
}

/// The payment as the idempotency key's input hash sees it.
fn payment_json(payment: &PaymentInput) -> serde_json::Value {
    match payment {
        PaymentInput::PaymentMethodId(id) => json!({"card": id.as_str()}),
        PaymentInput::BankTransfer(b) => {
            json!({"bank": [b.contact_name, b.contact_phone, b.contact_email]})
        }
    }
}

/// What a purchase reads for its checks and its booking, each with its own outcome.
struct Reads {
    offer: AppResult<Offer>,
    allocations: AppResult<Vec<OfferBenefit>>,
    partner: AppResult<Partner>,
    quals: AppResult<Vec<Qualification>>,
    live: AppResult<Vec<Subscription>>,
    card: Option<AppResult<PaymentMethod>>,
    offset: AppResult<chrono::Duration>,
    to: AppResult<receipts::Recipients>,
}

/// Everything the checks and the booking read, in one round trip (pipelined; Postgres runs
/// the statements one after another as sent): the order stored under the key, if any, and
/// the rest, which only a replay would not need.
async fn read(
    conn: &PgConn,
    svc: &Services,
    partner_id: Uuid,
    input: &PurchaseInput,
    key: &str,
    hash: &str,
) -> (AppResult<Option<Order>>, Reads) {
    let card_id = match &input.payment {
        PaymentInput::PaymentMethodId(id) => Some(v::uuid_id("payment.paymentMethodId", id)),
        PaymentInput::BankTransfer(_) => None,
    };
    let partner_ids = [partner_id];
    let offer_ids = [input.offer_id.trim().to_owned()];
    let (replayed, offer, allocations, partner, quals, live, card, offset, to) = futures::join!(
        replay(conn, partner_id, key, hash),
        catalog::offer(conn, &offer_ids[0]),
        catalog::benefits(conn, &offer_ids),
        crate::partners::load_partner(conn, partner_id),
        catalog::qualifications(conn, partner_id),
        catalog::live_subscriptions(conn, partner_id),
        // The card, or why there is none (a bad id is reported after the checks).
        async {
            match card_id {
                Some(Ok(id)) => Some(payment_methods::usable(conn, partner_id, id).await),
                Some(Err(e)) => Some(Err(e)),
                None => None,
            }
        },
        crate::clock::offset(conn, &svc.config, partner_id),
        notify::admins_of(conn, &partner_ids),
    );
    let reads = Reads {
        offer,
        allocations,
        partner,
        quals,
        live,
        card,
        offset,
        to,
    };
    (replayed, reads)
}

/// How the order is paid, checked.
enum Payment {
    Card(PaymentMethod),
    /// Contact name, phone and email.
    BankTransfer(String, String, String),
}

/// A purchase that passed its checks, with what its booking needs.
struct Checked {
    offer: Offer,
    partner: Partner,
    allocations: Vec<OfferBenefit>,
    to: receipts::Recipients,
    offset: chrono::Duration,
    competencies: Vec<String>,
    upgrade: bool,
    quote: quote::Quote,
    payment: Payment,
}

/// The checks of a purchase, in the order a caller meets them: the offer, its terms, the
/// partner's eligibility, the competencies, then the payment.
fn check(
    input: &PurchaseInput,
    competencies: Option<&[String]>,
    reads: Reads,
) -> AppResult<Checked> {
    let offer = reads.offer.map_err(|_| {
        AppError::bad_input("offerId", format!("unknown offer `{}`", input.offer_id))
    })?;
    if input.accept_terms_version.trim() != offer.terms_version {
        return Err(AppError::bad_input(
            "acceptTermsVersion",
            format!("accept the offer terms, version {}", offer.terms_version),
        ));
    }
    let (partner, quals, live) = (reads.partner?, reads.quals?, reads.live?);
    let (offset, to, allocations) = (reads.offset?, reads.to?, reads.allocations?);
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
        Some(level) => catalog::package_competencies(level, competencies, &quals)?,
        None if competencies.is_some_and(|c| !c.is_empty()) => {
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
    let quote = quote::quote(offer.price_minor, &partner.country, upgrade);
    let payment = match &input.payment {
        PaymentInput::PaymentMethodId(_) => Payment::Card(
            reads
                .card
                .unwrap_or_else(|| Err(AppError::Internal("card not read".into())))?,
        ),
        PaymentInput::BankTransfer(b) => {
            let d = b.details("payment.bankTransfer")?;
            Payment::BankTransfer(d.contact_name, d.contact_phone, d.contact_email)
        }
    };
    Ok(Checked {
        offer,
        partner,
        allocations,
        to,
        offset,
        competencies,
        upgrade,
        quote,
        payment,
    })
}

/// The rows a purchase places: the subscription held for the partner, the order, its due
/// work (settlement of a card order, or expiry of a bank transfer) and its audit record.
struct Placed {
    subscription: NewSubscription,
    order: NewOrder,
    work: Vec<NewScheduledAction>,
    audit: Vec<AuditEntry>,
    /// When the order expires unpaid (a bank transfer).
    expires: Option<DateTime<Utc>>,
}

impl Placed {
    /// All of it in one statement ([`crate::db::writes`]): all or nothing without a
    /// transaction of its own. Another live subscription to the offer is ALREADY_OWNED; the
    /// same idempotency key stored meanwhile is a conflict (the caller replays).
    async fn insert(&self, mut conn: &PgConn) -> AppResult<Order> {
        let writes: Vec<Write> = vec![
            Box::new(diesel::insert_into(subscriptions::table).values(&self.subscription)),
            Box::new(due::insert_rows(&self.work)),
            Box::new(audit::insert_rows(&self.audit)),
        ];
        let order = diesel::insert_into(orders_t::table)
            .values(&self.order)
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

    fn new(
        svc: &Services,
        actor: &Actor,
        partner_id: Uuid,
        c: &Checked,
        key: &str,
        hash: &str,
        now: DateTime<Utc>,
    ) -> Self {
        let card = match &c.payment {
            Payment::Card(pm) => Some(pm.id),
            Payment::BankTransfer(..) => None,
        };
        let subscription = NewSubscription {
            id: Uuid::now_v7(),
            partner_id,
            offer_id: c.offer.id.clone(),
            status: SubscriptionStatus::PendingPayment,
            auto_renew: card.is_some(),
            term: 1,
            competencies: c.competencies.clone(),
            payment_method_id: card,
            upgrade_discount_used: c.upgrade,
        };
        let order = new_order(partner_id, c, subscription.id, key, hash, &actor.id, now);
        let settle_after = chrono::Duration::from_std(svc.config.billing.settle_after)
            .unwrap_or(chrono::Duration::minutes(2));
        let (kind, due_at) = match order.expires_at {
            None => (ActionKind::SettleOrder, now + settle_after),
            Some(expires) => (ActionKind::OrderExpiry, expires),
        };
        let audit = audit::entries_of(
            actor,
            "order.placed",
            vec![(
                Some(partner_id),
                ("order", order.id.to_string()),
                json!({
                    "number": order.number,
                    "offer": c.offer.id,
                    "payment": order.payment_kind,
                    "terms_version": c.offer.terms_version,
                    "total_minor": order.total_minor,
                    "upgrade_discount": c.upgrade,
                }),
            )],
        );
        let work = due::rows_of(&[due::Due {
            partner_id,
            kind,
            subject_id: order.id,
            term: 1,
            tag: String::new(),
            due_at,
        }]);
        Placed {
            expires: order.expires_at,
            subscription,
            order,
            work,
            audit,
        }
    }
}

/// The order of a purchase: PROCESSING until a card is charged, PENDING_PAYMENT for a bank
/// transfer (which expires after [`BANK_TRANSFER_DAYS`]).
fn new_order(
    partner_id: Uuid,
    c: &Checked,
    sub_id: Uuid,
    key: &str,
    hash: &str,
    placed_by: &str,
    now: DateTime<Utc>,
) -> NewOrder {
    let (status, payment_kind, card, bank) = match &c.payment {
        Payment::Card(pm) => (
            OrderStatus::Processing,
            PaymentKind::Card,
            Some(pm.id),
            None,
        ),
        Payment::BankTransfer(name, phone, email) => (
            OrderStatus::PendingPayment,
            PaymentKind::BankTransfer,
            None,
            Some(json!(BankTransferDetails {
                contact_name: name.clone(),
                contact_phone: phone.clone(),
                contact_email: email.clone(),
                reference: None,
            })),
        ),
    };
    let q = &c.quote;
    NewOrder {
        id: Uuid::now_v7(),
        partner_id,
        number: orders::new_number(),
        kind: OrderKind::Purchase,
        offer_id: c.offer.id.clone(),
        subscription_id: Some(sub_id),
        term: 1,
        status,
        payment_kind,
        payment_method_id: card,
        expires_at: bank
            .is_some()
            .then(|| now + chrono::Duration::days(BANK_TRANSFER_DAYS)),
        bank_transfer: bank,
        currency: c.offer.currency.clone(),
        price_minor: q.price_minor,
        discount_minor: q.discount_minor,
        tax_rate_bp: q.tax_rate_bp,
        tax_minor: q.tax_minor,
        total_minor: q.total_minor,
        terms_version: Some(c.offer.terms_version.clone()),
        competencies: c.competencies.clone(),
        idempotency_key: key.to_owned(),
        request_hash: hash.to_owned(),
        placed_by: placed_by.to_owned(),
        placed_at: now,
        paid_at: None,
        gateway_charge_id: None,
    }
}

/// Writes the reservation: a card order alone in one statement (no transaction needed), a
/// bank-transfer order with the email of its instructions.
async fn reserve(
    conn: &mut PgConn,
    svc: &Services,
    c: &Checked,
    placed: &Placed,
) -> AppResult<Order> {
    let Payment::BankTransfer(name, _, email) = &c.payment else {
        return placed.insert(conn).await;
    };
    conn.transaction::<_, AppError, _>(async |conn| {
        let order = placed.insert(conn).await?;
        notify::send(
            conn,
            &c.partner,
            Template::BankTransferInstructions,
            std::slice::from_ref(email),
            notify::base_context(&svc.config, &c.partner, &c.offer),
            json!({
                "contact_name": name,
                "order_number": order.number,
                "total": format_money(order.total_minor, &order.currency),
                "expires_on": placed.expires.map(|d| d.date_naive().to_string()),
                "renewal": false,
            }),
        )
        .await?;
        Ok(order)
    })
    .await
}

/// Charges the card of a reserved order, then books the gateway's answer in a transaction of
/// its own (unless the settlement job got there first).
async fn charge_and_book(
    conn: &mut PgConn,
    svc: &Services,
    c: &Checked,
    card: &PaymentMethod,
    order: Order,
) -> AppResult<Order> {
    let result = svc
        .gateway
        .charge(
            &format!("order:{}", order.id),
            &card.gateway_token,
            order.total_minor,
            &order.currency,
        )
        .await;
    if result.is_ok() {
        svc.config
            .billing
            .crash_point(crate::config::CrashPoint::Purchase);
    }
    conn.transaction::<_, AppError, _>(async |conn| {
        let now = crate::clock::now_at(c.offset);
        match &result {
            // PAID in the statement that checks it is still PROCESSING (and locks it).
            Ok(charge) => {
                match set_paid(conn, order.id, OrderStatus::Processing, &charge.id, now).await? {
                    Some(paid) => {
                        let known: Known = (&c.partner, &c.offer, &c.to, &c.allocations[..]);
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
