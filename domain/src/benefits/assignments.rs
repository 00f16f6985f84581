//! Benefits assigned to people (Visual Studio seats, Azure usage-based users): the rows, who
//! holds what now, and releasing them when the benefit is revoked.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{benefit_assignments, entitlements, users};
use crate::db::PgConn;
use crate::error::AppResult;

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
pub(crate) async fn insert_assignment(
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

/// Releases everything a user holds (a removed user): their current assignments end now, and a
/// Visual Studio seat they held is free again at once (the entitlement's `used` goes down).
/// Returns the released assignments with their entitlements, for the audit log and events.
pub(crate) async fn release_user(
    conn: &mut PgConn,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Vec<(BenefitAssignment, Entitlement)>> {
    let released: Vec<BenefitAssignment> = diesel::update(
        benefit_assignments::table
            .filter(benefit_assignments::user_id.eq(user_id))
            .filter(benefit_assignments::unassigned_at.is_null()),
    )
    .set(benefit_assignments::unassigned_at.eq(now))
    .returning(BenefitAssignment::as_returning())
    .get_results(conn)
    .await?;
    let mut out = Vec::with_capacity(released.len());
    for a in released {
        let e: Entitlement = entitlements::table
            .find(a.entitlement_id)
            .for_update()
            .select(Entitlement::as_select())
            .first(conn)
            .await?;
        let e = if e.delivery == crate::enums::BenefitDelivery::Seat {
            diesel::update(entitlements::table.find(e.id))
                .set((
                    entitlements::used.eq((e.used - 1).max(0)),
                    entitlements::updated_at.eq(Utc::now()),
                ))
                .returning(Entitlement::as_returning())
                .get_result(conn)
                .await?
        } else {
            e
        };
        out.push((a, e));
    }
    Ok(out)
}
