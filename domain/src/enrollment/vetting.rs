//! Operators' vetting decisions: authorize, or reject with a reason.

use chrono::Utc;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::partners;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::partners::lock_partner;
use crate::permissions::{Action, Principal};
use crate::validation as v;

pub async fn decide_vetting(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    partner_id: Uuid,
    decision: VettingDecision,
    reason: Option<String>,
) -> AppResult<Partner> {
    principal.require(Action::Operate)?;
    let reason = v::optional_text("reason", reason.as_deref(), 1000)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let partner = lock_partner(conn, partner_id).await?;
        let status = match decision {
            VettingDecision::Authorize => {
                if partner.contact_email_verified_at.is_none() {
                    return Err(AppError::NotEligible(vec![Reason::new(
                        "EMAIL_NOT_VERIFIED",
                        "the primary contact has not verified their email yet",
                    )]));
                }
                VettingStatus::Authorized
            }
            VettingDecision::Reject => {
                if reason.is_none() {
                    return Err(AppError::bad_input("reason", "a rejection needs a reason the partner can act on"));
                }
                VettingStatus::Rejected
            }
        };
        let updated: Partner = diesel::update(partners::table.find(partner_id))
            .set((
                partners::vetting_status.eq(status),
                partners::vetting_sub_status.eq(VettingSubStatus::Decision),
                partners::fields_under_verification.eq(Vec::<String>::new()),
                partners::vetting_reason.eq(&reason),
                partners::updated_at.eq(Utc::now()),
            ))
            .returning(Partner::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "partner.vetting_decided",
            ("partner", partner_id.to_string()),
            json!({"decision": decision, "reason": reason, "previousStatus": partner.vetting_status}),
        )
        .await?;
        Ok(updated)
    })
    .await
}
