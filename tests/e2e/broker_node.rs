//! A RabbitMQ node of a test's own, so the test may stop and start the broker without disturbing the
//! other tests, which share the machine's node on 5672. It runs the same `rabbitmq-server` installation
//! with its own node name, ports, data and log directories (deleted on drop, after the node is stopped).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::free_port;

const HOW_TO_INSTALL: &str = "the broker-restart tests start a RabbitMQ node of their own with \
    `rabbitmq-server -detached`; install the rabbitmq-server package (CI's .ci/run does)";

/// A private RabbitMQ node on a free loopback port.
pub struct BrokerNode {
    node: String,
    port: u16,
    dir: PathBuf,
}

impl BrokerNode {
    /// Start a node and wait until it accepts AMQP connections.
    pub async fn start(test: &str) -> Self {
        let port = free_port();
        let dist_port = free_port();
        let node = format!("benchop-{test}-{port}@localhost");
        let dir = std::env::temp_dir().join(format!("benchop-broker-{test}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("broker dir");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n"),
        )
        .expect("rabbitmq.conf");
        // The server drops root privileges to the rabbitmq user, which must own its directories.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", port.to_string())
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run rabbitmq-server ({e}); {HOW_TO_INSTALL}"));
        assert!(
            status.success(),
            "rabbitmq-server -detached: {status}; {HOW_TO_INSTALL}"
        );
        let broker = Self { node, port, dir };
        broker.wait_port(true, Duration::from_secs(90)).await;
        broker
    }

    /// AMQP URL of the node's default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stop the broker application (connections drop, the port closes; durable queues persist).
    pub async fn stop_app(&self) {
        self.ctl(&["stop_app"]);
        self.wait_port(false, Duration::from_secs(60)).await;
    }

    /// Start the broker application again.
    pub async fn start_app(&self) {
        self.ctl(&["start_app"]);
        self.wait_port(true, Duration::from_secs(60)).await;
    }

    /// `rabbitmqctl -n <node> …`, which must succeed.
    pub fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("rabbitmqctl")
            .arg("-n")
            .arg(&self.node)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run rabbitmqctl ({e}); {HOW_TO_INSTALL}"));
        assert!(
            out.status.success(),
            "rabbitmqctl -n {} {args:?}: {}{}",
            self.node,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Messages ready and unacknowledged on `queue`.
    pub fn queue_depth(&self, queue: &str) -> (u64, u64) {
        let out = self.ctl(&[
            "list_queues",
            "-q",
            "name",
            "messages_ready",
            "messages_unacknowledged",
        ]);
        out.lines()
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                (cols.first() == Some(&queue) && cols.len() == 3)
                    .then(|| (cols[1].parse().unwrap_or(0), cols[2].parse().unwrap_or(0)))
            })
            .next()
            .unwrap_or((0, 0))
    }

    async fn wait_port(&self, open: bool, limit: Duration) {
        let start = Instant::now();
        loop {
            let is_open = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if is_open == open {
                if open {
                    // The port opens a moment before the node serves: let it finish booting.
                    let _ = Command::new("rabbitmqctl")
                        .args(["-n", &self.node, "await_startup", "--timeout", "60"])
                        .output();
                }
                return;
            }
            assert!(
                start.elapsed() < limit,
                "broker node {} port {} still {} after {limit:?}; log: {}",
                self.node,
                self.port,
                if open { "closed" } else { "open" },
                self.dir.join("log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for BrokerNode {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
