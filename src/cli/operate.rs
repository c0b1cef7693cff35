//! The operator commands: they need only the ledger.

use anyhow::Context;

use super::{CliError, Command};
use crate::{
    app::Parts,
    config::Settings,
    control::{
        input::{self, SelectionInput},
        Control, ControlError, InputError,
    },
    import,
    roles::heartbeat::instance_id,
    status,
};

pub(super) async fn operate(command: Command, settings: Settings) -> Result<(), CliError> {
    let parts = Parts::new(&settings, "cli")?;
    let ledger = parts.deps.ledger.clone();
    let url = &settings.ledger.url;
    ledger
        .check_version()
        .await
        .with_context(|| format!("ledger at {url}"))?;
    let control = Control::new(
        ledger.clone(),
        settings.shop.name.clone(),
        settings.consumers.names.clone(),
    );
    let now = chrono::Utc::now();
    let by = format!("cli ({})", instance_id().1);
    let result = match command {
        Command::Status => {
            let text = status::report(&ledger, now)
                .await
                .with_context(|| format!("reading the ledger at {url}"))?;
            print!("{text}");
            Ok(())
        }
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
            event,
        } => {
            let given = match (&since, entity_id) {
                (Some(_), _) => SelectionInput {
                    since,
                    until,
                    ..Default::default()
                },
                (None, true) => SelectionInput {
                    entity_ids: Some(
                        input::entity_ids("ORDERS", &orders).map_err(ControlError::Input)?,
                    ),
                    ..Default::default()
                },
                (None, false) => SelectionInput {
                    increment_ids: Some(orders),
                    ..Default::default()
                },
            };
            let selection = given.parse(now).map_err(as_flag)?;
            let total = control.count(&selection).await?;
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {pos}/{len} orders re-sent ({eta} left)",
                )
                .expect("a valid template"),
            );
            let report = control
                .resync(
                    &selection,
                    consumer.as_deref(),
                    event.as_deref(),
                    now,
                    |done| bar.set_position(done),
                )
                .await?;
            bar.finish_and_clear();
            if report.orders == 0 {
                return Err(CliError::NotFound("no order in the ledger matches".into()));
            }
            if report.rows == 0 {
                if let Some(event) = &event {
                    // Orders matched, but none has that event: it was never
                    // captured (or no consumer asked for it then). order-sync
                    // re-sends what its ledger holds; it does not rebuild an
                    // event from Magento, so say so rather than "0 rows".
                    return Err(CliError::NotFound(format!(
                        "{} order(s) matched, but the ledger holds no `{event}` event of them{}: \
                         resync re-sends only events capture recorded, and does not read them \
                         again from Magento. An event missed while capture could not read its \
                         table is recorded once it can (see `order-sync check-config --live`).",
                        report.orders,
                        consumer
                            .as_deref()
                            .map(|c| format!(" for {c}"))
                            .unwrap_or_default(),
                    )));
                }
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
        Command::Skip {
            entity_ids,
            consumer,
        } => {
            let n = control
                .skip(&entity_ids, consumer.as_deref(), &by, now)
                .await?;
            println!("{n} parked row(s) skipped; later events of these orders go on");
            Ok(())
        }
        Command::ImportSeedQueue {
            consumers,
            dry_run,
            table,
            from,
            after,
        } => {
            let go_on = match (from, after) {
                (Some(id), _) => import::GoOn::From(id),
                (None, Some(text)) => import::GoOn::After(
                    crate::control::input::parse_time("--after", &text)
                        .map_err(|e| CliError::Usage(ControlError::Input(e)))?
                        .naive_utc(),
                ),
                (None, None) => import::GoOn::AfterTable,
            };
            let consumers = if consumers.is_empty() {
                settings.consumers.names.clone()
            } else {
                for c in &consumers {
                    control.check_consumer(Some(c))?;
                }
                consumers
            };
            if let Some(t) = &table {
                if t.is_empty() || !t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ControlError::Input(InputError::new(
                        "--table",
                        "may only hold letters, digits and `_`",
                    ))
                    .into());
                }
            }
            let table = table.unwrap_or_else(|| {
                settings
                    .magento
                    .table_prefix
                    .table("ordersyncquerunner_que")
            });
            let audience = parts
                .deps
                .audience()
                .await
                .map_err(|e| {
                    CliError::Failed(
                        anyhow::Error::new(e).context("reading the consumers' websites"),
                    )
                })?
                .only(&consumers);
            let report = import::import_seed_queue(
                &parts.deps.magento,
                &ledger,
                &table,
                &audience,
                &settings.shop.name,
                go_on,
                dry_run,
                now,
            )
            .await
            .map_err(|e| {
                if e.is_caller_error() {
                    CliError::Input(format!("importing `{table}`: {e}"))
                } else {
                    CliError::Failed(anyhow::Error::new(e).context(format!("importing `{table}`")))
                }
            })?;
            print!("{}", report.render(&consumers, dry_run));
            Ok(())
        }
        Command::Purge { synced_older_than } => {
            let age = chrono::Duration::from_std(synced_older_than)
                .context("--synced-older-than is too large")?;
            let n = ledger
                .purge_synced_before(now - age)
                .await
                .context("purging")?;
            println!(
                "deleted {n} order(s) synced for every consumer before {}",
                now - age
            );
            Ok(())
        }
        _ => unreachable!("cli::run hands only operator commands here"),
    };
    parts.close().await;
    result
}

/// An input error as the CLI says it: named by its flag.
fn as_flag(mut e: InputError) -> ControlError {
    if matches!(e.field.as_str(), "since" | "until") {
        e.field = format!("--{}", e.field);
    }
    ControlError::Input(e)
}

async fn show(control: &Control, order: &str, by_entity: bool, json: bool) -> Result<(), CliError> {
    let ledger = control.ledger();
    let selection = if by_entity {
        SelectionInput {
            entity_ids: Some(input::entity_ids("ORDER", &[order]).map_err(ControlError::Input)?),
            ..Default::default()
        }
    } else {
        SelectionInput {
            increment_ids: Some(vec![order.to_owned()]),
            ..Default::default()
        }
    }
    .parse(chrono::Utc::now())
    .map_err(ControlError::Input)?;
    let mut found = Vec::new();
    for id in ledger
        .select_orders(&selection, 0, 100)
        .await
        .context("reading the ledger")?
    {
        if let Some((view, _)) = ledger.order(id).await.context("reading the ledger")? {
            found.push(view);
        }
    }
    if found.is_empty() {
        return Err(CliError::NotFound(format!(
            "no order `{order}` in the ledger"
        )));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&found).context("printing the order")?
        );
    } else {
        for view in &found {
            print!("{}", status::render_order(view));
        }
    }
    Ok(())
}
