//! Partner rows and the users that belong to a partner: the lookups every feature starts from.

use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{partners, users};
use crate::db::{DbPool, PgConn};
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};

/// The partner the caller sees (its own; operators name one), answered from `known` when
/// that is the row already (read with the caller's token).
pub async fn visible(
    pool: &DbPool,
    principal: &Principal,
    requested: Option<Uuid>,
    known: Option<&Partner>,
) -> AppResult<Partner> {
    let partner_id = principal.scope_for(Action::ViewPartner, requested)?;
    match known {
        Some(own) if own.id == partner_id => Ok(own.clone()),
        _ => load_partner(&*pool.get().await?, partner_id).await,
    }
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
    let mut q = partners_filtered(vetting_status)
        .order(partners::id.desc())
        .limit(limit)
        .select(Partner::as_select());
    if let Some(b) = before {
        q = q.filter(partners::id.lt(b));
    }
    Ok(q.load(conn).await?)
}

/// How many partners [`list_partners`] lists over every page (`totalCount`).
pub async fn count_partners(
    conn: &mut PgConn,
    principal: &Principal,
    vetting_status: Option<VettingStatus>,
) -> AppResult<i64> {
    principal.require(Action::Operate)?;
    Ok(partners_filtered(vetting_status)
        .count()
        .get_result(conn)
        .await?)
}

fn partners_filtered(
    vetting_status: Option<VettingStatus>,
) -> partners::BoxedQuery<'static, diesel::pg::Pg> {
    let mut q = partners::table.into_boxed();
    if let Some(s) = vetting_status {
        q = q.filter(partners::vetting_status.eq(s));
    }
    q
}

pub(crate) async fn lock_partner(conn: &mut PgConn, id: Uuid) -> AppResult<Partner> {
    partners::table
        .find(id)
        .for_update()
        .select(Partner::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("partner"))
}

/// A user of the partner who has not been removed.
pub(crate) async fn member(conn: &mut PgConn, partner_id: Uuid, user_id: Uuid) -> AppResult<User> {
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
