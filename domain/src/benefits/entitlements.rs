//! Entitlement rows (PRODUCT.md 2.6): created from a paid package's allocations when its
//! first term starts, refreshed on renewal (balances start again, expiry moves to the new AD,
//! monthly credit continues), revoked when it lapses or is cancelled; and the lookups every
//! use of a benefit starts from.

use chrono::{DateTime, Months, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{QueryFragment, QueryId};
use uuid::Uuid;

use super::{assignments, keys};
use crate::catalog;
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{competencies, entitlements, product_keys};
use crate::db::PgConn;
use crate::due::{self, Due};
use crate::enums::*;
use crate::error::{AppError, AppResult};
use crate::events::{self, Event};
use crate::permissions::{Action, Principal};
use crate::services::Services;

/// Balances that start again with each term.
/// Consumed balances (reset at each renewal).
const BALANCES: [BenefitDelivery; 3] = [
    BenefitDelivery::SupportIncidents,
    BenefitDelivery::SignatureSupport,
    BenefitDelivery::AdvisoryHours,
];

/// Deliveries that go through an activation (technical support contracts, GTM offers).
fn needs_activation(d: BenefitDelivery) -> bool {
    matches!(
        d,
        BenefitDelivery::SupportIncidents
            | BenefitDelivery::SignatureSupport
            | BenefitDelivery::GtmOffer
    )
}

/// The quantity a package grants for one allocation, given the competencies it is bound to:
/// `None` = unlimited; `Some(None)` in the outer option = not granted at all.
pub fn granted_quantity(
    b: &OfferBenefit,
    bound: &[String],
    cloud: &[String],
    vs_bonus: &[String],
) -> Option<Option<i32>> {
    if let Some(req) = &b.requires_competency {
        if !bound.contains(req) {
            return None;
        }
    }
    if b.unlimited_if_cloud && bound.iter().any(|c| cloud.contains(c)) {
        return Some(None);
    }
    let bonus = bound.iter().filter(|c| vs_bonus.contains(c)).count() as i32;
    Some(b.quantity.map(|q| q + b.bonus_per_competency * bonus))
}

/// What [`grant`] leaves to the caller's next statement: the new entitlements and their
/// product keys (insert them with [`insert_entitlements`] and [`insert_keys`]) and their due
/// work (the first Azure credit month).
pub(crate) struct Granted {
    pub entitlements: Vec<Entitlement>,
    pub keys: Vec<ProductKey>,
    pub due: Vec<Due>,
}

/// The entitlements of a subscription whose first term just started (it has none yet), from
/// the offer's allocations (`allocations`: as read by the caller, else read here), with their
/// keys and due work, for the caller to write with its own ([`Granted`]).
pub(crate) async fn grant(
    conn: &mut PgConn,
    svc: &Services,
    sub: &Subscription,
    now: DateTime<Utc>,
    allocations: Option<&[OfferBenefit]>,
) -> AppResult<Granted> {
    let read;
    let allocations = match allocations {
        Some(a) => a,
        None => {
            read = catalog::benefits(conn, std::slice::from_ref(&sub.offer_id)).await?;
            &read[..]
        }
    };
    // Competencies only add to the allocations of a package bound to some.
    let comps: Vec<Competency> = if sub.competencies.is_empty() {
        Vec::new()
    } else {
        competencies::table
            .select(Competency::as_select())
            .load(conn)
            .await?
    };
    let cloud: Vec<String> = comps
        .iter()
        .filter(|c| c.cloud)
        .map(|c| c.code.clone())
        .collect();
    let vs_bonus: Vec<String> = comps
        .iter()
        .filter(|c| c.vs_bonus)
        .map(|c| c.code.clone())
        .collect();
    let expires = sub.anniversary_at.unwrap_or(now);
    let rows: Vec<Entitlement> = allocations
        .iter()
        .filter_map(|b| {
            granted_quantity(b, &sub.competencies, &cloud, &vs_bonus)
                .map(|quantity| entitlement_of(sub, b, quantity, expires))
        })
        .collect();
    let mut keys = Vec::new();
    let mut credits = Vec::new();
    for e in &rows {
        if matches!(
            e.delivery,
            BenefitDelivery::ProductKey | BenefitDelivery::LicenseKey
        ) {
            keys.push(new_key(svc, e)?);
        }
        if e.delivery == BenefitDelivery::AzureCredit {
            credits.extend(azure_credit_due(e, sub)?);
        }
    }
    Ok(Granted {
        entitlements: rows,
        keys,
        due: credits,
    })
}

/// A new entitlement of the subscription's term for one allocation.
fn entitlement_of(
    sub: &Subscription,
    b: &OfferBenefit,
    quantity: Option<i32>,
    expires: DateTime<Utc>,
) -> Entitlement {
    Entitlement {
        id: Uuid::now_v7(),
        partner_id: sub.partner_id,
        subscription_id: sub.id,
        offer_id: sub.offer_id.clone(),
        benefit_code: b.code.clone(),
        category: b.category,
        delivery: b.delivery,
        product: b.product.clone(),
        unit: b.unit.clone(),
        quantity,
        used: 0,
        term: sub.term,
        status: EntitlementStatus::Active,
        activation: needs_activation(b.delivery).then_some(ActivationState::NotActivated),
        activation_requested_at: None,
        activation_due_at: None,
        activated_at: None,
        failure_reason: None,
        access_id: None,
        contract_id: None,
        expires_at: expires,
        revoked_at: None,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// A fresh product key for an entitlement delivered as a key, encrypted at rest.
fn new_key(svc: &Services, e: &Entitlement) -> AppResult<ProductKey> {
    let (key_id, nonce, ciphertext) =
        keys::encrypt(&svc.config.benefits.keyring, e.id, &keys::generate())?;
    Ok(ProductKey {
        id: Uuid::now_v7(),
        entitlement_id: e.id,
        nonce,
        ciphertext,
        first_revealed_at: None,
        created_at: Utc::now(),
        key_id,
    })
}

/// The INSERT of new entitlements (for a statement that makes other writes too,
/// [`crate::db::writes`]); at least one row. One that exists already fails the statement.
pub(crate) fn insert_entitlements(
    rows: &[Entitlement],
) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    diesel::insert_into(entitlements::table)
        .values(rows)
        .reuse_for_rows(rows.len())
}

/// The INSERT of product keys (for a statement that makes other writes too,
/// [`crate::db::writes`]); at least one row.
pub(crate) fn insert_keys(keys: &[ProductKey]) -> impl QueryFragment<Pg> + QueryId + Send + '_ {
    diesel::insert_into(product_keys::table)
        .values(keys)
        .reuse_for_rows(keys.len())
}

/// The first GRANT_AZURE_CREDIT action of the subscription's current term (month 0). Each
/// month's job grants its month and schedules the next one (`azure::grant_azure_credit`),
/// so a term costs one row of due work at a time rather than twelve.
fn azure_credit_due(e: &Entitlement, sub: &Subscription) -> AppResult<Option<Due>> {
    let (Some(start), Some(end)) = (sub.term_started_at, sub.anniversary_at) else {
        return Ok(None);
    };
    Ok(credit_month_start(start, 0, end)?.map(|at| Due {
        partner_id: e.partner_id,
        kind: ActionKind::GrantAzureCredit,
        subject_id: e.id,
        term: sub.term,
        tag: "0".into(),
        due_at: at,
    }))
}

/// When month `month` (0-based) of a term starting at `term_start` begins; `None` when that
/// is at or after the term's end.
pub(crate) fn credit_month_start(
    term_start: DateTime<Utc>,
    month: u32,
    term_end: DateTime<Utc>,
) -> AppResult<Option<DateTime<Utc>>> {
    let at = term_start
        .checked_add_months(Months::new(month))
        .ok_or_else(|| AppError::Internal("date overflow".into()))?;
    Ok((at < term_end).then_some(at))
}

/// Renewals: balances start again, expiry moves to the new AD, monthly credit continues.
/// Three statements for any number of subscriptions (a storm of renewals made per-row work
/// the cost): one UPDATE of their entitlements, one INSERT of the first credit months, one
/// NOTIFY.
pub(crate) async fn renew_many(conn: &mut PgConn, subs: &[Subscription]) -> AppResult<()> {
    use diesel::sql_types::{Array, Integer, Text, Timestamptz, Uuid as SqlUuid};
    if subs.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(subs.len());
    let mut terms = Vec::with_capacity(subs.len());
    let mut ads = Vec::with_capacity(subs.len());
    for sub in subs {
        let ad = sub.anniversary_at.ok_or_else(|| {
            AppError::Internal(format!("renewed subscription {} has no AD", sub.id))
        })?;
        ids.push(sub.id);
        terms.push(sub.term);
        ads.push(ad);
    }
    let list: Vec<Entitlement> = diesel::sql_query(
        "UPDATE entitlements e SET term = v.term,
             used = CASE WHEN e.delivery = ANY($4) THEN 0 ELSE e.used END,
             expires_at = v.ad, updated_at = $5
         FROM unnest($1::uuid[], $2::int4[], $3::timestamptz[]) AS v(id, term, ad)
         WHERE e.subscription_id = v.id AND e.status = $6
         RETURNING e.*",
    )
    .bind::<Array<SqlUuid>, _>(&ids)
    .bind::<Array<Integer>, _>(&terms)
    .bind::<Array<Timestamptz>, _>(&ads)
    .bind::<Array<Text>, _>(BALANCES.to_vec())
    .bind::<Timestamptz, _>(Utc::now())
    .bind::<Text, _>(EntitlementStatus::Active)
    .reuse()
    .load(conn)
    .await?;
    let mut due = Vec::new();
    for e in list
        .iter()
        .filter(|e| e.delivery == BenefitDelivery::AzureCredit)
    {
        if let Some(sub) = subs.iter().find(|s| s.id == e.subscription_id) {
            due.extend(azure_credit_due(e, sub)?);
        }
    }
    due::schedule_many(conn, &due).await?;
    let changed: Vec<Event> = list
        .iter()
        .map(|e| Event::Benefit {
            partner_id: e.partner_id,
            id: e.id,
        })
        .collect();
    events::notify_many(conn, &changed).await
}

/// Lapse or cancellation: every entitlement of the subscription is revoked, pending
/// activations and credits are cancelled, seats and users are released.
pub(crate) async fn revoke(
    conn: &mut PgConn,
    sub: &Subscription,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let ids: Vec<Uuid> = diesel::update(
        entitlements::table
            .filter(entitlements::subscription_id.eq(sub.id))
            .filter(entitlements::status.eq(EntitlementStatus::Active)),
    )
    .set((
        entitlements::status.eq(EntitlementStatus::Revoked),
        entitlements::revoked_at.eq(now),
        entitlements::updated_at.eq(Utc::now()),
    ))
    .returning(entitlements::id)
    .reuse()
    .get_results(conn)
    .await?;
    for id in &ids {
        due::cancel_pending(conn, *id, None).await?;
        events::notify(
            conn,
            &Event::Benefit {
                partner_id: sub.partner_id,
                id: *id,
            },
        )
        .await?;
    }
    assignments::release_all(conn, &ids, now).await?;
    Ok(())
}

/// An entitlement the caller may see (its partner's; operators any), optionally locked.
pub async fn load_visible(
    conn: &mut PgConn,
    principal: &Principal,
    id: Uuid,
    for_update: bool,
) -> AppResult<Entitlement> {
    principal.require(Action::ViewPartner)?;
    let mut q = entitlements::table
        .find(id)
        .select(Entitlement::as_select())
        .into_boxed();
    if !principal.is_operator() {
        q = q.filter(entitlements::partner_id.eq(principal.scope(None)?));
    }
    let e = q
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("benefit"))?;
    if for_update {
        lock(conn, e.id).await
    } else {
        Ok(e)
    }
}

