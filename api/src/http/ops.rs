//! The operators' console (`/ops`): the page and its assets (no inline script: a strict
//! Content-Security-Policy), and its sign-in. An operator's bearer token is exchanged once
//! (`POST /ops/session`) for a short-lived session cookie: `HttpOnly` (no script reads it),
//! `SameSite=Strict`, `Path=/ops`, `Secure` in production. The page keeps no token anywhere and
//! takes none from a link. Its GraphQL calls go to `POST /ops/graphql`, which accepts the
//! session cookie plus the session's CSRF token in `X-CSRF-Token`; `DELETE /ops/session` signs
//! out.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gateway_domain::ops_sessions;
use gateway_domain::users::Caller;
use gateway_domain::AppError;
use serde_json::json;

use super::{authenticate_caller, error_response, AppState};

const COOKIE: &str = "pbg_ops";
const PAGE: &str = include_str!("../ops/index.html");
const SCRIPT: &str = include_str!("../ops/app.js");
const STYLE: &str = include_str!("../ops/app.css");

/// The console's policy: its own script and style files, its own API, nothing else.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

pub(super) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(super) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

/// The session cookie's value, if the request carries one.
fn cookie(headers: &HeaderMap) -> Option<String> {
    cookie_named(headers, COOKIE)
}

/// The value of the cookie `name`, if the request carries a non-empty one.
pub(super) fn cookie_named(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a session value (empty with max-age 0: clear it).
fn set_cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/ops; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("a valid cookie")
}

fn session_json(s: &ops_sessions::Session) -> serde_json::Value {
    let name = match &s.principal {
        gateway_domain::permissions::Principal::Operator { name, .. } => name.clone(),
        _ => String::new(),
    };
    json!({"csrfToken": s.csrf, "operator": name, "expiresAt": s.expires_at})
}

/// `POST /ops/session`: `{"token": "<operator bearer token>"}` → the session cookie and
/// `{csrfToken, operator, expiresAt}`. A bad token is 401, a token of anyone but an operator 403.
pub(super) async fn sign_in(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let Some(token) = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["token"].as_str().map(|t| t.trim().to_owned()))
        .filter(|t| !t.is_empty())
    else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "send {\"token\": \"<operator token>\"}",
        );
    };
    match open_session(&state, &token).await {
        Ok((body, cookie)) => {
            let mut resp = axum::Json(body).into_response();
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(resp) => resp,
    }
}

/// Exchanges an operator's bearer token for a console session: the answer's JSON
/// (`{csrfToken, operator, expiresAt}`) and its `Set-Cookie`, or the refusal to send (401 for
/// a bad token, 403 for anyone but an operator). Used by the pasted-token sign-in and the
/// OpenID Connect callback.
pub(super) async fn open_session(
    state: &AppState,
    token: &str,
) -> Result<(serde_json::Value, HeaderValue), Response> {
    let mut headers = HeaderMap::new();
    let Ok(bearer) = HeaderValue::from_str(&format!("Bearer {token}")) else {
        return Err(error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "invalid token",
        ));
    };
    headers.insert(header::AUTHORIZATION, bearer);
    let principal = match authenticate_caller(state, &headers).await {
        Ok(Some(c)) => c.principal,
        Ok(None) | Err(AppError::Unauthenticated) => {
            return Err(error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "invalid or expired token",
            ))
        }
        Err(e) => return Err(error_response(super::status_of(&e), e.code(), &e.message())),
    };
    let ttl = state.config.http.ops_session_ttl_secs;
    let started = match state.pool.get().await {
        Ok(mut c) => ops_sessions::start(&mut c, &principal, chrono::Duration::seconds(ttl)).await,
        Err(e) => Err(e.into()),
    };
    let started = match started {
        Ok(s) => s,
        Err(AppError::Forbidden) => {
            return Err(error_response(
                StatusCode::FORBIDDEN,
                "FORBIDDEN",
                "the console is for operators",
            ))
        }
        Err(e) => return Err(error_response(super::status_of(&e), e.code(), &e.message())),
    };
    let name = match &principal {
        gateway_domain::permissions::Principal::Operator { name, .. } => name.clone(),
        _ => String::new(),
    };
    Ok((
        json!({"csrfToken": started.csrf, "operator": name, "expiresAt": started.expires_at}),
        set_cookie(&started.cookie, ttl, state.config.is_production()),
    ))
}

