//! HTTP surface: GraphQL over POST and GET, GraphiQL, health, readiness, metrics.
//!
//! CSRF: a POST must be `application/json` (a browser cannot send that cross-site without a
//! CORS preflight, which the allowlist decides); "simple" content types are refused with 415,
//! and mutations over GET with 405.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, ErrorExtensions, ServerError};
use axum::body::{to_bytes, Body};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gateway_domain::auth::Verifier;
use gateway_domain::config::Config;
use gateway_domain::db::DbPool;
use gateway_domain::permissions::Principal;
use gateway_domain::users::Caller;
use gateway_domain::AppError;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::graphql::documents::Validation;
use crate::graphql::loaders::Loaders;
use crate::graphql::{GatewaySchema, RequestCtx};
use crate::metrics::Metrics;

#[derive(Clone)]
pub struct AppState {
    pub schema: GatewaySchema,
    /// The same schema with async-graphql's fast validation, for requests whose document is
    /// known to pass the full validation (`graphql::documents`).
    pub validated_schema: GatewaySchema,
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub verifier: Verifier,
    pub redis: redis::Client,
    pub metrics: Metrics,
    /// Parsed GraphQL documents by text (`graphql::documents`).
    pub documents: Arc<crate::graphql::documents::Documents>,
    /// The offer catalog as last read (`graphql::loaders::Catalog`).
    pub catalog: Arc<crate::graphql::loaders::Catalog>,
}

pub fn router(state: AppState) -> Router {
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
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT])
        .max_age(Duration::from_secs(600));
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(graphql_ws))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/invoices/{id}/pdf", get(invoice_pdf))
        .route("/ops", get(|| async { Html(include_str!("ops.html")) }))
        .layer(cors)
        .with_state(state)
}

/// A GraphQL-shaped error response with a code, for failures before execution.
fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn request_id(headers: &HeaderMap) -> String {
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
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, AppError> {
    Ok(authenticate_caller(state, headers)
        .await?
        .map(|caller| caller.principal))
}

/// Like [`authenticate`], with a partner user's partner read in the same statement.
async fn authenticate_caller(
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

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/graphql-response+json"))
}

async fn graphql_post(State(state): State<AppState>, req: Request) -> Response {
    let headers = req.headers().clone();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && mime != "application/graphql-response+json" {
        return error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "POST /graphql takes Content-Type: application/json",
        );
    }
    let limit = state.config.http.max_body_bytes;
    let bytes = match to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            return error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                &format!("request body exceeds {limit} bytes"),
            )
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("malformed GraphQL request: {e}"),
            )
        }
    };
    if let BatchRequest::Batch(list) = &batch {
        let max = state.config.http.max_batch;
        if list.len() > max || list.is_empty() {
            return error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("a batch holds 1 to {max} operations"),
            );
        }
    }
    execute(state, headers, batch).await
}

#[derive(serde::Deserialize)]
struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<GetParams>,
) -> Response {
    let Some(query) = params.query else {
        if state.config.is_production() {
            return error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "GraphiQL is disabled in production",
            );
        }
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .title("Partner benefits gateway")
                .finish(),
        )
        .into_response();
    };
    // Mutations change state: never over GET (CSRF, caches, prefetchers).
    match async_graphql::parser::parse_query(&query) {
        Ok(doc) => {
            let is_mutation = doc.operations.iter().any(|(name, op)| {
                let selected = params
                    .operation_name
                    .as_deref()
                    .is_none_or(|n| name.map(|x| x.as_str()) == Some(n));
                selected && op.node.ty == async_graphql::parser::types::OperationType::Mutation
            });
            if is_mutation {
                let mut resp = error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "BAD_USER_INPUT",
                    "mutations must use POST",
                );
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
                return resp;
            }
        }
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "BAD_USER_INPUT", &e.to_string()),
    }
    let mut req = async_graphql::Request::new(query);
    if let Some(name) = params.operation_name {
        req = req.operation_name(name);
    }
    if let Some(vars) = params.variables {
        match serde_json::from_str(&vars) {
            Ok(v) => req = req.variables(async_graphql::Variables::from_json(v)),
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "BAD_USER_INPUT",
                    "variables must be a JSON object",
                )
            }
        }
    }
    execute(state, headers, BatchRequest::Single(req)).await
}

/// Errors raised by async-graphql itself (parse, validation, limits) carry no code: they are
/// all the client's doing.
fn ensure_codes(errors: &mut [ServerError]) {
    for e in errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if !has_code {
            let coded = async_graphql::Error::new(e.message.clone())
                .extend_with(|_, x| x.set("code", "BAD_USER_INPUT"));
            e.extensions = coded.extensions;
        }
    }
}

/// Runs a GraphQL request, counting the SQL statements it sends (authentication and
/// DataLoader batches included): `graphql_request_sql_statements` and the
/// `x-sql-statements` response header.
async fn execute(state: AppState, headers: HeaderMap, batch: BatchRequest) -> Response {
    let statements = Arc::new(AtomicU32::new(0));
    let metrics = state.metrics.clone();
    let mut resp = gateway_domain::db::counting_statements(
        statements.clone(),
        execute_counted(state, headers, batch, statements.clone()),
    )
    .await;
    let n = statements.load(Ordering::Relaxed);
    metrics.statements.observe(f64::from(n));
    resp.headers_mut()
        .insert("x-sql-statements", HeaderValue::from(n));
    resp
}

