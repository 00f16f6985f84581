//! Relay's object identification: the `Node` interface, `node(id:)` and `nodes(ids:)`. An
//! entity's id is its global id (`gateway_domain::nodes`); the kind is found in one statement
//! and the entity is then loaded through the same resolver as its own root field, so the
//! tenant rules are those of `partner(id:)`, `order(id:)`, … (another partner's id: null plus
//! `NOT_FOUND`).

use async_graphql::{Context, Interface, Object, PathSegment, ID};
use gateway_domain::nodes::{self, NodeKind};
use gateway_domain::permissions::Action;
use gateway_domain::AppError;

use super::benefit_types::Benefit;
use super::billing_types::{Invoice, Offer, Order, PaymentMethod};
use super::subscription_types::Subscription;
use super::types::{Partner, ServiceRequest, User};
use super::{conn, parse_id, principal};

/// An object with a global id, refetchable with `node(id:)` (Relay's object identification).
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The object's global id: unique across every type, and opaque (store it, send it \
            back, never parse it)."
))]
pub enum Node {
    Partner(Partner),
    User(User),
    Subscription(Subscription),
    Order(Order),
    Invoice(Invoice),
    Benefit(Benefit),
    ServiceRequest(ServiceRequest),
    PaymentMethod(PaymentMethod),
    Offer(Offer),
}

/// The most ids one `nodes` call takes.
pub const MAX_NODES: usize = 100;

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this global id, whatever its type, under the same rules as the type's
    /// own root field: null with `NOT_FOUND` when there is none or the caller may not see it
    /// (another partner's).
    ///
    /// Roles: any signed-in caller.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The object's global id.")] id: ID,
    ) -> async_graphql::Result<Option<Node>> {
        load(ctx, &id).await.map(Some)
    }

    /// The objects with these global ids (at most 100), in the same order; each one the
    /// caller may not see is null, with a `NOT_FOUND` error at its index.
    ///
    /// Roles: any signed-in caller.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Global ids, at most 100.")] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(AppError::bad_input("ids", format!("give at most {MAX_NODES} ids")).into());
        }
        let mut out = Vec::with_capacity(ids.len());
        for (i, id) in ids.iter().enumerate() {
            match load(ctx, id).await {
                Ok(node) => out.push(Some(node)),
                Err(e) => {
                    let mut e = ctx.set_error_path(e.into_server_error(ctx.item.pos));
                    e.path.push(PathSegment::Index(i));
                    ctx.add_error(e);
                    out.push(None);
                }
            }
        }
        Ok(out)
    }
}

async fn load(ctx: &Context<'_>, id: &ID) -> async_graphql::Result<Node> {
    let p = principal(ctx)?;
    let kind = {
        let mut c = conn(ctx).await?;
        nodes::kind_of(&mut c, id).await?
    };
    let Some(kind) = kind else {
        return Err(AppError::NotFound("node").into());
    };
    Ok(match kind {
        NodeKind::Partner => Node::Partner(
            super::partners::PartnerQuery
                .partner(ctx, Some(id.clone()))
                .await?,
        ),
        NodeKind::Subscription => Node::Subscription(
            super::subscriptions::SubscriptionQuery
                .subscription(ctx, id.clone())
                .await?,
        ),
        NodeKind::Order => Node::Order(super::billing::BillingQuery.order(ctx, id.clone()).await?),
        NodeKind::Invoice => Node::Invoice(
            super::billing::BillingQuery
                .invoice(ctx, id.clone())
                .await?,
        ),
        NodeKind::Benefit => Node::Benefit(
            super::benefits::BenefitQuery
                .benefit(ctx, id.clone())
                .await?,
        ),
        NodeKind::ServiceRequest => Node::ServiceRequest(
            super::service_requests::ServiceRequestQuery
                .service_request(ctx, id.clone())
                .await?,
        ),
        NodeKind::User => {
            let uuid = parse_id("id", id)?;
            let mut c = conn(ctx).await?;
            let user = gateway_domain::users::load(&mut c, uuid).await?;
            p.scope_for(Action::ViewPartner, Some(user.partner_id))
                .map_err(|_| AppError::NotFound("user"))?;
            if user.status == gateway_domain::enums::UserStatus::Removed {
                return Err(AppError::NotFound("user").into());
            }
            Node::User(User(user))
        }
        NodeKind::PaymentMethod => {
            let uuid = parse_id("id", id)?;
            let c = conn(ctx).await?;
            // Removed cards are not returned.
            let card = gateway_domain::billing::payment_methods::usable_by_ids(&c, &[uuid])
                .await?
                .pop()
                .ok_or(AppError::NotFound("payment method"))?;
            p.scope_for(Action::Purchase, Some(card.partner_id))
                .map_err(|_| AppError::NotFound("payment method"))?;
            Node::PaymentMethod(card.into())
        }
        NodeKind::Offer => Node::Offer(super::billing_types::offer(ctx, id).await?),
    })
}
