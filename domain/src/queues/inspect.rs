//! Finding and explaining jobs for operators, joining what Redis holds (the job, its state,
//! its failed attempts) with what Postgres holds (the email or due action it works on, and the
//! partner and subscription behind that):
//! - [`page`]: a page of one queue's jobs in one state, with the total;
//! - [`search`]: jobs across every queue by partner (MPN ID or name), subscription or job id;
//! - [`detail`]: one job with its payload, attempts, domain objects and what a retry or a
//!   discard would do, said before either is done.

use std::collections::HashSet;

use async_graphql::{InputObject, SimpleObject};
use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use redis::aio::ConnectionLike;
use uuid::Uuid;

use super::keys::{self, Attempt, JobInfo, JobState};
use super::known_queue;
use crate::db::prelude::*;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::jobs::{Job, SendEmail, QUEUES};
use crate::permissions::{Action, Principal};

/// A page of the jobs of a queue in a state (operators): `limit` from `offset`, and the total.
pub async fn page<C: ConnectionLike>(
    redis: &mut C,
    principal: &Principal,
    prefix: &str,
    queue: &str,
    state: JobState,
    offset: usize,
    limit: usize,
) -> AppResult<(Vec<JobInfo>, usize)> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    Ok(keys::list(redis, prefix, queue, state, offset, limit).await?)
}

/// What to look for across the queues; the given parts must all match.
#[derive(Debug, Clone, Default, InputObject)]
pub struct JobFilter {
    /// A partner's MPN ID, or part of its legal name (case-insensitive).
    pub partner: Option<String>,
    /// A subscription: its renewal, reminder, lapse and credit jobs, and those of its orders
    /// and benefits.
    pub subscription_id: Option<Uuid>,
    /// A job id (as `Job.id`), in whichever queue it is.
    pub job_id: Option<String>,
}

/// The most jobs one search answers.
pub const SEARCH_LIMIT: usize = 200;
/// How many of a partner's emails and due actions (newest first) a search looks for.
const IDS_LIMIT: i64 = 5000;

#[derive(diesel::QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The ids of the emails and due actions the filter's partner and subscription parts name;
/// None when the filter has neither part.
async fn subject_ids(conn: &mut PgConn, f: &JobFilter) -> AppResult<Option<HashSet<Uuid>>> {
    let mut found: Option<HashSet<Uuid>> = None;
    if let Some(partner) = f.partner.as_deref().map(str::trim) {
        if partner.is_empty() {
            return Err(AppError::bad_input("partner", "name an MPN ID or a name"));
        }
        let like = format!(
            "%{}%",
            partner
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let ids: Vec<Id> = diesel::sql_query(
            "WITH p AS (SELECT id FROM partners WHERE mpn_id = $1 OR legal_name ILIKE $2 LIMIT 50)
             (SELECT a.id FROM scheduled_actions a JOIN p ON p.id = a.partner_id
              ORDER BY a.created_at DESC LIMIT $3)
             UNION ALL
             (SELECT e.id FROM emails e JOIN p ON p.id = e.partner_id
              ORDER BY e.created_at DESC LIMIT $3)",
        )
        .bind::<Text, _>(partner)
        .bind::<Text, _>(like)
        .bind::<BigInt, _>(IDS_LIMIT)
        .load(conn)
        .await?;
        found = Some(ids.into_iter().map(|r| r.id).collect());
    }
    if let Some(sub) = f.subscription_id {
        let ids: Vec<Id> = diesel::sql_query(
            "SELECT a.id FROM scheduled_actions a
             WHERE a.subject_id = $1
                OR a.subject_id IN (SELECT id FROM orders WHERE subscription_id = $1)
                OR a.subject_id IN (SELECT id FROM entitlements WHERE subscription_id = $1)
             ORDER BY a.created_at DESC LIMIT $2",
        )
        .bind::<SqlUuid, _>(sub)
        .bind::<BigInt, _>(IDS_LIMIT)
        .load(conn)
        .await?;
        let ids: HashSet<Uuid> = ids.into_iter().map(|r| r.id).collect();
        found = Some(match found {
            Some(by_partner) => by_partner.intersection(&ids).copied().collect(),
            None => ids,
        });
    }
    Ok(found)
}

/// The email and due-action ids a payload works on.
fn payload_ids(raw: &[u8]) -> Vec<Uuid> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(raw) else {
        return vec![];
    };
    let one = ["email_id", "action_id"]
        .iter()
        .filter_map(|k| v[*k].as_str())
        .map(str::to_owned);
    let more = v["more"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str())
        .map(str::to_owned);
    one.chain(more)
        .filter_map(|s| Uuid::parse_str(&s).ok())
        .collect()
}

