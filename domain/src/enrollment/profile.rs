//! The legal business profile: validating an address, and edits by the Global admin. A
//! changed legal name or address re-opens verification of those fields only.

use chrono::Utc;
use serde_json::json;

use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::partners;
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::partners::lock_partner;
use crate::permissions::{Action, Principal};
use crate::validation as v;

#[derive(Debug, Clone, async_graphql::InputObject)]
/// A postal address.
pub struct AddressInput {
    /// One to three street lines.
    pub lines: Vec<String>,
    /// The city.
    pub city: String,
    /// The state, province or region.
    pub region: Option<String>,
    /// The postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2, for example `US`.
    pub country: String,
}
#[derive(Debug, Clone, async_graphql::InputObject)]
/// Changes to the legal profile (legal name and address are verified again).
pub struct UpdateLegalProfileInput {
    /// The new legal name.
    pub legal_name: Option<String>,
    /// The new legal address.
    pub address: Option<AddressInput>,
    /// The primary contact's new first name.
    pub contact_first_name: Option<String>,
    /// The primary contact's new last name.
    pub contact_last_name: Option<String>,
    /// The primary contact's new phone number.
    pub contact_phone: Option<String>,
}

/// An address, checked.
pub(crate) struct Address {
    pub(crate) lines: Vec<String>,
    pub(crate) city: String,
    pub(crate) region: Option<String>,
    pub(crate) postal_code: String,
    pub(crate) country: String,
}

pub(crate) fn validate_address(a: &AddressInput) -> AppResult<Address> {
    if a.lines.is_empty() || a.lines.len() > 3 {
        return Err(AppError::bad_input(
            "address.lines",
            "give one to three address lines",
        ));
    }
    let lines = a
        .lines
        .iter()
        .map(|l| v::text("address.lines", l, 200))
        .collect::<AppResult<Vec<_>>>()?;
    Ok(Address {
        lines,
        city: v::text("address.city", &a.city, 100)?,
        region: v::optional_text("address.region", a.region.as_deref(), 100)?,
        postal_code: v::text("address.postalCode", &a.postal_code, 20)?,
        country: v::country("address.country", &a.country)?,
    })
}

/// Vetting after a change of verified fields: the changed fields join those under
/// verification; an authorized or rejected partner goes back to business verification.
/// A partner still proving email ownership keeps its current step.
pub fn reopen_verification(
    status: VettingStatus,
    sub: VettingSubStatus,
    under_verification: &[VerifiedField],
    changed: &[VerifiedField],
) -> (VettingStatus, VettingSubStatus, Vec<VerifiedField>) {
    if changed.is_empty() {
        return (status, sub, under_verification.to_vec());
    }
    let mut fields: Vec<VerifiedField> =
        under_verification.iter().chain(changed).copied().collect();
    fields.sort();
    fields.dedup();
    let sub = match (status, sub) {
        (VettingStatus::Pending, VettingSubStatus::EmailOwnership) => {
            VettingSubStatus::EmailOwnership
        }
        _ => VettingSubStatus::BusinessVerification,
    };
    (VettingStatus::Pending, sub, fields)
}
pub async fn update_legal_profile(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    input: UpdateLegalProfileInput,
) -> AppResult<Partner> {
    principal.require(Action::EditLegalProfile)?;
    let partner_id = principal.scope(None)?;
    let edit = Edit::validate(&input)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let p = lock_partner(conn, partner_id).await?;
        let (changed, mut changes) = edit.diff(&p);
        if changes.is_empty() {
            return Ok(p);
        }
        let under: Vec<VerifiedField> = p
            .fields_under_verification
            .iter()
            .filter_map(|f| f.parse().ok())
            .collect();
        let (status, sub, fields) =
            reopen_verification(p.vetting_status, p.vetting_sub_status, &under, &changed);
        let updated = edit.apply(conn, &p, status, sub, &fields).await?;
        changes.insert("reopenedVerification".into(), json!(changed));
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "partner.legal_profile_updated",
            ("partner", partner_id.to_string()),
            serde_json::Value::Object(changes),
        )
        .await?;
        Ok(updated)
    })
    .await
}

/// A legal-profile edit, checked: the fields given, the others left as they are.
struct Edit {
    legal_name: Option<String>,
    address: Option<Address>,
    first: Option<String>,
    last: Option<String>,
    phone: Option<String>,
}

impl Edit {
    fn validate(input: &UpdateLegalProfileInput) -> AppResult<Self> {
        let text = |field, value: &Option<String>, max| {
            value.as_deref().map(|n| v::text(field, n, max)).transpose()
        };
        Ok(Edit {
            legal_name: text("legalName", &input.legal_name, 200)?,
            address: input.address.as_ref().map(validate_address).transpose()?,
            first: text("contactFirstName", &input.contact_first_name, 100)?,
            last: text("contactLastName", &input.contact_last_name, 100)?,
            phone: input
                .contact_phone
                .as_deref()
                .map(|p| v::phone_e164("contactPhone", p))
                .transpose()?,
        })
    }

