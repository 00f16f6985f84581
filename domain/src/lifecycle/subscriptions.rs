//! Subscriptions: activation, renewal (automatic and by hand), auto-renew off, reminders, the
//! renewal window, lapse, refund eligibility and cancellation (PRODUCT.md 2.5). The handlers
//! called by [`super::actions::run`] each re-read and lock the subscription and do nothing
//! when the state moved on (another term, already lapsed): running one twice is harmless.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::actions::{self, Outcome};
use super::notify;
use super::rules;
use crate::audit::{self, Actor};
use crate::billing::gateway::{Charge, GatewayError};
use crate::billing::{format_money, invoices, orders, payment_methods, quote};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders as orders_t, payment_methods as pm_t, subscriptions};
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
    conn: &mut PgConn,
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
    Ok(q.load(conn).await?)
}

fn anniversary(sub: &Subscription) -> AppResult<DateTime<Utc>> {
    sub.anniversary_at
        .ok_or_else(|| AppError::Internal(format!("subscription {} has no anniversary", sub.id)))
}

/// Records the due work of the current term: the lapse at the window's end always; the
/// renewal charge on the AD with auto-renew on, else the reminders and the window.
async fn schedule_term(conn: &mut PgConn, sub: &Subscription, now: DateTime<Utc>) -> AppResult<()> {
    let ad = anniversary(sub)?;
    let due = |kind, tag: &str, due_at| actions::Due {
        partner_id: sub.partner_id,
        kind,
        subject_id: sub.id,
        term: sub.term,
        tag: tag.to_owned(),
        due_at,
    };
    if sub.auto_renew {
        actions::schedule_many(
            conn,
            &[
                due(ActionKind::Lapse, "", rules::lapse_at(ad)),
                due(ActionKind::RenewalCharge, "1", ad),
            ],
        )
        .await
    } else {
        actions::schedule_many(conn, &[due(ActionKind::Lapse, "", rules::lapse_at(ad))]).await?;
        schedule_manual_renewal(conn, sub, now).await
    }
}

/// With auto-renew off: the reminders still ahead, and entering the window on the AD.
async fn schedule_manual_renewal(
    conn: &mut PgConn,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let ad = anniversary(sub)?;
    for (tag, days) in rules::REMINDERS {
        let due = rules::reminder_due(ad, *days);
        if due > now {
            actions::schedule(
                conn,
                sub.partner_id,
                ActionKind::Reminder,
                sub.id,
                sub.term,
                tag,
                due,
            )
            .await?;
        }
    }
    if sub.status == SubscriptionStatus::Active {
        actions::schedule(
            conn,
            sub.partner_id,
            ActionKind::EnterRenewalWindow,
            sub.id,
            sub.term,
            "",
            ad,
        )
        .await?;
    }
    Ok(())
}