/// `GET /ops/config`: how the console signs in (`{"oidc": true}`: through the provider, at
/// `/ops/oidc/start`).
pub(super) async fn config(State(state): State<AppState>) -> Response {
    axum::Json(json!({"oidc": state.config.http.ops_oidc.is_some()})).into_response()
}

/// The live session of the request's cookie, or the 401 to answer.
async fn session(state: &AppState, headers: &HeaderMap) -> Result<ops_sessions::Session, Response> {
    let unauthenticated = || {
        error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "sign in to the console (POST /ops/session)",
        )
    };
    let Some(value) = cookie(headers) else {
        return Err(unauthenticated());
    };
    let found = match state.pool.get().await {
        Ok(mut c) => ops_sessions::find(&mut c, &value).await,
        Err(e) => Err(e.into()),
    };
    match found {
        Ok(Some(s)) => Ok(s),
        Ok(None) => Err(unauthenticated()),
        Err(e) => Err(error_response(super::status_of(&e), e.code(), &e.message())),
    }
}

/// The request's `X-CSRF-Token` matches the session's.
fn csrf_ok(headers: &HeaderMap, s: &ops_sessions::Session) -> bool {
    let given = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    subtle::ConstantTimeEq::ct_eq(given.as_bytes(), s.csrf.as_bytes()).into()
}

fn csrf_refused() -> Response {
    error_response(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        "missing or wrong X-CSRF-Token for this console session",
    )
}

/// `GET /ops/session`: the signed-in operator and the CSRF token (a reloaded page reads them
/// here instead of keeping them), or 401.
pub(super) async fn current(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match session(&state, &headers).await {
        Ok(s) => {
            let mut resp = axum::Json(session_json(&s)).into_response();
            resp.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(resp) => resp,
    }
}

/// `DELETE /ops/session` (with the CSRF token): signs out.
pub(super) async fn sign_out(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !csrf_ok(&headers, &s) {
        return csrf_refused();
    }
    if let (Some(value), Ok(mut c)) = (cookie(&headers), state.pool.get().await) {
        if let Err(e) = ops_sessions::end(&mut c, &value).await {
            return error_response(super::status_of(&e), e.code(), &e.message());
        }
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", 0, state.config.is_production()),
    );
    resp
}

/// `POST /ops/graphql`: GraphQL as the session's operator, with the CSRF token.
pub(super) async fn graphql(State(state): State<AppState>, req: Request) -> Response {
    let s = match session(&state, req.headers()).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !csrf_ok(req.headers(), &s) {
        return csrf_refused();
    }
    let (headers, peer, batch) = match super::graphql::read_request(&state, req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let caller = Caller {
        principal: s.principal,
        partner: None,
    };
    super::graphql::execute_for(state, headers, peer, batch, Some(caller)).await
}

/// `GET /ops/ws`: the console's live updates (GraphQL subscriptions such as `queueStats`) on
/// its session: the cookie names the operator, the page's own origin only (a cross-site page
/// cannot open it), and `connection_init` must carry the session's CSRF token. The socket
/// closes (4401) when the session expires or is signed out.
pub(super) async fn ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: axum::extract::WebSocketUpgrade,
) -> Response {
    let s = match session(&state, &headers).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
    let same_origin = match (origin, host) {
        (Some(o), Some(h)) => o
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == h),
        _ => false,
    };
    if !same_origin {
        return error_response(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            "the console's socket opens only from the console's own origin",
        );
    }
    let Some(cookie) = cookie(&headers) else {
        return csrf_refused();
    };
    super::ws::upgrade_for(
        state,
        headers,
        upgrade,
        super::ws::Opener::Console {
            cookie,
            principal: s.principal,
            csrf: s.csrf,
            expires_at: s.expires_at.timestamp(),
        },
    )
}
