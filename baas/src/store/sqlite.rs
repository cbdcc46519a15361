//! The embedded SQLite backend (the default: zero set-up).
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

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use uuid::Uuid;

use protocol::{TaskMessage, TaskResult};

use super::{
    Inserted, JobFilter, JobRecord, Migration, Recorded, Retry, ShareLevel, ShareRecord, StoreError,
    TaskRecord, TokenOwner, TokenRecord, UserRecord, Visibility, accounts, is_failure, now_ms,
};

/// Read-only connections a file store opens beside its writer.
pub const READERS: usize = 2;

/// Connection settings, applied on every open (outside any transaction: the journal mode cannot change
/// inside one).
const PRAGMAS: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
";

/// The schema, version by version; each runs once, in the transaction that records it.
///
/// Version 1 is the schema of the releases before versioned migrations. Its statements are `IF NOT
/// EXISTS`, so a store created by those releases (tables present, no `schema_migrations`) is recognised
/// as version 1 when it is first opened; [`legacy_columns`] adds the columns the very first release
/// lacked.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
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
",
    },
    // The republisher's lease: a task it claimed is not claimed again before this time.
    Migration {
        version: 2,
        sql: "ALTER TABLE tasks ADD COLUMN republish_after_ms INTEGER NOT NULL DEFAULT 0;",
    },
    // Failed tasks per job, kept by every writer of a result, so a poll of a big job does not parse
    // every result it has; counted from the stored results once, for the jobs already there.
    Migration {
        version: 3,
        sql: "
ALTER TABLE jobs ADD COLUMN n_failed INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET n_failed = (
    SELECT COUNT(*) FROM tasks WHERE tasks.job_id = jobs.id AND result IS NOT NULL
    AND json_extract(result, '$.outcome.status') = 'failed'
);
",
    },
    // Accounts: users with a role, and API tokens kept only as the SHA-256 of their secret.
    Migration {
        version: 4,
        sql: "
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name),
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER
);
CREATE INDEX api_tokens_user ON api_tokens(user_name);
",
    },
    // Ownership: a job's owner and visibility (jobs from before accounts are public), and its shares.
    Migration {
        version: 5,
        sql: "
ALTER TABLE jobs ADD COLUMN owner TEXT;
ALTER TABLE jobs ADD COLUMN visibility TEXT NOT NULL DEFAULT 'public';
CREATE INDEX jobs_owner ON jobs(owner);
CREATE TABLE shares (
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    user_name  TEXT NOT NULL REFERENCES users(name),
    level      TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (job_id, user_name)
);
CREATE INDEX shares_user ON shares(user_name);
",
    },
    // Share links: anyone holding one reads its job until it expires (kept only as the SHA-256 of it).
    Migration {
        version: 6,
        sql: "
CREATE TABLE share_links (
    hash       TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs(id),
    created_by TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
",
    },
];

/// The SQLite backend. Cheap to clone.
#[derive(Clone)]
pub(super) struct SqliteStore {
    pub(super) conn: Arc<Mutex<Connection>>,
    /// Read-only connections of a file store; empty for an in-memory store (reads use `conn`).
    pub(super) readers: Arc<[Mutex<Connection>]>,
    next_reader: Arc<AtomicUsize>,
}

