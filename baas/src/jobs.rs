//! The job logic shared by HTTP, the AMQP result consumer and standalone mode.

use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use protocol::api::{
    CUSTOM_PROBLEM_ID, JobAccepted, JobLinks, JobProblem, JobRequest, JobStatus, JobView, Progress, TaskView,
    ValidJob, WorkPoint,
};
use protocol::control::Control;
use protocol::problem_spec::ReferenceInfo;
use protocol::task::now_ms;
use protocol::topology::{DEAD_NOTIFY_QUEUE, RESULTS_QUEUE};
use protocol::{EventKind, FailureKind, Outcome, ProblemRef, SCHEMA_VERSION, TaskMessage, TaskResult, amqp};

use crate::AppState;
use crate::error::AppError;
use crate::ranking;
use crate::store::{Inserted, JobRecord, Recorded, Retry, StoreError, TaskRecord};

/// The `job_id` of an update that concerns every job: waiters re-read theirs (sent after the update
/// listener reconnects, when updates may have been missed).
pub const EVERY_JOB: Uuid = Uuid::nil();

/// How often a waiter (`?wait`, the event stream) re-reads its job without an update: the net under
/// best-effort notifications from other replicas.
pub const RECHECK: Duration = Duration::from_secs(2);

/// Progress of a job, broadcast whenever a new result is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobUpdate {
    /// The job.
    pub job_id: Uuid,
    /// Whether it just finished.
    pub finished: bool,
}

/// The window of the per-user daily quota.
pub const QUOTA_WINDOW_MS: u64 = 24 * 3_600_000;

/// Whether `owner` may submit `n` more tasks: at most `user_tasks_in_flight` without a result and
/// `user_tasks_per_day` created in 24 hours (checked at submission; two submissions racing each other may
/// both pass). A job larger than a quota can never pass: `422 job_too_large`.
async fn check_quota(state: &AppState, owner: &str, n: u64) -> Result<(), AppError> {
    let limits = state.limits;
    for (max, what) in [
        (limits.user_tasks_in_flight, "tasks in flight"),
        (limits.user_tasks_per_day, "tasks per day"),
    ] {
        if n > max {
            return Err(AppError::BadRequest {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                code: "job_too_large",
                message: format!("the job would have {n} tasks; a user may have at most {max} {what}"),
                details: serde_json::json!({ "tasks": n, "quota": what, "max": max }),
            });
        }
    }
    let now = now_ms();
    let counts = state
        .store
        .owner_task_counts(owner.to_owned(), now.saturating_sub(QUOTA_WINDOW_MS))
        .await?;
    if counts.in_flight + n > limits.user_tasks_in_flight {
        return Err(AppError::QuotaExceeded {
            message: format!(
                "{owner} has {} tasks waiting or running and may have at most {}; retry when some are done",
                counts.in_flight, limits.user_tasks_in_flight
            ),
            details: serde_json::json!({ "quota": "tasks_in_flight", "used": counts.in_flight,
                "max": limits.user_tasks_in_flight, "tasks": n }),
            retry_after_secs: 10,
        });
    }
    if counts.recent + n > limits.user_tasks_per_day {
        let frees_at = counts.oldest_recent_ms.unwrap_or(now) + QUOTA_WINDOW_MS;
        let retry_after_secs = frees_at.saturating_sub(now).div_ceil(1000).max(1);
        return Err(AppError::QuotaExceeded {
            message: format!(
                "{owner} submitted {} tasks in the last 24 hours and may submit at most {}",
                counts.recent, limits.user_tasks_per_day
            ),
            details: serde_json::json!({ "quota": "tasks_per_day", "used": counts.recent,
                "max": limits.user_tasks_per_day, "tasks": n }),
            retry_after_secs,
        });
    }
    Ok(())
}

/// Validate, persist, publish. The job is stored before anything is published, so an accepted job
/// survives a crash; tasks the broker did not confirm are re-published by [`republish`].
pub async fn submit(state: &AppState, request: JobRequest) -> Result<JobAccepted, AppError> {
    submit_once(state, request, None, (None, crate::store::Visibility::Public))
        .await
        .map(|(accepted, _)| accepted)
}

