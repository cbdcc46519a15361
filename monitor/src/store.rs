//! History in SQLite: every event (the timeline of each task), one row per task, job and worker.
//!
//! The fold hands each event and the record it touched to a writer thread over a bounded channel; the
//! thread writes them in batched transactions, so folding never waits for the disk. Task rows are merged
//! (`ON CONFLICT … DO UPDATE`) the way the fold merges events, so a task forgotten by the bounded memory
//! and seen again keeps what the store knew. After a restart the most recent rows are loaded back into
//! memory; searches and paging over all history run here, as SQL.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use protocol::{Event, EventKind};

use crate::state::{Fold, JobRec, TaskRec, TaskStatus, WorkerView};

/// Operations queued for the writer thread at most; beyond it the history drops (and counts) writes.
pub const WRITE_BUFFER: usize = 65_536;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("history store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A bad query parameter.
    #[error("{0}")]
    BadQuery(String),
}

/// A task row, as stored and as the API shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TaskRow {
    /// Task id.
    pub task_id: Uuid,
    /// Job id.
    pub job_id: Option<Uuid>,
    /// Method.
    pub method: Option<String>,
    /// Problem of its job.
    pub problem: Option<String>,
    /// Last worker.
    pub worker: Option<String>,
    /// `pending`, `received`, `started`, `succeeded`, `failed`, `revoked` or `dead_lettered`.
    pub state: String,
    /// Deliveries seen.
    pub attempts: u32,
    /// First seen, Unix ms.
    pub first_ms: u64,
    /// Received by a worker, Unix ms.
    pub received_ms: Option<u64>,
    /// Kernel started, Unix ms.
    pub started_ms: Option<u64>,
    /// Ended, Unix ms.
    pub finished_ms: Option<u64>,
    /// Runtime reported by the worker, ms.
    pub runtime_ms: Option<u64>,
    /// Last change, Unix ms.
    pub updated_ms: u64,
    /// Last error (failure, revocation, dead-lettering).
    pub error: Option<String>,
    #[serde(skip)]
    retry_ms: u64,
}

/// A job row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct JobRow {
    /// Job id.
    pub job_id: Uuid,
    /// Problem.
    pub problem: Option<String>,
    /// Tasks in the job.
    pub tasks: u32,
    /// Tasks taken by a worker at least once.
    pub received: u32,
    /// Tasks succeeded.
    pub succeeded: u32,
    /// Tasks that ended without a result (failed, revoked, dead-lettered).
    pub failed: u32,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Finished, Unix ms.
    pub finished_ms: Option<u64>,
}

/// One stored event of a task's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// Unix ms.
    pub ts_ms: u64,
    /// Routing key, e.g. `task.started`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The event as received.
    #[schema(value_type = Object)]
    pub event: serde_json::Value,
}

/// Filters, sorting and paging of the task list.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// States to include, comma-separated (`failed,dead_lettered`).
    pub state: Option<String>,
    /// Search: a fragment of the task or job id, or a method, problem or worker.
    pub q: Option<String>,
    /// Exact method.
    pub method: Option<String>,
    /// Exact worker.
    pub worker: Option<String>,
    /// Exact problem.
    pub problem: Option<String>,
    /// Exact job id.
    pub job: Option<Uuid>,
    /// Last change at or after, Unix ms.
    pub from_ms: Option<u64>,
    /// Last change at or before, Unix ms.
    pub to_ms: Option<u64>,
    /// Sort column: `updated_ms` (default), `first_ms`, `runtime_ms`, `method`, `worker`, `problem`,
    /// `state`, `attempts`.
    pub sort: Option<String>,
    /// `desc` (default) or `asc`.
    pub order: Option<String>,
    /// Page, from 1.
    pub page: Option<u32>,
    /// Rows per page (default 50, at most 500).
    pub per_page: Option<u32>,
}

