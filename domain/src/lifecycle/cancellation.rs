//! Deciding a cancellation request (PRODUCT.md 2.5). Only a request made with
//! `requestCancellation` gets here, and an operator decides it explicitly:
//! - `REFUND` (only while a refund is still due): the subscription is cancelled at once, its
//!   benefits revoked, the order's refund goes `REFUND_PENDING` and a refund job pays it back;
//! - `END_AT_ANNIVERSARY`: auto-renew goes off and the subscription ends on its AD, with no
//!   renewal window and no window reminders (an `END_AT_ANNIVERSARY` due action);
//! - `DECLINE`: nothing changes.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::window::end;
use crate::audit::{self, Actor};
use crate::billing::quote::format_money;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::subscriptions;
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::services::Services;
use crate::subscriptions::eligibility::refund_eligibility_of;
use crate::subscriptions::store::{anniversary, changed, lock};

/// The due work a subscription that ends on its AD no longer has.
const TERM_WORK: &[ActionKind] = &[
    ActionKind::RenewalCharge,
    ActionKind::Reminder,
    ActionKind::EnterRenewalWindow,
    ActionKind::Lapse,
];

/// Carries out an operator's decision on a cancellation request. Returns the decision in
/// words, for the request's resolution note.
pub(crate) async fn decide_cancellation(
    conn: &mut PgConn,
    svc: &Services,
    actor: &Actor,
    sub_id: Uuid,
    decision: CancellationDecision,
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
    let words = match decision {
        CancellationDecision::Refund => {
            let order_id = match (e.eligible, e.order_id) {
                (true, Some(order_id)) => order_id,
                _ => return Err(refund_not_due(&e.reasons)),
            };
            end(conn, &sub, SubscriptionStatus::Cancelled, now).await?;
            let order = crate::billing::orders::lock(conn, order_id).await?;
            super::refunds::request(conn, &order, now).await?;
            format!(
                "Cancelled with a refund of {}; benefits are revoked.",
                format_money(e.amount_minor, &e.currency)
            )
        }
        CancellationDecision::EndAtAnniversary => {
            let ends = end_at_anniversary(conn, &sub, now).await?;
            let why = if e.eligible {
                "No refund".to_owned()
            } else {
                let reasons: Vec<&str> = e.reasons.iter().map(|r| r.message.as_str()).collect();
                format!("Not eligible for a refund ({})", reasons.join("; "))
            };
            format!(
                "{why}. Auto-renew is off; the subscription ends on its anniversary date {}.",
                ends.date_naive()
            )
        }
        CancellationDecision::Decline => "Declined: the subscription is unchanged.".to_owned(),
    };
    audit::record(
        conn,
        actor,
        Some(sub.partner_id),
        "subscription.cancellation_decided",
        ("subscription", sub.id.to_string()),
        json!({"decision": decision, "refund_eligible": e.eligible, "reasons": e.reasons}),
    )
    .await?;
    Ok(words)
}

/// `REFUND` chosen while no refund is due: the operator decides again.
fn refund_not_due(reasons: &[Reason]) -> AppError {
    let mut all = vec![Reason::new(
        "REFUND_NOT_DUE",
        "a refund is not due; decide END_AT_ANNIVERSARY or DECLINE",
    )];
    all.extend(reasons.iter().cloned());
    AppError::NotEligible(all)
}

/// Auto-renew off, the term's renewal charge, reminders, window and lapse cancelled, and the
/// end scheduled on the AD (at once when the AD is behind, inside the renewal window).
/// Returns when it ends.
async fn end_at_anniversary(
    conn: &mut PgConn,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> AppResult<DateTime<Utc>> {
    let ends = anniversary(sub)?.max(now);
    due::cancel_pending(conn, sub.id, Some(TERM_WORK)).await?;
    let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
        .set((
            subscriptions::auto_renew.eq(false),
            subscriptions::ends_at_anniversary.eq(true),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
    due::schedule(
        conn,
        sub.partner_id,
        ActionKind::EndAtAnniversary,
        sub.id,
        sub.term,
        "",
        ends,
    )
    .await?;
    changed(conn, &sub).await?;
    Ok(ends)
}

/// Job: a subscription whose cancellation was decided without a refund ends on its AD.
pub(crate) async fn end_on_anniversary(
    conn: &mut PgConn,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || !sub.status.in_good_standing() || !sub.ends_at_anniversary {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {} (term {})",
            sub.status, sub.term
        )));
    }
    end(conn, &sub, SubscriptionStatus::Cancelled, now).await?;
    audit::record(
        conn,
        &Actor::system("lifecycle"),
        Some(sub.partner_id),
        "subscription.ended",
        ("subscription", sub.id.to_string()),
        json!({"term": sub.term, "reason": "cancelled without a refund"}),
    )
    .await?;
    Ok(Outcome::Done("ended on the anniversary date".into()))
}
