//! The pipeline against the raw limit of the same broker and database, measured
//! in one run on one machine (it is noisy: compare within a run, not across).
//!
//!   cargo bench --bench pipeline
//!
//! Environment: `ORDER_SYNC_TEST_MYSQL`, `ORDER_SYNC_TEST_AMQP` (as the tests),
//! `BENCH_BACKLOGS` (default `10000,50000`), `BENCH_LATENCY_SECS` (default 60),
//! `BENCH_RATE` (orders/s for the latency run, default 50), `BENCH_READS`
//! (ledger sizes for the operator reads, default `50000,5000000`),
//! `BENCH_SECTIONS` (default `drain,latency,reads`).
//!
//! 1. raw limit: a minimal lapin + mysql_async program doing, per order, what the
//!    pipeline does: read the order and its children from Magento, a confirmed
//!    persistent publish, consume + ledger insert + ack, a confirmed publish to the
//!    consumer queue, the consumer's confirmed ack publish, consume + ledger update + ack;
//! 2. backlog drain: order-sync (the release binary, default settings) drains a backlog
//!    already in Magento until every order is synced for one consumer;
//! 3. latency: orders placed at a steady rate; commit → delivery and commit → synced,
//!    and each order's state change 200 ms later → its `status_changed` event;
//! 4. peak RSS of the order-sync process during the drain;
//! 5. the per-operation ceilings measured in the same run (confirmed publishes/s,
//!    consume + ack/s, ledger rows/s) and the per-order ceiling they imply,
//!    and the combined ceiling: the same operations all at once, sharing the
//!    machine as a drain does;
//! 6. latency and idle Magento queries/s for `capture.mode = poll` and `binlog`
//!    side by side, against a MariaDB with its binary log on
//!    (deploy/mariadb/local-binlog.sh);
//! 7. operator reads (scrape, /readyz, /api/summary, status page, `status`, a
//!    re-delivery claim) over a ledger of 50,000 and of 5,000,000 rows;
//! 8. the machine.

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime},
};

use lapin::{
    options::*, types::FieldTable, BasicProperties, Channel, Connection, ConnectionProperties,
    ExchangeKind,
};
use mysql_async::{prelude::*, Pool};
use serde_json::{json, Value};

#[path = "../tests/kit/mod.rs"]
mod kit;

use kit::{
    amqp_url as amqp, create_database, drop_databases, mysql_server as mysql, BinlogServer,
    MAGENTO_SCHEMA as SCHEMA,
};

fn uid() -> String {
    kit::unique_id("bench")
}

async fn create_db(name: &str, schema: Option<&str>) -> Pool {
    create_database(name, schema, 8).await
}

async fn drop_db(name: &str) {
    drop_databases(&[name.to_owned()]).await
}

/// `n` realistic orders (two items, billing and shipping address, payment),
/// inserted in bulk with explicit ids starting at `first`.
async fn insert_orders(pool: &Pool, first: u32, n: u32) {
    let mut c = pool.get_conn().await.unwrap();
    for chunk_start in (first..first + n).step_by(500) {
        let ids: Vec<u32> = (chunk_start..(chunk_start + 500).min(first + n)).collect();
        let orders: Vec<String> = ids.iter().map(|id| format!(
            "({id}, LPAD({id}, 9, '0'), 1, 'new', 'pending', 'roni@example.com', 'Veronica', 'Costello', 42, 0, 1, \
             'USD', 'USD', '1.0000', '123.4500', '123.4500', '118.4500', '5.0000', 'flatrate_flatrate', \
             'Flat Rate - Fixed', 2, '3.0000', 'Main Website\\nMain Website Store\\nDefault Store View', '127.0.0.1')"
        )).collect();
        c.query_drop(format!(
            "INSERT INTO sales_order (entity_id, increment_id, store_id, state, status, customer_email, \
             customer_firstname, customer_lastname, customer_id, customer_is_guest, customer_group_id, \
             base_currency_code, order_currency_code, base_to_order_rate, grand_total, base_grand_total, \
             subtotal, shipping_amount, shipping_method, shipping_description, total_item_count, weight, \
             store_name, remote_ip) VALUES {}", orders.join(","))).await.unwrap();
        let items: Vec<String> = ids.iter().flat_map(|id| [
            format!("({id}, 1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'simple', '1.0000', '52.0000', '52.0000', '52.0000', '{{\"info_buyRequest\":{{\"qty\":1,\"product\":\"1\"}}}}', '1.0000')"),
            format!("({id}, 1, '24-MB01', 'Joust Duffle Bag', 'simple', '2.0000', '33.2250', '33.2250', '66.4500', '{{\"info_buyRequest\":{{\"qty\":2,\"product\":\"2\"}}}}', '1.0000')"),
        ]).collect();
        c.query_drop(format!(
            "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, \
             base_price, row_total, product_options, weight) VALUES {}", items.join(","))).await.unwrap();
        let addresses: Vec<String> = ids.iter().flat_map(|id| ["billing", "shipping"].map(|t| format!(
            "({id}, '{t}', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', 'Michigan', '49628-7978', 'US', '(555) 229-3326', 'roni@example.com')"
        ))).collect();
        c.query_drop(format!(
            "INSERT INTO sales_order_address (parent_id, address_type, firstname, lastname, street, city, region, \
             postcode, country_id, telephone, email) VALUES {}", addresses.join(","))).await.unwrap();
        let payments: Vec<String> = ids.iter().map(|id| format!(
            "({id}, 'checkmo', '123.4500', '123.4500', '{{\"method_title\":\"Check \\/ Money order\"}}')"
        )).collect();
        c.query_drop(format!(
            "INSERT INTO sales_order_payment (parent_id, method, amount_ordered, base_amount_ordered, \
             additional_information) VALUES {}", payments.join(","))).await.unwrap();
    }
}

async fn channel(conn: &Connection, confirm: bool) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    if confirm {
        ch.confirm_select(ConfirmSelectOptions::default())
            .await
            .unwrap();
    }
    ch.basic_qos(200, BasicQosOptions::default()).await.unwrap();
    ch
}

async fn declare(ch: &Channel, exchange: &str, kind: ExchangeKind, queue: &str, key: &str) {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(exchange.into(), kind, durable, FieldTable::default())
        .await
        .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        lapin::types::AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(queue.into(), QueueDeclareOptions::durable(), args)
        .await
        .unwrap();
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
}

fn persistent() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// Takes the next delivery plus whatever else is already waiting (up to
/// `max`): order-sync's own batch drain, so both sides batch alike. Empty
/// when the consumer ended.
async fn next_batch(c: &mut lapin::Consumer, max: usize) -> Vec<lapin::message::Delivery> {
    let never = tokio_util::sync::CancellationToken::new();
    match order_sync_consumer::amqp::next_batch(c, max, &never).await {
        Ok(order_sync_consumer::amqp::Next::Batch(batch)) => batch,
        _ => vec![],
    }
}

/// What the bench's sync service reads of a message: only what it needs to
/// answer (a real one would read the order too; that is its own cost, not
/// order-sync's, and the ceilings count no JSON either).
#[derive(serde::Deserialize)]
struct Incoming<'a> {
    #[serde(borrow)]
    message_id: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    event: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    entity_id: Option<u64>,
    #[serde(default)]
    order: Option<IncomingOrder>,
}

