//! Capture never stalls and never loses a later event: a refused read, a
//! killed connection or a lock-wait timeout on one table leaves no
//! transaction open on Magento, does not stop the capture of new orders,
//! and loses nothing committed meanwhile; start-up refuses grants that
//! cannot work, naming each one.
//!
//! Each test runs its own MariaDB (`deploy/mariadb/local-binlog.sh`), whose
//! admin can make a Magento user with exactly the grants a shop gives.

use std::time::{Duration, Instant};

use chrono::Utc;
use mysql_async::prelude::*;
use order_sync::app::Roles;

use crate::{
    kit::BinlogServer,
    lifecycle::{events_of, fast, finish, sync_service, until, Shop, INVOICE, PLACE},
    support::{free_port, http, TestEnv},
};

/// The order tables capture reads (Magento 2).
const ORDER_TABLES: [&str; 5] = [
    "sales_order",
    "sales_order_item",
    "sales_order_address",
    "sales_order_payment",
    "sales_order_status_history",
];
const INVOICE_TABLES: [&str; 3] = [
    "sales_invoice",
    "sales_invoice_item",
    "sales_invoice_comment",
];

/// A Magento user on the test's own server with SELECT on the tables given,
/// table by table, as a shop grants it.
struct Reader {
    database: String,
    url: String,
    admin: mysql_async::Conn,
}

impl Reader {
    async fn create(server: &BinlogServer, env: &TestEnv, tables: &[&str], extra: &str) -> Self {
        let mut admin = server.admin().await;
        admin
            .query_drop("CREATE USER 'reader'@'%' IDENTIFIED BY 'reader'")
            .await
            .unwrap();
        if !extra.is_empty() {
            admin
                .query_drop(format!("GRANT {extra} ON *.* TO 'reader'@'%'"))
                .await
                .unwrap();
        }
        let mut reader = Self {
            database: format!("{}_magento", env.id),
            url: format!(
                "mysql://reader:reader@127.0.0.1:{}/{}_magento",
                server.port, env.id
            ),
            admin,
        };
        for t in tables {
            reader.grant(t).await;
        }
        reader
    }

    async fn grant(&mut self, table: &str) {
        self.admin
            .query_drop(format!(
                "GRANT SELECT ON `{}`.`{table}` TO 'reader'@'%'",
                self.database
            ))
            .await
            .unwrap();
    }

    async fn revoke(&mut self, table: &str) {
        self.admin
            .query_drop(format!(
                "REVOKE SELECT ON `{}`.`{table}` FROM 'reader'@'%'",
                self.database
            ))
            .await
            .unwrap();
    }

    /// Transactions of the reader's sessions open for more than two seconds
    /// (a poll's own lasts milliseconds; a leaked one lasts forever).
    async fn open_transactions(&mut self) -> u64 {
        let n: Option<u64> = self
            .admin
            .query_first(
                "SELECT COUNT(*) FROM information_schema.innodb_trx t \
                 JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id \
                 WHERE p.user = 'reader' AND t.trx_started < NOW() - INTERVAL 2 SECOND",
            )
            .await
            .unwrap();
        n.unwrap_or(0)
    }

    /// Kills every session of the reader (the binlog stream's too), as a
    /// network fault or a DBA would; returns how many.
    async fn kill_sessions(&mut self) -> usize {
        let ids: Vec<u64> = self
            .admin
            .query("SELECT id FROM information_schema.processlist WHERE user = 'reader'")
            .await
            .unwrap();
        for id in &ids {
            let _ = self.admin.query_drop(format!("KILL CONNECTION {id}")).await;
        }
        ids.len()
    }

    /// Points the test's order-sync at Magento as this user (the test itself
    /// keeps placing orders as the admin).
    fn point(&self, env: &mut TestEnv) {
        env.env.retain(|(k, _)| k != "ORDER_SYNC__MAGENTO__URL");
        env.env
            .push(("ORDER_SYNC__MAGENTO__URL".into(), self.url.clone()));
        env.settings = order_sync::config::load_with_env(None, env.env.clone())
            .expect("test settings are valid");
    }
}

/// A world on its own server with HTTP on a port of its own.
async fn world(
    server: &BinlogServer,
    consumers: &[&str],
    overrides: &[(&'static str, &'static str)],
) -> (TestEnv, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut o: Vec<(&str, &str)> = vec![
        ("ORDER_SYNC__HTTP__ENABLED", "true"),
        ("ORDER_SYNC__HTTP__LISTEN", &listen),
    ];
    o.extend_from_slice(overrides);
    let env = TestEnv::with_magento_on(Some(&server.url), consumers, &o).await;
    (env, format!("http://{listen}"))
}

async fn readyz(base: &str) -> (u16, String) {
    http("GET", &format!("{base}/readyz"), None, None).await
}

/// `order_sync_capture_errors_total{part}` as scraped.
async fn capture_errors(base: &str, part: &str) -> f64 {
    let (_, text) = http("GET", &format!("{base}/metrics"), None, None).await;
    let key = format!("order_sync_capture_errors_total{{part=\"{part}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in /metrics"))
}

