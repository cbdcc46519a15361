//! HTTP request and response bodies of the baas API, and validation of a job request into benchop types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use benchop::{MethodId, Problem, catalogue};

use crate::problem_spec::{FieldError, ProblemSpec, ReferenceInfo};

/// Default relative-error tolerance (the benchmark's).
pub const DEFAULT_TOLERANCE: f64 = 1e-4;
/// Default number of timed runs (the benchmark's M = 3).
pub const DEFAULT_REPEATS: u32 = 3;
/// Most timed runs a job may ask for.
pub const MAX_REPEATS: u32 = 20;
/// Most tasks per method of one job (`replicas`).
pub const MAX_REPLICAS: u32 = 100_000;
/// Most ladder levels per method a work-precision (`ladder`) job prices, from the cheapest up.
pub const MAX_LADDER_LEVELS: u32 = 12;
/// Default per-task time limit.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 120_000;

/// `POST /v1/jobs` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"problem": "4a", "methods": ["cos", "fft", "closed-form"], "tolerance": 1e-4, "repeats": 3}))]
pub struct JobRequest {
    /// A catalogue problem id, e.g. `1aI`, or a custom problem `{model, instrument}`.
    pub problem: ProblemInput,
    /// Methods to compare; default: every method that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Relative-error tolerance, in [1e-8, 1e-2]; default 1e-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Timed runs per method, 1..=20; default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
    /// Independent tasks per method, 1..=100000; default 1. Replicas give run-to-run timing statistics
    /// (and are how parameter sweeps and load tests make large jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Work-precision sweep: one task per method and ladder level (the first 12 levels at most) instead
    /// of one tuned task per method; the job's `work_precision` then holds relerr against time for every
    /// level. Default false; cannot be combined with `replicas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ladder: Option<bool>,
    /// Load-testing/diagnostic option: workers run this trivial probe (`{"kind": "noop"}`, or
    /// `{"kind": "spin", "micros": 1000}` to busy-wait up to 1e6 µs) instead of pricing, and still publish a
    /// normal result with confirms, ack late and emit the usual events. `benchop loadtest` uses it with
    /// `replicas` to measure the system's own per-task overhead. Default: absent (real pricing tasks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<crate::task::Probe>,
}

impl JobRequest {
    /// A request for a catalogue problem with every default.
    pub fn for_problem(problem: &str) -> Self {
        Self {
            problem: ProblemInput::Catalogue(problem.to_owned()),
            methods: None,
            tolerance: None,
            repeats: None,
            replicas: None,
            ladder: None,
            probe: None,
        }
    }
}

/// The problem of a job: a catalogue id or the job's own definition.
///
/// A custom problem is an object; a shape error in it is reported with its path
/// (`problem.model: unknown field `sigmaa``).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProblemInput {
    /// A catalogue problem id, e.g. `1aI`.
    #[schema(example = "1bI")]
    Catalogue(String),
    /// A custom problem.
    Custom(Box<ProblemSpec>),
}

impl<'de> Deserialize<'de> for ProblemInput {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        // Untagged enums hide the inner error ("did not match any variant"): decide by the JSON type, then
        // deserialize the spec keeping the path of the offending field.
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(id) => Ok(ProblemInput::Catalogue(id)),
            v @ serde_json::Value::Object(_) => serde_path_to_error::deserialize(v)
                .map(|spec| ProblemInput::Custom(Box::new(spec)))
                .map_err(|e| {
                    let path = e.path().to_string();
                    let at = if path == "." {
                        "problem".to_owned()
                    } else {
                        format!("problem.{path}")
                    };
                    D::Error::custom(format!("{at}: {}", e.into_inner()))
                }),
            _ => Err(D::Error::custom(
                "problem: expected a catalogue id (string) or a custom problem (object)",
            )),
        }
    }
}

impl From<String> for ProblemInput {
    fn from(id: String) -> Self {
        ProblemInput::Catalogue(id)
    }
}

/// The problem id jobs on a custom problem are listed under.
pub const CUSTOM_PROBLEM_ID: &str = "custom";

