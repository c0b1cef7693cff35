//! The demo commands: a fake Magento shop, the pipeline, and acking sync services.

use tokio_util::sync::CancellationToken;

use super::{stop_on_signal, CliError, DemoArgs};
use crate::{
    app::{Parts, Roles},
    config::Settings,
    control::ControlError,
    demo::{self, DemoShop},
};

/// `order-sync demo`: everything in one process.
pub(super) async fn demo(
    settings: Settings,
    args: DemoArgs,
    fail_rate: f64,
) -> Result<(), CliError> {
    let shop = DemoShop::prepare(&settings)
        .await
        .map_err(anyhow::Error::from)?;
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
            demo::run_consumer(&settings, &name, fail_rate, token).await;
            Ok(())
        });
    }
    let token = shutdown.clone();
    tasks.spawn(async move {
        shop.place_orders(args.rate, args.orders, &token)
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
        done.map_err(anyhow::Error::from)??;
    }
    result?;
    Ok(())
}

/// `order-sync demo-orders`: only place orders.
pub(super) async fn orders(settings: Settings, args: DemoArgs) -> Result<(), CliError> {
    let shop = DemoShop::prepare(&settings)
        .await
        .map_err(anyhow::Error::from)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let n = shop
        .place_orders(args.rate, args.orders, &shutdown)
        .await
        .map_err(anyhow::Error::from)?;
    println!("placed {n} demo order(s)");
    Ok(())
}

/// `order-sync demo-consumer`: only one acking sync service.
pub(super) async fn consumer(
    settings: Settings,
    consumer: String,
    fail_rate: f64,
) -> Result<(), CliError> {
    let push = settings.consumers.push();
    if !push.contains(&consumer) {
        return Err(ControlError::UnknownConsumer(consumer, push.join(", ")).into());
    }
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    demo::run_consumer(&settings, &consumer, fail_rate, shutdown).await;
    Ok(())
}
