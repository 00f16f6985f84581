//! Subscriptions: activation, renewal (automatic and by hand), auto-renew off, reminders, the
//! renewal window, lapse, refund eligibility and cancellation (PRODUCT.md 2.5). The handlers
//! called by [`super::actions::run`] each re-read and lock the subscription and do nothing
//! when the state moved on (another term, already lapsed): running one twice is harmless.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::actions::{self, Outcome};
use super::notify;
use super::rules;
use crate::audit::{self, Actor};
use crate::billing::gateway::{Charge, ChargeRequest, GatewayError};
use crate::billing::{format_money, invoices, orders, payment_methods, quote};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders as orders_t, payment_methods as pm_t, subscriptions};
use crate::db::writes::Write;
use crate::db::PgConn;
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::permissions::{Action, Principal};
use crate::services::Services;

/// At most this many transient gateway failures in a row before a renewal attempt counts as
/// declined.
const TRANSIENT_TRIES: i32 = 3;

pub(crate) async fn lock(conn: &mut PgConn, id: Uuid) -> AppResult<Subscription> {
    subscriptions::table
        .find(id)
        .for_update()
        .select(Subscription::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("subscription"))
}

/// A subscription the caller may see (its partner's; operators any), optionally locked.
pub async fn load_visible(
    conn: &mut PgConn,
    principal: &Principal,
    id: Uuid,
    for_update: bool,
) -> AppResult<Subscription> {
    principal.require(Action::ViewPartner)?;
    let mut q = subscriptions::table
        .find(id)
        .select(Subscription::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(subscriptions::partner_id.eq(principal.scope(None)?));
    }
    let sub = q
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("subscription"))?;
    if for_update {
        lock(conn, sub.id).await
    } else {
        Ok(sub)
    }
}

