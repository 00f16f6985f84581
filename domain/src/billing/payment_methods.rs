//! Saved cards: tokenized by the gateway; we keep the token, brand, last four and expiry.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db::models::PaymentMethod;
use crate::db::prelude::*;
use crate::db::schema::payment_methods;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::providers::payments::{CardDetails, GatewayError};
use crate::services::Services;
use crate::validation as v;

#[derive(Clone, async_graphql::InputObject)]
pub struct CardInput {
    /// Sent to the gateway to be tokenized; never stored, logged or returned.
    pub number: String,
    pub exp_month: i32,
    pub exp_year: i32,
    pub cvc: String,
    pub holder_name: String,
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardInput([redacted])")
    }
}

pub async fn add_card(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    input: CardInput,
) -> AppResult<PaymentMethod> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    let Principal::User { user_id, .. } = principal else {
        return Err(AppError::Forbidden);
    };
    let holder_name = v::text("holderName", &input.holder_name, 200)?;
    if !(1..=12).contains(&input.exp_month) {
        return Err(AppError::bad_input("expMonth", "the month must be 1 to 12"));
    }
    let token = svc
        .gateway
        .tokenize(&CardDetails {
            number: input.number,
            exp_month: input.exp_month as u32,
            exp_year: input.exp_year,
            cvc: input.cvc,
            holder_name: holder_name.clone(),
        })
        .await
        .map_err(|e| match e {
            GatewayError::Invalid(m) => AppError::bad_input("card", m),
            GatewayError::Transient(m) => {
                AppError::Internal(format!("gateway tokenize failed: {m}"))
            }
            other => AppError::bad_input("card", other.message()),
        })?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let pm: PaymentMethod = diesel::insert_into(payment_methods::table)
            .values(&PaymentMethod {
                id: Uuid::now_v7(),
                partner_id,
                gateway_token: token.token,
                brand: token.brand,
                last4: token.last4,
                exp_month: input.exp_month,
                exp_year: input.exp_year,
                holder_name,
                created_by: *user_id,
                created_at: Utc::now(),
                removed_at: None,
            })
            .returning(PaymentMethod::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "payment_method.added",
            ("payment_method", pm.id.to_string()),
            json!({"brand": pm.brand, "last4": pm.last4}),
        )
        .await?;
        Ok(pm)
    })
    .await
}

pub async fn remove(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    id: Uuid,
) -> AppResult<PaymentMethod> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let pm: PaymentMethod = diesel::update(
            payment_methods::table
                .filter(payment_methods::id.eq(id))
                .filter(payment_methods::partner_id.eq(partner_id))
                .filter(payment_methods::removed_at.is_null()),
        )
        .set(payment_methods::removed_at.eq(Utc::now()))
        .returning(PaymentMethod::as_returning())
        .get_result(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("payment method"))?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "payment_method.removed",
            ("payment_method", pm.id.to_string()),
            json!({}),
        )
        .await?;
        Ok(pm)
    })
    .await
}

/// The caller's partner's saved cards (not removed), newest first: for those who may
/// purchase.
pub async fn list(conn: &mut PgConn, principal: &Principal) -> AppResult<Vec<PaymentMethod>> {
    let partner_id = principal.scope_for(Action::Purchase, None)?;
    Ok(payment_methods::table
        .filter(payment_methods::partner_id.eq(partner_id))
        .filter(payment_methods::removed_at.is_null())
        .order(payment_methods::id.desc())
        .select(PaymentMethod::as_select())
        .load(conn)
        .await?)
}

/// A usable card of this partner, for a purchase or a renewal.
pub async fn usable(mut conn: &PgConn, partner_id: Uuid, id: Uuid) -> AppResult<PaymentMethod> {
    payment_methods::table
        .filter(payment_methods::id.eq(id))
        .filter(payment_methods::partner_id.eq(partner_id))
        .filter(payment_methods::removed_at.is_null())
        .select(PaymentMethod::as_select())
        .first(&mut conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("payment method"))
}
