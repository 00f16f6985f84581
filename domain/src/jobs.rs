//! Job definitions: small serde structs that carry IDs only. Each names its queue; the worker
//! registers a handler per queue (worker/src/jobs/). Every payload carries a version so a
//! worker can refuse (dead-letter) payloads it does not understand.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use uuid::Uuid;

use crate::enums::ActionKind;

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

/// Do one row of `scheduled_actions` (a renewal charge, a reminder, a lapse, …), or a batch
/// of rows of one kind (`more`: renewal charges due together, see `RENEWAL_BATCH`). The same
/// payload travels on one queue per kind of work, so operators see each kind apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueAction {
    #[serde(default = "v1")]
    pub v: u32,
    pub action_id: Uuid,
    /// The rest of a batch, done in the same transaction as `action_id`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Uuid>,
}

impl DueAction {
    pub fn new(action_id: Uuid) -> Self {
        Self::batch(action_id, vec![])
    }

    pub fn batch(action_id: Uuid, more: Vec<Uuid>) -> Self {
        Self {
            v: PAYLOAD_VERSION,
            action_id,
            more,
        }
    }

    /// Every action of the job.
    pub fn ids(&self) -> Vec<Uuid> {
        std::iter::once(self.action_id)
            .chain(self.more.iter().copied())
            .collect()
    }
}

/// The queue of each kind of due work.
pub fn action_queue(kind: ActionKind) -> &'static str {
    match kind {
        ActionKind::RenewalCharge => "renewal",
        ActionKind::Reminder => "reminder",
        ActionKind::EnterRenewalWindow | ActionKind::Lapse => "lifecycle",
        ActionKind::OrderExpiry | ActionKind::SettleOrder => "order",
        ActionKind::Refund => "refund",
        ActionKind::CompleteActivation => "activation",
        ActionKind::GrantAzureCredit => "credit",
    }
}

/// Queues that carry [`DueAction`] payloads.
pub const ACTION_QUEUES: &[&str] = &[
    "renewal",
    "reminder",
    "lifecycle",
    "order",
    "refund",
    "activation",
    "credit",
];

/// Every queue the worker consumes, for operators' views and for tests that clean up.
pub const QUEUES: &[&str] = &[
    SendEmail::QUEUE,
    "renewal",
    "reminder",
    "lifecycle",
    "order",
    "refund",
    "activation",
    "credit",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_kind_has_a_listed_queue() {
        for kind in ActionKind::ALL {
            let q = action_queue(*kind);
            assert!(ACTION_QUEUES.contains(&q) && QUEUES.contains(&q), "{q}");
        }
    }
}
