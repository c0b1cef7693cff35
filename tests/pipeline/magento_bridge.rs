//! The Magento bridge (integrations/bridge, run by the Magento 2 and
//! Magento 1 modules): its PHPUnit tests drive the real consume → dispatch →
//! ack loop, with only Magento replaced, against the real RabbitMQ and this
//! running order-sync; here the ledger shows what came of it.

use std::time::Duration;

use order_sync::ledger::State;

use crate::support::TestEnv;

const BRIDGE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/integrations/bridge");

/// Runs one PHPUnit test of the bridge with this scene; panics with its output.
/// Async: order-sync runs on this test's runtime meanwhile.
async fn phpunit(env: &TestEnv, filter: &str, observers: &serde_json::Value, expect: usize) {
    // The bridge keeps what it synced in Magento's database: the test's own.
    let opts = mysql_async::Opts::from_url(&crate::support::mysql_server()).unwrap();
    let dsn = format!(
        "mysql:host={};port={};dbname={}_magento",
        opts.ip_or_hostname(),
        opts.tcp_port(),
        env.id
    );
    run_phpunit(
        filter,
        &[
            ("AMQP_URL", &crate::support::amqp_url()),
            ("PREFIX", &env.id),
            ("CONSUMER", "erp"),
            ("OBSERVERS", &observers.to_string()),
            ("EXPECT", &expect.to_string()),
            ("MAX_ATTEMPTS", "3"),
            ("MAGENTO_DSN", &dsn),
            ("MAGENTO_USER", opts.user().unwrap_or("root")),
            ("MAGENTO_PASSWORD", opts.pass().unwrap_or("")),
        ],
        1,
    )
    .await;
}

