//! The store's tests, written once and run against both backends: SQLite in memory (or a file) and
//! PostgreSQL in a fresh schema per test (`BENCHOP_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432/test`). Without PostgreSQL the tests fail, saying how to start
//! it; they never skip.

use super::*;
use std::time::Duration;

use protocol::{FailureKind, ProblemRef, SCHEMA_VERSION};

pub(super) fn task(job_id: Uuid, method: &str) -> TaskMessage {
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

pub(super) fn failed(t: &TaskMessage) -> TaskResult {
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

pub(super) fn new_job(id: Uuid, n_tasks: u32) -> JobRecord {
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
        owner: None,
        visibility: Visibility::Public,
    }
}

/// A fresh PostgreSQL schema for one test; [`PgSchema::drop`] removes it (best effort: a failed test
/// leaves its schema behind, named `baas_test_…`).
pub(super) struct PgSchema {
    admin: tokio_postgres::Client,
    name: String,
    /// The URL whose connections use the schema.
    pub(super) url: String,
}

impl PgSchema {
    pub(super) async fn create() -> Self {
        let base = std::env::var("BENCHOP_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let (admin, connection) = match tokio_postgres::connect(&base, tokio_postgres::NoTls).await {
            Ok(c) => c,
            Err(e) => panic!(
                "PostgreSQL is not reachable at {base} ({e}). Start it with \
                 `pg_ctlcluster --skip-systemctl-redirect 15 main start`, or point BENCHOP_TEST_POSTGRES \
                 at a server (trust auth, a database you may create schemas in)."
            ),
        };
        tokio::spawn(connection);
        let name = format!("baas_test_{}", Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Self { admin, name, url }
    }

    pub(super) async fn drop(self) {
        let _ = self
            .admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await;
    }
}

/// A store of each backend under test.
struct Backends {
    stores: Vec<(&'static str, Store)>,
    schema: PgSchema,
}

impl Backends {
    async fn new() -> Self {
        let schema = PgSchema::create().await;
        let pg = Store::connect(&schema.url).await.unwrap();
        assert_eq!(pg.kind(), BackendKind::Postgres);
        let sqlite = Store::open(None).unwrap();
        assert_eq!(sqlite.kind(), BackendKind::Sqlite);
        Self {
            stores: vec![("sqlite", sqlite), ("postgres", pg)],
            schema,
        }
    }

    async fn finish(self) {
        drop(self.stores);
        self.schema.drop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publication_marks_share_transactions_and_none_is_lost() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
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
        assert_eq!(
            store.unpublished_tasks(u64::MAX / 2, 1000).await.unwrap(),
            vec![],
            "{name}"
        );
        let pending = store.pending_marks.lock().unwrap();
        assert!(pending.ids.is_empty() && !pending.flushing, "{name}");
    }
    backends.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_job_inserts_share_commits_and_none_is_lost() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let inserts = (0..300u32).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                let tasks: Vec<TaskMessage> = (0..=i % 3).map(|_| task(id, "cos")).collect();
                store
                    .insert_job(new_job(id, tasks.len() as u32), tasks.clone())
                    .await
                    .map(|()| (id, tasks))
            })
        });
        let mut written = Vec::new();
        for insert in inserts.collect::<Vec<_>>() {
            written.push(insert.await.unwrap().unwrap());
        }
        // Every caller has returned, so its job and all its tasks are stored.
        for (id, tasks) in &written {
            let (job, records) = store.job(*id).await.unwrap().expect(name);
            assert_eq!(job.n_tasks as usize, tasks.len(), "{name}");
            let stored: Vec<Uuid> = records.iter().map(|r| r.id).collect();
            let sent: Vec<Uuid> = tasks.iter().map(|t| t.task_id).collect();
            assert_eq!(stored, sent, "{name}: tasks in submission order");
        }
        let all = JobFilter {
            limit: 1000,
            ..JobFilter::default()
        };
        assert_eq!(store.list_jobs(all).await.unwrap().0.len(), 300, "{name}");
        // Nothing is left queued, and the flusher stands down (it answers before it looks again).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (queued, flushing) = {
                let pending = store.pending_inserts.lock().unwrap();
                (pending.jobs.len(), pending.flushing)
            };
            assert_eq!(queued, 0, "{name}");
            if !flushing {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name}: flusher never stood down"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        // One batch is one transaction: the jobs get their sequence in the order given, and a batch
        // with a failing job stores none of its jobs.
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let batch = vec![
            (new_job(a, 1), vec![task(a, "cos")]),
            (new_job(b, 1), vec![task(b, "fd")]),
        ];
        on_backend!(&store.backend, s => s.insert_jobs(batch).await).unwrap();
        let newest = JobFilter {
            limit: 2,
            ..JobFilter::default()
        };
        let (jobs, _) = store.list_jobs(newest.clone()).await.unwrap();
        assert_eq!(
            jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![b, a],
            "{name}"
        );
        let clash = vec![
            (new_job(c, 1), vec![task(c, "cos")]),
            (new_job(a, 1), vec![task(a, "cos")]),
        ];
        assert!(
            on_backend!(&store.backend, s => s.insert_jobs(clash).await).is_err(),
            "{name}"
        );
        assert!(
            store.job(c).await.unwrap().is_none(),
            "{name}: half a batch stored"
        );
        // Through the group commit, the failure reaches the caller.
        let again = store.insert_job(new_job(b, 1), vec![task(b, "cos")]).await;
        assert!(matches!(again, Err(StoreError::Shared(_))), "{name}: {again:?}");

        // A job that cannot be stored fails only its own caller, not the others of its batch:
        // queue three (the middle one clashes) while a flush is marked running, then flush once.
        let (d, e) = (Uuid::new_v4(), Uuid::new_v4());
        let mut answers = Vec::new();
        // The last flusher answers its callers before it looks for more and stands down.
        while !store.try_take_flush(|pending| {
            for id in [d, a, e] {
                let (tx, rx) = tokio::sync::oneshot::channel();
                pending.jobs.push((new_job(id, 1), vec![task(id, "cos")], tx));
                answers.push(rx);
            }
        }) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        store.clone().flush_inserts().await;
        let answers: Vec<bool> = futures_util::future::join_all(answers)
            .await
            .into_iter()
            .map(|answer| answer.unwrap().is_ok())
            .collect();
        assert_eq!(answers, vec![true, false, true], "{name}");
        for id in [d, e] {
            assert!(store.job(id).await.unwrap().is_some(), "{name}: {id} lost");
        }
    }
    backends.finish().await;
}

