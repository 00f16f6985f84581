//! RS256 tokens checked against a JWKS, as in production (the api verifies them with the
//! public key of `JWT_JWKS_FILE`). The key pair is the repository's test fixture
//! (domain/tests/fixtures/test-rsa-key.pem and test-jwks.json, kid `test-key-1`): a
//! benchmark needs a key the api trusts, not a secret one.

use std::time::Duration;

use gateway_domain::auth::{Audience, Claims};
use gateway_domain::config::AuthConfig;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const PRIVATE_KEY: &[u8] = include_bytes!("../../domain/tests/fixtures/test-rsa-key.pem");
const JWKS: &str = include_str!("../../domain/tests/fixtures/test-jwks.json");
const KID: &str = "test-key-1";
const TTL: Duration = Duration::from_secs(4 * 3600);

/// Writes the JWKS where the api reads it (`JWT_JWKS_FILE`); returns the path.
pub fn write_jwks_file(dir: &std::path::Path) -> anyhow::Result<String> {
    let path = dir.join("bench-jwks.json");
    std::fs::write(&path, JWKS)?;
    Ok(path.display().to_string())
}

/// An RS256 access token for `subject`, with the configured issuer and audience.
pub fn token(auth: &AuthConfig, subject: &str) -> anyhow::Result<String> {
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        iss: auth.issuer.clone(),
        aud: Audience::One(auth.audience.clone()),
        exp: now + TTL.as_secs() as i64,
        nbf: Some(now),
        iat: Some(now),
        email: None,
        email_verified: None,
        name: None,
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    Ok(jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_rsa_pem(PRIVATE_KEY)?,
    )?)
}
