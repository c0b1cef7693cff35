//! `capture.mode = "binlog"` against a real MariaDB with its binary log on
//! (deploy/mariadb/local-binlog.sh, one server per test): orders arrive from
//! the binlog alone (the polls here are an hour apart), late commits are not
//! missed, and every way of losing the binlog falls back to polling with a
//! message saying what to set, then returns.

use std::time::{Duration, Instant};

use mysql_async::{prelude::*, Conn, Pool};
use order_sync::{
    config::BinlogSettings,
    ledger::State,
    roles::capture::binlog::{Follower, Signal, Stop},
};
use tokio_util::sync::CancellationToken;

use crate::kit::BinlogServer;
use crate::lifecycle::CHANGE;
use crate::support::{body, free_port, http, insert_order, TestEnv};

/// A test world whose Magento database is on `server`, captured in binlog
/// mode; polls an hour apart unless `overrides` say otherwise.
async fn binlog_env(server: &BinlogServer, overrides: &[(&str, &str)]) -> TestEnv {
    let mut all = vec![
        ("ORDER_SYNC__CAPTURE__MODE", "binlog"),
        ("ORDER_SYNC__CAPTURE__BINLOG__SERVER_ID", "4242"),
        ("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "1h"),
        ("ORDER_SYNC__CAPTURE__BINLOG__POLL_INTERVAL", "1h"),
        ("ORDER_SYNC__CAPTURE__BINLOG__RETRY", "300ms"),
        ("ORDER_SYNC__CAPTURE__BINLOG__HEARTBEAT", "200ms"),
    ];
    all.extend_from_slice(overrides);
    TestEnv::with_magento_on(Some(&server.url), &["erp"], &all).await
}

async fn place_in(pool: &Pool) -> u32 {
    let mut conn = pool.get_conn().await.unwrap();
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    let id = insert_order(&mut tx).await;
    tx.commit().await.unwrap();
    id
}

/// The entity ids of the next `n` messages on the erp queue, each acked as
/// synced as a sync service would; fails after `within`.
async fn receive(env: &TestEnv, n: usize, within: Duration) -> Vec<u32> {
    let queue = env.topology().consumer_queue("erp");
    let mut ids = Vec::new();
    let deadline = Instant::now() + within;
    while ids.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = env
            .get(&queue, left)
            .await
            .unwrap_or_else(|| panic!("got {ids:?}, wanted {n} orders within {within:?}"));
        let id = body(&d)["order"]["entity_id"].as_u64().unwrap() as u32;
        let message_id = d.properties.message_id().as_ref().unwrap().to_string();
        env.ack_json(serde_json::json!({
            "message_id": message_id, "consumer": "erp", "entity_id": id, "status": "synced"
        }))
        .await;
        crate::support::ack_delivery(&d).await;
        ids.push(id);
    }
    ids
}

/// Every order in `ids` is in the ledger exactly once and synced.
async fn synced_once(env: &TestEnv, ids: &[u32]) {
    let rows = env
        .wait_for_ledger(Duration::from_secs(20), "every order synced", |rows| {
            ids.iter().all(|id| {
                rows.iter()
                    .any(|r| r.entity_id == *id && r.state == State::Synced)
            })
        })
        .await;
    for id in ids {
        let n = rows.iter().filter(|r| r.entity_id == *id).count();
        assert_eq!(n, 1, "order {id} has {n} ledger rows");
    }
    assert_eq!(rows.len(), ids.len(), "no other rows: {rows:#?}");
}

async fn metrics(listen: &str) -> String {
    http("GET", &format!("http://{listen}/metrics"), None, None)
        .await
        .1
}