#[tokio::test]
async fn results_are_recorded_once_and_finish_the_job_with_the_last_task() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let job_id = Uuid::new_v4();
        let tasks = vec![task(job_id, "cos"), task(job_id, "fd")];
        let job = new_job(job_id, 2);
        store.insert_job(job, tasks.clone()).await.unwrap();
        assert_eq!(store.unpublished_tasks(11, 10).await.unwrap().len(), 2, "{name}");
        store.mark_published(vec![tasks[0].task_id]).await.unwrap();
        assert_eq!(
            store.unpublished_tasks(11, 10).await.unwrap(),
            vec![tasks[1].clone()],
            "{name}"
        );

        let first = failed(&tasks[0]);
        assert_eq!(
            store.record_result(first.clone(), 20).await.unwrap(),
            Recorded::New { job_finished: false },
            "{name}"
        );
        assert_eq!(
            store.record_result(first, 21).await.unwrap(),
            Recorded::Duplicate,
            "{name}"
        );
        assert_eq!(
            store.record_result(failed(&tasks[1]), 22).await.unwrap(),
            Recorded::New { job_finished: true },
            "{name}"
        );
        let stray = failed(&task(job_id, "mc"));
        assert_eq!(
            store.record_result(stray, 23).await.unwrap(),
            Recorded::UnknownTask,
            "{name}"
        );

        let (job, records) = store.job(job_id).await.unwrap().unwrap();
        assert_eq!((job.n_done, job.finished_ms), (2, Some(22)), "{name}");
        assert_eq!(
            records.iter().map(|r| r.result_deliveries).collect::<Vec<_>>(),
            vec![2, 1],
            "{name}"
        );
        assert!(
            store.unpublished_tasks(100, 10).await.unwrap().is_empty(),
            "{name}: a task with a result is never republished"
        );
        let (summary, n_failed) = store.job_summary(job_id).await.unwrap().unwrap();
        assert_eq!((summary, n_failed), (job, 2), "{name}");
        assert_eq!(
            store
                .results_for_problem("1aI".into(), 1e-4, None)
                .await
                .unwrap()
                .len(),
            2,
            "{name}"
        );
        store.ping().await.unwrap();
    }
    backends.finish().await;
}

