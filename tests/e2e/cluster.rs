//! A 3-node RabbitMQ cluster on this machine (nodes of the test's own, joined with `join_cluster`):
//! the quorum queues are replicated on all three, and when the node every client is connected to is
//! SIGKILLed during a 5,000-task soak, baas and the workers reconnect to a surviving node from their
//! comma-separated `AMQP_URL` and the job completes with nothing lost and nothing counted twice.

use std::time::{Duration, Instant};

use serde_json::Value;

use protocol::topology::{self, TASKS_QUEUE};

use crate::broker_node::BrokerNode;
use crate::resilience::{check_every_task_once, soak_job, worker};
use crate::support::{self, Baas, Proc};

/// Start three nodes and cluster them; the first is the one clients reach first.
async fn cluster(test: &str) -> [BrokerNode; 3] {
    let a = BrokerNode::start(&format!("{test}1")).await;
    let b = BrokerNode::start(&format!("{test}2")).await;
    let c = BrokerNode::start(&format!("{test}3")).await;
    b.join(&a).await;
    c.join(&a).await;
    let status = a.ctl(&["cluster_status", "--formatter", "json"]);
    let status: Value = serde_json::from_str(&status).expect("cluster_status JSON");
    let running = status["running_nodes"].as_array().expect("running_nodes");
    for node in [&a, &b, &c] {
        assert!(
            running.iter().any(|n| n == node.node()),
            "{} is not running in the cluster: {status}",
            node.node()
        );
    }
    [a, b, c]
}

/// The members of every quorum queue of the default vhost, by queue.
fn quorum_members(node: &BrokerNode) -> Vec<(String, Vec<String>)> {
    let out = node.ctl(&[
        "list_queues",
        "-q",
        "--formatter",
        "json",
        "name",
        "type",
        "members",
    ]);
    let queues: Vec<Value> = serde_json::from_str(&out).expect("list_queues JSON");
    queues
        .into_iter()
        .filter(|q| q["type"] == "quorum")
        .map(|q| {
            let members = q["members"]
                .as_array()
                .map(|m| m.iter().filter_map(|n| n.as_str().map(str::to_owned)).collect())
                .unwrap_or_default();
            (q["name"].as_str().unwrap_or("?").to_owned(), members)
        })
        .collect()
}

/// Names of the client connections a node holds.
fn connection_names(node: &BrokerNode) -> Vec<String> {
    node.ctl(&[
        "list_connections",
        "-q",
        "--no-table-headers",
        "client_properties",
    ])
    .lines()
    .filter_map(|l| {
        l.split("{\"connection_name\",\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
    })
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_node_killed_mid_soak_loses_and_duplicates_nothing() {
    const TASKS: u64 = 5_000;
    let started = Instant::now();
    let [first, second, third] = cluster("cluster").await;
    // Every client tries the first node first, so all of them are on the node that dies.
    let url = [&first, &second, &third]
        .iter()
        .map(|n| n.url())
        .collect::<Vec<_>>()
        .join(",");
    let http = support::client();
    let baas = Baas::start(&url).await;

    // baas declared the topology: every quorum queue has a replica on each of the three nodes.
    let members = quorum_members(&second);
    let expected: Vec<&str> = topology::queues()
        .iter()
        .filter(|q| q.arguments.iter().any(|(k, _)| *k == "x-queue-type"))
        .map(|q| q.name)
        .collect();
    assert!(!expected.is_empty());
    for name in &expected {
        let (_, nodes) = members
            .iter()
            .find(|(q, _)| q == name)
            .unwrap_or_else(|| panic!("quorum queue {name} missing: {members:?}"));
        for node in [&first, &second, &third] {
            assert!(
                nodes.iter().any(|n| n == node.node()),
                "{name} has no replica on {}: {nodes:?}",
                node.node()
            );
        }
    }

    let _workers: Vec<Proc> = (0..3)
        .map(|i| worker(&format!("cluster-w{i}"), &url, &["--concurrency", "4"]))
        .collect();
    let id = baas.submit(&http, &soak_job(TASKS)).await;

    let mut killed = false;
    let limit = Duration::from_secs(600);
    let job = loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let job = baas.job(&http, &id).await;
        let done = job["progress"]["done"].as_u64().unwrap_or(0);
        if job["status"] == "completed" {
            break job;
        }
        assert!(
            started.elapsed() < limit,
            "cluster soak: {done}/{TASKS} after {limit:?}"
        );
        if !killed && done >= TASKS / 4 {
            let before = connection_names(&first);
            assert!(
                before.iter().any(|n| n == "baas-results")
                    && before.iter().any(|n| n.starts_with("cluster-w")),
                "the clients were not on the first node: {before:?}"
            );
            first.kill().await;
            killed = true;
            eprintln!("cluster soak: node {} SIGKILLed at {done}/{TASKS}", first.node());
        }
    };
    assert!(killed, "the job finished before the node was killed");
    let redelivered = check_every_task_once(&job);
    assert_eq!(job["progress"]["total"], TASKS);
    let succeeded = job["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["state"] == "succeeded")
        .count() as u64;
    assert_eq!(succeeded, TASKS, "not every task succeeded");
    assert_eq!(second.queue_depth(TASKS_QUEUE), (0, 0), "tasks left in the queue");

    // The clients reconnected to the surviving nodes (connections are listed cluster-wide; ask a
    // survivor). Event publishers notice an idle dead channel within seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let survivors = connection_names(&second);
        let missing: Vec<&str> = [
            "baas-results",
            "baas-events",
            "cluster-w0",
            "cluster-w1",
            "cluster-w2",
        ]
        .into_iter()
        .filter(|expected| !survivors.iter().any(|n| n == expected))
        .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not reconnected to a surviving node: {missing:?}; connected: {survivors:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "cluster soak: {TASKS} tasks in {:.1} s on 3 nodes, 1 node SIGKILLed: 0 lost, 0 counted twice, \
         {redelivered} tasks whose result arrived twice (deduplicated)",
        started.elapsed().as_secs_f64()
    );
}
