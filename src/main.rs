//! The `cdr-exporter` command line: parse flags, load the config, set up logging, run.

use std::path::PathBuf;

use anyhow::Context;
use cdr_exporter::config::{Config, LogFormat, Overrides};
use clap::Parser;

/// CDR receiver for Cisco Meeting Server and Prometheus exporter.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML configuration file (optional: built-in defaults apply without one).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on [config: listen, default 0.0.0.0:19477].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Directory for the exporter's state [config: data_dir, default ./data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Log level or tracing filter [config: log_level, default info].
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Print the effective configuration as TOML and exit.
    #[arg(long)]
    print_config: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let overrides = Overrides {
        listen: cli.listen,
        data_dir: cli.data_dir,
        log_level: cli.log_level,
    };
    let cfg = Config::load(cli.config.as_deref(), &overrides)?;
    if cli.print_config {
        print!("{}", toml_string(&cfg)?);
        return Ok(());
    }
    init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen_addr())
            .await
            .with_context(|| format!("binding {}", cfg.listen))?;
        cdr_exporter::run(cfg, listener, shutdown_signal()).await?;
        Ok(())
    })
}

fn toml_string(cfg: &Config) -> anyhow::Result<String> {
    Ok(toml::to_string_pretty(cfg)?)
}

fn init_logging(cfg: &Config) {
    let filter = tracing_subscriber::EnvFilter::new(&cfg.log_level);
    // Colour only on a terminal: log files and journald get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
