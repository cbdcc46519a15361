//! The event fold: compact, bounded in-memory state of workers, tasks and jobs, plus chart series.
//!
//! Tolerant of lost and out-of-order events: task states only move forward by rank (a late `started`
//! never undoes `succeeded`, a missed `started` still ends `succeeded`), and events older than a task's
//! last retry do not touch the new attempt. Memory is bounded: at most `max_tasks` tasks and `max_jobs`
//! jobs (oldest forgotten first), each a fixed-size record with interned strings and `u64` timestamps;
//! details (failure reasons, timelines) live in the [`Store`](crate::store::Store).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use uuid::Uuid;

use protocol::event::ROUTING_KEYS;
use protocol::{Event, EventKind};

/// Milliseconds without a heartbeat after which a worker counts as offline.
pub const HEARTBEAT_TIMEOUT_MS: u64 = 10_000;
/// Seconds of per-second throughput kept for the chart.
pub const THROUGHPUT_SECONDS: usize = 300;
/// Runtimes kept per method for the percentile chart.
pub const RUNTIME_SAMPLES: usize = 512;
/// Queue-depth samples kept for the chart.
pub const QUEUE_SAMPLES: usize = 360;

/// An interned string: an index into [`Interner`]. `0` is the empty string (unknown).
pub type Sym = u32;

/// Low-cardinality strings (worker names, methods, problems) stored once.
#[derive(Debug)]
pub struct Interner {
    ids: HashMap<Box<str>, Sym>,
    names: Vec<Box<str>>,
}

impl Default for Interner {
    fn default() -> Self {
        Self {
            ids: HashMap::new(),
            names: vec!["".into()],
        }
    }
}

impl Interner {
    /// The symbol of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if s.is_empty() {
            return 0;
        }
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = Sym::try_from(self.names.len()).unwrap_or(0);
        self.names.push(s.into());
        self.ids.insert(s.into(), id);
        id
    }

    /// The symbol of `s` when known.
    pub fn lookup(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
    }

    /// The string of a symbol (`""` for unknown).
    pub fn name(&self, sym: Sym) -> &str {
        self.names.get(sym as usize).map_or("", |s| s)
    }
}

/// Where a task is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Known only from its job, or published again for a retry.
    Pending,
    /// A worker took it.
    Received,
    /// Its kernel runs.
    Started,
    /// Failed; the failure is its result.
    Failed,
    /// Revoked or its job cancelled.
    Revoked,
    /// The broker dead-lettered it.
    DeadLettered,
    /// Priced and timed.
    Succeeded,
}

impl TaskStatus {
    /// Every status, in rank order.
    pub const ALL: [TaskStatus; 7] = [
        TaskStatus::Pending,
        TaskStatus::Received,
        TaskStatus::Started,
        TaskStatus::Failed,
        TaskStatus::Revoked,
        TaskStatus::DeadLettered,
        TaskStatus::Succeeded,
    ];

    /// How far along: a task never moves to a lower rank (except by a retry).
    pub fn rank(self) -> u8 {
        match self {
            TaskStatus::Pending => 0,
            TaskStatus::Received => 1,
            TaskStatus::Started => 2,
            TaskStatus::Failed | TaskStatus::Revoked | TaskStatus::DeadLettered => 3,
            TaskStatus::Succeeded => 4,
        }
    }

    /// Whether the task is over.
    pub fn is_final(self) -> bool {
        self.rank() >= 3
    }

