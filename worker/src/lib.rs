//! # worker: prices benchop tasks
//!
//! Consumes tasks from RabbitMQ (or from an in-process queue in standalone mode), runs the benchop kernel
//! on a blocking thread with the task's time limit, publishes the result with a publisher confirm, and
//! only then acks the task: a crash before the ack costs a redelivery, never a result.
//!
//! ## Layout
//! - [`execute`]: task → result, synchronous and pure (tuning, timing, relerr, failure classes).
//! - [`Worker`]: the async shell around it (events, counters, panics, blocking threads).
//! - [`run`]: the AMQP consume loop with reconnect and graceful drain; [`run_local`]: the in-process one.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod control;
pub mod execute;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::BasicRejectOptions;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
};
use lapin::types::FieldTable;
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use protocol::amqp::{self, AmqpError, AmqpEvents};
use protocol::topology::{RESULTS_EXCHANGE, RESULTS_ROUTING_KEY, TASKS_QUEUE};
use protocol::{EventKind, EventSink, FailureKind, Outcome, SCHEMA_VERSION, TaskMessage, TaskResult};

/// Worker configuration (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Tasks run at once (and the prefetch count). Kernels use all cores through rayon, so 1 keeps
    /// timings comparable.
    #[arg(long, env = "WORKER_CONCURRENCY", default_value_t = 1)]
    pub concurrency: u16,
    /// Name shown in results, events and the monitor; default `worker-<pid>@<host>`.
    #[arg(long, env = "WORKER_NAME")]
    pub name: Option<String>,
    /// Seconds to let running tasks finish on shutdown before leaving them to be redelivered.
    #[arg(long, env = "WORKER_DRAIN_SECS", default_value_t = 30)]
    pub drain_secs: u64,
    /// Publish task and worker events for the monitor (`false` turns them off, e.g. to measure their
    /// cost with `benchop loadtest`).
    #[arg(long, env = "WORKER_EVENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub events: bool,
}

impl Config {
    /// The worker's name.
    pub fn worker_name(&self) -> String {
        self.name.clone().unwrap_or_else(default_name)
    }
}

fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("worker-{}@{host}", std::process::id())
}

/// The async shell around [`execute::execute`]: counters and lifecycle events.
pub struct Worker {
    name: String,
    active: AtomicU32,
    processed: AtomicU64,
    slots: AtomicU32,
    /// Revoked tasks, cancelled jobs, and the running tasks' cancel flags.
    pub control: control::Registry,
}

