//! The offer catalog (PRODUCT.md 2.3): offers, their benefit allocations, competencies and
//! the qualifications operators record. The catalog is data (migration 000002); availability
//! is a rule over the partner's state.

use chrono::NaiveDate;
use serde_json::json;
use uuid::Uuid;

use crate::audit::{self, Actor};
use crate::db::models::*;
use crate::db::prelude::*;
use crate::db::schema::{competencies, offer_benefits, offers, qualifications, subscriptions};
use crate::db::PgConn;
use crate::enums::*;
use crate::error::{AppError, AppResult, Reason};
use crate::permissions::{Action, Principal};

pub async fn offers(conn: &mut PgConn) -> AppResult<Vec<Offer>> {
    Ok(offers::table
        .order(offers::sort)
        .select(Offer::as_select())
        .load(conn)
        .await?)
}

pub async fn offer(mut conn: &PgConn, id: &str) -> AppResult<Offer> {
    offers::table
        .find(id)
        .select(Offer::as_select())
        .first(&mut conn)
        .await
        .optional()?
        .ok_or(AppError::NotFound("offer"))
}

/// These offers (unknown ids are left out).
pub async fn offers_by_id(conn: &mut PgConn, ids: &[String]) -> AppResult<Vec<Offer>> {
    Ok(offers::table
        .filter(offers::id.eq_any(ids))
        .select(Offer::as_select())
        .load(conn)
        .await?)
}

pub async fn benefits(mut conn: &PgConn, offer_ids: &[String]) -> AppResult<Vec<OfferBenefit>> {
    Ok(offer_benefits::table
        .filter(offer_benefits::offer_id.eq_any(offer_ids))
        .order((offer_benefits::offer_id, offer_benefits::sort))
        .select(OfferBenefit::as_select())
        .load(&mut conn)
        .await?)
}

pub async fn competencies(conn: &mut PgConn) -> AppResult<Vec<Competency>> {
    Ok(competencies::table
        .order(competencies::code)
        .select(Competency::as_select())
        .load(conn)
        .await?)
}

/// The competencies a partner qualified for, as the caller may see them.
pub async fn qualifications_of(
    conn: &PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
) -> AppResult<Vec<Qualification>> {
    qualifications(conn, principal.scope_for(Action::ViewPartner, partner_id)?).await
}

pub async fn qualifications(mut conn: &PgConn, partner_id: Uuid) -> AppResult<Vec<Qualification>> {
    Ok(qualifications::table
        .filter(qualifications::partner_id.eq(partner_id))
        .order((qualifications::level, qualifications::competency))
        .select(Qualification::as_select())
        .load(&mut conn)
        .await?)
}

/// The qualifications (competency, level) the partners hold now, by partner, in one query.
pub async fn qualified_levels(
    mut conn: &PgConn,
    partner_ids: &[Uuid],
) -> AppResult<std::collections::HashMap<Uuid, Vec<(String, CompetencyLevel)>>> {
    if partner_ids.is_empty() {
        return Ok(Default::default());
    }
    let rows: Vec<(Uuid, String, CompetencyLevel)> = qualifications::table
        .filter(qualifications::partner_id.eq_any(partner_ids))
        .select((
            qualifications::partner_id,
            qualifications::competency,
            qualifications::level,
        ))
        .load(&mut conn)
        .await?;
    let mut out: std::collections::HashMap<Uuid, Vec<(String, CompetencyLevel)>> =
        std::collections::HashMap::new();
    for (p, c, l) in rows {
        out.entry(p).or_default().push((c, l));
    }
    Ok(out)
}