#[tokio::test]
async fn a_batch_records_in_order_duplicates_included() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ta = vec![task(a, "cos"), task(a, "fd")];
        let tb = vec![task(b, "cos")];
        store.insert_job(new_job(a, 2), ta.clone()).await.unwrap();
        store.insert_job(new_job(b, 1), tb.clone()).await.unwrap();
        let batch = vec![
            failed(&ta[1]),
            failed(&tb[0]),
            failed(&ta[1]),
            failed(&task(a, "mc")),
            failed(&ta[0]),
        ];
        assert_eq!(
            store.record_results(batch, 30).await.unwrap(),
            vec![
                Recorded::New { job_finished: false },
                Recorded::New { job_finished: true },
                Recorded::Duplicate,
                Recorded::UnknownTask,
                Recorded::New { job_finished: true },
            ],
            "{name}"
        );
        let (job, records) = store.job(a).await.unwrap().unwrap();
        assert_eq!((job.n_done, job.finished_ms), (2, Some(30)), "{name}");
        assert_eq!(
            records.iter().map(|r| r.result_deliveries).collect::<Vec<_>>(),
            vec![1, 2],
            "{name}"
        );
        assert_eq!(store.record_results(Vec::new(), 31).await.unwrap(), vec![]);
    }
    backends.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_recording_the_same_results_at_once_store_each_once_and_never_deadlock() {
    let schema = PgSchema::create().await;
    let a = Store::connect(&schema.url).await.unwrap();
    let b = Store::connect(&schema.url).await.unwrap();
    let mut all = Vec::new();
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let id = Uuid::new_v4();
        let tasks: Vec<TaskMessage> = (0..150).map(|_| task(id, "cos")).collect();
        a.insert_job(new_job(id, 150), tasks.clone()).await.unwrap();
        jobs.push(id);
        all.extend(tasks);
    }
    // The same results in batches of 40 (one batch holds tasks of both jobs): one replica forwards,
    // the other backwards, while publication marks (row locks in id order too) land on the same rows.
    let results: Vec<TaskResult> = all.iter().map(failed).collect();
    let record = |store: Store, results: Vec<TaskResult>| {
        tokio::spawn(async move {
            let mut out = Vec::new();
            for batch in results.chunks(40) {
                out.extend(store.record_results(batch.to_vec(), 40).await.unwrap());
            }
            out
        })
    };
    let forward = record(a.clone(), results.clone());
    let backward = record(b.clone(), results.iter().rev().cloned().collect());
    let ids: Vec<Uuid> = all.iter().map(|t| t.task_id).collect();
    let marks = {
        let store = b.clone();
        tokio::spawn(async move {
            for batch in ids.chunks(30).rev() {
                store.mark_published(batch.to_vec()).await.unwrap();
            }
        })
    };
    let (forward, backward, ()) = (
        forward.await.unwrap(),
        backward.await.unwrap(),
        marks.await.unwrap(),
    );
    let recorded: Vec<Recorded> = forward.into_iter().chain(backward).collect();
    let new = recorded
        .iter()
        .filter(|r| matches!(r, Recorded::New { .. }))
        .count();
    let finished = recorded
        .iter()
        .filter(|r| matches!(r, Recorded::New { job_finished: true }))
        .count();
    assert_eq!((new, recorded.len() - new, finished), (300, 300, 2));
    for id in jobs {
        let (job, records) = a.job(id).await.unwrap().unwrap();
        assert_eq!((job.n_done, job.finished_ms), (150, Some(40)));
        assert!(
            records
                .iter()
                .all(|r| r.result_deliveries == 2 && r.result.is_some())
        );
        assert_eq!(b.job_summary(id).await.unwrap().unwrap().1, 150);
    }
    assert!(a.unpublished_tasks(u64::MAX / 2, 10).await.unwrap().is_empty());
    drop((a, b));
    schema.drop().await;
}

#[tokio::test]
async fn idempotency_keys_return_the_first_job_or_a_conflict() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let key = || Some(("k".to_owned(), "request-1".to_owned()));
        let first = Uuid::new_v4();
        assert_eq!(
            store
                .insert_job_once(new_job(first, 1), vec![task(first, "cos")], key())
                .await
                .unwrap(),
            Inserted::New,
            "{name}"
        );
        let again = Uuid::new_v4();
        assert_eq!(
            store
                .insert_job_once(new_job(again, 1), vec![task(again, "cos")], key())
                .await
                .unwrap(),
            Inserted::Existing { id: first, tasks: 1 },
            "{name}"
        );
        assert_eq!(
            store
                .insert_job_once(
                    new_job(again, 1),
                    vec![task(again, "cos")],
                    Some(("k".into(), "request-2".into()))
                )
                .await
                .unwrap(),
            Inserted::Conflict(first),
            "{name}"
        );
        assert!(store.job(again).await.unwrap().is_none(), "{name}");
    }
    backends.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_with_one_idempotency_key_make_one_job() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let inserts = (0..16).map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = Uuid::new_v4();
                let tasks = vec![task(id, "cos"), task(id, "fd")];
                let key = Some(("same-key".to_owned(), "same-request".to_owned()));
                (id, store.insert_job_once(new_job(id, 2), tasks, key).await)
            })
        });
        let mut outcomes = Vec::new();
        for insert in inserts.collect::<Vec<_>>() {
            let (id, outcome) = insert.await.unwrap();
            outcomes.push((id, outcome.unwrap()));
        }
        let created: Vec<Uuid> = outcomes
            .iter()
            .filter(|(_, o)| *o == Inserted::New)
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(created.len(), 1, "{name}: {outcomes:?}");
        for (_, outcome) in &outcomes {
            assert!(
                *outcome == Inserted::New
                    || *outcome
                        == Inserted::Existing {
                            id: created[0],
                            tasks: 2
                        },
                "{name}: {outcome:?}"
            );
        }
        let filter = JobFilter {
            limit: 100,
            ..JobFilter::default()
        };
        let (jobs, _) = store.list_jobs(filter).await.unwrap();
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), created, "{name}");
        assert_eq!(store.unpublished_tasks(u64::MAX / 2, 100).await.unwrap().len(), 2);
    }
    backends.finish().await;
}

