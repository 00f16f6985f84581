//! The top of the domain: runs due actions (rows of [`crate::due`]) by calling the feature
//! that owns each kind. The worker's action jobs call [`run`] and [`run_many`]; nothing in
//! the domain calls up into this module.
//!
//! Two steps, the way a purchase runs around its charge. First the gateway is asked what the
//! due actions need from it (renewal charges, refunds, charge look-ups), with no transaction
//! open and no row locked: each feature's `ask` reads its rows plainly and calls the gateway
//! with the action's idempotency key. Then each action is locked, done with the gateway's
//! answer and marked DONE (or rescheduled) in one transaction, so a job that runs twice finds
//! the row DONE and does nothing, and a slow gateway holds no lock anyone waits on. The
//! committed PENDING action is the marker: if the process dies after the call, the job runs
//! again and the same key gets the same answer. If the state changed between the two steps
//! (the answer needed was not asked for), the action runs again at once.
//!
//! Renewal charges due together run as one batch (`lifecycle::auto_renewal`: one gateway
//! batch, the paid ones booked set-based); if the batch's transaction fails, the worker runs
//! its actions one by one, so a bad row cannot hold the rest back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Text, Uuid as SqlUuid};
use uuid::Uuid;

use crate::db::models::ScheduledAction;
use crate::db::prelude::*;
use crate::db::schema::scheduled_actions;
use crate::db::PgConn;
use crate::due::Outcome;
use crate::enums::{ActionKind, ActionStatus};
use crate::error::{AppError, AppResult};
use crate::lifecycle::refunds;
use crate::lifecycle::renewal::Uninvoiced;
use crate::lifecycle::{auto_renewal, reminders, renewal, window};
use crate::providers::payments::Answers;
use crate::purchases::{bank_transfer, settlement};
use crate::services::Services;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunResult {
    Done(String),
    Rescheduled(DateTime<Utc>),
    /// Already done or cancelled: a duplicate or late job.
    AlreadyFinal,
    /// Dispatched early (a clock was read differently); handed back to the sweep.
    NotDue,
    /// Failed for good with its consequences recorded; the job should go to the dead set.
    GaveUp(String),
}

/// Runs one due action, idempotently.
pub async fn run(conn: &mut PgConn, svc: &Services, action_id: Uuid) -> AppResult<RunResult> {
    run_many(conn, svc, &[action_id])
        .await?
        .pop()
        .map(|(_, result)| result)
        .ok_or(AppError::NotFound("scheduled action"))
}

/// Runs due actions in one transaction, idempotently. Renewal charges among them are charged
/// and booked as one batch; other kinds run one after another. Ids that do not exist are left
/// out of the answer. An error rolls back the whole batch: the caller can run the ids one by
/// one to isolate it.
pub async fn run_many(
    conn: &mut PgConn,
    svc: &Services,
    action_ids: &[Uuid],
) -> AppResult<Vec<(Uuid, RunResult)>> {
    let mut ids = action_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    // One plain read first: a duplicate or late job (every action final already) ends here,
    // with that one statement and no transaction.
    let rows = read(conn, &ids).await?;
    if rows.iter().all(|a| a.status != ActionStatus::Pending) {
        return Ok(rows
            .iter()
            .map(|a| (a.id, RunResult::AlreadyFinal))
            .collect());
    }
    let answers = ask(conn, svc, &rows).await?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let actions = lock(conn, &ids).await?;
        let offsets = offsets(conn, svc, &actions).await?;
        let mut results = Vec::with_capacity(actions.len());
        let mut not_due = Vec::new();
        let mut renewals = Vec::new();
        let mut outcomes: Vec<(&ScheduledAction, Outcome)> = Vec::with_capacity(actions.len());
        for action in &actions {
            // A renewal charge that went through is booked even if its action was cancelled
            // while the gateway worked (auto-renew turned off, the subscription ended).
            let charged = action.kind == ActionKind::RenewalCharge
                && action.status == ActionStatus::Cancelled
                && matches!(
                    answers
                        .charges
                        .get(&renewal::renewal_charge_key(action.subject_id, action.term)),
                    Some(Ok(_))
                );
            if action.status != ActionStatus::Pending && !charged {
                results.push((action.id, RunResult::AlreadyFinal));
                continue;
            }
            let offset = offsets.get(&action.partner_id).copied().unwrap_or_default();
            let now = crate::clock::now_at(offset);
            if action.due_at > now {
                not_due.push(action.id);
                results.push((action.id, RunResult::NotDue));
            } else if action.kind == ActionKind::RenewalCharge {
                renewals.push((action, now));
            } else {
                outcomes.push((action, handle(conn, svc, action, now, &answers).await?));
            }
        }
        hand_back(conn, &not_due).await?;
        let mut uninvoiced = Uninvoiced::default();
        if !renewals.is_empty() {
            let (done, paid) =
                auto_renewal::charge_renewals(conn, svc, &renewals, &answers).await?;
            outcomes.extend(renewals.iter().map(|(a, _)| *a).zip(done));
            uninvoiced.extend(paid);
        }
        results.extend(record(conn, outcomes).await?);
        // Last: numbering invoices locks the year's counter until this transaction commits.
        renewal::invoice_renewals(conn, svc, uninvoiced).await?;
        Ok(results)
    })
    .await
}

