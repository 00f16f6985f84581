//! `GET /dev/mail`: the mail the system captured, for end-to-end tests. It answers only
//! outside production and with a capturing email transport (`EMAIL_TRANSPORT=file` or
//! `memory`); otherwise 404, as if the route did not exist.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gateway_domain::email::captured;
use gateway_domain::AppError;

use super::{error_response, status_of, AppState};

/// `GET /dev/mail?to=<address>`: `{"messages": [...]}`, oldest first (the newest
/// `captured::MAX_MESSAGES`), each with `to`, `subject`, `text`, `html`, `links`, `status`,
/// `template`, `partnerId`, `createdAt`, `sentAt`.
pub(super) async fn mail(
    State(state): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let mut conn = state.pool.get().await?;
        captured::read(
            &mut conn,
            &state.config,
            params.get("to").map(String::as_str),
        )
        .await
    }
    .await;
    match result {
        Ok(messages) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(serde_json::json!({ "messages": messages })),
        )
            .into_response(),
        Err(e @ AppError::NotFound(_)) => error_response(
            status_of(&e),
            "NOT_FOUND",
            "captured mail is served only outside production with EMAIL_TRANSPORT=file or memory",
        ),
        Err(e) => error_response(status_of(&e), e.code(), &e.message()),
    }
}
