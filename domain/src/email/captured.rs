//! Captured mail, for end-to-end tests (`GET /dev/mail`): with the capturing transports
//! (`EMAIL_TRANSPORT=file` or `memory`, refused in production) sent emails keep their bodies,
//! and this module reads them back from Postgres, newest last, with the links they carry.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::config::{Config, EmailTransportKind};
use crate::db::models::Email;
use crate::db::prelude::*;
use crate::db::schema::emails;
use crate::db::PgConn;
use crate::error::{AppError, AppResult};
use diesel::PgTextExpressionMethods;

/// The most messages one read returns (the newest).
pub const MAX_MESSAGES: i64 = 200;

/// One captured email.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapturedMail {
    pub id: Uuid,
    pub partner_id: Option<Uuid>,
    /// The template's name (`verification`, `invitation`, …).
    pub template: String,
    pub to: String,
    pub subject: String,
    /// The plain-text body (empty once cleared, which only SMTP delivery does).
    pub text: String,
    pub html: String,
    /// Every `http(s)://` link in the text body, in order.
    pub links: Vec<String>,
    /// PENDING, SENT or DEAD.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Whether this configuration captures mail (and `GET /dev/mail` answers): never in
/// production, and only with the `file` or `memory` transport.
pub fn enabled(config: &Config) -> bool {
    !config.is_production() && !matches!(config.email.transport, EmailTransportKind::Smtp { .. })
}

/// The captured emails to `to` (any recipient when `None`), oldest first, the newest
/// [`MAX_MESSAGES`] at most. Recipients compare case-insensitively.
pub async fn read(
    conn: &mut PgConn,
    config: &Config,
    to: Option<&str>,
) -> AppResult<Vec<CapturedMail>> {
    if !enabled(config) {
        return Err(AppError::NotFound("captured mail"));
    }
    let mut query = emails::table
        .select(Email::as_select())
        .order((emails::created_at.desc(), emails::id.desc()))
        .limit(MAX_MESSAGES)
        .into_boxed();
    if let Some(to) = to.map(str::trim).filter(|t| !t.is_empty()) {
        query = query.filter(emails::recipient.ilike(escape_like(to)));
    }
    let mut rows: Vec<Email> = query.load(conn).await?;
    rows.reverse();
    Ok(rows.into_iter().map(captured).collect())
}

fn captured(e: Email) -> CapturedMail {
    let text = e.body_text.unwrap_or_default();
    CapturedMail {
        links: links(&text),
        id: e.id,
        partner_id: e.partner_id,
        template: e.template,
        to: e.recipient,
        subject: e.subject,
        html: e.body_html.unwrap_or_default(),
        text,
        status: e.status.to_string(),
        created_at: e.created_at,
        sent_at: e.sent_at,
    }
}

/// `ILIKE` matches `to` exactly, whatever `%`, `_` or `\` it holds.
fn escape_like(to: &str) -> String {
    to.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// The `http://` and `https://` links in a text, in order, each ending at whitespace or at a
/// character that cannot end a URL in running text.
pub fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = ["https://", "http://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')'))
            .unwrap_or(tail.len());
        let link = tail[..end].trim_end_matches(['.', ',', ';', ':', '!', '?']);
        out.push(link.to_owned());
        rest = &tail[end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_found_in_order_without_trailing_punctuation() {
        let text = "Verify: https://portal.example/verify-email?token=a_b-c.\n\
                    Or sign in (http://localhost:3000/sign-in), then https://x.example/p!";
        assert_eq!(
            links(text),
            [
                "https://portal.example/verify-email?token=a_b-c",
                "http://localhost:3000/sign-in",
                "https://x.example/p",
            ]
        );
        assert!(links("no links here").is_empty());
    }

    #[test]
    fn a_recipient_is_matched_literally() {
        assert_eq!(escape_like("a_b%c\\d@x"), "a\\_b\\%c\\\\d@x");
    }
}
