//! Partner enrollment and vetting (PRODUCT.md 2.1): enroll, verify the primary contact's email,
//! resend the verification, operator decisions, legal-profile edits that re-open verification.

use crate::db::prelude::*;
use chrono::{DateTime, Utc};

use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::models::*;
use crate::db::schema::{agreement_acceptances, email_verifications, partners, users};
use crate::db::PgConn;
use crate::email::{self, Template};
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::permissions::{Action, Principal};
use crate::validation as v;

/// The partner agreement a new partner must accept; the version accepted is recorded.
pub const PARTNER_AGREEMENT: &str = "MICROSOFT_PARTNER_AGREEMENT";
pub const PARTNER_AGREEMENT_VERSION: &str = "2021-06";

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct AddressInput {
    /// One to three street lines.
    pub lines: Vec<String>,
    pub city: String,
    pub region: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, for example `US`.
    pub country: String,
}

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct ContactInput {
    pub first_name: String,
    pub last_name: String,
    /// A person's work email: role addresses and free-mail domains are refused.
    pub email: String,
    /// E.164, for example `+14255550100`.
    pub phone: String,
}

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct EnrollPartnerInput {
    pub legal_name: String,
    pub address: AddressInput,
    pub primary_contact: ContactInput,
    /// An existing Azure AD tenant; omit to have a new one created.
    pub existing_tenant_id: Option<Uuid>,
    /// Must be true: the partner agreement is accepted by the enrolling user.
    pub accept_partner_agreement: bool,
    /// The agreement version the user was shown (must be the current one).
    pub agreement_version: String,
}

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct UpdateLegalProfileInput {
    pub legal_name: Option<String>,
    pub address: Option<AddressInput>,
    pub contact_first_name: Option<String>,
    pub contact_last_name: Option<String>,
    pub contact_phone: Option<String>,
}

struct Address {
    lines: Vec<String>,
    city: String,
    region: Option<String>,
    postal_code: String,
    country: String,
}

fn validate_address(a: &AddressInput) -> AppResult<Address> {
    if a.lines.is_empty() || a.lines.len() > 3 {
        return Err(AppError::bad_input(
            "address.lines",
            "give one to three address lines",
        ));
    }
    let lines = a
        .lines
        .iter()
        .map(|l| v::text("address.lines", l, 200))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Address {
        lines,
        city: v::text("address.city", &a.city, 100)?,
        region: v::optional_text("address.region", a.region.as_deref(), 100)?,
        postal_code: v::text("address.postalCode", &a.postal_code, 20)?,
        country: v::country("address.country", &a.country)?,
    })
}

/// Vetting after a change of verified fields: the changed fields join those under
/// verification; an authorized or rejected partner goes back to business verification.
/// A partner still proving email ownership keeps its current step.
pub fn reopen_verification(
    status: VettingStatus,
    sub: VettingSubStatus,
    under_verification: &[VerifiedField],
    changed: &[VerifiedField],
) -> (VettingStatus, VettingSubStatus, Vec<VerifiedField>) {
    if changed.is_empty() {
        return (status, sub, under_verification.to_vec());
    }
    let mut fields: Vec<VerifiedField> =
        under_verification.iter().chain(changed).copied().collect();
    fields.sort();
    fields.dedup();
    let sub = match (status, sub) {
        (VettingStatus::Pending, VettingSubStatus::EmailOwnership) => {
            VettingSubStatus::EmailOwnership
        }
        _ => VettingSubStatus::BusinessVerification,
    };
    (VettingStatus::Pending, sub, fields)
}