/// Runs the bridge's PHPUnit tests matching `filter` with this scene in the
/// environment; panics with their output unless all `tests` pass.
pub(crate) async fn run_phpunit(filter: &str, scene: &[(&str, &str)], tests: usize) {
    let out = tokio::process::Command::new("phpunit")
        .current_dir(BRIDGE)
        .args(["--do-not-cache-result", "--filter", filter])
        .envs(scene.iter().copied())
        .kill_on_drop(true)
        .output()
        .await
        .expect("phpunit runs (apt-get install phpunit; deploy/test-tools.sh does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "phpunit --filter {filter}:\n{text}");
    let ok = if tests == 1 {
        "OK (1 test,".to_owned()
    } else {
        format!("OK ({tests} tests,")
    };
    assert!(text.contains(&ok), "{text}");
}

#[tokio::test]
async fn an_observer_inside_magento_syncs_orders_through_the_bridge_with_retries_and_parking() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            // Exact dispatch counts need no re-delivery of an order the bridge
            // has not acked yet: PHP may start after the first back-off has
            // run out (seen on a loaded CI machine), so re-delivery waits while
            // anything is still queued, and the back-off outlasts a slow start.
            ("ORDER_SYNC__RELAY__PAUSE_REDELIVERY_ABOVE", "0"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1s"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "1s"),
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "3"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(4).await;
    env.wait_for_ledger(Duration::from_secs(20), "the orders recorded", |r| {
        r.len() == 4
    })
    .await;
    let observers = serde_json::json!({
        ids[0].to_string(): "ok",
        ids[1].to_string(): "once",
        ids[2].to_string(): "always",
        ids[3].to_string(): "missing",
    });
    // ok: 1 delivery; once: 2; always and missing: 3 each, then parked.
    phpunit(
        &env,
        "test_each_order_is_dispatched_as_its_event_and_acked_by_what_the_observers_did",
        &observers,
        9,
    )
    .await;
    let rows = env
        .wait_for_ledger(Duration::from_secs(20), "every order settled", |r| {
            r.iter()
                .all(|d| matches!(d.state, State::Synced | State::Parked))
        })
        .await;
    let row = |id: u32| rows.iter().find(|r| r.entity_id == id).unwrap();
    assert_eq!(row(ids[0]).state, State::Synced);
    assert_eq!(
        (row(ids[1]).state, row(ids[1]).attempts),
        (State::Synced, 2)
    );
    // What the observer said the order became in the ERP came back with the ack.
    for id in [ids[0], ids[1]] {
        assert_eq!(row(id).remote_id, Some(format!("ERP-{id}")));
        assert_eq!(
            row(id).remote_url,
            Some(format!("https://erp.example/orders/{id}"))
        );
    }
    assert_eq!(row(ids[2]).state, State::Parked);
    let error = row(ids[2]).last_error.as_deref().unwrap_or("");
    assert!(
        error.contains("ERP rejected order"),
        "the exception's text is kept: {error}"
    );
    assert_eq!(row(ids[3]).state, State::Parked);
    let error = row(ids[3]).last_error.as_deref().unwrap_or("");
    assert!(error.contains("not found in Magento"), "{error}");

    // SIGTERM while an order's observers run: that order is finished, then it stops.
    let last = env.place_order().await;
    phpunit(
        &env,
        "test_sigterm_finishes_the_order_in_hand_then_stops",
        &serde_json::json!({ last.to_string(): "ok" }),
        1,
    )
    .await;
    env.wait_for_ledger(Duration::from_secs(10), "the order in hand synced", |r| {
        r.iter()
            .any(|d| d.entity_id == last && d.state == State::Synced)
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn an_observer_slower_than_the_backoff_runs_once_per_order() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__RELAY__SCHEDULE", "100ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "300ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "300ms"),
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "3"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(5).await;
    env.wait_for_ledger(Duration::from_secs(20), "the orders published", |r| {
        r.len() == 5 && r.iter().all(|d| d.state == State::Published)
    })
    .await;
    // A second an order: the bridge is seconds behind, many backoffs.
    let observers: serde_json::Map<String, serde_json::Value> = ids
        .iter()
        .map(|id| (id.to_string(), "slow".into()))
        .collect();
    phpunit(
        &env,
        "test_each_order_is_dispatched_as_its_event_and_acked_by_what_the_observers_did",
        &observers.into(),
        5,
    )
    .await;
    let rows = env
        .wait_for_ledger(Duration::from_secs(20), "every order synced", |r| {
            r.iter().all(|d| d.state == State::Synced)
        })
        .await;
    assert!(rows.iter().all(|r| r.attempts == 1), "{rows:?}");
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_repeated_message_reaches_magento_observers_once_also_after_a_bridge_restart() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "the order published", |r| {
        r.len() == 1 && r[0].state == State::Published
    })
    .await;
    // The table as an earlier bridge made it, before it kept the answer.
    let mut conn = env.magento_conn().await;
    mysql_async::prelude::Queryable::query_drop(
        &mut conn,
        "CREATE TABLE order_sync_bridge_synced (message_id VARCHAR(255) NOT NULL PRIMARY KEY, \
         consumer VARCHAR(64) NOT NULL, synced_at DATETIME NOT NULL, KEY order_sync_bridge_synced_synced_at (synced_at)) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    )
    .await
    .unwrap();
    phpunit(
        &env,
        "test_a_repeat_of_a_synced_message_is_acked_without_running_the_observers_again",
        &serde_json::json!({ id.to_string(): "ok" }),
        3,
    )
    .await;
    let rows = env
        .wait_for_ledger(Duration::from_secs(20), "the order synced", |r| {
            r[0].state == State::Synced
        })
        .await;
    assert_eq!(rows[0].attempts, 1);
    // The bridge's own table, in Magento's database, holds the message and
    // what the observer answered (the table grown in place).
    let kept: Vec<(String, Option<String>)> = mysql_async::prelude::Queryable::query(
        &mut conn,
        "SELECT message_id, remote_id FROM order_sync_bridge_synced",
    )
    .await
    .unwrap();
    assert_eq!(
        kept,
        vec![(rows[0].message_id.clone(), Some(format!("ERP-{id}")))]
    );
    assert_eq!(
        rows[0].remote_id.as_deref(),
        Some(format!("ERP-{id}").as_str())
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn an_orders_later_events_reach_magento_observers_through_the_bridge_in_order() {
    let env = TestEnv::new(
        &["erp"],
        &[
            (
                "ORDER_SYNC__CONSUMERS__ERP__EVENTS",
                "placed,invoiced,shipped,status_changed",
            ),
            ("ORDER_SYNC__CAPTURE__LIFECYCLE__POLL_INTERVAL", "50ms"),
            ("ORDER_SYNC__RELAY__FOLLOW_ON_INTERVAL", "50ms"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    let shop = crate::lifecycle::Shop { magento1: false };
    // Invoiced (and new → processing), then shipped (processing → complete).
    env.wait_for_ledger(Duration::from_secs(20), "placed", |r| r.len() == 1)
        .await;
    shop.invoice(&env, id).await;
    env.wait_for_ledger(Duration::from_secs(20), "invoiced and changed", |r| {
        r.len() == 3
    })
    .await;
    shop.ship(&env, id).await;
    env.wait_for_ledger(Duration::from_secs(20), "shipped and changed", |r| {
        r.len() == 5
    })
    .await;
    phpunit(
        &env,
        "test_an_orders_later_events_are_dispatched_with_magentos_arguments",
        &serde_json::json!({ id.to_string(): "ok" }),
        5,
    )
    .await;
    env.wait_for_ledger(Duration::from_secs(20), "all synced", |r| {
        r.iter().all(|d| d.state == State::Synced)
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[test]
fn the_bridge_refuses_a_broker_url_it_cannot_use_at_start_naming_the_key() {
    let out = std::process::Command::new("phpunit")
        .current_dir(BRIDGE)
        .args(["--do-not-cache-result", "--filter", "SettingsTest"])
        .output()
        .expect("phpunit runs (apt-get install phpunit; deploy/test-tools.sh does)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("OK (4 tests"), "{text}");
}

/// Every PHP file the project ships, and every module XML file.
fn files(ext: &str) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, ext: &str, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() && !path.ends_with("vendor") {
                walk(&path, ext, out);
            } else if path.extension().is_some_and(|e| e == ext) {
                out.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["integrations", "deploy/consumers", "docs/webhooks"] {
        walk(&root.join(dir), ext, &mut out);
    }
    out
}

#[test]
fn every_php_file_and_module_xml_the_project_ships_parses() {
    let php = files("php");
    assert!(php.len() >= 10, "found only {php:?}");
    for file in php {
        let out = std::process::Command::new("php")
            .arg("-l")
            .arg(&file)
            .output()
            .expect("php runs (apt-get install php-cli)");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    for file in files("xml") {
        let out = std::process::Command::new("php")
            .args([
                "-r",
                "exit(simplexml_load_file($argv[1]) === false ? 1 : 0);",
            ])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} is not well-formed XML",
            file.display()
        );
    }
}

#[tokio::test]
async fn the_magento_modules_name_only_classes_layouts_routes_and_acl_resources_that_exist() {
    run_phpunit("ModulesTest", &[], 2).await;
}
