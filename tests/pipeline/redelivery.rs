//! Re-delivery: driven one step at a time with a moved clock, not by sleeping.

use std::time::Duration;

use chrono::Utc;
use order_sync::{
    broker::{BrokerError, Publisher},
    ledger::{AckOutcome, State},
    message::AckRejection,
    roles::acks::AckDisposition,
};
use serde_json::json;

use crate::support::{ack_delivery, attempt_header, body, TestEnv};

/// Captures every placed order and runs the relay's inbox step on it.
async fn capture_and_record(env: &TestEnv, relay: &order_sync::roles::relay::Relay, p: &Publisher) {
    env.parts()
        .capture()
        .step(chrono::Utc::now())
        .await
        .unwrap();
    let queue = env.topology().relay_queue();
    let mut batch = Vec::new();
    while let Some(d) = env.get(&queue, Duration::from_millis(200)).await {
        batch.push(d);
    }
    relay
        .handle_inbox(p, batch, chrono::Utc::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_copy_taken_without_an_answer_goes_again_only_once_its_queue_stayed_empty_for_unanswered_after_then_the_order_is_parked(
) {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "3"),
            ("ORDER_SYNC__RELAY__UNANSWERED_AFTER", "1h"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1m"),
        ],
    )
    .await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    let relay = parts.relay();
    let p = parts.deps.broker.publisher().await.unwrap();
    let id = env.place_order().await;
    capture_and_record(&env, &relay, &p).await;
    let queue = env.topology().consumer_queue("erp");

    let first = env
        .get(&queue, Duration::from_secs(5))
        .await
        .expect("first delivery");
    assert_eq!(attempt_header(&first), 1);
    let message_id = body(&first)["message_id"].as_str().unwrap().to_owned();
    ack_delivery(&first).await; // taken off the queue, but never answered

    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    let t1 = row.last_published_at.unwrap();
    assert_eq!(row.state, State::Published);
    assert_eq!(
        row.next_attempt_at.unwrap() - t1,
        chrono::Duration::hours(1),
        "a queued copy is not due again after the backoff but after relay.unanswered_after"
    );
    let minutes = |m| chrono::Duration::minutes(m);

    // Not due yet; this round is the first to see the queue empty.
    let r = relay.redeliver_due(&p, t1 + minutes(59)).await.unwrap();
    assert_eq!(r.published, 0);
    // Due, but the queue has been seen empty for two minutes only: the copy
    // could still be held by a consumer.
    let r = relay.redeliver_due(&p, t1 + minutes(61)).await.unwrap();
    assert_eq!(r.published, 0);
    // Empty for an hour: no copy can still be in it or held. One more goes.
    let t2 = t1 + minutes(120);
    assert_eq!(relay.redeliver_due(&p, t2).await.unwrap().published, 1);
    let second = env
        .get(&queue, Duration::from_secs(5))
        .await
        .expect("second delivery");
    assert_eq!(attempt_header(&second), 2);
    assert_eq!(body(&second)["attempt"], 2);
    assert_eq!(
        body(&second)["message_id"],
        message_id.as_str(),
        "same message_id on every delivery"
    );
    ack_delivery(&second).await;
    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!(
        row.next_attempt_at.unwrap() - t2,
        chrono::Duration::hours(1)
    );

    let t3 = t2 + minutes(61);
    assert_eq!(relay.redeliver_due(&p, t3).await.unwrap().published, 1);
    let third = env
        .get(&queue, Duration::from_secs(5))
        .await
        .expect("third delivery");
    assert_eq!(attempt_header(&third), 3);
    ack_delivery(&third).await;

    // Three deliveries used up: next time it is due, it is parked instead.
    let t4 = t3 + minutes(61);
    let round = relay.redeliver_due(&p, t4).await.unwrap();
    assert_eq!((round.published, round.parked), (0, 1));
    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!(row.state, State::Parked);
    assert_eq!(row.attempts, 3);
    assert!(row
        .last_error
        .unwrap()
        .contains("no synced ack after 3 deliveries"));
    // Parked stays parked, however much later.
    let r = relay
        .redeliver_due(&p, t4 + chrono::Duration::days(30))
        .await
        .unwrap();
    assert_eq!(r.claimed, 0);
    assert!(env.get(&queue, Duration::from_millis(200)).await.is_none());
    env.cleanup().await;
}