/// The actions, read without locks, outside any transaction, in id order.
async fn read(conn: &mut PgConn, ids: &[Uuid]) -> AppResult<Vec<ScheduledAction>> {
    Ok(scheduled_actions::table
        .filter(scheduled_actions::id.eq_any(ids))
        .order(scheduled_actions::id)
        .select(ScheduledAction::as_select())
        .load(conn)
        .await?)
}

/// The first step: asks the gateway what the pending ones among the `rows` just read need
/// from it, outside any transaction.
async fn ask(conn: &mut PgConn, svc: &Services, rows: &[ScheduledAction]) -> AppResult<Answers> {
    let actions: Vec<ScheduledAction> = rows
        .iter()
        .filter(|a| a.status == ActionStatus::Pending)
        .filter(|a| {
            matches!(
                a.kind,
                ActionKind::RenewalCharge
                    | ActionKind::Lapse
                    | ActionKind::SettleOrder
                    | ActionKind::Refund
            )
        })
        .cloned()
        .collect();
    let mut answers = Answers::default();
    if actions.is_empty() {
        return Ok(answers);
    }
    let offsets = offsets(conn, svc, &actions).await?;
    let mut renewals = Vec::new();
    for action in &actions {
        let offset = offsets.get(&action.partner_id).copied().unwrap_or_default();
        let now = crate::clock::now_at(offset);
        if action.due_at > now {
            continue;
        }
        match action.kind {
            ActionKind::RenewalCharge => renewals.push((action, now)),
            ActionKind::Lapse => window::ask(conn, svc, action, &mut answers).await?,
            ActionKind::SettleOrder => settlement::ask(conn, svc, action, &mut answers).await?,
            ActionKind::Refund => refunds::ask(conn, svc, action, &mut answers).await?,
            _ => {}
        }
    }
    if !renewals.is_empty() {
        auto_renewal::ask(conn, svc, &renewals, &mut answers).await?;
    }
    Ok(answers)
}

/// The actions, locked in id order (so concurrent batches cannot deadlock on each other).
async fn lock(conn: &mut PgConn, ids: &[Uuid]) -> AppResult<Vec<ScheduledAction>> {
    Ok(scheduled_actions::table
        .filter(scheduled_actions::id.eq_any(ids))
        .order(scheduled_actions::id)
        .for_update()
        .select(ScheduledAction::as_select())
        .load(conn)
        .await?)
}

