//! `POST /webhooks/stripe`: Stripe's events. The `Stripe-Signature` header is verified over the
//! raw body with the endpoint's secret (`STRIPE_WEBHOOK_SECRET`; HMAC-SHA256, 5-minute
//! tolerance, constant-time compare) before anything is read or written: a bad signature is
//! 400 with nothing written. A verified event is recorded once by its id and handled in the
//! same transaction (`purchases::webhooks`); a replay is 200 and changes nothing. Answered
//! 200 quickly so Stripe does not retry; 500 (Stripe retries) only when it could not be
//! recorded.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_domain::config::GatewayKind;
use gateway_domain::providers::stripe::verify_signature;
use gateway_domain::purchases::webhooks::{record_stripe_event, Recorded};

use super::{error_response, AppState};

pub(super) async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let GatewayKind::Stripe(stripe) = &state.config.billing.gateway else {
        return error_response(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "the Stripe gateway is not in use here (PAYMENT_GATEWAY)",
        );
    };
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    if let Err(e) = verify_signature(&stripe.webhook_secret, signature, &body, now) {
        tracing::warn!(reason = e.message(), "Stripe webhook refused");
        return error_response(StatusCode::BAD_REQUEST, "BAD_SIGNATURE", e.message());
    }
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the body is not a JSON event",
        );
    };
    let result = async {
        let mut conn = state.pool.get().await?;
        record_stripe_event(&mut conn, &state.services, &event).await
    }
    .await;
    match result {
        Ok(recorded) => {
            let (replay, outcome) = match recorded {
                Recorded::New(outcome) => (false, outcome),
                Recorded::Replay => (true, "already received".to_owned()),
            };
            tracing::info!(
                event = event["id"].as_str().unwrap_or_default(),
                kind = event["type"].as_str().unwrap_or_default(),
                replay,
                outcome,
                "Stripe webhook"
            );
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({"received": true, "replay": replay}).to_string(),
            )
                .into_response()
        }
        Err(e) => error_response(super::status_of(&e), e.code(), &e.message()),
    }
}
