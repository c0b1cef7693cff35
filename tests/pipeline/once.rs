//! One live copy per (order, event, consumer): a slow, busy or absent
//! consumer gets each order once, with timings scaled down so the old
//! behaviour (a new copy after every backoff) would have sent many.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use order_sync::{broker::sync_consumer, ledger::State};
use order_sync_consumer::OrderMessage;
use tokio_util::sync::CancellationToken;

use crate::support::{ack_delivery, body, TestEnv};

/// A backoff far shorter than the consumer takes: every order would be due
/// again many times over while its first copy still waits in the queue.
const SHORT_BACKOFF: [(&str, &str); 5] = [
    ("ORDER_SYNC__RELAY__SCHEDULE", "100ms"),
    ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "200ms"),
    ("ORDER_SYNC__RELAY__BACKOFF__MULTIPLIER", "1"),
    ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "200ms"),
    ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "3"),
];

/// What a consumer was handed: (entity_id, attempt), in order.
type Handed = Arc<Mutex<Vec<(u64, u32)>>>;

/// Runs a consumer taking `each` per order until stopped; returns what it
/// was handed, as (entity_id, attempt).
fn slow_consumer(
    env: &TestEnv,
    each: Duration,
    stop: CancellationToken,
) -> (Handed, tokio::task::JoinHandle<()>) {
    let seen: Handed = Arc::default();
    let consumer = sync_consumer(&env.settings.broker, "erp");
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            consumer
                .run(
                    |msg: OrderMessage| {
                        let seen = seen.clone();
                        async move {
                            seen.lock()
                                .unwrap()
                                .push((msg.entity_id().unwrap(), msg.attempt));
                            tokio::time::sleep(each).await;
                            Ok::<(), String>(())
                        }
                    },
                    stop,
                )
                .await
        })
    };
    (seen, task)
}

/// Every order handed over exactly once, as its first attempt.
fn assert_each_once(seen: &[(u64, u32)], ids: &[u32]) {
    let mut copies: HashMap<u64, usize> = HashMap::new();
    for (id, attempt) in seen {
        *copies.entry(*id).or_default() += 1;
        assert_eq!(*attempt, 1, "order {id} came as attempt {attempt}");
    }
    let extra: usize = copies.values().map(|n| n - 1).sum();
    assert_eq!(extra, 0, "extra copies: {copies:?}");
    assert_eq!(copies.len(), ids.len(), "every order handed over");
}