/// The clock offsets of the actions' partners.
async fn offsets(
    conn: &mut PgConn,
    svc: &Services,
    actions: &[ScheduledAction],
) -> AppResult<HashMap<Uuid, chrono::Duration>> {
    let mut partners: Vec<Uuid> = actions.iter().map(|a| a.partner_id).collect();
    partners.sort_unstable();
    partners.dedup();
    Ok(crate::clock::offsets(conn, &svc.config, &partners)
        .await?
        .into_iter()
        .collect())
}

/// Actions dispatched before they were due go back to the sweep.
async fn hand_back(conn: &mut PgConn, not_due: &[Uuid]) -> AppResult<()> {
    if !not_due.is_empty() {
        diesel::update(scheduled_actions::table.filter(scheduled_actions::id.eq_any(not_due)))
            .set(scheduled_actions::dispatched_at.eq(None::<DateTime<Utc>>))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Marks the finished actions DONE (one statement) and reschedules the others.
async fn record(
    conn: &mut PgConn,
    outcomes: Vec<(&ScheduledAction, Outcome)>,
) -> AppResult<Vec<(Uuid, RunResult)>> {
    let mut results = Vec::with_capacity(outcomes.len());
    let mut finished_ids = Vec::new();
    let mut finished_what = Vec::new();
    for (action, outcome) in outcomes {
        match outcome {
            Outcome::Done(what) => {
                finished_ids.push(action.id);
                finished_what.push(what.clone());
                results.push((action.id, RunResult::Done(what)));
            }
            Outcome::GaveUp(what) => {
                finished_ids.push(action.id);
                finished_what.push(what.clone());
                results.push((action.id, RunResult::GaveUp(what)));
            }
            Outcome::AskAgain => {
                diesel::update(scheduled_actions::table.find(action.id))
                    .set((
                        scheduled_actions::dispatched_at.eq(None::<DateTime<Utc>>),
                        scheduled_actions::last_error.eq(
                            "changed while the gateway was asked; running again with a new answer",
                        ),
                    ))
                    .execute(conn)
                    .await?;
                results.push((action.id, RunResult::Rescheduled(action.due_at)));
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
                results.push((action.id, RunResult::Rescheduled(at)));
            }
        }
    }
    if !finished_ids.is_empty() {
        diesel::sql_query(
            "UPDATE scheduled_actions a SET status = $3, done_at = $4,
                 attempts = a.attempts + 1, outcome = v.outcome
             FROM unnest($1::uuid[], $2::text[]) AS v(id, outcome)
             WHERE a.id = v.id",
        )
        .bind::<Array<SqlUuid>, _>(&finished_ids)
        .bind::<Array<Text>, _>(&finished_what)
        .bind::<Text, _>(ActionStatus::Done)
        .bind::<diesel::sql_types::Timestamptz, _>(Utc::now())
        .reuse()
        .execute(conn)
        .await?;
    }
    Ok(results)
}

/// Does one due action that is not a renewal charge ([`run_many`] batches those), by calling
/// the feature that owns its kind.
async fn handle(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
    answers: &Answers,
) -> AppResult<Outcome> {
    match action.kind {
        ActionKind::RenewalCharge => Err(AppError::Internal(
            "renewal charges run in batches (run_many), not one by one here".into(),
        )),
        ActionKind::Reminder => reminders::send_reminder(conn, svc, action).await,
        ActionKind::EnterRenewalWindow => window::enter_window(conn, action).await,
        ActionKind::Lapse => window::lapse(conn, svc, action, now, answers).await,
        ActionKind::OrderExpiry => bank_transfer::expire(conn, svc, action, now).await,
        ActionKind::SettleOrder => settlement::settle(conn, svc, action, now, answers).await,
        ActionKind::Refund => refunds::refund(conn, svc, action, now, answers).await,
        ActionKind::CompleteActivation => {
            crate::benefits::activation::complete_activation(conn, svc, action, now).await
        }
        ActionKind::GrantAzureCredit => {
            crate::benefits::azure::grant_azure_credit(conn, action, now).await
        }
        ActionKind::EndAtAnniversary => {
            crate::lifecycle::cancellation::end_on_anniversary(conn, action, now).await
        }
    }
}