/// [`submit`] with an optional idempotency key: a key seen before with the same request returns that
/// job (`false`: nothing new was created) and one seen with another request is a conflict.
pub async fn submit_once(
    state: &AppState,
    request: JobRequest,
    idempotency_key: Option<String>,
    (owner, visibility): (Option<String>, crate::store::Visibility),
) -> Result<(JobAccepted, bool), AppError> {
    let mut valid = request.validate()?;
    let ladders = if valid.ladder {
        let (problem, methods) = (valid.problem.problem().clone(), valid.methods.clone());
        tokio::task::spawn_blocking(move || ladder_lengths(&problem, &methods))
            .await
            .map_err(StoreError::from)?
    } else {
        Vec::new()
    };
    let n_planned = if valid.ladder {
        ladders.iter().map(|&n| u64::from(n)).sum()
    } else {
        valid.methods.len() as u64 * u64::from(valid.replicas)
    };
    if n_planned > state.limits.max_tasks_per_job as u64 {
        return Err(AppError::BadRequest {
            status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code: "job_too_large",
            message: format!(
                "the job would have {n_planned} tasks; this server accepts at most {} per job",
                state.limits.max_tasks_per_job
            ),
            details: serde_json::json!({ "tasks": n_planned, "max_tasks_per_job": state.limits.max_tasks_per_job }),
        });
    }
    if let Some(owner) = &owner {
        check_quota(state, owner, n_planned).await?;
    }
    valid = with_reference(valid).await?;
    let job_id = Uuid::new_v4();
    let time_limit_ms = u64::try_from(state.task_time_limit.as_millis()).unwrap_or(u64::MAX);
    let tasks = fan_out(&valid, &ladders, job_id, time_limit_ms);
    let n_tasks = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
    let record = JobRecord {
        id: job_id,
        problem: valid.problem.id().to_owned(),
        tolerance: valid.tolerance,
        repeats: valid.repeats,
        created_ms: now_ms(),
        finished_ms: None,
        n_tasks,
        n_done: 0,
        cancelled_ms: None,
        owner,
        visibility,
    };
    let idempotency = idempotency_key.map(|k| (k, serde_json::to_string(&request).unwrap_or_default()));
    match state
        .store
        .insert_job_once(record, tasks.clone(), idempotency)
        .await?
    {
        Inserted::New => {}
        Inserted::Existing { id, tasks } => return Ok((accepted(id, tasks), false)),
        Inserted::Conflict(id) => {
            return Err(AppError::BadRequest {
                status: axum::http::StatusCode::CONFLICT,
                code: "idempotency_conflict",
                message: "this Idempotency-Key was used with a different request".to_owned(),
                details: serde_json::json!({ "job_id": id }),
            });
        }
    }
    state.metrics.jobs_accepted.inc();
    match state.publisher.publish(&tasks).await {
        Ok(()) => {
            state.metrics.tasks_published.inc_by(tasks.len() as u64);
            state
                .store
                .mark_published(tasks.iter().map(|t| t.task_id).collect())
                .await?
        }
        // Accepted all the same: the job is stored and the republisher retries its tasks.
        Err(e) => {
            state.metrics.publish_failures.inc();
            tracing::warn!(job = %job_id, error = %e, "publishing deferred")
        }
    }
    state.events.emit(EventKind::JobCreated {
        job_id,
        problem: valid.problem.id().to_owned(),
        tasks: n_tasks,
    });
    tracing::info!(job = %job_id, problem = valid.problem.id(), tasks = n_tasks, "job accepted");
    Ok((accepted(job_id, n_tasks), true))
}

/// How long baas may spend computing the reference of a custom problem before refusing the job.
pub const REFERENCE_TIME_LIMIT: Duration = Duration::from_secs(20);

/// Compute a custom problem's reference on a blocking thread, within [`REFERENCE_TIME_LIMIT`]; catalogue
/// problems pass through.
async fn with_reference(mut valid: ValidJob) -> Result<ValidJob, AppError> {
    if !matches!(valid.problem, JobProblem::Custom { .. }) {
        return Ok(valid);
    }
    let started = std::time::Instant::now();
    let cancel = benchop::Cancel::with_deadline(started + REFERENCE_TIME_LIMIT);
    let valid = tokio::task::spawn_blocking(move || valid.compute_reference(&cancel).map(|()| valid))
        .await
        .map_err(|e| {
            protocol::api::ValidationError::ReferenceUnavailable(format!("the solver failed: {e}"))
        })??;
    if let Some(r) = valid.problem.reference() {
        tracing::info!(solver = %r.solver, error_estimate = ?r.error_estimate, secs = started.elapsed().as_secs_f64(),
            "custom reference computed");
    }
    Ok(valid)
}

