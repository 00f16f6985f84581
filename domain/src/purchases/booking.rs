//! What follows the payment of a purchase order, whoever learnt of it (the purchase itself,
//! an operator confirming a bank transfer, the settlement job): the order PAID, the
//! subscription's first term, the invoice and the receipt; or, for a card that was not
//! charged, the reservation released.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::billing::orders::{set_failed, set_paid};
use crate::billing::{invoices, receipts};
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders, subscriptions};
use crate::db::PgConn;
use crate::due;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::lifecycle::start::start_first_term;
use crate::notify;
use crate::providers::payments::GatewayError;
use crate::services::Services;

/// What a purchase has read for its checks and its booking uses: the partner, the offer, the
/// receipt's recipients and the offer's benefit allocations.
pub(crate) type Known<'a> = (
    &'a Partner,
    &'a Offer,
    &'a receipts::Recipients,
    &'a [OfferBenefit],
);

/// Books the payment of a purchase order: PAID, then [`book_paid`]. Inside the caller's
/// transaction, with the order locked.
pub(crate) async fn book_payment(
    conn: &mut PgConn,
    svc: &Services,
    order: &Order,
    charge_id: &str,
    now: DateTime<Utc>,
) -> AppResult<Order> {
    let paid = set_paid(conn, order.id, order.status, charge_id, now)
        .await?
        .ok_or_else(|| AppError::Internal(format!("order {} changed while locked", order.id)))?;
    book_paid(conn, svc, paid, now, None).await
}

/// What follows the payment of a purchase order (already PAID by [`set_paid`], which cancels
/// its settlement and expiry): the subscription's first term, the invoice and the receipt.
/// `known`: the order's partner, offer, receipt recipients and allocations when the caller has
/// read them already (a purchase, for its checks, milliseconds before), otherwise they are
/// read here.
pub(crate) async fn book_paid(
    conn: &mut PgConn,
    svc: &Services,
    order: Order,
    now: DateTime<Utc>,
    known: Option<Known<'_>>,
) -> AppResult<Order> {
    let sub_id = order
        .subscription_id
        .ok_or_else(|| AppError::Internal(format!("order {} has no subscription", order.id)))?;
    let sub = start_first_term(conn, svc, sub_id, now, known.map(|k| k.3)).await?;
    let loaded;
    let (partner, offer, to) = match known {
        Some((partner, offer, to, _)) => (partner, offer, to),
        None => {
            let partner = crate::partners::load_partner(conn, order.partner_id).await?;
            let offer = catalog::offer(conn, &order.offer_id).await?;
            let to = notify::recipients_of(conn, &[&partner], false).await?;
            loaded = (partner, offer, to);
            (&loaded.0, &loaded.1, &loaded.2)
        }
    };
    let period = (
        sub.term_started_at.unwrap_or(now),
        sub.anniversary_at.unwrap_or(now),
    );
    // Numbering the invoice locks the year's counter until commit, which serializes every
    // purchase: the receipt and the audit record are made first, quoting a slot for the
    // number, and go in the one statement that numbers the invoice, last before COMMIT.
    let paid = audit::entries_of(
        &Actor::system("billing"),
        "order.paid",
        vec![(
            Some(order.partner_id),
            ("order", order.id.to_string()),
            json!({
                "number": order.number,
                "invoice": invoices::NUMBER_SLOT,
                "total_minor": order.total_minor,
            }),
        )],
    );
    let to_invoice = invoices::ToInvoice {
        order: &order,
        offer,
        partner,
        period,
        issued_at: now,
    };
    let receipt = receipts::receipts_quoting(svc, to, std::slice::from_ref(&to_invoice))?;
    let paid = paid.into_iter().map(|a| (order.id, a)).collect();
    invoices::issue_last(conn, &[to_invoice], receipt, paid).await?;
    Ok(order)
}

/// A card order that will not be paid: the reserved subscription is released.
pub(crate) async fn book_failure(
    conn: &mut PgConn,
    order: &Order,
    e: &GatewayError,
) -> AppResult<Order> {
    due::cancel_pending(conn, order.id, Some(&[ActionKind::SettleOrder])).await?;
    let failed = set_failed(conn, order.id, e).await?;
    diesel::update(orders::table.find(order.id))
        .set(orders::subscription_id.eq(None::<Uuid>))
        .reuse()
        .execute(conn)
        .await?;
    if let Some(sub_id) = order.subscription_id {
        diesel::delete(
            subscriptions::table
                .find(sub_id)
                .filter(subscriptions::status.eq(SubscriptionStatus::PendingPayment)),
        )
        .execute(conn)
        .await?;
    }
    Ok(Order {
        subscription_id: None,
        ..failed
    })
}