    /// The verified fields it changes, and every change for the audit record.
    fn diff(
        &self,
        p: &Partner,
    ) -> (
        Vec<VerifiedField>,
        serde_json::Map<String, serde_json::Value>,
    ) {
        let mut changed = Vec::new();
        let mut changes = serde_json::Map::new();
        if let Some(n) = &self.legal_name {
            if *n != p.legal_name {
                changed.push(VerifiedField::LegalName);
                changes.insert("legalName".into(), json!({"from": p.legal_name, "to": n}));
            }
        }
        if let Some(a) = &self.address {
            let same = a.lines == p.address_lines
                && a.city == p.city
                && a.region == p.region
                && a.postal_code == p.postal_code
                && a.country == p.country;
            if !same {
                changed.push(VerifiedField::Address);
                changes.insert("address".into(), json!("changed"));
            }
        }
        for (key, new, old) in [
            ("contactFirstName", &self.first, &p.contact_first_name),
            ("contactLastName", &self.last, &p.contact_last_name),
            ("contactPhone", &self.phone, &p.contact_phone),
        ] {
            if let Some(n) = new {
                if n != old {
                    changes.insert(key.into(), json!({"from": old, "to": n}));
                }
            }
        }
        (changed, changes)
    }

    /// Writes the edit and the vetting it re-opens.
    async fn apply(
        &self,
        conn: &mut PgConn,
        p: &Partner,
        status: VettingStatus,
        sub: VettingSubStatus,
        fields: &[VerifiedField],
    ) -> AppResult<Partner> {
        let a = self.address.as_ref();
        Ok(diesel::update(partners::table.find(p.id))
            .set((
                partners::legal_name.eq(self.legal_name.as_ref().unwrap_or(&p.legal_name)),
                partners::address_lines.eq(a.map(|a| &a.lines).unwrap_or(&p.address_lines)),
                partners::city.eq(a.map(|a| &a.city).unwrap_or(&p.city)),
                partners::region.eq(a.map(|a| a.region.clone()).unwrap_or(p.region.clone())),
                partners::postal_code.eq(a.map(|a| &a.postal_code).unwrap_or(&p.postal_code)),
                partners::country.eq(a.map(|a| &a.country).unwrap_or(&p.country)),
                partners::contact_first_name
                    .eq(self.first.as_ref().unwrap_or(&p.contact_first_name)),
                partners::contact_last_name.eq(self.last.as_ref().unwrap_or(&p.contact_last_name)),
                partners::contact_phone.eq(self.phone.as_ref().unwrap_or(&p.contact_phone)),
                partners::vetting_status.eq(status),
                partners::vetting_sub_status.eq(sub),
                partners::fields_under_verification.eq(fields
                    .iter()
                    .map(|f| f.as_str().to_owned())
                    .collect::<Vec<_>>()),
                partners::updated_at.eq(Utc::now()),
            ))
            .returning(Partner::as_returning())
            .get_result(conn)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VerifiedField::*;
    use VettingStatus as S;
    use VettingSubStatus as Sub;

    #[test]
    fn authorized_partner_changing_its_name_goes_back_to_business_verification() {
        let (s, sub, f) = reopen_verification(S::Authorized, Sub::Decision, &[], &[LegalName]);
        assert_eq!(
            (s, sub, f),
            (S::Pending, Sub::BusinessVerification, vec![LegalName])
        );
    }

    #[test]
    fn only_changed_fields_are_reverified_and_they_accumulate() {
        let (_, _, f) = reopen_verification(
            S::Pending,
            Sub::BusinessVerification,
            &[LegalName],
            &[Address],
        );
        assert_eq!(f, vec![LegalName, Address]);
        let (_, _, f) = reopen_verification(
            S::Pending,
            Sub::BusinessVerification,
            &[Address],
            &[Address],
        );
        assert_eq!(f, vec![Address]);
    }

    #[test]
    fn email_ownership_step_is_kept() {
        let (s, sub, _) = reopen_verification(S::Pending, Sub::EmailOwnership, &[], &[Address]);
        assert_eq!((s, sub), (S::Pending, Sub::EmailOwnership));
    }

    #[test]
    fn no_change_changes_nothing() {
        let (s, sub, f) = reopen_verification(S::Authorized, Sub::Decision, &[], &[]);
        assert_eq!((s, sub, f), (S::Authorized, Sub::Decision, vec![]));
    }
}
