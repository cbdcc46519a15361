//! AMQP over TLS: a RabbitMQ node of the test's own with a TLS listener whose certificate is signed by a
//! CA the test makes (rcgen). baas, a worker and the monitor connect with `amqps://…?cacertfile=` and a
//! job runs over it, every connection encrypted; a client that trusts another CA is refused at once
//! with an error that says what to do.

use std::time::Duration;

use serde_json::json;

use crate::broker_node::BrokerNode;
use crate::certs::TestCa;
use crate::resilience::{monitor, worker};
use crate::support::{self, Baas};

fn pki_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("benchop-pki-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `(name, ssl)` of every client connection of the node.
fn connections(broker: &BrokerNode) -> Vec<(String, bool)> {
    broker
        .ctl(&[
            "list_connections",
            "-q",
            "--no-table-headers",
            "client_properties",
            "ssl",
        ])
        .lines()
        .filter_map(|line| {
            let (props, ssl) = line.trim_end().rsplit_once('\t')?;
            let name = props
                .split("{\"connection_name\",\"")
                .nth(1)
                .and_then(|rest| rest.split('"').next())
                .unwrap_or("?")
                .to_owned();
            Some((name, ssl.trim() == "true"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_runs_over_amqps_with_the_brokers_certificate_verified() {
    let dir = pki_dir("amqps");
    let ca = TestCa::new(&dir, "benchop");
    let cert = ca.server("broker", &["localhost", "127.0.0.1"]);
    let broker = BrokerNode::start_tls("tls", &cert).await;
    let url = broker.tls_url(&ca.ca_pem());

    let http = support::client();
    let baas = Baas::start(&url).await;
    let _worker = worker("tls-worker", &url, &[]);
    let (_monitor, monitor_addr) = monitor(&url, &baas);
    // The monitor hears only what is published after it has bound its queue: wait for its consumer,
    // or a fast job can finish before the monitor has connected.
    let queue = protocol::topology::monitor_queue("default");
    let started = std::time::Instant::now();
    while !broker
        .ctl(&["list_consumers", "-q", "--no-table-headers", "queue_name"])
        .lines()
        .any(|line| line.trim() == queue)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the monitor never consumed {queue} over amqps: {:?}",
            connections(&broker)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let id = baas
        .submit(
            &http,
            &json!({ "problem": "1aI", "methods": ["closed-form", "cos"] }),
        )
        .await;
    let job = support::wait_job(&http, &baas.base, &id, Duration::from_secs(120)).await;
    assert_eq!(job["status"], "completed", "{job}");
    let tasks = job["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 2, "{job}");
    for task in tasks {
        assert_eq!(task["state"], "succeeded", "{task}");
    }

    // The monitor heard the job's events over its own amqps connection.
    let mut monitored = false;
    for _ in 0..50 {
        let status = http
            .get(format!("http://{monitor_addr}/api/jobs/{id}"))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if status.is_ok_and(|s| s == 200) {
            monitored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(monitored, "the monitor never saw job {id} over amqps");

    // Every client of the node — baas's publisher, consumers and events, the worker, the monitor — came
    // in over TLS, and all three services are among them.
    let conns = connections(&broker);
    assert!(
        conns.iter().all(|(_, ssl)| *ssl),
        "a connection without TLS: {conns:?}"
    );
    for expected in ["baas-publisher", "tls-worker", "monitor"] {
        assert!(
            conns.iter().any(|(name, _)| name.starts_with(expected)),
            "no {expected} connection over TLS: {conns:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_another_ca_is_refused_with_a_clear_error() {
    let dir = pki_dir("wrong-ca");
    let ca = TestCa::new(&dir, "broker");
    let other = TestCa::new(&dir, "other");
    // Named `localhost` only: connecting to 127.0.0.1 with the right CA is a host-name mismatch.
    let cert = ca.server("broker", &["localhost"]);
    let broker = BrokerNode::start_tls("tlswrong", &cert).await;

    // In process: refused at once, not retried until the wait runs out.
    let started = std::time::Instant::now();
    let err = protocol::amqp::connect(
        &broker.tls_url(&other.ca_pem()),
        "wrong-ca",
        Duration::from_secs(60),
    )
    .await
    .expect_err("a broker signed by an untrusted CA was accepted");
    assert!(
        matches!(err, protocol::amqp::AmqpError::Untrusted { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    let message = err.to_string();
    assert!(
        message.contains("not trusted") && message.contains("cacertfile"),
        "{message}"
    );
    assert!(!message.contains("guest:guest"), "the password leaked: {message}");

    // Without a cacertfile only the built-in roots are trusted: a private CA's broker is refused too.
    let no_ca = broker.tls_url(&ca.ca_pem());
    let no_ca = no_ca.split('?').next().unwrap();
    let err = protocol::amqp::connect(no_ca, "no-ca", Duration::from_secs(60))
        .await
        .expect_err("a private CA was trusted without being configured");
    assert!(
        matches!(err, protocol::amqp::AmqpError::Untrusted { .. }),
        "{err:?}"
    );

    // The right CA but an address the certificate does not name.
    let err = protocol::amqp::connect(
        &broker.tls_url(&ca.ca_pem()),
        "wrong-host",
        Duration::from_secs(60),
    )
    .await;
    assert!(
        matches!(err, Err(protocol::amqp::AmqpError::Untrusted { .. })),
        "{err:?}"
    );

    // A service started with the wrong CA stops with the reason, exit code non-zero.
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(support::bin("worker"))
            .env("AMQP_URL", broker.tls_url(&other.ca_pem()))
            .env("RUST_LOG", "warn")
            .output(),
    )
    .await
    .expect("the worker kept retrying a broker it cannot trust")
    .expect("run worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "worker exited 0: {stderr}");
    assert!(stderr.contains("not trusted"), "{stderr}");

    // The right CA and the certificate's name connect (the refusals were about trust, not the broker).
    let right = broker.tls_url(&ca.ca_pem()).replace("127.0.0.1", "localhost");
    let conn = protocol::amqp::connect(&right, "right-ca", Duration::from_secs(30))
        .await
        .expect("the right CA is trusted");
    assert!(conn.status().connected());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unusable_amqp_url_is_refused_before_connecting() {
    let cases = [
        ("", "no broker URL"),
        ("http://broker/", "not an amqp:// or amqps:// URL"),
        ("amqp://u:p@broker/%2f?cacertfile=/etc/ca.pem", "not amqps://"),
        (
            "amqps://u:p@broker/%2f?cacertfile=/nonexistent/ca.pem",
            "cannot read cacertfile /nonexistent/ca.pem",
        ),
    ];
    for (url, expected) in cases {
        let err = protocol::amqp::endpoints(url).expect_err(url);
        assert!(err.to_string().contains(expected), "{url}: {err}");
    }
}