/// Newest first; `statuses` narrows the list.
pub async fn list(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    statuses: Option<Vec<SubscriptionStatus>>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<Subscription>> {
    principal.require(Action::ViewPartner)?;
    let partner_id = principal.scope(partner_id)?;
    let mut q = subscriptions::table
        .filter(subscriptions::partner_id.eq(partner_id))
        .order(subscriptions::id.desc())
        .limit(limit)
        .select(Subscription::as_select())
        .into_boxed();
    if let Some(s) = statuses {
        q = q.filter(subscriptions::status.eq_any(s));
    }
    if let Some(b) = before {
        q = q.filter(subscriptions::id.lt(b));
    }
    Ok(q.load(&mut conn).await?)
}

fn anniversary(sub: &Subscription) -> AppResult<DateTime<Utc>> {
    sub.anniversary_at
        .ok_or_else(|| AppError::Internal(format!("subscription {} has no anniversary", sub.id)))
}

/// The due work of the first term: the lapse at the window's end always; the renewal charge
/// on the AD with auto-renew on, else the reminders and the window ([`manual_renewal_due`]).
fn first_term_due(sub: &Subscription, now: DateTime<Utc>) -> AppResult<Vec<actions::Due>> {
    let mut due = term_due(sub)?;
    if !sub.auto_renew {
        due.extend(manual_renewal_due(sub, now)?);
    }
    Ok(due)
}

/// A piece of the subscription's due work in its current term.
fn work_of(sub: &Subscription, kind: ActionKind, tag: &str, due_at: DateTime<Utc>) -> actions::Due {
    actions::Due {
        partner_id: sub.partner_id,
        kind,
        subject_id: sub.id,
        term: sub.term,
        tag: tag.to_owned(),
        due_at,
    }
}

/// The due work every term has: the lapse, and with auto-renew on the renewal charge.
fn term_due(sub: &Subscription) -> AppResult<Vec<actions::Due>> {
    let ad = anniversary(sub)?;
    let due = |kind, tag: &str, due_at| work_of(sub, kind, tag, due_at);
    let mut list = vec![due(ActionKind::Lapse, "", rules::lapse_at(ad))];
    if sub.auto_renew {
        list.push(due(ActionKind::RenewalCharge, "1", ad));
    }
    Ok(list)
}

/// With auto-renew off: the reminders still ahead, and entering the window on the AD.
async fn schedule_manual_renewal(
    conn: &mut PgConn,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> AppResult<()> {
    actions::schedule_many(conn, &manual_renewal_due(sub, now)?).await
}

/// The work [`schedule_manual_renewal`] records.
fn manual_renewal_due(sub: &Subscription, now: DateTime<Utc>) -> AppResult<Vec<actions::Due>> {
    let ad = anniversary(sub)?;
    let due = |kind, tag: &str, due_at| work_of(sub, kind, tag, due_at);
    let mut list = Vec::new();
    for (tag, days) in rules::REMINDERS {
        let at = rules::reminder_due(ad, *days);
        if at > now {
            list.push(due(ActionKind::Reminder, tag, at));
        }
    }
    if sub.status == SubscriptionStatus::Active {
        list.push(due(ActionKind::EnterRenewalWindow, "", ad));
    }
    Ok(list)
}

/// Starts the first term of a paid purchase.
/// `allocations`: the offer's benefit allocations when the caller has read them.
pub(crate) async fn activate(
    conn: &mut PgConn,
    svc: &Services,
    sub_id: Uuid,
    now: DateTime<Utc>,
    allocations: Option<&[OfferBenefit]>,
) -> AppResult<Subscription> {
    // One statement when it is still waiting for payment (as always on this path).
    let activated: Option<Subscription> = diesel::update(
        subscriptions::table
            .find(sub_id)
            .filter(subscriptions::status.eq(SubscriptionStatus::PendingPayment)),
    )
    .set((
        subscriptions::status.eq(SubscriptionStatus::Active),
        subscriptions::activated_at.eq(now),
        subscriptions::term_started_at.eq(now),
        subscriptions::anniversary_at.eq(rules::first_anniversary(now)),
        // Auto-renewal charges a saved card; bank-transfer purchases renew by hand.
        subscriptions::auto_renew.eq(subscriptions::payment_method_id.is_not_null()),
        subscriptions::updated_at.eq(Utc::now()),
    ))
    .returning(Subscription::as_returning())
    .reuse()
    .get_result(conn)
    .await
    .optional()?;
    let Some(sub) = activated else {
        return lock(conn, sub_id).await;
    };
    if sub.upgrade_discount_used {
        // The upgrade ends the Silver package's refund eligibility.
        diesel::update(
            subscriptions::table
                .filter(subscriptions::partner_id.eq(sub.partner_id))
                .filter(subscriptions::offer_id.eq("SILVER"))
                .filter(subscriptions::status.eq_any(SubscriptionStatus::LIVE))
                .filter(subscriptions::upgraded_at.is_null()),
        )
        .set(subscriptions::upgraded_at.eq(now))
        .reuse()
        .execute(conn)
        .await?;
    }
    let granted = crate::benefits::grant(conn, svc, &sub, now, allocations).await?;
    // The entitlements, their keys, the term's due work (with the benefits') and the
    // announcement in one statement.
    let mut due = first_term_due(&sub, now)?;
    due.extend(granted.due);
    let work = actions::rows_of(&due);
    let mut writes: Vec<Write> = Vec::new();
    if !granted.entitlements.is_empty() {
        writes.push(Box::new(crate::benefits::insert_entitlements(
            &granted.entitlements,
        )));
    }
    if !granted.keys.is_empty() {
        writes.push(Box::new(crate::benefits::insert_keys(&granted.keys)));
    }
    if !work.is_empty() {
        writes.push(Box::new(actions::insert_rows(&work)));
    }
    crate::benefits::events::notify_many_with(conn, &[event_of(&sub)], writes).await?;
    Ok(sub)
}

async fn changed(conn: &mut PgConn, sub: &Subscription) -> AppResult<()> {
    changed_many(conn, std::slice::from_ref(sub)).await
}

/// Announces changed subscriptions (`subscriptionUpdated`) in one statement.
async fn changed_many(conn: &mut PgConn, subs: &[Subscription]) -> AppResult<()> {
    let events: Vec<_> = subs.iter().map(event_of).collect();
    crate::benefits::events::notify_many(conn, &events).await
}

fn event_of(sub: &Subscription) -> crate::benefits::events::Event {
    crate::benefits::events::Event::Subscription {
        partner_id: sub.partner_id,
        id: sub.id,
    }
}

/// Paid renewals: each next term runs from the old anniversary date, auto-renew is on again,
/// the old term's pending work is cancelled and the new term's scheduled. A fixed number of
/// statements for any number of subscriptions; returns them as updated, in the given order.
/// `running`: the due actions the caller is running (they stay PENDING here; it marks them).
async fn extend_terms(
    conn: &mut PgConn,
    each: &[(&Subscription, Option<Uuid>)],
    running: &[Uuid],
) -> AppResult<Vec<Subscription>> {
    use diesel::sql_types::{Array, Nullable, Text, Timestamptz, Uuid as SqlUuid};
    let ids: Vec<Uuid> = each.iter().map(|(sub, _)| sub.id).collect();
    actions::cancel_pending_of(conn, &ids, None, running).await?;
    let mut ads = Vec::with_capacity(each.len());
    let mut cards = Vec::with_capacity(each.len());
    for (sub, payment_method_id) in each {
        ads.push(rules::next_anniversary(anniversary(sub)?));
        cards.push(payment_method_id.or(sub.payment_method_id));
    }
    let mut updated: Vec<Subscription> = diesel::sql_query(
        "UPDATE subscriptions s SET term = s.term + 1, term_started_at = s.anniversary_at,
             anniversary_at = v.ad, status = $4, auto_renew = true, payment_method_id = v.pm,
             renewal_failures = 0, last_renewal_error = NULL, updated_at = $5
         FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[]) AS v(id, ad, pm)
         WHERE s.id = v.id
         RETURNING s.*",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Timestamptz>, _>(&ads)
    .bind::<Array<Nullable<SqlUuid>>, _>(&cards)
    .bind::<Text, _>(SubscriptionStatus::Active)
    .bind::<Timestamptz, _>(Utc::now())
    .reuse()
    .load(conn)
    .await?;
    updated.sort_by_key(|s| ids.iter().position(|id| *id == s.id));
    let mut due = Vec::new();
    for sub in &updated {
        due.extend(term_due(sub)?);
    }
    actions::schedule_many(conn, &due).await?;
    crate::benefits::renew_many(conn, &updated).await?;
    changed_many(conn, &updated).await?;
    Ok(updated)
}

/// The charge key of a term's renewal: automatic and manual renewals of one term share it,
/// so a term is never paid twice whatever runs concurrently or again.
pub fn renewal_charge_key(sub_id: Uuid, term: i32) -> String {
    format!("renewal:{sub_id}:{term}")
}

/// One attempt at paying a term's renewal: what the renewal order records.
struct Renewal<'a> {
    sub: &'a Subscription,
    partner: &'a Partner,
    offer: &'a Offer,
    quote: quote::Quote,
    payment_method_id: Option<Uuid>,
    idempotency_key: String,
    request_hash: String,
    placed_by: String,
    now: DateTime<Utc>,
}

/// What a renewal of `sub` needs, quoted (no discount on renewals).
async fn renewal_inputs(
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
async fn renewal_inputs_of(
    conn: &mut PgConn,
    subs: &[&Subscription],
) -> AppResult<(HashMap<Uuid, Partner>, HashMap<String, Offer>)> {
    let partner_ids: Vec<Uuid> = subs.iter().map(|s| s.partner_id).collect();
    let mut offer_ids: Vec<String> = subs.iter().map(|s| s.offer_id.clone()).collect();
    offer_ids.sort();
    offer_ids.dedup();
    let partners = crate::enrollment::load_partners(conn, &partner_ids).await?;
    let offers = crate::catalog::offers_by_id(conn, &offer_ids).await?;
    Ok((
        partners.into_iter().map(|p| (p.id, p)).collect(),
        offers.into_iter().map(|o| (o.id.clone(), o)).collect(),
    ))
}

fn renewal_quote(partner: &Partner, offer: &Offer) -> quote::Quote {
    quote::quote(offer.price_minor, &partner.country, false)
}

impl Renewal<'_> {
    /// The renewal order; PAID (with what the gateway took) when `charge` is given.
    fn new_order(
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
    async fn insert_order(
        &self,
        conn: &mut PgConn,
        status: OrderStatus,
        total_minor: i64,
    ) -> AppResult<Order> {
        orders::insert(conn, self.new_order(status, total_minor, None)).await
    }

    /// Books one successful charge (see [`book_all`]).
    async fn book(
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
async fn book_all(
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
    let each: Vec<_> = paid
        .iter()
        .map(|(r, _)| (r.sub, r.payment_method_id))
        .collect();
    let extended = extend_terms(conn, &each, running).await?;
    let mut audit_entries = Vec::with_capacity(paid.len());
    let mut uninvoiced = Uninvoiced::default();
    for (((r, _), order), sub) in paid.iter().zip(&orders).zip(&extended) {
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
    Ok((orders, uninvoiced))
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
    let to = notify::recipients_of(conn, &partners, false).await?;
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
    let receipts = orders::receipts_quoting(svc, &to, &to_invoice)?;
    invoices::issue_last(conn, &to_invoice, receipts, vec![]).await?;
    Ok(())
}

/// Locks subscriptions (in id order, so concurrent batches cannot deadlock).
async fn lock_many(conn: &mut PgConn, ids: &[Uuid]) -> AppResult<HashMap<Uuid, Subscription>> {
    let rows: Vec<Subscription> = subscriptions::table
        .filter(subscriptions::id.eq_any(ids))
        .order(subscriptions::id)
        .for_update()
        .select(Subscription::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|s| (s.id, s)).collect())
}

/// Job: the auto-renewal charges of due terms (attempt `tag` of each), together: the
/// subscriptions are locked in one statement, the gateway gets one batch of charges, the paid
/// renewals are booked together ([`book_all`]); declines are handled one by one. Returns the
/// outcomes in the order of `due`, and the paid renewals the caller must invoice
/// ([`invoice_renewals`]) last, just before it commits.
pub(crate) async fn charge_renewals(
    conn: &mut PgConn,
    svc: &Services,
    due: &[(&ScheduledAction, DateTime<Utc>)],
) -> AppResult<(Vec<Outcome>, Uninvoiced)> {
    let sub_ids: Vec<Uuid> = due.iter().map(|(a, _)| a.subject_id).collect();
    let subs = lock_many(conn, &sub_ids).await?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; due.len()];
    let mut live = Vec::with_capacity(due.len());
    for (i, (action, now)) in due.iter().enumerate() {
        let sub = subs
            .get(&action.subject_id)
            .ok_or(AppError::NotFound("subscription"))?;
        if sub.term != action.term || !sub.status.in_good_standing() || !sub.auto_renew {
            outcomes[i] = Some(Outcome::Done(format!(
                "skipped: subscription is {} (term {}, auto-renew {})",
                sub.status, sub.term, sub.auto_renew
            )));
        } else {
            live.push((i, *action, sub, *now));
        }
    }
    let card_ids: Vec<Uuid> = live
        .iter()
        .filter_map(|(_, _, sub, _)| sub.payment_method_id)
        .collect();
    let cards: HashMap<Uuid, PaymentMethod> = pm_t::table
        .filter(pm_t::id.eq_any(&card_ids))
        .filter(pm_t::removed_at.is_null())
        .select(PaymentMethod::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|pm: PaymentMethod| (pm.id, pm))
        .collect();
    let live_subs: Vec<&Subscription> = live.iter().map(|(_, _, sub, _)| *sub).collect();
    let (partners, offers) = renewal_inputs_of(conn, &live_subs).await?;
    let mut renewals = Vec::with_capacity(live.len());
    for (i, action, sub, now) in live {
        let partner = partners
            .get(&sub.partner_id)
            .ok_or(AppError::NotFound("partner"))?;
        let offer = offers
            .get(&sub.offer_id)
            .ok_or(AppError::NotFound("offer"))?;
        let key = renewal_charge_key(sub.id, sub.term);
        let card = sub.payment_method_id.and_then(|id| cards.get(&id));
        let renewal = Renewal {
            sub,
            partner,
            offer,
            quote: renewal_quote(partner, offer),
            payment_method_id: sub.payment_method_id,
            idempotency_key: format!("auto-renew:{}:{}", sub.id, sub.term),
            request_hash: key,
            placed_by: "system:auto-renew".into(),
            now,
        };
        renewals.push((i, action, renewal, card));
    }
    let requests: Vec<ChargeRequest> = renewals
        .iter()
        .filter_map(|(_, _, r, card)| {
            card.map(|pm| ChargeRequest {
                idempotency_key: r.request_hash.clone(),
                token: pm.gateway_token.clone(),
                amount_minor: r.quote.total_minor,
                currency: r.offer.currency.clone(),
            })
        })
        .collect();
    let mut answers = svc.gateway.charge_many(&requests).await.into_iter();
    let mut paid = Vec::new();
    for (i, action, renewal, card) in &renewals {
        let result = match card {
            None => Err(GatewayError::Declined("no saved card to charge".into())),
            Some(_) => answers.next().unwrap_or_else(|| {
                Err(GatewayError::Transient("the gateway gave no answer".into()))
            }),
        };
        outcomes[*i] = match result {
            Ok(charge) => {
                paid.push((*i, renewal, charge));
                None
            }
            Err(GatewayError::Transient(m)) if action.attempts + 1 < TRANSIENT_TRIES => {
                let retry = chrono::Duration::from_std(svc.config.billing.transient_retry)
                    .unwrap_or(chrono::Duration::minutes(10));
                Some(Outcome::Retry {
                    at: renewal.now + retry,
                    error: m,
                })
            }
            Err(e) => Some(renewal_failed(conn, svc, action, renewal, *card, e).await?),
        };
    }
    let to_book: Vec<(&Renewal, &Charge)> = paid.iter().map(|(_, r, c)| (*r, c)).collect();
    // The charge actions themselves are left PENDING by the cancel of the old term's work:
    // the caller marks them DONE.
    let running: Vec<Uuid> = paid.iter().map(|(i, _, _)| due[*i].0.id).collect();
    let (orders, uninvoiced) =
        book_all(conn, &Actor::system("auto-renew"), &to_book, &running).await?;
    for ((i, _, _), order) in paid.iter().zip(orders) {
        outcomes[*i] = Some(Outcome::Done(format!("charged, order {}", order.number)));
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| AppError::Internal("renewal left without an outcome".into())))
        .collect::<AppResult<Vec<_>>>()?;
    Ok((outcomes, uninvoiced))
}

/// A declined renewal charge: the subscription enters its renewal window, the next attempt is
/// scheduled (none after a hard decline, which also turns auto-renew off), and the admins are
/// told.
async fn renewal_failed(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    renewal: &Renewal<'_>,
    card: Option<&PaymentMethod>,
    error: GatewayError,
) -> AppResult<Outcome> {
    let (sub, partner, offer, now) = (renewal.sub, renewal.partner, renewal.offer, renewal.now);
    let hard = matches!(
        error,
        GatewayError::HardDeclined(_) | GatewayError::Invalid(_)
    );
    let ad = anniversary(sub)?;
    let attempt: u32 = action.tag.parse().unwrap_or(1);
    let next = if hard {
        None
    } else {
        rules::charge_attempt_due(ad, attempt + 1)
    };
    let updated: Subscription = diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::status.eq(SubscriptionStatus::InRenewalWindow),
            subscriptions::renewal_failures.eq(sub.renewal_failures + 1),
            subscriptions::last_renewal_error.eq(error.message()),
            // A hard decline ends automatic renewal: the card must not be charged again.
            subscriptions::auto_renew.eq(!hard),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
    if let Some(at) = next {
        actions::schedule(
            conn,
            sub.partner_id,
            ActionKind::RenewalCharge,
            sub.id,
            sub.term,
            &(attempt + 1).to_string(),
            at,
        )
        .await?;
    }
    if hard {
        schedule_manual_renewal(conn, &updated, now).await?;
    }
    let (_, last_day) = rules::renewal_window(ad);
    let to = notify::recipients(conn, partner, false).await?;
    notify::send(
        conn,
        partner,
        Template::RenewalFailed,
        &to,
        notify::base_context(&svc.config, partner, offer),
        json!({
            "card": card.map(|c| format!("{} ending {}", c.brand, c.last4)).unwrap_or_else(|| "none".into()),
            "reason": error.message(),
            "next_attempt": next.map(|t| t.date_naive().to_string()),
            "window_last_day": last_day.to_string(),
        }),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("auto-renew"),
        Some(sub.partner_id),
        "subscription.renewal_failed",
        ("subscription", sub.id.to_string()),
        json!({"attempt": attempt, "code": error.code(), "next_attempt": next}),
    )
    .await?;
    Ok(Outcome::Done(format!(
        "{} (attempt {attempt}); next attempt {}",
        error.code(),
        next.map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "none".into())
    )))
}

/// Job: one reminder of one term, to the admins and the primary contact.
pub(crate) async fn send_reminder(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    _now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || !sub.status.in_good_standing() || sub.auto_renew {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {} (term {}, auto-renew {})",
            sub.status, sub.term, sub.auto_renew
        )));
    }
    let ad = anniversary(&sub)?;
    let (opens, last_day) = rules::renewal_window(ad);
    let partner = crate::enrollment::load_partner(conn, sub.partner_id).await?;
    let offer = crate::catalog::offer(conn, &sub.offer_id).await?;
    let to = notify::recipients(conn, &partner, true).await?;
    let n = notify::send(
        conn,
        &partner,
        Template::RenewalReminder,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({
            "anniversary": ad.date_naive().to_string(),
            "window_opens": opens.to_string(),
            "window_last_day": last_day.to_string(),
            "after": action.tag.starts_with("AD+"),
            "kind": action.tag,
        }),
    )
    .await?;
    Ok(Outcome::Done(format!(
        "reminder {} sent to {n}",
        action.tag
    )))
}

