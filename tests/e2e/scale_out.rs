//! Scale-out: workers on other hosts consume from one broker. Each "host" is a network namespace with
//! its own veth link to this machine; the broker is reached over that link, never over the host's
//! loopback (which a namespace cannot see).

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{self, Proc, Vhost};

const NEEDS: &str = "the scale-out test creates network namespaces: it needs root and `ip` (iproute2)";

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip ({e}); {NEEDS}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}; {NEEDS}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace linked to this machine by a veth pair on its own /30.
struct Host {
    ns: String,
    /// This machine's address on the link (where the namespace reaches the broker).
    gateway: String,
}

impl Host {
    /// Host `index` of a run whose links share the /24 `10.213.<net>.0`, one /30 each.
    fn new(net: u8, index: u8) -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
        let ns = format!("bo-{tag}");
        let (outer, inner) = (format!("bo{tag}h"), format!("bo{tag}n"));
        let (gateway, addr) = (
            format!("10.213.{net}.{}", 4 * index + 1),
            format!("10.213.{net}.{}", 4 * index + 2),
        );
        ip(&["netns", "add", &ns]);
        let host = Self { ns, gateway };
        ip(&["link", "add", &outer, "type", "veth", "peer", "name", &inner]);
        ip(&["link", "set", &inner, "netns", &host.ns]);
        ip(&["addr", "add", &format!("{}/30", host.gateway), "dev", &outer]);
        ip(&["link", "set", &outer, "up"]);
        ip(&[
            "-n",
            &host.ns,
            "addr",
            "add",
            &format!("{addr}/30"),
            "dev",
            &inner,
        ]);
        ip(&["-n", &host.ns, "link", "set", &inner, "up"]);
        ip(&["-n", &host.ns, "link", "set", "lo", "up"]);
        host
    }

    /// Can a TCP connection from inside the namespace reach `addr:port`?
    fn reaches(&self, addr: &str, port: u16) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "timeout",
                "3",
                "bash",
                "-c",
                &format!("exec 3<>/dev/tcp/{addr}/{port}"),
            ])
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair with it.
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// The broker's address on a link: forwards to the broker on this machine's loopback, where the local
/// RabbitMQ listens (a broker host's real listener in production).
async fn broker_endpoint(bind: &str) -> u16 {
    let listener = TcpListener::bind((bind, 0)).await.expect("bind on the link");
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5672").await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_two_other_hosts_share_one_broker() {
    let vhost = Vhost::new("scaleout");
    // A /24 per test run, so concurrent runs on one machine do not collide.
    let net = 100 + uuid::Uuid::new_v4().as_bytes()[0] % 100;
    let hosts = [Host::new(net, 0), Host::new(net, 1)];
    let baas = support::Baas::start(&vhost.url()).await;
    let base = baas.base.clone();
    let http = support::client();

    let vhost_name = vhost.url().rsplit('/').next().unwrap().to_owned();
    let worker_bin = support::bin("worker").display().to_string();
    let mut workers = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        assert!(
            !host.reaches("127.0.0.1", 5672),
            "host {i} must not see this machine's loopback broker"
        );
        let broker_port = broker_endpoint(&host.gateway).await;
        assert!(
            host.reaches(&host.gateway, broker_port),
            "host {i} cannot reach the broker over its link"
        );
        let url = format!("amqp://guest:guest@{}:{broker_port}/{vhost_name}", host.gateway);
        let name = format!("remote-{i}");
        workers.push(Proc::spawn_program(
            &name,
            std::path::Path::new("ip"),
            &["netns", "exec", &host.ns, &worker_bin, "--name", &name],
            &[("AMQP_URL", url)],
        ));
    }

    let mut ids = Vec::new();
    for problem in ["1aI", "4a", "2a"] {
        let r = http
            .post(format!("{base}/v1/jobs"))
            .json(&json!({"problem": problem, "repeats": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        ids.push(
            r.json::<Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = HashSet::new();
    for id in &ids {
        let job = support::wait_job(&http, &base, id, Duration::from_secs(240)).await;
        for t in job["tasks"].as_array().unwrap() {
            assert_eq!(t["result_deliveries"], 1, "{t}");
            seen.insert(t["worker"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        seen,
        HashSet::from(["remote-0".to_owned(), "remote-1".to_owned()]),
        "both hosts took tasks"
    );
    drop(workers);
    drop(baas);
}
