//! Test clocks (operators, non-production): make time pass for one partner.

use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use gateway_domain::clock;

use super::billing_types::TestClock;
use super::{actor, conn, parse_id, principal, services};

#[derive(Default)]
pub struct ClockQuery;

#[Object]
impl ClockQuery {
    /// A partner's test clock (operators, outside production).
    ///
    /// Roles: operators.
    async fn test_clock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The partner.")] partner_id: ID,
    ) -> async_graphql::Result<TestClock> {
        let p = principal(ctx)?;
        let partner_id = parse_id("partnerId", &partner_id)?;
        let mut c = conn(ctx).await?;
        Ok(clock::get(&mut c, &services(ctx).config, p, partner_id)
            .await?
            .into())
    }

    /// Waits until nothing remains to be done for the partner (every partner without
    /// `partnerId`): no email waiting to be sent and no due action (renewal, reminder, lapse,
    /// expiry, activation, …) whose time has come on the partner's clock, queued, running or
    /// not yet dispatched. Returns as soon as that holds; after `timeoutSeconds` (at most 60,
    /// and less than HTTP_REQUEST_TIMEOUT_MS) it fails with `TIMEOUT`, naming what was still
    /// busy. For end-to-end tests: advance the clock, wait for idle, assert. Operators only;
    /// not served in production (`NOT_ELIGIBLE`/`NOT_IN_PRODUCTION`).
    ///
    /// Roles: operators.
    async fn wait_for_idle(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The partner to wait for (omit: every partner).")] partner_id: Option<ID>,
        #[graphql(default = 10, desc = "How long to wait at most, in seconds.")]
        timeout_seconds: i32,
    ) -> async_graphql::Result<Idle> {
        let p = principal(ctx)?;
        let partner_id = partner_id
            .map(|id| parse_id("partnerId", &id))
            .transpose()?;
        let svc = services(ctx);
        let timeout = std::time::Duration::from_secs(timeout_seconds.max(0) as u64);
        let waited =
            gateway_domain::queues::wait_for_idle(&svc.pool, &svc.config, p, partner_id, timeout)
                .await?;
        Ok(Idle {
            waited_ms: waited.as_millis() as i64,
        })
    }
}

/// What `waitForIdle` found.
#[derive(SimpleObject)]
pub struct Idle {
    /// How long the wait took, in milliseconds (0 when already idle).
    pub waited_ms: i64,
}

#[derive(Default)]
pub struct ClockMutation;

#[Object]
impl ClockMutation {
    /// Moves the partner's clock forward by `days` and/or `seconds`, or to the instant `to`
    /// (not with `days` or `seconds`); the due work that falls in between (renewals, reminders,
    /// lapses, expiries, activations) is dispatched at once. Clocks only move forward, at most
    /// five years at a time.
    ///
    /// Roles: operators.
    async fn advance_test_clock(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The partner whose clock moves.")] partner_id: ID,
        #[graphql(default = 0, desc = "Days to move forward.")] days: i32,
        #[graphql(default = 0, desc = "Seconds to move forward (added to `days`).")] seconds: i64,
        #[graphql(desc = "The instant to move the clock to (not with `days` or `seconds`).")]
        to: Option<DateTime<Utc>>,
    ) -> async_graphql::Result<TestClock> {
        let p = principal(ctx)?;
        let partner_id = parse_id("partnerId", &partner_id)?;
        let svc = services(ctx);
        let mut c = conn(ctx).await?;
        if let Some(to) = to {
            if days != 0 || seconds != 0 {
                return Err(gateway_domain::AppError::bad_input(
                    "to",
                    "give either `to` or `days`/`seconds`, not both",
                )
                .into());
            }
            let moved =
                clock::advance_to(&mut c, &svc.config, p, &actor(ctx)?, partner_id, to).await?;
            return Ok(moved.into());
        }
        let by = (days as i64)
            .checked_mul(86_400)
            .and_then(|d| d.checked_add(seconds))
            .ok_or_else(|| gateway_domain::AppError::bad_input("days", "too large"))?;
        let moved = clock::advance(&mut c, &svc.config, p, &actor(ctx)?, partner_id, by).await?;
        Ok(moved.into())
    }
}
