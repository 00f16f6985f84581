//! Enrolling a partner (PRODUCT.md 2.1): legal profile, work-email primary contact, Azure AD
//! tenant (existing or new), acceptance of the partner agreement with its version, a 7-digit
//! MPN ID and Network membership; the enrolling user becomes Global admin and Admin agent,
//! and the primary contact is sent a verification email.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use super::profile::{validate_address, Address, AddressInput};
use super::verification::send_verification;
use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{agreement_acceptances, partners, users};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::Principal;
use crate::validation as v;

/// The partner agreement a new partner must accept; the version accepted is recorded.
pub const PARTNER_AGREEMENT: &str = "MICROSOFT_PARTNER_AGREEMENT";
pub const PARTNER_AGREEMENT_VERSION: &str = "2021-06";
#[derive(Debug, Clone, async_graphql::InputObject)]
/// A person to contact at the partner.
pub struct ContactInput {
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// A person's work email: role addresses and free-mail domains are refused.
    pub email: String,
    /// E.164, for example `+14255550100`.
    pub phone: String,
}

#[derive(Debug, Clone, async_graphql::InputObject)]
/// What enrollment needs: the legal profile, the primary contact and the agreement accepted.
pub struct EnrollPartnerInput {
    /// The company's legal name, as registered.
    pub legal_name: String,
    /// The company's legal address.
    pub address: AddressInput,
    /// The primary contact (a work email: verified by email).
    pub primary_contact: ContactInput,
    /// An existing Azure AD tenant; omit to have a new one created.
    pub existing_tenant_id: Option<Uuid>,
    /// Must be true: the partner agreement is accepted by the enrolling user.
    pub accept_partner_agreement: bool,
    /// The agreement version the user was shown (must be the current one).
    pub agreement_version: String,
}
async fn new_mpn_id(conn: &mut PgConn) -> AppResult<String> {
    for _ in 0..20 {
        let candidate = format!("{}", rand::rng().random_range(1_000_000..10_000_000u32));
        let taken: i64 = partners::table
            .filter(partners::mpn_id.eq(&candidate))
            .count()
            .get_result(conn)
            .await?;
        if taken == 0 {
            return Ok(candidate);
        }
    }
    Err(AppError::internal("could not allocate an MPN ID"))
}
pub struct Enrolled {
    pub partner: Partner,
    pub user: User,
}

pub async fn enroll(
    conn: &mut PgConn,
    cfg: &Config,
    principal: &Principal,
    actor: &Actor,
    input: EnrollPartnerInput,
) -> AppResult<Enrolled> {
    let (subject, token_email) = match principal {
        Principal::Identity { subject, email, .. } => (subject.clone(), email.clone()),
        Principal::User { .. } => {
            return Err(AppError::Conflict("you already belong to a partner".into()))
        }
        Principal::Operator { .. } => return Err(AppError::Forbidden),
    };
    let (profile, user_email) = validate(&input, token_email)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let now = Utc::now();
        let (tenant_id, tenant_created) = match input.existing_tenant_id {
            Some(t) => (t, false),
            None => (Uuid::new_v4(), true),
        };
        let taken: i64 = partners::table
            .filter(partners::tenant_id.eq(tenant_id))
            .count()
            .get_result(conn)
            .await?;
        if taken > 0 {
            return Err(AppError::Conflict(
                "this Azure AD tenant is already linked to a partner".into(),
            ));
        }
        let partner = insert_partner(conn, profile, tenant_id, tenant_created, now).await?;
        let user = insert_first_user(conn, &partner, subject, user_email).await?;
        diesel::insert_into(agreement_acceptances::table)
            .values(&NewAgreementAcceptance {
                id: Uuid::now_v7(),
                partner_id: partner.id,
                agreement: PARTNER_AGREEMENT.into(),
                version: PARTNER_AGREEMENT_VERSION.into(),
                accepted_by: user.id,
                accepted_at: now,
            })
            .execute(conn)
            .await?;
        send_verification(conn, cfg, &partner, now).await?;
        let actor = Actor {
            kind: ActorKind::User,
            id: user.id.to_string(),
            request_id: actor.request_id.clone(),
        };
        audit::record(
            conn,
            &actor,
            Some(partner.id),
            "partner.enrolled",
            ("partner", partner.id.to_string()),
            json!({"mpnId": partner.mpn_id, "agreementVersion": PARTNER_AGREEMENT_VERSION, "tenantCreated": tenant_created}),
        )
        .await?;
        Ok(Enrolled { partner, user })
    })
    .await
}

