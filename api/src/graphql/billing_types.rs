//! GraphQL output types of the catalog, orders, subscriptions, invoices and test clocks.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};
use gateway_domain::billing::invoices as inv;
use gateway_domain::billing::quote::{self as billing_quote, format_money};
use gateway_domain::catalog::{self, OfferSection};
use gateway_domain::db::models;
use gateway_domain::enums::*;
use gateway_domain::error::Reason;

pub use super::subscription_types::{Refund, RefundEligibility, Subscription};
use super::{conn, loaders};

#[derive(SimpleObject, Clone)]
pub struct Money {
    /// In minor units (cents).
    pub amount_minor: i64,
    /// ISO 4217.
    pub currency: String,
    /// For people: "USD 475.00".
    pub formatted: String,
}

pub fn money(amount_minor: i64, currency: &str) -> Money {
    Money {
        amount_minor,
        currency: currency.to_owned(),
        formatted: format_money(amount_minor, currency),
    }
}

/// Why something cannot be done now, machine-readable.
#[derive(SimpleObject, Clone)]
pub struct IneligibilityReason {
    pub code: String,
    pub message: String,
    /// When it stops applying (for example the day a renewal window opens), if known.
    pub at: Option<String>,
}

impl From<Reason> for IneligibilityReason {
    fn from(r: Reason) -> Self {
        Self {
            code: r.code,
            message: r.message,
            at: r.at,
        }
    }
}

pub(super) fn reasons(list: Vec<Reason>) -> Vec<IneligibilityReason> {
    list.into_iter().map(Into::into).collect()
}

#[derive(SimpleObject)]
pub struct BenefitAllocation {
    pub code: String,
    pub category: BenefitCategory,
    pub product: String,
    pub delivery: BenefitDelivery,
    /// Null: unlimited.
    pub quantity: Option<i32>,
    pub unit: String,
    /// Added per bound competency that grants extra Visual Studio seats.
    pub bonus_per_competency: i32,
    /// Unlimited when the package covers a cloud competency.
    pub unlimited_with_cloud_competency: bool,
    /// Granted only when the package covers this competency.
    pub requires_competency: Option<String>,
}

pub struct Offer(pub models::Offer);

