//! Users and roles (PRODUCT.md 2.2): who the caller is, inviting users, changing roles,
//! removing users. The role rules live in [`check_role_change`], a pure function. Removed
//! users keep their row (status `REMOVED`, sign-in link cut) because audit records and
//! service requests point at them.
//!
//! A token costs one statement, and it brings the caller's partner: a partner user's token
//! is resolved with a join of `users` and `partners` ([`resolve_caller`]), and the `partner`
//! query answers from that row in a single operation (not in a batch, where a mutation
//! before it may have changed the row, and not over the WebSocket, which lives long).

use crate::db::prelude::*;
use chrono::Utc;

use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::auth::Claims;
use crate::config::Config;
use crate::db::models::*;
use crate::db::schema::{operators, partners, users};
use crate::db::PgConn;
use crate::email::{self, Template};
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::validation as v;

/// Who a verified token is: the principal and, for an active partner user, that user's
/// partner as read in the same statement (the api answers a query for the caller's own
/// partner from it instead of reading it again).
pub struct Caller {
    pub principal: Principal,
    pub partner: Option<Partner>,
}

/// Resolves a verified token to the caller: one statement for a partner user (the bulk of the
/// traffic), two for an operator. An invited user is linked to the token's subject on first
/// sign-in, when the token carries the invited address as a verified email.
pub async fn resolve_caller(conn: &mut PgConn, claims: &Claims) -> AppResult<Caller> {
    let found: Option<(User, Partner)> = users::table
        .inner_join(partners::table)
        .filter(users::subject.eq(&claims.sub))
        .filter(users::status.eq(UserStatus::Active))
        .select((User::as_select(), Partner::as_select()))
        .first(conn)
        .await
        .optional()?;
    let (user, partner) = match found {
        Some((u, p)) => (Some(u), Some(p)),
        None => (None, None),
    };
    // Partner users, the bulk of the traffic, cost one statement; operators (few) two.
    if user.is_none() {
        if let Some(op) = operators::table
            .filter(operators::subject.eq(&claims.sub))
            .select(Operator::as_select())
            .first(conn)
            .await
            .optional()?
        {
            return Ok(Caller {
                principal: Principal::Operator {
                    operator_id: op.id,
                    subject: op.subject,
                    name: op.name,
                },
                partner: None,
            });
        }
    }
    let user = match (user, &claims.email, claims.email_verified) {
        (Some(u), _, _) => Some(u),
        (None, Some(email), Some(true)) => {
            // First sign-in of an invited user: claim the invitation, once.
            diesel::update(
                users::table
                    .filter(
                        diesel::dsl::sql::<diesel::sql_types::Bool>("lower(email) = ")
                            .bind::<diesel::sql_types::Text, _>(email.to_lowercase()),
                    )
                    .filter(users::status.eq(UserStatus::Invited))
                    .filter(users::subject.is_null()),
            )
            .set((
                users::subject.eq(&claims.sub),
                users::status.eq(UserStatus::Active),
                users::display_name.eq(&claims.name),
                users::updated_at.eq(Utc::now()),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .optional()?
        }
        _ => None,
    };
    let principal = match user {
        Some(u) => Principal::User {
            user_id: u.id,
            partner_id: u.partner_id,
            roles: u.roles(),
            email: u.email,
            subject: claims.sub.clone(),
        },
        None => Principal::Identity {
            subject: claims.sub.clone(),
            email: claims.email.clone(),
            email_verified: claims.email_verified.unwrap_or(false),
        },
    };
    Ok(Caller { principal, partner })
}

/// The extra rules of role management, beyond "GA or UA may manage users":
/// a User admin can neither grant nor revoke Global admin, nor touch a Global admin at all;
/// the last Global admin can neither lose the role nor be removed.
/// `new_roles` is `None` for a removal.
pub fn check_role_change(
    actor_roles: &[TenantRole],
    target_roles: &[TenantRole],
    new_roles: Option<&[TenantRole]>,
    global_admins: usize,
) -> AppResult<()> {
    let ga = TenantRole::GlobalAdmin;
    let actor_is_ga = actor_roles.contains(&ga);
    let target_is_ga = target_roles.contains(&ga);
    let stays_ga = new_roles.is_some_and(|r| r.contains(&ga));
    if !actor_is_ga && (target_is_ga || stays_ga) {
        return Err(AppError::Forbidden);
    }
    if target_is_ga && !stays_ga && global_admins <= 1 {
        return Err(AppError::not_eligible(
            "LAST_GLOBAL_ADMIN",
            "a partner keeps at least one Global admin; make someone else Global admin first",
        ));
    }
    Ok(())
}

fn actor_roles(principal: &Principal) -> &[TenantRole] {
    match principal {
        Principal::User { roles, .. } => roles,
        _ => &[],
    }
}

/// Serializes role changes of one partner (the last-Global-admin rule needs a stable count).
async fn lock_partner_and_count_gas(
    conn: &mut PgConn,
    partner_id: Uuid,
) -> AppResult<(Partner, usize)> {
    let partner = partners::table
        .find(partner_id)
        .for_update()
        .select(Partner::as_select())
        .first(conn)
        .await?;
    let gas: i64 = users::table
        .filter(users::partner_id.eq(partner_id))
        .filter(users::status.ne(UserStatus::Removed))
        .filter(users::roles.contains(vec![TenantRole::GlobalAdmin.as_str().to_owned()]))
        .count()
        .get_result(conn)
        .await?;
    Ok((partner, gas as usize))
}

/// The users (invited and active) of the caller's partner.
pub async fn list_visible(conn: &mut PgConn, principal: &Principal) -> AppResult<Vec<User>> {
    let partner_id = principal.scope_for(Action::ViewPartner, None)?;
    list(conn, &[partner_id]).await
}

/// The users (invited and active) of partners the caller sees.
pub async fn of_partners(
    conn: &mut PgConn,
    principal: &Principal,
    partner_ids: &[Uuid],
) -> AppResult<Vec<User>> {
    principal.require(Action::ViewPartner)?;
    list(conn, partner_ids).await
}

/// The users (invited and active) of these partners, by id.
async fn list(conn: &mut PgConn, partner_ids: &[Uuid]) -> AppResult<Vec<User>> {
    Ok(users::table
        .filter(users::partner_id.eq_any(partner_ids))
        .filter(users::status.ne(UserStatus::Removed))
        .order(users::id)
        .select(User::as_select())
        .load(conn)
        .await?)
}

pub async fn load(conn: &mut PgConn, user_id: Uuid) -> AppResult<User> {
    users::table
        .find(user_id)
        .select(User::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("user"))
}

pub async fn add_user(
    conn: &mut PgConn,
    cfg: &Config,
    principal: &Principal,
    actor: &Actor,
    email_raw: &str,
    roles: Vec<TenantRole>,
    display_name: Option<String>,
) -> AppResult<User> {
    principal.require(Action::ManageUsers)?;
    let partner_id = principal.scope(None)?;
    // An invitee is a person at the partner, checked like the primary contact.
    let email = v::work_email("email", email_raw)?;
    let display_name = v::optional_text("displayName", display_name.as_deref(), 100)?;
    check_role_change(actor_roles(principal), &[], Some(&roles), usize::MAX)?;
    let inviter = match principal {
        Principal::User { email, .. } => email.clone(),
        _ => "An administrator".into(),
    };
    conn.transaction::<_, AppError, _>(async |conn| {
        let (partner, _) = lock_partner_and_count_gas(conn, partner_id).await?;
        let user: User = diesel::insert_into(users::table)
            .values(&NewUser {
                id: Uuid::now_v7(),
                partner_id,
                subject: None,
                email: email.clone(),
                display_name,
                roles: roles_to_db(&roles),
                status: UserStatus::Invited,
                invited_by: match principal {
                    Principal::User { user_id, .. } => Some(*user_id),
                    _ => None,
                },
            })
            .returning(User::as_returning())
            .get_result(conn)
            .await
            .map_err(|e| match AppError::from(e) {
                AppError::Conflict(_) => {
                    AppError::Conflict(format!("{email} already belongs to a partner user"))
                }
                other => other,
            })?;
        let roles_text = user
            .roles()
            .iter()
            .map(|r| r.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        email::queue(
            conn,
            Some(partner_id),
            Template::Invitation,
            &email,
            &json!({
                "inviter": inviter,
                "legal_name": partner.legal_name,
                "mpn_id": partner.mpn_id,
                "roles": roles_text,
                "email": email,
                "link": cfg.http.portal_link("/sign-in"),
            }),
        )
        .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "user.invited",
            ("user", user.id.to_string()),
            json!({"email": email, "roles": user.roles()}),
        )
        .await?;
        Ok(user)
    })
    .await
}

pub async fn update_roles(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    user_id: Uuid,
    roles: Vec<TenantRole>,
) -> AppResult<User> {
    principal.require(Action::ManageUsers)?;
    let partner_id = principal.scope(None)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let (_, gas) = lock_partner_and_count_gas(conn, partner_id).await?;
        let target = crate::partners::member(conn, partner_id, user_id).await?;
        let before = target.roles();
        check_role_change(actor_roles(principal), &before, Some(&roles), gas)?;
        let updated: User = diesel::update(users::table.find(user_id))
            .set((
                users::roles.eq(roles_to_db(&roles)),
                users::updated_at.eq(Utc::now()),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "user.roles_updated",
            ("user", user_id.to_string()),
            json!({"from": before, "to": updated.roles()}),
        )
        .await?;
        Ok(updated)
    })
    .await
}

pub async fn remove_user(
    conn: &mut PgConn,
    svc: &crate::services::Services,
    principal: &Principal,
    actor: &Actor,
    user_id: Uuid,
) -> AppResult<User> {
    principal.require(Action::ManageUsers)?;
    let partner_id = principal.scope(None)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let (_, gas) = lock_partner_and_count_gas(conn, partner_id).await?;
        let target = crate::partners::member(conn, partner_id, user_id).await?;
        check_role_change(actor_roles(principal), &target.roles(), None, gas)?;
        // The row stays (audit, service requests point at it); the sign-in link is cut.
        let removed: User = diesel::update(users::table.find(user_id))
            .set((
                users::status.eq(UserStatus::Removed),
                users::subject.eq(None::<String>),
                users::roles.eq(Vec::<String>::new()),
                users::updated_at.eq(Utc::now()),
            ))
            .returning(User::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "user.removed",
            ("user", user_id.to_string()),
            json!({"email": target.email, "roles": target.roles()}),
        )
        .await?;
        release_holdings(conn, svc, actor, &target).await?;
        Ok(removed)
    })
    .await
}

