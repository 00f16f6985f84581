//! Bearer-token verification. Production: RS256 against a JWKS (file or URL). Development and
//! tests: HS256 with a shared secret, and `mint_dev_token` to make tokens. The algorithm is
//! pinned per key type, so a token cannot pick its own verification method: `alg: none` does
//! not parse, and an HS256 token is never checked against an RSA public key.
//!
//! A remote JWKS (`JWT_JWKS_URL`) is fetched in the background: at start (the api starts even
//! while the identity provider is down; `ready()` is false until the keys load, and `/readyz`
//! says so), every [`JWKS_REFRESH_EVERY`], and when a token names an unknown key id (at most
//! every [`JWKS_REFRESH_MIN`]). Refreshes are single-flight: one fetch at a time, the key set
//! re-checked after waiting for it, and no lock held on the keys while fetching. A key is used
//! only if its `alg` (when given) is RS256 and its `use` (when given) is `sig`. The expiry
//! leeway is `JWT_LEEWAY_SECS` (5 s by default).

use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{
    decode, decode_header, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::AuthConfig;
use crate::error::AppError;

/// A token's audience: one, or several (RFC 7519 allows both).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl From<&str> for Audience {
    fn from(a: &str) -> Self {
        Audience::One(a.to_owned())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: Audience,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

enum JwksSource {
    None,
    Static(JwkSet),
    Url(Arc<RemoteJwks>),
}

/// A JWKS fetched from the identity provider.
struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    /// The keys, and when they were last fetched (None: never loaded yet).
    keys: RwLock<(JwkSet, Option<Instant>)>,
    /// When a fetch was last tried (successful or not).
    tried: RwLock<Option<Instant>>,
    /// Held while fetching: one fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

impl RemoteJwks {
    /// Fetches the keys unless another fetch finished while we waited for our turn (single
    /// flight). `since`: when the caller decided it needs a fetch.
    async fn refresh(&self, since: Instant) {
        let _turn = self.fetching.lock().await;
        if self.tried.read().await.is_some_and(|t| t >= since) {
            return; // fetched meanwhile
        }
        let fetched = fetch_jwks(&self.client, &self.url).await;
        *self.tried.write().await = Some(Instant::now());
        match fetched {
            Ok(set) => *self.keys.write().await = (set, Some(Instant::now())),
            Err(e) => tracing::warn!(error = %e, "JWKS refresh failed"),
        }
    }

    /// The background refresher: every [`JWKS_REFRESH_EVERY`], every few seconds until the
    /// keys first load. Stops when the verifier is gone.
    fn spawn_refresher(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { return };
                me.refresh(Instant::now()).await;
                let loaded = me.keys.read().await.1.is_some();
                drop(me);
                tokio::time::sleep(if loaded {
                    JWKS_REFRESH_EVERY
                } else {
                    JWKS_RETRY_UNTIL_LOADED
                })
                .await;
            }
        });
    }
}

/// Refetch a remote JWKS at most this often when a token names an unknown key id.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);
/// Refetch a remote JWKS this often anyway (keys rotated away stop being accepted).
pub const JWKS_REFRESH_EVERY: Duration = Duration::from_secs(600);
/// Until the keys first load (the identity provider was down at start), try this often.
const JWKS_RETRY_UNTIL_LOADED: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    issuer: String,
    audience: String,
    leeway: u64,
    hs256: Option<DecodingKey>,
    jwks: JwksSource,
}

