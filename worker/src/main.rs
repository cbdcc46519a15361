//! `worker`: consume benchop tasks from RabbitMQ. Configuration: `worker --help`.

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "benchop worker: prices tasks from RabbitMQ and publishes their results"
)]
struct Cli {
    #[command(flatten)]
    config: worker::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "worker=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(shutdown_on_signal(token.clone()));
    worker::run(cli.config, token).await?;
    Ok(())
}

async fn shutdown_on_signal(token: tokio_util::sync::CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}
