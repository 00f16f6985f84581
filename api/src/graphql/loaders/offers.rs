//! Offers, answered from the catalog as the api read it last ([`Catalog`]): the catalog is a
//! handful of rows that change only by migration, so it is read whole on first use and kept
//! [`CATALOG_KEPT`], and read again at once when an id is asked for that it does not hold. An
//! `offer` the kept catalog holds is answered at once, without a DataLoader round (a spawned
//! task and its batch delay). Purchases, renewals and the catalog listing read offers from
//! the database.

use async_graphql::dataloader::Loader;
use gateway_domain::catalog;
use gateway_domain::db::models::Offer;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::{err, Db};

/// How long the api answers `offer` fields from the catalog it read last.
pub const CATALOG_KEPT: Duration = Duration::from_secs(60);

/// The offer catalog as the api read it last, shared by all requests. The catalog changes
/// only by migration (a deploy), and it is a handful of rows, so `offer` fields need not read
/// it on every request: it is read whole, kept for [`CATALOG_KEPT`], and read again sooner
/// when an id is asked for that it does not hold. Purchases, renewals and the catalog listing
/// read offers from the database as before.
#[derive(Default)]
pub struct Catalog(RwLock<Option<Kept>>);

/// When the catalog was read, and its offers by id.
type Kept = (Instant, Arc<HashMap<String, Offer>>);

impl Catalog {
    /// The kept catalog, when it is recent.
    fn fresh(&self) -> Option<Arc<HashMap<String, Offer>>> {
        let kept = self.0.read().ok()?;
        let (read_at, offers) = kept.as_ref()?;
        (read_at.elapsed() < CATALOG_KEPT).then(|| offers.clone())
    }

    /// The kept catalog's offers for `ids`, when it is recent and holds every one of them.
    fn answer(&self, ids: &[String]) -> Option<HashMap<String, Offer>> {
        let offers = self.fresh()?;
        ids.iter()
            .all(|id| offers.contains_key(id))
            .then(|| pick(&offers, ids))
    }

    /// One offer from the kept catalog, when it is recent and holds it.
    pub fn kept(&self, id: &str) -> Option<Offer> {
        self.fresh()?.get(id).cloned()
    }

    fn keep(&self, offers: Arc<HashMap<String, Offer>>) {
        if let Ok(mut kept) = self.0.write() {
            *kept = Some((Instant::now(), offers));
        }
    }
}

fn pick(offers: &HashMap<String, Offer>, ids: &[String]) -> HashMap<String, Offer> {
    ids.iter()
        .filter_map(|id| offers.get(id).map(|o| (id.clone(), o.clone())))
        .collect()
}

/// Offers by id (subscriptions' and orders' `offer`), from the [`Catalog`].
pub struct Offers(pub Db, pub Arc<Catalog>);

impl Loader<String> for Offers {
    type Value = Offer;
    type Error = async_graphql::Error;

    async fn load(&self, ids: &[String]) -> Result<HashMap<String, Offer>, Self::Error> {
        if let Some(found) = self.1.answer(ids) {
            return Ok(found);
        }
        let mut c = self.0.conn().await?;
        let all: HashMap<String, Offer> = catalog::offers(&mut c)
            .await
            .map_err(err)?
            .into_iter()
            .map(|o| (o.id.clone(), o))
            .collect();
        let found = pick(&all, ids);
        self.1.keep(Arc::new(all));
        Ok(found)
    }
}
