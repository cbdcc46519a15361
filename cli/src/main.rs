//! `benchop`: rank the methods for a BENCHOP problem on this machine, serve the whole stack in one
//! process, or drive a running server (submit, status, watch, cancel, leaderboard, plot). The distributed
//! services are the `baas`, `worker` and `monitor` binaries.

mod admin;
mod bench;
mod client;
mod loadtest;
mod progress;
mod standalone;
mod table;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use benchop::{MethodId, catalogue};
use protocol::api::{JobRequest, MethodView, ProblemView};

/// Tasks the in-process monitor of `benchop serve` remembers.
const MONITOR_MAX_TASKS: usize = 10_000;

#[derive(Parser)]
#[command(
    version,
    about = "Which numerical method prices this option fastest at the accuracy I need?"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Rank every applicable method on a BENCHOP problem, here, in this process (no RabbitMQ).
    Rank {
        /// Problem id, e.g. 1aI, 1bI, 4a (see `benchop problems`).
        problem: String,
        /// Comma-separated methods to compare (default: every method that applies).
        #[arg(long, value_delimiter = ',')]
        methods: Option<Vec<String>>,
        /// Relative-error tolerance to reach.
        #[arg(long, default_value_t = protocol::api::DEFAULT_TOLERANCE)]
        tolerance: f64,
        /// Timed runs per method after one warm-up run.
        #[arg(long, default_value_t = protocol::api::DEFAULT_REPEATS)]
        repeats: u32,
        /// In-process workers (1 keeps timings comparable: kernels use every core).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Print the job as JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also show min and median times, threads, worker and the values.
        #[arg(long)]
        wide: bool,
    },
    /// Serve the HTTP API with in-process workers: the whole stack in one process, no RabbitMQ.
    Serve {
        /// Address of the HTTP API.
        #[arg(long, env = "BAAS_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Directory of the job store.
        #[arg(long, env = "BENCHOP_DATA_DIR", default_value = "data")]
        data_dir: PathBuf,
        /// In-process workers.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Address of the monitor page and its JSON API.
        #[arg(long, env = "MONITOR_ADDR", default_value = "127.0.0.1:5555")]
        monitor_addr: SocketAddr,
    },
    /// The BENCHOP table on this machine: every case × method tuned to the tolerance and timed on one
    /// core and on all cores (optionally beside QuantLib: `--quantlib`).
    Bench {
        /// Comma-separated case ids (default: every case).
        #[arg(long, value_delimiter = ',')]
        cases: Vec<String>,
        /// Comma-separated method ids (default: every method that applies).
        #[arg(long, value_delimiter = ',')]
        methods: Vec<String>,
        /// Relative-error tolerance to reach.
        #[arg(long, default_value_t = protocol::api::DEFAULT_TOLERANCE)]
        tolerance: f64,
        /// Timed runs after one warm-up run.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Seconds one method may spend on one case (tuning and timing). The default lets every catalogue
        /// pair finish on two cores (the slowest, mc on SLV-SABR-I, takes about 135 s).
        #[arg(long, default_value_t = 180)]
        time_limit: u64,
        /// Also time QuantLib's engines (scripts/quantlib_bench.py; needs `pip install QuantLib`).
        #[arg(long)]
        quantlib: bool,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
        /// Also show the ladder level and QuantLib's engine.
        #[arg(long)]
        wide: bool,
    },
    /// List the BENCHOP problems.
    Problems {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the methods and the problems they apply to.
    Methods {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Submit a job to a server; with --wait, follow it and print the ranking.
    Submit {
        #[command(flatten)]
        job: client::SubmitArgs,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Table columns: also the wide ones (min and median times, threads, …).
        #[arg(long)]
        wide: bool,
    },
    /// Show a job: status, progress and ranking.
    Status {
        /// Job id.
        id: String,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Table columns: also the wide ones (min and median times, threads, …).
        #[arg(long)]
        wide: bool,
    },
    /// Follow a job to its end with a progress bar (server-sent events, polling as a fallback).
    Watch {
        /// Job id.
        id: String,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Table columns: also the wide ones (min and median times, threads, …).
        #[arg(long)]
        wide: bool,
    },
    /// Cancel a job: its tasks without a result are revoked.
    Cancel {
        /// Job id.
        id: String,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Table columns: also the wide ones (min and median times, threads, …).
        #[arg(long)]
        wide: bool,
    },
    /// Share a job: `share job:<id> bob read` (or `manage`), `share job:<id> --public`, or
    /// `share job:<id> --link --expires 7d` for a link anyone may read it with until it expires.
    Share {
        /// `job:<id>`.
        target: String,
        /// The user to share with (omit with --public or --link).
        #[arg(required_unless_present_any = ["public", "link"], conflicts_with_all = ["public", "link"])]
        user: Option<String>,
        /// `read` (view, download) or `manage` (also cancel, retry, share).
        #[arg(default_value = "read")]
        level: protocol::accounts::ShareLevel,
        /// Make the job public instead (everyone may read it; it counts on leaderboards).
        #[arg(long, conflicts_with = "link")]
        public: bool,
        /// Print a share link instead: anyone who has it may read the job until it expires.
        #[arg(long)]
        link: bool,
        /// With --link: how long it works (7d, 12h, 30m).
        #[arg(long, default_value = protocol::accounts::DEFAULT_LINK_LIFETIME, requires = "link")]
        expires: String,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop sharing a job: `unshare job:<id> bob`, or `unshare job:<id> --public` to make it private.
    Unshare {
        /// `job:<id>`.
        target: String,
        /// The user to stop sharing with (omit with --public).
        #[arg(required_unless_present = "public", conflicts_with = "public")]
        user: Option<String>,
        /// Make the job private again instead.
        #[arg(long)]
        public: bool,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// A problem's leaderboard across every completed job on the server.
    Leaderboard {
        /// Problem id.
        problem: String,
        /// Tolerance of the runs (default 1e-4).
        #[arg(long)]
        tolerance: Option<f64>,
        #[command(flatten)]
        remote: client::Remote,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Table columns: also the wide ones (min and median times, threads, …).
        #[arg(long)]
        wide: bool,
    },
    /// Download a job's (or with --problem a leaderboard's) chart as SVG.
    Plot {
        /// Job id.
        #[arg(required_unless_present = "problem", conflicts_with = "problem")]
        id: Option<String>,
        /// Plot this problem's leaderboard instead of a job.
        #[arg(long)]
        problem: Option<String>,
        /// Chart kind.
        #[arg(long, value_enum, default_value = "work-precision")]
        kind: client::PlotKind,
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        remote: client::Remote,
        /// Print a JSON note about the written file.
        #[arg(long)]
        json: bool,
    },
    /// Load-test the real system over RabbitMQ: trivial tasks through baas and worker processes, beside
    /// the bare broker's ceiling (tasks/s, round-trip percentiles, CPU per task, peak memory).
    Loadtest(loadtest::Args),
    /// Users and API tokens, on the job store directly (make the first admin here): `admin user add`,
    /// `admin user list`, `admin token create`, `admin token list`, `admin token revoke`.
    Admin(admin::AdminArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("benchop: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<client::ClientError>() {
            Some(client_error) => {
                eprintln!("benchop: {client_error}");
                ExitCode::from(client_error.exit_code())
            }
            None => {
                eprintln!("benchop: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Rank {
            problem,
            methods,
            tolerance,
            repeats,
            workers,
            json,
            wide,
        } => {
            let mut request = JobRequest::for_problem(&problem);
            request.methods = methods;
            request.tolerance = Some(tolerance);
            request.repeats = Some(repeats);
            // Validate before starting anything, so a typo is a one-line error.
            let valid = request
                .validate()
                .map_err(|e| anyhow::anyhow!(client::refusal(&e)))?;
            if !json {
                // Before the progress lines: they redraw the lines below this one.
                let n = valid.methods.len();
                eprintln!("{}: {}", valid.problem.id(), valid.problem.title());
                eprintln!(
                    "ranking {n} method{} to relerr {:.0e}, {} timed run{} each",
                    if n == 1 { "" } else { "s" },
                    valid.tolerance,
                    valid.repeats,
                    if valid.repeats == 1 { "" } else { "s" },
                );
            }
            let token = CancellationToken::new();
            // One progress line per method on a terminal's stderr; none for --json.
            let events: Arc<dyn protocol::EventSink> = if json {
                Arc::new(protocol::NoEvents)
            } else {
                Arc::new(progress::MethodLines::new(valid.methods.iter().map(|m| m.name())))
            };
            let state = standalone::start(baas::Store::open(None)?, workers, events, &token);
            let accepted = baas::jobs::submit(&state, request).await?;
            let view = baas::jobs::wait_finished(&state, accepted.id).await?;
            token.cancel();
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                println!("{}", table::ranking(&view, table::Layout::for_stdout(wide)));
            }
        }
        Command::Serve {
            addr,
            data_dir,
            workers,
            monitor_addr,
        } => {
            std::fs::create_dir_all(&data_dir)?;
            let token = CancellationToken::new();
            let store = baas::Store::open(Some(&data_dir.join("baas.db")))?;
            let monitor_state: monitor::Shared = Arc::new(std::sync::Mutex::new(monitor::MonitorState::new(
                MONITOR_MAX_TASKS,
            )));
            let events = Arc::new(monitor::StateSink(Arc::clone(&monitor_state)));
            let state = standalone::start(store, workers, events, &token);
            let listener = tokio::net::TcpListener::bind(addr).await?;
            let monitor_listener = tokio::net::TcpListener::bind(monitor_addr).await?;
            eprintln!(
                "benchop: API on http://{}, monitor on http://{}, {workers} in-process worker(s)",
                listener.local_addr()?,
                monitor_listener.local_addr()?
            );
            let shutdown = token.clone();
            tokio::spawn(async move {
                let _ = tokio::signal::ctrl_c().await;
                shutdown.cancel();
            });
            let monitor_app = monitor::app(monitor_state);
            let monitor_token = token.clone();
            tokio::spawn(async move {
                axum::serve(monitor_listener, monitor_app)
                    .with_graceful_shutdown(monitor_token.cancelled_owned())
                    .await
            });
            baas::routes::serve(listener, state, token).await?;
        }
        Command::Bench {
            cases,
            methods,
            tolerance,
            repeats,
            time_limit,
            quantlib,
            json,
            wide,
        } => {
            let opts = bench::Options {
                cases,
                methods,
                tolerance,
                repeats,
                time_limit: std::time::Duration::from_secs(time_limit.max(1)),
                quantlib,
            };
            let rows = tokio::task::spawn_blocking(move || bench::run(&opts)).await??;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                println!("{}", bench::table(&rows, table::Layout::for_stdout(wide)));
                print!("{}", bench::winners(&rows));
            }
        }
        Command::Problems { json } => {
            let views: Vec<_> = catalogue::cases().iter().map(ProblemView::from_case).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for v in views {
                    println!(
                        "{:<12} {:<9} {}  [{}]",
                        v.id,
                        v.set,
                        v.title,
                        v.methods.join(", ")
                    );
                }
            }
        }
        Command::Methods { json } => {
            let views: Vec<_> = MethodId::ALL.into_iter().map(MethodView::from_method).collect();
            if json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                for v in views {
                    println!(
                        "{:<12} {}\n{:<12} applies to: {}",
                        v.id,
                        v.description,
                        "",
                        v.problems.join(", ")
                    );
                }
            }
        }
        Command::Submit {
            job,
            remote,
            json,
            wide,
        } => client::submit(&remote, job, json, table::Layout::for_stdout(wide)).await?,
        Command::Status {
            id,
            remote,
            json,
            wide,
        } => client::status(&remote, &id, json, table::Layout::for_stdout(wide)).await?,
        Command::Watch {
            id,
            remote,
            json,
            wide,
        } => client::watch(&remote, &id, json, table::Layout::for_stdout(wide)).await?,
        Command::Cancel {
            id,
            remote,
            json,
            wide,
        } => client::cancel(&remote, &id, json, table::Layout::for_stdout(wide)).await?,
        Command::Share {
            target,
            link: true,
            expires,
            remote,
            json,
            ..
        } => client::link(&remote, &target, &expires, json).await?,
        Command::Share {
            target,
            user,
            level,
            remote,
            json,
            ..
        } => client::share(&remote, &target, user.as_deref(), Some(level), json).await?,
        Command::Unshare {
            target,
            user,
            public: _,
            remote,
            json,
        } => client::share(&remote, &target, user.as_deref(), None, json).await?,
        Command::Leaderboard {
            problem,
            tolerance,
            remote,
            json,
            wide,
        } => {
            let layout = table::Layout::for_stdout(wide);
            client::leaderboard(&remote, &problem, tolerance, json, layout).await?
        }
        Command::Plot {
            id,
            problem,
            kind,
            output,
            remote,
            json,
        } => {
            let target = match (id, problem) {
                (Some(id), _) => client::PlotTarget::Job(id),
                (None, Some(p)) => client::PlotTarget::Problem(p),
                (None, None) => anyhow::bail!("give a job id or --problem"),
            };
            client::plot(&remote, target, kind, output, json).await?
        }
        Command::Loadtest(args) => loadtest::run(args).await?,
        Command::Admin(args) => admin::run(args).await?,
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "benchop", &mut std::io::stdout());
        }
    }
    Ok(())
}