    /// Wire name (`dead_lettered`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Received => "received",
            TaskStatus::Started => "started",
            TaskStatus::Failed => "failed",
            TaskStatus::Revoked => "revoked",
            TaskStatus::DeadLettered => "dead_lettered",
            TaskStatus::Succeeded => "succeeded",
        }
    }

    /// Parse a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One retained task: fixed size, no heap (about 100 bytes; see `monitor bench`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TaskRec {
    /// Task id.
    pub id: Uuid,
    /// Job id (nil when not yet known).
    pub job: Uuid,
    /// Method.
    pub method: Sym,
    /// Last worker.
    pub worker: Sym,
    /// State.
    pub status: TaskStatus,
    /// Deliveries seen (`task.received` events).
    pub attempts: u16,
    /// First seen, Unix ms.
    pub first_ms: u64,
    /// Received by a worker (latest attempt), Unix ms; 0 when unknown.
    pub received_ms: u64,
    /// Kernel started, Unix ms; 0 when unknown.
    pub started_ms: u64,
    /// Ended, Unix ms; 0 while running.
    pub finished_ms: u64,
    /// Runtime reported by the worker, ms.
    pub runtime_ms: u64,
    /// Last retry, Unix ms: events older than this belong to an earlier attempt.
    pub retry_ms: u64,
    /// Last change, Unix ms.
    pub updated_ms: u64,
}

impl TaskRec {
    fn new(id: Uuid, ts: u64) -> Self {
        Self {
            id,
            job: Uuid::nil(),
            method: 0,
            worker: 0,
            status: TaskStatus::Pending,
            attempts: 0,
            first_ms: ts,
            received_ms: 0,
            started_ms: 0,
            finished_ms: 0,
            runtime_ms: 0,
            retry_ms: 0,
            updated_ms: ts,
        }
    }
}

/// One retained job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobRec {
    /// Job id.
    pub id: Uuid,
    /// Problem.
    pub problem: Sym,
    /// Tasks in the job (0 when `job.created` was missed).
    pub tasks: u32,
    /// Tasks taken by a worker at least once.
    pub received: u32,
    /// Tasks succeeded.
    pub succeeded: u32,
    /// Tasks failed, revoked or dead-lettered.
    pub failed: u32,
    /// Created, Unix ms.
    pub created_ms: u64,
    /// Finished, Unix ms; 0 while running.
    pub finished_ms: u64,
}

/// One worker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WorkerView {
    /// Name.
    pub name: String,
    /// `online` or `offline` (offline after [`HEARTBEAT_TIMEOUT_MS`] of silence).
    pub status: String,
    /// Tasks running now.
    pub active: u32,
    /// Tasks finished.
    pub processed: u64,
    /// Tasks succeeded.
    pub succeeded: u64,
    /// Tasks failed.
    pub failed: u64,
    /// Tasks retried (seen again after a failure or dead-lettering).
    pub retried: u64,
    /// Task slots.
    pub concurrency: u32,
    /// Host load average, when reported.
    pub load: Option<f64>,
    /// Last heartbeat, Unix ms (0: none yet).
    pub last_heartbeat_ms: u64,
    /// Last event of any kind, Unix ms.
    pub last_seen_ms: u64,
    /// When it came online, Unix ms.
    pub online_since_ms: u64,
}

/// One second of throughput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Tick {
    /// Unix second.
    pub t: u64,
    /// Tasks received.
    pub received: u32,
    /// Tasks succeeded.
    pub succeeded: u32,
    /// Tasks failed (failed, revoked, dead-lettered).
    pub failed: u32,
}

/// A queue-depth sample.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DepthSample {
    /// Unix ms.
    pub t: u64,
    /// Ready tasks.
    pub tasks_ready: u64,
    /// Unacked tasks.
    pub tasks_unacked: u64,
    /// Messages in the dead-letter queue.
    pub dead: u64,
}

/// The folded state.
#[derive(Debug, Default)]
pub struct Fold {
    strings: Interner,
    tasks: HashMap<Uuid, TaskRec>,
    order: VecDeque<Uuid>,
    jobs: HashMap<Uuid, JobRec>,
    job_order: VecDeque<Uuid>,
    workers: BTreeMap<String, WorkerView>,
    event_counts: [u64; ROUTING_KEYS.len()],
    throughput: VecDeque<Tick>,
    runtimes: HashMap<Sym, VecDeque<u32>>,
    depth: VecDeque<DepthSample>,
    max_tasks: usize,
    max_jobs: usize,
    version: u64,
    evicted: u64,
}

