//! `monitor`: live view of benchop workers and tasks. Configuration: `monitor --help`.

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "benchop monitor: live workers and tasks from the event stream"
)]
struct Cli {
    #[command(flatten)]
    config: monitor::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "monitor=info".into()),
        )
        .init();
    let cli = Cli::parse();
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
