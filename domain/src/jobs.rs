//! Job definitions: small serde structs that carry IDs only. Each names its queue; the worker
//! registers a handler per queue (worker/src/jobs/). Every payload carries a version so a
//! worker can refuse (dead-letter) payloads it does not understand.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Queue name without the environment prefix.
    const QUEUE: &'static str;
}

/// Full Redis queue name: `{QUEUE_PREFIX}.{queue}`.
pub fn queue_name(prefix: &str, queue: &str) -> String {
    format!("{prefix}.{queue}")
}

pub const PAYLOAD_VERSION: u32 = 1;

fn v1() -> u32 {
    PAYLOAD_VERSION
}

/// Deliver one row of the `emails` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    #[serde(default = "v1")]
    pub v: u32,
    pub email_id: Uuid,
}

impl SendEmail {
    pub fn new(email_id: Uuid) -> Self {
        Self {
            v: PAYLOAD_VERSION,
            email_id,
        }
    }
}

impl Job for SendEmail {
    const QUEUE: &'static str = "email";
}

/// Every queue the worker consumes, for operators' views and for tests that clean up.
pub const QUEUES: &[&str] = &[SendEmail::QUEUE];