/// The enrollment's profile, checked.
struct Profile {
    legal_name: String,
    address: Address,
    first_name: String,
    last_name: String,
    contact_email: String,
    phone: String,
}

/// Checks the agreement and the profile; returns it with the enrolling user's email (the
/// token's, else the primary contact's).
fn validate(
    input: &EnrollPartnerInput,
    token_email: Option<String>,
) -> AppResult<(Profile, String)> {
    if !input.accept_partner_agreement {
        return Err(AppError::bad_input(
            "acceptPartnerAgreement",
            "the partner agreement must be accepted to enroll",
        ));
    }
    if input.agreement_version != PARTNER_AGREEMENT_VERSION {
        return Err(AppError::bad_input(
            "agreementVersion",
            format!("the current partner agreement is version {PARTNER_AGREEMENT_VERSION}; review and accept it"),
        ));
    }
    let c = &input.primary_contact;
    let profile = Profile {
        legal_name: v::text("legalName", &input.legal_name, 200)?,
        address: validate_address(&input.address)?,
        first_name: v::text("primaryContact.firstName", &c.first_name, 100)?,
        last_name: v::text("primaryContact.lastName", &c.last_name, 100)?,
        contact_email: v::work_email("primaryContact.email", &c.email)?,
        phone: v::phone_e164("primaryContact.phone", &c.phone)?,
    };
    let user_email = match token_email {
        Some(e) => v::email("token.email", &e)?,
        None => profile.contact_email.clone(),
    };
    Ok((profile, user_email))
}

async fn insert_partner(
    conn: &mut PgConn,
    p: Profile,
    tenant_id: Uuid,
    tenant_created: bool,
    now: DateTime<Utc>,
) -> AppResult<Partner> {
    Ok(diesel::insert_into(partners::table)
        .values(&NewPartner {
            id: Uuid::now_v7(),
            mpn_id: new_mpn_id(conn).await?,
            legal_name: p.legal_name,
            address_lines: p.address.lines,
            city: p.address.city,
            region: p.address.region,
            postal_code: p.address.postal_code,
            country: p.address.country,
            contact_first_name: p.first_name,
            contact_last_name: p.last_name,
            contact_email: p.contact_email,
            contact_phone: p.phone,
            tenant_id,
            tenant_created,
            vetting_status: VettingStatus::Pending,
            vetting_sub_status: VettingSubStatus::EmailOwnership,
            network_member_since: now,
        })
        .returning(Partner::as_returning())
        .get_result(conn)
        .await?)
}

/// The enrolling user: Global admin and Admin agent.
async fn insert_first_user(
    conn: &mut PgConn,
    partner: &Partner,
    subject: String,
    email: String,
) -> AppResult<User> {
    diesel::insert_into(users::table)
        .values(&NewUser {
            id: Uuid::now_v7(),
            partner_id: partner.id,
            subject: Some(subject),
            email,
            display_name: None,
            roles: roles_to_db(&[TenantRole::GlobalAdmin, TenantRole::AdminAgent]),
            status: UserStatus::Active,
            invited_by: None,
        })
        .returning(User::as_returning())
        .get_result(conn)
        .await
        .map_err(|e| match AppError::from(e) {
            AppError::Conflict(_) => {
                AppError::Conflict("this email already belongs to a partner user".into())
            }
            other => other,
        })
}
