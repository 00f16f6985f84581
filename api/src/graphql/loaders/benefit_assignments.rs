use async_graphql::dataloader::Loader;
use gateway_domain::benefits::assignments;
use gateway_domain::db::models::BenefitAssignment;
use std::collections::HashMap;
use uuid::Uuid;

use super::{err, group, Db};

/// By entitlement: its current assignments with the assignee's email, oldest first.
pub struct CurrentAssignments(pub Db);

impl Loader<Uuid> for CurrentAssignments {
    type Value = Vec<(BenefitAssignment, String)>;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut c = self.0.conn().await?;
        let rows = assignments::current_assignments(&mut c, ids)
            .await
            .map_err(err)?;
        Ok(group(ids, rows, |(a, _)| a.entitlement_id))
    }
}
