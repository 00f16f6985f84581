//! The provisioning provider that issues a technical benefit's Access ID and Contract ID.
//! The default is simulated; `PROVISIONING=simulated-failing` makes it refuse, for tests.

use async_trait::async_trait;
use rand::Rng;

use crate::db::models::Entitlement;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupportContract {
    pub access_id: String,
    pub contract_id: String,
}

#[async_trait]
pub trait Provisioner: Send + Sync {
    /// Issues the support contract of an activated technical benefit, or says why not.
    async fn provision(&self, entitlement: &Entitlement) -> Result<SupportContract, String>;
}

pub struct SimulatedProvisioner {
    pub fail: bool,
}

fn digits(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect()
}

#[async_trait]
impl Provisioner for SimulatedProvisioner {
    async fn provision(&self, e: &Entitlement) -> Result<SupportContract, String> {
        if self.fail {
            return Err(format!(
                "the support provider could not create a contract for {} (simulated failure)",
                e.product
            ));
        }
        Ok(SupportContract {
            access_id: format!("AID{}", digits(10)),
            contract_id: format!("CT{}", digits(8)),
        })
    }
}
