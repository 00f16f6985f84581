//! Subscriptions: list, renew by hand, turn auto-renew off, refund eligibility.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use gateway_domain::enums::SubscriptionStatus;
use gateway_domain::lifecycle::auto_renew;
use gateway_domain::lifecycle::manual_renewal::{self, RenewInput};
use gateway_domain::subscriptions::{eligibility, store as subs};

use super::billing_types::{quote, Order, Quote, RefundEligibility, Subscription};
use super::pagination;
use super::{actor, conn, opt_id, parse_id, principal, reader, services};

#[derive(Default)]
pub struct SubscriptionQuery;

/// A renewal's price now and the terms it is accepted under.
#[derive(async_graphql::SimpleObject)]
pub struct RenewalQuote {
    /// Price, tax, discount and total.
    pub quote: Quote,
    /// Pass this as `acceptTermsVersion` to `renewSubscription`.
    pub terms_version: String,
}

#[Object]
impl SubscriptionQuery {
    /// Newest first; `status` narrows the list.
    ///
    /// Roles: any partner user; operators.
    async fn subscriptions(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
        #[graphql(desc = "Only subscriptions with one of these statuses.")] status: Option<
            Vec<SubscriptionStatus>,
        >,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Subscription, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let c = reader(ctx).await?;
        let rows = subs::list(&c, p, partner_id, status.clone(), before, limit + 1).await?;
        let total = pagination::total_count(ctx, || subs::count(&c, p, partner_id, status)).await?;
        Ok(pagination::connection(
            rows.into_iter().map(Subscription).collect(),
            limit,
            before.is_some(),
            total,
            |s| s.0.id,
        ))
    }

    /// One subscription of the caller's partner (operators: any).
    ///
    /// Roles: any partner user; operators.
    pub(crate) async fn subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription.")] id: ID,
    ) -> async_graphql::Result<Subscription> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(Subscription(
            subs::load_visible(&mut c, p, id, false).await?,
        ))
    }

    /// What renewing this subscription costs now (price, tax, discount, total) and the offer
    /// terms version `renewSubscription` must accept.
    ///
    /// Roles: any partner user; operators.
    async fn renewal_quote(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription to renew.")] subscription_id: ID,
    ) -> async_graphql::Result<RenewalQuote> {
        let p = principal(ctx)?;
        let id = parse_id("subscriptionId", &subscription_id)?;
        let mut c = conn(ctx).await?;
        let r = manual_renewal::renewal_quote(&mut c, p, id).await?;
        Ok(RenewalQuote {
            quote: quote(&r.quote, &r.currency),
            terms_version: r.terms_version,
        })
    }

    /// Would cancelling now be refunded? Shown before a cancellation request is made.
    ///
    /// Roles: any partner user; operators.
    async fn refund_eligibility(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription to cancel.")] subscription_id: ID,
    ) -> async_graphql::Result<RefundEligibility> {
        let p = principal(ctx)?;
        let id = parse_id("subscriptionId", &subscription_id)?;
        let mut c = conn(ctx).await?;
        Ok(
            eligibility::refund_eligibility(&mut c, services(ctx), p, id)
                .await?
                .into(),
        )
    }
}

#[derive(Default)]
pub struct SubscriptionMutation;

#[Object]
impl SubscriptionMutation {
    /// One-way until the next renewal: reminders follow, and "Renew" opens at AD+1.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn turn_off_auto_renew(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription.")] subscription_id: ID,
    ) -> async_graphql::Result<Subscription> {
        let p = principal(ctx)?;
        let id = parse_id("subscriptionId", &subscription_id)?;
        let mut c = conn(ctx).await?;
        Ok(Subscription(
            auto_renew::turn_off_auto_renew(&mut c, services(ctx), p, &actor(ctx)?, id).await?,
        ))
    }

    /// Chooses the saved card that automatic renewal charges.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn set_subscription_payment_method(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription.")] subscription_id: ID,
        #[graphql(desc = "The saved card automatic renewals charge from now on.")]
        payment_method_id: ID,
    ) -> async_graphql::Result<Subscription> {
        let p = principal(ctx)?;
        let id = parse_id("subscriptionId", &subscription_id)?;
        let pm = parse_id("paymentMethodId", &payment_method_id)?;
        let mut c = conn(ctx).await?;
        Ok(Subscription(
            auto_renew::set_payment_method(&mut c, p, &actor(ctx)?, id, pm).await?,
        ))
    }

    /// Renews by card inside the renewal window (AD+1 through AD+30); outside it the error is
    /// NOT_ELIGIBLE with the reason and the date the window opens. Records acceptance of the
    /// offer's current terms (`acceptTermsVersion`, from `renewalQuote`). Turns auto-renew on
    /// again.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn renew_subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription, the payment and the terms version accepted.")]
        input: RenewInput,
    ) -> async_graphql::Result<Order> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(Order(
            manual_renewal::renew(&mut c, services(ctx), p, &actor(ctx)?, input).await?,
        ))
    }
}
