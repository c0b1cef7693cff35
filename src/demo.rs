//! A demo shop, to see order-sync work without a Magento: creates the real
//! Magento 2 sales schema in a database of its own, places orders at a steady
//! rate the way checkout does, and runs acking sync services. It refuses any
//! database whose name does not contain `demo`: it writes fake orders.

use std::time::Duration;

use mysql_async::{prelude::*, Pool, TxOpts};
use tokio_util::sync::CancellationToken;

use crate::{broker::sync_consumer, config::Settings, db, roles::sleep_or_shutdown};

/// The Magento 2.4 sales tables, derived from the reference dump (deploy/magento).
pub const MAGENTO2_SCHEMA: &str = concat!(
    include_str!("../deploy/magento/magento2-sales-schema.sql"),
    include_str!("../deploy/magento/magento2-sales-documents-schema.sql")
);

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo writes fake orders, so it only runs against a Magento database whose name contains `demo`; magento.url names `{0}`")]
    NotADemoDatabase(String),
    #[error("the demo shop is a Magento 2 shop: set magento.version = 2")]
    NotMagento2,
    #[error("magento.url: {0}")]
    Url(#[from] db::DbUrlError),
    #[error("demo Magento database: {0}")]
    Db(#[from] mysql_async::Error),
}

/// The demo Magento database: checked to be one, created with the schema if new.
pub struct DemoShop {
    pool: Pool,
}

impl DemoShop {
    pub async fn prepare(settings: &Settings) -> Result<Self, DemoError> {
        let name = db::database_name(&settings.magento.url).unwrap_or_default();
        if !name.contains("demo") {
            return Err(DemoError::NotADemoDatabase(name));
        }
        if settings.magento.version != 2 {
            return Err(DemoError::NotMagento2);
        }
        db::create_database(&settings.magento.url)
            .await
            .map_err(|e| match e {
                db::CreateError::Url(u) => DemoError::Url(u),
                db::CreateError::Db(d) => DemoError::Db(d),
            })?;
        let pool = db::pool(&settings.magento.url, 2, vec![])?;
        let mut conn = pool.get_conn().await?;
        let exists: Option<u8> = conn
            .query_first(
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = 'sales_order'",
            )
            .await?;
        if exists.is_none() {
            tracing::info!(database = %name, "Creating the demo Magento sales tables.");
            conn.query_drop(MAGENTO2_SCHEMA).await?;
        }
        drop(conn);
        Ok(Self { pool })
    }

    /// Places one order the way checkout does: the order, its items, billing and
    /// shipping addresses and payment, in one transaction. `n` varies the content.
    pub async fn place_order(&self, n: u64) -> Result<u32, DemoError> {
        const PRODUCTS: [(&str, &str, &str); 5] = [
            ("MH01-XS-Black", "Chaz Kangeroo Hoodie", "52.00"),
            ("24-MB01", "Joust Duffle Bag", "34.00"),
            ("WS12-M-Orange", "Radiant Tee", "22.00"),
            ("24-WG02", "Didi Sport Watch", "92.00"),
            ("MP01-32-Black", "Caesar Warm-Up Pant", "35.00"),
        ];
        let (sku, name, price) = PRODUCTS[(n % 5) as usize];
        let qty = 1 + n % 3;
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        tx.exec_drop(
            "INSERT INTO sales_order (state, status, store_id, customer_email, customer_firstname, \
             customer_lastname, customer_is_guest, base_currency_code, order_currency_code, \
             subtotal, grand_total, base_grand_total, shipping_amount, total_item_count, total_qty_ordered, store_name) \
             VALUES ('new', 'pending', 1, 'roni@example.com', 'Veronica', 'Costello', 0, 'USD', 'USD', \
             ? * ?, ? * ? + 5, ? * ? + 5, 5, 1, ?, 'Main Website\nMain Website Store\nDefault Store View')",
            (price, qty, price, qty, price, qty, qty),
        )
        .await?;
        let id = tx.last_insert_id().unwrap_or_default() as u32;
        tx.exec_drop(
            "UPDATE sales_order SET increment_id = LPAD(?, 9, '0') WHERE entity_id = ?",
            (id, id),
        )
        .await?;
        tx.exec_drop(
            "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, row_total) \
             VALUES (?, 1, ?, ?, 'simple', ?, ?, ? * ?)",
            (id, sku, name, qty, price, price, qty),
        )
        .await?;
        tx.exec_drop(
            "INSERT INTO sales_order_address (parent_id, address_type, firstname, lastname, street, city, postcode, country_id, telephone) \
             VALUES (?, 'billing', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US', '(555) 229-3326'), \
                    (?, 'shipping', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US', '(555) 229-3326')",
            (id, id),
        )
        .await?;
        tx.exec_drop(
            "INSERT INTO sales_order_payment (parent_id, method, amount_ordered) \
             SELECT entity_id, 'checkmo', grand_total FROM sales_order WHERE entity_id = ?",
            (id,),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Places `count` orders (forever when `None`) at `rate` per second.
    pub async fn place_orders(
        &self,
        rate: f64,
        count: Option<u64>,
        shutdown: &CancellationToken,
    ) -> Result<u64, DemoError> {
        let pause = Duration::from_secs_f64(1.0 / rate.max(0.001));
        let mut placed = 0;
        while count.is_none_or(|c| placed < c) {
            let id = self.place_order(placed).await?;
            placed += 1;
            tracing::info!(entity_id = id, increment_id = %format!("{id:09}"), "Demo order placed.");
            if count.is_some_and(|c| placed >= c) || !sleep_or_shutdown(pause, shutdown).await {
                break;
            }
        }
        Ok(placed)
    }
}

/// A sync service that syncs everything (and fails `fail_rate` of the first
/// attempts, to show re-delivery), built on `order_sync_consumer::SyncConsumer`.
pub async fn run_consumer(
    settings: &Settings,
    name: &str,
    fail_rate: f64,
    shutdown: CancellationToken,
) {
    let consumer = sync_consumer(&settings.broker, name);
    let every = if fail_rate > 0.0 {
        (1.0 / fail_rate).round().max(1.0) as u64
    } else {
        0
    };
    consumer
        .run(
            |msg| async move {
                let id = msg.entity_id().unwrap_or_default();
                if every > 0 && msg.attempt == 1 && id % every == 0 {
                    tracing::warn!(entity_id = id, consumer = %msg.consumer, "Demo sync service: failing this first attempt on purpose.");
                    return Err("demo: remote system busy, try again".into());
                }
                tracing::info!(entity_id = id, consumer = %msg.consumer, attempt = msg.attempt, "Demo sync service: order synced.");
                Ok(())
            },
            shutdown,
        )
        .await;
}
