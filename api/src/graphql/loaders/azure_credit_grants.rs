use async_graphql::dataloader::Loader;
use gateway_domain::benefits::azure;
use gateway_domain::db::models::AzureCreditGrant;
use std::collections::HashMap;
use uuid::Uuid;

use super::{err, group, Db};

/// By entitlement: its monthly Azure credit grants, oldest month first.
pub struct AzureCreditGrants(pub Db);

impl Loader<Uuid> for AzureCreditGrants {
    type Value = Vec<AzureCreditGrant>;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut c = self.0.conn().await?;
        let rows = azure::azure_grants(&mut c, ids).await.map_err(err)?;
        Ok(group(ids, rows, |g| g.entitlement_id))
    }
}
