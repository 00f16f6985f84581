use async_graphql::dataloader::Loader;
use gateway_domain::db::models::ServiceRequestNote;
use gateway_domain::service_requests;
use std::collections::HashMap;
use uuid::Uuid;

use super::{err, group, Db};

/// By service request: its notes, oldest first.
pub struct Notes(pub Db);

impl Loader<Uuid> for Notes {
    type Value = Vec<ServiceRequestNote>;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut c = self.0.conn().await?;
        let rows = service_requests::notes(&mut c, ids).await.map_err(err)?;
        Ok(group(ids, rows, |n| n.service_request_id))
    }
}
