//! # monitor: a live view of benchop's workers and tasks
//!
//! Consumes lifecycle events from the `benchop.events` topic exchange (its own auto-delete queue bound
//! to `#`), folds them into bounded in-memory state, and serves it as JSON (`/api/state`) and a small
//! page (`/`). This is the first cut: the full Flower-like dashboard (history store, queue depths, charts,
//! controls, auth, Prometheus) is tracked as its own issue and builds on this state machine.
//!
//! ## Layout
//! - [`MonitorState`]: the event fold; tolerant of lost and out-of-order events.
//! - [`app`]: the HTTP router; [`run`]: the AMQP consumer plus the server.

#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use protocol::topology::EVENTS_EXCHANGE;
use protocol::{Event, EventKind, amqp};

/// Monitor configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address of the dashboard.
    #[arg(long, env = "MONITOR_ADDR", default_value = "127.0.0.1:5555")]
    pub addr: SocketAddr,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Tasks remembered (oldest forgotten first).
    #[arg(long, env = "MONITOR_MAX_TASKS", default_value_t = 10_000)]
    pub max_tasks: usize,
}

/// Seconds without a heartbeat after which a worker counts as offline.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 10_000;

/// A worker as the monitor sees it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WorkerView {
    /// `online` or `offline`.
    pub status: String,
    /// Running tasks (last heartbeat).
    pub active: u32,
    /// Tasks finished (last heartbeat or counted from events).
    pub processed: u64,
    /// Tasks that failed.
    pub failed: u64,
    /// Last event time, Unix ms.
    pub last_seen_ms: u64,
}

/// A task as the monitor sees it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TaskState {
    /// `received`, `started`, `succeeded` or `failed`.
    pub state: String,
    /// Method, when known.
    pub method: Option<String>,
    /// Job, when known.
    pub job_id: Option<String>,
    /// Worker.
    pub worker: Option<String>,
    /// Runtime of a finished task, ms.
    pub runtime_ms: Option<u64>,
    /// Failure reason.
    pub reason: Option<String>,
}

/// The folded state, bounded by `max_tasks`.
#[derive(Debug, Default, Serialize)]
pub struct MonitorState {
    /// Workers by name.
    pub workers: BTreeMap<String, WorkerView>,
    /// Tasks by id.
    pub tasks: HashMap<String, TaskState>,
    /// Events by type since start.
    pub event_counts: BTreeMap<String, u64>,
    #[serde(skip)]
    order: VecDeque<String>,
    #[serde(skip)]
    max_tasks: usize,
}

fn rank(state: &str) -> u8 {
    match state {
        "received" => 1,
        "started" => 2,
        "succeeded" | "failed" => 3,
        _ => 0,
    }
}

impl MonitorState {
    /// Empty state remembering at most `max_tasks` tasks.
    pub fn new(max_tasks: usize) -> Self {
        Self {
            max_tasks: max_tasks.max(1),
            ..Self::default()
        }
    }

    fn task(&mut self, id: String) -> &mut TaskState {
        if !self.tasks.contains_key(&id) {
            if self.order.len() >= self.max_tasks
                && let Some(old) = self.order.pop_front()
            {
                self.tasks.remove(&old);
            }
            self.order.push_back(id.clone());
        }
        self.tasks.entry(id).or_default()
    }

    /// Move a task forward; a late "started" never overwrites "succeeded" (events may arrive out of order).
    fn advance(&mut self, id: String, state: &str) -> &mut TaskState {
        let t = self.task(id);
        if rank(state) >= rank(&t.state) {
            t.state = state.to_owned();
        }
        t
    }

    fn worker(&mut self, name: &str, ts: u64) -> &mut WorkerView {
        let w = self.workers.entry(name.to_owned()).or_default();
        w.status = "online".to_owned();
        w.last_seen_ms = w.last_seen_ms.max(ts);
        w
    }

