//! Paying back a cancelled subscription's order (PRODUCT.md 2.5). A refund has its own state,
//! one `refunds` row per order: `REFUND_PENDING → REFUNDED | REFUND_FAILED`.
//! - Card: the refund job asks the gateway (idempotency key `refund:<order>`). A transient
//!   error retries with backoff ([`RETRY_AFTER`]); after [`MAX_ATTEMPTS`] calls, or a refusal
//!   for good, the refund is `REFUND_FAILED` with the reason, the partner is told, and the job
//!   goes to the dead set for operators.
//! - Bank transfer: nothing moves by itself. The refund stays `REFUND_PENDING` until an
//!   operator records the outgoing transfer ([`confirm_refund`]).
//!
//! Either way the partner's admins are emailed the outcome.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::billing::quote::format_money;
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders, refunds};
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::notify;
use crate::permissions::{Action, Principal};
use crate::providers::payments::{Answers, GatewayError};
use crate::services::Services;
use crate::validation as v;

/// Gateway calls before a refund that keeps failing transiently is given up.
pub const MAX_ATTEMPTS: i32 = 6;

/// The wait after the n-th transient failure (1-based).
pub fn retry_after(attempt: i32) -> chrono::Duration {
    const MINUTES: [i64; 5] = [1, 5, 30, 120, 720];
    let i = (attempt.max(1) as usize - 1).min(MINUTES.len() - 1);
    chrono::Duration::minutes(MINUTES[i])
}

/// Asks for an order's refund: its `refunds` row (REFUND_PENDING) and the refund job.
pub(crate) async fn request(conn: &mut PgConn, order: &Order, now: DateTime<Utc>) -> AppResult<()> {
    diesel::insert_into(refunds::table)
        .values(&Refund {
            order_id: order.id,
            partner_id: order.partner_id,
            status: RefundStatus::RefundPending,
            amount_minor: order.total_minor,
            currency: order.currency.clone(),
            reference: None,
            failure: None,
            attempts: 0,
            requested_at: now,
            settled_at: None,
            updated_at: Utc::now(),
        })
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    due::schedule(
        conn,
        order.partner_id,
        ActionKind::Refund,
        order.id,
        order.term,
        "",
        now,
    )
    .await
}

/// The refunds of these orders (for `Order.refund`).
pub async fn of_orders(conn: &mut PgConn, order_ids: &[Uuid]) -> AppResult<Vec<Refund>> {
    Ok(refunds::table
        .filter(refunds::order_id.eq_any(order_ids))
        .select(Refund::as_select())
        .load(conn)
        .await?)
}

/// The refund of a subscription's latest refunded (or being refunded) order.
pub async fn of_subscription(conn: &mut PgConn, sub_id: Uuid) -> AppResult<Option<Refund>> {
    Ok(refunds::table
        .inner_join(orders::table)
        .filter(orders::subscription_id.eq(sub_id))
        .order(refunds::requested_at.desc())
        .select(Refund::as_select())
        .first(conn)
        .await
        .optional()?)
}

async fn lock(conn: &mut PgConn, order_id: Uuid) -> AppResult<Refund> {
    refunds::table
        .find(order_id)
        .for_update()
        .select(Refund::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("refund"))
}

/// The gateway key of an order's refund.
fn refund_key(order_id: Uuid) -> String {
    format!("refund:{order_id}")
}

/// First step of the refund job, outside any transaction: a card refund still pending is
/// asked of the gateway (a repeated key refunds once).
pub(crate) async fn ask(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    answers: &mut Answers,
) -> AppResult<()> {
    let pending: Option<Refund> = refunds::table
        .find(action.subject_id)
        .filter(refunds::status.eq(RefundStatus::RefundPending))
        .select(Refund::as_select())
        .first(conn)
        .await
        .optional()?;
    let Some(refund) = pending else {
        return Ok(());
    };
    let order = crate::billing::orders::read(conn, refund.order_id).await?;
    if let Some(charge) = &order.gateway_charge_id {
        let key = refund_key(order.id);
        let answer = svc.gateway.refund(&key, charge, refund.amount_minor).await;
        answers.refunds.insert(key, answer);
    }
    Ok(())
}

/// Job: pays back a cancelled subscription's order, with the gateway's answer ([`ask`]).
pub(crate) async fn refund(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
    answers: &Answers,
) -> AppResult<Outcome> {
    let refund = lock(conn, action.subject_id).await?;
    if refund.status != RefundStatus::RefundPending {
        return Ok(Outcome::Done(format!(
            "skipped: refund is {}",
            refund.status
        )));
    }
    let order = crate::billing::orders::lock(conn, refund.order_id).await?;
    if order.gateway_charge_id.is_none() {
        return Ok(Outcome::Done(
            "paid by bank transfer: waiting for an operator to record the outgoing transfer".into(),
        ));
    }
    let Some(answer) = answers.refunds.get(&refund_key(order.id)) else {
        return Ok(Outcome::AskAgain);
    };
    let attempts = refund.attempts + 1;
    let failure = match answer {
        Ok(reference) => {
            settle(conn, svc, &order, reference, now).await?;
            return Ok(Outcome::Done(format!("refunded ({reference})")));
        }
        Err(GatewayError::Transient(m)) if attempts < MAX_ATTEMPTS => {
            diesel::update(refunds::table.find(order.id))
                .set((
                    refunds::attempts.eq(attempts),
                    refunds::updated_at.eq(Utc::now()),
                ))
                .execute(conn)
                .await?;
            return Ok(Outcome::Retry {
                at: now + retry_after(attempts),
                error: m.clone(),
            });
        }
        Err(GatewayError::Transient(m)) => {
            format!("the payment gateway kept failing ({attempts} attempts): {m}")
        }
        Err(e) => format!("{} ({})", e.message(), e.code()),
    };
    fail(conn, svc, &order, attempts, &failure).await?;
    Ok(Outcome::GaveUp(format!("refund failed: {failure}")))
}

