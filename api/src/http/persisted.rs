//! Persisted documents, before a request runs:
//! - **Automatic persisted queries** (Apollo's protocol): a request may carry
//!   `extensions.persistedQuery = {version: 1, sha256Hash}`. Without a query, the document is
//!   looked up by its hash (`PersistedQueryNotFound`, code `PERSISTED_QUERY_NOT_FOUND`, when
//!   unknown: the client then sends it again with the query); with a query, the hash must be
//!   the query's SHA-256 (`provided sha does not match query`, 400) and the pair is kept in
//!   Redis (`{QUEUE_PREFIX}:apq:{hash}`, APQ_TTL_SECS), so every replica knows it. A Redis outage
//!   only costs the client its second round.
//! - **Trusted documents** (GRAPHQL_TRUSTED_DOCUMENTS, a JSON manifest `{sha256: document}`,
//!   the hash bare or as `sha256:<hex>`: GraphQL Code Generator's `persisted-documents.json`):
//!   only those documents run, by hash or by text; anything else is refused
//!   (`PERSISTED_QUERY_NOT_IN_LIST`: 404 for an unknown hash, 403 for another text).

use std::collections::HashMap;

use async_graphql::Request;
use axum::http::StatusCode;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{error_response, AppState};

/// The manifest of trusted documents: hash (lower-case hex SHA-256) → document.
pub type Trusted = HashMap<String, String>;

/// Reads a manifest (`{"<sha256>": "<document>", …}`, each hash bare or prefixed `sha256:` as
/// GraphQL Code Generator writes them), checking every hash against its text.
pub fn load_trusted(path: &str) -> anyhow::Result<Trusted> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("GRAPHQL_TRUSTED_DOCUMENTS {path}: {e}"))?;
    let manifest: Trusted = serde_json::from_str(&text).map_err(|e| {
        anyhow::anyhow!(
            "GRAPHQL_TRUSTED_DOCUMENTS {path}: not a JSON object of hash → document: {e}"
        )
    })?;
    let bare = |h: &str| {
        let h = h.to_ascii_lowercase();
        h.strip_prefix("sha256:").map(str::to_owned).unwrap_or(h)
    };
    for (hash, doc) in &manifest {
        if sha256_hex(doc) != bare(hash) {
            anyhow::bail!(
                "GRAPHQL_TRUSTED_DOCUMENTS {path}: {hash} is not the SHA-256 of its document"
            );
        }
    }
    Ok(manifest.into_iter().map(|(h, d)| (bare(&h), d)).collect())
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

fn key(state: &AppState, hash: &str) -> String {
    format!("{}:apq:{hash}", state.config.redis.queue_prefix)
}

fn not_in_list(status: StatusCode, message: &str) -> Response {
    error_response(status, "PERSISTED_QUERY_NOT_IN_LIST", message)
}

/// Fills in the request's document from the persisted ones, or says why it may not run.
pub async fn resolve(state: &AppState, req: &mut Request) -> Result<(), Response> {
    let persisted = req
        .extensions
        .get("persistedQuery")
        .cloned()
        .map(|v| v.into_json().unwrap_or_default());
    let trusted = state.trusted.as_deref();
    let Some(pq) = persisted else {
        // A plain request: allowed unless only trusted documents run.
        if let Some(list) = trusted {
            if !req.query.trim().is_empty() && !list.contains_key(&sha256_hex(&req.query)) {
                return Err(not_in_list(
                    StatusCode::FORBIDDEN,
                    "only trusted documents run here: this document is not in the manifest",
                ));
            }
        }
        return Ok(());
    };
    if pq["version"] != 1 {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "Unsupported persisted query version",
        ));
    }
    let hash = pq["sha256Hash"].as_str().unwrap_or("").to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "persistedQuery.sha256Hash must be the document's SHA-256 in hex",
        ));
    }
    if !req.query.is_empty() && sha256_hex(&req.query) != hash {
        return Err(error_response(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "provided sha does not match query",
        ));
    }
    if let Some(list) = trusted {
        return match list.get(&hash) {
            Some(doc) => {
                req.query = doc.clone();
                Ok(())
            }
            None => Err(not_in_list(
                StatusCode::NOT_FOUND,
                &format!("persisted query {hash} is not in the trusted documents"),
            )),
        };
    }
    let redis = state.redis.connection().await;
    if req.query.is_empty() {
        let found: Option<String> = match redis {
            Ok(mut c) => redis::cmd("GET")
                .arg(key(state, &hash))
                .query_async(&mut c)
                .await
                .unwrap_or(None),
            Err(_) => None,
        };
        match found {
            Some(doc) => req.query = doc,
            None => {
                return Err(error_response(
                    StatusCode::OK,
                    "PERSISTED_QUERY_NOT_FOUND",
                    "PersistedQueryNotFound",
                ))
            }
        }
    } else if let Ok(mut c) = redis {
        let kept: redis::RedisResult<()> = redis::cmd("SET")
            .arg(key(state, &hash))
            .arg(&req.query)
            .arg("EX")
            .arg(state.config.http.apq_ttl_secs)
            .query_async(&mut c)
            .await;
        if let Err(e) = kept {
            tracing::debug!(error = %e, "persisted query not kept");
        }
    }
    Ok(())
}