/// A validated job problem.
#[derive(Debug, Clone)]
pub enum JobProblem {
    /// A catalogue case, with its published reference.
    Catalogue(&'static catalogue::Case),
    /// A custom problem; its reference is computed by baas at submission.
    Custom {
        /// The definition as submitted.
        spec: Box<ProblemSpec>,
        /// The validated problem.
        problem: Box<Problem>,
        /// Its reference, once [`ValidJob::compute_reference`] has run.
        reference: Option<ReferenceInfo>,
    },
}

impl JobProblem {
    /// The problem id: the catalogue id, or [`CUSTOM_PROBLEM_ID`].
    pub fn id(&self) -> &str {
        match self {
            JobProblem::Catalogue(c) => c.id,
            JobProblem::Custom { .. } => CUSTOM_PROBLEM_ID,
        }
    }

    /// A one-line description.
    pub fn title(&self) -> String {
        match self {
            JobProblem::Catalogue(c) => c.title.to_owned(),
            JobProblem::Custom { spec, .. } => spec.title(),
        }
    }

    /// The benchop problem.
    pub fn problem(&self) -> &Problem {
        match self {
            JobProblem::Catalogue(c) => &c.problem,
            JobProblem::Custom { problem, .. } => problem,
        }
    }

    /// The number of evaluation points.
    pub fn points(&self) -> usize {
        self.problem().points().len()
    }

    /// The reference errors are measured against: published, or computed (custom problems, once
    /// [`ValidJob::compute_reference`] has run).
    pub fn reference(&self) -> Option<ReferenceInfo> {
        match self {
            JobProblem::Catalogue(c) => Some(ReferenceInfo::published(c)),
            JobProblem::Custom { reference, .. } => reference.clone(),
        }
    }

    /// The problem as a task carries it. A custom problem carries its reference; without one (before
    /// [`ValidJob::compute_reference`]) its reference is empty and workers refuse the task as invalid.
    pub fn task_ref(&self) -> crate::ProblemRef {
        match self {
            JobProblem::Catalogue(c) => crate::ProblemRef::Catalogue(c.id.to_owned()),
            JobProblem::Custom { spec, reference, .. } => {
                crate::ProblemRef::Custom(Box::new(crate::CustomProblem {
                    spec: (**spec).clone(),
                    reference: reference.clone().unwrap_or(ReferenceInfo {
                        solver: "none".to_owned(),
                        setting: String::new(),
                        error_estimate: None,
                        values: Vec::new(),
                    }),
                }))
            }
        }
    }
}

/// How much more accurate than the job's tolerance a computed reference must be (estimated).
pub const REFERENCE_ACCURACY_FACTOR: f64 = 10.0;

impl ValidJob {
    /// Compute the reference of a custom problem with the best available solver ([`benchop::reference`]);
    /// nothing to do for a catalogue problem. CPU-bound: call it from a blocking thread, with a deadline in
    /// `cancel`. Refused when no solver answers in time, when the best answer's estimated error is not
    /// [`REFERENCE_ACCURACY_FACTOR`] times below the tolerance, or when a reference value is too close to
    /// zero for a relative error (`invalid_problem`, naming the point).
    pub fn compute_reference(&mut self, cancel: &benchop::Cancel) -> Result<(), ValidationError> {
        let tolerance = self.tolerance;
        let JobProblem::Custom {
            spec,
            problem,
            reference,
        } = &mut self.problem
        else {
            return Ok(());
        };
        let r = benchop::reference::compute(problem, cancel).map_err(|e| match e {
            benchop::Error::Cancelled(_) => ValidationError::ReferenceUnavailable(
                "no reference solver answered within the time allowed; try fewer evaluation points or a \
                 shorter maturity"
                    .to_owned(),
            ),
            e => ValidationError::ReferenceUnavailable(e.to_string()),
        })?;
        let needed = tolerance / REFERENCE_ACCURACY_FACTOR;
        // A NaN estimate is refused too.
        if r.error_estimate.is_nan() || r.error_estimate > needed {
            return Err(ValidationError::ReferenceUnavailable(format!(
                "the best reference found ({}) has an estimated relative error of {:.1e}, above {needed:.0e} \
                 (the tolerance / {REFERENCE_ACCURACY_FACTOR}); loosen the tolerance or simplify the problem",
                r.source(),
                r.error_estimate
            )));
        }
        spec.check_reference(&r.values)
            .map_err(ValidationError::InvalidProblem)?;
        *reference = Some(ReferenceInfo::computed(&r));
        Ok(())
    }
}

/// A job request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidJob {
    /// The problem.
    pub problem: JobProblem,
    /// The methods, deduplicated, in the catalogue order.
    pub methods: Vec<MethodId>,
    /// Tolerance.
    pub tolerance: f64,
    /// Timed runs.
    pub repeats: u32,
    /// Tasks per method.
    pub replicas: u32,
    /// One task per ladder level instead of one tuned task per method.
    pub ladder: bool,
    /// Run this load-testing probe instead of pricing.
    pub probe: Option<crate::task::Probe>,
}

