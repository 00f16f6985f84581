//! What happens to a subscription over time (PRODUCT.md 2.5), split along its own seams:
//! `start` (the first term), `plan` (the due work of a term), `renewal` (booking paid
//! renewals), `auto_renewal` (the charge on the anniversary date), `manual_renewal`,
//! `auto_renew` (the partner's settings), `reminders`, `window` (entering the renewal window,
//! lapse, the end of a subscription), `cancellation` and `refunds` (a cancelled order paid
//! back, with its own state). What a subscription is (rules, rows,
//! refund eligibility) is in `crate::subscriptions`.
//!
//! Every job handler here re-reads and locks the subscription and does nothing when the
//! state moved on (another term, already lapsed): running one twice is harmless.

pub mod auto_renew;
pub mod auto_renewal;
pub mod cancellation;
pub mod manual_renewal;
pub mod plan;
pub mod refunds;
pub mod reminders;
pub mod renewal;
pub mod start;
pub mod window;
