//! The partner's renewal settings: turning auto-renew off (one-way until the next renewal)
//! and choosing the card automatic renewals charge.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use super::plan;
use crate::audit::{self, Actor};
use crate::billing::payment_methods;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::subscriptions;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::subscriptions::store::load_visible;

/// Turns automatic renewal off. One-way until the next renewal (a manual renewal turns it on
/// again). Turning off what is already off changes nothing.
pub async fn turn_off_auto_renew(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
) -> AppResult<Subscription> {
    principal.require(Action::Purchase)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sub = load_visible(conn, principal, id, true).await?;
        if !sub.status.in_good_standing() {
            return Err(AppError::not_eligible(
                "NOT_ACTIVE",
                format!(
                    "auto-renew applies to active subscriptions; this one is {}",
                    sub.status
                ),
            ));
        }
        if !sub.auto_renew {
            return Ok(sub);
        }
        let now = crate::clock::now_for(conn, &svc.config, sub.partner_id).await?;
        let sub = plan::auto_renew_off(conn, sub.id, now).await?;
        audit::record(
            conn,
            actor,
            Some(sub.partner_id),
            "subscription.auto_renew_off",
            ("subscription", sub.id.to_string()),
            json!({"term": sub.term}),
        )
        .await?;
        Ok(sub)
    })
    .await
}

/// Chooses the saved card automatic renewal charges.
pub async fn set_payment_method(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
    payment_method_id: Uuid,
) -> AppResult<Subscription> {
    principal.require(Action::Purchase)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let sub = load_visible(conn, principal, id, true).await?;
        if !sub.status.in_good_standing() {
            return Err(AppError::not_eligible(
                "NOT_ACTIVE",
                format!("this subscription is {}", sub.status),
            ));
        }
        let pm = payment_methods::usable(conn, sub.partner_id, payment_method_id).await?;
        let sub: Subscription = diesel::update(subscriptions::table.find(sub.id))
            .set((
                subscriptions::payment_method_id.eq(pm.id),
                subscriptions::updated_at.eq(Utc::now()),
            ))
            .returning(Subscription::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(sub.partner_id),
            "subscription.payment_method_changed",
            ("subscription", sub.id.to_string()),
            json!({"brand": pm.brand, "last4": pm.last4}),
        )
        .await?;
        Ok(sub)
    })
    .await
}
