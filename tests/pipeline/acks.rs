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
    let mut whole = 0;
    // One more than sent: the oversized ack's note.
    for _ in 0..hostile.len() + 1 {
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
        let headers = d.properties.headers().clone().unwrap_or_default();
        match headers.inner().get("x-order-sync-reason") {
            Some(AMQPValue::LongString(s)) => reasons.push(s.to_string()),
            // An oversized one is rejected whole by the broker (x-death); a
            // note with its reason (counted above) goes beside it.
            None if d.data.len() > 1024 * 1024 => {
                assert!(headers.inner().contains_key("x-death"), "{headers:?}");
                whole += 1;
            }
            other => panic!("dead-lettered ack without a reason: {other:?}"),
        }
        ack_delivery(&d).await;
    }
    assert_eq!(whole, 1, "the oversized ack kept whole");
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

/// (state, resyncs) of every row, to show nothing moved.
async fn rows(env: &TestEnv) -> Vec<(u32, String, State)> {
    env.parts()
        .deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.entity_id, r.consumer, r.state))
        .collect()
}

/// The reason of the next dead-lettered ack.
pub(crate) async fn next_reason(env: &TestEnv) -> String {
    let d = env
        .get(&env.topology().dead_queue("acks"), Duration::from_secs(20))
        .await
        .expect("an ack dead-lettered");
    ack_delivery(&d).await;
    match d
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-order-sync-reason").cloned())
    {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("no reason: {other:?}"),
    }
}

