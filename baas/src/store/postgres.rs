//! The PostgreSQL backend: one `deadpool-postgres` pool, cached prepared statements, multi-row writes
//! through `UNNEST` arrays.
//!
//! Several baas replicas may share the database, so the writes that SQLite serialises by its one
//! writer are made safe here by row locks, always taken in one order (job rows before task rows, each
//! sorted by id) so that concurrent writers never deadlock; idempotency keys are claimed with
//! `INSERT … ON CONFLICT DO NOTHING` before the job is inserted, so two inserts with one key can never
//! both create a job. Multi-statement reads run in one `REPEATABLE READ` read-only transaction (one
//! snapshot, like SQLite's read transactions).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};
use uuid::Uuid;

use protocol::{TaskMessage, TaskResult};

use super::{
    Inserted, JobFilter, JobRecord, Migration, Recorded, Retry, ShareLevel, ShareRecord, StoreError,
    TaskRecord, TokenOwner, TokenRecord, UserRecord, Visibility, accounts, is_failure, now_ms,
};

/// Connections in the pool.
const POOL_SIZE: usize = 16;

/// The schema, version by version; each runs once, in the transaction that records it.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: "
CREATE TABLE jobs (
    id           UUID PRIMARY KEY,
    seq          BIGINT GENERATED ALWAYS AS IDENTITY,
    problem      TEXT NOT NULL,
    tolerance    DOUBLE PRECISION NOT NULL,
    repeats      BIGINT NOT NULL,
    created_ms   BIGINT NOT NULL,
    finished_ms  BIGINT,
    n_tasks      BIGINT NOT NULL,
    n_done       BIGINT NOT NULL DEFAULT 0,
    cancelled_ms BIGINT
);
CREATE UNIQUE INDEX jobs_seq ON jobs(seq);
CREATE TABLE tasks (
    id                UUID PRIMARY KEY,
    job_id            UUID NOT NULL REFERENCES jobs(id),
    pos               BIGINT NOT NULL,
    method            TEXT NOT NULL,
    message           TEXT NOT NULL,
    created_ms        BIGINT NOT NULL,
    published         BOOLEAN NOT NULL DEFAULT FALSE,
    result            TEXT,
    result_deliveries BIGINT NOT NULL DEFAULT 0,
    attempts          BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX tasks_job ON tasks(job_id, pos);
CREATE INDEX tasks_unpublished ON tasks(created_ms) WHERE NOT published AND result IS NULL;
-- The key is claimed before its job is inserted (same transaction), hence the deferred reference.
CREATE TABLE idempotency (
    key        TEXT PRIMARY KEY,
    request    TEXT NOT NULL,
    job_id     UUID NOT NULL REFERENCES jobs(id) DEFERRABLE INITIALLY DEFERRED,
    created_ms BIGINT NOT NULL
);
",
    },
    // The republisher's lease: a task one replica claimed is not claimed again (by any) before this time.
    Migration {
        version: 2,
        sql: "ALTER TABLE tasks ADD COLUMN republish_after_ms BIGINT NOT NULL DEFAULT 0;",
    },
    // Failed tasks per job, kept by every writer of a result, so a poll of a big job does not parse
    // every result it has; counted from the stored results once, for the jobs already there.
    Migration {
        version: 3,
        sql: "
ALTER TABLE jobs ADD COLUMN n_failed BIGINT NOT NULL DEFAULT 0;
UPDATE jobs SET n_failed = f.n FROM (
    SELECT job_id, COUNT(*) AS n FROM tasks
    WHERE result IS NOT NULL AND (result::json -> 'outcome' ->> 'status') = 'failed'
    GROUP BY job_id
) AS f WHERE jobs.id = f.job_id;
",
    },
    // Accounts: users with a role, and API tokens kept only as the SHA-256 of their secret.
    Migration {
        version: 4,
        sql: "
CREATE TABLE users (
    name       TEXT PRIMARY KEY,
    role       TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE api_tokens (
    id         UUID PRIMARY KEY,
    user_name  TEXT NOT NULL REFERENCES users(name),
    hash       TEXT NOT NULL UNIQUE,
    scopes     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked_ms BIGINT
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
    job_id     UUID NOT NULL REFERENCES jobs(id),
    user_name  TEXT NOT NULL REFERENCES users(name),
    level      TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
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
    job_id     UUID NOT NULL REFERENCES jobs(id),
    created_by TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
",
    },
];

const JOB_COLUMNS: &str = "id, problem, tolerance, repeats, created_ms, finished_ms, n_tasks, n_done, cancelled_ms, owner, visibility";

/// The PostgreSQL backend. Cheap to clone.
#[derive(Clone)]
pub(super) struct PgStore {
    pool: Pool,
    /// For the dedicated `LISTEN` connection of [`PgStore::listen`].
    config: std::sync::Arc<tokio_postgres::Config>,
    /// The channel of this schema's job updates (channels are per database, schemas share them).
    channel: std::sync::Arc<str>,
}

impl PgStore {
    /// A pool over `url`, with the schema migrated.
    pub(super) async fn connect(url: &str) -> Result<Self, StoreError> {
        let mut config: tokio_postgres::Config = url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(Duration::from_secs(15)))
            .wait_timeout(Some(Duration::from_secs(30)))
            .build()?;
        let schema: Option<String> = pool
            .get()
            .await?
            .query_one("SELECT current_schema()", &[])
            .await?
            .try_get(0)?;
        let channel = format!("benchop_jobs.{}", schema.unwrap_or_default()).into();
        let store = Self {
            pool,
            config: std::sync::Arc::new(config),
            channel,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Apply every migration newer than the database's version, in one transaction under an advisory
    /// lock (per schema), so replicas starting at once take turns.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('baas.schema_migrations.' || COALESCE(current_schema(), ''), 0))",
            &[],
        )
        .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version    INTEGER PRIMARY KEY,
                applied_ms BIGINT NOT NULL
            )",
        )
        .await?;
        let current: i32 = tx
            .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
            .await?
            .try_get(0)?;
        let current = i64::from(current);
        let known = MIGRATIONS.last().map_or(0, |m| m.version);
        if current > known {
            return Err(StoreError::SchemaTooNew {
                found: current,
                known,
            });
        }
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            tx.batch_execute(m.sql).await?;
            let version = i32::try_from(m.version).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES ($1, $2)",
                &[&version, &(now_ms() as i64)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn insert_job_once(
        &self,
        job: JobRecord,
        tasks: Vec<TaskMessage>,
        idempotency: Option<(String, String)>,
    ) -> Result<Inserted, StoreError> {
        let mut client = self.pool.get().await?;
        let created_ms = job.created_ms as i64;
        let mut ids = Vec::with_capacity(tasks.len());
        let mut positions = Vec::with_capacity(tasks.len());
        let mut methods = Vec::with_capacity(tasks.len());
        let mut messages = Vec::with_capacity(tasks.len());
        for (pos, t) in tasks.iter().enumerate() {
            ids.push(t.task_id);
            positions.push(pos as i64);
            methods.push(t.method.as_str());
            messages.push(serde_json::to_string(t)?);
        }
        let tx = client.transaction().await?;
        if let Some((key, request)) = &idempotency {
            if let Some(seen) = seen_key(&tx, key, request).await? {
                tx.rollback().await?;
                return Ok(seen);
            }
            // Claim the key first: a concurrent insert with it waits here for the other's commit, then
            // inserts nothing and reads the other's job.
            let claim = tx
                .prepare_cached(
                    "INSERT INTO idempotency (key, request, job_id, created_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (key) DO NOTHING",
                )
                .await?;
            if tx.execute(&claim, &[key, request, &job.id, &created_ms]).await? == 0 {
                let seen = seen_key(&tx, key, request).await?;
                tx.rollback().await?;
                return seen.ok_or_else(|| {
                    StoreError::Invalid(format!("idempotency key {key:?} is taken but has no job"))
                });
            }
        }
        let insert_job = tx
            .prepare_cached(
                "INSERT INTO jobs (id, problem, tolerance, repeats, created_ms, n_tasks, owner, visibility)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .await?;
        tx.execute(
            &insert_job,
            &[
                &job.id,
                &job.problem,
                &job.tolerance,
                &i64::from(job.repeats),
                &created_ms,
                &i64::from(job.n_tasks),
                &job.owner,
                &job.visibility.as_str(),
            ],
        )
        .await?;
        let insert_tasks = tx
            .prepare_cached(
                "INSERT INTO tasks (id, job_id, pos, method, message, created_ms)
                 SELECT u.id, $1, u.pos, u.method, u.message, $2
                 FROM UNNEST($3::uuid[], $4::bigint[], $5::text[], $6::text[]) AS u(id, pos, method, message)",
            )
            .await?;
        tx.execute(
            &insert_tasks,
            &[&job.id, &created_ms, &ids, &positions, &methods, &messages],
        )
        .await?;
        tx.commit().await?;
        Ok(Inserted::New)
    }

    /// Insert several jobs (none with an idempotency key) and all their tasks in one statement: the
    /// group commit of [`super::Store::insert_job`], one round trip and one commit for every POST that
    /// arrived while the previous batch was being written.
    pub(super) async fn insert_jobs(
        &self,
        jobs: Vec<(JobRecord, Vec<TaskMessage>)>,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let n_tasks: usize = jobs.iter().map(|(_, t)| t.len()).sum();
        let (mut job_ids, mut problems, mut tolerances, mut repeats, mut created, mut counts) = (
            Vec::with_capacity(jobs.len()),
            Vec::with_capacity(jobs.len()),
            Vec::with_capacity(jobs.len()),
            Vec::with_capacity(jobs.len()),
            Vec::with_capacity(jobs.len()),
            Vec::with_capacity(jobs.len()),
        );
        let (mut job_owners, mut visibilities) =
            (Vec::with_capacity(jobs.len()), Vec::with_capacity(jobs.len()));
        let (mut ids, mut owners, mut positions, mut methods, mut messages, mut task_created) = (
            Vec::with_capacity(n_tasks),
            Vec::with_capacity(n_tasks),
            Vec::with_capacity(n_tasks),
            Vec::with_capacity(n_tasks),
            Vec::with_capacity(n_tasks),
            Vec::with_capacity(n_tasks),
        );
        for (job, tasks) in &jobs {
            job_ids.push(job.id);
            problems.push(job.problem.as_str());
            tolerances.push(job.tolerance);
            repeats.push(i64::from(job.repeats));
            created.push(job.created_ms as i64);
            counts.push(i64::from(job.n_tasks));
            job_owners.push(job.owner.as_deref());
            visibilities.push(job.visibility.as_str());
            for (pos, t) in tasks.iter().enumerate() {
                ids.push(t.task_id);
                owners.push(job.id);
                positions.push(pos as i64);
                methods.push(t.method.as_str());
                messages.push(serde_json::to_string(t)?);
                task_created.push(job.created_ms as i64);
            }
        }
        // The jobs in the order given, so their `seq` (the listing's cursor) follows submission.
        let insert = client
            .prepare_cached(
                "WITH job AS (
                     INSERT INTO jobs (id, problem, tolerance, repeats, created_ms, n_tasks, owner, visibility)
                     SELECT j.id, j.problem, j.tolerance, j.repeats, j.created_ms, j.n_tasks, j.owner, j.visibility
                     FROM UNNEST($1::uuid[], $2::text[], $3::float8[], $4::bigint[], $5::bigint[], $6::bigint[],
                                 $13::text[], $14::text[])
                         WITH ORDINALITY AS j(id, problem, tolerance, repeats, created_ms, n_tasks, owner, visibility, k)
                     ORDER BY j.k)
                 INSERT INTO tasks (id, job_id, pos, method, message, created_ms)
                 SELECT * FROM UNNEST($7::uuid[], $8::uuid[], $9::bigint[], $10::text[], $11::text[], $12::bigint[])",
            )
            .await?;
        client
            .execute(
                &insert,
                &[
                    &job_ids,
                    &problems,
                    &tolerances,
                    &repeats,
                    &created,
                    &counts,
                    &ids,
                    &owners,
                    &positions,
                    &methods,
                    &messages,
                    &task_created,
                    &job_owners,
                    &visibilities,
                ],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn cancel_job(
        &self,
        id: Uuid,
        now_ms: u64,
    ) -> Result<Option<(JobRecord, Vec<TaskMessage>)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let lock = tx
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 FOR UPDATE"
            ))
            .await?;
        let Some(row) = tx.query_opt(&lock, &[&id]).await? else {
            tx.rollback().await?;
            return Ok(None);
        };
        let job = job_row(&row)?;
        if job.finished_ms.is_some() {
            tx.rollback().await?;
            return Ok(Some((job, Vec::new())));
        }
        let pending = tx
            .prepare_cached(
                "SELECT pos, message FROM tasks WHERE job_id = $1 AND result IS NULL ORDER BY id FOR UPDATE",
            )
            .await?;
        let mut rows = Vec::new();
        for row in tx.query(&pending, &[&id]).await? {
            let pos: i64 = row.try_get(0)?;
            let message: String = row.try_get(1)?;
            rows.push((pos, serde_json::from_str::<TaskMessage>(&message)?));
        }
        rows.sort_by_key(|(pos, _)| *pos);
        let pending: Vec<TaskMessage> = rows.into_iter().map(|(_, t)| t).collect();
        let mut ids = Vec::with_capacity(pending.len());
        let mut results = Vec::with_capacity(pending.len());
        for t in &pending {
            ids.push(t.task_id);
            results.push(serde_json::to_string(&super::cancelled_result(t, now_ms))?);
        }
        let store = tx
            .prepare_cached(
                "UPDATE tasks SET result = u.result FROM UNNEST($1::uuid[], $2::text[]) AS u(id, result)
                 WHERE tasks.id = u.id AND tasks.result IS NULL",
            )
            .await?;
        let stored = tx.execute(&store, &[&ids, &results]).await?;
        let finish = tx
            .prepare_cached(
                "UPDATE jobs SET n_done = n_tasks, finished_ms = $2, cancelled_ms = $2,
                 n_failed = n_failed + $3 WHERE id = $1",
            )
            .await?;
        tx.execute(&finish, &[&id, &(now_ms as i64), &(stored as i64)])
            .await?;
        tx.commit().await?;
        Ok(Some((job, pending)))
    }

    pub(super) async fn retry_task(&self, task_id: Uuid) -> Result<Retry, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // A task's job never changes, so it is read before the locks (job row first, then the task).
        let find = tx
            .prepare_cached("SELECT job_id FROM tasks WHERE id = $1")
            .await?;
        let Some(row) = tx.query_opt(&find, &[&task_id]).await? else {
            tx.rollback().await?;
            return Ok(Retry::UnknownTask);
        };
        let job_id: Uuid = row.try_get(0)?;
        let lock_job = tx
            .prepare_cached("SELECT cancelled_ms FROM jobs WHERE id = $1 FOR UPDATE")
            .await?;
        let cancelled: Option<i64> = tx.query_one(&lock_job, &[&job_id]).await?.try_get(0)?;
        if cancelled.is_some() {
            tx.rollback().await?;
            return Ok(Retry::JobCancelled);
        }
        let lock_task = tx
            .prepare_cached("SELECT message, result FROM tasks WHERE id = $1 FOR UPDATE")
            .await?;
        let row = tx.query_one(&lock_task, &[&task_id]).await?;
        let message: String = row.try_get(0)?;
        let result: Option<String> = row.try_get(1)?;
        let result: Option<TaskResult> = result.map(|s| serde_json::from_str(&s)).transpose()?;
        let refusal = match result {
            None => Some(Retry::NotFailed("pending")),
            Some(r) if !is_failure(&r) => Some(Retry::NotFailed("succeeded")),
            Some(_) => None,
        };
        if let Some(refusal) = refusal {
            tx.rollback().await?;
            return Ok(refusal);
        }
        let reset = tx
            .prepare_cached(
                "UPDATE tasks SET result = NULL, published = FALSE, attempts = attempts + 1 WHERE id = $1",
            )
            .await?;
        tx.execute(&reset, &[&task_id]).await?;
        let reopen = tx
            .prepare_cached(
                "UPDATE jobs SET n_done = n_done - 1, n_failed = n_failed - 1, finished_ms = NULL WHERE id = $1",
            )
            .await?;
        tx.execute(&reopen, &[&job_id]).await?;
        tx.commit().await?;
        Ok(Retry::Requeued(serde_json::from_str(&message)?))
    }

    /// Mark one batch of tasks published, in one statement (rows locked in id order).
    pub(super) async fn mark_published(&self, mut batch: Vec<Uuid>) -> Result<(), StoreError> {
        batch.sort_unstable();
        batch.dedup();
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE tasks SET published = TRUE WHERE id IN
                 (SELECT id FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE)",
            )
            .await?;
        client.execute(&stmt, &[&batch]).await?;
        Ok(())
    }

    pub(super) async fn task_message(&self, id: Uuid) -> Result<Option<TaskMessage>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT message FROM tasks WHERE id = $1")
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
            return Ok(None);
        };
        let message: String = row.try_get(0)?;
        Ok(Some(serde_json::from_str(&message)?))
    }

    pub(super) async fn unpublished_tasks(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<TaskMessage>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT message FROM tasks WHERE NOT published AND result IS NULL AND created_ms < $1 LIMIT $2",
            )
            .await?;
        let rows = client
            .query(&stmt, &[&(before_ms as i64), &(limit as i64)])
            .await?;
        messages(&rows)
    }

    pub(super) async fn claim_unpublished(
        &self,
        before_ms: u64,
        now_ms: u64,
        lease_ms: u64,
        limit: usize,
    ) -> Result<Vec<TaskMessage>, StoreError> {
        let client = self.pool.get().await?;
        // SKIP LOCKED: a replica claiming at the same moment takes other rows, never the same ones.
        let stmt = client
            .prepare_cached(
                "UPDATE tasks SET republish_after_ms = $3 WHERE id IN (
                     SELECT id FROM tasks WHERE NOT published AND result IS NULL AND created_ms < $1
                     AND republish_after_ms <= $2 ORDER BY created_ms LIMIT $4 FOR UPDATE SKIP LOCKED)
                 RETURNING message",
            )
            .await?;
        let rows = client
            .query(
                &stmt,
                &[
                    &(before_ms as i64),
                    &(now_ms as i64),
                    &(now_ms.saturating_add(lease_ms) as i64),
                    &(limit as i64),
                ],
            )
            .await?;
        messages(&rows)
    }

    /// Tell every replica listening on this schema's channel (this one's too) about `payloads`.
    pub(super) async fn notify(&self, payloads: Vec<String>) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT pg_notify($1, p) FROM UNNEST($2::text[]) AS p")
            .await?;
        client.execute(&stmt, &[&&*self.channel, &payloads]).await?;
        Ok(())
    }

    /// Forward every notification on this schema's channel to `forward` until it returns false or
    /// `token` is cancelled, on a connection of its own, reconnecting after a failure; `resync` runs
    /// after every (re)connection, since notifications sent while no connection listened are lost.
    pub(super) async fn listen(
        &self,
        mut forward: impl FnMut(&str) -> bool + Send,
        mut resync: impl FnMut() + Send,
        token: tokio_util::sync::CancellationToken,
    ) {
        use futures_util::StreamExt as _;
        let mut backoff = Duration::from_millis(200);
        loop {
            let session = async {
                let (client, mut connection) = self.config.connect(NoTls).await?;
                let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let pump = tokio::spawn(async move {
                    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                                if tx.send(n.payload().to_owned()).is_err() {
                                    break;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(())
                });
                let listen = format!("LISTEN \"{}\"", self.channel.replace('"', "\"\""));
                client.batch_execute(&listen).await?;
                resync();
                backoff = Duration::from_millis(200);
                loop {
                    tokio::select! {
                        () = token.cancelled() => return Ok::<bool, StoreError>(true),
                        payload = rx.recv() => match payload {
                            Some(p) => {
                                if !forward(&p) {
                                    return Ok(true);
                                }
                            }
                            // The connection ended: its error, if any, is the pump's.
                            None => {
                                return match pump.await {
                                    Ok(Err(e)) => Err(e.into()),
                                    _ => Ok(false),
                                };
                            }
                        },
                    }
                }
            };
            match session.await {
                Ok(true) => return,
                Ok(false) => tracing::warn!("job update listener: connection closed; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "job update listener failed; reconnecting"),
            }
            tokio::select! {
                () = token.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    pub(super) async fn record_results(
        &self,
        results: Vec<TaskResult>,
        now_ms: u64,
    ) -> Result<Vec<Recorded>, StoreError> {
        if results.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let ids: Vec<Uuid> = results
            .iter()
            .map(|r| r.task_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        // The jobs' rows first, in id order: every writer of a task's result (this, cancel, retry)
        // holds its job's lock, so what the next statement reads of these jobs' tasks stays true
        // until commit (each statement of a READ COMMITTED transaction sees what committed before it).
        let lock_jobs = tx
            .prepare_cached(
                "SELECT id, n_done, n_tasks, finished_ms IS NULL FROM jobs
                 WHERE id IN (SELECT job_id FROM tasks WHERE id = ANY($1)) ORDER BY id FOR UPDATE",
            )
            .await?;
        // Per job: (n_done, n_tasks, open).
        let mut jobs: HashMap<Uuid, (i64, i64, bool)> = HashMap::new();
        for row in tx.query(&lock_jobs, &[&ids]).await? {
            jobs.insert(
                row.try_get(0)?,
                (row.try_get(1)?, row.try_get(2)?, row.try_get(3)?),
            );
        }
        let read_tasks = tx
            .prepare_cached("SELECT id, job_id, result IS NULL FROM tasks WHERE id = ANY($1)")
            .await?;
        let mut tasks: HashMap<Uuid, (Uuid, bool)> = HashMap::new();
        for row in tx.query(&read_tasks, &[&ids]).await? {
            tasks.insert(row.try_get(0)?, (row.try_get(1)?, row.try_get(2)?));
        }

        // In the order of `results`: the first copy for a task without a result is new, the rest are
        // duplicates; every copy of a known task is counted.
        let mut out = Vec::with_capacity(results.len());
        // Per task: copies delivered now, and the result to store if it is new.
        let mut per_task: HashMap<Uuid, (i64, Option<String>)> = HashMap::new();
        // Per job: new results, new failures, and the index in `out` of its last new result (the
        // one that can finish the job).
        let mut per_job: HashMap<Uuid, (i64, i64, usize)> = HashMap::new();
        for result in &results {
            let id = result.task_id;
            let Some((job_id, open)) = tasks.get_mut(&id) else {
                out.push(Recorded::UnknownTask);
                continue;
            };
            let entry = per_task.entry(id).or_default();
            entry.0 += 1;
            if *open {
                *open = false;
                entry.1 = Some(serde_json::to_string(result)?);
                let job = per_job.entry(*job_id).or_default();
                job.0 += 1;
                job.1 += i64::from(is_failure(result));
                job.2 = out.len();
                out.push(Recorded::New { job_finished: false });
            } else {
                out.push(Recorded::Duplicate);
            }
        }
        if per_task.is_empty() {
            tx.commit().await?;
            return Ok(out);
        }
        let mut task_ids = Vec::with_capacity(per_task.len());
        let mut counts = Vec::with_capacity(per_task.len());
        let mut stored = Vec::with_capacity(per_task.len());
        for (id, (n, result)) in per_task {
            task_ids.push(id);
            counts.push(n);
            stored.push(result);
        }
        let mut job_ids = Vec::with_capacity(per_job.len());
        let mut done = Vec::with_capacity(per_job.len());
        let mut failed = Vec::with_capacity(per_job.len());
        for (job_id, (n, f, last)) in per_job {
            if let Some(&(n_done, n_tasks, open)) = jobs.get(&job_id)
                && open
                && n_done + n == n_tasks
            {
                out[last] = Recorded::New { job_finished: true };
            }
            job_ids.push(job_id);
            done.push(n);
            failed.push(f);
        }
        // One statement per table, sent together (tokio-postgres pipelines them). Task rows are
        // locked in id order, as `mark_published` locks them, so the two never deadlock.
        let update_tasks = tx
            .prepare_cached(
                "UPDATE tasks SET result_deliveries = tasks.result_deliveries + u.n,
                     result = COALESCE(tasks.result, u.result),
                     published = tasks.published OR u.result IS NOT NULL
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::text[]) AS u(id, n, result)
                 WHERE tasks.id = u.id
                   AND tasks.id IN (SELECT id FROM tasks WHERE id = ANY($1) ORDER BY id FOR UPDATE)",
            )
            .await?;
        let update_jobs = tx
            .prepare_cached(
                "UPDATE jobs SET n_done = jobs.n_done + u.n, n_failed = jobs.n_failed + u.f,
                     finished_ms = CASE WHEN jobs.finished_ms IS NULL AND jobs.n_done + u.n = jobs.n_tasks
                                        THEN $4 ELSE jobs.finished_ms END
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[]) AS u(id, n, f)
                 WHERE jobs.id = u.id",
            )
            .await?;
        let now = now_ms as i64;
        let tasks_params: [&(dyn ToSql + Sync); 3] = [&task_ids, &counts, &stored];
        let jobs_params: [&(dyn ToSql + Sync); 4] = [&job_ids, &done, &failed, &now];
        tokio::try_join!(tx.execute(&update_tasks, &tasks_params), async {
            if job_ids.is_empty() {
                Ok(0)
            } else {
                tx.execute(&update_jobs, &jobs_params).await
            }
        },)?;
        tx.commit().await?;
        Ok(out)
    }

    pub(super) async fn job_summary(&self, id: Uuid) -> Result<Option<(JobRecord, u32)>, StoreError> {
        // One statement: one snapshot, no transaction needed.
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {JOB_COLUMNS}, n_failed FROM jobs WHERE id = $1"))
            .await?;
        let Some(row) = client.query_opt(&stmt, &[&id]).await? else {
            return Ok(None);
        };
        let failed: i64 = row.try_get(11)?;
        Ok(Some((job_row(&row)?, to_u32(failed)?)))
    }

    pub(super) async fn job(&self, id: Uuid) -> Result<Option<(JobRecord, Vec<TaskRecord>)>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = snapshot(&mut client).await?;
        let Some(job) = job_record(&tx, id).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let stmt = tx
            .prepare_cached(
                "SELECT id, method, result, result_deliveries, attempts, (message::json ->> 'level')::bigint
                 FROM tasks WHERE job_id = $1 ORDER BY pos",
            )
            .await?;
        let rows = tx.query(&stmt, &[&id]).await?;
        tx.commit().await?;
        let mut tasks = Vec::with_capacity(rows.len());
        for row in rows {
            let result: Option<String> = row.try_get(2)?;
            tasks.push(TaskRecord {
                id: row.try_get(0)?,
                method: row.try_get(1)?,
                result: result.map(|s| serde_json::from_str(&s)).transpose()?,
                result_deliveries: to_u32(row.try_get(3)?)?,
                attempts: to_u32(row.try_get(4)?)?,
                level: row.try_get::<_, Option<i64>>(5)?.map(to_u32).transpose()?,
            });
        }
        Ok(Some((job, tasks)))
    }

    pub(super) async fn list_jobs(
        &self,
        filter: JobFilter,
    ) -> Result<(Vec<JobRecord>, Option<i64>), StoreError> {
        let mut sql = format!("SELECT {JOB_COLUMNS}, seq FROM jobs WHERE 1=1");
        let mut args: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let mut arg = |sql: &mut String, condition: &str, value: Box<dyn ToSql + Sync + Send>| {
            args.push(value);
            sql.push_str(&format!(" AND {condition} ${}", args.len()));
        };
        if let Some(before) = filter.before_seq {
            arg(&mut sql, "seq <", Box::new(before));
        }
        if let Some(problem) = filter.problem {
            arg(&mut sql, "problem =", Box::new(problem));
        }
        if let Some(since) = filter.since_ms {
            arg(&mut sql, "created_ms >=", Box::new(since as i64));
        }
        if let Some(until) = filter.until_ms {
            arg(&mut sql, "created_ms <", Box::new(until as i64));
        }
        if let Some(viewer) = filter.viewer {
            args.push(Box::new(viewer));
            let n = args.len();
            sql.push_str(&format!(
                " AND (visibility = 'public' OR owner = ${n}
                   OR EXISTS (SELECT 1 FROM shares s WHERE s.job_id = jobs.id AND s.user_name = ${n}))"
            ));
        }
        sql.push_str(super::status_condition(filter.status));
        args.push(Box::new((filter.limit + 1) as i64));
        sql.push_str(&format!(" ORDER BY seq DESC LIMIT ${}", args.len()));
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&sql).await?;
        let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref() as _).collect();
        let rows = client.query(&stmt, &params).await?;
        let jobs = rows
            .iter()
            .map(|r| Ok((job_row(r)?, r.try_get::<_, i64>(11)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(super::page(jobs, filter.limit))
    }

    pub(super) async fn results_for_problem(
        &self,
        problem: String,
        tolerance: f64,
        viewer: Option<String>,
    ) -> Result<Vec<TaskResult>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT t.result FROM tasks t JOIN jobs j ON t.job_id = j.id
                 WHERE j.problem = $1 AND j.tolerance = $2 AND j.finished_ms IS NOT NULL AND t.result IS NOT NULL
                   AND (j.visibility = 'public' OR j.owner = $3)
                 ORDER BY j.seq, t.pos",
            )
            .await?;
        let rows = client.query(&stmt, &[&problem, &tolerance, &viewer]).await?;
        messages(&rows)
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}

// Accounts (see `super::accounts`).
impl PgStore {
    pub(super) async fn add_user(&self, user: UserRecord) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO users (name, role, created_ms) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
            )
            .await?;
        let added = client
            .execute(
                &stmt,
                &[&user.name, &user.role.as_str(), &(user.created_ms as i64)],
            )
            .await?;
        Ok(added == 1)
    }

    pub(super) async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT name, role, created_ms FROM users ORDER BY name")
            .await?;
        client
            .query(&stmt, &[])
            .await?
            .iter()
            .map(|r| {
                Ok(UserRecord {
                    name: r.try_get(0)?,
                    role: accounts::role_of(r.try_get(1)?)?,
                    created_ms: r.try_get::<_, i64>(2)? as u64,
                })
            })
            .collect()
    }

    pub(super) async fn has_users(&self) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT EXISTS (SELECT 1 FROM users)")
            .await?;
        Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
    }

    pub(super) async fn add_token(&self, token: TokenRecord, hash: String) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        // Inserted only if the user exists, in one statement.
        let stmt = client
            .prepare_cached(
                "INSERT INTO api_tokens (id, user_name, hash, scopes, created_ms, expires_ms)
                 SELECT $1, name, $3, $4, $5, $6 FROM users WHERE name = $2",
            )
            .await?;
        let added = client
            .execute(
                &stmt,
                &[
                    &token.id,
                    &token.user,
                    &hash,
                    &accounts::scopes_text(&token.scopes),
                    &(token.created_ms as i64),
                    &token.expires_ms.map(|v| v as i64),
                ],
            )
            .await?;
        Ok(added == 1)
    }

    pub(super) async fn tokens(&self, user: Option<String>) -> Result<Vec<TokenRecord>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE $1::text IS NULL OR user_name = $1
                 ORDER BY created_ms DESC, id"
            ))
            .await?;
        client
            .query(&stmt, &[&user])
            .await?
            .iter()
            .map(token_row)
            .collect()
    }

    pub(super) async fn revoke_token(
        &self,
        id: Uuid,
        now_ms: u64,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(&format!(
                "UPDATE api_tokens SET revoked_ms = COALESCE(revoked_ms, $2) WHERE id = $1
                 RETURNING {TOKEN_COLUMNS}"
            ))
            .await?;
        client
            .query_opt(&stmt, &[&id, &(now_ms as i64)])
            .await?
            .as_ref()
            .map(token_row)
            .transpose()
    }

    pub(super) async fn token_by_hash(&self, hash: String) -> Result<Option<TokenOwner>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT t.id, t.user_name, t.scopes, t.created_ms, t.expires_ms, t.revoked_ms, u.role
                 FROM api_tokens t JOIN users u ON u.name = t.user_name WHERE t.hash = $1",
            )
            .await?;
        client
            .query_opt(&stmt, &[&hash])
            .await?
            .map(|r| Ok((token_row(&r)?, accounts::role_of(r.try_get(6)?)?)))
            .transpose()
    }
}

