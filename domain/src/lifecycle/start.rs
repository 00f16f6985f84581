//! The first term of a paid purchase: the subscription becomes ACTIVE, its benefits are
//! granted and its term's due work is scheduled, in one statement. A bank-transfer purchase
//! starts with auto-renew off (there is no card to charge): it renews by hand in the window,
//! with reminders.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::plan;
use crate::benefits::entitlements;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::subscriptions;
use crate::db::writes::Write;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::AppResult;
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{event_of, lock};
/// Starts the first term of a paid purchase.
/// `allocations`: the offer's benefit allocations when the caller has read them.
pub(crate) async fn start_first_term(
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
    let granted = entitlements::grant(conn, svc, &sub, now, allocations).await?;
    // The entitlements, their keys, the term's due work (with the benefits') and the
    // announcement in one statement.
    let mut due = plan::first_term_due(&sub, now)?;
    due.extend(granted.due);
    let work = crate::due::rows_of(&due);
    let mut writes: Vec<Write> = Vec::new();
    if !granted.entitlements.is_empty() {
        writes.push(Box::new(entitlements::insert_entitlements(
            &granted.entitlements,
        )));
    }
    if !granted.keys.is_empty() {
        writes.push(Box::new(entitlements::insert_keys(&granted.keys)));
    }
    if !work.is_empty() {
        writes.push(Box::new(crate::due::insert_rows(&work)));
    }
    crate::events::notify_many_with(conn, &[event_of(&sub)], writes).await?;
    Ok(sub)
}
