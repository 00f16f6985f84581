//! Email: render now, store in `emails`, deliver later through the outbox and the worker.
//! Postgres owns delivery state (attempts, backoff, dead) so a lost Redis loses no email: a
//! retry is a new outbox row with a later `run_at`, not an apalis retry (apalis' own retries,
//! a fixed delay and 25 attempts, are a backstop for infrastructure errors only). Rendered
//! bodies are cleared once delivered over SMTP; with the capturing transports (`file`, `memory`,
//! never in production) they are kept, for `GET /dev/mail` ([`captured`]).
//!
//! Emails travel in batches: each has its own outbox row; the relay packs the email rows it
//! claims together into `email` jobs of up to `EMAIL_BATCH` (`SendEmail.more`). One email, one
//! send: a job claims its pending rows with a lease (their `next_attempt_at` moves past the
//! longest a send can take, so no other job takes them meanwhile) in one short statement,
//! gives its connection back, sends over the mailer's pooled SMTP connections, and marks each
//! email SENT in its own statement as soon as the server accepted it. No row lock and no pooled
//! connection is held across an SMTP call, so a killed worker re-sends at most the emails that
//! were in flight (after their lease); each carries a stable `Message-ID`
//! (`<email id@sender's domain>`) so a rare repeat is recognisable downstream. A failed email
//! records its own attempt and retry row. A single email is a batch of one.

pub mod captured;
pub mod templates;
pub mod transport;

use crate::db::prelude::*;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use serde::Serialize;
use uuid::Uuid;

pub use templates::{render, Rendered, Template};
pub use transport::{Mailer, OutgoingEmail};

use crate::config::EmailConfig;
use crate::db::models::{Email, NewEmail};
use crate::db::schema::{emails, outbox};
use crate::db::PgConn;
use crate::enums::EmailStatus;
use crate::error::{AppError, AppResult};
use crate::jobs::{Job, SendEmail};

/// Renders `template` for `to` and queues its delivery, inside the caller's transaction.
pub async fn queue(
    conn: &mut PgConn,
    partner_id: Option<Uuid>,
    template: Template,
    to: &str,
    ctx: &impl Serialize,
) -> AppResult<Uuid> {
    let ids = queue_many(
        conn,
        &[Queued {
            partner_id,
            template,
            to,
            ctx,
        }],
    )
    .await?;
    Ok(ids[0])
}

/// One email to queue (see [`queue_many`]).
pub struct Queued<'a, C: Serialize> {
    pub partner_id: Option<Uuid>,
    pub template: Template,
    pub to: &'a str,
    pub ctx: C,
}

/// Like [`queue`] for many emails: one INSERT of the emails and one of their jobs (a renewal
/// batch sends a receipt per renewal). Returns the ids in order.
pub async fn queue_many<C: Serialize>(
    conn: &mut PgConn,
    emails: &[Queued<'_, C>],
) -> AppResult<Vec<Uuid>> {
    if emails.is_empty() {
        return Ok(vec![]);
    }
    let rows = render_many(emails)?;
    diesel::insert_into(emails::table)
        .values(&rows)
        .reuse_for_rows(rows.len())
        .execute(conn)
        .await?;
    let jobs = rows
        .iter()
        .map(|r| job_of(r.id).map(|payload| (SendEmail::QUEUE, payload)))
        .collect::<AppResult<Vec<_>>>()?;
    crate::outbox::enqueue_many(conn, &jobs, rows[0].next_attempt_at).await?;
    Ok(rows.iter().map(|r| r.id).collect())
}

/// The rows [`queue_many`] inserts, rendered, due now (for a caller that inserts them itself).
pub fn render_many<C: Serialize>(emails: &[Queued<'_, C>]) -> AppResult<Vec<NewEmail>> {
    let now = Utc::now();
    emails
        .iter()
        .map(|e| {
            let rendered = render(e.template, &e.ctx).map_err(AppError::internal)?;
            Ok(NewEmail {
                id: Uuid::now_v7(),
                partner_id: e.partner_id,
                template: e.template.name().to_owned(),
                recipient: e.to.to_owned(),
                subject: rendered.subject,
                body_text: Some(rendered.text),
                body_html: Some(rendered.html),
                status: EmailStatus::Pending,
                next_attempt_at: now,
            })
        })
        .collect()
}

/// The outbox payload that delivers one email.
pub fn job_of(email_id: Uuid) -> AppResult<serde_json::Value> {
    serde_json::to_value(SendEmail::new(email_id)).map_err(AppError::internal)
}

/// Messages of one batch in flight at once (see `transport::POOLED_CONNECTIONS`).
pub const SENDS_AT_ONCE: usize = 4;

#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    /// Nothing to do: already sent or dead (a duplicate or late job).
    AlreadyFinal,
    /// Failed; another attempt is scheduled at the given time.
    RetryAt(DateTime<Utc>),
    /// Failed for the last allowed time; the row is DEAD.
    Dead(String),
}

/// Exponential backoff: base, 2×base, 4×base, … capped at one hour.
pub fn backoff(base: std::time::Duration, attempts: i32) -> chrono::Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).clamp(0, 16) as u32);
    let delay = base
        .saturating_mul(factor)
        .min(std::time::Duration::from_secs(3600));
    chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1))
}