// Ownership and shares (see `super::accounts`).
impl PgStore {
    pub(super) async fn job_access(
        &self,
        id: Uuid,
    ) -> Result<Option<(Option<String>, Visibility)>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT owner, visibility FROM jobs WHERE id = $1")
            .await?;
        client
            .query_opt(&stmt, &[&id])
            .await?
            .map(|r| Ok((r.try_get(0)?, accounts::visibility_of(r.try_get(1)?)?)))
            .transpose()
    }

    pub(super) async fn share_level(&self, id: Uuid, user: String) -> Result<Option<ShareLevel>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT level FROM shares WHERE job_id = $1 AND user_name = $2")
            .await?;
        client
            .query_opt(&stmt, &[&id, &user])
            .await?
            .map(|r| accounts::level_of(r.try_get(0)?))
            .transpose()
    }

    pub(super) async fn shares(&self, id: Uuid) -> Result<Vec<ShareRecord>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT user_name, level, created_ms FROM shares WHERE job_id = $1 ORDER BY user_name",
            )
            .await?;
        client
            .query(&stmt, &[&id])
            .await?
            .iter()
            .map(|r| {
                Ok(ShareRecord {
                    user: r.try_get(0)?,
                    level: accounts::level_of(r.try_get(1)?)?,
                    created_ms: r.try_get::<_, i64>(2)? as u64,
                })
            })
            .collect()
    }

    pub(super) async fn set_visibility(&self, id: Uuid, visibility: Visibility) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("UPDATE jobs SET visibility = $2 WHERE id = $1")
            .await?;
        Ok(client.execute(&stmt, &[&id, &visibility.as_str()]).await? == 1)
    }

    pub(super) async fn share(&self, id: Uuid, share: ShareRecord) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO shares (job_id, user_name, level, created_ms)
                 SELECT $1, name, $3, $4 FROM users WHERE name = $2
                 ON CONFLICT (job_id, user_name) DO UPDATE SET level = EXCLUDED.level",
            )
            .await?;
        let n = client
            .execute(
                &stmt,
                &[
                    &id,
                    &share.user,
                    &share.level.as_str(),
                    &(share.created_ms as i64),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    pub(super) async fn unshare(&self, id: Uuid, user: String) -> Result<bool, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("DELETE FROM shares WHERE job_id = $1 AND user_name = $2")
            .await?;
        Ok(client.execute(&stmt, &[&id, &user]).await? == 1)
    }
}

