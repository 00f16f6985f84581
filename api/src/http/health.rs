//! Liveness (`/healthz`, in the router) and readiness (`/readyz`): "send me traffic". Ready
//! when Postgres answers within two seconds and the identity provider's keys have loaded (a
//! remote JWKS that was down when the api started). Redis is reported but does not decide:
//! the api keeps working through a Redis outage (jobs wait in the outbox), so taking every
//! replica out of rotation then would be wrong.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gateway_domain::db::DbPool;

use super::AppState;

async fn check_postgres(pool: &DbPool) -> Result<(), String> {
    use diesel_async::RunQueryDsl;
    let mut c = pool.get().await.map_err(|e| e.to_string())?;
    diesel::sql_query("SELECT 1")
        .execute(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn check_redis(client: &gateway_domain::redis_conn::RedisClient) -> Result<(), String> {
    let mut c = client.connection().await.map_err(|e| e.to_string())?;
    redis::cmd("PING")
        .query_async::<String>(&mut c)
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
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
    let jwks = if state.verifier.ready().await {
        "ok"
    } else {
        "loading"
    };
    let status = if pg == "ok" && jwks == "ok" {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        axum::Json(serde_json::json!({"postgres": pg, "redis": rd, "jwks": jwks})),
    )
        .into_response()
}
