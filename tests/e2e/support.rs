//! Helpers: a fresh RabbitMQ vhost per test, the service binaries as child processes, HTTP polling.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The broker the tests use (override with `AMQP_BASE_URL`, without a vhost).
fn base_url() -> String {
    std::env::var("AMQP_BASE_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672".to_owned())
}

const HOW_TO_START: &str = "RabbitMQ must be running for the end-to-end tests: start it with \
    `rabbitmq-server -detached` (or `systemctl start rabbitmq-server`), then run the tests again";

fn rabbitmqctl(args: &[&str]) {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run rabbitmqctl ({e}); it comes with the rabbitmq-server package. {HOW_TO_START}")
        });
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?} failed: {}{}\n{HOW_TO_START}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A vhost of its own for one test, deleted on drop.
pub struct Vhost {
    name: String,
}

impl Vhost {
    pub fn new(test: &str) -> Self {
        let name = format!("benchop-test-{test}-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &name]);
        rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"]);
        Self { name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", base_url(), self.name)
    }

    /// The vhost's name (for `rabbitmqctl -p`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Vhost {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["delete_vhost", &self.name])
            .output();
    }
}

/// The directory holding the workspace's binaries (built by the test command before `cargo test`).
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/e2e-<hash> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target profile directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins` with the same profile), \
         as scripts/test does",
        path.display()
    );
    path
}

/// A child process killed (with its output shown on failure) when dropped.
pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    /// Run one of the workspace's binaries.
    pub fn spawn(name: &str, binary: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        Self::spawn_program(name, &bin(binary), args, env)
    }

    /// Run any program.
    pub fn spawn_program(
        name: &str,
        program: &std::path::Path,
        args: &[&str],
        env: &[(&str, String)],
    ) -> Self {
        Self::spawn_logged(name, program, args, env, None)
    }

    /// Run any program, its output (logs go to standard output) appended to `log`; without one, its
    /// standard error is shown with the test's output.
    pub fn spawn_logged(
        name: &str,
        program: &std::path::Path,
        args: &[&str],
        env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let binary = program.display();
        let mut cmd = Command::new(program);
        let (stdout, stderr) = match log {
            Some(path) => {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
                let copy = file.try_clone().expect("log file handle");
                (Stdio::from(file), Stdio::from(copy))
            }
            None => (Stdio::null(), Stdio::inherit()),
        };
        cmd.args(args).stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        cmd.env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {binary}: {e}"));
        Self {
            name: name.to_owned(),
            child,
        }
    }

    /// Send `signal` to this one process (never to a group: the pid is checked to be positive).
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        assert!(pid > 0, "refusing to signal pid {pid}");
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("cannot send {signal} to {} ({pid}): {e}", self.name));
    }

    /// Its exit status if it has exited, without blocking.
    pub fn try_exit(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early with {status}", self.name);
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

/// Poll `url` until it answers 200, or panic after `limit`.
pub async fn wait_healthy(http: &reqwest::Client, url: &str, limit: Duration, proc_: &mut Proc) {
    let start = Instant::now();
    loop {
        proc_.assert_running();
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(start.elapsed() < limit, "{url} not healthy after {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Poll a job until it is completed, or panic after `limit`.
pub async fn wait_job(http: &reqwest::Client, base: &str, id: &str, limit: Duration) -> Value {
    let start = Instant::now();
    loop {
        let job: Value = http
            .get(format!("{base}/v1/jobs/{id}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if job["status"] == "completed" {
            return job;
        }
        assert!(
            start.elapsed() < limit,
            "job {id} not completed after {limit:?}: {job:#}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Send `request`, check the status, return the JSON body (`Null` when the body is not JSON).
pub async fn expect(request: reqwest::RequestBuilder, status: u16) -> Value {
    let r = request.send().await.expect("request");
    let got = r.status().as_u16();
    let text = r.text().await.expect("body");
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A `baas` process on a free loopback port with a data directory of its own (deleted on drop), already
/// answering `/healthz`.
/// A fresh schema in the machine's PostgreSQL (`BENCHOP_TEST_POSTGRES`, default
/// `postgres://postgres@127.0.0.1:5432/test`), dropped on drop; baas's connections use it through the
/// URL's `search_path` option.
pub struct PgSchema {
    base: String,
    name: String,
    /// `BAAS_DATABASE_URL` for the schema.
    pub url: String,
}

impl PgSchema {
    pub fn create() -> Self {
        let base = std::env::var("BENCHOP_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("baas_e2e_{}", uuid::Uuid::new_v4().simple());
        psql(&base, &format!("CREATE SCHEMA {name}"));
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-csearch_path%3D{name}");
        Self { base, name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                &self.base,
                "-q",
                "-c",
                &format!("DROP SCHEMA {} CASCADE", self.name),
            ])
            .output();
    }
}

fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql ({e}): install postgresql-client"));
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?}: {} (is PostgreSQL running? \
         `pg_ctlcluster --skip-systemctl-redirect 15 main start`)",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Which job store the end-to-end tests give baas: `BENCHOP_E2E_STORE=postgres` runs every baas of the
