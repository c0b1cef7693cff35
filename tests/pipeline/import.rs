//! Moving from the original OrderSyncQueRunner module: its queue table, in
//! both variants found in the wild, becomes ledger rows; run twice, nothing
//! changes; after cutover, new orders are captured exactly once.

use std::time::Duration;

use mysql_async::prelude::*;
use order_sync::ledger::State;

use crate::support::{body, next_within, TestEnv};

/// A Magento 1.9 order (tables prefixed `magev1_`), as checkout writes it.
async fn m1_order(conn: &mut mysql_async::Conn, n: u32) -> u32 {
    conn.exec_drop(
        "INSERT INTO magev1_sales_flat_order (increment_id, store_id, state, status, customer_email, \
         base_currency_code, order_currency_code, grand_total, base_grand_total, total_item_count, \
         created_at, updated_at) VALUES (?, 1, 'processing', 'processing', 'roni@example.com', 'USD', \
         'USD', '10.0000', '10.0000', 1, UTC_TIMESTAMP(), UTC_TIMESTAMP())",
        (format!("1000000{n:02}"),),
    )
    .await
    .unwrap();
    conn.last_insert_id().unwrap() as u32
}

/// `order-sync import-seed-queue --consumers erp` (and `extra`): what it printed.
fn import(env: &TestEnv, extra: &[&str]) -> String {
    let mut args = vec!["import-seed-queue", "--consumers", "erp"];
    args.extend_from_slice(extra);
    let out = env.order_sync(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The original module's table: the first release's (INT increment_id, no
/// is_new_order) or the later one; neither has a unique key.
fn que_table(early: bool) -> &'static str {
    if early {
        "CREATE TABLE magev1_ordersyncquerunner_que (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         increment_id INT UNSIGNED NULL, entity_id INT UNSIGNED NULL, created_at DATETIME NULL, \
         synced_at DATETIME NULL)"
    } else {
        "CREATE TABLE magev1_ordersyncquerunner_que (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         increment_id VARCHAR(50) NULL, entity_id INT UNSIGNED NULL, created_at DATETIME NULL, \
         synced_at DATETIME NULL, is_new_order INT(11) NOT NULL DEFAULT 1)"
    }
}

#[tokio::test]
async fn the_original_modules_queue_table_becomes_the_ledger_in_both_variants() {
    for early in [true, false] {
        import_one_variant(early).await;
    }
}

async fn import_one_variant(early: bool) {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__MAGENTO__VERSION", "1"),
            ("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "magev1_"),
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
        ],
    )
    .await;
    let mut conn = env.magento_conn().await;
    let mut ids = Vec::new();
    for n in 1..=6 {
        ids.push(m1_order(&mut conn, n).await);
    }
    // Order 6 was deleted from Magento since the module queued it.
    conn.exec_drop(
        "DELETE FROM magev1_sales_flat_order WHERE entity_id = ?",
        (ids[5],),
    )
    .await
    .unwrap();
    conn.query_drop(que_table(early)).await.unwrap();
    let synced_at = "2026-11-01 10:00:00";
    let row = |entity: Option<u32>, inc: Option<&str>, synced: bool, new: i32| {
        let inc = inc.map(|i| format!("'{i}'")).unwrap_or("NULL".into());
        let entity = entity.map(|e| e.to_string()).unwrap_or("NULL".into());
        let synced = if synced {
            format!("'{synced_at}'")
        } else {
            "NULL".into()
        };
        if early {
            format!("({inc}, {entity}, '2026-10-31 09:00:00', {synced})")
        } else {
            format!("({inc}, {entity}, '2026-10-31 09:00:00', {synced}, {new})")
        }
    };
    let inc = |i: usize| format!("1000000{:02}", i + 1);
    let values = [
        row(Some(ids[0]), Some(&inc(0)), true, 1),  // synced
        row(Some(ids[1]), Some(&inc(1)), false, 1), // pending ...
        row(Some(ids[1]), Some(&inc(1)), false, 1), // ... twice (no unique key)
        row(Some(ids[2]), Some(&inc(2)), false, 1), // pending, then
        row(Some(ids[2]), Some(&inc(2)), true, 1),  // synced by a later row
        row(None, Some(&inc(3)), false, 1),         // named by its number only
        row(Some(ids[4]), Some(&inc(4)), false, 0), // the ERP took it over SOAP
        row(Some(ids[5]), Some(&inc(5)), true, 1),  // gone from Magento
    ];
    let columns = if early {
        "(increment_id, entity_id, created_at, synced_at)"
    } else {
        "(increment_id, entity_id, created_at, synced_at, is_new_order)"
    };
    conn.query_drop(format!(
        "INSERT INTO magev1_ordersyncquerunner_que {columns} VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();

    // A dry run says what it would do and changes nothing.
    let text = import(&env, &["--dry-run"]);
    assert!(text.contains("would take"), "{text}");
    assert!(
        text.contains(&ids[5].to_string()),
        "names the missing order: {text}"
    );
    let ledger = env.parts().deps.ledger;
    assert!(
        ledger.deliveries().await.unwrap().is_empty(),
        "a dry run wrote"
    );

    let text = import(&env, &[]);
    assert!(
        text.contains("1 duplicate row(s) merged") || text.contains("2 duplicate row(s) merged"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "skipped 1 order(s) no longer in Magento: entity_id {}",
            ids[5]
        )),
        "{text}"
    );
    let rows = ledger.deliveries().await.unwrap();
    let state = |id: u32| {
        rows.iter().find(|r| r.entity_id == id).map(|r| {
            (
                r.state,
                r.synced_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
            )
        })
    };
    assert_eq!(
        rows.len(),
        5,
        "one erp row per order still in Magento: {rows:#?}"
    );
    assert!(
        rows.iter().all(|r| r.consumer == "erp"),
        "only the named consumer"
    );
    assert_eq!(state(ids[0]), Some((State::Synced, Some(synced_at.into()))));
    assert_eq!(state(ids[1]).map(|s| s.0), Some(State::Pending));
    assert_eq!(state(ids[2]), Some((State::Synced, Some(synced_at.into()))));
    assert_eq!(state(ids[3]).map(|s| s.0), Some(State::Pending));
    if early {
        assert_eq!(state(ids[4]).map(|s| s.0), Some(State::Pending));
    } else {
        assert_eq!(
            state(ids[4]).map(|s| s.0),
            Some(State::Synced),
            "is_new_order = 0"
        );
    }
    assert_eq!(state(ids[5]), None);
    // The message is the order as capture would send it.
    let (view, message) = ledger.order(ids[1]).await.unwrap().unwrap();
    assert_eq!(view.increment_id.as_deref(), Some(inc(1).as_str()));
    let order: serde_json::Value = serde_json::from_str(&message).unwrap();
    assert_eq!(order["grand_total"], "10.0000");

    crate::support::assert_counts_exact(&ledger).await;

    // Twice: the same ledger, the same capture position (not even its
    // `updated_at`), and a report that says nothing changed.
    let position_row = || async {
        let mut c = env.parts().deps.ledger.pool().get_conn().await.unwrap();
        let row: Option<(u32, String)> = c
            .query_first(
                "SELECT last_entity_id, CAST(updated_at AS CHAR) FROM order_sync_capture_position",
            )
            .await
            .unwrap();
        row
    };
    let before = position_row().await;
    let again = import(&env, &[]);
    assert!(again.contains("0 ledger row(s) created"), "{again}");
    assert!(
        again.contains("already in the ledger and left unchanged")
            && again.contains("position is already at or past")
            && !again.contains(" took ")
            && !again.contains("goes on after"),
        "{again}"
    );
    assert_eq!(position_row().await, before, "the position was rewritten");
    crate::support::assert_counts_exact(&ledger).await;
    assert_eq!(
        ledger.deliveries().await.unwrap(),
        rows,
        "a second import changed the ledger"
    );

    // Cutover: order-sync starts; the pending ones go out, a new order is
    // captured once, and nothing imported is captured again.
    let new = m1_order(&mut conn, 7).await;
    let mut erp = env.consume(&env.topology().consumer_queue("erp")).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let mut got = Vec::new();
    while let Some(d) = next_within(&mut erp, Duration::from_secs(5)).await {
        got.push(body(&d)["order"]["entity_id"].as_u64().unwrap() as u32);
        crate::support::ack_delivery(&d).await;
    }
    got.sort_unstable();
    let mut expected = vec![ids[1], ids[3], new];
    if early {
        expected.push(ids[4]);
    }
    expected.sort_unstable();
    assert_eq!(got, expected, "each pending order and the new one, once");
    let rows = env
        .wait_for_ledger(Duration::from_secs(10), "the new order for both", |r| {
            r.iter().filter(|d| d.entity_id == new).count() == 2
        })
        .await;
    assert_eq!(
        rows.iter().filter(|d| d.consumer == "wms").count(),
        1,
        "wms gets new orders only"
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    drop(conn);
    env.cleanup().await;
}

/// `import-seed-queue` with `extra`, expected to fail: (exit code, stderr).
fn import_refused(env: &TestEnv, extra: &[&str]) -> (i32, String) {
    let mut args = vec!["import-seed-queue", "--consumers", "erp"];
    args.extend_from_slice(extra);
    let out = env.order_sync(&args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn an_import_after_the_modules_cleanup_cron_is_refused_with_the_counts_until_told_where_to_go_on(
) {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__MAGENTO__VERSION", "1"),
            ("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "magev1_"),
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
        ],
    )
    .await;
    let mut conn = env.magento_conn().await;
    let mut ids = Vec::new();
    for n in 1..=6 {
        ids.push(m1_order(&mut conn, n).await);
    }
    // Orders 1 to 5 were placed two days ago; the module synced 2 to 5 and
    // its cleanup cron deleted their rows, leaving order 1 pending. Order 6
    // came in after the module was switched off.
    conn.exec_drop(
        "UPDATE magev1_sales_flat_order SET created_at = UTC_TIMESTAMP() - INTERVAL 2 DAY \
         WHERE entity_id <= ?",
        (ids[4],),
    )
    .await
    .unwrap();
    conn.query_drop(que_table(false)).await.unwrap();
    conn.exec_drop(
        "INSERT INTO magev1_ordersyncquerunner_que (increment_id, entity_id, created_at) \
         VALUES (?, ?, UTC_TIMESTAMP() - INTERVAL 2 DAY)",
        (format!("1000000{:02}", 1), ids[0]),
    )
    .await
    .unwrap();

    let (code, stderr) = import_refused(&env, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "5 order(s) in Magento above entity_id {} are not in `magev1_ordersyncquerunner_que` (entity_id {} to {}",
            ids[0], ids[1], ids[5]
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--from <entity_id>"), "{stderr}");
    let ledger = env.parts().deps.ledger;
    assert!(
        ledger.deliveries().await.unwrap().is_empty(),
        "a refused import wrote"
    );
    assert!(ledger.capture_position(&env.id).await.unwrap().is_none());

    // A dry run says what each choice would send.
    let text = import(&env, &["--dry-run"]);
    assert!(
        text.contains("capture would send 5 order(s) as new"),
        "{text}"
    );
    let text = import(&env, &["--dry-run", "--from", &ids[5].to_string()]);
    assert!(
        text.contains(&format!(
            "capture would send 1 order(s) as new to every consumer: entity_id {} to {}",
            ids[5], ids[5]
        )),
        "{text}"
    );

    let text = import(&env, &["--from", &ids[5].to_string()]);
    assert!(text.contains("capture sends 1 order(s) as new"), "{text}");
    let position = ledger.capture_position(&env.id).await.unwrap().unwrap();
    assert_eq!(position.last_entity_id, ids[4]);
    let rows = ledger.deliveries().await.unwrap();
    assert_eq!(rows.len(), 1, "order 1, pending: {rows:#?}");
    assert_eq!((rows[0].entity_id, rows[0].state), (ids[0], State::Pending));
    drop(conn);
    env.cleanup().await;
}

#[tokio::test]
async fn a_queue_table_row_of_unexpected_type_is_refused_naming_its_row_column_and_value() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__MAGENTO__VERSION", "1"),
            ("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "magev1_"),
        ],
    )
    .await;
    let mut conn = env.magento_conn().await;
    // A hand-made copy of the table, entity_id as text, one value no id.
    conn.query_drop(
        "CREATE TABLE magev1_ordersyncquerunner_que (id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
         increment_id VARCHAR(50) NULL, entity_id VARCHAR(20) NULL, created_at DATETIME NULL, \
         synced_at DATETIME NULL)",
    )
    .await
    .unwrap();
    conn.query_drop(
        "INSERT INTO magev1_ordersyncquerunner_que (id, increment_id, entity_id) \
         VALUES (1, '100000001', '1'), (7, '100000007', 'x7')",
    )
    .await
    .unwrap();
    let (code, stderr) = import_refused(&env, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("row id 7") && stderr.contains("`entity_id`") && stderr.contains("'x7'"),
        "{stderr}"
    );
    assert!(
        env.parts()
            .deps
            .ledger
            .deliveries()
            .await
            .unwrap()
            .is_empty(),
        "nothing written"
    );
    drop(conn);
    env.cleanup().await;
}
