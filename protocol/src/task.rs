//! Task and result messages exchanged between baas and the workers.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::problem_spec::{ProblemSpec, ReferenceInfo};

/// Version of the task/result/event schema; a consumer rejects messages of another version.
pub const SCHEMA_VERSION: u32 = 1;

/// Which problem a task prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemRef {
    /// A case of the BENCHOP catalogue, by id (`1aI`, `4a`, …).
    Catalogue(String),
    /// A job's own problem, with the reference baas computed for it once, at submission.
    Custom(Box<CustomProblem>),
}

/// A custom problem as a task carries it: the spec and its reference, so workers do not recompute it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomProblem {
    /// The problem as the job defined it.
    pub spec: ProblemSpec,
    /// Its reference values and the solver that produced them.
    pub reference: ReferenceInfo,
}

/// One unit of work: price a problem with one method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMessage {
    /// Must equal [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Unique id; results are deduplicated by it.
    pub task_id: Uuid,
    /// The job the task belongs to.
    pub job_id: Uuid,
    /// The problem.
    pub problem: ProblemRef,
    /// Public method id (`cos`, `fd`, …).
    pub method: String,
    /// Relative-error tolerance to tune the method to.
    pub tolerance: f64,
    /// Timed runs after the warm-up run.
    pub repeats: u32,
    /// Price at this ladder level instead of tuning (work-precision curves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// The worker stops the kernel after this long and reports a time-out.
    pub time_limit_ms: u64,
    /// Load-testing/diagnostic probe: run this instead of the pricing kernel. Absent: a normal task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
}

/// Longest busy-wait a [`Probe::Spin`] may ask for, in microseconds (one second).
pub const MAX_PROBE_MICROS: u64 = 1_000_000;

/// A trivial task for load tests and diagnostics: the worker runs it instead of a pricing kernel and
/// still publishes a normal result (with a confirm), acks late and emits the usual events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Probe {
    /// Do nothing: measures the system's own per-task overhead.
    Noop,
    /// Busy-wait this many microseconds (at most [`MAX_PROBE_MICROS`]): a stand-in for a short kernel.
    Spin {
        /// Microseconds to spin.
        micros: u64,
    },
}

impl Probe {
    /// Check the probe's parameters.
    pub fn check(&self) -> Result<(), String> {
        match *self {
            Probe::Noop => Ok(()),
            Probe::Spin { micros } if micros <= MAX_PROBE_MICROS => Ok(()),
            Probe::Spin { micros } => Err(format!(
                "spin micros must be at most {MAX_PROBE_MICROS}, got {micros}"
            )),
        }
    }
}

/// Why a task failed; says whether retrying could help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The task itself is invalid (unknown problem or method, wrong schema): never retried.
    Invalid,
    /// The method does not apply to the problem.
    NotApplicable,
    /// The kernel failed numerically.
    Numerical,
    /// Over the task's time limit.
    TimedOut,
    /// Revoked.
    Cancelled,
    /// The kernel panicked.
    Panicked,
    /// The broker dead-lettered the task (undecodable, or redelivered past the delivery limit).
    DeadLettered,
}

impl FailureKind {
    /// The wire name (`timed_out`, `dead_lettered`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Invalid => "invalid",
            FailureKind::NotApplicable => "not_applicable",
            FailureKind::Numerical => "numerical",
            FailureKind::TimedOut => "timed_out",
            FailureKind::Cancelled => "cancelled",
            FailureKind::Panicked => "panicked",
            FailureKind::DeadLettered => "dead_lettered",
        }
    }
}

/// Measured outcome of a successful task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    /// Value per evaluation point.
    pub values: Vec<f64>,
    /// Monte Carlo standard error per point, when the method is stochastic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_errors: Option<Vec<f64>>,
    /// Reference values the error is measured against.
    pub reference: Vec<f64>,
    /// `max_i |value_i − reference_i| / |reference_i|`.
    pub relerr: f64,
    /// Whether `relerr` met the task's tolerance (statistically, for Monte Carlo).
    pub reached: bool,
    /// Ladder level used.
    pub level: u32,
    /// Human-readable discretisation of that level.
    pub setting: String,
    /// Wall time of each timed run, in seconds.
    pub times_s: Vec<f64>,
    /// Threads the kernel could use.
    pub threads: u32,
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    /// Priced and timed.
    Succeeded(Measurement),
    /// Not priced.
    Failed {
        /// Classification.
        kind: FailureKind,
        /// Human-readable reason.
        reason: String,
    },
}

