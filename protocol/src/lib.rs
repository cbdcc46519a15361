//! # protocol: benchop's wire format
//!
//! The only crate with serde types that cross a process boundary: HTTP bodies ([`api`]), task and result
//! messages ([`task`]), lifecycle events ([`event`]), the broker [`topology`], and (feature `amqp`) the
//! lapin glue the services share. Validation of a request into benchop types happens here, at the edge.
//!
//! ## Layout
//! - [`api`]: `JobRequest` → `ValidJob`, job/ranking/problem/method views, the `{code, message, details}` error.
//! - [`problem_spec`]: custom problems (`ProblemSpec` → `benchop::Problem` with field-level errors).
//! - [`task`]: `TaskMessage`, `TaskResult`, `Outcome`, schema version.
//! - [`event`]: `Event` and its routing keys.
//! - [`control`]: `Control` commands to the workers (revoke, cancel, shutdown, concurrency).
//! - [`topology`]: exchange, queue and routing-key names and queue arguments.
//! - `amqp` (feature): connect with backoff, declare the topology, publish with confirms.

#![warn(missing_docs)]

pub mod accounts;
#[cfg(feature = "amqp")]
pub mod amqp;
pub mod api;
pub mod control;
mod describe;
pub mod event;
pub mod problem_spec;
pub mod task;
pub mod topology;

pub use control::Control;
pub use event::{Event, EventKind, EventSink, NoEvents};
pub use task::{
    CustomProblem, FailureKind, Measurement, Outcome, ProblemRef, SCHEMA_VERSION, TaskMessage, TaskResult,
};
