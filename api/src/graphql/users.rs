//! Users and roles of the caller's partner.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use gateway_domain::enums::TenantRole;
use gateway_domain::users;

use super::pagination;
use super::types::User;
use super::{actor, conn, parse_id, principal, services, shared};

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The users of the caller's partner (invited and active), newest first.
    ///
    /// Roles: any partner user; operators.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, User, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        let mut all: Vec<User> = users::list_visible(&mut c, p)
            .await?
            .into_iter()
            .map(User)
            .collect();
        all.reverse();
        Ok(pagination::from_list(all, first, after.as_deref(), |u| {
            u.0.id
        })?)
    }
}

#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Invites a user by work email; they are linked on first sign-in.
    ///
    /// Roles: Global admin, User admin.
    async fn add_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new user's work email; the invitation goes there.")] email: String,
        #[graphql(
            default,
            desc = "The user's roles (empty: a member without admin roles)."
        )]
        roles: Vec<TenantRole>,
        #[graphql(desc = "The user's display name.")] display_name: Option<String>,
    ) -> async_graphql::Result<User> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(User(
            users::add_user(
                &mut c,
                &shared(ctx).config,
                p,
                &actor(ctx)?,
                &email,
                roles,
                display_name,
            )
            .await?,
        ))
    }

    /// Replaces a user's roles.
    ///
    /// Roles: Global admin, User admin.
    async fn update_user_roles(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user whose roles change.")] user_id: ID,
        #[graphql(desc = "The user's roles from now on (replacing the old ones).")] roles: Vec<
            TenantRole,
        >,
    ) -> async_graphql::Result<User> {
        let p = principal(ctx)?;
        let id = parse_id("userId", &user_id)?;
        let mut c = conn(ctx).await?;
        Ok(User(
            users::update_roles(&mut c, p, &actor(ctx)?, id, roles).await?,
        ))
    }

    /// Removes a user from the partner (the last Global admin stays).
    ///
    /// Roles: Global admin, User admin.
    async fn remove_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to remove.")] user_id: ID,
    ) -> async_graphql::Result<User> {
        let p = principal(ctx)?;
        let id = parse_id("userId", &user_id)?;
        let mut c = conn(ctx).await?;
        Ok(User(
            users::remove_user(&mut c, services(ctx), p, &actor(ctx)?, id).await?,
        ))
    }
}
