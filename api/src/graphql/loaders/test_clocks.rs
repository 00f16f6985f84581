use async_graphql::dataloader::Loader;
use gateway_domain::clock;
use gateway_domain::config::Config;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

use super::{err, Db};

/// By partner: its test-clock offset (zero without a clock, or with test clocks disabled).
pub struct ClockOffsets(pub Db, pub Arc<Config>);

impl Loader<Uuid> for ClockOffsets {
    type Value = chrono::Duration;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut map: HashMap<Uuid, chrono::Duration> = ids
            .iter()
            .map(|id| (*id, chrono::Duration::zero()))
            .collect();
        let c = self.0.conn().await?;
        // Without test clocks enabled, `offsets` sends nothing and returns nothing.
        map.extend(clock::offsets(&c, &self.1, ids).await.map_err(err)?);
        Ok(map)
    }
}
