//! More than one order-sync at once: three processes on the same databases and
//! broker share the work, never double it, and survive losing the capture leader.

use std::{
    collections::HashMap,
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mysql_async::prelude::*;
use order_sync::ledger::State;
use serde_json::json;

use crate::support::{body, next_within, TestEnv};

/// (entity_id, consumer, attempt) → times received.
type Seen = Arc<Mutex<HashMap<(u64, String, u32), u32>>>;

/// A sync service that records every delivery and acks `synced` once the
/// delivery's attempt reaches `ack_from_attempt` (1 = at once).
fn consumer(
    env: &TestEnv,
    name: &'static str,
    ack_from_attempt: u32,
    seen: Seen,
) -> tokio::task::JoinHandle<()> {
    let queue = env.topology().consumer_queue(name);
    let acks = env.topology().acks_exchange();
    let url = crate::support::amqp_url();
    tokio::spawn(async move {
        let conn = lapin::Connection::connect(&url, Default::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let publ = conn.create_channel().await.unwrap();
        publ.confirm_select(Default::default()).await.unwrap();
        let mut stream = ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                Default::default(),
                Default::default(),
            )
            .await
            .unwrap();
        while let Some(d) = next_within(&mut stream, Duration::from_secs(300)).await {
            let msg = body(&d);
            let attempt = crate::support::attempt_header(&d);
            let id = msg["order"]["entity_id"].as_u64().unwrap();
            *seen
                .lock()
                .unwrap()
                .entry((id, name.to_string(), attempt))
                .or_default() += 1;
            {
                // Before its attempt, the service answers `failed`: the copy
                // is gone, and re-delivery rounds send the next one.
                let status = if attempt >= ack_from_attempt {
                    "synced"
                } else {
                    "failed"
                };
                let ack = json!({"message_id": msg["message_id"], "consumer": name, "entity_id": id, "status": status, "error": "busy"});
                publ.basic_publish(
                    acks.as_str().into(),
                    name.into(),
                    Default::default(),
                    &serde_json::to_vec(&ack).unwrap(),
                    Default::default(),
                )
                .await
                .unwrap()
                .await
                .unwrap();
            }
            crate::support::ack_delivery(&d).await;
        }
    })
}

async fn stream_orders(env: &TestEnv, n: usize) -> tokio::task::JoinHandle<()> {
    let magento = env.magento.clone();
    tokio::spawn(async move {
        for _ in 0..n {
            let mut conn = magento.get_conn().await.unwrap();
            let mut tx = conn.start_transaction(Default::default()).await.unwrap();
            crate::support::insert_order(&mut tx).await;
            tx.commit().await.unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// The pid of the instance holding capture, once one does.
async fn leader_pid(env: &TestEnv, not: Option<u32>, within: Duration) -> u32 {
    let ledger = env.parts().deps.ledger;
    let deadline = Instant::now() + within;
    loop {
        let mut conn = ledger.pool().get_conn().await.unwrap();
        let pids: Vec<u32> = conn
            .query("SELECT pid FROM order_sync_instances WHERE capture_leader = 1")
            .await
            .unwrap();
        if let Some(p) = pids.into_iter().find(|p| Some(*p) != not) {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no instance took over capture within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn stop(children: Vec<crate::support::Proc>) {
    for c in &children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
    }
    for mut c in children {
        let _ = c.wait();
    }
}

#[tokio::test]
async fn three_instances_deliver_every_order_once_per_attempt_and_share_redelivery() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__RELAY__SCHEDULE", "100ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "400ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__MULTIPLIER", "1"),
            ("ORDER_SYNC__RELAY__CLAIM_TIMEOUT", "10s"),
            ("ORDER_SYNC__LOG__FILTER", "warn"),
        ],
    )
    .await;
    let seen: Seen = Default::default();
    // erp acks at once; wms fails twice, synced on the third delivery, so re-delivery rounds
    // run on all three instances at the same time.
    let consumers = [
        consumer(&env, "erp", 1, seen.clone()),
        consumer(&env, "wms", 3, seen.clone()),
    ];
    let instances: Vec<_> = (0..3).map(|_| env.spawn_run()).collect();
    let total = 150;
    stream_orders(&env, total).await.await.unwrap();

    let rows = env
        .wait_for_ledger(
            Duration::from_secs(90),
            "every order synced for both consumers",
            |rows| rows.len() == total * 2 && rows.iter().all(|r| r.state == State::Synced),
        )
        .await;
    // Operators see all three, and which one captures.
    let out = env.order_sync(&["status"]).output().unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(status.matches("CAPTURING").count(), 1, "{status}");
    assert_eq!(status.matches("capture,relay,acks").count(), 3, "{status}");
    let wms = status.lines().find(|l| l.starts_with("wms")).unwrap();
    assert_eq!(
        wms.split_whitespace().last(),
        Some(total.to_string().as_str()),
        "{status}"
    );
    stop(instances);
    for c in consumers {
        c.abort();
    }
    let seen = seen.lock().unwrap().clone();
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "published twice in one attempt: {doubled:?}"
    );
    for r in &rows {
        let expected = if r.consumer == "erp" { 1 } else { 3 };
        assert_eq!(r.attempts, expected, "{r:?}");
    }
    assert_eq!(
        seen.len(),
        total * (1 + 3),
        "every (order, consumer, attempt) delivered"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn killing_the_capture_leader_hands_capture_to_another_instance_and_misses_nothing() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__CAPTURE__TAKEOVER_CHECK", "200ms"),
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            ("ORDER_SYNC__RELAY__CLAIM_TIMEOUT", "2s"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "5s"),
            ("ORDER_SYNC__LOG__FILTER", "warn"),
        ],
    )
    .await;
    let seen: Seen = Default::default();
    let consumer = consumer(&env, "erp", 1, seen.clone());
    let mut instances: Vec<_> = (0..3).map(|_| env.spawn_run()).collect();
    let total = 300;
    let placer = stream_orders(&env, total).await;

    let leader = leader_pid(&env, None, Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_millis(400)).await; // mid-stream
    let idx = instances
        .iter()
        .position(|c| c.id() == leader)
        .expect("leader is one of ours");
    let mut victim = instances.remove(idx);
    victim.kill().unwrap();
    victim.wait().unwrap();
    let killed_at = Instant::now();
    // A new leader shows in the heartbeat table within takeover_check plus a heartbeat.
    let next = leader_pid(&env, Some(leader), Duration::from_secs(10)).await;
    let takeover = killed_at.elapsed();
    assert_ne!(next, leader);

    placer.await.unwrap();
    let rows = env
        .wait_for_ledger(
            Duration::from_secs(90),
            "every order synced after the failover",
            |rows| rows.len() == total && rows.iter().all(|r| r.state == State::Synced),
        )
        .await;
    let mut ids: Vec<u32> = rows.iter().map(|r| r.entity_id).collect();
    ids.dedup();
    assert_eq!(ids.len(), total, "no order missed or doubled in the ledger");
    let duplicates: u32 = seen.lock().unwrap().values().map(|n| n - 1).sum();
    eprintln!("capture leader killed; takeover seen after {takeover:?}; {duplicates} duplicate deliveries");
    stop(instances);
    consumer.abort();
    env.cleanup().await;
}

#[tokio::test]
async fn a_ledger_at_an_older_schema_version_is_migrated_in_place() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let ledger = env.parts().deps.ledger;
    // Put the ledger back to version 1, with an order in it.
    let mut conn = ledger.pool().get_conn().await.unwrap();
    conn.query_drop("DROP TABLE order_sync_instances")
        .await
        .unwrap();
    conn.query_drop("DELETE FROM order_sync_migrations WHERE version > 1")
        .await
        .unwrap();
    drop(conn);
    env.place_order().await;
    env.parts()
        .capture()
        .step(chrono::Utc::now())
        .await
        .unwrap();
    assert!(
        ledger.check_version().await.is_err(),
        "version 1 is not current"
    );

    assert_eq!(
        ledger.migrate().await.unwrap(),
        order_sync::ledger::schema::latest()
    );
    ledger.check_version().await.unwrap();
    let mut conn = ledger.pool().get_conn().await.unwrap();
    let position: Option<u32> = conn
        .query_first("SELECT last_entity_id FROM order_sync_capture_position")
        .await
        .unwrap();
    assert_eq!(position, Some(1), "data kept across the migration");
    assert!(ledger
        .instances(chrono::Utc::now() - chrono::Duration::hours(1))
        .await
        .unwrap()
        .is_empty());
    env.cleanup().await;
}

#[tokio::test]
async fn when_the_first_broker_node_is_unreachable_the_next_one_is_used() {
    let env = TestEnv::new(
        &["erp"],
        &[
            // A node that is down (nothing listens on port 1), then the real one.
            (
                "ORDER_SYNC__BROKER__URL",
                "amqp://guest:guest@127.0.0.1:1/%2f",
            ),
            (
                "ORDER_SYNC__BROKER__FAILOVER_URLS",
                &crate::support::amqp_url(),
            ),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    let d = env
        .get(
            &env.topology().consumer_queue("erp"),
            Duration::from_secs(30),
        )
        .await
        .expect("delivered through the second node");
    assert_eq!(body(&d)["order"]["entity_id"], id);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
