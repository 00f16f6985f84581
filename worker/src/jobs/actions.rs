//! Runs one row of due work (a renewal charge, reminder, lapse, order expiry, settlement or
//! refund). The domain decides everything and is idempotent (gateway_domain::lifecycle::
//! actions::run): a duplicate or late job finds the row done and returns.

use std::sync::Arc;

use apalis::prelude::*;
use gateway_domain::jobs::{DueAction, PAYLOAD_VERSION};
use gateway_domain::lifecycle::actions::{self, RunResult};
use gateway_domain::AppError;

use crate::WorkerCtx;

/// The handler of the action queue `queue`.
pub async fn run(
    job: DueAction,
    ctx: Data<Arc<WorkerCtx>>,
    queue: &'static str,
) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    let result = handle(job, ctx).await;
    crate::metrics::observe(queue, outcome(&result), started);
    result
}

/// `ok`, `dead` (aborted: goes to the dead set) or `error` (apalis retries).
pub fn outcome(result: &Result<(), BoxDynError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) if e.downcast_ref::<AbortError>().is_some() => "dead",
        Err(_) => "error",
    }
}

async fn handle(job: DueAction, ctx: Data<Arc<WorkerCtx>>) -> Result<(), BoxDynError> {
    if job.v != PAYLOAD_VERSION {
        return Err(AbortError::new(format!("unknown DueAction payload version {}", job.v)).into());
    }
    let mut conn = ctx
        .services
        .pool
        .get()
        .await
        .map_err(|e| format!("database: {e}"))?;
    match actions::run(&mut conn, &ctx.services, job.action_id).await {
        Ok(RunResult::Done(what)) => {
            tracing::info!(action_id = %job.action_id, outcome = %what, "due action done");
            Ok(())
        }
        Ok(RunResult::Rescheduled(at)) => {
            tracing::warn!(action_id = %job.action_id, retry_at = %at, "due action failed transiently; rescheduled");
            Ok(())
        }
        Ok(RunResult::AlreadyFinal | RunResult::NotDue) => Ok(()),
        Err(AppError::NotFound(what)) => Err(AbortError::new(format!(
            "due action {}: {what} does not exist",
            job.action_id
        ))
        .into()),
        // The row stays PENDING: apalis retries soon, the sweep re-dispatches in any case.
        Err(e) => {
            tracing::error!(action_id = %job.action_id, error = ?e, "due action failed; will be retried");
            Err(format!("{e:?}").into())
        }
    }
}
