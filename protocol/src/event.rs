//! Lifecycle events published to the events exchange and consumed by the monitor.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A lifecycle event. Compact: ids and numbers, no payloads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, Unix milliseconds.
    pub ts_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// baas accepted a job and published its tasks.
    JobCreated {
        /// Job id.
        job_id: Uuid,
        /// Problem id.
        problem: String,
        /// Number of tasks.
        tasks: u32,
    },
    /// The last result of a job arrived.
    JobFinished {
        /// Job id.
        job_id: Uuid,
    },
    /// A worker took a task off the queue.
    TaskReceived {
        /// Task id.
        task_id: Uuid,
        /// Job id.
        job_id: Uuid,
        /// Method id.
        method: String,
        /// Worker name.
        worker: String,
    },
    /// The kernel started.
    TaskStarted {
        /// Task id.
        task_id: Uuid,
        /// Worker name.
        worker: String,
    },
    /// The task's result was published.
    TaskSucceeded {
        /// Task id.
        task_id: Uuid,
        /// Worker name.
        worker: String,
        /// Wall time of the whole task (tuning and timing), milliseconds.
        runtime_ms: u64,
    },
    /// The task failed; its failure was published as its result.
    TaskFailed {
        /// Task id.
        task_id: Uuid,
        /// Worker name.
        worker: String,
        /// Why.
        reason: String,
    },
    /// A task was published again (retry of a failed or dead-lettered task).
    TaskRetried {
        /// Task id.
        task_id: Uuid,
        /// Job id.
        job_id: Uuid,
        /// Attempt number of the new run (2 for the first retry).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
    },
    /// A task was revoked (or its job cancelled) and will not run, or was stopped.
    TaskRevoked {
        /// Task id.
        task_id: Uuid,
        /// Worker that dropped or stopped it (absent when revoked before any worker saw it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worker: Option<String>,
        /// Whether a running execution was stopped.
        #[serde(default)]
        terminated: bool,
    },
    /// The broker dead-lettered a task (rejected, or over the delivery limit).
    TaskDeadLettered {
        /// Task id.
        task_id: Uuid,
        /// Job id.
        job_id: Uuid,
        /// Why (`x-death` reason, e.g. `delivery_limit`, `rejected`).
        reason: String,
    },
    /// A worker connected and is consuming.
    WorkerOnline {
        /// Worker name.
        worker: String,
        /// Tasks it runs at once.
        concurrency: u32,
    },
    /// Periodic liveness and load.
    WorkerHeartbeat {
        /// Worker name.
        worker: String,
        /// Tasks running now.
        active: u32,
        /// Tasks finished since start.
        processed: u64,
        /// One-minute load average of the worker's host (absent from older workers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        load: Option<f64>,
        /// Task slots it runs at once now (absent from older workers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        concurrency: Option<u32>,
    },
    /// A worker is shutting down.
    WorkerOffline {
        /// Worker name.
        worker: String,
    },
}

/// Every routing key [`EventKind::routing_key`] can return, for metrics and filters.
pub const ROUTING_KEYS: [&str; 12] = [
    "job.created",
    "job.finished",
    "task.received",
    "task.started",
    "task.succeeded",
    "task.failed",
    "task.retried",
    "task.revoked",
    "task.dead_lettered",
    "worker.online",
    "worker.heartbeat",
    "worker.offline",
];

impl EventKind {
    /// The routing key's first part: `job`, `task` or `worker`. Batches group events by family.
    pub fn family(&self) -> &'static str {
        let key = self.routing_key();
        key.split_once('.').map_or(key, |(family, _)| family)
    }

    /// Routing key on the events exchange, e.g. `task.succeeded`.
    pub fn routing_key(&self) -> &'static str {
        match self {
            EventKind::JobCreated { .. } => "job.created",
            EventKind::JobFinished { .. } => "job.finished",
            EventKind::TaskReceived { .. } => "task.received",
            EventKind::TaskStarted { .. } => "task.started",
            EventKind::TaskSucceeded { .. } => "task.succeeded",
            EventKind::TaskFailed { .. } => "task.failed",
            EventKind::TaskRetried { .. } => "task.retried",
            EventKind::TaskRevoked { .. } => "task.revoked",
            EventKind::TaskDeadLettered { .. } => "task.dead_lettered",
            EventKind::WorkerOnline { .. } => "worker.online",
            EventKind::WorkerHeartbeat { .. } => "worker.heartbeat",
            EventKind::WorkerOffline { .. } => "worker.offline",
        }
    }
}

