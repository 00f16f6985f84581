//! Operators' view of the job queues (`gateway_domain::queues`): exact counts per state (from
//! Redis keys and Postgres), job details, retry and discard. The `/ops` page
//! (api/src/ops.html) uses these.

use async_graphql::{Context, Object};
use gateway_domain::queues::{self, JobInfo, JobQueue, JobState, Retried};
use gateway_domain::AppError;

use super::{actor, conn, principal, shared};

async fn redis(ctx: &Context<'_>) -> Result<redis::aio::MultiplexedConnection, AppError> {
    Ok(shared(ctx).redis.get_multiplexed_async_connection().await?)
}

fn prefix<'a>(ctx: &Context<'a>) -> &'a str {
    &shared(ctx).config.redis.queue_prefix
}

#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Every queue with its exact counts per state (operators).
    async fn job_queues(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<JobQueue>> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        Ok(queues::overview(&mut c, &mut r, p, prefix(ctx)).await?)
    }

    /// Jobs of a queue in a state (operators).
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        queue: String,
        state: JobState,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<Vec<JobInfo>> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        Ok(queues::jobs(&mut r, p, prefix(ctx), &queue, state, first).await?)
    }
}

#[derive(Default)]
pub struct OpsMutation;

#[Object]
impl OpsMutation {
    /// Retries a job: a dead email is revived in Postgres (fresh attempts), a due action is
    /// queued again; the answer says which.
    async fn retry_job(
        &self,
        ctx: &Context<'_>,
        queue: String,
        id: String,
    ) -> async_graphql::Result<String> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        let outcome =
            queues::retry_job(&mut c, &mut r, p, &actor(ctx)?, prefix(ctx), &queue, &id).await?;
        Ok(match outcome {
            Retried::EmailRevived => "EMAIL_REVIVED",
            Retried::ActionRequeued => "ACTION_REQUEUED",
            Retried::AlreadyDone => "ALREADY_DONE",
            Retried::Requeued => "REQUEUED",
        }
        .to_owned())
    }

    /// Removes a job from its queue for good (its Postgres record, if any, is untouched).
    async fn discard_job(
        &self,
        ctx: &Context<'_>,
        queue: String,
        id: String,
    ) -> async_graphql::Result<bool> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        queues::discard_job(&mut c, &mut r, p, &actor(ctx)?, prefix(ctx), &queue, &id).await?;
        Ok(true)
    }
}