/// The refund went through: the refund and the order are REFUNDED, the partner is told.
async fn settle(
    conn: &mut PgConn,
    svc: &Services,
    order: &Order,
    reference: &str,
    now: DateTime<Utc>,
) -> AppResult<Refund> {
    let refund: Refund = diesel::update(refunds::table.find(order.id))
        .set((
            refunds::status.eq(RefundStatus::Refunded),
            refunds::reference.eq(reference),
            refunds::settled_at.eq(now),
            refunds::attempts.eq(refunds::attempts + 1),
            refunds::updated_at.eq(Utc::now()),
        ))
        .returning(Refund::as_returning())
        .get_result(conn)
        .await?;
    let order: Order = diesel::update(orders::table.find(order.id))
        .set((
            orders::status.eq(OrderStatus::Refunded),
            orders::refunded_minor.eq(refund.amount_minor),
            orders::refunded_at.eq(now),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    tell_partner(conn, svc, &order, &refund).await?;
    Ok(refund)
}

/// Given up: REFUND_FAILED with the reason; the partner is told, operators see the dead job.
async fn fail(
    conn: &mut PgConn,
    svc: &Services,
    order: &Order,
    attempts: i32,
    failure: &str,
) -> AppResult<()> {
    tracing::error!(order = %order.number, reason = failure, "refund failed");
    let refund: Refund = diesel::update(refunds::table.find(order.id))
        .set((
            refunds::status.eq(RefundStatus::RefundFailed),
            refunds::failure.eq(failure),
            refunds::attempts.eq(attempts),
            refunds::updated_at.eq(Utc::now()),
        ))
        .returning(Refund::as_returning())
        .get_result(conn)
        .await?;
    tell_partner(conn, svc, order, &refund).await
}

/// The gateway reported a refund failed after it had answered it done (`refund.failed`):
/// the refund is REFUND_FAILED with the bank's reason, the order PAID again (the money did
/// not go back), and the partner is told. Anything else (another refund id, a refund not done
/// yet) is left to the refund job. Returns what it did.
pub(crate) async fn failed_at_gateway(
    conn: &mut PgConn,
    svc: &Services,
    order_id: Uuid,
    reference: &str,
    reason: &str,
) -> AppResult<String> {
    let refund = lock(conn, order_id).await?;
    if refund.status != RefundStatus::Refunded || refund.reference.as_deref() != Some(reference) {
        return Ok(format!("nothing to undo: the refund is {}", refund.status));
    }
    let order: Order = diesel::update(orders::table.find(order_id))
        .set((
            orders::status.eq(OrderStatus::Paid),
            orders::refunded_minor.eq(0),
            orders::refunded_at.eq(None::<DateTime<Utc>>),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    let failure = format!("the bank could not return the money: {reason}");
    fail(conn, svc, &order, refund.attempts, &failure).await?;
    Ok("REFUND_FAILED".into())
}

/// Operators: the outgoing bank transfer of a bank-transfer order's refund was made.
pub async fn confirm_refund(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    order_id: Uuid,
    transfer_reference: &str,
) -> AppResult<Refund> {
    principal.require(Action::Operate)?;
    let reference = v::text("transferReference", transfer_reference, 200)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let refund = lock(conn, order_id).await?;
        let order = crate::billing::orders::lock(conn, order_id).await?;
        if order.gateway_charge_id.is_some() {
            return Err(AppError::not_eligible(
                "CARD_REFUND",
                "this order was paid by card: the gateway refunds it",
            ));
        }
        if refund.status != RefundStatus::RefundPending {
            return Err(AppError::Conflict(format!(
                "this refund is already {}",
                refund.status
            )));
        }
        let now = crate::clock::now_for(conn, &svc.config, order.partner_id).await?;
        let refund = settle(conn, svc, &order, &reference, now).await?;
        audit::record(
            conn,
            actor,
            Some(order.partner_id),
            "order.refund_transfer_recorded",
            ("order", order.id.to_string()),
            json!({"number": order.number, "amount_minor": refund.amount_minor}),
        )
        .await?;
        Ok(refund)
    })
    .await
}

/// The outcome email to the admins, the audit record, and `subscriptionUpdated`.
async fn tell_partner(
    conn: &mut PgConn,
    svc: &Services,
    order: &Order,
    refund: &Refund,
) -> AppResult<()> {
    let partner = crate::partners::load_partner(conn, order.partner_id).await?;
    let offer = catalog::offer(conn, &order.offer_id).await?;
    let to = notify::recipients(conn, &partner, false).await?;
    let amount = format_money(refund.amount_minor, &refund.currency);
    let (template, action) = match refund.status {
        RefundStatus::RefundFailed => (Template::RefundFailed, "order.refund_failed"),
        _ => (Template::RefundProcessed, "order.refunded"),
    };
    notify::send(
        conn,
        &partner,
        template,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({
            "order_number": order.number,
            "amount": amount,
            "reason": refund.failure.clone().unwrap_or_default(),
        }),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("billing"),
        Some(order.partner_id),
        action,
        ("order", order.id.to_string()),
        json!({"number": order.number, "amount_minor": refund.amount_minor,
               "reference": refund.reference, "failure": refund.failure}),
    )
    .await?;
    if let Some(sub) = order.subscription_id {
        crate::events::notify_many(
            conn,
            &[crate::events::Event::Subscription {
                partner_id: order.partner_id,
                id: sub,
            }],
        )
        .await?;
    }
    Ok(())
}
