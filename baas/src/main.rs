//! `baas`: the benchop HTTP service over RabbitMQ. Configuration: `baas --help`.

use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "benchop as a service: HTTP API, job store, task publisher, result consumer"
)]
struct Cli {
    #[command(flatten)]
    config: baas::Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "baas=info,tower_http=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let token = tokio_util::sync::CancellationToken::new();
    tokio::spawn(shutdown_on_signal(token.clone()));
    baas::run(cli.config, token).await?;
    Ok(())
}

async fn shutdown_on_signal(token: tokio_util::sync::CancellationToken) {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        tracing::error!("cannot listen for SIGTERM");
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
    token.cancel();
}
