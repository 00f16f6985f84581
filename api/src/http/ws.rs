//! GraphQL subscriptions over WebSocket, with no rights past the token that opened the socket.
//!
//! async-graphql speaks the protocols; this module puts the limits around it:
//! - the bearer token travels in the `connection_init` payload
//!   (`{"Authorization": "Bearer <token>"}`), which must arrive within
//!   [`INIT_TIMEOUT`] (else close 4408, as graphql-transport-ws says);
//! - the socket closes (4401) when that token expires;
//! - only subscription operations run over it (queries and mutations go to `POST /graphql`,
//!   under the HTTP limits): anything else answers `SUBSCRIPTIONS_ONLY`;
//! - at most [`MAX_SUBSCRIPTIONS`] at a time (`TOO_MANY_SUBSCRIPTIONS` for the one over);
//! - messages of at most [`MAX_MESSAGE_BYTES`];
//! - a WebSocket ping every [`PING_EVERY`], so proxies keep the socket and dead peers go.
//!
//! Before each event is delivered the caller is resolved again from the token's claims
//! (`live.rs`): a removed user or lost role ends the subscription with `FORBIDDEN`.

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::str::FromStr;

use async_graphql::http::WebSocketProtocols;
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response, ServerError};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::State;
use axum::response::{IntoResponse, Response as HttpResponse};
use futures::stream::BoxStream;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};

use super::AppState;
use crate::graphql::live::SocketClaims;
use crate::graphql::loaders::Loaders;
use crate::graphql::{GatewaySchema, RequestCtx};

/// How long a client has to send `connection_init`.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// Subscriptions one socket may hold at a time.
pub const MAX_SUBSCRIPTIONS: usize = 20;
/// The largest message a client may send (a subscription document and its variables).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// How often the server pings.
pub const PING_EVERY: Duration = Duration::from_secs(20);

/// Who may open the socket: a bearer token in `connection_init` (`/graphql/ws`), or the
/// operators' console session of the upgrade request's cookie, with its CSRF token in
/// `connection_init` (`/ops/ws`).
#[derive(Clone)]
pub(super) enum Opener {
    Token,
    Console {
        cookie: String,
        principal: gateway_domain::permissions::Principal,
        csrf: String,
        expires_at: i64,
    },
}

/// How often a console socket checks that its session still exists (sign-out elsewhere).
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(5);

pub(super) async fn upgrade(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    upgrade: axum::extract::WebSocketUpgrade,
) -> HttpResponse {
    upgrade_for(state, headers, upgrade, Opener::Token)
}

/// Upgrades with the given opener (the console's handler has checked its session).
pub(super) fn upgrade_for(
    state: AppState,
    headers: axum::http::HeaderMap,
    upgrade: axum::extract::WebSocketUpgrade,
    opener: Opener,
) -> HttpResponse {
    // The first subprotocol offered that we speak (as async-graphql-axum's extractor picks it).
    let Some(protocol) = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
    else {
        return axum::http::StatusCode::BAD_REQUEST.into_response();
    };
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(state, socket, protocol, opener))
}

/// What the socket knows of itself, shared by the input filter, the init callback and the loop.
#[derive(Default)]
struct Socket {
    /// `connection_init` seen.
    init: bool,
    /// When the token that opened the socket expires (unix seconds).
    expires_at: Option<i64>,
    /// Ids of the subscriptions running.
    running: HashSet<String>,
}

