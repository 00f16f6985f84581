//! GraphQL over HTTP: `POST /graphql` (JSON; batches of up to `GRAPHQL_MAX_BATCH`), `GET
//! /graphql` (queries only; without a query, GraphiQL outside production).
//!
//! CSRF: a POST must be `application/json` (a browser cannot send that cross-site without a
//! CORS preflight, which the allowlist decides); "simple" content types are refused with 415,
//! and mutations over GET with 405.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse, ErrorExtensions};
use axum::body::{to_bytes, Body};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use gateway_domain::permissions::Principal;
use gateway_domain::users::Caller;
use gateway_domain::AppError;

use super::{authenticate_caller, error_response, request_id, AppState};
use crate::graphql::documents::Validation;
use crate::graphql::loaders::Loaders;
use crate::graphql::RequestCtx;
use crate::metrics::Metrics;

fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/graphql-response+json"))
}

pub(super) async fn post(State(state): State<AppState>, req: Request) -> Response {
    match read_request(&state, req).await {
        Ok((headers, peer, batch)) => execute(state, headers, peer, batch).await,
        Err(resp) => resp,
    }
}

/// A POSTed GraphQL request, checked (content type, size, batch size) and parsed; or the
/// error response.
pub(super) async fn read_request(
    state: &AppState,
    req: Request,
) -> Result<(HeaderMap, Option<std::net::SocketAddr>, BatchRequest), Response> {
    let headers = req.headers().clone();
    let peer = peer(req.extensions());
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
        return Err(error_response(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "BAD_USER_INPUT",
            "POST /graphql takes Content-Type: application/json",
        ));
    }
    let limit = state.config.http.max_body_bytes;
    let bytes = match to_bytes(req.into_body(), limit).await {
        Ok(b) => b,
        Err(_) => {
            return Err(error_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BAD_USER_INPUT",
                &format!("request body exceeds {limit} bytes"),
            ))
        }
    };
    let batch: BatchRequest = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("malformed GraphQL request: {e}"),
            ))
        }
    };
    let mut batch = batch;
    let requests: Vec<&mut async_graphql::Request> = match &mut batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(list) => list.iter_mut().collect(),
    };
    let mut empty = false;
    for r in requests {
        super::persisted::resolve(state, r).await?;
        empty |= r.query.trim().is_empty();
    }
    if empty {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.",
        ));
    }
    if let BatchRequest::Batch(list) = &batch {
        let max = state.config.http.max_batch;
        if list.len() > max || list.is_empty() {
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "BAD_USER_INPUT",
                &format!("a batch holds 1 to {max} operations"),
            ));
        }
    }
    Ok((headers, peer, batch))
}

/// The TCP peer, when the server was started with connect info (`gateway-api serve`).
fn peer(ext: &axum::http::Extensions) -> Option<std::net::SocketAddr> {
    ext.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0)
}

#[derive(serde::Deserialize)]
pub(super) struct GetParams {
    query: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    variables: Option<String>,
    /// JSON, as Apollo's persisted-query GETs send it: `{"persistedQuery": {…}}`.
    extensions: Option<String>,
}

