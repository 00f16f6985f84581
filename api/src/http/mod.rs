//! The HTTP surface, one module per route family: `graphql` (POST and GET, GraphiQL),
//! `ws` (GraphQL subscriptions), `invoices` (the PDF download), `health` (liveness and
//! readiness) and `metrics` (Prometheus). Here: the shared state, the router, the bearer
//! token, and the error shape of failures before execution.

mod dev;
mod graphql;
mod health;
mod invoices;
pub(crate) mod metrics;
mod ops;
mod ops_oidc;
pub mod persisted;
pub mod rate_limit;
mod security;
pub mod server;
mod webhooks;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gateway_domain::auth::Verifier;
use gateway_domain::config::Config;
use gateway_domain::db::DbPool;
use gateway_domain::permissions::Principal;
use gateway_domain::users::Caller;
use gateway_domain::AppError;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::graphql::GatewaySchema;
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub schema: GatewaySchema,
    /// The same schema with async-graphql's fast validation, for requests whose document is
    /// known to pass the full validation (`graphql::documents`).
    pub validated_schema: GatewaySchema,
    /// The schema for introspection-only documents (`graphql::Flavor::Introspection`).
    pub introspection_schema: GatewaySchema,
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub verifier: Verifier,
    pub redis: gateway_domain::redis_conn::RedisClient,
    pub metrics: Metrics,
    /// Parsed GraphQL documents by text (`graphql::documents`).
    pub documents: Arc<crate::graphql::documents::Documents>,
    /// The offer catalog as last read (`graphql::loaders::Catalog`).
    pub catalog: Arc<crate::graphql::loaders::Catalog>,
    /// What domain operations outside GraphQL need (the webhooks).
    pub services: gateway_domain::services::Services,
    /// Room for GraphQL requests in flight (HTTP_MAX_CONCURRENT); none left: 503.
    pub in_flight: Arc<tokio::sync::Semaphore>,
    /// Rate limits, counted in Redis (`rate_limit`).
    pub limiter: Arc<rate_limit::Limiter>,
    /// The gauges `/metrics` reads from Postgres and Redis, shared by every scrape.
    pub gauges: Arc<metrics::GaugeCache>,
    /// The trusted documents, when only they may run (GRAPHQL_TRUSTED_DOCUMENTS).
    pub trusted: Option<Arc<persisted::Trusted>>,
}

/// Sheds load: a GraphQL request that finds no room is answered at once with 503 and
/// `Retry-After: 1` instead of queueing behind the others until every client times out.
async fn shed_load(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_room) = state.in_flight.clone().try_acquire_owned() else {
        let mut resp = error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "OVERLOADED",
            "the server is at capacity; retry in a moment",
        );
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return resp;
    };
    next.run(req).await
}

pub fn router(state: AppState) -> Router {
    let hsts = state.config.is_production();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            state
                .config
                .http
                .cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("traceparent"),
        ])
        .expose_headers([HeaderName::from_static("x-request-id")])
        .max_age(Duration::from_secs(600));
    Router::new()
        .route(
            "/graphql",
            get(graphql::get)
                .post(graphql::post)
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    server::deadline,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    shed_load,
                )),
        )
        .route("/graphql/ws", get(ws::upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::scrape_public))
        .route(
            "/invoices/{id}/pdf",
            get(invoices::pdf).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                server::deadline,
            )),
        )
        .route(
            "/webhooks/stripe",
            axum::routing::post(webhooks::stripe).route_layer(
                axum::middleware::from_fn_with_state(state.clone(), server::deadline),
            ),
        )
        .route("/dev/mail", get(dev::mail))
        .route("/ops", get(ops::page))
        .route("/ops/app.js", get(ops::script))
        .route("/ops/app.css", get(ops::style))
        .route("/ops/ws", get(ops::ws))
        .route("/ops/config", get(ops::config))
        .route("/ops/oidc/start", get(ops_oidc::start))
        .route("/ops/oidc/callback", get(ops_oidc::callback))
        .route(
            "/ops/session",
            get(ops::current).post(ops::sign_in).delete(ops::sign_out),
        )
        .route(
            "/ops/graphql",
            axum::routing::post(ops::graphql)
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    server::deadline,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    shed_load,
                )),
        )
        .layer(axum::middleware::map_response(move |r| async move {
            security::add_headers(r, hsts)
        }))
        .layer(axum::middleware::map_response_with_state(
            state.metrics.clone(),
            count_response,
        ))
        .layer(cors)
        .with_state(state)
}

/// Counts every response of the public listener by status (`pbg_http_responses_total`).
async fn count_response(
    axum::extract::State(metrics): axum::extract::State<Metrics>,
    resp: Response,
) -> Response {
    metrics
        .responses
        .with_label_values(&[resp.status().as_str()])
        .inc();
    resp
}

/// The private listener's routes (METRICS_BIND): `/metrics` without a token, and the
/// liveness check.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
}

/// A GraphQL-shaped error response with a code, for failures before execution.
pub(crate) fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// The HTTP status of a domain error answered outside GraphQL (the invoice PDF).
pub(crate) fn status_of(e: &AppError) -> StatusCode {
    match e {
        AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AppError::Forbidden => StatusCode::FORBIDDEN,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
        AppError::Internal(detail) => {
            tracing::error!(error = %detail, "request failed");
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::BAD_REQUEST,
    }
}

/// The caller's request id (`x-request-id` when it is a sane one), else a new one.
pub(crate) fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// Verifies the bearer token, if any, and resolves the caller.
pub(crate) async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    Ok(authenticate_caller(state, headers)
        .await?
        .map(|caller| caller.principal))
}

/// Like [`authenticate`], with a partner user's partner read in the same statement.
pub(crate) async fn authenticate_caller(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AppError::Unauthenticated)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AppError::Unauthenticated)?;
    let claims = state.verifier.verify(token.trim()).await?;
    let mut conn = state.pool.get().await?;
    Ok(Some(
        gateway_domain::users::resolve_caller(&mut conn, &claims).await?,
    ))
}
