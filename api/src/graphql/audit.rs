//! The audit log of a partner: Global admins see their own, operators any partner's.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};

use super::pagination;
use super::types::AuditEntry;
use super::{conn, opt_id, principal};

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Newest first.
    ///
    /// Roles: Global admin; operators.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, AuditEntry, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let mut c = conn(ctx).await?;
        let rows = gateway_domain::audit::list(&mut c, p, partner_id, before, limit + 1).await?;
        let total =
            pagination::total_count(ctx, || gateway_domain::audit::count(&mut c, p, partner_id))
                .await?;
        Ok(pagination::connection(
            rows.into_iter().map(AuditEntry::from).collect(),
            limit,
            before.is_some(),
            total,
            |a| a.uuid,
        ))
    }
}
