//! The subscription lifecycle (PRODUCT.md 2.5): rules (pure), due work (scheduled actions and
//! their sweep), and the operations that move subscriptions between states.

pub mod actions;
pub(crate) mod notify;
pub mod rules;
pub mod subscriptions;
