//! Time as the domain sees it. Each partner may have a **test clock** (PRODUCT.md 1): its time
//! runs a fixed offset ahead of the real clock, and operators advance it in non-production
//! environments so a test can make a year pass. Every lifecycle rule and every due-work sweep
//! reads the partner's clock through this module. With test clocks disabled (always in
//! production) the offset is never read and partner time is real time.
//!
//! A test clock is an offset, not a frozen time: partner time keeps flowing, and advancing
//! adds to the offset. Due work is read on each partner's clock, so a test clock makes a year
//! pass for one partner only.

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::config::Config;
use crate::db::prelude::*;
use crate::db::schema::{partners, test_clocks};
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};

/// The most a single advance may move a clock: enough for multi-year scenarios, small
/// enough that a typo does not throw a partner into the next century.
pub const MAX_ADVANCE_SECS: i64 = 5 * 366 * 24 * 3600;

/// How many due actions one dispatch of an advance enqueues at a time.
const DISPATCH_BATCH: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestClock {
    pub partner_id: Uuid,
    pub offset_seconds: i64,
    pub now: DateTime<Utc>,
}

fn enabled(config: &Config) -> bool {
    config.enrollment.test_clocks
}

/// How far the partner's clock runs ahead of real time (zero without a test clock).
pub async fn offset(conn: &PgConn, config: &Config, partner_id: Uuid) -> AppResult<Duration> {
    Ok(offsets(conn, config, &[partner_id])
        .await?
        .pop()
        .map(|(_, d)| d)
        .unwrap_or_else(Duration::zero))
}

/// "Now" on a clock running `offset` ahead of real time.
pub fn now_at(offset: Duration) -> DateTime<Utc> {
    Utc::now() + offset
}

/// The clock offsets of these partners (absent: no offset).
pub async fn offsets(
    mut conn: &PgConn,
    config: &Config,
    partner_ids: &[Uuid],
) -> AppResult<Vec<(Uuid, Duration)>> {
    if !enabled(config) {
        return Ok(vec![]);
    }
    let rows: Vec<(Uuid, i64)> = test_clocks::table
        .filter(test_clocks::partner_id.eq_any(partner_ids))
        .select((test_clocks::partner_id, test_clocks::offset_seconds))
        .load(&mut conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(p, s)| (p, Duration::seconds(s)))
        .collect())
}

/// "Now" for a partner.
pub async fn now_for(
    conn: &mut PgConn,
    config: &Config,
    partner_id: Uuid,
) -> AppResult<DateTime<Utc>> {
    Ok(now_at(offset(conn, config, partner_id).await?))
}

fn refuse_when_disabled(config: &Config) -> AppResult<()> {
    if enabled(config) {
        Ok(())
    } else {
        Err(AppError::not_eligible(
            "TEST_CLOCKS_DISABLED",
            "test clocks are disabled in this environment",
        ))
    }
}

pub async fn get(
    conn: &mut PgConn,
    config: &Config,
    principal: &Principal,
    partner_id: Uuid,
) -> AppResult<TestClock> {
    principal.require(Action::Operate)?;
    refuse_when_disabled(config)?;
    ensure_partner(conn, partner_id).await?;
    let offset = offset(conn, config, partner_id).await?;
    Ok(TestClock {
        partner_id,
        offset_seconds: offset.num_seconds(),
        now: Utc::now() + offset,
    })
}

/// NOT_FOUND unless the partner exists.
pub(crate) async fn ensure_partner(conn: &mut PgConn, partner_id: Uuid) -> AppResult<()> {
    partners::table
        .find(partner_id)
        .select(partners::id)
        .first::<Uuid>(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("partner"))?;
    Ok(())
}

/// Moves a partner's clock to the instant `to` (whole seconds, rounded up: the clock lands on
/// `to` or just past it), under the rules of [`advance`].
pub async fn advance_to(
    conn: &mut PgConn,
    config: &Config,
    principal: &Principal,
    actor: &Actor,
    partner_id: Uuid,
    to: DateTime<Utc>,
) -> AppResult<TestClock> {
    let ahead = to - now_for(conn, config, partner_id).await?;
    let seconds = ahead.num_seconds() + i64::from(ahead.subsec_nanos() > 0);
    advance(conn, config, principal, actor, partner_id, seconds).await
}

/// Moves a partner's clock forward by `seconds` (clocks never go back: due work already done
/// cannot be undone) and dispatches the work that fell due in between at once, rather than at
/// the next sweep. Returns the clock after the move.
pub async fn advance(
    conn: &mut PgConn,
    config: &Config,
    principal: &Principal,
    actor: &Actor,
    partner_id: Uuid,
    seconds: i64,
) -> AppResult<TestClock> {
    principal.require(Action::Operate)?;
    refuse_when_disabled(config)?;
    if seconds <= 0 {
        return Err(AppError::bad_input(
            "by",
            "a test clock only moves forward: give a positive duration",
        ));
    }
    if seconds > MAX_ADVANCE_SECS {
        return Err(AppError::bad_input(
            "by",
            "advance at most five years at a time",
        ));
    }
    let moved = conn
        .transaction::<_, AppError, _>(async |conn| {
            ensure_partner(conn, partner_id).await?;
            let offset: i64 = diesel::insert_into(test_clocks::table)
                .values((
                    test_clocks::partner_id.eq(partner_id),
                    test_clocks::offset_seconds.eq(seconds),
                ))
                .on_conflict(test_clocks::partner_id)
                .do_update()
                .set((
                    test_clocks::offset_seconds.eq(test_clocks::offset_seconds + seconds),
                    test_clocks::updated_at.eq(diesel::dsl::now),
                ))
                .returning(test_clocks::offset_seconds)
                .get_result(conn)
                .await?;
            audit::record(
                conn,
                actor,
                Some(partner_id),
                "test_clock.advanced",
                ("partner", partner_id.to_string()),
                json!({"by_seconds": seconds, "offset_seconds": offset}),
            )
            .await?;
            Ok(TestClock {
                partner_id,
                offset_seconds: offset,
                now: Utc::now() + Duration::seconds(offset),
            })
        })
        .await?;
    // Everything that fell due, in batches of at most DISPATCH_BATCH actions.
    while crate::due::dispatch_due(conn, config, Some(partner_id), DISPATCH_BATCH).await?
        == DISPATCH_BATCH as usize
    {}
    Ok(moved)
}