/// A verification token: 32 random bytes, URL-safe. Only its SHA-256 is stored.
fn new_token() -> (String, String) {
    use base64::Engine;
    let bytes: [u8; 32] = rand::rng().random();
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    (token.clone(), hash_token(&token))
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
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

/// Issues a fresh verification token (superseding earlier ones) and queues its email.
async fn send_verification(
    conn: &mut PgConn,
    cfg: &Config,
    partner: &Partner,
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::update(
        email_verifications::table
            .filter(email_verifications::partner_id.eq(partner.id))
            .filter(email_verifications::used_at.is_null())
            .filter(email_verifications::superseded_at.is_null()),
    )
    .set(email_verifications::superseded_at.eq(now))
    .execute(conn)
    .await?;
    let (token, token_hash) = new_token();
    let expires_at = now
        + chrono::Duration::from_std(cfg.enrollment.verification_ttl)
            .map_err(AppError::internal)?;
    diesel::insert_into(email_verifications::table)
        .values(&NewEmailVerification {
            id: Uuid::now_v7(),
            partner_id: partner.id,
            email: partner.contact_email.clone(),
            token_hash,
            expires_at,
            created_at: now,
        })
        .execute(conn)
        .await?;
    let link = format!(
        "{}/verify-email?token={token}",
        cfg.http.public_base_url.trim_end_matches('/')
    );
    email::queue(
        conn,
        Some(partner.id),
        Template::Verification,
        &partner.contact_email,
        &json!({
            "first_name": partner.contact_first_name,
            "legal_name": partner.legal_name,
            "link": link,
            "expires_at": expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            "mpn_id": partner.mpn_id,
        }),
    )
    .await?;
    Ok(())
}

pub async fn load_partner(mut conn: &PgConn, id: Uuid) -> AppResult<Partner> {
    partners::table
        .find(id)
        .select(Partner::as_select())
        .first(&mut conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("partner"))
}

/// Partners by id, one query (absent ids are left out).
pub async fn load_partners(conn: &mut PgConn, ids: &[Uuid]) -> AppResult<Vec<Partner>> {
    Ok(partners::table
        .filter(partners::id.eq_any(ids))
        .select(Partner::as_select())
        .load(conn)
        .await?)
}

/// Operators' list of partners, newest first, optionally by vetting status (keyset by id).
pub async fn list_partners(
    conn: &mut PgConn,
    principal: &Principal,
    vetting_status: Option<VettingStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<Partner>> {
    principal.require(Action::Operate)?;
    let mut q = partners::table
        .order(partners::id.desc())
        .limit(limit)
        .select(Partner::as_select())
        .into_boxed();
    if let Some(s) = vetting_status {
        q = q.filter(partners::vetting_status.eq(s));
    }
    if let Some(b) = before {
        q = q.filter(partners::id.lt(b));
    }
    Ok(q.load(conn).await?)
}

async fn lock_partner(conn: &mut PgConn, id: Uuid) -> AppResult<Partner> {
    partners::table
        .find(id)
        .for_update()
        .select(Partner::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("partner"))
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
    let legal_name = v::text("legalName", &input.legal_name, 200)?;
    let address = validate_address(&input.address)?;
    let c = &input.primary_contact;
    let first_name = v::text("primaryContact.firstName", &c.first_name, 100)?;
    let last_name = v::text("primaryContact.lastName", &c.last_name, 100)?;
    let contact_email = v::work_email("primaryContact.email", &c.email)?;
    let phone = v::phone_e164("primaryContact.phone", &c.phone)?;
    let user_email = match token_email {
        Some(e) => v::email("token.email", &e)?,
        None => contact_email.clone(),
    };

    conn.transaction::<_, AppError, _>(async |conn| {
        let now = Utc::now();
        let (tenant_id, tenant_created) = match input.existing_tenant_id {
            Some(t) => (t, false),
            None => (Uuid::new_v4(), true),
        };
        let taken: i64 = partners::table.filter(partners::tenant_id.eq(tenant_id)).count().get_result(conn).await?;
        if taken > 0 {
            return Err(AppError::Conflict("this Azure AD tenant is already linked to a partner".into()));
        }
        let partner: Partner = diesel::insert_into(partners::table)
            .values(&NewPartner {
                id: Uuid::now_v7(),
                mpn_id: new_mpn_id(conn).await?,
                legal_name,
                address_lines: address.lines,
                city: address.city,
                region: address.region,
                postal_code: address.postal_code,
                country: address.country,
                contact_first_name: first_name,
                contact_last_name: last_name,
                contact_email,
                contact_phone: phone,
                tenant_id,
                tenant_created,
                vetting_status: VettingStatus::Pending,
                vetting_sub_status: VettingSubStatus::EmailOwnership,
                network_member_since: now,
            })
            .returning(Partner::as_returning())
            .get_result(conn)
            .await?;
        let user: User = diesel::insert_into(users::table)
            .values(&NewUser {
                id: Uuid::now_v7(),
                partner_id: partner.id,
                subject: Some(subject),
                email: user_email,
                display_name: None,
                roles: roles_to_db(&[TenantRole::GlobalAdmin, TenantRole::AdminAgent]),
                status: UserStatus::Active,
                invited_by: None,
            })
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| match AppError::from(e) {
                AppError::Conflict(_) => AppError::Conflict("this email already belongs to a partner user".into()),
                other => other,
            })?;
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
        let actor = Actor { kind: ActorKind::User, id: user.id.to_string(), request_id: actor.request_id.clone() };
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

#[derive(Debug, Clone)]
pub struct VerificationOutcome {
    pub vetting_status: VettingStatus,
    pub vetting_sub_status: VettingSubStatus,
}

/// Follows the link from the verification email. The token is the credential: no sign-in is
/// needed. Tokens work once, expire, and are superseded by a resend.
pub async fn verify_email(
    conn: &mut PgConn,
    cfg: &Config,
    actor: &Actor,
    token: &str,
) -> AppResult<VerificationOutcome> {
    let hash = hash_token(token.trim());
    conn.transaction::<_, AppError, _>(async |conn| {
        let now = Utc::now();
        let Some(record) = email_verifications::table
            .filter(email_verifications::token_hash.eq(&hash))
            .for_update()
            .select(EmailVerification::as_select())
            .first(conn)
            .await
            .optional()?
        else {
            return Err(AppError::bad_input(
                "token",
                "this verification link is not valid",
            ));
        };
        if record.used_at.is_some() {
            return Err(AppError::not_eligible(
                "TOKEN_USED",
                "this verification link was already used",
            ));
        }
        if record.superseded_at.is_some() {
            return Err(AppError::not_eligible(
                "TOKEN_SUPERSEDED",
                "a newer verification email was sent; use its link",
            ));
        }
        if record.expires_at <= now {
            return Err(AppError::not_eligible(
                "TOKEN_EXPIRED",
                "this verification link has expired; ask for a new one",
            ));
        }
        let partner = lock_partner(conn, record.partner_id).await?;
        if partner.contact_email != record.email {
            return Err(AppError::not_eligible(
                "EMAIL_CHANGED",
                "the primary contact's email changed since this link was sent",
            ));
        }
        diesel::update(email_verifications::table.find(record.id))
            .set(email_verifications::used_at.eq(now))
            .execute(conn)
            .await?;
        let (status, sub) = match (partner.vetting_status, partner.vetting_sub_status) {
            (VettingStatus::Pending, VettingSubStatus::EmailOwnership)
                if cfg.enrollment.auto_authorize =>
            {
                (VettingStatus::Authorized, VettingSubStatus::Decision)
            }
            (VettingStatus::Pending, VettingSubStatus::EmailOwnership) => (
                VettingStatus::Pending,
                VettingSubStatus::EmploymentVerification,
            ),
            other => other,
        };
        diesel::update(partners::table.find(partner.id))
            .set((
                partners::contact_email_verified_at.eq(now),
                partners::vetting_status.eq(status),
                partners::vetting_sub_status.eq(sub),
                partners::updated_at.eq(now),
            ))
            .execute(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner.id),
            "partner.contact_email_verified",
            ("partner", partner.id.to_string()),
            json!({"vettingStatus": status, "vettingSubStatus": sub}),
        )
        .await?;
        Ok(VerificationOutcome {
            vetting_status: status,
            vetting_sub_status: sub,
        })
    })
    .await
}

pub async fn resend_verification(
    conn: &mut PgConn,
    cfg: &Config,
    principal: &Principal,
    actor: &Actor,
) -> AppResult<DateTime<Utc>> {
    principal.require(Action::ViewPartner)?;
    let partner_id = principal.scope(None)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let now = Utc::now();
        let partner = lock_partner(conn, partner_id).await?;
        if partner.contact_email_verified_at.is_some() {
            return Err(AppError::not_eligible(
                "ALREADY_VERIFIED",
                "the primary contact's email is already verified",
            ));
        }
        let last: Option<DateTime<Utc>> = email_verifications::table
            .filter(email_verifications::partner_id.eq(partner_id))
            .select(diesel::dsl::max(email_verifications::created_at))
            .first(conn)
            .await?;
        let interval = chrono::Duration::from_std(cfg.enrollment.resend_interval)
            .map_err(AppError::internal)?;
        if let Some(last) = last {
            let next = last + interval;
            if next > now {
                return Err(AppError::RateLimited {
                    retry_after_secs: (next - now).num_seconds().max(1),
                });
            }
        }
        send_verification(conn, cfg, &partner, now).await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "partner.verification_resent",
            ("partner", partner_id.to_string()),
            json!({}),
        )
        .await?;
        Ok(now)
    })
    .await
}

