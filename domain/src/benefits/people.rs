//! Benefits assigned to people (Visual Studio seats, Azure usage-based users), the monthly
//! Azure credit, and the marketing contact of Go-To-Market offers.

use chrono::{DateTime, Months, Utc};
use serde_json::json;
use uuid::Uuid;

use super::events::{self, Event};
use super::{load_visible, lock, require_usable};
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{
    azure_credit_grants, benefit_assignments, entitlements, marketing_contacts, subscriptions,
    users,
};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::lifecycle::actions::Outcome;
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::validation as v;

/// A seat can move to someone else only this long after it was assigned.
pub const REASSIGN_AFTER_DAYS: i64 = 90;

/// Azure credit granted each month of the term, in US cents.
pub const AZURE_MONTHLY_CREDIT_MINOR: i64 = 10_000;

async fn partner_user(conn: &mut PgConn, partner_id: Uuid, user_id: Uuid) -> AppResult<User> {
    users::table
        .find(user_id)
        .filter(users::partner_id.eq(partner_id))
        .filter(users::status.ne(UserStatus::Removed))
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("user"))
}

pub async fn current_assignments(
    conn: &mut PgConn,
    entitlement_ids: &[Uuid],
) -> AppResult<Vec<(BenefitAssignment, String)>> {
    Ok(benefit_assignments::table
        .inner_join(users::table.on(users::id.eq(benefit_assignments::user_id)))
        .filter(benefit_assignments::entitlement_id.eq_any(entitlement_ids))
        .filter(benefit_assignments::unassigned_at.is_null())
        .order(benefit_assignments::assigned_at)
        .select((BenefitAssignment::as_select(), users::email))
        .load(conn)
        .await?)
}

/// When a seat assigned at `assigned_at` may be reassigned.
pub fn reassignable_from(assigned_at: DateTime<Utc>) -> DateTime<Utc> {
    assigned_at + chrono::Duration::days(REASSIGN_AFTER_DAYS)
}

async fn load_assignable(
    conn: &mut PgConn,
    principal: &Principal,
    id: Uuid,
    delivery: BenefitDelivery,
) -> AppResult<Entitlement> {
    principal.require(Action::AssignBenefits)?;
    let e = load_visible(conn, principal, id, true).await?;
    if e.delivery != delivery {
        return Err(AppError::bad_input(
            "benefitId",
            match delivery {
                BenefitDelivery::Seat => "this benefit is not a Visual Studio subscription",
                _ => "this benefit is not usage-based Azure credit",
            },
        ));
    }
    require_usable(&e)?;
    Ok(e)
}

/// Assigns a Visual Studio seat to a partner user (bounded by the quantity), or moves the seat
/// of `replace_user_id` to them: allowed 90 days or more after that seat was assigned, else
/// NOT_ELIGIBLE with the date it becomes possible.
pub async fn assign_visual_studio(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    user_id: Uuid,
    replace_user_id: Option<Uuid>,
) -> AppResult<Entitlement> {
    conn.transaction::<_, AppError, _>(async |conn| {
        let e = load_assignable(conn, principal, entitlement_id, BenefitDelivery::Seat).await?;
        let user = partner_user(conn, e.partner_id, user_id).await?;
        let current = current_assignments(conn, &[e.id]).await?;
        if current.iter().any(|(a, _)| a.user_id == user.id) {
            return Ok(e);
        }
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        let by = match principal {
            Principal::User { user_id, .. } => *user_id,
            _ => return Err(AppError::Forbidden),
        };
        let mut used = e.used;
        if let Some(old) = replace_user_id {
            let Some((seat, _)) = current.iter().find(|(a, _)| a.user_id == old) else {
                return Err(AppError::NotFound("seat assignment"));
            };
            let from = reassignable_from(seat.assigned_at);
            if now < from {
                return Err(AppError::NotEligible(vec![Reason::new(
                    "REASSIGNMENT_TOO_EARLY",
                    format!(
                        "a seat can be reassigned {REASSIGN_AFTER_DAYS} days after its assignment: from {}",
                        from.date_naive()
                    ),
                )
                .until(from.date_naive())]));
            }
            diesel::update(benefit_assignments::table.find(seat.id))
                .set(benefit_assignments::unassigned_at.eq(now))
                .execute(conn)
                .await?;
        } else {
            if e.quantity.is_some_and(|q| used >= q) {
                return Err(AppError::not_eligible(
                    "NO_SEATS_LEFT",
                    format!(
                        "all {} seats are assigned; reassign one instead",
                        e.quantity.unwrap_or(0)
                    ),
                ));
            }
            used += 1;
        }
        insert_assignment(conn, e.id, user.id, by, now).await?;
        let e: Entitlement = diesel::update(entitlements::table.find(e.id))
            .set((entitlements::used.eq(used), entitlements::updated_at.eq(Utc::now())))
            .returning(Entitlement::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(e.partner_id),
            "benefit.seat_assigned",
            ("benefit", e.id.to_string()),
            json!({"user": user.id, "replaced": replace_user_id}),
        )
        .await?;
        events::notify(conn, &Event::Benefit { partner_id: e.partner_id, id: e.id }).await?;
        Ok(e)
    })
    .await
}

