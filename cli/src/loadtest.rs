//! `benchop loadtest`: drive the real system over RabbitMQ with trivial tasks and report what it costs.
//!
//! The harness starts its own `baas` and worker processes on a fresh RabbitMQ vhost (or attaches to a
//! running baas with `--server`), then measures, in this order:
//!
//! 1. **Broker ceiling**: a bare lapin publisher (persistent, publisher confirms in a window of
//!    [`protocol::amqp::CONFIRM_WINDOW`]) and consumer (prefetch, one ack per message) on a quorum queue
//!    of the same vhost: messages/s end to end and publish→deliver latency at full load and one at a time.
//! 2. **Round trip at low load**: single-task probe jobs one after the other, each `POST /v1/jobs` then
//!    `GET /v1/jobs/{id}?wait=…&tasks=none` until completed, timed here with a monotonic clock (µs).
//!    This is a client's full round trip: HTTP, persist, publish with confirm, worker, result with
//!    confirm, late ack, store, wake-up of the waiting request.
//! 3. **Throughput**: one job of `--tasks` probe tasks (`noop`, or `spin` with `--spin-micros`), submitted
//!    through baas's own publishing path and run by the workers with confirms, late acks, quorum queues and
//!    events on. End to end = tasks / (job finished − POST sent), using baas's `finished_ms`; submit =
//!    tasks / POST duration (persisted and published with confirms before `202`); worker drain = tasks /
//!    (last result finished − first task started), from the results' worker timestamps. CPU per task of
//!    each process from `/proc/<pid>/stat` (utime + stime) before and after; peak RSS from `VmHWM`.
//! 4. With `--http`: a load generator of `--connections` keep-alive clients on `GET /v1/problems`,
//!    `GET /v1/jobs/{id}` (a small finished job) and `POST /v1/jobs` for `--http-secs` each.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use comfy_table::{Cell, CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use serde::Serialize;
use serde_json::{Value, json};

use protocol::amqp;

/// Flags of `benchop loadtest`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Tasks in the throughput job (one job of this many probe tasks).
    #[arg(long, default_value_t = 20_000)]
    pub tasks: u32,
    /// Busy-wait this many µs per task (`spin` probe, e.g. 1000 for the 1 ms kernel); 0: `noop`.
    #[arg(long, default_value_t = 0)]
    pub spin_micros: u64,
    /// Worker processes to start.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Tasks each worker runs at once (its prefetch).
    #[arg(long, default_value_t = 64)]
    pub concurrency: u16,
    /// Sequential single-task jobs timed for the low-load round trip.
    #[arg(long, default_value_t = 200)]
    pub latency_samples: usize,
    /// Messages of the bare-lapin broker ceiling run (default: as many as --tasks).
    #[arg(long)]
    pub bare_messages: Option<u32>,
    /// Also load the HTTP front (GET /v1/problems, GET /v1/jobs/{id}, POST /v1/jobs).
    #[arg(long)]
    pub http: bool,
    /// Seconds per HTTP endpoint.
    #[arg(long, default_value_t = 5)]
    pub http_secs: u64,
    /// Concurrent keep-alive HTTP clients.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// RabbitMQ base URL without a vhost; the harness creates (and deletes) a vhost of its own. For a
    /// cluster, every node's base URL, comma-separated (`rabbitmqctl` then reaches the node named by
    /// `RABBITMQ_NODENAME`).
    #[arg(
        long,
        env = "AMQP_BASE_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672"
    )]
    pub amqp_base: String,
    /// Attach to this running baas instead of starting one (its workers must be running too; CPU and
    /// memory of its processes are then not reported).
    #[arg(long)]
    pub server: Option<String>,
    /// With --server: the AMQP URL (with vhost) for the bare-broker run.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// Directory of the `baas` and `worker` binaries (default: next to this executable).
    #[arg(long)]
    pub bin_dir: Option<PathBuf>,
    /// The job store of the baas it starts: SQLite in a scratch directory, or PostgreSQL in a scratch
    /// schema of `--postgres-url` (dropped afterwards).
    #[arg(long, value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// With `--store postgres`: the database (trust auth or a password in the URL) the scratch schema is
    /// created in, with `psql`.
    #[arg(
        long,
        env = "BENCHOP_TEST_POSTGRES",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub postgres_url: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Which job store `benchop loadtest` gives the baas it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// The embedded SQLite file (the default store).
    Sqlite,
    /// PostgreSQL (`BAAS_DATABASE_URL`).
    Postgres,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Samples.
    pub n: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<f64>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Some(Self {
            n: samples.len(),
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

/// The bare lapin publisher/consumer run.
#[derive(Debug, Clone, Serialize)]
pub struct BareReport {
    /// Messages.
    pub messages: u32,
    /// Body size in bytes (like a task message).
    pub body_bytes: usize,
    /// Published and confirmed per second.
    pub publish_per_s: f64,
    /// Published, delivered and acked per second, end to end.
    pub end_to_end_per_s: f64,
    /// Publish → delivery latency under that full load.
    pub latency_loaded: Option<Percentiles>,
    /// Publish → delivery latency one message at a time.
    pub latency_idle: Option<Percentiles>,
    /// The same broker doing a task's two hops with nothing of ours in between.
    pub round_trip: BareRoundTrip,
}

/// The bare two-hop run: what the broker allows for the pattern every task follows. A bare publisher
/// sends "tasks" to a quorum queue with windowed confirms; echo consumers (as many as the workers, with
/// their prefetch) publish each as a "result" to a second quorum queue with confirms and acks the task only after the
/// confirm (late ack, as the workers do); a collector consumes and acks the results.
#[derive(Debug, Clone, Serialize)]
pub struct BareRoundTrip {
    /// Tasks sent through both hops.
    pub messages: u32,
    /// Echo consumers (one connection each, as many as the workers).
    pub echoes: usize,
    /// Prefetch of each echo (the workers' concurrency).
    pub prefetch: u16,
    /// Tasks per second, first publish → last result consumed.
    pub end_to_end_per_s: f64,
    /// Task publish → result consumed, one at a time.
    pub latency_idle: Option<Percentiles>,
}

/// CPU and memory of one process over the throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessCost {
    /// `baas`, `worker-1`, …, `harness`.
    pub process: String,
    /// CPU seconds (user + system) during the run.
    pub cpu_s: f64,
    /// CPU per task, in ms.
    pub cpu_ms_per_task: f64,
    /// Peak resident set (VmHWM) in MiB, since the process started.
    pub peak_rss_mib: Option<f64>,
}

/// The throughput run.
#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    /// Tasks in the job.
    pub tasks: u32,
    /// The probe (`noop` or `spin N µs`).
    pub probe: String,
    /// Tasks that came back (done, from the job).
    pub done: u32,
    /// Of which failed.
    pub failed: u32,
    /// `POST /v1/jobs` duration (validate, persist, publish all with confirms), seconds.
    pub submit_s: f64,
    /// Tasks accepted per second by that POST.
    pub submit_per_s: f64,
    /// POST sent → job finished (baas's `finished_ms`), seconds.
    pub end_to_end_s: f64,
    /// Tasks per second end to end.
    pub end_to_end_per_s: f64,
    /// Tasks per second from the first task started to the last finished on the workers.
    pub worker_drain_per_s: Option<f64>,
    /// CPU and memory per process.
    pub processes: Vec<ProcessCost>,
}

