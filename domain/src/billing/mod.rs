//! Purchase, payment and invoices (PRODUCT.md 2.4).

pub mod gateway;
pub mod invoices;
pub mod orders;
pub mod payment_methods;
pub mod pdf;
pub mod quote;

pub use quote::{format_money, quote, Quote};