#[tokio::test]
async fn cancel_retry_and_listing_agree() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let mut ids = Vec::new();
        let mut tasks = Vec::new();
        for i in 0..5u64 {
            let id = Uuid::new_v4();
            let mut job = new_job(id, 2);
            job.created_ms = 100 + i;
            let t = vec![task(id, "cos"), task(id, "fd")];
            store.insert_job(job, t.clone()).await.unwrap();
            ids.push(id);
            tasks.push(t);
        }
        // Job 0 completes, job 1 runs, job 2 is cancelled, 3 and 4 are queued.
        store.record_result(failed(&tasks[0][0]), 200).await.unwrap();
        store.record_result(failed(&tasks[0][1]), 201).await.unwrap();
        store.record_result(failed(&tasks[1][0]), 202).await.unwrap();
        let (before, revoked) = store.cancel_job(ids[2], 300).await.unwrap().unwrap();
        assert_eq!(before.status(), JobStatus::Queued, "{name}");
        assert_eq!(revoked, tasks[2], "{name}");
        let (again, none) = store.cancel_job(ids[2], 301).await.unwrap().unwrap();
        assert_eq!((again.cancelled_ms, none.len()), (Some(300), 0), "{name}");
        assert!(store.cancel_job(Uuid::new_v4(), 1).await.unwrap().is_none());
        let (cancelled, records) = store.job(ids[2]).await.unwrap().unwrap();
        assert_eq!(
            (cancelled.status(), cancelled.n_done, cancelled.finished_ms),
            (JobStatus::Cancelled, 2, Some(300)),
            "{name}"
        );
        assert!(records.iter().all(|r| r.result.as_ref().is_some_and(is_failure)));
        // The failed count a poll reads agrees with the results, cancelled ones included.
        for (id, expected) in [(ids[0], 2), (ids[1], 1), (ids[2], 2), (ids[3], 0)] {
            let (_, records) = store.job(id).await.unwrap().unwrap();
            let counted = records
                .iter()
                .filter(|r| r.result.as_ref().is_some_and(is_failure))
                .count() as u32;
            let (_, n_failed) = store.job_summary(id).await.unwrap().unwrap();
            assert_eq!((n_failed, counted), (expected, expected), "{name}");
        }

        let list = |status: Option<JobStatus>, before_seq: Option<i64>, limit: usize| {
            let store = store.clone();
            async move {
                let filter = JobFilter {
                    status,
                    before_seq,
                    limit,
                    ..JobFilter::default()
                };
                let (jobs, next) = store.list_jobs(filter).await.unwrap();
                (jobs.into_iter().map(|j| j.id).collect::<Vec<_>>(), next)
            }
        };
        assert_eq!(list(Some(JobStatus::Completed), None, 10).await.0, vec![ids[0]]);
        assert_eq!(list(Some(JobStatus::Running), None, 10).await.0, vec![ids[1]]);
        assert_eq!(list(Some(JobStatus::Cancelled), None, 10).await.0, vec![ids[2]]);
        assert_eq!(
            list(Some(JobStatus::Queued), None, 10).await.0,
            vec![ids[4], ids[3]]
        );
        // Newest first, two per page, the cursor leading to the next.
        let (page1, next) = list(None, None, 2).await;
        assert_eq!(page1, vec![ids[4], ids[3]], "{name}");
        let (page2, next) = list(None, next, 2).await;
        assert_eq!(page2, vec![ids[2], ids[1]], "{name}");
        let (page3, next) = list(None, next, 2).await;
        assert_eq!((page3, next), (vec![ids[0]], None), "{name}");
        let filter = JobFilter {
            problem: Some("1aI".into()),
            since_ms: Some(101),
            until_ms: Some(103),
            limit: 10,
            ..JobFilter::default()
        };
        let (jobs, _) = store.list_jobs(filter).await.unwrap();
        assert_eq!(
            jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
            vec![ids[2], ids[1]],
            "{name}"
        );

        // Retries: only failed tasks of jobs not cancelled.
        assert_eq!(
            store.retry_task(tasks[2][0].task_id).await.unwrap(),
            Retry::JobCancelled,
            "{name}"
        );
        assert_eq!(
            store.retry_task(tasks[1][1].task_id).await.unwrap(),
            Retry::NotFailed("pending"),
            "{name}"
        );
        assert_eq!(
            store.retry_task(Uuid::new_v4()).await.unwrap(),
            Retry::UnknownTask,
            "{name}"
        );
        assert_eq!(
            store.retry_task(tasks[0][1].task_id).await.unwrap(),
            Retry::Requeued(tasks[0][1].clone()),
            "{name}"
        );
        let (job, records) = store.job(ids[0]).await.unwrap().unwrap();
        assert_eq!((job.n_done, job.finished_ms), (1, None), "{name}");
        assert_eq!(store.job_summary(ids[0]).await.unwrap().unwrap().1, 1, "{name}");
        assert_eq!(
            records.iter().map(|r| r.attempts).collect::<Vec<_>>(),
            vec![1, 2],
            "{name}"
        );
        assert_eq!(
            store.unpublished_tasks(u64::MAX / 2, 100).await.unwrap().len(),
            1 + 1 + 2 + 2,
            "{name}: the retried task, job 1's pending one, jobs 3 and 4"
        );
        assert_eq!(
            store.task_message(tasks[3][0].task_id).await.unwrap(),
            Some(tasks[3][0].clone()),
            "{name}"
        );
        assert_eq!(store.task_message(Uuid::new_v4()).await.unwrap(), None);
    }
    backends.finish().await;
}

