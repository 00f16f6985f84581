//! Operators' view of the job queues: exact counts per state (from Redis keys and Postgres),
//! job details, retry and discard. The `/ops` page (api/src/ops.html) uses these.

use async_graphql::{Context, Object, SimpleObject};
use gateway_domain::jobs::QUEUES;
use gateway_domain::permissions::Action;
use gateway_domain::queues::{self, JobState, Retried};
use gateway_domain::AppError;
use serde_json::json;

use super::{actor, conn, principal, shared};

#[derive(SimpleObject)]
pub struct JobQueue {
    /// The queue's name without the environment prefix.
    pub name: String,
    pub pending: i64,
    pub scheduled: i64,
    pub running: i64,
    pub done: i64,
    pub failed: i64,
    pub dead: i64,
    /// Jobs still in Postgres (outbox rows not yet relayed to Redis).
    pub waiting_in_postgres: i64,
}

#[derive(SimpleObject)]
pub struct Job {
    pub id: String,
    pub queue: String,
    pub state: JobState,
    /// The payload (IDs only), shortened.
    pub payload: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    /// Due (scheduled, failed) or finished (done, dead) at, in Unix seconds.
    pub at: Option<i64>,
}

async fn redis(ctx: &Context<'_>) -> Result<redis::aio::MultiplexedConnection, AppError> {
    shared(ctx)
        .redis
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| AppError::Internal(format!("redis: {e}")))
}

fn known_queue(name: &str) -> Result<&'static str, AppError> {
    QUEUES.iter().find(|q| **q == name).copied().ok_or_else(|| {
        AppError::bad_input(
            "queue",
            format!("unknown queue `{name}`; one of {}", QUEUES.join(", ")),
        )
    })
}

fn redis_err(e: redis::RedisError) -> AppError {
    AppError::Internal(format!("redis: {e}"))
}

#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Every queue with its exact counts per state (operators).
    async fn job_queues(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<JobQueue>> {
        principal(ctx)?.require(Action::Operate)?;
        let prefix = &shared(ctx).config.redis.queue_prefix;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        let pg = queues::pg_counts(&mut c).await?;
        let mut out = Vec::new();
        for q in QUEUES {
            let n = queues::counts(&mut r, prefix, q).await.map_err(redis_err)?;
            out.push(JobQueue {
                name: (*q).to_owned(),
                pending: n.pending,
                scheduled: n.scheduled,
                running: n.running,
                done: n.done,
                failed: n.failed,
                dead: n.dead,
                waiting_in_postgres: pg
                    .outbox_waiting
                    .iter()
                    .find(|(k, _)| k == q)
                    .map(|(_, n)| *n)
                    .unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Jobs of a queue in a state (operators).
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        queue: String,
        state: JobState,
        #[graphql(default = 50)] first: i32,
    ) -> async_graphql::Result<Vec<Job>> {
        principal(ctx)?.require(Action::Operate)?;
        let queue = known_queue(&queue)?;
        let prefix = &shared(ctx).config.redis.queue_prefix;
        let mut r = redis(ctx).await?;
        Ok(
            queues::list(&mut r, prefix, queue, state, first.clamp(1, 500) as usize)
                .await
                .map_err(redis_err)?
                .into_iter()
                .map(|j| Job {
                    id: j.id,
                    queue: j.queue,
                    state: j.state,
                    payload: j.payload,
                    attempts: j.attempts,
                    last_error: j.last_error,
                    at: j.at,
                })
                .collect(),
        )
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
        principal(ctx)?.require(Action::Operate)?;
        let queue = known_queue(&queue)?;
        let prefix = shared(ctx).config.redis.queue_prefix.clone();
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        let outcome = queues::retry(&mut c, &mut r, &prefix, queue, &id).await?;
        gateway_domain::audit::record(
            &c,
            &actor(ctx)?,
            None,
            "job.retried",
            ("job", format!("{queue}/{id}")),
            json!({"outcome": format!("{outcome:?}")}),
        )
        .await?;
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
        principal(ctx)?.require(Action::Operate)?;
        let queue = known_queue(&queue)?;
        let prefix = shared(ctx).config.redis.queue_prefix.clone();
        let mut r = redis(ctx).await?;
        if !queues::discard(&mut r, &prefix, queue, &id)
            .await
            .map_err(redis_err)?
        {
            return Err(AppError::NotFound("job").into());
        }
        let c = conn(ctx).await?;
        gateway_domain::audit::record(
            &c,
            &actor(ctx)?,
            None,
            "job.discarded",
            ("job", format!("{queue}/{id}")),
            json!({}),
        )
        .await?;
        Ok(true)
    }
}