fn accepted(id: Uuid, tasks: u32) -> JobAccepted {
    JobAccepted {
        id,
        status: JobStatus::Queued,
        tasks,
        links: JobLinks {
            self_: format!("/v1/jobs/{id}"),
        },
    }
}

/// Cancel a job: tasks without a result are recorded as cancelled and revoked on the workers. A job that
/// already finished is left alone (`Err` with code `job_finished`); cancelling twice is harmless.
pub async fn cancel(state: &AppState, id: Uuid) -> Result<JobView, AppError> {
    let Some((before, revoked)) = state.store.cancel_job(id, now_ms()).await? else {
        return Err(AppError::job_not_found(id));
    };
    if before.finished_ms.is_some() && before.cancelled_ms.is_none() {
        return Err(AppError::BadRequest {
            status: axum::http::StatusCode::CONFLICT,
            code: "job_finished",
            message: format!("job {id} already completed; there is nothing to cancel"),
            details: serde_json::Value::Null,
        });
    }
    if !revoked.is_empty() {
        if let Err(e) = state.publisher.control(&Control::CancelJob { job_id: id }).await {
            // The job is cancelled all the same: late results are ignored as duplicates.
            tracing::warn!(job = %id, error = %e, "could not broadcast the cancellation");
        }
        for t in &revoked {
            state.events.emit(EventKind::TaskRevoked {
                task_id: t.task_id,
                worker: None,
                terminated: false,
            });
        }
        state
            .announce(&[JobUpdate {
                job_id: id,
                finished: true,
            }])
            .await;
        state.events.emit(EventKind::JobFinished { job_id: id });
        tracing::info!(job = %id, revoked = revoked.len(), "job cancelled");
    }
    view(state, id).await?.ok_or_else(|| AppError::job_not_found(id))
}

/// Run a failed (or dead-lettered) task again.
pub async fn retry(state: &AppState, task_id: Uuid) -> Result<TaskMessage, AppError> {
    let conflict = |code: &'static str, message: String| AppError::BadRequest {
        status: axum::http::StatusCode::CONFLICT,
        code,
        message,
        details: serde_json::Value::Null,
    };
    match state.store.retry_task(task_id).await? {
        Retry::Requeued(task) => {
            match state.publisher.publish(std::slice::from_ref(&task)).await {
                Ok(()) => state.store.mark_published(vec![task.task_id]).await?,
                Err(e) => tracing::warn!(task = %task_id, error = %e, "retry publishing deferred"),
            }
            state.events.emit(EventKind::TaskRetried {
                task_id,
                job_id: task.job_id,
                attempt: None,
            });
            state
                .announce(&[JobUpdate {
                    job_id: task.job_id,
                    finished: false,
                }])
                .await;
            Ok(task)
        }
        Retry::UnknownTask => Err(AppError::NotFound {
            code: "task_not_found",
            what: format!("task {task_id}"),
        }),
        Retry::NotFailed(st) => Err(conflict(
            "task_not_failed",
            format!("task {task_id} is {st}; only failed tasks are retried"),
        )),
        Retry::JobCancelled => Err(conflict(
            "job_cancelled",
            format!("the job of task {task_id} was cancelled"),
        )),
    }
}

/// How many levels of each method a ladder job prices: the method's ladder, at most
/// [`MAX_LADDER_LEVELS`](protocol::api::MAX_LADDER_LEVELS) levels. Each level is asked for with the
/// cancellation flag already raised: past the end of its ladder a method answers `Ok(None)` before any
/// work, and inside it stops at its first cancellation check (kernels check between units of work), so
/// this costs microseconds per level.
pub fn ladder_lengths(problem: &benchop::Problem, methods: &[benchop::MethodId]) -> Vec<u32> {
    let raised = benchop::Cancel::new();
    raised.cancel();
    methods
        .iter()
        .map(|m| {
            (0..protocol::api::MAX_LADDER_LEVELS)
                .find(|&level| matches!(m.price(problem, level as usize, &raised), Ok(None)))
                .unwrap_or(protocol::api::MAX_LADDER_LEVELS)
        })
        .collect()
}

