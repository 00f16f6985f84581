//! Runs one row of due work (a renewal charge, reminder, lapse, order expiry, settlement or
//! refund, activation, credit month). The domain decides everything and is idempotent
//! (`gateway_domain::runner::run`): a duplicate or late job finds the row done and returns.

use std::sync::Arc;

use apalis::prelude::*;
use gateway_domain::jobs::{DueAction, PAYLOAD_VERSION};
use gateway_domain::runner::{self as actions, RunResult};
use gateway_domain::AppError;
use uuid::Uuid;

use crate::WorkerCtx;

/// The handler of the action queue `queue`.
pub async fn run(
    job: DueAction,
    ctx: Data<Arc<WorkerCtx>>,
    queue: &'static str,
    id: TaskId,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    // Every log line of this job carries its queue and action ids.
    let span =
        tracing::info_span!("job", queue, action_id = %job.action_id, batch = job.more.len() + 1);
    // Part of the trace of the request that enqueued it, if any.
    gateway_domain::telemetry::continue_trace(&span, job.traceparent.as_deref());
    let result = tracing::Instrument::instrument(handle(job, ctx, queue), span).await;
    crate::metrics::observe(queue, outcome(&result), started);
    record_failure(queue, &id, &attempt, &result, started);
    result
}

/// A failed run goes into the job's attempts (`crate::activity::failed`).
pub fn record_failure(
    queue: &'static str,
    id: &TaskId,
    attempt: &Attempt,
    result: &Result<(), BoxDynError>,
    started: std::time::Instant,
) {
    if let Err(e) = result {
        let outcome = if outcome(result) == "dead" {
            "dead"
        } else {
            "retry"
        };
        crate::activity::failed(
            queue,
            id,
            attempt.current(),
            outcome,
            &e.to_string(),
            started,
        );
    }
}

/// `ok`, `dead` (aborted: goes to the dead set) or `error` (apalis retries).
pub fn outcome(result: &Result<(), BoxDynError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) if e.downcast_ref::<AbortError>().is_some() => "dead",
        Err(_) => "error",
    }
}

async fn handle(
    job: DueAction,
    ctx: Data<Arc<WorkerCtx>>,
    queue: &'static str,
) -> Result<(), BoxDynError> {
    if job.v != PAYLOAD_VERSION {
        return Err(AbortError::new(format!("unknown DueAction payload version {}", job.v)).into());
    }
    if super::is_paused(&ctx.paused, queue) {
        if let Some(handed_back) = super::hand_back(&ctx.pool, &ctx.paused, queue, &job).await {
            return handed_back;
        }
    }
    let mut conn = ctx
        .services
        .pool
        .get()
        .await
        .map_err(|e| format!("database: {e}"))?;
    if job.more.is_empty() {
        return finish(
            job.action_id,
            actions::run(&mut conn, &ctx.services, job.action_id).await,
        );
    }
    // A batch (renewal charges due together): one transaction for all of them. If it fails,
    // each runs on its own, so one bad row cannot hold the others back.
    let ids = job.ids();
    match actions::run_many(&mut conn, &ctx.services, &ids).await {
        Ok(results) => {
            for (id, result) in results {
                finish(id, Ok(result))?;
            }
            Ok(())
        }
        Err(e) => {
            tracing::warn!(actions = ids.len(), error = ?e, "due action batch failed; running its actions one by one");
            let mut failed = None;
            for id in ids {
                let result = actions::run(&mut conn, &ctx.services, id).await;
                if let Err(err) = finish(id, result) {
                    // Rows left PENDING are retried with the batch (done ones are skipped).
                    if err.downcast_ref::<AbortError>().is_none() {
                        failed = Some(err);
                    }
                }
            }
            failed.map_or(Ok(()), Err)
        }
    }
}

/// Logs what became of one action; the error apalis sees when it failed.
fn finish(action_id: Uuid, result: Result<RunResult, AppError>) -> Result<(), BoxDynError> {
    match result {
        Ok(RunResult::Done(what)) => {
            tracing::info!(%action_id, outcome = %what, "due action done");
            Ok(())
        }
        Ok(RunResult::Rescheduled(at)) => {
            tracing::warn!(%action_id, retry_at = %at, "due action failed transiently; rescheduled");
            Ok(())
        }
        Ok(RunResult::AlreadyFinal | RunResult::NotDue) => Ok(()),
        // Its consequences are committed; the dead set shows operators it needs a person.
        Ok(RunResult::GaveUp(what)) => {
            tracing::error!(%action_id, outcome = %what, "due action gave up");
            Err(AbortError::new(format!("due action {action_id}: {what}")).into())
        }
        Err(AppError::NotFound(what)) => {
            Err(AbortError::new(format!("due action {action_id}: {what} does not exist")).into())
        }
        // The row stays PENDING: apalis retries soon, the sweep re-dispatches in any case.
        Err(e) => {
            tracing::error!(%action_id, error = ?e, "due action failed; will be retried");
            Err(format!("{e:?}").into())
        }
    }
}
