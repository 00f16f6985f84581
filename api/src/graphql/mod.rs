//! The GraphQL schema: one module per domain area, merged into the roots here.

mod audit;
mod benefit_types;
mod benefits;
mod billing;
mod billing_types;
mod clock;
pub mod documents;
pub(crate) mod live;
pub mod loaders;
mod nodes;
mod ops;
mod pagination;
mod partners;
pub mod roles;
mod service_requests;
mod subscription_types;
mod subscriptions;
mod types;
mod users;

use async_graphql::{Context, MergedObject, Schema, ValidationMode};
use gateway_domain::audit::Actor;
use gateway_domain::config::Config;
use gateway_domain::db::DbPool;
use gateway_domain::permissions::Principal;
use gateway_domain::services::Services;
use gateway_domain::AppError;
use std::sync::Arc;

#[derive(MergedObject, Default)]
pub struct Query(
    partners::PartnerQuery,
    users::UserQuery,
    service_requests::ServiceRequestQuery,
    audit::AuditQuery,
    billing::BillingQuery,
    subscriptions::SubscriptionQuery,
    clock::ClockQuery,
    benefits::BenefitQuery,
    ops::OpsQuery,
    nodes::NodeQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    partners::PartnerMutation,
    users::UserMutation,
    service_requests::ServiceRequestMutation,
    billing::BillingMutation,
    subscriptions::SubscriptionMutation,
    clock::ClockMutation,
    benefits::BenefitMutation,
    ops::OpsMutation,
);

pub type GatewaySchema = Schema<Query, Mutation, live::SubscriptionRoot>;

/// Shared by every request: the pool, the configuration and the domain's services.
pub struct Shared {
    pub pool: DbPool,
    pub config: Arc<Config>,
    pub services: Services,
    /// Committed domain events, for GraphQL subscriptions.
    pub events: tokio::sync::broadcast::Sender<gateway_domain::events::Event>,
    /// For the operators' queue view.
    pub redis: gateway_domain::redis_conn::RedisClient,
    /// The live queue overview shared by every operator watching (`queueStats`).
    pub queue_stats: live::QueueStatsFeed,
}

/// Per request: who is calling and the request id that ties audit records to logs.
#[derive(Clone)]
pub struct RequestCtx {
    pub principal: Option<Principal>,
    /// A partner user's partner, read with the token in the same statement; set for a single
    /// operation only (`partner` answers from it instead of reading the row again).
    pub own_partner: Option<gateway_domain::db::models::Partner>,
    pub request_id: String,
}

/// How deep an introspection-only document may nest: graphql-js's own introspection query
/// (`tests/fixtures/graphql-js-introspection.graphql`) needs 13 levels, more than
/// GRAPHQL_MAX_DEPTH allows other documents. Still a cap: `fields { type { fields … } } }`
/// nests without end, each level multiplying the answer.
pub const INTROSPECTION_MAX_DEPTH: usize = 16;

/// Which schema a request runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// [`ValidationMode::Strict`]: every document the first time.
    Strict,
    /// [`ValidationMode::Fast`]: documents known to pass the full validation
    /// (`documents::Documents`).
    Validated,
    /// Introspection-only documents (every root field `__schema`, `__type` or `__typename`),
    /// with [`INTROSPECTION_MAX_DEPTH`].
    Introspection,
}

/// The schema of a [`Flavor`]. Introspection is disabled in all of them unless
/// GRAPHQL_INTROSPECTION (default: on outside production).
pub fn build(
    services: Services,
    events: tokio::sync::broadcast::Sender<gateway_domain::events::Event>,
    redis: gateway_domain::redis_conn::RedisClient,
    flavor: Flavor,
) -> GatewaySchema {
    let config = services.config.clone();
    let pool = services.pool.clone();
    let http = &config.http;
    let (validation, depth) = match flavor {
        Flavor::Strict => (ValidationMode::Strict, http.max_depth),
        Flavor::Validated => (ValidationMode::Fast, http.max_depth),
        Flavor::Introspection => (
            ValidationMode::Strict,
            http.max_depth.max(INTROSPECTION_MAX_DEPTH),
        ),
    };
    let mut builder = described(Schema::build(
        Query::default(),
        Mutation::default(),
        live::SubscriptionRoot,
    ));
    if !http.introspection {
        // Nor field names through "Did you mean …?" hints (Apollo Server's production rule).
        builder = builder.disable_introspection().disable_suggestions();
    }
    builder
        .validation_mode(validation)
        .limit_depth(depth)
        .limit_complexity(http.max_complexity)
        .limit_recursive_depth(64)
        .limit_directives(20)
        .data(Shared {
            pool,
            config: config.clone(),
            services,
            events,
            redis,
            queue_stats: Default::default(),
        })
        .finish()
}

