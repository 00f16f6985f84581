//! Settling a card order whose request died between reserving and booking, from the
//! gateway's records: a purchase (its charge key is the order's) or a manual renewal (its
//! charge key is the term's, shared with automatic renewal).

use chrono::{DateTime, Utc};

use super::booking::{book_failure, book_payment};
use crate::audit::Actor;
use crate::billing::orders::{lock, read};
use crate::db::models::*;
use crate::db::PgConn;
use crate::due::Outcome;
use crate::enums::*;
use crate::error::AppResult;
use crate::lifecycle::manual_renewal::book_answer;
use crate::lifecycle::renewal::renewal_charge_key;
use crate::providers::payments::{Answers, GatewayError};
use crate::services::Services;

/// The key the order's charge was made under.
fn charge_key(order: &Order) -> String {
    match (order.kind, order.subscription_id) {
        // A renewal order pays the term after the one it renews.
        (OrderKind::Renewal, Some(sub_id)) => renewal_charge_key(sub_id, order.term - 1),
        _ => format!("order:{}", order.id),
    }
}

/// First step of the settle job, outside any transaction: asks the gateway for the charge of
/// an order still PROCESSING.
pub(crate) async fn ask(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    answers: &mut Answers,
) -> AppResult<()> {
    let order = read(conn, action.subject_id).await?;
    if order.status == OrderStatus::Processing {
        let key = charge_key(&order);
        let found = svc.gateway.find_charge(&key).await;
        answers.found.insert(key, found);
    }
    Ok(())
}

/// Job: finishes a card order whose request died between reserving and booking, with what
/// the gateway said ([`ask`]).
pub(crate) async fn settle(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
    answers: &Answers,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::Processing {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    let Some(found) = answers.found.get(&charge_key(&order)) else {
        return Ok(Outcome::AskAgain);
    };
    let interrupted =
        GatewayError::Transient("the payment was interrupted; nothing was charged".into());
    let renewal = order.kind == OrderKind::Renewal;
    let actor = Actor::system("settlement");
    match found {
        Ok(Some(charge)) => {
            let order = if renewal {
                book_answer(conn, svc, &actor, order.id, Ok(charge), now).await?
            } else {
                book_payment(conn, svc, &order, &charge.id, now).await?
            };
            Ok(Outcome::Done(format!(
                "settled as {} ({})",
                order.status, charge.id
            )))
        }
        Ok(None) => {
            if renewal {
                book_answer(conn, svc, &actor, order.id, Err(&interrupted), now).await?;
            } else {
                book_failure(conn, &order, &interrupted).await?;
            }
            Ok(Outcome::Done(
                "settled as failed: no charge at the gateway".into(),
            ))
        }
        Err(e) => Ok(Outcome::Retry {
            at: now + chrono::Duration::minutes(1),
            error: e.message().to_owned(),
        }),
    }
}
