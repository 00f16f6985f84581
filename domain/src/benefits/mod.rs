//! Benefits (PRODUCT.md 2.6). Rules: `keys` (AES-256-GCM at rest). Records: `entitlements`
//! (grant, renew, revoke, look up), `assignments` (who holds a seat or an Azure user).
//! Features: `reveal` (keys, downloads), `activation` (technical and Go-To-Market), `support`
//! (balances), `seats` (Visual Studio), `azure` (users and monthly credit), `marketing` (the
//! marketing contact).

pub mod activation;
pub mod assignments;
pub mod azure;
pub mod entitlements;
pub mod keys;
pub mod marketing;
pub mod reveal;
pub mod seats;
pub mod support;