/// Job: on the AD (auto-renew off), the subscription enters its renewal window.
pub(crate) async fn enter_window(
    conn: &mut PgConn,
    action: &ScheduledAction,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || sub.status != SubscriptionStatus::Active {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {}",
            sub.status
        )));
    }
    diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::status.eq(SubscriptionStatus::InRenewalWindow),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    Ok(Outcome::Done("entered the renewal window".into()))
}

/// Job: not renewed by AD+30, the subscription lapses and its benefits are revoked. First
/// asks the gateway whether this term's renewal was paid after all (a crash between charge and
/// booking): if so, books it instead.
pub(crate) async fn lapse(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || !sub.status.in_good_standing() {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {} (term {})",
            sub.status, sub.term
        )));
    }
    let (partner, offer, q) = renewal_inputs(conn, &sub).await?;
    let key = renewal_charge_key(sub.id, sub.term);
    match svc.gateway.find_charge(&key).await {
        Ok(Some(charge)) => {
            let order = Renewal {
                sub: &sub,
                partner: &partner,
                offer: &offer,
                quote: q,
                payment_method_id: sub.payment_method_id,
                idempotency_key: format!("reconciled:{}:{}", sub.id, sub.term),
                request_hash: key.clone(),
                placed_by: "system:reconciliation".into(),
                now,
            }
            .book(conn, svc, &Actor::system("reconciliation"), &charge)
            .await?;
            return Ok(Outcome::Done(format!(
                "renewal found at the gateway; booked order {}",
                order.number
            )));
        }
        Ok(None) => {}
        Err(e) => {
            return Ok(Outcome::Retry {
                at: now + chrono::Duration::minutes(1),
                error: e.message().to_owned(),
            })
        }
    }
    end(conn, &sub, SubscriptionStatus::Lapsed, now).await?;
    let (_, last_day) = rules::renewal_window(anniversary(&sub)?);
    let to = notify::recipients(conn, &partner, true).await?;
    notify::send(
        conn,
        &partner,
        Template::SubscriptionLapsed,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({"window_last_day": last_day.to_string()}),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("lifecycle"),
        Some(sub.partner_id),
        "subscription.lapsed",
        ("subscription", sub.id.to_string()),
        json!({"term": sub.term}),
    )
    .await?;
    Ok(Outcome::Done("lapsed".into()))
}

