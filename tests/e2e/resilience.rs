//! Faults around the broker and baas itself: baas killed mid-job, RabbitMQ restarted mid-job (on a node
//! of the test's own), a dead-lettered task reported in its job and retried, a job cancelled while a
//! task runs, and a soak of 5,000 tasks under random worker kills and one broker restart. Every test
//! ends by checking its jobs completed with every task recorded exactly once.

use std::time::{Duration, Instant};

use lapin::options::{BasicAckOptions, BasicGetOptions, BasicRejectOptions};
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use protocol::amqp;
use protocol::topology::{RESULTS_QUEUE, TASKS_EXCHANGE, TASKS_QUEUE, TASKS_ROUTING_KEY};

use crate::broker_node::BrokerNode;
use crate::support::{self, Baas, Proc, Vhost};

/// A monitor process on a free port (AMQP only, no management API), retrying through `baas`; returns it
/// and its `host:port`.
pub(crate) fn monitor(amqp_url: &str, baas: &Baas) -> (Proc, String) {
    let addr = format!("127.0.0.1:{}", support::free_port());
    let proc_ = Proc::spawn(
        "monitor",
        "monitor",
        &[],
        &[
            ("AMQP_URL", amqp_url.to_owned()),
            ("MONITOR_ADDR", addr.clone()),
            ("RABBITMQ_MANAGEMENT_URL", "off".to_owned()),
            ("BAAS_URL", baas.base.clone()),
        ],
    );
    (proc_, addr)
}

pub(crate) fn worker(name: &str, amqp_url: &str, extra: &[&str]) -> Proc {
    let mut args = vec!["--name", name];
    args.extend_from_slice(extra);
    Proc::spawn(name, "worker", &args, &[("AMQP_URL", amqp_url.to_owned())])
}

/// Every task has exactly one recorded result and the counters agree. Returns how many tasks had
/// their result delivered more than once (counted, ignored).
pub(crate) fn check_every_task_once(job: &Value) -> usize {
    assert!(
        job["status"] == "completed" || job["status"] == "cancelled",
        "{}",
        summary(job)
    );
    let tasks = job["tasks"].as_array().unwrap();
    assert_eq!(
        job["progress"]["done"].as_u64().unwrap(),
        tasks.len() as u64,
        "{}",
        summary(job)
    );
    assert_eq!(job["progress"]["total"].as_u64().unwrap(), tasks.len() as u64);
    let mut redelivered = 0;
    for t in tasks {
        assert_ne!(t["state"], "pending", "{t}");
        let n = t["result_deliveries"].as_u64().unwrap();
        assert!(
            n >= 1 || t["state"] == "cancelled",
            "a recorded task had no result message: {t}"
        );
        if n > 1 {
            redelivered += 1;
        }
    }
    redelivered
}

/// A job without its (possibly huge) task list, for assertion messages.
fn summary(job: &Value) -> Value {
    json!({ "id": job["id"], "status": job["status"], "progress": job["progress"],
            "ranking": job["ranking"].as_array().map(|r| r.iter().take(5).cloned().collect::<Vec<_>>()) })
}

fn tasks_in_state(job: &Value, state: &str) -> usize {
    job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["state"] == state)
        .count()
}

/// `(ready, unacked)` of `queue` in `vhost`.
fn depth(vhost: &Vhost, queue: &str) -> (u64, u64) {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "-q",
            "-p",
            vhost.name(),
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ])
        .output()
        .expect("rabbitmqctl");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c.len() == 3 && c[0] == queue).then(|| (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0)))
        })
        .next()
        .unwrap_or((0, 0))
}

