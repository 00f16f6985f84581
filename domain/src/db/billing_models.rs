//! Row structs of the catalog, billing and lifecycle tables (migration 000002).

use chrono::{DateTime, NaiveDate, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::*;
use crate::enums::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = competencies)]
pub struct Competency {
    pub code: String,
    pub name: String,
    pub solution_area: String,
    pub cloud: bool,
    pub vs_bonus: bool,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = offers)]
pub struct Offer {
    pub id: String,
    pub name: String,
    pub description: String,
    pub kind: OfferKind,
    pub level: Option<CompetencyLevel>,
    pub price_minor: i64,
    pub currency: String,
    pub annual: bool,
    pub terms_version: String,
    pub sort: i32,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = offer_benefits)]
pub struct OfferBenefit {
    pub offer_id: String,
    pub code: String,
    pub category: BenefitCategory,
    pub product: String,
    pub delivery: BenefitDelivery,
    pub quantity: Option<i32>,
    pub unit: String,
    pub bonus_per_competency: i32,
    pub unlimited_if_cloud: bool,
    pub requires_competency: Option<String>,
    pub sort: i32,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = qualifications)]
pub struct Qualification {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub competency: String,
    pub level: CompetencyLevel,
    pub qualified_on: NaiveDate,
    pub recorded_by: Uuid,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = payment_methods)]
pub struct PaymentMethod {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub gateway_token: String,
    pub brand: String,
    pub last4: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub holder_name: String,
    pub created_by: Uuid,
    pub created_at: DateTime<Utc>,
    pub removed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Identifiable)]
#[diesel(table_name = subscriptions)]
pub struct Subscription {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub offer_id: String,
    pub status: SubscriptionStatus,
    pub auto_renew: bool,
    pub term: i32,
    pub competencies: Vec<String>,
    pub payment_method_id: Option<Uuid>,
    pub activated_at: Option<DateTime<Utc>>,
    pub term_started_at: Option<DateTime<Utc>>,
    pub anniversary_at: Option<DateTime<Utc>>,
    pub upgrade_discount_used: bool,
    pub upgraded_at: Option<DateTime<Utc>>,
    pub key_revealed_at: Option<DateTime<Utc>>,
    pub benefit_activated_at: Option<DateTime<Utc>>,
    pub renewal_failures: i32,
    pub last_renewal_error: Option<String>,
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A cancellation was decided without a refund: it ends at its AD, no renewal window.
    pub ends_at_anniversary: bool,
    /// The first use of a benefit (other than a key reveal) that ended refund eligibility.
    pub benefit_use: Option<BenefitUse>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = subscriptions)]
pub struct NewSubscription {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub offer_id: String,
    pub status: SubscriptionStatus,
    pub auto_renew: bool,
    pub term: i32,
    pub competencies: Vec<String>,
    pub payment_method_id: Option<Uuid>,
    pub upgrade_discount_used: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = orders)]
pub struct Order {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub number: String,
    pub kind: OrderKind,
    pub offer_id: String,
    pub subscription_id: Option<Uuid>,
    pub term: i32,
    pub status: OrderStatus,
    pub payment_kind: PaymentKind,
    pub payment_method_id: Option<Uuid>,
    pub bank_transfer: Option<serde_json::Value>,
    pub currency: String,
    pub price_minor: i64,
    pub discount_minor: i64,
    pub tax_rate_bp: i32,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub terms_version: Option<String>,
    pub competencies: Vec<String>,
    pub idempotency_key: String,
    pub request_hash: String,
    pub placed_by: String,
    pub placed_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    pub gateway_charge_id: Option<String>,
    pub failure_code: Option<String>,
    pub failure_message: Option<String>,
    pub refunded_minor: i64,
    pub refunded_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

/// A refunded (or being refunded) order's refund: REFUND_PENDING → REFUNDED | REFUND_FAILED.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refunds)]
pub struct Refund {
    pub order_id: Uuid,
    pub partner_id: Uuid,
    pub status: RefundStatus,
    pub amount_minor: i64,
    pub currency: String,
    /// The gateway's refund id, or the outgoing bank transfer an operator recorded.
    pub reference: Option<String>,
    /// Why the gateway refused the refund, or the last error before giving up (REFUND_FAILED).
    pub failure: Option<String>,
    /// Gateway calls made so far.
    pub attempts: i32,
    pub requested_at: DateTime<Utc>,
    pub settled_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = orders)]