#[tokio::test]
async fn a_copy_still_in_the_queue_is_never_doubled_however_long_the_consumer_is_away_and_nothing_parks(
) {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "2"),
            ("ORDER_SYNC__RELAY__UNANSWERED_AFTER", "1m"),
        ],
    )
    .await;
    let parts = env.parts();
    let relay = parts.relay();
    let p = parts.deps.broker.publisher().await.unwrap();
    env.place_orders(3).await;
    capture_and_record(&env, &relay, &p).await;
    let queue = env.topology().consumer_queue("erp");
    // A weekend of rounds while the consumer is down.
    let mut t = Utc::now();
    for _ in 0..200 {
        t += chrono::Duration::minutes(20);
        let r = relay.redeliver_due(&p, t).await.unwrap();
        assert_eq!((r.claimed, r.parked), (0, 0), "nothing re-sent or parked");
    }
    assert_eq!(env.queue_len(&queue).await, 3, "one copy of each order");
    let rows = parts.deps.ledger.deliveries().await.unwrap();
    assert!(rows
        .iter()
        .all(|r| r.attempts == 1 && r.state == State::Published));
    env.cleanup().await;
}

#[tokio::test]
async fn a_failed_ack_is_retried_with_its_error_kept_and_a_later_synced_ack_wins() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    let relay = parts.relay();
    let listener = parts.ack_listener();
    let p = parts.deps.broker.publisher().await.unwrap();
    let id = env.place_order().await;
    capture_and_record(&env, &relay, &p).await;
    let erp = env.topology().consumer_queue("erp");
    let acks = env.topology().acks_queue();

    let d = env.get(&erp, Duration::from_secs(5)).await.unwrap();
    ack_delivery(&d).await;
    env.ack_json(json!({
        "message_id": body(&d)["message_id"], "consumer": "erp", "entity_id": id,
        "status": "failed", "error": "ERP said: customer group unknown"
    }))
    .await;
    let ack = env.get(&acks, Duration::from_secs(5)).await.unwrap();
    let done = listener.handle(&p, &ack, chrono::Utc::now()).await.unwrap();
    let AckDisposition::Applied(AckOutcome::Failed { retry_at, .. }) = done else {
        panic!("expected a failed outcome, got {done:?}");
    };
    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!(row.state, State::Failed);
    assert_eq!(
        row.last_error.as_deref(),
        Some("ERP said: customer group unknown")
    );
    // The other consumer is untouched by erp's ack.
    let wms = ledger.delivery(id, "wms").await.unwrap().unwrap();
    assert_eq!(wms.state, State::Published);

    // Retried when due, with the error still visible until it succeeds.
    let r = relay
        .redeliver_due(&p, retry_at + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(
        r.published, 1,
        "erp after its failure; wms's copy is still in its queue, so no second one"
    );
    let again = env.get(&erp, Duration::from_secs(5)).await.unwrap();
    assert_eq!(body(&again)["attempt"], 2);
    ack_delivery(&again).await;

    env.ack_json(json!({"consumer": "erp", "increment_id": format!("{id:09}"), "store_id": 1, "status": "synced"}))
        .await;
    let ack = env.get(&acks, Duration::from_secs(5)).await.unwrap();
    let done = listener.handle(&p, &ack, chrono::Utc::now()).await.unwrap();
    assert!(
        matches!(done, AckDisposition::Applied(AckOutcome::Synced { entity_id, .. }) if entity_id == id),
        "{done:?}"
    );
    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!(row.state, State::Synced);
    assert!(row.synced_at.is_some());

    // A second synced ack is a duplicate: dead-lettered, row unchanged.
    env.ack_json(json!({"consumer": "erp", "entity_id": id, "status": "synced"}))
        .await;
    let ack = env.get(&acks, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        listener.handle(&p, &ack, chrono::Utc::now()).await.unwrap(),
        AckDisposition::DeadLettered(AckRejection::Duplicate)
    );
    assert_eq!(ledger.delivery(id, "erp").await.unwrap().unwrap(), row);

    // Synced rows are never re-delivered.
    let r = relay
        .redeliver_due(&p, Utc::now() + chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(r.published, 0, "wms's first copy is still queued");
    assert!(env.get(&erp, Duration::from_millis(200)).await.is_none());
    env.cleanup().await;
}

#[tokio::test]
async fn a_message_returned_as_unroutable_is_a_failure_not_a_delivery() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    let relay = parts.relay();
    let p = parts.deps.broker.publisher().await.unwrap();
    // Someone deleted the consumer's queue: the broker has nowhere to route to.
    env.channel
        .queue_delete(
            env.topology().consumer_queue("erp").as_str().into(),
            Default::default(),
        )
        .await
        .unwrap();
    let id = env.place_order().await;
    capture_and_record(&env, &relay, &p).await;

    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!(row.state, State::Pending, "not marked published");
    assert_eq!(row.attempts, 0);
    assert!(
        row.last_error.as_deref().unwrap().contains("unroutable"),
        "{row:?}"
    );

    // Its claim is given back: due at once, not when the claim would run out.
    assert!(row.next_attempt_at.unwrap() <= Utc::now(), "{row:?}");

    // Once the topology is back, the row goes out on the very next round.
    parts.deps.broker.declare_topology().await.unwrap();
    let r = relay.redeliver_due(&p, Utc::now()).await.unwrap();
    assert_eq!(r.published, 1);
    let d = env
        .get(
            &env.topology().consumer_queue("erp"),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(body(&d)["attempt"], 1);
    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (State::Published, 1));
    env.cleanup().await;
}

