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
use crate::billing::orders;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{payment_methods as pm_t, subscriptions};
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::notify;
use crate::providers::payments::{Answers, Charge, ChargeRequest, GatewayError};
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, changed, lock_many, read_many};

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

/// A due charge of a subscription still in the term it renews: its place in the batch, the
/// action, the subscription and the partner's "now".
type Live<'a> = (usize, &'a ScheduledAction, &'a Subscription, DateTime<Utc>);

/// What a batch of due renewal charges reads: the subscriptions (locked when booking, read
/// plainly when asking the gateway), their saved cards, the partners, the offers and the
/// qualifications of the partners with competency packages.
struct Batch {
    subs: HashMap<Uuid, Subscription>,
    cards: HashMap<Uuid, PaymentMethod>,
    partners: HashMap<Uuid, Partner>,
    offers: HashMap<String, Offer>,
    quals: HashMap<Uuid, Vec<(String, CompetencyLevel)>>,
}

impl Batch {
    async fn load(
        conn: &mut PgConn,
        due: &[(&ScheduledAction, DateTime<Utc>)],
        locked: bool,
    ) -> AppResult<Batch> {
        let sub_ids: Vec<Uuid> = due.iter().map(|(a, _)| a.subject_id).collect();
        let subs = if locked {
            lock_many(conn, &sub_ids).await?
        } else {
            read_many(conn, &sub_ids).await?
        };
        let in_term: Vec<&Subscription> = due
            .iter()
            .filter_map(|(a, _)| subs.get(&a.subject_id).filter(|s| s.term == a.term))
            .collect();
        let cards = cards_of(conn, &in_term).await?;
        let (partners, offers) = renewal::renewal_inputs_of(conn, &in_term).await?;
        // Only competency packages renew on a qualification (none in an Action Pack batch).
        let partner_ids: Vec<Uuid> = in_term
            .iter()
            .filter(|s| offers.get(&s.offer_id).is_some_and(|o| o.level.is_some()))
            .map(|s| s.partner_id)
            .collect();
        let quals = crate::catalog::qualified_levels(conn, &partner_ids).await?;
        Ok(Batch {
            subs,
            cards,
            partners,
            offers,
            quals,
        })
    }

    /// The renewal attempt of a subscription in its term, with its card and why it must not
    /// be charged (if so).
    fn attempt<'a>(
        &'a self,
        i: usize,
        action: &'a ScheduledAction,
        sub: &'a Subscription,
        now: DateTime<Utc>,
    ) -> AppResult<Attempt<'a>> {
        let partner = self
            .partners
            .get(&sub.partner_id)
            .ok_or(AppError::NotFound("partner"))?;
        let offer = self
            .offers
            .get(&sub.offer_id)
            .ok_or(AppError::NotFound("offer"))?;
        let card = sub.payment_method_id.and_then(|id| self.cards.get(&id));
        let blocked = rules::renewal_qualification_blockers(
            offer.level,
            &sub.competencies,
            self.quals
                .get(&sub.partner_id)
                .map(Vec::as_slice)
                .unwrap_or_default(),
        )
        .into_iter()
        .next()
        .map(|r| r.message);
        Ok((
            i,
            action,
            automatic(sub, partner, offer, now),
            card,
            blocked,
        ))
    }
}

/// First step of a batch of due renewal charges, outside any transaction: the subscriptions
/// that still renew automatically, with a card and nothing blocking them, are charged in one
/// gateway batch under their terms' charge keys.
pub(crate) async fn ask(
    conn: &mut PgConn,
    svc: &Services,
    due: &[(&ScheduledAction, DateTime<Utc>)],
    answers: &mut Answers,
) -> AppResult<()> {
    let batch = Batch::load(conn, due, false).await?;
    let mut requests = Vec::new();
    for (i, (action, now)) in due.iter().enumerate() {
        let Some(sub) = batch.subs.get(&action.subject_id) else {
            continue;
        };
        if sub.term != action.term || !sub.status.in_good_standing() || !sub.auto_renew {
            continue;
        }
        if let (_, _, r, Some(pm), None) = batch.attempt(i, action, sub, *now)? {
            requests.push(ChargeRequest {
                idempotency_key: r.request_hash.clone(),
                token: pm.gateway_token.clone(),
                amount_minor: r.quote.total_minor,
                currency: r.offer.currency.clone(),
            });
        }
    }
    if requests.is_empty() {
        return Ok(());
    }
    let charged = svc.gateway.charge_many(&requests).await;
    if charged.iter().any(|a| a.is_ok()) {
        svc.config
            .billing
            .crash_point(crate::config::CrashPoint::Renewal);
    }
    for (r, answer) in requests.into_iter().zip(charged) {
        answers.charges.insert(r.idempotency_key, answer);
    }
    Ok(())
}

