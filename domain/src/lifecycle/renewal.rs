//! Booking paid renewals, shared by automatic and manual renewal: the renewal order, the next
//! term (from the old anniversary date, not the payment date), the new term's due work, the
//! benefits' reset, the invoice and the receipt. A fixed number of statements books any
//! number of renewals (a renewal storm books them a batch at a time). Invoices are numbered
//! last, just before commit, the way purchases number theirs ([`invoice_renewals`]).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::plan;
use crate::audit::{self, Actor};
use crate::billing::{invoices, orders, quote, receipts};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::providers::payments::Charge;
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, changed_many};
/// Paid renewals: each next term runs from the old anniversary date, auto-renew is on again,
/// the old term's pending work is cancelled and the new term's scheduled. A fixed number of
/// statements for any number of subscriptions; returns them as updated, in the given order.
/// `running`: the due actions the caller is running (they stay PENDING here; it marks them).
async fn extend_terms(
    conn: &mut PgConn,
    each: &[(&Subscription, Option<Uuid>, bool)],
    running: &[Uuid],
) -> AppResult<Vec<Subscription>> {
    use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let ids: Vec<Uuid> = each.iter().map(|(sub, ..)| sub.id).collect();
    crate::due::cancel_pending_of(conn, &ids, None, running).await?;
    let mut ads = Vec::with_capacity(each.len());
    let mut cards = Vec::with_capacity(each.len());
    let mut autos = Vec::with_capacity(each.len());
    for (sub, payment_method_id, auto_renew) in each {
        ads.push(rules::next_anniversary(anniversary(sub)?));
        cards.push(payment_method_id.or(sub.payment_method_id));
        autos.push(*auto_renew);
    }
    let mut updated: Vec<Subscription> = diesel::sql_query(
        "UPDATE subscriptions s SET term = s.term + 1, term_started_at = s.anniversary_at,
             anniversary_at = v.ad, status = $4, auto_renew = v.auto, payment_method_id = v.pm,
             renewal_failures = 0, last_renewal_error = NULL, updated_at = $5
         FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $6::bool[]) AS v(id, ad, pm, auto)
         WHERE s.id = v.id
         RETURNING s.*",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Timestamptz>, _>(&ads)
    .bind::<Array<Nullable<SqlUuid>>, _>(&cards)
    .bind::<Text, _>(SubscriptionStatus::Active)
    .bind::<Timestamptz, _>(Utc::now())
    .bind::<Array<diesel::sql_types::Bool>, _>(&autos)
    .reuse()
    .load(conn)
    .await?;
    updated.sort_by_key(|s| ids.iter().position(|id| *id == s.id));
    let mut due = Vec::new();
    for sub in &updated {
        due.extend(plan::term_due(sub)?);
    }
    crate::due::schedule_many(conn, &due).await?;
    close_awaited_transfers(conn, &ids).await?;
    crate::benefits::entitlements::renew_many(conn, &updated).await?;
    changed_many(conn, &updated).await?;
    Ok(updated)
}

/// Renewal orders still waiting for a bank transfer for terms just renewed another way (by
/// card): CANCELLED, with their expiry. One statement when there are none.
async fn close_awaited_transfers(conn: &mut PgConn, sub_ids: &[Uuid]) -> AppResult<()> {
    use crate::db::schema::orders as o;
    let closed: Vec<Uuid> = diesel::update(
        o::table
            .filter(o::subscription_id.eq_any(sub_ids))
            .filter(o::kind.eq(OrderKind::Renewal))
            .filter(o::status.eq(OrderStatus::PendingPayment)),
    )
    .set((
        o::status.eq(OrderStatus::Cancelled),
        o::failure_code.eq("ALREADY_RENEWED"),
        o::failure_message.eq("the term was renewed by card before the bank transfer arrived"),
        o::updated_at.eq(Utc::now()),
    ))
    .returning(o::id)
    .get_results(conn)
    .await?;
    if !closed.is_empty() {
        crate::due::cancel_pending_of(conn, &closed, None, &[]).await?;
    }
    Ok(())
}

/// The charge key of a term's renewal: automatic and manual renewals of one term share it,
/// so a term is never paid twice whatever runs concurrently or again.
pub fn renewal_charge_key(sub_id: Uuid, term: i32) -> String {
    format!("renewal:{sub_id}:{term}")
}

/// One attempt at paying a term's renewal: what the renewal order records.
pub(crate) struct Renewal<'a> {
    pub(crate) sub: &'a Subscription,
    pub(crate) partner: &'a Partner,
    pub(crate) offer: &'a Offer,
    pub(crate) quote: quote::Quote,
    pub(crate) payment_method_id: Option<Uuid>,
    pub(crate) idempotency_key: String,
    pub(crate) request_hash: String,
    pub(crate) placed_by: String,
    pub(crate) now: DateTime<Utc>,
    /// Auto-renew for the next term: on after a manual renewal; after an automatic one, as it
    /// was when booked (turned off while the charge was under way, it stays off).
    pub(crate) auto_renew_after: bool,
}

