//! The job store: jobs, tasks and results in an embedded SQLite file.
//!
//! Every call runs on a blocking thread. The one writing connection sits behind a `std::sync::Mutex` on
//! purpose: SQLite serialises writers anyway, the lock is never held across an `.await`, and the critical
//! sections are single statements or short transactions. A file store also opens [`READERS`] read-only
//! connections: in WAL mode they read a consistent snapshot while the writer writes, so polling clients
//! neither wait for result persistence nor for each other. A reader sees every transaction committed
//! before its read began.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use uuid::Uuid;

use protocol::api::JobStatus;
use protocol::{Outcome, TaskMessage, TaskResult};

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored document did not decode.
    #[error("store: corrupt record: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The blocking thread died.
    #[error("store: worker thread failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The lock was poisoned by a panic.
    #[error("store: lock poisoned")]
    Poisoned,
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
    /// Page size.
    pub limit: usize,
}

/// The SQLite job store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// Finished jobs as last read, served without a blocking thread; every write empties it.
    finished: Arc<Mutex<FinishedCache>>,
    /// Tasks confirmed by the broker, waiting to be marked published (see [`Store::mark_published`]).
    pending_marks: Arc<Mutex<PendingMarks>>,
    /// Read-only connections of a file store; empty for an in-memory store (reads use `conn`).
    readers: Arc<[Mutex<Connection>]>,
    next_reader: Arc<AtomicUsize>,
}

/// Read-only connections a file store opens beside its writer.
pub const READERS: usize = 2;

/// Finished jobs kept by [`Store::job`] (the oldest are dropped first).
pub const FINISHED_CACHE_JOBS: usize = 1024;
/// Jobs with more tasks than this are never cached (their clone would cost more than the read).
pub const FINISHED_CACHE_MAX_TASKS: usize = 256;

#[derive(Default)]
struct PendingMarks {
    ids: Vec<Uuid>,
    /// A caller is writing marks now; the others leave theirs in `ids` for it.
    flushing: bool,
}

/// Finished (or cancelled) jobs' records. A finished job changes only by a write (a retry, a late
/// result), and every write through [`Store::call`] empties the cache after its commit and bumps
/// `generation`; a read inserts only if no write completed since it began, so a snapshot older than a
/// write can never be cached after it.
#[derive(Default)]
struct FinishedCache {
    generation: u64,
    jobs: std::collections::HashMap<Uuid, (JobRecord, Vec<TaskRecord>)>,
    order: std::collections::VecDeque<Uuid>,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS jobs (
    id          TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL,
    problem     TEXT NOT NULL,
    tolerance   REAL NOT NULL,
    repeats     INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    finished_ms INTEGER,
    n_tasks     INTEGER NOT NULL,
    n_done      INTEGER NOT NULL DEFAULT 0,
    cancelled_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_seq ON jobs(seq);
CREATE TABLE IF NOT EXISTS tasks (
    id                TEXT PRIMARY KEY,
    job_id            TEXT NOT NULL REFERENCES jobs(id),
    pos               INTEGER NOT NULL,
    method            TEXT NOT NULL,
    message           TEXT NOT NULL,
    created_ms        INTEGER NOT NULL,
    published         INTEGER NOT NULL DEFAULT 0,
    result            TEXT,
    result_deliveries INTEGER NOT NULL DEFAULT 0,
    attempts          INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, pos);
CREATE INDEX IF NOT EXISTS tasks_unpublished ON tasks(published) WHERE published = 0;
CREATE TABLE IF NOT EXISTS idempotency (
    key        TEXT PRIMARY KEY,
    request    TEXT NOT NULL,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    created_ms INTEGER NOT NULL
);
";

impl Store {
    /// Open (creating if needed) the store at `path`; `None` keeps it in memory.
    pub fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        let readers = match path {
            Some(p) => (0..READERS)
                .map(|_| {
                    let r = Connection::open_with_flags(
                        p,
                        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    r.busy_timeout(std::time::Duration::from_secs(5))?;
                    Ok(Mutex::new(r))
                })
                .collect::<Result<Vec<_>, StoreError>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            finished: Arc::default(),
            pending_marks: Arc::default(),
            readers: readers.into(),
            next_reader: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Run a read-only `f` on a reader connection (the writer's for an in-memory store), inside one read
    /// transaction so that its statements see one snapshot.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.readers.is_empty() {
            let conn = Arc::clone(&self.conn);
            return tokio::task::spawn_blocking(move || {
                let guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
                f(&guard)
            })
            .await?;
        }
        let readers = Arc::clone(&self.readers);
        let first = self.next_reader.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            // A free reader if there is one, else wait for the next in turn.
            let mut guard = match (0..n).find_map(|i| readers[(first + i) % n].try_lock().ok()) {
                Some(g) => g,
                None => readers[first % n].lock().map_err(|_| StoreError::Poisoned)?,
            };
            let tx = guard.transaction()?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await?
    }

    /// Run `f` on the writing connection; afterwards the finished-job cache is emptied.
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (conn, finished) = (Arc::clone(&self.conn), Arc::clone(&self.finished));
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
            let out = f(&mut guard);
            // After the commit: no cached job may be older than this write.
            let mut cache = finished.lock().map_err(|_| StoreError::Poisoned)?;
            cache.generation += 1;
            cache.jobs.clear();
            cache.order.clear();
            out
        })
        .await?
    }

