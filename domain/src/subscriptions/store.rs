//! Subscription rows: locking, loading what a caller may see, listing, and announcing changes
//! (`subscriptionUpdated`). No behaviour of the lifecycle lives here; the features above
//! (start, renewal, window, cancellation, …) use these.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::subscriptions;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::events::{self, Event};
use crate::permissions::{Action, Principal};

pub(crate) async fn lock(conn: &mut PgConn, id: Uuid) -> AppResult<Subscription> {
    subscriptions::table
        .find(id)
        .for_update()
        .select(Subscription::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("subscription"))
}

/// A subscription the caller may see (its partner's; operators any), optionally locked.
pub async fn load_visible(
    conn: &mut PgConn,
    principal: &Principal,
    id: Uuid,
    for_update: bool,
) -> AppResult<Subscription> {
    principal.require(Action::ViewPartner)?;
    let mut q = subscriptions::table
        .find(id)
        .select(Subscription::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(subscriptions::partner_id.eq(principal.scope(None)?));
    }
    let sub = q
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("subscription"))?;
    if for_update {
        lock(conn, sub.id).await
    } else {
        Ok(sub)
    }
}

/// The subscriptions of `ids` the caller may see (its partner's; operators any), in one
/// statement: the batch behind `Order.subscription`.
pub async fn visible_by_ids(
    mut conn: &PgConn,
    principal: &Principal,
    ids: &[Uuid],
) -> AppResult<Vec<Subscription>> {
    principal.require(Action::ViewPartner)?;
    let mut q = subscriptions::table
        .filter(subscriptions::id.eq_any(ids))
        .select(Subscription::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(subscriptions::partner_id.eq(principal.scope(None)?));
    }
    Ok(q.load(&mut conn).await?)
}

/// Newest first; `statuses` narrows the list.
pub async fn list(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    statuses: Option<Vec<SubscriptionStatus>>,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<Subscription>> {
    principal.require(Action::ViewPartner)?;
    let mut q = subscriptions_filtered(principal.scope(partner_id)?, statuses)
        .order(subscriptions::id.desc())
        .limit(limit)
        .select(Subscription::as_select());
    if let Some(b) = before {
        q = q.filter(subscriptions::id.lt(b));
    }
    Ok(q.load(&mut conn).await?)
}

/// How many subscriptions [`list`] lists over every page (`totalCount`).
pub async fn count(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    statuses: Option<Vec<SubscriptionStatus>>,
) -> AppResult<i64> {
    principal.require(Action::ViewPartner)?;
    Ok(
        subscriptions_filtered(principal.scope(partner_id)?, statuses)
            .count()
            .get_result(&mut conn)
            .await?,
    )
}

fn subscriptions_filtered(
    partner_id: Uuid,
    statuses: Option<Vec<SubscriptionStatus>>,
) -> subscriptions::BoxedQuery<'static, diesel::pg::Pg> {
    let mut q = subscriptions::table
        .filter(subscriptions::partner_id.eq(partner_id))
        .into_boxed();
    if let Some(s) = statuses {
        q = q.filter(subscriptions::status.eq_any(s));
    }
    q
}

/// The subscription's anniversary date (set once it is active).
pub(crate) fn anniversary(sub: &Subscription) -> AppResult<DateTime<Utc>> {
    sub.anniversary_at
        .ok_or_else(|| AppError::Internal(format!("subscription {} has no anniversary", sub.id)))
}

/// Announces a changed subscription (`subscriptionUpdated`).
pub(crate) async fn changed(conn: &mut PgConn, sub: &Subscription) -> AppResult<()> {
    changed_many(conn, std::slice::from_ref(sub)).await
}

/// Announces changed subscriptions (`subscriptionUpdated`) in one statement.
pub(crate) async fn changed_many(conn: &mut PgConn, subs: &[Subscription]) -> AppResult<()> {
    let events: Vec<_> = subs.iter().map(event_of).collect();
    events::notify_many(conn, &events).await
}

pub(crate) fn event_of(sub: &Subscription) -> Event {
    Event::Subscription {
        partner_id: sub.partner_id,
        id: sub.id,
    }
}

/// Locks subscriptions (in id order, so concurrent batches cannot deadlock).
pub(crate) async fn lock_many(
    conn: &mut PgConn,
    ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Subscription>> {
    let rows: Vec<Subscription> = subscriptions::table
        .filter(subscriptions::id.eq_any(ids))
        .order(subscriptions::id)
        .for_update()
        .select(Subscription::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|s| (s.id, s)).collect())
}

/// Reads subscriptions without locking them (what to ask the gateway, before a transaction).
pub(crate) async fn read_many(
    conn: &mut PgConn,
    ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Subscription>> {
    let rows: Vec<Subscription> = subscriptions::table
        .filter(subscriptions::id.eq_any(ids))
        .select(Subscription::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|s| (s.id, s)).collect())
}
