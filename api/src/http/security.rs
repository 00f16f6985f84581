//! Security headers on every response: `nosniff`, no referrer, never framed
//! (`frame-ancestors 'none'`, `X-Frame-Options: DENY`), HSTS in production. The two HTML pages
//! (`/ops`, GraphiQL outside production) get a Content-Security-Policy that allows exactly their
//! own inline scripts and styles, by hash ([`page_csp`]).

use axum::http::{header, HeaderValue};
use axum::response::Response;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The policy for responses that are not pages (JSON, PDF): nothing may load or frame them.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// Adds the headers every response carries; `hsts` in production.
pub(crate) fn add_headers(mut resp: Response, hsts: bool) -> Response {
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(API_CSP),
        );
    }
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    resp
}

/// The `'sha256-…'` sources of a page's inline `<tag>…</tag>` blocks.
fn hashes(html: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start..];
        let Some(body_start) = after.find('>') else {
            break;
        };
        let opening = &after[..body_start];
        let body = &after[body_start + 1..];
        let Some(end) = body.find(&close) else { break };
        if !opening.contains("src=") {
            let digest = Sha256::digest(&body.as_bytes()[..end]);
            out.push(format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
        }
        rest = &body[end + close.len()..];
    }
    out
}

/// A Content-Security-Policy for an HTML page: its own inline scripts and styles (by hash),
/// `extra` sources for scripts, styles and images loaded from elsewhere (GraphiQL's CDN), the
/// API and its WebSocket on this origin, never framed.
pub(crate) fn page_csp(html: &str, extra: &str) -> String {
    let scripts = hashes(html, "script").join(" ");
    let styles = hashes(html, "style").join(" ");
    format!(
        "default-src 'none'; script-src 'self' {scripts} {extra}; style-src 'self' {styles} {extra}; \
         img-src 'self' data: {extra}; font-src 'self' {extra}; connect-src 'self' ws: wss:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_blocks_are_hashed_and_external_scripts_are_not() {
        let html = "<style>b{}</style><script src=\"x.js\"></script><script>go()</script>";
        let csp = page_csp(html, "");
        let go = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"go()"));
        let b = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(b"b{}"));
        assert!(
            csp.contains(&format!("script-src 'self' 'sha256-{go}'")),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("style-src 'self' 'sha256-{b}'")),
            "{csp}"
        );
        assert_eq!(hashes(html, "script").len(), 1);
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