pub(crate) async fn lock(conn: &mut PgConn, id: Uuid) -> AppResult<Entitlement> {
    entitlements::table
        .find(id)
        .for_update()
        .select(Entitlement::as_select())
        .first(conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("benefit"))
}

/// The partner's benefits, newest first; revoked ones only when asked.
pub async fn list(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    category: Option<BenefitCategory>,
    include_revoked: bool,
    before: Option<Uuid>,
    limit: i64,
) -> AppResult<Vec<Entitlement>> {
    principal.require(Action::ViewPartner)?;
    let mut q = entitlements_filtered(principal.scope(partner_id)?, category, include_revoked)
        .order(entitlements::id.desc())
        .limit(limit)
        .select(Entitlement::as_select());
    if let Some(b) = before {
        q = q.filter(entitlements::id.lt(b));
    }
    Ok(q.load(&mut conn).await?)
}

/// How many benefits [`list`] lists over every page (`totalCount`).
pub async fn count(
    mut conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    category: Option<BenefitCategory>,
    include_revoked: bool,
) -> AppResult<i64> {
    principal.require(Action::ViewPartner)?;
    Ok(
        entitlements_filtered(principal.scope(partner_id)?, category, include_revoked)
            .count()
            .get_result(&mut conn)
            .await?,
    )
}

