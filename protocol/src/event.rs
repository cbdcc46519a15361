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
    },
    /// A worker is shutting down.
    WorkerOffline {
        /// Worker name.
        worker: String,
    },
}

impl EventKind {
    /// Routing key on the events exchange, e.g. `task.succeeded`.
    pub fn routing_key(&self) -> &'static str {
        match self {
            EventKind::JobCreated { .. } => "job.created",
            EventKind::JobFinished { .. } => "job.finished",
            EventKind::TaskReceived { .. } => "task.received",
            EventKind::TaskStarted { .. } => "task.started",
            EventKind::TaskSucceeded { .. } => "task.succeeded",
            EventKind::TaskFailed { .. } => "task.failed",
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
