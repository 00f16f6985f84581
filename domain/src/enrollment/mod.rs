//! Partner enrollment and vetting (PRODUCT.md 2.1): `enroll`, `verification` of the primary
//! contact's email, operators' `vetting` decisions, and legal `profile` edits that re-open
//! verification.

pub mod enroll;
pub mod profile;
pub mod verification;
pub mod vetting;