/// suite on a PostgreSQL schema of its own (scripts/test runs the suite both ways); SQLite otherwise.
fn e2e_on_postgres() -> bool {
    match std::env::var("BENCHOP_E2E_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("BENCHOP_E2E_STORE is `{other}`: use `sqlite` or `postgres`"),
    }
}

pub struct Baas {
    proc_: Option<Proc>,
    /// The PostgreSQL schema of a suite run with `BENCHOP_E2E_STORE=postgres` (kept across restarts).
    schema: Option<PgSchema>,
    pub base: String,
    addr: String,
    data: PathBuf,
    amqp_url: String,
    extra_env: Vec<(String, String)>,
    /// Where its standard error goes (`None`: the test's output).
    log: Option<PathBuf>,
}

impl Baas {
    pub async fn start(amqp_url: &str) -> Self {
        Self::start_with(amqp_url, &[]).await
    }

    /// Start with every log line at `debug` level and above appended to `log`.
    pub async fn start_logged(amqp_url: &str, log: &std::path::Path) -> Self {
        Self::start_inner(amqp_url, &[("RUST_LOG", "debug".to_owned())], Some(log)).await
    }

    /// Start with extra environment variables (e.g. `BAAS_TASK_TIME_LIMIT_SECS`).
    pub async fn start_with(amqp_url: &str, extra_env: &[(&str, String)]) -> Self {
        Self::start_inner(amqp_url, extra_env, None).await
    }

