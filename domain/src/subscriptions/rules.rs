//! The subscription lifecycle rules of PRODUCT.md 2.5 as plain functions: anniversary dates,
//! the renewal window, the reminder and retry schedules, refund eligibility. No I/O; the
//! callers pass the partner's "now" (its test clock when one is set).
//!
//! Day arithmetic is done on UTC calendar dates: "AD+1" is the calendar day after the
//! anniversary date, whatever the time of day of the original purchase.

use chrono::{DateTime, Days, Months, NaiveDate, NaiveTime, Utc};

use crate::enums::{AutoRenewOffReason, BenefitUse, CompetencyLevel, SubscriptionStatus};
use crate::error::Reason;

/// Days after the anniversary date on which a failed auto-renewal charge is tried again
/// (the first attempt is on the anniversary date itself). All inside the renewal window.
pub const RETRY_DAYS: &[u64] = &[1, 3, 7, 14, 21, 28];

/// The renewal window is AD+1 through AD+30.
pub const WINDOW_FIRST_DAY: u64 = 1;
pub const WINDOW_LAST_DAY: u64 = 30;

/// A refund is possible within this many days of the payment.
pub const REFUND_DAYS: i64 = 30;

/// `t` plus whole years. 29 February becomes 28 February in a year that has none.
pub fn add_years(t: DateTime<Utc>, years: u32) -> DateTime<Utc> {
    t.checked_add_months(Months::new(12 * years))
        .expect("dates stay far inside chrono's range")
}

/// The first anniversary date: one year after activation.
pub fn first_anniversary(activated_at: DateTime<Utc>) -> DateTime<Utc> {
    add_years(activated_at, 1)
}

/// A renewal counts the new term from the old anniversary date, not from the payment date.
pub fn next_anniversary(old_anniversary: DateTime<Utc>) -> DateTime<Utc> {
    add_years(old_anniversary, 1)
}

fn day(ad: DateTime<Utc>, plus: u64) -> NaiveDate {
    ad.date_naive() + Days::new(plus)
}

fn start_of(d: NaiveDate) -> DateTime<Utc> {
    d.and_time(NaiveTime::MIN).and_utc()
}

/// First and last calendar day on which "Renew" is available.
pub fn renewal_window(ad: DateTime<Utc>) -> (NaiveDate, NaiveDate) {
    (day(ad, WINDOW_FIRST_DAY), day(ad, WINDOW_LAST_DAY))
}

/// The moment a subscription not renewed by AD+30 lapses: the start of AD+31.
pub fn lapse_at(ad: DateTime<Utc>) -> DateTime<Utc> {
    start_of(day(ad, WINDOW_LAST_DAY + 1))
}

