//! Software and license-based cloud keys: revealing them (audited; ends refund eligibility,
//! so the caller acknowledges that while a refund is possible) and the download links.

use chrono::{DateTime, Utc};
use serde_json::json;
use uuid::Uuid;

use super::entitlements::{load_visible, require_usable};
use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::product_keys;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::events;
use crate::permissions::{Action, Principal};
use crate::services::Services;
use crate::subscriptions::{eligibility, store as subs};

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
        let now = crate::clock::now_for(conn, &svc.config, e.partner_id).await?;
        let refund_was_possible = eligibility::use_benefit(
            conn,
            svc,
            &sub,
            eligibility::Use::KeyReveal,
            acknowledge_refund_loss,
            now,
        )
        .await?;
        let key = super::keys::decrypt(
            &svc.config.benefits.keyring,
            e.id,
            &pk.key_id,
            &pk.nonce,
            &pk.ciphertext,
        )?;
        if pk.first_revealed_at.is_none() {
            diesel::update(product_keys::table.find(pk.id))
                .set(product_keys::first_revealed_at.eq(now))
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
            json!({"product": e.product, "refund_was_possible": refund_was_possible}),
        )
        .await?;
        events::benefit_changed(conn, &e).await?;
        let instructions = instructions(&e);
        Ok(RevealedKey {
            key,
            product: e.product.clone(),
            instructions,
        })
    })
    .await
}

/// How to use a revealed key.
fn instructions(e: &Entitlement) -> String {
    match e.delivery {
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
    }
}

pub const DOWNLOAD_LANGUAGES: &[&str] = &[
    "en-US", "de-DE", "fr-FR", "es-ES", "it-IT", "ja-JP", "pt-BR", "zh-CN", "ko-KR", "nl-NL",
];

crate::enums::text_enum!(
    /// The operating systems software downloads are built for.
    OperatingSystem {
    /// Windows on x64.
    WindowsX64 => "WINDOWS_X64",
    /// Windows on x86 (32-bit).
    WindowsX86 => "WINDOWS_X86",
    /// Windows on Arm64.
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
