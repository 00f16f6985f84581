//! Delivers the emails of one job (one, or a batch the relay packed, see `EMAIL_BATCH`).
//! Postgres decides (gateway_domain::email::deliver_many): each email is claimed with a lease,
//! sent once and marked SENT on its own; a duplicate job does nothing for emails already sent
//! or held, a failure schedules that email's own retry through the outbox, and an
//! email whose last attempt failed is marked DEAD and puts its job in the queue's dead set for
//! operators (after the batch's other emails are recorded; `retryJob` revives the dead ones).

use std::sync::Arc;

use apalis::prelude::*;
use gateway_domain::email::Delivery;
use gateway_domain::jobs::{SendEmail, PAYLOAD_VERSION};

use crate::WorkerCtx;

pub async fn run(
    job: SendEmail,
    ctx: Data<Arc<WorkerCtx>>,
    id: TaskId,
    attempt: Attempt,
) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    let span = tracing::info_span!("job", queue = "email", email_id = %job.email_id, batch = job.ids().len());
    // Part of the trace of the request that enqueued it, if any.
    gateway_domain::telemetry::continue_trace(&span, job.traceparent.as_deref());
    let result = tracing::Instrument::instrument(handle(job, ctx), span).await;
    crate::metrics::observe("email", super::actions::outcome(&result), started);
    super::actions::record_failure("email", &id, &attempt, &result, started);
    result
}

async fn handle(job: SendEmail, ctx: Data<Arc<WorkerCtx>>) -> Result<(), BoxDynError> {
    if job.v != PAYLOAD_VERSION {
        return Err(AbortError::new(format!("unknown SendEmail payload version {}", job.v)).into());
    }
    if super::is_paused(&ctx.paused, "email") {
        if let Some(handed_back) = super::hand_back(&ctx.pool, &ctx.paused, "email", &job).await {
            return handed_back;
        }
    }
    let outcomes =
        gateway_domain::email::deliver_many(&ctx.pool, &ctx.mailer, &ctx.config.email, &job.ids())
            .await
            // Postgres unreachable and the like: let apalis retry soon; the sweep is the backstop.
            .map_err(|e| format!("{e:?}"))?;
    let mut given_up = Vec::new();
    for (email_id, outcome) in outcomes {
        match outcome {
            Some(Delivery::Sent) => tracing::info!(%email_id, "email sent"),
            Some(Delivery::AlreadyFinal) => {}
            Some(Delivery::RetryAt(at)) => {
                tracing::warn!(%email_id, retry_at = %at, "email not delivered; retry scheduled")
            }
            Some(Delivery::Dead(error)) => {
                tracing::error!(%email_id, %error, "email gave up after the last attempt");
                given_up.push(format!("email {email_id} dead: {error}"));
            }
            None => given_up.push(format!("email {email_id} does not exist")),
        }
    }
    if given_up.is_empty() {
        Ok(())
    } else {
        Err(AbortError::new(given_up.join("; ")).into())
    }
}
