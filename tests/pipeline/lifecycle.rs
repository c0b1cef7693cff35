//! An order's whole life: invoices, shipments, credit memos, cancellations and
//! status changes reach each consumer that subscribed to them, in order per
//! order, after the placement; unpaid orders are held instead of dropped.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mysql_async::prelude::*;
use order_sync::ledger::State;
use serde_json::{json, Value};

use crate::{
    contract::validate,
    support::{assert_counts_exact, body, insert_order, TestEnv},
};

/// Magento's sales tables, under Magento 2's or Magento 1's names.
#[derive(Clone, Copy)]
pub(crate) struct Shop {
    pub(crate) magento1: bool,
}

impl Shop {
    fn t(&self, name: &str) -> String {
        if self.magento1 {
            format!("magev1_{}", name.replacen("sales_", "sales_flat_", 1))
        } else {
            name.to_owned()
        }
    }

    /// Sets the order's state and status, as Magento's order save does.
    pub(crate) async fn set_state(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        id: u32,
        state: &str,
        status: &str,
    ) {
        tx.exec_drop(
            format!(
                "UPDATE {} SET state = ?, status = ? WHERE entity_id = ?",
                self.t("sales_order")
            ),
            (state, status, id),
        )
        .await
        .unwrap();
    }

    /// An invoice with its item and comment, and the order moving to
    /// `processing`, in one transaction (as `$invoice->register()` and the
    /// save transaction do). Returns the invoice id.
    pub(crate) async fn invoice(&self, env: &TestEnv, order: u32) -> u32 {
        let mut conn = env.magento_conn().await;
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        tx.exec_drop(
            format!(
                "INSERT INTO {} (order_id, store_id, state, grand_total, base_grand_total, \
                 subtotal, tax_amount, shipping_amount, total_qty, order_currency_code, increment_id) \
                 VALUES (?, 1, 2, '123.4500', '123.4500', '118.4500', '0.0000', '5.0000', '3.0000', 'USD', ?)",
                self.t("sales_invoice")
            ),
            (order, format!("INV{order:06}")),
        )
        .await
        .unwrap();
        let invoice = tx.last_insert_id().unwrap() as u32;
        tx.exec_drop(
            format!(
                "INSERT INTO {} (parent_id, sku, name, qty, price, row_total) VALUES \
                 (?, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', '1.0000', '52.0000', '52.0000'), \
                 (?, '24-MB01', 'Joust Duffle Bag', '2.0000', '33.2250', '66.4500')",
                self.t("sales_invoice_item")
            ),
            (invoice, invoice),
        )
        .await
        .unwrap();
        tx.exec_drop(
            format!(
                "INSERT INTO {} (parent_id, comment, is_customer_notified) VALUES (?, 'Paid by card', 0)",
                self.t("sales_invoice_comment")
            ),
            (invoice,),
        )
        .await
        .unwrap();
        self.set_state(&mut tx, order, "processing", "processing")
            .await;
        tx.commit().await.unwrap();
        invoice
    }

    /// A shipment with an item and a track; the order becomes `complete`.
    pub(crate) async fn ship(&self, env: &TestEnv, order: u32) -> u32 {
        let mut conn = env.magento_conn().await;
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        tx.exec_drop(
            format!(
                "INSERT INTO {} (order_id, store_id, total_qty, increment_id) VALUES (?, 1, '3.0000', ?)",
                self.t("sales_shipment")
            ),
            (order, format!("SHP{order:06}")),
        )
        .await
        .unwrap();
        let shipment = tx.last_insert_id().unwrap() as u32;
        tx.exec_drop(
            format!(
                "INSERT INTO {} (parent_id, sku, name, qty, price) VALUES (?, '24-MB01', 'Joust Duffle Bag', '2.0000', '33.2250')",
                self.t("sales_shipment_item")
            ),
            (shipment,),
        )
        .await
        .unwrap();
        tx.exec_drop(
            format!(
                "INSERT INTO {} (parent_id, order_id, track_number, title, carrier_code) \
                 VALUES (?, ?, '1Z999AA10123456784', 'United Parcel Service', 'ups')",
                self.t("sales_shipment_track")
            ),
            (shipment, order),
        )
        .await
        .unwrap();
        self.set_state(&mut tx, order, "complete", "complete").await;
        tx.commit().await.unwrap();
        shipment
    }

    /// A credit memo with an item; the order becomes `closed`.
    pub(crate) async fn refund(&self, env: &TestEnv, order: u32) -> u32 {
        self.credit_memo(env, order, "123.4500", true).await
    }

    /// A credit memo for part of the order: the order keeps its state (a
    /// shipped order stays `complete`), its totals change.
    pub(crate) async fn partial_refund(&self, env: &TestEnv, order: u32) -> u32 {
        self.credit_memo(env, order, "33.2250", false).await
    }

