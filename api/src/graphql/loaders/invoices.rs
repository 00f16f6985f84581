use async_graphql::dataloader::Loader;
use gateway_domain::billing::invoices;
use gateway_domain::db::models::Invoice;
use std::collections::HashMap;
use uuid::Uuid;

use gateway_domain::permissions::Principal;

use super::{caller, err, Db};

/// By order: its invoice (absent until paid), for the caller.
pub struct InvoiceOfOrder(pub Db, pub Option<Principal>);

impl Loader<Uuid> for InvoiceOfOrder {
    type Value = Invoice;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let mut c = self.0.conn().await?;
        let rows = invoices::of_orders(&mut c, caller(&self.1)?, ids)
            .await
            .map_err(err)?;
        Ok(rows.into_iter().map(|i| (i.order_id, i)).collect())
    }
}