/// Why a subscription cannot be renewed by hand right now (empty: it can).
pub fn renewal_blockers(
    status: SubscriptionStatus,
    ad: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<Reason> {
    let Some(ad) = ad.filter(|_| status.in_good_standing()) else {
        return vec![Reason::new(
            "NOT_RENEWABLE",
            format!("a subscription that is {status} cannot be renewed; buy the offer again"),
        )];
    };
    let (opens, last) = renewal_window(ad);
    let today = now.date_naive();
    if today < opens {
        vec![Reason::new(
            "RENEWAL_WINDOW_NOT_OPEN",
            format!("renewal opens on {opens} (the day after the anniversary date)"),
        )
        .until(opens)]
    } else if today > last {
        vec![Reason::new(
            "RENEWAL_WINDOW_CLOSED",
            format!("the renewal window closed on {last}"),
        )]
    } else {
        vec![]
    }
}

/// The reminders sent when auto-renew is off, as (tag, days relative to the AD).
pub const REMINDERS: &[(&str, i64)] = &[
    ("AD-30", -30),
    ("AD-15", -15),
    ("AD-1", -1),
    ("AD+1", 1),
    ("AD+23", 23),
];

/// When a reminder is due: the AD's time of day, `days` away.
pub fn reminder_due(ad: DateTime<Utc>, days: i64) -> DateTime<Utc> {
    ad + chrono::Duration::days(days)
}

/// When auto-renewal attempt `attempt` (1-based) is due; `None` once the schedule is spent.
pub fn charge_attempt_due(ad: DateTime<Utc>, attempt: u32) -> Option<DateTime<Utc>> {
    match attempt {
        0 => None,
        1 => Some(ad),
        n => RETRY_DAYS
            .get(n as usize - 2)
            .map(|d| ad + chrono::Duration::days(*d as i64)),
    }
}

/// When a subscription whose cancellation was decided without a refund ends: its AD, while
/// it is still in good standing; otherwise nothing is set to end it.
pub fn ends_at(
    status: SubscriptionStatus,
    ends_at_anniversary: bool,
    anniversary: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    (ends_at_anniversary && status.in_good_standing())
        .then_some(anniversary)
        .flatten()
}

/// Why automatic renewal is off (None while it is on): a cancellation ending it at the AD,
/// no saved card (bought by bank transfer), a card refused for good at a renewal attempt, or
/// a user's choice.
pub fn auto_renew_off_reason(
    auto_renew: bool,
    ends_at_anniversary: bool,
    has_card: bool,
    renewal_failures: i32,
) -> Option<AutoRenewOffReason> {
    if auto_renew {
        None
    } else if ends_at_anniversary {
        Some(AutoRenewOffReason::EndsAtAnniversary)
    } else if !has_card {
        Some(AutoRenewOffReason::NoCard)
    } else if renewal_failures > 0 {
        Some(AutoRenewOffReason::CardRefused)
    } else {
        Some(AutoRenewOffReason::TurnedOff)
    }
}

/// PRODUCT.md 2.5: renewing Silver or Gold needs a current qualification at the package's
/// level for each competency the package is bound to. `qualified` is what the partner holds
/// now (competency, level). Empty: nothing stands in the way.
pub fn renewal_qualification_blockers(
    level: Option<CompetencyLevel>,
    bound: &[String],
    qualified: &[(String, CompetencyLevel)],
) -> Vec<Reason> {
    let Some(level) = level else {
        return vec![];
    };
    bound
        .iter()
        .filter(|c| !qualified.iter().any(|(q, l)| q == *c && *l == level))
        .map(|c| {
            Reason::new(
                "QUALIFICATION_REQUIRED",
                format!(
                    "renewing the {level} package needs a current {level} qualification for {c}; \
                     it is no longer recorded"
                ),
            )
        })
        .collect()
}

/// A use of a benefit in words, for reasons and acknowledgements.
pub fn benefit_use_words(u: BenefitUse) -> &'static str {
    match u {
        BenefitUse::TechnicalBenefitActivated => "a technical benefit was activated",
        BenefitUse::GtmOfferActivated => "a Go-To-Market offer was activated",
        BenefitUse::VsSeatAssigned => "a Visual Studio subscription was assigned",
        BenefitUse::AzureUserAssigned => "an Azure user was assigned",
    }
}

/// The facts refund eligibility depends on.
#[derive(Debug, Clone)]
pub struct RefundFacts {
    pub status: SubscriptionStatus,
    /// When the latest term was paid (purchase or renewal); `None` if never paid.
    pub paid_at: Option<DateTime<Utc>>,
    pub amount_paid_minor: i64,
    pub key_revealed_at: Option<DateTime<Utc>>,
    pub benefit_activated_at: Option<DateTime<Utc>>,
    /// What that first use of a benefit was (`None` on rows from before uses had kinds).
    pub benefit_use: Option<BenefitUse>,
    /// This subscription was bought with the Silver → Gold upgrade discount.
    pub upgrade_discount_used: bool,
    /// This (Silver) subscription was upgraded to Gold.
    pub upgraded_at: Option<DateTime<Utc>>,
}