impl SqliteStore {
    /// Open (creating if needed) the store at `path`; `None` keeps it in memory.
    pub(super) fn open(path: Option<&Path>) -> Result<Self, StoreError> {
        let mut conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.execute_batch(PRAGMAS)?;
        migrate(&mut conn)?;
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

    /// Run `f` on the writing connection (the caller, [`super::Store`], empties the finished-job cache
    /// after it).
    async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Poisoned)?;
            f(&mut guard)
        })
        .await?
    }

    pub(super) async fn insert_job_once(
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
            insert_rows(&tx, &job, &tasks, seq)?;
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

    /// Insert several jobs (none with an idempotency key) in one transaction: the group commit of
    /// [`super::Store::insert_job`].
    pub(super) async fn insert_jobs(
        &self,
        jobs: Vec<(JobRecord, Vec<TaskMessage>)>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let first: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs", [], |r| r.get(0))?;
            for (seq, (job, tasks)) in (first..).zip(&jobs) {
                insert_rows(&tx, job, tasks, seq)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn cancel_job(
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
            let mut stored = 0;
            {
                let mut stmt = tx.prepare("UPDATE tasks SET result = ?2 WHERE id = ?1 AND result IS NULL")?;
                for t in &pending {
                    let result = super::cancelled_result(t, now_ms);
                    stored +=
                        stmt.execute(params![t.task_id.to_string(), serde_json::to_string(&result)?])?;
                }
            }
            tx.execute(
                "UPDATE jobs SET n_done = n_tasks, finished_ms = ?2, cancelled_ms = ?2,
                 n_failed = n_failed + ?3 WHERE id = ?1",
                params![id.to_string(), now_ms as i64, stored as i64],
            )?;
            tx.commit()?;
            Ok(Some((job, pending)))
        })
        .await
    }

    pub(super) async fn retry_task(&self, task_id: Uuid) -> Result<Retry, StoreError> {
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
                "UPDATE jobs SET n_done = n_done - 1, n_failed = n_failed - 1, finished_ms = NULL WHERE id = ?1",
                [&job_id],
            )?;
            tx.commit()?;
            Ok(Retry::Requeued(serde_json::from_str(&message)?))
        })
        .await
    }

    /// Mark one batch of tasks published, in one transaction.
    pub(super) async fn mark_published(&self, batch: Vec<Uuid>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached("UPDATE tasks SET published = 1 WHERE id = ?1")?;
                for id in &batch {
                    stmt.execute([id.to_string()])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(super) async fn task_message(&self, id: Uuid) -> Result<Option<TaskMessage>, StoreError> {
        self.read(move |c| {
            let message: Option<String> = c
                .prepare_cached("SELECT message FROM tasks WHERE id = ?1")?
                .query_row([id.to_string()], |r| r.get(0))
                .optional()?;
            Ok(message.map(|m| serde_json::from_str(&m)).transpose()?)
        })
        .await
    }

    pub(super) async fn unpublished_tasks(
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

    pub(super) async fn claim_unpublished(
        &self,
        before_ms: u64,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<TaskMessage>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "UPDATE tasks SET republish_after_ms = ?3 WHERE id IN (
                     SELECT id FROM tasks WHERE published = 0 AND result IS NULL AND created_ms < ?1
                     AND republish_after_ms <= ?2 ORDER BY created_ms LIMIT ?4)
                 RETURNING message",
            )?;
            let rows = stmt.query_map(
                params![
                    before_ms as i64,
                    now_ms as i64,
                    now_ms.saturating_add(lease_ms) as i64,
                    limit as i64
                ],
                |r| r.get::<_, String>(0),
            )?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row?)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn record_results(
        &self,
        results: Vec<TaskResult>,
        now_ms: u64,
    ) -> Result<Vec<Recorded>, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let mut out = Vec::with_capacity(results.len());
            {
                // One writer: what `find` reads stays true until this transaction commits.
                let mut find = tx.prepare_cached("SELECT job_id, result IS NULL FROM tasks WHERE id = ?1")?;
                let mut count = tx
                    .prepare_cached("UPDATE tasks SET result_deliveries = result_deliveries + 1 WHERE id = ?1")?;
                let mut store = tx.prepare_cached(
                    "UPDATE tasks SET result = ?2, published = 1, result_deliveries = result_deliveries + 1
                     WHERE id = ?1",
                )?;
                let mut done = tx
                    .prepare_cached("UPDATE jobs SET n_done = n_done + 1, n_failed = n_failed + ?2 WHERE id = ?1")?;
                let mut finish = tx.prepare_cached(
                    "UPDATE jobs SET finished_ms = ?2 WHERE id = ?1 AND n_done = n_tasks AND finished_ms IS NULL",
                )?;
                for result in &results {
                    let id = result.task_id.to_string();
                    let task: Option<(String, bool)> =
                        find.query_row([&id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                    let Some((job_id, open)) = task else {
                        out.push(Recorded::UnknownTask);
                        continue;
                    };
                    out.push(if !open {
                        count.execute([&id])?;
                        Recorded::Duplicate
                    } else {
                        store.execute(params![id, serde_json::to_string(result)?])?;
                        done.execute(params![job_id, i64::from(is_failure(result))])?;
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

    pub(super) async fn job_summary(&self, id: Uuid) -> Result<Option<(JobRecord, u32)>, StoreError> {
        self.read(move |c| {
            Ok(
                c.prepare_cached(&format!("SELECT {JOB_COLUMNS}, n_failed FROM jobs WHERE id = ?1"))?
                    .query_row([id.to_string()], |r| Ok((job_row(r)?, r.get(11)?)))
                    .optional()?,
            )
        })
        .await
    }

    pub(super) async fn job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<TaskRecord>)>, StoreError> {
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

    pub(super) async fn list_jobs(
        &self,
        filter: JobFilter,
    ) -> Result<(Vec<JobRecord>, Option<i64>), StoreError> {
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
            if let Some(viewer) = filter.viewer {
                sql.push_str(
                    " AND (visibility = 'public' OR owner = ?
                       OR EXISTS (SELECT 1 FROM shares s WHERE s.job_id = jobs.id AND s.user_name = ?))",
                );
                args.push(viewer.clone().into());
                args.push(viewer.into());
            }
            sql.push_str(super::status_condition(filter.status));
            sql.push_str(" ORDER BY seq DESC LIMIT ?");
            args.push(((filter.limit + 1) as i64).into());
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
                Ok((job_row(r)?, r.get::<_, i64>(11)?))
            })?;
            let jobs = rows.collect::<Result<Vec<_>, _>>()?;
            Ok(super::page(jobs, filter.limit))
        })
        .await
    }

    pub(super) async fn results_for_problem(
        &self,
        problem: String,
        tolerance: f64,
        viewer: Option<String>,
    ) -> Result<Vec<TaskResult>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT t.result FROM tasks t JOIN jobs j ON t.job_id = j.id
                 WHERE j.problem = ?1 AND j.tolerance = ?2 AND j.finished_ms IS NOT NULL AND t.result IS NOT NULL
                   AND (j.visibility = 'public' OR j.owner = ?3)
                 ORDER BY j.seq",
            )?;
            let rows = stmt.query_map(params![problem, tolerance, viewer], |r| r.get::<_, String>(0))?;
            let mut out = Vec::new();
            for row in rows {
                out.push(serde_json::from_str(&row?)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?))
            .await
    }
}

