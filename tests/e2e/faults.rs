//! Fault injection: workers killed or stopped mid-task, duplicate results, poison tasks and time
//! limits, against real `baas` and `worker` processes on a vhost of their own. Each test checks that
//! every task of its job is recorded exactly once (`result_deliveries == 1`, one ranking entry per task).

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use protocol::amqp;
use protocol::topology::{
    DEAD_QUEUE, RESULTS_EXCHANGE, RESULTS_ROUTING_KEY, TASKS_EXCHANGE, TASKS_QUEUE, TASKS_ROUTING_KEY,
};
use protocol::{FailureKind, Outcome, SCHEMA_VERSION, TaskResult};

use crate::support::{self, Baas, Proc, Vhost};

/// A job run in method order (baas sorts them): `cos` (milliseconds), then `mc` (over 10 s in release
/// with 20 repeats: long enough to be interrupted even on a loaded machine, where `rabbitmqctl` polls
/// take seconds), then `qmc` (several seconds: work left for a second worker).
fn slow_job() -> Value {
    json!({ "problem": "1cI", "methods": ["qmc", "mc", "cos"], "repeats": 20 })
}

/// Wait until worker A recorded `cos` and holds `mc`, and check `mc` is still running.
async fn wait_mc_in_flight(baas: &Baas, http: &reqwest::Client, vhost: &Vhost, id: &str) {
    baas.wait_done(http, id, 1, Duration::from_secs(60)).await;
    wait_unacked(vhost, 1, Duration::from_secs(30)).await;
    let before = baas.job(http, id).await;
    assert_eq!(task(&before, "cos")["state"], "succeeded", "{before:#}");
    for m in ["mc", "qmc"] {
        assert_eq!(
            task(&before, m)["state"],
            "pending",
            "{m} finished before the fault (too fast here to interrupt): {before:#}"
        );
    }
}

fn worker(name: &str, vhost: &Vhost, extra_args: &[&str]) -> Proc {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra_args);
    Proc::spawn(name, "worker", &args, &[("AMQP_URL", vhost.url())])
}

/// Every task recorded exactly once, one ranking entry per task and per method.
fn check_exactly_once(job: &Value) {
    assert_eq!(job["status"], "completed", "{job:#}");
    let tasks = job["tasks"].as_array().unwrap();
    let ranking = job["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), tasks.len(), "one ranking entry per task: {job:#}");
    for t in tasks {
        assert_eq!(t["result_deliveries"], 1, "task recorded exactly once: {t}");
        assert_ne!(t["state"], "pending", "{t}");
    }
    let methods: HashSet<_> = ranking.iter().map(|e| e["method"].as_str().unwrap()).collect();
    assert_eq!(methods.len(), ranking.len(), "each method ranked once: {job:#}");
    assert_eq!(
        job["progress"]["done"].as_u64().unwrap(),
        tasks.len() as u64,
        "{job:#}"
    );
}

fn task<'a>(job: &'a Value, method: &str) -> &'a Value {
    job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["method"] == method)
        .unwrap_or_else(|| panic!("no {method} task: {job:#}"))
}

fn entry<'a>(job: &'a Value, method: &str) -> &'a Value {
    job["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["method"] == method)
        .unwrap_or_else(|| panic!("no {method} ranking entry: {job:#}"))
}

/// Unacknowledged messages on `queue` in `vhost`, as the broker reports them.
fn unacked(vhost: &Vhost, queue: &str) -> u64 {
    let out = Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "-p",
            vhost.name(),
            "name",
            "messages_unacknowledged",
        ])
        .output()
        .expect("rabbitmqctl");
    assert!(
        out.status.success(),
        "rabbitmqctl list_queues: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(queue)).then(|| cols.next().and_then(|n| n.parse().ok()))?
        })
        .next()
        .unwrap_or(0)
}