async fn execute_counted(
    state: AppState,
    headers: HeaderMap,
    mut batch: BatchRequest,
    statements: Arc<AtomicU32>,
) -> Response {
    let started = Instant::now();
    let rid = request_id(&headers);
    let caller = match authenticate_caller(&state, &headers).await {
        Ok(c) => c,
        Err(AppError::Unauthenticated) => {
            return error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "invalid or expired bearer token",
            )
        }
        Err(e) => {
            tracing::error!(error = ?e, request_id = %rid, "authentication failed");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL",
                "service temporarily unavailable",
            );
        }
    };
    let operations: Vec<String> = match &batch {
        BatchRequest::Single(r) => vec![Metrics::operation_label(r.operation_name.as_deref())],
        BatchRequest::Batch(v) => v
            .iter()
            .map(|r| Metrics::operation_label(r.operation_name.as_deref()))
            .collect(),
    };
    let validation = state.documents.prepare(&mut batch);
    let (principal, partner) = match caller {
        Some(c) => (Some(c.principal), c.partner),
        None => (None, None),
    };
    // The partner read with the token stands for the caller's own partner only in a single
    // operation: in a batch, a mutation before a query could have changed it since.
    let own_partner = partner.filter(|_| matches!(batch, BatchRequest::Single(_)));
    let loaders = Loaders::new(
        &state.pool,
        &state.config,
        &state.catalog,
        statements,
        principal.clone(),
    );
    let batch = batch
        .data(RequestCtx {
            principal,
            own_partner,
            request_id: rid.clone(),
        })
        .data(Arc::new(loaders));
    let timeout = state.config.http.request_timeout;
    let schema = match validation {
        Validation::Passed => &state.validated_schema,
        _ => &state.schema,
    };
    let result = tokio::time::timeout(timeout, schema.execute_batch(batch)).await;
    let elapsed = started.elapsed().as_secs_f64();
    let mut response = match result {
        Ok(r) => r,
        Err(_) => {
            for op in &operations {
                state
                    .metrics
                    .requests
                    .with_label_values(&[op.as_str(), "timeout"])
                    .inc();
            }
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL",
                "the request took too long and was stopped",
            );
        }
    };
    if let (Validation::First { text, operation }, BatchResponse::Single(r)) =
        (validation, &response)
    {
        if r.errors.is_empty() {
            state.documents.passed(&text, operation);
        }
    }
    let outcomes: Vec<bool> = match &mut response {
        BatchResponse::Single(r) => {
            ensure_codes(&mut r.errors);
            vec![r.errors.is_empty()]
        }
        BatchResponse::Batch(list) => list
            .iter_mut()
            .map(|r| {
                ensure_codes(&mut r.errors);
                r.errors.is_empty()
            })
            .collect(),
    };
    for (op, ok) in operations.iter().zip(outcomes) {
        state
            .metrics
            .requests
            .with_label_values(&[op.as_str(), if ok { "ok" } else { "error" }])
            .inc();
        state
            .metrics
            .latency
            .with_label_values(&[op])
            .observe(elapsed);
    }
    let content_type = if wants_graphql_response(&headers) {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    let body = serde_json::to_vec(&response).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

async fn check_postgres(pool: &DbPool) -> Result<(), String> {
    use diesel_async::RunQueryDsl;
    let mut c = pool.get().await.map_err(|e| e.to_string())?;
    diesel::sql_query("SELECT 1")
        .execute(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn check_redis(client: &redis::Client) -> Result<(), String> {
    let mut c = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn readyz(State(state): State<AppState>) -> Response {
    let limit = Duration::from_secs(2);
    let (pg, rd) = tokio::join!(
        tokio::time::timeout(limit, check_postgres(&state.pool)),
        tokio::time::timeout(limit, check_redis(&state.redis)),
    );
    let describe = |r: Result<Result<(), String>, _>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            "unreachable".to_owned()
        }
        Err(_) => "timeout".to_owned(),
    };
    let (pg, rd) = (describe(pg), describe(rd));
    let status = if pg == "ok" && rd == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"postgres": pg, "redis": rd})),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    use std::fmt::Write;
    let mut extra = String::new();
    let gauge = |out: &mut String, name: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    };
    gauge(
        &mut extra,
        "sql_statements_total",
        "SQL statements this api process sent to Postgres since it started",
    );
    let _ = writeln!(
        extra,
        "sql_statements_total {}",
        gateway_domain::db::statements_total()
    );
    if let Ok(mut c) = state.pool.get().await {
        if let Ok(lag) = gateway_domain::outbox::lag_seconds(&mut c).await {
            gauge(
                &mut extra,
                "outbox_lag_seconds",
                "Age of the oldest due outbox row not yet dispatched to Redis",
            );
            let _ = writeln!(extra, "outbox_lag_seconds {lag}");
        }
        if let Ok(pg) = gateway_domain::queues::pg_counts(&mut c).await {
            gauge(
                &mut extra,
                "outbox_waiting",
                "Outbox rows not yet relayed to Redis, by queue",
            );
            for (q, n) in &pg.outbox_waiting {
                let _ = writeln!(extra, "outbox_waiting{{queue=\"{q}\"}} {n}");
            }
            gauge(
                &mut extra,
                "due_work_backlog",
                "Scheduled actions due (on each partner's clock) and not done, by kind",
            );
            for (k, n) in &pg.due_backlog {
                let _ = writeln!(extra, "due_work_backlog{{kind=\"{k}\"}} {n}");
            }
            gauge(
                &mut extra,
                "emails",
                "Emails by delivery status (SENT: delivered, DEAD: gave up)",
            );
            for (s, n) in &pg.emails {
                let _ = writeln!(extra, "emails{{status=\"{s}\"}} {n}");
            }
        }
    }
    if let Ok(mut r) = state.redis.get_multiplexed_async_connection().await {
        gauge(
            &mut extra,
            "jobs",
            "Jobs in Redis by queue and state (counted from the queue keys)",
        );
        for q in gateway_domain::jobs::QUEUES {
            if let Ok(n) =
                gateway_domain::queues::counts(&mut r, &state.config.redis.queue_prefix, q).await
            {
                for (s, v) in [
                    ("pending", n.pending),
                    ("scheduled", n.scheduled),
                    ("running", n.running),
                    ("done", n.done),
                    ("failed", n.failed),
                    ("dead", n.dead),
                ] {
                    let _ = writeln!(extra, "jobs{{queue=\"{q}\",state=\"{s}\"}} {v}");
                }
            }
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&extra),
    )
        .into_response()
}