pub(super) async fn get(
    State(state): State<AppState>,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    Query(params): Query<GetParams>,
) -> Response {
    if params.query.is_none() && params.extensions.is_some() {
        // A hash-only GET (automatic persisted queries).
        return get_persisted(state, headers, ext, params).await;
    }
    let Some(query) = params.query else {
        if state.config.is_production() {
            return error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "GraphiQL is disabled in production",
            );
        }
        let page = GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Partner benefits gateway")
            .finish();
        // GraphiQL (development only) loads React and GraphiQL from unpkg.
        let csp = super::security::page_csp(&page, "https://unpkg.com");
        return ([(header::CONTENT_SECURITY_POLICY, csp)], Html(page)).into_response();
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
        Err(e) => {
            let why = e.to_string();
            let why = why
                .lines()
                .filter_map(|l| l.trim().strip_prefix("= "))
                .next_back()
                .unwrap_or("invalid document");
            return error_response(
                StatusCode::BAD_REQUEST,
                "GRAPHQL_PARSE_FAILED",
                &format!("Syntax Error: {why}"),
            );
        }
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
    if let Some(extensions) = params.extensions {
        match serde_json::from_str::<HashMap<String, serde_json::Value>>(&extensions) {
            Ok(map) => {
                for (k, v) in map {
                    if let Ok(v) = async_graphql::Value::from_json(v) {
                        req.extensions.insert(k, v);
                    }
                }
            }
            Err(_) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    "BAD_USER_INPUT",
                    "extensions must be a JSON object",
                )
            }
        }
    }
    if let Err(resp) = super::persisted::resolve(&state, &mut req).await {
        return resp;
    }
    execute(state, headers, peer(&ext), BatchRequest::Single(req)).await
}

/// `GET /graphql?extensions={"persistedQuery":…}` with no query: the document comes from the
/// persisted ones, then it runs as a GET (queries only).
async fn get_persisted(
    state: AppState,
    headers: HeaderMap,
    ext: axum::http::Extensions,
    mut params: GetParams,
) -> Response {
    let mut probe = async_graphql::Request::new("");
    if let Some(extensions) = &params.extensions {
        if let Ok(map) = serde_json::from_str::<HashMap<String, serde_json::Value>>(extensions) {
            for (k, v) in map {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    probe.extensions.insert(k, v);
                }
            }
        }
    }
    if let Err(resp) = super::persisted::resolve(&state, &mut probe).await {
        return resp;
    }
    if probe.query.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "GraphQL operations must contain a non-empty `query` or a `persistedQuery` extension.",
        );
    }
    params.query = Some(probe.query);
    Box::pin(get(State(state), headers, ext, Query(params))).await
}

/// Errors raised by async-graphql itself carry no code. A request error (no `path`, no data:
/// the operation never ran) is GRAPHQL_PARSE_FAILED when the document did not parse, else
/// GRAPHQL_VALIDATION_FAILED (validation and variable coercion), as other servers name them;
/// an uncoded error raised while running is the client's input (BAD_USER_INPUT).
fn ensure_codes(response: &mut async_graphql::Response, parse_failed: bool) {
    let request_error = response.data == async_graphql::Value::Null;
    for e in &mut response.errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if has_code {
            continue;
        }
        let code = match (request_error && e.path.is_empty(), parse_failed) {
            (true, true) => {
                // The parser's own text is a dump of the source; keep its last line.
                let why = e
                    .message
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("= "))
                    .next_back()
                    .unwrap_or("invalid document")
                    .to_owned();
                e.message = format!("Syntax Error: {why}");
                "GRAPHQL_PARSE_FAILED"
            }
            (true, false) => "GRAPHQL_VALIDATION_FAILED",
            (false, _) => "BAD_USER_INPUT",
        };
        let coded =
            async_graphql::Error::new(e.message.clone()).extend_with(|_, x| x.set("code", code));
        e.extensions = coded.extensions;
    }
}

/// Whether a response is a request error in the GraphQL-over-HTTP sense: errors only, the
/// operation never ran (no `data`, no error with a `path`).
fn is_request_error(r: &async_graphql::Response) -> bool {
    r.data == async_graphql::Value::Null
        && !r.errors.is_empty()
        && r.errors.iter().all(|e| e.path.is_empty())
}

/// Runs a GraphQL request, counting the SQL statements it sends (authentication and
/// DataLoader batches included): `graphql_request_sql_statements` and the
/// `x-sql-statements` response header.
async fn execute(
    state: AppState,
    headers: HeaderMap,
    peer: Option<std::net::SocketAddr>,
    batch: BatchRequest,
) -> Response {
    execute_for(state, headers, peer, batch, None).await
}

