//! HTTP request and response bodies of the baas API, and validation of a job request into benchop types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use benchop::{MethodId, catalogue};

/// Default relative-error tolerance (the benchmark's).
pub const DEFAULT_TOLERANCE: f64 = 1e-4;
/// Default number of timed runs (the benchmark's M = 3).
pub const DEFAULT_REPEATS: u32 = 3;
/// Most timed runs a job may ask for.
pub const MAX_REPEATS: u32 = 20;
/// Default per-task time limit.
pub const DEFAULT_TIME_LIMIT_MS: u64 = 120_000;

/// `POST /v1/jobs` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"problem": "4a", "methods": ["cos", "fft", "closed-form"], "tolerance": 1e-4, "repeats": 3}))]
pub struct JobRequest {
    /// Catalogue problem id, e.g. `1aI`.
    pub problem: String,
    /// Methods to compare; default: every method that applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Relative-error tolerance, in [1e-8, 1e-2]; default 1e-4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerance: Option<f64>,
    /// Timed runs per method, 1..=20; default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<u32>,
}

impl JobRequest {
    /// A request for a catalogue problem with every default.
    pub fn for_problem(problem: &str) -> Self {
        Self {
            problem: problem.to_owned(),
            methods: None,
            tolerance: None,
            repeats: None,
        }
    }
}

/// A job request that passed validation.
#[derive(Debug, Clone)]
pub struct ValidJob {
    /// The catalogue case.
    pub case: &'static catalogue::Case,
    /// The methods, deduplicated, in the catalogue order.
    pub methods: Vec<MethodId>,
    /// Tolerance.
    pub tolerance: f64,
    /// Timed runs.
    pub repeats: u32,
}

/// Why a job request was refused; each maps to a stable API error code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValidationError {
    /// The problem id is not in the catalogue.
    #[error("unknown problem `{0}`; GET /v1/problems lists the catalogue")]
    UnknownProblem(String),
    /// A method id is unknown.
    #[error("unknown method `{0}`; GET /v1/methods lists them")]
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
        let case = catalogue::case(&self.problem)
            .ok_or_else(|| ValidationError::UnknownProblem(self.problem.clone()))?;
        let tolerance = self.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        benchop::tune::check_tolerance(tolerance).map_err(|e| ValidationError::InvalidField {
            field: "tolerance",
            reason: e.to_string(),
        })?;
        let repeats = self.repeats.unwrap_or(DEFAULT_REPEATS);
        if !(1..=MAX_REPEATS).contains(&repeats) {
            return Err(ValidationError::InvalidField {
                field: "repeats",
                reason: format!("must lie in 1..={MAX_REPEATS}, got {repeats}"),
            });
        }
        let methods = match &self.methods {
            None => {
                let all: Vec<_> = MethodId::ALL
                    .into_iter()
                    .filter(|m| m.applies_to(&case.problem))
                    .collect();
                if all.is_empty() {
                    return Err(ValidationError::NoMethod(case.id.to_owned()));
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
                    if !m.applies_to(&case.problem) {
                        return Err(ValidationError::MethodNotApplicable {
                            method: m.name().to_owned(),
                            problem: case.id.to_owned(),
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
            case,
            methods,
            tolerance,
            repeats,
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
}

impl JobStatus {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Completed => "completed",
        }
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
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    /// How many result messages arrived for it (duplicates are counted here and ignored).
    pub result_deliveries: u32,
    /// Worker that produced the recorded result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
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
    /// Extra structured information (field names, limits), or `null`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub details: serde_json::Value,
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
