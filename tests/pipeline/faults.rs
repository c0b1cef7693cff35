//! The fault suite: real services, real processes, bounded in time. Each
//! scenario ends on the same invariant: every captured order is synced for
//! every consumer, no ledger row is lost or doubled, and duplicate deliveries
//! are counted and reported. `ORDER_SYNC_FAULT_SCALE=4` multiplies the counts
//! for longer local runs.

use std::{
    collections::HashMap,
    process::Command,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use lapin::{options::*, types::FieldTable, BasicProperties};
use order_sync::ledger::State;
use serde_json::{json, Value};

use crate::support::{body, TestEnv};

fn scale() -> usize {
    std::env::var("ORDER_SYNC_FAULT_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
}

/// What a sync service did, for the report and the assertions.
#[derive(Default)]
struct Behaviour {
    deliveries: AtomicU32,
    failed_acks: AtomicU32,
    crashes: AtomicU32,
    double_acks: AtomicU32,
    acks_for_unknown_orders: AtomicU32,
    per_order: Mutex<HashMap<u64, u32>>,
    /// Per order, the events received, in arrival order.
    events: Mutex<HashMap<u64, Vec<String>>>,
}

/// A sync service. With `flaky`, it sometimes reports `failed`, sometimes dies
/// before acking (its channel closes with the message unacked), sometimes acks
/// twice, and sometimes acks an order it never received.
fn sync_service(
    env: &TestEnv,
    name: &'static str,
    flaky: bool,
    b: Arc<Behaviour>,
) -> tokio::task::JoinHandle<()> {
    let queue = env.topology().consumer_queue(name);
    let acks = env.topology().acks_exchange();
    let url = crate::support::amqp_url();
    tokio::spawn(async move {
        let conn = lapin::Connection::connect(&url, Default::default())
            .await
            .unwrap();
        let publ = conn.create_channel().await.unwrap();
        publ.confirm_select(Default::default()).await.unwrap();
        let publish = |v: Value| {
            let publ = publ.clone();
            let acks = acks.clone();
            async move {
                publ.basic_publish(
                    acks.as_str().into(),
                    name.into(),
                    BasicPublishOptions::default(),
                    &serde_json::to_vec(&v).unwrap(),
                    BasicProperties::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            }
        };
        'session: loop {
            let ch = conn.create_channel().await.unwrap();
            ch.basic_qos(50, BasicQosOptions::default()).await.unwrap();
            let mut stream = ch
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            while let Ok(Some(Ok(d))) =
                tokio::time::timeout(Duration::from_secs(600), stream.next()).await
            {
                let msg = body(&d);
                let id = msg["order"]["entity_id"].as_u64().unwrap();
                b.deliveries.fetch_add(1, Ordering::Relaxed);
                let event = msg["event"].as_str().unwrap_or_default().to_owned();
                if event == "sales_order_place_after_que" {
                    *b.per_order.lock().unwrap().entry(id).or_default() += 1;
                }
                b.events.lock().unwrap().entry(id).or_default().push(event);
                let roll: f64 = if flaky { rand::random() } else { 1.0 };
                let ack = |status: &str| json!({"message_id": msg["message_id"], "consumer": name, "entity_id": id, "status": status, "error": "ERP timeout"});
                if roll < 0.03 {
                    // Dies mid-order: the channel goes, the broker redelivers.
                    b.crashes.fetch_add(1, Ordering::Relaxed);
                    let _ = ch.close(320, "consumer crashed".into()).await;
                    continue 'session;
                } else if roll < 0.10 {
                    b.failed_acks.fetch_add(1, Ordering::Relaxed);
                    publish(ack("failed")).await;
                } else if roll < 0.13 {
                    b.double_acks.fetch_add(1, Ordering::Relaxed);
                    publish(ack("synced")).await;
                    publish(ack("synced")).await;
                } else {
                    publish(ack("synced")).await;
                }
                if flaky && roll > 0.98 {
                    b.acks_for_unknown_orders.fetch_add(1, Ordering::Relaxed);
                    publish(
                        json!({"consumer": name, "entity_id": id + 10_000_000, "status": "synced"}),
                    )
                    .await;
                }
                d.ack(BasicAckOptions::default()).await.unwrap();
            }
            return;
        }
    })
}

/// Waits until the ledger holds exactly `rows` rows, all synced, and checks
/// none is there twice: the invariant every scenario ends on.
async fn all_synced_once(env: &TestEnv, within: Duration, what: &str, rows: usize) {
    let found = env
        .wait_for_ledger(within, what, |r| {
            r.len() == rows && r.iter().all(|r| r.state == State::Synced)
        })
        .await;
    let mut keys: Vec<(u32, &str, u16)> = found
        .iter()
        .map(|r| (r.entity_id, r.consumer.as_str(), r.seq))
        .collect();
    keys.dedup();
    assert_eq!(
        keys.len(),
        rows,
        "no (order, consumer, event) row lost or doubled"
    );
}

fn duplicates(b: &Behaviour) -> u32 {
    b.per_order
        .lock()
        .unwrap()
        .values()
        .map(|n| n.saturating_sub(1))
        .sum()
}

/// What triggers capture in a fault test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Poll,
    /// `capture.mode = "binlog"`, Magento on a MariaDB with log_bin of the test's own.
    Binlog,
}

/// The test's world in `mode`, and the binlog server it needs (kept alive by the caller).
async fn world(
    mode: Mode,
    overrides: &[(&str, &str)],
) -> (TestEnv, Option<crate::kit::BinlogServer>) {
    let mut all = overrides.to_vec();
    let server = match mode {
        Mode::Poll => None,
        Mode::Binlog => {
            all.extend([
                ("ORDER_SYNC__CAPTURE__MODE", "binlog"),
                ("ORDER_SYNC__CAPTURE__BINLOG__SERVER_ID", "4250"),
                ("ORDER_SYNC__CAPTURE__BINLOG__RETRY", "500ms"),
                ("ORDER_SYNC__CAPTURE__BINLOG__HEARTBEAT", "300ms"),
            ]);
            Some(crate::kit::BinlogServer::start(""))
        }
    };
    let env = TestEnv::with_magento_on(
        server.as_ref().map(|s| s.url.as_str()),
        &["erp", "wms"],
        &all,
    )
    .await;
    (env, server)
}

#[tokio::test]
async fn hard_kills_during_a_stream_with_a_flaky_consumer_lose_and_double_nothing() {
    hard_kills(Mode::Poll, 1, 5000 * scale(), 20 * scale()).await;
}

#[tokio::test]
async fn hard_kills_of_any_of_three_instances_during_a_stream_lose_and_double_nothing() {
    hard_kills(Mode::Poll, 3, 3000 * scale(), 15 * scale()).await;
}

#[tokio::test]
async fn hard_kills_while_capturing_from_the_binlog_lose_and_double_nothing() {
    hard_kills(Mode::Binlog, 1, 3000 * scale(), 15 * scale()).await;
}

#[tokio::test]
async fn hard_kills_of_three_instances_capturing_from_the_binlog_lose_and_double_nothing() {
    hard_kills(Mode::Binlog, 3, 2000 * scale(), 10 * scale()).await;
}

/// Settings for runs that kill instances: quick rounds, short claims, and
/// attempts enough to outlast the kills.
const KILL_RUN: [(&str, &str); 6] = [
    ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
    ("ORDER_SYNC__RELAY__CLAIM_TIMEOUT", "2s"),
    ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1s"),
    ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "2s"),
    ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "50"),
    ("ORDER_SYNC__LOG__FILTER", "warn"),
];

