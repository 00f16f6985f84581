//! Bearer-token verification. Production: RS256 against a JWKS (file or URL). Development and
//! tests: HS256 with a shared secret, and `mint_dev_token` to make tokens. The algorithm is
//! pinned per key type, so a token cannot pick its own verification method: `alg: none` does
//! not parse, and an HS256 token is never checked against an RSA public key.

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

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub iss: String,
    pub aud: String,
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
    Url {
        url: String,
        keys: RwLock<(JwkSet, Instant)>,
        client: reqwest::Client,
    },
}

/// Refetch a remote JWKS at most this often when a token names an unknown key id.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

struct VerifierInner {
    issuer: String,
    audience: String,
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
            let set = fetch_jwks(&client, url).await?;
            JwksSource::Url {
                url: url.clone(),
                keys: RwLock::new((set, Instant::now())),
                client,
            }
        } else {
            JwksSource::None
        };
        Ok(Self {
            inner: Arc::new(VerifierInner {
                issuer: cfg.issuer.clone(),
                audience: cfg.audience.clone(),
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
        v.leeway = 30;
        v
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
        let find = |set: &JwkSet| {
            set.find(kid)
                .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
        };
        match &self.inner.jwks {
            JwksSource::None => None,
            JwksSource::Static(set) => find(set),
            JwksSource::Url { url, keys, client } => {
                {
                    let guard = keys.read().await;
                    if let Some(k) = find(&guard.0) {
                        return Some(k);
                    }
                    if guard.1.elapsed() < JWKS_REFRESH_MIN {
                        return None;
                    }
                }
                // Key rotation: refetch once, then remember when we did.
                let mut guard = keys.write().await;
                match fetch_jwks(client, url).await {
                    Ok(set) => *guard = (set, Instant::now()),
                    Err(e) => {
                        tracing::warn!(error = %e, "JWKS refresh failed");
                        guard.1 = Instant::now();
                    }
                }
                find(&guard.0)
            }
        }
    }
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
    let secret = cfg.hs256_secret.as_deref().ok_or_else(|| {
        anyhow::anyhow!("no HS256 secret configured (production mints no tokens)")
    })?;
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone(),
        exp: now + ttl.as_secs() as i64,
        nbf: Some(now),
        iat: Some(now),
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
}