/// Jobs across every queue matching the filter (operators), newest first, at most
/// [`SEARCH_LIMIT`].
pub async fn search<C: ConnectionLike>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    prefix: &str,
    filter: &JobFilter,
) -> AppResult<Vec<JobInfo>> {
    principal.require(Action::Operate)?;
    let job_id = filter
        .job_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    if job_id.is_none() && filter.partner.is_none() && filter.subscription_id.is_none() {
        return Err(AppError::bad_input(
            "filter",
            "give a partner, a subscriptionId or a jobId",
        ));
    }
    let wanted = subject_ids(conn, filter).await?;
    let mut out = Vec::new();
    for queue in QUEUES {
        let ids = match job_id {
            Some(id) => vec![id.to_owned()],
            None => match &wanted {
                Some(w) if w.is_empty() => vec![],
                Some(w) => {
                    keys::scan_payloads(redis, prefix, queue, SEARCH_LIMIT, |p| {
                        payload_ids(p).iter().any(|id| w.contains(id))
                    })
                    .await?
                }
                None => vec![],
            },
        };
        for id in ids {
            let Some(job) = keys::find(redis, prefix, queue, &id).await? else {
                continue;
            };
            if let (Some(_), Some(w)) = (job_id, &wanted) {
                let raw = keys::payload(redis, prefix, queue, &id)
                    .await?
                    .unwrap_or_default();
                if !payload_ids(&raw).iter().any(|i| w.contains(i)) {
                    continue;
                }
            }
            out.push(job);
        }
    }
    out.sort_by(|a, b| b.id.cmp(&a.id));
    out.truncate(SEARCH_LIMIT);
    Ok(out)
}

/// What a job works on, from Postgres (GraphQL `JobSubject`).
#[derive(Debug, Clone, SimpleObject, diesel::QueryableByName)]
#[graphql(complex)]
pub struct JobSubject {
    /// `EMAIL`, or the due action's kind (RENEWAL_CHARGE, REMINDER, COMPLETE_ACTIVATION, …).
    #[diesel(sql_type = Text)]
    pub kind: String,
    /// The email's or the due action's id.
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// The email's status (PENDING, SENT, DEAD) or the action's (PENDING, DONE, CANCELLED).
    #[diesel(sql_type = Text)]
    pub status: String,
    /// Runs so far, as Postgres counts them.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    #[diesel(sql_type = Nullable<Text>)]
    /// The last error Postgres recorded for it.
    pub last_error: Option<String>,
    /// When the action is due, or the email's next attempt.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub due_at: Option<DateTime<Utc>>,
    /// When the action was done or the email sent.
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub done_at: Option<DateTime<Utc>>,
    /// An email's recipient and subject line.
    #[diesel(sql_type = Nullable<Text>)]
    pub recipient: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    /// An email's subject line.
    pub email_subject: Option<String>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    /// The partner the work is for.
    pub partner_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<Text>)]
    /// That partner's MPN ID.
    pub mpn_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    /// That partner's legal name.
    pub partner_name: Option<String>,
    /// The subscription behind the action (itself, or that of its order or benefit).
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub subscription_id: Option<Uuid>,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    /// The order behind the action, if any.
    pub order_id: Option<Uuid>,
    /// The benefit (entitlement) an activation or credit job works on.
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub benefit_id: Option<Uuid>,
}

#[async_graphql::ComplexObject]
impl JobSubject {
    /// A GraphQL query (for an operator's token) that reads the object behind this job in
    /// the API: its subscription, order, benefit or partner.
    async fn api_query(&self) -> String {
        api_query(self)
    }
}

fn api_query(s: &JobSubject) -> String {
    if let Some(id) = s.benefit_id {
        format!("{{ benefit(id: \"{id}\") {{ id product status activation {{ state }} }} }}")
    } else if let Some(id) = s.order_id {
        format!("{{ order(id: \"{id}\") {{ id number status }} }}")
    } else if let Some(id) = s.subscription_id {
        format!("{{ subscription(id: \"{id}\") {{ id status autoRenew anniversaryDate }} }}")
    } else if let Some(id) = s.partner_id {
        format!("{{ partner(id: \"{id}\") {{ id mpnId legalName }} }}")
    } else {
        "{ jobQueues { name } }".to_owned()
    }
}

