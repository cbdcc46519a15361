//! A RabbitMQ node of a test's own, so the test may stop and start the broker without disturbing the
//! other tests, which share the machine's node on 5672. It runs the same `rabbitmq-server` installation
//! with its own node name, ports, data and log directories (deleted on drop, after the node is stopped).
//! A node may also listen for TLS ([`BrokerNode::start_tls`]) or join others in a cluster
//! ([`BrokerNode::join`]); the nodes share the Erlang cookie of the `rabbitmq` user that runs them all.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::certs::ServerCert;
use crate::support::free_port;

const HOW_TO_INSTALL: &str = "the broker-restart tests start a RabbitMQ node of their own with \
    `rabbitmq-server -detached`; install the rabbitmq-server package (CI's .ci/run does)";

/// A private RabbitMQ node on a free loopback port.
pub struct BrokerNode {
    node: String,
    port: u16,
    tls_port: Option<u16>,
    dir: PathBuf,
}

impl BrokerNode {
    /// Start a node and wait until it accepts AMQP connections.
    pub async fn start(test: &str) -> Self {
        Self::start_with(test, None).await
    }

    /// Start a node with a TLS listener too, presenting `cert` (the plain listener stays, for set-up).
    pub async fn start_tls(test: &str, cert: &ServerCert) -> Self {
        Self::start_with(test, Some(cert)).await
    }

    async fn start_with(test: &str, tls: Option<&ServerCert>) -> Self {
        let (broker, dist_port, conf) = Self::prepare(test, tls);
        broker.launch(dist_port, &conf);
        broker.wait_port(true, Duration::from_secs(90)).await;
        broker
    }

    /// Start `n` nodes at once whose configuration also holds `extra(node names)` (e.g. peer discovery
    /// listing them all), and wait until each accepts AMQP connections.
    pub async fn start_many(test: &str, n: usize, extra: impl Fn(&[&str]) -> String) -> Vec<Self> {
        let prepared: Vec<(Self, u16, String)> = (0..n)
            .map(|i| Self::prepare(&format!("{test}{}", i + 1), None))
            .collect();
        let names: Vec<&str> = prepared.iter().map(|(b, _, _)| b.node.as_str()).collect();
        let extra = extra(&names);
        for (broker, dist_port, conf) in &prepared {
            broker.launch(*dist_port, &format!("{conf}{extra}"));
        }
        let nodes: Vec<Self> = prepared.into_iter().map(|(b, _, _)| b).collect();
        for broker in &nodes {
            broker.wait_port(true, Duration::from_secs(120)).await;
        }
        nodes
    }

    /// Pick the node's name and ports, make its directory; returns the node (not started), its
    /// distribution port and its base configuration.
    fn prepare(test: &str, tls: Option<&ServerCert>) -> (Self, u16, String) {
        let port = free_port();
        let dist_port = free_port();
        let node = format!("benchop-{test}-{port}@localhost");
        let dir = std::env::temp_dir().join(format!("benchop-broker-{test}-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("broker dir");
        std::fs::write(dir.join("enabled_plugins"), "[].\n").expect("enabled_plugins");
        let mut conf = format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users.guest = true\n");
        let tls_port = tls.map(|cert| {
            let tls_port = free_port();
            // The node reads its certificate as the rabbitmq user: copy it into the node's directory.
            std::fs::copy(&cert.cert, dir.join("server.pem")).expect("copy server certificate");
            std::fs::copy(&cert.key, dir.join("server-key.pem")).expect("copy server key");
            conf.push_str(&format!(
                "listeners.ssl.default = 127.0.0.1:{tls_port}\n\
                 ssl_options.certfile = {cert}\n\
                 ssl_options.keyfile = {key}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                cert = dir.join("server.pem").display(),
                key = dir.join("server-key.pem").display(),
            ));
            tls_port
        });
        let broker = Self {
            node,
            port,
            tls_port,
            dir,
        };
        (broker, dist_port, conf)
    }

    /// Write the configuration and start the node in the background.
    fn launch(&self, dist_port: u16, conf: &str) {
        let dir = &self.dir;
        std::fs::write(dir.join("rabbitmq.conf"), conf).expect("rabbitmq.conf");
        // The server drops root privileges to the rabbitmq user, which must own its directories.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(dir)
            .status();
        let status = Command::new("rabbitmq-server")
            .arg("-detached")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
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
    }

    /// AMQP URL of the node's default vhost.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// `amqps://` URL of the node's TLS listener, trusting the CA at `ca_pem`.
    pub fn tls_url(&self, ca_pem: &std::path::Path) -> String {
        let port = self.tls_port.expect("the node was started without TLS");
        format!(
            "amqps://guest:guest@127.0.0.1:{port}/%2f?cacertfile={}",
            ca_pem.display()
        )
    }

    /// The Erlang node name (`benchop-…@localhost`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Make this (fresh) node a member of `other`'s cluster.
    pub async fn join(&self, other: &BrokerNode) {
        self.ctl(&["stop_app"]);
        self.ctl(&["join_cluster", &other.node]);
        self.ctl(&["start_app"]);
        self.wait_port(true, Duration::from_secs(60)).await;
    }

    /// SIGKILL the node's Erlang VM: no goodbye to clients or peers, as when a machine dies.
    pub async fn kill(&self) {
        let pid = self.ctl(&["eval", "os:getpid()."]);
        let pid: i32 = pid
            .trim()
            .trim_matches('"')
            .parse()
            .unwrap_or_else(|e| panic!("pid of {}: {pid:?}: {e}", self.node));
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL)
            .unwrap_or_else(|e| panic!("SIGKILL {} (pid {pid}): {e}", self.node));
        self.wait_port(false, Duration::from_secs(30)).await;
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