/// The tasks of a job: one per method and replica, or for a ladder job one per method and level
/// (`ladders[i]` levels of method `i`).
fn fan_out(valid: &ValidJob, ladders: &[u32], job_id: Uuid, time_limit_ms: u64) -> Vec<TaskMessage> {
    let mut tasks = Vec::with_capacity(valid.methods.len() * valid.replicas as usize);
    for (i, m) in valid.methods.iter().enumerate() {
        let levels: Vec<Option<u32>> = if valid.ladder {
            (0..ladders.get(i).copied().unwrap_or(0)).map(Some).collect()
        } else {
            vec![None; valid.replicas as usize]
        };
        for level in levels {
            tasks.push(TaskMessage {
                schema_version: SCHEMA_VERSION,
                task_id: Uuid::new_v4(),
                job_id,
                problem: valid.problem.task_ref(),
                method: m.name().to_owned(),
                tolerance: valid.tolerance,
                repeats: valid.repeats,
                level,
                time_limit_ms,
                probe: valid.probe,
            });
        }
    }
    tasks
}

/// The API view of a job: status, progress, tasks and the ranking so far.
pub async fn view(state: &AppState, id: Uuid) -> Result<Option<JobView>, AppError> {
    let Some((job, tasks)) = state.store.job(id).await? else {
        return Ok(None);
    };
    let mut view = build_view(&job, &tasks);
    // Every task of a custom job carries the spec and the reference; read them from the first.
    if job.problem == CUSTOM_PROBLEM_ID
        && let Some(first) = tasks.first()
        && let Some(TaskMessage {
            problem: ProblemRef::Custom(custom),
            ..
        }) = state.store.task_message(first.id).await?
    {
        view.reference = Some(custom.reference);
        view.spec = Some(custom.spec);
    }
    Ok(Some(view))
}

/// Which tasks a job view lists (`GET /v1/jobs/{id}?tasks=`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskList {
    /// Every task (the default).
    #[default]
    All,
    /// Only failed (and cancelled) tasks.
    Failed,
    /// None: while the job runs the view is read from the job's counters alone (no results are read, so
    /// polling a job of 100,000 tasks is cheap) and its ranking is empty; once final, the full ranking.
    None,
}

/// [`view`] with a task list filter; `TaskList::None` on a running job reads only the job's counters.
pub async fn view_with(state: &AppState, id: Uuid, list: TaskList) -> Result<Option<JobView>, AppError> {
    if list == TaskList::None {
        let Some((job, failed)) = state.store.job_summary(id).await? else {
            return Ok(None);
        };
        if job.finished_ms.is_none() && job.cancelled_ms.is_none() {
            let mut view = build_view(&job, &[]);
            view.status = if job.n_done == 0 {
                JobStatus::Queued
            } else {
                JobStatus::Running
            };
            view.progress.done = job.n_done;
            view.progress.failed = failed;
            return Ok(Some(view));
        }
    }
    let Some(mut view) = view(state, id).await? else {
        return Ok(None);
    };
    match list {
        TaskList::All => {}
        TaskList::Failed => view
            .tasks
            .retain(|t| t.state == "failed" || t.state == "cancelled"),
        TaskList::None => view.tasks.clear(),
    }
    Ok(Some(view))
}

