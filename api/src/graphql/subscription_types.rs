//! GraphQL types of subscriptions: the subscription, its renewal window, eligibility to renew
//! or be refunded, and a refund's state.

use async_graphql::ID;
use async_graphql::{Context, Object, SimpleObject};
use chrono::{DateTime, NaiveDate, Utc};
use gateway_domain::billing;
use gateway_domain::db::models;
use gateway_domain::enums::*;
use gateway_domain::subscriptions::{eligibility, rules};

use super::billing_types::{
    money, offer, reasons, IneligibilityReason, Invoice, Money, Offer, PaymentMethod,
};
use super::{conn, loaders, now_for, principal};
#[derive(SimpleObject)]
/// The calendar days (UTC) on which Renew is available: AD+1 to AD+30.
pub struct RenewalWindow {
    /// First day "Renew" is available (AD+1).
    pub opens_on: NaiveDate,
    /// Last day (AD+30); the subscription lapses the day after.
    pub last_day: NaiveDate,
}

#[derive(SimpleObject)]
/// Whether something can be done now, and if not why.
pub struct Eligibility {
    /// True when it can be done now.
    pub eligible: bool,
    /// Why not (empty when eligible).
    pub reasons: Vec<IneligibilityReason>,
}

#[derive(SimpleObject)]
/// Whether cancelling now would be refunded, and if not why.
pub struct RefundEligibility {
    /// True when a cancellation now would be refunded.
    pub eligible: bool,
    /// Why not (empty when eligible).
    pub reasons: Vec<IneligibilityReason>,
    /// The last moment a refund can be asked for (30 days after payment).
    pub deadline: Option<DateTime<Utc>>,
    /// What a refund would pay back.
    pub amount: Money,
}

impl From<eligibility::RefundEligibility> for RefundEligibility {
    fn from(e: eligibility::RefundEligibility) -> Self {
        Self {
            eligible: e.eligible,
            reasons: reasons(e.reasons),
            deadline: e.deadline,
            amount: money(e.amount_minor, &e.currency),
        }
    }
}

/// A package the partner bought (Action Pack or competency package), renewed yearly on its anniversary date.
pub struct Subscription(pub models::Subscription);