#[tokio::test]
async fn the_publisher_reports_a_return_as_an_error() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let parts = env.parts();
    let p = parts.deps.broker.publisher().await.unwrap();
    let err = p
        .publish(order_sync::broker::Outgoing {
            exchange: env.topology().que_exchange(),
            routing_key: "nobody-listens".into(),
            body: b"{}".to_vec(),
            properties: Default::default(),
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::Returned { code: 312, .. }),
        "{err:?}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn redelivery_after_failed_acks_to_a_backed_up_consumer_waits_until_its_queue_drains() {
    let env = TestEnv::new(
        &["erp"],
        &[("ORDER_SYNC__RELAY__PAUSE_REDELIVERY_ABOVE", "5")],
    )
    .await;
    let parts = env.parts();
    let relay = parts.relay();
    let listener = parts.ack_listener();
    let p = parts.deps.broker.publisher().await.unwrap();
    env.place_orders(10).await;
    capture_and_record(&env, &relay, &p).await;
    let queue = env.topology().consumer_queue("erp");
    assert_eq!(
        env.queue_len(&queue).await,
        10,
        "first deliveries went out at once"
    );
    // Two orders fail; orders placed meanwhile fill the queue again.
    for _ in 0..2 {
        let d = env.get(&queue, Duration::from_secs(5)).await.unwrap();
        ack_delivery(&d).await;
        env.ack_json(json!({
            "message_id": body(&d)["message_id"], "consumer": "erp",
            "entity_id": body(&d)["order"]["entity_id"], "status": "failed", "error": "ERP down"
        }))
        .await;
        let ack = env
            .get(&env.topology().acks_queue(), Duration::from_secs(5))
            .await
            .unwrap();
        listener.handle(&p, &ack, Utc::now()).await.unwrap();
    }

    // Eight unread messages: more copies would only bury the consumer.
    let later = Utc::now() + chrono::Duration::minutes(5);
    let r = relay.redeliver_due(&p, later).await.unwrap();
    assert_eq!(r.claimed, 0);

    // The consumer catches up on six: the two failed orders go again, and
    // none of the two still queued is doubled.
    for _ in 0..6 {
        let d = env.get(&queue, Duration::from_secs(5)).await.unwrap();
        ack_delivery(&d).await;
    }
    let r = relay.redeliver_due(&p, later).await.unwrap();
    assert_eq!(r.published, 2);
    let rows = parts.deps.ledger.deliveries().await.unwrap();
    assert_eq!(rows.iter().filter(|r| r.attempts == 2).count(), 2);
    assert_eq!(rows.iter().filter(|r| r.attempts == 1).count(), 8);
    env.cleanup().await;
}

