//! GraphQL subscriptions over WebSocket.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::Response;

use super::{authenticate, AppState};
use crate::graphql::loaders::Loaders;
use crate::graphql::RequestCtx;

/// GraphQL subscriptions over WebSocket (graphql-transport-ws, and the older graphql-ws).
/// The bearer token travels in the `connection_init` payload:
/// `{"Authorization": "Bearer <token>"}`; without a valid one the connection is closed.
pub(super) async fn upgrade(
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