/// What a fold step changed, for the store.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Touched {
    /// A task (its record after the event).
    Task(TaskRec),
    /// A job.
    Job(JobRec),
    /// A worker, by name.
    Worker,
    /// Nothing stored.
    Nothing,
}

impl Fold {
    /// Empty state retaining at most `max_tasks` tasks and `max_tasks / 10 + 100` jobs.
    pub fn new(max_tasks: usize) -> Self {
        Self {
            max_tasks: max_tasks.max(1),
            max_jobs: max_tasks / 10 + 100,
            ..Self::default()
        }
    }

    /// Changes so far (bumped by every event); the live stream pushes when it moves.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Tasks retained now.
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Tasks forgotten to stay within the bound.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// The interned strings.
    pub fn strings(&self) -> &Interner {
        &self.strings
    }

    /// A retained task.
    pub fn task(&self, id: &Uuid) -> Option<&TaskRec> {
        self.tasks.get(id)
    }

    /// A retained job.
    pub fn job(&self, id: &Uuid) -> Option<&JobRec> {
        self.jobs.get(id)
    }

    /// Retained tasks, oldest first.
    pub fn tasks(&self) -> impl DoubleEndedIterator<Item = &TaskRec> + '_ {
        self.order.iter().filter_map(|id| self.tasks.get(id))
    }

    /// Retained jobs, newest first.
    pub fn jobs(&self) -> impl Iterator<Item = &JobRec> + '_ {
        self.job_order.iter().rev().filter_map(|id| self.jobs.get(id))
    }

    /// Workers by name.
    pub fn workers(&self) -> &BTreeMap<String, WorkerView> {
        &self.workers
    }

    /// Events by routing key since the monitor started.
    pub fn event_counts(&self) -> BTreeMap<String, u64> {
        ROUTING_KEYS
            .iter()
            .zip(self.event_counts)
            .map(|(k, n)| ((*k).to_owned(), n))
            .collect()
    }

    /// Per-second throughput, oldest first.
    pub fn throughput(&self) -> impl Iterator<Item = &Tick> + '_ {
        self.throughput.iter()
    }

    /// Queue-depth samples, oldest first.
    pub fn depth(&self) -> impl Iterator<Item = &DepthSample> + '_ {
        self.depth.iter()
    }

    /// Runtime percentiles (p50, p90, p99, ms) and sample count per method over the last
    /// [`RUNTIME_SAMPLES`] successes.
    pub fn runtime_percentiles(&self) -> BTreeMap<String, [u64; 4]> {
        self.runtimes
            .iter()
            .map(|(m, samples)| {
                let mut v: Vec<u32> = samples.iter().copied().collect();
                v.sort_unstable();
                let q = |p: f64| {
                    let last = v.len().saturating_sub(1);
                    // Nearest rank: small and exact enough for a chart.
                    let i = ((p * last as f64).round() as usize).min(last);
                    v.get(i).copied().map_or(0, u64::from)
                };
                let n = v.len() as u64;
                (self.strings.name(*m).to_owned(), [q(0.5), q(0.9), q(0.99), n])
            })
            .collect()
    }

    /// When the oldest job with tasks no worker has taken yet was created (an estimate of the tasks
    /// queue's oldest message when the broker does not say).
    pub fn oldest_waiting_job_ms(&self) -> Option<u64> {
        self.jobs
            .values()
            .filter(|j| j.finished_ms == 0 && j.tasks > 0 && j.received < j.tasks)
            .map(|j| j.created_ms)
            .min()
    }

    /// Record a queue-depth sample (from the broker poller).
    pub fn push_depth(&mut self, sample: DepthSample) {
        if self.depth.len() >= QUEUE_SAMPLES {
            self.depth.pop_front();
        }
        self.depth.push_back(sample);
        self.version += 1;
    }

    fn task_mut(&mut self, id: Uuid, ts: u64) -> &mut TaskRec {
        if !self.tasks.contains_key(&id) {
            while self.order.len() >= self.max_tasks {
                match self.order.pop_front() {
                    Some(old) => {
                        self.tasks.remove(&old);
                        self.evicted += 1;
                    }
                    None => break,
                }
            }
            self.order.push_back(id);
        }
        self.tasks.entry(id).or_insert_with(|| TaskRec::new(id, ts))
    }

    fn job_mut(&mut self, id: Uuid, ts: u64) -> &mut JobRec {
        if !self.jobs.contains_key(&id) {
            while self.job_order.len() >= self.max_jobs {
                match self.job_order.pop_front() {
                    Some(old) => {
                        self.jobs.remove(&old);
                    }
                    None => break,
                }
            }
            self.job_order.push_back(id);
        }
        self.jobs.entry(id).or_insert(JobRec {
            id,
            problem: 0,
            tasks: 0,
            received: 0,
            succeeded: 0,
            failed: 0,
            created_ms: ts,
            finished_ms: 0,
        })
    }

    fn worker_mut(&mut self, name: &str, ts: u64) -> &mut WorkerView {
        let w = self.workers.entry(name.to_owned()).or_insert_with(|| WorkerView {
            name: name.to_owned(),
            online_since_ms: ts,
            ..WorkerView::default()
        });
        if w.status != "online" && ts >= w.last_seen_ms {
            w.status = "online".to_owned();
        }
        w.last_seen_ms = w.last_seen_ms.max(ts);
        w
    }

    fn tick(&mut self, ts: u64, f: impl FnOnce(&mut Tick)) {
        let sec = ts / 1000;
        let newest = self.throughput.back().map_or(0, |t| t.t);
        if sec > newest {
            // Fill the gap so the series has one bucket per second.
            let from = if newest == 0 || sec - newest > THROUGHPUT_SECONDS as u64 {
                sec
            } else {
                newest + 1
            };
            for t in from..=sec {
                if self.throughput.len() >= THROUGHPUT_SECONDS {
                    self.throughput.pop_front();
                }
                self.throughput.push_back(Tick { t, ..Tick::default() });
            }
        }
        let Some(front) = self.throughput.front().map(|t| t.t) else {
            return;
        };
        if sec < front {
            return; // older than the window
        }
        if let Some(bucket) = self.throughput.get_mut((sec - front) as usize) {
            f(bucket);
        }
    }

    /// Move a task to `to` if that is forward (or it is the latest attempt's first event). Returns whether
    /// the task reached a final state just now, and the previous state.
    fn advance(&mut self, id: Uuid, ts: u64, to: TaskStatus) -> (bool, TaskStatus) {
        let t = self.task_mut(id, ts);
        let before = t.status;
        if ts < t.retry_ms {
            return (false, before); // an earlier attempt's straggler
        }
        if to.rank() > before.rank() {
            t.status = to;
        }
        t.updated_ms = t.updated_ms.max(ts);
        if to.is_final() && t.finished_ms == 0 {
            t.finished_ms = ts;
        }
        (t.status.is_final() && !before.is_final(), before)
    }

    fn job_done(&mut self, job: Uuid, ts: u64, succeeded: bool) {
        if job.is_nil() {
            return;
        }
        let j = self.job_mut(job, ts);
        if succeeded {
            j.succeeded += 1;
        } else {
            j.failed += 1;
        }
    }

    /// Fold one event in. Returns what changed, for the store.
    pub fn apply(&mut self, event: &Event) -> Touched {
        if let Some(i) = ROUTING_KEYS.iter().position(|k| *k == event.kind.routing_key()) {
            self.event_counts[i] += 1;
        }
        self.version += 1;
        let ts = event.ts_ms;
        match &event.kind {
            EventKind::JobCreated {
                job_id,
                problem,
                tasks,
            } => {
                let problem = self.strings.intern(problem);
                let j = self.job_mut(*job_id, ts);
                j.problem = problem;
                j.tasks = *tasks;
                j.created_ms = ts;
                Touched::Job(*j)
            }
            EventKind::JobFinished { job_id } => {
                let j = self.job_mut(*job_id, ts);
                j.finished_ms = ts;
                Touched::Job(*j)
            }
            EventKind::TaskReceived {
                task_id,
                job_id,
                method,
                worker,
            } => {
                self.worker_mut(worker, ts);
                let (method, worker) = (self.strings.intern(method), self.strings.intern(worker));
                self.tick(ts, |b| b.received += 1);
                self.advance(*task_id, ts, TaskStatus::Received);
                let t = self.task_mut(*task_id, ts);
                t.job = *job_id;
                t.method = method;
                let first = t.attempts == 0;
                if ts >= t.retry_ms {
                    t.worker = worker;
                    t.attempts = t.attempts.saturating_add(1);
                    t.received_ms = t.received_ms.max(ts);
                }
                let rec = *t;
                if first {
                    self.job_mut(*job_id, ts).received += 1;
                }
                Touched::Task(rec)
            }
            EventKind::TaskStarted { task_id, worker } => {
                self.worker_mut(worker, ts);
                let worker = self.strings.intern(worker);
                self.advance(*task_id, ts, TaskStatus::Started);
                let t = self.task_mut(*task_id, ts);
                if ts >= t.retry_ms {
                    t.worker = worker;
                    t.started_ms = t.started_ms.max(ts);
                }
                Touched::Task(*t)
            }
            EventKind::TaskSucceeded {
                task_id,
                worker,
                runtime_ms,
            } => {
                let (ended, before) = self.advance(*task_id, ts, TaskStatus::Succeeded);
                let fresh = ended || (before.is_final() && before != TaskStatus::Succeeded);
                {
                    let w = self.worker_mut(worker, ts);
                    if fresh {
                        w.succeeded += 1;
                        w.processed = w.processed.max(w.succeeded + w.failed);
                    }
                }
                let worker = self.strings.intern(worker);
                let t = self.task_mut(*task_id, ts);
                if ts >= t.retry_ms {
                    t.worker = worker;
                    t.runtime_ms = *runtime_ms;
                    t.finished_ms = ts;
                }
                let rec = *t;
                if fresh {
                    self.tick(ts, |b| b.succeeded += 1);
                    let samples = self.runtimes.entry(rec.method).or_default();
                    if samples.len() >= RUNTIME_SAMPLES {
                        samples.pop_front();
                    }
                    samples.push_back(u32::try_from(*runtime_ms).unwrap_or(u32::MAX));
                    if let Some(j) = self.jobs.get_mut(&rec.job)
                        && before.is_final()
                    {
                        // A failure turned into a success (a retry whose `retried` event was lost).
                        j.failed = j.failed.saturating_sub(1);
                    }
                    self.job_done(rec.job, ts, true);
                }
                Touched::Task(rec)
            }
            EventKind::TaskFailed { task_id, worker, .. } => {
                self.end_badly(*task_id, Some(worker), ts, TaskStatus::Failed)
            }
            EventKind::TaskRevoked { task_id, worker, .. } => {
                self.end_badly(*task_id, worker.as_deref(), ts, TaskStatus::Revoked)
            }
            EventKind::TaskDeadLettered { task_id, job_id, .. } => {
                let touched = self.end_badly(*task_id, None, ts, TaskStatus::DeadLettered);
                let t = self.task_mut(*task_id, ts);
                if t.job.is_nil() {
                    t.job = *job_id;
                }
                match touched {
                    Touched::Task(_) => Touched::Task(*t),
                    other => other,
                }
            }
            EventKind::TaskRetried { task_id, job_id, .. } => {
                let t = self.task_mut(*task_id, ts);
                let was = t.status;
                if ts >= t.retry_ms {
                    t.retry_ms = ts;
                    t.status = TaskStatus::Pending;
                    t.finished_ms = 0;
                    t.updated_ms = t.updated_ms.max(ts);
                }
                if t.job.is_nil() {
                    t.job = *job_id;
                }
                let (rec, worker) = (*t, t.worker);
                if was.is_final() && was != TaskStatus::Succeeded {
                    if let Some(j) = self.jobs.get_mut(&rec.job) {
                        j.failed = j.failed.saturating_sub(1);
                    }
                    let name = self.strings.name(worker).to_owned();
                    if let Some(w) = self.workers.get_mut(&name) {
                        w.retried += 1;
                    }
                }
                Touched::Task(rec)
            }
            EventKind::WorkerOnline { worker, concurrency } => {
                let w = self.worker_mut(worker, ts);
                w.concurrency = *concurrency;
                w.status = "online".to_owned();
                w.online_since_ms = ts;
                Touched::Worker
            }
            EventKind::WorkerHeartbeat {
                worker,
                active,
                processed,
                load,
                concurrency,
            } => {
                let w = self.worker_mut(worker, ts);
                if ts >= w.last_heartbeat_ms {
                    w.active = *active;
                    w.last_heartbeat_ms = ts;
                    if let Some(l) = load {
                        w.load = Some(*l);
                    }
                    if let Some(c) = concurrency {
                        w.concurrency = *c;
                    }
                }
                w.processed = w.processed.max(*processed);
                Touched::Worker
            }
            EventKind::WorkerOffline { worker } => {
                let w = self.worker_mut(worker, ts);
                w.status = "offline".to_owned();
                w.active = 0;
                Touched::Worker
            }
        }
    }

    fn end_badly(&mut self, id: Uuid, worker: Option<&str>, ts: u64, to: TaskStatus) -> Touched {
        let (ended, _) = self.advance(id, ts, to);
        if let Some(name) = worker {
            let w = self.worker_mut(name, ts);
            if ended && to == TaskStatus::Failed {
                w.failed += 1;
                w.processed = w.processed.max(w.succeeded + w.failed);
            }
            let sym = self.strings.intern(name);
            let t = self.task_mut(id, ts);
            if ts >= t.retry_ms {
                t.worker = sym;
            }
        }
        let rec = *self.task_mut(id, ts);
        if ended {
            self.tick(ts, |b| b.failed += 1);
            self.job_done(rec.job, ts, false);
        }
        Touched::Task(rec)
    }

    /// Mark workers silent for longer than [`HEARTBEAT_TIMEOUT_MS`] as offline.
    pub fn expire(&mut self, now_ms: u64) {
        for w in self.workers.values_mut() {
            if w.status == "online" && now_ms.saturating_sub(w.last_seen_ms) > HEARTBEAT_TIMEOUT_MS {
                w.status = "offline".to_owned();
                w.active = 0;
                self.version += 1;
            }
        }
    }

    /// Put back a task loaded from the store (after a restart).
    pub fn restore_task(&mut self, rec: TaskRec) {
        *self.task_mut(rec.id, rec.first_ms) = rec;
    }

    /// Put back a job loaded from the store.
    pub fn restore_job(&mut self, rec: JobRec) {
        *self.job_mut(rec.id, rec.created_ms) = rec;
    }

    /// Put back a worker loaded from the store (offline until it speaks again).
    pub fn restore_worker(&mut self, mut w: WorkerView) {
        w.status = "offline".to_owned();
        w.active = 0;
        self.workers.insert(w.name.clone(), w);
    }

    /// Intern a string (for records restored from the store).
    pub fn intern(&mut self, s: &str) -> Sym {
        self.strings.intern(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts_ms: u64, kind: EventKind) -> Event {
        Event { ts_ms, kind }
    }

    fn received(id: Uuid, job: Uuid, ts: u64) -> Event {
        ev(
            ts,
            EventKind::TaskReceived {
                task_id: id,
                job_id: job,
                method: "cos".into(),
                worker: "w".into(),
            },
        )
    }

    fn succeeded(id: Uuid, ts: u64) -> Event {
        ev(
            ts,
            EventKind::TaskSucceeded {
                task_id: id,
                worker: "w".into(),
                runtime_ms: 5,
            },
        )
    }

    fn started(id: Uuid, ts: u64) -> Event {
        ev(
            ts,
            EventKind::TaskStarted {
                task_id: id,
                worker: "w".into(),
            },
        )
    }

    fn failed(id: Uuid, ts: u64) -> Event {
        ev(
            ts,
            EventKind::TaskFailed {
                task_id: id,
                worker: "w".into(),
                reason: "boom".into(),
            },
        )
    }

    #[test]
    fn a_missed_start_still_ends_succeeded_and_late_events_do_not_regress() {
        let mut s = Fold::new(10);
        let (id, job) = (Uuid::new_v4(), Uuid::new_v4());
        s.apply(&received(id, job, 1));
        s.apply(&succeeded(id, 3));
        assert_eq!(s.task(&id).unwrap().status, TaskStatus::Succeeded);
        // The lost `started` arrives late, then a duplicate `received`: neither undoes the success.
        s.apply(&started(id, 2));
        s.apply(&received(id, job, 1));
        let t = s.task(&id).unwrap();
        assert_eq!(t.status, TaskStatus::Succeeded);
        assert_eq!(t.runtime_ms, 5);
        assert_eq!(s.workers()["w"].status, "online");
        assert_eq!(s.workers()["w"].succeeded, 1);
    }

    #[test]
    fn events_in_reverse_order_reach_the_same_end_with_job_progress() {
        let (id, job) = (Uuid::new_v4(), Uuid::new_v4());
        let created = ev(
            0,
            EventKind::JobCreated {
                job_id: job,
                problem: "4a".into(),
                tasks: 1,
            },
        );
        let events = [created, received(id, job, 1), started(id, 2), succeeded(id, 3)];
        let mut forward = Fold::new(10);
        let mut backward = Fold::new(10);
        for e in &events {
            forward.apply(e);
        }
        for e in events.iter().rev() {
            backward.apply(e);
        }
        for s in [&forward, &backward] {
            let t = s.task(&id).unwrap();
            assert_eq!(t.status, TaskStatus::Succeeded);
            assert_eq!((t.job, s.strings().name(t.method)), (job, "cos"));
            assert_eq!(t.attempts, 1);
        }
        let j = forward.job(&job).unwrap();
        assert_eq!(
            (j.tasks, j.succeeded, forward.strings().name(j.problem)),
            (1, 1, "4a")
        );
        // Backwards the success came before the job's task was known: the job is created with its
        // problem, and the count is still right once the task names its job.
        assert_eq!(backward.job(&job).unwrap().tasks, 1);
    }

    #[test]
    fn a_retry_reopens_a_failed_task_and_ignores_stragglers_of_the_old_attempt() {
        let mut s = Fold::new(10);
        let (id, job) = (Uuid::new_v4(), Uuid::new_v4());
        s.apply(&received(id, job, 1));
        s.apply(&failed(id, 2));
        assert_eq!(s.task(&id).unwrap().status, TaskStatus::Failed);
        assert_eq!(s.workers()["w"].failed, 1);
        s.apply(&ev(
            10,
            EventKind::TaskRetried {
                task_id: id,
                job_id: job,
                attempt: Some(2),
            },
        ));
        assert_eq!(s.task(&id).unwrap().status, TaskStatus::Pending);
        assert_eq!(s.workers()["w"].retried, 1);
        // A duplicate of the old failure, stamped before the retry, changes nothing.
        s.apply(&failed(id, 3));
        assert_eq!(s.task(&id).unwrap().status, TaskStatus::Pending);
        s.apply(&received(id, job, 11));
        s.apply(&succeeded(id, 12));
        let t = s.task(&id).unwrap();
        assert_eq!((t.status, t.attempts), (TaskStatus::Succeeded, 2));
    }

    #[test]
    fn a_success_after_a_lost_retry_event_still_wins() {
        let mut s = Fold::new(10);
        let id = Uuid::new_v4();
        s.apply(&ev(
            1,
            EventKind::TaskDeadLettered {
                task_id: id,
                job_id: Uuid::nil(),
                reason: "delivery_limit".into(),
            },
        ));
        assert_eq!(s.task(&id).unwrap().status, TaskStatus::DeadLettered);
        s.apply(&succeeded(id, 5));
        assert_eq!(s.task(&id).unwrap().status, TaskStatus::Succeeded);
    }

    #[test]
    fn memory_is_bounded_and_silent_workers_go_offline() {
        let mut s = Fold::new(3);
        for i in 0..10 {
            s.apply(&started(Uuid::new_v4(), i + 1));
        }
        assert_eq!(s.task_count(), 3);
        assert_eq!(s.evicted(), 7);
        s.apply(&ev(
            20,
            EventKind::WorkerHeartbeat {
                worker: "w".into(),
                active: 1,
                processed: 4,
                load: Some(0.5),
                concurrency: Some(2),
            },
        ));
        let w = &s.workers()["w"];
        assert_eq!(
            (w.active, w.processed, w.load, w.concurrency),
            (1, 4, Some(0.5), 2)
        );
        s.expire(20 + HEARTBEAT_TIMEOUT_MS);
        assert_eq!(s.workers()["w"].status, "online");
        s.expire(20 + HEARTBEAT_TIMEOUT_MS + 1);
        assert_eq!(s.workers()["w"].status, "offline");
        assert_eq!(s.workers()["w"].active, 0);
        // It speaks again: online.
        s.apply(&started(Uuid::new_v4(), 20 + HEARTBEAT_TIMEOUT_MS + 2));
        assert_eq!(s.workers()["w"].status, "online");
    }

    #[test]
    fn an_old_event_does_not_bring_an_offline_worker_back() {
        let mut s = Fold::new(3);
        s.apply(&ev(10, EventKind::WorkerOffline { worker: "w".into() }));
        s.apply(&started(Uuid::new_v4(), 5));
        assert_eq!(s.workers()["w"].status, "offline");
    }

    #[test]
    fn throughput_and_runtime_series_fill_in() {
        let mut s = Fold::new(100);
        for i in 0..10u64 {
            let id = Uuid::new_v4();
            s.apply(&received(id, Uuid::nil(), 1_000 + i * 300));
            s.apply(&ev(
                1_000 + i * 300 + 1,
                EventKind::TaskSucceeded {
                    task_id: id,
                    worker: "w".into(),
                    runtime_ms: (i + 1) * 10,
                },
            ));
        }
        let ticks: Vec<Tick> = s.throughput().copied().collect();
        assert_eq!(ticks.first().map(|t| t.t), Some(1));
        assert_eq!(ticks.iter().map(|t| t.succeeded).sum::<u32>(), 10);
        assert_eq!(ticks.iter().map(|t| t.received).sum::<u32>(), 10);
        let p = s.runtime_percentiles();
        assert_eq!(p["cos"], [60, 90, 100, 10]);
    }

    #[test]
    fn status_names_round_trip() {
        for t in TaskStatus::ALL {
            assert_eq!(TaskStatus::parse(t.as_str()), Some(t));
        }
        assert_eq!(TaskStatus::parse("nope"), None);
    }
}
