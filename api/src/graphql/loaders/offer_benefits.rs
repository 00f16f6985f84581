use async_graphql::dataloader::Loader;
use gateway_domain::catalog;
use gateway_domain::db::models::OfferBenefit;
use std::collections::HashMap;

use super::{err, group, Db};

/// An offer's benefit allocations, in catalog order.
pub struct OfferBenefits(pub Db);

impl Loader<String> for OfferBenefits {
    type Value = Vec<OfferBenefit>;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Self::Value>, Self::Error> {
        let c = self.0.conn().await?;
        let rows = catalog::benefits(&c, ids).await.map_err(err)?;
        Ok(group(ids, rows, |b| b.offer_id.clone()))
    }
}