#[tokio::test]
async fn a_slow_consumer_gets_each_order_once_however_short_the_backoff() {
    let mut settings = SHORT_BACKOFF.to_vec();
    settings.push(("ORDER_SYNC__RELAY__UNANSWERED_AFTER", "20s"));
    let env = TestEnv::new(&["erp"], &settings).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let stop = CancellationToken::new();
    let (seen, consumer) = slow_consumer(&env, Duration::from_millis(40), stop.clone());
    // Faster than the consumer: a backlog builds up in its queue.
    let mut ids = Vec::new();
    for _ in 0..120 {
        ids.push(env.place_order().await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    env.wait_for_ledger(Duration::from_secs(90), "every order synced", |rows| {
        rows.len() == ids.len() && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    let rows = env.parts().deps.ledger.deliveries().await.unwrap();
    assert!(rows.iter().all(|r| r.attempts == 1), "one delivery each");
    stop.cancel();
    consumer.await.unwrap();
    assert_each_once(&seen.lock().unwrap(), &ids);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_consumer_holding_a_delivery_for_three_backoffs_gets_no_second_copy() {
    let mut settings = SHORT_BACKOFF.to_vec();
    settings.push(("ORDER_SYNC__RELAY__UNANSWERED_AFTER", "10s"));
    let env = TestEnv::new(&["erp"], &settings).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    let queue = env.topology().consumer_queue("erp");
    let held = env
        .get(&queue, Duration::from_secs(10))
        .await
        .expect("the first copy");
    // Working on it, unacked, for three backoffs and more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(env.queue_len(&queue).await, 0, "no second copy queued");
    env.ack_json(serde_json::json!({
        "message_id": body(&held)["message_id"], "consumer": "erp", "entity_id": id,
        "status": "synced"
    }))
    .await;
    ack_delivery(&held).await;
    env.wait_for_ledger(Duration::from_secs(10), "the order synced", |rows| {
        rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    assert!(env.get(&queue, Duration::from_millis(500)).await.is_none());
    let row = env
        .parts()
        .deps
        .ledger
        .delivery(id, "erp")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.attempts, 1);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

/// The consumer is down for several times the whole backoff span (three
/// attempts of 200 ms), with `pause_redelivery_above` below and above what
/// waits for it; when it returns it gets each order once, and nothing parked.
async fn a_consumer_away_gets_each_order_once_on_return(pause_above: &str) {
    let mut settings = SHORT_BACKOFF.to_vec();
    settings.push(("ORDER_SYNC__RELAY__UNANSWERED_AFTER", "10s"));
    settings.push(("ORDER_SYNC__RELAY__PAUSE_REDELIVERY_ABOVE", pause_above));
    let env = TestEnv::new(&["erp"], &settings).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(10).await;
    env.wait_for_ledger(Duration::from_secs(20), "every order published", |rows| {
        rows.len() == 10 && rows.iter().all(|r| r.state == State::Published)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rows = env.parts().deps.ledger.deliveries().await.unwrap();
    assert!(
        rows.iter()
            .all(|r| r.state == State::Published && r.attempts == 1),
        "nothing re-sent or parked while away: {rows:?}"
    );
    let stop = CancellationToken::new();
    let (seen, consumer) = slow_consumer(&env, Duration::from_millis(20), stop.clone());
    env.wait_for_ledger(Duration::from_secs(30), "every order synced", |rows| {
        rows.len() == 10 && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    stop.cancel();
    consumer.await.unwrap();
    assert_each_once(&seen.lock().unwrap(), &ids);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_consumer_away_for_longer_than_every_backoff_gets_each_order_once_when_it_returns() {
    a_consumer_away_gets_each_order_once_on_return("1000").await;
}

#[tokio::test]
async fn a_consumer_away_with_more_queued_than_pause_redelivery_above_gets_each_order_once() {
    a_consumer_away_gets_each_order_once_on_return("3").await;
}

/// Rows one relay loop has in hand at most (`relay.batch_size` below).
const IN_HAND: usize = 20;

#[tokio::test]
async fn a_kill_9_of_order_sync_mid_run_repeats_at_most_what_it_had_in_hand() {
    let mut settings = SHORT_BACKOFF.to_vec();
    settings.extend([
        ("ORDER_SYNC__RELAY__UNANSWERED_AFTER", "60s"),
        ("ORDER_SYNC__RELAY__CLAIM_TIMEOUT", "2s"),
        ("ORDER_SYNC__RELAY__BATCH_SIZE", "20"),
    ]);
    let env = TestEnv::new(&["erp"], &settings).await;
    let mut run = env.spawn_run();
    let stop = CancellationToken::new();
    let (seen, consumer) = slow_consumer(&env, Duration::from_millis(100), stop.clone());
    // Five times as fast as the consumer: a backlog of unread copies builds up,
    // which the restarted process must not send again.
    let mut ids = Vec::new();
    let mut outstanding = 0;
    for n in 0..200 {
        ids.push(env.place_order().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
        if n == 150 {
            outstanding = ids.len() - seen.lock().unwrap().len();
            run.kill().unwrap(); // SIGKILL, mid-stream
            run.wait().unwrap();
            run = env.spawn_run();
        }
    }
    env.wait_for_ledger(Duration::from_secs(120), "every order synced", |rows| {
        rows.len() == ids.len() && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    stop.cancel();
    consumer.await.unwrap();
    let mut copies: HashMap<u64, usize> = HashMap::new();
    for (id, _) in seen.lock().unwrap().iter() {
        *copies.entry(*id).or_default() += 1;
    }
    assert_eq!(copies.len(), ids.len(), "every order handed over");
    let extra: usize = copies.values().map(|n| n - 1).sum();
    // README, "Delivery is at least once": a copy repeats only when the
    // process died between its publish and the record of its confirm, which
    // is what the inbox, the scheduler and the follow-on loop had in hand.
    eprintln!("kill -9 with {outstanding} orders not handed over yet: {extra} repeated");
    assert!(
        outstanding > 3 * IN_HAND,
        "only {outstanding} orders were still on their way at the kill: the test shows nothing"
    );
    assert!(
        extra <= 3 * IN_HAND,
        "{extra} repeats after one kill -9: more than the rows in hand"
    );
    let parked = env.parts().deps.ledger.deliveries().await.unwrap();
    assert!(parked.iter().all(|r| r.state == State::Synced));
    drop(run);
    env.cleanup().await;
}