/// Like `execute`, for a caller known another way (the operators' console session) when
/// `preset` is given, instead of the bearer token.
pub(super) async fn execute_for(
    state: AppState,
    headers: HeaderMap,
    peer: Option<std::net::SocketAddr>,
    batch: BatchRequest,
    preset: Option<Caller>,
) -> Response {
    let statements = Arc::new(AtomicU32::new(0));
    let metrics = state.metrics.clone();
    let mut resp = gateway_domain::db::counting_statements(
        statements.clone(),
        execute_counted(state, headers, peer, batch, statements.clone(), preset),
    )
    .await;
    let n = statements.load(Ordering::Relaxed);
    metrics.statements.observe(f64::from(n));
    resp.headers_mut()
        .insert("x-sql-statements", HeaderValue::from(n));
    resp
}

/// What a single request's document asks of introspection at its root: (every root field is
/// `__schema`, `__type` or `__typename`, so it may nest deeper than other documents; some root
/// field is `__schema` or `__type`).
fn introspection_only(batch: &mut BatchRequest) -> (bool, bool) {
    use async_graphql::parser::types::Selection;
    let BatchRequest::Single(request) = batch else {
        return (false, false);
    };
    let Ok(doc) = request.parsed_query() else {
        return (false, false);
    };
    let (mut only, mut schema) = (true, false);
    for (_, op) in doc.operations.iter() {
        for item in &op.node.selection_set.node.items {
            match &item.node {
                Selection::Field(f) if f.node.name.node.starts_with("__") => {
                    schema |= f.node.name.node != "__typename";
                }
                _ => only = false,
            }
        }
    }
    (only && schema, schema)
}

/// Why a document is too wide to run: more root fields in one operation than
/// GRAPHQL_MAX_ROOT_FIELDS, or more aliased fields than GRAPHQL_MAX_ALIASES (about a thousand
/// aliases of one cheap field fit under the complexity limit, each resolved on its own).
fn too_wide(batch: &mut BatchRequest, max_root: usize, max_aliases: usize) -> Option<String> {
    use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
    fn walk(
        doc: &ExecutableDocument,
        set: &SelectionSet,
        root: bool,
        seen: &mut Vec<String>,
        counts: &mut (usize, usize),
    ) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => {
                    if root {
                        counts.0 += 1;
                    }
                    if f.node.alias.is_some() {
                        counts.1 += 1;
                    }
                    walk(doc, &f.node.selection_set.node, false, seen, counts);
                }
                Selection::InlineFragment(i) => {
                    walk(doc, &i.node.selection_set.node, root, seen, counts)
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.to_string();
                    // Each fragment counted once per place it is spread, but never recursively.
                    if seen.contains(&name) {
                        continue;
                    }
                    if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                        seen.push(name);
                        walk(doc, &f.node.selection_set.node, root, seen, counts);
                        seen.pop();
                    }
                }
            }
        }
    }
    let requests: Vec<&mut async_graphql::Request> = match batch {
        BatchRequest::Single(r) => vec![r],
        BatchRequest::Batch(list) => list.iter_mut().collect(),
    };
    for request in requests {
        let Ok(doc) = request.parsed_query() else {
            continue; // reported by the execution as a parse error
        };
        let mut aliases = 0;
        for (_, op) in doc.operations.iter() {
            let mut counts = (0, 0);
            walk(
                doc,
                &op.node.selection_set.node,
                true,
                &mut vec![],
                &mut counts,
            );
            if counts.0 > max_root {
                return Some(format!(
                    "an operation may select at most {max_root} root fields; this one selects {}",
                    counts.0
                ));
            }
            aliases += counts.1;
        }
        if aliases > max_aliases {
            return Some(format!(
                "a document may hold at most {max_aliases} aliased fields; this one holds {aliases}"
            ));
        }
    }
    None
}

