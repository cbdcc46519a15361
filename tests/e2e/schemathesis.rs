//! Schemathesis (property-based API testing from the OpenAPI description) against a live baas with a
//! worker over RabbitMQ: no response may be a 5xx, have an undocumented status, content type or
//! header, or violate its schema. It runs with authentication on, as an admin with every scope.
//! `scripts/test` installs schemathesis into a virtualenv.
//!
//! Checks left out, on purpose: `positive_data_acceptance` (a schema-valid job may still be refused,
//! e.g. a method that does not apply to the problem — the schema cannot say which pairs apply),
//! `negative_data_rejection` (we accept some values the schema does not promise, e.g. clamping), and
//! `use_after_free` (`DELETE /v1/jobs/{id}` cancels a job; the cancelled job stays readable).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::accounts::admin;
use crate::support::{Baas, Proc, Vhost};

const HOW_TO_INSTALL: &str = "schemathesis is needed: scripts/test installs it with \
    `python3 -m venv /var/tmp/benchop-venv && /var/tmp/benchop-venv/bin/pip install schemathesis` \
    (or set BENCHOP_SCHEMATHESIS to its path)";

fn schemathesis() -> PathBuf {
    if let Some(p) = std::env::var_os("BENCHOP_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from("/var/tmp/benchop-venv/bin/schemathesis");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_schema_violation() {
    let vhost = Vhost::new("schemathesis");
    // Small, quick jobs: generated requests must not queue minutes of work.
    let baas = Baas::start_with(
        &vhost.url(),
        &[
            ("BAAS_MAX_TASKS_PER_JOB", "12".to_owned()),
            ("BAAS_TASK_TIME_LIMIT_SECS", "3".to_owned()),
        ],
    )
    .await;
    let _w = Proc::spawn(
        "schemathesis-worker",
        "worker",
        &["--name", "schemathesis-w", "--concurrency", "2"],
        &[("AMQP_URL", vhost.url())],
    );
    // With authentication on: an admin's token with every scope, so every endpoint is reachable.
    admin(&baas, &["user", "add", "fuzzer", "--role", "admin"]);
    let token = admin(
        &baas,
        &[
            "token",
            "create",
            "fuzzer",
            "--scope",
            "read,submit,manage,admin",
            "--expires",
            "1h",
        ],
    );
    let auth_header = format!("Authorization: Bearer {}", token.trim());
    let report = std::env::temp_dir().join(format!(
        "benchop-schemathesis-{}.txt",
        uuid::Uuid::new_v4().simple()
    ));
    let out = std::fs::File::create(&report).expect("report file");
    let program = schemathesis();
    let mut child = Command::new(&program)
        .args([
            "run",
            &format!("{}/openapi.json", baas.base),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "15",
            "--seed",
            "2015",
            "--request-timeout",
            "70",
            "--max-failures",
            "10",
            "--header",
            &auth_header,
        ])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("report file"))
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {HOW_TO_INSTALL}", program.display()));
    let start = Instant::now();
    let limit = Duration::from_secs(900);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "schemathesis still running after {limit:?}:\n{}",
                std::fs::read_to_string(&report).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    assert!(
        status.success(),
        "schemathesis found problems ({status}):\n{text}"
    );
    let summary: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("generated") || l.contains("passed"))
        .collect();
    eprintln!(
        "schemathesis: {:.0} s; {}",
        start.elapsed().as_secs_f64(),
        summary.join(" | ")
    );
}
