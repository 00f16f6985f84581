use async_graphql::dataloader::Loader;
use gateway_domain::db::models::PaymentMethod;
use std::collections::HashMap;
use uuid::Uuid;

use super::{err, Db};

/// By id: the payment method, unless removed (`Subscription.paymentMethod`; the resolver
/// checks it belongs to the subscription's partner).
pub struct UsablePaymentMethods(pub Db);

impl Loader<Uuid> for UsablePaymentMethods {
    type Value = PaymentMethod;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let c = self.0.conn().await?;
        let rows = gateway_domain::billing::payment_methods::usable_by_ids(&c, ids)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(|p| (p.id, p)).collect())
    }
}