#[tokio::test]
async fn ladder_levels_are_read_back() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let id = Uuid::new_v4();
        let mut t = task(id, "fd");
        t.level = Some(3);
        store
            .insert_job(new_job(id, 2), vec![t, task(id, "cos")])
            .await
            .unwrap();
        let (_, records) = store.job(id).await.unwrap().unwrap();
        assert_eq!(
            records.iter().map(|r| r.level).collect::<Vec<_>>(),
            vec![Some(3), None],
            "{name}"
        );
    }
    backends.finish().await;
}

#[tokio::test]
async fn postgres_migrations_are_idempotent_on_reconnect() {
    let schema = PgSchema::create().await;
    let store = Store::connect(&schema.url).await.unwrap();
    let id = Uuid::new_v4();
    store
        .insert_job(new_job(id, 1), vec![task(id, "cos")])
        .await
        .unwrap();
    drop(store);
    // Two replicas starting at once: the advisory lock makes them take turns.
    let (a, b) = tokio::join!(Store::connect(&schema.url), Store::connect(&schema.url));
    let (a, _b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.job(id).await.unwrap().unwrap().0.n_tasks, 1);
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let versions: Vec<i32> = client
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6]);
    schema.drop().await;
}

/// A job with one failed, one succeeded and one pending task, in `store`; returns its id.
async fn job_with_one_failure(store: &Store) -> Uuid {
    let id = Uuid::new_v4();
    let tasks = vec![task(id, "cos"), task(id, "fd"), task(id, "mc")];
    store.insert_job(new_job(id, 3), tasks.clone()).await.unwrap();
    let mut ok = failed(&tasks[1]);
    ok.outcome = Outcome::Succeeded(protocol::Measurement {
        values: vec![1.0],
        std_errors: None,
        reference: vec![1.0],
        relerr: 0.0,
        reached: true,
        level: 0,
        setting: "n = 1".into(),
        times_s: vec![1e-6],
        threads: 1,
    });
    store
        .record_results(vec![failed(&tasks[0]), ok], 5)
        .await
        .unwrap();
    assert_eq!(store.job_summary(id).await.unwrap().unwrap().1, 1);
    id
}