/// An invoice as PDF, for the roles that may see invoices (PRODUCT.md 2.2), with the same
/// bearer token as the GraphQL API. Errors use the GraphQL error shape and codes.
async fn invoice_pdf(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let fail = |e: AppError| {
        let status = match &e {
            AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::BadUserInput { .. } => StatusCode::BAD_REQUEST,
            AppError::Internal(detail) => {
                tracing::error!(error = %detail, "invoice pdf failed");
                StatusCode::INTERNAL_SERVER_ERROR
            }
            _ => StatusCode::BAD_REQUEST,
        };
        error_response(status, e.code(), &e.message())
    };
    let result = async {
        let principal = authenticate(&state, &headers)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        let id = gateway_domain::validation::uuid_id("id", &id)?;
        let mut conn = state.pool.get().await?;
        let invoice =
            gateway_domain::billing::invoices::load_visible(&mut conn, &principal, id).await?;
        let pdf = gateway_domain::billing::pdf::render(&invoice)?;
        Ok::<_, AppError>((invoice.number, pdf))
    }
    .await;
    match result {
        Ok((number, pdf)) => (
            [
                (header::CONTENT_TYPE, "application/pdf".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{number}.pdf\""),
                ),
                (header::CACHE_CONTROL, "private, no-store".to_owned()),
            ],
            pdf,
        )
            .into_response(),
        Err(e) => fail(e),
    }
}

/// GraphQL subscriptions over WebSocket (graphql-transport-ws, and the older graphql-ws).
/// The bearer token travels in the `connection_init` payload:
/// `{"Authorization": "Bearer <token>"}`; without a valid one the connection is closed.
async fn graphql_ws(
    State(state): State<AppState>,
    protocol: async_graphql_axum::GraphQLProtocol,
    upgrade: axum::extract::WebSocketUpgrade,
) -> Response {
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            let schema = state.schema.clone();
            async_graphql_axum::GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let token = ["Authorization", "authorization", "authToken", "token"]
                        .iter()
                        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
                        .map(|t| {
                            t.trim_start_matches("Bearer ")
                                .trim_start_matches("bearer ")
                                .to_owned()
                        })
                        .ok_or_else(|| {
                            async_graphql::Error::new(
                                "UNAUTHENTICATED: send the bearer token in connection_init",
                            )
                        })?;
                    let mut headers = HeaderMap::new();
                    headers.insert(
                        header::AUTHORIZATION,
                        HeaderValue::from_str(&format!("Bearer {token}"))
                            .map_err(|_| async_graphql::Error::new("UNAUTHENTICATED"))?,
                    );
                    let principal = authenticate(&state, &headers).await.map_err(|e| {
                        async_graphql::Error::new(format!("{}: {}", e.code(), e.message()))
                    })?;
                    let mut data = async_graphql::Data::default();
                    data.insert(Arc::new(Loaders::new(
                        &state.pool,
                        &state.config,
                        &state.catalog,
                        Arc::new(AtomicU32::new(0)),
                        principal.clone(),
                    )));
                    data.insert(RequestCtx {
                        principal,
                        // A socket lives long: its operations read the partner afresh.
                        own_partner: None,
                        request_id: uuid::Uuid::now_v7().to_string(),
                    });
                    Ok(data)
                })
                .serve()
        })
}