/// Ends a subscription (lapse, cancellation): its pending work is cancelled and its benefits
/// stop (benefits are granted only to subscriptions in good standing).
pub(crate) async fn end(
    conn: &mut PgConn,
    sub: &Subscription,
    status: SubscriptionStatus,
    now: DateTime<Utc>,
) -> AppResult<()> {
    actions::cancel_pending(conn, sub.id, None).await?;
    diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::status.eq(status),
            subscriptions::ended_at.eq(now),
            subscriptions::auto_renew.eq(false),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    crate::benefits::revoke(conn, sub, now).await?;
    changed(conn, sub).await
}

/// Turns automatic renewal off. One-way until the next renewal (a manual renewal turns it on
/// again). Turning off what is already off changes nothing.
pub async fn turn_off_auto_renew(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
) -> AppResult<Subscription> {
    principal.require(Action::Purchase)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sub = load_visible(conn, principal, id, true).await?;
        if !sub.status.in_good_standing() {
            return Err(AppError::not_eligible(
                "NOT_ACTIVE",
                format!(
                    "auto-renew applies to active subscriptions; this one is {}",
                    sub.status
                ),
            ));
        }
        if !sub.auto_renew {
            return Ok(sub);
        }
        let now = crate::clock::now_for(conn, &svc.config, sub.partner_id).await?;
        actions::cancel_pending(conn, sub.id, Some(&[ActionKind::RenewalCharge])).await?;
        let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
            .set((
                subscriptions::auto_renew.eq(false),
                subscriptions::updated_at.eq(Utc::now()),
            ))
            .returning(Subscription::as_returning())
            .get_result(conn)
            .await?;
        schedule_manual_renewal(conn, &sub, now).await?;
        audit::record(
            conn,
            actor,
            Some(sub.partner_id),
            "subscription.auto_renew_off",
            ("subscription", sub.id.to_string()),
            json!({"term": sub.term}),
        )
        .await?;
        Ok(sub)
    })
    .await
}

