//! Benefits: list, reveal keys, downloads, activation, assignments, marketing contact.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use gateway_domain::benefits::marketing::{self, MarketingContactInput};
use gateway_domain::benefits::reveal::{self, OperatingSystem};
use gateway_domain::benefits::{activation, azure, entitlements, seats};
use gateway_domain::enums::BenefitCategory;

use super::benefit_types::*;
use super::pagination;
use super::{actor, conn, opt_id, parse_id, principal, reader, services};

#[derive(Default)]
pub struct BenefitQuery;

#[Object]
impl BenefitQuery {
    /// The partner's benefits, by category, with quantities used and left.
    ///
    /// Roles: any partner user; operators.
    async fn benefits(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only benefits of this category.")] category: Option<BenefitCategory>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
        #[graphql(
            default = false,
            desc = "Also the benefits of lapsed or cancelled packages."
        )]
        include_revoked: bool,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, Benefit, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let c = reader(ctx).await?;
        let rows = entitlements::list(
            &c,
            p,
            partner_id,
            category,
            include_revoked,
            before,
            limit + 1,
        )
        .await?;
        let total = pagination::total_count(ctx, || {
            entitlements::count(&c, p, partner_id, category, include_revoked)
        })
        .await?;
        Ok(pagination::connection(
            rows.into_iter().map(Benefit).collect(),
            limit,
            before.is_some(),
            total,
            |b| b.0.id,
        ))
    }

    /// One benefit of the caller's partner (operators: any).
    ///
    /// Roles: any partner user; operators.
    pub(crate) async fn benefit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The benefit.")] id: ID,
    ) -> async_graphql::Result<Benefit> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(Benefit(
            entitlements::load_visible(&mut c, p, id, false).await?,
        ))
    }

    /// Download links of a software benefit for a language (BCP 47) and an OS.
    ///
    /// Roles: any partner user; operators.
    async fn software_downloads(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The software benefit.")] benefit_id: ID,
        #[graphql(desc = "The language (BCP 47, for example `de-DE`).")] language: String,
        #[graphql(desc = "The operating system.")] os: OperatingSystem,
    ) -> async_graphql::Result<Vec<Download>> {
        let p = principal(ctx)?;
        let id = parse_id("benefitId", &benefit_id)?;
        let mut c = conn(ctx).await?;
        Ok(reveal::downloads(&mut c, p, id, &language, os)
            .await?
            .into_iter()
            .map(|d| Download {
                file_name: d.file_name,
                url: d.url,
            })
            .collect())
    }

    /// The partner's marketing contact, if set (operators name the partner).
    ///
    /// Roles: any partner user; operators.
    async fn marketing_contact(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: the partner.")] partner_id: Option<ID>,
    ) -> async_graphql::Result<Option<MarketingContact>> {
        let p = principal(ctx)?;
        let partner_id = opt_id("partnerId", partner_id.as_ref())?;
        let mut c = conn(ctx).await?;
        Ok(marketing::marketing_contact(&mut c, p, partner_id)
            .await?
            .map(Into::into))
    }
}

#[derive(Default)]
pub struct BenefitMutation;