pub struct NewOrder {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub number: String,
    pub kind: OrderKind,
    pub offer_id: String,
    pub subscription_id: Option<Uuid>,
    pub term: i32,
    pub status: OrderStatus,
    pub payment_kind: PaymentKind,
    pub payment_method_id: Option<Uuid>,
    pub bank_transfer: Option<serde_json::Value>,
    pub currency: String,
    pub price_minor: i64,
    pub discount_minor: i64,
    pub tax_rate_bp: i32,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub terms_version: Option<String>,
    pub competencies: Vec<String>,
    pub idempotency_key: String,
    pub request_hash: String,
    pub placed_by: String,
    pub placed_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set when the order is booked as paid at once (renewals charged before booking).
    pub paid_at: Option<DateTime<Utc>>,
    pub gateway_charge_id: Option<String>,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = invoices)]
pub struct Invoice {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub order_id: Uuid,
    pub number: String,
    pub year: i32,
    pub seq: i32,
    pub issued_at: DateTime<Utc>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub bill_to: super::json_text::JsonText,
    pub lines: super::json_text::JsonText,
    pub currency: String,
    pub subtotal_minor: i64,
    pub discount_minor: i64,
    pub tax_rate_bp: i32,
    pub tax_minor: i64,
    pub total_minor: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = scheduled_actions)]
pub struct ScheduledAction {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub kind: ActionKind,
    pub subject_id: Uuid,
    pub term: i32,
    pub tag: String,
    pub due_at: DateTime<Utc>,
    pub status: ActionStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub outcome: Option<String>,
    pub dispatched_at: Option<DateTime<Utc>>,
    pub done_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = scheduled_actions)]
pub struct NewScheduledAction {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub kind: ActionKind,
    pub subject_id: Uuid,
    pub term: i32,
    pub tag: String,
    pub due_at: DateTime<Utc>,
    pub status: ActionStatus,
}

#[derive(Debug, Clone, Queryable, QueryableByName, Selectable, Insertable)]
#[diesel(table_name = entitlements)]
pub struct Entitlement {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub subscription_id: Uuid,
    pub offer_id: String,
    pub benefit_code: String,
    pub category: BenefitCategory,
    pub delivery: BenefitDelivery,
    pub product: String,
    pub unit: String,
    pub quantity: Option<i32>,
    pub used: i32,
    pub term: i32,
    pub status: EntitlementStatus,
    pub activation: Option<ActivationState>,
    pub activation_requested_at: Option<DateTime<Utc>>,
    pub activation_due_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub failure_reason: Option<String>,
    pub access_id: Option<String>,
    pub contract_id: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = product_keys)]
pub struct ProductKey {
    pub id: Uuid,
    pub entitlement_id: Uuid,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub first_revealed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The id of the key-encryption key in the ring (`config::Keyring`) that encrypted it.
    pub key_id: String,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = benefit_assignments)]
pub struct BenefitAssignment {
    pub id: Uuid,
    pub entitlement_id: Uuid,
    pub user_id: Uuid,
    pub assigned_at: DateTime<Utc>,
    pub assigned_by: Uuid,
    pub unassigned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = azure_credit_grants)]
pub struct AzureCreditGrant {
    pub id: Uuid,
    pub entitlement_id: Uuid,
    pub month_index: i32,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub amount_minor: i64,
    pub granted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = marketing_contacts)]
pub struct MarketingContact {
    pub partner_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    pub phone: String,
    pub language: String,
    pub updated_at: DateTime<Utc>,
}
