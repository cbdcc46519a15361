//! `monitor`: live dashboard of benchop's workers, tasks, jobs and queues. Configuration: `monitor --help`.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "benchop monitor: live workers, tasks, jobs and queues from the event stream, with history, \
             charts, controls and metrics"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    config: monitor::Config,
}

#[derive(Subcommand)]
enum Command {
    /// Push many tasks' events through the fold and the history store; print events/s, CPU per task and
    /// memory per retained task.
    Bench {
        /// Tasks to simulate (about 3 events each).
        #[arg(long, alias = "events", default_value_t = 50_000)]
        tasks: usize,
        /// SQLite file to write (default: a temporary file, removed afterwards).
        #[arg(long)]
        db: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "monitor=info".into()),
        )
        .init();
    let cli = Cli::parse();
    if let Some(Command::Bench { tasks, db }) = cli.command {
        return tokio::task::spawn_blocking(move || monitor::bench::run(tasks, db)).await?;
    }
    let token = tokio_util::sync::CancellationToken::new();
    let shutdown = token.clone();
    tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        shutdown.cancel();
    });
    monitor::run(cli.config, token).await
}
