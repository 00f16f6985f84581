//! Operators' view of the job queues (`gateway_domain::queues`): exact counts per state (from
//! Redis keys and Postgres), paged job lists, search and job details, retry and discard. The
//! `/ops` console (api/src/ops/) uses these.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Object};
use base64::Engine;
use gateway_domain::queues::inspect::{self, JobDetail, JobFilter};
use gateway_domain::queues::{self, due_work::DueWork, JobInfo, JobQueue, JobState, Retried};
use gateway_domain::AppError;

use super::{actor, conn, principal, shared};

async fn redis(ctx: &Context<'_>) -> Result<gateway_domain::redis_conn::RedisConn, AppError> {
    Ok(shared(ctx).redis.connection().await?)
}

fn prefix<'a>(ctx: &Context<'a>) -> &'a str {
    &shared(ctx).config.redis.queue_prefix
}

/// One queue as `jobQueues` shows it.
async fn one_queue(ctx: &Context<'_>, queue: &str) -> async_graphql::Result<JobQueue> {
    let p = principal(ctx)?;
    let mut r = redis(ctx).await?;
    let mut c = conn(ctx).await?;
    queues::overview(&mut c, &mut r, p, prefix(ctx))
        .await?
        .into_iter()
        .find(|q| q.name == queue)
        .ok_or_else(|| AppError::NotFound("queue").into())
}

#[derive(Default)]
pub struct OpsQuery;

#[Object]
impl OpsQuery {
    /// Every queue with its exact counts per state (operators).
    ///
    /// Roles: operators.
    async fn job_queues(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<JobQueue>> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        Ok(queues::overview(&mut c, &mut r, p, prefix(ctx)).await?)
    }

    /// Due work from Postgres, per kind: due now (on each partner's clock) and since when, and
    /// what falls due in the next 24 hours and 7 days (operators).
    ///
    /// Roles: operators.
    async fn due_work(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<DueWork>> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(queues::due_work::due_work(&mut c, p).await?)
    }

    /// Every queue's processed and failed jobs per minute over the last `minutes` (1 to 120,
    /// default 60), as the workers report them (operators).
    ///
    /// Roles: operators.
    async fn queue_throughput(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 60, desc = "How many minutes back, 1 to 120.")] minutes: i32,
    ) -> async_graphql::Result<Vec<queues::activity::QueueThroughput>> {
        principal(ctx)?.require(gateway_domain::permissions::Action::Operate)?;
        let mut r = redis(ctx).await?;
        Ok(queues::activity::throughput(
            &mut r,
            prefix(ctx),
            chrono::Utc::now(),
            i64::from(minutes),
        )
        .await
        .map_err(AppError::from)?)
    }

    /// The worker processes that are up: host, pid, queues, concurrency, start and last
    /// heartbeat (one silent for 30 s is not shown; operators).
    ///
    /// Roles: operators.
    async fn workers(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<queues::activity::WorkerProcess>> {
        principal(ctx)?.require(gateway_domain::permissions::Action::Operate)?;
        let mut r = redis(ctx).await?;
        Ok(
            queues::activity::processes(&mut r, prefix(ctx), chrono::Utc::now())
                .await
                .map_err(AppError::from)?,
        )
    }

    /// A page of the jobs of a queue in a state (operators), with `totalCount`. Waiting jobs
    /// come next-first, scheduled and failed ones by due time, the others newest first; the
    /// cursor is a position, so a page of a moving list may repeat or skip a job.
    ///
    /// Roles: operators.
    async fn jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The queue.")] queue: String,
        #[graphql(desc = "The state.")] state: JobState,
        #[graphql(default = 50, desc = "Page size, 1 to 500.")] first: i32,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, JobInfo, super::pagination::TotalCount>> {
        let p = principal(ctx)?;
        if !(1..=500).contains(&first) {
            return Err(AppError::bad_input("first", "first must be between 1 and 500").into());
        }
        let offset = match after.as_deref() {
            None => 0,
            Some(c) => decode_offset(c)? + 1,
        };
        let mut r = redis(ctx).await?;
        let (jobs, total) = inspect::page(
            &mut r,
            p,
            prefix(ctx),
            &queue,
            state,
            offset,
            first as usize,
        )
        .await?;
        let mut c = Connection::with_additional_fields(
            offset > 0,
            offset + jobs.len() < total,
            super::pagination::TotalCount(Some(total as i64)),
        );
        c.edges.extend(
            jobs.into_iter()
                .enumerate()
                .map(|(i, j)| Edge::new(encode_offset(offset + i), j)),
        );
        Ok(c)
    }

    /// Jobs across every queue (operators) by partner (MPN ID or part of its name),
    /// subscription or job id, newest first, at most 200. Redis holds the jobs; Postgres
    /// says which emails and due actions belong to the partner or subscription.
    ///
    /// Roles: operators.
    async fn find_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A partner, a subscription or a job id.")] filter: JobFilter,
    ) -> async_graphql::Result<Vec<JobInfo>> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        Ok(inspect::search(&mut c, &mut r, p, prefix(ctx), &filter).await?)
    }

    /// One job in full (operators): payload, failed attempts, the emails or due actions it
    /// works on with their partner and subscription, and what a retry or a discard would do.
    /// Null when Redis no longer holds it.
    ///
    /// Roles: operators.
    async fn job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job's queue.")] queue: String,
        #[graphql(desc = "The job's id.")] id: String,
    ) -> async_graphql::Result<Option<JobDetail>> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        Ok(inspect::detail(&mut c, &mut r, p, prefix(ctx), &queue, &id).await?)
    }
}