/// One HTTP endpoint under load.
#[derive(Debug, Clone, Serialize)]
pub struct HttpReport {
    /// `GET /v1/problems`, ….
    pub endpoint: String,
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (transport errors and non-2xx).
    pub errors: u64,
    /// Successful requests per second.
    pub per_s: f64,
}

/// Everything `benchop loadtest` measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The job store of the baas under test (`None`: attached to a running one).
    pub store: Option<StoreKind>,
    /// Worker processes.
    pub workers: usize,
    /// Concurrency (prefetch) of each.
    pub concurrency: u16,
    /// 1-minute load average before the run (the machine may be shared).
    pub load_before: Option<f64>,
    /// The broker ceiling.
    pub bare: BareReport,
    /// Round trip of single-task jobs, one at a time (client-side, µs clock).
    pub round_trip: Option<Percentiles>,
    /// The big job.
    pub throughput: ThroughputReport,
    /// End-to-end tasks/s over the bare broker's end-to-end messages/s (one hop).
    pub ratio_to_broker: f64,
    /// End-to-end tasks/s over the bare two-hop (task + result) tasks/s.
    pub ratio_to_round_trip: f64,
    /// HTTP front, with `--http`.
    pub http: Vec<HttpReport>,
}

/// The Celery 5.7 / RabbitMQ figures of issue #8, measured on the same machine.
const CELERY: &[(&str, &str)] = &[
    (
        "end-to-end tasks/s",
        "580 (236 with confirms, 365 with events + Flower)",
    ),
    ("round trip p50", "2.3 ms"),
    ("round trip p99", "9.3 ms"),
    ("CPU per task", "~1.9 ms"),
    (
        "broker ceiling",
        "~30,000 msg/s publish (quorum, windowed confirms)",
    ),
];

/// Run the load test and print the report.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let report = measure(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{}", table(&report));
    }
    Ok(())
}

/// Start (or attach to) the system, measure, tear down.
pub async fn measure(args: &Args) -> anyhow::Result<Report> {
    if args.tasks == 0 {
        bail!("--tasks must be at least 1");
    }
    let load_before = load_average();
    let mut system = match &args.server {
        Some(url) => System::attach(url, &args.amqp_url),
        None => System::start(args).await?,
    };
    let outcome = measure_on(args, &system, load_before).await;
    system.stop();
    outcome
}

