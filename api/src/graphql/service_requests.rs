//! Service requests: partners open and follow theirs; operators see all and resolve.

use async_graphql::connection::Connection;
use async_graphql::{Context, Object, ID};
use gateway_domain::enums::{CancellationDecision, ServiceRequestStatus};
use gateway_domain::service_requests::{self as sr, CreateServiceRequestInput, ListFilter};

use super::pagination;
use super::types::ServiceRequest;
use super::{actor, conn, parse_id, principal, services};

#[derive(Default)]
pub struct ServiceRequestQuery;

#[Object]
impl ServiceRequestQuery {
    /// Newest first. Partner users see their partner's; operators all, or one partner's.
    ///
    /// Roles: any partner user; operators.
    async fn service_requests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Operators: only this partner's.")] partner_id: Option<ID>,
        #[graphql(desc = "Only requests with this status.")] status: Option<ServiceRequestStatus>,
        #[graphql(desc = "Page size, 1 to 100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<Connection<String, ServiceRequest, pagination::TotalCount>> {
        let p = principal(ctx)?;
        let limit = pagination::page_size(first)?;
        let before = pagination::decode_cursor(after.as_deref())?;
        let partner_id = partner_id
            .as_ref()
            .map(|i| parse_id("partnerId", i))
            .transpose()?;
        let mut c = conn(ctx).await?;
        let filter = ListFilter {
            partner_id,
            status,
            before,
            limit: limit + 1,
        };
        let total = pagination::total_count(ctx, || sr::count(&mut c, p, &filter)).await?;
        let rows = sr::list(&mut c, p, filter).await?;
        Ok(pagination::connection(
            rows.into_iter().map(ServiceRequest::from).collect(),
            limit,
            before.is_some(),
            total,
            |s| s.uuid,
        ))
    }

    /// One service request, under the same rules as `serviceRequests`.
    ///
    /// Roles: any partner user; operators.
    pub(crate) async fn service_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The request.")] id: ID,
    ) -> async_graphql::Result<ServiceRequest> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(sr::load_visible(&mut c, p, id).await?.into())
    }
}

#[derive(Default)]
pub struct ServiceRequestMutation;

#[Object]
impl ServiceRequestMutation {
    /// Opens a service request (a technical one uses a support incident of the activated support benefit; a presales or deployment one uses advisory hours).
    ///
    /// Roles: any partner user.
    async fn create_service_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The request.")] input: CreateServiceRequestInput,
    ) -> async_graphql::Result<ServiceRequest> {
        let p = principal(ctx)?;
        let mut c = conn(ctx).await?;
        Ok(sr::create(&mut c, p, &actor(ctx)?, input).await?.into())
    }

    /// Adds a note to a service request (the partner or an operator).
    ///
    /// Roles: any partner user.
    async fn add_service_request_note(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service request.")] id: ID,
        #[graphql(desc = "The note's text.")] body: String,
    ) -> async_graphql::Result<ServiceRequest> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(sr::add_note(&mut c, p, &actor(ctx)?, id, &body)
            .await?
            .into())
    }

    /// Operators: close a request with a resolution note. A cancellation request (intent
    /// CANCELLATION, made with `requestCancellation`) needs a `decision`: REFUND (only while a
    /// refund is due, else NOT_ELIGIBLE with REFUND_NOT_DUE and the reasons), END_AT_ANNIVERSARY
    /// or DECLINE; the decision in words is appended to the note. Any other request takes no
    /// decision and changes no subscription.
    ///
    /// Roles: operators.
    async fn resolve_service_request(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The service request.")] id: ID,
        #[graphql(desc = "How it was resolved, shown to the partner.")] resolution: String,
        #[graphql(desc = "Cancellation requests: the decision taken on the cancellation.")]
        decision: Option<CancellationDecision>,
    ) -> async_graphql::Result<ServiceRequest> {
        let p = principal(ctx)?;
        let id = parse_id("id", &id)?;
        let mut c = conn(ctx).await?;
        Ok(sr::resolve(
            &mut c,
            services(ctx),
            p,
            &actor(ctx)?,
            id,
            &resolution,
            decision,
        )
        .await?
        .into())
    }

    /// Global admins and MPN partner admins: ask for a subscription's cancellation. Makes a
    /// BILLING service request whose intent is CANCELLATION and records the refund
    /// eligibility shown now (see `refundEligibility`); an operator decides it. At most one
    /// open cancellation request per subscription (CONFLICT).
    ///
    /// Roles: Global admin, MPN partner admin.
    async fn request_cancellation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The subscription to cancel.")] subscription_id: ID,
        #[graphql(desc = "Why the partner cancels.")] reason: String,
    ) -> async_graphql::Result<ServiceRequest> {
        let p = principal(ctx)?;
        let id = parse_id("subscriptionId", &subscription_id)?;
        let mut c = conn(ctx).await?;
        Ok(
            sr::request_cancellation(&mut c, services(ctx), p, &actor(ctx)?, id, &reason)
                .await?
                .into(),
        )
    }
}