/// Apply every migration newer than the store's version, in one `IMMEDIATE` transaction (so two
/// processes opening one file at once take turns).
// Accounts (see `super::accounts`).
impl SqliteStore {
    pub(super) async fn add_user(&self, user: UserRecord) -> Result<bool, StoreError> {
        self.call(move |c| {
            let added = c.execute(
                "INSERT INTO users (name, role, created_ms) VALUES (?1, ?2, ?3) ON CONFLICT (name) DO NOTHING",
                params![user.name, user.role.as_str(), user.created_ms as i64],
            )?;
            Ok(added == 1)
        })
        .await
    }

    pub(super) async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare_cached("SELECT name, role, created_ms FROM users ORDER BY name")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (name, role, created_ms) = row?;
                out.push(UserRecord {
                    name,
                    role: accounts::role_of(&role)?,
                    created_ms: created_ms as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn has_users(&self) -> Result<bool, StoreError> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT EXISTS (SELECT 1 FROM users)")?
                .query_row([], |r| r.get(0))?)
        })
        .await
    }

    pub(super) async fn add_token(&self, token: TokenRecord, hash: String) -> Result<bool, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let known: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM users WHERE name = ?1)",
                [&token.user],
                |r| r.get(0),
            )?;
            if !known {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO api_tokens (id, user_name, hash, scopes, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    token.id.to_string(),
                    token.user,
                    hash,
                    accounts::scopes_text(&token.scopes),
                    token.created_ms as i64,
                    token.expires_ms.map(|v| v as i64),
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub(super) async fn tokens(&self, user: Option<String>) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE ?1 IS NULL OR user_name = ?1
                 ORDER BY created_ms DESC, id"
            ))?;
            let rows = stmt.query_map([user], token_row)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(token_record(row?)?);
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn revoke_token(
        &self,
        id: Uuid,
        now_ms: u64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, ?2) WHERE id = ?1",
                params![id.to_string(), now_ms as i64],
            )?;
            let row = c
                .prepare_cached(&format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE id = ?1"))?
                .query_row([id.to_string()], token_row)
                .optional()?;
            row.map(token_record).transpose()
        })
        .await
    }

    pub(super) async fn token_by_hash(&self, hash: String) -> Result<Option<TokenOwner>, StoreError> {
        self.read(move |c| {
            let row = c
                .prepare_cached(
                    "SELECT t.id, t.user_name, t.scopes, t.created_ms, t.expires_ms, t.revoked_ms, u.role
                     FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = ?1",
                )?
                .query_row([hash], |r| Ok((token_row(r)?, r.get::<_, String>(6)?)))
                .optional()?;
            row.map(|(t, role)| Ok((token_record(t)?, accounts::role_of(&role)?)))
                .transpose()
        })
        .await
    }
}