/// A page of tasks.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaskPage {
    /// Matching tasks in all history.
    pub total: u64,
    /// This page, from 1.
    pub page: u32,
    /// Rows per page.
    pub per_page: u32,
    /// The rows.
    pub tasks: Vec<TaskRow>,
}

/// One queued write.
#[derive(Debug)]
enum Op {
    Event(Box<(Event, Write, Option<JobRow>)>),
    Flush(std::sync::mpsc::Sender<()>),
}

#[derive(Debug)]
enum Write {
    Task(Box<TaskRow>),
    Job(JobRow),
    Worker(Box<WorkerView>),
    Nothing,
}

/// The SQLite history.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    max_rows: u64,
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY, job_id TEXT, method TEXT, problem TEXT, worker TEXT,
    state TEXT NOT NULL, rank INTEGER NOT NULL, attempts INTEGER NOT NULL, first_ms INTEGER NOT NULL,
    received_ms INTEGER, started_ms INTEGER, finished_ms INTEGER, runtime_ms INTEGER,
    retry_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL, error TEXT
);
CREATE INDEX IF NOT EXISTS tasks_updated ON tasks(updated_ms);
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, type TEXT NOT NULL, task_id TEXT, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_task ON events(task_id);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, problem TEXT, tasks INTEGER NOT NULL, received INTEGER NOT NULL, succeeded INTEGER NOT NULL,
    failed INTEGER NOT NULL, created_ms INTEGER NOT NULL, finished_ms INTEGER
);
CREATE TABLE IF NOT EXISTS workers (name TEXT PRIMARY KEY, body TEXT NOT NULL);
";

const UPSERT_TASK: &str = "
INSERT INTO tasks (task_id, job_id, method, problem, worker, state, rank, attempts, first_ms, received_ms,
                   started_ms, finished_ms, runtime_ms, retry_ms, updated_ms, error)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
ON CONFLICT(task_id) DO UPDATE SET
    job_id = COALESCE(excluded.job_id, job_id),
    method = COALESCE(excluded.method, method),
    problem = COALESCE(excluded.problem, problem),
    worker = COALESCE(excluded.worker, worker),
    state = CASE WHEN excluded.retry_ms > retry_ms OR excluded.rank >= rank THEN excluded.state ELSE state END,
    rank = CASE WHEN excluded.retry_ms > retry_ms OR excluded.rank >= rank THEN excluded.rank ELSE rank END,
    attempts = MAX(attempts, excluded.attempts),
    first_ms = MIN(first_ms, excluded.first_ms),
    received_ms = COALESCE(excluded.received_ms, received_ms),
    started_ms = COALESCE(excluded.started_ms, started_ms),
    finished_ms = COALESCE(excluded.finished_ms, finished_ms),
    runtime_ms = COALESCE(excluded.runtime_ms, runtime_ms),
    retry_ms = MAX(retry_ms, excluded.retry_ms),
    updated_ms = MAX(updated_ms, excluded.updated_ms),
    error = COALESCE(excluded.error, error)";

const TASK_COLUMNS: &str = "task_id, job_id, method, problem, worker, state, attempts, first_ms, received_ms, \
     started_ms, finished_ms, runtime_ms, updated_ms, error, retry_ms";