// Share links and quotas (see `super::accounts`).
impl PgStore {
    pub(super) async fn owner_task_counts(
        &self,
        owner: String,
        since_ms: u64,
    ) -> Result<super::TaskCounts, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "SELECT COUNT(*) FILTER (WHERE t.result IS NULL), COUNT(*) FILTER (WHERE t.created_ms >= $2),
                        MIN(t.created_ms) FILTER (WHERE t.created_ms >= $2)
                 FROM tasks t JOIN jobs j ON j.id = t.job_id WHERE j.owner = $1",
            )
            .await?;
        let r = client.query_one(&stmt, &[&owner, &(since_ms as i64)]).await?;
        Ok(super::TaskCounts {
            in_flight: r.try_get::<_, i64>(0)? as u64,
            recent: r.try_get::<_, i64>(1)? as u64,
            oldest_recent_ms: r.try_get::<_, Option<i64>>(2)?.map(|v| v as u64),
        })
    }

    pub(super) async fn add_link(
        &self,
        hash: String,
        job_id: Uuid,
        by: String,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached(
                "INSERT INTO share_links (hash, job_id, created_by, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5)",
            )
            .await?;
        client
            .execute(
                &stmt,
                &[&hash, &job_id, &by, &(now_ms as i64), &(expires_ms as i64)],
            )
            .await?;
        Ok(())
    }

    pub(super) async fn link_job(&self, hash: String, now_ms: u64) -> Result<Option<Uuid>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client
            .prepare_cached("SELECT job_id FROM share_links WHERE hash = $1 AND expires_ms > $2")
            .await?;
        Ok(client
            .query_opt(&stmt, &[&hash, &(now_ms as i64)])
            .await?
            .map(|r| r.try_get(0))
            .transpose()?)
    }
}

