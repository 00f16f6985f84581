use async_graphql::dataloader::Loader;
use gateway_domain::catalog;
use gateway_domain::db::models::Offer;
use std::collections::HashMap;

use super::{err, Db};

/// Offers by id (subscriptions' and orders' `offer`).
pub struct Offers(pub Db);

impl Loader<String> for Offers {
    type Value = Offer;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Offer>, Self::Error> {
        let mut c = self.0.conn().await?;
        let rows = catalog::offers_by_id(&mut c, ids).await.map_err(err)?;
        Ok(rows.into_iter().map(|o| (o.id.clone(), o)).collect())
    }
}