/// How long a claimed email is left alone by other jobs: the longest a send can take (the
/// mailer bounds a send at three SMTP timeouts) and a margin. After it, a job killed mid-send
/// has its emails sent again (the sweep re-dispatches them).
pub fn claim_lease(cfg: &EmailConfig) -> chrono::Duration {
    chrono::Duration::from_std(cfg.smtp_timeout * 3).unwrap_or(chrono::Duration::minutes(1))
        + chrono::Duration::seconds(5)
}

/// A job may run this much before its email's `next_attempt_at` (clocks of the relay and the
/// database differ by milliseconds): it still claims it.
const EARLY: chrono::Duration = chrono::Duration::seconds(5);

/// Delivers emails, idempotently, one send per email (see the module docs): claims the
/// pending ones with a lease, sends [`SENDS_AT_ONCE`] at a time holding no database
/// connection, and records each outcome on its own (SENT, or the retry, or DEAD). A sent or
/// dead email, or one another job holds, is skipped. Returns each id with its outcome, `None`
/// for an id with no row.
pub async fn deliver_many(
    pool: &crate::db::DbPool,
    mailer: &Mailer,
    cfg: &EmailConfig,
    email_ids: &[Uuid],
) -> AppResult<Vec<(Uuid, Option<Delivery>)>> {
    let mut ids = email_ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let (claimed, existing) = {
        let mut conn = pool.get().await.map_err(AppError::internal)?;
        claim(&mut conn, cfg, &ids).await?
    };
    let mut outcomes: Vec<(Uuid, Option<Delivery>)> = ids
        .iter()
        .map(|id| (*id, existing.contains(id).then_some(Delivery::AlreadyFinal)))
        .collect();
    // A few at a time over the pooled connections: each message is several SMTP round trips,
    // so sending in a row would leave the worker waiting on the server.
    let sends: Vec<_> = claimed
        .iter()
        .map(|email| async move {
            let result = mailer.send(&email.id.to_string(), &outgoing(email)).await;
            let mut conn = pool.get().await.map_err(AppError::internal)?;
            let delivery = match result {
                Ok(()) => mark_sent(&mut conn, email.id, keeps_bodies(cfg)).await?,
                Err(e) => record_failure(&mut conn, cfg, email, format!("{e:#}")).await?,
            };
            Ok::<_, AppError>((email.id, delivery))
        })
        .collect();
    let results: Vec<AppResult<(Uuid, Delivery)>> = futures::stream::iter(sends)
        .buffer_unordered(SENDS_AT_ONCE)
        .collect()
        .await;
    for result in results {
        let (id, delivery) = result?;
        let slot = ids.binary_search(&id).map_err(AppError::internal)?;
        outcomes[slot].1 = Some(delivery);
    }
    Ok(outcomes)
}

/// Claims the pending emails among `ids` that are due (or nearly) and not held by another
/// job, for [`claim_lease`]. Returns them, and the ids of the others that exist.
async fn claim(
    conn: &mut PgConn,
    cfg: &EmailConfig,
    ids: &[Uuid],
) -> AppResult<(Vec<Email>, Vec<Uuid>)> {
    let now = Utc::now();
    let claimed: Vec<Email> = diesel::update(
        emails::table
            .filter(emails::id.eq_any(ids))
            .filter(emails::status.eq(EmailStatus::Pending))
            .filter(emails::next_attempt_at.le(now + EARLY)),
    )
    .set(emails::next_attempt_at.eq(now + claim_lease(cfg)))
    .returning(Email::as_returning())
    .get_results(conn)
    .await?;
    // The usual case, every email claimed, needs no second read.
    if claimed.len() == ids.len() {
        return Ok((claimed, vec![]));
    }
    let mut others: Vec<Uuid> = emails::table
        .filter(emails::id.eq_any(ids))
        .select(emails::id)
        .load(conn)
        .await?;
    others.retain(|id| !claimed.iter().any(|e| e.id == *id));
    Ok((claimed, others))
}

/// Whether sent emails keep their bodies: only with a capturing transport (`file`, `memory`;
/// refused in production), whose mail `GET /dev/mail` serves.
fn keeps_bodies(cfg: &EmailConfig) -> bool {
    !matches!(
        cfg.transport,
        crate::config::EmailTransportKind::Smtp { .. }
    )
}

/// The server accepted the email: SENT, in a statement of its own. Bodies may carry
/// single-use tokens: they are kept no longer than needed (unless `keep_bodies`).
async fn mark_sent(conn: &mut PgConn, id: Uuid, keep_bodies: bool) -> AppResult<Delivery> {
    let target = emails::table
        .find(id)
        .filter(emails::status.eq(EmailStatus::Pending));
    let sent = (
        emails::status.eq(EmailStatus::Sent),
        emails::sent_at.eq(Utc::now()),
        emails::attempts.eq(emails::attempts + 1),
        emails::last_error.eq(None::<String>),
    );
    if keep_bodies {
        diesel::update(target).set(sent).execute(conn).await?;
    } else {
        diesel::update(target)
            .set((
                sent,
                emails::body_text.eq(None::<String>),
                emails::body_html.eq(None::<String>),
            ))
            .execute(conn)
            .await?;
    }
    Ok(Delivery::Sent)
}

