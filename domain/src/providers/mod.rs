//! The systems outside the gateway that the domain calls, each behind a trait with a local
//! implementation for development and tests: the payment gateway (`payments`: the trait and
//! the sandbox) and the provider of technical benefits' Access and Contract IDs
//! (`provisioning`: the trait, simulated). `crate::services` picks the implementations.

pub mod payments;
pub mod provisioning;
pub mod stripe;