/// Chooses the saved card automatic renewal charges.
pub async fn set_payment_method(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
    payment_method_id: Uuid,
) -> AppResult<Subscription> {
    principal.require(Action::Purchase)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sub = load_visible(conn, principal, id, true).await?;
        if !sub.status.in_good_standing() {
            return Err(AppError::not_eligible(
                "NOT_ACTIVE",
                format!("this subscription is {}", sub.status),
            ));
        }
        let pm = payment_methods::usable(conn, sub.partner_id, payment_method_id).await?;
        let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
            .set((
                subscriptions::payment_method_id.eq(pm.id),
                subscriptions::updated_at.eq(Utc::now()),
            ))
            .returning(Subscription::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(sub.partner_id),
            "subscription.payment_method_changed",
            ("subscription", sub.id.to_string()),
            json!({"brand": pm.brand, "last4": pm.last4}),
        )
        .await?;
        Ok(sub)
    })
    .await
}

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct RenewInput {
    pub subscription_id: async_graphql::ID,
    /// The same key with the same input returns the first result; with other input, CONFLICT.
    pub idempotency_key: String,
    /// The saved card to charge (it becomes the card for the next automatic renewal).
    pub payment_method_id: async_graphql::ID,
}

/// Renews by hand, inside the renewal window only, paying by card. Turns auto-renew on again.
/// Returns the renewal order (PAID, or PAYMENT_FAILED with the gateway's reason).
pub async fn renew(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    input: RenewInput,
) -> AppResult<Order> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    let sub_id = crate::validation::uuid_id("subscriptionId", input.subscription_id.as_str())?;
    let pm_id = crate::validation::uuid_id("paymentMethodId", input.payment_method_id.as_str())?;
    let key = orders::idempotency_key(&input.idempotency_key)?;
    let hash = orders::request_hash(&json!({"renew": sub_id, "payment_method": pm_id}));
    if let Some(o) = orders::replay(conn, partner_id, &key, &hash).await? {
        return Ok(o);
    }
    let placed_by = actor.id.clone();
    let result = conn
        .transaction::<_, AppError, _>(async |conn| {
            let sub = load_visible(conn, principal, sub_id, true).await?;
            // A concurrent request with this key may have finished while we waited for the lock.
            if let Some(o) = orders::replay(conn, partner_id, &key, &hash).await? {
                return Ok(o);
            }
            let now = crate::clock::now_for(conn, &svc.config, partner_id).await?;
            let blockers = rules::renewal_blockers(sub.status, sub.anniversary_at, now);
            if !blockers.is_empty() {
                return Err(AppError::NotEligible(blockers));
            }
            let pm = payment_methods::usable(conn, partner_id, pm_id).await?;
            let (partner, offer, q) = renewal_inputs(conn, &sub).await?;
            let charge_key = renewal_charge_key(sub.id, sub.term);
            let charged = svc
                .gateway
                .charge(
                    &charge_key,
                    &pm.gateway_token,
                    q.total_minor,
                    &offer.currency,
                )
                .await;
            let renewal = Renewal {
                sub: &sub,
                partner: &partner,
                offer: &offer,
                quote: q,
                payment_method_id: Some(pm.id),
                idempotency_key: key.clone(),
                request_hash: hash.clone(),
                placed_by: placed_by.clone(),
                now,
            };
            match charged {
                Ok(charge) => renewal.book(conn, svc, actor, &charge).await,
                Err(e) => {
                    let order = renewal
                        .insert_order(conn, OrderStatus::PaymentFailed, q.total_minor)
                        .await?;
                    orders::set_failed(conn, order.id, &e).await
                }
            }
        })
        .await;
    match result {
        Err(AppError::Conflict(_)) => orders::replay(conn, partner_id, &key, &hash)
            .await?
            .ok_or_else(|| AppError::Conflict("a concurrent renewal is in progress; retry".into())),
        other => other,
    }
}

