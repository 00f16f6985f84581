//! Renewing by hand, inside the renewal window, paying by card. The charge key is the one
//! automatic renewal uses for the same term, so a term is never paid twice.

use serde_json::json;

use super::renewal::{renewal_charge_key, renewal_inputs, Renewal};
use crate::audit::Actor;
use crate::billing::{orders, payment_methods};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::load_visible;

#[derive(Debug, Clone, async_graphql::InputObject)]
pub struct RenewInput {
    pub subscription_id: async_graphql::ID,
    /// The same key with the same input returns the first result; with other input, CONFLICT.
    pub idempotency_key: String,
    /// The saved card to charge (it becomes the card for the next automatic renewal).
    pub payment_method_id: async_graphql::ID,
    /// The offer's current terms version, accepted with the renewal (see `renewalQuote`);
    /// another version is BAD_USER_INPUT naming the current one.
    pub accept_terms_version: String,
}

/// What a renewal would cost now, and the terms it is accepted under.
pub struct RenewalQuote {
    pub quote: crate::billing::quote::Quote,
    pub currency: String,
    pub terms_version: String,
}

/// The quote a renewal of this subscription is charged (no upgrade discount on renewals),
/// with the offer's current terms version; shown before `renewSubscription`.
pub async fn renewal_quote(
    conn: &mut PgConn,
    principal: &Principal,
    sub_id: uuid::Uuid,
) -> AppResult<RenewalQuote> {
    let sub = load_visible(conn, principal, sub_id, false).await?;
    let (_, offer, quote) = renewal_inputs(conn, &sub).await?;
    Ok(RenewalQuote {
        quote,
        currency: offer.currency,
        terms_version: offer.terms_version,
    })
}

/// Renews by hand, inside the renewal window only, paying by card. Turns auto-renew on again.
/// Returns the renewal order (PAID, or PAYMENT_FAILED with the gateway's reason).
pub async fn renew(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    input: RenewInput,
) -> AppResult<Order> {
    principal.require(Action::Purchase)?;
    let partner_id = principal.scope(None)?;
    let sub_id = crate::validation::uuid_id("subscriptionId", input.subscription_id.as_str())?;
    let pm_id = crate::validation::uuid_id("paymentMethodId", input.payment_method_id.as_str())?;
    let key = orders::idempotency_key(&input.idempotency_key)?;
    let terms = input.accept_terms_version.trim().to_owned();
    let hash =
        orders::request_hash(&json!({"renew": sub_id, "payment_method": pm_id, "terms": terms}));
    if let Some(o) = orders::replay(conn, partner_id, &key, &hash).await? {
        return Ok(o);
    }
    let placed_by = actor.id.clone();
    let result = conn
        .transaction::<_, AppError, _>(async |conn| {
            let sub = load_visible(conn, principal, sub_id, true).await?;
            // A concurrent request with this key may have finished while we waited for the lock.
            if let Some(o) = orders::replay(conn, partner_id, &key, &hash).await? {
                return Ok(o);
            }
            let now = crate::clock::now_for(conn, &svc.config, partner_id).await?;
            let mut blockers = rules::renewal_blockers(sub.status, sub.anniversary_at, now);
            let (partner, offer, q) = renewal_inputs(conn, &sub).await?;
            let packaged: &[uuid::Uuid] = if offer.level.is_some() {
                &[partner_id]
            } else {
                &[]
            };
            let quals = crate::catalog::qualified_levels(conn, packaged).await?;
            blockers.extend(rules::renewal_qualification_blockers(
                offer.level,
                &sub.competencies,
                quals
                    .get(&partner_id)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
            ));
            if !blockers.is_empty() {
                return Err(AppError::NotEligible(blockers));
            }
            let pm = payment_methods::usable(conn, partner_id, pm_id).await?;
            if terms != offer.terms_version {
                return Err(AppError::bad_input(
                    "acceptTermsVersion",
                    format!("accept the offer terms, version {}", offer.terms_version),
                ));
            }
            let charge_key = renewal_charge_key(sub.id, sub.term);
            let charged = svc
                .gateway
                .charge(
                    &charge_key,
                    &pm.gateway_token,
                    q.total_minor,
                    &offer.currency,
                )
                .await;
            let renewal = Renewal {
                sub: &sub,
                partner: &partner,
                offer: &offer,
                quote: q,
                payment_method_id: Some(pm.id),
                idempotency_key: key.clone(),
                request_hash: hash.clone(),
                placed_by: placed_by.clone(),
                now,
            };
            match charged {
                Ok(charge) => renewal.book(conn, svc, actor, &charge).await,
                Err(e) => {
                    let order = renewal
                        .insert_order(conn, OrderStatus::PaymentFailed, q.total_minor)
                        .await?;
                    orders::set_failed(conn, order.id, &e).await
                }
            }
        })
        .await;
    match result {
        Err(AppError::Conflict(_)) => orders::replay(conn, partner_id, &key, &hash)
            .await?
            .ok_or_else(|| AppError::Conflict("a concurrent renewal is in progress; retry".into())),
        other => other,
    }
}
