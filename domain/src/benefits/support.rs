//! Support balances: a service request consumes a product support incident, a Signature Cloud
//! Support incident or advisory hours.

use chrono::Utc;
use uuid::Uuid;

use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::entitlements;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::events;

/// A service request consumes support: a TECHNICAL_SUPPORT request one product support
/// incident, or one Signature Cloud Support incident when asked (of an activated support
/// benefit), a PRESALES_DEPLOYMENT request `hours` advisory hours for Action Pack partners
/// (unlimited with a Silver or Gold package). Returns the benefit it drew on, if any. No
/// balance: NOT_ELIGIBLE.
pub(crate) async fn consume_for_request(
    conn: &mut PgConn,
    partner_id: Uuid,
    kind: ServiceRequestKind,
    hours: i32,
    signature: bool,
) -> AppResult<Option<Uuid>> {
    let (delivery, amount) = match kind {
        ServiceRequestKind::TechnicalSupport if signature => (BenefitDelivery::SignatureSupport, 1),
        ServiceRequestKind::TechnicalSupport => (BenefitDelivery::SupportIncidents, 1),
        ServiceRequestKind::PresalesDeployment => (BenefitDelivery::AdvisoryHours, hours),
        _ => return Ok(None),
    };
    if !(1..=100).contains(&amount) {
        return Err(AppError::bad_input(
            "advisoryHours",
            "ask for 1 to 100 advisory hours",
        ));
    }
    let candidates: Vec<Entitlement> = entitlements::table
        .filter(entitlements::partner_id.eq(partner_id))
        .filter(entitlements::status.eq(EntitlementStatus::Active))
        .filter(entitlements::delivery.eq(delivery))
        .order(entitlements::id)
        .for_update()
        .select(Entitlement::as_select())
        .load(conn)
        .await?;
    if delivery == BenefitDelivery::AdvisoryHours
        && candidates
            .iter()
            .any(|e| e.offer_id == "SILVER" || e.offer_id == "GOLD")
    {
        // Presales and deployment help is unlimited for Silver and Gold partners.
        return Ok(candidates
            .iter()
            .find(|e| e.offer_id != "ACTION_PACK")
            .map(|e| e.id));
    }
    let usable = candidates.iter().find(|e| {
        let activated = delivery == BenefitDelivery::AdvisoryHours
            || e.activation == Some(ActivationState::Active);
        activated && e.quantity.is_none_or(|q| e.used + amount <= q)
    });
    let Some(e) = usable else {
        let why = if candidates.is_empty() && delivery == BenefitDelivery::SignatureSupport {
            "Signature Cloud Support comes with Silver and Gold packages"
        } else if candidates.is_empty() {
            "the partner has no such support benefit (it comes with Action Pack, Silver or Gold)"
        } else if delivery == BenefitDelivery::SupportIncidents
            && !candidates
                .iter()
                .any(|e| e.activation == Some(ActivationState::Active))
        {
            "activate the technical support benefit first (activateTechnicalBenefit)"
        } else {
            "no balance left for this term"
        };
        return Err(AppError::not_eligible("NO_BALANCE", why));
    };
    diesel::update(entitlements::table.find(e.id))
        .set((
            entitlements::used.eq(e.used + amount),
            entitlements::updated_at.eq(Utc::now()),
        ))
        .execute(conn)
        .await?;
    events::benefit_changed(conn, e).await?;
    Ok(Some(e.id))
}