/// What a removed user held goes back to the partner: Visual Studio seats (assignable again at
/// once) and Azure usage assignments, each audited; if they were the marketing contact, the
/// Global admins are told that Go-To-Market offers need a new one.
async fn release_holdings(
    conn: &mut PgConn,
    svc: &crate::services::Services,
    actor: &Actor,
    user: &User,
) -> AppResult<()> {
    let now = crate::clock::now_for(conn, &svc.config, user.partner_id).await?;
    for (a, e) in crate::benefits::assignments::release_user(conn, user.id, now).await? {
        audit::record(
            conn,
            actor,
            Some(user.partner_id),
            "benefit.assignment_released",
            ("benefit", e.id.to_string()),
            json!({"user": user.id, "product": e.product, "assigned_at": a.assigned_at,
                   "reason": "user removed"}),
        )
        .await?;
        crate::events::benefit_changed(conn, &e).await?;
    }
    let Some(contact) =
        crate::benefits::marketing::drop_contact(conn, user.partner_id, user.id).await?
    else {
        return Ok(());
    };
    audit::record(
        conn,
        actor,
        Some(user.partner_id),
        "marketing_contact.removed",
        ("user", user.id.to_string()),
        json!({"email": contact.email, "reason": "user removed"}),
    )
    .await?;
    let partner = crate::partners::load_partner(conn, user.partner_id).await?;
    let admins: Vec<String> = users::table
        .filter(users::partner_id.eq(user.partner_id))
        .filter(users::status.eq(UserStatus::Active))
        .filter(users::roles.contains(vec![TenantRole::GlobalAdmin.to_string()]))
        .order(users::created_at)
        .select(users::email)
        .load(conn)
        .await?;
    let ctx = json!({
        "legal_name": partner.legal_name,
        "mpn_id": partner.mpn_id,
        "contact_email": contact.email,
        "link": svc.config.http.portal_link("/partnership/benefits"),
    });
    let queued: Vec<email::Queued<'_, serde_json::Value>> = admins
        .iter()
        .map(|to| email::Queued {
            partner_id: Some(user.partner_id),
            template: Template::MarketingContactRemoved,
            to,
            ctx: ctx.clone(),
        })
        .collect();
    email::queue_many(conn, &queued).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TenantRole::*;

    #[test]
    fn user_admin_cannot_grant_or_revoke_global_admin() {
        assert_eq!(
            check_role_change(&[UserAdmin], &[], Some(&[GlobalAdmin]), 1)
                .unwrap_err()
                .code(),
            "FORBIDDEN"
        );
        assert_eq!(
            check_role_change(&[UserAdmin], &[GlobalAdmin], Some(&[]), 2)
                .unwrap_err()
                .code(),
            "FORBIDDEN"
        );
        assert_eq!(
            check_role_change(
                &[UserAdmin],
                &[GlobalAdmin, AdminAgent],
                Some(&[GlobalAdmin]),
                2
            )
            .unwrap_err()
            .code(),
            "FORBIDDEN"
        );
        assert_eq!(
            check_role_change(&[UserAdmin], &[GlobalAdmin], None, 2)
                .unwrap_err()
                .code(),
            "FORBIDDEN"
        );
        assert!(
            check_role_change(&[UserAdmin], &[AdminAgent], Some(&[MpnPartnerAdmin]), 1).is_ok()
        );
        assert!(check_role_change(&[UserAdmin], &[MpnPartnerAdmin], None, 1).is_ok());
    }

    #[test]
    fn global_admin_manages_global_admins() {
        assert!(check_role_change(&[GlobalAdmin], &[], Some(&[GlobalAdmin]), 1).is_ok());
        assert!(check_role_change(&[GlobalAdmin], &[GlobalAdmin], Some(&[]), 2).is_ok());
        assert!(check_role_change(&[GlobalAdmin], &[GlobalAdmin], None, 2).is_ok());
    }

    #[test]
    fn the_last_global_admin_stays() {
        let e =
            check_role_change(&[GlobalAdmin], &[GlobalAdmin], Some(&[AdminAgent]), 1).unwrap_err();
        assert_eq!(e.code(), "NOT_ELIGIBLE");
        assert!(check_role_change(&[GlobalAdmin], &[GlobalAdmin], None, 1).is_err());
        assert!(check_role_change(
            &[GlobalAdmin],
            &[GlobalAdmin],
            Some(&[GlobalAdmin, UserAdmin]),
            1
        )
        .is_ok());
    }
}
