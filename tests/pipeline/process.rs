//! The `order-sync` binary as operators run it: killed hard, stopped by
//! signal, started with broken configuration or a wrong database.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use mysql_async::prelude::*;

use crate::support::{body, TestEnv};

fn sigterm(child: &Child) {
    // SAFETY-free: `kill` is a plain command; no libc needed.
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("order-sync did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[tokio::test]
async fn sigterm_stops_the_process_promptly_with_exit_code_zero() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut child = env.spawn_run();
    env.place_orders(3).await;
    env.wait_for_ledger(Duration::from_secs(20), "orders recorded", |rows| {
        rows.len() == 3
    })
    .await;
    let started = Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn bad_configuration_stops_start_up_naming_the_key() {
    let env = TestEnv::new(&["erp"], &[]).await;
    for (key, value, expected) in [
        (
            "ORDER_SYNC__RELAY__MAX_ATTEMPTS",
            "zero",
            "relay.max_attempts",
        ),
        ("ORDER_SYNC__RELAY__SCHEDULE", "sometimes", "relay.schedule"),
        (
            "ORDER_SYNC__BROKER__URL",
            "http://guest:s3cret@localhost/",
            "broker.url",
        ),
        ("ORDER_SYNC__CONSUMERS__NAMES", "", "consumers.names"),
    ] {
        let out = env.order_sync(&["run"]).env(key, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(expected), "{key}={value}: {stderr}");
        assert!(!stderr.contains("s3cret"), "password leaked: {stderr}");
    }
    env.cleanup().await;
}

#[tokio::test]
async fn a_wrong_table_prefix_stops_start_up_naming_the_table() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let out = env
        .order_sync(&["run"])
        .env("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "m2_")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A settings problem: exit 2, which systemd does not restart.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("m2_sales_order"), "{stderr}");
    assert!(stderr.contains("magento.table_prefix"), "{stderr}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_missing_magento_column_stops_start_up_naming_it() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut conn = env.magento_conn().await;
    conn.query_drop("ALTER TABLE sales_order DROP INDEX SALES_ORDER_INCREMENT_ID_STORE_ID, DROP COLUMN increment_id")
        .await
        .unwrap();
    drop(conn);
    let out = env.order_sync(&["run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`sales_order`") && stderr.contains("increment_id"),
        "{stderr}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn topology_and_migrate_commands_are_idempotent_and_say_what_they_did() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    for _ in 0..2 {
        let out = env.order_sync(&["topology"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in [
            format!("{}.orders (topic, durable)", env.id),
            format!("{}.que.wms (quorum, durable", env.id),
            format!("{}.acks --[#]--> {}.acks.listener", env.id, env.id),
        ] {
            assert!(stdout.contains(&name), "missing {name} in:\n{stdout}");
        }
        let out = env.order_sync(&["migrate"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(&format!(
            "schema version {}",
            order_sync::ledger::schema::latest()
        )));
    }
    env.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_broker_fails_the_topology_command_naming_the_url_without_its_password() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let out = env
        .order_sync(&["topology"])
        .env(
            "ORDER_SYNC__BROKER__URL",
            "amqp://guest:s3cret@127.0.0.1:1/%2f",
        )
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    env.cleanup().await;
}

fn rabbitmqctl(args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(args)
        .arg("-q")
        .status()
        .unwrap();
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

#[tokio::test]
async fn a_vhost_created_after_start_up_is_waited_for_and_used() {
    let mut env = TestEnv::new(&["erp"], &[]).await;
    let vhost = env.own_vhost();
    let url = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let mut child = env
        .order_sync(&["run"])
        .env("ORDER_SYNC__BROKER__URL", &url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(crate::support::Proc::from)
        .unwrap();
    // The vhost does not exist yet (definitions still loading, say): it waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "order-sync gave up on a missing vhost"
    );
    rabbitmqctl(&["add_vhost", &vhost]);
    rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"]);

    let id = env.place_order().await;
    let mut conn = lapin::Connection::connect(&url, Default::default())
        .await
        .unwrap();
    let queue = env.topology().consumer_queue("erp");
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        // The queue appears once order-sync has connected and declared its
        // topology; asking for a queue that does not exist closes the channel
        // (and, under load, the broker has been seen to close the connection
        // too: then a new one).
        let ch = match conn.create_channel().await {
            Ok(ch) => ch,
            Err(_) => {
                conn = lapin::Connection::connect(&url, Default::default())
                    .await
                    .unwrap();
                conn.create_channel().await.unwrap()
            }
        };
        if let Ok(Some(m)) = ch
            .basic_get(queue.as_str().into(), Default::default())
            .await
        {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "no order arrived in vhost {vhost}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body(&got.delivery)["order"]["entity_id"], id);
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(15)).success());
    drop(conn);
    env.cleanup().await;
}

#[tokio::test]
async fn json_logs_carry_the_order_and_consumer_of_each_delivery_and_ack() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let log = std::env::temp_dir().join(format!("{}.log", env.id));
    let mut child = env
        .order_sync(&["run", "--log-json"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .map(crate::support::Proc::from)
        .unwrap();
    let id = env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "the order published", |rows| {
        rows.iter()
            .any(|r| r.state == order_sync::ledger::State::Published)
    })
    .await;
    env.ack_json(serde_json::json!({"consumer": "erp", "entity_id": id, "status": "failed", "error": "ERP down"}))
        .await;
    env.wait_for_ledger(Duration::from_secs(20), "the failed ack applied", |rows| {
        rows.iter()
            .any(|r| r.state == order_sync::ledger::State::Failed)
    })
    .await;
    sigterm(&child);
    wait_exit(&mut child, Duration::from_secs(15));
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let find = |message: &str| {
        lines
            .iter()
            .find(|l| l["message"] == message)
            .unwrap_or_else(|| panic!("no line `{message}` in:\n{text}"))
    };
    let published = &find("Published to the consumer's queue.")["span"];
    assert_eq!(published["entity_id"], id);
    assert_eq!(published["increment_id"], format!("{id:09}"));
    assert_eq!(published["consumer"], "erp");
    assert_eq!(published["attempt"], 1);
    let failed = &find("Sync service reported a failure; will re-deliver.")["span"];
    assert_eq!(failed["entity_id"], id);
    // The ack named only the entity id; the order number comes from the ledger.
    assert_eq!(failed["increment_id"], format!("{id:09}"));
    assert_eq!(failed["consumer"], "erp");
    env.cleanup().await;
}

#[tokio::test]
async fn a_wrong_broker_password_is_a_configuration_error_naming_the_key() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut url = url::Url::parse(&crate::support::amqp_url()).unwrap();
    url.set_password(Some("s3cret-but-wrong")).unwrap();
    let out = env
        .order_sync(&["run"])
        .env("ORDER_SYNC__BROKER__URL", url.as_str())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broker.url"), "{stderr}");
    assert!(stderr.contains("ACCESS_REFUSED"), "{stderr}");
    assert!(!stderr.contains("s3cret-but-wrong"), "{stderr}");
    env.cleanup().await;
}

#[tokio::test]
async fn renaming_the_shop_on_a_ledger_with_a_position_refuses_to_start_and_says_what_to_do() {
    let env = TestEnv::new(&["erp"], &[]).await;
    env.place_order().await;
    let parts = env.parts();
    parts.capture().step(chrono::Utc::now()).await.unwrap();
    let out = env
        .order_sync(&["run"])
        .env("ORDER_SYNC__SHOP__NAME", "renamed-shop")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("shop.name is `renamed-shop`"), "{stderr}");
    assert!(stderr.contains(&format!("`{}`", env.id)), "{stderr}");
    assert!(
        stderr.contains("UPDATE order_sync_capture_position"),
        "{stderr}"
    );
    parts.close().await;
    env.cleanup().await;
}

#[tokio::test]
async fn check_config_prints_a_short_summary_and_survives_a_closed_pipe() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let out = env.order_sync(&["check-config"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(stdout.lines().count() < 20, "{stdout}");
    assert!(stdout.contains("consumers   erp (queue)"), "{stdout}");
    // Reading only the first line, as `| head -1` does.
    let mut child = env
        .order_sync(&["check-config"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(status.success(), "{status:?}: {stderr}");
    env.cleanup().await;
}

#[tokio::test]
async fn a_half_open_http_connection_does_not_hold_up_a_stop() {
    let (env, listen) = TestEnv::with_http(&["erp"]).await;
    let mut child = env
        .order_sync(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(crate::support::Proc::from)
        .unwrap();
    // Headers begun, never finished.
    let mut stream = loop {
        match tokio::net::TcpStream::connect(&listen).await {
            Ok(s) => break s,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = std::time::Instant::now();
    sigterm(&child);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    let took = stopped.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "stopping took {took:?}");
    drop(stream);
    env.cleanup().await;
}
