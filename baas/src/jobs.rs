//! The job logic shared by HTTP, the AMQP result consumer and standalone mode.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
};
use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use protocol::api::{JobAccepted, JobLinks, JobRequest, JobStatus, JobView, Progress, TaskView};
use protocol::task::now_ms;
use protocol::topology::RESULTS_QUEUE;
use protocol::{EventKind, Outcome, ProblemRef, SCHEMA_VERSION, TaskMessage, TaskResult, amqp};

use crate::AppState;
use crate::error::AppError;
use crate::ranking;
use crate::store::{JobRecord, Recorded, StoreError, TaskRecord};

/// Progress of a job, broadcast whenever a new result is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobUpdate {
    /// The job.
    pub job_id: Uuid,
    /// Whether it just finished.
    pub finished: bool,
}

/// Validate, persist, publish. The job is stored before anything is published, so an accepted job
/// survives a crash; tasks the broker did not confirm are re-published by [`republish`].
pub async fn submit(state: &AppState, request: JobRequest) -> Result<JobAccepted, AppError> {
    let valid = request.validate()?;
    let job_id = Uuid::new_v4();
    let time_limit_ms = u64::try_from(state.task_time_limit.as_millis()).unwrap_or(u64::MAX);
    let tasks: Vec<TaskMessage> = valid
        .methods
        .iter()
        .map(|m| TaskMessage {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::new_v4(),
            job_id,
            problem: ProblemRef::Catalogue(valid.case.id.to_owned()),
            method: m.name().to_owned(),
            tolerance: valid.tolerance,
            repeats: valid.repeats,
            level: None,
            time_limit_ms,
        })
        .collect();
    let n_tasks = u32::try_from(tasks.len()).unwrap_or(u32::MAX);
    let record = JobRecord {
        id: job_id,
        problem: valid.case.id.to_owned(),
        tolerance: valid.tolerance,
        repeats: valid.repeats,
        created_ms: now_ms(),
        finished_ms: None,
        n_tasks,
        n_done: 0,
    };
    state.store.insert_job(record, tasks.clone()).await?;
    match state.publisher.publish(&tasks).await {
        Ok(()) => {
            state
                .store
                .mark_published(tasks.iter().map(|t| t.task_id).collect())
                .await?
        }
        // Accepted all the same: the job is stored and the republisher retries its tasks.
        Err(e) => tracing::warn!(job = %job_id, error = %e, "publishing deferred"),
    }
    state.events.emit(EventKind::JobCreated {
        job_id,
        problem: valid.case.id.to_owned(),
        tasks: n_tasks,
    });
    tracing::info!(job = %job_id, problem = valid.case.id, tasks = n_tasks, "job accepted");
    Ok(JobAccepted {
        id: job_id,
        status: JobStatus::Queued,
        tasks: n_tasks,
        links: JobLinks {
            self_: format!("/v1/jobs/{job_id}"),
        },
    })
}

/// The API view of a job: status, progress, tasks and the ranking so far.
pub async fn view(state: &AppState, id: Uuid) -> Result<Option<JobView>, AppError> {
    let Some((job, tasks)) = state.store.job(id).await? else {
        return Ok(None);
    };
    Ok(Some(build_view(&job, &tasks)))
}

/// Assemble a job view from its records.
pub fn build_view(job: &JobRecord, tasks: &[TaskRecord]) -> JobView {
    let results: Vec<&TaskResult> = tasks.iter().filter_map(|t| t.result.as_ref()).collect();
    let failed = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed { .. }))
        .count();
    let status = if job.finished_ms.is_some() {
        JobStatus::Completed
    } else if results.is_empty() {
        JobStatus::Queued
    } else {
        JobStatus::Running
    };
    JobView {
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
        ranking: ranking::rank(results.iter().copied()),
        tasks: tasks
            .iter()
            .map(|t| TaskView {
                id: t.id,
                method: t.method.clone(),
                state: match &t.result {
                    None => "pending",
                    Some(r) if matches!(r.outcome, Outcome::Failed { .. }) => "failed",
                    Some(_) => "succeeded",
                }
                .to_owned(),
                result_deliveries: t.result_deliveries,
                worker: t.result.as_ref().map(|r| r.worker.clone()),
            })
            .collect(),
    }
}

/// Record one result (idempotent by task id) and announce progress.
pub async fn ingest(state: &AppState, result: TaskResult) -> Result<Recorded, StoreError> {
    let job_id = result.job_id;
    let task_id = result.task_id;
    let recorded = state.store.record_result(result, now_ms()).await?;
    match recorded {
        Recorded::New { job_finished } => {
            let _ = state.updates.send(JobUpdate {
                job_id,
                finished: job_finished,
            });
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

/// Wait until job `id` has finished (standalone mode and simple clients).
pub async fn wait_finished(state: &AppState, id: Uuid) -> Result<JobView, AppError> {
    let mut updates = state.updates.subscribe();
    loop {
        let view = view(state, id).await?.ok_or_else(|| AppError::NotFound {
            code: "job_not_found",
            what: format!("job {id}"),
        })?;
        if view.status == JobStatus::Completed {
            return Ok(view);
        }
        // Re-check on any update or every second (an update may be missed between the view and subscribe).
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while let Ok(u) = updates.recv().await {
                if u.job_id == id {
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
    while !token.is_cancelled() {
        if let Err(e) = consume_session(&state, &url, &token).await {
            tracing::warn!(error = %e, "result consumer session ended; reconnecting");
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
) -> Result<(), amqp::AmqpError> {
    let conn = amqp::connect(url, "baas-results", Duration::from_secs(30)).await?;
    let channel = conn.create_channel().await?;
    amqp::declare_topology(&channel).await?;
    channel.basic_qos(256, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            RESULTS_QUEUE.into(),
            "baas-results".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!("consuming results");
    loop {
        let delivery = tokio::select! {
            () = token.cancelled() => {
                let _ = conn.close(200, "baas shutting down".into()).await;
                return Ok(());
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
        let result = match TaskResult::decode(&delivery.data) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "undecodable result dropped");
                delivery.reject(BasicRejectOptions { requeue: false }).await?;
                continue;
            }
        };
        match ingest(state, result).await {
            Ok(_) => {
                delivery.ack(BasicAckOptions::default()).await?;
            }
            Err(e) => {
                tracing::error!(error = %e, "result not persisted; requeueing");
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    })
                    .await?;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
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
        match state.store.unpublished_tasks(before, 1000).await {
            Ok(tasks) if !tasks.is_empty() => match state.publisher.publish(&tasks).await {
                Ok(()) => {
                    tracing::info!(count = tasks.len(), "re-published tasks");
                    if let Err(e) = state
                        .store
                        .mark_published(tasks.iter().map(|t| t.task_id).collect())
                        .await
                    {
                        tracing::error!(error = %e, "cannot mark re-published tasks");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "re-publishing deferred"),
            },
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot read unpublished tasks"),
        }
    }
}