    /// Persist a job and its tasks in one transaction (before the job is acknowledged to the client).
    pub async fn insert_job(&self, job: JobRecord, tasks: Vec<TaskMessage>) -> Result<(), StoreError> {
        // Without a key there is nothing to collide with: the outcome is always `New`.
        self.insert_job_once(job, tasks, None).await.map(|_| ())
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
        self.call(move |c| {
            let tx = c.transaction()?;
            if let Some((key, request)) = &idempotency {
                let seen: Option<(String, String, u32)> = tx
                    .query_row(
                        "SELECT i.job_id, i.request, j.n_tasks FROM idempotency i JOIN jobs j ON j.id = i.job_id
                         WHERE i.key = ?1",
                        [key],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                    )
                    .optional()?;
                if let Some((job_id, seen_request, tasks)) = seen {
                    let job_id: Uuid = job_id.parse().map_err(|_| rusqlite::Error::InvalidQuery)?;
                    return Ok(if &seen_request == request {
                        Inserted::Existing { id: job_id, tasks }
                    } else {
                        Inserted::Conflict(job_id)
                    });
                }
            }
            let seq: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs", [], |r| r.get(0))?;
            tx.execute(
                "INSERT INTO jobs (id, seq, problem, tolerance, repeats, created_ms, n_tasks) VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![job.id.to_string(), seq, job.problem, job.tolerance, job.repeats, job.created_ms as i64, job.n_tasks],
            )?;
            {
                let mut stmt = tx.prepare(
                    "INSERT INTO tasks (id, job_id, pos, method, message, created_ms) VALUES (?1,?2,?3,?4,?5,?6)",
                )?;
                for (pos, t) in tasks.iter().enumerate() {
                    stmt.execute(params![
                        t.task_id.to_string(),
                        job.id.to_string(),
                        pos as i64,
                        t.method,
                        serde_json::to_string(t)?,
                        job.created_ms as i64
                    ])?;
                }
            }
            if let Some((key, request)) = &idempotency {
                tx.execute(
                    "INSERT INTO idempotency (key, request, job_id, created_ms) VALUES (?1,?2,?3,?4)",
                    params![key, request, job.id.to_string(), job.created_ms as i64],
                )?;
            }
            tx.commit()?;
            Ok(Inserted::New)
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
        self.call(move |c| {
            let tx = c.transaction()?;
            let Some(job) = job_record(&tx, id)? else {
                return Ok(None);
            };
            if job.finished_ms.is_some() {
                return Ok(Some((job, Vec::new())));
            }
            let pending: Vec<TaskMessage> = {
                let mut stmt =
                    tx.prepare("SELECT message FROM tasks WHERE job_id = ?1 AND result IS NULL")?;
                let rows = stmt.query_map([id.to_string()], |r| r.get::<_, String>(0))?;
                let mut out = Vec::new();
                for row in rows {
                    out.push(serde_json::from_str(&row?)?);
                }
                out
            };
            {
                let mut stmt = tx.prepare("UPDATE tasks SET result = ?2 WHERE id = ?1 AND result IS NULL")?;
                for t in &pending {
                    let result = TaskResult {
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
                    };
                    stmt.execute(params![t.task_id.to_string(), serde_json::to_string(&result)?])?;
                }
            }
            tx.execute(
                "UPDATE jobs SET n_done = n_tasks, finished_ms = ?2, cancelled_ms = ?2 WHERE id = ?1",
                params![id.to_string(), now_ms as i64],
            )?;
            tx.commit()?;
            Ok(Some((job, pending)))
        })
        .await
    }

    /// Put a failed task back to pending so it runs again; returns its message to publish.
    pub async fn retry_task(&self, task_id: Uuid) -> Result<Retry, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let row: Option<(String, String, Option<String>)> = tx
                .query_row(
                    "SELECT job_id, message, result FROM tasks WHERE id = ?1",
                    [task_id.to_string()],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            let Some((job_id, message, result)) = row else {
                return Ok(Retry::UnknownTask);
            };
            let cancelled: Option<i64> =
                tx.query_row("SELECT cancelled_ms FROM jobs WHERE id = ?1", [&job_id], |r| {
                    r.get(0)
                })?;
            if cancelled.is_some() {
                return Ok(Retry::JobCancelled);
            }
            let result: Option<TaskResult> = result.map(|s| serde_json::from_str(&s)).transpose()?;
            match result {
                None => return Ok(Retry::NotFailed("pending")),
                Some(r) if !is_failure(&r) => return Ok(Retry::NotFailed("succeeded")),
                Some(_) => {}
            }
            tx.execute(
                "UPDATE tasks SET result = NULL, published = 0, attempts = attempts + 1 WHERE id = ?1",
                [task_id.to_string()],
            )?;
            tx.execute(
                "UPDATE jobs SET n_done = n_done - 1, finished_ms = NULL WHERE id = ?1",
                [&job_id],
            )?;
            tx.commit()?;
            Ok(Retry::Requeued(serde_json::from_str(&message)?))
        })
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
                let written = store
                    .call(move |c| {
                        let tx = c.transaction()?;
                        {
                            let mut stmt =
                                tx.prepare_cached("UPDATE tasks SET published = 1 WHERE id = ?1")?;
                            for id in &batch {
                                stmt.execute([id.to_string()])?;
                            }
                        }
                        tx.commit()?;
                        Ok(())
                    })
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
        self.read(move |c| {
            let message: Option<String> = c
                .prepare_cached("SELECT message FROM tasks WHERE id = ?1")?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()?;
            Ok(message.map(|m| serde_json::from_str(&m)).transpose()?)
        })
        .await
    }

