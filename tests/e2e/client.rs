//! The `benchop` client commands against a real standalone server (`benchop serve`): submit, wait, status,
//! watch, cancel, leaderboard and plot, their JSON output, SVG downloads and exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

use crate::support::{Serve, bin, free_port};

/// Output of one `benchop` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }

    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "benchop failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }
}

async fn benchop(server: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(bin("benchop"))
        .args(args)
        .env("BENCHOP_SERVER", server)
        .env_remove("BENCHOP_TOKEN")
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("run benchop");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn scratch_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("benchop-{}-{name}", uuid::Uuid::new_v4().simple()))
}

/// `(method → number of <circle> points)` of a work-precision SVG, or `(method → has a <rect>)` of bars.
fn svg_groups(svg: &str, class: &str, child: &str) -> BTreeMap<String, usize> {
    let doc = roxmltree::Document::parse(svg).unwrap_or_else(|e| panic!("not well-formed SVG ({e}):\n{svg}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.attribute("class") == Some(class))
        .map(|g| {
            (
                g.attribute("data-method").unwrap_or_default().to_owned(),
                g.children().filter(|c| c.has_tag_name(child)).count(),
            )
        })
        .collect()
}

#[track_caller]
fn one_line_error(run: &Run, code: i32, needle: &str) {
    assert_eq!(run.code, code, "exit code; stderr:\n{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line of error: {:?}", run.stderr);
    assert!(
        lines[0].starts_with("benchop: ") && lines[0].contains(needle),
        "{needle} in {:?}",
        lines[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_wait_status_watch_leaderboard_and_plot_through_the_cli() {
    let serve = Serve::start(1).await;
    let s = serve.base.as_str();
    let job = benchop(
        s,
        &[
            "submit",
            "1aI",
            "--methods",
            "closed-form,cos",
            "--repeats",
            "1",
            "--wait",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(job["status"], "completed", "{job:#}");
    let id = job["id"].as_str().unwrap().to_owned();
    let ranked: Vec<(&str, &str)> = job["ranking"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["method"].as_str().unwrap(), e["standing"].as_str().unwrap()))
        .collect();
    assert_eq!(ranked.len(), 2, "{job:#}");
    assert!(ranked.iter().all(|(_, st)| *st == "reached"), "{ranked:?}");

    let status = benchop(s, &["status", &id, "--json"]).await.ok().json();
    assert_eq!(
        (status["id"].as_str(), &status["status"]),
        (Some(id.as_str()), &job["status"])
    );
    assert_eq!(status["ranking"], job["ranking"]);
    let table = benchop(s, &["status", &id]).await.ok().stdout;
    assert!(
        table.contains("completed") && table.contains("closed-form") && table.contains("cos"),
        "{table}"
    );

    // Watching a finished job returns at once with the same job.
    let watched = benchop(s, &["watch", &id, "--json"]).await.ok().json();
    assert_eq!(watched["ranking"], job["ranking"]);

    let board = benchop(s, &["leaderboard", "1aI", "--json"]).await.ok().json();
    let methods: Vec<&str> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods.len(), 2, "{board:#}");
    assert!(
        methods.contains(&"cos") && methods.contains(&"closed-form"),
        "{board:#}"
    );
    let board_table = benchop(s, &["leaderboard", "1aI"]).await.ok().stdout;
    assert!(board_table.contains("best time"), "{board_table}");

    let file = scratch_file("job.svg");
    benchop(s, &["plot", &id, "-o", file.to_str().unwrap()])
        .await
        .ok();
    let svg = std::fs::read_to_string(&file).unwrap();
    let _ = std::fs::remove_file(&file);
    // One point per method for an ordinary job.
    assert_eq!(
        svg_groups(&svg, "series", "circle"),
        BTreeMap::from([("closed-form".to_owned(), 1), ("cos".to_owned(), 1)])
    );
    // The endpoint itself: SVG content type, JSON errors with stable codes.
    let http = crate::support::client();
    let response = http
        .get(format!("{s}/v1/jobs/{id}/plot.svg?kind=bars"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    let bad_kind = http
        .get(format!("{s}/v1/jobs/{id}/plot.svg?kind=pie"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_kind.status(), 400);
    assert_eq!(bad_kind.json::<Value>().await.unwrap()["code"], "invalid_query");
    let bars = benchop(s, &["plot", "--problem", "1aI", "--kind", "bars"])
        .await
        .ok()
        .stdout;
    assert_eq!(
        svg_groups(&bars, "bar", "rect"),
        BTreeMap::from([("closed-form".to_owned(), 1), ("cos".to_owned(), 1)])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_one_line_with_the_documented_exit_codes() {
    let serve = Serve::start(1).await;
    let s = serve.base.as_str();
    let unknown_job = uuid::Uuid::new_v4().to_string();
    one_line_error(&benchop(s, &["status", &unknown_job]).await, 4, "job_not_found");
    one_line_error(&benchop(s, &["plot", &unknown_job]).await, 4, "job_not_found");
    one_line_error(&benchop(s, &["status", "not-a-job-id"]).await, 5, "invalid_id");
    one_line_error(&benchop(s, &["submit", "9zZ"]).await, 4, "unknown_problem");
    // The CLI points at its own commands, not at the API's endpoints.
    one_line_error(
        &benchop(s, &["submit", "9zZ"]).await,
        4,
        "unknown problem `9zZ`; `benchop problems` lists the catalogue",
    );
    one_line_error(
        &benchop(s, &["submit", "1aI", "--methods", "nope"]).await,
        5,
        "unknown method `nope`; `benchop methods` lists them",
    );
    one_line_error(&benchop(s, &["leaderboard", "9zZ"]).await, 4, "unknown_problem");
    one_line_error(
        &benchop(s, &["submit", "1aI", "--methods", "no-such-method"]).await,
        5,
        "unknown_method",
    );
    // Nothing listens on a fresh free port.
    let nowhere = format!("http://127.0.0.1:{}", free_port());
    one_line_error(
        &benchop(&nowhere, &["status", &unknown_job]).await,
        3,
        "cannot reach the server",
    );
    // Completion scripts need no server.
    let completion = benchop(&nowhere, &["completions", "bash"]).await.ok().stdout;
    assert!(
        completion.contains("benchop") && completion.contains("leaderboard"),
        "{completion}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ladder_job_plots_every_level_and_ranks_the_cheapest_level_that_reached() {
    let serve = Serve::start(1).await;
    let s = serve.base.as_str();
    let job = benchop(
        s,
        &[
            "submit",
            "1aI",
            "--methods",
            "cos,fgl",
            "--repeats",
            "1",
            "--ladder",
            "--wait",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(job["status"], "completed", "{job:#}");
    let points = job["work_precision"].as_array().unwrap();
    let mut per_method: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for p in points {
        per_method
            .entry(p["method"].as_str().unwrap().to_owned())
            .or_default()
            .push(p);
    }
    assert_eq!(per_method.keys().collect::<Vec<_>>(), ["cos", "fgl"], "{job:#}");
    assert_eq!(
        job["progress"]["total"].as_u64().unwrap() as usize,
        points.len(),
        "one task per level, each priced: {job:#}"
    );
    let ranking = job["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 2, "one ranking entry per method: {job:#}");
    for e in ranking {
        let method = e["method"].as_str().unwrap();
        let levels = &per_method[method];
        assert!(levels.len() >= 5, "{method}: several levels: {levels:?}");
        let cheapest_reached = levels
            .iter()
            .filter(|p| p["reached"] == true)
            .map(|p| p["level"].as_u64().unwrap())
            .min();
        assert_eq!(e["level"].as_u64(), cheapest_reached, "{method}: {e}");
        assert_eq!(e["standing"], "reached", "{e}");
    }

    let id = job["id"].as_str().unwrap();
    let svg = benchop(s, &["plot", id]).await.ok().stdout;
    let expected: BTreeMap<String, usize> = per_method.iter().map(|(m, ps)| (m.clone(), ps.len())).collect();
    assert_eq!(svg_groups(&svg, "series", "circle"), expected);
    let table = benchop(s, &["status", id]).await.ok().stdout;
    assert!(table.contains("work precision (every level)"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_job_is_reported_and_watch_exits_with_the_cancelled_code() {
    let serve = Serve::start(1).await;
    let s = serve.base.as_str();
    // Long enough (Monte Carlo and a tree, 20 timed runs each) that the cancel lands first.
    let accepted = benchop(
        s,
        &[
            "submit",
            "1aI",
            "--methods",
            "mc,qmc,tree,fd",
            "--repeats",
            "20",
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    let id = accepted["id"].as_str().unwrap().to_owned();
    let cancelled = benchop(s, &["cancel", &id, "--json"]).await.ok().json();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled:#}");
    let watched = benchop(s, &["watch", &id, "--json"]).await;
    assert_eq!(watched.code, 8, "{}", watched.stderr);
    assert_eq!(watched.json()["status"], "cancelled");
    assert!(watched.stderr.contains("was cancelled"), "{}", watched.stderr);
}
