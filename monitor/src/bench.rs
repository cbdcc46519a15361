//! `monitor bench`: push the lifecycle events of many tasks through the fold and the history store and
//! print events/s, CPU per task and resident memory per retained task. A measurement, not a test.

use std::sync::Arc;
use std::time::Instant;

use uuid::Uuid;

use protocol::{Event, EventKind};

use crate::state::{Fold, TaskRec};
use crate::store::Store;

/// Resident set size of this process, bytes (Linux `/proc/self/statm`).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// CPU time (user + system, all threads) of this process so far, seconds (`/proc/self/stat`, 100 Hz).
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

const METHODS: [&str; 8] = ["cos", "fft", "fd", "tree", "mc", "qmc", "fgl", "closed-form"];

/// The events of task `i`: every tenth starts a job; received, started, succeeded (every 20th fails),
/// and a heartbeat every 50 tasks.
fn events_of(i: usize, job: Uuid, t0: u64) -> Vec<Event> {
    let ts = t0 + i as u64;
    let task_id = Uuid::new_v4();
    let worker = format!("worker-{}@bench", i % 4);
    let mut out = Vec::with_capacity(5);
    if i.is_multiple_of(10) {
        out.push(Event {
            ts_ms: ts,
            kind: EventKind::JobCreated {
                job_id: job,
                problem: "4a".into(),
                tasks: 10,
            },
        });
    }
    out.push(Event {
        ts_ms: ts,
        kind: EventKind::TaskReceived {
            task_id,
            job_id: job,
            method: METHODS[i % METHODS.len()].into(),
            worker: worker.clone(),
        },
    });
    out.push(Event {
        ts_ms: ts + 1,
        kind: EventKind::TaskStarted {
            task_id,
            worker: worker.clone(),
        },
    });
    out.push(Event {
        ts_ms: ts + 2,
        kind: if i % 20 == 19 {
            EventKind::TaskFailed {
                task_id,
                worker: worker.clone(),
                reason: "did not converge".into(),
            }
        } else {
            EventKind::TaskSucceeded {
                task_id,
                worker: worker.clone(),
                runtime_ms: 10 + (i % 97) as u64,
            }
        },
    });
    if i.is_multiple_of(50) {
        out.push(Event {
            ts_ms: ts + 2,
            kind: EventKind::WorkerHeartbeat {
                worker,
                active: 1,
                processed: i as u64,
                load: Some(1.0),
                concurrency: Some(1),
            },
        });
    }
    out
}

/// Run the benchmark over `tasks` tasks, with the history in `db` (a temporary file when `None`).
pub fn run(tasks: usize, db: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    let tasks = tasks.max(1);
    let t0 = protocol::task::now_ms();

    // 1. The fold alone: memory per retained task.
    let rss0 = rss_bytes().unwrap_or(0);
    let mut fold = Fold::new(tasks);
    let mut job = Uuid::new_v4();
    let mut n_events = 0u64;
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    for i in 0..tasks {
        if i.is_multiple_of(10) {
            job = Uuid::new_v4();
        }
        for e in events_of(i, job, t0) {
            fold.apply(&e);
            n_events += 1;
        }
    }
    let fold_wall = start.elapsed().as_secs_f64();
    let fold_cpu = cpu_seconds().unwrap_or(0.0) - cpu0;
    let rss1 = rss_bytes().unwrap_or(0);
    let retained = fold.task_count();
    let rss_per_task = rss1.saturating_sub(rss0) as f64 / retained.max(1) as f64;
    drop(fold);

    // 2. Fold + store: throughput and CPU per task, until every write is on disk.
    let path = db.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("monitor-bench-{}.db", Uuid::new_v4().simple()))
    });
    let store = Arc::new(Store::open(Some(&path), (tasks as u64).max(1_000_000))?);
    let mut state = crate::MonitorState::with_store(Fold::new(tasks), Some(&store));
    let cpu0 = cpu_seconds().unwrap_or(0.0);
    let start = Instant::now();
    let mut stored_events = 0u64;
    for i in 0..tasks {
        if i.is_multiple_of(10) {
            job = Uuid::new_v4();
        }
        for e in events_of(i, job, t0) {
            state.apply(&e);
            stored_events += 1;
        }
        // Keep the writer's buffer from overflowing: the benchmark measures a writer that keeps up.
        if i % 5_000 == 4_999
            && let Some(sink) = &state.sink
        {
            sink.flush();
        }
    }
    if let Some(sink) = &state.sink {
        sink.flush();
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds().unwrap_or(0.0) - cpu0;
    let dropped = state.sink.as_ref().map_or(0, |s| s.dropped());
    let rows = store
        .tasks(&crate::store::TaskQuery {
            per_page: Some(1),
            ..crate::store::TaskQuery::default()
        })?
        .total;
    let db_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);

    println!(
        "monitor bench: {tasks} tasks, {n_events} events (job.created, task.received/started/succeeded|failed, heartbeats)"
    );
    println!();
    println!("| stage | events/s | CPU µs/task | wall s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| fold only | {:.0} | {:.2} | {:.3} |",
        n_events as f64 / fold_wall,
        fold_cpu * 1e6 / tasks as f64,
        fold_wall
    );
    println!(
        "| fold + SQLite history | {:.0} | {:.2} | {:.3} |",
        stored_events as f64 / wall,
        cpu * 1e6 / tasks as f64,
        wall
    );
    println!();
    println!(
        "memory: {} tasks retained, RSS +{:.1} MiB = {:.0} bytes per retained task (TaskRec is {} bytes)",
        retained,
        rss1.saturating_sub(rss0) as f64 / (1024.0 * 1024.0),
        rss_per_task,
        std::mem::size_of::<TaskRec>()
    );
    println!(
        "history: {rows} task rows, {:.1} MiB on disk ({:.0} bytes per task), {dropped} writes dropped",
        db_bytes as f64 / (1024.0 * 1024.0),
        db_bytes as f64 / tasks as f64
    );
    drop(state);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