/// Assemble a job view from its records.
pub fn build_view(job: &JobRecord, tasks: &[TaskRecord]) -> JobView {
    let results: Vec<&TaskResult> = tasks.iter().filter_map(|t| t.result.as_ref()).collect();
    let ladder = tasks.iter().any(|t| t.level.is_some());
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .count();
    let status = job.status();
    JobView {
        // Custom problems' reference and spec live in their tasks: `view` adds them.
        reference: benchop::catalogue::case(&job.problem).map(ReferenceInfo::published),
        spec: None,
        owner: job.owner.clone(),
        visibility: job.visibility,
        id: job.id,
        problem: job.problem.clone(),
        status,
        tolerance: job.tolerance,
        repeats: job.repeats,
        created_ms: job.created_ms,
        finished_ms: job.finished_ms,
        progress: Progress {
            total: job.n_tasks,
            done: u32::try_from(results.len()).unwrap_or(u32::MAX),
            failed: u32::try_from(failed).unwrap_or(u32::MAX),
        },
        ranking: if ladder {
            ranking::rank(ranking::per_method(results.iter().copied()))
        } else {
            ranking::rank(&ranking::pool_replicas(results.iter().copied()))
        },
        work_precision: if ladder {
            work_precision(&results)
        } else {
            Vec::new()
        },
        tasks: tasks
            .iter()
            .map(|t| TaskView {
                id: t.id,
                method: t.method.clone(),
                state: match t.result.as_ref().map(|r| &r.outcome) {
                    None => "pending",
                    Some(Outcome::Failed {
                        kind: FailureKind::Cancelled,
                        ..
                    }) => "cancelled",
                    Some(Outcome::Failed { .. }) => "failed",
                    Some(Outcome::Succeeded(_)) => "succeeded",
                }
                .to_owned(),
                result_deliveries: t.result_deliveries,
                worker: t
                    .result
                    .as_ref()
                    .map(|r| r.worker.clone())
                    .filter(|w| !w.is_empty()),
                attempts: t.attempts,
                error: match t.result.as_ref().map(|r| &r.outcome) {
                    Some(Outcome::Failed { kind, reason }) => Some(format!("{}: {reason}", kind.as_str())),
                    _ => None,
                },
            })
            .collect(),
    }
}

/// Every priced level of a ladder job, by method and level.
fn work_precision(results: &[&TaskResult]) -> Vec<WorkPoint> {
    let mut points: Vec<WorkPoint> = results
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Succeeded(m) => Some(WorkPoint {
                method: r.method.clone(),
                level: m.level,
                setting: m.setting.clone(),
                relerr: m.relerr,
                time_s: protocol::api::TimeStats::of(&m.times_s)?.mean_s,
                reached: m.reached,
            }),
            Outcome::Failed { .. } => None,
        })
        .collect();
    points.sort_by(|a, b| a.method.cmp(&b.method).then(a.level.cmp(&b.level)));
    points
}

/// Record one result (idempotent by task id) and announce progress.
pub async fn ingest(state: &AppState, result: TaskResult) -> Result<Recorded, StoreError> {
    let job_id = result.job_id;
    let task_id = result.task_id;
    let recorded = state.store.record_result(result, now_ms()).await?;
    let label = match recorded {
        Recorded::New { .. } => "new",
        Recorded::Duplicate => "duplicate",
        Recorded::UnknownTask => "unknown_task",
    };
    state.metrics.results.with_label_values(&[label]).inc();
    match recorded {
        Recorded::New { job_finished } => {
            state
                .announce(&[JobUpdate {
                    job_id,
                    finished: job_finished,
                }])
                .await;
            if job_finished {
                state.events.emit(EventKind::JobFinished { job_id });
                tracing::info!(job = %job_id, "job completed");
            }
        }
        Recorded::Duplicate => tracing::info!(task = %task_id, "duplicate result ignored"),
        Recorded::UnknownTask => tracing::warn!(task = %task_id, "result for an unknown task ignored"),
    }
    Ok(recorded)
}

/// Record a batch of results in one transaction and announce progress once per job of the batch (the
/// last update of a job in a batch carries whether it finished). Same guarantees as [`ingest`].
pub async fn ingest_batch(state: &AppState, results: Vec<TaskResult>) -> Result<Vec<Recorded>, StoreError> {
    let ids: Vec<(Uuid, Uuid)> = results.iter().map(|r| (r.job_id, r.task_id)).collect();
    let recorded = state.store.record_results(results, now_ms()).await?;
    let mut updates: Vec<JobUpdate> = Vec::new();
    for (&(job_id, task_id), r) in ids.iter().zip(&recorded) {
        match r {
            Recorded::New { job_finished } => {
                match updates.iter_mut().find(|u| u.job_id == job_id) {
                    Some(u) => u.finished |= job_finished,
                    None => updates.push(JobUpdate {
                        job_id,
                        finished: *job_finished,
                    }),
                }
                if *job_finished {
                    state.events.emit(EventKind::JobFinished { job_id });
                    tracing::info!(job = %job_id, "job completed");
                }
            }
            Recorded::Duplicate => tracing::info!(task = %task_id, "duplicate result ignored"),
            Recorded::UnknownTask => tracing::warn!(task = %task_id, "result for an unknown task ignored"),
        }
    }
    if !updates.is_empty() {
        state.announce(&updates).await;
    }
    Ok(recorded)
}