/// Operators withdraw a qualification (the partner no longer holds it). Packages bound to it
/// keep their term; their renewal needs it again. Returns whether there was one.
pub async fn remove_qualification(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    partner_id: Uuid,
    competency: &str,
    level: CompetencyLevel,
) -> AppResult<bool> {
    principal.require(Action::Operate)?;
    conn.transaction::<_, AppError, _>(async |conn| {
        let n = diesel::delete(
            qualifications::table
                .filter(qualifications::partner_id.eq(partner_id))
                .filter(qualifications::competency.eq(competency))
                .filter(qualifications::level.eq(level)),
        )
        .execute(conn)
        .await?;
        if n == 0 {
            return Err(AppError::NotFound("qualification"));
        }
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "qualification.removed",
            ("partner", partner_id.to_string()),
            serde_json::json!({"competency": competency, "level": level}),
        )
        .await?;
        Ok(true)
    })
    .await
}

/// Operators record that a partner qualified for a competency at a level (on a date).
/// Recording the same qualification again updates its date.
pub async fn record_qualification(
    conn: &mut PgConn,
    principal: &Principal,
    actor: &Actor,
    partner_id: Uuid,
    competency: &str,
    level: CompetencyLevel,
    qualified_on: NaiveDate,
) -> AppResult<Qualification> {
    principal.require(Action::Operate)?;
    let Principal::Operator { operator_id, .. } = principal else {
        return Err(AppError::Forbidden);
    };
    conn.transaction::<_, AppError, _>(async |conn| {
        crate::partners::load_partner(conn, partner_id).await?;
        let known = competencies::table
            .find(competency)
            .select(competencies::code)
            .first::<String>(conn)
            .await
            .optional()?;
        if known.is_none() {
            return Err(AppError::bad_input(
                "competency",
                format!("unknown competency `{competency}`"),
            ));
        }
        let q: Qualification = diesel::insert_into(qualifications::table)
            .values(&Qualification {
                id: Uuid::now_v7(),
                partner_id,
                competency: competency.to_owned(),
                level,
                qualified_on,
                recorded_by: *operator_id,
                created_at: chrono::Utc::now(),
            })
            .on_conflict((
                qualifications::partner_id,
                qualifications::competency,
                qualifications::level,
            ))
            .do_update()
            .set(qualifications::qualified_on.eq(qualified_on))
            .returning(Qualification::as_returning())
            .get_result(conn)
            .await?;
        audit::record(
            conn,
            actor,
            Some(partner_id),
            "qualification.recorded",
            ("qualification", q.id.to_string()),
            json!({"competency": competency, "level": level, "qualified_on": qualified_on}),
        )
        .await?;
        Ok(q)
    })
    .await
}

/// Why `offer` cannot be bought now by a partner in this state (empty: it can).
pub fn purchase_blockers(
    offer: &Offer,
    vetting: VettingStatus,
    live: &[&Subscription],
    qualifications: &[Qualification],
) -> Vec<Reason> {
    let mut reasons = Vec::new();
    if offer.kind == OfferKind::Membership {
        reasons.push(Reason::new(
            "INCLUDED_WITH_MEMBERSHIP",
            "Network membership comes with enrollment; it is not bought",
        ));
        return reasons;
    }
    if vetting != VettingStatus::Authorized {
        reasons.push(Reason::new(
            "NOT_AUTHORIZED",
            format!("purchases need an authorized partner; vetting is {vetting}"),
        ));
    }
    if let Some(s) = live.iter().find(|s| s.offer_id == offer.id) {
        reasons.push(if s.status == SubscriptionStatus::PendingPayment {
            Reason::new(
                "ORDER_PENDING",
                "an order for this offer is waiting for payment; cancel it or wait for it to expire",
            )
        } else {
            Reason::new("ALREADY_OWNED", "the partner already holds this offer (one per partner)")
        });
    }
    if let Some(level) = offer.level {
        if !qualifications.iter().any(|q| q.level == level) {
            reasons.push(Reason::new(
                "NO_QUALIFICATION",
                format!("buying the {level} package needs a qualification for at least one competency at {level}"),
            ));
        }
    }
    reasons
}

