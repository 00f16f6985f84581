//! The queues' Postgres side: what is still waiting there, and what an operator's retry
//! changes there (an email comes back to life, a due action is queued again).

use crate::db::PgConn;
use crate::error::AppResult;
use crate::jobs::{DueAction, Job, SendEmail};

/// What Postgres knows about the background work: outbox rows not yet in Redis per queue, due
/// actions not done per kind (the backlog), emails PENDING and DEAD.
#[derive(Debug, Clone, Default)]
pub struct PgCounts {
    pub outbox_waiting: Vec<(String, i64)>,
    /// Per queue, the age in seconds of the oldest due outbox row not yet relayed.
    pub outbox_oldest_due: Vec<(String, f64)>,
    pub due_backlog: Vec<(String, i64)>,
    pub emails: Vec<(String, i64)>,
}

#[derive(diesel::QueryableByName)]
struct Waiting {
    #[diesel(sql_type = diesel::sql_types::Text)]
    k: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
    #[diesel(sql_type = diesel::sql_types::Double)]
    age: f64,
}

#[derive(diesel::QueryableByName)]
struct Pair {
    #[diesel(sql_type = diesel::sql_types::Text)]
    k: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

pub async fn pg_counts(conn: &mut PgConn) -> AppResult<PgCounts> {
    use diesel_async::RunQueryDsl;
    let pairs = |rows: Vec<Pair>| rows.into_iter().map(|p| (p.k, p.n)).collect::<Vec<_>>();
    let outbox: Vec<Waiting> = diesel::sql_query(
        "SELECT queue AS k, count(*) AS n,
                coalesce(extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now())), 0)::float8 AS age
         FROM outbox WHERE dispatched_at IS NULL GROUP BY queue",
    )
    .load(conn)
    .await?;
    let outbox_oldest_due = outbox.iter().map(|w| (w.k.clone(), w.age)).collect();
    let outbox = outbox
        .into_iter()
        .map(|w| Pair { k: w.k, n: w.n })
        .collect();
    // Due on the partner's clock (test clocks included), not yet done.
    let due: Vec<Pair> = diesel::sql_query(
        "SELECT a.kind AS k, count(*) AS n FROM scheduled_actions a
         LEFT JOIN test_clocks c ON c.partner_id = a.partner_id
         WHERE a.status = 'PENDING'
           AND a.due_at <= now() + make_interval(secs => coalesce(c.offset_seconds, 0))
         GROUP BY a.kind",
    )
    .load(conn)
    .await?;
    // PENDING and DEAD only, each through its partial index: SENT is every email ever sent.
    let emails: Vec<Pair> = diesel::sql_query(
        "SELECT 'PENDING' AS k, count(*) AS n FROM emails WHERE status = 'PENDING'
         UNION ALL
         SELECT 'DEAD' AS k, count(*) AS n FROM emails WHERE status = 'DEAD'",
    )
    .load(conn)
    .await?;
    Ok(PgCounts {
        outbox_waiting: pairs(outbox),
        outbox_oldest_due,
        due_backlog: pairs(due),
        emails: pairs(emails),
    })
}

/// The work still to be done for one partner (every partner when `None`), from Postgres alone:
/// emails PENDING (queued, sending, or waiting for a retry) and due actions PENDING whose time
/// has come on the partner's clock (queued, running, or not yet dispatched). Every job in
/// Redis stands for one of these rows (the outbox carries nothing else), and a job's row
/// changes in the same transaction as the work it leads to, so an empty answer means that
/// nothing is queued and nothing is due: the partner is idle. Each entry is a kind (`EMAIL`
/// or the action's kind) and how many.
pub async fn busy(
    conn: &mut PgConn,
    partner_id: Option<uuid::Uuid>,
) -> AppResult<Vec<(String, i64)>> {
    use diesel_async::RunQueryDsl;
    let rows: Vec<Pair> = diesel::sql_query(
        "SELECT 'EMAIL' AS k, count(*) AS n FROM emails
         WHERE status = 'PENDING' AND ($1::uuid IS NULL OR partner_id = $1)
         HAVING count(*) > 0
         UNION ALL
         SELECT a.kind AS k, count(*) AS n FROM scheduled_actions a
         LEFT JOIN test_clocks c ON c.partner_id = a.partner_id
         WHERE a.status = 'PENDING' AND ($1::uuid IS NULL OR a.partner_id = $1)
           AND a.due_at <= now() + make_interval(secs => coalesce(c.offset_seconds, 0))
         GROUP BY a.kind",
    )
    .bind::<diesel::sql_types::Nullable<diesel::sql_types::Uuid>, _>(partner_id)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|p| (p.k, p.n)).collect())
}

/// What an operator's retry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// The email is PENDING again with fresh attempts, queued through the outbox.
    EmailRevived,
    /// The due action is PENDING and was queued again.
    ActionRequeued,
    /// Nothing left to do (the work is already done); the job was removed.
    AlreadyDone,
    /// An unrecognised payload was put back on the queue as it was.
    Requeued,
}

/// The Postgres side of a retry of the job whose payload is `raw`: a dead email of it comes
/// back to life, a due action still PENDING is queued again through the outbox.
pub(super) async fn revive(conn: &mut PgConn, queue: &str, raw: &[u8]) -> AppResult<Retried> {
    if queue == SendEmail::QUEUE {
        let Ok(job) = serde_json::from_slice::<SendEmail>(raw) else {
            return Ok(Retried::Requeued);
        };
        // A batch's dead set entry revives each of its emails that is DEAD.
        let mut revived = false;
        for id in job.ids() {
            revived |= crate::email::revive(conn, id).await?;
        }
        return Ok(if revived {
            Retried::EmailRevived
        } else {
            Retried::AlreadyDone
        });
    }
    match serde_json::from_slice::<DueAction>(raw) {
        Ok(job) if job.v == crate::jobs::PAYLOAD_VERSION => {
            use crate::db::prelude::*;
            use crate::db::schema::scheduled_actions as sa;
            let n = diesel::update(
                sa::table
                    .filter(sa::id.eq_any(job.ids()))
                    .filter(sa::status.eq(crate::enums::ActionStatus::Pending)),
            )
            .set(sa::dispatched_at.eq(chrono::Utc::now()))
            .execute(conn)
            .await?;
            if n > 0 {
                crate::outbox::enqueue_to(conn, queue, &job, chrono::Utc::now()).await?;
                Ok(Retried::ActionRequeued)
            } else {
                Ok(Retried::AlreadyDone)
            }
        }
        _ => Ok(Retried::Requeued),
    }
}
