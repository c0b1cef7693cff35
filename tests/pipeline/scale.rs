//! A ledger that stays fast with history: counts kept exactly as rows come
//! and go, and operator reads served by indexes over the backlog only.

use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::json;

use crate::support::{assert_counts_exact, body, next_within, TestEnv};

#[tokio::test]
async fn synced_counts_follow_acks_resyncs_and_retention_exactly() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[("ORDER_SYNC__RETENTION__SYNCED_OLDER_THAN", "7d")],
    )
    .await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    let ids = env.place_orders(4).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    // Every delivery acked synced, but wms leaves the last order failed.
    for consumer in ["erp", "wms"] {
        let mut queue = env.consume(&env.topology().consumer_queue(consumer)).await;
        for _ in 0..ids.len() {
            let d = next_within(&mut queue, Duration::from_secs(10))
                .await
                .expect("a delivery");
            let id = body(&d)["order"]["entity_id"].as_u64().unwrap();
            let status = if consumer == "wms" && id == u64::from(ids[3]) {
                "failed"
            } else {
                "synced"
            };
            let message_id = d.properties.message_id().as_ref().unwrap().to_string();
            env.ack_json(json!({
                "message_id": message_id, "consumer": consumer, "entity_id": id,
                "status": status, "error": "ERP down"
            }))
            .await;
            crate::support::ack_delivery(&d).await;
        }
    }
    env.wait_for_ledger(Duration::from_secs(20), "7 synced, 1 failed", |r| {
        r.iter()
            .filter(|d| d.state == order_sync::ledger::State::Synced)
            .count()
            == 7
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    assert_counts_exact(ledger).await;

    // A re-send takes synced rows out of the count; a synced ack brings them back.
    let now = chrono::Utc::now();
    assert_eq!(
        ledger
            .resync(&ids[..1], None, None, &env.id, now)
            .await
            .unwrap(),
        2
    );
    assert_counts_exact(ledger).await;
    assert_eq!(
        ledger
            .resync(&ids[3..], Some("wms"), None, &env.id, now)
            .await
            .unwrap(),
        1,
        "a failed row re-sent changes no synced count"
    );
    assert_counts_exact(ledger).await;

    // Retention deletes orders synced long ago for every consumer.
    let mut conn = ledger.pool().get_conn().await.unwrap();
    conn.exec_drop(
        "UPDATE order_sync_deliveries SET synced_at = UTC_TIMESTAMP() - INTERVAL 8 DAY \
         WHERE entity_id IN (?, ?)",
        (ids[1], ids[2]),
    )
    .await
    .unwrap();
    conn.query_drop("UPDATE order_sync_orders SET captured_at = UTC_TIMESTAMP() - INTERVAL 9 DAY")
        .await
        .unwrap();
    drop(conn);
    assert_eq!(parts.retention().step(chrono::Utc::now()).await.unwrap(), 2);
    assert_counts_exact(ledger).await;
    // Left: order 0 re-sent to both; order 3 synced for erp, re-sent to wms.
    use order_sync::ledger::State::{Pending, Synced};
    assert_eq!(
        ledger.counts().await.unwrap(),
        vec![
            ("erp".to_owned(), Pending, 1),
            ("erp".to_owned(), Synced, 1),
            ("wms".to_owned(), Pending, 2)
        ]
    );
    env.cleanup().await;
}

#[tokio::test]
async fn every_operator_read_uses_an_index_and_none_scans_the_table() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    // History: 20,000 rows synced two days ago; backlog: 10 pending.
    let mut conn = ledger.pool().get_conn().await.unwrap();
    conn.query_drop(
        "INSERT INTO order_sync_orders (entity_id, captured_at, message) \
         SELECT seq, UTC_TIMESTAMP(), '{}' FROM seq_1_to_10010",
    )
    .await
    .unwrap();
    conn.query_drop(
        "INSERT INTO order_sync_deliveries (entity_id, consumer, message_id, state, captured_at, \
         next_attempt_at, synced_at, updated_at) \
         SELECT o.entity_id, c.name, CONCAT(o.entity_id, c.name), IF(o.entity_id > 10005, 'pending', 'synced'), \
         o.captured_at, o.captured_at, IF(o.entity_id > 10005, NULL, o.captured_at - INTERVAL 2 DAY), \
         o.captured_at \
         FROM order_sync_orders o JOIN (SELECT 'erp' AS name UNION ALL SELECT 'wms') c",
    )
    .await
    .unwrap();
    conn.query_drop("ANALYZE TABLE order_sync_deliveries")
        .await
        .unwrap();
    drop(conn);
    let plans = ledger.explain_operator_reads().await.unwrap();
    assert!(plans.len() >= 5, "{plans:#?}");
    for plan in &plans {
        if plan.table.as_deref() == Some("order_sync_synced_counts") {
            continue; // one row per consumer
        }
        assert_ne!(
            plan.access.as_deref(),
            Some("ALL"),
            "a full scan: {plan:#?}"
        );
        assert!(plan.key.is_some(), "no index: {plan:#?}");
        assert!(
            plan.rows.unwrap_or(u64::MAX) < 2_000,
            "examines about the history, not the backlog: {plan:#?}"
        );
    }
    env.cleanup().await;
}