async fn measure_on(args: &Args, system: &System, load_before: Option<f64>) -> anyhow::Result<Report> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections.max(4))
        .build()?;
    progress(args, "bare broker ceiling…");
    let bare = bare_broker(
        &system.amqp_url,
        args.bare_messages.unwrap_or(args.tasks),
        args.latency_samples,
        (args.workers, args.concurrency),
    )
    .await
    .context("bare broker run")?;
    progress(args, "round trip at low load…");
    let probe = if args.spin_micros > 0 {
        json!({"kind": "spin", "micros": args.spin_micros})
    } else {
        json!({"kind": "noop"})
    };
    // Warm-up: one job through every worker slot before timing anything.
    let warm = submit(
        &client,
        &system.server,
        &probe,
        args.workers * usize::from(args.concurrency),
    )
    .await?;
    wait_done(&client, &system.server, &warm).await?;
    let mut samples = Vec::with_capacity(args.latency_samples);
    let mut small_job = warm.clone();
    for _ in 0..args.latency_samples {
        let start = Instant::now();
        let id = submit(&client, &system.server, &probe, 1).await?;
        wait_done(&client, &system.server, &id).await?;
        samples.push(start.elapsed().as_secs_f64() * 1e3);
        small_job = id;
    }
    progress(args, &format!("throughput: one job of {} tasks…", args.tasks));
    let throughput = throughput(args, system, &client, &probe).await?;
    let http = if args.http {
        http_load(args, &system.server, &small_job, &probe).await?
    } else {
        Vec::new()
    };
    Ok(Report {
        store: system.baas.is_some().then_some(args.store),
        workers: system.workers.len().max(args.workers),
        concurrency: args.concurrency,
        load_before,
        ratio_to_broker: throughput.end_to_end_per_s / bare.end_to_end_per_s.max(f64::MIN_POSITIVE),
        ratio_to_round_trip: throughput.end_to_end_per_s
            / bare.round_trip.end_to_end_per_s.max(f64::MIN_POSITIVE),
        bare,
        round_trip: Percentiles::of(samples),
        throughput,
        http,
    })
}

fn progress(args: &Args, what: &str) {
    if !args.json {
        eprintln!("loadtest: {what}");
    }
}

// ---------------------------------------------------------------------------------------------------
// The system under test

/// The processes under test (or a running server).
struct System {
    server: String,
    amqp_url: String,
    baas: Option<Child>,
    workers: Vec<Child>,
    vhost: Option<String>,
    data_dir: Option<PathBuf>,
    /// The store baas was started on, as [`baas::Store::connect`] takes it.
    store_url: Option<String>,
    /// A scratch PostgreSQL schema: (database URL, schema), dropped by [`System::stop`].
    pg_schema: Option<(String, String)>,
}

impl System {
    fn attach(server: &str, amqp_url: &str) -> Self {
        Self {
            server: server.trim_end_matches('/').to_owned(),
            amqp_url: amqp_url.to_owned(),
            baas: None,
            workers: Vec::new(),
            vhost: None,
            data_dir: None,
            store_url: None,
            pg_schema: None,
        }
    }

    async fn start(args: &Args) -> anyhow::Result<Self> {
        let bin_dir = match &args.bin_dir {
            Some(d) => d.clone(),
            None => std::env::current_exe()?
                .parent()
                .map(Path::to_path_buf)
                .context("no directory for this executable")?,
        };
        for b in ["baas", "worker"] {
            if !bin_dir.join(b).exists() {
                bail!(
                    "{} is missing: build the workspace's binaries (`cargo build --release --bins`) or pass --bin-dir",
                    bin_dir.join(b).display()
                );
            }
        }
        let vhost = format!("benchop-loadtest-{}", uuid::Uuid::new_v4().simple());
        rabbitmqctl(&["add_vhost", &vhost])?;
        let mut system = Self {
            server: String::new(),
            amqp_url: with_vhost(&args.amqp_base, &vhost),
            baas: None,
            workers: Vec::new(),
            vhost: Some(vhost.clone()),
            data_dir: None,
            store_url: None,
            pg_schema: None,
        };
        // From here on, `stop` cleans up whatever was started, also on error.
        match system.spawn(args, &bin_dir, &vhost).await {
            Ok(()) => Ok(system),
            Err(e) => {
                system.stop();
                Err(e)
            }
        }
    }

