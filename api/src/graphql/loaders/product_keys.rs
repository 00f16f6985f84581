use async_graphql::dataloader::Loader;
use chrono::{DateTime, Utc};
use gateway_domain::benefits::reveal;
use std::collections::HashMap;
use uuid::Uuid;

use super::{err, Db};

/// By entitlement: when its key was first revealed (None: not yet). Entitlements without a
/// key are absent.
pub struct KeyReveals(pub Db);

impl Loader<Uuid> for KeyReveals {
    type Value = Option<DateTime<Utc>>;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut c = self.0.conn().await?;
        Ok(reveal::key_reveals(&mut c, ids)
            .await
            .map_err(err)?
            .into_iter()
            .collect())
    }
}