/// Why a job request was refused; each maps to a stable API error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The problem id is not in the catalogue.
    #[error("unknown problem `{0}`")]
    UnknownProblem(String),
    /// A method id is unknown.
    #[error("unknown method `{0}`")]
    UnknownMethod(String),
    /// A method does not apply to the problem.
    #[error("method `{method}` does not apply to problem `{problem}`")]
    MethodNotApplicable {
        /// Method id.
        method: String,
        /// Problem id.
        problem: String,
    },
    /// No method applies to the problem (yet).
    #[error("no method applies to problem `{0}` yet")]
    NoMethod(String),
    /// A custom problem has wrong fields.
    #[error("invalid problem: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidProblem(Vec<FieldError>),
    /// No reference could be computed for a custom problem in the time allowed, or not accurately enough.
    #[error("no reference for this problem: {0}")]
    ReferenceUnavailable(String),
    /// A field is out of range.
    #[error("invalid `{field}`: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

impl ValidationError {
    /// The stable API error code.
    pub fn code(&self) -> &'static str {
        match self {
            ValidationError::UnknownProblem(_) => "unknown_problem",
            ValidationError::UnknownMethod(_) => "unknown_method",
            ValidationError::MethodNotApplicable { .. } => "method_not_applicable",
            ValidationError::NoMethod(_) => "no_applicable_method",
            ValidationError::InvalidField { .. } => "invalid_field",
            ValidationError::InvalidProblem(_) => "invalid_problem",
            ValidationError::ReferenceUnavailable(_) => "reference_unavailable",
        }
    }
}

