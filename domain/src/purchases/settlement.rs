//! Settling a card order whose request died between reserving and booking, from the
//! gateway's records (its charge key is the order's).

use chrono::{DateTime, Utc};

use super::booking::{book_failure, book_payment};
use crate::billing::orders::lock;
use crate::db::models::*;
use crate::db::PgConn;
use crate::due::Outcome;
use crate::enums::*;
use crate::error::AppResult;
use crate::providers::payments::GatewayError;
use crate::services::Services;

/// Job: finishes a card order whose request died between reserving and booking, from the
/// gateway's records.
pub(crate) async fn settle(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let order = lock(conn, action.subject_id).await?;
    if order.status != OrderStatus::Processing {
        return Ok(Outcome::Done(format!("skipped: order is {}", order.status)));
    }
    match svc
        .gateway
        .find_charge(&format!("order:{}", order.id))
        .await
    {
        Ok(Some(charge)) => {
            book_payment(conn, svc, &order, &charge.id, now).await?;
            Ok(Outcome::Done(format!("settled as paid ({})", charge.id)))
        }
        Ok(None) => {
            book_failure(
                conn,
                &order,
                &GatewayError::Transient("the payment was interrupted; nothing was charged".into()),
            )
            .await?;
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