/// The competencies a package at `level` is bound to: those asked for (each must be
/// qualified at that level), or all the partner's qualifications at that level.
pub fn package_competencies(
    level: CompetencyLevel,
    requested: Option<&[String]>,
    qualifications: &[Qualification],
) -> AppResult<Vec<String>> {
    let qualified: Vec<&str> = qualifications
        .iter()
        .filter(|q| q.level == level)
        .map(|q| q.competency.as_str())
        .collect();
    let mut chosen: Vec<String> = match requested {
        None => qualified.iter().map(|s| s.to_string()).collect(),
        Some(list) => {
            for c in list {
                if !qualified.contains(&c.as_str()) {
                    return Err(AppError::not_eligible(
                        "NO_QUALIFICATION",
                        format!("the partner is not qualified for {c} at {level}"),
                    ));
                }
            }
            list.to_vec()
        }
    };
    chosen.sort();
    chosen.dedup();
    if chosen.is_empty() {
        return Err(AppError::not_eligible(
            "NO_QUALIFICATION",
            format!("a {level} package needs at least one competency qualified at {level}"),
        ));
    }
    Ok(chosen)
}

pub async fn live_subscriptions(
    mut conn: &PgConn,
    partner_id: Uuid,
) -> AppResult<Vec<Subscription>> {
    Ok(subscriptions::table
        .filter(subscriptions::partner_id.eq(partner_id))
        .filter(subscriptions::status.eq_any(SubscriptionStatus::LIVE))
        .select(Subscription::as_select())
        .load(&mut conn)
        .await?)
}

crate::enums::text_enum!(
    /// The three lists of "Partnership > Offers".
    OfferSection {
        /// Offers that can be bought, each with the reasons it cannot be bought right now.
        Available => "AVAILABLE",
        /// Held now: active or in the renewal window (and Network membership).
        Purchased => "PURCHASED",
        /// Lapsed, cancelled or expired-unpaid subscriptions.
        Expired => "EXPIRED",
    }
);

pub struct Listing {
    pub offer: Offer,
    pub section: OfferSection,
    pub reasons: Vec<Reason>,
    pub subscription: Option<Subscription>,
    /// What buying it now would cost (Available only).
    pub quote: Option<crate::billing::quote::Quote>,
}

/// The partner's view of the catalog, one section at a time.
pub async fn listings(
    conn: &mut PgConn,
    principal: &Principal,
    partner_id: Option<Uuid>,
    section: OfferSection,
) -> AppResult<Vec<Listing>> {
    principal.require(Action::ViewPartner)?;
    let partner_id = principal.scope(partner_id)?;
    let partner = crate::partners::load_partner(conn, partner_id).await?;
    let catalog = offers(conn).await?;
    let subs: Vec<Subscription> = subscriptions::table
        .filter(subscriptions::partner_id.eq(partner_id))
        .order(subscriptions::id.desc())
        .select(Subscription::as_select())
        .load(conn)
        .await?;
    Ok(match section {
        OfferSection::Available => {
            let quals = qualifications(conn, partner_id).await?;
            available(&partner, &catalog, &subs, &quals)
        }
        OfferSection::Purchased => {
            let network = catalog.iter().find(|o| o.kind == OfferKind::Membership);
            let mut out: Vec<Listing> = network
                .map(|n| Listing {
                    offer: n.clone(),
                    section,
                    reasons: vec![],
                    subscription: None,
                    quote: None,
                })
                .into_iter()
                .collect();
            out.extend(held(&catalog, &subs, section, |s| s.in_good_standing()));
            out
        }
        OfferSection::Expired => held(&catalog, &subs, section, |s| {
            matches!(
                s,
                SubscriptionStatus::Lapsed
                    | SubscriptionStatus::Cancelled
                    | SubscriptionStatus::OrderExpired
            )
        }),
    })
}