impl JobRequest {
    /// Validate against the catalogue and the limits.
    ///
    /// ```
    /// use protocol::api::JobRequest;
    /// let job = JobRequest::for_problem("1aI").validate().unwrap();
    /// assert!(job.methods.len() >= 3);
    /// assert_eq!(JobRequest::for_problem("nope").validate().unwrap_err().code(), "unknown_problem");
    /// ```
    pub fn validate(&self) -> Result<ValidJob, ValidationError> {
        let job_problem = match &self.problem {
            ProblemInput::Catalogue(id) => JobProblem::Catalogue(
                catalogue::case(id).ok_or_else(|| ValidationError::UnknownProblem(id.clone()))?,
            ),
            ProblemInput::Custom(spec) => JobProblem::Custom {
                problem: Box::new(spec.to_problem().map_err(ValidationError::InvalidProblem)?),
                spec: spec.clone(),
                reference: None,
            },
        };
        let problem = job_problem.problem();
        let tolerance = self.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        benchop::tune::check_tolerance(tolerance).map_err(|e| ValidationError::InvalidField {
            field: "tolerance",
            // The field is named once, here: the reason alone.
            reason: match e {
                benchop::Error::InvalidParameter { reason, .. } => reason,
                other => other.to_string(),
            },
        })?;
        let repeats = self.repeats.unwrap_or(DEFAULT_REPEATS);
        if !(1..=MAX_REPEATS).contains(&repeats) {
            return Err(ValidationError::InvalidField {
                field: "repeats",
                reason: format!("must lie in 1..={MAX_REPEATS}, got {repeats}"),
            });
        }
        let replicas = self.replicas.unwrap_or(1);
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(ValidationError::InvalidField {
                field: "replicas",
                reason: format!("must lie in 1..={MAX_REPLICAS}, got {replicas}"),
            });
        }
        let ladder = self.ladder.unwrap_or(false);
        if ladder && replicas > 1 {
            return Err(ValidationError::InvalidField {
                field: "ladder",
                reason: "a ladder job prices each level once; leave `replicas` out".into(),
            });
        }
        if let Some(probe) = &self.probe {
            probe.check().map_err(|reason| ValidationError::InvalidField {
                field: "probe",
                reason,
            })?;
            if ladder {
                return Err(ValidationError::InvalidField {
                    field: "probe",
                    reason: "a probe job does not price, so it has no ladder; leave `ladder` out".into(),
                });
            }
        }
        let methods = match &self.methods {
            None => {
                let all: Vec<_> = MethodId::ALL
                    .into_iter()
                    .filter(|m| m.applies_to(problem))
                    .collect();
                if all.is_empty() {
                    let what = match &job_problem {
                        JobProblem::Catalogue(c) => c.id.to_owned(),
                        JobProblem::Custom { spec, .. } => spec.title(),
                    };
                    return Err(ValidationError::NoMethod(what));
                }
                all
            }
            Some(names) => {
                if names.is_empty() {
                    return Err(ValidationError::InvalidField {
                        field: "methods",
                        reason: "give at least one method or leave the field out".into(),
                    });
                }
                let mut chosen = Vec::new();
                for name in names {
                    let m = MethodId::from_name(name)
                        .ok_or_else(|| ValidationError::UnknownMethod(name.clone()))?;
                    if !m.applies_to(problem) {
                        return Err(ValidationError::MethodNotApplicable {
                            method: m.name().to_owned(),
                            problem: job_problem.id().to_owned(),
                        });
                    }
                    chosen.push(m);
                }
                chosen.sort();
                chosen.dedup();
                chosen
            }
        };
        Ok(ValidJob {
            problem: job_problem,
            methods,
            tolerance,
            repeats,
            replicas,
            ladder,
            probe: self.probe,
        })
    }
}

/// `202 Accepted` body of `POST /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobAccepted {
    /// Job id.
    pub id: Uuid,
    /// Initial status.
    pub status: JobStatus,
    /// Number of tasks fanned out.
    pub tasks: u32,
    /// Where to poll.
    pub links: JobLinks,
}

/// Links of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobLinks {
    /// `GET` this for status and ranking.
    #[serde(rename = "self")]
    pub self_: String,
}

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Accepted, no result yet.
    Queued,
    /// Some results are in.
    Running,
    /// Every task has a result.
    Completed,
    /// Cancelled by `DELETE /v1/jobs/{id}`: tasks without a result were revoked.
    Cancelled,
}

impl JobStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Completed or cancelled: nothing more will change.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Completed | JobStatus::Cancelled)
    }
}

/// Progress counters of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Progress {
    /// Tasks in the job.
    pub total: u32,
    /// Tasks with a result (succeeded or failed).
    pub done: u32,
    /// Tasks whose result is a failure.
    pub failed: u32,
}

/// One task of a job as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TaskView {
    /// Task id.
    pub id: Uuid,
    /// Method id.
    pub method: String,
    /// `pending`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    /// How many result messages arrived for it (duplicates are counted here and ignored).
    pub result_deliveries: u32,
    /// Worker that produced the recorded result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Runs requested: 1, plus one per retry.
    #[serde(default = "one")]
    pub attempts: u32,
    /// Why it failed (`kind: reason`), for failed tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn one() -> u32 {
    1
}

