//! # monitor: a live dashboard of benchop's workers, tasks, jobs and queues
//!
//! Consumes lifecycle events from the `benchop.events` topic exchange (its own auto-delete queue bound
//! to `#`), folds them into compact bounded memory ([`state`]), records them in SQLite ([`store`]) so
//! history survives a restart, reads queue depths from the broker ([`broker`]), and serves pages, a JSON
//! API (OpenAPI at `/openapi.json`), a live stream (SSE) and Prometheus `/metrics` ([`api`]). Controls
//! (revoke, terminate, shut down, concurrency) are published on the control exchange; retry and cancel
//! go through baas.
//!
//! ## Layout
//! - [`state`] — the event fold; tolerant of lost and out-of-order events.
//! - [`store`] — the SQLite history, written by its own thread.
//! - [`broker`] — queue statistics (management API, or AMQP) and dead letters.
//! - [`metrics`] — Prometheus.
//! - [`api`] — the HTTP router, auth, URL prefix, SSE, controls.
//! - [`bench`] — `monitor bench`, the fold + store throughput and memory benchmark.

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod bench;
pub mod broker;
pub mod metrics;
pub mod state;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use tokio_util::sync::CancellationToken;

use protocol::topology::{self, EVENTS_EXCHANGE};
use protocol::{Event, EventKind, amqp};

pub use api::app;
pub use state::{Fold, HEARTBEAT_TIMEOUT_MS, TaskStatus, WorkerView};

/// Monitor configuration (flags and environment).
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
    /// Name of this monitor: its events queue is `benchop.monitor.<name>`, durable, so events sent while
    /// it reconnects or restarts wait for it. Give each monitor on one vhost its own name.
    #[arg(long, env = "MONITOR_NAME", default_value = "default", value_parser = parse_name)]
    pub name: String,
    /// RabbitMQ management API base URL (default `http://<AMQP host>:15672` with the AMQP credentials;
    /// `off` to read queues over AMQP only).
    #[arg(long, env = "RABBITMQ_MANAGEMENT_URL")]
    pub management_url: Option<String>,
    /// Tasks kept in memory (oldest forgotten first; older ones stay in the history store).
    #[arg(long, env = "MONITOR_MAX_TASKS", default_value_t = 10_000)]
    pub max_tasks: usize,
    /// SQLite file for the history (created if missing). Without it history lives in memory and is lost
    /// on restart.
    #[arg(long, env = "MONITOR_DB")]
    pub db: Option<PathBuf>,
    /// Tasks kept in the history store (oldest pruned first; events: four times as many).
    #[arg(long, env = "MONITOR_HISTORY_ROWS", default_value_t = 1_000_000)]
    pub history_rows: u64,
    /// baas base URL, for retry, cancel and task results.
    #[arg(long, env = "BAAS_URL", default_value = "http://127.0.0.1:8080")]
    pub baas_url: String,
    /// Bearer token sent to baas.
    #[arg(long, env = "BAAS_TOKEN", hide_env_values = true)]
    pub baas_token: Option<String>,
    /// Require HTTP basic auth, `user:password`, on every page and API call.
    #[arg(long, env = "MONITOR_BASIC_AUTH", hide_env_values = true)]
    pub basic_auth: Option<String>,
    /// Require this bearer token (header, or `?access_token=` for the browser) on every page and API call.
    #[arg(long, env = "MONITOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Serve under this path prefix (behind a reverse proxy), e.g. `/monitor`.
    #[arg(long, env = "MONITOR_URL_PREFIX", default_value = "")]
    pub url_prefix: String,
    /// Disable every control (revoke, retry, cancel, shutdown, concurrency).
    #[arg(long, env = "MONITOR_READ_ONLY")]
    pub read_only: bool,
    /// Seconds between queue polls.
    #[arg(long, env = "MONITOR_QUEUE_POLL_SECS", default_value_t = 5)]
    pub queue_poll_secs: u64,
}

/// A monitor name: 1–64 ASCII letters, digits, `-` or `_` (it becomes part of a queue name).
fn parse_name(s: &str) -> Result<String, String> {
    if (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(s.to_owned())
    } else {
        Err("1 to 64 ASCII letters, digits, '-' or '_'".into())
    }
}

impl Config {
    /// Defaults with every optional feature off (tests, standalone).
    pub fn standalone(addr: SocketAddr) -> Self {
        Self {
            addr,
            amqp_url: String::new(),
            management_url: None,
            max_tasks: 10_000,
            db: None,
            history_rows: 1_000_000,
            baas_url: String::new(),
            baas_token: None,
            basic_auth: None,
            token: None,
            url_prefix: String::new(),
            read_only: true,
            queue_poll_secs: 5,
            name: "default".into(),
        }
    }
}

/// The state behind one lock: the fold plus the handles it writes through.
#[derive(Debug)]
pub struct MonitorState {
    /// The fold.
    pub fold: Fold,
    /// The history store, when there is one.
    pub store: Option<Arc<store::Store>>,
    /// Its writer.
    pub sink: Option<store::StoreSink>,
    /// Metrics, when registered.
    pub metrics: Option<metrics::Metrics>,
}