    async fn spawn(&mut self, args: &Args, bin_dir: &Path, vhost: &str) -> anyhow::Result<()> {
        rabbitmqctl(&["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"])?;
        let data_dir = std::env::temp_dir().join(vhost);
        std::fs::create_dir_all(&data_dir)?;
        self.data_dir = Some(data_dir.clone());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        self.server = format!("http://{addr}");
        let max_tasks = args.tasks.max(100_000).to_string();
        let data = data_dir.display().to_string();
        let mut env = vec![
            ("BAAS_ADDR", addr.as_str()),
            ("AMQP_URL", self.amqp_url.as_str()),
            ("BENCHOP_DATA_DIR", data.as_str()),
            ("BAAS_MAX_TASKS_PER_JOB", max_tasks.as_str()),
        ];
        let store_url = match args.store {
            StoreKind::Sqlite => data_dir.join("baas.db").display().to_string(),
            StoreKind::Postgres => {
                let schema = vhost.replace('-', "_");
                psql(&args.postgres_url, &format!("CREATE SCHEMA {schema}"))?;
                self.pg_schema = Some((args.postgres_url.clone(), schema.clone()));
                let sep = if args.postgres_url.contains('?') { '&' } else { '?' };
                format!("{}{sep}options=-csearch_path%3D{schema}", args.postgres_url)
            }
        };
        if args.store == StoreKind::Postgres {
            env.push(("BAAS_DATABASE_URL", store_url.as_str()));
        }
        self.baas = Some(spawn(&bin_dir.join("baas"), &[], &env)?);
        self.store_url = Some(store_url);
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = client.get(format!("{}/readyz", self.server)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            if Instant::now() > deadline {
                bail!("baas did not become ready within 60 s at {}", self.server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let concurrency = args.concurrency.max(1).to_string();
        for i in 0..args.workers.max(1) {
            let name = format!("loadtest-{}", i + 1);
            self.workers.push(spawn(
                &bin_dir.join("worker"),
                &["--concurrency", &concurrency, "--name", &name],
                &[("AMQP_URL", self.amqp_url.as_str())],
            )?);
        }
        // Wait until every worker consumes the task queue.
        let conn = amqp::connect(&self.amqp_url, "loadtest-setup", Duration::from_secs(10)).await?;
        let channel = conn.create_channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        loop {
            let q = channel
                .queue_declare(
                    protocol::topology::TASKS_QUEUE.into(),
                    passive,
                    FieldTable::default(),
                )
                .await?;
            if q.consumer_count() as usize >= self.workers.len() {
                break;
            }
            if Instant::now() > deadline {
                bail!("the workers did not start consuming within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = conn.close(200, "setup done".into()).await;
        Ok(())
    }

    /// `(name, pid)` of every process started, and of the local broker when it runs here.
    fn pids(&self) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = self.baas.iter().map(|c| ("baas".to_owned(), c.id())).collect();
        for (i, w) in self.workers.iter().enumerate() {
            out.push((format!("worker-{}", i + 1), w.id()));
        }
        // Every RabbitMQ node running here (one, or the nodes of a local cluster).
        let brokers = broker_pids();
        for (k, pid) in brokers.iter().enumerate() {
            let name = if brokers.len() == 1 {
                "RabbitMQ (beam.smp)".to_owned()
            } else {
                format!("RabbitMQ node {} (beam.smp)", k + 1)
            };
            out.push((name, *pid));
        }
        out
    }

    /// Stop the processes this harness started (by their own pid), delete the vhost and the data.
    fn stop(&mut self) {
        for mut child in self.workers.drain(..).chain(self.baas.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(v) = self.vhost.take() {
            let _ = rabbitmqctl(&["delete_vhost", &v]);
        }
        if let Some(d) = self.data_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
        if let Some((url, schema)) = self.pg_schema.take() {
            let _ = psql(&url, &format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

/// Run one SQL statement with `psql` (the scratch schema of `--store postgres`).
fn psql(url: &str, sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .context("cannot run psql (install postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql {url}: {} (is PostgreSQL running?)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn spawn(program: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Child> {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn()
        .with_context(|| format!("cannot start {}", program.display()))
}

/// `base` (one URL or a comma-separated list of them, without a vhost) with `vhost` on every URL.
fn with_vhost(base: &str, vhost: &str) -> String {
    base.split(',')
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| format!("{}/{vhost}", b.trim_end_matches('/')))
        .collect::<Vec<_>>()
        .join(",")
}

fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("rabbitmqctl").args(args).output().context(
        "cannot run rabbitmqctl (it comes with rabbitmq-server); start RabbitMQ with `rabbitmq-server -detached`",
    )?;
    if !out.status.success() {
        bail!(
            "rabbitmqctl {args:?} failed: {}{} (is RabbitMQ running? `rabbitmq-server -detached`)",
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// /proc

/// CPU seconds (user + system) of a process; `/proc` counts in USER_HZ = 100 ticks per second.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/stat".to_owned(), |p| format!("/proc/{p}/stat"));
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set in MiB.
fn peak_rss_mib(pid: Option<u32>) -> Option<f64> {
    let path = pid.map_or_else(|| "/proc/self/status".to_owned(), |p| format!("/proc/{p}/status"));
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The Erlang VMs (`beam.smp`) of the RabbitMQ nodes running here, by pid, found by reading `/proc/*/comm`
/// (only read).
fn broker_pids() -> Vec<u32> {
    pids_named("beam.smp")
}

/// The processes here whose command name (`/proc/<pid>/comm`) is `comm`, by pid.
fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (name.trim() == comm).then_some(pid)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// CPU seconds so far of every PostgreSQL process here (the server and its backends), by pid.
fn postgres_cpu() -> std::collections::HashMap<u32, f64> {
    pids_named("postgres")
        .into_iter()
        .filter_map(|pid| Some((pid, cpu_seconds(Some(pid))?)))
        .collect()
}

/// CPU seconds PostgreSQL spent between two [`postgres_cpu`] snapshots: a backend that started in
/// between counts from zero; one that exited in between is missed (baas keeps its pool open).
fn postgres_cpu_since(before: &std::collections::HashMap<u32, f64>) -> f64 {
    postgres_cpu()
        .into_iter()
        .map(|(pid, now)| now - before.get(&pid).copied().unwrap_or(0.0))
        .sum()
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

// ---------------------------------------------------------------------------------------------------
// The bare broker

const BARE_QUEUE: &str = "benchop.loadtest.bare";
/// Bytes of a bare message: about a task message's size.
const BARE_BODY: usize = 256;

async fn bare_broker(
    url: &str,
    messages: u32,
    idle_samples: usize,
    echoes: (usize, u16),
) -> anyhow::Result<BareReport> {
    let base = Instant::now();
    let publisher = amqp::connect(url, "loadtest-bare-publisher", Duration::from_secs(10)).await?;
    let consumer_conn = amqp::connect(url, "loadtest-bare-consumer", Duration::from_secs(10)).await?;
    let pch = amqp::confirm_channel(&publisher).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    pch.queue_declare(BARE_QUEUE.into(), durable, args).await?;
    let cch = consumer_conn.create_channel().await?;
    cch.basic_qos(256, BasicQosOptions::default()).await?;
    let mut consumer = cch
        .basic_consume(
            BARE_QUEUE.into(),
            "loadtest-bare".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let body = |seq: u64| {
        let mut b = vec![b'.'; BARE_BODY];
        let nanos = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        b[..8].copy_from_slice(&nanos.to_le_bytes());
        b[8..16].copy_from_slice(&seq.to_le_bytes());
        b
    };
    let latency_of = move |data: &[u8]| {
        let sent = data
            .get(..8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map_or(0, u64::from_le_bytes);
        let now = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now.saturating_sub(sent) as f64 / 1e6
    };

    // Idle: one message at a time.
    let idle = one_at_a_time(&pch, BARE_QUEUE, &mut consumer, idle_samples, &body, &latency_of).await?;

    // Loaded: publish everything in a confirm window while consuming.
    let start = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(messages as usize);
        while latencies.len() < messages as usize {
            let Some(d) = consumer.next().await else { break };
            let d = d?;
            latencies.push(latency_of(&d.data));
            d.ack(BasicAckOptions::default()).await?;
        }
        Ok::<_, lapin::Error>((latencies, start.elapsed()))
    });
    let msgs = (0..u64::from(messages)).map(|i| (format!("m-{i}"), body(i)));
    amqp::publish_confirmed(&pch, "", BARE_QUEUE, msgs).await?;
    let published = start.elapsed();
    let (latencies, total) = consuming.await??;
    if latencies.len() < messages as usize {
        bail!("the bare consumer got {} of {messages} messages", latencies.len());
    }
    // Consumers first: deleting a queue under a consumer makes the broker cancel it.
    let _ = consumer_conn.close(200, "done".into()).await;
    let _ = pch
        .queue_delete(BARE_QUEUE.into(), QueueDeleteOptions::default())
        .await;
    let _ = publisher.close(200, "done".into()).await;
    let round_trip = bare_round_trip(url, messages, idle_samples, echoes, &body, &latency_of).await?;
    Ok(BareReport {
        messages,
        body_bytes: BARE_BODY,
        publish_per_s: f64::from(messages) / published.as_secs_f64(),
        end_to_end_per_s: f64::from(messages) / total.as_secs_f64(),
        latency_loaded: Percentiles::of(latencies),
        latency_idle: Percentiles::of(idle),
        round_trip,
    })
}

/// Publish `n` messages to `queue` one at a time, each after the previous one came back on `consumer`:
/// the latencies in ms.
async fn one_at_a_time(
    channel: &lapin::Channel,
    queue: &str,
    consumer: &mut lapin::Consumer,
    n: usize,
    body: &impl Fn(u64) -> Vec<u8>,
    latency_of: &impl Fn(&[u8]) -> f64,
) -> anyhow::Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        amqp::publish_confirmed(channel, "", queue, [(format!("idle-{i}"), body(i as u64))]).await?;
        let Some(d) = consumer.next().await else {
            bail!("the bare consumer closed")
        };
        let d = d?;
        latencies.push(latency_of(&d.data));
        d.ack(BasicAckOptions::default()).await?;
    }
    Ok(latencies)
}

const BARE_TASKS: &str = "benchop.loadtest.bare-tasks";
const BARE_RESULTS: &str = "benchop.loadtest.bare-results";

/// See [`BareRoundTrip`]: `echoes` echo connections (like the worker processes), each with `prefetch`.
async fn bare_round_trip(
    url: &str,
    messages: u32,
    idle_samples: usize,
    (echoes, prefetch): (usize, u16),
    body: &impl Fn(u64) -> Vec<u8>,
    latency_of: &impl Fn(&[u8]) -> f64,
) -> anyhow::Result<BareRoundTrip> {
    use futures_util::FutureExt;

    let client = amqp::connect(url, "loadtest-bare2-publisher", Duration::from_secs(10)).await?;
    let collector = amqp::connect(url, "loadtest-bare2-collector", Duration::from_secs(10)).await?;
    let pch = amqp::confirm_channel(&client).await?;
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    for q in [BARE_TASKS, BARE_RESULTS] {
        pch.queue_declare(q.into(), durable, quorum.clone()).await?;
    }
    // The echo "workers": consume tasks, publish each as a result with a confirm, ack the task after it.
    let mut echo_conns = Vec::with_capacity(echoes);
    let mut echo_tasks = Vec::with_capacity(echoes);
    for e in 0..echoes.max(1) {
        let conn = amqp::connect(url, "loadtest-bare2-echo", Duration::from_secs(10)).await?;
        let ech = amqp::confirm_channel(&conn).await?;
        ech.basic_qos(prefetch, BasicQosOptions::default()).await?;
        let mut tasks = ech
            .basic_consume(
                BARE_TASKS.into(),
                format!("loadtest-bare2-echo-{e}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        echo_conns.push(conn);
        echo_tasks.push(tokio::spawn(async move {
            // Pipelined: confirms are awaited off the consume loop, then the task is acked.
            while let Some(d) = tasks.next().await {
                let d = d?;
                let confirm = ech
                    .basic_publish(
                        "".into(),
                        BARE_RESULTS.into(),
                        BasicPublishOptions::default(),
                        &d.data,
                        amqp::persistent_json(&format!("r-{}", d.delivery_tag)),
                    )
                    .await?;
                tokio::spawn(async move {
                    if matches!(confirm.await, Ok(c) if c.is_ack()) {
                        let _ = d.ack(BasicAckOptions::default()).await;
                    }
                });
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    let cch = collector.create_channel().await?;
    cch.basic_qos(1024, BasicQosOptions::default()).await?;
    let mut results = cch
        .basic_consume(
            BARE_RESULTS.into(),
            "loadtest-bare2-collector".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    // Idle: one task at a time through both hops.
    let idle = one_at_a_time(&pch, BARE_TASKS, &mut results, idle_samples, body, latency_of).await?;

    // Loaded: publish every task in a confirm window while the echoes and the collector run; the
    // collector acks what it has in hand at once (multiple), as baas does with a batch of results.
    let start = Instant::now();
    let collecting = tokio::spawn(async move {
        let mut n = 0u32;
        while n < messages {
            let Some(d) = results.next().await else { break };
            let mut last = d?;
            n += 1;
            while let Some(Some(d)) = results.next().now_or_never() {
                last = d?;
                n += 1;
            }
            last.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok::<_, lapin::Error>((n, start.elapsed()))
    });
    let msgs = (0..u64::from(messages)).map(|i| (format!("t-{i}"), body(i)));
    amqp::publish_confirmed(&pch, "", BARE_TASKS, msgs).await?;
    let (n, total) = collecting.await??;
    for t in &echo_tasks {
        t.abort();
    }
    if n < messages {
        bail!("the bare collector got {n} of {messages} results");
    }
    for conn in echo_conns {
        let _ = conn.close(200, "done".into()).await;
    }
    let _ = collector.close(200, "done".into()).await;
    for q in [BARE_TASKS, BARE_RESULTS] {
        let _ = pch.queue_delete(q.into(), QueueDeleteOptions::default()).await;
    }
    let _ = client.close(200, "done".into()).await;
    Ok(BareRoundTrip {
        messages,
        echoes: echoes.max(1),
        prefetch,
        end_to_end_per_s: f64::from(messages) / total.as_secs_f64(),
        latency_idle: Percentiles::of(idle),
    })
}

// ---------------------------------------------------------------------------------------------------
// Jobs over HTTP

fn job_body(probe: &Value, replicas: usize) -> Value {
    json!({"problem": "1aI", "methods": ["closed-form"], "replicas": replicas, "probe": probe})
}

async fn submit(
    client: &reqwest::Client,
    server: &str,
    probe: &Value,
    replicas: usize,
) -> anyhow::Result<String> {
    let resp = client
        .post(format!("{server}/v1/jobs"))
        .json(&job_body(probe, replicas))
        .send()
        .await?;
    let status = resp.status();
    let body: Value = resp.json().await?;
    if !status.is_success() {
        bail!("POST /v1/jobs: HTTP {status}: {body}");
    }
    body["id"]
        .as_str()
        .map(str::to_owned)
        .context("POST /v1/jobs answered without an id")
}

/// Wait (long-polling) until the job is final; returns its cheap view.
async fn wait_done(client: &reqwest::Client, server: &str, id: &str) -> anyhow::Result<Value> {
    loop {
        let view: Value = client
            .get(format!("{server}/v1/jobs/{id}?wait=30&tasks=none"))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if matches!(view["status"].as_str(), Some("completed" | "cancelled")) {
            return Ok(view);
        }
    }
}

async fn throughput(
    args: &Args,
    system: &System,
    client: &reqwest::Client,
    probe: &Value,
) -> anyhow::Result<ThroughputReport> {
    let pids = system.pids();
    let cpu_before: Vec<Option<f64>> = pids.iter().map(|(_, p)| cpu_seconds(Some(*p))).collect();
    let self_before = cpu_seconds(None);
    let postgres_before = system.pg_schema.as_ref().map(|_| postgres_cpu());
    let sent_ms = protocol::task::now_ms();
    let start = Instant::now();
    let id = submit(client, &system.server, probe, args.tasks as usize).await?;
    let submit_s = start.elapsed().as_secs_f64();
    // Poll the cheap view (counters only) until the job is final.
    let view = loop {
        let view: Value = client
            .get(format!("{}/v1/jobs/{id}?tasks=none", system.server))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if matches!(view["status"].as_str(), Some("completed" | "cancelled")) {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let wall_s = start.elapsed().as_secs_f64();
    let finished_ms = view["finished_ms"].as_u64().unwrap_or(0);
    let end_to_end_s = if finished_ms > sent_ms {
        (finished_ms - sent_ms) as f64 / 1e3
    } else {
        wall_s
    };
    let tasks = f64::from(args.tasks);
    let mut processes = Vec::new();
    for ((name, pid), before) in pids.iter().zip(&cpu_before) {
        let cpu_s = match (before, cpu_seconds(Some(*pid))) {
            (Some(b), Some(a)) => a - b,
            _ => f64::NAN,
        };
        processes.push(ProcessCost {
            process: name.clone(),
            cpu_s,
            cpu_ms_per_task: cpu_s * 1e3 / tasks,
            peak_rss_mib: peak_rss_mib(Some(*pid)),
        });
    }
    if let Some(before) = &postgres_before {
        let cpu_s = postgres_cpu_since(before);
        processes.push(ProcessCost {
            process: "PostgreSQL (all its processes)".to_owned(),
            cpu_s,
            cpu_ms_per_task: cpu_s * 1e3 / tasks,
            // Shared buffers count in every backend's RSS: a sum would mean nothing.
            peak_rss_mib: None,
        });
    }
    let self_cpu = match (self_before, cpu_seconds(None)) {
        (Some(b), Some(a)) => a - b,
        _ => f64::NAN,
    };
    processes.push(ProcessCost {
        process: "harness (HTTP client)".to_owned(),
        cpu_s: self_cpu,
        cpu_ms_per_task: self_cpu * 1e3 / tasks,
        peak_rss_mib: peak_rss_mib(None),
    });
    let worker_drain_per_s = match &system.store_url {
        Some(url) => drain_rate(url, &id).await,
        None => None,
    };
    Ok(ThroughputReport {
        tasks: args.tasks,
        probe: if args.spin_micros > 0 {
            format!("spin {} µs", args.spin_micros)
        } else {
            "noop".to_owned()
        },
        done: view["progress"]["done"].as_u64().map_or(0, |v| v as u32),
        failed: view["progress"]["failed"].as_u64().map_or(0, |v| v as u32),
        submit_s,
        submit_per_s: tasks / submit_s,
        end_to_end_s,
        end_to_end_per_s: tasks / end_to_end_s,
        worker_drain_per_s,
        processes,
    })
}

/// Tasks per second between the first task started and the last finished, from the results in baas's
/// store (read directly: the HTTP view does not carry per-task timestamps).
async fn drain_rate(store_url: &str, id: &str) -> Option<f64> {
    let store = baas::Store::connect(store_url).await.ok()?;
    let (_, tasks) = store.job(id.parse().ok()?).await.ok()??;
    let results: Vec<_> = tasks.iter().filter_map(|t| t.result.as_ref()).collect();
    let first = results.iter().map(|r| r.started_ms).min()?;
    let last = results.iter().map(|r| r.finished_ms).max()?;
    let span_s = (last.saturating_sub(first)).max(1) as f64 / 1e3;
    Some(results.len() as f64 / span_s)
}

// ---------------------------------------------------------------------------------------------------
// HTTP front

async fn http_load(
    args: &Args,
    server: &str,
    job_id: &str,
    probe: &Value,
) -> anyhow::Result<Vec<HttpReport>> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.connections)
        .build()?;
    let secs = Duration::from_secs(args.http_secs.max(1));
    let post_body = Arc::new(job_body(probe, 1));
    let mut out = Vec::new();
    for (endpoint, url, post) in [
        ("GET /v1/problems", format!("{server}/v1/problems"), false),
        ("GET /v1/jobs/{id}", format!("{server}/v1/jobs/{job_id}"), false),
        ("POST /v1/jobs", format!("{server}/v1/jobs"), true),
    ] {
        progress(args, &format!("HTTP: {endpoint} for {} s…", secs.as_secs()));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..args.connections.max(1) {
            let (client, url, ok, errors, body) = (
                client.clone(),
                url.clone(),
                Arc::clone(&ok),
                Arc::clone(&errors),
                Arc::clone(&post_body),
            );
            handles.push(tokio::spawn(async move {
                while start.elapsed() < secs {
                    let req = if post {
                        client.post(&url).json(&*body)
                    } else {
                        client.get(&url)
                    };
                    let good = match req.send().await {
                        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        for h in handles {
            h.await?;
        }
        let elapsed = start.elapsed().as_secs_f64();
        let ok = ok.load(Ordering::Relaxed);
        out.push(HttpReport {
            endpoint: endpoint.to_owned(),
            ok,
            errors: errors.load(Ordering::Relaxed),
            per_s: ok as f64 / elapsed,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------------
// The table

fn ms(p: Option<&Percentiles>, f: impl Fn(&Percentiles) -> f64) -> String {
    p.map_or_else(|| "–".to_owned(), |p| format!("{:.2} ms", f(p)))
}

fn p50_p99(p: Option<&Percentiles>) -> String {
    format!("{} / {}", ms(p, |p| p.p50_ms), ms(p, |p| p.p99_ms))
}

/// The report as a table, beside Celery's figures from the issue.
pub fn table(r: &Report) -> String {
    let t = &r.throughput;
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "measure",
        "benchop",
        "Celery 5.7 (issue #8)",
        "what it measures",
    ]);
    let mut row = |m: &str, ours: String, celery: &str, what: &str| {
        table.add_row(vec![
            Cell::new(m),
            Cell::new(ours).set_alignment(CellAlignment::Right),
            Cell::new(celery),
            Cell::new(what),
        ]);
    };
    let celery = |k: &str| CELERY.iter().find(|(m, _)| *m == k).map_or("", |(_, v)| v);
    row(
        "end-to-end tasks/s",
        format!("{:.0}", t.end_to_end_per_s),
        celery("end-to-end tasks/s"),
        &format!(
            "{} {} tasks, POST sent → job finished ({:.2} s)",
            t.tasks, t.probe, t.end_to_end_s
        ),
    );
    row(
        "submit tasks/s",
        format!("{:.0}", t.submit_per_s),
        "",
        "one POST: validate, persist, publish all with confirms, 202",
    );
    row(
        "worker drain tasks/s",
        t.worker_drain_per_s
            .map_or_else(|| "–".to_owned(), |v| format!("{v:.0}")),
        "",
        "first task started → last finished, on the workers",
    );
    row(
        "tasks back",
        format!("{} / {} ({} failed)", t.done, t.tasks, t.failed),
        "",
        "results stored by baas",
    );
    let rt = r.round_trip.as_ref();
    row(
        "round trip p50",
        ms(rt, |p| p.p50_ms),
        celery("round trip p50"),
        "one single-task job at a time: POST → completed (client clock)",
    );
    row("round trip p90", ms(rt, |p| p.p90_ms), "", "");
    row(
        "round trip p99",
        ms(rt, |p| p.p99_ms),
        celery("round trip p99"),
        "",
    );
    row("round trip max", ms(rt, |p| p.max_ms), "", "");
    for p in &t.processes {
        row(
            &format!("CPU per task: {}", p.process),
            format!("{:.3} ms", p.cpu_ms_per_task),
            if p.process == "baas" {
                celery("CPU per task")
            } else {
                ""
            },
            &format!(
                "{:.2} CPU s over the run; peak RSS {}",
                p.cpu_s,
                p.peak_rss_mib
                    .map_or_else(|| "–".to_owned(), |m| format!("{m:.0} MiB"))
            ),
        );
    }
    let b = &r.bare;
    row(
        "broker ceiling msg/s",
        format!("{:.0}", b.end_to_end_per_s),
        celery("broker ceiling"),
        &format!(
            "bare lapin, quorum queue, confirms (window {}), {} B: publish {:.0}/s",
            amqp::CONFIRM_WINDOW,
            b.body_bytes,
            b.publish_per_s
        ),
    );
    row(
        "broker latency p50 / p99",
        p50_p99(b.latency_idle.as_ref()),
        "0.4–1.1 ms",
        "publish → deliver, one at a time",
    );
    row(
        "broker latency loaded p50 / p99",
        p50_p99(b.latency_loaded.as_ref()),
        "",
        "publish → deliver during the ceiling run",
    );
    row(
        "ratio to broker ceiling",
        format!("{:.2}", r.ratio_to_broker),
        "",
        "end-to-end tasks/s ÷ bare end-to-end msg/s (one hop)",
    );
    let rt2 = &b.round_trip;
    row(
        "broker two-hop ceiling tasks/s",
        format!("{:.0}", rt2.end_to_end_per_s),
        "",
        &format!(
            "bare lapin: task → {} echo(es) (prefetch {}, result confirmed, then late ack) → result, quorum queues",
            rt2.echoes, rt2.prefetch
        ),
    );
    row(
        "broker two-hop round trip p50 / p99",
        p50_p99(rt2.latency_idle.as_ref()),
        "",
        "task publish → result consumed, one at a time: the floor under our round trip",
    );
    row(
        "ratio to two-hop ceiling",
        format!("{:.2}", r.ratio_to_round_trip),
        "",
        "end-to-end tasks/s ÷ bare two-hop tasks/s",
    );
    for h in &r.http {
        row(
            &h.endpoint,
            format!("{:.0} req/s", h.per_s),
            "",
            &format!("{} ok, {} errors", h.ok, h.errors),
        );
    }
    let load = r
        .load_before
        .map_or_else(String::new, |l| format!(", load average before: {l:.2}"));
    let store = r.store.map_or_else(String::new, |s| {
        format!(
            ", job store: {}",
            match s {
                StoreKind::Sqlite => "SQLite",
                StoreKind::Postgres => "PostgreSQL",
            }
        )
    });
    format!(
        "{table}\n{} worker(s) × concurrency {}{store}{load}",
        r.workers, r.concurrency
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_broker_of_a_cluster_gets_the_vhost() {
        assert_eq!(
            with_vhost("amqp://guest:guest@127.0.0.1:5672/", "v1"),
            "amqp://guest:guest@127.0.0.1:5672/v1"
        );
        assert_eq!(
            with_vhost("amqp://g:g@127.0.0.1:5701, amqp://g:g@127.0.0.1:5702/,", "v1"),
            "amqp://g:g@127.0.0.1:5701/v1,amqp://g:g@127.0.0.1:5702/v1"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).rev().collect()).unwrap();
        assert_eq!(
            (p.n, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms),
            (100, 50.0, 90.0, 99.0, 100.0)
        );
        let one = Percentiles::of(vec![3.0]).unwrap();
        assert_eq!((one.p50_ms, one.max_ms), (3.0, 3.0));
        assert!(Percentiles::of(Vec::new()).is_none());
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak_rss() {
        assert!(cpu_seconds(None).is_some_and(|s| s >= 0.0));
        assert!(peak_rss_mib(None).is_some_and(|m| m > 0.0));
    }

    #[test]
    fn processes_are_found_by_their_command_name() {
        let me = std::process::id();
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert!(pids_named(comm.trim()).contains(&me));
        assert!(!pids_named("no-such-command-here").contains(&me));
        // A snapshot of nothing counts every process found later from zero.
        assert!(postgres_cpu_since(&std::collections::HashMap::new()) >= 0.0);
    }
}
