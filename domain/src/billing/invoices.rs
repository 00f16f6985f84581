//! Invoices: one per paid order (purchase or renewal), numbered `INV-{year}-{seq}` without
//! gaps per year. The counter row is bumped in the invoice's own transaction, so a rolled-back
//! invoice returns its number.
//!
//! The counter is touched last: a paid order's receipt and audit record are made with a slot
//! for the number ([`NUMBER_SLOT`]) and written by the one statement that bumps the counter and
//! inserts the invoice ([`issue_last`], which also leaves out an order invoiced before), right
//! before COMMIT, so the counter row is locked for that statement and the COMMIT only.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::json_text::JsonText;
use crate::db::models::{Invoice, Offer, Order, Partner};
use crate::db::prelude::*;
use crate::db::schema::{invoices, orders};
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
    inv.lines.parse().unwrap_or_default()
}

pub fn bill_to_of(inv: &Invoice) -> Option<BillTo> {
    inv.bill_to.parse().ok()
}

/// Stands for the invoice number in what [`issue_last`] writes with the invoice (emails that
/// quote it, the audit record): replaced by the number in the same statement.
pub const NUMBER_SLOT: &str = "[[invoice-number]]";

/// Issues the invoices of paid orders as the last write of the caller's transaction: per year,
/// one statement bumps the year's counter by the number of new invoices, inserts them
/// (consecutive numbers, in the given order) and the rows that quote their numbers
/// (`quoting`: emails with [`NUMBER_SLOT`] in their subject and bodies, each with the order
/// whose number it quotes, and their outbox rows; `audit`: records with the slot in their
/// details). The counter row stays locked until the caller commits, so numbering holds it for
/// this statement and the COMMIT only, instead of every statement that would follow it. An
/// order invoiced before keeps its invoice (the same statement leaves it out), and its quoting
/// rows are not written. Returns one invoice per order, in order.
pub async fn issue_last(
    conn: &mut PgConn,
    orders: &[ToInvoice<'_>],
    quoting: Vec<(Uuid, crate::db::models::NewEmail)>,
    audit: Vec<(Uuid, crate::db::models::AuditEntry)>,
) -> AppResult<Vec<Invoice>> {
    let ids: Vec<Uuid> = orders.iter().map(|o| o.order.id).collect();
    let mut invoices = Vec::with_capacity(orders.len());
    let mut years: Vec<i32> = orders.iter().map(|o| o.issued_at.year()).collect();
    years.sort_unstable();
    years.dedup();
    for year in years {
        let of_year: Vec<&ToInvoice> = orders
            .iter()
            .filter(|o| o.issued_at.year() == year)
            .collect();
        let quotes = |order_id: &Uuid| of_year.iter().any(|o| o.order.id == *order_id);
        let emails = quoting.iter().filter(|(id, _)| quotes(id));
        let records = audit.iter().filter(|(id, _)| quotes(id));
        invoices.extend(number_year(conn, year, &of_year, emails, records).await?);
    }
    Ok(ids
        .iter()
        .filter_map(|id| invoices.iter().find(|i| i.order_id == *id).cloned())
        .collect())
}

/// The statement of [`number_year`]: the orders not invoiced yet (`n`) take consecutive
/// numbers from the year's counter (`c`, bumped by their count), their invoices are inserted
/// (`i`), and the receipts (`e`, with their outbox rows `o`) and audit records (`a`) that
/// quote [`NUMBER_SLOT`] get the number. Binds: $1 year, $2 now, $3-$16 the invoices, $17
/// the slot, $18-$25 the emails, $26-$27 the outbox, $28-$37 the audit records.
const NUMBER_YEAR: &str = "WITH n AS (
         SELECT u.*, row_number() OVER (ORDER BY u.ord) AS k
         FROM unnest($3::uuid[], $4::uuid[], $5::uuid[], $6::timestamptz[],
             $7::timestamptz[], $8::timestamptz[], $9::jsonb[], $10::jsonb[], $11::text[],
             $12::int8[], $13::int8[], $14::int4[], $15::int8[], $16::int8[])
             WITH ORDINALITY AS u(id, partner_id, order_id, issued_at, period_start,
             period_end, bill_to, lines, currency, subtotal_minor, discount_minor,
             tax_rate_bp, tax_minor, total_minor, ord)
         WHERE NOT EXISTS (SELECT 1 FROM invoices x WHERE x.order_id = u.order_id)),
     c AS (
         INSERT INTO invoice_counters (year, last_number)
         SELECT $1, count(*) FROM n HAVING count(*) > 0
         ON CONFLICT (year) DO UPDATE
             SET last_number = invoice_counters.last_number + EXCLUDED.last_number
         RETURNING last_number),
     v AS (
         SELECT n.*, (c.last_number - (SELECT count(*) FROM n) + n.k)::int AS seq
         FROM c, n),
     i AS (
         INSERT INTO invoices (id, partner_id, order_id, number, year, seq, issued_at,
             period_start, period_end, bill_to, lines, currency, subtotal_minor,
             discount_minor, tax_rate_bp, tax_minor, total_minor, created_at)
         SELECT v.id, v.partner_id, v.order_id,
             'INV-' || $1 || '-' || lpad(v.seq::text, greatest(6, length(v.seq::text)), '0'),
             $1, v.seq, v.issued_at, v.period_start, v.period_end, v.bill_to, v.lines,
             v.currency, v.subtotal_minor, v.discount_minor, v.tax_rate_bp, v.tax_minor,
             v.total_minor, $2
         FROM v ORDER BY v.ord
         RETURNING *),
     e AS (
         INSERT INTO emails (id, partner_id, template, recipient, subject, body_text,
             body_html, status, next_attempt_at)
         SELECT m.id, m.partner_id, m.template, m.recipient,
             replace(m.subject, $17, i.number), replace(m.body_text, $17, i.number),
             replace(m.body_html, $17, i.number), 'PENDING', $2
         FROM unnest($18::uuid[], $19::uuid[], $20::text[], $21::text[], $22::text[],
             $23::text[], $24::text[], $25::uuid[]) AS m(id, partner_id, template,
             recipient, subject, body_text, body_html, order_id)
         JOIN i ON i.order_id = m.order_id
         RETURNING 1),
     o AS (
         INSERT INTO outbox (queue, payload, run_at)
         SELECT $26, p, $2 FROM unnest($27::jsonb[]) AS p
         RETURNING 1),
     a AS (
         INSERT INTO audit_log (id, partner_id, actor_kind, actor_id, action, target_type,
             target_id, details, request_id, created_at)
         SELECT r.id, r.partner_id, r.actor_kind, r.actor_id, r.action, r.target_type,
             r.target_id, replace(r.details::text, $17, i.number)::jsonb, r.request_id, $2
         FROM unnest($28::uuid[], $29::uuid[], $30::text[], $31::text[], $32::text[],
             $33::text[], $34::text[], $35::jsonb[], $36::text[], $37::uuid[])
             AS r(id, partner_id, actor_kind, actor_id, action, target_type, target_id,
             details, request_id, order_id)
         JOIN i ON i.order_id = r.order_id
         RETURNING 1)
     SELECT * FROM i
     UNION ALL
     SELECT x.* FROM invoices x WHERE x.order_id = ANY($5)";