/// A steady `erp` and a flaky `wms` sync service, and what each did.
fn erp_and_flaky_wms(
    env: &TestEnv,
) -> (
    Arc<Behaviour>,
    Arc<Behaviour>,
    [tokio::task::JoinHandle<()>; 2],
) {
    let (erp, wms) = (
        Arc::new(Behaviour::default()),
        Arc::new(Behaviour::default()),
    );
    let services = [
        sync_service(env, "erp", false, erp.clone()),
        sync_service(env, "wms", true, wms.clone()),
    ];
    (erp, wms, services)
}

/// `kills` times, after 0.2 to 1 s, one of the children (at random) is
/// killed with SIGKILL and started again.
async fn kill_at_random(env: &TestEnv, children: &mut [crate::support::Proc], kills: usize) {
    for _ in 0..kills {
        tokio::time::sleep(Duration::from_millis(200 + rand::random::<u64>() % 800)).await;
        let n = children.len();
        let victim = &mut children[rand::random::<u32>() as usize % n];
        victim.kill().unwrap(); // SIGKILL, at a random moment
        victim.wait().unwrap();
        *victim = env.spawn_run();
    }
}

/// `instances` copies of `order-sync run` share the work while `total` orders
/// stream in; `kills` times, one of them (at random) is killed with SIGKILL at a
/// random moment and started again.
async fn hard_kills(mode: Mode, instances: usize, total: usize, kills: usize) {
    let (env, _server) = world(mode, &KILL_RUN).await;
    let (erp, wms, services) = erp_and_flaky_wms(&env);
    let magento = env.magento.clone();
    let placer = tokio::spawn(async move {
        for _ in 0..total {
            let mut conn = magento.get_conn().await.unwrap();
            let mut tx = conn.start_transaction(Default::default()).await.unwrap();
            crate::support::insert_order(&mut tx).await;
            tx.commit().await.unwrap();
        }
    });
    let started = Instant::now();
    let mut children: Vec<_> = (0..instances).map(|_| env.spawn_run()).collect();
    kill_at_random(&env, &mut children, kills).await;
    placer.await.unwrap();
    all_synced_once(
        &env,
        Duration::from_secs(240),
        "every order synced for both consumers",
        total * 2,
    )
    .await;
    assert_eq!(
        env.parts().deps.ledger.order_count().await.unwrap(),
        total as u64
    );
    for (name, b) in [("erp", &erp), ("wms", &wms)] {
        assert_eq!(
            b.per_order.lock().unwrap().len(),
            total,
            "{name} received every order"
        );
    }
    eprintln!(
        "{instances} instance(s), {kills} kill -9 during {total} orders x 2 consumers in {:?}: all synced. erp: {} deliveries, {} duplicates. \
         wms (flaky): {} deliveries, {} duplicates, {} failed acks, {} crashes before ack, {} double acks, {} acks for unknown orders",
        started.elapsed(),
        erp.deliveries.load(Ordering::Relaxed), duplicates(&erp),
        wms.deliveries.load(Ordering::Relaxed), duplicates(&wms),
        wms.failed_acks.load(Ordering::Relaxed), wms.crashes.load(Ordering::Relaxed),
        wms.double_acks.load(Ordering::Relaxed), wms.acks_for_unknown_orders.load(Ordering::Relaxed),
    );
    // Every ack that could not apply was kept, not dropped.
    let rejected = wms.double_acks.load(Ordering::Relaxed)
        + wms.acks_for_unknown_orders.load(Ordering::Relaxed);
    assert!(env.queue_len(&env.topology().dead_queue("acks")).await >= rejected);

    for mut child in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap();
    }
    for s in services {
        s.abort();
    }
    env.cleanup().await;
}