async fn serve(state: AppState, socket: WebSocket, protocol: WebSocketProtocols, opener: Opener) {
    let legacy = matches!(protocol, WebSocketProtocols::SubscriptionsTransportWS);
    let (mut sink, stream) = socket.split();
    let shared = Arc::new(Mutex::new(Socket::default()));
    // Answers the input filter sends itself (a refused subscription), and the close it asks for.
    let (refusals, mut refused) = tokio::sync::mpsc::unbounded_channel::<Message>();

    let input = {
        let shared = shared.clone();
        stream
            .take_while(|m| futures::future::ready(m.is_ok()))
            .filter_map(move |m| {
                let bytes = match m {
                    Ok(Message::Text(t)) => Some(t.as_bytes().to_vec()),
                    Ok(Message::Binary(b)) => Some(b.to_vec()),
                    _ => None,
                };
                let keep = bytes.and_then(|b| admit(&shared, &refusals, legacy, b));
                futures::future::ready(keep)
            })
    };

    let init_shared = shared.clone();
    let out_shared = shared.clone();
    let init_state = state.clone();
    let init_opener = opener.clone();
    let ws = async_graphql::http::WebSocket::new(
        SubscriptionsOnly(state.schema.clone()),
        input,
        protocol,
    )
    .on_connection_init(move |payload| async move {
        let (data, expires_at) = match init_opener {
            Opener::Token => connection_init(&init_state, payload).await?,
            Opener::Console {
                principal,
                csrf,
                expires_at,
                ..
            } => console_init(&init_state, payload, principal, &csrf, expires_at)?,
        };
        init_shared.lock().expect("socket state").expires_at = Some(expires_at);
        Ok(data)
    })
    .map(move |msg| match msg {
        async_graphql::http::WsMessage::Text(text) => {
            finished(&out_shared, &text);
            Message::Text(text.into())
        }
        // A refused connection_init is 4403 Forbidden, as graphql-transport-ws asks (the
        // library says 1002).
        async_graphql::http::WsMessage::Close(1002, reason)
            if reason.starts_with("UNAUTHENTICATED") || reason.starts_with("FORBIDDEN") =>
        {
            close(4403, &reason)
        }
        async_graphql::http::WsMessage::Close(code, reason) => close(code, &reason),
    });
    futures::pin_mut!(ws);

    let opened = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(opened + PING_EVERY, PING_EVERY);
    let mut session_check =
        tokio::time::interval_at(opened + SESSION_CHECK_EVERY, SESSION_CHECK_EVERY);
    loop {
        let (init, expires_at) = {
            let s = shared.lock().expect("socket state");
            (s.init, s.expires_at)
        };
        let init_deadline = async {
            if init {
                std::future::pending::<()>().await
            } else {
                tokio::time::sleep_until(opened + INIT_TIMEOUT).await
            }
        };
        let expiry = async {
            match expires_at {
                Some(exp) => {
                    let left = exp - chrono::Utc::now().timestamp();
                    tokio::time::sleep(Duration::from_secs(left.max(0) as u64)).await
                }
                None => std::future::pending::<()>().await,
            }
        };
        let out = tokio::select! {
            m = ws.next() => match m {
                Some(m) => m,
                None => break,
            },
            Some(m) = refused.recv() => m,
            _ = ping.tick() => Message::Ping(Default::default()),
            _ = init_deadline => close(4408, "Connection initialisation timeout"),
            _ = expiry => close(4401, "Unauthorized: the token expired"),
            _ = session_check.tick() => match &opener {
                Opener::Console { cookie, .. } if !session_alive(&state, cookie).await => {
                    close(4401, "Unauthorized: the console session ended")
                }
                _ => continue,
            },
        };
        let closing = matches!(out, Message::Close(_));
        if sink.send(out).await.is_err() || closing {
            break;
        }
    }
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.to_owned().into(),
    }))
}

/// Looks at one client message before async-graphql does: notes `connection_init`, counts the
/// subscriptions, refuses the one over [`MAX_SUBSCRIPTIONS`].
fn admit(
    shared: &Mutex<Socket>,
    refusals: &tokio::sync::mpsc::UnboundedSender<Message>,
    legacy: bool,
    bytes: Vec<u8>,
) -> Option<Vec<u8>> {
    let Ok(msg) = serde_json::from_slice::<Value>(&bytes) else {
        return Some(bytes); // async-graphql closes with its own message
    };
    let id = msg["id"].as_str().map(str::to_owned);
    let mut s = shared.lock().expect("socket state");
    match (msg["type"].as_str(), id) {
        (Some("connection_init"), _) => s.init = true,
        (Some("subscribe" | "start"), Some(id)) => {
            if s.running.len() >= MAX_SUBSCRIPTIONS && !s.running.contains(&id) {
                let error = json!({
                    "message": format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection; complete one first"),
                    "extensions": {"code": "TOO_MANY_SUBSCRIPTIONS"},
                });
                let payload = if legacy { error } else { json!([error]) };
                let _ = refusals.send(Message::Text(
                    json!({"id": id, "type": "error", "payload": payload})
                        .to_string()
                        .into(),
                ));
                return None;
            }
            s.running.insert(id);
        }
        (Some("complete" | "stop"), Some(id)) => {
            s.running.remove(&id);
        }
        _ => {}
    }
    Some(bytes)
}

