//! Paying back a cancelled subscription's order.

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::audit::{self, Actor};
use crate::billing::orders::lock;
use crate::billing::quote::format_money;
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::orders;
use crate::db::PgConn;
use crate::due::Outcome;
use crate::email::Template;
use crate::enums::*;
use crate::error::AppResult;
use crate::notify;
use crate::providers::payments::GatewayError;
use crate::services::Services;

/// Job: pays back a cancelled subscription's order.
pub(crate) async fn refund(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::Paid {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    let reference = match &order.gateway_charge_id {
        Some(charge) => match svc
            .gateway
            .refund(&format!("refund:{}", order.id), charge, order.total_minor)
            .await
        {
            Ok(id) => id,
            Err(GatewayError::Transient(m)) => {
                return Ok(Outcome::Retry {
                    at: now + chrono::Duration::minutes(5),
                    error: m,
                })
            }
            // Refused for good (an unknown or already refunded charge): trying again would
            // be refused again, forever. The order stays PAID, the refusal is audited and
            // logged, and the action is done with the reason for operators to act on.
            Err(e) => {
                tracing::error!(order = %order.number, code = e.code(), reason = e.message(), "the gateway refused a refund for good");
                audit::record(
                    conn,
                    &Actor::system("billing"),
                    Some(order.partner_id),
                    "order.refund_refused",
                    ("order", order.id.to_string()),
                    json!({"number": order.number, "code": e.code(), "reason": e.message()}),
                )
                .await?;
                return Ok(Outcome::Done(format!(
                    "refund refused by the gateway ({}): {}",
                    e.code(),
                    e.message()
                )));
            }
        },
        // Paid by bank transfer: finance pays it back the same way.
        None => "bank-transfer".to_owned(),
    };
    let order: Order = diesel::update(orders::table.find(order.id))
        .set((
            orders::status.eq(OrderStatus::Refunded),
            orders::refunded_minor.eq(order.total_minor),
            orders::refunded_at.eq(now),
            orders::updated_at.eq(Utc::now()),
        ))
        .returning(Order::as_returning())
        .get_result(conn)
        .await?;
    tell_partner(conn, svc, &order, &reference).await?;
    Ok(Outcome::Done(format!("refunded ({reference})")))
}

/// The refund email to the admins, and the audit record.
async fn tell_partner(
    conn: &mut PgConn,
    svc: &Services,
    order: &Order,
    reference: &str,
) -> AppResult<()> {
    let partner = crate::partners::load_partner(conn, order.partner_id).await?;
    let offer = catalog::offer(conn, &order.offer_id).await?;
    let to = notify::recipients(conn, &partner, false).await?;
    notify::send(
        conn,
        &partner,
        Template::RefundProcessed,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({
            "order_number": order.number,
            "amount": format_money(order.refunded_minor, &order.currency),
        }),
    )
    .await?;
    audit::record(
        conn,
        &Actor::system("billing"),
        Some(order.partner_id),
        "order.refunded",
        ("order", order.id.to_string()),
        json!({"number": order.number, "amount_minor": order.refunded_minor, "reference": reference}),
    )
    .await?;
    Ok(())
}
