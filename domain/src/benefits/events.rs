//! Live updates. A change announces itself with Postgres `NOTIFY` inside the transaction that
//! makes it, so listeners hear of it exactly when it commits (and never of a rolled-back one).
//! The api LISTENs and feeds GraphQL subscriptions (`benefitUpdated`, `subscriptionUpdated`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::db::prelude::*;
use crate::db::PgConn;
use crate::error::AppResult;

pub const CHANNEL: &str = "pbg_events";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Benefit { partner_id: Uuid, id: Uuid },
    Subscription { partner_id: Uuid, id: Uuid },
}

impl Event {
    pub fn partner_id(&self) -> Uuid {
        match self {
            Event::Benefit { partner_id, .. } | Event::Subscription { partner_id, .. } => {
                *partner_id
            }
        }
    }
}

/// Like [`notify`] for several events in one statement.
pub async fn notify_many(conn: &mut PgConn, events: &[Event]) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let payloads = events
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::AppError::internal)?;
    diesel::sql_query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
        .bind::<diesel::sql_types::Text, _>(CHANNEL)
        .bind::<diesel::sql_types::Array<diesel::sql_types::Text>, _>(payloads)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn notify(conn: &mut PgConn, event: &Event) -> AppResult<()> {
    notify_many(conn, std::slice::from_ref(event)).await
}
