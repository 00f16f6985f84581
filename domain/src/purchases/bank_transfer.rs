//! Bank-transfer orders after they are placed: an operator confirms the funds, the partner
//! cancels, or the order expires unpaid (a purchase after 30 days, a renewal at the end of its
//! renewal window, when the subscription lapses).

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::booking::book_payment;
use crate::audit::{self, Actor};
use crate::billing::orders::lock;
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders, subscriptions};
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::lifecycle::manual_renewal::book_answer;
use crate::notify;
use crate::permissions::{Action, Principal};
use crate::providers::payments::Charge;
use crate::services::Services;
use crate::validation as v;

/// Operators: the funds of a bank-transfer order arrived.
pub async fn confirm_bank_transfer(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    order_id: Uuid,
    reference: &str,
) -> AppResult<Order> {
    principal.require(Action::Operate)?;
    let reference = v::text("reference", reference, 200)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let order = lock(conn, order_id).await?;
        if order.status != OrderStatus::PendingPayment {
            return Err(AppError::not_eligible(
                "ORDER_NOT_PENDING",
                format!(
                    "order {} is {}, not waiting for payment",
                    order.number, order.status
                ),
            ));
        }
        let now = crate::clock::now_for(conn, &svc.config, order.partner_id).await?;
        let mut details = order.bank_details().unwrap_or_default();
        details.reference = Some(reference.clone());
        diesel::update(orders::table.find(order.id))
            .set(orders::bank_transfer.eq(json!(details)))
            .execute(conn)
            .await?;
        let order = match order.kind {
            OrderKind::Renewal => {
                let transfer = Charge {
                    id: String::new(),
                    amount_minor: order.total_minor,
                    currency: order.currency.clone(),
                };
                book_answer(conn, svc, actor, order.id, Ok(&transfer), now).await?
            }
            OrderKind::Purchase => book_payment(conn, svc, &order, "", now).await?,
        };
        audit::record(
            conn,
            actor,
            Some(order.partner_id),
            "order.bank_transfer_confirmed",
            ("order", order.id.to_string()),
            json!({"number": order.number, "reference": reference}),
        )
        .await?;
        Ok(order)
    })
    .await
}

/// The partner cancels a bank-transfer order that is still waiting for its funds.
pub async fn cancel(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    order_id: Uuid,
) -> AppResult<Order> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let order = lock(conn, order_id).await?;
        if order.partner_id != partner_id {
            return Err(AppError::NotFound("order"));
        }
        if order.status != OrderStatus::PendingPayment {
            return Err(AppError::not_eligible(
                "ORDER_NOT_PENDING",
                format!(
                    "only orders waiting for payment can be cancelled; this one is {}",
                    order.status
                ),
            ));
        }
        let now = crate::clock::now_for(conn, &svc.config, partner_id).await?;
        let order = close_unpaid(conn, &order, OrderStatus::Cancelled, now).await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "order.cancelled",
            ("order", order.id.to_string()),
            json!({"number": order.number}),
        )
        .await?;
        Ok(order)
    })
    .await
}

async fn close_unpaid(
    conn: &mut PgConn,
    order: &Order,
    status: OrderStatus,
    now: DateTime<Utc>,
) -> AppResult<Order> {
    due::cancel_pending(conn, order.id, None).await?;
    let closed: Order = diesel::update(orders::table.find(order.id))
        .set((orders::status.eq(status), orders::updated_at.eq(Utc::now())))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    if let Some(sub_id) = order.subscription_id {
        let sub_status = if status == OrderStatus::Expired {
            SubscriptionStatus::OrderExpired
        } else {
            SubscriptionStatus::Cancelled
        };
        diesel::update(
            subscriptions::table
                .find(sub_id)
                .filter(subscriptions::status.eq(SubscriptionStatus::PendingPayment)),
        )
        .set((
            subscriptions::status.eq(sub_status),
            subscriptions::ended_at.eq(now),
            subscriptions::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    }
    Ok(closed)
}

/// Job: a bank-transfer order unpaid after 30 days expires.
pub(crate) async fn expire(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::PendingPayment {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    let order = close_unpaid(conn, &order, OrderStatus::Expired, now).await?;
    let partner = crate::partners::load_partner(conn, order.partner_id).await?;
    let offer = catalog::offer(conn, &order.offer_id).await?;
    let mut to = notify::recipients(conn, &partner, false).await?;
    if let Some(c) = order.bank_details().map(|b| b.contact_email) {
        if !to.iter().any(|t| t.eq_ignore_ascii_case(&c)) {
            to.push(c);
        }
    }
    notify::send(
        conn,
        &partner,
        Template::OrderExpired,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({"order_number": order.number}),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("billing"),
        Some(order.partner_id),
        "order.expired",
        ("order", order.id.to_string()),
        json!({"number": order.number}),
    )
    .await?;
    Ok(Outcome::Done("expired".into()))
}