/// `GET /v1/jobs/{id}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobView {
    /// Job id.
    pub id: Uuid,
    /// Problem id.
    pub problem: String,
    /// Status.
    pub status: JobStatus,
    /// Tolerance.
    pub tolerance: f64,
    /// Timed runs per method.
    pub repeats: u32,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Completion time, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// Progress.
    pub progress: Progress,
    /// The ranking so far (complete once `status` is `completed`).
    pub ranking: Vec<RankEntry>,
    /// The tasks.
    pub tasks: Vec<TaskView>,
    /// Relative error against time of every priced task (every level of a ladder job), for
    /// work-precision diagrams.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub work_precision: Vec<WorkPoint>,
    /// The reference the errors are measured against: `published` for a catalogue problem; for a custom
    /// problem the solver that computed it (`closed-form`, `cos`, `fd-richardson`, …) and its error estimate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<ReferenceInfo>,
    /// The definition of a custom problem (absent for catalogue problems).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ProblemSpec>,
    /// The user who submitted it; absent for a job submitted without an account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Who may see it besides its owner and those it is shared with.
    #[serde(default = "public")]
    pub visibility: crate::accounts::Visibility,
}

fn public() -> crate::accounts::Visibility {
    crate::accounts::Visibility::Public
}

/// One point of a work-precision diagram: a method priced at one ladder level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct WorkPoint {
    /// Method id.
    pub method: String,
    /// Ladder level (0 = cheapest).
    pub level: u32,
    /// Its discretisation.
    pub setting: String,
    /// Relative error against the reference.
    pub relerr: f64,
    /// Mean time of the timed runs, seconds.
    pub time_s: f64,
    /// Whether it reached the job's tolerance.
    pub reached: bool,
}

/// Where an entry stands in a ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    /// Reached the tolerance; ranked by time.
    Reached,
    /// Computed but missed the tolerance.
    Missed,
    /// Did not produce a result.
    Failed,
}

/// Time statistics over the timed runs, seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TimeStats {
    /// Mean.
    pub mean_s: f64,
    /// Minimum.
    pub min_s: f64,
    /// Median.
    pub median_s: f64,
    /// Number of timed runs.
    pub runs: u32,
}

impl TimeStats {
    /// Statistics of a sample; `None` when empty.
    ///
    /// ```
    /// let t = protocol::api::TimeStats::of(&[3.0, 1.0, 2.0]).unwrap();
    /// assert_eq!((t.mean_s, t.min_s, t.median_s, t.runs), (2.0, 1.0, 2.0, 3));
    /// ```
    pub fn of(times: &[f64]) -> Option<Self> {
        if times.is_empty() {
            return None;
        }
        let mut sorted = times.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
        };
        Some(Self {
            mean_s: sorted.iter().sum::<f64>() / n as f64,
            min_s: sorted[0],
            median_s: median,
            runs: u32::try_from(n).unwrap_or(u32::MAX),
        })
    }
}

/// One line of a ranking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RankEntry {
    /// 1-based rank among the methods that reached the tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Method id.
    pub method: String,
    /// Reached, missed or failed.
    pub standing: Standing,
    /// For misses: `1e-3` when relerr ≤ 1e-3, else `fail`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Value per evaluation point.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<f64>,
    /// Monte Carlo standard errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_errors: Option<Vec<f64>>,
    /// Relative error against the reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relerr: Option<f64>,
    /// Ladder level used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// Its discretisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
    /// Time statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<TimeStats>,
    /// Threads the kernel could use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Worker that computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// For failures: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `GET /v1/problems` item and `GET /v1/problems/{id}` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProblemView {
    /// Case id.
    pub id: String,
    /// Description.
    pub title: String,
    /// Benchmark set.
    pub set: String,
    /// Model family.
    pub model: String,
    /// Model and instrument parameters by name.
    #[schema(value_type = Object)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Quantity computed (`price`, `delta`, …).
    pub quantity: String,
    /// Evaluation points: `{"spots": [...]}`, `{"spot_pairs": [[S1, S2], ...]}` or `{"spot": S, "strikes": [...]}`.
    #[schema(value_type = Object)]
    pub points: serde_json::Value,
    /// Published reference values.
    pub reference: Vec<f64>,
    /// Where the reference comes from.
    pub reference_note: String,
    /// Methods that apply.
    pub methods: Vec<String>,
}

/// `GET /v1/methods` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MethodView {
    /// Method id.
    pub id: String,
    /// Description.
    pub description: String,
    /// Whether its results carry a standard error.
    pub stochastic: bool,
    /// Catalogue cases it applies to.
    pub problems: Vec<String>,
}