impl Worker {
    /// A worker called `name`.
    pub fn new(name: String) -> Arc<Self> {
        Arc::new(Self {
            name,
            active: AtomicU32::new(0),
            processed: AtomicU64::new(0),
            slots: AtomicU32::new(1),
            control: control::Registry::default(),
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Tasks running now.
    pub fn active(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }

    /// Tasks finished since start.
    pub fn processed(&self) -> u64 {
        self.processed.load(Ordering::Relaxed)
    }

    /// Tasks it runs at once now.
    pub fn slots(&self) -> u32 {
        self.slots.load(Ordering::Relaxed)
    }

    /// Run one task on a blocking thread. A panicking kernel becomes a `panicked` failure.
    pub async fn handle(&self, task: TaskMessage, events: &dyn EventSink) -> TaskResult {
        self.active.fetch_add(1, Ordering::Relaxed);
        events.emit(EventKind::TaskStarted {
            task_id: task.task_id,
            worker: self.name.clone(),
        });
        let name = self.name.clone();
        let for_kernel = task.clone();
        let cancel = execute::cancel_for(&task);
        self.control.started(task.task_id, task.job_id, cancel.clone());
        let joined = tokio::task::spawn_blocking(move || execute::execute(&for_kernel, &name, &cancel)).await;
        self.control.finished(&task.task_id);
        let result = joined.unwrap_or_else(|e| {
            let reason = if e.is_panic() {
                "the kernel panicked"
            } else {
                "the kernel was aborted"
            };
            TaskResult {
                schema_version: SCHEMA_VERSION,
                task_id: task.task_id,
                job_id: task.job_id,
                method: task.method.clone(),
                worker: self.name.clone(),
                started_ms: protocol::task::now_ms(),
                finished_ms: protocol::task::now_ms(),
                outcome: Outcome::Failed {
                    kind: FailureKind::Panicked,
                    reason: reason.to_owned(),
                },
            }
        });
        self.active.fetch_sub(1, Ordering::Relaxed);
        self.processed.fetch_add(1, Ordering::Relaxed);
        result
    }

    fn finished(&self, result: &TaskResult, events: &dyn EventSink) {
        let worker = self.name.clone();
        events.emit(match &result.outcome {
            Outcome::Succeeded(_) => EventKind::TaskSucceeded {
                task_id: result.task_id,
                worker,
                runtime_ms: result.finished_ms.saturating_sub(result.started_ms),
            },
            Outcome::Failed {
                kind: FailureKind::Cancelled,
                ..
            } => EventKind::TaskRevoked {
                task_id: result.task_id,
                worker: Some(worker),
                terminated: true,
            },
            Outcome::Failed { reason, .. } => EventKind::TaskFailed {
                task_id: result.task_id,
                worker,
                reason: reason.clone(),
            },
        });
    }
}

/// Consume tasks from RabbitMQ until `token` is cancelled, reconnecting with backoff when the broker
/// goes away. On cancel: stop consuming, let running tasks finish for `drain_secs`, then close.
pub async fn run(config: Config, token: CancellationToken) -> Result<(), AmqpError> {
    let worker = Worker::new(config.worker_name());
    tracing::info!(worker = worker.name(), url = %amqp::redact(&config.amqp_url), "worker starting");
    let mut first = true;
    while !token.is_cancelled() {
        match session(&config, &worker, &token).await {
            Ok(()) => break,
            // The first connection fails loudly (misconfiguration); later ones are outages to ride out.
            Err(e @ AmqpError::Unreachable { .. }) if first => return Err(e),
            // A URL that cannot work or a broker whose certificate is not trusted: retrying cannot help.
            Err(e @ (AmqpError::Config(_) | AmqpError::Untrusted { .. })) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "broker session ended; reconnecting");
                tokio::select! {
                    () = token.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        first = false;
    }
    tracing::info!(
        worker = worker.name(),
        processed = worker.processed(),
        "worker stopped"
    );
    Ok(())
}

async fn session(config: &Config, worker: &Arc<Worker>, token: &CancellationToken) -> Result<(), AmqpError> {
    let conn = amqp::connect(&config.amqp_url, worker.name(), Duration::from_secs(30)).await?;
    let channel = conn.create_channel().await?;
    amqp::declare_topology(&channel).await?;
    let mut slots = config.concurrency.max(1);
    if worker.slots.load(Ordering::Relaxed) > 1 {
        // Changed by a control command in an earlier session: keep it across reconnects.
        slots = u16::try_from(worker.slots()).unwrap_or(u16::MAX);
    }
    worker.slots.store(u32::from(slots), Ordering::Relaxed);
    channel.basic_qos(slots, BasicQosOptions::default()).await?;
    let results = amqp::confirm_channel(&conn).await?;
    let events: Arc<dyn EventSink> = if config.events {
        Arc::new(AmqpEvents::spawn(conn.create_channel().await?))
    } else {
        Arc::new(protocol::NoEvents)
    };
    let mut tag = format!("{}-{}", worker.name(), uuid::Uuid::new_v4().simple());
    let mut consumer = channel
        .basic_consume(
            TASKS_QUEUE.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (action_tx, mut actions) = mpsc::channel(16);
    let listening = token.child_token();
    let _stop_listening = listening.clone().drop_guard();
    tokio::spawn({
        let (ch, w) = (conn.create_channel().await?, Arc::clone(worker));
        async move {
            if let Err(e) = control::listen(ch, w, action_tx, listening).await {
                tracing::warn!(error = %e, "control queue closed");
            }
        }
    });
    events.emit(EventKind::WorkerOnline {
        worker: worker.name().to_owned(),
        concurrency: u32::from(slots),
    });
    tracing::info!(
        worker = worker.name(),
        concurrency = config.concurrency,
        "consuming tasks"
    );

    let tracker = TaskTracker::new();
    let beat = token.child_token();
    tokio::spawn(heartbeat(Arc::clone(worker), Arc::clone(&events), beat.clone()));
    let _stop_heartbeat = beat.drop_guard();
    // A consumer on a connection that died without an error frame may never yield again (as baas's
    // consumers guard too): check the connection now and then and start a new session when it is gone.
    let mut liveness = tokio::time::interval(LIVENESS_CHECK);
    let outcome = loop {
        tokio::select! {
            () = token.cancelled() => break Ok(()),
            _ = liveness.tick() => {
                if !(conn.status().connected() && channel.status().connected() && results.status().connected()) {
                    break Err(AmqpError::Stalled("the worker's connection", LIVENESS_CHECK));
                }
            }
            Some(action) = actions.recv() => match action {
                control::Action::Shutdown => {
                    tracing::info!("shutdown requested by a control command");
                    token.cancel();
                }
                control::Action::SetConcurrency(n) => {
                    // Prefetch applies to consumers created after basic.qos: consume again under a new
                    // tag. Deliveries of the old consumer stay valid on the channel and are acked as usual.
                    let new_tag = format!("{}-{}", worker.name(), uuid::Uuid::new_v4().simple());
                    channel.basic_qos(n, BasicQosOptions::default()).await?;
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    consumer = channel
                        .basic_consume(
                            TASKS_QUEUE.into(),
                            new_tag.as_str().into(),
                            BasicConsumeOptions::default(),
                            FieldTable::default(),
                        )
                        .await?;
                    tag = new_tag;
                    worker.slots.store(u32::from(n), Ordering::Relaxed);
                    tracing::info!(concurrency = n, "concurrency changed by a control command");
                }
            },
            next = consumer.next() => match next {
                None => break Err(AmqpError::Lapin(lapin::Error::from(lapin::ErrorKind::InvalidConnectionState(
                    lapin::ConnectionState::Closed,
                )))),
                Some(Err(e)) => break Err(e.into()),
                Some(Ok(delivery)) => {
                    let (worker, results, events) = (Arc::clone(worker), results.clone(), Arc::clone(&events));
                    tracker.spawn(async move { process(delivery, &worker, &results, events.as_ref()).await });
                }
            },
        }
    };
    if outcome.is_ok() {
        // Graceful: no new deliveries, then drain what is running; unacked leftovers are redelivered.
        let _ = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    tracker.close();
    if tokio::time::timeout(Duration::from_secs(config.drain_secs), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("drain timed out; unfinished tasks will be redelivered");
    }
    events.emit(EventKind::WorkerOffline {
        worker: worker.name().to_owned(),
    });
    if outcome.is_ok() {
        tokio::time::sleep(Duration::from_millis(50)).await; // let the offline event out
        let _ = conn.close(200, "worker shutting down".into()).await;
    }
    outcome
}

/// How often a session checks that its connection and channels are still open.
const LIVENESS_CHECK: Duration = Duration::from_secs(2);
/// Longest wait for a result's confirm and the task's ack; beyond it the task is left to redelivery.
const SETTLE_LIMIT: Duration = Duration::from_secs(30);

async fn process(
    delivery: lapin::message::Delivery,
    worker: &Worker,
    results: &lapin::Channel,
    events: &dyn EventSink,
) {
    let task = match TaskMessage::decode(&delivery.data) {
        Ok(t) => t,
        Err(e) => {
            // Poison: never requeue; the quorum queue dead-letters it to benchop.dead.
            tracing::warn!(error = %e, "undecodable task rejected to the dead-letter queue");
            let _ = delivery.reject(BasicRejectOptions { requeue: false }).await;
            return;
        }
    };
    events.emit(EventKind::TaskReceived {
        task_id: task.task_id,
        job_id: task.job_id,
        method: task.method.clone(),
        worker: worker.name().to_owned(),
    });
    let result = if worker.control.is_revoked(&task.task_id, &task.job_id) {
        // Revoked (or its job cancelled) before it ran: report it cancelled without running it.
        let now = protocol::task::now_ms();
        TaskResult {
            schema_version: SCHEMA_VERSION,
            task_id: task.task_id,
            job_id: task.job_id,
            method: task.method.clone(),
            worker: worker.name().to_owned(),
            started_ms: now,
            finished_ms: now,
            outcome: Outcome::Failed {
                kind: FailureKind::Cancelled,
                reason: "revoked before it ran".to_owned(),
            },
        }
    } else {
        worker.handle(task, events).await
    };
    let id = result.task_id.to_string();
    // Bounded: a confirm or ack that never comes (a dead connection) must not hold the task's slot; the
    // unacked task is redelivered when the connection goes, and a duplicate result is ignored by baas.
    let confirmed = tokio::time::timeout(
        SETTLE_LIMIT,
        amqp::publish_confirmed(
            results,
            RESULTS_EXCHANGE,
            RESULTS_ROUTING_KEY,
            [(id, result.encode())],
        ),
    )
    .await
    .unwrap_or(Err(AmqpError::Stalled("confirming a result", SETTLE_LIMIT)));
    match confirmed {
        Ok(()) => {
            // If the ack fails or never completes, the result is safe at the broker: the task will be
            // redelivered and its result deduplicated.
            match tokio::time::timeout(SETTLE_LIMIT, delivery.ack(BasicAckOptions::default())).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, task = %result.task_id, "ack failed after the result was confirmed");
                }
                Err(_) => {
                    tracing::warn!(task = %result.task_id, "ack timed out after the result was confirmed")
                }
            }
            worker.finished(&result, events);
        }
        Err(e) => {
            tracing::error!(error = %e, task = %result.task_id, "result not confirmed; requeueing the task");
            let _ = tokio::time::timeout(
                SETTLE_LIMIT,
                delivery.nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                }),
            )
            .await;
        }
    }
}

/// Emit a heartbeat with the worker's load every [`HEARTBEAT`] until `stop` is cancelled.
async fn heartbeat(worker: Arc<Worker>, events: Arc<dyn EventSink>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => events.emit(EventKind::WorkerHeartbeat {
                worker: worker.name().to_owned(),
                active: worker.active(),
                processed: worker.processed(),
                load: control::load_average(),
                concurrency: Some(worker.slots()),
            }),
        }
    }
}

