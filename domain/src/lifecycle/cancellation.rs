//! Deciding a cancellation request: with a refund due, the subscription is cancelled, its
//! benefits revoked and a refund job pays the money back; otherwise auto-renew goes off and it
//! ends at the anniversary date.

use serde_json::json;
use uuid::Uuid;

use super::plan;
use super::window::end;
use crate::audit::{self, Actor};
use crate::billing::quote::format_money;
use crate::db::PgConn;
use crate::due;
use crate::enums::*;
use crate::error::AppResult;
use crate::services::Services;
use crate::subscriptions::eligibility::refund_eligibility_of;
use crate::subscriptions::store::{anniversary, lock};

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
        due::schedule(
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
            plan::auto_renew_off(conn, sub.id, now).await?;
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
