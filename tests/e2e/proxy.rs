//! HTTPS in front of baas and the monitor: a real nginx runs the shipped `deploy/nginx/benchop.conf`
//! (ports and certificate paths substituted) with a certificate from a test CA. Clients that trust the CA
//! reach the API and the monitor over HTTPS; a client that trusts another CA is refused; a job's event
//! stream arrives through the proxy as the events happen, not when the job ends.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::certs::TestCa;
use crate::resilience::worker;
use crate::support::{self, Baas, Proc, Vhost};

const HOW_TO_INSTALL: &str = "the proxy test runs nginx: `apt-get install -y nginx curl` (scripts/test does)";

/// nginx in the foreground with a private prefix, pid and logs; killed on drop.
struct Nginx {
    _proc: Proc,
    dir: PathBuf,
    port: u16,
}

impl Nginx {
    fn start(dir: &Path, server_conf: &str) -> Self {
        std::fs::create_dir_all(dir).expect("nginx dir");
        let port = support::free_port();
        let conf = server_conf
            .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{port} ssl;"))
            .replace("listen [::]:443 ssl;", "");
        std::fs::write(dir.join("benchop.conf"), conf).expect("benchop.conf");
        for sub in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.join("tmp").join(sub)).expect("temp dir");
        }
        let d = dir.display();
        std::fs::write(
            dir.join("nginx.conf"),
            format!(
                "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
                 events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/tmp/client_body;\n  \
                 proxy_temp_path {d}/tmp/proxy;\n  fastcgi_temp_path {d}/tmp/fastcgi;\n  uwsgi_temp_path {d}/tmp/uwsgi;\n  \
                 scgi_temp_path {d}/tmp/scgi;\n  include {d}/benchop.conf;\n}}\n"
            ),
        )
        .expect("nginx.conf");
        let nginx = which("nginx");
        let test = Command::new(&nginx)
            .args(["-t", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("error.log"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run nginx ({e}); {HOW_TO_INSTALL}"));
        assert!(
            test.status.success(),
            "nginx -t rejects the shipped configuration: {}",
            String::from_utf8_lossy(&test.stderr)
        );
        let prefix = format!("{}/", dir.display());
        let conf_path = dir.join("nginx.conf").display().to_string();
        let err_path = dir.join("error.log").display().to_string();
        let proc_ = Proc::spawn_program(
            "nginx",
            &nginx,
            &["-p", &prefix, "-c", &conf_path, "-e", &err_path],
            &[],
        );
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "nginx did not listen on {port}: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Self {
            _proc: proc_,
            dir: dir.to_owned(),
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn which(program: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(program);
        if p.exists() {
            return p;
        }
    }
    panic!("{program} not found; {HOW_TO_INSTALL}");
}

/// `curl` over HTTPS trusting `ca`: (exit code, status line + body).
fn curl(ca: &Path, url: &str) -> (i32, String) {
    let out = Command::new(which("curl"))
        .args(["-sS", "--max-time", "20", "--cacert"])
        .arg(ca)
        .args(["-w", "\n%{http_code}", url])
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl ({e}); {HOW_TO_INSTALL}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_serves_the_api_and_the_monitor_over_https_and_streams_events_unbuffered() {
    let dir = std::env::temp_dir().join(format!("benchop-proxy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let ca = TestCa::new(&dir, "https");
    let other = TestCa::new(&dir, "other");
    let cert = ca.server("https", &["localhost", "127.0.0.1"]);

    let vhost = Vhost::new("proxy");
    let baas = Baas::start(&vhost.url()).await;
    let _worker = worker("proxy-w", &vhost.url(), &["--concurrency", "1"]);
    let monitor_port = support::free_port();
    let _monitor = Proc::spawn(
        "proxy-monitor",
        "monitor",
        &[],
        &[
            ("AMQP_URL", vhost.url()),
            ("MONITOR_ADDR", format!("127.0.0.1:{monitor_port}")),
            ("MONITOR_URL_PREFIX", "/monitor".to_owned()),
            ("RABBITMQ_MANAGEMENT_URL", "off".to_owned()),
            ("BAAS_URL", baas.base.clone()),
        ],
    );

    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nginx/benchop.conf"))
            .expect("deploy/nginx/benchop.conf");
    let baas_port = baas.base.rsplit(':').next().expect("baas port");
    let conf = shipped
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{baas_port}"))
        .replace("127.0.0.1:5555", &format!("127.0.0.1:{monitor_port}"))
        .replace("/etc/benchop/tls/https.pem", &cert.cert.display().to_string())
        .replace("/etc/benchop/tls/https-key.pem", &cert.key.display().to_string());
    assert_ne!(
        conf, shipped,
        "the shipped configuration changed shape: update this test"
    );
    let nginx = Nginx::start(&dir.join("nginx"), &conf);

    // The API and the monitor answer over verified HTTPS.
    let (code, body) = curl(&ca.ca_pem(), &nginx.url("/v1/problems"));
    assert_eq!(code, 0, "{body}");
    assert!(body.ends_with("\n200") && body.contains("\"1aI\""), "{body}");
    let started = Instant::now();
    loop {
        let (code, body) = curl(&ca.ca_pem(), &nginx.url("/monitor/healthz"));
        if code == 0 && body.ends_with("\n200") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "monitor via proxy: {body}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A client that trusts another CA is refused (curl: 60, peer certificate cannot be authenticated).
    let (code, body) = curl(&other.ca_pem(), &nginx.url("/v1/problems"));
    assert_eq!(code, 60, "{body}");

    // A job of 8 tasks of 400 ms on one worker slot takes about 3 s; its events must arrive while it runs.
    let id = baas
        .submit(
            &support::client(),
            &json!({ "problem": "1aI", "methods": ["cos"], "replicas": 8,
                     "probe": { "kind": "spin", "micros": 400_000 } }),
        )
        .await;
    let mut stream = tokio::process::Command::new(which("curl"))
        .args(["-sS", "-N", "--max-time", "60", "--cacert"])
        .arg(ca.ca_pem())
        .arg(nginx.url(&format!("/v1/jobs/{id}/events")))
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("curl");
    let mut lines = BufReader::new(stream.stdout.take().expect("stdout")).lines();
    let opened = Instant::now();
    let mut arrivals: Vec<(String, Duration)> = Vec::new();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(60), lines.next_line()).await {
        if let Some(name) = line.strip_prefix("event: ") {
            arrivals.push((name.to_owned(), opened.elapsed()));
            if name == "completed" {
                break;
            }
        }
    }
    let completed = arrivals
        .iter()
        .find(|(n, _)| n == "completed")
        .unwrap_or_else(|| panic!("no completed event through the proxy: {arrivals:?}"))
        .1;
    let progress: Vec<Duration> = arrivals
        .iter()
        .filter(|(n, _)| n != "completed")
        .map(|(_, t)| *t)
        .collect();
    assert!(progress.len() >= 3, "too few events: {arrivals:?}");
    // Unbuffered: the earliest events came a good while before the end (buffered, all arrive at once).
    assert!(
        completed - progress[0] >= Duration::from_secs(1),
        "events arrived in one burst at the end (proxy buffering?): {arrivals:?}"
    );
}