/// PRODUCT.md 2.5: a refund is due only within 30 days of purchase, when no benefit was
/// activated, no key was revealed and no upgrade discount was used. Returns every reason that
/// applies (empty: eligible) and the last moment a refund can be asked for.
pub fn refund_blockers(
    f: &RefundFacts,
    now: DateTime<Utc>,
) -> (Vec<Reason>, Option<DateTime<Utc>>) {
    let mut reasons = Vec::new();
    if !f.status.in_good_standing() {
        reasons.push(Reason::new(
            "NOT_ACTIVE",
            format!("the subscription is {}", f.status),
        ));
    }
    let deadline = f.paid_at.map(|p| p + chrono::Duration::days(REFUND_DAYS));
    match deadline {
        None => reasons.push(Reason::new(
            "NOT_PAID",
            "nothing was paid for this subscription",
        )),
        Some(d) if now > d => reasons.push(
            Reason::new(
                "REFUND_PERIOD_ENDED",
                format!(
                    "refunds are possible within {REFUND_DAYS} days of payment; that ended on {}",
                    d.date_naive()
                ),
            )
            .until(d),
        ),
        Some(_) => {}
    }
    if f.amount_paid_minor <= 0 && f.paid_at.is_some() {
        reasons.push(Reason::new("NOTHING_TO_REFUND", "nothing was charged"));
    }
    if let Some(t) = f.key_revealed_at {
        reasons.push(Reason::new(
            "KEY_REVEALED",
            format!("a product key was revealed on {}", t.date_naive()),
        ));
    }
    if let Some(t) = f.benefit_activated_at {
        let (code, what) = match f.benefit_use {
            Some(u) => (u.as_str(), benefit_use_words(u)),
            None => ("BENEFIT_ACTIVATED", "a benefit was activated"),
        };
        reasons.push(Reason::new(code, format!("{what} on {}", t.date_naive())));
    }
    if f.upgrade_discount_used {
        reasons.push(Reason::new(
            "UPGRADE_DISCOUNT_USED",
            "this package was bought with the Silver to Gold upgrade discount",
        ));
    }
    if let Some(t) = f.upgraded_at {
        reasons.push(Reason::new(
            "UPGRADED_TO_GOLD",
            format!("this package was upgraded to Gold on {}", t.date_naive()),
        ));
    }
    (reasons, deadline)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 14, 30, 0).unwrap()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn anniversary_is_one_year_later_even_on_leap_days() {
        assert_eq!(first_anniversary(t(2026, 11, 21)), t(2027, 11, 21));
        assert_eq!(first_anniversary(t(2024, 2, 29)), t(2025, 2, 28));
        assert_eq!(first_anniversary(t(2027, 2, 28)), t(2028, 2, 28));
        // Renewals count from the old AD: a leap-day purchase stays on the 28th.
        assert_eq!(next_anniversary(t(2025, 2, 28)), t(2026, 2, 28));
        assert_eq!(first_anniversary(t(2026, 12, 31)), t(2027, 12, 31));
    }

    #[test]
    fn window_is_ad_plus_1_through_ad_plus_30_across_month_ends() {
        assert_eq!(
            renewal_window(t(2027, 1, 31)),
            (date(2027, 2, 1), date(2027, 3, 2))
        );
        assert_eq!(
            renewal_window(t(2028, 1, 31)),
            (date(2028, 2, 1), date(2028, 3, 1)),
            "2028 is a leap year"
        );
        assert_eq!(
            renewal_window(t(2026, 12, 15)),
            (date(2026, 12, 16), date(2027, 1, 14))
        );
        assert_eq!(
            lapse_at(t(2027, 1, 31)),
            Utc.with_ymd_and_hms(2027, 3, 3, 0, 0, 0).unwrap()
        );
    }

    #[test]
    fn renew_is_refused_at_ad_allowed_at_ad_plus_1_and_ad_plus_30_refused_at_ad_plus_31() {
        let ad = t(2027, 11, 21);
        let at = |days: i64| ad + chrono::Duration::days(days);
        let s = SubscriptionStatus::InRenewalWindow;
        let r = renewal_blockers(s, Some(ad), at(0));
        assert_eq!(r[0].code, "RENEWAL_WINDOW_NOT_OPEN");
        assert_eq!(r[0].at.as_deref(), Some("2027-11-22"));
        assert!(renewal_blockers(s, Some(ad), at(1)).is_empty());
        // The last second of AD+30 is still inside; the first of AD+31 is not.
        let end = Utc.with_ymd_and_hms(2027, 12, 21, 23, 59, 59).unwrap();
        assert!(renewal_blockers(s, Some(ad), end).is_empty());
        assert!(renewal_blockers(s, Some(ad), at(30)).is_empty());
        assert_eq!(
            renewal_blockers(s, Some(ad), at(31))[0].code,
            "RENEWAL_WINDOW_CLOSED"
        );
        // Just after midnight of AD+1 it opens, even for an evening purchase.
        let late_ad = Utc.with_ymd_and_hms(2027, 11, 21, 23, 59, 0).unwrap();
        let just_after = Utc.with_ymd_and_hms(2027, 11, 22, 0, 0, 1).unwrap();
        assert!(renewal_blockers(s, Some(late_ad), just_after).is_empty());
        assert_eq!(
            renewal_blockers(SubscriptionStatus::Lapsed, Some(ad), at(5))[0].code,
            "NOT_RENEWABLE"
        );
    }

    #[test]
    fn lapse_comes_right_after_the_last_window_day() {
        let ad = t(2027, 11, 21);
        let (_, last) = renewal_window(ad);
        assert_eq!(lapse_at(ad).date_naive(), last + Days::new(1));
        assert!(
            renewal_blockers(SubscriptionStatus::InRenewalWindow, Some(ad), lapse_at(ad))[0].code
                == "RENEWAL_WINDOW_CLOSED"
        );
    }

    #[test]
    fn reminders_fall_around_the_anniversary() {
        let ad = t(2027, 3, 1);
        let due: Vec<_> = REMINDERS
            .iter()
            .map(|(_, d)| reminder_due(ad, *d).date_naive())
            .collect();
        assert_eq!(
            due,
            vec![
                date(2027, 1, 30),
                date(2027, 2, 14),
                date(2027, 2, 28),
                date(2027, 3, 2),
                date(2027, 3, 24)
            ]
        );
    }

    #[test]
    fn retries_stay_inside_the_window_and_stop() {
        let ad = t(2027, 11, 21);
        assert_eq!(charge_attempt_due(ad, 1), Some(ad));
        assert_eq!(
            charge_attempt_due(ad, 2),
            Some(ad + chrono::Duration::days(1))
        );
        assert_eq!(
            charge_attempt_due(ad, 7),
            Some(ad + chrono::Duration::days(28))
        );
        assert_eq!(charge_attempt_due(ad, 8), None);
        for n in 2..=7 {
            let due = charge_attempt_due(ad, n).unwrap().date_naive();
            let (opens, last) = renewal_window(ad);
            assert!(due >= opens && due <= last, "attempt {n} on {due}");
        }
    }

    fn facts(paid: DateTime<Utc>) -> RefundFacts {
        RefundFacts {
            status: SubscriptionStatus::Active,
            paid_at: Some(paid),
            amount_paid_minor: 47500,
            key_revealed_at: None,
            benefit_activated_at: None,
            benefit_use: None,
            upgrade_discount_used: false,
            upgraded_at: None,
        }
    }

    #[test]
    fn renewing_a_package_needs_each_bound_competency_at_its_level() {
        use CompetencyLevel::*;
        let bound = vec!["SECURITY".to_owned(), "DATA_ANALYTICS".to_owned()];
        let held = |v: &[(&str, CompetencyLevel)]| {
            v.iter()
                .map(|(c, l)| (c.to_string(), *l))
                .collect::<Vec<_>>()
        };
        let all = held(&[("SECURITY", Silver), ("DATA_ANALYTICS", Silver)]);
        assert!(renewal_qualification_blockers(Some(Silver), &bound, &all).is_empty());
        // Gold in one competency does not stand in for Silver in it.
        let r = renewal_qualification_blockers(
            Some(Silver),
            &bound,
            &held(&[("SECURITY", Silver), ("DATA_ANALYTICS", Gold)]),
        );
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].code, "QUALIFICATION_REQUIRED");
        assert!(r[0].message.contains("DATA_ANALYTICS"), "{r:?}");
        // The Action Pack has no level: nothing to check.
        assert!(renewal_qualification_blockers(None, &[], &[]).is_empty());
    }

    #[test]
    fn refund_within_30_days_only() {
        let paid = t(2026, 11, 21);
        let (r, deadline) = refund_blockers(&facts(paid), paid + chrono::Duration::days(30));
        assert!(r.is_empty(), "{r:?}");
        assert_eq!(deadline, Some(paid + chrono::Duration::days(30)));
        let (r, _) = refund_blockers(
            &facts(paid),
            paid + chrono::Duration::days(30) + chrono::Duration::seconds(1),
        );
        assert_eq!(r[0].code, "REFUND_PERIOD_ENDED");
    }

    #[test]
    fn every_blocker_is_reported() {
        let paid = t(2026, 11, 21);
        let mut f = facts(paid);
        f.key_revealed_at = Some(paid);
        f.benefit_activated_at = Some(paid);
        f.upgrade_discount_used = true;
        f.status = SubscriptionStatus::Lapsed;
        let (r, _) = refund_blockers(&f, paid + chrono::Duration::days(40));
        let codes: Vec<_> = r.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            [
                "NOT_ACTIVE",
                "REFUND_PERIOD_ENDED",
                "KEY_REVEALED",
                "BENEFIT_ACTIVATED",
                "UPGRADE_DISCOUNT_USED"
            ]
        );
    }
}
