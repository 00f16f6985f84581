//! Due work as rows (table `scheduled_actions`): the bottom of the domain's scheduling. Every
//! charge, retry, reminder, lapse, order expiry, settlement, refund, activation and credit
//! month is a row with its due time on the partner's clock. Features record and cancel their
//! rows here; the sweep ([`dispatch_due`]) finds due rows and enqueues a `DueAction` job
//! through the outbox; the job (`crate::runner`) locks the row, calls the feature that owns
//! it and marks it DONE in the same transaction. Redis can lose any job: the row stays
//! PENDING and the sweep dispatches it again after `REDISPATCH_AFTER_SECS`. A job that runs
//! twice finds the row DONE and does nothing.
//!
//! Rows are unique per (kind, subject, term, tag), so "once per (subscription, term, reminder
//! kind)" is a constraint, not a hope. The table has fillfactor 50 (migration 7): the sweep's
//! `dispatched_at` stamp stays on its page (docs/BENCHMARKS.md item 28).

use chrono::{DateTime, Utc};

use diesel::sql_types::{BigInt, Bool, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};

use crate::config::Config;
use crate::db::models::{NewScheduledAction, ScheduledAction};
use crate::db::prelude::*;
use crate::db::schema::scheduled_actions;
use crate::db::PgConn;
use crate::enums::{ActionKind, ActionStatus};
use crate::error::{AppError, AppResult};
use crate::jobs::{action_queue, DueAction};

/// Records due work; scheduling the same (kind, subject, term, tag) twice keeps the first.
pub async fn schedule(
    conn: &mut PgConn,
    partner_id: Uuid,
    kind: ActionKind,
    subject_id: Uuid,
    term: i32,
    tag: &str,
    due_at: DateTime<Utc>,
) -> AppResult<()> {
    schedule_many(
        conn,
        &[Due {
            partner_id,
            kind,
            subject_id,
            term,
            tag: tag.to_owned(),
            due_at,
        }],
    )
    .await
}

/// One piece of due work to record (see [`schedule`]).
pub struct Due {
    pub partner_id: Uuid,
    pub kind: ActionKind,
    pub subject_id: Uuid,
    pub term: i32,
    pub tag: String,
    pub due_at: DateTime<Utc>,
}

/// Like [`schedule`] for several rows in one INSERT (a renewal records a dozen).
pub async fn schedule_many(mut conn: &PgConn, due: &[Due]) -> AppResult<()> {
    let rows = rows_of(due);
    // Postgres takes at most 65,535 parameters per statement (8 per row).
    for chunk in rows.chunks(4096) {
        insert_rows(chunk).execute(&mut conn).await?;
    }
    Ok(())
}

/// The rows [`schedule_many`] inserts.
pub(crate) fn rows_of(due: &[Due]) -> Vec<NewScheduledAction> {
    due.iter()
        .map(|d| NewScheduledAction {
            id: Uuid::now_v7(),
            partner_id: d.partner_id,
            kind: d.kind,
            subject_id: d.subject_id,
            term: d.term,
            tag: d.tag.clone(),
            due_at: d.due_at,
            status: ActionStatus::Pending,
        })
        .collect()
}

/// The INSERT of [`schedule_many`] (for a statement that makes other writes too,
/// [`crate::db::writes`]); at least one row.
pub(crate) fn insert_rows(
    rows: &[NewScheduledAction],
) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    diesel::insert_into(scheduled_actions::table)
        .values(rows)
        .on_conflict_do_nothing()
        .reuse_for_rows(rows.len())
}

/// Cancels the pending work of a subject (all kinds, or only `kinds`). Returns how many.
pub async fn cancel_pending(
    conn: &mut PgConn,
    subject_id: Uuid,
    kinds: Option<&[ActionKind]>,
) -> AppResult<usize> {
    cancel_pending_of(conn, &[subject_id], kinds, &[]).await
}

/// Like [`cancel_pending`] for several subjects in one statement, leaving out the actions
/// `except` (the ones the caller is running: it marks them DONE itself, and cancelling them
/// first would only write each row one more time).
pub async fn cancel_pending_of(
    conn: &mut PgConn,
    subject_ids: &[Uuid],
    kinds: Option<&[ActionKind]>,
    except: &[Uuid],
) -> AppResult<usize> {
    Ok(cancel_rows(subject_ids, kinds, except)
        .execute(conn)
        .await?)
}

/// The UPDATE of [`cancel_pending_of`] (for a statement that makes other writes too,
/// [`crate::db::writes`]).
pub(crate) fn cancel_rows<'a>(
    subject_ids: &'a [Uuid],
    kinds: Option<&[ActionKind]>,
    except: &'a [Uuid],
) -> impl QueryFragment<Pg> + QueryId + Send + 'a {
    let mut q = diesel::update(scheduled_actions::table)
        .filter(scheduled_actions::subject_id.eq_any(subject_ids))
        .filter(scheduled_actions::status.eq(ActionStatus::Pending))
        .into_boxed();
    if !except.is_empty() {
        q = q.filter(scheduled_actions::id.ne_all(except));
    }
    if let Some(kinds) = kinds {
        q = q.filter(scheduled_actions::kind.eq_any(kinds.to_vec()));
    }
    q.set((
        scheduled_actions::status.eq(ActionStatus::Cancelled),
        scheduled_actions::done_at.eq(Utc::now()),
        scheduled_actions::outcome.eq("cancelled"),
    ))
    .reuse()
}

