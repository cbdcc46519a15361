//! `benchop loadtest` as a short smoke run: it starts its own baas and worker on a fresh vhost, and the
//! report must be complete with every task back. Speed is not asserted (a benchmark, not a timed test).

use std::process::Command;

use serde_json::Value;

use crate::support::bin;

fn number(v: &Value, path: &str) -> f64 {
    let mut at = v;
    for key in path.split('.') {
        at = &at[key];
    }
    at.as_f64()
        .unwrap_or_else(|| panic!("`{path}` is not a number in the report: {v:#}"))
}

#[test]
fn loadtest_smoke_run_reports_everything_and_every_task_comes_back() {
    let out = Command::new(bin("benchop"))
        .args([
            "loadtest",
            "--tasks",
            "300",
            "--workers",
            "2",
            "--concurrency",
            "8",
            "--latency-samples",
            "5",
            "--bare-messages",
            "200",
            "--spin-micros",
            "100",
            "--http",
            "--http-secs",
            "1",
            "--connections",
            "4",
            "--json",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run benchop loadtest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "benchop loadtest failed (RabbitMQ must be running: `rabbitmq-server -detached`):\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));

    // Every task came back, none failed, and the rates are derived from real durations.
    let t = &report["throughput"];
    assert_eq!(t["tasks"], 300, "{report:#}");
    assert_eq!(t["done"], 300, "every task came back: {report:#}");
    assert_eq!(t["failed"], 0, "{report:#}");
    assert_eq!(t["probe"], "spin 100 µs");
    for key in ["throughput.submit_s", "throughput.end_to_end_s"] {
        assert!(number(&report, key) > 0.0, "{key}: {report:#}");
    }
    let rate = number(&report, "throughput.end_to_end_per_s");
    assert!(
        (rate * number(&report, "throughput.end_to_end_s") - 300.0).abs() < 1e-6,
        "{report:#}"
    );
    assert!(
        number(&report, "throughput.worker_drain_per_s") > 0.0,
        "{report:#}"
    );
    // CPU and peak memory of baas, both workers and the harness itself.
    let processes = t["processes"].as_array().expect("processes");
    for name in ["baas", "worker-1", "worker-2", "harness (HTTP client)"] {
        let p = processes
            .iter()
            .find(|p| p["process"] == name)
            .unwrap_or_else(|| panic!("no `{name}` in {processes:#?}"));
        assert!(p["cpu_s"].as_f64().is_some_and(|c| c >= 0.0), "{p}");
        assert!(p["peak_rss_mib"].as_f64().is_some_and(|m| m > 0.0), "{p}");
    }
    // The low-load round trip has every sample, ordered percentiles.
    let rt = &report["round_trip"];
    assert_eq!(rt["n"], 5, "{report:#}");
    let p50 = number(&report, "round_trip.p50_ms");
    assert!(p50 > 0.0 && p50 <= number(&report, "round_trip.p99_ms"));
    assert!(number(&report, "round_trip.p99_ms") <= number(&report, "round_trip.max_ms"));
    // The bare broker ceiling ran in the same run, with its own latencies.
    assert_eq!(report["bare"]["messages"], 200);
    assert_eq!(report["bare"]["latency_loaded"]["n"], 200);
    assert_eq!(report["bare"]["latency_idle"]["n"], 5);
    assert!(number(&report, "bare.end_to_end_per_s") > 0.0);
    assert!(number(&report, "ratio_to_broker") > 0.0);
    // And the bare two-hop run: every task came back through the echoes, one echo per worker.
    assert_eq!(report["bare"]["round_trip"]["messages"], 200);
    assert_eq!(report["bare"]["round_trip"]["echoes"], report["workers"]);
    assert_eq!(report["bare"]["round_trip"]["latency_idle"]["n"], 5);
    assert!(number(&report, "bare.round_trip.end_to_end_per_s") > 0.0);
    assert!(number(&report, "ratio_to_round_trip") > 0.0);
    // The HTTP front: three endpoints, each answered.
    let http = report["http"].as_array().expect("http");
    let endpoints: Vec<&str> = http.iter().filter_map(|h| h["endpoint"].as_str()).collect();
    assert_eq!(
        endpoints,
        ["GET /v1/problems", "GET /v1/jobs/{id}", "POST /v1/jobs"]
    );
    for h in http {
        assert!(h["ok"].as_u64().is_some_and(|n| n > 0), "{h}");
    }
}
