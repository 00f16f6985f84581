//! Automatic renewal on the anniversary date: the due charges of a batch are charged together
//! and the paid ones booked together ([`super::renewal`]); a decline puts the subscription in
//! its renewal window with the next attempt scheduled (none after a hard decline, which turns
//! auto-renew off), and the admins are told.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::plan;
use super::renewal::{self, renewal_charge_key, Renewal, Uninvoiced};
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{payment_methods as pm_t, subscriptions};
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::notify;
use crate::providers::payments::{Charge, ChargeRequest, GatewayError};
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, changed, lock_many};

/// At most this many transient gateway failures in a row before a renewal attempt counts as
/// declined.
const TRANSIENT_TRIES: i32 = 3;

/// Why an automatic renewal attempt failed: the gateway's answer, or a rule that kept the
/// charge from being attempted (a competency package without a current qualification).
struct Failure {
    code: &'static str,
    message: String,
    /// No further attempt (a hard decline): auto-renew goes off.
    hard: bool,
}

impl From<GatewayError> for Failure {
    fn from(e: GatewayError) -> Self {
        Failure {
            code: e.code(),
            message: e.message().to_owned(),
            hard: matches!(e, GatewayError::HardDeclined(_) | GatewayError::Invalid(_)),
        }
    }
}

/// A due charge whose subscription still renews automatically: its place in the batch, the
/// action, the subscription and the partner's "now".
type Live<'a> = (usize, &'a ScheduledAction, &'a Subscription, DateTime<Utc>);

/// Job: the auto-renewal charges of due terms (attempt `tag` of each), together: the
/// subscriptions are locked in one statement, the gateway gets one batch of charges, the paid
/// renewals are booked together ([`renewal::book_all`]); declines are handled one by one.
/// Returns the outcomes in the order of `due`, and the paid renewals the caller must invoice
/// ([`renewal::invoice_renewals`]) last, just before it commits.
pub(crate) async fn charge_renewals(
    conn: &mut PgConn,
    svc: &Services,
    due: &[(&ScheduledAction, DateTime<Utc>)],
) -> AppResult<(Vec<Outcome>, Uninvoiced)> {
    let sub_ids: Vec<Uuid> = due.iter().map(|(a, _)| a.subject_id).collect();
    let subs = lock_many(conn, &sub_ids).await?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; due.len()];
    let mut live: Vec<Live> = Vec::with_capacity(due.len());
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
    let cards = cards_of(conn, &live).await?;
    let live_subs: Vec<&Subscription> = live.iter().map(|(_, _, sub, _)| *sub).collect();
    let (partners, offers) = renewal::renewal_inputs_of(conn, &live_subs).await?;
    // Only competency packages renew on a qualification (none in an Action Pack batch).
    let partner_ids: Vec<Uuid> = live_subs
        .iter()
        .filter(|s| offers.get(&s.offer_id).is_some_and(|o| o.level.is_some()))
        .map(|s| s.partner_id)
        .collect();
    let quals = crate::catalog::qualified_levels(conn, &partner_ids).await?;
    let mut renewals = Vec::with_capacity(live.len());
    for (i, action, sub, now) in live {
        let partner = partners
            .get(&sub.partner_id)
            .ok_or(AppError::NotFound("partner"))?;
        let offer = offers
            .get(&sub.offer_id)
            .ok_or(AppError::NotFound("offer"))?;
        let card = sub.payment_method_id.and_then(|id| cards.get(&id));
        let blocked = rules::renewal_qualification_blockers(
            offer.level,
            &sub.competencies,
            quals
                .get(&sub.partner_id)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        )
        .into_iter()
        .next()
        .map(|r| r.message);
        renewals.push((
            i,
            action,
            automatic(sub, partner, offer, now),
            card,
            blocked,
        ));
    }
    let paid = charge(conn, svc, &renewals, &mut outcomes).await?;
    let to_book: Vec<(&Renewal, &Charge)> = paid.iter().map(|(_, r, c)| (*r, c)).collect();
    // The charge actions themselves are left PENDING by the cancel of the old term's work:
    // the caller marks them DONE.
    let running: Vec<Uuid> = paid.iter().map(|(i, _, _)| due[*i].0.id).collect();
    let (orders, uninvoiced) =
        renewal::book_all(conn, &Actor::system("auto-renew"), &to_book, &running).await?;
    for ((i, _, _), order) in paid.iter().zip(orders) {
        outcomes[*i] = Some(Outcome::Done(format!("charged, order {}", order.number)));
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| AppError::Internal("renewal left without an outcome".into())))
        .collect::<AppResult<Vec<_>>>()?;
    Ok((outcomes, uninvoiced))
}

