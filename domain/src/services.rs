//! What domain operations that reach outside Postgres need: the configuration, the pool (for
//! work on connections of its own) and the payment gateway. Built once per process.

use std::sync::Arc;

use crate::billing::gateway::{PaymentGateway, SandboxGateway};
use crate::config::{Config, GatewayKind};
use crate::db::DbPool;

#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub pool: DbPool,
    pub gateway: Arc<dyn PaymentGateway>,
}

impl Services {
    pub fn new(config: Arc<Config>, pool: DbPool) -> Self {
        let gateway: Arc<dyn PaymentGateway> = match config.billing.gateway {
            GatewayKind::Sandbox => Arc::new(SandboxGateway::new(pool.clone())),
        };
        Self {
            config,
            pool,
            gateway,
        }
    }
}
