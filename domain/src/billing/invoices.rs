//! Invoices: one per paid order (purchase or renewal), numbered `INV-{year}-{seq}` without
//! gaps per year. The counter row is bumped in the invoice's own transaction, so a rolled-back
//! invoice returns its number.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::models::{Invoice, Offer, Order, Partner};
use crate::db::prelude::*;
use crate::db::schema::{invoice_counters, invoices};
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: i32,
    pub unit_minor: i64,
    pub amount_minor: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillTo {
    pub name: String,
    pub mpn_id: String,
    pub address_lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

impl BillTo {
    pub fn of(p: &Partner) -> Self {
        Self {
            name: p.legal_name.clone(),
            mpn_id: p.mpn_id.clone(),
            address_lines: p.address_lines.clone(),
            city: p.city.clone(),
            region: p.region.clone(),
            postal_code: p.postal_code.clone(),
            country: p.country.clone(),
        }
    }
}

pub fn lines_of(inv: &Invoice) -> Vec<InvoiceLine> {
    serde_json::from_value(inv.lines.clone()).unwrap_or_default()
}

pub fn bill_to_of(inv: &Invoice) -> Option<BillTo> {
    serde_json::from_value(inv.bill_to.clone()).ok()
}

/// Issues the invoice of a paid order, inside the caller's transaction. Issuing twice for one
/// order returns the first invoice.
pub async fn issue(
    conn: &mut PgConn,
    order: &Order,
    offer: &Offer,
    partner: &Partner,
    period: (DateTime<Utc>, DateTime<Utc>),
    issued_at: DateTime<Utc>,
) -> AppResult<Invoice> {
    let mut issued = issue_many(
        conn,
        &[ToInvoice {
            order,
            offer,
            partner,
            period,
            issued_at,
        }],
    )
    .await?;
    issued
        .pop()
        .ok_or_else(|| AppError::Internal("no invoice issued".into()))
}

/// A paid order to invoice (see [`issue_many`]).
pub struct ToInvoice<'a> {
    pub order: &'a Order,
    pub offer: &'a Offer,
    pub partner: &'a Partner,
    /// The term the invoice covers.
    pub period: (DateTime<Utc>, DateTime<Utc>),
    /// On the partner's clock; its year numbers the invoice.
    pub issued_at: DateTime<Utc>,
}

/// Like [`issue`] for many orders: each year's counter is bumped once by the number of new
/// invoices of that year (consecutive numbers, in the given order) and they are inserted in
/// one statement. The counter row stays locked until the caller commits, so call this late in
/// the transaction. Returns one invoice per order, in order.
pub async fn issue_many(conn: &mut PgConn, orders: &[ToInvoice<'_>]) -> AppResult<Vec<Invoice>> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.order.id).collect();
    let mut invoices = for_orders(conn, &ids).await?;
    let new: Vec<&ToInvoice> = orders
        .iter()
        .filter(|o| !invoices.iter().any(|i| i.order_id == o.order.id))
        .collect();
    let mut years: Vec<i32> = new.iter().map(|o| o.issued_at.year()).collect();
    years.sort_unstable();
    years.dedup();
    let created_at = Utc::now();
    let mut rows = Vec::with_capacity(new.len());
    for year in years {
        let of_year: Vec<&&ToInvoice> = new.iter().filter(|o| o.issued_at.year() == year).collect();
        let n = i32::try_from(of_year.len()).map_err(AppError::internal)?;
        let last: i32 = diesel::insert_into(invoice_counters::table)
            .values((
                invoice_counters::year.eq(year),
                invoice_counters::last_number.eq(n),
            ))
            .on_conflict(invoice_counters::year)
            .do_update()
            .set(invoice_counters::last_number.eq(invoice_counters::last_number + n))
            .returning(invoice_counters::last_number)
            .get_result(conn)
            .await?;
        for (o, seq) in of_year.into_iter().zip(last - n + 1..) {
            rows.push(invoice_of(o, year, seq, created_at)?);
        }
    }
    if !rows.is_empty() {
        invoices.extend(
            diesel::insert_into(invoices::table)
                .values(&rows)
                .returning(Invoice::as_returning())
                .get_results(conn)
                .await?,
        );
    }
    Ok(ids
        .iter()
        .filter_map(|id| invoices.iter().find(|i| i.order_id == *id).cloned())
        .collect())
}

fn invoice_of(o: &ToInvoice, year: i32, seq: i32, created_at: DateTime<Utc>) -> AppResult<Invoice> {
    let (order, period) = (o.order, o.period);
    let what = match order.kind {
        crate::enums::OrderKind::Purchase => "purchase",
        crate::enums::OrderKind::Renewal => "renewal",
    };
    let mut lines = vec![InvoiceLine {
        description: format!(
            "{} ({what}, term {}: {} to {})",
            o.offer.name,
            order.term,
            period.0.date_naive(),
            period.1.date_naive()
        ),
        quantity: 1,
        unit_minor: order.price_minor,
        amount_minor: order.price_minor,
    }];
    if order.discount_minor > 0 {
        lines.push(InvoiceLine {
            description: "Silver to Gold upgrade discount (25% of the first Gold term)".into(),
            quantity: 1,
            unit_minor: -order.discount_minor,
            amount_minor: -order.discount_minor,
        });
    }
    Ok(Invoice {
        id: Uuid::now_v7(),
        partner_id: order.partner_id,
        order_id: order.id,
        number: format!("INV-{year}-{seq:06}"),
        year,
        seq,
        issued_at: o.issued_at,
        period_start: period.0,
        period_end: period.1,
        bill_to: serde_json::to_value(BillTo::of(o.partner)).map_err(AppError::internal)?,
        lines: serde_json::to_value(&lines).map_err(AppError::internal)?,
        currency: order.currency.clone(),
        subtotal_minor: order.price_minor,
        discount_minor: order.discount_minor,
        tax_rate_bp: order.tax_rate_bp,
        tax_minor: order.tax_minor,
        total_minor: order.total_minor,
        created_at,
    })
}

/// The invoices of these orders (at most one each).
pub async fn for_orders(conn: &mut PgConn, order_ids: &[Uuid]) -> AppResult<Vec<Invoice>> {
    Ok(invoices::table
        .filter(invoices::order_id.eq_any(order_ids))
        .select(Invoice::as_select())
        .load(conn)
        .await?)
}

/// An invoice the caller may see: Global admins and MPN partner admins of its partner, and
/// operators. Others get FORBIDDEN; another partner's invoice is NOT_FOUND.
pub async fn load_visible(
    conn: &mut PgConn,
    principal: &Principal,
    id: Uuid,
) -> AppResult<Invoice> {
    principal.require(Action::ViewInvoices)?;
    let mut q = invoices::table
        .find(id)
        .select(Invoice::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(invoices::partner_id.eq(principal.scope(None)?));
    }
    q.first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("invoice"))
}

/// Newest first.
pub async fn list(
    conn: &mut PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<Invoice>> {
    principal.require(Action::ViewInvoices)?;
    let partner_id = principal.scope(partner_id)?;
    let mut q = invoices::table
        .filter(invoices::partner_id.eq(partner_id))
        .order(invoices::id.desc())
        .limit(limit)
        .select(Invoice::as_select())
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(invoices::id.lt(b));
    }
    Ok(q.load(conn).await?)
}
