//! Signing operators in to the console through an OpenID Connect provider (OPS_OIDC_*):
//! the authorization code flow with PKCE (S256).
//!
//! 1. `GET /ops/oidc/start`: a random `state`, PKCE verifier and `nonce`; the verifier waits in
//!    Redis under the state (10 minutes, used once), the state also in a cookie of this browser
//!    (`pbg_ops_oidc`: HttpOnly, `SameSite=Lax` so the provider's redirect back carries it,
//!    `Path=/ops/oidc`); the browser goes to the provider's authorization endpoint.
//! 2. `GET /ops/oidc/callback?code&state`: the state must be this browser's; the code is
//!    exchanged at the token endpoint with the verifier; the access token (a bearer token for
//!    this API) opens a console session exactly as a pasted token does (operators only), and
//!    the browser goes back to `/ops` with the session cookie.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use gateway_domain::config::OpsOidc;
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use super::{error_response, AppState};

const COOKIE: &str = "pbg_ops_oidc";
/// How long a sign-in may take at the provider.
const PENDING_SECS: u64 = 600;

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    authorization_endpoint: String,
    token_endpoint: String,
}

fn random() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn http() -> &'static reqwest::Client {
    static C: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    C.get_or_init(|| {
        reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client")
    })
}

/// The provider's endpoints, read once from its discovery document.
async fn discovery(oidc: &OpsOidc) -> Result<&'static Discovery, Response> {
    static D: OnceCell<Discovery> = OnceCell::const_new();
    D.get_or_try_init(|| async {
        let url = format!("{}/.well-known/openid-configuration", oidc.issuer);
        let resp = http().get(&url).send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("{url} answered {}", resp.status()));
        }
        resp.json::<Discovery>().await.map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| {
        tracing::warn!(error = %e, "OpenID Connect discovery failed");
        error_response(
            StatusCode::BAD_GATEWAY,
            "IDENTITY_PROVIDER_UNAVAILABLE",
            "the sign-in provider cannot be reached; try again",
        )
    })
}

fn pending_key(state: &AppState, oidc_state: &str) -> String {
    let hash = Sha256::digest(oidc_state.as_bytes());
    format!(
        "{}:ops-oidc:{}",
        state.config.redis.queue_prefix,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash)
    )
}

fn not_configured() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        "no OpenID Connect provider is configured (OPS_OIDC_ISSUER)",
    )
}

fn unavailable(e: impl std::fmt::Display) -> Response {
    tracing::warn!(error = %e, "console sign-in: Redis unavailable");
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        "UNAVAILABLE",
        "sign-in is unavailable for a moment; try again",
    )
}

/// `GET /ops/oidc/start`: off to the provider.
pub(super) async fn start(State(state): State<AppState>) -> Response {
    let Some(oidc) = state.config.http.ops_oidc.clone() else {
        return not_configured();
    };
    let endpoints = match discovery(&oidc).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let (oidc_state, verifier, nonce) = (random(), random(), random());
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let mut redis = match state.redis.connection().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let saved: redis::RedisResult<()> = redis::cmd("SET")
        .arg(pending_key(&state, &oidc_state))
        .arg(&verifier)
        .arg("EX")
        .arg(PENDING_SECS)
        .query_async(&mut redis)
        .await;
    if let Err(e) = saved {
        return unavailable(e);
    }
    let Ok(url) = reqwest::Url::parse_with_params(
        &endpoints.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", oidc.client_id.as_str()),
            ("redirect_uri", oidc.redirect_url.as_str()),
            ("scope", oidc.scopes.as_str()),
            ("state", oidc_state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    ) else {
        return error_response(
            StatusCode::BAD_GATEWAY,
            "IDENTITY_PROVIDER_UNAVAILABLE",
            "the provider's authorization endpoint is not a URL",
        );
    };
    let secure = if state.config.is_production() {
        "; Secure"
    } else {
        ""
    };
    let mut resp = StatusCode::FOUND.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(url.as_str()).expect("a URL is a header value"),
    );
    h.insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{COOKIE}={oidc_state}; Path=/ops/oidc; HttpOnly; SameSite=Lax; Max-Age={PENDING_SECS}{secure}"
        ))
        .expect("a valid cookie"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[derive(Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Deserialize)]
struct Tokens {
    access_token: String,
}

/// `GET /ops/oidc/callback`: back from the provider.
pub(super) async fn callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let Some(oidc) = state.config.http.ops_oidc.clone() else {
        return not_configured();
    };
    if let Some(error) = q.error {
        let detail = q.error_description.unwrap_or_default();
        return error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            &format!("the provider refused the sign-in: {error} {detail}"),
        );
    }
    let (Some(code), Some(oidc_state)) = (q.code, q.state) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "the callback needs code and state",
        );
    };
    // The state must be the one this browser was given: a sign-in started elsewhere (login
    // CSRF) is refused.
    let ours = super::ops::cookie_named(&headers, COOKIE).unwrap_or_default();
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        ours.as_bytes(),
        oidc_state.as_bytes(),
    )) {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "this sign-in did not start in this browser: start again at /ops",
        );
    }
    let mut redis = match state.redis.connection().await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let verifier: Option<String> = match redis::cmd("GETDEL")
        .arg(pending_key(&state, &oidc_state))
        .query_async(&mut redis)
        .await
    {
        Ok(v) => v,
        Err(e) => return unavailable(e),
    };
    let Some(verifier) = verifier else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "BAD_USER_INPUT",
            "this sign-in expired or was already used: start again at /ops",
        );
    };
    let endpoints = match discovery(&oidc).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let mut form = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", oidc.redirect_url.clone()),
        ("client_id", oidc.client_id.clone()),
        ("code_verifier", verifier),
    ];
    if let Some(secret) = &oidc.client_secret {
        form.push(("client_secret", secret.clone()));
    }
    let tokens = match http()
        .post(&endpoints.token_endpoint)
        .form(&form)
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => r.json::<Tokens>().await.ok(),
        Ok(r) => {
            tracing::info!(status = %r.status(), "console sign-in: the token endpoint refused the code");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in: token endpoint unreachable");
            None
        }
    };
    let Some(tokens) = tokens else {
        return error_response(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "the provider did not exchange the code: start again at /ops",
        );
    };
    match super::ops::open_session(&state, &tokens.access_token).await {
        Ok((_, cookie)) => {
            let mut resp = StatusCode::SEE_OTHER.into_response();
            let h = resp.headers_mut();
            h.insert(header::LOCATION, HeaderValue::from_static("/ops"));
            h.append(header::SET_COOKIE, cookie);
            h.append(
                header::SET_COOKIE,
                HeaderValue::from_str(&format!(
                    "{COOKIE}=; Path=/ops/oidc; HttpOnly; SameSite=Lax; Max-Age=0"
                ))
                .expect("a valid cookie"),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(resp) => resp,
    }
}