const TOKEN_COLUMNS: &str = "id, user_name, scopes, created_ms, expires_ms, revoked_ms";

fn token_row(r: &Row) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        id: r.try_get(0)?,
        user: r.try_get(1)?,
        scopes: accounts::scopes_of(r.try_get(2)?)?,
        created_ms: r.try_get::<_, i64>(3)? as u64,
        expires_ms: r.try_get::<_, Option<i64>>(4)?.map(|v| v as u64),
        revoked_ms: r.try_get::<_, Option<i64>>(5)?.map(|v| v as u64),
    })
}

/// A read-only transaction over one snapshot.
async fn snapshot(
    client: &mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

/// What an idempotency key seen before means for a request.
async fn seen_key(
    tx: &deadpool_postgres::Transaction<'_>,
    key: &str,
    request: &str,
) -> Result<Option<Inserted>, StoreError> {
    let stmt = tx
        .prepare_cached(
            "SELECT i.job_id, i.request, j.n_tasks FROM idempotency i JOIN jobs j ON j.id = i.job_id
             WHERE i.key = $1",
        )
        .await?;
    let Some(row) = tx.query_opt(&stmt, &[&key]).await? else {
        return Ok(None);
    };
    let id: Uuid = row.try_get(0)?;
    let seen_request: String = row.try_get(1)?;
    let tasks = to_u32(row.try_get(2)?)?;
    Ok(Some(if seen_request == request {
        Inserted::Existing { id, tasks }
    } else {
        Inserted::Conflict(id)
    }))
}

/// The record of job `id`, if there is one.
async fn job_record(
    tx: &deadpool_postgres::Transaction<'_>,
    id: Uuid,
) -> Result<Option<JobRecord>, StoreError> {
    let stmt = tx
        .prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1"))
        .await?;
    tx.query_opt(&stmt, &[&id])
        .await?
        .map(|row| job_row(&row))
        .transpose()
}

fn job_row(r: &Row) -> Result<JobRecord, StoreError> {
    Ok(JobRecord {
        id: r.try_get(0)?,
        problem: r.try_get(1)?,
        tolerance: r.try_get(2)?,
        repeats: to_u32(r.try_get(3)?)?,
        created_ms: r.try_get::<_, i64>(4)? as u64,
        finished_ms: r.try_get::<_, Option<i64>>(5)?.map(|v| v as u64),
        n_tasks: to_u32(r.try_get(6)?)?,
        n_done: to_u32(r.try_get(7)?)?,
        cancelled_ms: r.try_get::<_, Option<i64>>(8)?.map(|v| v as u64),
        owner: r.try_get(9)?,
        visibility: accounts::visibility_of(r.try_get(10)?)?,
    })
}

/// Decode the JSON documents in column 0 of `rows`.
fn messages<T: serde::de::DeserializeOwned>(rows: &[Row]) -> Result<Vec<T>, StoreError> {
    rows.iter()
        .map(|r| Ok(serde_json::from_str(r.try_get::<_, &str>(0)?)?))
        .collect()
}

fn to_u32(v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Invalid(format!("{v} is not a u32")))
}
