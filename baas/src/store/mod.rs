//! The job store: jobs, tasks, results and idempotency keys, behind one type with two backends.
//!
//! [`Store`] is what the rest of baas uses. It dispatches to
//! - an embedded SQLite file (the default, zero set-up; [`Store::open`]): one writer connection and
//!   [`READERS`] read-only connections reading WAL snapshots, on blocking threads;
//! - PostgreSQL ([`Store::connect`] with a `postgres://` URL): one connection pool, for several baas
//!   replicas over one database.
//!
//! What does not depend on the backend lives here once: the finished-job cache, the group commits of
//! job inserts and publication marks, and the derived job status. Each backend applies its own versioned migrations
//! (a `schema_migrations` table; version 1 is the schema of the releases before it) when it opens.

mod postgres;
mod sqlite;

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;
use uuid::Uuid;

use protocol::api::JobStatus;
use protocol::{Outcome, TaskMessage, TaskResult};

pub use sqlite::READERS;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed (or its URL did not parse).
    #[error("store: postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("store: postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The PostgreSQL pool could not be built.
    #[error("store: postgres pool: {0}")]
    PoolBuild(#[from] deadpool_postgres::BuildError),
    /// A stored document did not decode.
    #[error("store: corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// A stored value is out of range or otherwise not what this code writes.
    #[error("store: corrupt record: {0}")]
    Invalid(String),
    /// The blocking thread died.
    #[error("store: worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The lock was poisoned by a panic.
    #[error("store: lock poisoned")]
    Poisoned,
    /// A database URL names neither backend.
    #[error(
        "store: unsupported database URL `{0}`: use postgres://… (or postgresql://…) for PostgreSQL, \
         sqlite:<path>, sqlite::memory: or a plain file path for SQLite"
    )]
    UnsupportedUrl(String),
    /// The failure of a group commit, shared by every caller whose write was in it.
    #[error("{0}")]
    Shared(Arc<StoreError>),
    /// The database was migrated by a newer baas than this one.
    #[error("store: schema version {found} is newer than this baas knows ({known}); upgrade baas")]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest version this build has.
        known: i64,
    },
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Id.
    pub id: Uuid,
    /// Problem id.
    pub problem: String,
    /// Tolerance.
    pub tolerance: f64,
    /// Timed runs.
    pub repeats: u32,
    /// Creation time, Unix ms.
    pub created_ms: u64,
    /// Completion time, Unix ms.
    pub finished_ms: Option<u64>,
    /// Number of tasks.
    pub n_tasks: u32,
    /// Tasks with a result.
    pub n_done: u32,
    /// When the job was cancelled, Unix ms.
    pub cancelled_ms: Option<u64>,
    /// The user who submitted it (`None`: submitted without an account).
    pub owner: Option<String>,
    /// Private (owner, shares, operators) or public.
    pub visibility: Visibility,
}

impl JobRecord {
    /// The job's status, derived from its counters.
    pub fn status(&self) -> JobStatus {
        if self.cancelled_ms.is_some() {
            JobStatus::Cancelled
        } else if self.finished_ms.is_some() {
            JobStatus::Completed
        } else if self.n_done == 0 {
            JobStatus::Queued
        } else {
            JobStatus::Running
        }
    }
}

/// A task as stored, with its recorded result.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRecord {
    /// Id.
    pub id: Uuid,
    /// Method id.
    pub method: String,
    /// The recorded result, if any.
    pub result: Option<TaskResult>,
    /// How many result messages arrived (duplicates included).
    pub result_deliveries: u32,
    /// Runs requested: 1, plus one per retry.
    pub attempts: u32,
    /// The ladder level the task prices (work-precision jobs); `None` when the worker tunes.
    pub level: Option<u32>,
}

/// What recording a result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// First result of the task; `job_finished` when it was the job's last.
    New {
        /// The job's last task.
        job_finished: bool,
    },
    /// The task already had a result; this one was counted and ignored.
    Duplicate,
    /// No such task (another deployment's result, or a deleted job).
    UnknownTask,
}