#[Object]
impl Offer {
    /// `NETWORK`, `ACTION_PACK`, `SILVER`, `GOLD`.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn description(&self) -> &str {
        &self.0.description
    }
    async fn kind(&self) -> OfferKind {
        self.0.kind
    }
    async fn level(&self) -> Option<CompetencyLevel> {
        self.0.level
    }
    /// The yearly price before discount and tax.
    async fn price(&self) -> Money {
        money(self.0.price_minor, &self.0.currency)
    }
    async fn annual(&self) -> bool {
        self.0.annual
    }
    /// Pass this as `acceptTermsVersion` when buying.
    async fn terms_version(&self) -> &str {
        &self.0.terms_version
    }
    async fn benefits(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<BenefitAllocation>> {
        Ok(loaders(ctx)
            .offer_benefits
            .load_one(self.0.id.clone())
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|b| BenefitAllocation {
                code: b.code,
                category: b.category,
                product: b.product,
                delivery: b.delivery,
                quantity: b.quantity,
                unit: b.unit,
                bonus_per_competency: b.bonus_per_competency,
                unlimited_with_cloud_competency: b.unlimited_if_cloud,
                requires_competency: b.requires_competency,
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct Quote {
    pub price: Money,
    /// The Silver to Gold upgrade discount (25% of the first Gold term), if it applies.
    pub discount: Money,
    pub tax_rate_basis_points: i32,
    pub tax: Money,
    pub total: Money,
}

pub fn quote(q: &billing_quote::Quote, currency: &str) -> Quote {
    Quote {
        price: money(q.price_minor, currency),
        discount: money(q.discount_minor, currency),
        tax_rate_basis_points: q.tax_rate_bp,
        tax: money(q.tax_minor, currency),
        total: money(q.total_minor, currency),
    }
}

#[derive(SimpleObject)]
pub struct OfferListing {
    pub offer: Offer,
    pub section: OfferSection,
    /// Available offers: whether it can be bought right now.
    pub purchasable: bool,
    /// Why it cannot be bought now (empty when it can).
    pub reasons: Vec<IneligibilityReason>,
    /// The subscription behind a Purchased or Expired entry (or a pending order's).
    pub subscription: Option<Subscription>,
    /// Available offers: what buying it now costs.
    pub quote: Option<Quote>,
}

impl From<catalog::Listing> for OfferListing {
    fn from(l: catalog::Listing) -> Self {
        let currency = l.offer.currency.clone();
        Self {
            purchasable: l.section == OfferSection::Available && l.reasons.is_empty(),
            quote: l.quote.map(|q| quote(&q, &currency)),
            offer: Offer(l.offer),
            section: l.section,
            reasons: reasons(l.reasons),
            subscription: l.subscription.map(Subscription),
        }
    }
}

/// An offer (subscriptions and orders name theirs by id): from the kept catalog when it holds
/// it, at once; else through the request's loader, which reads the catalog again.
pub(super) async fn offer(ctx: &Context<'_>, id: &str) -> async_graphql::Result<Offer> {
    let offers = &loaders(ctx).offers;
    if let Some(kept) = offers.loader().1.kept(id) {
        return Ok(Offer(kept));
    }
    offers
        .load_one(id.to_owned())
        .await?
        .map(Offer)
        .ok_or_else(|| gateway_domain::AppError::NotFound("offer").into())
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PaymentMethod {
    #[graphql(skip)]
    pub id: ID,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub holder_name: String,
    pub created_at: DateTime<Utc>,
}

#[async_graphql::ComplexObject]
impl PaymentMethod {
    pub(crate) async fn id(&self) -> ID {
        self.id.clone()
    }
}

impl From<models::PaymentMethod> for PaymentMethod {
    fn from(p: models::PaymentMethod) -> Self {
        Self {
            id: ID(p.id.to_string()),
            brand: p.brand,
            last4: p.last4,
            exp_month: p.exp_month,
            exp_year: p.exp_year,
            holder_name: p.holder_name,
            created_at: p.created_at,
        }
    }
}

#[derive(SimpleObject)]
pub struct BankTransfer {
    pub contact_name: String,
    pub contact_phone: String,
    pub contact_email: String,
    /// Quote this with the transfer.
    pub payment_reference: String,
    /// Recorded by the operator who confirmed the funds.
    pub confirmation_reference: Option<String>,
}

/// A refund's own state: REFUND_PENDING → REFUNDED | REFUND_FAILED.
pub struct Order(pub models::Order);

#[Object]
impl Order {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn kind(&self) -> OrderKind {
        self.0.kind
    }
    async fn status(&self) -> OrderStatus {
        self.0.status
    }
    async fn offer(&self, ctx: &Context<'_>) -> async_graphql::Result<Offer> {
        offer(ctx, &self.0.offer_id).await
    }
    async fn term(&self) -> i32 {
        self.0.term
    }
    async fn payment_kind(&self) -> PaymentKind {
        self.0.payment_kind
    }
    async fn bank_transfer(&self) -> Option<BankTransfer> {
        self.0.bank_details().map(|b| BankTransfer {
            contact_name: b.contact_name,
            contact_phone: b.contact_phone,
            contact_email: b.contact_email,
            payment_reference: self.0.number.clone(),
            confirmation_reference: b.reference,
        })
    }
    async fn price(&self) -> Money {
        money(self.0.price_minor, &self.0.currency)
    }
    async fn discount(&self) -> Money {
        money(self.0.discount_minor, &self.0.currency)
    }
    async fn tax_rate_basis_points(&self) -> i32 {
        self.0.tax_rate_bp
    }
    async fn tax(&self) -> Money {
        money(self.0.tax_minor, &self.0.currency)
    }
    async fn total(&self) -> Money {
        money(self.0.total_minor, &self.0.currency)
    }
    /// The offer terms version accepted with the order.
    async fn terms_version(&self) -> Option<&str> {
        self.0.terms_version.as_deref()
    }
    async fn competencies(&self) -> &[String] {
        &self.0.competencies
    }
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    /// Bank transfers: the order expires unpaid at this time.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    /// PAYMENT_FAILED: `CARD_DECLINED`, `CARD_HARD_DECLINED`, `GATEWAY_UNAVAILABLE`, …
    async fn failure_code(&self) -> Option<&str> {
        self.0.failure_code.as_deref()
    }
    async fn failure_message(&self) -> Option<&str> {
        self.0.failure_message.as_deref()
    }
    async fn refunded(&self) -> Money {
        money(self.0.refunded_minor, &self.0.currency)
    }
    /// The refund of this order, once one was decided: REFUND_PENDING → REFUNDED |
    /// REFUND_FAILED.
    async fn refund(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Refund>> {
        let mut c = conn(ctx).await?;
        Ok(
            gateway_domain::lifecycle::refunds::of_orders(&mut c, &[self.0.id])
                .await?
                .pop()
                .map(Refund),
        )
    }
    async fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }
    async fn subscription(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Subscription>> {
        let Some(id) = self.0.subscription_id else {
            return Ok(None);
        };
        // Batched: a list of orders reads their subscriptions in one statement.
        match loaders(ctx).subscriptions.load_one(id).await? {
            Some(s) => Ok(Some(Subscription(s))),
            None => Err(gateway_domain::AppError::NotFound("subscription").into()),
        }
    }
    /// The invoice of a paid order (Global admins, MPN partner admins, operators).
    async fn invoice(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Invoice>> {
        Ok(loaders(ctx)
            .invoice_of_order
            .load_one(self.0.id)
            .await?
            .map(Invoice))
    }
}

#[derive(SimpleObject)]
pub struct BillTo {
    pub name: String,
    pub mpn_id: String,
    pub address_lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

#[derive(SimpleObject)]
pub struct InvoiceLine {
    pub description: String,
    pub quantity: i32,
    pub unit_price: Money,
    pub amount: Money,
}

pub struct Invoice(pub models::Invoice);

#[Object]
impl Invoice {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `INV-{year}-{sequence}`, without gaps within a year.
    async fn number(&self) -> &str {
        &self.0.number
    }
    async fn order_id(&self) -> ID {
        ID(self.0.order_id.to_string())
    }
    async fn issued_at(&self) -> DateTime<Utc> {
        self.0.issued_at
    }
    async fn period_start(&self) -> DateTime<Utc> {
        self.0.period_start
    }
    async fn period_end(&self) -> DateTime<Utc> {
        self.0.period_end
    }
    async fn bill_to(&self) -> Option<BillTo> {
        inv::bill_to_of(&self.0).map(|b| BillTo {
            name: b.name,
            mpn_id: b.mpn_id,
            address_lines: b.address_lines,
            city: b.city,
            region: b.region,
            postal_code: b.postal_code,
            country: b.country,
        })
    }
    async fn lines(&self) -> Vec<InvoiceLine> {
        inv::lines_of(&self.0)
            .into_iter()
            .map(|l| InvoiceLine {
                description: l.description,
                quantity: l.quantity,
                unit_price: money(l.unit_minor, &self.0.currency),
                amount: money(l.amount_minor, &self.0.currency),
            })
            .collect()
    }
    async fn subtotal(&self) -> Money {
        money(self.0.subtotal_minor, &self.0.currency)
    }
    async fn discount(&self) -> Money {
        money(self.0.discount_minor, &self.0.currency)
    }
    async fn tax_rate_basis_points(&self) -> i32 {
        self.0.tax_rate_bp
    }
    async fn tax(&self) -> Money {
        money(self.0.tax_minor, &self.0.currency)
    }
    async fn total(&self) -> Money {
        money(self.0.total_minor, &self.0.currency)
    }
    /// Download with the same bearer token: `GET {pdfPath}`.
    async fn pdf_path(&self) -> String {
        format!("/invoices/{}/pdf", self.0.id)
    }
}

#[derive(SimpleObject)]
pub struct Competency {
    pub code: String,
    pub name: String,
    pub solution_area: String,
    /// Cloud competencies give unlimited Signature Cloud Support.
    pub cloud: bool,
}

impl From<models::Competency> for Competency {
    fn from(c: models::Competency) -> Self {
        Self {
            code: c.code,
            name: c.name,
            solution_area: c.solution_area,
            cloud: c.cloud,
        }
    }
}

#[derive(SimpleObject)]
pub struct Qualification {
    pub id: ID,
    pub competency: String,
    pub level: CompetencyLevel,
    pub qualified_on: NaiveDate,
}

impl From<models::Qualification> for Qualification {
    fn from(q: models::Qualification) -> Self {
        Self {
            id: ID(q.id.to_string()),
            competency: q.competency,
            level: q.level,
            qualified_on: q.qualified_on,
        }
    }
}

#[derive(SimpleObject)]
pub struct TestClock {
    pub partner_id: ID,
    /// The partner's current time.
    pub now: DateTime<Utc>,
    /// How far it runs ahead of real time.
    pub offset_seconds: i64,
}

impl From<gateway_domain::clock::TestClock> for TestClock {
    fn from(c: gateway_domain::clock::TestClock) -> Self {
        Self {
            partner_id: ID(c.partner_id.to_string()),
            now: c.now,
            offset_seconds: c.offset_seconds,
        }
    }
}
