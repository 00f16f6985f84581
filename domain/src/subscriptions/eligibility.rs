//! Refund eligibility (PRODUCT.md 2.5): the rules of `rules::refund_blockers` applied to a
//! subscription's facts on the partner's clock. Read before a cancellation is asked for, and
//! by every use of a benefit that would end it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rules;
use super::store::load_visible;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{orders as orders_t, subscriptions};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::permissions::Principal;
use crate::services::Services;

/// Refund eligibility with its reasons, computed on the partner's clock.
#[derive(Debug, Clone)]
pub struct RefundEligibility {
    pub eligible: bool,
    pub reasons: Vec<Reason>,
    pub deadline: Option<DateTime<Utc>>,
    pub amount_minor: i64,
    pub currency: String,
    /// The paid order a refund would pay back.
    pub order_id: Option<Uuid>,
}

impl RefundEligibility {
    /// What a cancellation request records as shown to the partner.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "eligible": self.eligible,
            "reasons": self.reasons,
            "deadline": self.deadline,
            "amountMinor": self.amount_minor,
            "currency": self.currency,
        })
    }
}

/// The latest paid order of a subscription (the term a refund would cover).
async fn latest_paid_order(conn: &mut PgConn, sub_id: Uuid) -> AppResult<Option<Order>> {
    Ok(orders_t::table
        .filter(orders_t::subscription_id.eq(sub_id))
        .filter(orders_t::status.eq(OrderStatus::Paid))
        .order(orders_t::paid_at.desc())
        .select(Order::as_select())
        .first(conn)
        .await
        .optional()?)
}

/// The latest paid order of each of `sub_ids` that has one, in one statement (the batch behind
/// `Subscription.refundEligibility`).
pub async fn latest_paid_orders(mut conn: &PgConn, sub_ids: &[Uuid]) -> AppResult<Vec<Order>> {
    Ok(orders_t::table
        .filter(orders_t::subscription_id.eq_any(sub_ids))
        .filter(orders_t::status.eq(OrderStatus::Paid))
        .distinct_on(orders_t::subscription_id)
        .order((orders_t::subscription_id, orders_t::paid_at.desc()))
        .select(Order::as_select())
        .load(&mut conn)
        .await?)
}

pub(crate) async fn refund_eligibility_of(
    conn: &mut PgConn,
    svc: &Services,
    sub: &Subscription,
) -> AppResult<RefundEligibility> {
    let now = crate::clock::now_for(conn, &svc.config, sub.partner_id).await?;
    let order = latest_paid_order(conn, sub.id).await?;
    Ok(refund_eligibility_from(sub, order, now))
}

/// Refund eligibility from what it depends on: the subscription, its latest paid order and
/// "now" on the partner's clock.
pub fn refund_eligibility_from(
    sub: &Subscription,
    order: Option<Order>,
    now: DateTime<Utc>,
) -> RefundEligibility {
    let facts = rules::RefundFacts {
        status: sub.status,
        paid_at: order.as_ref().and_then(|o| o.paid_at),
        amount_paid_minor: order.as_ref().map(|o| o.total_minor).unwrap_or(0),
        key_revealed_at: sub.key_revealed_at,
        benefit_activated_at: sub.benefit_activated_at,
        benefit_use: sub.benefit_use,
        upgrade_discount_used: sub.upgrade_discount_used,
        upgraded_at: sub.upgraded_at,
    };
    let (reasons, deadline) = rules::refund_blockers(&facts, now);
    RefundEligibility {
        eligible: reasons.is_empty(),
        reasons,
        deadline,
        amount_minor: facts.amount_paid_minor,
        currency: order
            .as_ref()
            .map(|o| o.currency.clone())
            .unwrap_or_else(|| "USD".into()),
        order_id: order.map(|o| o.id),
    }
}

pub async fn refund_eligibility(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    id: Uuid,
) -> AppResult<RefundEligibility> {
    let sub = load_visible(conn, principal, id, false).await?;
    refund_eligibility_of(conn, svc, &sub).await
}

/// A use of a benefit that ends refund eligibility (PRODUCT.md 2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    KeyReveal,
    Benefit(BenefitUse),
}

impl Use {
    fn doing(self) -> &'static str {
        match self {
            Use::KeyReveal => "revealing a product key",
            Use::Benefit(BenefitUse::TechnicalBenefitActivated) => "activating a technical benefit",
            Use::Benefit(BenefitUse::GtmOfferActivated) => "activating a Go-To-Market offer",
            Use::Benefit(BenefitUse::VsSeatAssigned) => "assigning a Visual Studio subscription",
            Use::Benefit(BenefitUse::AzureUserAssigned) => "assigning an Azure user",
        }
    }
}

/// Every use of a benefit goes through here, inside its transaction, with the subscription
/// locked: while a refund is still possible the caller must have acknowledged that the use
/// ends it (else NOT_ELIGIBLE with REFUND_ACKNOWLEDGEMENT_REQUIRED, until the refund deadline);
/// the first use is recorded on the subscription with its own reason code. Returns whether a
/// refund was possible (for the audit record).
pub(crate) async fn use_benefit(
    conn: &mut PgConn,
    svc: &Services,
    sub: &Subscription,
    what: Use,
    acknowledged: bool,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let refund = refund_eligibility_of(conn, svc, sub).await?;
    if refund.eligible && !acknowledged {
        return Err(AppError::NotEligible(vec![Reason::new(
            "REFUND_ACKNOWLEDGEMENT_REQUIRED",
            format!(
                "{} ends the refund eligibility of this package; call again with \
                 acknowledgeRefundLoss: true to go ahead",
                what.doing()
            ),
        )
        .until(refund.deadline.map(|d| d.to_rfc3339()).unwrap_or_default())]));
    }
    match what {
        Use::KeyReveal if sub.key_revealed_at.is_none() => {
            diesel::update(subscriptions::table.find(sub.id))
                .set(subscriptions::key_revealed_at.eq(now))
                .execute(conn)
                .await?;
        }
        Use::Benefit(u) if sub.benefit_activated_at.is_none() => {
            diesel::update(subscriptions::table.find(sub.id))
                .set((
                    subscriptions::benefit_activated_at.eq(now),
                    subscriptions::benefit_use.eq(u),
                ))
                .execute(conn)
                .await?;
        }
        _ => {}
    }
    Ok(refund.eligible)
}