/// Notes a subscription the server ended (`complete` or `error` for its id).
fn finished(shared: &Mutex<Socket>, text: &str) {
    if !(text.contains("\"complete\"") || text.contains("\"error\"")) {
        return;
    }
    if let Ok(msg) = serde_json::from_str::<Value>(text) {
        if let (Some("complete" | "error"), Some(id)) = (msg["type"].as_str(), msg["id"].as_str()) {
            shared.lock().expect("socket state").running.remove(id);
        }
    }
}

/// Whether a console session still exists (an unreachable database keeps the socket).
async fn session_alive(state: &AppState, cookie: &str) -> bool {
    match state.pool.get().await {
        Ok(mut c) => !matches!(
            gateway_domain::ops_sessions::find(&mut c, cookie).await,
            Ok(None)
        ),
        Err(_) => true,
    }
}

/// A console socket's `connection_init`: the session's CSRF token (`{"csrfToken": …}`) proves
/// the page of this origin opened it.
fn console_init(
    state: &AppState,
    payload: Value,
    principal: gateway_domain::permissions::Principal,
    csrf: &str,
    expires_at: i64,
) -> async_graphql::Result<(Data, i64)> {
    let given = payload
        .get("csrfToken")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        given.as_bytes(),
        csrf.as_bytes(),
    )) {
        return Err(async_graphql::Error::new(
            "FORBIDDEN: send the console session's csrfToken in connection_init",
        ));
    }
    Ok((socket_data(state, principal), expires_at))
}

fn socket_data(state: &AppState, principal: gateway_domain::permissions::Principal) -> Data {
    let mut data = Data::default();
    data.insert(Arc::new(Loaders::new(
        &state.pool,
        &state.config,
        &state.catalog,
        Arc::new(AtomicU32::new(0)),
        Some(principal.clone()),
    )));
    data.insert(RequestCtx {
        principal: Some(principal),
        // A socket lives long: its operations read the partner afresh.
        own_partner: None,
        request_id: uuid::Uuid::now_v7().to_string(),
    });
    data
}

/// Verifies the token of `connection_init` and builds the socket's context; also returns when
/// the token expires.
async fn connection_init(state: &AppState, payload: Value) -> async_graphql::Result<(Data, i64)> {
    let unauthenticated = |m: &str| async_graphql::Error::new(format!("UNAUTHENTICATED: {m}"));
    let token = ["Authorization", "authorization", "authToken", "token"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(|v| v.as_str()))
        .map(|t| {
            t.trim_start_matches("Bearer ")
                .trim_start_matches("bearer ")
                .trim()
                .to_owned()
        })
        .ok_or_else(|| unauthenticated("send the bearer token in connection_init"))?;
    let claims = state
        .verifier
        .verify(&token)
        .await
        .map_err(|e| unauthenticated(&e.message()))?;
    let mut conn = state
        .pool
        .get()
        .await
        .map_err(|e| async_graphql::Error::new(format!("INTERNAL: {e}")))?;
    let principal = gateway_domain::users::resolve_caller(&mut conn, &claims)
        .await
        .map_err(|e| async_graphql::Error::new(format!("{}: {}", e.code(), e.message())))?
        .principal;
    let mut data = socket_data(state, principal);
    let expires_at = claims.exp;
    data.insert(SocketClaims(Arc::new(claims)));
    Ok((data, expires_at))
}

/// The schema, refusing anything but a subscription: queries and mutations over a socket would
/// bypass the HTTP limits (concurrency, body size, rate limits).
#[derive(Clone)]
struct SubscriptionsOnly(GatewaySchema);

impl Executor for SubscriptionsOnly {
    async fn execute(&self, request: Request) -> Response {
        self.0.execute(request).await
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        if let Ok(doc) = async_graphql::parser::parse_query(&request.query) {
            let ty = match request.operation_name.as_deref() {
                Some(name) => doc
                    .operations
                    .iter()
                    .find(|(n, _)| n.map(|n| n.as_str()) == Some(name))
                    .map(|(_, op)| op.node.ty),
                None => doc.operations.iter().next().map(|(_, op)| op.node.ty),
            };
            if matches!(ty, Some(OperationType::Query | OperationType::Mutation)) {
                let mut error = ServerError::new(
                    "only subscriptions run over the WebSocket; send queries and mutations to POST /graphql",
                    None,
                );
                let mut ext = async_graphql::ErrorExtensionValues::default();
                ext.set("code", "SUBSCRIPTIONS_ONLY");
                error.extensions = Some(ext);
                return futures::stream::once(async move { Response::from_errors(vec![error]) })
                    .boxed();
            }
        }
        Executor::execute_stream(&self.0, request, session_data)
    }
}
