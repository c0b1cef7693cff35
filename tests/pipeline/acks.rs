//! The ack listener under hostile input: nothing crashes it, nothing but the
//! one named row ever changes, and everything rejected is kept with a reason.

use std::time::Duration;

use lapin::types::AMQPValue;
use order_sync::ledger::State;
use serde_json::json;

use crate::support::{ack_delivery, body, TestEnv};

#[tokio::test]
async fn malformed_and_hostile_acks_are_dead_lettered_and_leave_the_ledger_unchanged() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(2).await;
    let before = env
        .wait_for_ledger(Duration::from_secs(20), "both orders published", |rows| {
            rows.len() == 2 && rows.iter().all(|r| r.state == State::Published)
        })
        .await;
    let real = ids[0];

    let huge = vec![b'x'; 10 * 1024 * 1024];
    let hostile: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        b"\xff\xfe\xfd invalid utf-8".to_vec(),
        b"".to_vec(),
        b"null".to_vec(),
        br#"{"consumer": "erp", "entity_id": "1; DROP TABLE order_sync_deliveries", "status": "synced"}"#.to_vec(),
        br#"{"consumer": "erp", "entity_id": -1, "status": "synced"}"#.to_vec(),
        br#"{"consumer": "erp", "entity_id": 1, "status": "SYNCED!"}"#.to_vec(),
        br#"{"consumer": ["erp"], "entity_id": 1, "status": "synced"}"#.to_vec(),
        json!({"consumer": "crm", "entity_id": real, "status": "synced"}).to_string().into_bytes(),
        json!({"consumer": "erp' OR '1'='1", "entity_id": real, "status": "synced"}).to_string().into_bytes(),
        json!({"consumer": "erp", "entity_id": 999_999, "status": "synced"}).to_string().into_bytes(),
        json!({"consumer": "erp", "increment_id": "' OR 1=1 --", "store_id": 1, "status": "synced"}).to_string().into_bytes(),
        json!({"consumer": "erp", "entity_id": real, "message_id": "someone-else", "status": "synced"}).to_string().into_bytes(),
        json!({"consumer": "erp", "status": "synced"}).to_string().into_bytes(),
        huge,
    ];
    for b in &hostile {
        env.publish_ack(b).await;
    }

    // Every one lands in the dead-letter queue, each with the reason attached.
    let dead = env.topology().dead_queue("acks");
    let mut reasons = Vec::new();
    for _ in 0..hostile.len() {
        let d = env
            .get(&dead, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "only {} of {} acks dead-lettered: {reasons:?}",
                    reasons.len(),
                    hostile.len()
                )
            });
        match d
            .properties
            .headers()
            .as_ref()
            .unwrap()
            .inner()
            .get("x-order-sync-reason")
        {
            Some(AMQPValue::LongString(s)) => reasons.push(s.to_string()),
            other => panic!("dead-lettered ack without a reason: {other:?}"),
        }
        ack_delivery(&d).await;
    }
    for expected in [
        "not a valid ack",
        "not valid UTF-8",
        "unknown consumer",
        "does not hold",
        "does not match",
        "names no order",
        "larger than the limit",
    ] {
        assert!(
            reasons.iter().any(|r| r.contains(expected)),
            "no reason like {expected:?} in {reasons:?}"
        );
    }
    let after = env.parts().deps.ledger.deliveries().await.unwrap();
    assert_eq!(after, before, "hostile acks changed the ledger");

    // The listener is still healthy: a proper ack still works.
    env.ack_json(json!({"consumer": "erp", "entity_id": real, "status": "synced"}))
        .await;
    env.wait_for_ledger(Duration::from_secs(10), "the valid ack applied", |rows| {
        rows.iter()
            .any(|r| r.entity_id == real && r.state == State::Synced)
            && rows
                .iter()
                .any(|r| r.entity_id == ids[1] && r.state == State::Published)
    })
    .await;
    assert_eq!(env.queue_len(&env.topology().acks_queue()).await, 0);

    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_dead_lettered_ack_keeps_its_original_body() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let original =
        json!({"consumer": "erp", "entity_id": 4242, "status": "synced", "note": "ünïcödé"});
    env.ack_json(original.clone()).await;
    let d = env
        .get(&env.topology().dead_queue("acks"), Duration::from_secs(20))
        .await
        .expect("dead-lettered");
    assert_eq!(body(&d), original);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