#[tokio::test]
async fn the_failed_count_of_jobs_stored_before_it_existed_is_counted_from_their_results() {
    // PostgreSQL: roll the schema back to version 2 (no counter, no accounts), then reconnect.
    let schema = PgSchema::create().await;
    let pg_job = job_with_one_failure(&Store::connect(&schema.url).await.unwrap()).await;
    let (client, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(
            "DROP TABLE share_links; DROP TABLE shares; DROP INDEX jobs_owner; ALTER TABLE jobs DROP COLUMN owner;
             ALTER TABLE jobs DROP COLUMN visibility; DROP TABLE api_tokens; DROP TABLE users;
             ALTER TABLE jobs DROP COLUMN n_failed; DELETE FROM schema_migrations WHERE version >= 3",
        )
        .await
        .unwrap();
    let pg = Store::connect(&schema.url).await.unwrap();
    assert_eq!(pg.job_summary(pg_job).await.unwrap().unwrap().1, 1, "postgres");
    drop(pg);
    schema.drop().await;

    // SQLite: the same with a file.
    let dir = std::env::temp_dir().join(format!("baas-store-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("baas.db");
    let sqlite_job = job_with_one_failure(&Store::open(Some(&file)).unwrap()).await;
    rusqlite::Connection::open(&file)
        .unwrap()
        .execute_batch(
            "DROP TABLE share_links; DROP TABLE shares; DROP INDEX jobs_owner; ALTER TABLE jobs DROP COLUMN owner;
             ALTER TABLE jobs DROP COLUMN visibility; DROP TABLE api_tokens; DROP TABLE users;
             ALTER TABLE jobs DROP COLUMN n_failed; DELETE FROM schema_migrations WHERE version >= 3",
        )
        .unwrap();
    let sqlite = Store::open(Some(&file)).unwrap();
    assert_eq!(
        sqlite.job_summary(sqlite_job).await.unwrap().unwrap().1,
        1,
        "sqlite"
    );
    drop(sqlite);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn database_urls_pick_the_backend() {
    let memory = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(memory.kind(), BackendKind::Sqlite);
    let dir = std::env::temp_dir().join(format!("baas-store-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("baas.db");
    let by_url = Store::connect(&format!("sqlite:{}", file.display()))
        .await
        .unwrap();
    assert_eq!(by_url.kind(), BackendKind::Sqlite);
    drop(by_url);
    let by_path = Store::connect(&file.display().to_string()).await.unwrap();
    assert_eq!(by_path.kind(), BackendKind::Sqlite);
    drop(by_path);
    for bad in ["mysql://root:secret@localhost/db", "redis://x", ""] {
        match Store::connect(bad).await {
            Err(e @ StoreError::UnsupportedUrl(_)) => {
                assert!(!e.to_string().contains("secret"), "{e}");
                assert!(e.to_string().contains("postgres://"), "{e}");
            }
            Err(e) => panic!("{bad}: {e}"),
            Ok(_) => panic!("{bad} was accepted"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn republish_claims_hold_a_lease_and_concurrent_claims_never_share_a_task() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        let job_id = Uuid::new_v4();
        let tasks: Vec<TaskMessage> = (0..300).map(|_| task(job_id, "cos")).collect();
        store
            .insert_job(new_job(job_id, 300), tasks.clone())
            .await
            .unwrap();
        // Two claimers at once (two replicas' republishers): together they take every task once.
        let (a, b) = tokio::join!(
            store.claim_unpublished(11, 1_000, 200),
            store.claim_unpublished(11, 1_000, 200)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut claimed: Vec<Uuid> = a.iter().chain(&b).map(|t| t.task_id).collect();
        claimed.sort();
        let mut all: Vec<Uuid> = tasks.iter().map(|t| t.task_id).collect();
        all.sort();
        assert_eq!(claimed, all, "{name}: {} + {} claimed", a.len(), b.len());
        // Within the lease nothing is claimed again; after it, what is still unconfirmed is.
        assert!(
            store
                .claim_unpublished(11, 1_000 + REPUBLISH_LEASE_MS - 1, 500)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        store
            .mark_published(tasks[..299].iter().map(|t| t.task_id).collect())
            .await
            .unwrap();
        assert_eq!(
            store
                .claim_unpublished(11, 1_000 + REPUBLISH_LEASE_MS, 500)
                .await
                .unwrap(),
            vec![tasks[299].clone()],
            "{name}"
        );
    }
    backends.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_updates_reach_the_other_replicas_on_postgres_and_skip_their_origin() {
    let schema = PgSchema::create().await;
    let (a, b) = (
        Store::connect(&schema.url).await.unwrap(),
        Store::connect(&schema.url).await.unwrap(),
    );
    let (origin_a, origin_b) = (Uuid::new_v4(), Uuid::new_v4());
    let (heard_tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
    let (resync_tx, mut resynced) = tokio::sync::mpsc::unbounded_channel();
    let token = tokio_util::sync::CancellationToken::new();
    let listener = tokio::spawn({
        let (b, token) = (b.clone(), token.clone());
        async move {
            b.listen_updates(
                origin_b,
                move |job, finished| {
                    let _ = heard_tx.send((job, finished));
                },
                move || {
                    let _ = resync_tx.send(());
                },
                token,
            )
            .await;
        }
    });
    let wait = Duration::from_secs(10);
    tokio::time::timeout(wait, resynced.recv())
        .await
        .expect("the listener connects and resyncs")
        .unwrap();
    let (j1, j2) = (Uuid::new_v4(), Uuid::new_v4());
    // B's own announcement is not echoed back to it; A's are, in order.
    b.notify_updates(origin_b, &[(j1, false)]).await.unwrap();
    a.notify_updates(origin_a, &[(j1, false), (j2, true)])
        .await
        .unwrap();
    for expected in [(j1, false), (j2, true)] {
        let got = tokio::time::timeout(wait, heard.recv()).await.unwrap().unwrap();
        assert_eq!(got, expected);
    }
    // Another schema's replicas use another channel.
    let other = PgSchema::create().await;
    let c = Store::connect(&other.url).await.unwrap();
    c.notify_updates(origin_a, &[(Uuid::new_v4(), true)])
        .await
        .unwrap();
    a.notify_updates(origin_a, &[(j1, true)]).await.unwrap();
    assert_eq!(
        tokio::time::timeout(wait, heard.recv()).await.unwrap().unwrap(),
        (j1, true)
    );
    token.cancel();
    tokio::time::timeout(wait, listener).await.unwrap().unwrap();
    // SQLite has one process per store: announcing is a no-op and listening returns at once.
    let sqlite = Store::open(None).unwrap();
    sqlite.notify_updates(origin_a, &[(j1, true)]).await.unwrap();
    tokio::time::timeout(
        wait,
        sqlite.listen_updates(
            origin_a,
            |_, _| {},
            || {},
            tokio_util::sync::CancellationToken::new(),
        ),
    )
    .await
    .expect("returns at once");
    drop((a, b, c));
    schema.drop().await;
    other.drop().await;
}

impl Store {
    /// Mark a flush of job inserts running and queue jobs under it, unless a flusher runs now.
    fn try_take_flush(&self, queue: impl FnOnce(&mut PendingInserts)) -> bool {
        let mut pending = self.pending_inserts.lock().unwrap();
        if pending.flushing {
            return false;
        }
        pending.flushing = true;
        queue(&mut pending);
        true
    }
}

#[tokio::test]
async fn users_and_tokens_are_kept_with_their_hash_scopes_and_revocation() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        assert!(!store.has_users().await.unwrap(), "{name}");
        let alice = UserRecord {
            name: "alice".into(),
            role: Role::User,
            created_ms: 5,
        };
        assert!(store.add_user(alice.clone()).await.unwrap(), "{name}");
        assert!(
            !store.add_user(alice.clone()).await.unwrap(),
            "{name}: a name is unique"
        );
        let root = UserRecord {
            name: "root".into(),
            role: Role::Admin,
            created_ms: 6,
        };
        assert!(store.add_user(root.clone()).await.unwrap());
        assert!(store.has_users().await.unwrap(), "{name}");
        assert_eq!(store.users().await.unwrap(), vec![alice, root], "{name}");

        let token = |user: &str, created_ms: u64| TokenRecord {
            id: Uuid::new_v4(),
            user: user.into(),
            scopes: vec![Scope::Read, Scope::Submit],
            created_ms,
            expires_ms: Some(1_000),
            revoked_ms: None,
        };
        let (a, b) = (token("alice", 10), token("root", 11));
        assert!(store.add_token(a.clone(), "hash-a".into()).await.unwrap());
        assert!(store.add_token(b.clone(), "hash-b".into()).await.unwrap());
        assert!(
            !store
                .add_token(token("nobody", 12), "hash-c".into())
                .await
                .unwrap(),
            "{name}: a token needs its user"
        );
        assert_eq!(
            store.token_by_hash("hash-a".into()).await.unwrap(),
            Some((a.clone(), Role::User)),
            "{name}"
        );
        assert_eq!(store.token_by_hash("hash-x".into()).await.unwrap(), None);
        assert_eq!(
            store.tokens(None).await.unwrap(),
            vec![b.clone(), a.clone()],
            "{name}"
        );
        assert_eq!(store.tokens(Some("alice".into())).await.unwrap(), vec![a.clone()]);

        let revoked = store.revoke_token(a.id, 50).await.unwrap().unwrap();
        assert_eq!(revoked.revoked_ms, Some(50), "{name}");
        let again = store.revoke_token(a.id, 60).await.unwrap().unwrap();
        assert_eq!(again.revoked_ms, Some(50), "{name}: the first revocation stands");
        assert!(store.revoke_token(Uuid::new_v4(), 1).await.unwrap().is_none());
        let (found, _) = store.token_by_hash("hash-a".into()).await.unwrap().unwrap();
        assert!(!found.is_live(51), "{name}");
        assert!(b.is_live(999) && !b.is_live(1_000), "{name}: expiry");
    }
    backends.finish().await;
}

#[tokio::test]
async fn owners_shares_and_visibility_decide_what_a_viewer_lists() {
    let backends = Backends::new().await;
    for (name, store) in &backends.stores {
        for user in ["alice", "bob"] {
            let user = UserRecord {
                name: user.into(),
                role: Role::User,
                created_ms: 1,
            };
            store.add_user(user).await.unwrap();
        }
        let mut private = new_job(Uuid::new_v4(), 1);
        private.owner = Some("alice".into());
        private.visibility = Visibility::Private;
        let anonymous = new_job(Uuid::new_v4(), 1);
        for job in [&private, &anonymous] {
            store
                .insert_job(job.clone(), vec![task(job.id, "cos")])
                .await
                .unwrap();
        }
        assert_eq!(
            store.job_access(private.id).await.unwrap(),
            Some((Some("alice".into()), Visibility::Private)),
            "{name}"
        );
        // Quotas count the owner's tasks: in flight, and created since a time.
        let counts = store.owner_task_counts("alice".into(), 0).await.unwrap();
        assert_eq!(
            (counts.in_flight, counts.recent, counts.oldest_recent_ms),
            (1, 1, Some(10)),
            "{name}"
        );
        let later = store.owner_task_counts("alice".into(), 11).await.unwrap();
        assert_eq!(
            (later.in_flight, later.recent, later.oldest_recent_ms),
            (1, 0, None),
            "{name}"
        );
        assert_eq!(
            store.owner_task_counts("bob".into(), 0).await.unwrap(),
            TaskCounts::default(),
            "{name}"
        );
        assert_eq!(store.job(private.id).await.unwrap().unwrap().0, private, "{name}");
        let listed = |viewer: Option<&str>| {
            let (store, viewer) = (store.clone(), viewer.map(str::to_owned));
            async move {
                let filter = JobFilter {
                    viewer,
                    limit: 10,
                    ..JobFilter::default()
                };
                let (jobs, _) = store.list_jobs(filter).await.unwrap();
                jobs.into_iter().map(|j| j.id).collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(None).await, vec![anonymous.id, private.id], "{name}");
        assert_eq!(
            listed(Some("alice")).await,
            vec![anonymous.id, private.id],
            "{name}"
        );
        assert_eq!(listed(Some("bob")).await, vec![anonymous.id], "{name}");

        let share = |level| ShareRecord {
            user: "bob".into(),
            level,
            created_ms: 7,
        };
        assert!(store.share(private.id, share(ShareLevel::Read)).await.unwrap());
        assert!(
            store.share(private.id, share(ShareLevel::Manage)).await.unwrap(),
            "{name}: re-shared"
        );
        let mut nobody = share(ShareLevel::Read);
        nobody.user = "nobody".into();
        assert!(
            !store.share(private.id, nobody).await.unwrap(),
            "{name}: only with a user"
        );
        assert_eq!(
            store.shares(private.id).await.unwrap(),
            vec![share(ShareLevel::Manage)]
        );
        assert_eq!(
            store.share_level(private.id, "bob".into()).await.unwrap(),
            Some(ShareLevel::Manage),
            "{name}"
        );
        assert_eq!(
            listed(Some("bob")).await,
            vec![anonymous.id, private.id],
            "{name}"
        );
        assert!(store.unshare(private.id, "bob".into()).await.unwrap());
        assert!(!store.unshare(private.id, "bob".into()).await.unwrap());
        assert_eq!(listed(Some("bob")).await, vec![anonymous.id], "{name}");

        store
            .add_link("link-hash".into(), private.id, "alice".into(), 10, 100)
            .await
            .unwrap();
        assert_eq!(
            store.link_job("link-hash".into(), 99).await.unwrap(),
            Some(private.id),
            "{name}"
        );
        assert_eq!(
            store.link_job("link-hash".into(), 100).await.unwrap(),
            None,
            "{name}: expired"
        );
        assert_eq!(store.link_job("other".into(), 50).await.unwrap(), None, "{name}");

        assert!(
            store
                .set_visibility(private.id, Visibility::Public)
                .await
                .unwrap()
        );
        assert!(
            !store
                .set_visibility(Uuid::new_v4(), Visibility::Public)
                .await
                .unwrap()
        );
        assert_eq!(
            listed(Some("bob")).await,
            vec![anonymous.id, private.id],
            "{name}"
        );
        assert_eq!(
            store.job(private.id).await.unwrap().unwrap().0.visibility,
            Visibility::Public,
            "{name}: the change is seen at once"
        );
    }
    backends.finish().await;
}
