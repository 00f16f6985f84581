//! GraphQL output types, kept apart from the row structs they are built from.

use async_graphql::{ComplexObject, Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use gateway_domain::db::models;
use gateway_domain::enums::*;

use super::loaders;

#[derive(SimpleObject)]
pub struct Address {
    pub lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    pub country: String,
}

#[derive(SimpleObject)]
pub struct PrimaryContact {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub email_verified: bool,
}

#[derive(SimpleObject)]
pub struct Vetting {
    pub status: VettingStatus,
    pub sub_status: VettingSubStatus,
    /// Legal-profile fields being verified again after an edit.
    pub fields_under_verification: Vec<VerifiedField>,
    /// The operator's reason for the last decision, if any.
    pub reason: Option<String>,
}

#[derive(SimpleObject)]
pub struct NetworkMembership {
    /// Free, granted on enrollment, never renews.
    pub since: DateTime<Utc>,
}

pub struct Partner(pub models::Partner);

#[Object]
impl Partner {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The 7-digit Microsoft Partner Network ID.
    async fn mpn_id(&self) -> &str {
        &self.0.mpn_id
    }
    async fn legal_name(&self) -> &str {
        &self.0.legal_name
    }
    async fn address(&self) -> Address {
        let p = &self.0;
        Address {
            lines: p.address_lines.clone(),
            city: p.city.clone(),
            region: p.region.clone(),
            postal_code: p.postal_code.clone(),
            country: p.country.clone(),
        }
    }
    async fn primary_contact(&self) -> PrimaryContact {
        let p = &self.0;
        PrimaryContact {
            first_name: p.contact_first_name.clone(),
            last_name: p.contact_last_name.clone(),
            email: p.contact_email.clone(),
            phone: p.contact_phone.clone(),
            email_verified: p.contact_email_verified_at.is_some(),
        }
    }
    /// The Azure AD tenant linked to the partner account.
    async fn tenant_id(&self) -> ID {
        ID(self.0.tenant_id.to_string())
    }
    /// True when the tenant was created during enrollment.
    async fn tenant_created(&self) -> bool {
        self.0.tenant_created
    }
    async fn vetting(&self) -> Vetting {
        let p = &self.0;
        Vetting {
            status: p.vetting_status,
            sub_status: p.vetting_sub_status,
            fields_under_verification: p
                .fields_under_verification
                .iter()
                .filter_map(|f| f.parse().ok())
                .collect(),
            reason: p.vetting_reason.clone(),
        }
    }
    async fn network_membership(&self) -> NetworkMembership {
        NetworkMembership {
            since: self.0.network_member_since,
        }
    }
    /// The partner's users (invited and active).
    async fn users(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        Ok(loaders(ctx)
            .users
            .load_one(self.0.id)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(User)
            .collect())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct User(pub models::User);

#[Object]
impl User {
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    /// Tenant roles; empty for a plain member.
    async fn roles(&self) -> Vec<TenantRole> {
        self.0.roles()
    }
    async fn status(&self) -> UserStatus {
        self.0.status
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
pub struct Identity {
    /// The token's subject.
    pub subject: String,
    pub email: Option<String>,
}

/// Who the caller is: a partner user (with partner), an operator, or a signed-in identity that
/// has not enrolled yet (both `user` and `operator` null).
#[derive(SimpleObject)]
pub struct Me {
    pub identity: Identity,
    pub user: Option<User>,
    pub partner: Option<Partner>,
    pub operator: Option<OperatorInfo>,
}

#[derive(SimpleObject)]
pub struct OperatorInfo {
    pub id: ID,
    pub name: String,
}

#[derive(SimpleObject)]
pub struct EnrollPartnerPayload {
    pub partner: Partner,
    /// The enrolling user, now Global admin and Admin agent.
    pub user: User,
}

#[derive(SimpleObject)]
pub struct VerifyEmailPayload {
    pub vetting_status: VettingStatus,
    pub vetting_sub_status: VettingSubStatus,
}

#[derive(SimpleObject)]
pub struct ResendVerificationPayload {
    pub sent_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ServiceRequest {
    #[graphql(skip)]
    pub id: ID,
    pub partner_id: ID,
    pub kind: ServiceRequestKind,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    pub status: ServiceRequestStatus,
    pub product: Option<String>,
    pub resolution: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// CANCELLATION for a request made with `requestCancellation`; GENERAL otherwise.
    pub intent: ServiceRequestIntent,
    /// The subscription the request is about.
    pub subscription_id: Option<ID>,
    /// CANCELLATION: the refund eligibility shown when the request was made (`eligible`,
    /// `reasons`, `deadline`, `amountMinor`, `currency`).
    pub refund_eligibility_shown: Option<Json<serde_json::Value>>,
    /// CANCELLATION, once resolved: the operator's decision.
    pub decision: Option<CancellationDecision>,
    #[graphql(skip)]
    pub uuid: uuid::Uuid,
}

impl From<models::ServiceRequest> for ServiceRequest {
    fn from(s: models::ServiceRequest) -> Self {
        Self {
            id: ID(s.id.to_string()),
            partner_id: ID(s.partner_id.to_string()),
            kind: s.kind,
            title: s.title,
            description: s.description,
            severity: s.severity,
            status: s.status,
            product: s.product,
            resolution: s.resolution,
            created_at: s.created_at,
            updated_at: s.updated_at,
            closed_at: s.closed_at,
            intent: s.intent,
            subscription_id: s.subscription_id.map(|i| ID(i.to_string())),
            refund_eligibility_shown: s.refund_eligibility_shown.map(Json),
            decision: s.decision,
            uuid: s.id,
        }
    }
}

#[derive(SimpleObject)]
pub struct ServiceRequestNote {
    pub author_kind: ActorKind,
    pub author_name: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

#[ComplexObject]
impl ServiceRequest {
    pub(crate) async fn id(&self) -> ID {
        self.id.clone()
    }

    /// Notes, oldest first.
    async fn notes(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ServiceRequestNote>> {
        Ok(loaders(ctx)
            .notes
            .load_one(self.uuid)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|n| ServiceRequestNote {
                author_kind: n.author_kind,
                author_name: n.author_name,
                body: n.body,
                created_at: n.created_at,
            })
            .collect())
    }
}

#[derive(SimpleObject)]
pub struct AuditEntry {
    pub id: ID,
    pub actor_kind: ActorKind,
    pub actor_id: String,
    /// What happened, for example `user.invited`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub details: Json<serde_json::Value>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
    #[graphql(skip)]
    pub uuid: uuid::Uuid,
}

impl From<models::AuditEntry> for AuditEntry {
    fn from(a: models::AuditEntry) -> Self {
        Self {
            id: ID(a.id.to_string()),
            actor_kind: a.actor_kind,
            actor_id: a.actor_id,
            action: a.action,
            target_type: a.target_type,
            target_id: a.target_id,
            details: Json(a.details),
            request_id: a.request_id,
            created_at: a.created_at,
            uuid: a.id,
        }
    }
}
