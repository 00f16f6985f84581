//! The payment gateway's webhooks (Stripe). Each event is recorded once by its id
//! (`gateway_events`); a replay finds the row and changes nothing. An event never books money
//! by itself: it moves the due work that asks the gateway to now, in the same transaction, and
//! that work (dispatched through the outbox like all due work) settles from the gateway's
//! truth. So a payment confirmed late (3-D Secure, a slow bank) ends in the right state within
//! seconds instead of at the next scheduled check, and a forged or replayed event cannot pay
//! for anything.
//! - `payment_intent.*` with our charge key: the order's settlement (`order:{id}`), or a
//!   renewal's settlement and pending charge attempt (`renewal:{subscription}:{term}`).
//! - `refund.*` / `charge.refunded` with our refund key: the refund job; a refund that failed
//!   at the bank after it was reported done turns REFUND_FAILED (the partner is told).

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{gateway_events, orders, scheduled_actions};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::services::Services;

/// What became of a webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// First seen: recorded, with what it did.
    New(String),
    /// Seen before: nothing changed.
    Replay,
}

/// Records a verified Stripe event and does what it asks for, in one transaction.
pub async fn record_stripe_event(
    conn: &mut PgConn,
    svc: &Services,
    event: &Value,
) -> AppResult<Recorded> {
    let id = event["id"]
        .as_str()
        .filter(|id| !id.is_empty() && id.len() <= 255)
        .ok_or_else(|| AppError::bad_input("id", "a Stripe event has an id (evt_…)"))?
        .to_owned();
    let kind = event["type"].as_str().unwrap_or_default().to_owned();
    conn.transaction::<_, AppError, _>(async |conn| {
        let inserted = diesel::insert_into(gateway_events::table)
            .values((
                gateway_events::id.eq(&id),
                gateway_events::type_.eq(&kind),
                gateway_events::payload.eq(event),
                gateway_events::outcome.eq("received"),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
        if inserted == 0 {
            return Ok(Recorded::Replay);
        }
        let object = &event["data"]["object"];
        let outcome = if kind.starts_with("payment_intent.") {
            payment(conn, svc, object).await?
        } else if kind.starts_with("refund.") || kind == "charge.refunded" {
            refund(conn, svc, &kind, object).await?
        } else {
            "ignored: not an event the gateway acts on".to_owned()
        };
        diesel::update(gateway_events::table.find(&id))
            .set(gateway_events::outcome.eq(&outcome))
            .execute(conn)
            .await?;
        Ok(Recorded::New(outcome))
    })
    .await
}

/// A PaymentIntent changed: the work that settles its charge key runs now.
async fn payment(conn: &mut PgConn, svc: &Services, pi: &Value) -> AppResult<String> {
    let key = pi["metadata"]["charge_key"].as_str().unwrap_or_default();
    let parts: Vec<&str> = key.split(':').collect();
    match parts.as_slice() {
        ["order", id] => {
            let Ok(order_id) = id.parse::<Uuid>() else {
                return Ok(format!("ignored: bad charge key {key}"));
            };
            let n = pull_forward(conn, svc, ActionKind::SettleOrder, &[order_id], None).await?;
            Ok(format!("{key}: {n} settlement(s) due now"))
        }
        ["renewal", sub, term] => {
            let (Ok(sub_id), Ok(term)) = (sub.parse::<Uuid>(), term.parse::<i32>()) else {
                return Ok(format!("ignored: bad charge key {key}"));
            };
            let processing: Vec<Uuid> = orders::table
                .filter(orders::subscription_id.eq(sub_id))
                .filter(orders::kind.eq(OrderKind::Renewal))
                .filter(orders::status.eq(OrderStatus::Processing))
                .filter(orders::term.eq(term + 1))
                .select(orders::id)
                .load(conn)
                .await?;
            let settled =
                pull_forward(conn, svc, ActionKind::SettleOrder, &processing, None).await?;
            let charged =
                pull_forward(conn, svc, ActionKind::RenewalCharge, &[sub_id], Some(term)).await?;
            Ok(format!(
                "{key}: {settled} settlement(s) and {charged} charge attempt(s) due now"
            ))
        }
        _ => Ok("ignored: not a charge of ours".to_owned()),
    }
}

/// A refund changed: the refund job runs now; a refund the bank failed after it was reported
/// done is REFUND_FAILED.
async fn refund(
    conn: &mut PgConn,
    svc: &Services,
    kind: &str,
    object: &Value,
) -> AppResult<String> {
    // A charge.refunded event carries the charge; refund events carry the refund.
    let refund_key = object["metadata"]["refund_key"]
        .as_str()
        .unwrap_or_default();
    let Some(order_id) = refund_key
        .strip_prefix("refund:")
        .and_then(|id| id.parse::<Uuid>().ok())
    else {
        return Ok("ignored: not a refund of ours".to_owned());
    };
    if kind == "refund.failed" || object["status"] == "failed" {
        let reason = object["failure_reason"]
            .as_str()
            .unwrap_or("the bank could not return the money");
        let reference = object["id"].as_str().unwrap_or_default();
        let reversed =
            crate::lifecycle::refunds::failed_at_gateway(conn, svc, order_id, reference, reason)
                .await?;
        return Ok(format!("{refund_key}: failed at the bank ({reversed})"));
    }
    let n = pull_forward(conn, svc, ActionKind::Refund, &[order_id], None).await?;
    Ok(format!("{refund_key}: {n} refund job(s) due now"))
}

/// Makes pending due work of these subjects due now on each partner's clock (and ready for
/// the sweep to dispatch again). Returns how many actions moved.
async fn pull_forward(
    conn: &mut PgConn,
    svc: &Services,
    kind: ActionKind,
    subjects: &[Uuid],
    term: Option<i32>,
) -> AppResult<usize> {
    if subjects.is_empty() {
        return Ok(0);
    }
    let pending: Vec<ScheduledAction> = scheduled_actions::table
        .filter(scheduled_actions::subject_id.eq_any(subjects))
        .filter(scheduled_actions::kind.eq(kind))
        .filter(scheduled_actions::status.eq(ActionStatus::Pending))
        .order(scheduled_actions::id)
        .for_update()
        .select(ScheduledAction::as_select())
        .load(conn)
        .await?;
    let pending = pending
        .into_iter()
        .filter(|a| term.is_none_or(|t| a.term == t));
    let mut moved = 0;
    for a in pending {
        let now: DateTime<Utc> = crate::clock::now_for(conn, &svc.config, a.partner_id).await?;
        if a.due_at > now || a.dispatched_at.is_some() {
            diesel::update(scheduled_actions::table.find(a.id))
                .set((
                    scheduled_actions::due_at.eq(now.min(a.due_at)),
                    scheduled_actions::dispatched_at.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)
                .await?;
            moved += 1;
        }
    }
    Ok(moved)
}
