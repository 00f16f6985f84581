//! GraphQL subscriptions over graphql-transport-ws (`/graphql/ws`): a portal sees a benefit
//! activation complete, or a subscription renew, without polling.

use async_graphql::{Context, Subscription, ID};
use futures::Stream;
use gateway_domain::events::Event;
use uuid::Uuid;

use super::benefit_types::Benefit;
use super::billing_types::Subscription as SubscriptionType;
use super::{opt_id, principal, shared};

#[derive(Default)]
pub struct SubscriptionRoot;

/// Events of one partner (optionally one object), as they commit. Following one object, the
/// stream starts with that object as it is now: it is read after the receiver exists, so a
/// client that has it misses no later change (the server's acknowledgement that the
/// subscription is live).
fn events(
    ctx: &Context<'_>,
    partner_id: Option<&ID>,
    object: Option<&ID>,
    kind: fn(&Event) -> Option<Uuid>,
) -> async_graphql::Result<impl Stream<Item = Uuid>> {
    let partner =
        gateway_domain::events::audience(principal(ctx)?, opt_id("partnerId", partner_id)?)?;
    let object = opt_id("id", object)?;
    let rx = shared(ctx).events.subscribe();
    let now = futures::stream::iter(object);
    Ok(futures::StreamExt::chain(
        now,
        futures::stream::unfold(rx, move |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) if e.partner_id() == partner => {
                        if let Some(id) = kind(&e).filter(|id| object.is_none_or(|o| o == *id)) {
                            return Some((id, rx));
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }),
    ))
}

#[Subscription]
impl SubscriptionRoot {
    /// A benefit of the partner changed (activation state, balance, assignment, revocation).
    /// Give `benefitId` to follow one: the first event is then the benefit as it is now (the
    /// subscription is live from there). Operators name the partner.
    async fn benefit_updated<'a>(
        &self,
        ctx: &Context<'a>,
        partner_id: Option<ID>,
        benefit_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = Benefit> + 'a> {
        let ids = events(ctx, partner_id.as_ref(), benefit_id.as_ref(), |e| match e {
            Event::Benefit { id, .. } => Some(*id),
            _ => None,
        })?;
        let pool = shared(ctx).pool.clone();
        let p = principal(ctx)?.clone();
        Ok(futures::StreamExt::filter_map(ids, move |id| {
            let pool = pool.clone();
            let p = p.clone();
            async move {
                let mut c = pool.get().await.ok()?;
                gateway_domain::benefits::entitlements::load_visible(&mut c, &p, id, false)
                    .await
                    .ok()
                    .map(Benefit)
            }
        }))
    }

    /// A subscription of the partner changed: activated, renewed, a renewal charge failed,
    /// auto-renew turned off, entered the renewal window, set to end on its anniversary,
    /// lapsed, cancelled, ended, or its refund moved (pending, refunded, failed). Give
    /// `subscriptionId` to follow one: the first event is then the subscription as it is now
    /// (the subscription is live from there). Operators name the partner.
    async fn subscription_updated<'a>(
        &self,
        ctx: &Context<'a>,
        partner_id: Option<ID>,
        subscription_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = SubscriptionType> + 'a> {
        let ids = events(
            ctx,
            partner_id.as_ref(),
            subscription_id.as_ref(),
            |e| match e {
                Event::Subscription { id, .. } => Some(*id),
                _ => None,
            },
        )?;
        let pool = shared(ctx).pool.clone();
        let p = principal(ctx)?.clone();
        Ok(futures::StreamExt::filter_map(ids, move |id| {
            let pool = pool.clone();
            let p = p.clone();
            async move {
                let mut c = pool.get().await.ok()?;
                gateway_domain::subscriptions::store::load_visible(&mut c, &p, id, false)
                    .await
                    .ok()
                    .map(SubscriptionType)
            }
        }))
    }
}