/// baas SIGKILLed while a job runs: the worker goes on publishing results into the durable results
/// queue; the restarted baas resumes from its store, consumes them, and the job completes with every
/// task counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baas_killed_mid_job_resumes_from_its_store_and_consumes_the_results_that_arrived_meanwhile() {
    let started = Instant::now();
    let vhost = Vhost::new("res-baas-kill");
    let http = support::client();
    let mut baas = Baas::start(&vhost.url()).await;
    let _w = worker("res-baas-kill-w", &vhost.url(), &[]);
    // Monte Carlo on 1aI takes a few hundred milliseconds per task: 16 of them keep the worker busy
    // for seconds after baas dies.
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["mc"], "replicas": 16, "repeats": 1 }),
        )
        .await;
    baas.wait_done(&http, &id, 2, Duration::from_secs(120)).await;
    baas.kill();
    let killed_at = started.elapsed();

    // Results pile up in the broker while baas is down.
    let wait = Instant::now();
    let piled = loop {
        let (ready, _) = tokio::task::block_in_place(|| depth(&vhost, RESULTS_QUEUE));
        if ready >= 2 {
            break ready;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(120),
            "no results queued while baas was down"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    baas.relaunch().await;
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(300)).await;
    let redelivered = check_every_task_once(&job);
    assert_eq!(tasks_in_state(&job, "succeeded"), 16, "{}", summary(&job));
    eprintln!(
        "baas kill: killed at {:.1} s, {piled} results queued meanwhile, job completed at {:.1} s, \
         {redelivered} tasks with a duplicate result",
        killed_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// RabbitMQ stopped and started while a job runs (a node of the test's own): baas, the workers and the
/// monitor reconnect, re-declare and resubscribe; a job submitted during the outage is accepted and its
/// tasks are published once the broker is back; both jobs complete with every task counted once, and the
/// monitor hears the workers' heartbeats again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_job_loses_nothing() {
    let started = Instant::now();
    let broker = BrokerNode::start("restart").await;
    let http = support::client();
    let baas = Baas::start(&broker.url()).await;
    let _a = worker("res-restart-a", &broker.url(), &[]);
    let _b = worker("res-restart-b", &broker.url(), &[]);
    let (_monitor, monitor_addr) = monitor(&broker.url(), &baas);
    let first = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["mc", "cos", "fd"], "replicas": 6, "repeats": 1 }),
        )
        .await;
    baas.wait_done(&http, &first, 2, Duration::from_secs(120)).await;

    broker.stop_app().await;
    let down_at = started.elapsed();
    // Accepted while the broker is down: stored, published later by the republisher.
    let r = http
        .post(format!("{}/v1/jobs", baas.base))
        .json(&json!({ "problem": "1aI", "methods": ["cos", "fd"], "repeats": 1 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "a job submitted during the outage is accepted");
    let second = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.start_app().await;
    let up_at = started.elapsed();
    let up_at_ms = protocol::task::now_ms();

    for id in [&first, &second] {
        let job = support::wait_job(&http, &baas.base, id, Duration::from_secs(300)).await;
        check_every_task_once(&job);
        assert_eq!(
            tasks_in_state(&job, "succeeded"),
            job["tasks"].as_array().unwrap().len(),
            "{job:#}"
        );
    }
    // The monitor reconnected and resubscribed too: it hears both workers' heartbeats again.
    let wait = Instant::now();
    loop {
        let state: Value = http
            .get(format!("http://{monitor_addr}/api/state"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let heard = |name: &str| {
            let w = match &state["workers"] {
                Value::Object(m) => m.get(name).cloned(),
                Value::Array(a) => a.iter().find(|w| w["name"] == name).cloned(),
                _ => None,
            };
            w.and_then(|w| w["last_heartbeat_ms"].as_u64().or(w["last_seen_ms"].as_u64()))
                .is_some_and(|t| t > up_at_ms)
        };
        // baas's events reconnect too, and the monitor's durable queue keeps what they publish before the
        // monitor is back: both jobs' `job.finished` came after the restart.
        let finished = state["event_counts"]["job.finished"].as_u64().unwrap_or(0);
        if heard("res-restart-a") && heard("res-restart-b") && finished >= 2 {
            break;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(30),
            "the monitor hears no heartbeat or job event after the broker restart: {state:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "broker restart: down at {:.1} s, up at {:.1} s, both jobs completed at {:.1} s",
        down_at.as_secs_f64(),
        up_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// A task the broker dead-letters (here: its message was corrupted, so the worker rejects it) is
/// recorded as failed in its job with the broker's reason, the job completes, a copy stays in the
/// dead-letter queue where the monitor lists it, and a retry from the monitor (through baas's
/// `POST /v1/tasks/{id}/retry`) runs it again to success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lettered_task_fails_in_its_job_and_a_retry_runs_it_again() {
    let vhost = Vhost::new("res-dead");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["cos", "fd"], "repeats": 1 }),
        )
        .await;
    let job = baas.job(&http, &id).await;
    let cos_id = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["method"] == "cos")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // No worker yet: swap the queued cos task for a corrupted copy with the same message id.
    let conn = amqp::connect(&vhost.url(), "res-dead-test", Duration::from_secs(10))
        .await
        .unwrap();
    let channel = amqp::confirm_channel(&conn).await.unwrap();
    let wait = Instant::now();
    let mut others = Vec::new();
    loop {
        let Some(m) = channel
            .basic_get(TASKS_QUEUE.into(), BasicGetOptions::default())
            .await
            .unwrap()
        else {
            assert!(wait.elapsed() < Duration::from_secs(30), "cos task never queued");
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let message_id = m.delivery.properties.message_id().as_ref().map(|s| s.to_string());
        if message_id.as_deref() == Some(cos_id.as_str()) {
            amqp::publish_confirmed(
                &channel,
                TASKS_EXCHANGE,
                TASKS_ROUTING_KEY,
                [(cos_id.clone(), b"{\"corrupted\": ".to_vec())],
            )
            .await
            .unwrap();
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
            break;
        }
        others.push(m);
    }
    for m in others {
        m.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .unwrap();
    }
    let _w = worker("res-dead-w", &vhost.url(), &[]);
    // The operator's view: a monitor reading the dead-letter queue over AMQP, retrying through baas.
    let (_monitor_proc, monitor) = monitor(&vhost.url(), &baas);

    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(60)).await;
    check_every_task_once(&job);
    let cos = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == cos_id.as_str())
        .unwrap();
    assert_eq!(cos["state"], "failed", "{job:#}");
    let error = cos["error"].as_str().unwrap_or_default();
    assert!(error.starts_with("dead_lettered: "), "reason given: {job:#}");
    assert!(error.contains("rejected"), "the broker's reason: {error}");
    assert_eq!(
        job["ranking"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["method"] == "fd")
            .unwrap()["standing"],
        "reached",
        "{job:#}"
    );
    // The copy for operators is still in the dead-letter queue, and the monitor shows it.
    let wait = Instant::now();
    loop {
        let r = http.get(format!("http://{monitor}/api/queues/dead")).send().await;
        let dead: Value = match r {
            Ok(r) if r.status() == 200 => r.json().await.unwrap(),
            _ => Value::Null,
        };
        let listed = dead
            .as_array()
            .is_some_and(|d| d.iter().any(|l| l["task_id"] == cos_id.as_str()));
        if listed {
            break;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(30),
            "the monitor does not list the dead letter: {dead:#}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    // Retry from the monitor: it asks baas, which re-publishes the stored (intact) message; the job
    // re-opens and completes.
    support::expect(
        http.post(format!("http://{monitor}/api/tasks/{cos_id}/retry")),
        202,
    )
    .await;
    let wait = Instant::now();
    let job = loop {
        let job = baas.job(&http, &id).await;
        if job["status"] == "completed" && tasks_in_state(&job, "succeeded") == 2 {
            break job;
        }
        assert!(
            wait.elapsed() < Duration::from_secs(60),
            "retry did not complete: {job:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    check_every_task_once(&job);
    let cos = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == cos_id.as_str())
        .unwrap();
    assert_eq!(cos["attempts"], 2, "{cos}");
    assert_eq!(cos["worker"], "res-dead-w", "{cos}");

    // Only failed tasks are retried; unknown ones are 404.
    let retry = |id: String| http.post(format!("{}/v1/tasks/{id}/retry", baas.base));
    let err = support::expect(retry(cos_id.clone()), 409).await;
    assert_eq!(err["code"], "task_not_failed");
    let err = support::expect(retry(uuid::Uuid::new_v4().to_string()), 404).await;
    assert_eq!(err["code"], "task_not_found");
    let _ = conn.close(200, "done".into()).await;
}

/// `DELETE /v1/jobs/{id}` while a long task runs: the job is cancelled at once, the pending tasks are
/// recorded as cancelled, the worker stops the running kernel (it is free for the next job within
/// seconds, not after the task's natural end), and cancelling again or a finished job answers sensibly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_job_stops_its_running_task_and_revokes_the_rest() {
    let vhost = Vhost::new("res-cancel");
    let http = support::client();
    let baas = Baas::start(&vhost.url()).await;
    let _w = worker("res-cancel-w", &vhost.url(), &[]);
    // cos first (milliseconds), then mc with 20 repeats on 1cI (over 10 s), then qmc.
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1cI", "methods": ["qmc", "mc", "cos"], "repeats": 20 }),
        )
        .await;
    baas.wait_done(&http, &id, 1, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cancel = |id: &str| http.delete(format!("{}/v1/jobs/{id}", baas.base));
    let view = support::expect(cancel(&id), 202).await;
    assert_eq!(view["status"], "cancelled", "{view:#}");
    assert_eq!(tasks_in_state(&view, "succeeded"), 1, "{view:#}");
    assert_eq!(tasks_in_state(&view, "cancelled"), 2, "{view:#}");
    check_every_task_once(&view);
    let cancelled_at = Instant::now();

    // The worker is free again quickly: the running mc was stopped, qmc is skipped.
    let next = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["cos"], "repeats": 1 }),
        )
        .await;
    let done = support::wait_job(&http, &baas.base, &next, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");
    let freed = cancelled_at.elapsed();
    assert!(
        freed < Duration::from_secs(8),
        "the worker kept computing the cancelled job: the next job took {freed:?}"
    );

    // Cancelling twice is harmless; a completed job cannot be cancelled; unknown jobs are 404.
    assert_eq!(support::expect(cancel(&id), 202).await["status"], "cancelled");
    assert_eq!(support::expect(cancel(&next), 409).await["code"], "job_finished");
    assert_eq!(
        support::expect(cancel(&uuid::Uuid::new_v4().to_string()), 404).await["code"],
        "job_not_found"
    );
    // Late results of the cancelled job (if any arrive) never change it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = baas.job(&http, &id).await;
    assert_eq!(after["status"], "cancelled");
    assert_eq!(tasks_in_state(&after, "cancelled"), 2, "{after:#}");
    eprintln!(
        "cancel: next job completed {:.1} s after the cancel",
        freed.as_secs_f64()
    );
}