    async fn start_inner(
        amqp_url: &str,
        extra_env: &[(&str, String)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let port = free_port();
        let data = std::env::temp_dir().join(format!("benchop-baas-{}", uuid::Uuid::new_v4().simple()));
        let own_store = extra_env.iter().any(|(k, _)| *k == "BAAS_DATABASE_URL");
        let mut baas = Self {
            proc_: None,
            schema: (e2e_on_postgres() && !own_store).then(PgSchema::create),
            base: format!("http://127.0.0.1:{port}"),
            addr: format!("127.0.0.1:{port}"),
            data,
            amqp_url: amqp_url.to_owned(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            log: log.map(std::path::Path::to_owned),
        };
        baas.launch().await;
        baas
    }

    async fn launch(&mut self) {
        let mut env = vec![
            ("AMQP_URL", self.amqp_url.clone()),
            ("BAAS_ADDR", self.addr.clone()),
            ("BENCHOP_DATA_DIR", self.data.display().to_string()),
        ];
        if let Some(schema) = &self.schema {
            env.push(("BAAS_DATABASE_URL", schema.url.clone()));
        }
        env.extend(self.extra_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let mut proc_ = Proc::spawn_logged("baas", &bin("baas"), &[], &env, self.log.as_deref());
        wait_healthy(
            &client(),
            &format!("{}/healthz", self.base),
            Duration::from_secs(60),
            &mut proc_,
        )
        .await;
        self.proc_ = Some(proc_);
    }

    /// The environment that points a `benchop admin` command at this baas's job store.
    pub fn store_env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![("BENCHOP_DATA_DIR", self.data.display().to_string())];
        let url = self.schema.as_ref().map(|s| s.url.clone()).or_else(|| {
            self.extra_env
                .iter()
                .find(|(k, _)| k == "BAAS_DATABASE_URL")
                .map(|(_, v)| v.clone())
        });
        if let Some(url) = url {
            env.push(("BAAS_DATABASE_URL", url));
        }
        env
    }

    /// Submit a job (must be accepted) and return its id.
    pub async fn submit(&self, http: &reqwest::Client, body: &Value) -> String {
        let r = http
            .post(format!("{}/v1/jobs", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202, "{body}");
        r.json::<Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The job's current view.
    pub async fn job(&self, http: &reqwest::Client, id: &str) -> Value {
        http.get(format!("{}/v1/jobs/{id}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Poll job `id` until `done` of its tasks have a result.
    pub async fn wait_done(&self, http: &reqwest::Client, id: &str, done: u64, limit: Duration) -> Value {
        let start = Instant::now();
        loop {
            let job = self.job(http, id).await;
            if job["progress"]["done"].as_u64().unwrap() >= done {
                return job;
            }
            assert!(
                start.elapsed() < limit,
                "job {id}: fewer than {done} results after {limit:?}: {job:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kill the process and start it again on the same port and store.
    pub async fn restart(&mut self) {
        self.proc_ = None;
        self.launch().await;
    }

    /// SIGKILL the process (its store stays); [`Baas::relaunch`] brings it back.
    pub fn kill(&mut self) {
        if let Some(p) = &self.proc_ {
            p.signal(nix::sys::signal::Signal::SIGKILL);
        }
        self.proc_ = None;
    }

    /// Start again on the same port and store after [`Baas::kill`].
    pub async fn relaunch(&mut self) {
        self.launch().await;
    }
}

impl Drop for Baas {
    fn drop(&mut self) {
        self.proc_ = None; // kill before deleting its store
        let _ = std::fs::remove_dir_all(&self.data);
        self.schema = None;
    }
}

/// `benchop serve` (API, in-process workers and monitor, no broker) on free loopback ports with a data
/// directory of its own (deleted on drop), already answering `/healthz`.
pub struct Serve {
    proc_: Option<Proc>,
    pub base: String,
    pub monitor: String,
    data: PathBuf,
}

impl Serve {
    pub async fn start(workers: usize) -> Self {
        let (port, monitor_port) = (free_port(), free_port());
        let data = std::env::temp_dir().join(format!("benchop-serve-{}", uuid::Uuid::new_v4().simple()));
        let env = [
            ("BAAS_ADDR", format!("127.0.0.1:{port}")),
            ("MONITOR_ADDR", format!("127.0.0.1:{monitor_port}")),
            ("BENCHOP_DATA_DIR", data.display().to_string()),
            // Standalone mode must not touch a broker: point it at a port where none listens.
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/%2f".to_owned()),
        ];
        let workers = workers.to_string();
        let mut proc_ = Proc::spawn(
            "benchop serve",
            "benchop",
            &["serve", "--workers", &workers],
            &env,
        );
        let base = format!("http://127.0.0.1:{port}");
        wait_healthy(
            &client(),
            &format!("{base}/healthz"),
            Duration::from_secs(60),
            &mut proc_,
        )
        .await;
        Self {
            proc_: Some(proc_),
            base,
            monitor: format!("http://127.0.0.1:{monitor_port}"),
            data,
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.proc_ = None; // kill before deleting its store
        let _ = std::fs::remove_dir_all(&self.data);
    }
}