/// What a renewal of `sub` needs, quoted (no discount on renewals).
pub(crate) async fn renewal_inputs(
    conn: &mut PgConn,
    sub: &Subscription,
) -> AppResult<(Partner, Offer, quote::Quote)> {
    let (mut partners, mut offers) = renewal_inputs_of(conn, &[sub]).await?;
    let partner = partners
        .remove(&sub.partner_id)
        .ok_or(AppError::NotFound("partner"))?;
    let offer = offers
        .remove(&sub.offer_id)
        .ok_or(AppError::NotFound("offer"))?;
    let q = renewal_quote(&partner, &offer);
    Ok((partner, offer, q))
}

/// The partners and offers of these subscriptions, one query each.
pub(crate) async fn renewal_inputs_of(
    conn: &mut PgConn,
    subs: &[&Subscription],
) -> AppResult<(HashMap<Uuid, Partner>, HashMap<String, Offer>)> {
    let partner_ids: Vec<Uuid> = subs.iter().map(|s| s.partner_id).collect();
    let mut offer_ids: Vec<String> = subs.iter().map(|s| s.offer_id.clone()).collect();
    offer_ids.sort();
    offer_ids.dedup();
    let partners = crate::partners::load_partners(conn, &partner_ids).await?;
    let offers = crate::catalog::offers_by_id(conn, &offer_ids).await?;
    Ok((
        partners.into_iter().map(|p| (p.id, p)).collect(),
        offers.into_iter().map(|o| (o.id.clone(), o)).collect(),
    ))
}

pub(crate) fn renewal_quote(partner: &Partner, offer: &Offer) -> quote::Quote {
    quote::quote(offer.price_minor, &partner.country, false)
}

impl Renewal<'_> {
    /// The renewal order; PAID (with what the gateway took) when `charge` is given.
    pub(crate) fn new_order(
        &self,
        status: OrderStatus,
        total_minor: i64,
        charge: Option<&Charge>,
    ) -> NewOrder {
        NewOrder {
            id: Uuid::now_v7(),
            partner_id: self.sub.partner_id,
            number: orders::new_number(),
            kind: OrderKind::Renewal,
            offer_id: self.offer.id.clone(),
            subscription_id: Some(self.sub.id),
            term: self.sub.term + 1,
            status,
            payment_kind: PaymentKind::Card,
            payment_method_id: self.payment_method_id,
            bank_transfer: None,
            currency: self.offer.currency.clone(),
            price_minor: self.quote.price_minor,
            discount_minor: self.quote.discount_minor,
            tax_rate_bp: self.quote.tax_rate_bp,
            tax_minor: self.quote.tax_minor,
            total_minor,
            terms_version: Some(self.offer.terms_version.clone()),
            competencies: self.sub.competencies.clone(),
            idempotency_key: self.idempotency_key.clone(),
            request_hash: self.request_hash.clone(),
            placed_by: self.placed_by.clone(),
            placed_at: self.now,
            expires_at: None,
            paid_at: charge.map(|_| self.now),
            gateway_charge_id: charge.map(|c| c.id.clone()).filter(|c| !c.is_empty()),
        }
    }

    /// The renewal order of a failed attempt (PAYMENT_FAILED is set by the caller).
    pub(crate) async fn insert_order(
        &self,
        conn: &mut PgConn,
        status: OrderStatus,
        total_minor: i64,
    ) -> AppResult<Order> {
        orders::insert(conn, self.new_order(status, total_minor, None)).await
    }

    /// Books one successful charge (see [`book_all`]).
    pub(crate) async fn book(
        &self,
        conn: &mut PgConn,
        svc: &Services,
        actor: &Actor,
        charge: &Charge,
    ) -> AppResult<Order> {
        let (mut orders, uninvoiced) = book_all(conn, actor, &[(self, charge)], &[]).await?;
        invoice_renewals(conn, svc, uninvoiced).await?;
        orders
            .pop()
            .ok_or_else(|| AppError::Internal("renewal not booked".into()))
    }
}

