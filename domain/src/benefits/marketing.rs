//! The marketing contact that Go-To-Market offers need: a partner user, an email other than
//! the partner's account email, a phone (E.164) and a preferred language (BCP 47).

use chrono::Utc;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::marketing_contacts;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::partners::member;
use crate::permissions::{Action, Principal};
use crate::validation as v;
use uuid::Uuid;

#[derive(Debug, Clone, async_graphql::InputObject)]
/// The marketing contact to set.
pub struct MarketingContactInput {
    /// A user of the partner.
    pub user_id: async_graphql::ID,
    /// Must differ from the partner's account (primary contact) email.
    pub email: String,
    /// E.164, for example +14255550100.
    pub phone: String,
    /// BCP 47, for example en-US.
    pub language: String,
}

/// BCP 47 language tag: language, optional script, optional region (en, en-US, zh-Hant-TW).
pub fn bcp47(field: &str, raw: &str) -> AppResult<String> {
    let t = raw.trim();
    let parts: Vec<&str> = t.split('-').collect();
    let ok = !parts.is_empty()
        && parts.len() <= 3
        && (2..=3).contains(&parts[0].len())
        && parts[0].chars().all(|c| c.is_ascii_lowercase())
        && parts[1..].iter().enumerate().all(|(i, p)| {
            let script = p.len() == 4
                && p.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && p.chars().skip(1).all(|c| c.is_ascii_lowercase());
            let region = (p.len() == 2 && p.chars().all(|c| c.is_ascii_uppercase()))
                || (p.len() == 3 && p.chars().all(|c| c.is_ascii_digit()));
            (i == 0 && script && parts.len() == 3) || (region && (i == parts.len() - 2))
        });
    if ok {
        Ok(t.to_owned())
    } else {
        Err(AppError::bad_input(
            field,
            format!("`{t}` is not a BCP 47 language tag such as en-US"),
        ))
    }
}

pub async fn set_marketing_contact(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    input: MarketingContactInput,
) -> AppResult<MarketingContact> {
    principal.require(Action::UseBenefits)?;
    let partner_id = principal.scope(None)?;
    let user_id = v::uuid_id("userId", input.user_id.as_str())?;
    let email = v::email("email", &input.email)?;
    let phone = v::phone_e164("phone", &input.phone)?;
    let language = bcp47("language", &input.language)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let partner = crate::partners::load_partner(conn, partner_id).await?;
        if email.eq_ignore_ascii_case(&partner.contact_email) {
            return Err(AppError::bad_input(
                "email",
                "the marketing contact's email must differ from the partner's account email",
            ));
        }
        member(conn, partner_id, user_id).await?;
        let c = MarketingContact {
            partner_id,
            user_id,
            email,
            phone,
            language,
            updated_at: Utc::now(),
        };
        let c: MarketingContact = diesel::insert_into(marketing_contacts::table)
            .values(&c)
            .on_conflict(marketing_contacts::partner_id)
            .do_update()
            .set((
                marketing_contacts::user_id.eq(&c.user_id),
                marketing_contacts::email.eq(&c.email),
                marketing_contacts::phone.eq(&c.phone),
                marketing_contacts::language.eq(&c.language),
                marketing_contacts::updated_at.eq(c.updated_at),
            ))
            .returning(MarketingContact::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "marketing_contact.set",
            ("partner", partner_id.to_string()),
            json!({"user": user_id, "language": c.language}),
        )
        .await?;
        Ok(c)
    })
    .await
}

/// A removed user stops being the partner's marketing contact. Returns the contact that was
/// dropped, if they were it.
pub(crate) async fn drop_contact(
    conn: &mut PgConn,
    partner_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<MarketingContact>> {
    Ok(diesel::delete(
        marketing_contacts::table
            .filter(marketing_contacts::partner_id.eq(partner_id))
            .filter(marketing_contacts::user_id.eq(user_id)),
    )
    .returning(MarketingContact::as_returning())
    .get_result(conn)
    .await
    .optional()?)
}

/// The partner's marketing contact, if set.
pub async fn marketing_contact(
    conn: &mut PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
) -> AppResult<Option<MarketingContact>> {
    let partner_id = principal.scope_for(Action::ViewPartner, partner_id)?;
    Ok(marketing_contacts::table
        .find(partner_id)
        .select(MarketingContact::as_select())
        .first(conn)
        .await
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcp47_tags() {
        for ok in ["en", "en-US", "pt-BR", "zh-Hant-TW", "es-419"] {
            assert!(bcp47("l", ok).is_ok(), "{ok}");
        }
        for bad in ["", "english", "EN-us", "en_US", "en-US-x", "e"] {
            assert!(bcp47("l", bad).is_err(), "{bad}");
        }
    }
}