/// Job: the auto-renewal charges of due terms (attempt `tag` of each), together, with the
/// gateway's answers ([`ask`]): the subscriptions are locked in one statement, the paid
/// renewals are booked together ([`renewal::book_all`]); declines are handled one by one. A
/// charge that went through is booked even if auto-renew was turned off meanwhile, and paid
/// back if the subscription ended meanwhile. Returns the outcomes in the order of `due`, and
/// the paid renewals the caller must invoice ([`renewal::invoice_renewals`]) last, just
/// before it commits.
pub(crate) async fn charge_renewals(
    conn: &mut PgConn,
    svc: &Services,
    due: &[(&ScheduledAction, DateTime<Utc>)],
    answers: &Answers,
) -> AppResult<(Vec<Outcome>, Uninvoiced)> {
    let batch = Batch::load(conn, due, true).await?;
    let mut outcomes: Vec<Option<Outcome>> = vec![None; due.len()];
    let mut live: Vec<Live> = Vec::with_capacity(due.len());
    let mut stray = Vec::new();
    for (i, (action, now)) in due.iter().enumerate() {
        let sub = batch
            .subs
            .get(&action.subject_id)
            .ok_or(AppError::NotFound("subscription"))?;
        let charged = matches!(
            answers
                .charges
                .get(&renewal_charge_key(sub.id, action.term)),
            Some(Ok(_))
        );
        if sub.term == action.term && !sub.status.in_good_standing() && charged {
            stray.push((i, *action, sub, *now));
        } else if sub.term != action.term
            || !sub.status.in_good_standing()
            || !(sub.auto_renew || charged)
        {
            outcomes[i] = Some(Outcome::Done(format!(
                "skipped: subscription is {} (term {}, auto-renew {})",
                sub.status, sub.term, sub.auto_renew
            )));
        } else {
            live.push((i, *action, sub, *now));
        }
    }
    let mut renewals = Vec::with_capacity(live.len());
    for (i, action, sub, now) in live {
        renewals.push(batch.attempt(i, action, sub, now)?);
    }
    let paid = settle(conn, svc, &renewals, answers, &mut outcomes).await?;
    let to_book: Vec<(&Renewal, &Charge)> = paid.iter().map(|(_, r, c)| (*r, *c)).collect();
    // The charge actions themselves are left PENDING by the cancel of the old term's work:
    // the caller marks them DONE.
    let running: Vec<Uuid> = paid.iter().map(|(i, _, _)| due[*i].0.id).collect();
    let (orders, uninvoiced) =
        renewal::book_all(conn, &Actor::system("auto-renew"), &to_book, &running).await?;
    for ((i, _, _), order) in paid.iter().zip(orders) {
        outcomes[*i] = Some(Outcome::Done(format!("charged, order {}", order.number)));
    }
    for (i, action, sub, now) in stray {
        let attempt = batch.attempt(i, action, sub, now)?;
        let Some(Ok(charge)) = answers.charges.get(&attempt.2.request_hash) else {
            continue;
        };
        let order = orders::insert(
            conn,
            attempt
                .2
                .new_order(OrderStatus::Paid, charge.amount_minor, Some(charge)),
        )
        .await?;
        renewal::refund_stray(conn, &Actor::system("auto-renew"), &order, now).await?;
        outcomes[i] = Some(Outcome::Done(format!(
            "charged after the subscription ended ({}); order {} is being refunded",
            sub.status, order.number
        )));
    }
    let outcomes = outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| AppError::Internal("renewal left without an outcome".into())))
        .collect::<AppResult<Vec<_>>>()?;
    Ok((outcomes, uninvoiced))
}

/// The saved cards of these subscriptions (removed cards left out).
async fn cards_of(
    conn: &mut PgConn,
    subs: &[&Subscription],
) -> AppResult<HashMap<Uuid, PaymentMethod>> {
    let card_ids: Vec<Uuid> = subs
        .iter()
        .filter_map(|sub| sub.payment_method_id)
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
        auto_renew_after: sub.auto_renew,
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

/// Takes the gateway's answer for each renewal of the batch; records the outcome of each
/// decline, transient failure and blocked renewal in `outcomes`. Returns the paid ones, to
/// book. A renewal with a card and nothing blocking it that was not asked about (the state
/// changed since) runs again.
async fn settle<'a>(
    conn: &mut PgConn,
    svc: &Services,
    renewals: &'a [Attempt<'a>],
    answers: &'a Answers,
    outcomes: &mut [Option<Outcome>],
) -> AppResult<Vec<(usize, &'a Renewal<'a>, &'a Charge)>> {
    let mut paid = Vec::new();
    for (i, action, renewal, card, blocked) in renewals {
        let answer = answers.charges.get(&renewal.request_hash);
        if let Some(Ok(charge)) = answer {
            paid.push((*i, renewal, charge));
            continue;
        }
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
        let error = match (card, answer) {
            (None, _) => GatewayError::Declined("no saved card to charge".into()),
            (Some(_), Some(Err(e))) => e.clone(),
            (Some(_), _) => {
                outcomes[*i] = Some(Outcome::AskAgain);
                continue;
            }
        };
        outcomes[*i] = match error {
            GatewayError::Transient(m) if action.attempts + 1 < TRANSIENT_TRIES => {
                let retry = chrono::Duration::from_std(svc.config.billing.transient_retry)
                    .unwrap_or(chrono::Duration::minutes(10));
                Some(Outcome::Retry {
                    at: renewal.now + retry,
                    error: m,
                })
            }
            e => Some(renewal_failed(conn, svc, action, renewal, *card, e.into()).await?),
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