fn encode_offset(i: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("job:{i}"))
}

fn decode_offset(cursor: &str) -> Result<usize, AppError> {
    let bad = || AppError::bad_input("after", "invalid cursor");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad())?;
    String::from_utf8(raw)
        .ok()
        .and_then(|s| s.strip_prefix("job:").and_then(|n| n.parse().ok()))
        .ok_or_else(bad)
}

#[derive(Default)]
pub struct OpsMutation;

#[Object]
impl OpsMutation {
    /// Retries a job: a dead email is revived in Postgres (fresh attempts), a due action is
    /// queued again; the answer says which.
    ///
    /// Roles: operators.
    async fn retry_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job's queue.")] queue: String,
        #[graphql(desc = "The job's id.")] id: String,
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

    /// Pauses a queue (operators; audited): the relay keeps its jobs in Postgres and workers
    /// take none until `resumeQueue`. The pause survives restarts. Answers the queue as now.
    ///
    /// Roles: operators.
    async fn pause_queue(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The queue to pause.")] queue: String,
    ) -> async_graphql::Result<JobQueue> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        queues::pauses::pause(&mut c, p, &actor(ctx)?, &queue).await?;
        one_queue(ctx, &queue).await
    }

    /// Resumes a paused queue (operators; audited). Answers the queue as now.
    ///
    /// Roles: operators.
    async fn resume_queue(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The queue to resume.")] queue: String,
    ) -> async_graphql::Result<JobQueue> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        queues::pauses::resume(&mut c, p, &actor(ctx)?, &queue).await?;
        one_queue(ctx, &queue).await
    }

    /// Retries every dead job of a queue (operators; each audited, and the whole with its
    /// count). Answers how many were retried.
    ///
    /// Roles: operators.
    async fn retry_dead_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The queue whose dead jobs run again.")] queue: String,
    ) -> async_graphql::Result<i64> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        Ok(queues::retry_dead_jobs(&mut c, &mut r, p, &actor(ctx)?, prefix(ctx), &queue).await?)
    }

    /// Discards every dead job of a queue for good (operators; each audited, and the whole
    /// with its count). Answers how many were discarded.
    ///
    /// Roles: operators.
    async fn discard_dead_jobs(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The queue whose dead jobs are discarded.")] queue: String,
    ) -> async_graphql::Result<i64> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        Ok(queues::discard_dead_jobs(&mut c, &mut r, p, &actor(ctx)?, prefix(ctx), &queue).await?)
    }

    /// Removes a job from its queue for good (its Postgres record, if any, is untouched).
    ///
    /// Roles: operators.
    async fn discard_job(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The job's queue.")] queue: String,
        #[graphql(desc = "The job's id.")] id: String,
    ) -> async_graphql::Result<bool> {
        let p = principal(ctx)?;
        let mut r = redis(ctx).await?;
        let mut c = conn(ctx).await?;
        queues::discard_job(&mut c, &mut r, p, &actor(ctx)?, prefix(ctx), &queue, &id).await?;
        Ok(true)
    }
}
