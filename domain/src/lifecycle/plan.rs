//! The due work of a subscription's term: what the lifecycle schedules when a term starts,
//! and when auto-renew goes off (reminders, the renewal window).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::subscriptions;
use crate::db::PgConn;
use crate::due::{self, Due};
use crate::enums::*;
use crate::error::AppResult;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, changed};
/// The due work of the first term: the lapse at the window's end always; the renewal charge
/// on the AD with auto-renew on, else the reminders and the window ([`manual_renewal_due`]).
pub(crate) fn first_term_due(sub: &Subscription, now: DateTime<Utc>) -> AppResult<Vec<Due>> {
    let mut due = term_due(sub)?;
    if !sub.auto_renew {
        due.extend(manual_renewal_due(sub, now)?);
    }
    Ok(due)
}

/// A piece of the subscription's due work in its current term.
fn work_of(sub: &Subscription, kind: ActionKind, tag: &str, due_at: DateTime<Utc>) -> Due {
    Due {
        partner_id: sub.partner_id,
        kind,
        subject_id: sub.id,
        term: sub.term,
        tag: tag.to_owned(),
        due_at,
    }
}

/// The due work every term has: the lapse, and with auto-renew on the renewal charge.
pub(crate) fn term_due(sub: &Subscription) -> AppResult<Vec<Due>> {
    let ad = anniversary(sub)?;
    let due = |kind, tag: &str, due_at| work_of(sub, kind, tag, due_at);
    let mut list = vec![due(ActionKind::Lapse, "", rules::lapse_at(ad))];
    if sub.auto_renew {
        list.push(due(ActionKind::RenewalCharge, "1", ad));
    }
    Ok(list)
}

/// With auto-renew off: the reminders still ahead, and entering the window on the AD.
pub(crate) async fn schedule_manual_renewal(
    conn: &mut PgConn,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> AppResult<()> {
    due::schedule_many(conn, &manual_renewal_due(sub, now)?).await
}

/// The work [`schedule_manual_renewal`] records.
fn manual_renewal_due(sub: &Subscription, now: DateTime<Utc>) -> AppResult<Vec<Due>> {
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

/// Turns automatic renewal off: the pending renewal charge is cancelled and the reminders and
/// the renewal window of a manual renewal are scheduled. Returns the subscription as updated.
pub(crate) async fn auto_renew_off(
    conn: &mut PgConn,
    sub_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Subscription> {
    due::cancel_pending(conn, sub_id, Some(&[ActionKind::RenewalCharge])).await?;
    let sub: Subscription = diesel::update(subscriptions::table.find(sub_id))
        .set((
            subscriptions::auto_renew.eq(false),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .returning(Subscription::as_returning())
        .get_result(conn)
        .await?;
    schedule_manual_renewal(conn, &sub, now).await?;
    changed(conn, &sub).await?;
    Ok(sub)
}
