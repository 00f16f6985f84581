//! Renewal reminders (auto-renew off): AD−30, −15, −1 and, in the window, AD+1 and +23, to
//! the admins and the primary contact, once per (subscription, term, reminder kind).

use serde_json::json;

use crate::db::models::*;
use crate::db::PgConn;
use crate::due::Outcome;
use crate::email::Template;
use crate::error::AppResult;
use crate::notify;
use crate::services::Services;
use crate::subscriptions::rules;
use crate::subscriptions::store::{anniversary, lock};

/// Job: one reminder of one term, to the admins and the primary contact.
pub(crate) async fn send_reminder(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
) -> AppResult<Outcome> {
    let sub = lock(conn, action.subject_id).await?;
    if sub.term != action.term || !sub.status.in_good_standing() || sub.auto_renew {
        return Ok(Outcome::Done(format!(
            "skipped: subscription is {} (term {}, auto-renew {})",
            sub.status, sub.term, sub.auto_renew
        )));
    }
    let ad = anniversary(&sub)?;
    let (opens, last_day) = rules::renewal_window(ad);
    let partner = crate::partners::load_partner(conn, sub.partner_id).await?;
    let offer = crate::catalog::offer(conn, &sub.offer_id).await?;
    let to = notify::recipients(conn, &partner, true).await?;
    let n = notify::send(
        conn,
        &partner,
        Template::RenewalReminder,
        &to,
        notify::base_context(&svc.config, &partner, &offer),
        json!({
            "anniversary": ad.date_naive().to_string(),
            "window_opens": opens.to_string(),
            "window_last_day": last_day.to_string(),
            "after": action.tag.starts_with("AD+"),
            "kind": action.tag,
            "no_card": sub.payment_method_id.is_none(),
        }),
    )
    .await?;
    Ok(Outcome::Done(format!(
        "reminder {} sent to {n}",
        action.tag
    )))
}
