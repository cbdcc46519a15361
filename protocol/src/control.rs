//! Control commands broadcast to every worker on the control exchange
//! ([`CONTROL_EXCHANGE`](crate::topology::CONTROL_EXCHANGE), fanout).
//!
//! Each worker binds its own exclusive, auto-delete, server-named queue to the exchange, so every worker
//! sees every command and acts on those that concern it: a revoked task or cancelled job is stopped
//! wherever it runs; `Shutdown` and `SetConcurrency` name one worker (or `"*"` for all of them).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Worker name that addresses every worker in [`Control::Shutdown`] and [`Control::SetConcurrency`].
pub const ALL_WORKERS: &str = "*";

/// A command to the workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// Do not run this task; with `terminate`, also stop it where it is running now.
    RevokeTask {
        /// The task.
        task_id: Uuid,
        /// Stop a running execution too (otherwise only later deliveries are skipped).
        #[serde(default)]
        terminate: bool,
    },
    /// Stop every task of this job: running ones now, later deliveries without running them.
    CancelJob {
        /// The job.
        job_id: Uuid,
    },
    /// Drain and exit gracefully (the worker's SIGTERM path).
    Shutdown {
        /// Worker name, or [`ALL_WORKERS`].
        worker: String,
    },
    /// Run this many tasks at once from now on.
    SetConcurrency {
        /// Worker name, or [`ALL_WORKERS`].
        worker: String,
        /// New number of task slots (at least 1).
        concurrency: u32,
    },
}

impl Control {
    /// Whether a command naming a worker addresses `name` (always false for task/job commands).
    pub fn addresses(&self, name: &str) -> bool {
        match self {
            Control::Shutdown { worker } | Control::SetConcurrency { worker, .. } => {
                worker == name || worker == ALL_WORKERS
            }
            Control::RevokeTask { .. } | Control::CancelJob { .. } => false,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_have_a_stable_tagged_shape_and_round_trip() {
        let c = Control::RevokeTask {
            task_id: Uuid::nil(),
            terminate: true,
        };
        let json = String::from_utf8(c.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"type":"revoke_task","task_id":"00000000-0000-0000-0000-000000000000","terminate":true}"#
        );
        assert_eq!(Control::decode(json.as_bytes()).unwrap(), c);
        let c = Control::SetConcurrency {
            worker: "w1".into(),
            concurrency: 3,
        };
        assert_eq!(
            String::from_utf8(c.encode()).unwrap(),
            r#"{"type":"set_concurrency","worker":"w1","concurrency":3}"#
        );
        let c = Control::CancelJob { job_id: Uuid::nil() };
        assert_eq!(Control::decode(&c.encode()).unwrap(), c);
        // `terminate` defaults to false.
        let parsed =
            Control::decode(br#"{"type":"revoke_task","task_id":"00000000-0000-0000-0000-000000000000"}"#)
                .unwrap();
        assert_eq!(
            parsed,
            Control::RevokeTask {
                task_id: Uuid::nil(),
                terminate: false
            }
        );
    }

    #[test]
    fn worker_commands_address_their_worker_or_all() {
        let c = Control::Shutdown { worker: "a".into() };
        assert!(c.addresses("a"));
        assert!(!c.addresses("b"));
        let all = Control::Shutdown {
            worker: ALL_WORKERS.into(),
        };
        assert!(all.addresses("b"));
        assert!(!Control::CancelJob { job_id: Uuid::nil() }.addresses("a"));
    }
}