/// The soak job: `tasks` quick tasks (four methods on 1aI, `tasks / 4` replicas each).
pub(crate) fn soak_job(tasks: u64) -> Value {
    json!({ "problem": "1aI", "methods": ["closed-form", "cos", "fd", "tree"],
            "replicas": tasks / 4, "repeats": 3 })
}

/// Soak: one job of 5,000 tasks while workers are SIGKILLed and replaced at random and the broker is
/// restarted once. Nothing is lost (every task has a result) and nothing is counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_5000_tasks_through_worker_kills_and_a_broker_restart() {
    const TASKS: u64 = 5_000;
    let started = Instant::now();
    let broker = BrokerNode::start("soak").await;
    let http = support::client();
    let baas = Baas::start(&broker.url()).await;
    let url = broker.url();
    let workers: Vec<Proc> = (0..3)
        .map(|i| worker(&format!("soak-w{i}"), &url, &["--concurrency", "4"]))
        .collect();
    let id = baas.submit(&http, &soak_job(TASKS)).await;

    // Chaos beside the job: every 150–500 ms a random worker is SIGKILLed (mid-task, with prefetched
    // tasks unacked) and replaced by a fresh one. A small deterministic generator: every run the same.
    let stop = tokio_util::sync::CancellationToken::new();
    let chaos = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut workers = workers;
            let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let (mut kills, mut spawned) = (0u32, 3u32);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return (kills, workers),
                    () = tokio::time::sleep(Duration::from_millis(150 + next() % 350)) => {}
                }
                let victim = (next() % workers.len() as u64) as usize;
                workers[victim].signal(Signal::SIGKILL);
                kills += 1;
                workers[victim] = worker(&format!("soak-w{spawned}"), &url, &["--concurrency", "4"]);
                spawned += 1;
            }
        }
    });

    let mut restarted = false;
    let limit = Duration::from_secs(600);
    let job = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let job: Value = http
            .get(format!("{}/v1/jobs/{id}", baas.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let done = job["progress"]["done"].as_u64().unwrap();
        if job["status"] == "completed" {
            break job;
        }
        assert!(
            started.elapsed() < limit,
            "soak: {done}/{TASKS} after {limit:?}: {}",
            summary(&job)
        );
        if !restarted && done >= TASKS / 4 {
            broker.stop_app().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            broker.start_app().await;
            restarted = true;
            eprintln!("soak: broker restarted at {done}/{TASKS}");
        }
    };
    stop.cancel();
    let (kills, _workers) = chaos.await.unwrap();
    assert!(restarted, "the job finished before the broker restart");
    let redelivered = check_every_task_once(&job);
    assert_eq!(job["progress"]["total"], TASKS);
    assert_eq!(
        tasks_in_state(&job, "succeeded") as u64,
        TASKS,
        "{}",
        summary(&job)
    );
    let (ready, unacked) = broker.queue_depth(TASKS_QUEUE);
    assert_eq!((ready, unacked), (0, 0), "tasks left in the queue");
    eprintln!(
        "soak: {TASKS} tasks in {:.1} s, {kills} worker kills, 1 broker restart: 0 lost, 0 counted twice, \
         {redelivered} tasks whose result arrived twice (deduplicated)",
        started.elapsed().as_secs_f64()
    );
}