    /// Fold one event in.
    pub fn apply(&mut self, event: &Event) {
        *self
            .event_counts
            .entry(event.kind.routing_key().to_owned())
            .or_default() += 1;
        let ts = event.ts_ms;
        match &event.kind {
            EventKind::TaskReceived {
                task_id,
                job_id,
                method,
                worker,
            } => {
                self.worker(worker, ts);
                let t = self.advance(task_id.to_string(), "received");
                t.method = Some(method.clone());
                t.job_id = Some(job_id.to_string());
                t.worker = Some(worker.clone());
            }
            EventKind::TaskStarted { task_id, worker } => {
                self.worker(worker, ts);
                self.advance(task_id.to_string(), "started").worker = Some(worker.clone());
            }
            EventKind::TaskSucceeded {
                task_id,
                worker,
                runtime_ms,
            } => {
                self.worker(worker, ts);
                let t = self.advance(task_id.to_string(), "succeeded");
                t.worker = Some(worker.clone());
                t.runtime_ms = Some(*runtime_ms);
            }
            EventKind::TaskFailed {
                task_id,
                worker,
                reason,
            } => {
                self.worker(worker, ts).failed += 1;
                let t = self.advance(task_id.to_string(), "failed");
                t.worker = Some(worker.clone());
                t.reason = Some(reason.clone());
            }
            EventKind::WorkerOnline { worker, .. } => {
                self.worker(worker, ts);
            }
            EventKind::WorkerHeartbeat {
                worker,
                active,
                processed,
            } => {
                let w = self.worker(worker, ts);
                w.active = *active;
                w.processed = w.processed.max(*processed);
            }
            EventKind::WorkerOffline { worker } => {
                self.worker(worker, ts).status = "offline".to_owned();
            }
            EventKind::JobCreated { .. } | EventKind::JobFinished { .. } => {}
        }
    }

    /// Mark workers silent for longer than [`HEARTBEAT_TIMEOUT_MS`] as offline.
    pub fn expire(&mut self, now_ms: u64) {
        for w in self.workers.values_mut() {
            if now_ms.saturating_sub(w.last_seen_ms) > HEARTBEAT_TIMEOUT_MS {
                w.status = "offline".to_owned();
            }
        }
    }
}

/// Shared state. A `std::sync::Mutex` on purpose: held for microseconds, never across an `.await`.
pub type Shared = Arc<Mutex<MonitorState>>;

/// An [`EventSink`](protocol::EventSink) that folds events straight into a monitor's state: the
/// monitor of standalone mode, where there is no broker to carry them.
#[derive(Clone)]
pub struct StateSink(pub Shared);

impl protocol::EventSink for StateSink {
    fn emit(&self, kind: EventKind) {
        let event = Event::now(kind);
        match self.0.lock() {
            Ok(mut s) => s.apply(&event),
            Err(poisoned) => poisoned.into_inner().apply(&event),
        }
    }
}

/// The dashboard router.
pub fn app(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/state", get(api_state))
        .with_state(state)
}

async fn api_state(State(state): State<Shared>) -> Json<serde_json::Value> {
    let mut s = match state.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    };
    s.expire(protocol::task::now_ms());
    Json(serde_json::to_value(&*s).unwrap_or_default())
}

