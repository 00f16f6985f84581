//! Verifying the primary contact's email: a single-use, expiring token (only its SHA-256 is
//! stored), resendable (rate limited; a resend voids older links).

use chrono::{DateTime, Utc};
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{email_verifications, partners};
use crate::db::PgConn;
use crate::email::{self, Template};
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::partners::lock_partner;
use crate::permissions::{Action, Principal};

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
/// Issues a fresh verification token (superseding earlier ones) and queues its email.
pub(crate) async fn send_verification(
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
    let link = cfg
        .http
        .portal_link(&format!("/verify-email?token={token}"));
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
        let record = usable_link(conn, &hash, now).await?;
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

/// The verification link of this token hash, locked, if it can still be used.
async fn usable_link(
    conn: &mut PgConn,
    hash: &str,
    now: DateTime<Utc>,
) -> AppResult<EmailVerification> {
    let Some(record) = email_verifications::table
        .filter(email_verifications::token_hash.eq(hash))
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
    Ok(record)
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

#[cfg(test)]
mod tests {
    use super::*;

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