    /// Tasks never confirmed by the broker and created before `before_ms` (for the republisher).
    pub async fn unpublished_tasks(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<TaskMessage>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT message FROM tasks WHERE published = 0 AND result IS NULL AND created_ms < ?1 LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![before_ms as i64, limit as i64], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row?)?);
            }
            Ok(out)
        })
        .await
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
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(results.len());
            {
                let mut find = tx.prepare_cached("SELECT job_id FROM tasks WHERE id = ?1")?;
                let mut count = tx
                    .prepare_cached("UPDATE tasks SET result_deliveries = result_deliveries + 1 WHERE id = ?1")?;
                let mut store = tx.prepare_cached(
                    "UPDATE tasks SET result = ?2, published = 1 WHERE id = ?1 AND result IS NULL",
                )?;
                let mut done = tx.prepare_cached("UPDATE jobs SET n_done = n_done + 1 WHERE id = ?1")?;
                let mut finish = tx.prepare_cached(
                    "UPDATE jobs SET finished_ms = ?2 WHERE id = ?1 AND n_done = n_tasks AND finished_ms IS NULL",
                )?;
                for result in &results {
                    let id = result.task_id.to_string();
                    let job: Option<String> = find.query_row([&id], |r| r.get(0)).optional()?;
                    let Some(job_id) = job else {
                        out.push(Recorded::UnknownTask);
                        continue;
                    };
                    count.execute([&id])?;
                    let stored = store.execute(params![id, serde_json::to_string(result)?])?;
                    out.push(if stored == 0 {
                        Recorded::Duplicate
                    } else {
                        done.execute([&job_id])?;
                        let finished = finish.execute(params![job_id, now_ms as i64])?;
                        Recorded::New {
                            job_finished: finished == 1,
                        }
                    });
                }
            }
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// A job's record and how many of its tasks failed, without reading the tasks' results: the cheap
    /// view for polling big jobs.
    pub async fn job_summary(&self, id: Uuid) -> Result<Option<(JobRecord, u32)>, StoreError> {
        self.read(move |c| {
            let Some(job) = job_record(c, id)? else {
                return Ok(None);
            };
            let failed: u32 = c
                .prepare_cached(
                    "SELECT COUNT(*) FROM tasks WHERE job_id = ?1 AND result IS NOT NULL
                     AND json_extract(result, '$.outcome.status') = 'failed'",
                )?
                .query_row([id.to_string()], |r| r.get(0))?;
            Ok(Some((job, failed)))
        })
        .await
    }

    /// A job and its tasks; a finished job of at most [`FINISHED_CACHE_MAX_TASKS`] tasks from memory
    /// when it was read before and nothing was written since.
    pub async fn job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<TaskRecord>)>, StoreError> {
        let generation = {
            let cache = self.finished.lock().map_err(|_| StoreError::Poisoned)?;
            if let Some(hit) = cache.jobs.get(&id) {
                return Ok(Some(hit.clone()));
            }
            cache.generation
        };
        let read = self.read_job(id).await?;
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

    async fn read_job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<TaskRecord>)>, StoreError> {
        self.read(move |c| {
            let Some(job) = job_record(c, id)? else {
                return Ok(None);
            };
            let mut stmt = c.prepare_cached(
                "SELECT id, method, result, result_deliveries, attempts, json_extract(message, '$.level')
                 FROM tasks WHERE job_id = ?1 ORDER BY pos",
            )?;
            let rows = stmt.query_map([id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, u32>(3)?,
                    r.get::<_, u32>(4)?,
                    r.get::<_, Option<u32>>(5)?,
                ))
            })?;
            let mut tasks = Vec::new();
            for row in rows {
                let (tid, method, result, deliveries, attempts, level) = row?;
                tasks.push(TaskRecord {
                    id: tid.parse().map_err(|_| rusqlite::Error::InvalidQuery)?,
                    method,
                    result: result.map(|s| serde_json::from_str(&s)).transpose()?,
                    result_deliveries: deliveries,
                    attempts,
                    level,
                });
            }
            Ok(Some((job, tasks)))
        })
        .await
    }

    /// Jobs matching `filter`, newest first, with the cursor of the next page.
    pub async fn list_jobs(&self, filter: JobFilter) -> Result<(Vec<JobRecord>, Option<i64>), StoreError> {
        self.read(move |c| {
            let mut sql = format!("SELECT {JOB_COLUMNS}, seq FROM jobs WHERE 1=1");
            let mut args: Vec<rusqlite::types::Value> = Vec::new();
            if let Some(before) = filter.before_seq {
                sql.push_str(" AND seq < ?");
                args.push(before.into());
            }
            if let Some(problem) = filter.problem {
                sql.push_str(" AND problem = ?");
                args.push(problem.into());
            }
            if let Some(since) = filter.since_ms {
                sql.push_str(" AND created_ms >= ?");
                args.push((since as i64).into());
            }
            if let Some(until) = filter.until_ms {
                sql.push_str(" AND created_ms < ?");
                args.push((until as i64).into());
            }
            match filter.status {
                None => {}
                Some(JobStatus::Queued) => sql.push_str(" AND finished_ms IS NULL AND n_done = 0"),
                Some(JobStatus::Running) => sql.push_str(" AND finished_ms IS NULL AND n_done > 0"),
                Some(JobStatus::Completed) => {
                    sql.push_str(" AND finished_ms IS NOT NULL AND cancelled_ms IS NULL")
                }
                Some(JobStatus::Cancelled) => sql.push_str(" AND cancelled_ms IS NOT NULL"),
            }
            sql.push_str(" ORDER BY seq DESC LIMIT ?");
            args.push(((filter.limit + 1) as i64).into());
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((job_row(r)?, r.get::<_, i64>(9)?))
            })?;
            let mut jobs = rows.collect::<Result<Vec<_>, _>>()?;
            let next = if jobs.len() > filter.limit {
                jobs.truncate(filter.limit);
                jobs.last().map(|(_, seq)| *seq)
            } else {
                None
            };
            Ok((jobs.into_iter().map(|(j, _)| j).collect(), next))
        })
        .await
    }

    /// Every recorded result of completed jobs on `problem` at `tolerance` (for leaderboards).
    pub async fn results_for_problem(
        &self,
        problem: String,
        tolerance: f64,
    ) -> Result<Vec<TaskResult>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT t.result FROM tasks t JOIN jobs j ON t.job_id = j.id
                 WHERE j.problem = ?1 AND j.tolerance = ?2 AND j.finished_ms IS NOT NULL AND t.result IS NOT NULL
                 ORDER BY j.seq",
            )?;
            let rows = stmt.query_map(params![problem, tolerance], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row?)?);
            }
            Ok(out)
        })
        .await
    }

    /// A cheap query proving the store answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?))
            .await
    }
}