/// Every offer but the membership, with the reasons it cannot be bought now and a quote.
fn available(
    partner: &Partner,
    catalog: &[Offer],
    subs: &[Subscription],
    quals: &[Qualification],
) -> Vec<Listing> {
    let live: Vec<&Subscription> = subs
        .iter()
        .filter(|s| SubscriptionStatus::LIVE.contains(&s.status))
        .collect();
    let has_silver = live
        .iter()
        .any(|s| s.offer_id == "SILVER" && s.status.in_good_standing());
    catalog
        .iter()
        .filter(|o| o.kind != OfferKind::Membership)
        .map(|offer| {
            let upgrade = offer.level == Some(CompetencyLevel::Gold) && has_silver;
            Listing {
                quote: Some(crate::billing::quote::quote(
                    offer.price_minor,
                    &partner.country,
                    upgrade,
                )),
                offer: offer.clone(),
                section: OfferSection::Available,
                reasons: purchase_blockers(offer, partner.vetting_status, &live, quals),
                subscription: live
                    .iter()
                    .find(|s| s.offer_id == offer.id)
                    .map(|s| (*s).clone()),
            }
        })
        .collect()
}

/// The partner's subscriptions in the statuses `keep` picks, each with its offer.
fn held(
    catalog: &[Offer],
    subs: &[Subscription],
    section: OfferSection,
    keep: impl Fn(SubscriptionStatus) -> bool,
) -> Vec<Listing> {
    subs.iter()
        .filter(|s| keep(s.status))
        .filter_map(|s| {
            let offer = catalog.iter().find(|o| o.id == s.offer_id)?.clone();
            Some(Listing {
                offer,
                section,
                reasons: vec![],
                subscription: Some(s.clone()),
                quote: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(id: &str, kind: OfferKind, level: Option<CompetencyLevel>) -> Offer {
        Offer {
            id: id.into(),
            name: id.into(),
            description: String::new(),
            kind,
            level,
            price_minor: 100,
            currency: "USD".into(),
            annual: true,
            terms_version: "v".into(),
            sort: 0,
        }
    }

    fn qual(level: CompetencyLevel) -> Qualification {
        Qualification {
            id: Uuid::nil(),
            partner_id: Uuid::nil(),
            competency: "APP_DEVELOPMENT".into(),
            level,
            qualified_on: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            recorded_by: Uuid::nil(),
            created_at: chrono::Utc::now(),
        }
    }

    fn codes(r: Vec<Reason>) -> Vec<String> {
        r.into_iter().map(|r| r.code).collect()
    }

    #[test]
    fn availability_reasons() {
        let maps = offer("ACTION_PACK", OfferKind::ActionPack, None);
        assert!(purchase_blockers(&maps, VettingStatus::Authorized, &[], &[]).is_empty());
        assert_eq!(
            codes(purchase_blockers(&maps, VettingStatus::Pending, &[], &[])),
            ["NOT_AUTHORIZED"]
        );
        let gold = offer("GOLD", OfferKind::Competency, Some(CompetencyLevel::Gold));
        assert_eq!(
            codes(purchase_blockers(
                &gold,
                VettingStatus::Authorized,
                &[],
                &[qual(CompetencyLevel::Silver)]
            )),
            ["NO_QUALIFICATION"]
        );
        assert!(purchase_blockers(
            &gold,
            VettingStatus::Authorized,
            &[],
            &[qual(CompetencyLevel::Gold)]
        )
        .is_empty());
        let network = offer("NETWORK", OfferKind::Membership, None);
        assert_eq!(
            codes(purchase_blockers(
                &network,
                VettingStatus::Authorized,
                &[],
                &[]
            )),
            ["INCLUDED_WITH_MEMBERSHIP"]
        );
    }

    #[test]
    fn package_competencies_must_be_qualified() {
        let q = [qual(CompetencyLevel::Silver)];
        assert_eq!(
            package_competencies(CompetencyLevel::Silver, None, &q).unwrap(),
            ["APP_DEVELOPMENT"]
        );
        assert!(package_competencies(CompetencyLevel::Gold, None, &q).is_err());
        assert!(
            package_competencies(CompetencyLevel::Silver, Some(&["SECURITY".to_string()]), &q)
                .is_err()
        );
    }
}
