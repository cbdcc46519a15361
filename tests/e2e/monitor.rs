//! The monitor end to end: baas, a worker and the monitor as processes over RabbitMQ; the dashboard in
//! headless Chromium following a job live; controls over the control exchange; history across a
//! restart; auth.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::support::{self, Baas, Proc, Vhost};

/// A monitor process on a free port with its history in `db`, already healthy.
async fn start_monitor(
    vhost: &Vhost,
    baas: &Baas,
    db: &std::path::Path,
    extra: &[(&str, String)],
) -> (Proc, String) {
    let port = support::free_port();
    let mut env = vec![
        ("AMQP_URL", vhost.url()),
        ("MONITOR_ADDR", format!("127.0.0.1:{port}")),
        ("MONITOR_DB", db.display().to_string()),
        ("BAAS_URL", baas.base.clone()),
        ("MONITOR_QUEUE_POLL_SECS", "1".to_owned()),
    ];
    env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
    let mut monitor = Proc::spawn("monitor", "monitor", &[], &env);
    let base = format!("http://127.0.0.1:{port}");
    support::wait_healthy(
        &support::client(),
        &format!("{base}/healthz"),
        Duration::from_secs(60),
        &mut monitor,
    )
    .await;
    (monitor, base)
}

/// Poll `f` every 200 ms until it returns `Some`, or panic with `what` after `limit`.
async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < limit, "{what} (after {limit:?})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Text of the first element matching `css`, if any.
async fn text_of(browser: &Browser, css: &str) -> Option<String> {
    let el = browser.client.find(Locator::Css(css)).await.ok()?;
    el.text().await.ok().map(|t| t.trim().to_owned())
}