pub async fn for_subject(conn: &mut PgConn, subject_id: Uuid) -> AppResult<Vec<ScheduledAction>> {
    Ok(scheduled_actions::table
        .filter(scheduled_actions::subject_id.eq(subject_id))
        .order((scheduled_actions::due_at, scheduled_actions::id))
        .select(ScheduledAction::as_select())
        .load(conn)
        .await?)
}

#[derive(diesel::QueryableByName)]
struct Dispatched {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    kind: ActionKind,
}

/// Enqueues (through the outbox) up to `limit` due actions that are not yet dispatched, or
/// were dispatched more than `redispatch_after` ago and are still not done; renewal charges go
/// in jobs of up to `RENEWAL_BATCH`. "Due" is read on each partner's clock. Safe to run from
/// several processes (SKIP LOCKED). Returns how many actions.
pub async fn dispatch_due(
    conn: &mut PgConn,
    config: &Config,
    partner_id: Option<Uuid>,
    limit: i64,
) -> AppResult<usize> {
    let clocks = config.enrollment.test_clocks;
    let redispatch = config.jobs.redispatch_after.as_secs() as i64;
    conn.transaction::<_, AppError, _>(async |conn| {
        // The extra bound on due_at (the largest clock offset) lets Postgres use the due index.
        // The claimed ids go to the UPDATE as an array, looked up by primary key: joined to
        // the table instead, the planner hashed all of it, 68,000 rows, for each sweep of
        // 1,000 in a storm (docs/BENCHMARKS.md, item 25).
        let rows: Vec<Dispatched> = diesel::sql_query(
            "WITH horizon AS (
                 SELECT now() + make_interval(secs => CASE WHEN $1 THEN
                     coalesce((SELECT max(offset_seconds) FROM test_clocks), 0) ELSE 0 END) AS t
             ),
             due AS (
                 SELECT a.id FROM scheduled_actions a
                 LEFT JOIN test_clocks c ON $1 AND c.partner_id = a.partner_id
                 WHERE a.status = 'PENDING'
                   AND a.due_at <= (SELECT t FROM horizon)
                   AND a.due_at <= now() + make_interval(secs => coalesce(c.offset_seconds, 0))
                   AND (a.dispatched_at IS NULL
                        OR a.dispatched_at < now() - make_interval(secs => $2))
                   AND ($3::uuid IS NULL OR a.partner_id = $3)
                 ORDER BY a.due_at
                 LIMIT $4
                 FOR UPDATE OF a SKIP LOCKED
             )
             UPDATE scheduled_actions s SET dispatched_at = now()
             WHERE s.id = ANY (ARRAY(SELECT id FROM due))
             RETURNING s.id, s.kind",
        )
        .bind::<Bool, _>(clocks)
        .bind::<BigInt, _>(redispatch)
        .bind::<Nullable<SqlUuid>, _>(partner_id)
        .bind::<BigInt, _>(limit)
        // Not `.reuse()`: planned on every call, so the plan knows whether test clocks are
        // on and whether a partner is given (`$3 IS NULL OR …`), which a generic plan of a
        // kept statement would not; a sweep runs once per batch, the parse is nothing here.
        .load(conn)
        .await?;
        // Renewal charges go in batches (charged and booked together); the rest one by one.
        let (renewals, single): (Vec<&Dispatched>, Vec<&Dispatched>) = rows
            .iter()
            .partition(|r| r.kind == ActionKind::RenewalCharge);
        let mut payloads: Vec<(ActionKind, DueAction)> = single
            .iter()
            .map(|r| (r.kind, DueAction::new(r.id)))
            .collect();
        for batch in renewals.chunks(config.jobs.renewal_batch.max(1)) {
            let more = batch[1..].iter().map(|r| r.id).collect();
            payloads.push((
                ActionKind::RenewalCharge,
                DueAction::batch(batch[0].id, more),
            ));
        }
        let jobs = payloads
            .iter()
            .map(|(kind, job)| {
                serde_json::to_value(job)
                    .map(|payload| (action_queue(*kind), payload))
                    .map_err(AppError::internal)
            })
            .collect::<AppResult<Vec<_>>>()?;
        crate::outbox::enqueue_many(conn, &jobs, Utc::now()).await?;
        Ok(rows.len())
    })
    .await
}

/// Due actions not done, per kind: the backlog operators watch.
pub async fn pending_counts(conn: &mut PgConn) -> AppResult<Vec<(ActionKind, i64)>> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        kind: ActionKind,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT kind, count(*) AS n FROM scheduled_actions WHERE status = 'PENDING' GROUP BY kind",
    )
    .reuse()
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.kind, r.n)).collect())
}

/// What a handler decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The work is done (or turned out to be unnecessary); the text says what happened.
    Done(String),
    /// Try again at the given partner time (a transient failure).
    Retry { at: DateTime<Utc>, error: String },
    /// Failed for good, with its consequences written (for example REFUND_FAILED): the row is
    /// done, and the job goes to the dead set so operators see it.
    GaveUp(String),
    /// The state changed between asking the gateway and the work's transaction, so the answer
    /// it needs was not asked for: run it again at once (not counted as an attempt).
    AskAgain,
}
