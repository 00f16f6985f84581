//! Buying an offer and what follows (PRODUCT.md 2.4, 2.5): the `purchase` itself, `booking`
//! a payment (the first term, the invoice, the receipt), `bank_transfer` orders (confirmed,
//! cancelled, expired) and the `settlement` of a card order whose request died. Refunds are
//! the lifecycle's (`crate::lifecycle::refunds`).
//! The order, invoice and gateway records they write are in `crate::billing`.

pub mod bank_transfer;
pub mod booking;
pub mod purchase;
pub mod settlement;
pub mod webhooks;
