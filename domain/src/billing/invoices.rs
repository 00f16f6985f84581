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

/// Stands for the invoice number in what [`issue_last`] writes with the invoice (emails that
/// quote it, the audit record): replaced by the number in the same statement.
pub const NUMBER_SLOT: &str = "[[invoice-number]]";

/// Issues the invoice of a paid order as the last write of the caller's transaction: one
/// statement bumps the year's counter, inserts the invoice and the rows that quote its number
/// (`quoting`: emails, with [`NUMBER_SLOT`] in their subject and bodies, and their outbox
/// rows; `audit`, with the slot in its details). The counter row stays locked until the
/// caller commits, so numbering holds it for this statement and the COMMIT only, instead of
/// every statement that follows it. Issuing twice for one order returns the first invoice
/// and writes nothing else.
pub async fn issue_last(
    conn: &mut PgConn,
    o: &ToInvoice<'_>,
    quoting: Vec<crate::db::models::NewEmail>,
    audit: Vec<crate::db::models::AuditEntry>,
) -> AppResult<Invoice> {
    use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
    if let Some(existing) = for_orders(conn, &[o.order.id]).await?.pop() {
        return Ok(existing);
    }
    let year = o.issued_at.year();
    // Everything but the number and seq, which the statement takes from the counter in the
    // format of `invoice_of`.
    let inv = invoice_of(o, year, 0, Utc::now())?;
    let payloads = quoting
        .iter()
        .map(|e| crate::email::job_of(e.id))
        .collect::<AppResult<Vec<_>>>()?;
    let texts = |f: fn(&crate::db::models::NewEmail) -> Option<&str>| -> Vec<String> {
        quoting
            .iter()
            .map(|e| f(e).unwrap_or_default().to_owned())
            .collect()
    };
    let invoice: Invoice = diesel::sql_query(
        "WITH c AS (
             INSERT INTO invoice_counters (year, last_number) VALUES ($1, 1)
             ON CONFLICT (year) DO UPDATE SET last_number = invoice_counters.last_number + 1
             RETURNING last_number),
         i AS (
             INSERT INTO invoices (id, partner_id, order_id, number, year, seq, issued_at,
                 period_start, period_end, bill_to, lines, currency, subtotal_minor,
                 discount_minor, tax_rate_bp, tax_minor, total_minor, created_at)
             SELECT $2, $3, $4,
                 'INV-' || $1 || '-' || lpad(c.last_number::text, greatest(6, length(c.last_number::text)), '0'),
                 $1, c.last_number, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16
             FROM c
             RETURNING *),
         e AS (
             INSERT INTO emails (id, partner_id, template, recipient, subject, body_text,
                 body_html, status, next_attempt_at)
             SELECT m.id, m.partner_id, m.template, m.recipient,
                 replace(m.subject, $17, i.number), replace(m.body_text, $17, i.number),
                 replace(m.body_html, $17, i.number), 'PENDING', $16
             FROM i, unnest($18::uuid[], $19::uuid[], $20::text[], $21::text[], $22::text[],
                 $23::text[], $24::text[]) AS m(id, partner_id, template, recipient, subject,
                 body_text, body_html)
             RETURNING 1),
         o AS (
             INSERT INTO outbox (queue, payload, run_at)
             SELECT $25, p, $16 FROM i, unnest($26::jsonb[]) AS p
             RETURNING 1),
         a AS (
             INSERT INTO audit_log (id, partner_id, actor_kind, actor_id, action, target_type,
                 target_id, details, request_id, created_at)
             SELECT r.id, r.partner_id, r.actor_kind, r.actor_id, r.action, r.target_type,
                 r.target_id, replace(r.details::text, $17, i.number)::jsonb, r.request_id, $16
             FROM i, unnest($27::uuid[], $28::uuid[], $29::text[], $30::text[], $31::text[],
                 $32::text[], $33::text[], $34::jsonb[], $35::text[]) AS r(id, partner_id,
                 actor_kind, actor_id, action, target_type, target_id, details, request_id)
             RETURNING 1)
         SELECT * FROM i",
    )
    .bind::<Integer, _>(year)
    .bind::<diesel::sql_types::Uuid, _>(inv.id)
    .bind::<diesel::sql_types::Uuid, _>(inv.partner_id)
    .bind::<diesel::sql_types::Uuid, _>(inv.order_id)
    .bind::<Timestamptz, _>(inv.issued_at)
    .bind::<Timestamptz, _>(inv.period_start)
    .bind::<Timestamptz, _>(inv.period_end)
    .bind::<Jsonb, _>(&inv.bill_to)
    .bind::<Jsonb, _>(&inv.lines)
    .bind::<Text, _>(&inv.currency)
    .bind::<BigInt, _>(inv.subtotal_minor)
    .bind::<BigInt, _>(inv.discount_minor)
    .bind::<Integer, _>(inv.tax_rate_bp)
    .bind::<BigInt, _>(inv.tax_minor)
    .bind::<BigInt, _>(inv.total_minor)
    .bind::<Timestamptz, _>(inv.created_at)
    .bind::<Text, _>(NUMBER_SLOT)
    .bind::<Array<diesel::sql_types::Uuid>, _>(quoting.iter().map(|e| e.id).collect::<Vec<_>>())
    .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(
        quoting.iter().map(|e| e.partner_id).collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(quoting.iter().map(|e| e.template.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(quoting.iter().map(|e| e.recipient.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(quoting.iter().map(|e| e.subject.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(texts(|e| e.body_text.as_deref()))
    .bind::<Array<Text>, _>(texts(|e| e.body_html.as_deref()))
    .bind::<Text, _>(<crate::jobs::SendEmail as crate::jobs::Job>::QUEUE)
    .bind::<Array<Jsonb>, _>(payloads)
    .bind::<Array<diesel::sql_types::Uuid>, _>(audit.iter().map(|a| a.id).collect::<Vec<_>>())
    .bind::<Array<Nullable<diesel::sql_types::Uuid>>, _>(
        audit.iter().map(|a| a.partner_id).collect::<Vec<_>>(),
    )
    .bind::<Array<Text>, _>(audit.iter().map(|a| a.actor_kind.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(audit.iter().map(|a| a.actor_id.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(audit.iter().map(|a| a.action.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(audit.iter().map(|a| a.target_type.clone()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(audit.iter().map(|a| a.target_id.clone()).collect::<Vec<_>>())
    .bind::<Array<Jsonb>, _>(audit.iter().map(|a| a.details.clone()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Text>>, _>(
        audit.iter().map(|a| a.request_id.clone()).collect::<Vec<_>>(),
    )
    .reuse()
    .get_result(conn)
    .await?;
    Ok(invoice)
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
            .reuse()
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
                .reuse_for_rows(rows.len())
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
        // `issue_last` writes the same format in SQL (it learns `seq` in the statement).
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