#[tokio::test]
async fn no_sync_service_can_settle_another_ones_orders_over_amqp() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "published to both", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.state == State::Published)
    })
    .await;
    let before = rows(&env).await;
    let wms_message_id = format!("{}:{id}:wms", env.id);
    // erp's user, with erp's routing key, names wms: the copy-paste mistake.
    for (ack, reason) in [
        (
            json!({"consumer": "wms", "entity_id": id, "status": "synced"}),
            "routing key `erp`",
        ),
        // Guessing the message id changes nothing either.
        (
            json!({"consumer": "wms", "message_id": wms_message_id, "status": "synced"}),
            "routing key `erp`",
        ),
    ] {
        env.publish_ack_as(ack.to_string().as_bytes(), "erp", None)
            .await;
        let got = next_reason(&env).await;
        assert!(got.contains(reason), "{got}");
    }
    // Under its own key, an ack naming two orders, or with a field the
    // contract does not have, or a wrong message id, is refused too; the
    // reason never tells the right message id.
    for (ack, reason) in [
        (
            json!({"consumer": "erp", "entity_id": id, "increment_id": "000000999", "status": "synced"}),
            "names two different orders",
        ),
        (
            json!({"consumer": "erp", "entity_id": id, "status": "synced", "order": "all"}),
            "unknown field",
        ),
        (
            json!({"consumer": "erp", "entity_id": id, "message_id": "guess", "status": "synced"}),
            "does not match the order",
        ),
    ] {
        env.publish_ack_as(ack.to_string().as_bytes(), "erp", None)
            .await;
        let got = next_reason(&env).await;
        assert!(got.contains(reason), "{got}");
        assert!(
            !got.contains(&format!(":{id}:erp")),
            "the reason reveals the message id: {got}"
        );
    }
    assert_eq!(rows(&env).await, before, "a refused ack changed a row");
    // wms's own ack, under its own key, still works.
    env.publish_ack_as(
        json!({"consumer": "wms", "entity_id": id, "status": "synced"})
            .to_string()
            .as_bytes(),
        "wms",
        None,
    )
    .await;
    env.wait_for_ledger(Duration::from_secs(10), "wms synced", |rows| {
        rows.iter()
            .any(|r| r.consumer == "wms" && r.state == State::Synced)
            && rows
                .iter()
                .any(|r| r.consumer == "erp" && r.state == State::Published)
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn with_a_broker_user_set_only_acks_that_user_published_count() {
    // RabbitMQ checks `user_id` against the connection's login; the tests log
    // in as the broker's test user, so that is the user erp is bound to.
    let user = url::Url::parse(&crate::support::amqp_url())
        .unwrap()
        .username()
        .to_owned();
    let env = TestEnv::new(
        &["erp"],
        &[("ORDER_SYNC__CONSUMERS__ERP__BROKER_USER", &user)],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "published", |rows| {
        rows.len() == 1 && rows[0].state == State::Published
    })
    .await;
    let ack = json!({"consumer": "erp", "entity_id": id, "status": "synced"}).to_string();
    env.publish_ack_as(ack.as_bytes(), "erp", None).await;
    let got = next_reason(&env).await;
    assert!(got.contains("not published by its broker user"), "{got}");
    assert_eq!(rows(&env).await[0].2, State::Published);
    env.publish_ack_as(ack.as_bytes(), "erp", Some(&user)).await;
    env.wait_for_ledger(Duration::from_secs(10), "synced", |rows| {
        rows[0].state == State::Synced
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

/// A `VmRSS`/`VmHWM` figure of a process, in bytes.
fn memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn thirty_acks_of_eight_mib_keep_the_listener_within_its_byte_bound() {
    const PREFETCH: u64 = 4;
    const SIZE: usize = 8 * 1024 * 1024;
    let env = TestEnv::new(&["erp"], &[("ORDER_SYNC__ACKS__PREFETCH", "4")]).await;
    let child = env.spawn_run();
    let pid = child.id();
    // Running and idle: the listener has its channel.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = memory(pid, "VmRSS:");
    let huge = vec![b' '; SIZE];
    for _ in 0..30 {
        env.publish_ack_as(&huge, "erp", None).await;
    }
    let dead = env.topology().dead_queue("acks");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while env.queue_len(&dead).await < 60 {
        assert!(
            std::time::Instant::now() < deadline,
            "not all dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The stated bound: what the prefetch lets in (each body held once more
    // while its frames are joined), plus 32 MiB of slack. Before the byte
    // bound, all 30 were held at once (+240 MiB).
    let bound = 2 * PREFETCH * SIZE as u64 + 32 * 1024 * 1024;
    let peak = memory(pid, "VmHWM:");
    assert!(
        peak < before + bound,
        "peak RSS {} MiB, {} MiB before: more than the {} MiB bound",
        peak >> 20,
        before >> 20,
        bound >> 20
    );
    // Rejected unread, kept whole (the broker's x-death says where from),
    // each followed by a small note with the reason.
    let (mut acks, mut notes) = (0, 0);
    while let Some(d) = env.get(&dead, Duration::from_secs(2)).await {
        if d.data.len() == SIZE {
            acks += 1;
        } else {
            assert!(body(&d)["reason"]
                .as_str()
                .unwrap()
                .contains("larger than the limit"));
            notes += 1;
        }
        ack_delivery(&d).await;
    }
    assert_eq!((acks, notes), (30, 30));
    drop(child);
    env.cleanup().await;
}

#[tokio::test]
async fn a_batch_of_acks_leaves_the_ledger_as_the_same_acks_one_at_a_time_would() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(4).await;
    env.wait_for_ledger(Duration::from_secs(20), "every row published", |rows| {
        rows.len() == 8 && rows.iter().all(|r| r.state == State::Published)
    })
    .await;
    // The ledger alone from here: nothing else writes while the acks apply.
    shutdown.cancel();
    pipeline.await.unwrap();
    let ledger = &env.parts().deps.ledger;
    let rows = ledger.deliveries().await.unwrap();
    let mid = |id: u32, c: &str| {
        rows.iter()
            .find(|r| r.entity_id == id && r.consumer == c)
            .unwrap()
            .message_id
            .clone()
    };
    let inc = |id: u32| {
        let r = rows.iter().find(|r| r.entity_id == id).unwrap();
        (r.increment_id.clone().unwrap(), r.store_id.unwrap())
    };
    let [o1, o2, o3, o4] = [ids[0], ids[1], ids[2], ids[3]];
    // Every way an ack can name a row, and every way two acks of one batch
    // for one row interact.
    let acks = |c: &str| -> Vec<order_sync::message::Ack> {
        [
            json!({"consumer": c, "message_id": mid(o1, c), "status": "synced"}),
            json!({"consumer": c, "message_id": mid(o1, c), "status": "synced"}),
            json!({"consumer": c, "message_id": mid(o2, c), "status": "failed", "error": "ERP down"}),
            json!({"consumer": c, "message_id": mid(o2, c), "status": "synced", "remote_id": "R2"}),
            json!({"consumer": c, "entity_id": o3, "status": "failed"}),
            json!({"consumer": c, "entity_id": o3, "status": "failed", "error": "again",
                   "remote_url": "https://erp.example/3"}),
            json!({"consumer": c, "message_id": mid(o4, c), "entity_id": o1, "status": "synced"}),
            json!({"consumer": c, "message_id": "someone-else", "entity_id": o4, "status": "synced"}),
            json!({"consumer": c, "message_id": mid(o4, c), "status": "synced",
                   "remote_id": "R4", "remote_url": "https://erp.example/4"}),
            json!({"consumer": c, "message_id": mid(o4, c), "status": "failed"}),
            json!({"consumer": c, "entity_id": 999_999, "status": "synced"}),
            json!({"consumer": c, "increment_id": inc(o3).0, "store_id": inc(o3).1,
                   "status": "synced"}),
        ]
        .into_iter()
        .map(|j| serde_json::from_value(j).unwrap())
        .collect()
    };
    let policy = order_sync::retry::RetryPolicy::from_settings(&env.settings.relay);
    let now = chrono::Utc::now();
    let batch = acks("erp");
    let batched = ledger
        .apply_acks(&batch.iter().collect::<Vec<_>>(), now, &policy)
        .await
        .unwrap();
    let mut single = Vec::new();
    for ack in acks("wms") {
        single.push(ledger.apply_ack(&ack, now, &policy).await.unwrap());
    }
    assert_eq!(batched, single, "the same decisions, in the same order");
    let kinds: Vec<String> = batched
        .iter()
        .map(|r| match r {
            Ok(order_sync::ledger::AckOutcome::Synced { .. }) => "synced".into(),
            Ok(order_sync::ledger::AckOutcome::Failed { .. }) => "failed".into(),
            Err(e) => format!("{e:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "synced",
            "Duplicate",
            "failed",
            "synced",
            "failed",
            "failed",
            &format!("ConflictingIds({o4})"),
            "MessageIdMismatch { given: \"someone-else\" }",
            "synced",
            "Late(\"synced\")",
            "UnknownOrder",
            "synced",
        ]
    );

    let after = ledger.deliveries().await.unwrap();
    let of = |c: &str| -> Vec<_> {
        after
            .iter()
            .filter(|r| r.consumer == c)
            .map(|r| {
                (
                    r.entity_id,
                    r.state,
                    r.synced_at,
                    r.next_attempt_at,
                    r.last_error.clone(),
                    r.remote_id.clone(),
                    r.remote_url.clone(),
                )
            })
            .collect()
    };
    assert_eq!(of("erp"), of("wms"), "rows as one at a time leaves them");
    let erp = of("erp");
    let row = |id: u32| erp.iter().find(|r| r.0 == id).unwrap().clone();
    assert_eq!(row(o1).1, State::Synced);
    let r2 = row(o2);
    assert_eq!(
        (r2.1, r2.4.as_deref(), r2.5.as_deref()),
        (State::Synced, Some("ERP down"), Some("R2")),
        "synced after its failure in the same batch, the error and remote id kept"
    );
    let r3 = row(o3);
    assert_eq!(
        (r3.1, r3.4.as_deref(), r3.6.as_deref()),
        (State::Synced, Some("again"), Some("https://erp.example/3"))
    );
    let r4 = row(o4);
    assert_eq!(
        (r4.1, r4.5.as_deref(), r4.6.as_deref()),
        (State::Synced, Some("R4"), Some("https://erp.example/4"))
    );
    assert!(erp.iter().all(|r| r.2.is_some() && r.3.is_none()));
    env.cleanup().await;
}