fn outgoing(email: &Email) -> OutgoingEmail {
    OutgoingEmail {
        to: email.recipient.clone(),
        subject: email.subject.clone(),
        text: email.body_text.clone().unwrap_or_default(),
        html: email.body_html.clone().unwrap_or_default(),
    }
}

/// A failed attempt: DEAD after the last allowed one, else the next attempt is scheduled
/// through the outbox with a doubling delay (one short transaction).
async fn record_failure(
    conn: &mut PgConn,
    cfg: &EmailConfig,
    email: &Email,
    error: String,
) -> AppResult<Delivery> {
    conn.transaction::<_, AppError, _>(async |conn| {
        record_failure_in(conn, cfg, email, error).await
    })
    .await
}

async fn record_failure_in(
    conn: &mut PgConn,
    cfg: &EmailConfig,
    email: &Email,
    error: String,
) -> AppResult<Delivery> {
    let attempts = email.attempts + 1;
    if attempts >= cfg.max_attempts {
        diesel::update(emails::table.find(email.id))
            .set((
                emails::status.eq(EmailStatus::Dead),
                emails::attempts.eq(attempts),
                emails::last_error.eq(&error),
            ))
            .reuse()
            .execute(conn)
            .await?;
        Ok(Delivery::Dead(error))
    } else {
        let at = Utc::now() + backoff(cfg.retry_base, attempts);
        diesel::update(emails::table.find(email.id))
            .set((
                emails::attempts.eq(attempts),
                emails::last_error.eq(&error),
                emails::next_attempt_at.eq(at),
            ))
            .reuse()
            .execute(conn)
            .await?;
        crate::outbox::enqueue(conn, &SendEmail::new(email.id), at).await?;
        Ok(Delivery::RetryAt(at))
    }
}

/// Due work re-derived from Postgres: pending emails whose attempt was due more than
/// `stale_after` ago and that have no undispatched outbox row get a fresh one. This is what
/// makes a Redis flush (or a worker killed mid-job) harmless. Returns how many were re-queued.
pub async fn redispatch_stale(
    conn: &mut PgConn,
    stale_after: std::time::Duration,
) -> AppResult<usize> {
    let cutoff = Utc::now()
        - chrono::Duration::from_std(stale_after).unwrap_or(chrono::Duration::minutes(2));
    conn.transaction::<_, AppError, _>(async |conn| {
        let pending_in_outbox = outbox::table
            .filter(outbox::dispatched_at.is_null())
            .filter(outbox::queue.eq(SendEmail::QUEUE))
            .select(diesel::dsl::sql::<diesel::sql_types::Uuid>(
                "(payload->>'email_id')::uuid",
            ));
        let stale: Vec<Uuid> = emails::table
            .filter(emails::status.eq(EmailStatus::Pending))
            .filter(emails::next_attempt_at.lt(cutoff))
            .filter(diesel::dsl::not(emails::id.eq_any(pending_in_outbox)))
            .select(emails::id)
            .limit(1000)
            .for_update()
            .skip_locked()
            .load(conn)
            .await?;
        let now = Utc::now();
        for id in &stale {
            crate::outbox::enqueue(conn, &SendEmail::new(*id), now).await?;
        }
        diesel::update(emails::table.filter(emails::id.eq_any(&stale)))
            .set(emails::next_attempt_at.eq(now))
            .execute(conn)
            .await?;
        Ok(stale.len())
    })
    .await
}

/// An operator retries a DEAD email: it becomes PENDING with fresh attempts and is queued
/// again through the outbox. Returns false when the email is not dead (nothing to do).
pub async fn revive(conn: &mut PgConn, email_id: Uuid) -> AppResult<bool> {
    conn.transaction::<_, AppError, _>(async |conn| {
        let n = diesel::update(
            emails::table
                .find(email_id)
                .filter(emails::status.eq(EmailStatus::Dead)),
        )
        .set((
            emails::status.eq(EmailStatus::Pending),
            emails::attempts.eq(0),
            emails::next_attempt_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
        if n == 1 {
            crate::outbox::enqueue(conn, &SendEmail::new(email_id), Utc::now()).await?;
        }
        Ok(n == 1)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_memory_transport_keeps_what_was_sent() {
        let (mailer, sent) = Mailer::memory();
        let email = OutgoingEmail {
            to: "a@contoso.com".into(),
            subject: "s".into(),
            text: "t".into(),
            html: "<p>t</p>".into(),
        };
        mailer.send("id", &email).await.unwrap();
        assert_eq!(*sent.lock().unwrap(), vec![email]);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let base = Duration::from_secs(30);
        assert_eq!(backoff(base, 1).num_seconds(), 30);
        assert_eq!(backoff(base, 2).num_seconds(), 60);
        assert_eq!(backoff(base, 3).num_seconds(), 120);
        assert_eq!(backoff(base, 40).num_seconds(), 3600);
    }
}