/// The result of one task, published by a worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// Must equal [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The task.
    pub task_id: Uuid,
    /// Its job.
    pub job_id: Uuid,
    /// Public method id.
    pub method: String,
    /// Worker that computed it.
    pub worker: String,
    /// When the worker started, Unix milliseconds.
    pub started_ms: u64,
    /// When it finished, Unix milliseconds.
    pub finished_ms: u64,
    /// What happened.
    pub outcome: Outcome,
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Decoding a message failed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not valid JSON for the type.
    #[error("undecodable message: {0}")]
    Json(#[from] serde_json::Error),
    /// Another schema version.
    #[error("schema version {found}, expected {expected}")]
    Version {
        /// The message's version.
        found: u32,
        /// Ours.
        expected: u32,
    },
}

impl TaskMessage {
    /// Decode and check the schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let t: Self = serde_json::from_slice(bytes)?;
        check_version(t.schema_version)?;
        Ok(t)
    }

    /// Encode as JSON.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

impl TaskResult {
    /// Decode and check the schema version.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let t: Self = serde_json::from_slice(bytes)?;
        check_version(t.schema_version)?;
        Ok(t)
    }

    /// Encode as JSON.
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }
}

fn check_version(found: u32) -> Result<(), DecodeError> {
    if found == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(DecodeError::Version {
            found,
            expected: SCHEMA_VERSION,
        })
    }
}

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serialising these plain structs cannot fail: no maps with non-string keys, no custom impls.
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example_task() -> TaskMessage {
        TaskMessage {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::nil(),
            job_id: Uuid::nil(),
            problem: ProblemRef::Catalogue("4a".into()),
            method: "cos".into(),
            tolerance: 1e-4,
            repeats: 3,
            level: None,
            time_limit_ms: 60_000,
            probe: None,
        }
    }

    #[test]
    fn probes_round_trip_and_are_validated() {
        let mut t = example_task();
        t.probe = Some(Probe::Spin { micros: 1000 });
        let json: serde_json::Value = serde_json::from_slice(&t.encode()).unwrap();
        assert_eq!(json["probe"], serde_json::json!({"kind": "spin", "micros": 1000}));
        assert_eq!(TaskMessage::decode(&t.encode()).unwrap(), t);
        let noop: Probe = serde_json::from_str(r#"{"kind":"noop"}"#).unwrap();
        assert_eq!(noop, Probe::Noop);
        assert!(noop.check().is_ok());
        assert!(
            Probe::Spin {
                micros: MAX_PROBE_MICROS
            }
            .check()
            .is_ok()
        );
        assert!(
            Probe::Spin {
                micros: MAX_PROBE_MICROS + 1
            }
            .check()
            .is_err()
        );
        assert!(serde_json::from_str::<Probe>(r#"{"kind":"sleep"}"#).is_err());
    }

    #[test]
    fn task_round_trips_and_has_a_stable_shape() {
        let t = example_task();
        let json = String::from_utf8(t.encode()).unwrap();
        assert_eq!(
            json,
            r#"{"schema_version":1,"task_id":"00000000-0000-0000-0000-000000000000","job_id":"00000000-0000-0000-0000-000000000000","problem":{"catalogue":"4a"},"method":"cos","tolerance":0.0001,"repeats":3,"time_limit_ms":60000}"#
        );
        assert_eq!(TaskMessage::decode(json.as_bytes()).unwrap(), t);
    }

    #[test]
    fn custom_tasks_round_trip() {
        let mut t = example_task();
        let (_, spec) = &ProblemSpec::examples()[0];
        t.problem = ProblemRef::Custom(Box::new(CustomProblem {
            spec: serde_json::from_value(spec.clone()).unwrap(),
            reference: ReferenceInfo {
                solver: "closed-form".into(),
                setting: "Black–Scholes–Merton formula".into(),
                error_estimate: Some(0.0),
                values: vec![1.0, 2.0, 3.0],
            },
        }));
        let json: serde_json::Value = serde_json::from_slice(&t.encode()).unwrap();
        assert_eq!(
            json["problem"]["custom"]["spec"]["model"]["type"],
            "black_scholes"
        );
        assert_eq!(json["problem"]["custom"]["reference"]["solver"], "closed-form");
        assert_eq!(TaskMessage::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn other_schema_versions_and_garbage_are_rejected() {
        let mut t = example_task();
        t.schema_version = 2;
        assert!(matches!(
            TaskMessage::decode(&t.encode()),
            Err(DecodeError::Version { found: 2, .. })
        ));
        assert!(matches!(
            TaskMessage::decode(b"\xff not json"),
            Err(DecodeError::Json(_))
        ));
    }

    #[test]
    fn result_round_trips() {
        let r = TaskResult {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::new_v4(),
            job_id: Uuid::new_v4(),
            method: "fd".into(),
            worker: "w1".into(),
            started_ms: 1,
            finished_ms: 2,
            outcome: Outcome::Failed {
                kind: FailureKind::TimedOut,
                reason: "time limit".into(),
            },
        };
        assert_eq!(TaskResult::decode(&r.encode()).unwrap(), r);
    }
}