/// Columns added after the first release, for stores created by it.
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    for (table, column, decl) in [
        ("jobs", "cancelled_ms", "INTEGER"),
        ("tasks", "attempts", "INTEGER NOT NULL DEFAULT 1"),
    ] {
        let present: i64 = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get(0),
        )?;
        if present == 0 {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
        }
    }
    Ok(())
}

const JOB_COLUMNS: &str =
    "id, problem, tolerance, repeats, created_ms, finished_ms, n_tasks, n_done, cancelled_ms";

/// The record of job `id`, if there is one.
fn job_record(c: &Connection, id: Uuid) -> Result<Option<JobRecord>, StoreError> {
    Ok(
        c.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"))?
            .query_row([id.to_string()], job_row)
            .optional()?,
    )
}

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRecord> {
    let id: String = r.get(0)?;
    Ok(JobRecord {
        id: id.parse().map_err(|_| rusqlite::Error::InvalidQuery)?,
        problem: r.get(1)?,
        tolerance: r.get(2)?,
        repeats: r.get(3)?,
        created_ms: r.get::<_, i64>(4)? as u64,
        finished_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
        n_tasks: r.get(6)?,
        n_done: r.get(7)?,
        cancelled_ms: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
    })
}

/// Whether a recorded result is a failure.
pub fn is_failure(result: &TaskResult) -> bool {
    matches!(result.outcome, Outcome::Failed { .. })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{FailureKind, ProblemRef, SCHEMA_VERSION};

    fn task(job_id: Uuid, method: &str) -> TaskMessage {
        TaskMessage {
            schema_version: SCHEMA_VERSION,
            task_id: Uuid::new_v4(),
            job_id,
            problem: ProblemRef::Catalogue("1aI".into()),
            method: method.into(),
            tolerance: 1e-4,
            repeats: 3,
            level: None,
            time_limit_ms: 1000,
            probe: None,
        }
    }

    fn failed(t: &TaskMessage) -> TaskResult {
        TaskResult {
            schema_version: SCHEMA_VERSION,
            task_id: t.task_id,
            job_id: t.job_id,
            method: t.method.clone(),
            worker: "w".into(),
            started_ms: 1,
            finished_ms: 2,
            outcome: Outcome::Failed {
                kind: FailureKind::Numerical,
                reason: "x".into(),
            },
        }
    }

    fn new_job(id: Uuid, n_tasks: u32) -> JobRecord {
        JobRecord {
            id,
            problem: "1aI".into(),
            tolerance: 1e-4,
            repeats: 3,
            created_ms: 10,
            finished_ms: None,
            n_tasks,
            n_done: 0,
            cancelled_ms: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_publication_marks_share_transactions_and_none_is_lost() {
        let store = Store::open(None).unwrap();
        let job_id = Uuid::new_v4();
        let tasks: Vec<TaskMessage> = (0..200).map(|_| task(job_id, "cos")).collect();
        store
            .insert_job(new_job(job_id, 200), tasks.clone())
            .await
            .unwrap();
        let marks = tasks.iter().map(|t| {
            let (store, id) = (store.clone(), t.task_id);
            tokio::spawn(async move { store.mark_published(vec![id]).await })
        });
        for m in marks.collect::<Vec<_>>() {
            m.await.unwrap().unwrap();
        }
        // Every caller has returned, so the last writer has emptied the queue: all are marked.
        assert_eq!(store.unpublished_tasks(u64::MAX / 2, 1000).await.unwrap(), vec![]);
        let pending = store.pending_marks.lock().unwrap();
        assert!(pending.ids.is_empty() && !pending.flushing);
    }

    #[tokio::test]
    async fn a_file_store_reads_on_its_readers_what_the_writer_committed() {
        let dir = std::env::temp_dir().join(format!("baas-store-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(Some(&dir.join("baas.db"))).unwrap();
        assert_eq!(store.readers.len(), READERS);
        let job_id = Uuid::new_v4();
        let tasks = vec![task(job_id, "cos")];
        let job = new_job(job_id, 1);
        // Every reader in turn sees the insert, then the result, as soon as they are committed.
        store.insert_job(job, tasks.clone()).await.unwrap();
        for _ in 0..READERS {
            let (job, records) = store.job(job_id).await.unwrap().unwrap();
            assert_eq!((job.n_done, records.len()), (0, 1));
            assert!(records[0].result.is_none());
        }
        store.record_result(failed(&tasks[0]), 20).await.unwrap();
        for _ in 0..READERS {
            let (job, records) = store.job(job_id).await.unwrap().unwrap();
            assert_eq!((job.n_done, job.finished_ms), (1, Some(20)));
            assert!(records[0].result.is_some());
            let (summary, failed) = store.job_summary(job_id).await.unwrap().unwrap();
            assert_eq!((summary, failed), (job, 1));
        }
        // The finished job is now served from memory; a write (here a retry) must be seen at once.
        assert!(store.finished.lock().unwrap().jobs.contains_key(&job_id));
        assert!(matches!(
            store.retry_task(tasks[0].task_id).await.unwrap(),
            Retry::Requeued(_)
        ));
        assert!(store.finished.lock().unwrap().jobs.is_empty());
        let (job, records) = store.job(job_id).await.unwrap().unwrap();
        assert_eq!((job.n_done, job.finished_ms), (0, None));
        assert!(records[0].result.is_none());
        assert!(
            !store.finished.lock().unwrap().jobs.contains_key(&job_id),
            "a running job is never cached"
        );
        // Readers cannot write.
        let reader = store.readers[0].lock().unwrap();
        assert!(reader.execute("DELETE FROM jobs", []).is_err());
        drop(reader);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn results_are_recorded_once_and_finish_the_job_with_the_last_task() {
        let store = Store::open(None).unwrap();
        let job_id = Uuid::new_v4();
        let tasks = vec![task(job_id, "cos"), task(job_id, "fd")];
        let job = new_job(job_id, 2);
        store.insert_job(job, tasks.clone()).await.unwrap();
        assert_eq!(store.unpublished_tasks(11, 10).await.unwrap().len(), 2);
        store.mark_published(vec![tasks[0].task_id]).await.unwrap();
        assert_eq!(
            store.unpublished_tasks(11, 10).await.unwrap(),
            vec![tasks[1].clone()]
        );

        let first = failed(&tasks[0]);
        assert_eq!(
            store.record_result(first.clone(), 20).await.unwrap(),
            Recorded::New { job_finished: false }
        );
        assert_eq!(store.record_result(first, 21).await.unwrap(), Recorded::Duplicate);
        assert_eq!(
            store.record_result(failed(&tasks[1]), 22).await.unwrap(),
            Recorded::New { job_finished: true }
        );
        let stray = failed(&task(job_id, "mc"));
        assert_eq!(
            store.record_result(stray, 23).await.unwrap(),
            Recorded::UnknownTask
        );

        let (job, records) = store.job(job_id).await.unwrap().unwrap();
        assert_eq!((job.n_done, job.finished_ms), (2, Some(22)));
        assert_eq!(
            records.iter().map(|r| r.result_deliveries).collect::<Vec<_>>(),
            vec![2, 1]
        );
        assert!(
            store.unpublished_tasks(100, 10).await.unwrap().is_empty(),
            "a task with a result is never republished"
        );
    }
}