impl Verifier {
    pub async fn from_config(cfg: &AuthConfig) -> anyhow::Result<Self> {
        let jwks = if let Some(path) = &cfg.jwks_file {
            let raw = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read JWT_JWKS_FILE {path}: {e}"))?;
            JwksSource::Static(
                serde_json::from_str(&raw)
                    .map_err(|e| anyhow::anyhow!("JWT_JWKS_FILE {path} is not a JWKS: {e}"))?,
            )
        } else if let Some(url) = &cfg.jwks_url {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?;
            let remote = Arc::new(RemoteJwks {
                url: url.clone(),
                client,
                keys: RwLock::new((JwkSet { keys: vec![] }, None)),
                tried: RwLock::new(None),
                fetching: tokio::sync::Mutex::new(()),
            });
            // The first fetch, waited for briefly; if the identity provider is down the api
            // starts anyway and keeps trying (`ready()` is false meanwhile).
            let _ =
                tokio::time::timeout(Duration::from_secs(3), remote.refresh(Instant::now())).await;
            remote.spawn_refresher();
            JwksSource::Url(remote)
        } else {
            JwksSource::None
        };
        Ok(Self {
            inner: Arc::new(VerifierInner {
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
                leeway: cfg.leeway_secs,
                hs256: cfg
                    .hs256_secret
                    .as_deref()
                    .map(|s| DecodingKey::from_secret(s.as_bytes())),
                jwks,
            }),
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&[&self.inner.issuer]);
        v.set_audience(&[&self.inner.audience]);
        v.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = self.inner.leeway;
        v
    }

    /// Whether tokens can be verified: false while a remote JWKS has not loaded yet.
    pub async fn ready(&self) -> bool {
        match &self.inner.jwks {
            JwksSource::Url(remote) => remote.keys.read().await.1.is_some(),
            _ => true,
        }
    }

    /// Verifies a compact JWT. Every failure is UNAUTHENTICATED; the reason is logged at debug
    /// level only (never the token).
    pub async fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let fail = |why: &str| {
            tracing::debug!(reason = why, "bearer token refused");
            AppError::Unauthenticated
        };
        let header =
            decode_header(token).map_err(|_| fail("malformed header or unsupported alg"))?;
        match header.alg {
            Algorithm::HS256 => {
                let key = self
                    .inner
                    .hs256
                    .as_ref()
                    .ok_or_else(|| fail("HS256 not accepted here"))?;
                decode::<Claims>(token, key, &self.validation(Algorithm::HS256))
                    .map(|d| d.claims)
                    .map_err(|e| fail(&e.to_string()))
            }
            Algorithm::RS256 => {
                let kid = header.kid.ok_or_else(|| fail("RS256 token without kid"))?;
                let key = self
                    .rsa_key(&kid)
                    .await
                    .ok_or_else(|| fail("unknown kid"))?;
                decode::<Claims>(token, &key, &self.validation(Algorithm::RS256))
                    .map(|d| d.claims)
                    .map_err(|e| fail(&e.to_string()))
            }
            _ => Err(fail("algorithm not accepted")),
        }
    }

    async fn rsa_key(&self, kid: &str) -> Option<DecodingKey> {
        match &self.inner.jwks {
            JwksSource::None => None,
            JwksSource::Static(set) => signing_key(set, kid),
            JwksSource::Url(remote) => {
                let asked = Instant::now();
                {
                    let keys = remote.keys.read().await;
                    if let Some(k) = signing_key(&keys.0, kid) {
                        return Some(k);
                    }
                }
                let recently = remote
                    .tried
                    .read()
                    .await
                    .is_some_and(|t| t.elapsed() < JWKS_REFRESH_MIN);
                if recently {
                    return None;
                }
                // Key rotation: one fetch (single flight), then look again.
                remote.refresh(asked).await;
                signing_key(&remote.keys.read().await.0, kid)
            }
        }
    }
}

/// The RS256 verification key with this id: refused when the key says it is for another
/// algorithm or for encryption.
fn signing_key(set: &JwkSet, kid: &str) -> Option<DecodingKey> {
    use jsonwebtoken::jwk::{KeyAlgorithm, PublicKeyUse};
    let jwk = set.find(kid)?;
    if jwk
        .common
        .key_algorithm
        .is_some_and(|a| a != KeyAlgorithm::RS256)
    {
        tracing::debug!(kid, "JWK refused: its alg is not RS256");
        return None;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != PublicKeyUse::Signature)
    {
        tracing::debug!(kid, "JWK refused: its use is not sig");
        return None;
    }
    DecodingKey::from_jwk(jwk).ok()
}

async fn fetch_jwks(client: &reqwest::Client, url: &str) -> anyhow::Result<JwkSet> {
    let resp = client.get(url).send().await?.error_for_status()?;
    Ok(resp.json::<JwkSet>().await?)
}

/// Makes an HS256 token for development and tests (`gateway-api mint-token`).
pub fn mint_dev_token(
    cfg: &AuthConfig,
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl: Duration,
) -> anyhow::Result<String> {
    mint_dev_token_expiring(cfg, subject, email, name, ttl.as_secs() as i64)
}

