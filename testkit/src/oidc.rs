//! A small OpenID Connect provider for tests: discovery, an authorization endpoint that
//! signs the user in at once (no login page) and redirects back with a code, and a token
//! endpoint that checks the code, the redirect URI, the client id and the PKCE verifier (S256)
//! before answering with the access token the test chose. Codes are single-use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

#[derive(Default)]
struct Provider {
    url: String,
    client_id: String,
    /// What the token endpoint hands out.
    access_token: Option<String>,
    /// code → (challenge, redirect_uri)
    codes: HashMap<String, (String, String)>,
    /// Every authorization request's parameters, for the test to inspect.
    authorizations: Vec<HashMap<String, String>>,
}

pub struct FakeOidc {
    /// The issuer (OPS_OIDC_ISSUER).
    pub url: String,
    state: Arc<Mutex<Provider>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeOidc {
    /// A provider that knows one client.
    pub async fn start(client_id: &str) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(Provider {
            url: url.clone(),
            client_id: client_id.to_owned(),
            ..Default::default()
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { url, state, task })
    }

    /// The access token the next code exchange answers with (whose user signs in).
    pub fn sign_in_as(&self, access_token: &str) {
        self.state.lock().unwrap().access_token = Some(access_token.to_owned());
    }

    /// The parameters of every authorization request so far.
    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().authorizations.clone()
    }
}

impl Drop for FakeOidc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = State<Arc<Mutex<Provider>>>;

async fn discovery(State(p): Shared) -> Json<serde_json::Value> {
    let url = p.lock().unwrap().url.clone();
    Json(json!({
        "issuer": url,
        "authorization_endpoint": format!("{url}/authorize"),
        "token_endpoint": format!("{url}/token"),
        "jwks_uri": format!("{url}/jwks"),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

fn refuse(error: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response()
}

async fn authorize(State(p): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut p = p.lock().unwrap();
    p.authorizations.push(q.clone());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("client_id") != p.client_id
        || get("code_challenge_method") != "S256"
        || get("code_challenge").is_empty()
        || get("state").is_empty()
    {
        return refuse("invalid_request");
    }
    let code = format!("code-{}", p.authorizations.len());
    p.codes
        .insert(code.clone(), (get("code_challenge"), get("redirect_uri")));
    let location = format!("{}?code={code}&state={}", get("redirect_uri"), get("state"));
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

async fn token(State(p): Shared, Form(f): Form<HashMap<String, String>>) -> Response {
    let mut p = p.lock().unwrap();
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" || get("client_id") != p.client_id {
        return refuse("invalid_client");
    }
    let Some((challenge, redirect_uri)) = p.codes.remove(&get("code")) else {
        return refuse("invalid_grant");
    };
    let verified = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(get("code_verifier").as_bytes()));
    if verified != challenge || redirect_uri != get("redirect_uri") {
        return refuse("invalid_grant");
    }
    match &p.access_token {
        Some(t) => Json(json!({"access_token": t, "token_type": "Bearer", "expires_in": 3600}))
            .into_response(),
        None => refuse("access_denied"),
    }
}