pub async fn decide_vetting(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    partner_id: Uuid,
    decision: VettingDecision,
    reason: Option<String>,
) -> AppResult<Partner> {
    principal.require(Action::Operate)?;
    let reason = v::optional_text("reason", reason.as_deref(), 1000)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let partner = lock_partner(conn, partner_id).await?;
        let status = match decision {
            VettingDecision::Authorize => {
                if partner.contact_email_verified_at.is_none() {
                    return Err(AppError::NotEligible(vec![Reason::new(
                        "EMAIL_NOT_VERIFIED",
                        "the primary contact has not verified their email yet",
                    )]));
                }
                VettingStatus::Authorized
            }
            VettingDecision::Reject => {
                if reason.is_none() {
                    return Err(AppError::bad_input("reason", "a rejection needs a reason the partner can act on"));
                }
                VettingStatus::Rejected
            }
        };
        let updated: Partner = diesel::update(partners::table.find(partner_id))
            .set((
                partners::vetting_status.eq(status),
                partners::vetting_sub_status.eq(VettingSubStatus::Decision),
                partners::fields_under_verification.eq(Vec::<String>::new()),
                partners::vetting_reason.eq(&reason),
                partners::updated_at.eq(Utc::now()),
            ))
            .returning(Partner::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "partner.vetting_decided",
            ("partner", partner_id.to_string()),
            json!({"decision": decision, "reason": reason, "previousStatus": partner.vetting_status}),
        )
        .await?;
        Ok(updated)
    })
    .await
}