async fn execute_counted(
    state: AppState,
    headers: HeaderMap,
    peer: Option<std::net::SocketAddr>,
    mut batch: BatchRequest,
    statements: Arc<AtomicU32>,
    preset: Option<Caller>,
) -> Response {
    let started = Instant::now();
    let rid = request_id(&headers);
    let caller = match preset {
        Some(c) => Some(c),
        None => match caller(&state, &headers, &rid).await {
            Ok(c) => c,
            Err(resp) => return resp,
        },
    };
    let operations: Vec<String> = match &batch {
        BatchRequest::Single(r) => vec![Metrics::operation_label(r.operation_name.as_deref())],
        BatchRequest::Batch(v) => v
            .iter()
            .map(|r| Metrics::operation_label(r.operation_name.as_deref()))
            .collect(),
    };
    let validation = state.documents.prepare(&mut batch);
    let parse_failed: Vec<bool> = match &mut batch {
        BatchRequest::Single(r) => vec![r.parsed_query().is_err()],
        BatchRequest::Batch(list) => list.iter_mut().map(|r| r.parsed_query().is_err()).collect(),
    };
    let http = &state.config.http;
    if let Some(why) = too_wide(&mut batch, http.max_root_fields, http.max_aliases) {
        return error_response(StatusCode::BAD_REQUEST, "GRAPHQL_VALIDATION_FAILED", &why);
    }
    let address = state.limiter.client_address(&headers, peer);
    if let Err(limited) = state
        .limiter
        .check(caller.as_ref().map(|c| &c.principal), &address, &mut batch)
        .await
    {
        return rate_limited(&limited);
    }
    let (introspection, asks_schema) = introspection_only(&mut batch);
    if asks_schema && !state.config.http.introspection {
        // As Apollo Server answers it: a validation failure, with nothing of the schema told.
        return error_response(
            StatusCode::BAD_REQUEST,
            "GRAPHQL_VALIDATION_FAILED",
            "GraphQL introspection is not allowed here (GRAPHQL_INTROSPECTION is off), but the \
             query contained __schema or __type",
        );
    }
    // Every log line of this request carries who and what (never the token).
    let span = tracing::info_span!(
        "request",
        request_id = %rid,
        operation = %operations.join(","),
        partner_id = tracing::field::Empty,
        user_id = tracing::field::Empty,
    );
    // A client that sends W3C `traceparent` gets the request in its own trace.
    gateway_domain::telemetry::continue_trace(
        &span,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    match caller.as_ref().map(|c| &c.principal) {
        Some(Principal::User {
            user_id,
            partner_id,
            ..
        }) => {
            span.record("partner_id", tracing::field::display(partner_id));
            span.record("user_id", tracing::field::display(user_id));
        }
        Some(Principal::Operator { operator_id, .. }) => {
            span.record("user_id", tracing::field::display(operator_id));
        }
        _ => {}
    }
    let batch = with_request_data(&state, batch, caller, &rid, statements);
    let schema = match validation {
        _ if introspection => &state.introspection_schema,
        Validation::Passed => &state.validated_schema,
        _ => &state.schema,
    };
    let timeout = state.config.http.request_timeout;
    let result = tokio::time::timeout(
        timeout,
        tracing::Instrument::instrument(schema.execute_batch(batch), span),
    )
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let Ok(mut response) = result else {
        for op in &operations {
            let label = state.metrics.label(op, false);
            state
                .metrics
                .requests
                .with_label_values(&[label.as_str(), "timeout"])
                .inc();
        }
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "INTERNAL",
            "the request took too long and was stopped",
        );
    };
    if let (Validation::First { text, operation }, BatchResponse::Single(r)) =
        (validation, &response)
    {
        if r.errors.is_empty() {
            state.documents.passed(&text, operation);
        }
    }
    let outcomes = finish(&mut response, &parse_failed);
    for (op, ok) in operations.iter().zip(outcomes) {
        let label = state.metrics.label(op, ok);
        state
            .metrics
            .requests
            .with_label_values(&[label.as_str(), if ok { "ok" } else { "error" }])
            .inc();
        state
            .metrics
            .latency
            .with_label_values(&[label.as_str()])
            .observe(elapsed);
    }
    respond(&headers, &response, &rid)
}

