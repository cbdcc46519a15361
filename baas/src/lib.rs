//! # baas: benchop as a service
//!
//! The HTTP front: validates a job request, persists the job and its tasks, publishes the tasks (with
//! publisher confirms), consumes results idempotently by task id, and serves status and ranking.
//!
//! ## Layout
//! - [`routes`]: the axum router (`app(state)`), one handler per endpoint.
//! - [`jobs`]: submit a job, view a job, ingest a result: the logic shared by HTTP, AMQP and standalone mode.
//! - [`store`]: persistence (embedded SQLite, or PostgreSQL with `BAAS_DATABASE_URL`); [`publisher`]: RabbitMQ or in-process task publishing.
//! - [`ranking`]: results → ranking; [`error`]: the one `IntoResponse` for errors.
//! - [`run`]: the distributed service (HTTP + AMQP result consumer + republisher).

#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod access;
pub mod accounts;
pub mod admin;
pub mod auth;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod plot;
pub mod publisher;
pub mod ranking;
pub mod routes;
pub mod sharing;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use protocol::EventSink;

pub use jobs::JobUpdate;
pub use publisher::{AmqpPublisher, LocalPublisher, PublishError, TaskPublisher};
pub use routes::app;
pub use store::Store;

/// baas configuration (flags and environment).
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address the HTTP API listens on.
    #[arg(long, env = "BAAS_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Directory of the embedded job store (`baas.db`).
    #[arg(long, env = "BENCHOP_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Job store URL, overriding the SQLite file in `--data-dir`: `postgres://user@host:5432/db` (or
    /// `postgresql://…`; libpq URL parameters apply) for PostgreSQL, `sqlite:<path>` or a path for SQLite.
    #[arg(long, env = "BAAS_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Per-task time limit in seconds; the worker stops the kernel after it.
    #[arg(long, env = "BAAS_TASK_TIME_LIMIT_SECS", default_value_t = 120)]
    pub task_time_limit_secs: u64,
    /// Most tasks one job may fan out to (methods × replicas); larger jobs get `422 job_too_large`.
    #[arg(long, env = "BAAS_MAX_TASKS_PER_JOB", default_value_t = Limits::default().max_tasks_per_job)]
    pub max_tasks_per_job: usize,
    /// Most tasks one user's jobs may have waiting or running at once; more get `429 quota_exceeded`.
    #[arg(long, env = "BAAS_USER_MAX_TASKS_IN_FLIGHT", default_value_t = Limits::default().user_tasks_in_flight)]
    pub user_max_tasks_in_flight: u64,
    /// Most tasks one user may submit in 24 hours; more get `429 quota_exceeded`.
    #[arg(long, env = "BAAS_USER_MAX_TASKS_PER_DAY", default_value_t = Limits::default().user_tasks_per_day)]
    pub user_max_tasks_per_day: u64,
    /// File with API tokens, one per line (`#` comments allowed). When tokens are configured (here or
    /// in `BAAS_API_TOKENS`, comma-separated), mutating endpoints require `Authorization: Bearer <token>`.
    #[arg(long, env = "BAAS_API_TOKEN_FILE")]
    pub api_token_file: Option<PathBuf>,
    /// Origins allowed by CORS, comma-separated (`*` for any); none by default.
    #[arg(long, env = "BAAS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
}

/// Per-job and per-user limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most tasks in one job.
    pub max_tasks_per_job: usize,
    /// Most tasks of one user's jobs without a result at once.
    pub user_tasks_in_flight: u64,
    /// Most tasks one user may submit in 24 hours.
    pub user_tasks_per_day: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_tasks_per_job: 100_000,
            user_tasks_in_flight: 200_000,
            user_tasks_per_day: 1_000_000,
        }
    }
}

/// Shared state of the HTTP handlers and the result consumer. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The job store.
    pub store: Store,
    /// Where tasks go.
    pub publisher: Arc<dyn TaskPublisher>,
    /// Where lifecycle events go.
    pub events: Arc<dyn EventSink>,
    /// Progress of every job, for waiters and streams: this process's own updates, and (on PostgreSQL)
    /// those of the other replicas, heard by [`listen_updates`].
    pub updates: broadcast::Sender<JobUpdate>,
    /// This process's id among the replicas sharing a store (tags its announced updates).
    pub origin: uuid::Uuid,
    /// Per-task time limit.
    pub task_time_limit: Duration,
    /// Per-job limits.
    pub limits: Limits,
    /// API tokens for mutating endpoints; empty: open (the default, for loopback use).
    pub auth: Arc<auth::Tokens>,
    /// CORS origins.
    pub cors_origins: Arc<Vec<String>>,
    /// Prometheus metrics.
    pub metrics: metrics::Metrics,
    /// Whether users exist (authentication on), failed authentications per client.
    pub accounts: Arc<auth::Accounts>,
}

