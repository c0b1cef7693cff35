//! A sync service in Rust, built on order-sync's consumer helper: it receives
//! each order of one consumer's queue and reports the result; the helper
//! publishes the ack, acknowledges the message only after that, skips orders it
//! already synced, dead-letters what is not an order, and reconnects.
//!
//!   AMQP_URL=amqp://erp:erp@127.0.0.1:5672/%2f PREFIX=demo CONSUMER=erp \
//!     cargo run --example consumer
//!
//! Replace the body of `sync_order` with the call to your ERP, warehouse or CRM.

use order_sync_consumer::{OrderMessage, SyncConsumer};
use tokio_util::sync::CancellationToken;

/// Sends one order to the remote system. `Err(text)` reports a failure:
/// order-sync delivers the order again later, with back-off, and shows the
/// text on its status page.
async fn sync_order(msg: OrderMessage) -> Result<(), String> {
    let order = &msg.order;
    println!(
        "order {} (entity_id {}), attempt {}: {} item(s), grand total {} {}",
        order["increment_id"].as_str().unwrap_or("?"),
        order["entity_id"],
        msg.attempt,
        order["items"].as_array().map_or(0, Vec::len),
        order["grand_total"].as_str().unwrap_or("?"),
        order["order_currency_code"].as_str().unwrap_or(""),
    );
    Ok(())
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let consumer = SyncConsumer::new(
        &var("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        &var("PREFIX", "demo"),
        &var("CONSUMER", "erp"),
    );
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    consumer.run(sync_order, shutdown).await;
}