async fn get_json(http: &reqwest::Client, url: &str) -> Value {
    let r = http.get(url).send().await.unwrap();
    assert!(r.status().is_success(), "GET {url}: {}", r.status());
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_follows_a_job_live_and_history_survives_a_restart_behind_auth() {
    let vhost = Vhost::new("monitor-live");
    let baas = Baas::start(&vhost.url()).await;
    let db = std::env::temp_dir().join(format!("benchop-monitor-{}.db", uuid::Uuid::new_v4().simple()));
    let (mut monitor, base) = start_monitor(&vhost, &baas, &db, &[]).await;
    let worker_name = "monitor-e2e-worker";
    let mut worker = Proc::spawn(
        "worker",
        "worker",
        &["--name", worker_name],
        &[("AMQP_URL", vhost.url())],
    );
    let http = support::client();

    // The page is open before the job exists; everything after arrives by push.
    let browser = Browser::start().await;
    browser.client.goto(&format!("{base}/")).await.unwrap();
    browser.find("#workers-table").await;
    browser
        .client
        .execute("window.__sameDocument = 42; return null;", vec![])
        .await
        .unwrap();
    let row = format!("#workers-table tr[data-worker=\"{worker_name}\"] .status");
    eventually(
        Duration::from_secs(30),
        "the worker never showed online",
        || async { (text_of(&browser, &row).await.as_deref() == Some("online")).then_some(()) },
    )
    .await;

    let id = baas
        .submit(
            &http,
            &json!({ "problem": "2a", "methods": ["closed-form", "cos", "tree"], "repeats": 1 }),
        )
        .await;
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(120)).await;
    let tasks: Vec<String> = job["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tasks.len(), 3, "{job:#}");
    for t in &tasks {
        let cell = format!("#tasks-table tr[data-task=\"{t}\"] .state");
        eventually(
            Duration::from_secs(30),
            &format!("task {t} never showed succeeded in the page"),
            || async { (text_of(&browser, &cell).await.as_deref() == Some("succeeded")).then_some(()) },
        )
        .await;
    }
    let job_row = format!("#jobs-table tr[data-job=\"{id}\"] .status");
    eventually(
        Duration::from_secs(30),
        "the job never showed finished",
        || async { (text_of(&browser, &job_row).await.as_deref() == Some("finished")).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(30),
        "the tasks queue never showed",
        || async { text_of(&browser, "#queues-table tr[data-queue=\"benchop.tasks\"]").await },
    )
    .await;
    let same: Value = browser
        .client
        .execute("return window.__sameDocument;", vec![])
        .await
        .unwrap();
    assert_eq!(same, json!(42), "the page was reloaded");
    for url in browser.loaded_urls().await {
        assert!(url.starts_with(&base), "loaded from outside the monitor: {url}");
    }

    // Task detail: timings and the result from baas.
    let detail = get_json(&http, &format!("{base}/api/tasks/{}", tasks[0])).await;
    assert_eq!(detail["task"]["state"], "succeeded", "{detail:#}");
    assert!(detail["timeline"].as_array().unwrap().len() >= 2, "{detail:#}");
    assert!(detail["result"]["relerr"].is_number(), "{detail:#}");
    // Job detail: the ranking fills in.
    let j = get_json(&http, &format!("{base}/api/jobs/{id}")).await;
    assert_eq!(j["ranking"].as_array().unwrap().len(), 3, "{j:#}");

    // A control: change the worker's concurrency; its heartbeats report the new value.
    let r = http
        .post(format!("{base}/api/workers/{worker_name}/concurrency"))
        .json(&json!({ "concurrency": 2 }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    eventually(Duration::from_secs(20), "concurrency never changed", || async {
        let ws = get_json(&http, &format!("{base}/api/workers")).await;
        ws.as_array()
            .unwrap()
            .iter()
            .any(|w| w["name"] == worker_name && w["concurrency"] == 2)
            .then_some(())
    })
    .await;

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("benchop_monitor_events_total{type=\"task.succeeded\"} 3"),
        "{metrics}"
    );
    assert!(metrics.contains("benchop_workers_online 1"), "{metrics}");
    assert!(
        metrics.contains("benchop_task_runtime_seconds_count{method=\"cos\"} 1"),
        "{metrics}"
    );
    drop(browser);

    // Restart the monitor on the same history, now behind basic auth: the job's tasks are back without a
    // single event replayed (its event queue died with the old process).
    monitor.signal(nix::sys::signal::Signal::SIGTERM);
    let stopped = Instant::now();
    while monitor.try_exit().is_none() {
        assert!(
            stopped.elapsed() < Duration::from_secs(20),
            "the monitor did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(monitor);
    let (_monitor, base) = start_monitor(
        &vhost,
        &baas,
        &db,
        &[("MONITOR_BASIC_AUTH", "ops:pa55".to_owned())],
    )
    .await;
    for path in ["/", "/api/tasks", "/api/overview", "/metrics", "/api/stream"] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without credentials");
    }
    let r = http
        .get(format!("{base}/api/tasks?job={id}"))
        .basic_auth("ops", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let page: Value = http
        .get(format!("{base}/api/tasks?job={id}"))
        .basic_auth("ops", Some("pa55"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["total"], 3, "{page:#}");
    assert!(
        page["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["state"] == "succeeded"),
        "{page:#}"
    );
    let overview: Value = http
        .get(format!("{base}/api/overview"))
        .basic_auth("ops", Some("pa55"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(overview["task_counts"]["succeeded"], 3, "{overview:#}");
    let job = overview["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job_id"] == id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("job {id} not restored: {overview:#}"));
    assert_eq!(
        (job["tasks"].as_u64(), job["succeeded"].as_u64()),
        (Some(3), Some(3)),
        "{job:#}"
    );
    worker.assert_running();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_a_running_task_from_the_monitor_stops_it_on_the_worker() {
    let vhost = Vhost::new("monitor-revoke");
    let baas = Baas::start(&vhost.url()).await;
    let db = std::env::temp_dir().join(format!("benchop-monitor-{}.db", uuid::Uuid::new_v4().simple()));
    // Without the management API: queues and dead letters are read over AMQP.
    let (_monitor, base) = start_monitor(
        &vhost,
        &baas,
        &db,
        &[("RABBITMQ_MANAGEMENT_URL", "off".to_owned())],
    )
    .await;
    let mut worker = Proc::spawn(
        "worker",
        "worker",
        &["--name", "monitor-revoke-worker"],
        &[("AMQP_URL", vhost.url())],
    );
    let http = support::client();
    // Monte Carlo with 20 repeats runs for many seconds: long enough to be stopped mid-kernel.
    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1cI", "methods": ["mc"], "repeats": 20 }),
        )
        .await;
    let task = eventually(Duration::from_secs(60), "the task never started", || async {
        let page = get_json(&http, &format!("{base}/api/tasks?job={id}&state=started")).await;
        page["tasks"][0]["task_id"].as_str().map(str::to_owned)
    })
    .await;
    let r = http
        .post(format!("{base}/api/tasks/{task}/revoke"))
        .json(&json!({ "terminate": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let job = baas.wait_done(&http, &id, 1, Duration::from_secs(60)).await;
    let t = &job["tasks"][0];
    assert_eq!(t["state"], "cancelled", "{job:#}");
    assert!(
        t["error"].as_str().unwrap_or("").contains("revoked"),
        "the kernel was not stopped by the revocation: {job:#}"
    );
    eventually(
        Duration::from_secs(20),
        "the monitor never showed the task revoked",
        || async {
            let d = get_json(&http, &format!("{base}/api/tasks/{task}")).await;
            (d["task"]["state"] == "revoked").then_some(())
        },
    )
    .await;

    // A poison task is rejected by the worker into benchop.dead; the monitor shows it (over AMQP) and
    // leaves it there.
    let conn = lapin::Connection::connect(&vhost.url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = protocol::amqp::confirm_channel(&conn).await.unwrap();
    protocol::amqp::publish_confirmed(
        &channel,
        protocol::topology::TASKS_EXCHANGE,
        protocol::topology::TASKS_ROUTING_KEY,
        [("poison-monitor".to_owned(), b"not a task".to_vec())],
    )
    .await
    .unwrap();
    for _ in 0..2 {
        eventually(
            Duration::from_secs(30),
            "the dead letter never showed",
            || async {
                let dead = get_json(&http, &format!("{base}/api/queues/dead")).await;
                dead.as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d["task_id"] == "poison-monitor" && d["reason"] == "rejected")
                    .then_some(())
            },
        )
        .await;
    }
    eventually(
        Duration::from_secs(20),
        "queue numbers never came over AMQP",
        || async {
            let q = get_json(&http, &format!("{base}/api/queues")).await;
            let queues = q["queues"].as_array().unwrap().clone();
            let tasks = queues.iter().find(|q| q["name"] == "benchop.tasks")?;
            let dead = queues.iter().find(|q| q["name"] == "benchop.dead")?;
            (tasks["source"] == "amqp" && tasks["consumers"] == 1 && dead["ready"].as_u64() >= Some(1))
                .then_some(())
        },
    )
    .await;

    // Shut the worker down from the monitor: it drains and exits cleanly.
    let r = http
        .post(format!("{base}/api/workers/monitor-revoke-worker/shutdown"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let start = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_exit() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "the worker did not exit"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "worker exited with {status}");
    eventually(
        Duration::from_secs(20),
        "the worker never showed offline",
        || async {
            let ws = get_json(&http, &format!("{base}/api/workers")).await;
            ws.as_array()
                .unwrap()
                .iter()
                .any(|w| w["name"] == "monitor-revoke-worker" && w["status"] == "offline")
                .then_some(())
        },
    )
    .await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}