/// The saved cards of the live subscriptions (removed cards left out).
async fn cards_of(conn: &mut PgConn, live: &[Live<'_>]) -> AppResult<HashMap<Uuid, PaymentMethod>> {
    let card_ids: Vec<Uuid> = live
        .iter()
        .filter_map(|(_, _, sub, _)| sub.payment_method_id)
        .collect();
    Ok(pm_t::table
        .filter(pm_t::id.eq_any(&card_ids))
        .filter(pm_t::removed_at.is_null())
        .select(PaymentMethod::as_select())
        .load(conn)
        .await?
        .into_iter()
        .map(|pm: PaymentMethod| (pm.id, pm))
        .collect())
}

/// An automatic renewal attempt of the subscription's term.
fn automatic<'a>(
    sub: &'a Subscription,
    partner: &'a Partner,
    offer: &'a Offer,
    now: DateTime<Utc>,
) -> Renewal<'a> {
    Renewal {
        sub,
        partner,
        offer,
        quote: renewal::renewal_quote(partner, offer),
        payment_method_id: sub.payment_method_id,
        idempotency_key: format!("auto-renew:{}:{}", sub.id, sub.term),
        request_hash: renewal_charge_key(sub.id, sub.term),
        placed_by: "system:auto-renew".into(),
        now,
    }
}

/// One renewal of the batch: its place, the action, the attempt, the card (if any) and why it
/// must not be charged (if so).
type Attempt<'a> = (
    usize,
    &'a ScheduledAction,
    Renewal<'a>,
    Option<&'a PaymentMethod>,
    Option<String>,
);

/// Sends the gateway one batch of charges (renewals with a card); records the outcome of
/// each decline and transient failure in `outcomes`. Returns the paid ones, to book.
async fn charge<'a>(
    conn: &mut PgConn,
    svc: &Services,
    renewals: &'a [Attempt<'a>],
    outcomes: &mut [Option<Outcome>],
) -> AppResult<Vec<(usize, &'a Renewal<'a>, Charge)>> {
    let requests: Vec<ChargeRequest> = renewals
        .iter()
        .filter(|(.., blocked)| blocked.is_none())
        .filter_map(|(_, _, r, card, _)| {
            card.map(|pm| ChargeRequest {
                idempotency_key: r.request_hash.clone(),
                token: pm.gateway_token.clone(),
                amount_minor: r.quote.total_minor,
                currency: r.offer.currency.clone(),
            })
        })
        .collect();
    let answers = svc.gateway.charge_many(&requests).await;
    if answers.iter().any(|a| a.is_ok()) {
        svc.config
            .billing
            .crash_point(crate::config::CrashPoint::Renewal);
    }
    let mut answers = answers.into_iter();
    let mut paid = Vec::new();
    for (i, action, renewal, card, blocked) in renewals {
        if let Some(reason) = blocked {
            // Not attempted: the admins are told why, and the next attempt checks again.
            let failure = Failure {
                code: "QUALIFICATION_REQUIRED",
                message: reason.clone(),
                hard: false,
            };
            outcomes[*i] = Some(renewal_failed(conn, svc, action, renewal, *card, failure).await?);
            continue;
        }
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
            Err(e) => Some(renewal_failed(conn, svc, action, renewal, *card, e.into()).await?),
        };
    }
    Ok(paid)
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
    error: Failure,
) -> AppResult<Outcome> {
    let (sub, now) = (renewal.sub, renewal.now);
    let hard = error.hard;
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
            subscriptions::last_renewal_error.eq(&error.message),
            // A hard decline ends automatic renewal: the card must not be charged again.
            subscriptions::auto_renew.eq(!hard),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
    if let Some(at) = next {
        due::schedule(
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
        plan::schedule_manual_renewal(conn, &updated, now).await?;
    }
    changed(conn, &updated).await?;
    tell_admins(conn, svc, renewal, card, &error, next).await?;
    audit::record(
        conn,
        &Actor::system("auto-renew"),
        Some(sub.partner_id),
        "subscription.renewal_failed",
        ("subscription", sub.id.to_string()),
        json!({"attempt": attempt, "code": error.code, "next_attempt": next}),
    )
    .await?;
    Ok(Outcome::Done(format!(
        "{} (attempt {attempt}); next attempt {}",
        error.code,
        next.map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "none".into())
    )))
}

/// The renewal-failed email to the Global admins and MPN partner admins.
async fn tell_admins(
    conn: &mut PgConn,
    svc: &Services,
    renewal: &Renewal<'_>,
    card: Option<&PaymentMethod>,
    error: &Failure,
    next: Option<DateTime<Utc>>,
) -> AppResult<()> {
    let (partner, offer) = (renewal.partner, renewal.offer);
    let ad = anniversary(renewal.sub)?;
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
            "reason": error.message,
            "next_attempt": next.map(|t| t.date_naive().to_string()),
            "window_last_day": last_day.to_string(),
        }),
    )
    .await?;
    Ok(())
}