async fn insert_assignment(
    conn: &mut PgConn,
    entitlement_id: Uuid,
    user_id: Uuid,
    by: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::insert_into(benefit_assignments::table)
        .values(&BenefitAssignment {
            id: Uuid::now_v7(),
            entitlement_id,
            user_id,
            assigned_at: now,
            assigned_by: by,
            unassigned_at: None,
            created_at: Utc::now(),
        })
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a partner user to the usage-based Azure subscription (users come and go freely).
pub async fn assign_azure_user(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    user_id: Uuid,
) -> AppResult<Entitlement> {
    conn.transaction::<_, AppError, _>(async |conn| {
        let e = load_assignable(
            conn,
            principal,
            entitlement_id,
            BenefitDelivery::AzureCredit,
        )
        .await?;
        let user = partner_user(conn, e.partner_id, user_id).await?;
        let current = current_assignments(conn, &[e.id]).await?;
        if current.iter().any(|(a, _)| a.user_id == user.id) {
            return Ok(e);
        }
        let Principal::User { user_id: by, .. } = principal else {
            return Err(AppError::Forbidden);
        };
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        insert_assignment(conn, e.id, user.id, *by, now).await?;
        audit::record(
            conn,
            actor,
            Some(e.partner_id),
            "benefit.azure_user_assigned",
            ("benefit", e.id.to_string()),
            json!({"user": user.id}),
        )
        .await?;
        events::notify(
            conn,
            &Event::Benefit {
                partner_id: e.partner_id,
                id: e.id,
            },
        )
        .await?;
        Ok(e)
    })
    .await
}

pub(crate) async fn release_all(
    conn: &mut PgConn,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::update(
        benefit_assignments::table
            .filter(benefit_assignments::entitlement_id.eq_any(ids))
            .filter(benefit_assignments::unassigned_at.is_null()),
    )
    .set(benefit_assignments::unassigned_at.eq(now))
    .execute(conn)
    .await?;
    Ok(())
}

/// Job: one month's Azure credit. The (entitlement, month) key makes it once per month.
pub(crate) async fn grant_azure_credit(
    conn: &mut PgConn,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let e = lock(conn, action.subject_id).await?;
    if e.status != EntitlementStatus::Active || e.term != action.term {
        return Ok(Outcome::Done(
            "skipped: benefit revoked or term over".into(),
        ));
    }
    let term_start: Option<DateTime<Utc>> = subscriptions::table
        .find(e.subscription_id)
        .select(subscriptions::term_started_at)
        .first(conn)
        .await?;
    let term_start = term_start.unwrap_or(action.due_at);
    // This month, and any later month already begun (a clock moved ahead by months), then
    // the next month's action.
    let mut month: u32 = action.tag.parse().unwrap_or(0);
    let mut grants = Vec::new();
    let next = loop {
        let Some(start) = super::credit_month_start(term_start, month, e.expires_at)? else {
            break None;
        };
        if start > now && !grants.is_empty() {
            break Some((month, start));
        }
        let end = start
            .checked_add_months(Months::new(1))
            .ok_or_else(|| AppError::Internal("date overflow".into()))?
            .min(e.expires_at);
        grants.push(AzureCreditGrant {
            id: Uuid::now_v7(),
            entitlement_id: e.id,
            month_index: (action.term - 1) * 12 + month as i32,
            period_start: start,
            period_end: end,
            amount_minor: AZURE_MONTHLY_CREDIT_MINOR,
            granted_at: now,
        });
        month += 1;
    };
    let n = diesel::insert_into(azure_credit_grants::table)
        .values(&grants)
        .on_conflict_do_nothing()
        .reuse_for_rows(grants.len())
        .execute(conn)
        .await?;
    if let Some((month, at)) = next {
        crate::lifecycle::actions::schedule(
            conn,
            e.partner_id,
            ActionKind::GrantAzureCredit,
            e.id,
            e.term,
            &month.to_string(),
            at,
        )
        .await?;
    }
    events::notify(
        conn,
        &Event::Benefit {
            partner_id: e.partner_id,
            id: e.id,
        },
    )
    .await?;
    Ok(Outcome::Done(match n {
        0 => "already granted".into(),
        1 => "granted".into(),
        n => format!("granted {n} months"),
    }))
}

/// The credit of the month `now` falls in (no roll-over: earlier months do not add up).
/// The monthly grants of these entitlements, oldest month first.
pub async fn azure_grants(
    conn: &mut PgConn,
    entitlement_ids: &[Uuid],
) -> AppResult<Vec<AzureCreditGrant>> {
    Ok(azure_credit_grants::table
        .filter(azure_credit_grants::entitlement_id.eq_any(entitlement_ids))
        .order((
            azure_credit_grants::entitlement_id,
            azure_credit_grants::month_index,
        ))
        .select(AzureCreditGrant::as_select())
        .load(conn)
        .await?)
}

/// The grant whose month contains `now` (credit does not roll over).
pub fn azure_current(grants: &[AzureCreditGrant], now: DateTime<Utc>) -> Option<&AzureCreditGrant> {
    grants
        .iter()
        .find(|g| g.period_start <= now && now < g.period_end)
}

#[derive(Debug, Clone, async_graphql::InputObject)]
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
        let partner = crate::enrollment::load_partner(conn, partner_id).await?;
        if email.eq_ignore_ascii_case(&partner.contact_email) {
            return Err(AppError::bad_input(
                "email",
                "the marketing contact's email must differ from the partner's account email",
            ));
        }
        partner_user(conn, partner_id, user_id).await?;
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

pub async fn marketing_contact(
    conn: &mut PgConn,
    partner_id: Uuid,
) -> AppResult<Option<MarketingContact>> {
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