#[tokio::test]
async fn hard_kills_of_three_instances_keep_each_orders_events_in_order() {
    let total = 600 * scale();
    let (env, _server) = world(
        Mode::Poll,
        &[
            ("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced"),
            ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "100ms"),
            ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "100ms"),
        ]
        .into_iter()
        .chain(KILL_RUN)
        .collect::<Vec<_>>(),
    )
    .await;
    let (erp, wms, services) = erp_and_flaky_wms(&env);
    let shop = crate::lifecycle::Shop { magento1: false };
    let mut children: Vec<_> = (0..3).map(|_| env.spawn_run()).collect();
    // Each order is placed, then invoiced a moment later, while instances die.
    let place_and_invoice = async {
        for _ in 0..total {
            let id = env.place_order().await;
            shop.invoice(&env, id).await;
        }
    };
    tokio::join!(place_and_invoice, kill_at_random(&env, &mut children, 8));
    // erp: a placement and an invoice per order; wms: the placement.
    all_synced_once(
        &env,
        Duration::from_secs(240),
        "every event synced for its consumer",
        total * 3,
    )
    .await;
    let events = erp.events.lock().unwrap().clone();
    assert_eq!(events.len(), total, "erp heard of every order");
    for (id, got) in events.iter() {
        let first_invoice = got
            .iter()
            .position(|e| e == "sales_order_invoice_save_after_que")
            .unwrap_or_else(|| panic!("order {id}: no invoice in {got:?}"));
        assert!(
            got[..first_invoice]
                .iter()
                .any(|e| e == "sales_order_place_after_que"),
            "order {id}: the invoice came before its placement: {got:?}"
        );
    }
    assert!(wms
        .events
        .lock()
        .unwrap()
        .values()
        .all(|got| got.iter().all(|e| e == "sales_order_place_after_que")));
    for mut child in children {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap();
    }
    for s in services {
        s.abort();
    }
    env.cleanup().await;
}

