//! Renewing by hand, inside the renewal window, paying by card or by bank transfer. A card's
//! charge key is the one automatic renewal uses for the same term, so a term is never paid
//! twice; no lock or transaction is held while the gateway charges ([`renew`]). A bank
//! transfer leaves the renewal order PENDING_PAYMENT until an operator confirms the funds
//! (`confirmBankTransfer`, which books it with [`book_answer`]); unpaid at the window's end,
//! the order expires and the subscription lapses.

use serde_json::json;

use chrono::{DateTime, Utc};

use super::renewal::{
    extend_paid, invoice_renewals, refund_stray, renewal_charge_key, renewal_inputs, Renewal,
};
use crate::audit::Actor;
use crate::billing::orders::{BankTransferDetails, BankTransferInput};
use crate::billing::{orders, payment_methods};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::orders as orders_t;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::permissions::{Action, Principal};
use crate::providers::payments::{Charge, GatewayError};
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, load_visible, lock};

#[derive(Debug, Clone, async_graphql::InputObject)]
/// A renewal of a subscription by hand, inside its renewal window.
pub struct RenewInput {
    /// The subscription to renew.
    pub subscription_id: async_graphql::ID,
    /// The same key with the same input returns the first result; with other input, CONFLICT.
    pub idempotency_key: String,
    /// The saved card to charge at once (it becomes the card for the next automatic renewal).
    /// Give this or `bankTransfer`.
    pub payment_method_id: Option<async_graphql::ID>,
    /// Pay by electronic bank transfer instead: the renewal order waits for the funds
    /// (PENDING_PAYMENT, instructions emailed to this contact) until the renewal window's last
    /// day; an operator confirms them. Unpaid by then, the subscription lapses.
    pub bank_transfer: Option<BankTransferInput>,
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
/// Returns the renewal order (PAID, or PAYMENT_FAILED with the gateway's reason; PROCESSING
/// if an earlier request with the same key is still under way).
///
/// Runs the way a purchase does, so no lock or transaction is held while the gateway works:
/// the checks read without locks; the renewal order is reserved (PROCESSING, with a
/// SETTLE_ORDER action) and committed; the card is charged with the term's charge key; the
/// answer is booked in a transaction of its own ([`book_answer`]). If the request dies after
/// the charge, the settlement job books the term from the gateway's records.
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
    let pay = match (&input.payment_method_id, &input.bank_transfer) {
        (Some(id), None) => Pay::Card(crate::validation::uuid_id("paymentMethodId", id)?),
        (None, Some(b)) => Pay::BankTransfer(b.details("bankTransfer")?),
        _ => {
            return Err(AppError::bad_input(
                "paymentMethodId",
                "give one way to pay: paymentMethodId (a saved card) or bankTransfer",
            ))
        }
    };
    let key = orders::idempotency_key(&input.idempotency_key)?;
    let terms = input.accept_terms_version.trim().to_owned();
    let hash = orders::request_hash(&match &pay {
        Pay::Card(pm_id) => json!({"renew": sub_id, "payment_method": pm_id, "terms": terms}),
        Pay::BankTransfer(b) => json!({"renew": sub_id, "terms": terms,
            "bank": [b.contact_name, b.contact_phone, b.contact_email]}),
    });
    if let Some(o) = orders::replay(conn, partner_id, &key, &hash).await? {
        return Ok(o);
    }
    let sub = load_visible(conn, principal, sub_id, false).await?;
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
    let pm = match &pay {
        Pay::Card(pm_id) => Some(payment_methods::usable(conn, partner_id, *pm_id).await?),
        Pay::BankTransfer(_) => None,
    };
    if terms != offer.terms_version {
        return Err(AppError::bad_input(
            "acceptTermsVersion",
            format!("accept the offer terms, version {}", offer.terms_version),
        ));
    }
    let renewal = Renewal {
        sub: &sub,
        partner: &partner,
        offer: &offer,
        quote: q,
        payment_method_id: pm.as_ref().map(|pm| pm.id),
        idempotency_key: key.clone(),
        request_hash: hash.clone(),
        placed_by: actor.id.clone(),
        now,
        auto_renew_after: true,
    };
    let reserved = match (&pay, &pm) {
        (Pay::BankTransfer(contact), _) => await_transfer(conn, svc, &renewal, contact).await,
        _ => reserve(conn, svc, &renewal).await,
    };
    let order = match reserved {
        Ok(o) if o.payment_kind == PaymentKind::BankTransfer => return Ok(o),
        Ok(o) => o,
        // The same key arrived concurrently: answer with what the winner stored.
        Err(AppError::Conflict(m)) => {
            return orders::replay(conn, partner_id, &key, &hash)
                .await?
                .ok_or(AppError::Conflict(m))
        }
        Err(e) => return Err(e),
    };
    let Some(pm) = pm else {
        return Err(AppError::Internal("a card renewal without its card".into()));
    };
    let charged = svc
        .gateway
        .charge(
            &renewal_charge_key(sub.id, sub.term),
            &pm.gateway_token,
            q.total_minor,
            &offer.currency,
        )
        .await;
    if charged.is_ok() {
        svc.config
            .billing
            .crash_point(crate::config::CrashPoint::Renewal);
    }
    conn.transaction::<_, AppError, _>(async |conn| {
        book_answer(conn, svc, actor, order.id, charged.as_ref(), now).await
    })
    .await
}

