//! Operators' console sessions (`/ops`): an operator's bearer token is exchanged once for a
//! random session id carried in an `HttpOnly` cookie, valid OPS_SESSION_TTL_SECS. Postgres
//! keeps only the id's SHA-256, the operator and a CSRF token the page sends back as a header.
//! Signing out deletes the row; expired rows are removed as new sessions start.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use diesel::sql_types::{Bytea, Text, Timestamptz, Uuid as SqlUuid};
use rand::Rng;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::prelude::*;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use crate::permissions::Principal;

/// A session as started: the cookie's value (to set once, never stored), the CSRF token and
/// when it ends.
pub struct Started {
    pub cookie: String,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

/// A live session: the operator and the CSRF token their requests must carry.
pub struct Session {
    pub principal: Principal,
    pub csrf: String,
    pub expires_at: DateTime<Utc>,
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash(cookie: &str) -> Vec<u8> {
    Sha256::digest(cookie.as_bytes()).to_vec()
}

/// Starts a session for an operator (anyone else: FORBIDDEN).
pub async fn start(conn: &mut PgConn, principal: &Principal, ttl: Duration) -> AppResult<Started> {
    let Principal::Operator { operator_id, .. } = principal else {
        return Err(AppError::Forbidden);
    };
    let started = Started {
        cookie: random_token(),
        csrf: random_token(),
        expires_at: Utc::now() + ttl,
    };
    diesel::sql_query("DELETE FROM ops_sessions WHERE expires_at < now()")
        .execute(conn)
        .await?;
    diesel::sql_query(
        "INSERT INTO ops_sessions (id_hash, operator_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind::<Bytea, _>(hash(&started.cookie))
    .bind::<SqlUuid, _>(*operator_id)
    .bind::<Text, _>(&started.csrf)
    .bind::<Timestamptz, _>(started.expires_at)
    .execute(conn)
    .await?;
    Ok(started)
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = SqlUuid)]
    operator_id: Uuid,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    csrf_token: String,
    #[diesel(sql_type = Timestamptz)]
    expires_at: DateTime<Utc>,
}

/// The live session of a cookie value, if any (one statement).
pub async fn find(conn: &mut PgConn, cookie: &str) -> AppResult<Option<Session>> {
    let row: Option<Row> = diesel::sql_query(
        "SELECT s.operator_id, o.subject, o.name, s.csrf_token, s.expires_at
         FROM ops_sessions s JOIN operators o ON o.id = s.operator_id
         WHERE s.id_hash = $1 AND s.expires_at > now()",
    )
    .bind::<Bytea, _>(hash(cookie))
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| Session {
        principal: Principal::Operator {
            operator_id: r.operator_id,
            subject: r.subject,
            name: r.name,
        },
        csrf: r.csrf_token,
        expires_at: r.expires_at,
    }))
}

/// Ends the session of a cookie value (signing out); true when there was one.
pub async fn end(conn: &mut PgConn, cookie: &str) -> AppResult<bool> {
    let n = diesel::sql_query("DELETE FROM ops_sessions WHERE id_hash = $1")
        .bind::<Bytea, _>(hash(cookie))
        .execute(conn)
        .await?;
    Ok(n > 0)
}