/// Books successful renewal charges: PAID renewal orders, the next terms and audit records,
/// with a fixed number of statements however many there are (a renewal storm books them a
/// batch at a time). Inside the caller's transaction, with the subscriptions locked. Returns
/// the orders in the given order, and what [`invoice_renewals`] must still invoice before the
/// caller commits.
pub(crate) async fn book_all(
    conn: &mut PgConn,
    actor: &Actor,
    paid: &[(&Renewal<'_>, &Charge)],
    running: &[Uuid],
) -> AppResult<(Vec<Order>, Uninvoiced)> {
    if paid.is_empty() {
        return Ok((vec![], Uninvoiced::default()));
    }
    // What the gateway actually took is the truth (a price change between attempts cannot
    // make the books disagree with the charge).
    let new = paid
        .iter()
        .map(|(r, charge)| r.new_order(OrderStatus::Paid, charge.amount_minor, Some(charge)))
        .collect();
    let orders = orders::insert_many(conn, new).await?;
    let renewals: Vec<&Renewal> = paid.iter().map(|(r, _)| *r).collect();
    let uninvoiced = extend_paid(conn, actor, &renewals, &orders, running).await?;
    Ok((orders, uninvoiced))
}

/// What follows paid renewal orders (already PAID): the next terms, the audit records, and
/// what [`invoice_renewals`] must still invoice. `orders[i]` pays `renewals[i]`.
pub(crate) async fn extend_paid(
    conn: &mut PgConn,
    actor: &Actor,
    renewals: &[&Renewal<'_>],
    orders: &[Order],
    running: &[Uuid],
) -> AppResult<Uninvoiced> {
    let each: Vec<_> = renewals
        .iter()
        .map(|r| (r.sub, r.payment_method_id, r.auto_renew_after))
        .collect();
    let extended = extend_terms(conn, &each, running).await?;
    let mut audit_entries = Vec::with_capacity(renewals.len());
    let mut uninvoiced = Uninvoiced::default();
    for ((r, order), sub) in renewals.iter().zip(orders).zip(&extended) {
        audit_entries.push((
            Some(r.sub.partner_id),
            ("subscription", r.sub.id.to_string()),
            json!({"order": order.number, "term": sub.term}),
        ));
        uninvoiced.0.push(Booked {
            partner: r.partner.clone(),
            offer: r.offer.clone(),
            order: order.clone(),
            period: (sub.term_started_at.unwrap_or(r.now), anniversary(sub)?),
            issued_at: r.now,
        });
    }
    audit::record_many(conn, actor, "subscription.renewed", audit_entries).await?;
    Ok(uninvoiced)
}

/// A renewal charge that went through after its subscription ended (a lapse or a cancellation
/// decided while the charge was in flight): the money is recorded on a PAID renewal order and
/// paid back at once (its refund, `REFUND_PENDING`); no term is added.
pub(crate) async fn refund_stray(
    conn: &mut PgConn,
    actor: &Actor,
    order: &Order,
    now: DateTime<Utc>,
) -> AppResult<()> {
    super::refunds::request(conn, order, now).await?;
    audit::record(
        conn,
        actor,
        Some(order.partner_id),
        "order.renewal_charged_after_end",
        ("order", order.id.to_string()),
        json!({"number": order.number, "total_minor": order.total_minor,
               "subscription": order.subscription_id, "refund": "REFUND_PENDING"}),
    )
    .await
}

/// Paid renewal orders still to invoice (see [`invoice_renewals`]).
#[derive(Default)]
pub(crate) struct Uninvoiced(Vec<Booked>);

/// A booked renewal order with what its invoice and receipt need (owned: it outlives the
/// batch's borrowed inputs until [`invoice_renewals`]).
struct Booked {
    partner: Partner,
    offer: Offer,
    order: Order,
    period: (DateTime<Utc>, DateTime<Utc>),
    issued_at: DateTime<Utc>,
}

impl Uninvoiced {
    pub(crate) fn extend(&mut self, more: Uninvoiced) {
        self.0.extend(more.0);
    }
}

/// Invoices booked renewals and queues their receipts, rendered first with a slot for the
/// number: the year's invoice counter stays locked from the one statement that numbers them
/// (and writes the receipts) until the transaction commits, so callers do this last.
pub(crate) async fn invoice_renewals(
    conn: &mut PgConn,
    svc: &Services,
    uninvoiced: Uninvoiced,
) -> AppResult<()> {
    let list = uninvoiced.0;
    if list.is_empty() {
        return Ok(());
    }
    let partners: Vec<&Partner> = list.iter().map(|u| &u.partner).collect();
    let to = crate::notify::recipients_of(conn, &partners, false).await?;
    let to_invoice: Vec<invoices::ToInvoice> = list
        .iter()
        .map(|u| invoices::ToInvoice {
            order: &u.order,
            offer: &u.offer,
            partner: &u.partner,
            period: u.period,
            issued_at: u.issued_at,
        })
        .collect();
    let receipts = receipts::receipts_quoting(svc, &to, &to_invoice)?;
    invoices::issue_last(conn, &to_invoice, receipts, vec![]).await?;
    Ok(())
}