#[Object]
impl BenefitMutation {
    /// Reveals a software or license-based cloud key (audited). While a refund is still
    /// possible, pass `acknowledgeRefundLoss: true`: revealing ends refund eligibility.
    ///
    /// Roles: Global admin, MPN partner admin.
    async fn reveal_product_key(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The key benefit.")] benefit_id: ID,
        #[graphql(
            default = false,
            desc = "Must be true: revealing a key ends the package's refund eligibility."
        )]
        acknowledge_refund_loss: bool,
    ) -> async_graphql::Result<RevealedKey> {
        let p = principal(ctx)?;
        let id = parse_id("benefitId", &benefit_id)?;
        let mut c = conn(ctx).await?;
        let k = reveal::reveal_key(
            &mut c,
            services(ctx),
            p,
            &actor(ctx)?,
            id,
            acknowledge_refund_loss,
        )
        .await?;
        Ok(RevealedKey {
            key: k.key,
            product: k.product,
            instructions: k.instructions,
        })
    }

    /// ACTIVATION_PENDING with the expected completion time; ACTIVE with Access ID and
    /// Contract ID when the provider is done (or FAILED with a reason: activate again).
    /// While a refund of the package is still possible, pass `acknowledgeRefundLoss: true`:
    /// activating ends refund eligibility (else NOT_ELIGIBLE with REFUND_ACKNOWLEDGEMENT_REQUIRED).
    ///
    /// Roles: Global admin, MPN partner admin.
    async fn activate_technical_benefit(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The technical benefit.")] benefit_id: ID,
        #[graphql(
            default = false,
            desc = "Must be true: using a benefit ends the package's refund eligibility."
        )]
        acknowledge_refund_loss: bool,
    ) -> async_graphql::Result<Benefit> {
        let p = principal(ctx)?;
        let id = parse_id("benefitId", &benefit_id)?;
        let mut c = conn(ctx).await?;
        Ok(Benefit(
            activation::activate_technical(
                &mut c,
                services(ctx),
                p,
                &actor(ctx)?,
                id,
                acknowledge_refund_loss,
            )
            .await?,
        ))
    }

    /// Needs a marketing contact; emails them instructions; ACTIVE after processing.
    /// While a refund of the package is still possible, pass `acknowledgeRefundLoss: true`:
    /// activating ends refund eligibility (else NOT_ELIGIBLE with REFUND_ACKNOWLEDGEMENT_REQUIRED).
    ///
    /// Roles: Global admin, MPN partner admin.
    async fn activate_go_to_market_offer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The Go-To-Market benefit.")] benefit_id: ID,
        #[graphql(
            default = false,
            desc = "Must be true: using a benefit ends the package's refund eligibility."
        )]
        acknowledge_refund_loss: bool,
    ) -> async_graphql::Result<Benefit> {
        let p = principal(ctx)?;
        let id = parse_id("benefitId", &benefit_id)?;
        let mut c = conn(ctx).await?;
        Ok(Benefit(
            activation::activate_gtm(
                &mut c,
                services(ctx),
                p,
                &actor(ctx)?,
                id,
                acknowledge_refund_loss,
            )
            .await?,
        ))
    }

    /// Sets the partner's marketing contact (one of its users).
    ///
    /// Roles: Global admin, MPN partner admin.
    async fn set_marketing_contact(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The contact.")] input: MarketingContactInput,
    ) -> async_graphql::Result<MarketingContact> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(
            marketing::set_marketing_contact(&mut c, p, &actor(ctx)?, input)
                .await?
                .into(),
        )
    }

    /// Global admins: give a partner user a Visual Studio seat, or move the seat of
    /// `replaceUserId` to them (90 days or more after that seat was assigned).
    /// While a refund of the package is still possible, pass `acknowledgeRefundLoss: true`:
    /// the first assignment ends refund eligibility (else NOT_ELIGIBLE with REFUND_ACKNOWLEDGEMENT_REQUIRED).
    ///
    /// Roles: Global admin.
    async fn assign_visual_studio_subscription(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The Visual Studio benefit.")] benefit_id: ID,
        #[graphql(desc = "The user who gets the seat.")] user_id: ID,
        #[graphql(
            desc = "The user whose seat is reassigned (allowed 90 days after it was assigned)."
        )]
        replace_user_id: Option<ID>,
        #[graphql(
            default = false,
            desc = "Must be true: using a benefit ends the package's refund eligibility."
        )]
        acknowledge_refund_loss: bool,
    ) -> async_graphql::Result<Benefit> {
        let p = principal(ctx)?;
        let request = seats::SeatAssignment {
            entitlement_id: parse_id("benefitId", &benefit_id)?,
            user_id: parse_id("userId", &user_id)?,
            replace_user_id: opt_id("replaceUserId", replace_user_id.as_ref())?,
            acknowledge_refund_loss,
        };
        let mut c = conn(ctx).await?;
        Ok(Benefit(
            seats::assign_visual_studio(&mut c, services(ctx), p, &actor(ctx)?, request).await?,
        ))
    }

    /// Global admins: add a partner user to the usage-based Azure subscription.
    /// While a refund of the package is still possible, pass `acknowledgeRefundLoss: true`:
    /// assigning ends refund eligibility (else NOT_ELIGIBLE with REFUND_ACKNOWLEDGEMENT_REQUIRED).
    ///
    /// Roles: Global admin.
    async fn assign_azure_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The Azure benefit.")] benefit_id: ID,
        #[graphql(desc = "The user who gets Azure access.")] user_id: ID,
        #[graphql(
            default = false,
            desc = "Must be true: using a benefit ends the package's refund eligibility."
        )]
        acknowledge_refund_loss: bool,
    ) -> async_graphql::Result<Benefit> {
        let p = principal(ctx)?;
        let id = parse_id("benefitId", &benefit_id)?;
        let user = parse_id("userId", &user_id)?;
        let mut c = conn(ctx).await?;
        Ok(Benefit(
            azure::assign_azure_user(
                &mut c,
                services(ctx),
                p,
                &actor(ctx)?,
                id,
                user,
                acknowledge_refund_loss,
            )
            .await?,
        ))
    }
}