/// A package the partner bought (Action Pack or competency package), renewed yearly on its anniversary date.
#[Object]
impl Subscription {
    /// The subscription's global id.
    pub(crate) async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The offer bought.
    async fn offer(&self, ctx: &Context<'_>) -> async_graphql::Result<Offer> {
        offer(ctx, &self.0.offer_id).await
    }
    /// Where the subscription stands.
    async fn status(&self) -> SubscriptionStatus {
        self.0.status
    }
    /// True: the saved card is charged on the anniversary date.
    async fn auto_renew(&self) -> bool {
        self.0.auto_renew
    }
    /// 1 for the first year, +1 per renewal.
    async fn term(&self) -> i32 {
        self.0.term
    }
    /// Competency packages: the competencies the package is bound to.
    async fn competencies(&self) -> &[String] {
        &self.0.competencies
    }
    /// When it first became active.
    async fn activated_at(&self) -> Option<DateTime<Utc>> {
        self.0.activated_at
    }
    /// When the current term started.
    async fn term_started_at(&self) -> Option<DateTime<Utc>> {
        self.0.term_started_at
    }
    /// The anniversary date (AD): the current term ends and renewal happens here.
    async fn anniversary_date(&self) -> Option<DateTime<Utc>> {
        self.0.anniversary_at
    }
    /// The days on which Renew is available (null until active).
    async fn renewal_window(&self) -> Option<RenewalWindow> {
        self.0.anniversary_at.map(|ad| {
            let (opens_on, last_day) = rules::renewal_window(ad);
            RenewalWindow { opens_on, last_day }
        })
    }
    /// Whether "Renew" is available now, and why not.
    async fn can_renew(&self, ctx: &Context<'_>) -> async_graphql::Result<Eligibility> {
        let now = now_for(ctx, self.0.partner_id).await?;
        let r = rules::renewal_blockers(self.0.status, self.0.anniversary_at, now);
        Ok(Eligibility {
            eligible: r.is_empty(),
            reasons: reasons(r),
        })
    }
    /// Whether a cancellation now would be refunded, and why not.
    async fn refund_eligibility(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<RefundEligibility> {
        // Batched: the latest paid orders of a list of subscriptions in one statement, and
        // each partner's clock through its loader; this subscription is one the caller sees.
        let order = loaders(ctx).latest_paid_orders.load_one(self.0.id).await?;
        let now = now_for(ctx, self.0.partner_id).await?;
        Ok(eligibility::refund_eligibility_from(&self.0, order, now).into())
    }
    /// Failed automatic renewal attempts in this term.
    async fn renewal_failures(&self) -> i32 {
        self.0.renewal_failures
    }
    /// The last automatic renewal's error, if it failed.
    async fn last_renewal_error(&self) -> Option<&str> {
        self.0.last_renewal_error.as_deref()
    }
    /// When it ended (lapsed or cancelled).
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.0.ended_at
    }
    /// Why automatic renewal is off; null while it is on. `NO_CARD` (bought by bank transfer):
    /// renew by hand in the renewal window, by card or by bank transfer.
    async fn auto_renew_off_reason(&self) -> Option<AutoRenewOffReason> {
        rules::auto_renew_off_reason(
            self.0.auto_renew,
            self.0.ends_at_anniversary,
            self.0.payment_method_id.is_some(),
            self.0.renewal_failures,
        )
    }
    /// Set when a cancellation was decided without a refund: the subscription ends on this
    /// date (its AD), with no renewal window.
    async fn ends_at(&self) -> Option<DateTime<Utc>> {
        rules::ends_at(
            self.0.status,
            self.0.ends_at_anniversary,
            self.0.anniversary_at,
        )
    }
    /// Its invoices, newest first (the purchase and each renewal): download each as a PDF at
    /// `pdfPath`. Global admins, MPN partner admins and operators; others get FORBIDDEN.
    async fn invoices(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Invoice>> {
        let mut c = conn(ctx).await?;
        Ok(
            billing::invoices::of_subscription(&mut c, principal(ctx)?, self.0.id)
                .await?
                .into_iter()
                .map(Invoice)
                .collect(),
        )
    }
    /// The refund of the subscription's latest refunded (or being refunded) order.
    async fn refund(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Refund>> {
        let mut c = conn(ctx).await?;
        Ok(
            gateway_domain::lifecycle::refunds::of_subscription(&mut c, self.0.id)
                .await?
                .map(Refund),
        )
    }
    /// When one of its product keys was first revealed (refunds end then).
    async fn key_revealed_at(&self) -> Option<DateTime<Utc>> {
        self.0.key_revealed_at
    }
    /// True once its upgrade discount was applied to a purchase.
    async fn upgrade_discount_used(&self) -> bool {
        self.0.upgrade_discount_used
    }
    /// The card automatic renewal charges.
    async fn payment_method(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<PaymentMethod>> {
        let Some(id) = self.0.payment_method_id else {
            return Ok(None);
        };
        // Batched; a removed card (or another partner's) reads as none: auto-renewal will
        // fail and say so.
        Ok(loaders(ctx)
            .payment_methods
            .load_one(id)
            .await?
            .filter(|pm| pm.partner_id == self.0.partner_id)
            .map(Into::into))
    }
}

/// The refund of an order.
pub struct Refund(pub models::Refund);

/// The refund of an order.
#[Object]
impl Refund {
    /// Where the refund stands.
    async fn status(&self) -> RefundStatus {
        self.0.status
    }
    /// How much is refunded.
    async fn amount(&self) -> Money {
        money(self.0.amount_minor, &self.0.currency)
    }
    /// REFUND_FAILED: why (the gateway's reason, or the last error before giving up).
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure.as_deref()
    }
    /// REFUNDED: the gateway's refund id, or the outgoing bank transfer an operator recorded.
    async fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }
    /// Gateway calls made so far (card refunds).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// When the refund was decided.
    async fn requested_at(&self) -> DateTime<Utc> {
        self.0.requested_at
    }
    /// When the money went back.
    async fn settled_at(&self) -> Option<DateTime<Utc>> {
        self.0.settled_at
    }
}
