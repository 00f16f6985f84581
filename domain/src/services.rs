//! What domain operations that reach outside Postgres need: the configuration, the pool (for
//! work on connections of its own), the payment gateway and the provisioning provider. Built once per process.

use std::sync::Arc;

use crate::config::{Config, GatewayKind};
use crate::db::DbPool;
use crate::providers::payments::{PaymentGateway, SandboxGateway};
use crate::providers::provisioning::{Provisioner, SimulatedProvisioner};
use crate::providers::stripe::StripeGateway;

#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub gateway: Arc<dyn PaymentGateway>,
    pub provisioner: Arc<dyn Provisioner>,
}

impl Services {
    pub fn new(config: Arc<Config>, pool: DbPool) -> anyhow::Result<Self> {
        let gateway: Arc<dyn PaymentGateway> = match &config.billing.gateway {
            // The sandbox stands for a remote service: it gets connections of its own, so a
            // job holding a pool connection while it charges can never starve it.
            GatewayKind::Sandbox => Arc::new(SandboxGateway::stalling(
                crate::db::pool_for(&config.database, 4)?,
                config.billing.gateway_delay,
            )),
            GatewayKind::Stripe(s) => Arc::new(StripeGateway::new(&s.api_base, &s.secret_key)?),
        };
        let provisioner: Arc<dyn Provisioner> = Arc::new(SimulatedProvisioner {
            fail: config.benefits.provisioning_fails,
        });
        Ok(Self {
            config,
            pool,
            gateway,
            provisioner,
        })
    }
}
