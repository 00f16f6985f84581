//! Receipts of paid orders (purchases and renewals), rendered before the invoice is numbered
//! with a slot for its number (`invoices::NUMBER_SLOT`), so the year's invoice counter is
//! locked only by the one statement that numbers the invoice and writes the receipts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::billing::invoices;
use crate::billing::quote::format_money;
use crate::db::models::*;
use crate::email::{self, Template};
use crate::enums::*;
use crate::error::AppResult;
use crate::notify;
use crate::services::Services;

/// The receipts of paid orders, rendered with [`invoices::NUMBER_SLOT`] for the invoice
/// number, each with the order whose number it quotes (for [`invoices::issue_last`]).
pub(crate) fn receipts_quoting(
    svc: &Services,
    to: &Recipients,
    paid: &[invoices::ToInvoice<'_>],
) -> AppResult<Vec<(Uuid, NewEmail)>> {
    let mut quoting = Vec::new();
    for o in paid {
        let receipt = notify::compose(
            Template::OrderReceipt,
            vec![receipt_of(
                svc,
                to,
                o.partner,
                o.offer,
                o.order,
                invoices::NUMBER_SLOT,
                o.period,
            )],
        );
        quoting.extend(
            email::render_many(&receipt)?
                .into_iter()
                .map(|e| (o.order.id, e)),
        );
    }
    Ok(quoting)
}

/// Receipt recipients by partner ([`notify::recipients_of`]).
pub(crate) type Recipients = HashMap<Uuid, Vec<String>>;

/// One receipt's recipients and context (for `notify::compose`).
fn receipt_of<'a>(
    svc: &Services,
    to: &'a Recipients,
    partner: &'a Partner,
    offer: &Offer,
    order: &Order,
    invoice_number: &str,
    period: (DateTime<Utc>, DateTime<Utc>),
) -> (
    &'a Partner,
    &'a [String],
    serde_json::Value,
    serde_json::Value,
) {
    (
        partner,
        to.get(&partner.id).map(Vec::as_slice).unwrap_or_default(),
        notify::base_context(&svc.config, partner, offer),
        json!({
            "order_number": order.number,
            "invoice_number": invoice_number,
            "total": format_money(order.total_minor, &order.currency),
            "kind": match order.kind { OrderKind::Purchase => "purchase", OrderKind::Renewal => "renewal" },
            "period_start": period.0.date_naive().to_string(),
            "period_end": period.1.date_naive().to_string(),
        }),
    )
}
