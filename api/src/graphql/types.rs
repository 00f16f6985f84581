//! GraphQL output types, kept apart from the row structs they are built from.

use async_graphql::{ComplexObject, Context, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use gateway_domain::db::models;
use gateway_domain::enums::*;

use super::loaders;

#[derive(SimpleObject)]
/// A postal address.
pub struct Address {
    /// Street lines, first to last.
    pub lines: Vec<String>,
    /// The city.
    pub city: String,
    /// The state, province or region.
    pub region: Option<String>,
    /// The postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code, for example `US`.
    pub country: String,
}

#[derive(SimpleObject)]
/// The partner's primary contact.
pub struct PrimaryContact {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Work email, verified by the link emailed at enrollment.
    pub email: String,
    /// Phone number.
    pub phone: String,
    /// True once the email link was followed.
    pub email_verified: bool,
}

#[derive(SimpleObject)]
/// Where the partner's verification stands.
pub struct Vetting {
    /// Pending, authorized or rejected.
    pub status: VettingStatus,
    /// The step a pending verification is at.
    pub sub_status: VettingSubStatus,
    /// Legal-profile fields being verified again after an edit.
    pub fields_under_verification: Vec<VerifiedField>,
    /// The operator's reason for the last decision, if any.
    pub reason: Option<String>,
}

#[derive(SimpleObject)]
/// Membership of the partner network, granted at enrollment.
pub struct NetworkMembership {
    /// Free, granted on enrollment, never renews.
    pub since: DateTime<Utc>,
}

/// A partner company enrolled in the program.
pub struct Partner(pub models::Partner);

/// A partner company enrolled in the program.
#[Object]
impl Partner {
    /// The partner's global id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The 7-digit Microsoft Partner Network ID.
    async fn mpn_id(&self) -> &str {
        &self.0.mpn_id
    }
    /// The company's legal name.
    async fn legal_name(&self) -> &str {
        &self.0.legal_name
    }
    /// The company's legal address.
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
    /// The primary contact.
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
    /// Where the partner's verification stands.
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
    /// Network membership (granted at enrollment).
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
    /// When the partner enrolled.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A user of a partner, with roles.
pub struct User(pub models::User);

/// A user of a partner, with roles.
#[Object]
impl User {
    /// The user's global id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The user's work email.
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// The user's display name, if known.
    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }
    /// Tenant roles; empty for a plain member.
    async fn roles(&self) -> Vec<TenantRole> {
        self.0.roles()
    }
    /// Invited, active or removed.
    async fn status(&self) -> UserStatus {
        self.0.status
    }
    /// When the user was added.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

#[derive(SimpleObject)]
/// The signed-in identity, from the bearer token.
pub struct Identity {
    /// The token's subject.
    pub subject: String,
    /// The token's verified email, if it carries one.
    pub email: Option<String>,
}

/// Who the caller is: a partner user (with partner), an operator, or a signed-in identity that
/// has not enrolled yet (both `user` and `operator` null).
#[derive(SimpleObject)]
pub struct Me {
    /// The signed-in identity.
    pub identity: Identity,
    /// The caller's user, when the identity belongs to a partner.
    pub user: Option<User>,
    /// The caller's partner, when the identity belongs to one.
    pub partner: Option<Partner>,
    /// The operator, when the caller is one.
    pub operator: Option<OperatorInfo>,
}

#[derive(SimpleObject)]
/// An operator of the program.
pub struct OperatorInfo {
    /// The operator's id.
    pub id: ID,
    /// The operator's name.
    pub name: String,
}

#[derive(SimpleObject)]
/// The enrolled partner and the caller's new user (Global admin).
pub struct EnrollPartnerPayload {
    /// The new partner, PENDING verification.
    pub partner: Partner,
    /// The enrolling user, now Global admin and Admin agent.
    pub user: User,
}

#[derive(SimpleObject)]
/// The partner's vetting after the primary contact's email was verified.
pub struct VerifyEmailPayload {
    /// The vetting status now.
    pub vetting_status: VettingStatus,
    /// The step the vetting is at now.
    pub vetting_sub_status: VettingSubStatus,
}

#[derive(SimpleObject)]
/// The verification email sent again.
pub struct ResendVerificationPayload {
    /// When the new email was queued.
    pub sent_at: DateTime<Utc>,
}

#[derive(SimpleObject)]
#[graphql(complex)]
/// A request for help: technical support, presales or deployment advice, or other.
pub struct ServiceRequest {
    #[graphql(skip)]
    pub id: ID,
    /// The partner that asked.
    pub partner_id: ID,
    /// What kind of help is asked for.
    pub kind: ServiceRequestKind,
    /// A one-line summary.
    pub title: String,
    /// What happened and what is needed.
    pub description: String,
    /// How urgent it is.
    pub severity: Severity,
    /// Where it stands.
    pub status: ServiceRequestStatus,
    /// The product concerned, if any.
    pub product: Option<String>,
    /// How it was resolved, once closed.
    pub resolution: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was closed.
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
/// A note on a service request, by the partner or an operator.
pub struct ServiceRequestNote {
    /// Whether a user or an operator wrote it.
    pub author_kind: ActorKind,
    /// Who wrote it.
    pub author_name: String,
    /// The note.
    pub body: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

#[ComplexObject]
impl ServiceRequest {
    /// The request's global id.
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
/// One recorded action: who did what to which object, when, in which request.
pub struct AuditEntry {
    /// The entry's id.
    pub id: ID,
    /// Whether a user, an operator or the system acted.
    pub actor_kind: ActorKind,
    /// The acting user's or operator's id, or `system`.
    pub actor_id: String,
    /// What happened, for example `user.invited`.
    pub action: String,
    /// The kind of object acted on, for example `partner` or `subscription`.
    pub target_type: String,
    /// The id of the object acted on.
    pub target_id: String,
    /// What changed, as JSON (never a secret).
    pub details: Json<serde_json::Value>,
    /// The `x-request-id` of the HTTP request that did it (none for the worker's due work).
    pub request_id: Option<String>,
    /// When it happened.
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