/// Refund eligibility with its reasons, computed on the partner's clock.
#[derive(Debug, Clone)]
pub struct RefundEligibility {
    pub eligible: bool,
    pub reasons: Vec<Reason>,
    pub deadline: Option<DateTime<Utc>>,
    pub amount_minor: i64,
    pub currency: String,
    /// The paid order a refund would pay back.
    pub order_id: Option<Uuid>,
}

/// The latest paid order of a subscription (the term a refund would cover).
async fn latest_paid_order(conn: &mut PgConn, sub_id: Uuid) -> AppResult<Option<Order>> {
    Ok(orders_t::table
        .filter(orders_t::subscription_id.eq(sub_id))
        .filter(orders_t::status.eq(OrderStatus::Paid))
        .order(orders_t::paid_at.desc())
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()?)
}

pub(crate) async fn refund_eligibility_of(
    conn: &mut PgConn,
    svc: &Services,
    sub: &Subscription,
) -> AppResult<RefundEligibility> {
    let now = crate::clock::now_for(conn, &svc.config, sub.partner_id).await?;
    let order = latest_paid_order(conn, sub.id).await?;
    let facts = rules::RefundFacts {
        status: sub.status,
        paid_at: order.as_ref().and_then(|o| o.paid_at),
        amount_paid_minor: order.as_ref().map(|o| o.total_minor).unwrap_or(0),
        key_revealed_at: sub.key_revealed_at,
        benefit_activated_at: sub.benefit_activated_at,
        upgrade_discount_used: sub.upgrade_discount_used,
        upgraded_at: sub.upgraded_at,
    };
    let (reasons, deadline) = rules::refund_blockers(&facts, now);
    Ok(RefundEligibility {
        eligible: reasons.is_empty(),
        reasons,
        deadline,
        amount_minor: facts.amount_paid_minor,
        currency: order
            .as_ref()
            .map(|o| o.currency.clone())
            .unwrap_or_else(|| "USD".into()),
        order_id: order.map(|o| o.id),
    })
}

