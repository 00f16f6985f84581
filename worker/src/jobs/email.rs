//! Delivers one email. Postgres decides (gateway_domain::email::deliver): a duplicate job does
//! nothing, a failure schedules its own retry through the outbox, the last failure marks the
//! email DEAD and puts the job in the queue's dead set for operators.

use std::sync::Arc;

use apalis::prelude::*;
use gateway_domain::email::Delivery;
use gateway_domain::jobs::{SendEmail, PAYLOAD_VERSION};
use gateway_domain::AppError;

use crate::WorkerCtx;

pub async fn run(job: SendEmail, ctx: Data<Arc<WorkerCtx>>) -> Result<(), BoxDynError> {
    let started = std::time::Instant::now();
    let result = handle(job, ctx).await;
    crate::metrics::observe("email", super::actions::outcome(&result), started);
    result
}

async fn handle(job: SendEmail, ctx: Data<Arc<WorkerCtx>>) -> Result<(), BoxDynError> {
    if job.v != PAYLOAD_VERSION {
        return Err(AbortError::new(format!("unknown SendEmail payload version {}", job.v)).into());
    }
    let mut conn = ctx.pool.get().await.map_err(|e| format!("database: {e}"))?;
    match gateway_domain::email::deliver(&mut conn, &ctx.mailer, &ctx.config.email, job.email_id)
        .await
    {
        Ok(Delivery::Sent) => {
            tracing::info!(email_id = %job.email_id, "email sent");
            Ok(())
        }
        Ok(Delivery::AlreadyFinal) => Ok(()),
        Ok(Delivery::RetryAt(at)) => {
            tracing::warn!(email_id = %job.email_id, retry_at = %at, "email not delivered; retry scheduled");
            Ok(())
        }
        Ok(Delivery::Dead(error)) => {
            tracing::error!(email_id = %job.email_id, %error, "email gave up after the last attempt");
            Err(AbortError::new(format!("email {} dead: {error}", job.email_id)).into())
        }
        Err(AppError::NotFound(_)) => {
            Err(AbortError::new(format!("email {} does not exist", job.email_id)).into())
        }
        // Postgres unreachable and the like: let apalis retry soon; the sweep is the backstop.
        Err(e) => Err(format!("{e:?}").into()),
    }
}
