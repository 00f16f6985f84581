//! Catalog, payment methods, purchases, orders and invoices.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use chrono::NaiveDate;
use gateway_domain::billing::invoices;
use gateway_domain::billing::orders;
use gateway_domain::billing::payment_methods::{self, CardInput};
use gateway_domain::catalog::{self, OfferSection};
use gateway_domain::enums::{CompetencyLevel, OrderStatus};
use gateway_domain::lifecycle::refunds;
use gateway_domain::purchases::bank_transfer;
use gateway_domain::purchases::purchase::{self, PurchaseInput};

use super::billing_types::*;
use super::pagination;
use super::{actor, conn, opt_id, parse_id, principal, reader, services};

#[derive(Default)]
pub struct BillingQuery;

#[Object]
impl BillingQuery {
    /// "Partnership > Offers": Available (with the reasons an offer cannot be bought now and
    /// a quote), Purchased, or Expired. Operators name the partner.
    ///
    /// Roles: any partner user; operators.
    async fn offers(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            default_with = "OfferSection::Available",
            desc = "Available, Purchased or Expired."
        )]
        section: OfferSection,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
    ) -> async_graphql::Result<Vec<OfferListing>> {
        let p = principal(ctx)?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let mut c = conn(ctx).await?;
        Ok(catalog::listings(&mut c, p, partner_id, section)
            .await?
            .into_iter()
            .map(OfferListing::from)
            .collect())
    }

    /// Every competency, with its solution area.
    ///
    /// Roles: any signed-in caller.
    async fn competencies(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Competency>> {
        principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(catalog::competencies(&mut c)
            .await?
            .into_iter()
            .map(Competency::from)
            .collect())
    }

    /// The competencies the partner qualified for (recorded by operators).
    ///
    /// Roles: any partner user; operators.
    async fn qualifications(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
    ) -> async_graphql::Result<Vec<Qualification>> {
        let p = principal(ctx)?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let c = conn(ctx).await?;
        Ok(catalog::qualifications_of(&c, p, partner_id)
            .await?
            .into_iter()
            .map(Qualification::from)
            .collect())
    }

    /// Saved cards (those who may purchase), newest first.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn payment_methods(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, PaymentMethod, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        let all = payment_methods::list(&mut c, p)
            .await?
            .into_iter()
            .map(PaymentMethod::from)
            .collect();
        Ok(pagination::from_list(all, first, after.as_deref(), |m| {
            m.id.parse().unwrap_or_default()
        })?)
    }

    /// Orders, newest first.
    ///
    /// Roles: any partner user; operators.
    async fn orders(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
        #[graphql(desc = "Only orders with this status.")] status: Option<OrderStatus>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Order, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let c = reader(ctx).await?;
        let rows = orders::list(&c, p, partner_id, status, before, limit + 1).await?;
        let total =
            pagination::total_count(ctx, || orders::count(&c, p, partner_id, status)).await?;
        Ok(pagination::connection(
            rows.into_iter().map(Order).collect(),
            limit,
            before.is_some(),
            total,
            |o| o.0.id,
        ))
    }

    /// One order of the caller's partner (operators: any).
    ///
    /// Roles: any partner user; operators.
    pub(crate) async fn order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The order.")] id: ID,
    ) -> async_graphql::Result<Order> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(Order(orders::load_visible(&mut c, p, id).await?))
    }

    /// Invoices, newest first (Global admins, MPN partner admins, operators).
    ///
    /// Roles: Global admin, MPN partner admin; operators.
    async fn invoices(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Invoice, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let c = reader(ctx).await?;
        let rows = invoices::list(&c, p, partner_id, before, limit + 1).await?;
        let total = pagination::total_count(ctx, || invoices::count(&c, p, partner_id)).await?;
        Ok(pagination::connection(
            rows.into_iter().map(Invoice).collect(),
            limit,
            before.is_some(),
            total,
            |i| i.0.id,
        ))
    }

    /// One invoice (Global admins, MPN partner admins, operators).
    ///
    /// Roles: Global admin, MPN partner admin; operators.
    pub(crate) async fn invoice(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The invoice.")] id: ID,
    ) -> async_graphql::Result<Invoice> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(Invoice(invoices::load_visible(&mut c, p, id).await?))
    }
}

#[derive(Default)]
pub struct BillingMutation;

#[Object]
impl BillingMutation {
    /// Operators: record that a partner qualified for a competency at a level.
    ///
    /// Roles: operators.
    async fn record_qualification(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The partner that qualified.")] partner_id: ID,
        #[graphql(desc = "The competency's code, for example `SECURITY`.")] competency: String,
        #[graphql(desc = "Silver or Gold.")] level: CompetencyLevel,
        #[graphql(desc = "The day the partner qualified.")] qualified_on: NaiveDate,
    ) -> async_graphql::Result<Qualification> {
        let p = principal(ctx)?;
        let partner_id = parse_id("partnerId", &partner_id)?;
        let mut c = conn(ctx).await?;
        Ok(catalog::record_qualification(
            &mut c,
            p,
            &actor(ctx)?,
            partner_id,
            competency.trim(),
            level,
            qualified_on,
        )
        .await?
        .into())
    }