/// A policy on the broker for one test, removed when dropped (also on panic).
struct Policy(String);

/// Waits until the broker applies (or, with `applied = false`, no longer
/// applies) policy `name` to `queue`: policies take effect asynchronously, and
/// under load that can take seconds.
fn await_policy(queue: &str, name: &str, applied: bool) {
    for _ in 0..120 {
        let out = std::process::Command::new("rabbitmqctl")
            .args(["list_queues", "-q", "--no-table-headers", "name", "policy"])
            .output()
            .expect("rabbitmqctl runs");
        let listing = String::from_utf8_lossy(&out.stdout);
        let on = listing
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == [queue, name]);
        if on == applied {
            return;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("policy {name} on {queue}: still not applied = {applied} after 30 s");
}

impl Policy {
    fn set(name: &str, pattern: &str, definition: &str) -> Self {
        let out = std::process::Command::new("rabbitmqctl")
            .args([
                "set_policy",
                name,
                pattern,
                definition,
                "--apply-to",
                "queues",
                "--priority",
                "9",
            ])
            .output()
            .expect("rabbitmqctl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Policy(name.to_owned())
    }
}

impl Drop for Policy {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["clear_policy", &self.0])
            .output();
    }
}

#[tokio::test]
async fn a_nacked_delivery_is_a_failure_that_ends_the_session_and_goes_again_on_the_next_round() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    let relay = parts.relay();
    let p = parts.deps.broker.publisher().await.unwrap();
    // The consumer's queue refuses everything: the broker nacks each publish.
    let queue = env.topology().consumer_queue("erp");
    let full = Policy::set(
        &format!("{}-full", env.id),
        &format!("^{}$", queue.replace('.', "\\.")),
        r#"{"max-length": 0, "overflow": "reject-publish"}"#,
    );
    await_policy(&queue, &format!("{}-full", env.id), true);
    let id = env.place_order().await;
    env.parts()
        .capture()
        .step(chrono::Utc::now())
        .await
        .unwrap();
    let mut batch = Vec::new();
    while let Some(d) = env
        .get(&env.topology().relay_queue(), Duration::from_millis(500))
        .await
    {
        batch.push(d);
    }
    // A quorum queue takes one message over its limit, then refuses: fill it.
    env.channel
        .basic_publish(
            "".into(),
            queue.as_str().into(),
            Default::default(),
            b"filler",
            Default::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    let err = relay
        .handle_inbox(&p, batch, chrono::Utc::now())
        .await
        .expect_err("a nack ends the session, so the next one uses a fresh channel");
    assert!(err.to_string().contains("nacked"), "{err}");
    let row = ledger.delivery(id, "erp").await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempts),
        (State::Pending, 0),
        "not marked published"
    );
    assert!(
        row.last_error.as_deref().unwrap().contains("nacked"),
        "{row:?}"
    );
    assert!(
        row.next_attempt_at.unwrap() <= Utc::now(),
        "due again at once"
    );

    drop(full);
    await_policy(&queue, &format!("{}-full", env.id), false);
    let p = parts.deps.broker.publisher().await.unwrap();
    let r = relay.redeliver_due(&p, Utc::now()).await.unwrap();
    assert_eq!(r.published, 1);
    let filler = env.get(&queue, Duration::from_secs(5)).await.unwrap();
    assert_eq!(filler.data, b"filler");
    let d = env
        .get(&queue, Duration::from_secs(5))
        .await
        .expect("delivered once the queue takes it");
    assert_eq!(body(&d)["order"]["entity_id"].as_u64(), Some(id as u64));
    env.cleanup().await;
}
