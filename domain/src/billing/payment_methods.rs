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
/// A card's details, for the sandbox gateway only (with Stripe the card is collected by Stripe Elements and its PaymentMethod id is sent instead).
pub struct CardInput {
    /// Sent to the gateway to be tokenized; never stored, logged or returned.
    pub number: String,
    /// Expiry month, 1 to 12.
    pub exp_month: i32,
    /// Expiry year, four digits.
    pub exp_year: i32,
    /// The card's security code (never stored).
    pub cvc: String,
    /// The name on the card.
    pub holder_name: String,
}

impl std::fmt::Debug for CardInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardInput([redacted])")
    }
}

/// Saves a card. With a gateway that takes card numbers (the sandbox) `card` is sent to it to
/// be tokenized; with Stripe the SPA gives the card to Stripe's browser library and sends the
/// PaymentMethod id it created (`payment_method_id`), which is attached to the partner's
/// customer there. Either way only the token, brand, last four and expiry are kept.
pub async fn add_card(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    card: Option<CardInput>,
    payment_method_id: Option<String>,
) -> AppResult<PaymentMethod> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    let Principal::User { user_id, .. } = principal else {
        return Err(AppError::Forbidden);
    };
    let numbers = svc.gateway.takes_card_numbers();
    let saved = match (card, payment_method_id) {
        (Some(input), None) if numbers => tokenized(svc, input).await?,
        (None, Some(pm)) if !numbers => attached(conn, svc, principal, partner_id, &pm).await?,
        (Some(_), _) | (None, None) if !numbers => {
            return Err(AppError::bad_input(
                "paymentMethodId",
                "this gateway takes cards through its browser library (Stripe.js): send the \
                 PaymentMethod id it created, never a card number",
            ))
        }
        _ => {
            return Err(AppError::bad_input(
                "card",
                "this gateway takes the card itself: send card (number, expiry, CVC, holder)",
            ))
        }
    };
    let (token, brand, last4, exp_month, exp_year, holder_name) = saved;
    conn.transaction::<_, AppError, _>(async |conn| {
        let pm: PaymentMethod = diesel::insert_into(payment_methods::table)
            .values(&PaymentMethod {
                id: Uuid::now_v7(),
                partner_id,
                gateway_token: token,
                brand,
                last4,
                exp_month,
                exp_year,
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

/// A saved card as kept: token, brand, last four, expiry month and year, holder.
type Saved = (String, String, String, i32, i32, String);

/// A card typed into the API, tokenized by the gateway (the sandbox).
async fn tokenized(svc: &Services, input: CardInput) -> AppResult<Saved> {
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
        .map_err(card_error)?;
    Ok((
        token.token,
        token.brand,
        token.last4,
        input.exp_month,
        input.exp_year,
        holder_name,
    ))
}

/// A card the browser gave the gateway (Stripe): attached to the partner's customer there,
/// made with the first card and kept in `gateway_customers`.
async fn attached(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    partner_id: Uuid,
    payment_method_id: &str,
) -> AppResult<Saved> {
    use crate::db::schema::gateway_customers as gc;
    let customer: Option<String> = gc::table
        .find(partner_id)
        .select(gc::customer_id)
        .first(conn)
        .await
        .optional()?;
    let email = match principal {
        Principal::User { email, .. } => email.clone(),
        _ => String::new(),
    };
    let card = svc
        .gateway
        .attach_payment_method(
            customer.as_deref(),
            partner_id,
            &email,
            payment_method_id.trim(),
        )
        .await
        .map_err(|e| match e {
            GatewayError::Invalid(m) => AppError::bad_input("paymentMethodId", m),
            other => card_error(other),
        })?;
    if customer.is_none() {
        diesel::insert_into(gc::table)
            .values((
                gc::partner_id.eq(partner_id),
                gc::customer_id.eq(&card.customer),
            ))
            .on_conflict_do_nothing()
            .execute(conn)
            .await?;
    }
    let holder = format!("{} card", card.brand);
    Ok((
        card.token,
        card.brand,
        card.last4,
        card.exp_month,
        card.exp_year,
        holder,
    ))
}

fn card_error(e: GatewayError) -> AppError {
    match e {
        GatewayError::Invalid(m) => AppError::bad_input("card", m),
        GatewayError::Transient(m) => AppError::Internal(format!("gateway tokenize failed: {m}")),
        other => AppError::bad_input("card", other.message()),
    }
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
/// The payment methods of `ids` not removed, in one statement (the batch behind
/// `Subscription.paymentMethod`; the caller checks each belongs to the partner at hand).
pub async fn usable_by_ids(mut conn: &PgConn, ids: &[Uuid]) -> AppResult<Vec<PaymentMethod>> {
    Ok(payment_methods::table
        .filter(payment_methods::id.eq_any(ids))
        .filter(payment_methods::removed_at.is_null())
        .select(PaymentMethod::as_select())
        .load(&mut conn)
        .await?)
}

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
