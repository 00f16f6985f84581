//! Due work (table `scheduled_actions`). Every charge, retry, reminder, lapse, order expiry,
//! settlement and refund is a row with its due time on the partner's clock. The sweep
//! ([`dispatch_due`]) finds due rows and enqueues a [`DueAction`] job through the outbox; the
//! job ([`run`]) locks the row, does the work and marks it DONE in one transaction. Redis can
//! lose any job: the row stays PENDING and the sweep dispatches it again after
//! `REDISPATCH_AFTER_SECS`. A job that runs twice finds the row DONE and does nothing.

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Uuid as SqlUuid};
use uuid::Uuid;

use crate::config::Config;
use crate::db::models::{NewScheduledAction, ScheduledAction};
use crate::db::prelude::*;
use crate::db::schema::scheduled_actions;
use crate::db::PgConn;
use crate::enums::{ActionKind, ActionStatus};
use crate::error::{AppError, AppResult};
use crate::jobs::{action_queue, DueAction};
use crate::services::Services;

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
pub async fn schedule_many(conn: &mut PgConn, due: &[Due]) -> AppResult<()> {
    if due.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewScheduledAction> = due
        .iter()
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
        .collect();
    diesel::insert_into(scheduled_actions::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)
        .await?;
    Ok(())
}

/// Cancels the pending work of a subject (all kinds, or only `kinds`). Returns how many.
pub async fn cancel_pending(
    conn: &mut PgConn,
    subject_id: Uuid,
    kinds: Option<&[ActionKind]>,
) -> AppResult<usize> {
    let mut q = diesel::update(scheduled_actions::table)
        .filter(scheduled_actions::subject_id.eq(subject_id))
        .filter(scheduled_actions::status.eq(ActionStatus::Pending))
        .into_boxed();
    if let Some(kinds) = kinds {
        q = q.filter(scheduled_actions::kind.eq_any(kinds.to_vec()));
    }
    Ok(q.set((
        scheduled_actions::status.eq(ActionStatus::Cancelled),
        scheduled_actions::done_at.eq(Utc::now()),
        scheduled_actions::outcome.eq("cancelled"),
    ))
    .execute(conn)
    .await?)
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
/// were dispatched more than `redispatch_after` ago and are still not done. "Due" is read on
/// each partner's clock. Safe to run from several processes (SKIP LOCKED). Returns how many.
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
             FROM due WHERE s.id = due.id
             RETURNING s.id, s.kind",
        )
        .bind::<Bool, _>(clocks)
        .bind::<BigInt, _>(redispatch)
        .bind::<Nullable<SqlUuid>, _>(partner_id)
        .bind::<BigInt, _>(limit)
        .load(conn)
        .await?;
        let jobs = rows
            .iter()
            .map(|r| {
                serde_json::to_value(DueAction::new(r.id))
                    .map(|payload| (action_queue(r.kind), payload))
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Done(String),
    Rescheduled(DateTime<Utc>),
    /// Already done or cancelled: a duplicate or late job.
    AlreadyFinal,
    /// Dispatched early (a clock was read differently); handed back to the sweep.
    NotDue,
}

/// Runs one due action, idempotently.
pub async fn run(conn: &mut PgConn, svc: &Services, action_id: Uuid) -> AppResult<RunResult> {
    conn.transaction::<_, AppError, _>(async |conn| {
        let Some(action) = scheduled_actions::table
            .find(action_id)
            .for_update()
            .select(ScheduledAction::as_select())
            .first(conn)
            .await
            .optional()?
        else {
            return Err(AppError::NotFound("scheduled action"));
        };
        if action.status != ActionStatus::Pending {
            return Ok(RunResult::AlreadyFinal);
        }
        let now = crate::clock::now_for(conn, &svc.config, action.partner_id).await?;
        if action.due_at > now {
            diesel::update(scheduled_actions::table.find(action.id))
                .set(scheduled_actions::dispatched_at.eq(None::<DateTime<Utc>>))
                .execute(conn)
                .await?;
            return Ok(RunResult::NotDue);
        }
        let outcome = match action.kind {
            ActionKind::RenewalCharge => {
                super::subscriptions::charge_renewal(conn, svc, &action, now).await?
            }
            ActionKind::Reminder => {
                super::subscriptions::send_reminder(conn, svc, &action, now).await?
            }
            ActionKind::EnterRenewalWindow => {
                super::subscriptions::enter_window(conn, &action).await?
            }
            ActionKind::Lapse => super::subscriptions::lapse(conn, svc, &action, now).await?,
            ActionKind::OrderExpiry => {
                crate::billing::orders::expire(conn, svc, &action, now).await?
            }
            ActionKind::SettleOrder => {
                crate::billing::orders::settle(conn, svc, &action, now).await?
            }
            ActionKind::Refund => crate::billing::orders::refund(conn, svc, &action, now).await?,
            ActionKind::CompleteActivation => {
                crate::benefits::usage::complete_activation(conn, svc, &action, now).await?
            }
            ActionKind::GrantAzureCredit => {
                crate::benefits::people::grant_azure_credit(conn, &action, now).await?
            }
        };
        match outcome {
            Outcome::Done(what) => {
                diesel::update(scheduled_actions::table.find(action.id))
                    .set((
                        scheduled_actions::status.eq(ActionStatus::Done),
                        scheduled_actions::done_at.eq(Utc::now()),
                        scheduled_actions::attempts.eq(action.attempts + 1),
                        scheduled_actions::outcome.eq(&what),
                    ))
                    .execute(conn)
                    .await?;
                Ok(RunResult::Done(what))
            }
            Outcome::Retry { at, error } => {
                diesel::update(scheduled_actions::table.find(action.id))
                    .set((
                        scheduled_actions::due_at.eq(at),
                        scheduled_actions::dispatched_at.eq(None::<DateTime<Utc>>),
                        scheduled_actions::attempts.eq(action.attempts + 1),
                        scheduled_actions::last_error.eq(&error),
                    ))
                    .execute(conn)
                    .await?;
                Ok(RunResult::Rescheduled(at))
            }
        }
    })
    .await
}
