//! The audit log: one row per state-changing mutation (and, later, per key reveal), written in
//! the mutation's own transaction so a change and its record commit or fail together.

use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use serde_json::Value;

use crate::db::prelude::*;
use uuid::Uuid;

use crate::db::models::AuditEntry;
use crate::db::schema::audit_log;
use crate::db::PgConn;
use crate::enums::ActorKind;
use crate::error::AppResult;
use crate::permissions::{Action, Principal};

/// Who did it and under which request id; built once per request by the api.
#[derive(Debug, Clone)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn of(principal: &Principal, request_id: Option<String>) -> Self {
        let (kind, id) = match principal {
            Principal::User { user_id, .. } => (ActorKind::User, user_id.to_string()),
            Principal::Operator { operator_id, .. } => {
                (ActorKind::Operator, operator_id.to_string())
            }
            Principal::Identity { subject, .. } => (ActorKind::Identity, subject.clone()),
        };
        Self {
            kind,
            id,
            request_id,
        }
    }

    pub fn system(what: &str) -> Self {
        Self {
            kind: ActorKind::System,
            id: what.to_owned(),
            request_id: None,
        }
    }
}

pub async fn record(
    conn: &PgConn,
    actor: &Actor,
    partner_id: Option<Uuid>,
    action: &str,
    target: (&str, String),
    details: Value,
) -> AppResult<()> {
    record_many(conn, actor, action, vec![(partner_id, target, details)]).await
}

/// Like [`record`] for one action on many targets (a batch of renewals): one INSERT.
pub async fn record_many(
    conn: &PgConn,
    actor: &Actor,
    action: &str,
    entries: Vec<(Option<Uuid>, (&str, String), Value)>,
) -> AppResult<()> {
    insert_entries(conn, &entries_of(actor, action, entries)).await
}

/// Inserts the rows of [`entries_of`] in one statement.
pub async fn insert_entries(mut conn: &PgConn, rows: &[AuditEntry]) -> AppResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    insert_rows(rows).execute(&mut conn).await?;
    Ok(())
}

/// The INSERT of [`insert_entries`] (for a statement that makes other writes too,
/// [`crate::db::writes`]); at least one row.
pub(crate) fn insert_rows(rows: &[AuditEntry]) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    diesel::insert_into(audit_log::table)
        .values(rows)
        .reuse_for_rows(rows.len())
}

/// The rows [`record_many`] inserts (for a caller that inserts them itself).
pub fn entries_of(
    actor: &Actor,
    action: &str,
    entries: Vec<(Option<Uuid>, (&str, String), Value)>,
) -> Vec<AuditEntry> {
    let now = chrono::Utc::now();
    entries
        .into_iter()
        .map(|(partner_id, target, details)| AuditEntry {
            id: Uuid::now_v7(),
            partner_id,
            actor_kind: actor.kind,
            actor_id: actor.id.clone(),
            action: action.to_owned(),
            target_type: target.0.to_owned(),
            target_id: target.1,
            details,
            request_id: actor.request_id.clone(),
            created_at: now,
        })
        .collect()
}

/// A partner's audit log (Global admins; operators name the partner), newest first,
/// keyset-paginated by id (UUIDv7, so time-ordered).
pub async fn list(
    conn: &mut PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<AuditEntry>> {
    let partner_id = principal.scope_for(Action::ViewAuditLog, partner_id)?;
    let mut q = audit_log::table
        .filter(audit_log::partner_id.eq(partner_id))
        .order(audit_log::id.desc())
        .limit(limit)
        .select(AuditEntry::as_select())
        .into_boxed();
    if let Some(b) = before {
        q = q.filter(audit_log::id.lt(b));
    }
    Ok(q.load(conn).await?)
}

/// How many entries [`list`] lists over every page (`totalCount`).
pub async fn count(
    conn: &mut PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
) -> AppResult<i64> {
    let partner_id = principal.scope_for(Action::ViewAuditLog, partner_id)?;
    Ok(audit_log::table
        .filter(audit_log::partner_id.eq(partner_id))
        .count()
        .get_result(conn)
        .await?)
}
