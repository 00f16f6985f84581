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

/// Full Redis queue name, `{QUEUE_PREFIX.queue}` braces included: a Redis Cluster hash tag,
/// so every key of one queue (`{pbg.email}:active`, `{pbg.email}:data`, …) falls in one slot,
/// which apalis-redis' multi-key scripts need.
pub fn queue_name(prefix: &str, queue: &str) -> String {
    format!("{{{prefix}.{queue}}}")
}

pub const PAYLOAD_VERSION: u32 = 1;

fn v1() -> u32 {
    PAYLOAD_VERSION
}

/// Deliver one row of the `emails` table, or several (`more`: emails the relay found due
/// together, see `EMAIL_BATCH`), claimed and marked in one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendEmail {
    #[serde(default = "v1")]
    pub v: u32,
    pub email_id: Uuid,
    /// The rest of a batch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Uuid>,
    /// The W3C trace context of the request that enqueued it, when traces are exported
    /// (`crate::telemetry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl SendEmail {
    pub fn new(email_id: Uuid) -> Self {
        Self::batch(email_id, vec![])
    }

    pub fn batch(email_id: Uuid, more: Vec<Uuid>) -> Self {
        Self {
            v: PAYLOAD_VERSION,
            email_id,
            more,
            traceparent: None,
        }
    }

    /// Every email of the job.
    pub fn ids(&self) -> Vec<Uuid> {
        std::iter::once(self.email_id)
            .chain(self.more.iter().copied())
            .collect()
    }

    /// Groups single-email payloads (as the outbox holds them) into batches of up to `size`,
    /// in the given order. A payload this version cannot read travels alone, unchanged, so the
    /// worker dead-letters it as before.
    /// A batch keeps the trace context of its first email.
    pub fn merge(payloads: Vec<serde_json::Value>, size: usize) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut batch: Vec<Uuid> = Vec::new();
        let mut trace: Option<String> = None;
        let flush = |batch: &mut Vec<Uuid>,
                     trace: &mut Option<String>,
                     out: &mut Vec<serde_json::Value>| {
            if let Some((first, rest)) = batch.split_first() {
                let mut job = SendEmail::batch(*first, rest.to_vec());
                job.traceparent = trace.take();
                out.push(serde_json::to_value(job).expect("a SendEmail serializes"));
            }
            batch.clear();
            *trace = None;
        };
        for p in payloads {
            match serde_json::from_value::<SendEmail>(p.clone()) {
                Ok(job) if job.v == PAYLOAD_VERSION => {
                    for id in job.ids() {
                        if batch.is_empty() {
                            trace = job.traceparent.clone();
                        }
                        batch.push(id);
                        if batch.len() >= size.max(1) {
                            flush(&mut batch, &mut trace, &mut out);
                        }
                    }
                }
                _ => out.push(p),
            }
        }
        flush(&mut batch, &mut trace, &mut out);
        out
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
    /// The W3C trace context of the request that enqueued it, when traces are exported
    /// (`crate::telemetry`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
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
            traceparent: None,
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
        ActionKind::EnterRenewalWindow | ActionKind::Lapse | ActionKind::EndAtAnniversary => {
            "lifecycle"
        }
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
    fn relayed_emails_merge_into_batches_and_unreadable_payloads_travel_alone() {
        let ids: Vec<Uuid> = (0..7).map(|_| Uuid::now_v7()).collect();
        let mut payloads: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| serde_json::to_value(SendEmail::new(*id)).unwrap())
            .collect();
        let odd = serde_json::json!({"v": 7, "email_id": Uuid::now_v7()});
        payloads.insert(3, odd.clone());
        let merged = SendEmail::merge(payloads, 3);
        assert_eq!(merged.len(), 4, "{merged:?}");
        assert!(merged.contains(&odd));
        let jobs: Vec<SendEmail> = merged
            .iter()
            .filter(|p| **p != odd)
            .map(|p| serde_json::from_value(p.clone()).unwrap())
            .collect();
        assert_eq!(
            jobs.iter().map(|j| j.ids().len()).collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
        assert_eq!(
            jobs.iter().flat_map(SendEmail::ids).collect::<Vec<_>>(),
            ids
        );
        // A single email still travels in the old shape.
        let one = serde_json::to_value(SendEmail::new(ids[0])).unwrap();
        assert!(one.get("more").is_none());
    }

    #[test]
    fn every_action_kind_has_a_listed_queue() {
        for kind in ActionKind::ALL {
            let q = action_queue(*kind);
            assert!(ACTION_QUEUES.contains(&q) && QUEUES.contains(&q), "{q}");
        }
    }
}
