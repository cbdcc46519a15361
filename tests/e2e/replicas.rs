//! Several baas replicas on one PostgreSQL store and one broker: any replica answers any job (reads,
//! `?wait`, the event stream), results are consumed by both idempotently, and when one replica is
//! SIGKILLed mid-job the other finishes it with every task recorded exactly once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::resilience::check_every_task_once;
use crate::support::{self, Baas, PgSchema, Proc, Vhost};

fn worker(name: &str, amqp_url: &str) -> Proc {
    Proc::spawn(
        name,
        "worker",
        &["--name", name, "--concurrency", "4"],
        &[("AMQP_URL", amqp_url.to_owned())],
    )
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    support::expect(http.get(url), 200).await
}

/// Read a job's event stream to its end; returns the names of the events.
async fn follow(http: reqwest::Client, url: String) -> Vec<String> {
    let mut response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let (mut names, mut buffer) = (Vec::new(), String::new());
    while let Ok(Some(chunk)) = response.chunk().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            if let Some(name) = line.trim_end().strip_prefix("event: ") {
                names.push(name.to_owned());
            }
        }
        if names.last().is_some_and(|n| n == "completed") {
            break;
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_serve_one_store_and_the_survivor_finishes_a_job_after_a_sigkill() {
    const TASKS: u64 = 400;
    let vhost = Vhost::new("replicas");
    let schema = PgSchema::create();
    let env = [("BAAS_DATABASE_URL", schema.url.clone())];
    let mut a = Baas::start_with(&vhost.url(), &env).await;
    let b = Baas::start_with(&vhost.url(), &env).await;
    let http = support::client();
    let _workers: Vec<Proc> = (0..2)
        .map(|i| worker(&format!("replica-w{i}"), &vhost.url()))
        .collect();

    // 400 tasks of 20 ms each: a few seconds on two cores, long enough to kill A in the middle.
    let body = json!({ "problem": "1aI", "methods": ["cos"], "replicas": TASKS,
                       "probe": { "kind": "spin", "micros": 20_000 } });
    let id = a.submit(&http, &body).await;
    // B streams and long-polls a job it never saw submitted.
    let stream = tokio::spawn(follow(http.clone(), format!("{}/v1/jobs/{id}/events", b.base)));
    let wait = tokio::spawn({
        let (http, url) = (
            http.clone(),
            format!("{}/v1/jobs/{id}?wait=60&tasks=none", b.base),
        );
        async move { support::expect(http.get(url), 200).await }
    });
    // Requests alternate between the replicas and agree.
    let started = Instant::now();
    let mut turn = 0usize;
    loop {
        let base = [&a.base, &b.base][turn % 2];
        turn += 1;
        let job = get(&http, format!("{base}/v1/jobs/{id}?tasks=none")).await;
        assert_eq!(job["progress"]["total"], TASKS, "{job}");
        if job["progress"]["done"].as_u64().unwrap() >= TASKS / 4 {
            break;
        }
        assert!(
            job["status"] != "completed",
            "the job finished before A could be killed: {job}"
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no progress: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(turn >= 2, "both replicas answered");

    // SIGKILL A mid-job: its unacked results go back to the queue and B records them; tasks A had not
    // marked published are claimed by B's republisher once A's claims lapse.
    a.kill();
    let job = loop {
        let job = get(&http, format!("{}/v1/jobs/{id}?wait=30", b.base)).await;
        if job["status"] == "completed" {
            break job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "not finished on B: {}",
            job["progress"]
        );
    };
    let redelivered = check_every_task_once(&job);
    assert_eq!(job["progress"]["failed"], 0, "{}", job["progress"]);
    eprintln!(
        "replicas: {TASKS} tasks in {:.1} s, A killed at ≥ {} done, {redelivered} results delivered twice \
         (recorded once)",
        started.elapsed().as_secs_f64(),
        TASKS / 4
    );

    // B's long poll and event stream ended with the job's end although A recorded part of it.
    let waited = tokio::time::timeout(Duration::from_secs(60), wait)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(waited["status"], "completed", "{}", waited["progress"]);
    let events = tokio::time::timeout(Duration::from_secs(60), stream)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.last().map(String::as_str), Some("completed"), "{events:?}");
    assert!(
        events.iter().filter(|e| *e == "progress").count() >= 2,
        "{events:?}"
    );

    // The survivor alone takes new work, and A, restarted on the same store, sees all of it.
    let next = b
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["closed-form", "cos"] }),
        )
        .await;
    let done = support::wait_job(&http, &b.base, &next, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");
    a.relaunch().await;
    for job_id in [&id, &next] {
        let seen = get(&http, format!("{}/v1/jobs/{job_id}?tasks=none", a.base)).await;
        assert_eq!(seen["status"], "completed", "{seen}");
    }
}