fn nonzero(v: u64) -> Option<u64> {
    (v != 0).then_some(v)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

impl TaskRow {
    /// The row of a record, resolving its symbols in `state` (`error` from the event, if any).
    pub fn of(rec: &TaskRec, state: &Fold, error: Option<String>) -> Self {
        let s = state.strings();
        let name = |sym| Some(s.name(sym)).filter(|n| !n.is_empty()).map(str::to_owned);
        let problem = state.job(&rec.job).and_then(|j| name(j.problem));
        Self {
            task_id: rec.id,
            job_id: (!rec.job.is_nil()).then_some(rec.job),
            method: name(rec.method),
            problem,
            worker: name(rec.worker),
            state: rec.status.as_str().to_owned(),
            attempts: u32::from(rec.attempts),
            first_ms: rec.first_ms,
            received_ms: nonzero(rec.received_ms),
            started_ms: nonzero(rec.started_ms),
            finished_ms: nonzero(rec.finished_ms),
            runtime_ms: (rec.status == TaskStatus::Succeeded).then_some(rec.runtime_ms),
            updated_ms: rec.updated_ms,
            error,
            retry_ms: rec.retry_ms,
        }
    }

    fn from_sql(r: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        let uuid = |s: Option<String>| s.and_then(|s| Uuid::parse_str(&s).ok());
        Ok(Self {
            task_id: uuid(r.get(0)?).unwrap_or_default(),
            job_id: uuid(r.get(1)?),
            method: r.get(2)?,
            problem: r.get(3)?,
            worker: r.get(4)?,
            state: r.get(5)?,
            attempts: r.get(6)?,
            first_ms: to_u64(r.get(7)?).unwrap_or(0),
            received_ms: to_u64(r.get(8)?),
            started_ms: to_u64(r.get(9)?),
            finished_ms: to_u64(r.get(10)?),
            runtime_ms: to_u64(r.get(11)?),
            updated_ms: to_u64(r.get(12)?).unwrap_or(0),
            error: r.get(13)?,
            retry_ms: to_u64(r.get(14)?).unwrap_or(0),
        })
    }
}

impl JobRow {
    /// The row of a record.
    pub fn of(rec: &JobRec, state: &Fold) -> Self {
        let problem = Some(state.strings().name(rec.problem))
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        Self {
            job_id: rec.id,
            problem,
            tasks: rec.tasks,
            received: rec.received,
            succeeded: rec.succeeded,
            failed: rec.failed,
            created_ms: rec.created_ms,
            finished_ms: nonzero(rec.finished_ms),
        }
    }
}

/// The error text an event carries, if any.
fn event_error(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::TaskFailed { reason, .. } => Some(reason.clone()),
        EventKind::TaskDeadLettered { reason, .. } => Some(format!("dead-lettered: {reason}")),
        EventKind::TaskRevoked { terminated, .. } => Some(if *terminated {
            "revoked (terminated while running)".to_owned()
        } else {
            "revoked".to_owned()
        }),
        _ => None,
    }
}

fn event_task(kind: &EventKind) -> Option<Uuid> {
    match kind {
        EventKind::TaskReceived { task_id, .. }
        | EventKind::TaskStarted { task_id, .. }
        | EventKind::TaskSucceeded { task_id, .. }
        | EventKind::TaskFailed { task_id, .. }
        | EventKind::TaskRetried { task_id, .. }
        | EventKind::TaskRevoked { task_id, .. }
        | EventKind::TaskDeadLettered { task_id, .. } => Some(*task_id),
        _ => None,
    }
}

fn event_worker(kind: &EventKind) -> Option<&str> {
    match kind {
        EventKind::WorkerOnline { worker, .. }
        | EventKind::WorkerHeartbeat { worker, .. }
        | EventKind::WorkerOffline { worker } => Some(worker),
        _ => None,
    }
}

