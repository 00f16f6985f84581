//! Due work as Postgres holds it, what no queue dashboard can show: per kind of scheduled
//! action (renewal charges, reminders, renewal windows, lapses, order expiries, settlements,
//! refunds), how much is due now and since when, and what falls due in the next 24 hours and
//! 7 days, each on its partner's clock (test clocks included), so operators see a renewal
//! storm coming.

use async_graphql::SimpleObject;
use chrono::{DateTime, Utc};

use crate::db::PgConn;
use crate::error::AppResult;
use crate::permissions::{Action, Principal};

/// One kind of due work (GraphQL `DueWork`).
#[derive(Debug, Clone, SimpleObject, diesel::QueryableByName)]
pub struct DueWork {
    /// The kind of scheduled action (RENEWAL_CHARGE, REMINDER, ENTER_RENEWAL_WINDOW, LAPSE,
    /// ORDER_EXPIRY, SETTLE_ORDER, REFUND).
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub kind: String,
    /// Due now (on each partner's clock) and not done.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub due_now: i64,
    /// The earliest due time among those due now (partner's clock); null when none is due.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    pub oldest_due_at: Option<DateTime<Utc>>,
    /// Falling due within the next 24 hours.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub next_24_hours: i64,
    /// Falling due within the next 7 days.
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub next_7_days: i64,
}

/// Every kind with pending work, due now or within a week (operators).
pub async fn due_work(conn: &mut PgConn, principal: &Principal) -> AppResult<Vec<DueWork>> {
    use diesel_async::RunQueryDsl;
    principal.require(Action::Operate)?;
    Ok(diesel::sql_query(
        "WITH a AS (
           SELECT a.kind, a.due_at,
                  now() + make_interval(secs => coalesce(c.offset_seconds, 0)) AS now_p
           FROM scheduled_actions a
           LEFT JOIN test_clocks c ON c.partner_id = a.partner_id
           WHERE a.status = 'PENDING')
         SELECT kind,
                count(*) FILTER (WHERE due_at <= now_p) AS due_now,
                min(due_at) FILTER (WHERE due_at <= now_p) AS oldest_due_at,
                count(*) FILTER (WHERE due_at > now_p AND due_at <= now_p + interval '24 hours') AS next_24_hours,
                count(*) FILTER (WHERE due_at > now_p AND due_at <= now_p + interval '7 days') AS next_7_days
         FROM a
         WHERE due_at <= now_p + interval '7 days'
         GROUP BY kind ORDER BY kind",
    )
    .load(conn)
    .await?)
}