/// Wait until workers hold exactly `n` tasks unacked (they are computing them).
async fn wait_unacked(vhost: &Vhost, n: u64, limit: Duration) {
    let start = Instant::now();
    loop {
        let v = vhost_unacked(vhost).await;
        if v == n {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{TASKS_QUEUE} has {v} unacked tasks, not {n}, after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn vhost_unacked(vhost: &Vhost) -> u64 {
    // rabbitmqctl takes about a second to start: keep it off the async worker threads.
    tokio::task::block_in_place(|| unacked(vhost, TASKS_QUEUE))
}

async fn wait_exit(proc_: &mut Proc, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = proc_.try_exit() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "{} still running {limit:?} after the signal",
            proc_.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn broker(vhost: &Vhost) -> lapin::Connection {
    let conn = amqp::connect(&vhost.url(), "faults-test", Duration::from_secs(10))
        .await
        .unwrap();
    let channel = conn.create_channel().await.unwrap();
    amqp::declare_topology(&channel).await.unwrap();
    conn
}

/// 1. A worker SIGKILLed mid-task costs a redelivery, never a result: another worker computes it, and
///    every task is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_loses_nothing_and_another_worker_redoes_the_task() {
    let started = Instant::now();
    let vhost = Vhost::new("faults-kill");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let mut a = worker("faults-kill-a", &vhost, &[]);
    let id = baas.submit(&http, &slow_job()).await;

    // A finishes cos, then holds mc: kill it while mc is being computed.
    wait_mc_in_flight(&baas, &http, &vhost, &id).await;
    a.signal(Signal::SIGKILL);
    let status = wait_exit(&mut a, Duration::from_secs(10)).await;
    assert!(!status.success(), "killed worker: {status}");
    let killed_at = started.elapsed();

    let _b = worker("faults-kill-b", &vhost, &[]);
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(300)).await;
    check_exactly_once(&job);
    assert_eq!(
        task(&job, "mc")["worker"],
        "faults-kill-b",
        "the redelivered task is computed by worker B: {job:#}"
    );
    assert_eq!(task(&job, "qmc")["worker"], "faults-kill-b", "{job:#}");
    assert_eq!(task(&job, "cos")["worker"], "faults-kill-a", "{job:#}");
    eprintln!(
        "kill: A killed at {:.1} s, job completed at {:.1} s",
        killed_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// 2. A result delivered twice is counted and ignored: the ranking does not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_result_is_counted_and_ignored() {
    let started = Instant::now();
    let vhost = Vhost::new("faults-dup");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let _w = worker("faults-dup-w", &vhost, &[]);
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["cos", "fd"], "repeats": 1 }),
        )
        .await;
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(60)).await;
    check_exactly_once(&job);

    // A second, different result for the cos task, as a confused or replayed worker would send it.
    let cos = task(&job, "cos");
    let duplicate = TaskResult {
        schema_version: SCHEMA_VERSION,
        task_id: cos["id"].as_str().unwrap().parse().unwrap(),
        job_id: id.parse().unwrap(),
        method: "cos".into(),
        worker: "faults-duplicate".into(),
        started_ms: protocol::task::now_ms(),
        finished_ms: protocol::task::now_ms(),
        outcome: Outcome::Failed {
            kind: FailureKind::Panicked,
            reason: "duplicate injected by the fault test".into(),
        },
    };
    let conn = broker(&vhost).await;
    let channel = amqp::confirm_channel(&conn).await.unwrap();
    amqp::publish_confirmed(
        &channel,
        RESULTS_EXCHANGE,
        RESULTS_ROUTING_KEY,
        [(duplicate.task_id.to_string(), duplicate.encode())],
    )
    .await
    .unwrap();

    let start = Instant::now();
    let after = loop {
        let after = baas.job(&http, &id).await;
        if task(&after, "cos")["result_deliveries"] == 2 {
            break after;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "duplicate not counted after 30 s: {after:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(after["ranking"], job["ranking"], "ranking unchanged");
    assert_eq!(after["progress"], job["progress"], "progress unchanged");
    assert_eq!(after["finished_ms"], job["finished_ms"]);
    assert_eq!(task(&after, "cos")["worker"], "faults-dup-w", "{after:#}");
    assert_eq!(task(&after, "cos")["state"], "succeeded", "{after:#}");
    assert_eq!(task(&after, "fd")["result_deliveries"], 1, "{after:#}");
    let _ = conn.close(200, "done".into()).await;
    eprintln!("duplicate: {:.1} s", started.elapsed().as_secs_f64());
}

/// 3. An undecodable task is dead-lettered, and the worker keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_task_is_dead_lettered_and_the_worker_keeps_serving() {
    let started = Instant::now();
    let vhost = Vhost::new("faults-poison");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let mut w = worker("faults-poison-w", &vhost, &[]);
    let conn = broker(&vhost).await;
    let channel = amqp::confirm_channel(&conn).await.unwrap();
    let poison = b"\xff this is not a task".to_vec();
    amqp::publish_confirmed(
        &channel,
        TASKS_EXCHANGE,
        TASKS_ROUTING_KEY,
        [("poison".to_owned(), poison.clone())],
    )
    .await
    .unwrap();

    let start = Instant::now();
    let dead = loop {
        if let Some(m) = channel
            .basic_get(DEAD_QUEUE.into(), BasicGetOptions::default())
            .await
            .unwrap()
        {
            break m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the poison task is not in {DEAD_QUEUE} after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead.delivery.data, poison);
    dead.delivery.ack(BasicAckOptions::default()).await.unwrap();

    w.assert_running();
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["cos", "fd"], "repeats": 1 }),
        )
        .await;
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(60)).await;
    check_exactly_once(&job);
    for t in job["tasks"].as_array().unwrap() {
        assert_eq!(t["worker"], "faults-poison-w", "{t}");
        assert_eq!(t["state"], "succeeded", "{t}");
    }
    w.assert_running();
    let _ = conn.close(200, "done".into()).await;
    eprintln!("poison: {:.1} s", started.elapsed().as_secs_f64());
}

