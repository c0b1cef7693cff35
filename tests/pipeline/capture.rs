//! Capture: reading Magento without missing or repeating orders.

use std::time::Duration;

use mysql_async::prelude::*;

use crate::support::{body, insert_order, TestEnv};

/// Entity ids of the capture messages waiting for the relay.
async fn captured_ids(env: &TestEnv) -> Vec<u32> {
    let queue = env.topology().relay_queue();
    let mut ids = Vec::new();
    while let Some(d) = env.get(&queue, Duration::from_millis(300)).await {
        ids.push(body(&d)["order"]["entity_id"].as_u64().unwrap() as u32);
        crate::support::ack_delivery(&d).await;
    }
    ids
}

#[tokio::test]
async fn an_order_whose_checkout_commits_after_a_later_order_is_still_captured() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut capture = env.parts().capture();

    // A slow checkout takes entity_id 1 and holds its transaction open...
    let mut slow = env.magento_conn().await;
    let mut slow_tx = slow
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .unwrap();
    let slow_id = insert_order(&mut slow_tx).await;
    // ...while a fast one takes id 2, commits, and is captured.
    let fast_id = env.place_order().await;
    assert!(fast_id > slow_id);
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 1);
    assert_eq!(outcome.position, fast_id);
    assert_eq!(outcome.open_gaps, 1, "the uncommitted id is remembered");
    assert_eq!(captured_ids(&env).await, vec![fast_id]);

    // Nothing new while the slow checkout is still open.
    assert_eq!(capture.step(chrono::Utc::now()).await.unwrap().published, 0);

    slow_tx.commit().await.unwrap();
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 1);
    assert_eq!(outcome.open_gaps, 0);
    assert_eq!(captured_ids(&env).await, vec![slow_id]);
    drop(slow);
    env.cleanup().await;
}

#[tokio::test]
async fn a_batch_read_ahead_in_a_backlog_still_catches_the_checkout_that_commits_after_it() {
    let env = TestEnv::new(&["erp"], &[("ORDER_SYNC__CAPTURE__BATCH_SIZE", "2")]).await;
    let mut capture = env.parts().capture();
    let first = env.place_orders(2).await;
    let mut slow = env.magento_conn().await;
    let mut slow_tx = slow
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .unwrap();
    let slow_id = insert_order(&mut slow_tx).await;
    let later = env.place_orders(2).await;

    // A full batch: the next one is read while its confirms are awaited,
    // with the slow checkout's id not visible yet.
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!((outcome.published, outcome.open_gaps), (2, 0));
    slow_tx.commit().await.unwrap();
    // The batch read ahead is what this poll publishes: the slow id, committed
    // since, is awaited as a gap, not lost.
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 2);
    assert_eq!(
        outcome.awaited,
        vec![slow_id],
        "read ahead before it committed"
    );
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!((outcome.published, outcome.open_gaps), (1, 0));
    let mut expected = first;
    expected.extend(&later);
    expected.push(slow_id);
    assert_eq!(captured_ids(&env).await, expected, "each once");
    drop(slow);
    env.cleanup().await;
}

#[tokio::test]
async fn a_rolled_back_checkout_is_given_up_after_the_gap_timeout() {
    let env = TestEnv::new(&["erp"], &[("ORDER_SYNC__CAPTURE__GAP_TIMEOUT", "10m")]).await;
    let mut capture = env.parts().capture();
    let mut conn = env.magento_conn().await;
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .unwrap();
    insert_order(&mut tx).await;
    tx.rollback().await.unwrap();
    let id = env.place_order().await;

    let now = chrono::Utc::now();
    assert_eq!(capture.step(now).await.unwrap().open_gaps, 1);
    let later = capture
        .step(now + chrono::Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(later.open_gaps, 1, "still waiting within the timeout");
    let after = capture
        .step(now + chrono::Duration::minutes(11))
        .await
        .unwrap();
    assert_eq!(after.open_gaps, 0);
    assert_eq!(after.abandoned, vec![id - 1]);
    assert_eq!(captured_ids(&env).await, vec![id]);
    env.cleanup().await;
}

#[tokio::test]
async fn capture_resumes_from_its_saved_position_after_a_restart() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let first = env.place_orders(3).await;
    assert_eq!(
        env.parts()
            .capture()
            .step(chrono::Utc::now())
            .await
            .unwrap()
            .published,
        3
    );

    let more = env.place_orders(2).await;
    // A new Capture is a restarted process: it reads its position from the ledger.
    let mut restarted = env.parts().capture();
    let outcome = restarted.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 2);
    let mut expected = first.clone();
    expected.extend(&more);
    assert_eq!(captured_ids(&env).await, expected);
    env.cleanup().await;
}

