//! The `order-sync` binary: parses the command line, loads settings, starts
//! logging and hands off to the library.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use order_sync::{
    app::{self, Parts, Roles},
    config,
    control::{Control, ControlError},
    demo::DemoShop,
    ledger::{self, Selection},
    telemetry,
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
    Topology {
        /// Declare nothing; print them in RabbitMQ's definitions format (JSON)
        /// for this vhost, to import into a broker set up ahead of order-sync.
        #[arg(long, value_name = "VHOST")]
        definitions: Option<String>,
    },
    /// Create the ledger database if missing and bring its tables up to date.
    Migrate,
    /// Load and validate the settings, print them (passwords hidden) and exit.
    CheckConfig,
    /// Print the ledger's rows by consumer and state, pauses, and the running instances.
    Status,
    /// Show one order: each consumer's state, attempts, times and last error.
    /// Exits 3 when the ledger has no such order.
    Show {
        /// Magento increment id (or entity id with --entity-id).
        order: String,
        /// ORDER is an entity_id.
        #[arg(long)]
        entity_id: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Send orders again: given increment ids, or those placed in a range.
    /// Synced rows too: a re-send is a new request, with a new message_id.
    /// Exits 3 when nothing matched.
    Resync {
        /// Magento increment ids (or entity ids with --entity-id).
        #[arg(required_unless_present = "since", conflicts_with = "since")]
        orders: Vec<String>,
        /// The ORDERS are entity_ids.
        #[arg(long)]
        entity_id: bool,
        /// Orders placed at or after this (UTC): 2026-11-27 or 2026-11-27T10:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// ... and before this (default: now).
        #[arg(long, requires = "since")]
        until: Option<String>,
        /// Only to this consumer.
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Stop publishing (to one consumer, or all). Capture keeps recording
    /// orders into the ledger and acks are still applied; nothing is sent until resumed.
    Pause {
        #[arg(long)]
        consumer: Option<String>,
        /// Shown on the status page and by `status`.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a pause (one consumer's, or every one). What was held goes out on
    /// the next re-delivery round.
    Resume {
        #[arg(long)]
        consumer: Option<String>,
    },
    /// Give parked rows their deliveries back (these orders' by entity_id, or all).
    Unpark {
        /// entity_ids; all parked rows when none are given.
        entity_ids: Vec<u32>,
        #[arg(long)]
        consumer: Option<String>,
    },
    /// See it work without a Magento: creates a demo Magento database (its name
    /// must contain `demo`), places orders at a rate, runs the pipeline and an
    /// acking sync service per consumer. Status page on http.listen.
    Demo {
        #[command(flatten)]
        demo: DemoArgs,
        /// Share of first deliveries the demo sync services fail on purpose.
        #[arg(long, default_value_t = 0.1)]
        fail_rate: f64,
    },
    /// Only place demo orders (into a demo Magento database).
    DemoOrders {
        #[command(flatten)]
        demo: DemoArgs,
    },
    /// Only run a demo sync service that acks every order of one consumer.
    DemoConsumer {
        #[arg(long)]
        consumer: String,
        #[arg(long, default_value_t = 0.0)]
        fail_rate: f64,
    },
    /// Delete orders synced for every consumer longer ago than the given age.
    /// Never deletes an order with a row in any other state.
    Purge {
        /// e.g. `7d`, `12h`.
        #[arg(long, value_parser = humantime::parse_duration)]
        synced_older_than: std::time::Duration,
    },
}

/// What the demo commands share.
#[derive(clap::Args)]
struct DemoArgs {
    /// Orders placed per second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Stop placing orders after this many (default: go on until stopped).
    #[arg(long)]
    orders: Option<u64>,
}

/// Exit code when the orders named were not found (scripts can tell it from a failure).
const NOT_FOUND: u8 = 3;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NotFound(String);

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
        Err(e) if e.downcast_ref::<NotFound>().is_some() => {
            eprintln!("order-sync: {e}");
            ExitCode::from(NOT_FOUND)
        }
        Err(e)
            if e.downcast_ref::<ControlError>()
                .is_some_and(|c| !matches!(c, ControlError::Ledger(_))) =>
        {
            eprintln!("order-sync: {e}");
            ExitCode::from(2)
        }
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
        Command::Topology {
            definitions: Some(vhost),
        } => {
            let defs = app::topology(&settings).definitions(&vhost);
            println!("{}", serde_json::to_string_pretty(&defs)?);
            Ok(())
        }
        Command::Topology { definitions: None } => {
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
        Command::Demo { demo, fail_rate } => {
            let shop = DemoShop::prepare(&settings).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            let parts = Parts::new(&settings, "demo")?;
            // Ledger and queues first, so the demo sync services find their queues.
            if !parts.prepare(Roles::ALL, &shutdown).await? {
                return Ok(());
            }
            let mut tasks = tokio::task::JoinSet::new();
            for name in settings.consumers.push() {
                let (settings, token) = (settings.clone(), shutdown.clone());
                tasks.spawn(async move {
                    order_sync::demo::run_consumer(&settings, &name, fail_rate, token).await;
                    Ok(())
                });
            }
            let token = shutdown.clone();
            tasks.spawn(async move {
                shop.place_orders(demo.rate, demo.orders, &token)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            });
            if settings.http.enabled {
                eprintln!(
                    "order-sync demo: status page on http://{}/ (Ctrl-C stops)",
                    settings.http.listen
                );
            }
            let result = parts.run(Roles::ALL, shutdown.clone()).await;
            shutdown.cancel();
            while let Some(done) = tasks.join_next().await {
                done??;
            }
            Ok(result?)
        }
        Command::DemoOrders { demo } => {
            let shop = DemoShop::prepare(&settings).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            let n = shop.place_orders(demo.rate, demo.orders, &shutdown).await?;
            println!("placed {n} demo order(s)");
            Ok(())
        }
        Command::DemoConsumer {
            consumer,
            fail_rate,
        } => {
            if !settings.consumers.push().contains(&consumer) {
                return Err(ControlError::UnknownConsumer(
                    consumer,
                    settings.consumers.push().join(", "),
                )
                .into());
            }
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            order_sync::demo::run_consumer(&settings, &consumer, fail_rate, shutdown).await;
            Ok(())
        }
        other => operate(other, settings).await,
    }
}

/// The operator commands: they need only the ledger.
async fn operate(command: Command, settings: config::Settings) -> anyhow::Result<()> {
    let parts = Parts::new(&settings, "cli")?;
    parts
        .ledger
        .check_version()
        .await
        .with_context(|| format!("ledger at {}", settings.ledger.url))?;
    let control = Control::new(
        parts.ledger.clone(),
        settings.shop.name.clone(),
        settings.consumers.names.clone(),
    );
    let now = chrono::Utc::now();
    let by = format!("cli ({})", app::instance_id().1);
    let result = match command {
        Command::Show {
            order,
            entity_id,
            json,
        } => show(&control, &order, entity_id, json).await,
        Command::Resync {
            orders,
            entity_id,
            since,
            until,
            consumer,
        } => {
            let selection = if let Some(since) = since {
                let at = |flag: &str, v: &str| {
                    ledger::parse_time(v).ok_or_else(|| {
                        ControlError::BadRequest(format!(
                            "{flag}: `{v}` is not a date like 2026-11-27 or 2026-11-27T10:00:00Z"
                        ))
                    })
                };
                Selection::Placed {
                    since: at("--since", &since)?,
                    until: match until {
                        Some(u) => at("--until", &u)?,
                        None => now,
                    },
                }
            } else if entity_id {
                Selection::EntityIds(
                    orders
                        .iter()
                        .map(|o| {
                            o.parse().map_err(|_| {
                                ControlError::BadRequest(format!("`{o}` is not an entity_id"))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )
            } else {
                Selection::IncrementIds(orders)
            };
            let total = control.count(&selection).await?;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} orders re-sent ({eta} left)",
                )
                .expect("valid template"),
            );
            let report = control
                .resync(&selection, consumer.as_deref(), now, |done| {
                    bar.set_position(done)
                })
                .await?;
            bar.finish_and_clear();
            if report.orders == 0 {
                return Err(NotFound("no order in the ledger matches".into()).into());
            }
            println!(
                "re-sending {} order(s): {} ledger row(s) are pending again",
                report.orders, report.rows
            );
            Ok(())
        }
        Command::Pause { consumer, reason } => {
            control
                .pause(consumer.as_deref(), &by, reason.as_deref(), now)
                .await?;
            println!(
                "publishing to {} is paused; capture goes on recording orders",
                consumer.as_deref().unwrap_or("all consumers")
            );
            Ok(())
        }
        Command::Resume { consumer } => {
            let lifted = control.resume(consumer.as_deref()).await?;
            println!(
                "{}",
                if lifted {
                    "resumed: held orders go out on the next re-delivery round"
                } else {
                    "nothing was paused"
                }
            );
            Ok(())
        }
        Command::Unpark {
            entity_ids,
            consumer,
        } => {
            let only = (!entity_ids.is_empty()).then_some(entity_ids.as_slice());
            let n = control.unpark(only, consumer.as_deref(), now).await?;
            println!("{n} parked row(s) are pending again");
            Ok(())
        }
        Command::Purge { synced_older_than } => {
            let age = chrono::Duration::from_std(synced_older_than)
                .context("--synced-older-than is too large")?;
            let n = parts.ledger.purge_synced_before(now - age).await?;
            println!(
                "deleted {n} order(s) synced for every consumer before {}",
                now - age
            );
            Ok(())
        }
        _ => unreachable!("handled in run"),
    };
    parts.close().await;
    result
}

async fn show(control: &Control, order: &str, by_entity: bool, json: bool) -> anyhow::Result<()> {
    let ledger = control.ledger();
    let ids = if by_entity {
        vec![order
            .parse::<u32>()
            .map_err(|_| ControlError::BadRequest(format!("`{order}` is not an entity_id")))?]
    } else {
        ledger
            .select_orders(&Selection::IncrementIds(vec![order.to_owned()]), 0, 100)
            .await?
    };
    let mut found = Vec::new();
    for id in ids {
        if let Some((view, _)) = ledger.order(id).await? {
            found.push(view);
        }
    }
    if found.is_empty() {
        return Err(NotFound(format!("no order `{order}` in the ledger")).into());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        for view in &found {
            print!("{}", order_sync::status::render_order(view));
        }
    }
    Ok(())
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