#[tokio::test]
async fn ten_thousand_hostile_acks_are_dead_lettered_and_leave_the_ledger_and_listener_intact() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let real = env.place_order().await;
    let before = env
        .wait_for_ledger(Duration::from_secs(20), "the order published", |rows| {
            rows.len() == 1 && rows[0].state == State::Published
        })
        .await;

    let total = 10_000 * scale();
    let huge = vec![b'{'; 10 * 1024 * 1024];
    let kinds: Vec<Box<dyn Fn(usize) -> Vec<u8>>> = vec![
        Box::new(|i| format!("not json {i}").into_bytes()),
        Box::new(|i| vec![0xff, 0xfe, (i % 256) as u8]),
        Box::new(|i| {
            format!(r#"{{"consumer": "erp", "entity_id": "{i}; DROP TABLE order_sync_deliveries", "status": "synced"}}"#).into_bytes()
        }),
        Box::new(|i| {
            format!(r#"{{"consumer": "erp", "entity_id": {i}, "status": 7}}"#).into_bytes()
        }),
        Box::new(|i| {
            format!(r#"{{"consumer": "crm{i}", "entity_id": 1, "status": "synced"}}"#).into_bytes()
        }),
        Box::new(move |i| {
            format!(
                r#"{{"consumer": "erp", "entity_id": {}, "status": "synced"}}"#,
                1_000_000 + i
            )
            .into_bytes()
        }),
        Box::new(move |i| {
            format!(r#"{{"consumer": "erp", "entity_id": {real}, "message_id": "forged-{i}", "status": "synced"}}"#).into_bytes()
        }),
        Box::new(|i| {
            format!(r#"{{"consumer": "erp", "increment_id": "' OR {i}={i} --", "store_id": 1, "status": "synced"}}"#).into_bytes()
        }),
        Box::new(|_| b"[]".to_vec()),
        Box::new(|_| Vec::new()),
    ];
    let ch = env.amqp.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    for i in 0..total {
        // A few 10 MB bodies among them.
        let body = if i % 3333 == 0 {
            huge.clone()
        } else {
            kinds[i % kinds.len()](i)
        };
        // Under erp's own routing key, so each is judged on what it says.
        ch.basic_publish(
            env.topology().acks_exchange().into(),
            "erp".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
        if i % 500 == 499 {
            ch.wait_for_confirms().await.unwrap();
        }
    }
    ch.wait_for_confirms().await.unwrap();

    let dead = env.topology().dead_queue("acks");
    let deadline = Instant::now() + Duration::from_secs(180);
    while env.queue_len(&dead).await < total as u32 {
        assert!(
            Instant::now() < deadline,
            "only {} of {total} hostile acks dead-lettered",
            env.queue_len(&dead).await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        env.parts().deps.ledger.deliveries().await.unwrap(),
        before,
        "the ledger changed"
    );
    env.ack_json(json!({"consumer": "erp", "entity_id": real, "status": "synced"}))
        .await;
    env.wait_for_ledger(
        Duration::from_secs(20),
        "a valid ack still applied",
        |rows| rows[0].state == State::Synced,
    )
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn sigterm_during_a_backlog_exits_promptly_and_loses_nothing_after_restart() {
    let env = TestEnv::new(&["erp"], &[("ORDER_SYNC__LOG__FILTER", "warn")]).await;
    let total = 3000 * scale();
    let mut conn = env.magento_conn().await;
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    for _ in 0..total {
        crate::support::insert_order(&mut tx).await;
    }
    tx.commit().await.unwrap();
    drop(conn);

    let mut child = env.spawn_run();
    env.wait_for_ledger(
        Duration::from_secs(60),
        "part of the backlog recorded",
        |rows| !rows.is_empty(),
    )
    .await;
    let asked = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(5), "stopping took {took:?}");
    let recorded = env.parts().deps.ledger.order_count().await.unwrap();

    let b = Arc::new(Behaviour::default());
    let service = sync_service(&env, "erp", false, b.clone());
    let mut child = env.spawn_run();
    env.wait_for_ledger(
        Duration::from_secs(120),
        "the whole backlog synced after restart",
        |rows| rows.len() == total && rows.iter().all(|r| r.state == State::Synced),
    )
    .await;
    eprintln!(
        "SIGTERM with {recorded} of {total} recorded: stopped in {took:?}; after restart all synced, {} duplicate deliveries",
        duplicates(&b)
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().unwrap();
    service.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn broker_and_database_connections_killed_mid_stream_lose_and_double_nothing() {
    connection_kills(Mode::Poll, 1).await;
}

#[tokio::test]
async fn connections_of_three_instances_killed_mid_stream_lose_and_double_nothing() {
    connection_kills(Mode::Poll, 3).await;
}

#[tokio::test]
async fn connections_killed_while_capturing_from_the_binlog_lose_and_double_nothing() {
    connection_kills(Mode::Binlog, 1).await;
}

#[tokio::test]
async fn connections_of_three_instances_capturing_from_the_binlog_killed_lose_and_double_nothing() {
    connection_kills(Mode::Binlog, 3).await;
}

/// `instances` pipelines share the work while their broker connections and
/// database sessions (the binlog stream's too, in binlog mode) are killed under them.
async fn connection_kills(mode: Mode, instances: usize) {
    let (env, _server) = world(
        mode,
        &[
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            ("ORDER_SYNC__RELAY__CLAIM_TIMEOUT", "2s"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1s"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "2s"),
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "50"),
        ],
    )
    .await;
    let pipelines: Vec<_> = (0..instances).map(|_| env.spawn_pipeline()).collect();
    let (erp, wms, services) = erp_and_flaky_wms(&env);
    let total = 1000 * scale();
    // The checkout's own connection is spared: the fault is order-sync's, not the shop's.
    let magento_url = env.settings.magento.url.expose().to_owned();
    let magento_server = magento_url
        .rsplit_once('/')
        .map(|(server, _)| server.to_owned())
        .unwrap();
    let mut checkout = mysql_async::Conn::from_url(magento_url.as_str())
        .await
        .unwrap();
    let checkout_id = checkout.id() as u64;
    let placer = tokio::spawn(async move {
        for _ in 0..total {
            let mut tx = checkout
                .start_transaction(Default::default())
                .await
                .unwrap();
            crate::support::insert_order(&mut tx).await;
            tx.commit().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        checkout.disconnect().await.unwrap();
    });
    let (mut broker_faults, mut db_faults) = (0, 0);
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        broker_faults += crate::support::close_broker_connections(&env.id);
        tokio::time::sleep(Duration::from_millis(400)).await;
        db_faults += crate::support::kill_db_connections(&format!("{}_ledger", env.id), &[]).await;
        db_faults += crate::support::kill_db_connections_on(
            &magento_server,
            &format!("{}_magento", env.id),
            &[checkout_id],
        )
        .await;
    }
    placer.await.unwrap();
    assert!(
        broker_faults >= 4 && db_faults >= 4,
        "faults injected: broker {broker_faults}, db {db_faults}"
    );
    all_synced_once(
        &env,
        Duration::from_secs(120),
        "every order synced after the faults",
        total * 2,
    )
    .await;
    eprintln!(
        "{instances} instance(s): {broker_faults} broker and {db_faults} database connections killed during {total} orders x 2 consumers: \
         all synced; duplicates erp {}, wms (flaky) {}",
        duplicates(&erp),
        duplicates(&wms)
    );
    for (shutdown, pipeline) in pipelines {
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), pipeline)
            .await
            .unwrap()
            .unwrap();
    }
    for s in services {
        s.abort();
    }
    env.cleanup().await;
}