impl Event {
    /// An event stamped now.
    pub fn now(kind: EventKind) -> Self {
        Self {
            ts_ms: crate::task::now_ms(),
            kind,
        }
    }

    /// Encode as JSON.
    pub fn encode(&self) -> Vec<u8> {
        crate::task::encode(self)
    }

    /// Decode from JSON.
    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// Encode several events as one JSON array (a batched message).
    pub fn encode_batch(events: &[Event]) -> Vec<u8> {
        crate::task::encode(&events)
    }

    /// Decode a message holding one event (a JSON object) or a batch (a JSON array of events).
    pub fn decode_batch(bytes: &[u8]) -> Result<Vec<Self>, serde_json::Error> {
        let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            serde_json::from_slice(bytes)
        } else {
            serde_json::from_slice(bytes).map(|e| vec![e])
        }
    }
}

/// Where a service sends its lifecycle events. Emitting never blocks and never fails: events are
/// telemetry, and a sink drops them rather than slow the work down.
pub trait EventSink: Send + Sync + 'static {
    /// Send one event.
    fn emit(&self, kind: EventKind);
}

/// A sink that discards every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _kind: EventKind) {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn batches_round_trip_and_single_events_still_decode() {
        let events = vec![
            Event::now(EventKind::TaskStarted {
                task_id: Uuid::nil(),
                worker: "w".into(),
            }),
            Event::now(EventKind::WorkerOffline { worker: "w".into() }),
        ];
        assert_eq!(
            Event::decode_batch(&Event::encode_batch(&events)).unwrap(),
            events
        );
        assert_eq!(
            Event::decode_batch(&events[0].encode()).unwrap(),
            vec![events[0].clone()]
        );
        assert!(Event::decode_batch(b"[1, 2]").is_err());
        assert_eq!(events[0].kind.family(), "task");
        assert_eq!(events[1].kind.family(), "worker");
    }

    use super::*;

    #[test]
    fn old_heartbeats_still_decode_and_new_fields_are_optional() {
        let old = br#"{"ts_ms":5,"type":"worker_heartbeat","worker":"w","active":1,"processed":7}"#;
        let e = Event::decode(old).unwrap();
        assert_eq!(
            e.kind,
            EventKind::WorkerHeartbeat {
                worker: "w".into(),
                active: 1,
                processed: 7,
                load: None,
                concurrency: None
            }
        );
        assert_eq!(e.encode(), old.to_vec());
    }

    #[test]
    fn new_task_events_round_trip_with_their_routing_keys() {
        let kinds = [
            EventKind::TaskRetried {
                task_id: Uuid::nil(),
                job_id: Uuid::nil(),
                attempt: Some(2),
            },
            EventKind::TaskRevoked {
                task_id: Uuid::nil(),
                worker: Some("w".into()),
                terminated: true,
            },
            EventKind::TaskDeadLettered {
                task_id: Uuid::nil(),
                job_id: Uuid::nil(),
                reason: "delivery_limit".into(),
            },
        ];
        for (kind, key) in kinds
            .into_iter()
            .zip(["task.retried", "task.revoked", "task.dead_lettered"])
        {
            assert_eq!(kind.routing_key(), key);
            assert!(ROUTING_KEYS.contains(&key));
            let e = Event { ts_ms: 1, kind };
            assert_eq!(Event::decode(&e.encode()).unwrap(), e);
        }
    }
}