    /// Operators: withdraw a partner's qualification (NOT_FOUND when it has none). Silver and
    /// Gold packages bound to it keep their term, but cannot renew (by hand or automatically)
    /// until it is recorded again.
    ///
    /// Roles: operators.
    async fn remove_qualification(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The partner.")] partner_id: ID,
        #[graphql(desc = "The competency's code.")] competency: String,
        #[graphql(desc = "Silver or Gold.")] level: CompetencyLevel,
    ) -> async_graphql::Result<bool> {
        let p = principal(ctx)?;
        let partner_id = parse_id("partnerId", &partner_id)?;
        let mut c = conn(ctx).await?;
        Ok(catalog::remove_qualification(
            &mut c,
            p,
            &actor(ctx)?,
            partner_id,
            competency.trim(),
            level,
        )
        .await?)
    }

    /// Saves a card; only its gateway token, brand, last four digits and expiry are kept.
    /// With the sandbox gateway send `card` (the number goes to the gateway). With Stripe
    /// (`PAYMENT_GATEWAY=stripe`) the SPA collects the card with Stripe's browser library and
    /// sends the PaymentMethod id it created (`paymentMethodId`, pm_…); the API never sees a
    /// card number. The other argument is BAD_USER_INPUT naming the one to send.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn add_payment_method(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Sandbox gateway only: the card's details (refused with Stripe).")]
        card: Option<CardInput>,
        #[graphql(desc = "Stripe: the PaymentMethod id Stripe.js created (`pm_…`).")]
        payment_method_id: Option<String>,
    ) -> async_graphql::Result<PaymentMethod> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(payment_methods::add_card(
            &mut c,
            services(ctx),
            p,
            &actor(ctx)?,
            card,
            payment_method_id,
        )
        .await?
        .into())
    }

    /// Removes a saved card (not one a subscription renews with).
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn remove_payment_method(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The saved card to remove.")] id: ID,
    ) -> async_graphql::Result<PaymentMethod> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(payment_methods::remove(&mut c, p, &actor(ctx)?, id)
            .await?
            .into())
    }

    /// Buys an offer. The result is the order: PAID (card charged; the subscription is
    /// active and invoiced), PAYMENT_FAILED (see failureCode), or PENDING_PAYMENT (bank
    /// transfer). The same idempotency key with the same input returns the same order.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn purchase_offer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The offer, the payment and the terms version accepted.")]
        input: PurchaseInput,
    ) -> async_graphql::Result<Order> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(Order(
            purchase::purchase(&mut c, services(ctx), p, &actor(ctx)?, input).await?,
        ))
    }

    /// Operators: the funds of a bank-transfer order arrived.
    ///
    /// Roles: operators.
    async fn confirm_bank_transfer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The order the transfer pays.")] order_id: ID,
        #[graphql(desc = "The bank's reference of the transfer received.")] reference: String,
    ) -> async_graphql::Result<Order> {
        let p = principal(ctx)?;
        let order_id = parse_id("orderId", &order_id)?;
        let mut c = conn(ctx).await?;
        Ok(Order(
            bank_transfer::confirm_bank_transfer(
                &mut c,
                services(ctx),
                p,
                &actor(ctx)?,
                order_id,
                &reference,
            )
            .await?,
        ))
    }

    /// Operators: the outgoing bank transfer of a bank-transfer order's refund was made
    /// (`transferReference` identifies it). Until then the refund stays REFUND_PENDING; after,
    /// the refund and the order are REFUNDED and the partner is emailed. A card order's refund
    /// is the gateway's (NOT_ELIGIBLE with CARD_REFUND).
    ///
    /// Roles: operators.
    async fn confirm_refund(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The refunded order.")] order_id: ID,
        #[graphql(desc = "The bank's reference of the outgoing transfer.")]
        transfer_reference: String,
    ) -> async_graphql::Result<Order> {
        let p = principal(ctx)?;
        let order_id = parse_id("orderId", &order_id)?;
        let mut c = conn(ctx).await?;
        refunds::confirm_refund(
            &mut c,
            services(ctx),
            p,
            &actor(ctx)?,
            order_id,
            &transfer_reference,
        )
        .await?;
        Ok(Order(orders::load_visible(&mut c, p, order_id).await?))
    }

    /// Cancels a bank-transfer order still waiting for payment.
    ///
    /// Roles: Global admin, Admin agent, MPN partner admin.
    async fn cancel_order(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The unpaid order to cancel.")] order_id: ID,
    ) -> async_graphql::Result<Order> {
        let p = principal(ctx)?;
        let order_id = parse_id("orderId", &order_id)?;
        let mut c = conn(ctx).await?;
        Ok(Order(
            bank_transfer::cancel(&mut c, services(ctx), p, &actor(ctx)?, order_id).await?,
        ))
    }
}
