//! The renewal window and the end of a subscription: entering the window on the AD (auto-renew
//! off), lapsing at its end (AD+31) unless the gateway says the renewal was paid after all,
//! and ending a subscription (lapse, cancellation), which revokes its benefits.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::renewal::{renewal_charge_key, renewal_inputs, Renewal};
use crate::audit::{self, Actor};
use crate::benefits::entitlements;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::subscriptions;
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::email::Template;
use crate::enums::*;
use crate::error::AppResult;
use crate::notify;
use crate::providers::payments::Answers;
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, changed, lock, read_many};

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
    let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::status.eq(SubscriptionStatus::InRenewalWindow),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
    changed(conn, &sub).await?;
    Ok(Outcome::Done("entered the renewal window".into()))
}

/// First step of the lapse job, outside any transaction: asks the gateway whether this term's
/// renewal was paid after all (a crash between charge and booking).
pub(crate) async fn ask(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    answers: &mut Answers,
) -> AppResult<()> {
    let subs = read_many(conn, &[action.subject_id]).await?;
    if let Some(sub) = subs.get(&action.subject_id) {
        if sub.term == action.term && sub.status.in_good_standing() {
            let key = renewal_charge_key(sub.id, sub.term);
            let answer = svc.gateway.find_charge(&key).await;
            answers.found.insert(key, answer);
        }
    }
    Ok(())
}

/// Job: not renewed by AD+30, the subscription lapses and its benefits are revoked, unless
/// the gateway said ([`ask`]) this term's renewal was paid after all: then it is booked.
pub(crate) async fn lapse(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
    answers: &Answers,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || !sub.status.in_good_standing() {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {} (term {})",
            sub.status, sub.term
        )));
    }
    let key = renewal_charge_key(sub.id, sub.term);
    let Some(found) = answers.found.get(&key) else {
        return Ok(Outcome::AskAgain);
    };
    let (partner, offer, q) = renewal_inputs(conn, &sub).await?;
    match found {
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
                auto_renew_after: true,
            }
            .book(conn, svc, &Actor::system("reconciliation"), charge)
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
    due::cancel_pending(conn, sub.id, None).await?;
    diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::status.eq(status),
            subscriptions::ended_at.eq(now),
            subscriptions::auto_renew.eq(false),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    entitlements::revoke(conn, sub, now).await?;
    changed(conn, sub).await
}