fn entitlements_filtered(
    partner_id: Uuid,
    category: Option<BenefitCategory>,
    include_revoked: bool,
) -> entitlements::BoxedQuery<'static, diesel::pg::Pg> {
    let mut q = entitlements::table
        .filter(entitlements::partner_id.eq(partner_id))
        .into_boxed();
    if let Some(c) = category {
        q = q.filter(entitlements::category.eq(c));
    }
    if !include_revoked {
        q = q.filter(entitlements::status.eq(EntitlementStatus::Active));
    }
    q
}

pub(crate) fn require_usable(e: &Entitlement) -> AppResult<()> {
    if e.status != EntitlementStatus::Active {
        return Err(AppError::not_eligible(
            "BENEFIT_REVOKED",
            "this benefit was revoked when its package lapsed or was cancelled",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alloc(q: Option<i32>, bonus: i32, cloud: bool, req: Option<&str>) -> OfferBenefit {
        OfferBenefit {
            offer_id: "GOLD".into(),
            code: "X".into(),
            category: BenefitCategory::Technical,
            product: "p".into(),
            delivery: BenefitDelivery::Seat,
            quantity: q,
            unit: "u".into(),
            bonus_per_competency: bonus,
            unlimited_if_cloud: cloud,
            requires_competency: req.map(Into::into),
            sort: 0,
        }
    }

    #[test]
    fn package_quantities_follow_the_bound_competencies() {
        let cloud = vec!["CLOUD_PLATFORM".to_string(), "SECURITY".to_string()];
        let vs = vec!["APP_DEVELOPMENT".to_string(), "CLOUD_PLATFORM".to_string()];
        let app = vec!["APP_DEVELOPMENT".to_string()];
        let both = vec!["APP_DEVELOPMENT".to_string(), "CLOUD_PLATFORM".to_string()];
        // Gold VS Enterprise: 10 + 25 per App Dev / Cloud Platform.
        assert_eq!(
            granted_quantity(&alloc(Some(10), 25, false, None), &both, &cloud, &vs),
            Some(Some(60))
        );
        // Signature Cloud Support: unlimited with a cloud competency, else 10.
        assert_eq!(
            granted_quantity(&alloc(Some(10), 0, true, None), &both, &cloud, &vs),
            Some(None)
        );
        assert_eq!(
            granted_quantity(&alloc(Some(10), 0, true, None), &app, &cloud, &vs),
            Some(Some(10))
        );
        // ISV Co-sell ready only with App Development.
        let sec = vec!["SECURITY".to_string()];
        assert_eq!(
            granted_quantity(
                &alloc(Some(1), 0, false, Some("APP_DEVELOPMENT")),
                &sec,
                &cloud,
                &vs
            ),
            None
        );
        assert_eq!(
            granted_quantity(
                &alloc(Some(1), 0, false, Some("APP_DEVELOPMENT")),
                &app,
                &cloud,
                &vs
            ),
            Some(Some(1))
        );
    }
}
