//! End-to-end tests: real `baas`, `worker` and `benchop` processes, the real RabbitMQ.

mod accounts;
mod broker_node;
mod browser;
mod certs;
mod client;
mod cluster;
mod custom;
mod deploy;
mod faults;
mod jobs_api;
mod loadtest;
mod monitor;
mod proxy;
mod replicas;
mod resilience;
mod scale_out;
mod schemathesis;
mod support;
mod tls;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use benchop::catalogue;
use support::{Proc, Vhost};

/// Checks a completed job: every task recorded exactly once, and each reached entry's values really
/// within `tol` of the published reference (recomputed here, not trusted from the service).
fn check_job(job: &Value, problem: &str, tol: f64) -> Vec<String> {
    let case = catalogue::case(problem).unwrap();
    let tasks = job["tasks"].as_array().unwrap();
    let ranking = job["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), tasks.len(), "one ranking entry per task: {job:#}");
    for t in tasks {
        assert_eq!(t["result_deliveries"], 1, "task recorded exactly once: {t}");
        assert_ne!(t["state"], "pending", "{t}");
    }
    let methods: HashSet<_> = ranking.iter().map(|e| e["method"].as_str().unwrap()).collect();
    assert_eq!(methods.len(), ranking.len(), "each method ranked once");
    let mut reached = Vec::new();
    let mut last_time = 0.0;
    for e in ranking.iter().filter(|e| e["standing"] == "reached") {
        let values: Vec<f64> = e["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let err = benchop::relerr(&values, &case.reference);
        assert!(
            err <= tol,
            "{problem} {}: relerr {err:e} > {tol:e}: {e}",
            e["method"]
        );
        let mean = e["time"]["mean_s"].as_f64().unwrap();
        assert!(
            mean >= last_time,
            "reached entries are ordered by mean time: {job:#}"
        );
        last_time = mean;
        reached.push(e["method"].as_str().unwrap().to_owned());
    }
    reached
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baas_and_two_workers_rank_1ai_1bi_and_4a_over_rabbitmq() {
    let vhost = Vhost::new("e2e");
    let mut baas = support::Baas::start(&vhost.url()).await;
    let base = baas.base.clone();
    let http = support::client();
    let env = [("AMQP_URL", vhost.url())];
    let _w1 = Proc::spawn("worker-1", "worker", &["--name", "e2e-worker-1"], &env);
    let _w2 = Proc::spawn("worker-2", "worker", &["--name", "e2e-worker-2"], &env);

    let started = Instant::now();
    let mut ids = Vec::new();
    for problem in ["1aI", "1bI", "4a"] {
        let r = http
            .post(format!("{base}/v1/jobs"))
            .json(&json!({ "problem": problem }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{problem}");
        let accepted: Value = r.json().await.unwrap();
        ids.push((problem, accepted["id"].as_str().unwrap().to_owned()));
    }
    let mut workers_seen = HashSet::new();
    for (problem, id) in &ids {
        let job = support::wait_job(&http, &base, id, Duration::from_secs(300)).await;
        let reached = check_job(&job, problem, 1e-4);
        let applicable = catalogue::case(problem)
            .map(|c| {
                benchop::MethodId::ALL
                    .iter()
                    .filter(|m| m.applies_to(&c.problem))
                    .count()
            })
            .unwrap();
        assert!(
            reached.len() >= 3.min(applicable),
            "{problem}: only {reached:?} reached 1e-4 of {applicable} applicable methods: {job:#}"
        );
        for t in job["tasks"].as_array().unwrap() {
            workers_seen.insert(t["worker"].as_str().unwrap().to_owned());
        }
        eprintln!("{problem}: {} methods reached 1e-4: {reached:?}", reached.len());
    }
    eprintln!(
        "3 jobs ranked in {:.1} s by {workers_seen:?}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        workers_seen.iter().all(|w| w.starts_with("e2e-worker-")),
        "{workers_seen:?}"
    );

    // A restart of baas loses nothing: the same jobs are served from its store.
    baas.restart().await;
    for (problem, id) in &ids {
        let job: Value = http
            .get(format!("{base}/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(job["status"], "completed", "{problem} after restart: {job:#}");
        check_job(&job, problem, 1e-4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_with_stable_codes() {
    let vhost = Vhost::new("errors");
    let baas = support::Baas::start(&vhost.url()).await;
    let base = baas.base.clone();
    let http = support::client();
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"problem": "9z"}), 404, "unknown_problem"),
        (
            json!({"problem": "1aI", "methods": ["warp-drive"]}),
            422,
            "unknown_method",
        ),
        (
            json!({"problem": "6a", "methods": ["tree"]}),
            422,
            "method_not_applicable",
        ),
        (json!({"problem": "1aI", "tolerance": 0.5}), 422, "invalid_field"),
        (json!({"problem": "1aI", "repeats": 0}), 422, "invalid_field"),
        (json!({"problem": "1aI", "colour": "blue"}), 400, "invalid_body"),
        (json!({"problem": 7}), 400, "invalid_body"),
    ];
    for (body, status, code) in cases {
        let r = http
            .post(format!("{base}/v1/jobs"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{body}");
        let err: Value = r.json().await.unwrap();
        assert_eq!(err["code"], code, "{body}: {err}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{err}");
        match code {
            // An unknown id names the endpoint that lists the valid ones, and the id in `details`.
            "unknown_problem" => {
                assert_eq!(err["details"]["problem"], "9z", "{err}");
                assert!(
                    err["message"]
                        .as_str()
                        .unwrap()
                        .ends_with("GET /v1/problems lists the catalogue")
                );
            }
            "unknown_method" => assert_eq!(err["details"]["method"], "warp-drive", "{err}"),
            // The field is named once: "invalid `tolerance`: must lie in …".
            "invalid_field" if body["tolerance"].is_number() => {
                let message = err["message"].as_str().unwrap();
                assert_eq!(message.matches("tolerance").count(), 1, "{message}");
            }
            _ => {}
        }
    }
    let r = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "invalid_json");
    let big = format!("{{\"problem\": \"{}\"}}", "x".repeat(100_000));
    let r = http
        .post(format!("{base}/v1/jobs"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    for (path, status, code) in [
        ("/v1/jobs/not-a-uuid", 400, "invalid_id"),
        (
            "/v1/jobs/00000000-0000-0000-0000-000000000000",
            404,
            "job_not_found",
        ),
        ("/v1/problems/nope", 404, "unknown_problem"),
        ("/nowhere", 404, "not_found"),
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{path}");
        assert_eq!(r.json::<Value>().await.unwrap()["code"], code, "{path}");
    }
    let problems: Value = http
        .get(format!("{base}/v1/problems"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(problems.as_array().unwrap().len(), catalogue::cases().len());
    let p: Value = http
        .get(format!("{base}/v1/problems/1bI"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(p["reference"][1], 4.820608184813253);
    let methods: Value = http
        .get(format!("{base}/v1/methods"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(methods.as_array().unwrap().iter().any(|m| m["id"] == "cos"));
}

#[test]
fn the_quick_start_ranks_1ai_in_one_process_without_a_broker() {
    let out = std::process::Command::new(support::bin("benchop"))
        .args(["rank", "1aI", "--json", "--repeats", "1"])
        // An unreachable broker proves the standalone path does not need one.
        .env("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let job: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["status"], "completed");
    let reached = check_job(&job, "1aI", 1e-4);
    assert!(reached.len() >= 3, "{reached:?}");

    let bad = std::process::Command::new(support::bin("benchop"))
        .args(["rank", "9z"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("unknown problem `9z`; `benchop problems` lists the catalogue")
            && stderr.lines().count() == 1,
        "{stderr}"
    );
    // The CLI names its own flags, once each.
    let bad = std::process::Command::new(support::bin("benchop"))
        .args(["rank", "1aI", "--tolerance", "5"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.starts_with("benchop: invalid --tolerance: must lie in")
            && stderr.matches("tolerance").count() == 1
            && stderr.lines().count() == 1,
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchop_serve_runs_api_workers_and_monitor_in_one_process() {
    let serve = support::Serve::start(2).await;
    let (base, monitor) = (serve.base.clone(), serve.monitor.clone());
    let http = support::client();
    let body = json!({ "problem": "2a", "methods": ["closed-form", "cos", "tree"], "repeats": 1 });
    let r = http
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = support::wait_job(&http, &base, &id, Duration::from_secs(120)).await;
    assert_eq!(check_job(&job, "2a", 1e-4).len(), 3, "{job:#}");

    let state: Value = http
        .get(format!("{monitor}/api/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let workers = state["workers"].as_object().unwrap();
    assert_eq!(workers.len(), 2, "{state:#}");
    assert!(workers.values().all(|w| w["status"] == "online"), "{state:#}");
    for t in job["tasks"].as_array().unwrap() {
        let id = t["id"].as_str().unwrap();
        assert_eq!(
            state["tasks"][id]["state"], "succeeded",
            "task {id} in the monitor: {state:#}"
        );
    }
    let page = http
        .get(format!("{monitor}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("benchop monitor"));

    // A second job, followed by its event stream from the start and by a blocking GET.
    let body = json!({ "problem": "2a", "methods": ["fd", "cos"], "repeats": 1 });
    let r = http
        .post(format!("{base}/v1/jobs"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let id2 = r.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stream = http
        .get(format!("{base}/v1/jobs/{id2}/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let text = stream.text().await.unwrap(); // the stream ends after `completed`
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.last(), Some(&"completed"), "{text}");
    assert!(
        events[..events.len() - 1].iter().all(|e| *e == "progress"),
        "{text}"
    );
    let waited: Value = http
        .get(format!("{base}/v1/jobs/{id2}?wait=30"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(waited["status"], "completed");

    // Leaderboards aggregate both jobs' runs of 2a.
    let board: Value = http
        .get(format!("{base}/v1/rankings/2a"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let entries = board["entries"].as_array().unwrap();
    let runs = |m: &str| {
        entries
            .iter()
            .find(|e| e["method"] == m)
            .map(|e| e["runs"].as_u64().unwrap())
    };
    assert_eq!(
        (runs("cos"), runs("closed-form"), runs("fd"), runs("tree")),
        (Some(2), Some(1), Some(1), Some(1))
    );
    assert!(
        entries
            .iter()
            .all(|e| e["rank"].as_u64().is_some() && e["best_time_s"].as_f64().unwrap() > 0.0)
    );
    let matrix: Value = http
        .get(format!("{base}/v1/rankings"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let row = matrix["problems"]
        .as_array()
        .unwrap()
        .iter()
        .position(|p| p == "2a")
        .unwrap();
    let col = matrix["methods"]
        .as_array()
        .unwrap()
        .iter()
        .position(|m| m == "cos")
        .unwrap();
    assert!(
        matrix["best_time_s"][row][col].as_f64().unwrap() > 0.0,
        "{matrix}"
    );
    let r = http.get(format!("{base}/v1/rankings/9z")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    drop(serve);
}

#[test]
fn benchop_bench_prints_the_table_as_json() {
    let out = std::process::Command::new(support::bin("benchop"))
        .args([
            "bench",
            "--cases",
            "1aI,4a",
            "--methods",
            "closed-form,cos",
            "--repeats",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["reached"], true, "{r}");
        assert!(r["relerr"].as_f64().unwrap() <= 1e-4, "{r}");
        for key in ["one_thread", "all_threads"] {
            assert!(r[key]["mean_s"].as_f64().unwrap() > 0.0, "{key}: {r}");
        }
    }
    let bad = std::process::Command::new(support::bin("benchop"))
        .args(["bench", "--cases", "9z"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown problem `9z`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_at_docs_tries_out_get_problems_with_nothing_from_a_cdn() {
    let serve = support::Serve::start(1).await;
    let base = serve.base.clone();

    let browser = browser::Browser::start().await;
    browser.client.goto(&format!("{base}/docs/")).await.unwrap();
    // Operation `problems` under tag `catalogue`: expand it, "Try it out", "Execute".
    browser
        .find("#operations-catalogue-problems .opblock-summary")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("#operations-catalogue-problems .try-out__btn")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("#operations-catalogue-problems .execute")
        .await
        .click()
        .await
        .unwrap();
    let status = browser
        .find("#operations-catalogue-problems .live-responses-table tbody .response-col_status")
        .await;
    let start = Instant::now();
    loop {
        let text = status.text().await.unwrap();
        if text.trim() == "200" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "status cell says {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = browser
        .find("#operations-catalogue-problems .live-responses-table .microlight")
        .await;
    let text = body.text().await.unwrap();
    assert!(
        text.contains("\"1aI\"") && text.contains("\"6a\""),
        "response body: {text}"
    );
    let urls = browser.loaded_urls().await;
    assert!(
        urls.iter().any(|u| u.ends_with("swagger-ui-bundle.js")),
        "{urls:#?}"
    );
    for url in &urls {
        assert!(
            url.starts_with(&base),
            "{url} was loaded from outside the service"
        );
    }
    drop(browser);
    drop(serve);
}
