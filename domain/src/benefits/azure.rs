//! Usage-based Azure: the Global admin assigns users (they come and go freely), and US$100 of
//! credit is granted each month of the term (no roll-over).
//!
//! Credit months are chained: a term schedules month 0; each month's job grants its month (and
//! any later month a moved clock has already reached) and schedules the next, so due work
//! holds one credit row per entitlement rather than twelve.

use chrono::{DateTime, Months, Utc};
use serde_json::json;
use uuid::Uuid;

use super::assignments::{current_assignments, insert_assignment};
use super::entitlements::{credit_month_start, lock};
use super::seats::load_assignable;
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{azure_credit_grants, subscriptions};
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::events;
use crate::partners::member;
use crate::permissions::Principal;
use crate::services::Services;
use crate::subscriptions::{eligibility, store as subs};

/// Azure credit granted each month of the term, in US cents.
pub const AZURE_MONTHLY_CREDIT_MINOR: i64 = 10_000;

/// Adds a partner user to the usage-based Azure subscription (users come and go freely).
pub async fn assign_azure_user(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    user_id: Uuid,
    acknowledge_refund_loss: bool,
) -> AppResult<Entitlement> {
    conn.transaction::<_, AppError, _>(async |conn| {
        let e = load_assignable(
            conn,
            principal,
            entitlement_id,
            BenefitDelivery::AzureCredit,
        )
        .await?;
        let user = member(conn, e.partner_id, user_id).await?;
        let current = current_assignments(conn, &[e.id]).await?;
        if current.iter().any(|(a, _)| a.user_id == user.id) {
            return Ok(e);
        }
        let Principal::User { user_id: by, .. } = principal else {
            return Err(AppError::Forbidden);
        };
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        let sub = subs::lock(conn, e.subscription_id).await?;
        eligibility::use_benefit(
            conn,
            svc,
            &sub,
            eligibility::Use::Benefit(BenefitUse::AzureUserAssigned),
            acknowledge_refund_loss,
            now,
        )
        .await?;
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
        events::benefit_changed(conn, &e).await?;
        Ok(e)
    })
    .await
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
        let Some(start) = credit_month_start(term_start, month, e.expires_at)? else {
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
        due::schedule(
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
    events::benefit_changed(conn, &e).await?;
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