impl MonitorState {
    /// In-memory state retaining `max_tasks` tasks, with an in-memory history store.
    pub fn new(max_tasks: usize) -> Self {
        let store = store::Store::open(None, 1_000_000).ok().map(Arc::new);
        Self::with_store(Fold::new(max_tasks), store.as_ref())
    }

    /// State over `store` (its writer thread is started here).
    pub fn with_store(fold: Fold, store: Option<&Arc<store::Store>>) -> Self {
        Self {
            fold,
            store: store.cloned(),
            sink: store.map(store::Store::spawn_writer),
            metrics: metrics::Metrics::new().ok(),
        }
    }

    /// Fold one event, record it and count it.
    pub fn apply(&mut self, event: &Event) {
        let touched = self.fold.apply(event);
        if let Some(m) = &self.metrics {
            m.event(event.kind.routing_key());
            if let (EventKind::TaskSucceeded { runtime_ms, .. }, state::Touched::Task(rec)) =
                (&event.kind, touched)
            {
                m.runtime(self.fold.strings().name(rec.method), *runtime_ms);
            }
        }
        if let Some(sink) = &self.sink {
            sink.record(event, touched, &self.fold);
        }
    }
}

/// The monitor's shared state. A `std::sync::Mutex` on purpose: held for microseconds, never across an
/// `.await`.
pub type Shared = Arc<Mutex<MonitorState>>;

/// Lock the shared state (a poisoned lock is still usable: one event's fold cannot be left half-done in a
/// way later events could not repair).
pub fn lock(shared: &Shared) -> MutexGuard<'_, MonitorState> {
    match shared.lock() {
        Ok(s) => s,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// An [`EventSink`](protocol::EventSink) that folds events straight into a monitor's state: the
/// monitor of standalone mode, where there is no broker to carry them.
#[derive(Clone)]
pub struct StateSink(pub Shared);

impl protocol::EventSink for StateSink {
    fn emit(&self, kind: EventKind) {
        lock(&self.0).apply(&Event::now(kind));
    }
}

/// Consume events and serve the dashboard until `token` is cancelled.
pub async fn run(config: Config, token: CancellationToken) -> anyhow::Result<()> {
    let store = Arc::new(match &config.db {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            store::Store::open(Some(path), config.history_rows)?
        }
        None => {
            tracing::warn!("no MONITOR_DB: history is kept in memory only and lost on restart");
            store::Store::open(None, config.history_rows)?
        }
    });
    let mut fold = Fold::new(config.max_tasks);
    let restored = {
        let store = Arc::clone(&store);
        let max = config.max_tasks;
        tokio::task::spawn_blocking(move || {
            let loaded = store.load_into(&mut fold, max);
            (fold, loaded)
        })
        .await?
    };
    let (fold, loaded) = restored;
    tracing::info!(tasks = loaded?, "history loaded");
    let shared: Shared = Arc::new(Mutex::new(MonitorState::with_store(fold, Some(&store))));
    let hub = api::Hub::new(config.clone(), Arc::clone(&shared));

    let consumer = tokio::spawn(consume(
        config.amqp_url.clone(),
        topology::monitor_queue(&config.name),
        Arc::clone(&shared),
        token.clone(),
    ));
    let poller = tokio::spawn(api::poll_queues(hub.clone(), token.clone()));
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, prefix = %config.url_prefix, "monitor listening");
    axum::serve(listener, api::router(hub))
        .with_graceful_shutdown(token.clone().cancelled_owned())
        .await?;
    token.cancel();
    let _ = consumer.await;
    let _ = poller.await;
    let sink = lock(&shared).sink.clone();
    if let Some(sink) = sink {
        tokio::task::spawn_blocking(move || sink.flush()).await?;
    }
    Ok(())
}

async fn consume(url: String, queue: String, shared: Shared, token: CancellationToken) {
    while !token.is_cancelled() {
        if let Err(e) = consume_session(&url, &queue, &shared, &token).await {
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
    queue: &str,
    shared: &Shared,
    token: &CancellationToken,
) -> Result<(), amqp::AmqpError> {
    let conn = amqp::connect(url, "monitor", Duration::from_secs(30)).await?;
    let channel = conn.create_channel().await?;
    amqp::declare_topology(&channel).await?;
    // Durable and named, so it outlives this connection, a broker restart and a monitor restart; bounded
    // in length and deleted when unused for long (see `topology::MONITOR_QUEUE_PREFIX`).
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut args = FieldTable::default();
    args.insert("x-queue-type".into(), AMQPValue::LongString("classic".into()));
    args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(topology::MONITOR_QUEUE_MAX_LENGTH),
    );
    args.insert("x-overflow".into(), AMQPValue::LongString("drop-head".into()));
    args.insert(
        "x-expires".into(),
        AMQPValue::LongLongInt(topology::MONITOR_QUEUE_EXPIRES_MS),
    );
    channel.queue_declare(queue.into(), options, args).await?;
    let name: lapin::types::ShortString = queue.into();
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
        match Event::decode_batch(&delivery.data) {
            Ok(events) => {
                let mut state = lock(shared);
                for event in &events {
                    state.apply(event);
                }
            }
            Err(e) => tracing::debug!(error = %e, "undecodable event ignored"),
        }
    }
}
