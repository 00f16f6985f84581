//! What a subscription is (PRODUCT.md 2.5): its pure `rules` (anniversary, renewal window,
//! reminders, retries, refund rules), its rows (`store`: locking, what a caller may see,
//! listing, announcing changes) and its refund `eligibility` on the partner's clock. What
//! happens to subscriptions over time is in `crate::lifecycle`.

pub mod eligibility;
pub mod rules;
pub mod store;