#[derive(serde::Deserialize)]
struct IncomingOrder {
    /// A number from order-sync, a string from the reference program.
    #[serde(default)]
    entity_id: Option<Value>,
}

impl IncomingOrder {
    fn entity_id(&self) -> Option<u64> {
        match self.entity_id.as_ref()? {
            Value::String(s) => s.parse().ok(),
            v => v.as_u64(),
        }
    }
}

/// The bench service's ack.
#[derive(serde::Serialize)]
struct Answer<'a> {
    message_id: &'a str,
    consumer: &'a str,
    entity_id: u64,
    status: &'a str,
}

/// A sync service that acks every order `synced` (confirmed), used for both runs.
/// Records when each entity_id first arrived.
fn acking_consumer(
    conn: Arc<Connection>,
    queue: String,
    acks_exchange: String,
    arrivals: Arc<Mutex<HashMap<u64, SystemTime>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ch = channel(&conn, false).await;
        let publ = channel(&conn, true).await;
        let mut c = consume(&ch, &queue).await;
        loop {
            let batch = next_batch(&mut c, 200).await;
            if batch.is_empty() {
                return;
            }
            let now = SystemTime::now();
            for d in &batch {
                let m: Incoming = serde_json::from_slice(&d.data).unwrap();
                let id = m.order.and_then(|o| o.entity_id()).or(m.entity_id).unwrap();
                let key = match m.event.as_deref() {
                    Some("sales_order_place_after_que") | None => id,
                    Some(_) => id | LATER,
                };
                arrivals.lock().unwrap().entry(key).or_insert(now);
                let ack = Answer {
                    message_id: &m.message_id,
                    consumer: "erp",
                    entity_id: id,
                    status: "synced",
                };
                publ.basic_publish(
                    acks_exchange.as_str().into(),
                    "erp".into(),
                    BasicPublishOptions::default(),
                    &serde_json::to_vec(&ack).unwrap(),
                    persistent(),
                )
                .await
                .unwrap();
            }
            publ.wait_for_confirms().await.unwrap();
            batch
                .last()
                .unwrap()
                .ack(BasicAckOptions { multiple: true })
                .await
                .unwrap();
        }
    })
}

/// An order's later event arrives under its id with this bit set (its
/// placement under the id alone).
const LATER: u64 = 1 << 40;

/// How many ticks of the steady stream after its placement an order's state
/// changes (at 50 orders/s, 200 ms: its placement is synced by then).
const CHANGE_AFTER: u64 = 10;

/// Batches of publishes whose confirms the reference program awaits later.
const CONFIRM_WINDOW: usize = 2;
/// The reference program's prefetch and batch size where it consumes.
const REF_PREFETCH: u16 = 1_000;

/// Deletes these queues and exchanges (a bench leaves nothing behind).
async fn remove(ch: &Channel, queues: &[&str], exchanges: &[&str]) {
    for q in queues {
        if let Err(e) = ch
            .queue_delete((*q).into(), QueueDeleteOptions::default())
            .await
        {
            eprintln!("could not delete {q}: {e}");
        }
    }
    for x in exchanges {
        let _ = ch
            .exchange_delete((*x).into(), ExchangeDeleteOptions::default())
            .await;
    }
}

/// A consumer of `queue` on `ch`.
async fn consume(ch: &Channel, queue: &str) -> lapin::Consumer {
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap()
}

/// A persistent, mandatory publish; its confirm, to await later.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> lapin::PublisherConfirm {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        body,
        persistent(),
    )
    .await
    .unwrap()
}

/// Awaits one batch's confirms; a nack or a return is a failure here too.
async fn confirmed(batch: Vec<lapin::PublisherConfirm>) {
    for c in batch {
        let confirmation = c.await.unwrap();
        assert!(
            confirmation.is_ack() && confirmation.take_message().is_none(),
            "the reference program's publish was nacked or returned"
        );
    }
}