/// The descriptions of the types async-graphql makes without one: the root types and the
/// connections.
fn described(
    builder: async_graphql::SchemaBuilder<Query, Mutation, live::SubscriptionRoot>,
) -> async_graphql::SchemaBuilder<Query, Mutation, live::SubscriptionRoot> {
    use async_graphql::connection::Connection;
    use pagination::TotalCount;
    type Page<T> = Connection<String, T, TotalCount>;
    builder
        .override_output_type_description::<Query>(
            "What can be read: the caller, the partner and its users, offers, orders, \
             invoices, subscriptions, benefits, service requests, the audit log, and the \
             operators' queues. Each field says who may read it.",
        )
        .override_output_type_description::<Mutation>(
            "What can be done: enrollment, users and roles, purchases and renewals, \
             benefits, service requests, and the operators' decisions. Each field says who \
             may do it.",
        )
        .override_output_type_description::<Page<types::AuditEntry>>(
            "A page of audit log entries, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<benefit_types::Benefit>>(
            "A page of benefits, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<billing_types::Invoice>>(
            "A page of invoices, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<gateway_domain::queues::JobInfo>>(
            "A page of a queue's jobs in one state, with `totalCount`.",
        )
        .override_output_type_description::<Page<billing_types::Order>>(
            "A page of orders, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<types::Partner>>(
            "A page of partners, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<billing_types::PaymentMethod>>(
            "A page of saved cards, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<types::ServiceRequest>>(
            "A page of service requests, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<subscription_types::Subscription>>(
            "A page of subscriptions, newest first, with `totalCount`.",
        )
        .override_output_type_description::<Page<types::User>>(
            "A page of users, newest first, with `totalCount`.",
        )
}

/// The schema's SDL, as checked in at `schema.graphql`.
pub fn sdl() -> String {
    described(Schema::build(
        Query::default(),
        Mutation::default(),
        live::SubscriptionRoot,
    ))
    .finish()
    .sdl()
}

pub(crate) fn shared<'a>(ctx: &Context<'a>) -> &'a Shared {
    ctx.data_unchecked::<Shared>()
}

pub(crate) fn request<'a>(ctx: &Context<'a>) -> &'a RequestCtx {
    ctx.data_unchecked::<RequestCtx>()
}

/// The signed-in caller, or UNAUTHENTICATED.
pub(crate) fn principal<'a>(ctx: &Context<'a>) -> Result<&'a Principal, AppError> {
    request(ctx)
        .principal
        .as_ref()
        .ok_or(AppError::Unauthenticated)
}

pub(crate) fn actor(ctx: &Context<'_>) -> Result<Actor, AppError> {
    let r = request(ctx);
    Ok(Actor::of(principal(ctx)?, Some(r.request_id.clone())))
}

pub(crate) async fn conn(
    ctx: &Context<'_>,
) -> Result<
    diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>,
    AppError,
> {
    Ok(shared(ctx).pool.get().await?)
}

/// A connection for a root list, shared with the request's other root lists
/// ([`loaders::Reader`]).
pub(crate) async fn reader(
    ctx: &Context<'_>,
) -> Result<
    Arc<diesel_async::pooled_connection::deadpool::Object<diesel_async::AsyncPgConnection>>,
    AppError,
> {
    loaders(ctx).reader.get().await
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> &'a loaders::Loaders {
    ctx.data_unchecked::<Arc<loaders::Loaders>>()
}

/// "Now" on a partner's clock, through the request's clock loader.
pub(crate) async fn now_for(
    ctx: &Context<'_>,
    partner_id: uuid::Uuid,
) -> async_graphql::Result<chrono::DateTime<chrono::Utc>> {
    let offset = loaders(ctx)
        .clock_offsets
        .load_one(partner_id)
        .await?
        .unwrap_or_else(chrono::Duration::zero);
    Ok(gateway_domain::clock::now_at(offset))
}

pub(crate) fn parse_id(field: &str, id: &async_graphql::ID) -> Result<uuid::Uuid, AppError> {
    gateway_domain::validation::uuid_id(field, id.as_str())
}

pub(crate) fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    &shared(ctx).services
}

pub(crate) fn opt_id(
    field: &str,
    id: Option<&async_graphql::ID>,
) -> Result<Option<uuid::Uuid>, AppError> {
    id.map(|i| parse_id(field, i)).transpose()
}