/// How a manual renewal is paid, checked.
enum Pay {
    Card(uuid::Uuid),
    BankTransfer(BankTransferDetails),
}

/// A renewal paid by bank transfer: the order waits (PENDING_PAYMENT) until the window's last
/// day, when it expires unpaid and the subscription lapses; the contact is emailed the
/// instructions. One transfer is awaited per term at a time.
async fn await_transfer(
    conn: &mut PgConn,
    svc: &Services,
    renewal: &Renewal<'_>,
    contact: &BankTransferDetails,
) -> AppResult<Order> {
    let ad = anniversary(renewal.sub)?;
    let expires = rules::lapse_at(ad);
    let (_, last_day) = rules::renewal_window(ad);
    conn.transaction::<_, AppError, _>(async |conn| {
        let sub = lock(conn, renewal.sub.id).await?;
        if sub.term != renewal.sub.term || sub.status != renewal.sub.status {
            return Err(AppError::Conflict(
                "the subscription changed meanwhile; retry".into(),
            ));
        }
        let awaited: Option<String> = orders_t::table
            .filter(orders_t::subscription_id.eq(sub.id))
            .filter(orders_t::kind.eq(OrderKind::Renewal))
            .filter(orders_t::status.eq(OrderStatus::PendingPayment))
            .select(orders_t::number)
            .first(conn)
            .await
            .optional()?;
        if let Some(number) = awaited {
            return Err(AppError::not_eligible(
                "RENEWAL_AWAITING_TRANSFER",
                format!(
                    "renewal order {number} is already waiting for its bank transfer; cancel it \
                     to pay another way, or renew by card"
                ),
            ));
        }
        let new = NewOrder {
            payment_kind: PaymentKind::BankTransfer,
            payment_method_id: None,
            bank_transfer: Some(json!(contact)),
            expires_at: Some(expires),
            ..renewal.new_order(OrderStatus::PendingPayment, renewal.quote.total_minor, None)
        };
        let order = orders::insert(conn, new).await?;
        crate::due::schedule(
            conn,
            order.partner_id,
            ActionKind::OrderExpiry,
            order.id,
            order.term,
            "",
            expires,
        )
        .await?;
        crate::notify::send(
            conn,
            renewal.partner,
            crate::email::Template::BankTransferInstructions,
            std::slice::from_ref(&contact.contact_email),
            crate::notify::base_context(&svc.config, renewal.partner, renewal.offer),
            json!({
                "contact_name": contact.contact_name,
                "order_number": order.number,
                "total": crate::billing::quote::format_money(order.total_minor, &order.currency),
                "expires_on": last_day.to_string(),
                "renewal": true,
            }),
        )
        .await?;
        crate::audit::record(
            conn,
            &Actor::system("billing"),
            Some(order.partner_id),
            "order.placed",
            ("order", order.id.to_string()),
            json!({"number": order.number, "kind": "RENEWAL", "payment": "BANK_TRANSFER",
                   "terms_version": renewal.offer.terms_version, "total_minor": order.total_minor}),
        )
        .await?;
        Ok(order)
    })
    .await
}