/// The emails and due actions with these ids, with their partner and subscription.
async fn subjects(conn: &mut PgConn, ids: &[Uuid]) -> AppResult<Vec<JobSubject>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    Ok(diesel::sql_query(
        "SELECT 'EMAIL' AS kind, e.id, e.status, e.attempts, e.last_error,
                CASE WHEN e.status = 'PENDING' THEN e.next_attempt_at END AS due_at,
                e.sent_at AS done_at, e.recipient, e.subject AS email_subject,
                e.partner_id, p.mpn_id, p.legal_name AS partner_name,
                NULL::uuid AS subscription_id, NULL::uuid AS order_id, NULL::uuid AS benefit_id
         FROM emails e LEFT JOIN partners p ON p.id = e.partner_id
         WHERE e.id = ANY($1)
         UNION ALL
         SELECT a.kind, a.id, a.status, a.attempts, a.last_error, a.due_at, a.done_at,
                NULL, NULL, a.partner_id, p.mpn_id, p.legal_name,
                coalesce(s.id, o.subscription_id, en.subscription_id), o.id, en.id
         FROM scheduled_actions a
         JOIN partners p ON p.id = a.partner_id
         LEFT JOIN subscriptions s ON s.id = a.subject_id
         LEFT JOIN orders o ON o.id = a.subject_id
         LEFT JOIN entitlements en ON en.id = a.subject_id
         WHERE a.id = ANY($1)",
    )
    .bind::<Array<SqlUuid>, _>(ids)
    .load(conn)
    .await?)
}

/// One job in full (GraphQL `JobDetail`).
#[derive(Debug, Clone, SimpleObject)]
pub struct JobDetail {
    /// The job itself.
    pub job: JobInfo,
    /// The whole payload as stored in Redis (ids only: no personal data, no secrets).
    pub payload: String,
    /// Every failed run, oldest first, as the workers recorded it. A job that finished
    /// succeeded on its last run (`job.at`).
    pub attempts: Vec<Attempt>,
    /// The emails or due actions the job works on, from Postgres.
    pub subjects: Vec<JobSubject>,
    /// What `retryJob` would do to this job now.
    pub retry_would: String,
    /// What `discardJob` would do to this job now.
    pub discard_would: String,
}

/// A job with everything known about it (operators); None when Redis no longer has it.
pub async fn detail<C: ConnectionLike>(
    conn: &mut PgConn,
    redis: &mut C,
    principal: &Principal,
    prefix: &str,
    queue: &str,
    id: &str,
) -> AppResult<Option<JobDetail>> {
    principal.require(Action::Operate)?;
    let queue = known_queue(queue)?;
    let Some(job) = keys::find(redis, prefix, queue, id).await? else {
        return Ok(None);
    };
    let payload = keys::payload_text(redis, prefix, queue, id)
        .await?
        .unwrap_or_default();
    let attempts = keys::attempts(redis, prefix, queue, id).await?;
    let subjects = subjects(conn, &payload_ids(payload.as_bytes())).await?;
    let (retry_would, discard_would) = consequences(queue, &subjects);
    Ok(Some(JobDetail {
        job,
        payload,
        attempts,
        subjects,
        retry_would,
        discard_would,
    }))
}

/// What a retry and a discard would do, in the terms of `queues::retry_job` and `discard_job`.
fn consequences(queue: &str, subjects: &[JobSubject]) -> (String, String) {
    let open = |s: &&JobSubject| s.status == "PENDING" || s.status == "DEAD";
    let retry = if subjects.is_empty() {
        "Puts the job back on its queue as it is, with fresh attempts (its payload names \
         nothing Postgres knows)."
            .to_owned()
    } else if queue == SendEmail::QUEUE {
        let dead = subjects.iter().filter(|s| s.status == "DEAD").count();
        if dead > 0 {
            format!(
                "Revives {dead} DEAD email(s) in Postgres (PENDING, fresh attempts) and queues \
                 them again; this job leaves Redis."
            )
        } else {
            "Nothing to redo: no email of this job is DEAD (answer ALREADY_DONE); this job \
             leaves Redis."
                .to_owned()
        }
    } else if subjects.iter().any(|s| s.status == "PENDING") {
        "Queues the PENDING due action(s) again through the outbox (each runs once: the \
         action is idempotent); this job leaves Redis."
            .to_owned()
    } else {
        "Nothing to redo: the due action is DONE or CANCELLED (answer ALREADY_DONE); this job \
         leaves Redis."
            .to_owned()
    };
    let discard = match subjects.iter().find(open) {
        None => "Removes the job from Redis for good; Postgres is untouched and has \
                      nothing left to do for it."
            .to_owned(),
        Some(s) if s.status == "DEAD" => "Removes the job from Redis for good; the email \
             stays DEAD in Postgres and is not sent unless an operator retries it."
            .to_owned(),
        Some(_) => "Removes the job from Redis; the work is still PENDING in Postgres, so \
             the sweep queues it again after REDISPATCH_AFTER_SECS."
            .to_owned(),
    };
    (retry, discard)
}