/// Starts the first term of a paid purchase.
pub(crate) async fn activate(
    conn: &mut PgConn,
    svc: &Services,
    sub_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Subscription> {
    let sub = lock(conn, sub_id).await?;
    if sub.status != SubscriptionStatus::PendingPayment {
        return Ok(sub);
    }
    let sub: Subscription = diesel::update(subscriptions::table.find(sub_id))
        .set((
            subscriptions::status.eq(SubscriptionStatus::Active),
            subscriptions::activated_at.eq(now),
            subscriptions::term_started_at.eq(now),
            subscriptions::anniversary_at.eq(rules::first_anniversary(now)),
            // Auto-renewal charges a saved card; bank-transfer purchases renew by hand.
            subscriptions::auto_renew.eq(sub.payment_method_id.is_some()),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
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
        .execute(conn)
        .await?;
    }
    schedule_term(conn, &sub, now).await?;
    crate::benefits::grant(conn, svc, &sub, now).await?;
    changed(conn, &sub).await?;
    Ok(sub)
}

async fn changed(conn: &mut PgConn, sub: &Subscription) -> AppResult<()> {
    crate::benefits::events::notify(
        conn,
        &crate::benefits::events::Event::Subscription {
            partner_id: sub.partner_id,
            id: sub.id,
        },
    )
    .await
}

/// A paid renewal: the next term runs from the old anniversary date, auto-renew is on again,
/// the old term's pending work is cancelled and the new term's scheduled.
async fn extend_term(
    conn: &mut PgConn,
    sub: &Subscription,
    payment_method_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Subscription> {
    let old_ad = anniversary(sub)?;
    actions::cancel_pending(conn, sub.id, None).await?;
    let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::term.eq(sub.term + 1),
            subscriptions::term_started_at.eq(old_ad),
            subscriptions::anniversary_at.eq(rules::next_anniversary(old_ad)),
            subscriptions::status.eq(SubscriptionStatus::Active),
            subscriptions::auto_renew.eq(true),
            subscriptions::payment_method_id.eq(payment_method_id.or(sub.payment_method_id)),
            subscriptions::renewal_failures.eq(0),
            subscriptions::last_renewal_error.eq(None::<String>),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
    schedule_term(conn, &sub, now).await?;
    crate::benefits::renew(conn, &sub).await?;
    changed(conn, &sub).await?;
    Ok(sub)
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
    let partner = crate::enrollment::load_partner(conn, sub.partner_id).await?;
    let offer = crate::catalog::offer(conn, &sub.offer_id).await?;
    let q = quote::quote(offer.price_minor, &partner.country, false);
    Ok((partner, offer, q))
}

impl Renewal<'_> {
    /// The renewal order, PAID (with what the gateway took) or PAYMENT_FAILED.
    async fn insert_order(
        &self,
        conn: &mut PgConn,
        status: OrderStatus,
        total_minor: i64,
    ) -> AppResult<Order> {
        orders::insert(
            conn,
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
            },
        )
        .await
    }

    /// Books a successful charge: a PAID renewal order, the next term, an invoice, a receipt
    /// and the audit record. Inside the caller's transaction, with the subscription locked.
    async fn book(
        &self,
        conn: &mut PgConn,
        svc: &Services,
        actor: &Actor,
        charge: &Charge,
    ) -> AppResult<Order> {
        // What the gateway actually took is the truth (a price change between attempts
        // cannot make the books disagree with the charge).
        let order = self
            .insert_order(conn, OrderStatus::Paid, charge.amount_minor)
            .await?;
        let order = orders::set_paid(conn, order.id, &charge.id, self.now).await?;
        let extended = extend_term(conn, self.sub, self.payment_method_id, self.now).await?;
        let period = (
            extended.term_started_at.unwrap_or(self.now),
            anniversary(&extended)?,
        );
        let invoice =
            invoices::issue(conn, &order, self.offer, self.partner, period, self.now).await?;
        orders::send_receipt(conn, svc, self.partner, self.offer, &order, &invoice).await?;
        audit::record(
            conn,
            actor,
            Some(self.sub.partner_id),
            "subscription.renewed",
            ("subscription", self.sub.id.to_string()),
            json!({"order": order.number, "term": extended.term}),
        )
        .await?;
        Ok(order)
    }
}

/// Job: the auto-renewal charge of one term (attempt `tag`).
pub(crate) async fn charge_renewal(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || !sub.status.in_good_standing() || !sub.auto_renew {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {} (term {}, auto-renew {})",
            sub.status, sub.term, sub.auto_renew
        )));
    }
    let card: Option<PaymentMethod> = match sub.payment_method_id {
        Some(id) => pm_t::table
            .find(id)
            .filter(pm_t::removed_at.is_null())
            .select(PaymentMethod::as_select())
            .first(conn)
            .await
            .optional()?,
        None => None,
    };
    let (partner, offer, q) = renewal_inputs(conn, &sub).await?;
    let key = renewal_charge_key(sub.id, sub.term);
    let result = match &card {
        None => Err(GatewayError::Declined("no saved card to charge".into())),
        Some(pm) => {
            svc.gateway
                .charge(&key, &pm.gateway_token, q.total_minor, &offer.currency)
                .await
        }
    };
    let error = match result {
        Ok(charge) => {
            let order = Renewal {
                sub: &sub,
                partner: &partner,
                offer: &offer,
                quote: q,
                payment_method_id: sub.payment_method_id,
                idempotency_key: format!("auto-renew:{}:{}", sub.id, sub.term),
                request_hash: key.clone(),
                placed_by: "system:auto-renew".into(),
                now,
            }
            .book(conn, svc, &Actor::system("auto-renew"), &charge)
            .await?;
            return Ok(Outcome::Done(format!("charged, order {}", order.number)));
        }
        Err(GatewayError::Transient(m)) if action.attempts + 1 < TRANSIENT_TRIES => {
            let retry = chrono::Duration::from_std(svc.config.billing.transient_retry)
                .unwrap_or(chrono::Duration::minutes(10));
            return Ok(Outcome::Retry {
                at: now + retry,
                error: m,
            });
        }
        Err(e) => e,
    };
    let hard = matches!(
        error,
        GatewayError::HardDeclined(_) | GatewayError::Invalid(_)
    );
    let ad = anniversary(&sub)?;
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
    let to = notify::recipients(conn, &partner, false).await?;
    notify::send(
        conn,
        &partner,
        Template::RenewalFailed,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({
            "card": card.as_ref().map(|c| format!("{} ending {}", c.brand, c.last4)).unwrap_or_else(|| "none".into()),
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
