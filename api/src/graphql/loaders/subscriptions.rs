use async_graphql::dataloader::Loader;
use gateway_domain::db::models::{Order, Subscription};
use gateway_domain::subscriptions::{eligibility, store};
use std::collections::HashMap;
use uuid::Uuid;

use gateway_domain::permissions::Principal;

use super::{caller, err, Db};

/// By id: the subscription, if the caller may see it (`Order.subscription`).
pub struct VisibleSubscriptions(pub Db, pub Option<Principal>);

impl Loader<Uuid> for VisibleSubscriptions {
    type Value = Subscription;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let c = self.0.conn().await?;
        let rows = store::visible_by_ids(&c, caller(&self.1)?, ids)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(|s| (s.id, s)).collect())
    }
}

/// By subscription: its latest paid order, the term a refund would pay back
/// (`Subscription.refundEligibility`). The subscriptions asked for are ones the caller sees.
pub struct LatestPaidOrders(pub Db);

impl Loader<Uuid> for LatestPaidOrders {
    type Value = Order;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let c = self.0.conn().await?;
        let rows = eligibility::latest_paid_orders(&c, ids)
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .filter_map(|o| o.subscription_id.map(|s| (s, o)))
            .collect())
    }
}