/// Like [`mint_dev_token`], expiring `ttl_secs` from now: a negative value makes a token that
/// has already expired (issued an hour before its expiry), for expired-token tests.
pub fn mint_dev_token_expiring(
    cfg: &AuthConfig,
    subject: &str,
    email: Option<&str>,
    name: Option<&str>,
    ttl_secs: i64,
) -> anyhow::Result<String> {
    let secret = cfg.hs256_secret.as_deref().ok_or_else(|| {
        anyhow::anyhow!("no HS256 secret configured (production mints no tokens)")
    })?;
    let now = chrono::Utc::now().timestamp();
    let exp = now + ttl_secs;
    let issued = if ttl_secs < 0 { exp - 3600 } else { now };
    let claims = Claims {
        sub: subject.to_owned(),
        iss: cfg.issuer.clone(),
        aud: Audience::One(cfg.audience.clone()),
        exp,
        nbf: Some(issued),
        iat: Some(issued),
        email: email.map(str::to_owned),
        email_verified: email.map(|_| true),
        name: name.map(str::to_owned),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn cfg() -> AuthConfig {
        AuthConfig {
            issuer: "iss-test".into(),
            audience: "aud-test".into(),
            hs256_secret: Some(crate::config::DEV_JWT_SECRET.into()),
            jwks_file: None,
            jwks_url: None,
            leeway_secs: 5,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    #[tokio::test]
    async fn minted_tokens_verify() {
        let v = Verifier::from_config(&cfg()).await.unwrap();
        let t = mint_dev_token(
            &cfg(),
            "user-1",
            Some("ada@contoso.com"),
            None,
            Duration::from_secs(60),
        )
        .unwrap();
        let c = v.verify(&t).await.unwrap();
        assert_eq!(c.sub, "user-1");
        assert_eq!(c.email.as_deref(), Some("ada@contoso.com"));
    }

    #[tokio::test]
    async fn wrong_issuer_audience_secret_or_expiry_are_refused() {
        let v = Verifier::from_config(&cfg()).await.unwrap();
        let mut other = cfg();
        other.issuer = "someone-else".into();
        let t = mint_dev_token(&other, "u", None, None, Duration::from_secs(60)).unwrap();
        assert_eq!(v.verify(&t).await.unwrap_err().code(), "UNAUTHENTICATED");

        let mut other = cfg();
        other.audience = "another-api".into();
        let t = mint_dev_token(&other, "u", None, None, Duration::from_secs(60)).unwrap();
        assert!(v.verify(&t).await.is_err());

        let mut other = cfg();
        other.hs256_secret = Some("x".repeat(40));
        let t = mint_dev_token(&other, "u", None, None, Duration::from_secs(60)).unwrap();
        assert!(v.verify(&t).await.is_err());

        let claims = Claims {
            sub: "u".into(),
            iss: "iss-test".into(),
            aud: "aud-test".into(),
            exp: chrono::Utc::now().timestamp() - 3600,
            nbf: None,
            iat: None,
            email: None,
            email_verified: None,
            name: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(crate::config::DEV_JWT_SECRET.as_bytes()),
        )
        .unwrap();
        assert!(v.verify(&expired).await.is_err());
    }

    #[tokio::test]
    async fn alg_none_and_garbage_are_refused() {
        let v = Verifier::from_config(&cfg()).await.unwrap();
        let claims = serde_json::json!({"sub": "u", "iss": "iss-test", "aud": "aud-test",
            "exp": chrono::Utc::now().timestamp() + 600});
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "typ": "JWT"})),
            b64(&claims)
        );
        assert_eq!(v.verify(&none).await.unwrap_err().code(), "UNAUTHENTICATED");
        assert!(v.verify("not-a-token").await.is_err());
        // RS256 header without any JWKS configured: refused, never tried against the secret.
        let rs = format!(
            "{}.{}.c2ln",
            b64(&serde_json::json!({"alg": "RS256", "kid": "k"})),
            b64(&claims)
        );
        assert!(v.verify(&rs).await.is_err());
    }

    #[tokio::test]
    async fn rs256_against_a_jwks_file() {
        let mut c = cfg();
        c.hs256_secret = None;
        c.jwks_file = Some(format!(
            "{}/tests/fixtures/test-jwks.json",
            env!("CARGO_MANIFEST_DIR")
        ));
        let v = Verifier::from_config(&c).await.unwrap();
        let key = EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/test-rsa-key.pem"))
            .unwrap();
        let claims = Claims {
            sub: "rs-user".into(),
            iss: "iss-test".into(),
            aud: "aud-test".into(),
            exp: chrono::Utc::now().timestamp() + 600,
            nbf: None,
            iat: None,
            email: None,
            email_verified: None,
            name: None,
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-key-1".into());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_eq!(v.verify(&token).await.unwrap().sub, "rs-user");

        header.kid = Some("unknown".into());
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert!(v.verify(&token).await.is_err());

        // Without an HS256 secret configured, HS256 tokens are refused outright.
        let hs = mint_dev_token(&cfg(), "u", None, None, Duration::from_secs(60)).unwrap();
        assert!(v.verify(&hs).await.is_err());
    }

    fn claims_with(aud: Audience, exp_in: i64) -> Claims {
        Claims {
            sub: "u".into(),
            iss: "iss-test".into(),
            aud,
            exp: chrono::Utc::now().timestamp() + exp_in,
            nbf: None,
            iat: None,
            email: None,
            email_verified: None,
            name: None,
        }
    }

    fn hs(claims: &Claims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(crate::config::DEV_JWT_SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn the_expiry_leeway_is_a_few_seconds_and_an_audience_list_is_accepted() {
        let v = Verifier::from_config(&cfg()).await.unwrap();
        assert!(v
            .verify(&hs(&claims_with("aud-test".into(), -2)))
            .await
            .is_ok());
        assert!(
            v.verify(&hs(&claims_with("aud-test".into(), -8)))
                .await
                .is_err(),
            "expired 8 s ago, past the 5 s leeway"
        );
        let list = Audience::Many(vec!["other-api".into(), "aud-test".into()]);
        assert!(v.verify(&hs(&claims_with(list, 60))).await.is_ok());
        let wrong = Audience::Many(vec!["other-api".into(), "third".into()]);
        assert!(v.verify(&hs(&claims_with(wrong, 60))).await.is_err());
    }

    fn rs256(kid: &str) -> String {
        let key = EncodingKey::from_rsa_pem(include_bytes!("../tests/fixtures/test-rsa-key.pem"))
            .unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        jsonwebtoken::encode(&header, &claims_with("aud-test".into(), 600), &key).unwrap()
    }

    fn fixture_jwks() -> serde_json::Value {
        serde_json::from_str(include_str!("../tests/fixtures/test-jwks.json")).unwrap()
    }

    #[tokio::test]
    async fn a_key_for_another_algorithm_or_for_encryption_is_not_used() {
        for (field, value) in [("alg", "RS512"), ("use", "enc")] {
            let mut set = fixture_jwks();
            set["keys"][0][field] = serde_json::json!(value);
            let path = std::env::temp_dir().join(format!(
                "pbg-jwks-{field}-{}.json",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, set.to_string()).unwrap();
            let mut c = cfg();
            c.jwks_file = Some(path.display().to_string());
            let v = Verifier::from_config(&c).await.unwrap();
            assert!(
                v.verify(&rs256("test-key-1")).await.is_err(),
                "{field}={value}"
            );
            std::fs::remove_file(path).unwrap();
        }
    }

    /// A JWKS endpoint on a local port, counting its fetches; `up` switches it on.
    async fn jwks_server(
        up: Arc<std::sync::atomic::AtomicBool>,
        hits: Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let body = fixture_jwks().to_string();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let (up, hits, body) = (up.clone(), hits.clone(), body.clone());
                tokio::spawn(async move {
                    let mut buf = [0u8; 2048];
                    let _ = sock.read(&mut buf).await;
                    let resp = if up.load(Ordering::SeqCst) {
                        hits.fetch_add(1, Ordering::SeqCst);
                        // Slow enough that concurrent refreshes would overlap.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned()
                    };
                    let _ = sock.write_all(resp.as_bytes()).await;
                });
            }
        });
        format!("http://{addr}/jwks")
    }

    #[tokio::test]
    async fn a_remote_jwks_loads_after_the_identity_provider_comes_up_and_refreshes_single_flight()
    {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let up = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let url = jwks_server(up.clone(), hits.clone()).await;
        let mut c = cfg();
        c.hs256_secret = None;
        c.jwks_url = Some(url);
        // The identity provider is down: the verifier starts anyway, not ready.
        let v = Verifier::from_config(&c).await.unwrap();
        assert!(!v.ready().await);
        assert!(v.verify(&rs256("test-key-1")).await.is_err());
        up.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(15);
        while !v.ready().await {
            assert!(Instant::now() < deadline, "the keys never loaded");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(v.verify(&rs256("test-key-1")).await.unwrap().sub, "u");
        // Twenty tokens with an unknown key id at once: at most one fetch for all of them.
        let before = hits.load(Ordering::SeqCst);
        let unknown = rs256("rotated-key");
        let all = futures::future::join_all((0..20).map(|_| v.verify(&unknown))).await;
        assert!(all.iter().all(|r| r.is_err()));
        assert!(
            hits.load(Ordering::SeqCst) - before <= 1,
            "{} fetches for 20 concurrent unknown key ids",
            hits.load(Ordering::SeqCst) - before
        );
    }
}
