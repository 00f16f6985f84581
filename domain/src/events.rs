//! Live updates. A change announces itself with Postgres `NOTIFY` inside the transaction that
//! makes it, so listeners hear of it exactly when it commits (and never of a rolled-back one).
//! The api LISTENs and feeds GraphQL subscriptions (`benefitUpdated`, `subscriptionUpdated`).
//! A transaction's events travel packed in JSON arrays of up to [`PAYLOAD_LIMIT`] bytes (a
//! batch of renewals announces ~1,000 changes in a few notifications). Each api process holds
//! one LISTEN connection and fans out on a broadcast channel; a lagging subscriber skips ahead
//! and the portal refetches.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Array, Text};
use diesel::QueryResult;

use crate::db::models::Entitlement;
use crate::db::prelude::*;
use crate::db::writes::{with_writes, Write};
use crate::db::PgConn;
use crate::error::AppResult;
use crate::permissions::{Action, Principal};

pub const CHANNEL: &str = "pbg_events";

/// Whose events a caller may follow: its own partner's (operators name one).
pub fn audience(principal: &Principal, requested: Option<Uuid>) -> AppResult<Uuid> {
    principal.scope_for(Action::ViewPartner, requested)
}

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

/// Like [`notify`] for several events in one statement. Events travel packed as JSON arrays
/// of up to [`PAYLOAD_LIMIT`] bytes: a batch of renewals announces a thousand changes in a
/// few notifications (each commit that notifies takes Postgres' notification-queue lock).
pub async fn notify_many(conn: &mut PgConn, events: &[Event]) -> AppResult<()> {
    notify_many_with(conn, events, Vec::new()).await
}

/// Like [`notify_many`], with `writes` made by the same statement ([`crate::db::writes`]).
pub(crate) async fn notify_many_with(
    mut conn: &PgConn,
    events: &[Event],
    writes: Vec<Write<'_>>,
) -> AppResult<()> {
    if events.is_empty() && writes.is_empty() {
        return Ok(());
    }
    let payloads = if events.is_empty() {
        Vec::new()
    } else {
        pack(events).map_err(crate::AppError::internal)?
    };
    with_writes(writes, NotifyAll(&payloads))
        .reuse()
        .execute(&mut conn)
        .await?;
    Ok(())
}

/// `SELECT pg_notify(CHANNEL, p) FROM unnest(<payloads>) AS p`, its binds numbered after
/// those of the writes before it.
struct NotifyAll<'a>(&'a [String]);

impl QueryFragment<Pg> for NotifyAll<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("SELECT pg_notify(");
        out.push_bind_param::<Text, _>(&CHANNEL)?;
        out.push_sql(", p) FROM unnest(");
        out.push_bind_param::<Array<Text>, _>(self.0)?;
        out.push_sql("::text[]) AS p");
        Ok(())
    }
}

impl QueryId for NotifyAll<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for NotifyAll<'_> {
    type SqlType = diesel::sql_types::Untyped;
}

/// Most bytes in one notification payload (Postgres refuses 8000 and more).
pub const PAYLOAD_LIMIT: usize = 7000;

/// Packs events into JSON arrays of at most [`PAYLOAD_LIMIT`] bytes each, in order.
pub fn pack(events: &[Event]) -> serde_json::Result<Vec<String>> {
    let mut payloads = Vec::new();
    let mut current = String::from("[");
    for event in events {
        let json = serde_json::to_string(event)?;
        if current.len() > 1 && current.len() + json.len() + 2 > PAYLOAD_LIMIT {
            current.push(']');
            payloads.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&json);
    }
    current.push(']');
    payloads.push(current);
    Ok(payloads)
}

/// The events of one notification payload: an array (see [`pack`]) or, from a process of an
/// earlier version, a single event.
pub fn unpack(payload: &str) -> serde_json::Result<Vec<Event>> {
    if payload.trim_start().starts_with('[') {
        serde_json::from_str(payload)
    } else {
        serde_json::from_str(payload).map(|e| vec![e])
    }
}

pub async fn notify(conn: &mut PgConn, event: &Event) -> AppResult<()> {
    notify_many(conn, std::slice::from_ref(event)).await
}

/// Announces a changed benefit (`benefitUpdated`).
pub async fn benefit_changed(conn: &mut PgConn, e: &Entitlement) -> AppResult<()> {
    notify(
        conn,
        &Event::Benefit {
            partner_id: e.partner_id,
            id: e.id,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thousand_events_pack_into_few_payloads_under_the_limit_and_unpack_in_order() {
        let events: Vec<Event> = (0..1000)
            .map(|i| {
                let (partner_id, id) = (Uuid::now_v7(), Uuid::now_v7());
                if i % 10 == 0 {
                    Event::Subscription { partner_id, id }
                } else {
                    Event::Benefit { partner_id, id }
                }
            })
            .collect();
        let payloads = pack(&events).unwrap();
        assert!(payloads.len() < 40, "{} payloads", payloads.len());
        assert!(payloads.iter().all(|p| p.len() <= PAYLOAD_LIMIT));
        let back: Vec<Event> = payloads.iter().flat_map(|p| unpack(p).unwrap()).collect();
        assert_eq!(back, events);
        let one = &events[..1];
        assert_eq!(pack(one).unwrap().len(), 1);
        // A single event, as processes of the previous version sent it.
        let single = serde_json::to_string(&events[0]).unwrap();
        assert_eq!(unpack(&single).unwrap(), one);
    }
}