/// What inserting a job with an idempotency key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// Stored.
    New,
    /// The key was used before by the same request: that job and its number of tasks.
    Existing {
        /// The job.
        id: Uuid,
        /// Its tasks.
        tasks: u32,
    },
    /// The key was used before by another request.
    Conflict(Uuid),
}

/// What retrying a task did.
#[derive(Debug, Clone, PartialEq)]
pub enum Retry {
    /// Back to pending; publish this.
    Requeued(TaskMessage),
    /// No such task.
    UnknownTask,
    /// Only failed tasks are retried; this one is in the given state.
    NotFailed(&'static str),
    /// Its job was cancelled.
    JobCancelled,
}

/// Which jobs to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only this status.
    pub status: Option<JobStatus>,
    /// Only this problem.
    pub problem: Option<String>,
    /// Created at or after, Unix ms.
    pub since_ms: Option<u64>,
    /// Created before, Unix ms.
    pub until_ms: Option<u64>,
    /// Cursor: only jobs older than this sequence number.
    pub before_seq: Option<i64>,
    /// Only the jobs this user may see (own, shared with them, public); `None`: every job.
    pub viewer: Option<String>,
    /// Page size.
    pub limit: usize,
}

/// Which backend a [`Store`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Embedded SQLite (a file, or memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

#[derive(Clone)]
enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(postgres::PgStore),
}

/// Run `$body` with `$b` bound to whichever backend `$backend` holds (the arms are different types, so
/// this is a macro rather than a closure).
macro_rules! on_backend {
    ($backend:expr, $b:ident => $body:expr) => {
        match $backend {
            Backend::Sqlite($b) => $body,
            Backend::Postgres($b) => $body,
        }
    };
}

mod accounts;
pub use accounts::{
    Role, Scope, ShareLevel, ShareRecord, TaskCounts, TokenOwner, TokenRecord, UserRecord, Visibility,
    parse_scopes, scopes_text,
};

/// The job store over SQLite or PostgreSQL. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// Finished jobs as last read, served without a database round trip; every write empties it.
    finished: Arc<Mutex<FinishedCache>>,
    /// Whether [`Store::job`] uses `finished`: only when this process is the store's only writer
    /// (SQLite). Several baas replicas share one PostgreSQL database, and a write by another replica
    /// would not empty this one's cache.
    cache_finished: bool,
    /// Tasks confirmed by the broker, waiting to be marked published (see [`Store::mark_published`]).
    pending_marks: Arc<Mutex<PendingMarks>>,
    /// Jobs waiting for the group commit of [`Store::insert_job`].
    pending_inserts: Arc<Mutex<PendingInserts>>,
}

/// How long a task claimed by [`Store::claim_unpublished`] stays claimed.
pub const REPUBLISH_LEASE_MS: u64 = 30_000;

/// `origin:job:finished` as [`Store::notify_updates`] writes it.
fn parse_update(payload: &str) -> Option<(Uuid, Uuid, bool)> {
    let mut parts = payload.split(':');
    let origin = parts.next()?.parse().ok()?;
    let job = parts.next()?.parse().ok()?;
    let finished = match parts.next()? {
        "0" => false,
        "1" => true,
        _ => return None,
    };
    parts.next().is_none().then_some((origin, job, finished))
}

/// Finished jobs kept by [`Store::job`] (the oldest are dropped first).
pub const FINISHED_CACHE_JOBS: usize = 1024;
/// Jobs with more tasks than this are never cached (their clone would cost more than the read).
pub const FINISHED_CACHE_MAX_TASKS: usize = 256;

/// A job waiting to be inserted, and where its caller hears the outcome.
type PendingInsert = (
    JobRecord,
    Vec<TaskMessage>,
    oneshot::Sender<Result<(), Arc<StoreError>>>,
);

#[derive(Default)]
struct PendingInserts {
    jobs: Vec<PendingInsert>,
    /// A flusher is writing now; new jobs wait in `jobs` for its next round.
    flushing: bool,
}

/// The most tasks one group commit of job inserts writes (a job larger than this is written alone).
pub const INSERT_BATCH_TASKS: usize = 20_000;

#[derive(Default)]
struct PendingMarks {
    ids: Vec<Uuid>,
    /// A caller is writing marks now; the others leave theirs in `ids` for it.
    flushing: bool,
}

