//! The `order-sync` binary: parses the command line, loads settings, starts
//! logging and hands off to the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use order_sync::{
    app::{self, Parts, Roles},
    config, ledger, telemetry,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "order-sync",
    version,
    about = "Magento order sync over RabbitMQ, outside checkout."
)]
struct Cli {
    /// Settings file (TOML) overriding the defaults; env ORDER_SYNC__* overrides both.
    #[arg(long, short, global = true, env = "ORDER_SYNC_CONFIG")]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run capture, relay and ack listener in one process (the usual way).
    Run,
    /// Run only capture (Magento → RabbitMQ).
    Capture,
    /// Run only the relay and the ack listener (RabbitMQ → sync services → ledger).
    Relay,
    /// Declare every exchange, queue and binding, and print them.
    Topology,
    /// Create the ledger database if missing and bring its tables up to date.
    Migrate,
    /// Load and validate the settings, print them (passwords hidden) and exit.
    CheckConfig,
    /// Print the ledger's rows by consumer and state, and the running instances.
    Status,
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // Built by hand rather than with #[tokio::main] so the line above runs
    // before the runtime's worker threads exist.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("order-sync: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async_main())
}

/// glibc gives every thread that allocates its own malloc arena (up to eight
/// per core), each keeping memory it freed; for a small service that is most of
/// its resident size. Two arenas are plenty for a handful of threads.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable; it is called before any
    // other thread exists, and M_ARENA_MAX is a valid parameter for glibc.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

async fn async_main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match config::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("order-sync: {e}");
            return ExitCode::from(2);
        }
    };
    let format = if cli.log_json {
        config::LogFormat::Json
    } else {
        settings.log.format
    };
    telemetry::init(format, &settings.log.filter);
    match run(cli.command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let message = report(&e);
            tracing::error!(error = %message, "order-sync failed.");
            eprintln!("order-sync: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, each said once: our typed errors already quote
/// their source's text, so a cause already contained in its parent is skipped.
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

async fn run(command: Command, settings: config::Settings) -> anyhow::Result<()> {
    match command {
        Command::Run => serve(settings, Roles::ALL).await,
        Command::Capture => serve(settings, Roles::CAPTURE).await,
        Command::Relay => serve(settings, Roles::RELAY).await,
        Command::Topology => {
            let parts = Parts::new(&settings, "topology")?;
            parts
                .broker
                .declare_topology()
                .await
                .context("declaring the topology")?;
            print!("{}", app::topology(&settings).describe());
            parts.close().await;
            Ok(())
        }
        Command::Migrate => {
            ledger::ensure_database(&settings.ledger)
                .await
                .with_context(|| {
                    format!("creating the ledger database at {}", settings.ledger.url)
                })?;
            let parts = Parts::new(&settings, "migrate")?;
            let version = parts
                .ledger
                .migrate()
                .await
                .with_context(|| format!("migrating the ledger at {}", settings.ledger.url))?;
            println!(
                "ledger at {} is at schema version {version}",
                settings.ledger.url
            );
            parts.close().await;
            Ok(())
        }
        Command::Status => {
            let parts = Parts::new(&settings, "status")?;
            let text = order_sync::status::report(&parts.ledger, chrono::Utc::now())
                .await
                .with_context(|| format!("reading the ledger at {}", settings.ledger.url))?;
            print!("{text}");
            parts.close().await;
            Ok(())
        }
        Command::CheckConfig => {
            println!("{settings:#?}");
            Ok(())
        }
    }
}

async fn serve(settings: config::Settings, roles: Roles) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let parts = Parts::new(&settings, "run")?;
    let run = parts.run(roles, shutdown.clone());
    tokio::pin!(run);
    tokio::select! {
        r = &mut run => r?,
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(app::SHUTDOWN_GRACE).await;
        } => anyhow::bail!("roles did not stop within {:?} of the shutdown signal", app::SHUTDOWN_GRACE),
    }
    Ok(())
}

/// Cancels on SIGINT or SIGTERM: roles stop taking work, finish the unit in hand.
async fn stop_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
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
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("Shutdown signal received; finishing the work in hand.");
    shutdown.cancel();
}
