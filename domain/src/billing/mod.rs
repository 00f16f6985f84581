//! Money records (PRODUCT.md 2.4). Rules: `quote` (tax, upgrade discount, money). Records:
//! `orders`, `payment_methods`, `invoices` (gapless numbers), `receipts`, `pdf`. The flows
//! that write them are in `crate::purchases` and `crate::lifecycle`; the payment gateway is
//! in `crate::providers`.

pub mod invoices;
pub mod orders;
pub mod payment_methods;
pub mod pdf;
pub mod quote;
pub mod receipts;