/// One year's part of [`issue_last`]: one statement (data-modifying CTEs). Returns the
/// invoices it issued and those the orders had already (issued by an earlier statement, so
/// visible to this one; they take no number and quote nothing).
async fn number_year<'e>(
    conn: &mut PgConn,
    year: i32,
    orders: &[&ToInvoice<'_>],
    emails: impl Iterator<Item = &'e (Uuid, crate::db::models::NewEmail)>,
    audit: impl Iterator<Item = &'e (Uuid, crate::db::models::AuditEntry)>,
) -> AppResult<Vec<Invoice>> {
    use diesel::sql_types::{Array, BigInt, Integer, Jsonb, Nullable, Text, Timestamptz};
    type SqlUuid = diesel::sql_types::Uuid;
    let (emails, audit): (Vec<_>, Vec<_>) = (emails.collect(), audit.collect());
    let now = Utc::now();
    // Everything but the number and seq, which the statement takes from the counter in the
    // format of `invoice_of`.
    let inv = orders
        .iter()
        .map(|o| invoice_of(o, year, 0, now))
        .collect::<AppResult<Vec<_>>>()?;
    let col = |f: fn(&Invoice) -> i64| inv.iter().map(f).collect::<Vec<_>>();
    let payloads = emails
        .iter()
        .map(|(_, e)| crate::email::job_of(e.id))
        .collect::<AppResult<Vec<_>>>()?;
    let audit_text = |f: fn(&crate::db::models::AuditEntry) -> String| -> Vec<String> {
        audit.iter().map(|(_, a)| f(a)).collect()
    };
    let email_text = |f: fn(&crate::db::models::NewEmail) -> &str| -> Vec<String> {
        emails.iter().map(|(_, e)| f(e).to_owned()).collect()
    };
    Ok(diesel::sql_query(NUMBER_YEAR)
        .bind::<Integer, _>(year)
        .bind::<Timestamptz, _>(now)
        .bind::<Array<SqlUuid>, _>(inv.iter().map(|i| i.id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(inv.iter().map(|i| i.partner_id).collect::<Vec<_>>())
        .bind::<Array<SqlUuid>, _>(inv.iter().map(|i| i.order_id).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(inv.iter().map(|i| i.issued_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(inv.iter().map(|i| i.period_start).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(inv.iter().map(|i| i.period_end).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(inv.iter().map(|i| i.bill_to.clone()).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(inv.iter().map(|i| i.lines.clone()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(inv.iter().map(|i| i.currency.clone()).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(col(|i| i.subtotal_minor))
        .bind::<Array<BigInt>, _>(col(|i| i.discount_minor))
        .bind::<Array<Integer>, _>(inv.iter().map(|i| i.tax_rate_bp).collect::<Vec<_>>())
        .bind::<Array<BigInt>, _>(col(|i| i.tax_minor))
        .bind::<Array<BigInt>, _>(col(|i| i.total_minor))
        .bind::<Text, _>(NUMBER_SLOT)
        .bind::<Array<SqlUuid>, _>(emails.iter().map(|(_, e)| e.id).collect::<Vec<_>>())
        .bind::<Array<Nullable<SqlUuid>>, _>(
            emails.iter().map(|(_, e)| e.partner_id).collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(email_text(|e| &e.template))
        .bind::<Array<Text>, _>(email_text(|e| &e.recipient))
        .bind::<Array<Text>, _>(email_text(|e| &e.subject))
        .bind::<Array<Text>, _>(email_text(|e| e.body_text.as_deref().unwrap_or_default()))
        .bind::<Array<Text>, _>(email_text(|e| e.body_html.as_deref().unwrap_or_default()))
        .bind::<Array<SqlUuid>, _>(emails.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind::<Text, _>(<crate::jobs::SendEmail as crate::jobs::Job>::QUEUE)
        .bind::<Array<Jsonb>, _>(payloads)
        .bind::<Array<SqlUuid>, _>(audit.iter().map(|(_, a)| a.id).collect::<Vec<_>>())
        .bind::<Array<Nullable<SqlUuid>>, _>(
            audit.iter().map(|(_, a)| a.partner_id).collect::<Vec<_>>(),
        )
        .bind::<Array<Text>, _>(audit_text(|a| a.actor_kind.as_str().to_owned()))
        .bind::<Array<Text>, _>(audit_text(|a| a.actor_id.clone()))
        .bind::<Array<Text>, _>(audit_text(|a| a.action.clone()))
        .bind::<Array<Text>, _>(audit_text(|a| a.target_type.clone()))
        .bind::<Array<Text>, _>(audit_text(|a| a.target_id.clone()))
        .bind::<Array<Jsonb>, _>(
            audit
                .iter()
                .map(|(_, a)| a.details.clone())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<Nullable<Text>>, _>(
            audit
                .iter()
                .map(|(_, a)| a.request_id.clone())
                .collect::<Vec<_>>(),
        )
        .bind::<Array<SqlUuid>, _>(audit.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .reuse()
        .load(conn)
        .await?)
}

/// A paid order to invoice (see [`issue_last`]).
pub struct ToInvoice<'a> {
    pub order: &'a Order,
    pub offer: &'a Offer,
    pub partner: &'a Partner,
    /// The term the invoice covers.
    pub period: (DateTime<Utc>, DateTime<Utc>),
    /// On the partner's clock; its year numbers the invoice.
    pub issued_at: DateTime<Utc>,
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
        bill_to: JsonText::of(&BillTo::of(o.partner)).map_err(AppError::internal)?,
        lines: JsonText::of(&lines).map_err(AppError::internal)?,
        currency: order.currency.clone(),
        subtotal_minor: order.price_minor,
        discount_minor: order.discount_minor,
        tax_rate_bp: order.tax_rate_bp,
        tax_minor: order.tax_minor,
        total_minor: order.total_minor,
        created_at,
    })
}

/// The invoices of these orders (at most one each), for those who may see invoices (the
/// orders are ones the caller sees).
pub async fn of_orders(
    conn: &mut PgConn,
    principal: &Principal,
    order_ids: &[Uuid],
) -> AppResult<Vec<Invoice>> {
    principal.require(Action::ViewInvoices)?;
    Ok(invoices::table
        .filter(invoices::order_id.eq_any(order_ids))
        .select(Invoice::as_select())
        .load(conn)
        .await?)
}

/// The invoices of one subscription (its purchase and every renewal), newest first, for those
/// who may see invoices (the subscription is one the caller sees).
pub async fn of_subscription(
    conn: &mut PgConn,
    principal: &Principal,
    subscription_id: Uuid,
) -> AppResult<Vec<Invoice>> {
    principal.require(Action::ViewInvoices)?;
    Ok(invoices::table
        .inner_join(orders::table)
        .filter(orders::subscription_id.eq(subscription_id))
        .order(invoices::issued_at.desc())
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
    mut conn: &PgConn,
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
    Ok(q.load(&mut conn).await?)
}

/// How many invoices [`list`] lists over every page (`totalCount`).
pub async fn count(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
) -> AppResult<i64> {
    principal.require(Action::ViewInvoices)?;
    let partner_id = principal.scope(partner_id)?;
    Ok(invoices::table
        .filter(invoices::partner_id.eq(partner_id))
        .count()
        .get_result(&mut conn)
        .await?)
}