pub async fn refund_eligibility(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    id: Uuid,
) -> AppResult<RefundEligibility> {
    let sub = load_visible(conn, principal, id, false).await?;
    refund_eligibility_of(conn, svc, &sub).await
}

/// An operator resolved a cancellation request (a BILLING service request linked to the
/// subscription). Eligible: the subscription is cancelled, its benefits revoked, and a refund
/// job pays the money back. Not eligible: auto-renew goes off and it ends at the AD.
/// Returns the decision in words, for the request's resolution note.
pub(crate) async fn decide_cancellation(
    conn: &mut PgConn,
    svc: &Services,
    actor: &Actor,
    sub_id: Uuid,
) -> AppResult<String> {
    let sub = lock(conn, sub_id).await?;
    if !sub.status.in_good_standing() {
        return Ok(format!(
            "No change: the subscription is already {}.",
            sub.status
        ));
    }
    let now = crate::clock::now_for(conn, &svc.config, sub.partner_id).await?;
    let e = refund_eligibility_of(conn, svc, &sub).await?;
    let decision = if let (true, Some(order_id)) = (e.eligible, e.order_id) {
        end(conn, &sub, SubscriptionStatus::Cancelled, now).await?;
        actions::schedule(
            conn,
            sub.partner_id,
            ActionKind::Refund,
            order_id,
            sub.term,
            "",
            now,
        )
        .await?;
        format!(
            "Cancelled with a refund of {}; benefits are revoked.",
            format_money(e.amount_minor, &e.currency)
        )
    } else {
        let reasons: Vec<&str> = e.reasons.iter().map(|r| r.message.as_str()).collect();
        let ad = anniversary(&sub)?;
        if sub.auto_renew {
            actions::cancel_pending(conn, sub.id, Some(&[ActionKind::RenewalCharge])).await?;
            let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
                .set((
                    subscriptions::auto_renew.eq(false),
                    subscriptions::updated_at.eq(Utc::now()),
                ))
                .returning(Subscription::as_returning())
                .get_result(conn)
                .await?;
            schedule_manual_renewal(conn, &sub, now).await?;
        }
        format!(
            "Not eligible for a refund ({}). Auto-renew is off; the subscription ends on its anniversary date {}.",
            reasons.join("; "),
            ad.date_naive()
        )
    };
    audit::record(
        conn,
        actor,
        Some(sub.partner_id),
        "subscription.cancellation_decided",
        ("subscription", sub.id.to_string()),
        json!({"refund": e.eligible, "reasons": e.reasons}),
    )
    .await?;
    Ok(decision)
}
