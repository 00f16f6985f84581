//! Row structs: `Foo` for reads (Queryable + Selectable), `NewFoo` for inserts.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::*;
use crate::enums::*;

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = partners)]
pub struct Partner {
    pub id: Uuid,
    pub mpn_id: String,
    pub legal_name: String,
    pub address_lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
    pub contact_first_name: String,
    pub contact_last_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub contact_email_verified_at: Option<DateTime<Utc>>,
    pub tenant_id: Uuid,
    pub tenant_created: bool,
    pub vetting_status: VettingStatus,
    pub vetting_sub_status: VettingSubStatus,
    pub fields_under_verification: Vec<String>,
    pub vetting_reason: Option<String>,
    pub network_member_since: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = partners)]
pub struct NewPartner {
    pub id: Uuid,
    pub mpn_id: String,
    pub legal_name: String,
    pub address_lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
    pub contact_first_name: String,
    pub contact_last_name: String,
    pub contact_email: String,
    pub contact_phone: String,
    pub tenant_id: Uuid,
    pub tenant_created: bool,
    pub vetting_status: VettingStatus,
    pub vetting_sub_status: VettingSubStatus,
    pub network_member_since: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub subject: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    pub status: UserStatus,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl User {
    pub fn roles(&self) -> Vec<TenantRole> {
        roles_from_db(&self.roles)
    }
}

#[derive(Debug, Insertable)]
#[diesel(table_name = users)]
pub struct NewUser {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub subject: Option<String>,
    pub email: String,
    pub display_name: Option<String>,
    pub roles: Vec<String>,
    pub status: UserStatus,
    pub invited_by: Option<Uuid>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = operators)]
pub struct Operator {
    pub id: Uuid,
    pub subject: String,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = agreement_acceptances)]
pub struct NewAgreementAcceptance {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub agreement: String,
    pub version: String,
    pub accepted_by: Uuid,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = agreement_acceptances)]
pub struct AgreementAcceptance {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub agreement: String,
    pub version: String,
    pub accepted_by: Uuid,
    pub accepted_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = email_verifications)]
pub struct EmailVerification {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub email: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub superseded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = email_verifications)]
pub struct NewEmailVerification {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub email: String,
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = emails)]
pub struct Email {
    pub id: Uuid,
    pub partner_id: Option<Uuid>,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    pub status: EmailStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = emails)]
pub struct NewEmail {
    pub id: Uuid,
    pub partner_id: Option<Uuid>,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub body_text: Option<String>,
    pub body_html: Option<String>,
    pub status: EmailStatus,
    pub next_attempt_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct OutboxRow {
    pub id: i64,
    pub queue: String,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub dispatched_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = outbox)]
pub struct NewOutboxRow {
    pub queue: String,
    pub payload: serde_json::Value,
    pub run_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = service_requests)]
pub struct ServiceRequest {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub kind: ServiceRequestKind,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: ServiceRequestStatus,
    pub product: Option<String>,
    pub subscription_id: Option<Uuid>,
    pub benefit_id: Option<Uuid>,
    pub created_by: Uuid,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub intent: ServiceRequestIntent,
    /// CANCELLATION: the refund eligibility the partner was shown when asking.
    pub refund_eligibility_shown: Option<serde_json::Value>,
    pub decision: Option<CancellationDecision>,
}

#[derive(Debug, Insertable)]
#[diesel(table_name = service_requests)]
pub struct NewServiceRequest {
    pub id: Uuid,
    pub partner_id: Uuid,
    pub kind: ServiceRequestKind,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: ServiceRequestStatus,
    pub product: Option<String>,
    pub subscription_id: Option<Uuid>,
    pub benefit_id: Option<Uuid>,
    pub created_by: Uuid,
    pub intent: ServiceRequestIntent,
    pub refund_eligibility_shown: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = service_request_notes)]
pub struct ServiceRequestNote {
    pub id: Uuid,
    pub service_request_id: Uuid,
    pub author_kind: ActorKind,
    pub author_id: Uuid,
    pub author_name: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_log)]
pub struct AuditEntry {
    pub id: Uuid,
    pub partner_id: Option<Uuid>,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub details: serde_json::Value,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}
pub use super::billing_models::*;
