//! Relay's `node(id:)`: which kind of entity an id names. Every entity's id is a UUIDv7 made
//! by this system (globally unique across tables), except offers, whose ids are their catalog
//! codes (`ACTION_PACK`, `SILVER`, …); so an id is its own global id, and one statement of
//! primary-key probes finds its kind. Whether the caller may see it is the entity's own rule,
//! applied by the loader the caller goes through next.

use diesel::sql_types::{Text, Uuid as SqlUuid};
use uuid::Uuid;

use crate::db::prelude::*;

use crate::db::PgConn;
use crate::error::AppResult;

/// The kinds of entity `node(id:)` returns (GraphQL types implementing `Node`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Partner,
    User,
    Subscription,
    Order,
    Invoice,
    Benefit,
    ServiceRequest,
    PaymentMethod,
    Offer,
}

#[derive(diesel::QueryableByName)]
struct Kind {
    #[diesel(sql_type = Text)]
    kind: String,
}

/// The kind of entity with this id, if any.
pub async fn kind_of(conn: &mut PgConn, id: &str) -> AppResult<Option<NodeKind>> {
    let Ok(uuid) = Uuid::parse_str(id.trim()) else {
        let found: Option<Kind> =
            diesel::sql_query("SELECT 'Offer' AS kind FROM offers WHERE id = $1")
                .bind::<Text, _>(id.trim())
                .get_result(conn)
                .await
                .optional()?;
        return Ok(found.map(|_| NodeKind::Offer));
    };
    let found: Option<Kind> = diesel::sql_query(
        "SELECT kind FROM (
           SELECT 'Partner' AS kind FROM partners WHERE id = $1
           UNION ALL SELECT 'User' FROM users WHERE id = $1
           UNION ALL SELECT 'Subscription' FROM subscriptions WHERE id = $1
           UNION ALL SELECT 'Order' FROM orders WHERE id = $1
           UNION ALL SELECT 'Invoice' FROM invoices WHERE id = $1
           UNION ALL SELECT 'Benefit' FROM entitlements WHERE id = $1
           UNION ALL SELECT 'ServiceRequest' FROM service_requests WHERE id = $1
           UNION ALL SELECT 'PaymentMethod' FROM payment_methods WHERE id = $1
         ) k LIMIT 1",
    )
    .bind::<SqlUuid, _>(uuid)
    .get_result(conn)
    .await
    .optional()?;
    Ok(found.map(|k| match k.kind.as_str() {
        "Partner" => NodeKind::Partner,
        "User" => NodeKind::User,
        "Subscription" => NodeKind::Subscription,
        "Order" => NodeKind::Order,
        "Invoice" => NodeKind::Invoice,
        "Benefit" => NodeKind::Benefit,
        "ServiceRequest" => NodeKind::ServiceRequest,
        _ => NodeKind::PaymentMethod,
    }))
}