impl AppState {
    /// State over a store and a publisher.
    pub fn new(store: Store, publisher: Arc<dyn TaskPublisher>, events: Arc<dyn EventSink>) -> Self {
        let (updates, _) = broadcast::channel(1024);
        Self {
            store,
            publisher,
            events,
            updates,
            origin: uuid::Uuid::new_v4(),
            task_time_limit: Duration::from_millis(protocol::api::DEFAULT_TIME_LIMIT_MS),
            limits: Limits::default(),
            auth: Arc::new(auth::Tokens::default()),
            cors_origins: Arc::new(Vec::new()),
            metrics: metrics::Metrics::new(),
            accounts: Arc::new(auth::Accounts::default()),
        }
    }
}

impl AppState {
    /// Announce job updates to this process's waiters and streams and to the other replicas on the
    /// store. Best-effort like every notification: a waiter also re-reads the job on its own timer.
    pub async fn announce(&self, updates: &[JobUpdate]) {
        for u in updates {
            let _ = self.updates.send(*u);
        }
        let pairs: Vec<(uuid::Uuid, bool)> = updates.iter().map(|u| (u.job_id, u.finished)).collect();
        if let Err(e) = self.store.notify_updates(self.origin, &pairs).await {
            tracing::warn!(error = %e, "job updates not announced to the other replicas");
        }
    }
}

/// Forward the other replicas' job updates into `state.updates` until `token` is cancelled (PostgreSQL;
/// returns at once on SQLite, whose store has one process). After the listener (re)connects, every
/// waiter is woken to re-read its job, since updates announced meanwhile are not replayed.
pub async fn listen_updates(state: AppState, token: CancellationToken) {
    let updates = state.updates.clone();
    let resync = state.updates.clone();
    state
        .store
        .listen_updates(
            state.origin,
            move |job_id, finished| {
                let _ = updates.send(JobUpdate { job_id, finished });
            },
            move || {
                let _ = resync.send(JobUpdate {
                    job_id: jobs::EVERY_JOB,
                    finished: false,
                });
            },
            token,
        )
        .await;
}

/// Errors that stop the service.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Binding or serving HTTP failed.
    #[error("http: {0}")]
    Io(#[from] std::io::Error),
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The broker could not be reached at start-up.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// AMQP failed at start-up.
    #[error(transparent)]
    Amqp(#[from] protocol::amqp::AmqpError),
    /// The token file could not be read.
    #[error("api tokens: {0}")]
    Tokens(#[from] auth::TokenError),
}

/// Run the distributed service until `token` is cancelled: HTTP API, result consumer, republisher.
pub async fn run(config: Config, token: CancellationToken) -> Result<(), RunError> {
    let store = match &config.database_url {
        Some(url) => Store::connect(url).await?,
        None => {
            std::fs::create_dir_all(&config.data_dir)?;
            Store::open(Some(&config.data_dir.join("baas.db")))?
        }
    };
    tracing::info!(backend = ?store.kind(), "job store open");
    let publisher = AmqpPublisher::connect(&config.amqp_url, Duration::from_secs(30)).await?;
    // Events reconnect on their own after a broker restart (the monitor hears job events again).
    let events = protocol::amqp::AmqpEvents::connect(config.amqp_url.clone(), "baas-events");
    let mut state = AppState::new(store, Arc::new(publisher), Arc::new(events));
    state.task_time_limit = Duration::from_secs(config.task_time_limit_secs.max(1));
    state.limits.max_tasks_per_job = config.max_tasks_per_job.max(1);
    state.limits.user_tasks_in_flight = config.user_max_tasks_in_flight.max(1);
    state.limits.user_tasks_per_day = config.user_max_tasks_per_day.max(1);
    state.auth = Arc::new(auth::Tokens::from_env_and_file(config.api_token_file.as_deref())?);
    if !state.auth.is_empty() {
        tracing::info!(
            tokens = state.auth.len(),
            "mutating endpoints require a bearer token"
        );
    }
    state.cors_origins = Arc::new(config.cors_origins.clone());

    let tracker = TaskTracker::new();
    tracker.spawn(jobs::consume_results(
        state.clone(),
        config.amqp_url.clone(),
        token.clone(),
    ));
    tracker.spawn(jobs::republish(state.clone(), token.clone()));
    tracker.spawn(listen_updates(state.clone(), token.clone()));
    tracker.spawn(jobs::consume_dead_letters(
        state.clone(),
        config.amqp_url.clone(),
        token.clone(),
    ));
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "baas listening");
    routes::serve(listener, state, token.clone()).await?;
    token.cancel();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(10), tracker.wait()).await;
    Ok(())
}
