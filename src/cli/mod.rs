//! The command line: what each command does, and the exit code each failure
//! ends with — 0 ok, 1 failure, 2 configuration or usage error, 3 nothing
//! matched — chosen by the type of the error ([`CliError`]), not by its text.

mod demo;
mod operate;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{
    app::{self, Parts, Roles, StartError},
    config::{ConfigError, Settings},
    control::ControlError,
    ledger,
};

/// Exit code of a failure: a service, the ledger, anything not the caller's.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a configuration or usage error: fix the command or the settings.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the orders named were not found (scripts tell it from a failure).
pub const EXIT_NOT_FOUND: u8 = 3;

/// Why a command failed, by what the caller can do about it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A start-up problem the settings cause (the key is named).
    #[error(transparent)]
    Start(#[from] StartError),
    /// The command's arguments named something wrong.
    #[error(transparent)]
    Usage(ControlError),
    /// Nothing matched what the command named.
    #[error("{0}")]
    NotFound(String),
    /// What the command reads is not as the settings or arguments say (a
    /// missing or refused table, an import that would re-send).
    #[error("{0}")]
    Input(String),
    #[error("{}", report(.0))]
    Failed(#[from] anyhow::Error),
}

impl From<ControlError> for CliError {
    fn from(e: ControlError) -> Self {
        if e.is_caller_error() {
            CliError::Usage(e)
        } else {
            CliError::Failed(e.into())
        }
    }
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Start(_) | CliError::Usage(_) | CliError::Input(_) => {
                EXIT_USAGE
            }
            CliError::NotFound(_) => EXIT_NOT_FOUND,
            CliError::Failed(_) => EXIT_FAILURE,
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

#[derive(Parser)]
#[command(
    name = "order-sync",
    version,
    about = "Magento order sync over RabbitMQ, outside checkout."
)]
pub struct Cli {
    /// Settings file (TOML) overriding the defaults; env ORDER_SYNC__* overrides both.
    #[arg(long, short, global = true, env = "ORDER_SYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
    CheckConfig {
        /// Also check the services as start-up would: the ledger answers, and
        /// the Magento user may read every table capture will read (exit 2
        /// naming each missing grant).
        #[arg(long)]
        live: bool,
    },
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
        /// Only this event of the orders (placed, invoiced, shipped, refunded,
        /// canceled, status_changed).
        #[arg(long)]
        event: Option<String>,
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
    /// Give up on parked rows of these orders for good (recorded as skipped,
    /// with who and when): the orders' later events, which wait behind them,
    /// go on.
    Skip {
        /// entity_ids (at least one).
        #[arg(required = true)]
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
    /// Take over from the original OrderSyncQueRunner module (Magento 1): its
    /// queue table (`<magento.table_prefix>ordersyncquerunner_que`, only read)
    /// becomes ledger rows — synced where it says so, pending otherwise — and
    /// capture goes on after the last order it knew. Run `order-sync migrate`
    /// first. Running it twice changes nothing.
    ImportSeedQueue {
        /// The consumers that get rows for the imported orders, synced and
        /// pending alike (default: every one in consumers.names). A consumer
        /// left out gets none of them; `backfill` can give it them later.
        #[arg(long, value_delimiter = ',')]
        consumers: Vec<String>,
        /// Print what it would do; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The table's name, if not the module's (with the table prefix).
        #[arg(long)]
        table: Option<String>,
        /// Capture goes on from this order: orders from this entity_id on are
        /// sent as new. Needed when the module's cleanup cron deleted synced
        /// rows above the table's last one.
        #[arg(long, value_name = "ENTITY_ID", conflicts_with = "after")]
        from: Option<u32>,
        /// Capture goes on after the orders placed by then (UTC): later ones
        /// are sent as new. The other way to say where capture goes on.
        #[arg(long, value_name = "DATE")]
        after: Option<String>,
    },
    /// Give one consumer the orders it never got (placed before it was added,
    /// before order-sync started, left out of an import, or purged), read from
    /// Magento as they are now, with their invoices, shipments and credit
    /// memos for a consumer that subscribes to them; live capture goes on
    /// meanwhile. At most --window of its orders wait unsettled at a time.
    /// Run it again to go on after a stop: what it has is skipped.
    Backfill {
        /// The consumer, as in consumers.names.
        #[arg(long)]
        consumer: String,
        /// Orders placed at or after this (UTC): 2026-11-01 or 2026-11-01T10:00:00Z.
        #[arg(long)]
        since: Option<String>,
        /// ... and before this.
        #[arg(long)]
        until: Option<String>,
        /// Only orders in these states now (comma-separated).
        #[arg(long, value_delimiter = ',')]
        state: Vec<String>,
        /// Only orders of these store ids (comma-separated).
        #[arg(long, value_delimiter = ',')]
        store: Vec<u16>,
        /// Orders read and recorded per step.
        #[arg(long, default_value_t = 200)]
        chunk: u32,
        /// Most of the consumer's orders left unsettled before more are given.
        #[arg(long, default_value_t = 200)]
        window: u64,
        /// Count what it would give; change nothing.
        #[arg(long)]
        dry_run: bool,
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
pub struct DemoArgs {
    /// Orders placed per second.
    #[arg(long, default_value_t = 1.0)]
    pub rate: f64,
    /// Stop placing orders after this many (default: go on until stopped).
    #[arg(long)]
    pub orders: Option<u64>,
}

/// Runs one command with loaded settings.
pub async fn run(command: Command, settings: Settings) -> Result<(), CliError> {
    match command {
        Command::Run => serve(settings, Roles::ALL).await,
        Command::Capture => serve(settings, Roles::CAPTURE).await,
        Command::Relay => serve(settings, Roles::RELAY).await,
        Command::Topology {
            definitions: Some(vhost),
        } => {
            let defs = app::topology(&settings).definitions(&vhost, |c| {
                settings
                    .consumers
                    .options(c)
                    .broker_user
                    .clone()
                    .unwrap_or_else(|| c.to_owned())
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&defs).context("printing the definitions")?
            );
            Ok(())
        }
        Command::Topology { definitions: None } => {
            let parts = Parts::new(&settings, "topology")?;
            let declared = parts.deps.broker.declare_topology().await;
            if let Err(e) = declared {
                return Err(match app::broker_settings_error(e) {
                    Ok(wrong) => CliError::Start(wrong),
                    Err(e) => {
                        CliError::Failed(anyhow::Error::new(e).context("declaring the topology"))
                    }
                });
            }
            print!("{}", app::topology(&settings).describe());
            parts.close().await;
            Ok(())
        }
        Command::Migrate => {
            let url = &settings.ledger.url;
            let wrong_or = |e, what: String| match app::ledger_settings_error(&url.to_string(), e) {
                Ok(wrong) => CliError::Start(wrong),
                Err(e) => CliError::Failed(anyhow::Error::new(e).context(what)),
            };
            ledger::ensure_database(&settings.ledger)
                .await
                .map_err(|e| wrong_or(e, format!("creating the ledger database at {url}")))?;
            let parts = Parts::new(&settings, "migrate")?;
            let version = parts
                .deps
                .ledger
                .migrate()
                .await
                .map_err(|e| wrong_or(e, format!("migrating the ledger at {url}")))?;
            println!("ledger at {url} is at schema version {version}");
            parts.close().await;
            Ok(())
        }
        Command::CheckConfig { live } => {
            // A closed pipe (`| head`) is the reader's choice, not a failure.
            use std::io::Write;
            let _ = std::io::stdout().write_all(settings.summary().as_bytes());
            if live {
                let parts = Parts::new(&settings, "check-config")?;
                let checked = parts.check_live().await;
                parts.close().await;
                for line in checked? {
                    let _ = writeln!(std::io::stdout(), "{line}");
                }
            }
            Ok(())
        }
        Command::Demo { demo, fail_rate } => demo::demo(settings, demo, fail_rate).await,
        Command::DemoOrders { demo } => demo::orders(settings, demo).await,
        Command::DemoConsumer {
            consumer,
            fail_rate,
        } => demo::consumer(settings, consumer, fail_rate).await,
        Command::Backfill {
            consumer,
            since,
            until,
            state,
            store,
            chunk,
            window,
            dry_run,
        } => {
            backfill(
                settings, consumer, since, until, state, store, chunk, window, dry_run,
            )
            .await
        }
        other => operate::operate(other, settings).await,
    }
}

/// `order-sync backfill`, with a progress bar and a clean stop on a signal.
#[allow(clippy::too_many_arguments)]
async fn backfill(
    settings: Settings,
    consumer: String,
    since: Option<String>,
    until: Option<String>,
    state: Vec<String>,
    store: Vec<u16>,
    chunk: u32,
    window: u64,
    dry_run: bool,
) -> Result<(), CliError> {
    use crate::backfill;
    let time = |flag: &str, v: Option<String>| -> Result<_, CliError> {
        v.map(|t| {
            crate::control::input::parse_time(flag, &t)
                .map(|t| t.naive_utc())
                .map_err(|e| CliError::Usage(ControlError::Input(e)))
        })
        .transpose()
    };
    let request = backfill::Request {
        consumer,
        filter: crate::magento::BackfillFilter {
            since: time("--since", since)?,
            until: time("--until", until)?,
            states: state,
            stores: store,
        },
        chunk,
        window,
        dry_run,
    };
    let parts = Parts::new(&settings, "backfill")?;
    parts
        .deps
        .ledger
        .check_version()
        .await
        .with_context(|| format!("ledger at {}", settings.ledger.url))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} orders looked at, {msg}")
            .expect("a valid template"),
    );
    let show = |p: &backfill::Progress| {
        bar.set_length(p.total);
        bar.set_position(p.done);
        bar.set_message(if p.waiting {
            format!(
                "{} given; waiting for {} to take them",
                p.given, request.consumer
            )
        } else {
            format!("{} given", p.given)
        });
    };
    let capture = &settings.capture;
    // A real run is recorded, so the status page shows it; a dry one is not.
    let result = if dry_run {
        backfill::backfill(&parts.deps, capture, &request, show, &shutdown).await
    } else {
        match backfill::begin(&parts.deps, &request, "cli").await {
            Ok(run) => {
                backfill::carry_out(&parts.deps, capture, &request, run, show, &shutdown).await
            }
            Err(e) => Err(e),
        }
    };
    bar.finish_and_clear();
    parts.close().await;
    let report = result.map_err(|e| {
        if e.is_caller_error() {
            CliError::Input(format!("backfill: {e}"))
        } else {
            CliError::Failed(anyhow::Error::new(e).context("backfill"))
        }
    })?;
    print!("{}", report.render(&request.consumer, dry_run));
    Ok(())
}

async fn serve(settings: Settings, roles: Roles) -> Result<(), CliError> {
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
        } => return Err(anyhow::anyhow!(
            "roles did not stop within {:?} of the shutdown signal",
            app::SHUTDOWN_GRACE
        )
        .into()),
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