/// The marker committed before the charge: the renewal order, PROCESSING, and the job that
/// settles it from the gateway's records if the request dies before booking it.
async fn reserve(conn: &mut PgConn, svc: &Services, renewal: &Renewal<'_>) -> AppResult<Order> {
    let settle_after = chrono::Duration::from_std(svc.config.billing.settle_after)
        .unwrap_or(chrono::Duration::minutes(2));
    conn.transaction::<_, AppError, _>(async |conn| {
        let order = renewal
            .insert_order(conn, OrderStatus::Processing, renewal.quote.total_minor)
            .await?;
        crate::due::schedule(
            conn,
            order.partner_id,
            ActionKind::SettleOrder,
            order.id,
            order.term,
            "",
            renewal.now + settle_after,
        )
        .await?;
        Ok(order)
    })
    .await
}

/// Books the payment of a manual renewal's order (the request itself, the settlement job after
/// a crash, or an operator confirming a bank transfer), inside the caller's transaction:
/// - paid, and the subscription still in the term it renews: PAID, the next term, the
///   invoice and receipt;
/// - charged by card, but the term was renewed meanwhile (automatic and manual renewals of a
///   term share one charge key, so it was this very charge): the order is CANCELLED, nothing
///   is booked twice;
/// - paid, but the subscription ended (or a bank transfer arrived for a term renewed
///   meanwhile): PAID and refunded at once;
/// - not charged: PAYMENT_FAILED with the gateway's reason.
///
/// An order no longer PROCESSING or PENDING_PAYMENT (settled meanwhile) is returned as it is.
pub(crate) async fn book_answer(
    conn: &mut PgConn,
    svc: &Services,
    actor: &Actor,
    order_id: uuid::Uuid,
    answer: Result<&Charge, &GatewayError>,
    now: DateTime<Utc>,
) -> AppResult<Order> {
    let order = orders::lock(conn, order_id).await?;
    if !matches!(
        order.status,
        OrderStatus::Processing | OrderStatus::PendingPayment
    ) {
        return Ok(order);
    }
    let sub_id = order.subscription_id.ok_or_else(|| {
        AppError::Internal(format!("renewal order {} has no subscription", order.id))
    })?;
    let sub = lock(conn, sub_id).await?;
    let charge = match answer {
        Err(e) => {
            crate::due::cancel_pending(conn, order.id, Some(&[ActionKind::SettleOrder])).await?;
            return orders::set_failed(conn, order.id, e).await;
        }
        Ok(charge) => charge,
    };
    let card = order.payment_kind == PaymentKind::Card;
    if sub.term >= order.term && card {
        crate::due::cancel_pending(conn, order.id, Some(&[ActionKind::SettleOrder])).await?;
        return orders::set_superseded(
            conn,
            order.id,
            "this term was renewed meanwhile with the same payment; you were charged once",
        )
        .await;
    }
    let paid = orders::set_paid(conn, order.id, order.status, &charge.id, now)
        .await?
        .ok_or_else(|| AppError::Internal(format!("order {} changed while locked", order.id)))?;
    if !sub.status.in_good_standing() || sub.term >= order.term {
        refund_stray(conn, actor, &paid, now).await?;
        return Ok(paid);
    }
    let (partner, offer, quote) = renewal_inputs(conn, &sub).await?;
    let renewal = Renewal {
        sub: &sub,
        partner: &partner,
        offer: &offer,
        quote,
        payment_method_id: paid.payment_method_id,
        idempotency_key: paid.idempotency_key.clone(),
        request_hash: paid.request_hash.clone(),
        placed_by: paid.placed_by.clone(),
        now,
        auto_renew_after: true,
    };
    let uninvoiced =
        extend_paid(conn, actor, &[&renewal], std::slice::from_ref(&paid), &[]).await?;
    invoice_renewals(conn, svc, uninvoiced).await?;
    Ok(paid)
}