/// 429 with `Retry-After`, and RATE_LIMITED with `retryAfter` (seconds) in the error.
fn rate_limited(limited: &super::rate_limit::Limited) -> Response {
    let secs = limited.retry_after;
    let body = serde_json::json!({"errors": [{
        "message": format!("too many requests ({} limit); retry in {secs} s", limited.bucket),
        "extensions": {"code": "RATE_LIMITED", "retryAfter": secs},
    }]});
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::RETRY_AFTER, secs.to_string()),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The caller of the bearer token, if any; a bad token is 401, a failure to check it 503.
async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    rid: &str,
) -> Result<Option<Caller>, Response> {
    match authenticate_caller(state, headers).await {
        Ok(c) => Ok(c),
        Err(AppError::Unauthenticated) => {
            let mut resp = error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "invalid or expired bearer token",
            );
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            Err(resp)
        }
        Err(e) => {
            tracing::error!(error = ?e, request_id = %rid, "authentication failed");
            Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "INTERNAL",
                "service temporarily unavailable",
            ))
        }
    }
}

/// The request's data: who calls (with its partner, for a single operation) and its loaders.
fn with_request_data(
    state: &AppState,
    batch: BatchRequest,
    caller: Option<Caller>,
    rid: &str,
    statements: Arc<AtomicU32>,
) -> BatchRequest {
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
    batch
        .data(RequestCtx {
            principal,
            own_partner,
            request_id: rid.to_owned(),
        })
        .data(Arc::new(loaders))
}

/// Gives every error a code; returns whether each operation ran without errors.
fn finish(response: &mut BatchResponse, parse_failed: &[bool]) -> Vec<bool> {
    let failed = |i: usize| parse_failed.get(i).copied().unwrap_or(false);
    match response {
        BatchResponse::Single(r) => {
            ensure_codes(r, failed(0));
            vec![r.errors.is_empty()]
        }
        BatchResponse::Batch(list) => list
            .iter_mut()
            .enumerate()
            .map(|(i, r)| {
                ensure_codes(r, failed(i));
                r.errors.is_empty()
            })
            .collect(),
    }
}

/// The response, as GraphQL over HTTP says: in the content type the client asked for; with
/// `application/graphql-response+json`, a request error (parse, validation, variables) is 400
/// with no `data` entry; whatever the type, a response whose every error is UNAUTHENTICATED is
/// 401 with `WWW-Authenticate: Bearer`. Batches and `application/json` answers are otherwise
/// 200 (the legacy type's rule).
fn respond(headers: &HeaderMap, response: &BatchResponse, rid: &str) -> Response {
    let modern = wants_graphql_response(headers);
    let content_type = if modern {
        "application/graphql-response+json"
    } else {
        "application/json"
    };
    let mut status = StatusCode::OK;
    let body = match response {
        BatchResponse::Single(r) => {
            let unauthenticated = !r.errors.is_empty()
                && r.errors.iter().all(|e| {
                    e.extensions
                        .as_ref()
                        .and_then(|x| x.get("code"))
                        .is_some_and(|c| *c == async_graphql::Value::from("UNAUTHENTICATED"))
                });
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if unauthenticated {
                status = StatusCode::UNAUTHORIZED;
            } else if modern && is_request_error(r) {
                status = StatusCode::BAD_REQUEST;
            }
            if modern && is_request_error(r) {
                if let Some(o) = v.as_object_mut() {
                    o.remove("data");
                }
            }
            serde_json::to_vec(&v)
        }
        BatchResponse::Batch(_) => serde_json::to_vec(response),
    }
    .unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Ok(v) = HeaderValue::from_str(rid) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}