/// How often workers report their load.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// The in-process queue of standalone mode: tasks in, results out.
pub struct LocalQueue {
    /// Tasks to run, shared by the pool's workers.
    pub tasks: Arc<Mutex<mpsc::Receiver<TaskMessage>>>,
    /// Where results go.
    pub results: mpsc::Sender<TaskResult>,
}

/// Run `n` workers on an in-process queue until it closes or `token` is cancelled.
pub async fn run_local(queue: LocalQueue, n: usize, events: Arc<dyn EventSink>, token: CancellationToken) {
    let tracker = TaskTracker::new();
    for i in 0..n.max(1) {
        let worker = Worker::new(format!("local-{}", i + 1));
        let (tasks, results, events, token) = (
            Arc::clone(&queue.tasks),
            queue.results.clone(),
            Arc::clone(&events),
            token.clone(),
        );
        let beat = token.child_token();
        tracker.spawn(heartbeat(Arc::clone(&worker), Arc::clone(&events), beat.clone()));
        tracker.spawn(async move {
            let _stop_heartbeat = beat.drop_guard();
            events.emit(EventKind::WorkerOnline {
                worker: worker.name().to_owned(),
                concurrency: 1,
            });
            loop {
                let next = tokio::select! {
                    () = token.cancelled() => None,
                    t = async { tasks.lock().await.recv().await } => t,
                };
                let Some(task) = next else { break };
                events.emit(EventKind::TaskReceived {
                    task_id: task.task_id,
                    job_id: task.job_id,
                    method: task.method.clone(),
                    worker: worker.name().to_owned(),
                });
                let result = worker.handle(task, events.as_ref()).await;
                worker.finished(&result, events.as_ref());
                if results.send(result).await.is_err() {
                    break;
                }
            }
            events.emit(EventKind::WorkerOffline {
                worker: worker.name().to_owned(),
            });
        });
    }
    tracker.close();
    tracker.wait().await;
}