    pub(crate) async fn credit_memo(
        &self,
        env: &TestEnv,
        order: u32,
        total: &str,
        closes: bool,
    ) -> u32 {
        let mut conn = env.magento_conn().await;
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        tx.exec_drop(
            format!(
                "INSERT INTO {} (order_id, store_id, state, grand_total, base_grand_total, \
                 adjustment_positive, adjustment_negative, order_currency_code, increment_id) \
                 VALUES (?, 1, 2, ?, ?, '0.0000', '0.0000', 'USD', ?)",
                self.t("sales_creditmemo")
            ),
            (order, total, total, format!("CM{order:06}")),
        )
        .await
        .unwrap();
        let memo = tx.last_insert_id().unwrap() as u32;
        tx.exec_drop(
            format!(
                "INSERT INTO {} (parent_id, sku, name, qty, price, row_total) VALUES (?, '24-MB01', 'Joust Duffle Bag', '2.0000', '33.2250', '66.4500')",
                self.t("sales_creditmemo_item")
            ),
            (memo,),
        )
        .await
        .unwrap();
        if closes {
            self.set_state(&mut tx, order, "closed", "closed").await;
        } else {
            tx.exec_drop(
                format!(
                    "UPDATE {} SET total_refunded = ? WHERE entity_id = ?",
                    self.t("sales_order")
                ),
                (total, order),
            )
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        memo
    }

    pub(crate) async fn cancel(&self, env: &TestEnv, order: u32) {
        self.change(env, order, "canceled", "canceled").await;
    }

    pub(crate) async fn change(&self, env: &TestEnv, order: u32, state: &str, status: &str) {
        let mut conn = env.magento_conn().await;
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        self.set_state(&mut tx, order, state, status).await;
        tx.commit().await.unwrap();
    }

    /// An order placed in `state`/`status`.
    pub(crate) async fn place(&self, env: &TestEnv, state: &str, status: &str) -> u32 {
        let mut conn = env.magento_conn().await;
        if self.magento1 {
            conn.exec_drop(
                "INSERT INTO magev1_sales_flat_order (store_id, state, status, customer_email, \
                 base_currency_code, order_currency_code, grand_total, base_grand_total, \
                 total_item_count, created_at, updated_at) VALUES (1, ?, ?, 'roni@example.com', \
                 'USD', 'USD', '123.4500', '123.4500', 2, UTC_TIMESTAMP(), UTC_TIMESTAMP())",
                (state, status),
            )
            .await
            .unwrap();
            let id = conn.last_insert_id().unwrap() as u32;
            conn.exec_drop(
                "UPDATE magev1_sales_flat_order SET increment_id = LPAD(?, 9, '1') WHERE entity_id = ?",
                (id, id),
            )
            .await
            .unwrap();
            return id;
        }
        let mut tx = conn.start_transaction(Default::default()).await.unwrap();
        let id = insert_order(&mut tx).await;
        self.set_state(&mut tx, id, state, status).await;
        tx.commit().await.unwrap();
        id
    }

    /// One row of `table` as text, column by column (NULL as `None`).
    pub(crate) async fn row_text(
        &self,
        env: &TestEnv,
        table: &str,
        id: u32,
    ) -> Vec<(String, Option<String>)> {
        let mut conn = env.magento_conn().await;
        conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
        let row: mysql_async::Row = conn
            .query_first(format!(
                "SELECT * FROM {} WHERE entity_id = {id}",
                self.t(table)
            ))
            .await
            .unwrap()
            .expect("the row exists");
        let columns: Vec<String> = row
            .columns_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        columns
            .into_iter()
            .zip(row.unwrap())
            .map(|(c, v)| {
                let text = match v {
                    mysql_async::Value::NULL => None,
                    mysql_async::Value::Bytes(b) => Some(String::from_utf8(b).unwrap()),
                    other => Some(other.as_sql(true)),
                };
                (c, text)
            })
            .collect()
    }
}

/// Every column of the database row is in the message's object with the
/// same exact value: DECIMALs as the same digits, dates as stored (UTC).
fn assert_same_columns(message: &Value, row: &[(String, Option<String>)], what: &str) {
    for (column, text) in row {
        let got = &message[column.as_str()];
        let got_text = match got {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => panic!("{what}.{column} is {other}"),
        };
        assert_eq!(&got_text, text, "{what}.{column}");
    }
}

/// What one consumer received: (entity_id, event, sequence, body), in arrival order.
pub(crate) type Received = Arc<Mutex<Vec<(u32, String, u64, Value)>>>;

/// A sync service that acks every message `synced` (by its message id alone),
/// recording what it got, in order.
pub(crate) async fn sync_service(
    env: &TestEnv,
    consumer: &str,
) -> (Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::default();
    let mut stream = env.consume(&env.topology().consumer_queue(consumer)).await;
    let (keep, name) = (got.clone(), consumer.to_owned());
    let acks = env.parts().deps.broker.clone();
    let _ = acks;
    let ack_env = AckSender::new(env).await;
    let task = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(d)) = stream.next().await {
            let msg = body(&d);
            let id = msg["order"]["entity_id"].as_u64().unwrap() as u32;
            let event = msg["event"].as_str().unwrap().to_owned();
            let seq = msg["sequence"].as_u64().unwrap_or(0);
            ack_env
                .send(
                    json!({"message_id": msg["message_id"], "consumer": name, "status": "synced"}),
                )
                .await;
            d.ack(Default::default()).await.unwrap();
            keep.lock().unwrap().push((id, event, seq, msg));
        }
    });
    (got, task)
}

/// Publishes acks on a channel of its own.
struct AckSender {
    channel: lapin::Channel,
    exchange: String,
}

impl AckSender {
    async fn new(env: &TestEnv) -> Self {
        let channel = env.amqp.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        Self {
            channel,
            exchange: env.topology().acks_exchange(),
        }
    }

    async fn send(&self, ack: Value) {
        let key = ack["consumer"].as_str().unwrap().to_owned();
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_str().into(),
                key.as_str().into(),
                Default::default(),
                &serde_json::to_vec(&ack).unwrap(),
                lapin::BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }
}

/// The events one consumer got for one order, in arrival order.
pub(crate) fn events_of(got: &Received, order: u32) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(id, ..)| *id == order)
        .map(|(_, e, ..)| e.clone())
        .collect()
}

fn message_of(got: &Received, order: u32, event: &str) -> Value {
    got.lock()
        .unwrap()
        .iter()
        .find(|(id, e, ..)| *id == order && e == event)
        .map(|(.., m)| m.clone())
        .unwrap_or_else(|| panic!("no {event} for order {order}"))
}

/// Stops the pipeline and the sync services, and removes the test's world.
pub(crate) async fn finish(
    env: TestEnv,
    shutdown: tokio_util::sync::CancellationToken,
    pipeline: tokio::task::JoinHandle<()>,
    services: impl IntoIterator<Item = tokio::task::JoinHandle<()>>,
) {
    shutdown.cancel();
    pipeline.await.unwrap();
    for s in services {
        s.abort();
    }
    env.cleanup().await;
}

/// Waits until `check` holds, or fails saying `what`.
pub(crate) async fn until(what: &str, within: Duration, check: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub(crate) const PLACE: &str = "sales_order_place_after_que";
pub(crate) const INVOICE: &str = "sales_order_invoice_save_after_que";
pub(crate) const SHIP: &str = "sales_order_shipment_save_after_que";
pub(crate) const REFUND: &str = "sales_order_creditmemo_save_after_que";
pub(crate) const CANCEL: &str = "order_cancel_after_que";
pub(crate) const CHANGE: &str = "sales_order_save_after_que";

/// Each event and its schema in docs/asyncapi.yaml.
pub const SCHEMAS: [(&str, &str); 5] = [
    (INVOICE, "InvoiceToSync"),
    (SHIP, "ShipmentToSync"),
    (REFUND, "CreditmemoToSync"),
    (CANCEL, "ChangeToSync"),
    (CHANGE, "ChangeToSync"),
];

pub(crate) fn fast(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
    let mut o = vec![
        ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "50ms"),
        ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "50ms"),
    ];
    o.extend_from_slice(extra);
    o
}