// Ownership and shares (see `super::accounts`).
impl SqliteStore {
    pub(super) async fn job_access(
        &self,
        id: Uuid,
    ) -> Result<Option<(Option<String>, Visibility)>, StoreError> {
        self.read(move |c| {
            let row: Option<(Option<String>, String)> = c
                .prepare_cached("SELECT owner, visibility FROM jobs WHERE id = ?1")?
                .query_row([id.to_string()], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(owner, v)| Ok((owner, accounts::visibility_of(&v)?)))
                .transpose()
        })
        .await
    }

    pub(super) async fn share_level(&self, id: Uuid, user: String) -> Result<Option<ShareLevel>, StoreError> {
        self.read(move |c| {
            let level: Option<String> = c
                .prepare_cached("SELECT level FROM shares WHERE job_id = ?1 AND user_name = ?2")?
                .query_row(params![id.to_string(), user], |r| r.get(0))
                .optional()?;
            level.map(|l| accounts::level_of(&l)).transpose()
        })
        .await
    }

    pub(super) async fn shares(&self, id: Uuid) -> Result<Vec<ShareRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT user_name, level, created_ms FROM shares WHERE job_id = ?1 ORDER BY user_name",
            )?;
            let rows = stmt.query_map([id.to_string()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (user, level, created_ms) = row?;
                out.push(ShareRecord {
                    user,
                    level: accounts::level_of(&level)?,
                    created_ms: created_ms as u64,
                });
            }
            Ok(out)
        })
        .await
    }

    pub(super) async fn set_visibility(&self, id: Uuid, visibility: Visibility) -> Result<bool, StoreError> {
        self.call(move |c| {
            let n = c.execute(
                "UPDATE jobs SET visibility = ?2 WHERE id = ?1",
                params![id.to_string(), visibility.as_str()],
            )?;
            Ok(n == 1)
        })
        .await
    }

    pub(super) async fn share(&self, id: Uuid, share: ShareRecord) -> Result<bool, StoreError> {
        self.call(move |c| {
            let n = c.execute(
                "INSERT INTO shares (job_id, user_name, level, created_ms)
                 SELECT ?1, name, ?3, ?4 FROM users WHERE name = ?2
                 ON CONFLICT (job_id, user_name) DO UPDATE SET level = excluded.level",
                params![
                    id.to_string(),
                    share.user,
                    share.level.as_str(),
                    share.created_ms as i64
                ],
            )?;
            Ok(n == 1)
        })
        .await
    }

    pub(super) async fn unshare(&self, id: Uuid, user: String) -> Result<bool, StoreError> {
        self.call(move |c| {
            let n = c.execute(
                "DELETE FROM shares WHERE job_id = ?1 AND user_name = ?2",
                params![id.to_string(), user],
            )?;
            Ok(n == 1)
        })
        .await
    }
}

