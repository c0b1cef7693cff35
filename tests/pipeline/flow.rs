//! The happy path, end to end, with the roles running as they do in production.

use std::{collections::HashMap, time::Duration};

use order_sync::ledger::State;
use serde_json::json;

use crate::support::{ack_delivery, all_in_state, body, next_within, TestEnv};

#[tokio::test]
async fn every_order_reaches_every_consumer_once_and_acks_mark_it_synced() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(25).await;

    for consumer in ["erp", "wms"] {
        let queue = env.topology().consumer_queue(consumer);
        let mut stream = env.consume(&queue).await;
        let mut seen: HashMap<u32, u32> = HashMap::new();
        while seen.values().sum::<u32>() < ids.len() as u32 {
            let d = next_within(&mut stream, Duration::from_secs(20))
                .await
                .unwrap_or_else(|| {
                    panic!("{consumer} got only {} of {} orders", seen.len(), ids.len())
                });
            let msg = body(&d);
            assert_eq!(msg["event"], "sales_order_place_after_que");
            assert_eq!(msg["consumer"], consumer);
            assert_eq!(msg["attempt"], 1);
            let entity_id = msg["order"]["entity_id"].as_u64().unwrap() as u32;
            let message_id = format!("{}:{entity_id}:{consumer}", env.id);
            assert_eq!(msg["message_id"], message_id.as_str());
            assert_eq!(
                d.properties.message_id().as_ref().unwrap().as_str(),
                message_id
            );
            assert_eq!(
                d.properties.kind().as_ref().unwrap().as_str(),
                "sales_order_place_after_que"
            );
            assert_eq!(d.properties.delivery_mode(), &Some(2), "persistent");
            let headers = d.properties.headers().as_ref().unwrap();
            assert!(headers.inner().contains_key("attempt"));
            assert_eq!(
                msg["order"]["increment_id"].as_str().unwrap(),
                format!("{entity_id:09}")
            );
            // Exact decimals and the child rows travel with the order.
            assert_eq!(msg["order"]["grand_total"], "123.4500");
            assert_eq!(msg["order"]["items"].as_array().unwrap().len(), 2);
            assert_eq!(msg["order"]["billing_address"]["address_type"], "billing");
            assert_eq!(msg["order"]["payment"]["method"], "checkmo");
            *seen.entry(entity_id).or_default() += 1;
            ack_delivery(&d).await;
            env.ack_json(json!({
                "message_id": message_id, "consumer": consumer,
                "entity_id": entity_id, "status": "synced"
            }))
            .await;
        }
        let mut got: Vec<u32> = seen.keys().copied().collect();
        got.sort();
        assert_eq!(got, ids, "{consumer} received every order");
        assert!(
            seen.values().all(|n| *n == 1),
            "{consumer}: each order once"
        );
    }

    let rows = env
        .wait_for_ledger(Duration::from_secs(20), "all rows synced", |rows| {
            all_in_state(rows, ids.len() * 2, State::Synced)
        })
        .await;
    assert!(rows
        .iter()
        .all(|r| r.attempts == 1 && r.synced_at.is_some()));
    for consumer in ["erp", "wms"] {
        assert_eq!(
            env.queue_len(&env.topology().consumer_queue(consumer))
                .await,
            0
        );
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), pipeline)
        .await
        .expect("pipeline stops promptly on shutdown")
        .unwrap();
    env.cleanup().await;
}