/// Consume events and serve the dashboard until `token` is cancelled.
pub async fn run(config: Config, token: CancellationToken) -> anyhow::Result<()> {
    let shared: Shared = Arc::new(Mutex::new(MonitorState::new(config.max_tasks)));
    let consumer = tokio::spawn(consume(
        config.amqp_url.clone(),
        Arc::clone(&shared),
        token.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "monitor listening");
    axum::serve(listener, app(shared))
        .with_graceful_shutdown(token.clone().cancelled_owned())
        .await?;
    token.cancel();
    let _ = consumer.await;
    Ok(())
}

async fn consume(url: String, shared: Shared, token: CancellationToken) {
    while !token.is_cancelled() {
        if let Err(e) = consume_session(&url, &shared, &token).await {
            tracing::warn!(error = %e, "event consumer ended; reconnecting");
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }
}

async fn consume_session(
    url: &str,
    shared: &Shared,
    token: &CancellationToken,
) -> Result<(), amqp::AmqpError> {
    let conn = amqp::connect(url, "monitor", Duration::from_secs(30)).await?;
    let channel = conn.create_channel().await?;
    amqp::declare_topology(&channel).await?;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    let name = queue.name().clone();
    channel
        .queue_bind(
            name.clone(),
            EVENTS_EXCHANGE.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consume = BasicConsumeOptions {
        no_ack: true,
        ..BasicConsumeOptions::default()
    };
    let mut consumer = channel
        .basic_consume(name, "monitor".into(), consume, FieldTable::default())
        .await?;
    loop {
        let next = tokio::select! {
            () = token.cancelled() => return Ok(()),
            n = consumer.next() => n,
        };
        let Some(delivery) = next else { return Ok(()) };
        let delivery = delivery?;
        match Event::decode(&delivery.data) {
            Ok(event) => match shared.lock() {
                Ok(mut s) => s.apply(&event),
                Err(poisoned) => poisoned.into_inner().apply(&event),
            },
            Err(e) => tracing::debug!(error = %e, "undecodable event ignored"),
        }
    }
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>benchop monitor</title>
<style>body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}</style>
</head><body>
<h1>benchop monitor</h1>
<p>First cut: workers and task counts from the live event stream (refreshes every 2 s). The full dashboard is on its way.</p>
<h2>Workers</h2><table id="workers"><thead><tr><th>worker</th><th>status</th><th>active</th><th>processed</th><th>failed</th></tr></thead><tbody></tbody></table>
<h2>Tasks by state</h2><ul id="tasks"></ul>
<script>
async function refresh(){
  const s = await (await fetch('api/state')).json();
  const rows = Object.entries(s.workers).map(([n,w]) => `<tr><td>${n}</td><td>${w.status}</td><td>${w.active}</td><td>${w.processed}</td><td>${w.failed}</td></tr>`);
  document.querySelector('#workers tbody').innerHTML = rows.join('');
  const counts = {};
  for (const t of Object.values(s.tasks)) counts[t.state] = (counts[t.state]||0)+1;
  document.getElementById('tasks').innerHTML = Object.entries(counts).map(([k,v]) => `<li>${k}: ${v}</li>`).join('');
}
refresh(); setInterval(refresh, 2000);
</script></body></html>"#;

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn ev(ts_ms: u64, kind: EventKind) -> Event {
        Event { ts_ms, kind }
    }

    #[test]
    fn a_missed_start_still_ends_succeeded_and_late_events_do_not_regress() {
        let mut s = MonitorState::new(10);
        let id = Uuid::new_v4();
        s.apply(&ev(
            1,
            EventKind::TaskSucceeded {
                task_id: id,
                worker: "w".into(),
                runtime_ms: 5,
            },
        ));
        s.apply(&ev(
            2,
            EventKind::TaskStarted {
                task_id: id,
                worker: "w".into(),
            },
        ));
        assert_eq!(s.tasks[&id.to_string()].state, "succeeded");
        assert_eq!(s.workers["w"].status, "online");
    }

    #[test]
    fn memory_is_bounded_and_silent_workers_go_offline() {
        let mut s = MonitorState::new(3);
        for _ in 0..10 {
            s.apply(&ev(
                1,
                EventKind::TaskStarted {
                    task_id: Uuid::new_v4(),
                    worker: "w".into(),
                },
            ));
        }
        assert_eq!(s.tasks.len(), 3);
        s.expire(1 + HEARTBEAT_TIMEOUT_MS + 1);
        assert_eq!(s.workers["w"].status, "offline");
    }
}
