use async_graphql::dataloader::Loader;
use gateway_domain::db::models::User;
use std::collections::HashMap;
use uuid::Uuid;

use gateway_domain::permissions::Principal;

use super::{caller, err, group, Db};

/// By partner: its users (invited and active), for the caller.
pub struct PartnerUsers(pub Db, pub Option<Principal>);

impl Loader<Uuid> for PartnerUsers {
    type Value = Vec<User>;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut c = self.0.conn().await?;
        let rows = gateway_domain::users::of_partners(&mut c, caller(&self.1)?, ids)
            .await
            .map_err(err)?;
        Ok(group(ids, rows, |u| u.partner_id))
    }
}