/// Finished (or cancelled) jobs' records. A finished job changes only by a write (a retry, a late
/// result), and every write through [`Store::write`] empties the cache after its commit and bumps
/// `generation`; a read inserts only if no write completed since it began, so a snapshot older than a
/// write can never be cached after it.
#[derive(Default)]
struct FinishedCache {
    generation: u64,
    jobs: std::collections::HashMap<Uuid, (JobRecord, Vec<TaskRecord>)>,
    order: std::collections::VecDeque<Uuid>,
}

/// One schema version: applied once, in the transaction that records it in `schema_migrations`.
struct Migration {
    version: i64,
    sql: &'static str,
}

impl Store {
    /// Open (creating if needed) the SQLite store at `path`; `None` keeps it in memory.
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        Ok(Self::over(Backend::Sqlite(sqlite::SqliteStore::open(path)?)))
    }

    /// Open the store a database URL names: PostgreSQL for `postgres://…` or `postgresql://…` (a pool of
    /// connections; the libpq URL parameters apply), SQLite for `sqlite:<path>`, `sqlite://<path>`,
    /// `sqlite::memory:` or a plain file path. Either way the schema is migrated to this build's version.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let lower = url.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return Ok(Self::over(Backend::Postgres(
                postgres::PgStore::connect(url).await?,
            )));
        }
        let path = if lower == "sqlite::memory:" || lower == "sqlite://:memory:" {
            None
        } else if lower.starts_with("sqlite://") {
            Some(&url["sqlite://".len()..])
        } else if lower.starts_with("sqlite:") {
            Some(&url["sqlite:".len()..])
        } else if has_scheme(url) || url.is_empty() {
            return Err(StoreError::UnsupportedUrl(redact(url)));
        } else {
            Some(url)
        };
        let path = path.map(std::path::PathBuf::from);
        tokio::task::spawn_blocking(move || Self::open(path.as_deref())).await?
    }

    fn over(backend: Backend) -> Self {
        let cache_finished = matches!(backend, Backend::Sqlite(_));
        Self {
            backend,
            finished: Arc::default(),
            cache_finished,
            pending_marks: Arc::default(),
            pending_inserts: Arc::default(),
        }
    }

    /// Which backend this store is.
    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Run the write `op` to completion on its own task (a caller that goes away cannot cut it short
    /// between its commit and the cache's invalidation), then empty the finished-job cache.
    async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let finished = Arc::clone(&self.finished);
        tokio::spawn(async move {
            let out = op.await;
            // After the commit: no cached job may be older than this write.
            let mut cache = finished.lock().map_err(|_| StoreError::Poisoned)?;
            cache.generation += 1;
            cache.jobs.clear();
            cache.order.clear();
            out
        })
        .await?
    }

    /// Persist a job and its tasks (before the job is acknowledged to the client), atomically.
    ///
    /// Group commit: while one batch is being written, jobs from concurrent callers queue up and go
    /// together in the next transaction (one statement on PostgreSQL), so under load many POSTs share
    /// one commit; alone, a job is written at once. Each caller returns when its job is committed, or
    /// with the batch's error (nothing of a failed batch is stored).
    pub async fn insert_job(&self, job: JobRecord, tasks: Vec<TaskMessage>) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut pending = self.pending_inserts.lock().map_err(|_| StoreError::Poisoned)?;
            pending.jobs.push((job, tasks, tx));
            !std::mem::replace(&mut pending.flushing, true)
        };
        if lead {
            // Its own task: a caller that goes away cannot leave `flushing` set with nobody writing.
            tokio::spawn(self.clone().flush_inserts());
        }
        match rx.await {
            Ok(written) => written.map_err(StoreError::Shared),
            // The flusher died (a poisoned lock) before answering.
            Err(_) => Err(StoreError::Poisoned),
        }
    }

    /// Write queued jobs, a batch at a time, until none are left.
    async fn flush_inserts(self) {
        loop {
            let batch = {
                let Ok(mut pending) = self.pending_inserts.lock() else {
                    return;
                };
                if pending.jobs.is_empty() {
                    pending.flushing = false;
                    return;
                }
                let (mut take, mut tasks) = (0, 0);
                for (_, t, _) in &pending.jobs {
                    if take > 0 && tasks + t.len() > INSERT_BATCH_TASKS {
                        break;
                    }
                    take += 1;
                    tasks += t.len();
                }
                pending.jobs.drain(..take).collect::<Vec<_>>()
            };
            let mut rows = Vec::with_capacity(batch.len());
            let mut callers = Vec::with_capacity(batch.len());
            for (job, tasks, caller) in batch {
                rows.push((job, tasks));
                callers.push(caller);
            }
            // A batch fails as a whole; its jobs are then written one by one, so a job that cannot
            // be stored fails only its own caller. The copy costs microseconds beside a commit.
            let alone = (rows.len() > 1).then(|| rows.clone());
            let written = self.insert_batch(rows).await;
            match (written, alone) {
                (Err(_), Some(rows)) => {
                    for (row, caller) in rows.into_iter().zip(callers) {
                        let _ = caller.send(self.insert_batch(vec![row]).await);
                    }
                }
                (written, _) => {
                    for caller in callers {
                        let _ = caller.send(written.clone());
                    }
                }
            }
        }
    }

    async fn insert_batch(&self, rows: Vec<(JobRecord, Vec<TaskMessage>)>) -> Result<(), Arc<StoreError>> {
        let backend = self.backend.clone();
        self.write(async move { on_backend!(&backend, b => b.insert_jobs(rows).await) })
            .await
            .map_err(Arc::new)
    }

    /// Persist a job and its tasks in one transaction. With an idempotency key `(key, request)`, a key
    /// seen before returns the job it created (same request) or a conflict (another request), and
    /// nothing is inserted.
    pub async fn insert_job_once(
        &self,
        job: JobRecord,
        tasks: Vec<TaskMessage>,
        idempotency: Option<(String, String)>,
    ) -> Result<Inserted, StoreError> {
        let Some(idempotency) = idempotency else {
            return self.insert_job(job, tasks).await.map(|()| Inserted::New);
        };
        let backend = self.backend.clone();
        self.write(async move {
            on_backend!(&backend, b => b.insert_job_once(job, tasks, Some(idempotency)).await)
        })
        .await
    }

    /// Cancel a job: every task without a result gets a `cancelled` failure, and the job finishes now.
    /// Returns the job as it was before (so callers can tell "already finished") and the revoked tasks.
    pub async fn cancel_job(
        &self,
        id: Uuid,
        now_ms: u64,
    ) -> Result<Option<(JobRecord, Vec<TaskMessage>)>, StoreError> {
        let backend = self.backend.clone();
        self.write(async move { on_backend!(&backend, b => b.cancel_job(id, now_ms).await) })
            .await
    }

    /// Put a failed task back to pending so it runs again; returns its message to publish.
    pub async fn retry_task(&self, task_id: Uuid) -> Result<Retry, StoreError> {
        let backend = self.backend.clone();
        self.write(async move { on_backend!(&backend, b => b.retry_task(task_id).await) })
            .await
    }

    /// Mark tasks as confirmed by the broker.
    pub async fn mark_published(&self, ids: Vec<Uuid>) -> Result<(), StoreError> {
        // Group commit: while one caller writes, concurrent callers add their ids and return; the
        // writer loops until none are left, so many accepted jobs share one transaction. A mark lost to
        // a failed write (or a crash) only makes the republisher send a task again: a duplicate run,
        // whose result baas ignores.
        {
            let mut pending = self.pending_marks.lock().map_err(|_| StoreError::Poisoned)?;
            pending.ids.extend(ids);
            if pending.flushing {
                return Ok(());
            }
            pending.flushing = true;
        }
        // The writing loop runs as its own task, so a caller that goes away (a dropped request) cannot
        // leave `flushing` set with nobody writing.
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut pending = store.pending_marks.lock().map_err(|_| StoreError::Poisoned)?;
                    if pending.ids.is_empty() {
                        pending.flushing = false;
                        return Ok(());
                    }
                    std::mem::take(&mut pending.ids)
                };
                let backend = store.backend.clone();
                let written = store
                    .write(async move { on_backend!(&backend, b => b.mark_published(batch).await) })
                    .await;
                if let Err(e) = written {
                    if let Ok(mut pending) = store.pending_marks.lock() {
                        pending.flushing = false;
                    }
                    return Err(e);
                }
            }
        })
        .await?
    }

    /// The stored message of a task.
    pub async fn task_message(&self, id: Uuid) -> Result<Option<TaskMessage>, StoreError> {
        on_backend!(&self.backend, b => b.task_message(id).await)
    }

    /// Tasks never confirmed by the broker and created before `before_ms` (for the republisher).
    pub async fn unpublished_tasks(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<TaskMessage>, StoreError> {
        on_backend!(&self.backend, b => b.unpublished_tasks(before_ms, limit).await)
    }

    /// Claim tasks for the republisher: unconfirmed, without a result, created before `before_ms`, and
    /// not claimed in the last [`REPUBLISH_LEASE_MS`]. A claimed task is not returned again (to this or
    /// any replica) until its lease has run out, so replicas never publish the same task twice at once.
    /// (Claims touch no finished job, so they leave the finished-job cache alone.)
    pub async fn claim_unpublished(
        &self,
        before_ms: u64,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<TaskMessage>, StoreError> {
        on_backend!(&self.backend, b => b.claim_unpublished(before_ms, now_ms, REPUBLISH_LEASE_MS, limit).await)
    }

    /// Announce job updates `(job, finished)` to the other baas processes on this store (PostgreSQL:
    /// `NOTIFY` on the schema's channel, tagged with `origin` so a process can skip its own). On SQLite
    /// there are no other processes: nothing to do.
    pub async fn notify_updates(&self, origin: Uuid, updates: &[(Uuid, bool)]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(b) => {
                let payloads = updates
                    .iter()
                    .map(|(job, finished)| format!("{origin}:{job}:{}", u8::from(*finished)))
                    .collect();
                b.notify(payloads).await
            }
        }
    }

    /// Hear the updates other processes announce with [`Store::notify_updates`] (not those tagged with
    /// `origin`) until `token` is cancelled: `update(job, finished)` for each, and `resync()` after every
    /// (re)connection of the listener (updates announced while it was away are not replayed). Returns at
    /// once on SQLite.
    pub async fn listen_updates(
        &self,
        origin: Uuid,
        update: impl Fn(Uuid, bool) + Send,
        resync: impl FnMut() + Send,
        token: tokio_util::sync::CancellationToken,
    ) {
        let Backend::Postgres(b) = &self.backend else {
            return;
        };
        let forward = move |payload: &str| {
            match parse_update(payload) {
                Some((from, _, _)) if from == origin => {}
                Some((_, job, finished)) => update(job, finished),
                None => tracing::warn!(payload, "unreadable job update ignored"),
            }
            true
        };
        b.listen(forward, resync, token).await;
    }

    /// Record a result exactly once per task; later copies are counted and ignored.
    pub async fn record_result(&self, result: TaskResult, now_ms: u64) -> Result<Recorded, StoreError> {
        let mut recorded = self.record_results(vec![result], now_ms).await?;
        Ok(recorded.pop().unwrap_or(Recorded::UnknownTask))
    }

    /// Record a batch of results in one transaction (one commit for many results: the result consumer
    /// drains what the broker has delivered and stores it at once). Idempotent per task like
    /// [`record_result`](Self::record_result); the answers are in the order of `results`.
    pub async fn record_results(
        &self,
        results: Vec<TaskResult>,
        now_ms: u64,
    ) -> Result<Vec<Recorded>, StoreError> {
        let backend = self.backend.clone();
        self.write(async move { on_backend!(&backend, b => b.record_results(results, now_ms).await) })
            .await
    }

    /// A job's record and how many of its tasks failed, without reading the tasks' results: the cheap
    /// view for polling big jobs.
    pub async fn job_summary(&self, id: Uuid) -> Result<Option<(JobRecord, u32)>, StoreError> {
        on_backend!(&self.backend, b => b.job_summary(id).await)
    }

    /// A job and its tasks; a finished job of at most [`FINISHED_CACHE_MAX_TASKS`] tasks from memory
    /// when it was read before and nothing was written since (SQLite only, see [`Store::kind`]).
    pub async fn job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<TaskRecord>)>, StoreError> {
        if !self.cache_finished {
            return on_backend!(&self.backend, b => b.job(id).await);
        }
        let generation = {
            let cache = self.finished.lock().map_err(|_| StoreError::Poisoned)?;
            if let Some(hit) = cache.jobs.get(&id) {
                return Ok(Some(hit.clone()));
            }
            cache.generation
        };
        let read = on_backend!(&self.backend, b => b.job(id).await)?;
        if let Some((job, tasks)) = &read
            && job.status().is_final()
            && tasks.len() <= FINISHED_CACHE_MAX_TASKS
        {
            let mut cache = self.finished.lock().map_err(|_| StoreError::Poisoned)?;
            if cache.generation == generation && !cache.jobs.contains_key(&id) {
                if cache.order.len() >= FINISHED_CACHE_JOBS
                    && let Some(oldest) = cache.order.pop_front()
                {
                    cache.jobs.remove(&oldest);
                }
                cache.order.push_back(id);
                cache.jobs.insert(id, (job.clone(), tasks.clone()));
            }
        }
        Ok(read)
    }

    /// Jobs matching `filter`, newest first, with the cursor of the next page.
    pub async fn list_jobs(&self, filter: JobFilter) -> Result<(Vec<JobRecord>, Option<i64>), StoreError> {
        on_backend!(&self.backend, b => b.list_jobs(filter).await)
    }

    /// Every recorded result of completed jobs on `problem` at `tolerance` (for leaderboards): the
    /// public jobs, and `viewer`'s own.
    pub async fn results_for_problem(
        &self,
        problem: String,
        tolerance: f64,
        viewer: Option<String>,
    ) -> Result<Vec<TaskResult>, StoreError> {
        on_backend!(&self.backend, b => b.results_for_problem(problem, tolerance, viewer).await)
    }

    /// A cheap query proving the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(&self.backend, b => b.ping().await)
    }
}

