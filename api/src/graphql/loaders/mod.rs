//! DataLoaders, one file per table: a list of N parents costs one statement per nested
//! field instead of N. Built per request, so their batches count towards that request's
//! SQL statements (the `x-sql-statements` header; docs/BENCHMARKS.md).
//! Batches run on async-graphql's `tokio-timer` feature (tokio's timer; without it, each
//! batch's delay ran on a thread of its own).

mod azure_credit_grants;
mod benefit_assignments;
mod invoices;
mod offer_benefits;
mod offers;
mod payment_methods;
mod product_keys;
mod service_request_notes;
mod subscriptions;
mod test_clocks;
mod users;

pub use azure_credit_grants::AzureCreditGrants;
pub use benefit_assignments::CurrentAssignments;
pub use invoices::InvoiceOfOrder;
pub use offer_benefits::OfferBenefits;
pub use offers::{Catalog, Offers, CATALOG_KEPT};
pub use payment_methods::UsablePaymentMethods;
pub use product_keys::KeyReveals;
pub use service_request_notes::Notes;
pub use subscriptions::{LatestPaidOrders, VisibleSubscriptions};
pub use test_clocks::ClockOffsets;
pub use users::PartnerUsers;

use async_graphql::dataloader::DataLoader;
use gateway_domain::config::Config;
use gateway_domain::db::{DbPool, PgConn};
use gateway_domain::permissions::Principal;
use gateway_domain::AppError;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Weak};

use diesel_async::pooled_connection::deadpool::Object;

pub struct Loaders {
    pub offers: DataLoader<Offers>,
    pub offer_benefits: DataLoader<OfferBenefits>,
    pub key_reveals: DataLoader<KeyReveals>,
    pub assignments: DataLoader<CurrentAssignments>,
    pub azure_grants: DataLoader<AzureCreditGrants>,
    pub clock_offsets: DataLoader<ClockOffsets>,
    pub notes: DataLoader<Notes>,
    pub users: DataLoader<PartnerUsers>,
    pub invoice_of_order: DataLoader<InvoiceOfOrder>,
    pub subscriptions: DataLoader<VisibleSubscriptions>,
    pub payment_methods: DataLoader<UsablePaymentMethods>,
    pub latest_paid_orders: DataLoader<LatestPaidOrders>,
    /// One connection shared by the root lists read at the same time.
    pub reader: Reader,
}

impl Loaders {
    /// Loaders for one request; their batches count statements into `statements`. `catalog`
    /// is the process's kept offer catalog; `principal` the caller, for the loaders whose
    /// rows the domain shows only to some (users, invoices).
    pub fn new(
        pool: &DbPool,
        config: &Arc<Config>,
        catalog: &Arc<Catalog>,
        statements: Arc<AtomicU32>,
        principal: Option<Principal>,
    ) -> Self {
        let db = Db(pool.clone());
        let spawner = move || {
            let counter = statements.clone();
            move |fut| {
                tokio::spawn(gateway_domain::db::counting_statements(
                    counter.clone(),
                    fut,
                ))
            }
        };
        Self {
            offers: DataLoader::new(Offers(db.clone(), catalog.clone()), spawner()),
            offer_benefits: DataLoader::new(OfferBenefits(db.clone()), spawner()),
            key_reveals: DataLoader::new(KeyReveals(db.clone()), spawner()),
            assignments: DataLoader::new(CurrentAssignments(db.clone()), spawner()),
            azure_grants: DataLoader::new(AzureCreditGrants(db.clone()), spawner()),
            clock_offsets: DataLoader::new(ClockOffsets(db.clone(), config.clone()), spawner()),
            notes: DataLoader::new(Notes(db.clone()), spawner()),
            users: DataLoader::new(PartnerUsers(db.clone(), principal.clone()), spawner()),
            invoice_of_order: DataLoader::new(
                InvoiceOfOrder(db.clone(), principal.clone()),
                spawner(),
            ),
            subscriptions: DataLoader::new(VisibleSubscriptions(db.clone(), principal), spawner()),
            payment_methods: DataLoader::new(UsablePaymentMethods(db.clone()), spawner()),
            latest_paid_orders: DataLoader::new(LatestPaidOrders(db), spawner()),
            reader: Reader {
                pool: pool.clone(),
                slot: tokio::sync::Mutex::new(Weak::new()),
            },
        }
    }
}

/// The pool, as the loaders use it.
#[derive(Clone)]
pub struct Db(DbPool);

impl Db {
    async fn conn(
        &self,
    ) -> Result<diesel_async::pooled_connection::deadpool::Object<PgConn>, async_graphql::Error>
    {
        self.0.get().await.map_err(|e| AppError::from(e).into())
    }
}

/// A request's root lists (`subscriptions`, `benefits`, `invoices`, `orders`) start together;
/// through the reader they share one pooled connection, so their statements go to Postgres
/// in one write and one backend answers them in turn (pipelined), instead of three connections
/// with a round trip each. The connection goes back to the pool when the last list holding it
/// has its rows, before any nested field runs, so a request never waits for a second
/// connection while it holds one here.
pub struct Reader {
    pool: DbPool,
    slot: tokio::sync::Mutex<Weak<Object<PgConn>>>,
}

impl Reader {
    /// The connection another list of this request reads on now, or one from the pool.
    pub async fn get(&self) -> Result<Arc<Object<PgConn>>, AppError> {
        let mut slot = self.slot.lock().await;
        if let Some(shared) = slot.upgrade() {
            return Ok(shared);
        }
        let conn = Arc::new(self.pool.get().await?);
        *slot = Arc::downgrade(&conn);
        Ok(conn)
    }
}

/// Rows grouped under their parent's key; parents without rows get an empty list.
fn group<K: Hash + Eq + Clone, V>(
    keys: &[K],
    rows: impl IntoIterator<Item = V>,
    key: impl Fn(&V) -> K,
) -> HashMap<K, Vec<V>> {
    let mut map: HashMap<K, Vec<V>> = keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    for row in rows {
        map.entry(key(&row)).or_default().push(row);
    }
    map
}

fn err(e: AppError) -> async_graphql::Error {
    e.into()
}

/// The caller a loader serves, or UNAUTHENTICATED.
fn caller(principal: &Option<Principal>) -> Result<&Principal, async_graphql::Error> {
    principal
        .as_ref()
        .ok_or_else(|| err(AppError::Unauthenticated))
}
