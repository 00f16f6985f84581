//! Who hears about billing and lifecycle events, and the common email context.

use std::collections::HashMap;

use serde_json::{json, Value};
use uuid::Uuid;

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
    Ok(recipients_of(conn, &[partner], include_primary_contact)
        .await?
        .remove(&partner.id)
        .unwrap_or_default())
}

/// [`recipients`] of several partners in one query, by partner id.
pub(crate) async fn recipients_of(
    conn: &PgConn,
    partners: &[&Partner],
    include_primary_contact: bool,
) -> AppResult<HashMap<Uuid, Vec<String>>> {
    let ids: Vec<Uuid> = partners.iter().map(|p| p.id).collect();
    let mut out = admins_of(conn, &ids).await?;
    for p in partners.iter().filter(|_| include_primary_contact) {
        add(&mut out, p.id, p.contact_email.clone());
    }
    Ok(out)
}

/// [`recipients_of`] without the primary contacts, by partner id only: it needs no partner
/// row, so it can go in one pipeline with the read of the partner.
pub(crate) async fn admins_of(
    mut conn: &PgConn,
    partner_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<String>>> {
    let admins: Vec<(Uuid, String)> = users::table
        .filter(users::partner_id.eq_any(partner_ids))
        .filter(users::status.eq(UserStatus::Active))
        .filter(users::roles.overlaps_with(vec![
            "GLOBAL_ADMIN".to_string(),
            "MPN_PARTNER_ADMIN".to_string(),
        ]))
        .order((users::partner_id, users::created_at))
        .select((users::partner_id, users::email))
        .load(&mut conn)
        .await?;
    let mut out = HashMap::with_capacity(partner_ids.len());
    for (partner_id, e) in admins {
        add(&mut out, partner_id, e);
    }
    Ok(out)
}

/// Adds an address to a partner's list unless it is there already (case-insensitively).
fn add(out: &mut HashMap<Uuid, Vec<String>>, partner_id: Uuid, e: String) {
    let list = out.entry(partner_id).or_default();
    if !list.iter().any(|o| o.eq_ignore_ascii_case(&e)) {
        list.push(e);
    }
}

pub(crate) fn base_context(config: &Config, partner: &Partner, offer: &Offer) -> Value {
    json!({
        "legal_name": partner.legal_name,
        "mpn_id": partner.mpn_id,
        "offer_name": offer.name,
        "link": config.http.portal_link("/partnership/offers"),
    })
}

/// Merges `extra` into the base context and queues one email per recipient.
pub(crate) async fn send(
    conn: &mut PgConn,
    partner: &Partner,
    template: Template,
    to: &[String],
    ctx: Value,
    extra: Value,
) -> AppResult<usize> {
    send_many(conn, template, vec![(partner, to, ctx, extra)]).await
}

/// Like [`send`] for several partners (a batch of renewal receipts): one INSERT of all the
/// emails. Returns how many were queued.
pub(crate) async fn send_many(
    conn: &mut PgConn,
    template: Template,
    each: Vec<(&Partner, &[String], Value, Value)>,
) -> AppResult<usize> {
    let queued = compose(template, each);
    email::queue_many(conn, &queued).await?;
    Ok(queued.len())
}

/// The emails [`send_many`] queues: one per recipient, with `extra` merged into the context.
pub(crate) fn compose<'a>(
    template: Template,
    each: Vec<(&Partner, &'a [String], Value, Value)>,
) -> Vec<email::Queued<'a, Value>> {
    let mut queued = Vec::new();
    for (partner, to, mut ctx, extra) in each {
        if let (Some(base), Value::Object(more)) = (ctx.as_object_mut(), extra) {
            base.extend(more);
        }
        for r in to {
            queued.push(email::Queued {
                partner_id: Some(partner.id),
                template,
                to: r,
                ctx: ctx.clone(),
            });
        }
    }
    queued
}