pub async fn update_legal_profile(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    input: UpdateLegalProfileInput,
) -> AppResult<Partner> {
    principal.require(Action::EditLegalProfile)?;
    let partner_id = principal.scope(None)?;
    let legal_name = input
        .legal_name
        .as_deref()
        .map(|n| v::text("legalName", n, 200))
        .transpose()?;
    let address = input.address.as_ref().map(validate_address).transpose()?;
    let first = input
        .contact_first_name
        .as_deref()
        .map(|n| v::text("contactFirstName", n, 100))
        .transpose()?;
    let last = input
        .contact_last_name
        .as_deref()
        .map(|n| v::text("contactLastName", n, 100))
        .transpose()?;
    let phone = input
        .contact_phone
        .as_deref()
        .map(|p| v::phone_e164("contactPhone", p))
        .transpose()?;

    conn.transaction::<_, AppError, _>(async |conn| {
        let p = lock_partner(conn, partner_id).await?;
        let mut changed = Vec::new();
        let mut changes = serde_json::Map::new();
        if let Some(n) = &legal_name {
            if *n != p.legal_name {
                changed.push(VerifiedField::LegalName);
                changes.insert("legalName".into(), json!({"from": p.legal_name, "to": n}));
            }
        }
        if let Some(a) = &address {
            let same = a.lines == p.address_lines
                && a.city == p.city
                && a.region == p.region
                && a.postal_code == p.postal_code
                && a.country == p.country;
            if !same {
                changed.push(VerifiedField::Address);
                changes.insert("address".into(), json!("changed"));
            }
        }
        for (key, new, old) in [
            ("contactFirstName", &first, &p.contact_first_name),
            ("contactLastName", &last, &p.contact_last_name),
            ("contactPhone", &phone, &p.contact_phone),
        ] {
            if let Some(n) = new {
                if n != old {
                    changes.insert(key.into(), json!({"from": old, "to": n}));
                }
            }
        }
        if changes.is_empty() {
            return Ok(p);
        }
        let under: Vec<VerifiedField> = p
            .fields_under_verification
            .iter()
            .filter_map(|f| f.parse().ok())
            .collect();
        let (status, sub, fields) =
            reopen_verification(p.vetting_status, p.vetting_sub_status, &under, &changed);
        let a = address.as_ref();
        let updated: Partner = diesel::update(partners::table.find(partner_id))
            .set((
                partners::legal_name.eq(legal_name.as_ref().unwrap_or(&p.legal_name)),
                partners::address_lines.eq(a.map(|a| &a.lines).unwrap_or(&p.address_lines)),
                partners::city.eq(a.map(|a| &a.city).unwrap_or(&p.city)),
                partners::region.eq(a.map(|a| a.region.clone()).unwrap_or(p.region.clone())),
                partners::postal_code.eq(a.map(|a| &a.postal_code).unwrap_or(&p.postal_code)),
                partners::country.eq(a.map(|a| &a.country).unwrap_or(&p.country)),
                partners::contact_first_name.eq(first.as_ref().unwrap_or(&p.contact_first_name)),
                partners::contact_last_name.eq(last.as_ref().unwrap_or(&p.contact_last_name)),
                partners::contact_phone.eq(phone.as_ref().unwrap_or(&p.contact_phone)),
                partners::vetting_status.eq(status),
                partners::vetting_sub_status.eq(sub),
                partners::fields_under_verification.eq(fields
                    .iter()
                    .map(|f| f.as_str().to_owned())
                    .collect::<Vec<_>>()),
                partners::updated_at.eq(Utc::now()),
            ))
            .returning(Partner::as_returning())
            .get_result(conn)
            .await?;
        changes.insert("reopenedVerification".into(), json!(changed));
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "partner.legal_profile_updated",
            ("partner", partner_id.to_string()),
            serde_json::Value::Object(changes),
        )
        .await?;
        Ok(updated)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use VerifiedField::*;
    use VettingStatus as S;
    use VettingSubStatus as Sub;

    #[test]
    fn authorized_partner_changing_its_name_goes_back_to_business_verification() {
        let (s, sub, f) = reopen_verification(S::Authorized, Sub::Decision, &[], &[LegalName]);
        assert_eq!(
            (s, sub, f),
            (S::Pending, Sub::BusinessVerification, vec![LegalName])
        );
    }

    #[test]
    fn only_changed_fields_are_reverified_and_they_accumulate() {
        let (_, _, f) = reopen_verification(
            S::Pending,
            Sub::BusinessVerification,
            &[LegalName],
            &[Address],
        );
        assert_eq!(f, vec![LegalName, Address]);
        let (_, _, f) = reopen_verification(
            S::Pending,
            Sub::BusinessVerification,
            &[Address],
            &[Address],
        );
        assert_eq!(f, vec![Address]);
    }

    #[test]
    fn email_ownership_step_is_kept() {
        let (s, sub, _) = reopen_verification(S::Pending, Sub::EmailOwnership, &[], &[Address]);
        assert_eq!((s, sub), (S::Pending, Sub::EmailOwnership));
    }

    #[test]
    fn no_change_changes_nothing() {
        let (s, sub, f) = reopen_verification(S::Authorized, Sub::Decision, &[], &[]);
        assert_eq!((s, sub, f), (S::Authorized, Sub::Decision, vec![]));
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (t1, h1) = new_token();
        let (t2, _) = new_token();
        assert_ne!(t1, t2);
        assert_eq!(t1.len(), 43);
        assert_eq!(h1, hash_token(&t1));
        assert!(!h1.contains(&t1));
    }
}