impl Store {
    /// Open (creating) the store at `path`, or an in-memory one for `None`. `max_rows` bounds the tasks
    /// and events kept (oldest pruned first).
    pub fn open(path: Option<&Path>, max_rows: u64) -> Result<Self, StoreError> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
            max_rows: max_rows.max(1),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        match self.conn.lock() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Start the writer thread; returns the handle the fold writes through.
    pub fn spawn_writer(self: &Arc<Self>) -> StoreSink {
        let (tx, rx) = std::sync::mpsc::sync_channel(WRITE_BUFFER);
        let store = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("monitor-store".to_owned())
            .spawn(move || store.write_loop(&rx));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the history writer; history is not recorded");
        }
        StoreSink {
            tx,
            dropped: Arc::default(),
        }
    }

    fn write_loop(&self, rx: &Receiver<Op>) {
        let mut since_prune = 0usize;
        while let Ok(first) = rx.recv() {
            let mut batch = vec![first];
            let deadline = Instant::now() + Duration::from_millis(50);
            while batch.len() < 4096 {
                match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            since_prune += batch.len();
            let mut flushes = Vec::new();
            if let Err(e) = self.write_batch(batch, &mut flushes) {
                tracing::warn!(error = %e, "history write failed");
            }
            if since_prune >= 20_000 {
                since_prune = 0;
                if let Err(e) = self.prune() {
                    tracing::warn!(error = %e, "history prune failed");
                }
            }
            for f in flushes {
                let _ = f.send(());
            }
        }
    }

    fn write_batch(
        &self,
        batch: Vec<Op>,
        flushes: &mut Vec<std::sync::mpsc::Sender<()>>,
    ) -> rusqlite::Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut ins_event =
                tx.prepare_cached("INSERT INTO events (ts_ms, type, task_id, body) VALUES (?1, ?2, ?3, ?4)")?;
            let mut up_task = tx.prepare_cached(UPSERT_TASK)?;
            let mut up_job = tx.prepare_cached(
                "INSERT OR REPLACE INTO jobs (job_id, problem, tasks, received, succeeded, failed, created_ms,
                 finished_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            let mut up_worker =
                tx.prepare_cached("INSERT OR REPLACE INTO workers (name, body) VALUES (?1, ?2)")?;
            for op in batch {
                let (event, write, job) = match op {
                    Op::Event(boxed) => *boxed,
                    Op::Flush(f) => {
                        flushes.push(f);
                        continue;
                    }
                };
                // Heartbeats are state, not history: the worker row keeps the latest.
                if !matches!(event.kind, EventKind::WorkerHeartbeat { .. }) {
                    let task = event_task(&event.kind).map(|t| t.to_string());
                    let body = String::from_utf8(event.encode()).unwrap_or_default();
                    ins_event.execute(params![to_i64(event.ts_ms), event.kind.routing_key(), task, body])?;
                }
                let write = match (write, job) {
                    // A task's change also moved its job's progress: write both.
                    (Write::Task(t), Some(j)) => {
                        up_job.execute(params![
                            j.job_id.to_string(),
                            j.problem,
                            j.tasks,
                            j.received,
                            j.succeeded,
                            j.failed,
                            to_i64(j.created_ms),
                            j.finished_ms.map(to_i64),
                        ])?;
                        Write::Task(t)
                    }
                    (w, _) => w,
                };
                match write {
                    Write::Task(t) => {
                        let rank = TaskStatus::parse(&t.state).map_or(0, TaskStatus::rank);
                        up_task.execute(params![
                            t.task_id.to_string(),
                            t.job_id.map(|j| j.to_string()),
                            t.method,
                            t.problem,
                            t.worker,
                            t.state,
                            rank,
                            t.attempts,
                            to_i64(t.first_ms),
                            t.received_ms.map(to_i64),
                            t.started_ms.map(to_i64),
                            t.finished_ms.map(to_i64),
                            t.runtime_ms.map(to_i64),
                            to_i64(t.retry_ms),
                            to_i64(t.updated_ms),
                            t.error,
                        ])?;
                    }
                    Write::Job(j) => {
                        up_job.execute(params![
                            j.job_id.to_string(),
                            j.problem,
                            j.tasks,
                            j.received,
                            j.succeeded,
                            j.failed,
                            to_i64(j.created_ms),
                            j.finished_ms.map(to_i64),
                        ])?;
                    }
                    Write::Worker(w) => {
                        let body = serde_json::to_string(&w).unwrap_or_default();
                        up_worker.execute(params![w.name, body])?;
                    }
                    Write::Nothing => {}
                }
            }
        }
        tx.commit()
    }

    /// Drop the oldest tasks and events beyond `max_rows`.
    pub fn prune(&self) -> rusqlite::Result<()> {
        let conn = self.conn();
        let keep = to_i64(self.max_rows);
        conn.execute(
            "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1",
            params![keep.saturating_mul(4)],
        )?;
        conn.execute(
            "DELETE FROM tasks WHERE updated_ms < (SELECT updated_ms FROM tasks ORDER BY updated_ms DESC
             LIMIT 1 OFFSET ?1)",
            params![keep],
        )?;
        conn.execute(
            "DELETE FROM jobs WHERE created_ms < (SELECT created_ms FROM jobs ORDER BY created_ms DESC
             LIMIT 1 OFFSET ?1)",
            params![keep / 10 + 100],
        )?;
        Ok(())
    }

    /// Load the most recent `max_tasks` tasks (and their jobs, and every worker) into `state`.
    pub fn load_into(&self, state: &mut Fold, max_tasks: usize) -> Result<usize, StoreError> {
        let conn = self.conn();
        let mut jobs = conn.prepare(
            "SELECT job_id, problem, tasks, received, succeeded, failed, created_ms, finished_ms FROM jobs
             ORDER BY created_ms DESC LIMIT ?1",
        )?;
        let rows: Vec<JobRow> = jobs
            .query_map(params![to_i64((max_tasks / 10 + 100) as u64)], |r| {
                Ok(JobRow {
                    job_id: r
                        .get::<_, String>(0)
                        .ok()
                        .and_then(|s| Uuid::parse_str(&s).ok())
                        .unwrap_or_default(),
                    problem: r.get(1)?,
                    tasks: r.get(2)?,
                    received: r.get(3)?,
                    succeeded: r.get(4)?,
                    failed: r.get(5)?,
                    created_ms: to_u64(r.get(6)?).unwrap_or(0),
                    finished_ms: to_u64(r.get(7)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        for j in rows.into_iter().rev() {
            let problem = state.intern(j.problem.as_deref().unwrap_or(""));
            state.restore_job(JobRec {
                id: j.job_id,
                problem,
                tasks: j.tasks,
                received: j.received,
                succeeded: j.succeeded,
                failed: j.failed,
                created_ms: j.created_ms,
                finished_ms: j.finished_ms.unwrap_or(0),
            });
        }
        let mut tasks = conn.prepare(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks ORDER BY updated_ms DESC LIMIT ?1"
        ))?;
        let rows: Vec<TaskRow> = tasks
            .query_map(params![to_i64(max_tasks as u64)], TaskRow::from_sql)?
            .collect::<Result<_, _>>()?;
        let n = rows.len();
        for t in rows.into_iter().rev() {
            let (method, worker) = (
                state.intern(t.method.as_deref().unwrap_or("")),
                state.intern(t.worker.as_deref().unwrap_or("")),
            );
            state.restore_task(TaskRec {
                id: t.task_id,
                job: t.job_id.unwrap_or_default(),
                method,
                worker,
                status: TaskStatus::parse(&t.state).unwrap_or(TaskStatus::Pending),
                attempts: u16::try_from(t.attempts).unwrap_or(u16::MAX),
                first_ms: t.first_ms,
                received_ms: t.received_ms.unwrap_or(0),
                started_ms: t.started_ms.unwrap_or(0),
                finished_ms: t.finished_ms.unwrap_or(0),
                runtime_ms: t.runtime_ms.unwrap_or(0),
                retry_ms: t.retry_ms,
                updated_ms: t.updated_ms,
            });
        }
        let mut workers = conn.prepare("SELECT body FROM workers")?;
        let bodies: Vec<String> = workers.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
        for b in bodies {
            if let Ok(w) = serde_json::from_str::<WorkerView>(&b) {
                state.restore_worker(w);
            }
        }
        Ok(n)
    }

    /// A page of tasks from all history.
    pub fn tasks(&self, q: &TaskQuery) -> Result<TaskPage, StoreError> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        use rusqlite::types::Value as V;
        if let Some(states) = q.state.as_deref().filter(|s| !s.is_empty()) {
            let mut marks = Vec::new();
            for s in states.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let status = TaskStatus::parse(s)
                    .ok_or_else(|| StoreError::BadQuery(format!("unknown state `{s}`")))?;
                args.push(V::Text(status.as_str().to_owned()));
                marks.push("?");
            }
            clauses.push(format!("state IN ({})", marks.join(",")));
        }
        if let Some(text) = q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            let like = format!("%{}%", text.replace(['%', '_'], ""));
            clauses.push(
                "(task_id LIKE ? OR job_id LIKE ? OR method = ? OR problem = ? OR worker LIKE ?)".to_owned(),
            );
            args.extend([
                V::Text(like.clone()),
                V::Text(like.clone()),
                V::Text(text.to_owned()),
                V::Text(text.to_owned()),
                V::Text(like),
            ]);
        }
        for (col, val) in [
            ("method", &q.method),
            ("worker", &q.worker),
            ("problem", &q.problem),
        ] {
            if let Some(v) = val.as_deref().filter(|s| !s.is_empty()) {
                clauses.push(format!("{col} = ?"));
                args.push(V::Text(v.to_owned()));
            }
        }
        if let Some(job) = q.job {
            clauses.push("job_id = ?".to_owned());
            args.push(V::Text(job.to_string()));
        }
        if let Some(from) = q.from_ms {
            clauses.push("updated_ms >= ?".to_owned());
            args.push(V::Integer(to_i64(from)));
        }
        if let Some(to) = q.to_ms {
            clauses.push("updated_ms <= ?".to_owned());
            args.push(V::Integer(to_i64(to)));
        }
        let sort = match q.sort.as_deref().unwrap_or("updated_ms") {
            c @ ("updated_ms" | "first_ms" | "runtime_ms" | "method" | "worker" | "problem" | "attempts") => {
                c
            }
            "state" => "rank",
            other => return Err(StoreError::BadQuery(format!("cannot sort by `{other}`"))),
        };
        let order = match q.order.as_deref().unwrap_or("desc") {
            "asc" => "ASC",
            "desc" => "DESC",
            other => {
                return Err(StoreError::BadQuery(format!(
                    "order must be asc or desc, not `{other}`"
                )));
            }
        };
        let per_page = q.per_page.unwrap_or(50).clamp(1, 500);
        let page = q.page.unwrap_or(1).max(1);
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let conn = self.conn();
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM tasks {filter}"),
            params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let offset = i64::from(page - 1) * i64::from(per_page);
        let mut all = args;
        all.extend([V::Integer(i64::from(per_page)), V::Integer(offset)]);
        let mut stmt = conn.prepare(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks {filter} ORDER BY {sort} {order}, task_id LIMIT ? OFFSET ?"
        ))?;
        let tasks = stmt
            .query_map(params_from_iter(all.iter()), TaskRow::from_sql)?
            .collect::<Result<_, _>>()?;
        Ok(TaskPage {
            total: u64::try_from(total).unwrap_or(0),
            page,
            per_page,
            tasks,
        })
    }

    /// One task's row and its timeline (oldest first).
    pub fn task(&self, id: Uuid) -> Result<Option<(TaskRow, Vec<TimelineEntry>)>, StoreError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = ?1"),
                params![id.to_string()],
                TaskRow::from_sql,
            )
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let mut stmt = conn.prepare(
            "SELECT ts_ms, type, body FROM events WHERE task_id = ?1 ORDER BY ts_ms, seq LIMIT 200",
        )?;
        let timeline = stmt
            .query_map(params![id.to_string()], |r| {
                let body: String = r.get(2)?;
                Ok(TimelineEntry {
                    ts_ms: to_u64(r.get(0)?).unwrap_or(0),
                    kind: r.get(1)?,
                    event: serde_json::from_str(&body).unwrap_or_default(),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some((row, timeline)))
    }

    /// One job.
    pub fn job(&self, id: Uuid) -> Result<Option<JobRow>, StoreError> {
        Ok(self
            .jobs_where("WHERE job_id = ?1", params![id.to_string()])?
            .pop())
    }

    /// Jobs, newest first.
    pub fn jobs(&self, limit: u32) -> Result<Vec<JobRow>, StoreError> {
        self.jobs_where("ORDER BY created_ms DESC LIMIT ?1", params![limit])
    }

    fn jobs_where(&self, tail: &str, args: impl rusqlite::Params) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(&format!(
            "SELECT job_id, problem, tasks, received, succeeded, failed, created_ms, finished_ms FROM jobs {tail}"
        ))?;
        let rows = stmt
            .query_map(args, |r| {
                Ok(JobRow {
                    job_id: r
                        .get::<_, String>(0)
                        .ok()
                        .and_then(|s| Uuid::parse_str(&s).ok())
                        .unwrap_or_default(),
                    problem: r.get(1)?,
                    tasks: r.get(2)?,
                    received: r.get(3)?,
                    succeeded: r.get(4)?,
                    failed: r.get(5)?,
                    created_ms: to_u64(r.get(6)?).unwrap_or(0),
                    finished_ms: to_u64(r.get(7)?),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }
}

/// The fold's handle on the writer thread.
#[derive(Debug, Clone)]
pub struct StoreSink {
    tx: SyncSender<Op>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl StoreSink {
    /// Queue an event and what it changed in `state`; never blocks (a full buffer drops and counts).
    pub fn record(&self, event: &Event, touched: crate::state::Touched, state: &Fold) {
        use crate::state::Touched;
        let mut job = None;
        let write = match touched {
            Touched::Task(rec) => {
                job = state.job(&rec.job).map(|j| JobRow::of(j, state));
                Write::Task(Box::new(TaskRow::of(&rec, state, event_error(&event.kind))))
            }
            Touched::Job(rec) => Write::Job(JobRow::of(&rec, state)),
            Touched::Worker => match event_worker(&event.kind).and_then(|w| state.workers().get(w)) {
                Some(w) => Write::Worker(Box::new(w.clone())),
                None => Write::Nothing,
            },
            Touched::Nothing => Write::Nothing,
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Op::Event(Box::new((event.clone(), write, job))))
        {
            self.dropped.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Writes dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Wait until everything queued so far is written.
    pub fn flush(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.tx.send(Op::Flush(tx)).is_ok() {
            let _ = rx.recv();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts_ms: u64, kind: EventKind) -> Event {
        Event { ts_ms, kind }
    }

    fn fold(state: &mut Fold, sink: &StoreSink, e: Event) {
        let touched = state.apply(&e);
        sink.record(&e, touched, state);
    }

    #[test]
    fn history_survives_a_restart_and_is_searchable() {
        let path = std::env::temp_dir().join(format!("monitor-store-{}.db", Uuid::new_v4().simple()));
        // Fixed ids without the letters of the method searched for below: a random id containing "fd"
        // would match that search too (it once did, in CI).
        let (job, ok, bad) = (
            Uuid::from_u128(0x1111_1111_1111_4111_8111_1111_1111_1111),
            Uuid::from_u128(0x2222_2222_2222_4222_8222_2222_2222_2222),
            Uuid::from_u128(0x3333_3333_3333_4333_8333_3333_3333_3333),
        );
        {
            let store = Arc::new(Store::open(Some(&path), 1000).unwrap());
            let sink = store.spawn_writer();
            let mut s = Fold::new(100);
            fold(
                &mut s,
                &sink,
                ev(
                    0,
                    EventKind::WorkerOnline {
                        worker: "w1".into(),
                        concurrency: 1,
                    },
                ),
            );
            fold(
                &mut s,
                &sink,
                ev(
                    1,
                    EventKind::JobCreated {
                        job_id: job,
                        problem: "4a".into(),
                        tasks: 2,
                    },
                ),
            );
            for (id, method) in [(ok, "cos"), (bad, "fd")] {
                fold(
                    &mut s,
                    &sink,
                    ev(
                        2,
                        EventKind::TaskReceived {
                            task_id: id,
                            job_id: job,
                            method: method.into(),
                            worker: "w1".into(),
                        },
                    ),
                );
            }
            fold(
                &mut s,
                &sink,
                ev(
                    5,
                    EventKind::TaskSucceeded {
                        task_id: ok,
                        worker: "w1".into(),
                        runtime_ms: 3,
                    },
                ),
            );
            fold(
                &mut s,
                &sink,
                ev(
                    6,
                    EventKind::TaskFailed {
                        task_id: bad,
                        worker: "w1".into(),
                        reason: "diverged".into(),
                    },
                ),
            );
            sink.flush();
        }
        // A new process: the same file, an empty fold.
        let store = Store::open(Some(&path), 1000).unwrap();
        let mut s = Fold::new(100);
        assert_eq!(store.load_into(&mut s, 100).unwrap(), 2);
        assert_eq!(s.task(&ok).unwrap().status, TaskStatus::Succeeded);
        assert_eq!(s.task(&bad).unwrap().status, TaskStatus::Failed);
        let j = s.job(&job).unwrap();
        assert_eq!((j.tasks, j.succeeded, j.failed), (2, 1, 1));
        assert_eq!(s.workers()["w1"].status, "offline");

        let failed = store
            .tasks(&TaskQuery {
                state: Some("failed".into()),
                ..TaskQuery::default()
            })
            .unwrap();
        assert_eq!(failed.total, 1);
        assert_eq!(failed.tasks[0].error.as_deref(), Some("diverged"));
        assert_eq!(failed.tasks[0].problem.as_deref(), Some("4a"));
        let frag = &ok.to_string()[..8];
        let found = store
            .tasks(&TaskQuery {
                q: Some(frag.to_owned()),
                ..TaskQuery::default()
            })
            .unwrap();
        assert_eq!(
            found.tasks.iter().map(|t| t.task_id).collect::<Vec<_>>(),
            vec![ok]
        );
        let by_method = store
            .tasks(&TaskQuery {
                q: Some("fd".into()),
                sort: Some("runtime_ms".into()),
                order: Some("asc".into()),
                ..TaskQuery::default()
            })
            .unwrap();
        assert_eq!(by_method.total, 1);
        let (row, timeline) = store.task(ok).unwrap().unwrap();
        assert_eq!((row.state.as_str(), row.runtime_ms), ("succeeded", Some(3)));
        assert_eq!(
            timeline.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>(),
            ["task.received", "task.succeeded"]
        );
        assert!(
            store
                .tasks(&TaskQuery {
                    sort: Some("nope".into()),
                    ..TaskQuery::default()
                })
                .is_err()
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_forgotten_task_seen_again_keeps_what_the_store_knew() {
        let store = Arc::new(Store::open(None, 1000).unwrap());
        let sink = store.spawn_writer();
        let mut s = Fold::new(1);
        let (a, b, job) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        fold(
            &mut s,
            &sink,
            ev(
                1,
                EventKind::TaskReceived {
                    task_id: a,
                    job_id: job,
                    method: "cos".into(),
                    worker: "w".into(),
                },
            ),
        );
        // b pushes a out of memory; a's success then arrives with no method or job.
        fold(
            &mut s,
            &sink,
            ev(
                2,
                EventKind::TaskStarted {
                    task_id: b,
                    worker: "w".into(),
                },
            ),
        );
        fold(
            &mut s,
            &sink,
            ev(
                3,
                EventKind::TaskSucceeded {
                    task_id: a,
                    worker: "w".into(),
                    runtime_ms: 9,
                },
            ),
        );
        sink.flush();
        let (row, _) = store.task(a).unwrap().unwrap();
        assert_eq!(row.state, "succeeded");
        assert_eq!((row.method.as_deref(), row.job_id), (Some("cos"), Some(job)));
        assert_eq!(row.attempts, 1);
    }
}