#[tokio::test]
async fn starting_from_latest_skips_orders_placed_before_the_first_start() {
    let env = TestEnv::new(&["erp"], &[("ORDER_SYNC__CAPTURE__START_FROM", "latest")]).await;
    env.place_orders(2).await;
    let mut capture = env.parts().capture();
    assert_eq!(capture.step(chrono::Utc::now()).await.unwrap().published, 0);
    let new = env.place_order().await;
    assert_eq!(capture.step(chrono::Utc::now()).await.unwrap().published, 1);
    assert_eq!(captured_ids(&env).await, vec![new]);
    env.cleanup().await;
}

#[tokio::test]
async fn a_republished_capture_never_puts_an_order_in_the_ledger_twice() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let parts = env.parts();
    let relay = parts.relay();
    let publisher = parts.deps.broker.publisher().await.unwrap();
    env.place_orders(2).await;
    parts.capture().step(chrono::Utc::now()).await.unwrap();

    // Simulate a crash after publishing but before the position was saved:
    // the same orders are published again.
    let mut conn = parts.deps.ledger.pool().get_conn().await.unwrap();
    conn.query_drop("DELETE FROM order_sync_capture_position")
        .await
        .unwrap();
    drop(conn);
    parts.capture().step(chrono::Utc::now()).await.unwrap();

    let queue = env.topology().relay_queue();
    let mut batch = Vec::new();
    while let Some(d) = env.get(&queue, Duration::from_millis(300)).await {
        batch.push(d);
    }
    assert_eq!(batch.len(), 4, "both orders arrived twice");
    let published = relay
        .handle_inbox(&publisher, batch, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(published, 4, "2 orders x 2 consumers, once each");
    let rows = parts.deps.ledger.deliveries().await.unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(parts.deps.ledger.order_count().await.unwrap(), 2);
    assert_eq!(
        env.queue_len(&env.topology().consumer_queue("erp")).await,
        2
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_capture_message_from_another_shop_is_dead_lettered_not_relayed() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let foreign = serde_json::json!({
        "schema_version": 1,
        "event": "sales_order_place_after",
        "source": "some-other-shop",
        "captured_at": "2026-11-28T10:00:00Z",
        "order": {"entity_id": 77, "increment_id": "000000077", "store_id": 1},
    });
    env.channel
        .basic_publish(
            env.topology().orders_exchange().as_str().into(),
            "sales_order_place_after".into(),
            lapin::options::BasicPublishOptions::default(),
            &serde_json::to_vec(&foreign).unwrap(),
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let dead = env
        .get(
            &env.topology().dead_queue("orders"),
            Duration::from_secs(20),
        )
        .await
        .expect("the foreign capture message is dead-lettered");
    assert_eq!(body(&dead)["source"], "some-other-shop");
    let ledger = env.parts().deps.ledger;
    assert_eq!(ledger.order_count().await.unwrap(), 0, "nothing recorded");
    // This shop's own orders still go through.
    env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "own order recorded", |r| {
        r.len() == 1
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

/// An order with this entity_id, committed (a checkout whose id was taken earlier).
async fn order_with_id(env: &TestEnv, id: u32) {
    env.magento_conn()
        .await
        .exec_drop(
            "INSERT INTO sales_order (entity_id, increment_id, store_id, state, status, grand_total) \
             VALUES (?, LPAD(?, 9, '0'), 1, 'new', 'pending', '10.0000')",
            (id, id),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_late_commit_among_1500_awaited_ids_is_read_in_chunks_and_captured() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut capture = env.parts().capture();
    order_with_id(&env, 1).await;
    order_with_id(&env, 1502).await;
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.open_gaps, 1500, "ids 2..=1501 awaited");
    // The late ones land in both chunks of 1,000.
    order_with_id(&env, 700).await;
    order_with_id(&env, 1400).await;
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.published, 2);
    assert_eq!(outcome.open_gaps, 1498);
    let mut ids = captured_ids(&env).await;
    ids.sort_unstable();
    assert_eq!(ids, vec![1, 700, 1400, 1502]);
    env.cleanup().await;
}

#[tokio::test]
async fn past_max_open_gaps_the_oldest_awaited_ids_are_given_up_and_counted() {
    let env = TestEnv::new(&["erp"], &[("ORDER_SYNC__CAPTURE__MAX_OPEN_GAPS", "3")]).await;
    let parts = env.parts();
    let mut capture = parts.capture();
    order_with_id(&env, 1).await;
    order_with_id(&env, 4).await;
    assert_eq!(
        capture.step(chrono::Utc::now()).await.unwrap().awaited,
        vec![2, 3]
    );
    order_with_id(&env, 7).await;
    let outcome = capture.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(outcome.dropped, vec![2], "the lowest gives way");
    assert_eq!(outcome.awaited, vec![3, 5, 6]);
    assert_eq!(parts.deps.metrics.capture_gaps_dropped.get(), 1);
    assert_eq!(parts.deps.metrics.capture_open_gaps.get(), 3);
    // The ledger agrees: a new leader would await the same ids.
    let saved = parts
        .deps
        .ledger
        .capture_position(&env.id)
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<u32> = saved.gaps.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![3, 5, 6]);
    env.cleanup().await;
}