/// Most results stored in one transaction by the result consumer (also its prefetch).
pub const RESULT_BATCH: usize = 512;

/// The result batch size: [`RESULT_BATCH`], or `BAAS_RESULT_BATCH` (1 stores each result in its own
/// transaction, as before batching: for before/after measurements with `benchop loadtest`).
fn result_batch() -> usize {
    std::env::var("BAAS_RESULT_BATCH")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(RESULT_BATCH, |n| n.clamp(1, RESULT_BATCH))
}

/// Wait until job `id` has finished (standalone mode and simple clients).
pub async fn wait_finished(state: &AppState, id: Uuid) -> Result<JobView, AppError> {
    let mut updates = state.updates.subscribe();
    loop {
        let view = view(state, id)
            .await?
            .ok_or_else(|| AppError::job_not_found(id))?;
        if view.status.is_final() {
            return Ok(view);
        }
        // Re-check on any update or every second (an update may be missed between the view and subscribe).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(u) = updates.recv().await {
                if u.job_id == id || u.job_id == EVERY_JOB {
                    break;
                }
            }
        })
        .await;
    }
}

/// Consume results from RabbitMQ until `token` is cancelled, reconnecting with backoff. Each result
/// is persisted before it is acked; duplicates are acked and ignored.
pub async fn consume_results(state: AppState, url: String, token: CancellationToken) {
    consume_forever(state, url, token, Feed::Results).await;
}

/// Consume the dead-letter notifications until `token` is cancelled: a task the broker dead-lettered
/// (undecodable, or redelivered past the delivery limit because it kept killing its worker) is recorded
/// as failed in its job with the broker's reason, so the job still completes. The copy in
/// [`DEAD_QUEUE`](protocol::topology::DEAD_QUEUE) stays for inspection and replay.
pub async fn consume_dead_letters(state: AppState, url: String, token: CancellationToken) {
    consume_forever(state, url, token, Feed::DeadLetters).await;
}

/// The two queues baas consumes.
#[derive(Debug, Clone, Copy)]
enum Feed {
    Results,
    DeadLetters,
}

impl Feed {
    fn queue(self) -> &'static str {
        match self {
            Feed::Results => RESULTS_QUEUE,
            Feed::DeadLetters => DEAD_NOTIFY_QUEUE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Feed::Results => "baas-results",
            Feed::DeadLetters => "baas-dead-letters",
        }
    }
}

/// What to do with a delivery once handled.
enum Disposition {
    Ack,
    Reject,
    Requeue,
}