/// The reference program: the same broker and database work per order,
/// nothing else, as fast as it goes (deep confirm windows, prefetch and
/// batches of 1,000, one ledger transaction per batch).
async fn raw_limit(n: u32) -> Duration {
    let id = uid();
    let magento = create_db(&format!("{id}_magento"), Some(SCHEMA)).await;
    let ledger = create_db(&format!("{id}_ledger"), None).await;
    insert_orders(&magento, 1, n).await;
    let mut c = ledger.get_conn().await.unwrap();
    c.query_drop(
        "CREATE TABLE raw_orders (entity_id INT UNSIGNED PRIMARY KEY, message LONGTEXT NOT NULL)",
    )
    .await
    .unwrap();
    c.query_drop("CREATE TABLE raw_deliveries (entity_id INT UNSIGNED, consumer VARCHAR(64), state VARCHAR(16), attempts INT, PRIMARY KEY (entity_id, consumer))").await.unwrap();
    drop(c);
    let conn = Arc::new(
        Connection::connect(&amqp(), ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let setup = channel(&conn, false).await;
    let (orders_x, relay_q, que_x, que_q, acks_x, acks_q) = (
        format!("{id}.orders"),
        format!("{id}.relay"),
        format!("{id}.que"),
        format!("{id}.que.erp"),
        format!("{id}.acks"),
        format!("{id}.acks.q"),
    );
    declare(&setup, &orders_x, ExchangeKind::Topic, &relay_q, "#").await;
    declare(&setup, &que_x, ExchangeKind::Direct, &que_q, "erp").await;
    declare(&setup, &acks_x, ExchangeKind::Topic, &acks_q, "#").await;
    let started = Instant::now();

    // Capture: read batches with their children, publish confirmed.
    let capture = {
        let (conn, magento, orders_x) = (conn.clone(), magento.clone(), orders_x.clone());
        tokio::spawn(async move {
            let ch = channel(&conn, true).await;
            let mut db = magento.get_conn().await.unwrap();
            let mut last = 0u32;
            let mut window = std::collections::VecDeque::new();
            let mut batch_confirms = Vec::new();
            loop {
                let rows: Vec<mysql_async::Row> = db.query(format!(
                    "SELECT * FROM sales_order WHERE entity_id > {last} ORDER BY entity_id LIMIT 500")).await.unwrap();
                if rows.is_empty() {
                    for batch in window {
                        confirmed(batch).await;
                    }
                    return;
                }
                let ids: Vec<String> = rows
                    .iter()
                    .map(|r| r.get::<String, _>("entity_id").unwrap())
                    .collect();
                let list = ids.join(",");
                let mut children = Vec::new();
                for (t, k) in [
                    ("sales_order_item", "order_id"),
                    ("sales_order_address", "parent_id"),
                    ("sales_order_payment", "parent_id"),
                    ("sales_order_status_history", "parent_id"),
                ] {
                    let r: Vec<mysql_async::Row> = db
                        .query(format!("SELECT * FROM {t} WHERE {k} IN ({list})"))
                        .await
                        .unwrap();
                    children.push(r);
                }
                for r in &rows {
                    let eid: String = r.get("entity_id").unwrap();
                    let mut order = serde_json::Map::new();
                    for (i, col) in r.columns_ref().iter().enumerate() {
                        let v: Option<String> = r.get::<Option<String>, _>(i).flatten();
                        order.insert(
                            col.name_str().into_owned(),
                            v.map(Value::String).unwrap_or(Value::Null),
                        );
                    }
                    for (name, rows) in ["items", "addresses", "payment", "status_histories"]
                        .iter()
                        .zip(&children)
                    {
                        let mine: Vec<Value> = rows
                            .iter()
                            .filter(|c| {
                                let p: Option<String> = c.get::<Option<String>, _>(1).flatten();
                                p.as_deref() == Some(eid.as_str())
                            })
                            .map(|c| {
                                let mut m = serde_json::Map::new();
                                for (i, col) in c.columns_ref().iter().enumerate() {
                                    let v: Option<String> = c.get::<Option<String>, _>(i).flatten();
                                    m.insert(
                                        col.name_str().into_owned(),
                                        v.map(Value::String).unwrap_or(Value::Null),
                                    );
                                }
                                Value::Object(m)
                            })
                            .collect();
                        order.insert(name.to_string(), Value::Array(mine));
                    }
                    let body = serde_json::to_vec(
                        &json!({"order": order, "entity_id": eid.parse::<u64>().unwrap()}),
                    )
                    .unwrap();
                    batch_confirms
                        .push(publish(&ch, &orders_x, "sales_order_place_after", &body).await);
                }
                // A deep confirm window: the next batch is read and published
                // while this one's confirms come in.
                window.push_back(std::mem::take(&mut batch_confirms));
                if window.len() > CONFIRM_WINDOW {
                    confirmed(window.pop_front().unwrap()).await;
                }
                last = ids.last().unwrap().parse().unwrap();
            }
        })
    };
    // Relay: consume, insert the order and its row, ack, publish confirmed to the consumer queue.
    let relay = {
        let (conn, ledger, relay_q, que_x) =
            (conn.clone(), ledger.clone(), relay_q.clone(), que_x.clone());
        tokio::spawn(async move {
            let ch = channel(&conn, false).await;
            ch.basic_qos(REF_PREFETCH, BasicQosOptions::default())
                .await
                .unwrap();
            let publ = channel(&conn, true).await;
            let mut window = std::collections::VecDeque::new();
            let mut c = consume(&ch, &relay_q).await;
            let mut db = ledger.get_conn().await.unwrap();
            loop {
                let batch = next_batch(&mut c, REF_PREFETCH as usize).await;
                if batch.is_empty() {
                    return;
                }
                let msgs: Vec<(u64, Value)> = batch
                    .iter()
                    .map(|d| {
                        let v: Value = serde_json::from_slice(&d.data).unwrap();
                        (v["entity_id"].as_u64().unwrap(), v)
                    })
                    .collect();
                let mut tx = db.start_transaction(Default::default()).await.unwrap();
                tx.exec_batch(
                    "INSERT IGNORE INTO raw_orders (entity_id, message) VALUES (?, ?)",
                    msgs.iter().map(|(id, v)| (*id, v["order"].to_string())),
                )
                .await
                .unwrap();
                tx.exec_batch("INSERT IGNORE INTO raw_deliveries (entity_id, consumer, state, attempts) VALUES (?, 'erp', 'published', 1)",
                    msgs.iter().map(|(id, _)| (*id,))).await.unwrap();
                tx.commit().await.unwrap();
                batch
                    .last()
                    .unwrap()
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .unwrap();
                let mut batch_confirms = Vec::with_capacity(msgs.len());
                for (id, v) in &msgs {
                    let body = serde_json::to_vec(&json!({"message_id": format!("raw:{id}:erp"), "entity_id": id, "order": v["order"]})).unwrap();
                    batch_confirms.push(publish(&publ, &que_x, "erp", &body).await);
                }
                window.push_back(batch_confirms);
                if window.len() > CONFIRM_WINDOW {
                    confirmed(window.pop_front().unwrap()).await;
                }
            }
        })
    };
    let consumer = acking_consumer(
        conn.clone(),
        que_q.clone(),
        acks_x.clone(),
        Default::default(),
    );
    // Acks: consume, update the row, ack.
    let mut db = ledger.get_conn().await.unwrap();
    let ch = channel(&conn, false).await;
    ch.basic_qos(REF_PREFETCH, BasicQosOptions::default())
        .await
        .unwrap();
    let mut c = consume(&ch, &acks_q).await;
    let mut done = 0u32;
    while done < n {
        let batch = next_batch(&mut c, REF_PREFETCH as usize).await;
        let mut tx = db.start_transaction(Default::default()).await.unwrap();
        tx.exec_batch(
            "UPDATE raw_deliveries SET state = 'synced' WHERE entity_id = ? AND consumer = 'erp'",
            batch.iter().map(|d| {
                let v: Value = serde_json::from_slice(&d.data).unwrap();
                (v["entity_id"].as_u64().unwrap(),)
            }),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        batch
            .last()
            .unwrap()
            .ack(BasicAckOptions { multiple: true })
            .await
            .unwrap();
        done += batch.len() as u32;
    }
    let elapsed = started.elapsed();
    for t in [capture, relay, consumer] {
        t.abort();
    }
    // The aborted tasks' consumers live on this connection: close it, then
    // clean up on a fresh one (deleting a queue with live consumers here left
    // queues behind).
    drop(setup);
    let _ = conn.close(200, "done".into()).await;
    let cleanup = Connection::connect(&amqp(), ConnectionProperties::default())
        .await
        .unwrap();
    let setup = cleanup.create_channel().await.unwrap();
    for q in [&relay_q, &que_q, &acks_q] {
        if let Err(e) = setup
            .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
            .await
        {
            eprintln!("could not delete {q}: {e}");
        }
    }
    for x in [&orders_x, &que_x, &acks_x] {
        let _ = setup
            .exchange_delete(x.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = cleanup.close(200, "done".into()).await;
    drop(db);
    drop_db(&format!("{id}_magento")).await;
    drop_db(&format!("{id}_ledger")).await;
    elapsed
}

struct Pipeline {
    id: String,
    child: Child,
    magento: Pool,
    ledger: Pool,
    conn: Arc<Connection>,
}

impl Pipeline {
    async fn prepare(backlog: u32) -> (String, Pool) {
        let id = uid();
        let magento = create_db(&format!("{id}_magento"), Some(SCHEMA)).await;
        insert_orders(&magento, 1, backlog).await;
        (id, magento)
    }

    /// Started with its Magento database on `magento_server` and `extra` settings.
    async fn start_with(
        id: String,
        magento: Pool,
        magento_server: &str,
        extra: &[(&str, &str)],
        log: Option<&std::path::Path>,
    ) -> Self {
        let ledger_pool = create_db(&format!("{id}_ledger"), None).await;
        let child = Command::new(env!("CARGO_BIN_EXE_order-sync"))
            .arg("run")
            .envs(extra.iter().copied())
            .env("ORDER_SYNC__SHOP__NAME", &id)
            .env(
                "ORDER_SYNC__MAGENTO__URL",
                format!("{magento_server}/{id}_magento"),
            )
            .env(
                "ORDER_SYNC__LEDGER__URL",
                format!("{}/{id}_ledger", mysql()),
            )
            .env("ORDER_SYNC__BROKER__URL", amqp())
            .env("ORDER_SYNC__BROKER__PREFIX", &id)
            .env("ORDER_SYNC__CONSUMERS__NAMES", "erp")
            .env("ORDER_SYNC__CAPTURE__START_FROM", "beginning")
            .env("ORDER_SYNC__LOG__FILTER", "warn")
            .env("ORDER_SYNC__HTTP__ENABLED", "false")
            // Given last, so a caller's log settings win.
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(match log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            })
            .spawn()
            .expect("start order-sync");
        let conn = Arc::new(
            Connection::connect(&amqp(), ConnectionProperties::default())
                .await
                .unwrap(),
        );
        Self {
            id,
            child,
            magento,
            ledger: ledger_pool,
            conn,
        }
    }

    async fn synced(&self) -> u64 {
        let mut c = match self.ledger.get_conn().await {
            Ok(c) => c,
            Err(_) => return 0,
        };
        c.query_first("SELECT COUNT(*) FROM order_sync_deliveries WHERE state = 'synced'")
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    async fn wait_synced(&self, n: u64, within: Duration) {
        let deadline = Instant::now() + within;
        while self.synced().await < n {
            if Instant::now() >= deadline {
                let rows: Vec<(String, String, u64)> = match self.ledger.get_conn().await {
                    Ok(mut c) => c
                        .query(
                            "SELECT event, state, COUNT(*) FROM order_sync_deliveries \
                             GROUP BY event, state",
                        )
                        .await
                        .unwrap_or_default(),
                    Err(_) => vec![],
                };
                panic!(
                    "pipeline did not sync {n} rows within {within:?}; the ledger holds {rows:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until the queue exists (order-sync declared its topology).
    async fn consumer(
        &self,
        arrivals: Arc<Mutex<HashMap<u64, SystemTime>>>,
    ) -> tokio::task::JoinHandle<()> {
        let queue = format!("{}.que.erp", self.id);
        loop {
            let ch = self.conn.create_channel().await.unwrap();
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            if ch
                .queue_declare(queue.as_str().into(), passive, FieldTable::default())
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        acking_consumer(
            self.conn.clone(),
            queue,
            format!("{}.acks", self.id),
            arrivals,
        )
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .map(|l| l.to_owned())
            })
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
            .unwrap_or(0)
    }

    async fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let ch = self.conn.create_channel().await.unwrap();
        for q in [
            "orders.relay",
            "que.erp",
            "acks.listener",
            "dead.orders",
            "dead.acks",
            "dead.que.erp",
        ] {
            let _ = ch
                .queue_delete(
                    format!("{}.{q}", self.id).as_str().into(),
                    QueueDeleteOptions::default(),
                )
                .await;
        }
        for x in ["orders", "que", "acks", "dlx"] {
            let _ = ch
                .exchange_delete(
                    format!("{}.{x}", self.id).as_str().into(),
                    ExchangeDeleteOptions::default(),
                )
                .await;
        }
        drop(self.magento);
        drop(self.ledger);
        drop_db(&format!("{}_magento", self.id)).await;
        drop_db(&format!("{}_ledger", self.id)).await;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// CPU seconds (user + system) each process has used so far: order-sync,
/// RabbitMQ, MariaDB, and this benchmark (the consumer), from `/proc`.
fn cpu_seconds(order_sync: u32) -> [(&'static str, f64); 4] {
    fn of(pid: Option<u32>) -> f64 {
        let Some(stat) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        else {
            return f64::NAN;
        };
        // Fields after the command (which may hold spaces): utime is the 14th.
        let rest = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let f: Vec<f64> = rest
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // rest starts at field 3 (state is not a number, so dropped): utime, stime
        // are fields 14 and 15, at 10 and 11 here.
        (f.get(10).copied().unwrap_or(f64::NAN) + f.get(11).copied().unwrap_or(f64::NAN)) / 100.0
    }
    fn named(name: &str) -> Option<u32> {
        std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == name).then_some(pid)
        })
    }
    [
        ("order-sync", of(Some(order_sync))),
        ("RabbitMQ", of(named("beam.smp"))),
        ("MariaDB", of(named("mariadbd"))),
        ("consumer (this benchmark)", of(Some(std::process::id()))),
    ]
}

/// order-sync's `/metrics` on `port`.
async fn scrape(port: u16) -> prometheus_parse::Scrape {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let uri = format!("http://127.0.0.1:{port}/metrics").parse().unwrap();
    let answer = client.get(uri).await.expect("order-sync's /metrics");
    let body = answer.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

/// `order_sync_stage_seconds` from a scrape: (stage, batches, seconds).
fn stage_seconds(scrape: &prometheus_parse::Scrape) -> Vec<(String, f64, f64)> {
    let of = |metric: &str, stage: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get("stage") == Some(stage))
            .map_or(f64::NAN, |s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    order_sync::metrics::Stage::ALL
        .iter()
        .map(|s| {
            let stage = s.as_str();
            (
                stage.to_owned(),
                of("order_sync_stage_seconds_count", stage),
                of("order_sync_stage_seconds_sum", stage),
            )
        })
        .collect()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let rabbit = Command::new("rabbitmqctl")
        .args(["version"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "{} cores, {cpu}; RabbitMQ {rabbit}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    )
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let backlogs: Vec<u32> = std::env::var("BENCH_BACKLOGS")
        .unwrap_or_else(|_| "10000,50000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let latency_secs: u64 = std::env::var("BENCH_LATENCY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let rate: u64 = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let read_sizes: Vec<u64> = std::env::var("BENCH_READS")
        .unwrap_or_else(|_| "50000,5000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let sections_env =
        std::env::var("BENCH_SECTIONS").unwrap_or_else(|_| "drain,latency,reads".into());
    let sections: Vec<&str> = sections_env.split(',').map(str::trim).collect();
    let pool = Pool::new(format!("{}?pool_min=0&pool_max=1", mysql()).as_str());
    let version: String = pool
        .get_conn()
        .await
        .unwrap()
        .query_first("SELECT VERSION()")
        .await
        .unwrap()
        .unwrap();
    pool.disconnect().await.unwrap();
    println!("machine: {}; MariaDB {version}", machine());
    println!();
    if sections.contains(&"drain") {
        // Per order: 3 confirmed publishes (capture, relay, the consumer's ack),
        // 3 consume + acks, 3 ledger rows (order, delivery, its update).
        let (publishes, consumes, rows) = ceilings(20_000).await;
        let ceiling = publishes.min(consumes).min(rows) / 3.0;
        let combined = combined_ceiling(10_000).await;
        println!(
            "per-operation ceilings: {publishes:.0} confirmed publishes/s, {consumes:.0} consume+acks/s, \
             {rows:.0} ledger rows/s; per order (3 of each): at most {ceiling:.0} orders/s, each alone"
        );
        println!(
            "combined ceiling (the three at once, as a drain runs them, sharing the machine): \
             {combined:.0} orders/s"
        );
        println!();
        println!(
            "order-sync drains twice per backlog: with lifecycle capture off (no consumer takes \
             later events, capture.hold_states = []), as before events existed, and with it on \
             and idle (erp subscribed to every event, the default hold states; nothing invoiced, \
             shipped or changed)."
        );
        println!();
        println!("| backlog | ceiling, each alone (orders/s) | combined ceiling (orders/s) | reference program (orders/s) | drain, lifecycle off (orders/s) | of ceiling | of combined | of reference | drain, lifecycle on + idle (orders/s) | of combined | on vs off | peak RSS (off / on) |");
        println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let off: &[(&str, &str)] = &[("ORDER_SYNC__CAPTURE__HOLD_STATES", "")];
        let on: &[(&str, &str)] = &[(
            "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
            "placed,invoiced,shipped,refunded,canceled,status_changed",
        )];
        let mut cpu = Vec::new();
        let mut stages = Vec::new();
        for &n in &backlogs {
            let raw = raw_limit(n).await;
            let mut runs = Vec::new();
            for extra in [off, on] {
                let (id, magento) = Pipeline::prepare(n).await;
                // Its /metrics, for the time each stage took.
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .map(|a| a.port())
                    .unwrap();
                let listen = format!("127.0.0.1:{port}");
                let mut env = extra.to_vec();
                env.extend([
                    ("ORDER_SYNC__HTTP__ENABLED", "true"),
                    ("ORDER_SYNC__HTTP__LISTEN", listen.as_str()),
                ]);
                let p = Pipeline::start_with(id, magento, &mysql(), &env, None).await;
                let started = Instant::now();
                let cpu_before = cpu_seconds(p.child.id());
                let consumer = p.consumer(Default::default()).await;
                p.wait_synced(n as u64, Duration::from_secs(1800)).await;
                let drain = started.elapsed();
                let cpu_after = cpu_seconds(p.child.id());
                let rss = p.peak_rss_kib();
                cpu.push((n, drain, cpu_before, cpu_after));
                stages.push((n, drain, stage_seconds(&scrape(port).await)));
                consumer.abort();
                p.stop().await;
                runs.push((n as f64 / drain.as_secs_f64(), drain, rss));
            }
            let raw_rate = n as f64 / raw.as_secs_f64();
            let (off_rate, off_time, off_rss) = runs[0];
            let (on_rate, on_time, on_rss) = runs[1];
            println!(
                "| {n} | {ceiling:.0} | {combined:.0} | {raw_rate:.0} ({:.1} s) | {off_rate:.0} ({:.1} s) | {:.0} % | {:.0} % | {:.0} % | {on_rate:.0} ({:.1} s) | {:.0} % | {:.0} % | {:.1} / {:.1} MiB |",
                raw.as_secs_f64(),
                off_time.as_secs_f64(),
                100.0 * off_rate / ceiling,
                100.0 * off_rate / combined,
                100.0 * off_rate / raw_rate,
                on_time.as_secs_f64(),
                100.0 * on_rate / combined,
                100.0 * on_rate / off_rate,
                off_rss as f64 / 1024.0,
                on_rss as f64 / 1024.0,
            );
        }
        println!();
        println!(
            "Where a drain's time goes: CPU seconds each process used during it (of the \
             drain's wall time × 2 cores), lifecycle off then on."
        );
        println!();
        println!("| backlog | drain (s) | order-sync | RabbitMQ | MariaDB | consumer | all, of 2 cores |");
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for (n, drain, before, after) in cpu {
            let used: Vec<f64> = before.iter().zip(&after).map(|(b, a)| a.1 - b.1).collect();
            let wall = drain.as_secs_f64();
            let share = |c: f64| format!("{c:.1} s ({:.0} %)", 100.0 * c / (2.0 * wall));
            println!(
                "| {n} | {wall:.1} | {} | {} | {} | {} | {:.0} % |",
                share(used[0]),
                share(used[1]),
                share(used[2]),
                share(used[3]),
                100.0 * used.iter().sum::<f64>() / (2.0 * wall),
            );
        }
        println!();
        println!(
            "Inside order-sync: the time each stage took over the drain (summed over its \
             batches; capture, the relay inbox and the ack listener run at once, so the \
             shares add up to more than 100 %), lifecycle off then on."
        );
        println!();
        println!("| backlog | stage | batches | total (s) | ms per batch | of the drain |");
        println!("|---:|---|---:|---:|---:|---:|");
        for (n, drain, by_stage) in stages {
            for (stage, count, sum) in by_stage {
                println!(
                    "| {n} | {stage} | {count:.0} | {sum:.2} | {:.2} | {:.0} % |",
                    1000.0 * sum / count.max(1.0),
                    100.0 * sum / drain.as_secs_f64()
                );
            }
        }
    }
    if sections.contains(&"latency") {
        let binlog_p99 = latency_by_mode(rate, latency_secs).await;
        let floor_sum = floors(rate, latency_secs.min(20)).await;
        // #24's bound: binlog delivery within twice what its steps cost at
        // their floors, measured in this run.
        println!();
        println!(
            "binlog placement p99 {binlog_p99:.0} ms against 2 × the sum of its steps' p99 floors \
             (2 confirmed publishes + 1 arrival + 2 commits = {floor_sum:.1} ms) = {:.0} ms: {}",
            2.0 * floor_sum,
            match binlog_p99 <= 2.0 * floor_sum {
                true => "within",
                false => "OVER",
            }
        );
    }
    if sections.contains(&"reads") {
        println!();
        println!(
            "operator reads, milliseconds over 30 calls (p50 / p99); `status` is a whole process:"
        );
        println!();
        println!("| ledger rows | /metrics | /readyz | /api/summary | status page | `order-sync status` | re-delivery claim (100) |");
        println!("|---:|---:|---:|---:|---:|---:|---:|");
        for &rows in &read_sizes {
            operator_reads(rows).await;
        }
    }
}

/// Latency at `rate` orders/s and idle Magento queries/s, for poll and binlog
/// capture side by side, the Magento database on a MariaDB with its binlog on.
/// Returns binlog mode's delivery p99 (milliseconds).
async fn latency_by_mode(rate: u64, secs: u64) -> f64 {
    let server = BinlogServer::start("");
    println!();
    println!(
        "capture modes at {rate} orders/s for {secs} s ({} orders each), Magento on a MariaDB with log_bin; milliseconds:",
        rate * secs
    );
    println!();
    println!(
        "| capture.mode | delivery p50 | p99 | max | synced p50 | p99 | later event p50 | p99 | max | Magento queries/s idle |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut profiles = Vec::new();
    let mut binlog_p99 = f64::NAN;
    for mode in ["poll", "binlog"] {
        let id = uid();
        let magento =
            kit::create_database_on(&server.url, &format!("{id}_magento"), Some(SCHEMA), 8).await;
        // Capture's own log (JSON) says when each poll had published and saved.
        let log = std::env::temp_dir().join(format!("{id}.log"));
        let p = Pipeline::start_with(
            id,
            magento.clone(),
            &server.url,
            &[
                ("ORDER_SYNC__CAPTURE__MODE", mode),
                ("ORDER_SYNC__CAPTURE__BINLOG__SERVER_ID", "4300"),
                (
                    "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                    "placed,status_changed",
                ),
                (
                    "ORDER_SYNC__LOG__FILTER",
                    "order_sync::roles::capture=info,warn",
                ),
                ("ORDER_SYNC__LOG__FORMAT", "json"),
            ],
            Some(&log),
        )
        .await;
        let arrivals: Arc<Mutex<HashMap<u64, SystemTime>>> = Default::default();
        let consumer = p.consumer(arrivals.clone()).await;
        tokio::time::sleep(Duration::from_secs(3)).await; // past start-up
        let idle_secs = 10;
        let before = server.questions().await;
        tokio::time::sleep(Duration::from_secs(idle_secs)).await;
        // Less the one statement that read the counter.
        let idle = (server.questions().await - before).saturating_sub(1) as f64 / idle_secs as f64;
        let (delivery, to_synced, later, commits, arrived) =
            steady_stream(&p, &magento, arrivals, rate, secs).await;
        consumer.abort();
        p.stop().await;
        profiles.push((mode, stages(&log, &commits, &arrived)));
        let _ = std::fs::remove_file(&log);
        if mode == "binlog" {
            binlog_p99 = percentile(&delivery, 0.99);
        }
        println!(
            "| {mode} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {idle:.1} |",
            percentile(&delivery, 0.5),
            percentile(&delivery, 0.99),
            delivery.last().copied().unwrap_or(f64::NAN),
            percentile(&to_synced, 0.5),
            percentile(&to_synced, 0.99),
            percentile(&later, 0.5),
            percentile(&later, 0.99),
            later.last().copied().unwrap_or(f64::NAN),
        );
    }
    println!();
    println!("where the time goes, milliseconds (orders captured alone in their poll):");
    println!();
    println!("| capture.mode | stage | p50 | p99 | max |");
    println!("|---|---|---:|---:|---:|");
    for (mode, stages) in profiles {
        // Polls that captured one order alone: in poll mode, few or none.
        for (name, mut v) in stages.into_iter().filter(|(_, v)| !v.is_empty()) {
            v.sort_by(f64::total_cmp);
            println!(
                "| {mode} | {name} | {:.1} | {:.1} | {:.1} |",
                percentile(&v, 0.5),
                percentile(&v, 0.99),
                v.last().copied().unwrap_or(f64::NAN)
            );
        }
    }
    binlog_p99
}

/// From capture's JSON log: for each order that a poll captured alone
/// (`published = 1`, the position its id), the time from its commit to the
/// end of that poll (read, published, confirmed, position saved), and from
/// there to its arrival at the consumer (relay and broker).
fn stages(
    log: &std::path::Path,
    commits: &HashMap<u64, SystemTime>,
    arrived: &HashMap<u64, SystemTime>,
) -> Vec<(&'static str, Vec<f64>)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let (mut captured, mut onward) = (Vec::new(), Vec::new());
    let ms = |a: SystemTime, b: SystemTime| match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    };
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        // order-sync logs flattened JSON: the event's fields at the top level.
        let f = &v;
        if f["message"] != "Captured orders." || f["published"] != 1 {
            continue;
        }
        let (Some(id), Some(at)) = (
            f["position"].as_u64(),
            v["timestamp"]
                .as_str()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()),
        ) else {
            continue;
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_micros(at.timestamp_micros() as u64);
        if let Some(c) = commits.get(&id) {
            captured.push(ms(at, *c));
            if let Some(a) = arrived.get(&id) {
                onward.push(ms(*a, at));
            }
        }
    }
    vec![
        (
            "commit → captured (read, publish confirmed, position saved)",
            captured,
        ),
        ("captured → at the consumer (relay, broker)", onward),
    ]
}

/// What one binlog-triggered order cannot go faster than, measured at the same
/// rate in the same run: a confirmed persistent publish to a quorum queue, that
/// message's arrival at a consumer, and one ledger transaction's commit.
/// Returns the sum of the p99s a binlog-triggered placement passes in series.
async fn floors(rate: u64, secs: u64) -> f64 {
    let n = rate * secs;
    let id = uid();
    let conn = Arc::new(
        Connection::connect(&amqp(), ConnectionProperties::default())
            .await
            .unwrap(),
    );
    let ch = channel(&conn, true).await;
    let (x, q) = (format!("{id}.floor"), format!("{id}.floor.q"));
    declare(&ch, &x, ExchangeKind::Direct, &q, "k").await;
    let sent: Arc<Mutex<HashMap<u64, Instant>>> = Default::default();
    let arrived: Arc<Mutex<Vec<f64>>> = Default::default();
    let consumer = {
        let (conn, q, sent, arrived) = (conn.clone(), q.clone(), sent.clone(), arrived.clone());
        tokio::spawn(async move {
            let ch = channel(&conn, false).await;
            let mut c = consume(&ch, &q).await;
            loop {
                let batch = next_batch(&mut c, 100).await;
                if batch.is_empty() {
                    return;
                }
                for d in &batch {
                    let i = u64::from_be_bytes(d.data[..8].try_into().unwrap());
                    if let Some(t) = sent.lock().unwrap().get(&i) {
                        arrived
                            .lock()
                            .unwrap()
                            .push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                }
                batch
                    .last()
                    .unwrap()
                    .ack(BasicAckOptions { multiple: true })
                    .await
                    .unwrap();
            }
        })
    };
    let db = create_db(&format!("{id}_ledger"), None).await;
    let mut c = db.get_conn().await.unwrap();
    c.query_drop("CREATE TABLE floor (id INT UNSIGNED PRIMARY KEY, body TEXT)")
        .await
        .unwrap();
    let (mut confirms, mut commits) = (Vec::new(), Vec::new());
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut body = vec![b'x'; 2_000];
    for i in 0..n {
        tick.tick().await;
        body[..8].copy_from_slice(&i.to_be_bytes());
        let t = Instant::now();
        sent.lock().unwrap().insert(i, t);
        confirmed(vec![publish(&ch, &x, "k", &body).await]).await;
        confirms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let mut tx = c.start_transaction(Default::default()).await.unwrap();
        tx.exec_drop("INSERT INTO floor VALUES (?, REPEAT('x', 2000))", (i,))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        commits.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    consumer.abort();
    let mut arrived = arrived.lock().unwrap().clone();
    for v in [&mut confirms, &mut commits, &mut arrived] {
        v.sort_by(f64::total_cmp);
    }
    println!();
    println!("floors at {rate}/s for {secs} s on the same machine, milliseconds (a binlog-triggered order passes two confirmed publishes, one consume and two ledger commits in series):");
    println!();
    println!("| step | p50 | p99 | max |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        ("confirmed persistent publish (quorum queue)", &confirms),
        ("publish → arrival at a consumer", &arrived),
        ("ledger transaction commit (one row)", &commits),
    ] {
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    remove(&ch, &[&q], &[&x]).await;
    let _ = conn.close(200, "done".into()).await;
    drop(c);
    drop(db);
    drop_db(&format!("{id}_ledger")).await;
    2.0 * percentile(&confirms, 0.99)
        + percentile(&arrived, 0.99)
        + 2.0 * percentile(&commits, 0.99)
}

/// Orders committed one checkout at a time at `rate`; milliseconds from each
/// commit to its delivery and to synced, sorted.
/// Places `rate` orders/s for `secs` s, and [`CHANGE_AFTER`] ticks after
/// each placement moves that order to `processing` (a later event, one per
/// order, while placements go on). Returns, in milliseconds and sorted:
/// commit → placement at the consumer, commit → placement synced, state
/// change commit → its event at the consumer; and the placements' commit and
/// arrival times.
async fn steady_stream(
    p: &Pipeline,
    magento: &Pool,
    arrivals: Arc<Mutex<HashMap<u64, SystemTime>>>,
    rate: u64,
    secs: u64,
) -> (
    Vec<f64>,
    Vec<f64>,
    Vec<f64>,
    HashMap<u64, SystemTime>,
    HashMap<u64, SystemTime>,
) {
    let total = secs * rate;
    let mut commits: HashMap<u64, SystemTime> = HashMap::new();
    let mut changes: HashMap<u64, SystemTime> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut conn = magento.get_conn().await.unwrap();
    let change = |id: u64| {
        format!(
            "UPDATE sales_order SET state = 'processing', status = 'processing', \
             updated_at = UTC_TIMESTAMP() WHERE entity_id = {id}"
        )
    };
    for i in 1..=total + CHANGE_AFTER {
        tick.tick().await;
        if i <= total {
            insert_orders_one(&mut conn, i as u32).await;
            commits.insert(i, SystemTime::now());
        }
        if let Some(old) = i.checked_sub(CHANGE_AFTER).filter(|o| *o >= 1) {
            conn.query_drop(change(old)).await.unwrap();
            changes.insert(old, SystemTime::now());
        }
    }
    p.wait_synced(2 * total, Duration::from_secs(120)).await;
    let synced: Vec<(u64, chrono::NaiveDateTime)> = p
        .ledger
        .get_conn()
        .await
        .unwrap()
        .query("SELECT entity_id, synced_at FROM order_sync_deliveries WHERE seq = 0")
        .await
        .unwrap();
    let arrivals = arrivals.lock().unwrap().clone();
    let ms = |a: SystemTime, b: SystemTime| {
        a.duration_since(b)
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let mut delivery: Vec<f64> = commits
        .iter()
        .filter_map(|(id, t)| arrivals.get(id).map(|a| ms(*a, *t)))
        .collect();
    let mut later: Vec<f64> = changes
        .iter()
        .filter_map(|(id, t)| arrivals.get(&(id | LATER)).map(|a| ms(*a, *t)))
        .collect();
    let mut to_synced: Vec<f64> = synced
        .iter()
        .filter_map(|(id, s)| {
            let s = SystemTime::UNIX_EPOCH
                + Duration::from_micros(s.and_utc().timestamp_micros() as u64);
            commits.get(id).map(|t| ms(s, *t))
        })
        .collect();
    delivery.sort_by(f64::total_cmp);
    to_synced.sort_by(f64::total_cmp);
    later.sort_by(f64::total_cmp);
    (delivery, to_synced, later, commits, arrivals)
}

/// The per-operation ceilings on this broker and database, each measured
/// alone at full speed: confirmed persistent publishes/s (windows of 1,000),
/// consume + ack/s (prefetch 1,000, one multiple-ack per batch), and ledger
/// rows written/s (batches of 500 per transaction).
async fn ceilings(n: u32) -> (f64, f64, f64) {
    let ops = Ops::new().await;
    let started = Instant::now();
    ops.publish(n).await;
    let publishes = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    ops.consume(n).await;
    let consumes = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    ops.rows(0, n).await;
    let rows = n as f64 / started.elapsed().as_secs_f64();
    ops.remove().await;
    (publishes, consumes, rows)
}

/// The ceiling that counts the shared machine: the same three operations an
/// order needs (3 confirmed publishes, 3 consume + acks, 3 ledger rows), all
/// at once, as a drain runs them, with RabbitMQ, MariaDB and this process on
/// the same cores. Orders/s: `orders` orders' worth of each, by the time the
/// last of them is done. Still a ceiling: no order-sync logic, no JSON, no
/// reads, and each operation in the biggest batches it takes.
async fn combined_ceiling(orders: u32) -> f64 {
    let ops = Ops::new().await;
    let n = 3 * orders;
    let started = Instant::now();
    tokio::join!(ops.publish(n), ops.consume(n), ops.rows(0, n));
    let rate = orders as f64 / started.elapsed().as_secs_f64();
    ops.remove().await;
    rate
}

/// One broker queue and one ledger table, for the ceiling measurements.
struct Ops {
    id: String,
    conn: Connection,
    ch: Channel,
    exchange: String,
    queue: String,
    db: Pool,
}

impl Ops {
    async fn new() -> Self {
        let id = uid();
        let conn = Connection::connect(&amqp(), ConnectionProperties::default())
            .await
            .unwrap();
        let ch = channel(&conn, true).await;
        let (exchange, queue) = (format!("{id}.ceiling"), format!("{id}.ceiling.q"));
        declare(&ch, &exchange, ExchangeKind::Direct, &queue, "k").await;
        let db = create_db(&format!("{id}_ledger"), None).await;
        db.get_conn()
            .await
            .unwrap()
            .query_drop(
                "CREATE TABLE rows_ceiling (entity_id INT UNSIGNED, consumer VARCHAR(64), \
                 message LONGTEXT, state VARCHAR(16), PRIMARY KEY (entity_id, consumer))",
            )
            .await
            .unwrap();
        Ops {
            id,
            conn,
            ch,
            exchange,
            queue,
            db,
        }
    }

    /// `n` confirmed persistent publishes, in windows of 1,000.
    async fn publish(&self, n: u32) {
        let body = vec![b'x'; 2_000];
        for window in (0..n).collect::<Vec<_>>().chunks(1_000) {
            let mut batch = Vec::with_capacity(window.len());
            for _ in window {
                batch.push(publish(&self.ch, &self.exchange, "k", &body).await);
            }
            confirmed(batch).await;
        }
    }

    /// `n` messages consumed and acked (prefetch 1,000, one multiple-ack
    /// per batch), waiting for them where they are still being published.
    async fn consume(&self, n: u32) {
        let cons = self.conn.create_channel().await.unwrap();
        cons.basic_qos(1_000, BasicQosOptions::default())
            .await
            .unwrap();
        let mut c = consume(&cons, &self.queue).await;
        let mut got = 0;
        while got < n as usize {
            let batch = next_batch(&mut c, 1_000).await;
            got += batch.len();
            batch
                .last()
                .unwrap()
                .ack(BasicAckOptions { multiple: true })
                .await
                .unwrap();
        }
        let _ = cons.close(200, "done".into()).await;
    }

    /// Rows `from..from + n` written, 500 per transaction.
    async fn rows(&self, from: u32, n: u32) {
        let mut c = self.db.get_conn().await.unwrap();
        let message = "x".repeat(2_000);
        for chunk in (from..from + n).collect::<Vec<_>>().chunks(500) {
            let mut tx = c.start_transaction(Default::default()).await.unwrap();
            tx.exec_batch(
                "INSERT INTO rows_ceiling VALUES (?, 'erp', ?, 'pending')",
                chunk.iter().map(|i| (*i, message.as_str())),
            )
            .await
            .unwrap();
            tx.commit().await.unwrap();
        }
    }

    async fn remove(self) {
        remove(&self.ch, &[&self.queue], &[&self.exchange]).await;
        let _ = self.conn.close(200, "done".into()).await;
        drop(self.db);
        drop_db(&format!("{}_ledger", self.id)).await;
    }
}

/// Times each operator read over a ledger of `rows` delivery rows (two
/// consumers; 10,000 of them pending, the rest synced two days ago), served
/// by a running order-sync with both consumers paused.
async fn operator_reads(rows: u64) {
    let id = uid();
    let magento = create_db(&format!("{id}_magento"), Some(SCHEMA)).await;
    let ledger = create_db(&format!("{id}_ledger"), None).await;
    let listen = format!(
        "127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let env: Vec<(String, String)> = [
        ("ORDER_SYNC__SHOP__NAME", id.clone()),
        (
            "ORDER_SYNC__MAGENTO__URL",
            format!("{}/{id}_magento", mysql()),
        ),
        (
            "ORDER_SYNC__LEDGER__URL",
            format!("{}/{id}_ledger", mysql()),
        ),
        ("ORDER_SYNC__BROKER__URL", amqp()),
        ("ORDER_SYNC__BROKER__PREFIX", id.clone()),
        ("ORDER_SYNC__CONSUMERS__NAMES", "erp,wms".into()),
        ("ORDER_SYNC__LOG__FILTER", "warn".into()),
        ("ORDER_SYNC__HTTP__LISTEN", listen.clone()),
        // On loopback, for the bench: reads without a token.
        ("ORDER_SYNC__HTTP__PROTECT_READS", "false".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let order_sync = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_order-sync"));
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    assert!(order_sync(&["migrate"]).status().unwrap().success());
    let orders = rows / 2;
    let pending_from = orders.saturating_sub(5_000);
    let mut c = ledger.get_conn().await.unwrap();
    // In chunks, so the server's undo log stays small.
    for start in (0..orders).step_by(500_000) {
        let end = (start + 500_000).min(orders);
        c.query_drop(format!(
            "INSERT INTO order_sync_orders (entity_id, increment_id, store_id, placed_at, captured_at, message) \
             SELECT seq, LPAD(seq, 9, '0'), 1, UTC_TIMESTAMP() - INTERVAL 3 DAY, UTC_TIMESTAMP() - INTERVAL 3 DAY, '{{}}' \
             FROM seq_{}_to_{end}",
            start + 1
        ))
        .await
        .unwrap();
        c.query_drop(format!(
            "INSERT INTO order_sync_deliveries (entity_id, consumer, increment_id, store_id, message_id, state, \
             attempts, captured_at, next_attempt_at, synced_at, updated_at) \
             SELECT o.entity_id, n.name, o.increment_id, 1, CONCAT('{id}:', o.entity_id, ':', n.name), \
             IF(o.entity_id > {pending_from}, 'pending', 'synced'), 1, o.captured_at, \
             IF(o.entity_id > {pending_from}, UTC_TIMESTAMP(), NULL), \
             IF(o.entity_id > {pending_from}, NULL, UTC_TIMESTAMP() - INTERVAL 2 DAY), o.captured_at \
             FROM order_sync_orders o JOIN (SELECT 'erp' AS name UNION ALL SELECT 'wms') n \
             WHERE o.entity_id > {start} AND o.entity_id <= {end}"
        ))
        .await
        .unwrap();
    }
    // The counts a migration takes, and a pause so nothing is published.
    c.query_drop(
        "INSERT INTO order_sync_synced_counts (consumer, n) \
         SELECT consumer, COUNT(*) FROM order_sync_deliveries WHERE state = 'synced' GROUP BY consumer \
         ON DUPLICATE KEY UPDATE n = VALUES(n)",
    )
    .await
    .unwrap();
    c.query_drop(
        "INSERT INTO order_sync_pauses (consumer, paused_at, paused_by) VALUES ('*', UTC_TIMESTAMP(), 'bench')",
    )
    .await
    .unwrap();
    c.query_drop("ANALYZE TABLE order_sync_deliveries, order_sync_orders")
        .await
        .unwrap();
    let mut child = order_sync(&["run"]).spawn().unwrap();
    let http = reqwest::Client::new();
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "order-sync did not get ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut cells = Vec::new();
    for path in ["/metrics", "/readyz", "/api/summary", "/"] {
        let mut times = Vec::new();
        for _ in 0..30 {
            let t = Instant::now();
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.bytes().await.unwrap();
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        cells.push(times);
    }
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        assert!(order_sync(&["status"]).status().unwrap().success());
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    cells.push(times);
    let settings = order_sync::config::load_with_env(None, env.clone()).unwrap();
    let l = order_sync::ledger::Ledger::new(&settings.ledger).unwrap();
    let consumers = vec!["erp".to_owned(), "wms".to_owned()];
    let mut times = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        l.claim_due(
            &consumers,
            order_sync::ledger::Unanswered::Of(&consumers[..1]),
            chrono::Utc::now(),
            100,
            20,
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    cells.push(times);
    let plans = l.explain_operator_reads().await.unwrap();
    l.disconnect().await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let row: Vec<String> = cells
        .into_iter()
        .map(|mut t| {
            t.sort_by(f64::total_cmp);
            format!("{:.1} / {:.1}", percentile(&t, 0.5), percentile(&t, 0.99))
        })
        .collect();
    println!("| {rows} | {} |", row.join(" | "));
    if rows >= 1_000_000 {
        println!();
        println!("plans at {rows} rows (EXPLAIN):");
        println!();
        println!("| read | table | access | key | rows examined (estimate) |");
        println!("|---|---|---|---|---:|");
        for p in plans {
            println!(
                "| {} | {} | {} | {} | {} |",
                p.read,
                p.table.unwrap_or_default(),
                p.access.unwrap_or_default(),
                p.key.unwrap_or_default(),
                p.rows.map(|r| r.to_string()).unwrap_or_default()
            );
        }
        println!();
    }
    drop(c);
    drop(ledger);
    drop(magento);
    let conn = Connection::connect(&amqp(), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    for q in [
        "orders.relay",
        "que.erp",
        "que.wms",
        "acks.listener",
        "dead.orders",
        "dead.acks",
        "dead.que.erp",
        "dead.que.wms",
    ] {
        let _ = ch
            .queue_delete(
                format!("{id}.{q}").as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
    }
    for x in ["orders", "que", "acks", "dlx"] {
        let _ = ch
            .exchange_delete(
                format!("{id}.{x}").as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
    let _ = conn.close(200, "done".into()).await;
    drop_db(&format!("{id}_magento")).await;
    drop_db(&format!("{id}_ledger")).await;
}

/// One checkout: an order and its children in one transaction.
async fn insert_orders_one(conn: &mut mysql_async::Conn, id: u32) {
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order (entity_id, increment_id, store_id, state, status, customer_email, grand_total, base_grand_total) \
         VALUES ({id}, LPAD({id}, 9, '0'), 1, 'new', 'pending', 'roni@example.com', '123.4500', '123.4500')")).await.unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, row_total) VALUES \
         ({id}, 1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'simple', 1, '52.0000', '52.0000')")).await.unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order_address (parent_id, address_type, firstname, lastname, street, city, postcode, country_id) VALUES \
         ({id}, 'billing', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US')")).await.unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order_payment (parent_id, method) VALUES ({id}, 'checkmo')"
    ))
    .await
    .unwrap();
    tx.commit().await.unwrap();
}
