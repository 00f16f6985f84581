//! Using benefits: revealing keys, download links, activating technical benefits and
//! Go-To-Market offers (and the job that completes an activation), consuming support
//! balances with service requests.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::events::{self, Event};
use super::{load_visible, lock, require_usable};
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{entitlements, marketing_contacts, product_keys, subscriptions};
use crate::db::PgConn;
use crate::email::Template;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::lifecycle::actions::{self, Outcome};
use crate::lifecycle::subscriptions as subs;
use crate::permissions::{Action, Principal};
use crate::services::Services;

pub struct RevealedKey {
    pub key: String,
    pub product: String,
    pub instructions: String,
}

/// Reveals a software or license-based cloud key. Audited. While a refund is still possible
/// the caller must acknowledge that revealing ends it (else NOT_ELIGIBLE says so).
pub async fn reveal_key(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    acknowledge_refund_loss: bool,
) -> AppResult<RevealedKey> {
    principal.require(Action::UseBenefits)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let e = load_visible(conn, principal, entitlement_id, true).await?;
        require_usable(&e)?;
        let pk: ProductKey = product_keys::table
            .filter(product_keys::entitlement_id.eq(e.id))
            .select(ProductKey::as_select())
            .first(conn)
            .await
            .optional()?
            .ok_or_else(|| AppError::bad_input("benefitId", "this benefit has no product key"))?;
        let sub = subs::lock(conn, e.subscription_id).await?;
        let refund = subs::refund_eligibility_of(conn, svc, &sub).await?;
        if refund.eligible && !acknowledge_refund_loss {
            return Err(AppError::NotEligible(vec![crate::error::Reason::new(
                "REFUND_ACKNOWLEDGEMENT_REQUIRED",
                "revealing a product key ends the refund eligibility of this package; \
                 call again with acknowledgeRefundLoss: true to go ahead",
            )
            .until(refund.deadline.map(|d| d.to_rfc3339()).unwrap_or_default())]));
        }
        let key = super::keys::decrypt(
            &svc.config.benefits.key_encryption_key,
            e.id,
            &pk.nonce,
            &pk.ciphertext,
        )?;
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        if pk.first_revealed_at.is_none() {
            diesel::update(product_keys::table.find(pk.id))
                .set(product_keys::first_revealed_at.eq(now))
                .execute(conn)
                .await?;
        }
        if sub.key_revealed_at.is_none() {
            diesel::update(subscriptions::table.find(sub.id))
                .set(subscriptions::key_revealed_at.eq(now))
                .execute(conn)
                .await?;
        }
        // The key itself never enters the audit log.
        audit::record(
            conn,
            actor,
            Some(e.partner_id),
            "product_key.revealed",
            ("benefit", e.id.to_string()),
            json!({"product": e.product, "refund_was_possible": refund.eligible}),
        )
        .await?;
        events::notify(
            conn,
            &Event::Benefit {
                partner_id: e.partner_id,
                id: e.id,
            },
        )
        .await?;
        let instructions = match e.delivery {
            BenefitDelivery::LicenseKey => format!(
                "Redeem this token once in the Microsoft 365 admin center to add {} ({} {}). \
                 It is valid for 12 months from redemption.",
                e.product,
                e.quantity
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "unlimited".into()),
                e.unit
            ),
            _ => format!(
                "Use this key to activate {} on up to {} devices. Download the media with \
                 softwareDownloads.",
                e.product,
                e.quantity
                    .map(|q| q.to_string())
                    .unwrap_or_else(|| "any number of".into())
            ),
        };
        Ok(RevealedKey {
            key,
            product: e.product.clone(),
            instructions,
        })
    })
    .await
}

pub const DOWNLOAD_LANGUAGES: &[&str] = &[
    "en-US", "de-DE", "fr-FR", "es-ES", "it-IT", "ja-JP", "pt-BR", "zh-CN", "ko-KR", "nl-NL",
];

crate::enums::text_enum!(OperatingSystem {
    WindowsX64 => "WINDOWS_X64",
    WindowsX86 => "WINDOWS_X86",
    WindowsArm64 => "WINDOWS_ARM64",
});

pub struct Download {
    pub file_name: String,
    pub url: String,
}

/// Download links of a software benefit for a language and an operating system.
pub async fn downloads(
    conn: &mut PgConn,
    principal: &Principal,
    entitlement_id: Uuid,
    language: &str,
    os: OperatingSystem,
) -> AppResult<Vec<Download>> {
    let e = load_visible(conn, principal, entitlement_id, false).await?;
    require_usable(&e)?;
    if e.category != BenefitCategory::Software {
        return Err(AppError::bad_input(
            "benefitId",
            "only software benefits have downloads",
        ));
    }
    let Some(lang) = DOWNLOAD_LANGUAGES
        .iter()
        .find(|l| l.eq_ignore_ascii_case(language.trim()))
    else {
        return Err(AppError::bad_input(
            "language",
            format!("choose one of {}", DOWNLOAD_LANGUAGES.join(", ")),
        ));
    };
    let slug: String = e
        .product
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let arch = match os {
        OperatingSystem::WindowsX64 => "x64",
        OperatingSystem::WindowsX86 => "x86",
        OperatingSystem::WindowsArm64 => "arm64",
    };
    let file_name = format!("{slug}_{lang}_{arch}.iso");
    Ok(vec![Download {
        url: format!("https://downloads.partners.example/{slug}/{lang}/{arch}/{file_name}"),
        file_name,
    }])
}