async fn consume_forever(state: AppState, url: String, token: CancellationToken, feed: Feed) {
    while !token.is_cancelled() {
        if let Err(e) = consume_session(&state, &url, &token, feed).await {
            tracing::warn!(error = %e, feed = feed.name(), "consumer session ended; reconnecting");
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn consume_session(
    state: &AppState,
    url: &str,
    token: &CancellationToken,
    feed: Feed,
) -> Result<(), amqp::AmqpError> {
    let conn = amqp::connect(url, feed.name(), Duration::from_secs(30)).await?;
    let channel = conn.create_channel().await?;
    amqp::declare_topology(&channel).await?;
    let max_batch = result_batch();
    channel
        .basic_qos(RESULT_BATCH as u16, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            feed.queue().into(),
            feed.name().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = feed.queue(), "consuming");
    // A consumer on a connection that died without an error frame may simply never yield again: check
    // the connection now and then and start over when it is gone.
    let mut liveness = tokio::time::interval(Duration::from_secs(2));
    loop {
        let delivery = tokio::select! {
            () = token.cancelled() => {
                let _ = conn.close(200, "baas shutting down".into()).await;
                return Ok(());
            }
            _ = liveness.tick() => {
                if conn.status().connected() && channel.status().connected() {
                    continue;
                }
                return Err(amqp::AmqpError::Stalled("the consumer's connection", Duration::from_secs(2)));
            }
            d = consumer.next() => d,
        };
        let delivery = match delivery {
            None => {
                return Err(amqp::AmqpError::Lapin(lapin::Error::from(
                    lapin::ErrorKind::InvalidConnectionState(lapin::ConnectionState::Closed),
                )));
            }
            Some(d) => d?,
        };
        if let Feed::Results = feed {
            // Take every result already delivered (up to a batch) and store them in one transaction.
            let mut batch = vec![delivery];
            while batch.len() < max_batch {
                match consumer.next().now_or_never() {
                    Some(Some(d)) => batch.push(d?),
                    _ => break,
                }
            }
            // An ack on a connection that died mid-restart can wait forever: bound it and reconnect (the
            // broker redelivers what was not acked; results are idempotent).
            tokio::time::timeout(STALL_LIMIT, handle_results(state, batch))
                .await
                .map_err(|_| amqp::AmqpError::Stalled("storing and acking results", STALL_LIMIT))??;
            continue;
        }
        let disposition = match feed {
            Feed::Results => handle_result(state, &delivery.data).await,
            Feed::DeadLetters => handle_dead_letter(state, &delivery).await,
        };
        tokio::time::timeout(STALL_LIMIT, settle(&delivery, disposition))
            .await
            .map_err(|_| amqp::AmqpError::Stalled("acking a delivery", STALL_LIMIT))??;
    }
}

/// Longest a broker acknowledgement may take before the session is presumed dead and reconnected.
const STALL_LIMIT: Duration = Duration::from_secs(15);

/// Ack, reject or requeue one delivery.
async fn settle(
    delivery: &lapin::message::Delivery,
    disposition: Disposition,
) -> Result<(), amqp::AmqpError> {
    match disposition {
        Disposition::Ack => delivery.ack(BasicAckOptions::default()).await?,
        Disposition::Reject => delivery.reject(BasicRejectOptions { requeue: false }).await?,
        Disposition::Requeue => {
            delivery
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
            true
        }
    };
    Ok(())
}

/// Decode and store a batch of result deliveries, then ack them with one `multiple` ack (undecodable ones
/// are rejected first); when the store fails, requeue them all.
async fn handle_results(
    state: &AppState,
    batch: Vec<lapin::message::Delivery>,
) -> Result<(), amqp::AmqpError> {
    let Some(last_tag) = batch.last().map(|d| d.delivery_tag) else {
        return Ok(());
    };
    let mut results = Vec::with_capacity(batch.len());
    for d in &batch {
        match TaskResult::decode(&d.data) {
            Ok(r) => results.push(r),
            Err(e) => {
                tracing::warn!(error = %e, "undecodable result dropped");
                d.reject(BasicRejectOptions { requeue: false }).await?;
            }
        }
    }
    let acker = batch.last().map(|d| d.acker.clone());
    let Some(acker) = acker else { return Ok(()) };
    if results.is_empty() {
        return Ok(());
    }
    match ingest_batch(state, results).await {
        Ok(_) => {
            // Everything up to the last tag (the rejected ones are no longer outstanding).
            acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Err(e) => {
            tracing::error!(error = %e, tag = last_tag, "results not persisted; requeueing");
            acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: true,
                })
                .await?;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

async fn handle_result(state: &AppState, data: &[u8]) -> Disposition {
    let result = match TaskResult::decode(data) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable result dropped");
            return Disposition::Reject;
        }
    };
    match ingest(state, result).await {
        Ok(_) => Disposition::Ack,
        Err(e) => {
            tracing::error!(error = %e, "result not persisted; requeueing");
            Disposition::Requeue
        }
    }
}

async fn handle_dead_letter(state: &AppState, delivery: &lapin::message::Delivery) -> Disposition {
    // The task id: from the body when it still decodes, else from the message id baas set on publish.
    let task_id = TaskMessage::decode(&delivery.data)
        .map(|t| t.task_id)
        .ok()
        .or_else(|| {
            delivery
                .properties
                .message_id()
                .as_ref()
                .and_then(|id| id.as_str().parse::<Uuid>().ok())
        });
    let Some(task_id) = task_id else {
        tracing::warn!("dead letter without a task id; left in the dead-letter queue for inspection");
        return Disposition::Ack;
    };
    let task = match state.store.task_message(task_id).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            tracing::warn!(task = %task_id, "dead letter of an unknown task");
            return Disposition::Ack;
        }
        Err(e) => {
            tracing::error!(error = %e, "store unavailable; requeueing the dead letter");
            return Disposition::Requeue;
        }
    };
    let reason = death_reason(delivery.properties.headers().as_ref());
    let now = now_ms();
    let result = TaskResult {
        schema_version: SCHEMA_VERSION,
        task_id,
        job_id: task.job_id,
        method: task.method.clone(),
        worker: String::new(),
        started_ms: now,
        finished_ms: now,
        outcome: Outcome::Failed {
            kind: FailureKind::DeadLettered,
            reason: format!("dead-lettered by the broker: {reason}"),
        },
    };
    match ingest(state, result).await {
        Ok(recorded) => {
            if matches!(recorded, Recorded::New { .. }) {
                state.metrics.dead_letters.inc();
                tracing::warn!(task = %task_id, job = %task.job_id, %reason, "task dead-lettered");
                state.events.emit(EventKind::TaskDeadLettered {
                    task_id,
                    job_id: task.job_id,
                    reason,
                });
            }
            Disposition::Ack
        }
        Err(e) => {
            tracing::error!(error = %e, "dead letter not recorded; requeueing");
            Disposition::Requeue
        }
    }
}

/// The broker's account of a dead letter, from its `x-death` header: reason and delivery count.
fn death_reason(headers: Option<&FieldTable>) -> String {
    use lapin::types::AMQPValue;
    let first = headers
        .and_then(|h| h.inner().get("x-death"))
        .and_then(|v| match v {
            AMQPValue::FieldArray(a) => a.as_slice().first().cloned(),
            _ => None,
        });
    let Some(AMQPValue::FieldTable(death)) = first else {
        return "rejected".to_owned();
    };
    let text = |key: &str| match death.inner().get(key) {
        Some(AMQPValue::LongString(s)) => Some(s.to_string()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let reason = text("reason").unwrap_or_else(|| "rejected".to_owned());
    match reason.as_str() {
        "delivery_limit" => format!(
            "delivery_limit (delivered {} times without an ack: the task kept failing or killing its worker)",
            protocol::topology::TASK_DELIVERY_LIMIT
        ),
        "rejected" => "rejected (undecodable or refused by a worker)".to_owned(),
        other => other.to_owned(),
    }
}

/// Re-publish tasks that were stored but never confirmed by the broker (an outage at submission, a
/// crash between store and publish). Runs at start-up and then every few seconds.
pub async fn republish(state: AppState, token: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(3));
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        // Leave fresh tasks to their submitting request, which is publishing them right now.
        let before = now_ms().saturating_sub(5_000);
        // A claim: a task another replica claimed within its lease is not published here too.
        match state.store.claim_unpublished(before, now_ms(), 1000).await {
            Ok(tasks) if !tasks.is_empty() => match state.publisher.publish(&tasks).await {
                Ok(()) => {
                    state.metrics.tasks_published.inc_by(tasks.len() as u64);
                    tracing::info!(count = tasks.len(), "re-published tasks");
                    if let Err(e) = state
                        .store
                        .mark_published(tasks.iter().map(|t| t.task_id).collect())
                        .await
                    {
                        tracing::error!(error = %e, "cannot mark re-published tasks");
                    }
                }
                Err(e) => {
                    state.metrics.publish_failures.inc();
                    tracing::warn!(error = %e, "re-publishing deferred")
                }
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read unpublished tasks"),
        }
    }
}

#[cfg(test)]
mod ladder_tests {
    use benchop::{Cancel, MethodId, catalogue};
    use protocol::api::MAX_LADDER_LEVELS;

    #[test]
    fn a_ladder_is_the_methods_levels_up_to_the_cap() {
        let case = catalogue::case("1aI").unwrap();
        let methods = [MethodId::ClosedForm, MethodId::Fft, MethodId::Fgl, MethodId::Cos];
        let lengths = super::ladder_lengths(&case.problem, &methods);
        // COS has more levels than the cap; the others end before it.
        assert_eq!(lengths[3], MAX_LADDER_LEVELS);
        for (m, &n) in methods.iter().zip(&lengths).take(3) {
            assert!((1..MAX_LADDER_LEVELS).contains(&n), "{m}: {n}");
            // The last level counted prices (these are cheap), the next one is past the end.
            let fresh = Cancel::new();
            let priced = |level: u32| m.price(&case.problem, level as usize, &fresh).unwrap();
            assert!(priced(n - 1).is_some(), "{m}");
            assert!(priced(n).is_none(), "{m}");
        }
    }
}
