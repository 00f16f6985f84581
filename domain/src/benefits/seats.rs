//! Visual Studio subscriptions: the Global admin assigns partner users to seats (bounded by
//! the quantity); a seat moves to someone else only 90 days after its assignment.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::assignments::{current_assignments, insert_assignment};
use super::entitlements::{load_visible, require_usable};
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{benefit_assignments, entitlements};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::events;
use crate::partners::member;
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::subscriptions::{eligibility, store as subs};

/// A seat can move to someone else only this long after it was assigned.
pub const REASSIGN_AFTER_DAYS: i64 = 90;

/// When a seat assigned at `assigned_at` may be reassigned.
pub fn reassignable_from(assigned_at: DateTime<Utc>) -> DateTime<Utc> {
    assigned_at + chrono::Duration::days(REASSIGN_AFTER_DAYS)
}

pub(crate) async fn load_assignable(
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

/// What a seat assignment asks for.
pub struct SeatAssignment {
    pub entitlement_id: Uuid,
    pub user_id: Uuid,
    /// Moves this user's seat instead of using a free one.
    pub replace_user_id: Option<Uuid>,
    /// The caller knows the first assignment ends refund eligibility (needed while possible).
    pub acknowledge_refund_loss: bool,
}

/// Assigns a Visual Studio seat to a partner user (bounded by the quantity), or moves the seat
/// of `replace_user_id` to them: allowed 90 days or more after that seat was assigned, else
/// NOT_ELIGIBLE with the date it becomes possible.
pub async fn assign_visual_studio(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    request: SeatAssignment,
) -> AppResult<Entitlement> {
    let SeatAssignment {
        entitlement_id,
        user_id,
        replace_user_id,
        acknowledge_refund_loss,
    } = request;
    conn.transaction::<_, AppError, _>(async |conn| {
        let e = load_assignable(conn, principal, entitlement_id, BenefitDelivery::Seat).await?;
        let user = member(conn, e.partner_id, user_id).await?;
        let current = current_assignments(conn, &[e.id]).await?;
        if current.iter().any(|(a, _)| a.user_id == user.id) {
            return Ok(e);
        }
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        let sub = subs::lock(conn, e.subscription_id).await?;
        eligibility::use_benefit(
            conn,
            svc,
            &sub,
            eligibility::Use::Benefit(BenefitUse::VsSeatAssigned),
            acknowledge_refund_loss,
            now,
        )
        .await?;
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
        events::benefit_changed(conn, &e).await?;
        Ok(e)
    })
    .await
}