#[tokio::test]
async fn an_orders_life_reaches_each_consumer_in_order_with_only_the_events_it_subscribed_to() {
    let env = TestEnv::new(
        &["erp", "wms", "crm"],
        &fast(&[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,invoiced,shipped,refunded,canceled,status_changed",
            ),
            (
                "ORDER_SYNC__CONSUMERS__WMS__EVENTS",
                "placed,shipped,canceled",
            ),
            ("ORDER_SYNC__CONSUMERS__CRM__EVENTS", "refunded"),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    let (erp, e1) = sync_service(&env, "erp").await;
    let (wms, e2) = sync_service(&env, "wms").await;
    let (crm, e3) = sync_service(&env, "crm").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let long = Duration::from_secs(20);

    // A: a redirect payment, held; B and C placed paid-for-later (`new`).
    let a = shop.place(&env, "pending_payment", "pending_payment").await;
    let b = shop.place(&env, "new", "pending").await;
    let c = shop.place(&env, "new", "pending").await;
    until("B and C placed at erp and wms", long, || {
        [&erp, &wms]
            .iter()
            .all(|g| events_of(g, b) == [PLACE] && events_of(g, c) == [PLACE])
    })
    .await;
    env.wait_for_ledger(long, "A held", |rows| {
        rows.iter()
            .filter(|r| r.entity_id == a)
            .all(|r| r.state == State::Held)
            && rows.iter().any(|r| r.entity_id == a)
    })
    .await;
    assert!(events_of(&erp, a).is_empty(), "a held order is not sent");

    // A is paid: its placement goes out as it is now, then the invoice.
    let invoice_a = shop.invoice(&env, a).await;
    until("A placed and invoiced at erp", long, || {
        events_of(&erp, a) == [PLACE, INVOICE]
    })
    .await;
    until("A placed at wms", long, || events_of(&wms, a) == [PLACE]).await;
    assert_eq!(message_of(&erp, a, PLACE)["order"]["state"], "processing");
    let inv = message_of(&erp, a, INVOICE);
    assert_same_columns(
        &inv["invoice"],
        &shop.row_text(&env, "sales_invoice", invoice_a).await,
        "invoice",
    );
    assert_eq!(inv["invoice"]["items"].as_array().unwrap().len(), 2);
    assert_eq!(inv["invoice"]["items"][1]["row_total"], "66.4500");
    assert_eq!(inv["invoice"]["comments"][0]["comment"], "Paid by card");
    assert_eq!(inv["order"]["increment_id"], format!("{a:09}"));
    assert_eq!(inv["order"]["state"], "processing");
    assert_eq!(inv["sequence"], 1);

    let shipment_a = shop.ship(&env, a).await;
    until("A shipped and complete at erp", long, || {
        events_of(&erp, a) == [PLACE, INVOICE, SHIP, CHANGE]
    })
    .await;
    until("A shipped at wms", long, || {
        events_of(&wms, a) == [PLACE, SHIP]
    })
    .await;
    let ship = message_of(&erp, a, SHIP);
    assert_same_columns(
        &ship["shipment"],
        &shop.row_text(&env, "sales_shipment", shipment_a).await,
        "shipment",
    );
    assert_eq!(
        ship["shipment"]["tracks"][0]["track_number"],
        "1Z999AA10123456784"
    );
    let change = message_of(&erp, a, CHANGE);
    assert_eq!(
        change["previous"],
        json!({"state": "processing", "status": "processing"})
    );
    assert_eq!(change["order"]["state"], "complete");

    // B is cancelled.
    shop.cancel(&env, b).await;
    until("B cancelled at erp", long, || {
        events_of(&erp, b) == [PLACE, CANCEL, CHANGE]
    })
    .await;
    until("B cancelled at wms", long, || {
        events_of(&wms, b) == [PLACE, CANCEL]
    })
    .await;
    assert_eq!(message_of(&wms, b, CANCEL)["previous"]["state"], "new");

    // C is invoiced, then refunded.
    shop.invoice(&env, c).await;
    until("C invoiced at erp", long, || {
        events_of(&erp, c) == [PLACE, INVOICE, CHANGE]
    })
    .await;
    let memo_c = shop.refund(&env, c).await;
    until("C refunded at erp", long, || {
        events_of(&erp, c) == [PLACE, INVOICE, CHANGE, REFUND, CHANGE]
    })
    .await;
    until("C refunded at crm", long, || events_of(&crm, c) == [REFUND]).await;
    let refund = message_of(&crm, c, REFUND);
    assert_same_columns(
        &refund["creditmemo"],
        &shop.row_text(&env, "sales_creditmemo", memo_c).await,
        "creditmemo",
    );
    assert_eq!(refund["creditmemo"]["items"][0]["qty"], "2.0000");

    // Everything settled, each once; nothing else arrived.
    env.wait_for_ledger(long, "every row synced", |rows| {
        rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_of(&erp, a), [PLACE, INVOICE, SHIP, CHANGE]);
    assert_eq!(events_of(&wms, c), [PLACE]);
    assert!(events_of(&crm, a).is_empty() && events_of(&crm, b).is_empty());
    for got in [&erp, &wms, &crm] {
        // Within an order, sequences rise in arrival order.
        let got = got.lock().unwrap();
        for order in [a, b, c] {
            let seqs: Vec<u64> = got.iter().filter(|r| r.0 == order).map(|r| r.2).collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "order {order}: {seqs:?}"
            );
        }
    }
    assert_counts_exact(&env.parts().deps.ledger).await;
    // Each event as really sent matches its schema in docs/asyncapi.yaml.
    for (event, schema) in SCHEMAS {
        let msg = erp
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.1 == event)
            .map(|r| r.3.clone())
            .unwrap();
        let path = std::env::temp_dir().join(format!("{}-{event}.json", env.id));
        std::fs::write(&path, serde_json::to_vec_pretty(&msg).unwrap()).unwrap();
        let (ok, text) = validate(&[schema, path.to_str().unwrap()]);
        assert!(ok, "a real {event} does not match {schema}:\n{text}");
        let _ = std::fs::remove_file(&path);
        // ORDER_SYNC_WRITE_EXAMPLES=docs/examples refreshes the documented examples.
        if let Ok(dir) = std::env::var("ORDER_SYNC_WRITE_EXAMPLES") {
            let text = serde_json::to_string_pretty(&msg)
                .unwrap()
                .replace(&env.id, "myshop");
            std::fs::write(format!("{dir}/{event}.json"), text + "\n").unwrap();
        }
    }
    // An operator re-sends one event of one order: only that one goes again,
    // under a new message id.
    let out = env
        .order_sync(&[
            "resync",
            "--entity-id",
            &a.to_string(),
            "--consumer",
            "erp",
            "--event",
            "invoiced",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until("A's invoice again", long, || events_of(&erp, a).len() == 5).await;
    let again = erp.lock().unwrap().last().unwrap().3.clone();
    assert_eq!(again["event"], INVOICE);
    assert!(
        again["message_id"].as_str().unwrap().ends_with(":erp:r1"),
        "{again}"
    );
    let out = env
        .order_sync(&["resync", "--entity-id", &a.to_string(), "--event", "paid"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown event is a usage error"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an event"));
    finish(env, shutdown, pipeline, [e1, e2, e3]).await;
}

/// A sync service driven by the test: `answer(entity_id, event, nth)` says
/// how to ack the nth message of that order and event it got (`None`: no ack).
async fn scripted_service(
    env: &TestEnv,
    consumer: &str,
    answer: impl Fn(u32, &str, u64) -> Option<&'static str> + Send + 'static,
) -> (Received, tokio::task::JoinHandle<()>) {
    let got: Received = Arc::default();
    let mut stream = env.consume(&env.topology().consumer_queue(consumer)).await;
    let (keep, name) = (got.clone(), consumer.to_owned());
    let acks = AckSender::new(env).await;
    let task = tokio::spawn(async move {
        use futures_util::StreamExt;
        while let Some(Ok(d)) = stream.next().await {
            let msg = body(&d);
            let id = msg["order"]["entity_id"].as_u64().unwrap() as u32;
            let event = msg["event"].as_str().unwrap().to_owned();
            let nth = {
                let mut got = keep.lock().unwrap();
                got.push((
                    id,
                    event.clone(),
                    msg["sequence"].as_u64().unwrap_or(0),
                    msg.clone(),
                ));
                got.iter().filter(|r| r.0 == id && r.1 == event).count() as u64
            };
            if let Some(status) = answer(id, &event, nth) {
                acks.send(json!({
                    "message_id": msg["message_id"], "consumer": name,
                    "status": status, "error": (status == "failed").then_some("ERP timeout"),
                }))
                .await;
            }
            d.ack(Default::default()).await.unwrap();
        }
    });
    (got, task)
}

#[tokio::test]
async fn an_orders_next_event_waits_until_its_placement_is_synced_even_through_failed_acks() {
    let env = TestEnv::new(
        &["erp"],
        &fast(&[
            ("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced"),
            ("ORDER_SYNC__RELAY__SCHEDULE", "100ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "300ms"),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    // The ERP fails the placement twice, then takes it; everything else at once.
    let (erp, task) = scripted_service(&env, "erp", |_, event, nth| {
        Some(if event == PLACE && nth < 3 {
            "failed"
        } else {
            "synced"
        })
    })
    .await;
    // Placed and invoiced before order-sync looks: both are there at once.
    let x = shop.place(&env, "new", "pending").await;
    shop.invoice(&env, x).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    until(
        "the invoice after three placements",
        Duration::from_secs(20),
        || events_of(&erp, x).len() == 4,
    )
    .await;
    let got: Vec<(String, u64)> = erp
        .lock()
        .unwrap()
        .iter()
        .map(|(_, e, _, m)| (e.clone(), m["attempt"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (PLACE.to_owned(), 1),
            (PLACE.to_owned(), 2),
            (PLACE.to_owned(), 3),
            (INVOICE.to_owned(), 1)
        ]
    );
    env.wait_for_ledger(Duration::from_secs(10), "both synced", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    finish(env, shutdown, pipeline, [task]).await;
}

#[tokio::test]
async fn a_parked_placement_blocks_its_orders_later_events_visibly_until_unparked_or_skipped() {
    let env = TestEnv::new(
        &["erp"],
        &fast(&[
            ("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced"),
            ("ORDER_SYNC__RELAY__SCHEDULE", "100ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "200ms"),
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "1"),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    let (x, y) = (
        shop.place(&env, "new", "pending").await,
        shop.place(&env, "new", "pending").await,
    );
    // The ERP fails X's and Y's first placement; it takes the rest.
    let (erp, task) = scripted_service(&env, "erp", move |id, event, nth| {
        Some(if id > y || event != PLACE || nth > 1 {
            "synced"
        } else {
            "failed"
        })
    })
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let z = shop.place(&env, "new", "pending").await;
    let long = Duration::from_secs(20);
    env.wait_for_ledger(long, "x and y parked", |rows| {
        rows.iter()
            .filter(|r| r.entity_id != z)
            .all(|r| r.state == State::Parked)
            && rows.len() == 3
    })
    .await;
    // Z is another order: its own life is not held up by X's and Y's.
    shop.invoice(&env, x).await;
    shop.invoice(&env, y).await;
    let rows = env
        .wait_for_ledger(long, "the invoices recorded, blocked", |rows| {
            rows.iter().filter(|r| r.seq == 1).count() == 2
        })
        .await;
    for r in rows.iter().filter(|r| r.seq == 1) {
        assert_eq!(r.state, State::Pending);
        assert_eq!(r.blocked_by, Some(0), "{r:?}");
    }
    shop.invoice(&env, z).await;
    until("z's invoice, not held up", long, || {
        events_of(&erp, z).len() == 2
    })
    .await;
    assert_eq!(events_of(&erp, x), [PLACE], "x's invoice waits");

    // `show` says why it waits.
    let out = env
        .order_sync(&["show", "--entity-id", &x.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("#1 invoiced") && text.contains("blocked"),
        "{text}"
    );
    let out = env
        .order_sync(&["show", "--entity-id", &x.to_string(), "--json"])
        .output()
        .unwrap();
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let invoiced = json[0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["seq"] == 1)
        .expect("the invoice row");
    assert_eq!(invoiced["event"], "invoiced");
    assert_eq!(invoiced["blocked_by"], 0);
    assert_eq!(invoiced["state"], "pending");

    // Un-parking X's placement sends it again, and then its invoice.
    let out = env
        .order_sync(&["unpark", &x.to_string(), "--consumer", "erp"])
        .output()
        .unwrap();
    assert!(out.status.success());
    until("x placed again, then invoiced", long, || {
        events_of(&erp, x) == [PLACE, PLACE, INVOICE]
    })
    .await;

    // Skipping Y's placement gives it up, recorded, and lets the invoice go.
    let out = env
        .order_sync(&["skip", &y.to_string(), "--consumer", "erp"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until("y's invoice after the skip", long, || {
        events_of(&erp, y) == [PLACE, INVOICE]
    })
    .await;
    let ledger = env.parts().deps.ledger;
    let placed_y = ledger.delivery(y, "erp").await.unwrap().unwrap();
    assert_eq!(placed_y.state, State::Skipped);
    assert!(placed_y.last_error.unwrap().starts_with("skipped by cli"));
    env.wait_for_ledger(long, "the rest synced", |rows| {
        rows.iter()
            .filter(|r| !(r.entity_id == y && r.seq == 0))
            .all(|r| r.state == State::Synced)
    })
    .await;
    assert_counts_exact(&ledger).await;
    finish(env, shutdown, pipeline, [task]).await;
}

#[tokio::test]
async fn an_unpaid_order_is_held_then_sent_when_paid_and_one_cancelled_while_held_sends_both() {
    let env = TestEnv::new(
        &["erp"],
        &fast(&[("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,canceled")]),
    )
    .await;
    let shop = Shop { magento1: false };
    let (erp, task) = sync_service(&env, "erp").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let paid = shop.place(&env, "pending_payment", "pending_payment").await;
    let dropped = shop.place(&env, "payment_review", "payment_review").await;
    let long = Duration::from_secs(20);
    env.wait_for_ledger(long, "both held", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.state == State::Held)
    })
    .await;
    let ledger = env.parts().deps.ledger;
    let counts = ledger.counts().await.unwrap();
    assert!(
        counts.contains(&("erp".into(), State::Held, 2)),
        "{counts:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(erp.lock().unwrap().is_empty(), "held orders are not sent");

    // Paid (PayPal returned): the placement goes out, as the order is now.
    shop.change(&env, paid, "processing", "processing").await;
    until("the paid order placed", long, || {
        events_of(&erp, paid) == [PLACE]
    })
    .await;
    let placed = message_of(&erp, paid, PLACE);
    assert_eq!(placed["order"]["state"], "processing");
    assert_eq!(placed["order"]["items"].as_array().unwrap().len(), 2);

    // Cancelled while held, `hold_canceled = "send"`: the placement as held, then the cancellation.
    shop.cancel(&env, dropped).await;
    until("the cancelled one placed, then cancelled", long, || {
        events_of(&erp, dropped) == [PLACE, CANCEL]
    })
    .await;
    assert_eq!(
        message_of(&erp, dropped, PLACE)["order"]["state"],
        "payment_review"
    );
    assert_eq!(
        message_of(&erp, dropped, CANCEL)["previous"],
        json!({"state": "payment_review", "status": "payment_review"})
    );
    env.wait_for_ledger(long, "all synced", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    assert_counts_exact(&ledger).await;
    finish(env, shutdown, pipeline, [task]).await;
}

#[tokio::test]
async fn an_order_already_cancelled_when_first_read_gives_its_cancellation_after_the_placement_once(
) {
    let env = TestEnv::new(
        &["erp", "wms"],
        &fast(&[
            ("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,canceled"),
            ("ORDER_SYNC__CONSUMERS__WMS__EVENTS", "placed"),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    // Declined and cancelled at checkout, or while order-sync was stopped:
    // it is `canceled` before order-sync ever reads it.
    let gone = shop.place(&env, "canceled", "canceled").await;
    let (erp, task) = sync_service(&env, "erp").await;
    let (wms, wms_task) = sync_service(&env, "wms").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let long = Duration::from_secs(20);
    until("placed, then cancelled", long, || {
        events_of(&erp, gone) == [PLACE, CANCEL]
    })
    .await;
    let cancel = message_of(&erp, gone, CANCEL);
    assert_eq!(cancel["order"]["state"], "canceled");
    assert_eq!(cancel["sequence"], 1);
    assert_eq!(
        cancel["previous"],
        json!({"state": null, "status": null}),
        "no state was seen before it"
    );
    env.wait_for_ledger(long, "all synced", |rows| {
        rows.len() == 3 && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    // The change scan, which runs meanwhile, adds no second one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_of(&erp, gone), [PLACE, CANCEL]);
    assert_eq!(events_of(&wms, gone), [PLACE], "wms takes no cancellations");
    finish(env, shutdown, pipeline, [task, wms_task]).await;
}

#[tokio::test]
async fn an_order_cancelled_while_held_is_kept_as_skipped_when_holds_drop_cancellations() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &fast(&[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,canceled,status_changed",
            ),
            ("ORDER_SYNC__CAPTURE__HOLD_CANCELED", "drop"),
            ("ORDER_SYNC__CAPTURE__HOLD_STATES", "pending_payment"),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    let (erp, t1) = sync_service(&env, "erp").await;
    let (wms, t2) = sync_service(&env, "wms").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let unpaid = shop.place(&env, "pending_payment", "pending_payment").await;
    // Not a hold state here: sent at once.
    let review = shop.place(&env, "payment_review", "payment_review").await;
    let long = Duration::from_secs(20);
    until("the order in review placed", long, || {
        events_of(&erp, review) == [PLACE] && events_of(&wms, review) == [PLACE]
    })
    .await;
    env.wait_for_ledger(long, "the unpaid one held", |rows| {
        rows.iter().filter(|r| r.entity_id == unpaid).count() == 2
            && rows
                .iter()
                .filter(|r| r.entity_id == unpaid)
                .all(|r| r.state == State::Held)
    })
    .await;
    shop.cancel(&env, unpaid).await;
    let rows = env
        .wait_for_ledger(long, "its rows skipped", |rows| {
            rows.iter()
                .filter(|r| r.entity_id == unpaid)
                .all(|r| r.state == State::Skipped)
        })
        .await;
    for r in rows.iter().filter(|r| r.entity_id == unpaid) {
        assert!(
            r.last_error
                .as_deref()
                .unwrap()
                .contains("cancelled while held"),
            "{r:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(events_of(&erp, unpaid).is_empty() && events_of(&wms, unpaid).is_empty());
    // Kept in the ledger with its order, state as Magento has it now.
    let (view, _) = env
        .parts()
        .deps
        .ledger
        .order(unpaid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.deliveries.len(), 2);
    finish(env, shutdown, pipeline, [t1, t2]).await;
}

#[tokio::test]
async fn a_magento1_orders_life_reaches_its_consumer_in_order_column_for_column() {
    let env = TestEnv::new(
        &["erp"],
        &fast(&[
            ("ORDER_SYNC__MAGENTO__VERSION", "1"),
            ("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "magev1_"),
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,invoiced,shipped,refunded,canceled,status_changed",
            ),
        ]),
    )
    .await;
    let shop = Shop { magento1: true };
    let (erp, task) = sync_service(&env, "erp").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let long = Duration::from_secs(20);
    let a = shop.place(&env, "new", "pending").await;
    let b = shop.place(&env, "new", "pending").await;
    until("both placed", long, || {
        events_of(&erp, a) == [PLACE] && events_of(&erp, b) == [PLACE]
    })
    .await;
    let invoice = shop.invoice(&env, a).await;
    until("a invoiced", long, || {
        events_of(&erp, a) == [PLACE, INVOICE, CHANGE]
    })
    .await;
    let shipment = shop.ship(&env, a).await;
    until("a shipped", long, || {
        events_of(&erp, a) == [PLACE, INVOICE, CHANGE, SHIP, CHANGE]
    })
    .await;
    shop.cancel(&env, b).await;
    until("b cancelled", long, || {
        events_of(&erp, b) == [PLACE, CANCEL, CHANGE]
    })
    .await;

    let inv = message_of(&erp, a, INVOICE);
    assert_same_columns(
        &inv["invoice"],
        &shop.row_text(&env, "sales_invoice", invoice).await,
        "invoice",
    );
    assert_eq!(inv["invoice"]["items"][0]["price"], "52.0000");
    // The real OpenMage schema: Magento 1's own columns, none of Magento 2's.
    for column in [
        "hidden_tax_amount",
        "base_hidden_tax_amount",
        "shipping_hidden_tax_amount",
    ] {
        assert!(inv["invoice"].get(column).is_some(), "{column}: {inv}");
    }
    for column in [
        "discount_tax_compensation_amount",
        "send_email",
        "customer_note",
    ] {
        assert!(inv["invoice"].get(column).is_none(), "{column}: {inv}");
    }
    let ship = message_of(&erp, a, SHIP);
    assert_same_columns(
        &ship["shipment"],
        &shop.row_text(&env, "sales_shipment", shipment).await,
        "shipment",
    );
    assert_eq!(ship["shipment"]["tracks"][0]["carrier_code"], "ups");
    assert_eq!(
        message_of(&erp, b, CANCEL)["order"]["increment_id"],
        format!("{b:1>9}")
    );
    env.wait_for_ledger(long, "all synced", |rows| {
        rows.len() == 8 && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    finish(env, shutdown, pipeline, [task]).await;
}

#[tokio::test]
async fn a_ledger_from_before_events_is_migrated_in_place_its_rows_becoming_placements() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let ledger = env.parts().deps.ledger;
    // Build the ledger as version 5 left it, with an order in it: synced for
    // erp, parked for wms.
    let mut conn = ledger.pool().get_conn().await.unwrap();
    for table in [
        "order_sync_events",
        "order_sync_deliveries",
        "order_sync_orders",
        "order_sync_capture_position",
        "order_sync_capture_gaps",
        "order_sync_instances",
        "order_sync_pauses",
        "order_sync_synced_counts",
        "order_sync_migrations",
    ] {
        conn.query_drop(format!("DROP TABLE {table}"))
            .await
            .unwrap();
    }
    conn.query_drop(
        "CREATE TABLE order_sync_migrations (version INT UNSIGNED NOT NULL PRIMARY KEY, \
         name VARCHAR(200) NOT NULL, applied_at DATETIME(6) NOT NULL)",
    )
    .await
    .unwrap();
    for (version, name, statements) in order_sync::ledger::schema::MIGRATIONS {
        if *version > 5 {
            continue;
        }
        for sql in *statements {
            conn.query_drop(*sql).await.unwrap();
        }
        conn.exec_drop(
            "INSERT INTO order_sync_migrations VALUES (?, ?, NOW(6))",
            (version, name),
        )
        .await
        .unwrap();
    }
    conn.query_drop(
        "INSERT INTO order_sync_orders (entity_id, increment_id, store_id, placed_at, captured_at, message) \
         VALUES (7, '000000007', 1, '2026-11-01 10:00:00', '2026-11-01 10:00:01', \
         '{\"entity_id\":7,\"increment_id\":\"000000007\",\"store_id\":1,\"state\":\"new\"}')",
    )
    .await
    .unwrap();
    conn.query_drop(
        "INSERT INTO order_sync_deliveries (entity_id, consumer, increment_id, store_id, message_id, \
         state, attempts, captured_at, synced_at, updated_at) VALUES \
         (7, 'erp', '000000007', 1, 'shop:7:erp', 'synced', 1, '2026-11-01 10:00:01', '2026-11-01 10:00:02', NOW(6)), \
         (7, 'wms', '000000007', 1, 'shop:7:wms:r1', 'parked', 10, '2026-11-01 10:00:01', NULL, NOW(6))",
    )
    .await
    .unwrap();
    conn.query_drop("INSERT INTO order_sync_synced_counts VALUES ('erp', 1)")
        .await
        .unwrap();
    drop(conn);
    assert!(ledger.check_version().await.is_err());

    assert_eq!(
        ledger.migrate().await.unwrap(),
        order_sync::ledger::schema::latest()
    );
    // Run twice: an interrupted migration re-runs cleanly.
    ledger.migrate().await.unwrap();
    ledger.check_version().await.unwrap();
    let rows = ledger.deliveries().await.unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        assert_eq!((r.seq, r.event), (0, order_sync::message::Event::Placed));
        assert_eq!(r.blocked_by, None);
    }
    assert_eq!(rows[0].message_id, "shop:7:erp", "message ids unchanged");
    assert_eq!(
        (rows[0].state, rows[1].state),
        (State::Synced, State::Parked)
    );
    assert_eq!(rows[1].message_id, "shop:7:wms:r1");
    // An ack naming only the order still means its placement.
    let now = chrono::Utc::now();
    let policy = order_sync::retry::RetryPolicy::from_settings(&env.settings.relay);
    let ack: order_sync::message::Ack = serde_json::from_value(json!({
        "consumer": "wms", "entity_id": 7, "status": "synced"
    }))
    .unwrap();
    ledger.apply_ack(&ack, now, &policy).await.unwrap().unwrap();
    assert_eq!(
        ledger.delivery(7, "wms").await.unwrap().unwrap().state,
        State::Synced
    );
    assert_counts_exact(&ledger).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_pull_consumer_fetches_an_orders_events_in_order_and_the_api_shows_what_waits() {
    use crate::{
        control::{env_with_api, LEGACY, TOKEN},
        support::http_json,
    };
    let (env, base) = env_with_api(&[
        ("ORDER_SYNC__CONSUMERS__LEGACY__EVENTS", "placed,invoiced"),
        ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "50ms"),
    ])
    .await;
    let shop = Shop { magento1: false };
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = shop.place(&env, "new", "pending").await;
    shop.invoice(&env, id).await;
    let long = Duration::from_secs(20);
    env.wait_for_ledger(long, "placed and invoiced for legacy", |rows| {
        rows.iter().filter(|r| r.consumer == "legacy").count() == 2
    })
    .await;
    let url = format!("{base}/api/pull/legacy");
    let pull = || http_json("GET", &url, Some(LEGACY), None);
    // Only the placement: the invoice waits for its ack.
    let (status, first) = pull().await;
    assert_eq!(status, 200, "{first}");
    let got = first["messages"].as_array().unwrap();
    assert_eq!(got.len(), 1, "{first}");
    assert_eq!(got[0]["event"], PLACE);
    let (_, detail) = http_json("GET", &format!("{base}/api/orders/{id}"), Some(TOKEN), None).await;
    let invoice_row = detail["order"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["consumer"] == "legacy" && d["seq"] == 1)
        .cloned()
        .unwrap();
    assert_eq!(invoice_row["blocked_by"], 0, "{detail}");
    let (_, none) = pull().await;
    assert!(none["messages"].as_array().unwrap().is_empty(), "{none}");

    let (status, answer) = http_json(
        "POST",
        &format!("{base}/api/pull/legacy/acks"),
        Some(LEGACY),
        Some(&json!({"message_id": got[0]["message_id"], "status": "synced"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (_, second) = pull().await;
    let got = second["messages"].as_array().unwrap();
    assert_eq!(got.len(), 1, "{second}");
    assert_eq!(got[0]["event"], INVOICE);
    assert_eq!(got[0]["invoice"]["order_id"], id);
    // Acked by its message id alone.
    let (status, answer) = http_json(
        "POST",
        &format!("{base}/api/pull/legacy/acks"),
        Some(LEGACY),
        Some(&json!({"message_id": got[0]["message_id"], "status": "synced"})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    env.wait_for_ledger(long, "legacy's rows synced", |rows| {
        rows.iter()
            .filter(|r| r.consumer == "legacy")
            .all(|r| r.state == State::Synced)
    })
    .await;
    finish(env, shutdown, pipeline, []).await;
}

#[tokio::test]
async fn a_consumer_of_paid_orders_gets_each_when_released_and_no_sync_service_is_sent_its_own_status_back(
) {
    let env = TestEnv::new(
        &["erp", "wms"],
        &fast(&[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,status_changed",
            ),
            ("ORDER_SYNC__CONSUMERS__ERP__OWN_STATUSES", "exported"),
            (
                "ORDER_SYNC__CONSUMERS__WMS__EVENTS",
                "placed,status_changed,canceled",
            ),
            ("ORDER_SYNC__CONSUMERS__WMS__STATES", "processing"),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    let (erp, erp_task) = sync_service(&env, "erp").await;
    let (wms, wms_task) = sync_service(&env, "wms").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let long = Duration::from_secs(20);
    // Held until paid, for both; one never paid.
    let paid = shop.place(&env, "pending_payment", "pending_payment").await;
    let unpaid = shop.place(&env, "pending_payment", "pending_payment").await;
    // Not held, and not in a state wms takes: erp only.
    let fresh = shop.place(&env, "new", "pending").await;
    until("erp got the new order", long, || {
        events_of(&erp, fresh) == [PLACE]
    })
    .await;
    shop.cancel(&env, unpaid).await;
    shop.change(&env, paid, "processing", "processing").await;
    until("both got the paid order", long, || {
        events_of(&erp, paid) == [PLACE] && events_of(&wms, paid) == [PLACE]
    })
    .await;
    // Released by its cancellation: the placement as it was held, then the
    // move to `canceled` as a status change (erp takes status_changed, not
    // canceled). Waiting for the placement alone raced the change.
    until(
        "erp got the cancelled one's placement and its change",
        long,
        || events_of(&erp, unpaid) == [PLACE, CHANGE],
    )
    .await;
    // The ERP writes its own status into Magento: the WMS hears of it, the
    // ERP is not sent its own change back.
    shop.change(&env, paid, "processing", "exported").await;
    until("wms got the status change", long, || {
        events_of(&wms, paid) == [PLACE, CHANGE]
    })
    .await;
    // A change the ERP did not make still reaches it.
    shop.change(&env, paid, "processing", "picking").await;
    until("both got the next change", long, || {
        events_of(&erp, paid) == [PLACE, CHANGE] && events_of(&wms, paid) == [PLACE, CHANGE, CHANGE]
    })
    .await;
    assert_eq!(
        message_of(&erp, paid, CHANGE)["previous"]["status"],
        "exported"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        events_of(&wms, fresh).is_empty(),
        "wms takes processing orders only"
    );
    assert!(
        events_of(&wms, unpaid).is_empty(),
        "released into `canceled`: not for wms, nor its cancellation"
    );
    assert_eq!(events_of(&erp, unpaid), [PLACE, CHANGE], "each once");
    let cancelled = message_of(&erp, unpaid, CHANGE);
    assert_eq!(cancelled["previous"]["state"], "pending_payment");
    assert_eq!(cancelled["order"]["state"], "canceled");
    let ledger = env.parts().deps.ledger;
    let rows = ledger.deliveries().await.unwrap();
    assert!(
        !rows
            .iter()
            .any(|r| r.consumer == "wms" && (r.entity_id == fresh || r.entity_id == unpaid)),
        "no row waits for wms for orders not for it: {rows:?}"
    );
    assert_counts_exact(&ledger).await;
    finish(env, shutdown, pipeline, [erp_task, wms_task]).await;
}

#[tokio::test]
async fn a_backfill_gives_a_lifecycle_subscriber_the_older_orders_with_their_documents_in_order() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &fast(&[
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
            ("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced"),
            (
                "ORDER_SYNC__CONSUMERS__WMS__EVENTS",
                "placed,invoiced,shipped,canceled",
            ),
        ]),
    )
    .await;
    let shop = Shop { magento1: false };
    // Before order-sync: invoiced and shipped, cancelled, and untouched.
    let shipped = shop.place(&env, "new", "pending").await;
    let invoice = shop.invoice(&env, shipped).await;
    let shipment = shop.ship(&env, shipped).await;
    let canceled = shop.place(&env, "new", "pending").await;
    shop.cancel(&env, canceled).await;
    let plain = shop.place(&env, "new", "pending").await;
    let (erp, e1) = sync_service(&env, "erp").await;
    let (wms, e2) = sync_service(&env, "wms").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let long = Duration::from_secs(20);
    env.wait_for_capture_start(long).await;
    let ledger = env.parts().deps.ledger;
    // One order the ledger knows, with an invoice it recorded, that wms
    // does not have (as for a consumer added later).
    let known = shop.place(&env, "new", "pending").await;
    until("erp and wms got the known order", long, || {
        events_of(&erp, known) == [PLACE] && events_of(&wms, known) == [PLACE]
    })
    .await;
    shop.invoice(&env, known).await;
    until("both got its invoice", long, || {
        events_of(&erp, known) == [PLACE, INVOICE] && events_of(&wms, known) == [PLACE, INVOICE]
    })
    .await;
    mysql_async::prelude::Queryable::exec_drop(
        &mut ledger.pool().get_conn().await.unwrap(),
        "DELETE FROM order_sync_deliveries WHERE consumer = 'wms' AND entity_id = ?",
        (known,),
    )
    .await
    .unwrap();
    wms.lock().unwrap().clear();

    let deps = env.parts().deps;
    let request = order_sync::backfill::Request {
        consumer: "wms".into(),
        filter: Default::default(),
        chunk: 2,
        window: 10,
        dry_run: false,
    };
    let report = order_sync::backfill::backfill(
        &deps,
        &env.settings.capture,
        &request,
        |_| {},
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(report.progress.given, 4, "{report:?}");
    until("wms got each order's life in order", long, || {
        events_of(&wms, shipped) == [PLACE, INVOICE, SHIP]
            && events_of(&wms, canceled) == [PLACE, CANCEL]
            && events_of(&wms, plain) == [PLACE]
            && events_of(&wms, known) == [PLACE, INVOICE]
    })
    .await;
    // As Magento has them now, documents whole.
    assert_eq!(
        message_of(&wms, shipped, INVOICE)["invoice"]["entity_id"],
        invoice
    );
    assert_eq!(
        message_of(&wms, shipped, SHIP)["shipment"]["entity_id"],
        shipment
    );
    assert_eq!(
        message_of(&wms, canceled, PLACE)["order"]["state"],
        "canceled"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for id in [shipped, canceled, plain] {
        assert!(events_of(&erp, id).is_empty(), "erp was not backfilled");
    }
    assert_eq!(
        events_of(&erp, known),
        [PLACE, INVOICE],
        "nothing again for erp"
    );
    finish(env, shutdown, pipeline, [e1, e2]).await;
}

/// Capture driven step by step by the test, beside a running relay.
struct Stepped {
    parts: order_sync::app::Parts,
    capture: order_sync::roles::capture::Capture,
    relay: Relay,
}

struct Relay(
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<Result<(), order_sync::app::StartError>>,
);

impl Relay {
    async fn stop(self) {
        self.0.cancel();
        self.1.await.unwrap().unwrap();
    }
}

impl Stepped {
    async fn start(env: &TestEnv) -> Self {
        let parts = env.parts();
        parts.deps.ledger.migrate().await.unwrap();
        let capture = parts.capture();
        let stop = tokio_util::sync::CancellationToken::new();
        let relay = tokio::spawn(env.parts().run(order_sync::app::Roles::RELAY, stop.clone()));
        Self {
            parts,
            capture,
            relay: Relay(stop, relay),
        }
    }
}

#[tokio::test]
async fn a_shipment_and_a_partial_credit_memo_seen_in_one_poll_keep_the_completion_between_them() {
    let env = TestEnv::new(
        &["erp"],
        &[(
            "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
            "placed,invoiced,shipped,refunded,status_changed",
        )],
    )
    .await;
    let shop = Shop { magento1: false };
    // Capture driven step by step, so both documents land in one scan.
    let Stepped {
        parts,
        mut capture,
        relay,
    } = Stepped::start(&env).await;
    capture.step(chrono::Utc::now()).await.unwrap();
    let a = shop.place(&env, "new", "pending").await;
    capture.step(chrono::Utc::now()).await.unwrap();
    env.wait_for_ledger(Duration::from_secs(10), "order a recorded", |r| {
        r.iter().any(|d| d.entity_id == a)
    })
    .await;
    shop.invoice(&env, a).await;
    capture.lifecycle_step(chrono::Utc::now()).await.unwrap();

    // Shipped (so `complete`), then 0.1 s later part of it refunded: polling
    // sees one change to `complete`, stamped with the credit memo's save.
    shop.ship(&env, a).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    shop.partial_refund(&env, a).await;
    let outcome = capture.lifecycle_step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.events, 3, "{outcome:?}");

    let mut rows: Vec<_> = parts
        .deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.entity_id == a)
        .collect();
    rows.sort_by_key(|d| d.seq);
    let events: Vec<String> = rows.iter().map(|d| d.event.to_string()).collect();
    assert_eq!(
        events,
        [
            "placed",
            "invoiced",
            "status_changed",
            "shipped",
            "status_changed",
            "refunded"
        ],
        "as Magento did it: the shipment completed the order before the refund"
    );
    relay.stop().await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_change_behind_more_orders_updated_together_than_one_scan_reads_is_still_found() {
    // Pages of 2: one scan reads at most 40 orders of the change window.
    let env = TestEnv::new(
        &["erp"],
        &[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,status_changed",
            ),
            ("ORDER_SYNC__CAPTURE__LIFECYCLE__BATCH_SIZE", "2"),
        ],
    )
    .await;
    let shop = Shop { magento1: false };
    let Stepped {
        parts,
        mut capture,
        relay,
    } = Stepped::start(&env).await;
    capture.step(chrono::Utc::now()).await.unwrap();
    capture.lifecycle_step(chrono::Utc::now()).await.unwrap();
    // 45 orders saved within a second or two, as in a drain or a mass action.
    let mut ids = Vec::new();
    for _ in 0..45 {
        ids.push(shop.place(&env, "new", "pending").await);
    }
    let last = *ids.last().unwrap();
    let placed = Instant::now();
    while parts.deps.ledger.deliveries().await.unwrap().len() < ids.len() {
        assert!(
            placed.elapsed() < Duration::from_secs(20),
            "45 placements recorded"
        );
        capture.step(chrono::Utc::now()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Scans that stop at their page limit compare the first 40 with the ledger.
    for _ in 0..2 {
        capture.lifecycle_step(chrono::Utc::now()).await.unwrap();
    }

    // The last saved (by updated_at and id) moves on: it sits behind all the others.
    shop.change(&env, last, "processing", "processing").await;
    let mut events = 0;
    for _ in 0..4 {
        events += capture
            .lifecycle_step(chrono::Utc::now())
            .await
            .unwrap()
            .events;
    }
    assert_eq!(events, 1, "the one change, once");
    let changed: Vec<_> = parts
        .deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.event.to_string() == "status_changed")
        .map(|d| d.entity_id)
        .collect();
    assert_eq!(changed, [last]);
    relay.stop().await;
    env.cleanup().await;
}
