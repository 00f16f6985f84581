//! Test clocks (operators, non-production): make time pass for one partner.

use async_graphql::{Context, Object, ID};
use gateway_domain::clock;

use super::billing_types::TestClock;
use super::{actor, conn, parse_id, principal, services};

#[derive(Default)]
pub struct ClockQuery;

#[Object]
impl ClockQuery {
    async fn test_clock(
        &self,
        ctx: &Context<'_>,
        partner_id: ID,
    ) -> async_graphql::Result<TestClock> {
        let p = principal(ctx)?;
        let partner_id = parse_id("partnerId", &partner_id)?;
        let mut c = conn(ctx).await?;
        Ok(clock::get(&mut c, &services(ctx).config, p, partner_id)
            .await?
            .into())
    }
}

#[derive(Default)]
pub struct ClockMutation;

#[Object]
impl ClockMutation {
    /// Moves the partner's clock forward by `days` and/or `seconds`; the due work that falls
    /// in between (renewals, reminders, lapses, expiries, activations) is dispatched at once.
    async fn advance_test_clock(
        &self,
        ctx: &Context<'_>,
        partner_id: ID,
        #[graphql(default = 0)] days: i32,
        #[graphql(default = 0)] seconds: i64,
    ) -> async_graphql::Result<TestClock> {
        let p = principal(ctx)?;
        let partner_id = parse_id("partnerId", &partner_id)?;
        let svc = services(ctx);
        let mut c = conn(ctx).await?;
        let by = (days as i64)
            .checked_mul(86_400)
            .and_then(|d| d.checked_add(seconds))
            .ok_or_else(|| gateway_domain::AppError::bad_input("days", "too large"))?;
        let moved = clock::advance(&mut c, &svc.config, p, &actor(ctx)?, partner_id, by).await?;
        Ok(moved.into())
    }
}