/// 4. A task over its time limit fails with a reason saying so; the others of the job are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_over_its_time_limit_fails_and_the_job_completes() {
    let started = Instant::now();
    let vhost = Vhost::new("faults-limit");
    let http = support::client();
    let baas = Baas::start_with(&vhost.url(), &[("BAAS_TASK_TIME_LIMIT_SECS", "1".to_owned())]).await;
    let _w = worker("faults-limit-w", &vhost, &[]);
    // mc on 1bI takes several seconds with 5 repeats; cos takes milliseconds.
    let submitted = Instant::now();
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1bI", "methods": ["cos", "mc"], "repeats": 5 }),
        )
        .await;
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(60)).await;
    let took = submitted.elapsed();
    check_exactly_once(&job);
    let mc = entry(&job, "mc");
    assert_eq!(mc["standing"], "failed", "{job:#}");
    let reason = mc["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("time limit"), "reason: {reason:?}: {job:#}");
    assert_eq!(task(&job, "mc")["state"], "failed", "{job:#}");
    assert_eq!(entry(&job, "cos")["standing"], "reached", "{job:#}");
    assert!(
        took < Duration::from_secs(15),
        "the time limit of 1 s did not stop mc promptly: job took {took:?}"
    );
    eprintln!(
        "time limit: job completed {:.1} s after submission ({:.1} s in all); mc: {reason}",
        took.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// 5. SIGTERM lets the running task finish and be recorded before the worker exits; another worker
///    takes the rest, and every task is recorded exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_running_task_before_the_worker_exits() {
    let started = Instant::now();
    let vhost = Vhost::new("faults-term");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let mut a = worker("faults-term-a", &vhost, &["--drain-secs", "150"]);
    let id = baas.submit(&http, &slow_job()).await;
    wait_mc_in_flight(&baas, &http, &vhost, &id).await;
    a.signal(Signal::SIGTERM);
    let termed = Instant::now();
    let _b = worker("faults-term-b", &vhost, &[]);

    let status = wait_exit(&mut a, Duration::from_secs(180)).await;
    let drained = termed.elapsed();
    assert!(status.success(), "worker A after SIGTERM: {status}");
    // A exited after finishing mc: its result is recorded, from A, before A is gone.
    let after_exit = baas.job(&http, &id).await;
    let mc = task(&after_exit, "mc");
    assert_eq!(mc["worker"], "faults-term-a", "mc drained by A: {after_exit:#}");
    assert_eq!(mc["result_deliveries"], 1, "{after_exit:#}");

    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(300)).await;
    check_exactly_once(&job);
    let workers: Vec<_> = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{}: {}",
                t["method"].as_str().unwrap(),
                t["worker"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(task(&job, "cos")["worker"], "faults-term-a", "{job:#}");
    assert_eq!(task(&job, "mc")["worker"], "faults-term-a", "{job:#}");
    assert_eq!(
        task(&job, "qmc")["worker"],
        "faults-term-b",
        "the task queued behind the drain goes to B: {job:#}"
    );
    eprintln!(
        "sigterm: A exited {:.1} s after SIGTERM; job completed at {:.1} s; {workers:?}",
        drained.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