#[tokio::test]
async fn a_refused_document_table_stops_neither_order_capture_nor_the_invoice_written_meanwhile() {
    let server = BinlogServer::start("");
    let (mut env, base) = world(
        &server,
        &["erp"],
        &fast(&[("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced")]),
    )
    .await;
    let tables: Vec<&str> = ORDER_TABLES
        .iter()
        .chain(&INVOICE_TABLES)
        .copied()
        .collect();
    let mut reader = Reader::create(&server, &env, &tables, "").await;
    reader.point(&mut env);
    let (got, service) = sync_service(&env, "erp").await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let a = env.place_order().await;
    until("order a placed", Duration::from_secs(10), || {
        events_of(&got, a) == [PLACE]
    })
    .await;

    reader.revoke("sales_invoice_item").await;
    Shop { magento1: false }.invoice(&env, a).await;
    let b = env.place_order().await;
    until(
        "order b captured while invoices are refused",
        Duration::from_secs(5),
        || events_of(&got, b) == [PLACE],
    )
    .await;
    // The scan fails poll after poll: /readyz says so, and nothing is held open.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (status, text) = loop {
        let (status, text) = readyz(&base).await;
        if status == 503 || Instant::now() > deadline {
            break (status, text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 503, "{text}");
    assert!(
        text.contains("invoices") && text.contains("sales_invoice_item"),
        "{text}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        reader.open_transactions().await,
        0,
        "a transaction left open"
    );
    assert_eq!(events_of(&got, a), [PLACE], "no invoice while refused");

    reader.grant("sales_invoice_item").await;
    until(
        "the invoice written meanwhile",
        Duration::from_secs(10),
        || events_of(&got, a) == [PLACE, INVOICE],
    )
    .await;
    let (status, text) = readyz(&base).await;
    assert_eq!(status, 200, "{text}");
    let c = env.place_order().await;
    until("order c", Duration::from_secs(10), || {
        events_of(&got, c) == [PLACE]
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_of(&got, a), [PLACE, INVOICE], "each once");
    drop(reader);
    finish(env, shutdown, pipeline, [service]).await;
}

#[tokio::test]
async fn a_first_scan_refused_by_magento_reads_everything_committed_meanwhile_once_granted() {
    let server = BinlogServer::start("");
    let (mut env, _) = world(
        &server,
        &["erp"],
        &[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,invoiced,status_changed",
            ),
            // What a shop runs: later events from the first start on.
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
        ],
    )
    .await;
    // The grants the README used to give: the order tables only.
    let mut reader = Reader::create(&server, &env, &ORDER_TABLES, "").await;
    reader.point(&mut env);
    // The relay records what capture publishes; capture is driven step by step.
    let parts = env.parts();
    let relay_stop = tokio_util::sync::CancellationToken::new();
    let relay = tokio::spawn(env.parts().run(Roles::RELAY, relay_stop.clone()));
    let mut capture = parts.capture();
    capture.step(Utc::now()).await.unwrap();
    let a = env.place_order().await;
    assert_eq!(capture.step(Utc::now()).await.unwrap().published, 1);
    env.wait_for_ledger(Duration::from_secs(10), "order a recorded", |r| {
        r.iter().any(|d| d.entity_id == a)
    })
    .await;

    let refused = capture.lifecycle_step(Utc::now()).await.unwrap_err();
    assert!(refused.to_string().contains("sales_invoice"), "{refused}");
    // Invoiced (and so `processing`) while the scan cannot read invoices.
    Shop { magento1: false }.invoice(&env, a).await;
    assert!(capture.lifecycle_step(Utc::now()).await.is_err());
    for t in INVOICE_TABLES {
        reader.grant(t).await;
    }
    let outcome = capture.lifecycle_step(Utc::now()).await.unwrap();
    assert_eq!(
        outcome.events, 2,
        "the invoice and the state change: {outcome:?}"
    );
    let ledger = parts.deps.ledger.clone();
    let mut rows: Vec<_> = ledger
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.entity_id == a)
        .collect();
    rows.sort_by_key(|d| d.seq);
    let events: Vec<String> = rows.iter().map(|d| d.event.to_string()).collect();
    assert_eq!(events, ["placed", "invoiced", "status_changed"]);
    // Nothing more on the next scan.
    assert_eq!(
        capture.lifecycle_step(Utc::now()).await.unwrap().events,
        0,
        "recorded twice"
    );
    // An event the ledger never recorded is not silently "0 rows re-sent".
    let out = env
        .order_sync(&[
            "resync",
            "--entity-id",
            &a.to_string(),
            "--event",
            "shipped",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("the ledger holds no `shipped` event"),
        "{stderr}"
    );
    relay_stop.cancel();
    relay.await.unwrap().unwrap();
    assert_eq!(reader.open_transactions().await, 0, "left open");
    parts.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn order_capture_goes_on_through_a_refused_read_a_killed_connection_and_a_lock_timeout() {
    for (mode, server_id) in [("poll", "0"), ("binlog", "4301")] {
        let server = BinlogServer::start("");
        let (mut env, base) = world(
            &server,
            &["erp"],
            &[
                ("ORDER_SYNC__CAPTURE__MODE", mode),
                ("ORDER_SYNC__CAPTURE__BINLOG__SERVER_ID", server_id),
                ("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "200ms"),
                ("ORDER_SYNC__CAPTURE__BINLOG__POLL_INTERVAL", "1h"),
                ("ORDER_SYNC__MAGENTO__LOCK_WAIT_TIMEOUT", "1s"),
            ],
        )
        .await;
        let mut reader = Reader::create(
            &server,
            &env,
            &ORDER_TABLES,
            "BINLOG MONITOR, REPLICATION SLAVE",
        )
        .await;
        reader.point(&mut env);
        let (got, service) = sync_service(&env, "erp").await;
        let (shutdown, pipeline) = env.spawn_pipeline();
        let placed = |id: u32| {
            let got = got.clone();
            move || events_of(&got, id) == [PLACE]
        };
        let a = env.place_order().await;
        until("order a", Duration::from_secs(10), placed(a)).await;

        // A refused read: nothing captured, nothing held open; granted, on it goes.
        reader.revoke("sales_order_item").await;
        let b = env.place_order().await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            events_of(&got, b).is_empty(),
            "{mode}: read without a grant?"
        );
        assert_eq!(reader.open_transactions().await, 0, "{mode}: left open");
        assert!(capture_errors(&base, "orders").await >= 1.0, "{mode}");
        reader.grant("sales_order_item").await;
        until(
            &format!("{mode}: order b once granted"),
            Duration::from_secs(2),
            placed(b),
        )
        .await;

        // Every connection of the reader killed (the binlog stream's too).
        let killed = reader.kill_sessions().await;
        assert!(killed > 0, "{mode}: no reader connection to kill");
        let c = env.place_order().await;
        until(
            &format!("{mode}: order c after the kill"),
            Duration::from_secs(10),
            placed(c),
        )
        .await;

        // A table lock held past magento.lock_wait_timeout (an ALTER TABLE
        // during a deploy): capture's reads of it time out instead of
        // waiting for good, and capture goes on once it is released.
        let errors = || async {
            capture_errors(&base, "orders").await + capture_errors(&base, "lifecycle").await
        };
        let before = errors().await;
        let mut locker = server.admin().await;
        locker
            .query_drop(format!(
                "LOCK TABLES `{}`.`sales_order` WRITE",
                reader.database
            ))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let during = errors().await;
        locker.query_drop("UNLOCK TABLES").await.unwrap();
        drop(locker);
        assert!(
            during > before,
            "{mode}: the reads waited out the lock instead of timing out"
        );
        let d = env.place_order().await;
        until(
            &format!("{mode}: order d after the lock"),
            Duration::from_secs(5),
            placed(d),
        )
        .await;
        assert_eq!(reader.open_transactions().await, 0, "{mode}: left open");
        for id in [a, b, c, d] {
            assert_eq!(events_of(&got, id), [PLACE], "{mode}: order {id} once");
        }
        drop(reader);
        finish(env, shutdown, pipeline, [service]).await;
    }
}

/// Runs the binary to its end (at most 30 s): exit code, stdout and stderr.
fn run_to_end(cmd: &mut std::process::Command) -> (i32, String, String) {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within 30s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn start_up_with_too_few_grants_exits_2_naming_each_grant_to_give() {
    let server = BinlogServer::start("");
    let (mut env, _) = world(
        &server,
        &["erp"],
        &[("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced")],
    )
    .await;
    let mut reader = Reader::create(&server, &env, &ORDER_TABLES, "").await;
    reader.point(&mut env);
    let db = reader.database.clone();
    for args in [&["run"][..], &["check-config", "--live"][..]] {
        let (code, _, stderr) = run_to_end(&mut env.order_sync(args));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        for t in INVOICE_TABLES {
            let grant = format!("GRANT SELECT ON `{db}`.`{t}` TO 'reader'@'%';");
            assert!(stderr.contains(&grant), "{args:?} names {t}: {stderr}");
        }
        assert!(stderr.contains("invoiced"), "says why: {stderr}");
    }
    for t in INVOICE_TABLES {
        reader.grant(t).await;
    }
    let (code, stdout, stderr) = run_to_end(&mut env.order_sync(&["check-config", "--live"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("may read all 8 table(s)"), "{stdout}");

    // The import names the grant its queue table lacks, not "not installed".
    let mut admin = server.admin().await;
    admin
        .query_drop(format!(
            "CREATE TABLE `{db}`.ordersyncquerunner_que (id INT UNSIGNED NOT NULL AUTO_INCREMENT \
             PRIMARY KEY, increment_id VARCHAR(50) NULL, entity_id INT UNSIGNED NULL, \
             created_at DATETIME NULL, synced_at DATETIME NULL)"
        ))
        .await
        .unwrap();
    let (code, _, stderr) = run_to_end(&mut env.order_sync(&["import-seed-queue", "--dry-run"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "GRANT SELECT ON `{db}`.`ordersyncquerunner_que` TO 'reader'@'%';"
        )),
        "{stderr}"
    );
    drop((reader, admin));
    env.cleanup().await;
}