/// Every error body: `{code, message, details}` with a stable `code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ApiError {
    /// Stable machine-readable code, e.g. `unknown_problem`.
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Extra structured information (an object of limits, a list of `{field, reason}`), or `null`.
    #[serde(default)]
    #[schema(value_type = Value)]
    pub details: serde_json::Value,
}

/// One frame of a `text/event-stream` (documentation of the SSE endpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SseFrame {
    /// Event name: `progress` or `completed`.
    pub event: String,
    /// JSON payload: progress counters, or the final JobView.
    pub data: String,
}

/// One method on a problem's leaderboard: every completed run aggregated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardEntry {
    /// 1-based rank among methods that reached the tolerance at least once, by best time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rank: Option<u32>,
    /// Method id.
    pub method: String,
    /// Results recorded for this method (completed jobs).
    pub runs: u32,
    /// Of which reached the tolerance.
    pub reached: u32,
    /// Fastest mean time to the tolerance over the runs that reached it, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_time_s: Option<f64>,
    /// Median over those runs of the mean time, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median_time_s: Option<f64>,
    /// Smallest relative error seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_relerr: Option<f64>,
    /// Threads of the fastest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// Worker of the fastest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// `GET /v1/rankings/{problem}` body: the service form of the BENCHOP paper's table for one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Leaderboard {
    /// Problem id.
    pub problem: String,
    /// Tolerance the runs were tuned to.
    pub tolerance: f64,
    /// Methods, ranked.
    pub entries: Vec<LeaderboardEntry>,
}

/// `GET /v1/rankings` body: best time to the tolerance per problem × method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LeaderboardMatrix {
    /// Tolerance.
    pub tolerance: f64,
    /// Row labels: problem ids.
    pub problems: Vec<String>,
    /// Column labels: method ids.
    pub methods: Vec<String>,
    /// `best_time_s[i][j]`: best time of method j on problem i, `null` when it never reached the tolerance.
    pub best_time_s: Vec<Vec<Option<f64>>>,
}

#[cfg(test)]
mod ladder_tests {
    use super::*;

    #[test]
    fn ladder_is_off_by_default_and_excludes_replicas() {
        assert!(!JobRequest::for_problem("1aI").validate().unwrap().ladder);
        let request: JobRequest = serde_json::from_str(r#"{"problem": "1aI", "ladder": true}"#).unwrap();
        assert!(request.validate().unwrap().ladder);
        let with_replicas: JobRequest =
            serde_json::from_str(r#"{"problem": "1aI", "ladder": true, "replicas": 2}"#).unwrap();
        match with_replicas.validate() {
            Err(ValidationError::InvalidField { field, .. }) => assert_eq!(field, "ladder"),
            other => panic!("{other:?}"),
        }
    }
}

#[cfg(test)]
mod probe_tests {
    use super::*;
    use crate::task::Probe;

    #[test]
    fn a_probe_is_optional_and_validated() {
        assert_eq!(JobRequest::for_problem("1aI").validate().unwrap().probe, None);
        let request: JobRequest = serde_json::from_str(
            r#"{"problem": "1aI", "methods": ["closed-form"], "replicas": 3, "probe": {"kind": "spin", "micros": 1000}}"#,
        )
        .unwrap();
        let valid = request.validate().unwrap();
        assert_eq!(valid.probe, Some(Probe::Spin { micros: 1000 }));
        assert_eq!(valid.replicas, 3);
        for bad in [
            r#"{"problem": "1aI", "probe": {"kind": "spin", "micros": 1000001}}"#,
            r#"{"problem": "1aI", "ladder": true, "probe": {"kind": "noop"}}"#,
        ] {
            let request: JobRequest = serde_json::from_str(bad).unwrap();
            match request.validate() {
                Err(ValidationError::InvalidField { field, .. }) => assert_eq!(field, "probe", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
        assert!(
            serde_json::from_str::<JobRequest>(r#"{"problem": "1aI", "probe": {"kind": "nope"}}"#).is_err()
        );
    }
}