#[tokio::test]
async fn orders_arrive_from_the_binlog_alone_and_a_late_commit_is_not_missed() {
    let server = BinlogServer::start("");
    let listen = format!("127.0.0.1:{}", free_port());
    let env = binlog_env(
        &server,
        &[
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    server.wait_for_follower(Duration::from_secs(20)).await;
    // The first poll ran at start; the next is an hour away. Only the binlog can
    // bring these.
    let first = place_in(&env.magento).await;
    assert_eq!(receive(&env, 1, Duration::from_secs(10)).await, vec![first]);
    assert!(
        metrics(&listen)
            .await
            .contains("order_sync_capture_mode{mode=\"binlog\"} 1"),
        "capture_mode shows binlog"
    );

    // A slow checkout takes the next id and commits after a later one.
    let mut slow = env.magento.get_conn().await.unwrap();
    let mut slow_tx = slow.start_transaction(Default::default()).await.unwrap();
    let slow_id = insert_order(&mut slow_tx).await;
    let fast_id = place_in(&env.magento).await;
    assert!(fast_id > slow_id);
    assert_eq!(
        receive(&env, 1, Duration::from_secs(10)).await,
        vec![fast_id]
    );
    slow_tx.commit().await.unwrap();
    assert_eq!(
        receive(&env, 1, Duration::from_secs(10)).await,
        vec![slow_id]
    );
    synced_once(&env, &[first, slow_id, fast_id]).await;

    // The ledger keeps how far the binlog was served.
    let ledger = env.parts().deps.ledger;
    let deadline = Instant::now() + Duration::from_secs(10);
    while ledger.binlog_position(&env.id).await.unwrap().is_none() {
        assert!(Instant::now() < deadline, "the binlog position is saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    pipeline.await.unwrap();
    drop((slow, ledger));
    env.cleanup().await;
}

#[tokio::test]
async fn a_killed_binlog_connection_falls_back_to_polling_and_follows_again() {
    let server = BinlogServer::start("");
    let listen = format!("127.0.0.1:{}", free_port());
    let env = binlog_env(
        &server,
        &[
            ("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "200ms"),
            ("ORDER_SYNC__CAPTURE__BINLOG__RETRY", "3s"),
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let follower = server.wait_for_follower(Duration::from_secs(20)).await;
    let before = place_in(&env.magento).await;
    assert_eq!(
        receive(&env, 1, Duration::from_secs(10)).await,
        vec![before]
    );

    server
        .admin()
        .await
        .query_drop(format!("KILL {follower}"))
        .await
        .unwrap();
    // Within the retry delay, capture polls every poll_interval and says so.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !metrics(&listen)
        .await
        .contains("order_sync_capture_mode{mode=\"poll\"} 1")
    {
        assert!(
            Instant::now() < deadline,
            "capture_mode shows poll after KILL"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let during = place_in(&env.magento).await;
    assert_eq!(
        receive(&env, 1, Duration::from_secs(10)).await,
        vec![during]
    );

    // And follows the binlog again.
    let again = server.wait_for_follower(Duration::from_secs(20)).await;
    assert_ne!(again, follower);
    let after = place_in(&env.magento).await;
    assert_eq!(receive(&env, 1, Duration::from_secs(10)).await, vec![after]);
    synced_once(&env, &[before, during, after]).await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_binlog_purged_while_stopped_falls_back_and_misses_nothing() {
    let server = BinlogServer::start("");
    let env = binlog_env(&server, &[("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "200ms")]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    server.wait_for_follower(Duration::from_secs(20)).await;
    let first = place_in(&env.magento).await;
    assert_eq!(receive(&env, 1, Duration::from_secs(10)).await, vec![first]);
    let ledger = env.parts().deps.ledger;
    let deadline = Instant::now() + Duration::from_secs(10);
    let saved = loop {
        if let Some(p) = ledger.binlog_position(&env.id).await.unwrap() {
            break p;
        }
        assert!(Instant::now() < deadline, "the binlog position is saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    pipeline.await.unwrap();

    // While stopped: orders are placed and the saved file is purged.
    let missed = vec![place_in(&env.magento).await, place_in(&env.magento).await];
    let mut admin = server.admin().await;
    admin.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let current: String = {
        let mut row: mysql_async::Row = admin
            .query_first("SHOW MASTER STATUS")
            .await
            .unwrap()
            .unwrap();
        row.take(0).unwrap()
    };
    // The server keeps a file until its binlog checkpoint has moved on (and
    // while a replica still reads it): purge until it is gone.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        admin
            .query_drop(format!("PURGE BINARY LOGS TO '{current}'"))
            .await
            .unwrap();
        let files: Vec<String> = admin
            .query_map("SHOW BINARY LOGS", |r: mysql_async::Row| {
                r.get::<String, _>(0).unwrap()
            })
            .await
            .unwrap();
        if !files.contains(&saved.file) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} not purged: {files:?}",
            saved.file
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (shutdown, pipeline) = env.spawn_pipeline();
    let mut got = receive(&env, 2, Duration::from_secs(10)).await;
    got.sort();
    assert_eq!(got, missed, "orders placed while stopped arrive by polling");
    // The follower gave up the purged position and follows from the log's end.
    server.wait_for_follower(Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = ledger.binlog_position(&env.id).await.unwrap();
        if now.as_ref().is_some_and(|p| p.file == current) {
            break;
        }
        // A new order makes the follower announce, and capture save, a position.
        let id = place_in(&env.magento).await;
        assert_eq!(receive(&env, 1, Duration::from_secs(10)).await, vec![id]);
        assert!(
            Instant::now() < deadline,
            "position moves to {current}: {now:?}"
        );
    }
    let rows = ledger.deliveries().await.unwrap();
    for id in [first].iter().chain(&missed) {
        assert_eq!(rows.iter().filter(|r| r.entity_id == *id).count(), 1);
    }
    shutdown.cancel();
    pipeline.await.unwrap();
    ledger.disconnect().await;
    env.cleanup().await;
}

fn follower(url: &str) -> Follower {
    Follower {
        opts: mysql_async::Opts::from_url(url).unwrap(),
        settings: BinlogSettings {
            server_id: 4243,
            poll_interval: Duration::from_secs(5),
            retry: Duration::from_secs(1),
            heartbeat: Duration::from_millis(200),
        },
        database: "test".into(),
        table: "sales_order".into(),
        changes: None,
        id_column: 0,
    }
}

async fn follow_once(url: &str) -> Stop {
    let signal = Signal::default();
    tokio::time::timeout(
        Duration::from_secs(10),
        follower(url).run(None, &signal, &CancellationToken::new()),
    )
    .await
    .expect("an unusable server is reported at once")
}

#[tokio::test]
async fn a_server_that_cannot_be_followed_is_reported_with_the_setting_or_grant_to_give() {
    // The machine's own MariaDB has no binlog.
    let plain = crate::kit::mysql_server();
    match follow_once(&plain).await {
        Stop::Unusable(m) => assert!(m.contains("log_bin"), "{m}"),
        other => panic!("{other:?}"),
    }

    let server = BinlogServer::start("");
    let mut admin = server.admin().await;
    admin
        .query_drop(
            "CREATE USER 'reader'@'%' IDENTIFIED BY 'reader'; \
             GRANT SELECT ON *.* TO 'reader'@'%'; \
             CREATE USER 'monitor'@'%' IDENTIFIED BY 'monitor'; \
             GRANT SELECT, BINLOG MONITOR ON *.* TO 'monitor'@'%'",
        )
        .await
        .unwrap();
    let as_user = |u: &str| format!("mysql://{u}:{u}@127.0.0.1:{}", server.port);
    match follow_once(&as_user("reader")).await {
        Stop::Unusable(m) => assert!(m.contains("GRANT BINLOG MONITOR"), "{m}"),
        other => panic!("{other:?}"),
    }
    match follow_once(&as_user("monitor")).await {
        Stop::Unusable(m) => {
            assert!(
                m.contains("GRANT REPLICATION SLAVE ON *.* TO 'monitor'@'%'"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    admin
        .query_drop("SET GLOBAL binlog_format = 'MIXED'")
        .await
        .unwrap();
    match follow_once(&server.url).await {
        Stop::Unusable(m) => assert!(m.contains("binlog_format = ROW"), "{m}"),
        other => panic!("{other:?}"),
    }
    admin
        .query_drop("SET GLOBAL binlog_format = 'ROW'")
        .await
        .unwrap();

    // Capture without the grant still captures, by polling.
    admin
        .query_drop("GRANT ALL PRIVILEGES ON `ost%`.* TO 'monitor'@'%'")
        .await
        .unwrap();
    let env = TestEnv::with_magento_on(
        Some(&as_user("monitor")),
        &["erp"],
        &[
            ("ORDER_SYNC__CAPTURE__MODE", "binlog"),
            ("ORDER_SYNC__CAPTURE__BINLOG__SERVER_ID", "4244"),
            ("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "200ms"),
            ("ORDER_SYNC__CAPTURE__BINLOG__POLL_INTERVAL", "1h"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = place_in(&env.magento).await;
    assert_eq!(receive(&env, 1, Duration::from_secs(10)).await, vec![id]);
    synced_once(&env, &[id]).await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

/// The high-water mark of a process's resident memory, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

async fn binlog_end(admin: &mut Conn) -> u64 {
    let mut row: mysql_async::Row = admin
        .query_first("SHOW MASTER STATUS")
        .await
        .unwrap()
        .unwrap();
    row.take(1).unwrap()
}

#[tokio::test]
async fn a_mass_update_of_100000_orders_keeps_the_follower_small() {
    let server = BinlogServer::start("--max-binlog-size=1G");
    let env = binlog_env(
        &server,
        &[
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
            ("ORDER_SYNC__CAPTURE__BINLOG__HEARTBEAT", "1s"),
        ],
    )
    .await;
    // 100,000 orders placed before order-sync starts (it starts from the latest).
    let mut conn = env.magento.get_conn().await.unwrap();
    conn.query_drop(
        "INSERT INTO sales_order (state, status, store_id, customer_email, grand_total, base_grand_total) \
         VALUES ('new', 'pending', 1, 'bulk@example.com', '10.0000', '10.0000')",
    )
    .await
    .unwrap();
    for _ in 0..17 {
        conn.query_drop(
            "INSERT INTO sales_order (state, status, store_id, customer_email, grand_total, base_grand_total) \
             SELECT state, status, store_id, customer_email, grand_total, base_grand_total \
             FROM sales_order LIMIT 100000",
        )
        .await
        .unwrap();
    }
    let count: u64 = conn
        .query_first("SELECT COUNT(*) FROM sales_order")
        .await
        .unwrap()
        .unwrap();
    assert!(count >= 100_000, "{count}");

    let run = crate::support::Proc::spawn(
        env.order_sync(&["run"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    server.wait_for_follower(Duration::from_secs(30)).await;
    let first = place_in(&env.magento).await;
    assert_eq!(receive(&env, 1, Duration::from_secs(20)).await, vec![first]);
    let pid = run.id();
    let before = peak_rss(pid);

    let mut admin = server.admin().await;
    let start = binlog_end(&mut admin).await;
    // A mass action writing 1 KiB into every order: over 100 MiB of row images.
    conn.query_drop(
        "UPDATE sales_order SET status = 'processing', customer_note = REPEAT('x', 1024)",
    )
    .await
    .unwrap();
    let written = binlog_end(&mut admin).await - start;
    assert!(
        written > 100 << 20,
        "the update wrote {written} bytes of row images"
    );
    // An order committed after the update reaches the consumer only once the
    // follower has read past every row image of it.
    let last = place_in(&env.magento).await;
    assert_eq!(receive(&env, 1, Duration::from_secs(120)).await, vec![last]);
    let grown = peak_rss(pid).saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "reading {} MiB of row images grew order-sync by {} MiB",
        written >> 20,
        grown >> 20
    );
    drop(run);
    env.cleanup().await;
}

#[tokio::test]
async fn ids_stepping_by_three_open_no_gap_storm_and_none_are_missed() {
    let server = BinlogServer::start("--auto-increment-increment=3 --auto-increment-offset=2");
    let env = binlog_env(&server, &[("ORDER_SYNC__CAPTURE__MODE", "poll")]).await;
    let mut capture = env.parts().capture();
    let mut placed = vec![place_in(&env.magento).await, place_in(&env.magento).await];
    assert_eq!(placed[1] - placed[0], 3, "the server steps ids by 3");

    // A checkout holds its id open while three later ones commit.
    let mut slow = env.magento.get_conn().await.unwrap();
    let mut slow_tx = slow.start_transaction(Default::default()).await.unwrap();
    let slow_id = insert_order(&mut slow_tx).await;
    for _ in 0..3 {
        placed.push(place_in(&env.magento).await);
    }
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 5);
    assert_eq!(
        outcome.awaited,
        vec![slow_id],
        "only the id the server handed out is awaited, not the two between each"
    );
    slow_tx.commit().await.unwrap();
    placed.push(slow_id);
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 1);
    assert_eq!(outcome.open_gaps, 0);
    drop(slow);

    let (shutdown, pipeline) = env.spawn_pipeline();
    let mut got = receive(&env, placed.len(), Duration::from_secs(10)).await;
    got.sort();
    placed.sort();
    assert_eq!(got, placed);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn the_saved_binlog_file_is_one_the_server_has_after_every_reconnect_and_rotation() {
    let server = BinlogServer::start("");
    let env = binlog_env(&server, &[("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "200ms")]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ledger = env.parts().deps.ledger;
    let mut admin = server.admin().await;
    let mut placed = Vec::new();
    for round in 0..12 {
        let follower = server.wait_for_follower(Duration::from_secs(20)).await;
        if round % 4 == 3 {
            // A real rotation too: its rotate event comes after a format
            // description, unlike the one that opens every stream.
            admin.query_drop("FLUSH BINARY LOGS").await.unwrap();
        }
        // The position is saved at most once a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let id = place_in(&env.magento).await;
        assert_eq!(receive(&env, 1, Duration::from_secs(10)).await, vec![id]);
        placed.push(id);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let saved = ledger
            .binlog_position(&env.id)
            .await
            .unwrap()
            .expect("a binlog position saved");
        let files: Vec<String> = admin
            .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
                row.get::<String, _>(0).unwrap()
            })
            .await
            .unwrap();
        assert!(
            files.contains(&saved.file),
            "round {round}: saved {:?}, the server has {files:?}",
            saved.file
        );
        admin.query_drop(format!("KILL {follower}")).await.unwrap();
    }
    synced_once(&env, &placed).await;
    shutdown.cancel();
    pipeline.await.unwrap();
    drop(admin);
    env.cleanup().await;
}

/// What one consumer got of one order: each event with the order's status
/// in its message, in arrival order.
/// A sync service for `erp` and the pipeline, once the follower follows.
async fn lifecycle_run(
    server: &BinlogServer,
    env: &TestEnv,
) -> (
    crate::lifecycle::Received,
    tokio::task::JoinHandle<()>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (erp, service) = crate::lifecycle::sync_service(env, "erp").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    server.wait_for_follower(Duration::from_secs(20)).await;
    (erp, service, shutdown, pipeline)
}

fn life_of(got: &crate::lifecycle::Received, order: u32) -> Vec<String> {
    got.lock()
        .unwrap()
        .iter()
        .filter(|(id, ..)| *id == order)
        .map(|(_, event, _, m)| match m["order"]["status"].as_str() {
            Some(status) if event == CHANGE => format!("{event}:{status}"),
            _ => event.clone(),
        })
        .collect()
}

#[tokio::test]
async fn every_change_the_binlog_shows_arrives_once_in_commit_order_even_those_between_scans() {
    use crate::lifecycle::{until, Shop, CANCEL, INVOICE, PLACE, REFUND, SHIP};
    let server = BinlogServer::start("");
    let settings = [
        (
            "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
            "placed,invoiced,shipped,refunded,canceled,status_changed",
        ),
        // The scan runs at start and then not within the test: every later
        // event here comes from the binlog.
        ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "1h"),
        ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "50ms"),
    ];
    let env = binlog_env(&server, &settings).await;
    let (erp, service, shutdown, pipeline) = lifecycle_run(&server, &env).await;
    let (shop, long) = (Shop { magento1: false }, Duration::from_secs(20));

    let a = shop.place(&env, "new", "pending").await;
    let b = shop.place(&env, "processing", "processing").await;
    let c = shop.place(&env, "processing", "processing").await;
    until("three placements", long, || {
        [a, b, c].iter().all(|o| life_of(&erp, *o) == [PLACE])
    })
    .await;

    // A: invoiced, shipped (the order completes), and 0.1 s later part of it
    // refunded. B: picked, packed and completed within a second. C: held and
    // released within a second. D: cancelled at checkout, 50 ms after it
    // was placed.
    shop.invoice(&env, a).await;
    shop.ship(&env, a).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    shop.partial_refund(&env, a).await;
    shop.change(&env, b, "processing", "picking").await;
    shop.change(&env, b, "processing", "packed").await;
    shop.change(&env, b, "complete", "complete").await;
    shop.change(&env, c, "holded", "holded").await;
    shop.change(&env, c, "processing", "processing").await;
    let d = shop.place(&env, "new", "pending").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    shop.cancel(&env, d).await;

    let change = |status: &str| format!("{CHANGE}:{status}");
    let want_a = vec![
        PLACE.to_owned(),
        INVOICE.into(),
        change("processing"),
        SHIP.into(),
        change("complete"),
        REFUND.into(),
    ];
    let want_b = vec![
        PLACE.to_owned(),
        change("picking"),
        change("packed"),
        change("complete"),
    ];
    let want_c = vec![PLACE.to_owned(), change("holded"), change("processing")];
    until("every change of A, B and C", long, || {
        life_of(&erp, a).len() >= want_a.len()
            && life_of(&erp, b).len() >= want_b.len()
            && life_of(&erp, c).len() >= want_c.len()
    })
    .await;
    until("D placed and cancelled", long, || {
        life_of(&erp, d).iter().any(|e| e == CANCEL)
    })
    .await;

    // E is cancelled while order-sync is stopped.
    let e = shop.place(&env, "new", "pending").await;
    until("E placed", long, || life_of(&erp, e) == [PLACE]).await;
    env.wait_for_ledger(long, "E's placement synced", |rows| {
        rows.iter()
            .any(|r| r.entity_id == e && r.state == State::Synced)
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    shop.cancel(&env, e).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    until("E cancelled", long, || {
        life_of(&erp, e).iter().any(|x| x == CANCEL)
    })
    .await;
    // Anything doubled or late would show by now.
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(life_of(&erp, a), want_a, "A as Magento did it");
    assert_eq!(life_of(&erp, b), want_b, "B's every status, in order");
    assert_eq!(life_of(&erp, c), want_c, "C's hold and its release");
    let cancelled = [PLACE.to_owned(), CANCEL.into(), change("canceled")];
    let got_d = life_of(&erp, d);
    assert!(
        got_d == cancelled || got_d == [PLACE.to_owned(), CANCEL.into()],
        "D once, placement first, one cancellation: {got_d:?}"
    );
    assert_eq!(life_of(&erp, e), cancelled, "E's cancellation, once");
    shutdown.cancel();
    pipeline.await.unwrap();
    service.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn with_minimal_row_images_a_state_change_still_arrives_once_from_the_scan() {
    use crate::lifecycle::{until, Shop, PLACE};
    // Row images without the state columns: the follower cannot tell a move
    // from them, so the change is the scan's.
    let server = BinlogServer::start("--binlog-row-image=MINIMAL");
    let env = binlog_env(
        &server,
        &[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,status_changed",
            ),
            ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "200ms"),
            ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "50ms"),
        ],
    )
    .await;
    let (erp, service, shutdown, pipeline) = lifecycle_run(&server, &env).await;
    let (shop, long) = (Shop { magento1: false }, Duration::from_secs(20));

    let a = shop.place(&env, "new", "pending").await;
    until("A placed, from the binlog", long, || {
        life_of(&erp, a) == [PLACE]
    })
    .await;
    shop.change(&env, a, "processing", "picking").await;
    let want = [PLACE.to_owned(), format!("{CHANGE}:picking")];
    until("A's change, from the scan", long, || {
        life_of(&erp, a).len() >= 2
    })
    .await;
    // Anything doubled would show by now.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(life_of(&erp, a), want, "once, after its placement");
    shutdown.cancel();
    pipeline.await.unwrap();
    service.abort();
    env.cleanup().await;
}