/// Starts the activation of a technical benefit (support contract). Returns it
/// ACTIVATION_PENDING with the expected completion time; activating one that is pending or
/// active changes nothing; a FAILED one is tried again.
pub async fn activate_technical(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
) -> AppResult<Entitlement> {
    start_activation(
        conn,
        svc,
        principal,
        actor,
        entitlement_id,
        BenefitCategory::Technical,
    )
    .await
}

/// Activates a Go-To-Market offer: PENDING, an instructions email to the marketing contact,
/// ACTIVE after the processing delay (until the package's term ends).
pub async fn activate_gtm(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
) -> AppResult<Entitlement> {
    start_activation(
        conn,
        svc,
        principal,
        actor,
        entitlement_id,
        BenefitCategory::GoToMarket,
    )
    .await
}

async fn start_activation(
    conn: &mut PgConn,
    svc: &Services,
    principal: &Principal,
    actor: &Actor,
    entitlement_id: Uuid,
    category: BenefitCategory,
) -> AppResult<Entitlement> {
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
        let contact: Option<MarketingContact> = if category == BenefitCategory::GoToMarket {
            let c = marketing_contacts::table
                .find(e.partner_id)
                .select(MarketingContact::as_select())
                .first(conn)
                .await
                .optional()?;
            if c.is_none() {
                return Err(AppError::not_eligible(
                    "MARKETING_CONTACT_REQUIRED",
                    "set a marketing contact (setMarketingContact) before activating a Go-To-Market offer",
                ));
            }
            c
        } else {
            None
        };
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        let delay = if category == BenefitCategory::GoToMarket {
            svc.config.benefits.gtm_activation_delay
        } else {
            svc.config.benefits.technical_activation_delay
        };
        let due = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(2));
        let e: Entitlement = diesel::update(entitlements::table.find(e.id))
            .set((
                entitlements::activation.eq(ActivationState::ActivationPending),
                entitlements::activation_requested_at.eq(now),
                entitlements::activation_due_at.eq(due),
                entitlements::failure_reason.eq(None::<String>),
                entitlements::updated_at.eq(Utc::now()),
            ))
            .returning(Entitlement::as_returning())
            .get_result(conn)
            .await?;
        actions::schedule(
            conn,
            e.partner_id,
            ActionKind::CompleteActivation,
            e.id,
            e.term,
            &now.timestamp_millis().to_string(),
            due,
        )
        .await?;
        // An activated benefit ends refund eligibility (PRODUCT.md 2.5).
        diesel::update(
            subscriptions::table
                .find(e.subscription_id)
                .filter(subscriptions::benefit_activated_at.is_null()),
        )
        .set(subscriptions::benefit_activated_at.eq(now))
        .execute(conn)
        .await?;
        if let Some(c) = contact {
            let partner = crate::enrollment::load_partner(conn, e.partner_id).await?;
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
                    "link": format!("{}/benefits/go-to-market", svc.config.http.public_base_url.trim_end_matches('/')),
                }),
            )
            .await?;
        }
        audit::record(
            conn,
            actor,
            Some(e.partner_id),
            "benefit.activation_requested",
            ("benefit", e.id.to_string()),
            json!({"product": e.product, "expected_completion": due}),
        )
        .await?;
        events::notify(conn, &Event::Benefit { partner_id: e.partner_id, id: e.id }).await?;
        Ok(e)
    })
    .await
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
    events::notify(
        conn,
        &Event::Benefit {
            partner_id: e.partner_id,
            id: e.id,
        },
    )
    .await?;
    Ok(Outcome::Done(format!("activation {state}")))
}

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
    events::notify(
        conn,
        &Event::Benefit {
            partner_id,
            id: e.id,
        },
    )
    .await?;
    Ok(Some(e.id))
}

/// For entitlements delivered as keys: when each key was first revealed (None: never).
/// Entitlements without a key row are left out.
pub async fn key_reveals(
    conn: &mut PgConn,
    entitlement_ids: &[Uuid],
) -> AppResult<Vec<(Uuid, Option<DateTime<Utc>>)>> {
    Ok(product_keys::table
        .filter(product_keys::entitlement_id.eq_any(entitlement_ids))
        .select((
            product_keys::entitlement_id,
            product_keys::first_revealed_at,
        ))
        .load(conn)
        .await?)
}
