//! Writing a sync service: the library's consumer helper, the demo, and the
//! example consumers in other languages, against the real broker.

use std::{
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use lapin::{options::BasicPublishOptions, BasicProperties};
use order_sync::{broker::sync_consumer, ledger::State};
use order_sync_consumer::{Handled, OrderMessage, Remote};
use tokio_util::sync::CancellationToken;

use crate::support::{mysql_server, TestEnv};

#[tokio::test]
async fn the_consumer_helper_acks_each_order_by_its_result_and_skips_what_it_already_synced() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1s"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "1s"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(4).await;
    // The service fails the first attempt of the second order.
    let seen: Arc<Mutex<Vec<(u64, u32)>>> = Arc::default();
    let consumer = Arc::new(sync_consumer(&env.settings.broker, "erp"));
    let stop = CancellationToken::new();
    let task = {
        let (consumer, seen, stop, failing) =
            (consumer.clone(), seen.clone(), stop.clone(), ids[1] as u64);
        tokio::spawn(async move {
            consumer
                .run(
                    |msg: OrderMessage| {
                        let seen = seen.clone();
                        async move {
                            let id = msg.entity_id().unwrap();
                            seen.lock().unwrap().push((id, msg.attempt));
                            if id == failing && msg.attempt == 1 {
                                Err("ERP busy".to_owned())
                            } else {
                                // What the order became in the ERP goes back with the ack.
                                Ok(Remote::id(format!("SO-{id}"))
                                    .with_url(format!("https://erp.example/so/{id}")))
                            }
                        }
                    },
                    stop,
                )
                .await
        })
    };
    env.wait_for_ledger(Duration::from_secs(30), "every order synced", |rows| {
        rows.len() == 4 && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    let calls = seen.lock().unwrap().clone();
    assert_eq!(
        calls.iter().filter(|(id, _)| *id == ids[1] as u64).count(),
        2,
        "failed once, then synced: {calls:?}"
    );
    assert!(calls.contains(&(ids[1] as u64, 2)));
    let row = env
        .parts()
        .deps
        .ledger
        .delivery(ids[1], "erp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.attempts, 2);
    assert_eq!(row.remote_id, Some(format!("SO-{}", ids[1])));
    assert_eq!(
        row.remote_url,
        Some(format!("https://erp.example/so/{}", ids[1]))
    );
    stop.cancel();
    task.await.unwrap();
    shutdown.cancel();
    pipeline.await.unwrap();

    // One step at a time: a re-delivery of a synced order is not handed over
    // again (its ack is re-sent); a message that is no order is dead-lettered.
    let queue = env.topology().consumer_queue("erp");
    let order = serde_json::json!({
        "schema_version": 1, "event": "sales_order_place_after_que",
        "message_id": format!("{}:{}:erp", env.id, ids[0]), "source": env.id, "consumer": "erp",
        "captured_at": "2026-11-27T10:00:00Z", "attempt": 3, "order": {"entity_id": ids[0]}
    });
    for body in [
        serde_json::to_vec(&order).unwrap(),
        serde_json::to_vec(&order).unwrap(),
        b"{not an order".to_vec(),
    ] {
        env.channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let handler = |_m: OrderMessage| async { Ok::<(), String>(()) };
    // A fresh process: it has synced nothing yet.
    let consumer = sync_consumer(&env.settings.broker, "erp");
    let publisher = consumer.publisher().await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let d = env
            .get(&queue, Duration::from_secs(10))
            .await
            .expect("a message");
        outcomes.push(consumer.handle(&publisher, &d, &handler).await.unwrap());
    }
    assert_eq!(outcomes[0], Handled::Synced);
    assert_eq!(outcomes[1], Handled::Duplicate);
    assert!(matches!(outcomes[2], Handled::Rejected(_)), "{outcomes:?}");
    let dead = env.topology().dead_queue("que.erp");
    assert!(
        env.get(&dead, Duration::from_secs(10)).await.is_some(),
        "the non-order went to {dead}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn with_a_synced_file_the_consumer_helper_recognises_a_repeat_after_a_restart() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let queue = env.topology().consumer_queue("erp");
    let order = serde_json::json!({
        "schema_version": 1, "event": "sales_order_place_after_que",
        "message_id": format!("{}:7:erp", env.id), "source": env.id, "consumer": "erp",
        "captured_at": "2026-11-27T10:00:00Z", "attempt": 1, "order": {"entity_id": 7}
    });
    for _ in 0..2 {
        env.channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &serde_json::to_vec(&order).unwrap(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let path = std::env::temp_dir().join(format!("{}-synced.log", env.id));
    let calls = Arc::new(Mutex::new(0));
    let handler = |_m: OrderMessage| {
        let calls = calls.clone();
        async move {
            *calls.lock().unwrap() += 1;
            Ok::<(), String>(())
        }
    };
    let mut outcomes = Vec::new();
    // Two processes one after the other, sharing only the file.
    for _ in 0..2 {
        let file = order_sync_consumer::SyncedFile::open(&path).unwrap();
        let consumer = sync_consumer(&env.settings.broker, "erp").with_synced_file(file);
        let publisher = consumer.publisher().await.unwrap();
        let d = env
            .get(&queue, Duration::from_secs(10))
            .await
            .expect("a message");
        outcomes.push(consumer.handle(&publisher, &d, &handler).await.unwrap());
    }
    let _ = std::fs::remove_file(&path);
    assert_eq!(outcomes, [Handled::Synced, Handled::Duplicate]);
    assert_eq!(*calls.lock().unwrap(), 1, "the function ran once");
    env.cleanup().await;
}

#[tokio::test]
async fn the_demo_places_orders_and_its_sync_services_get_every_one_synced() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let demo_db = format!("{}/{}_demo", mysql_server(), env.id);
    // Against a database not named as a demo, it refuses.
    let out = env.order_sync(&["demo", "--orders", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("contains `demo`") && err.contains("_magento"),
        "{err}"
    );

    let out = env
        .order_sync(&["demo-orders", "--orders", "2", "--rate", "50"])
        .env("ORDER_SYNC__MAGENTO__URL", &demo_db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("placed 2 demo order(s)"));

    let mut child = env
        .order_sync(&[
            "demo",
            "--orders",
            "8",
            "--rate",
            "20",
            "--fail-rate",
            "0.25",
        ])
        .env("ORDER_SYNC__MAGENTO__URL", &demo_db)
        .env("ORDER_SYNC__RELAY__SCHEDULE", "200ms")
        .env("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1s")
        .env("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "1s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(crate::support::Proc::from)
        .unwrap();
    let rows = env
        .wait_for_ledger(
            Duration::from_secs(60),
            "all ten demo orders synced for both",
            |rows| rows.len() == 20 && rows.iter().all(|r| r.state == State::Synced),
        )
        .await;
    assert!(
        rows.iter().any(|r| r.attempts > 1),
        "some failed on purpose and came again"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(child.wait().unwrap().success());
    env.cleanup().await;
}

/// A command from another toolchain, or a failure saying how to get it.
fn tool(program: &str, install: &str) -> Command {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => Command::new(program),
        _ => panic!("`{program}` is needed for this test: {install} (deploy/test.sh does)"),
    }
}

/// Puts a copy of a synced placement in `consumer`'s queue, as a crash of
/// order-sync between the consumer's ack and its record would bring it again.
async fn copy_again(env: &TestEnv, consumer: &str, message_id: &str, entity_id: u32) {
    let copy = serde_json::json!({
        "schema_version": 1, "event": "sales_order_place_after_que",
        "message_id": message_id, "source": env.id, "consumer": consumer,
        "captured_at": "2026-11-27T10:00:00Z", "attempt": 1, "order": {"entity_id": entity_id}
    });
    env.channel
        .basic_publish(
            "".into(),
            env.topology().consumer_queue(consumer).as_str().into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(&copy).unwrap(),
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn the_python_consumer_acks_orders_and_invoices_with_its_systems_ids_and_after_a_restart_skips_a_repeat(
) {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__CONSUMERS__ERP__EVENTS", "placed,invoiced"),
            ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "50ms"),
            ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "50ms"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(6).await;
    let shop = crate::lifecycle::Shop { magento1: false };
    for id in &ids[..2] {
        shop.invoice(&env, *id).await;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/consumers/python/consumer.py"
    );
    let mut python = tool("python3", "apt-get install -y python3");
    let check = Command::new("python3")
        .args(["-c", "import pika"])
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "the Python consumer needs pika: pip install -r deploy/consumers/python/requirements.txt (deploy/test.sh does)"
    );
    let synced_db = std::env::temp_dir().join(format!("{}-synced.sqlite3", env.id));
    let out = tokio::task::spawn_blocking({
        let (url, prefix, db) = (
            crate::support::amqp_url(),
            env.id.clone(),
            synced_db.clone(),
        );
        move || {
            // As a sync service would use it: imported, with its own handler
            // answering the ERP's id for the order.
            python
                .args([
                    "-c",
                    &format!(
                        "import sys; sys.path.insert(0, {dir:?}); import consumer; \
                     consumer.HANDLERS['sales_order_place_after_que'] = \
                     lambda m: {{'remote_id': 'SO-%d' % m['order']['entity_id'], \
                     'remote_url': 'https://erp.example/so/%d' % m['order']['entity_id']}}; \
                     consumer.main()",
                        dir = std::path::Path::new(script).parent().unwrap()
                    ),
                ])
                .env("AMQP_URL", url)
                .env("PREFIX", prefix)
                .env("CONSUMER", "erp")
                .env("SYNCED_DB", db)
                .env("MAX_MESSAGES", "8")
                .env("IDLE_EXIT", "30")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "consumer.py failed:\n{log}");
    assert!(log.contains("handled 8 message(s)"), "{log}");
    assert_eq!(
        log.matches("event #1 sales_order_invoice_save_after_que: document INV")
            .count(),
        2,
        "{log}"
    );
    let rows = env
        .wait_for_ledger(
            Duration::from_secs(20),
            "the batch synced by the Python consumer",
            |rows| rows.len() == 8 && rows.iter().all(|r| r.state == State::Synced),
        )
        .await;
    for r in &rows {
        let (id, url) = if r.seq == 0 {
            (
                Some(format!("SO-{}", r.entity_id)),
                Some(format!("https://erp.example/so/{}", r.entity_id)),
            )
        } else {
            (None, None) // its invoice handler answers nothing
        };
        assert_eq!((&r.remote_id, &r.remote_url), (&id, &url), "{r:?}");
    }
    // A copy of a synced order comes again (as after a crash): a restarted
    // consumer recognises it from its file and does not sync it again.
    let first = env
        .parts()
        .deps
        .ledger
        .delivery(ids[0], "erp")
        .await
        .unwrap()
        .unwrap();
    copy_again(&env, "erp", &first.message_id, ids[0]).await;
    let out = Command::new("python3")
        .arg(script)
        .env("AMQP_URL", crate::support::amqp_url())
        .env("PREFIX", &env.id)
        .env("CONSUMER", "erp")
        .env("SYNCED_DB", &synced_db)
        .env("MAX_MESSAGES", "1")
        .env("IDLE_EXIT", "30")
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&synced_db);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "consumer.py failed:\n{log}");
    assert!(
        log.contains("already synced; not synced again") && !log.contains("(entity_id"),
        "{log}"
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn the_php_consumer_is_valid_php_acks_orders_and_a_shipment_with_its_systems_ids_and_after_a_restart_skips_a_repeat(
) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/consumers/php/consumer.php"
    );
    let out = tool("php", "apt-get install -y php-cli")
        .args(["-l", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        std::path::Path::new("/usr/share/php/PhpAmqpLib/autoload.php").exists()
            || std::path::Path::new(&format!(
                "{}/deploy/consumers/php/vendor/autoload.php",
                env!("CARGO_MANIFEST_DIR")
            ))
            .exists(),
        "the PHP consumer needs php-amqplib: apt-get install -y php-amqplib php-mbstring php-bcmath (deploy/test.sh does)"
    );

    let env = TestEnv::new(
        &["wms"],
        &[
            ("ORDER_SYNC__CONSUMERS__WMS__EVENTS", "placed,shipped"),
            ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "50ms"),
            ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "50ms"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(5).await;
    crate::lifecycle::Shop { magento1: false }
        .ship(&env, ids[0])
        .await;
    // As a sync service would use it: its own syncOrder(), answering the
    // WMS's id, then the script required as it is.
    let dir = std::env::temp_dir().join(format!("{}-php", env.id));
    std::fs::create_dir_all(&dir).unwrap();
    let service = dir.join("service.php");
    std::fs::write(
        &service,
        format!(
            "<?php\nfunction syncOrder(array $m): array {{ return ['remote_id' => 'WMS-' . $m['order']['entity_id']]; }}\nrequire {script:?};\n"
        ),
    )
    .unwrap();
    let synced_file = dir.join("synced.jsonl");
    let run = |max: &'static str| {
        let (url, prefix) = (crate::support::amqp_url(), env.id.clone());
        let (service, synced_file) = (service.clone(), synced_file.clone());
        tokio::task::spawn_blocking(move || {
            Command::new("timeout")
                .arg("60")
                .arg("php")
                .arg(&service)
                .env("AMQP_URL", url)
                .env("PREFIX", prefix)
                .env("CONSUMER", "wms")
                .env("SYNCED_FILE", synced_file)
                .env("MAX_MESSAGES", max)
                .output()
                .unwrap()
        })
    };
    let out = run("6").await.unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "consumer.php failed:\n{log}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(log.contains("handled 6 message(s)"), "{log}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("event #1 sales_order_shipment_save_after_que: document SHP"),
        "{stdout}"
    );
    let rows = env
        .wait_for_ledger(
            Duration::from_secs(20),
            "the batch synced by the PHP consumer",
            |rows| rows.len() == 6 && rows.iter().all(|r| r.state == State::Synced),
        )
        .await;
    for r in &rows {
        let id = (r.seq == 0).then(|| format!("WMS-{}", r.entity_id));
        assert_eq!(r.remote_id, id, "{r:?}");
    }

    // A copy of a synced order comes again (as after a crash): the restarted
    // consumer knows it from its file and acks it with the same remote id.
    let first = rows.iter().find(|r| r.entity_id == ids[1]).unwrap();
    copy_again(&env, "wms", &first.message_id, ids[1]).await;
    let out = run("1").await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "consumer.php failed:\n{log}");
    assert!(log.contains("already synced; not synced again"), "{log}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("(entity_id"),
        "syncOrder() not called again"
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