// Share links and quotas (see `super::accounts`).
impl SqliteStore {
    pub(super) async fn owner_task_counts(
        &self,
        owner: String,
        since_ms: u64,
    ) -> Result<super::TaskCounts, StoreError> {
        self.read(move |c| {
            Ok(c.prepare_cached(
                "SELECT COALESCE(SUM(t.result IS NULL), 0), COALESCE(SUM(t.created_ms >= ?2), 0),
                        MIN(CASE WHEN t.created_ms >= ?2 THEN t.created_ms END)
                 FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE j.owner = ?1",
            )?
            .query_row(params![owner, since_ms as i64], |r| {
                Ok(super::TaskCounts {
                    in_flight: r.get::<_, i64>(0)? as u64,
                    recent: r.get::<_, i64>(1)? as u64,
                    oldest_recent_ms: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                })
            })?)
        })
        .await
    }

    pub(super) async fn add_link(
        &self,
        hash: String,
        job_id: Uuid,
        by: String,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO share_links (hash, job_id, created_by, created_ms, expires_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![hash, job_id.to_string(), by, now_ms as i64, expires_ms as i64],
            )?;
            Ok(())
        })
        .await
    }

    pub(super) async fn link_job(&self, hash: String, now_ms: u64) -> Result<Option<Uuid>, StoreError> {
        self.read(move |c| {
            let id: Option<String> = c
                .prepare_cached("SELECT job_id FROM share_links WHERE hash = ?1 AND expires_ms > ?2")?
                .query_row(params![hash, now_ms as i64], |r| r.get(0))
                .optional()?;
            id.map(|id| {
                id.parse()
                    .map_err(|_| StoreError::Invalid(format!("job id {id} is not a UUID")))
            })
            .transpose()
        })
        .await
    }
}

const TOKEN_COLUMNS: &str = "id, user_name, scopes, created_ms, expires_ms, revoked_ms";

type TokenRow = (String, String, String, i64, Option<i64>, Option<i64>);

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

fn token_record(
    (id, user, scopes, created_ms, expires_ms, revoked_ms): TokenRow,
) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: id
            .parse()
            .map_err(|_| StoreError::Invalid(format!("token id {id} is not a UUID")))?,
        user,
        scopes: accounts::scopes_of(&scopes)?,
        created_ms: created_ms as u64,
        expires_ms: expires_ms.map(|v| v as u64),
        revoked_ms: revoked_ms.map(|v| v as u64),
    })
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    INTEGER PRIMARY KEY,
            applied_ms INTEGER NOT NULL
        )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if current > known {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known,
        });
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(m.sql)?;
        if m.version == 1 {
            legacy_columns(&tx)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
            params![m.version, now_ms() as i64],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Columns the first release's stores lack (version 1's `CREATE TABLE IF NOT EXISTS` leaves such a table
/// as it is).
fn legacy_columns(conn: &Connection) -> Result<(), StoreError> {
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

const JOB_COLUMNS: &str = "id, problem, tolerance, repeats, created_ms, finished_ms, n_tasks, n_done, cancelled_ms, owner, visibility";

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
        owner: r.get(9)?,
        visibility: r.get::<_, String>(10)?.parse().map_err(|_| {
            rusqlite::Error::InvalidColumnType(10, "visibility".into(), rusqlite::types::Type::Text)
        })?,
    })
}