/// Whether a recorded result is a failure.
pub fn is_failure(result: &TaskResult) -> bool {
    matches!(result.outcome, Outcome::Failed { .. })
}

/// The failure [`Store::cancel_job`] records for a task without a result.
fn cancelled_result(t: &TaskMessage, now_ms: u64) -> TaskResult {
    TaskResult {
        schema_version: protocol::SCHEMA_VERSION,
        task_id: t.task_id,
        job_id: t.job_id,
        method: t.method.clone(),
        worker: String::new(),
        started_ms: now_ms,
        finished_ms: now_ms,
        outcome: Outcome::Failed {
            kind: protocol::FailureKind::Cancelled,
            reason: "job cancelled by request".into(),
        },
    }
}

/// The `list_jobs` condition (SQL shared by both backends) for a status filter.
fn status_condition(status: Option<JobStatus>) -> &'static str {
    match status {
        None => "",
        Some(JobStatus::Queued) => " AND finished_ms IS NULL AND n_done = 0",
        Some(JobStatus::Running) => " AND finished_ms IS NULL AND n_done > 0",
        Some(JobStatus::Completed) => " AND finished_ms IS NOT NULL AND cancelled_ms IS NULL",
        Some(JobStatus::Cancelled) => " AND cancelled_ms IS NOT NULL",
    }
}

/// Cut `limit + 1` listed jobs (with their seq) to a page and the cursor of the next one.
fn page(mut jobs: Vec<(JobRecord, i64)>, limit: usize) -> (Vec<JobRecord>, Option<i64>) {
    let next = if jobs.len() > limit {
        jobs.truncate(limit);
        jobs.last().map(|(_, seq)| *seq)
    } else {
        None
    };
    (jobs.into_iter().map(|(j, _)| j).collect(), next)
}

/// Unix time in ms.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Whether `s` starts with a URL scheme (`word:`), as opposed to a file path.
fn has_scheme(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, _)) => {
            scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        }
        None => false,
    }
}

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            let userinfo = &url[start + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..start + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests;
