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
/// An amount of money in a currency.
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
    /// A stable code for the reason, for example `NOT_QUALIFIED` or `RENEWAL_NOT_OPEN`.
    pub code: String,
    /// The reason, for people.
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
/// A benefit an offer grants, and how much of it per term.
pub struct BenefitAllocation {
    /// The benefit's stable code.
    pub code: String,
    /// The benefit's category.
    pub category: BenefitCategory,
    /// The product's display name.
    pub product: String,
    /// How the benefit is delivered and used.
    pub delivery: BenefitDelivery,
    /// Null: unlimited.
    pub quantity: Option<i32>,
    /// What the quantity counts.
    pub unit: String,
    /// Added per bound competency that grants extra Visual Studio seats.
    pub bonus_per_competency: i32,
    /// Unlimited when the package covers a cloud competency.
    pub unlimited_with_cloud_competency: bool,
    /// Granted only when the package covers this competency.
    pub requires_competency: Option<String>,
}

/// An offer of the catalog: the annual Action Pack or a Silver or Gold competency package.
pub struct Offer(pub models::Offer);

/// An offer of the catalog: the annual Action Pack or a Silver or Gold competency package.
#[Object]
impl Offer {
    /// `NETWORK`, `ACTION_PACK`, `SILVER`, `GOLD`.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.clone())
    }
    /// Its display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What it is, for people.
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// Action Pack or competency package.
    async fn kind(&self) -> OfferKind {
        self.0.kind
    }
    /// Competency packages: Silver or Gold.
    async fn level(&self) -> Option<CompetencyLevel> {
        self.0.level
    }
    /// The yearly price before discount and tax.
    async fn price(&self) -> Money {
        money(self.0.price_minor, &self.0.currency)
    }
    /// True: bought for a year and renewed yearly.
    async fn annual(&self) -> bool {
        self.0.annual
    }
    /// Pass this as `acceptTermsVersion` when buying.
    async fn terms_version(&self) -> &str {
        &self.0.terms_version
    }
    /// The benefits it grants each term.
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
/// What buying an offer costs now.
pub struct Quote {
    /// The offer's price before discount and tax.
    pub price: Money,
    /// The Silver to Gold upgrade discount (25% of the first Gold term), if it applies.
    pub discount: Money,
    /// The tax rate in basis points (825 = 8.25 %).
    pub tax_rate_basis_points: i32,
    /// The tax.
    pub tax: Money,
    /// What would be charged.
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
/// An offer as the partner sees it: in which section, and whether it can be bought now.
pub struct OfferListing {
    /// The offer.
    pub offer: Offer,
    /// Available, Purchased or Expired.
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
/// A saved card: only its brand, last four digits and expiry are kept.
pub struct PaymentMethod {
    #[graphql(skip)]
    pub id: ID,
    /// The card's brand, for example `visa`.
    pub brand: String,
    /// The card number's last four digits.
    pub last4: String,
    /// Expiry month.
    pub exp_month: i32,
    /// Expiry year.
    pub exp_year: i32,
    /// The name on the card.
    pub holder_name: String,
    /// When it was saved.
    pub created_at: DateTime<Utc>,
}

#[async_graphql::ComplexObject]
impl PaymentMethod {
    /// The card's global id.
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
/// How an order paid by bank transfer is settled: the contact who arranges it and the reference to quote.
pub struct BankTransfer {
    /// Who arranges the transfer at the partner.
    pub contact_name: String,
    /// That contact's phone number.
    pub contact_phone: String,
    /// That contact's email; the transfer instructions are sent there.
    pub contact_email: String,
    /// Quote this with the transfer.
    pub payment_reference: String,
    /// Recorded by the operator who confirmed the funds.
    pub confirmation_reference: Option<String>,
}

/// A refund's own state: REFUND_PENDING → REFUNDED | REFUND_FAILED.
/// An order: a purchase or a renewal of a package, paid by card or by bank transfer.
pub struct Order(pub models::Order);

/// A refund's own state: REFUND_PENDING → REFUNDED | REFUND_FAILED.
/// An order: a purchase or a renewal of a package, paid by card or by bank transfer.
#[Object]
impl Order {
    /// The order's global id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The order's number, for people (`ORD-…`).
    async fn number(&self) -> &str {
        &self.0.number
    }
    /// Purchase or renewal.
    async fn kind(&self) -> OrderKind {
        self.0.kind
    }
    /// Where the order stands.
    async fn status(&self) -> OrderStatus {
        self.0.status
    }
    /// The offer ordered.
    async fn offer(&self, ctx: &Context<'_>) -> async_graphql::Result<Offer> {
        offer(ctx, &self.0.offer_id).await
    }
    /// The term it pays for (1 for a purchase).
    async fn term(&self) -> i32 {
        self.0.term
    }
    /// Card or bank transfer.
    async fn payment_kind(&self) -> PaymentKind {
        self.0.payment_kind
    }
    /// Bank transfers: who arranges it and the reference to quote.
    async fn bank_transfer(&self) -> Option<BankTransfer> {
        self.0.bank_details().map(|b| BankTransfer {
            contact_name: b.contact_name,
            contact_phone: b.contact_phone,
            contact_email: b.contact_email,
            payment_reference: self.0.number.clone(),
            confirmation_reference: b.reference,
        })
    }
    /// The offer's price before discount and tax.
    async fn price(&self) -> Money {
        money(self.0.price_minor, &self.0.currency)
    }
    /// The discount applied.
    async fn discount(&self) -> Money {
        money(self.0.discount_minor, &self.0.currency)
    }
    /// The tax rate in basis points (825 = 8.25 %).
    async fn tax_rate_basis_points(&self) -> i32 {
        self.0.tax_rate_bp
    }
    /// The tax.
    async fn tax(&self) -> Money {
        money(self.0.tax_minor, &self.0.currency)
    }
    /// What is charged: price − discount + tax.
    async fn total(&self) -> Money {
        money(self.0.total_minor, &self.0.currency)
    }
    /// The offer terms version accepted with the order.
    async fn terms_version(&self) -> Option<&str> {
        self.0.terms_version.as_deref()
    }
    /// Competency packages: the competencies it binds.
    async fn competencies(&self) -> &[String] {
        &self.0.competencies
    }
    /// When it was placed.
    async fn placed_at(&self) -> DateTime<Utc> {
        self.0.placed_at
    }
    /// Bank transfers: the order expires unpaid at this time.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
    /// When it was paid.
    async fn paid_at(&self) -> Option<DateTime<Utc>> {
        self.0.paid_at
    }
    /// PAYMENT_FAILED: `CARD_DECLINED`, `CARD_HARD_DECLINED`, `GATEWAY_UNAVAILABLE`, …
    async fn failure_code(&self) -> Option<&str> {
        self.0.failure_code.as_deref()
    }
    /// PAYMENT_FAILED: the reason, for people.
    async fn failure_message(&self) -> Option<&str> {
        self.0.failure_message.as_deref()
    }
    /// How much of it was refunded.
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
    /// When the refund completed.
    async fn refunded_at(&self) -> Option<DateTime<Utc>> {
        self.0.refunded_at
    }
    /// The subscription it bought or renewed.
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
/// Whom an invoice is made out to, as it was when the invoice was issued.
pub struct BillTo {
    /// The partner's legal name.
    pub name: String,
    /// The partner's MPN ID.
    pub mpn_id: String,
    /// Street lines of the legal address.
    pub address_lines: Vec<String>,
    /// The city.
    pub city: String,
    /// The state, province or region.
    pub region: Option<String>,
    /// The postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

#[derive(SimpleObject)]
/// One line of an invoice.
pub struct InvoiceLine {
    /// What was bought.
    pub description: String,
    /// How many.
    pub quantity: i32,
    /// The price of one.
    pub unit_price: Money,
    /// quantity × unitPrice.
    pub amount: Money,
}

/// An invoice: one per paid order (purchase or renewal), numbered without gaps per year.
pub struct Invoice(pub models::Invoice);

/// An invoice: one per paid order (purchase or renewal), numbered without gaps per year.
#[Object]
impl Invoice {
    /// The invoice's global id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `INV-{year}-{sequence}`, without gaps within a year.
    async fn number(&self) -> &str {
        &self.0.number
    }
    /// The paid order it invoices.
    async fn order_id(&self) -> ID {
        ID(self.0.order_id.to_string())
    }
    /// When it was issued (the order's payment).
    async fn issued_at(&self) -> DateTime<Utc> {
        self.0.issued_at
    }
    /// The start of the term it covers.
    async fn period_start(&self) -> DateTime<Utc> {
        self.0.period_start
    }
    /// The end of the term it covers.
    async fn period_end(&self) -> DateTime<Utc> {
        self.0.period_end
    }
    /// Whom it is made out to.
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
    /// Its lines.
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
    /// The sum of the lines, before discount and tax.
    async fn subtotal(&self) -> Money {
        money(self.0.subtotal_minor, &self.0.currency)
    }
    /// The discount (an upgrade discount, for example).
    async fn discount(&self) -> Money {
        money(self.0.discount_minor, &self.0.currency)
    }
    /// The tax rate in basis points (825 = 8.25 %).
    async fn tax_rate_basis_points(&self) -> i32 {
        self.0.tax_rate_bp
    }
    /// The tax charged.
    async fn tax(&self) -> Money {
        money(self.0.tax_minor, &self.0.currency)
    }
    /// What was paid.
    async fn total(&self) -> Money {
        money(self.0.total_minor, &self.0.currency)
    }
    /// Download with the same bearer token: `GET {pdfPath}`.
    async fn pdf_path(&self) -> String {
        format!("/invoices/{}/pdf", self.0.id)
    }
}

#[derive(SimpleObject)]
/// A competency partners qualify for, at Silver or Gold.
pub struct Competency {
    /// The competency's stable code, for example `SECURITY`.
    pub code: String,
    /// Its display name.
    pub name: String,
    /// The solution area it belongs to.
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
/// A competency the partner qualified for at a level, recorded by an operator.
pub struct Qualification {
    /// The qualification's id.
    pub id: ID,
    /// The competency's code.
    pub competency: String,
    /// Silver or Gold.
    pub level: CompetencyLevel,
    /// The day the partner qualified.
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
/// A partner's test clock (outside production): its time runs ahead of real time by an offset.
pub struct TestClock {
    /// The partner.
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
