//! Who hears about billing and lifecycle events, and the common email context.

use serde_json::{json, Value};

use crate::config::Config;
use crate::db::models::{Offer, Partner};
use crate::db::prelude::*;
use crate::db::schema::users;
use crate::db::PgConn;
use crate::email::{self, Template};
use crate::enums::UserStatus;
use crate::error::AppResult;

/// Global admins and MPN partner admins (active users), plus the primary contact when asked;
/// each address once.
pub(crate) async fn recipients(
    conn: &mut PgConn,
    partner: &Partner,
    include_primary_contact: bool,
) -> AppResult<Vec<String>> {
    let admins: Vec<String> = users::table
        .filter(users::partner_id.eq(partner.id))
        .filter(users::status.eq(UserStatus::Active))
        .filter(users::roles.overlaps_with(vec![
            "GLOBAL_ADMIN".to_string(),
            "MPN_PARTNER_ADMIN".to_string(),
        ]))
        .order(users::created_at)
        .select(users::email)
        .load(conn)
        .await?;
    let mut out: Vec<String> = Vec::new();
    let extra = include_primary_contact.then(|| partner.contact_email.clone());
    for e in admins.into_iter().chain(extra) {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&e)) {
            out.push(e);
        }
    }
    Ok(out)
}

pub(crate) fn base_context(config: &Config, partner: &Partner, offer: &Offer) -> Value {
    json!({
        "legal_name": partner.legal_name,
        "mpn_id": partner.mpn_id,
        "offer_name": offer.name,
        "link": format!("{}/partnership/offers", config.http.public_base_url.trim_end_matches('/')),
    })
}

/// Merges `extra` into the base context and queues one email per recipient.
pub(crate) async fn send(
    conn: &mut PgConn,
    partner: &Partner,
    template: Template,
    to: &[String],
    mut ctx: Value,
    extra: Value,
) -> AppResult<usize> {
    if let (Some(base), Value::Object(more)) = (ctx.as_object_mut(), extra) {
        base.extend(more);
    }
    for r in to {
        email::queue(conn, Some(partner.id), template, r, &ctx).await?;
    }
    Ok(to.len())
}
