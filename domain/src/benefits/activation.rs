//! Activating technical benefits (support contracts) and Go-To-Market offers: PENDING with
//! the expected completion time, then the job that completes it (an Access ID and a Contract
//! ID from the provisioning provider, or FAILED with a reason).

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::entitlements::{load_visible, lock, require_usable};
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{entitlements, marketing_contacts};
use crate::db::PgConn;
use crate::due::{self, Outcome};
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::events;
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::subscriptions::{eligibility, store as subs};

/// Starts the activation of a technical benefit (support contract). Returns it
/// ACTIVATION_PENDING with the expected completion time; activating one that is pending or
/// active changes nothing; a FAILED one is tried again.
pub async fn activate_technical(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    acknowledge_refund_loss: bool,
) -> AppResult<Entitlement> {
    let request = Activation {
        entitlement_id,
        category: BenefitCategory::Technical,
        acknowledge_refund_loss,
    };
    start_activation(conn, svc, principal, actor, request).await
}

/// Activates a Go-To-Market offer: PENDING, an instructions email to the marketing contact,
/// ACTIVE after the processing delay (until the package's term ends).
pub async fn activate_gtm(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    acknowledge_refund_loss: bool,
) -> AppResult<Entitlement> {
    let request = Activation {
        entitlement_id,
        category: BenefitCategory::GoToMarket,
        acknowledge_refund_loss,
    };
    start_activation(conn, svc, principal, actor, request).await
}

/// What an activation asks for.
struct Activation {
    entitlement_id: Uuid,
    category: BenefitCategory,
    /// The caller knows the activation ends refund eligibility (needed while it is possible).
    acknowledge_refund_loss: bool,
}

async fn start_activation(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    request: Activation,
) -> AppResult<Entitlement> {
    let Activation {
        entitlement_id,
        category,
        acknowledge_refund_loss,
    } = request;
    principal.require(Action::UseBenefits)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let e = load_visible(conn, principal, entitlement_id, true).await?;
        if e.category != category || e.activation.is_none() {
            return Err(AppError::bad_input(
                "benefitId",
                match category {
                    BenefitCategory::GoToMarket => "this benefit is not a Go-To-Market offer",
                    _ => "this benefit needs no activation",
                },
            ));
        }
        require_usable(&e)?;
        if matches!(
            e.activation,
            Some(ActivationState::ActivationPending | ActivationState::Active)
        ) {
            return Ok(e);
        }
        let contact = if category == BenefitCategory::GoToMarket {
            Some(marketing_contact(conn, e.partner_id).await?)
        } else {
            None
        };
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        let sub = subs::lock(conn, e.subscription_id).await?;
        let benefit_use = if category == BenefitCategory::GoToMarket {
            BenefitUse::GtmOfferActivated
        } else {
            BenefitUse::TechnicalBenefitActivated
        };
        let refund_was_possible = eligibility::use_benefit(
            conn,
            svc,
            &sub,
            eligibility::Use::Benefit(benefit_use),
            acknowledge_refund_loss,
            now,
        )
        .await?;
        let delay = if category == BenefitCategory::GoToMarket {
            svc.config.benefits.gtm_activation_delay
        } else {
            svc.config.benefits.technical_activation_delay
        };
        let due = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(2));
        let e = set_pending(conn, &e, now, due).await?;
        if let Some(c) = contact {
            send_instructions(conn, svc, &e, &c, due).await?;
        }
        audit::record(
            conn,
            actor,
            Some(e.partner_id),
            "benefit.activation_requested",
            ("benefit", e.id.to_string()),
            json!({"product": e.product, "expected_completion": due,
                   "refund_was_possible": refund_was_possible}),
        )
        .await?;
        events::benefit_changed(conn, &e).await?;
        Ok(e)
    })
    .await
}

/// ACTIVATION_PENDING until `due`, with the job that completes it.
async fn set_pending(
    conn: &mut PgConn,
    e: &Entitlement,
    now: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> AppResult<Entitlement> {
    let e: Entitlement = diesel::update(entitlements::table.find(e.id))
        .set((
            entitlements::activation.eq(ActivationState::ActivationPending),
            entitlements::activation_requested_at.eq(now),
            entitlements::activation_due_at.eq(due_at),
            entitlements::failure_reason.eq(None::<String>),
            entitlements::updated_at.eq(Utc::now()),
        ))
        .returning(Entitlement::as_returning())
        .get_result(conn)
        .await?;
    due::schedule(
        conn,
        e.partner_id,
        ActionKind::CompleteActivation,
        e.id,
        e.term,
        &now.timestamp_millis().to_string(),
        due_at,
    )
    .await?;
    Ok(e)
}

/// The partner's marketing contact, which a Go-To-Market activation needs first.
async fn marketing_contact(conn: &mut PgConn, partner_id: Uuid) -> AppResult<MarketingContact> {
    marketing_contacts::table
        .find(partner_id)
        .select(MarketingContact::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or_else(|| {
            AppError::not_eligible(
                "MARKETING_CONTACT_REQUIRED",
                "set a marketing contact (setMarketingContact) before activating a Go-To-Market offer",
            )
        })
}

/// The instructions email of a Go-To-Market activation, to the marketing contact.
async fn send_instructions(
    conn: &mut PgConn,
    svc: &Services,
    e: &Entitlement,
    c: &MarketingContact,
    due: DateTime<Utc>,
) -> AppResult<()> {
    let partner = crate::partners::load_partner(conn, e.partner_id).await?;
    crate::email::queue(
        conn,
        Some(e.partner_id),
        Template::GtmInstructions,
        &c.email,
        &json!({
            "legal_name": partner.legal_name,
            "offer_name": e.product,
            "ready_by": due.date_naive().to_string(),
            "expires_on": e.expires_at.date_naive().to_string(),
            "link": svc.config.http.portal_link("/benefits/go-to-market"),
        }),
    )
    .await?;
    Ok(())
}

/// Job: an activation reached its completion time.
pub(crate) async fn complete_activation(
    conn: &mut PgConn,
    svc: &Services,
    action: &ScheduledAction,
    now: DateTime<Utc>,
) -> AppResult<Outcome> {
    let e = lock(conn, action.subject_id).await?;
    if e.activation != Some(ActivationState::ActivationPending)
        || e.status != EntitlementStatus::Active
    {
        return Ok(Outcome::Done(format!(
            "skipped: activation is {:?}",
            e.activation
        )));
    }
    let (state, access, contract, failure) = if e.category == BenefitCategory::Technical {
        match svc.provisioner.provision(&e).await {
            Ok(c) => (
                ActivationState::Active,
                Some(c.access_id),
                Some(c.contract_id),
                None,
            ),
            Err(reason) => (ActivationState::Failed, None, None, Some(reason)),
        }
    } else {
        (ActivationState::Active, None, None, None)
    };
    diesel::update(entitlements::table.find(e.id))
        .set((
            entitlements::activation.eq(state),
            entitlements::activated_at.eq((state == ActivationState::Active).then_some(now)),
            entitlements::access_id.eq(&access),
            entitlements::contract_id.eq(&contract),
            entitlements::failure_reason.eq(&failure),
            entitlements::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    audit::record(
        conn,
        &Actor::system("activation"),
        Some(e.partner_id),
        "benefit.activation_completed",
        ("benefit", e.id.to_string()),
        json!({"state": state, "reason": failure}),
    )
    .await?;
    events::benefit_changed(conn, &e).await?;
    Ok(Outcome::Done(format!("activation {state}")))
}