/// A job's row (with sequence number `seq`) and its tasks' rows, inside the caller's transaction.
fn insert_rows(
    tx: &rusqlite::Transaction<'_>,
    job: &JobRecord,
    tasks: &[TaskMessage],
    seq: i64,
) -> Result<(), StoreError> {
    let job_id = job.id.to_string();
    tx.prepare_cached(
        "INSERT INTO jobs (id, seq, problem, tolerance, repeats, created_ms, n_tasks, owner, visibility)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
    )?
    .execute(params![
        job_id,
        seq,
        job.problem,
        job.tolerance,
        job.repeats,
        job.created_ms as i64,
        job.n_tasks,
        job.owner,
        job.visibility.as_str()
    ])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO tasks (id, job_id, pos, method, message, created_ms) VALUES (?1,?2,?3,?4,?5,?6)",
    )?;
    for (pos, t) in tasks.iter().enumerate() {
        stmt.execute(params![
            t.task_id.to_string(),
            job_id,
            pos as i64,
            t.method,
            serde_json::to_string(t)?,
            job.created_ms as i64
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{failed, new_job, task};
    use super::super::{Backend, Store};
    use super::*;

    fn temp_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("baas-store-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn sqlite(store: &Store) -> &SqliteStore {
        match &store.backend {
            Backend::Sqlite(s) => s,
            Backend::Postgres(_) => panic!("not a SQLite store"),
        }
    }

    fn versions(path: &Path) -> Vec<i64> {
        let c = Connection::open(path).unwrap();
        let mut stmt = c
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[tokio::test]
    async fn a_file_store_reads_on_its_readers_what_the_writer_committed() {
        let dir = temp_dir();
        let store = Store::open(Some(&dir.join("baas.db"))).unwrap();
        assert_eq!(sqlite(&store).readers.len(), READERS);
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
        let reader = sqlite(&store).readers[0].lock().unwrap();
        assert!(reader.execute("DELETE FROM jobs", []).is_err());
        drop(reader);
        drop(store);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn migrations_are_idempotent_on_reopen() {
        let dir = temp_dir();
        let path = dir.join("baas.db");
        let id = Uuid::new_v4();
        let store = Store::open(Some(&path)).unwrap();
        store
            .insert_job(new_job(id, 1), vec![task(id, "cos")])
            .await
            .unwrap();
        drop(store);
        for _ in 0..2 {
            let store = Store::open(Some(&path)).unwrap();
            assert_eq!(store.job(id).await.unwrap().unwrap().0.n_tasks, 1);
        }
        assert_eq!(versions(&path), vec![1, 2, 3, 4, 5, 6]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The schema of the releases before versioned migrations (`SCHEMA` in the old `store.rs`), and of
    /// the first release (without `cancelled_ms` and `attempts`).
    const LEGACY: &str = "
        CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, problem TEXT NOT NULL,
            tolerance REAL NOT NULL, repeats INTEGER NOT NULL, created_ms INTEGER NOT NULL,
            finished_ms INTEGER, n_tasks INTEGER NOT NULL, n_done INTEGER NOT NULL DEFAULT 0 /*C*/);
        CREATE INDEX jobs_seq ON jobs(seq);
        CREATE TABLE tasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL REFERENCES jobs(id),
            pos INTEGER NOT NULL, method TEXT NOT NULL, message TEXT NOT NULL, created_ms INTEGER NOT NULL,
            published INTEGER NOT NULL DEFAULT 0, result TEXT,
            result_deliveries INTEGER NOT NULL DEFAULT 0 /*A*/);
        CREATE INDEX tasks_job ON tasks(job_id, pos);
        CREATE INDEX tasks_unpublished ON tasks(published) WHERE published = 0;
        CREATE TABLE idempotency (key TEXT PRIMARY KEY, request TEXT NOT NULL,
            job_id TEXT NOT NULL REFERENCES jobs(id), created_ms INTEGER NOT NULL);
    ";

    #[tokio::test]
    async fn a_store_from_before_migrations_opens_as_version_1_with_its_data() {
        for first_release in [false, true] {
            let dir = temp_dir();
            let path = dir.join("baas.db");
            let (job_id, task_id) = (Uuid::new_v4(), Uuid::new_v4());
            let mut t = task(job_id, "cos");
            t.task_id = task_id;
            {
                let schema = if first_release {
                    LEGACY.replace("/*C*/", "").replace("/*A*/", "")
                } else {
                    LEGACY
                        .replace("/*C*/", ", cancelled_ms INTEGER")
                        .replace("/*A*/", ", attempts INTEGER NOT NULL DEFAULT 1")
                };
                let c = Connection::open(&path).unwrap();
                c.execute_batch("PRAGMA journal_mode = WAL;").unwrap();
                c.execute_batch(&schema).unwrap();
                c.execute(
                    "INSERT INTO jobs (id, seq, problem, tolerance, repeats, created_ms, n_tasks)
                     VALUES (?1, 1, '1aI', 1e-4, 3, 10, 1)",
                    [job_id.to_string()],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO tasks (id, job_id, pos, method, message, created_ms) VALUES (?1, ?2, 0, 'cos', ?3, 10)",
                    params![task_id.to_string(), job_id.to_string(), serde_json::to_string(&t).unwrap()],
                )
                .unwrap();
                c.execute(
                    "INSERT INTO idempotency (key, request, job_id, created_ms) VALUES ('k', 'r', ?1, 10)",
                    [job_id.to_string()],
                )
                .unwrap();
            }
            let store = Store::open(Some(&path)).unwrap();
            assert_eq!(
                versions(&path),
                vec![1, 2, 3, 4, 5, 6],
                "first release: {first_release}"
            );
            let (job, records) = store.job(job_id).await.unwrap().unwrap();
            assert_eq!((job.n_tasks, job.cancelled_ms), (1, None));
            assert_eq!((records[0].id, records[0].attempts), (task_id, 1));
            let other = Uuid::new_v4();
            assert_eq!(
                store
                    .insert_job_once(
                        new_job(other, 1),
                        vec![task(other, "cos")],
                        Some(("k".into(), "r".into()))
                    )
                    .await
                    .unwrap(),
                Inserted::Existing { id: job_id, tasks: 1 }
            );
            // The old data works with today's code: cancel, retry, list.
            let (_, revoked) = store.cancel_job(job_id, 50).await.unwrap().unwrap();
            assert_eq!(revoked, vec![t.clone()]);
            assert_eq!(store.job_summary(job_id).await.unwrap().unwrap().1, 1);
            let next = Uuid::new_v4();
            store
                .insert_job(new_job(next, 1), vec![task(next, "fd")])
                .await
                .unwrap();
            let filter = JobFilter {
                limit: 10,
                ..JobFilter::default()
            };
            let (jobs, _) = store.list_jobs(filter).await.unwrap();
            assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), vec![next, job_id]);
            drop(store);
            let _reopened = Store::open(Some(&path)).unwrap();
            assert_eq!(versions(&path), vec![1, 2, 3, 4, 5, 6]);
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[test]
    fn a_store_from_a_newer_baas_is_refused() {
        let dir = temp_dir();
        let path = dir.join("baas.db");
        drop(Store::open(Some(&path)).unwrap());
        let c = Connection::open(&path).unwrap();
        c.execute(
            "INSERT INTO schema_migrations (version, applied_ms) VALUES (99, 0)",
            [],
        )
        .unwrap();
        drop(c);
        assert!(matches!(
            Store::open(Some(&path)),
            Err(StoreError::SchemaTooNew { found: 99, known: 6 })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
