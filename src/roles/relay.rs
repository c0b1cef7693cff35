//! Relay: `<prefix>.orders.relay` → ledger → `<prefix>.que.<consumer>`.
//!
//! Two loops share this role, each a [`Role`] of its own:
//! * the **inbox** records each captured order in the ledger (one row per
//!   consumer), acks the capture message only after that commit, then publishes
//!   the new rows at once;
//! * the **scheduler**, on `relay.schedule`, re-publishes rows that are due and
//!   not synced (no ack yet, or a `failed` ack), with backoff, and parks rows
//!   that used up `relay.max_attempts`.
//!
//! A row is marked published only after the broker confirmed the message. If
//! the process dies in between, the row's claim runs out and it goes again:
//! the consumer may see a message twice (same `message_id`), never zero times.

use chrono::{DateTime, Utc};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use order_sync_consumer::amqp::{next_batch, Next};
use tokio_util::sync::CancellationToken;

use super::{Deps, Role, RoleError};
use crate::{
    broker::{BrokerError, Outgoing, Publisher},
    config::{MessageFormat, MessageSettings, RelaySettings},
    ledger::{Carried, Claimed, NewOrder, RowKey, Unanswered},
    message::{self, cloud_event_attributes, CapturedOrder},
    metrics::{Metrics, Stage},
    retry::RetryPolicy,
};

/// What publishing a set of rows did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub published: usize,
    pub failed: usize,
    /// Parked at once: too large to publish.
    pub parked: usize,
}

/// What one re-delivery round did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RoundOutcome {
    pub claimed: usize,
    pub published: usize,
    pub failed: usize,
    pub parked: usize,
}

#[derive(Clone)]
pub struct Relay {
    deps: Deps,
    settings: RelaySettings,
    /// `message.format`, unless a consumer has its own.
    format: MessageFormat,
    /// Those with a queue, published to (the rest pull over HTTP).
    push: Vec<String>,
    policy: RetryPolicy,
    /// Since when each consumer's queue has been seen empty.
    watch: QueueWatch,
}

/// Ready messages in a queue (a passive declare: the queue is not changed).
async fn ready_in(publisher: &Publisher, queue: &str) -> Result<u32, RoleError> {
    Ok(publisher
        .channel()
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?
        .message_count())
}

/// When a consumer's queue may no longer hold, and the consumer no longer
/// hold, a copy published long ago: one live copy per order, event and
/// consumer.
///
/// A copy in a queue is either ready (counted by the queue), delivered and
/// held by a consumer (the broker gives it back to the queue if the consumer
/// dies, or holds it past RabbitMQ's `consumer_timeout`), acked (its answer
/// is on the acks queue or applied) or gone (taken without an answer, or
/// dead-lettered after the queue's delivery limit). So a row published more
/// than `relay.unanswered_after` ago, whose queue has been seen with no ready
/// message in every round for that long and whose acks queue is empty now,
/// has no live copy: only then does it get another one. The queue is sampled
/// once per round, so "seen empty since" starts at the first empty sample
/// of a run and a non-empty sample ends the run; a new process starts with
/// no run. Kept per process: each relay judges by what it saw itself.
#[derive(Clone, Default)]
pub struct QueueWatch {
    empty_since: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>>,
}

impl QueueWatch {
    /// Records one sample of `consumer`'s queue at `now` and says whether it
    /// has been empty for at least `span`.
    pub fn quiet(
        &self,
        consumer: &str,
        empty: bool,
        now: DateTime<Utc>,
        span: std::time::Duration,
    ) -> bool {
        let mut seen = self.empty_since.lock().unwrap_or_else(|e| e.into_inner());
        if !empty {
            seen.remove(consumer);
            return false;
        }
        let since = *seen.entry(consumer.to_owned()).or_insert(now);
        now.signed_duration_since(since)
            .to_std()
            .is_ok_and(|d| d >= span)
    }
}

impl Relay {
    pub fn new(deps: &Deps, settings: &RelaySettings, message: &MessageSettings) -> Self {
        Self {
            push: deps.consumers.push(),
            deps: deps.clone(),
            settings: settings.clone(),
            format: message.format,
            policy: RetryPolicy::from_settings(settings),
            watch: QueueWatch::default(),
        }
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Runs the inbox, the scheduler and (when a consumer takes later events
    /// or placements can be held) the follow-on loop until shutdown.
    pub async fn run(self, shutdown: CancellationToken, follow_on: bool) {
        let follow = async {
            if follow_on {
                FollowOn {
                    relay: self.clone(),
                    publisher: None,
                }
                .run(shutdown.clone())
                .await
            }
        };
        tokio::join!(
            Inbox {
                relay: self.clone(),
                publisher: None,
            }
            .run(shutdown.clone()),
            Scheduler {
                relay: self.clone(),
                publisher: None,
            }
            .run(shutdown.clone()),
            follow,
        );
    }

    /// Publishes rows never delivered yet that are due: an order's next
    /// event once the one before it is settled, a placement released from
    /// its hold. Paused consumers get nothing.
    pub async fn deliver_follow_ons(
        &self,
        publisher: &Publisher,
        now: DateTime<Utc>,
    ) -> Result<Delivered, RoleError> {
        let paused = self.deps.ledger.paused(&self.push).await?;
        let ready: Vec<String> = self
            .push
            .iter()
            .filter(|c| !paused.contains(*c))
            .cloned()
            .collect();
        if ready.is_empty() {
            return Ok(Delivered::default());
        }
        let round = self
            .deps
            .ledger
            .claim_first_deliveries(
                &ready,
                now,
                self.settings.batch_size,
                self.settings.claim_timeout,
            )
            .await?;
        self.deliver(publisher, &round.to_publish, now).await
    }

    /// Records a batch of capture messages, acks them, and publishes the new rows.
    /// Returns how many rows were published. The one-step form of the inbox
    /// loop, which overlaps the publishing of one batch with the recording
    /// of the next.
    pub async fn handle_inbox(
        &self,
        publisher: &Publisher,
        batch: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<usize, RoleError> {
        let send = self.record_inbox(batch, now).await?;
        Ok(self.deliver(publisher, &send, now).await?.published)
    }

    /// Records a batch of capture messages and acks them (after the commit).
    /// Returns the new rows this relay is to publish now; those of paused or
    /// pulling consumers are made due instead.
    pub async fn record_inbox(
        &self,
        batch: Vec<Delivery>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Claimed>, RoleError> {
        let mut orders = Vec::with_capacity(batch.len());
        let mut keep = Vec::with_capacity(batch.len());
        for d in batch {
            match parse_captured(&d.data, &self.deps.shop) {
                Ok(order) => {
                    orders.push(order);
                    keep.push(d);
                }
                Err(reason) => {
                    // Not ours or corrupt: dead-letter it for a person to look at;
                    // retrying cannot make it parse.
                    tracing::error!(reason = %reason, "Dead-lettering an unreadable capture message.");
                    d.reject(BasicRejectOptions { requeue: false }).await?;
                }
            }
        }
        let audience = self.deps.audience().await?;
        let started = std::time::Instant::now();
        let fresh = self
            .deps
            .ledger
            .record_orders(
                &orders,
                audience,
                &self.deps.shop,
                now,
                self.settings.claim_timeout,
            )
            .await?;
        self.deps.metrics.stage(Stage::InboxRecord, started);
        // One ack for the batch: the deliveries came in order on this channel
        // and every one before the last kept is kept or already rejected.
        if let Some(last) = keep.last() {
            last.ack(BasicAckOptions { multiple: true }).await?;
        }
        // Rows of paused or pulling consumers are not published here: they are
        // made due now instead, for the pull API or the first round after resume.
        let paused = self.deps.ledger.paused(&self.push).await?;
        let (send, hold): (Vec<Claimed>, Vec<Claimed>) = fresh
            .into_iter()
            .partition(|r| self.push.contains(&r.consumer) && !paused.contains(&r.consumer));
        self.deps
            .ledger
            .release(&hold.iter().collect::<Vec<_>>(), now)
            .await?;
        Ok(send)
    }

    /// Publishes claimed rows to their consumers' queues and records the result.
    pub async fn deliver(
        &self,
        publisher: &Publisher,
        rows: &[Claimed],
        now: DateTime<Utc>,
    ) -> Result<Delivered, RoleError> {
        if rows.is_empty() {
            return Ok(Delivered::default());
        }
        type Prepared<'a> = Vec<(&'a Claimed, Outgoing)>;
        let (rows, too_large): (Prepared, Prepared) = rows
            .iter()
            .map(|r| (r, self.outgoing(r)))
            .partition(|(_, m)| m.body.len() <= self.deps.broker.max_message_bytes());
        for (row, msg) in &too_large {
            let reason = format!(
                "message of {} bytes is larger than broker.max_message_bytes ({}); not sent",
                msg.body.len(),
                self.deps.broker.max_message_bytes()
            );
            delivery_span(row).in_scope(
                || tracing::error!(reason = %reason, "Parked an order too large to publish."),
            );
            self.deps
                .ledger
                .park(&[RowKey::from(*row)], &reason, now)
                .await?;
            self.deps
                .metrics
                .parked
                .get_or_create(&Metrics::consumer(&row.consumer))
                .inc();
        }
        let (rows, messages): (Vec<&Claimed>, Vec<Outgoing>) = rows.into_iter().unzip();
        let started = std::time::Instant::now();
        let results = publisher.publish_all(&messages).await;
        self.deps.metrics.stage(Stage::RelayPublish, started);
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let mut channel_error = None;
        for (row, result) in rows.into_iter().zip(results) {
            match result {
                Ok(()) => ok.push(row),
                Err(e) => {
                    delivery_span(row).in_scope(|| {
                        tracing::warn!(error = %e, "Publishing to a consumer queue failed; will retry.")
                    });
                    failed.push((row, e.to_string()));
                    // A broken channel, or a nack, ends the session: the next one
                    // publishes on a fresh channel. A channel that published to a
                    // quorum queue whose leader was lost can go on getting nacks
                    // from it (seen in the cluster test) while a new one is fine.
                    if matches!(e, BrokerError::Channel(_) | BrokerError::Nacked { .. }) {
                        channel_error = Some(e);
                    }
                }
            }
        }
        let started = std::time::Instant::now();
        self.deps.ledger.record_publish_errors(&failed, now).await?;
        self.deps
            .ledger
            .mark_published(&ok, now, &self.policy, Carried::Queue)
            .await?;
        self.deps.metrics.stage(Stage::RelayMark, started);
        for row in &ok {
            delivery_span(row).in_scope(|| tracing::debug!("Published to the consumer's queue."));
            let label = Metrics::consumer(&row.consumer);
            self.deps.metrics.published.get_or_create(&label).inc();
            if row.attempts > 0 {
                self.deps.metrics.redelivered.get_or_create(&label).inc();
            }
        }
        if let Some(e) = channel_error {
            return Err(e.into());
        }
        Ok(Delivered {
            published: ok.len(),
            failed: failed.len(),
            parked: too_large.len(),
        })
    }

    /// One re-delivery round at `now`: claims due rows, parks the exhausted,
    /// publishes the rest. A row whose copy is still out (published, never
    /// answered) goes again only when that copy cannot still be in the
    /// consumer's queue or held by the consumer: see [`QueueWatch`].
    pub async fn redeliver_due(
        &self,
        publisher: &Publisher,
        now: DateTime<Utc>,
    ) -> Result<RoundOutcome, RoleError> {
        let started = std::time::Instant::now();
        // Paused consumers get nothing; those whose queue is backed up get no
        // re-deliveries this round.
        let paused = self.deps.ledger.paused(&self.push).await?;
        let topology = self.deps.broker.topology();
        // Acks not applied yet may answer any row: nothing counts as
        // unanswered while some wait.
        let acks_waiting = ready_in(publisher, &topology.acks_queue()).await? > 0;
        let mut ready_for = Vec::with_capacity(self.push.len());
        let mut unanswered = Vec::new();
        for consumer in self.push.iter().filter(|c| !paused.contains(*c)) {
            let waiting = ready_in(publisher, &topology.consumer_queue(consumer)).await?;
            let quiet = self
                .watch
                .quiet(consumer, waiting == 0, now, self.policy.unanswered_after);
            if waiting > self.settings.pause_redelivery_above {
                tracing::info!(consumer = %consumer, waiting, "Re-delivery held back: the consumer's queue is backed up.");
                continue;
            }
            if quiet && !acks_waiting {
                unanswered.push(consumer.clone());
            }
            ready_for.push(consumer.clone());
        }
        if ready_for.is_empty() {
            return Ok(RoundOutcome::default());
        }
        let round = self
            .deps
            .ledger
            .claim_due(
                &ready_for,
                Unanswered::Of(&unanswered),
                now,
                self.settings.batch_size,
                self.policy.max_attempts,
                self.settings.claim_timeout,
            )
            .await?;
        for RowKey {
            entity_id,
            consumer,
            seq,
        } in &round.parked
        {
            self.deps
                .metrics
                .parked
                .get_or_create(&Metrics::consumer(consumer))
                .inc();
            tracing::info_span!("delivery", entity_id, consumer = %consumer, seq, attempt = self.policy.max_attempts)
                .in_scope(|| tracing::warn!("Parked an order: no synced ack after every delivery."));
        }
        let delivered = self.deliver(publisher, &round.to_publish, now).await?;
        if !round.to_publish.is_empty() || !round.parked.is_empty() {
            tracing::info!(
                redelivered = delivered.published,
                failed = delivered.failed,
                parked = round.parked.len(),
                "Re-delivery round done."
            );
        }
        self.deps
            .metrics
            .relay_round_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(RoundOutcome {
            claimed: round.to_publish.len() + round.parked.len(),
            published: delivered.published,
            failed: delivered.failed,
            parked: round.parked.len() + delivered.parked,
        })
    }

    fn outgoing(&self, row: &Claimed) -> Outgoing {
        let attempt = row.attempts + 1;
        let mut headers = FieldTable::default();
        headers.insert("attempt".into(), AMQPValue::LongUInt(attempt));
        headers.insert("entity_id".into(), AMQPValue::LongUInt(row.entity_id));
        if let Some(inc) = &row.increment_id {
            headers.insert(
                "increment_id".into(),
                AMQPValue::LongString(inc.as_str().into()),
            );
        }
        headers.insert(
            "consumer".into(),
            AMQPValue::LongString(row.consumer.as_str().into()),
        );
        let delivery = row.next_delivery(self.policy.max_attempts, &self.deps.shapes);
        let format = self
            .deps
            .consumers
            .options(&row.consumer)
            .format
            .unwrap_or(self.format);
        if format == MessageFormat::CloudEvents {
            // The AMQP binding's binary content mode; `datacontenttype` is
            // the message's content type.
            let attributes =
                cloud_event_attributes(&delivery, row.increment_id.as_deref(), &self.deps.shop);
            for (name, value) in attributes {
                headers.insert(
                    format!("cloudEvents_{name}").into(),
                    AMQPValue::LongString(value.into()),
                );
            }
        }
        Outgoing {
            exchange: self.deps.broker.topology().que_exchange(),
            routing_key: row.consumer.clone(),
            body: delivery.body(&self.deps.shop),
            properties: BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id(row.message_id.as_str().into())
                .with_type(row.event.que_name().into())
                .with_app_id("order-sync".into())
                .with_timestamp(Utc::now().timestamp() as u64)
                .with_headers(headers),
        }
    }
}

/// The inbox loop: capture messages → ledger → first deliveries.
struct Inbox {
    relay: Relay,
    publisher: Option<Publisher>,
}

impl Role for Inbox {
    const NAME: &'static str = "relay inbox";

    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        // The ledger first: a session that takes messages it cannot record
        // returns them, counting a delivery each against the queue's limit.
        self.relay.deps.ledger.check_server().await?;
        let broker = &self.relay.deps.broker;
        let channel = broker.consumer_channel(broker.prefetch()).await?;
        let publisher = self.publisher.insert(broker.publisher().await?);
        let queue = broker.topology().relay_queue();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "order-sync-relay".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let max = self.relay.settings.batch_size as usize;
        let relay = &self.relay;
        // Two batches at once: the rows recorded from one are published (sent,
        // confirmed, marked) while the next is received and recorded. A batch
        // is acked to the broker only after its commit, and a row marked
        // published only after its confirm, as one at a time.
        let mut recorded: Vec<Claimed> = Vec::new();
        let outcome = loop {
            let send = std::mem::take(&mut recorded);
            let deliver = async {
                match send.is_empty() {
                    true => Ok(()),
                    false => relay.deliver(publisher, &send, Utc::now()).await.map(drop),
                }
            };
            let receive = async {
                match next_batch(&mut consumer, max, shutdown).await? {
                    Next::Batch(batch) => relay.record_inbox(batch, Utc::now()).await.map(Some),
                    Next::Shutdown => Ok(None),
                    Next::Ended => Err(RoleError::ConsumerEnded(queue.clone())),
                }
            };
            let (delivered, received) = tokio::join!(deliver, receive);
            if let Err(e) = delivered {
                // Rows recorded meanwhile are given back, due at once for the
                // re-delivery round (were that to fail, their lease runs out).
                if let Ok(Some(fresh)) = &received {
                    let rows: Vec<&Claimed> = fresh.iter().collect();
                    let _ = relay.deps.ledger.release(&rows, Utc::now()).await;
                }
                break Err(e);
            }
            match received {
                Ok(Some(fresh)) => recorded = fresh,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(e) = outcome {
            self.publisher = None;
            return Err(e);
        }
        // Unacked deliveries are returned to the queue when the channel closes.
        let _ = channel.close(200, "shutdown".into()).await;
        Ok(())
    }

    async fn finish(&mut self) {
        if let Some(p) = self.publisher.take() {
            p.close().await;
        }
    }
}

/// The relay's timed loops: `Rounds<false>` is the scheduler (re-delivery,
/// on `relay.schedule`), `Rounds<true>` the follow-on loop (rows never
/// delivered yet, every `relay.follow_on_interval`).
struct Rounds<const FOLLOW_ON: bool> {
    relay: Relay,
    /// Kept across sessions until one fails: a fresh one after any failure.
    publisher: Option<Publisher>,
}

type Scheduler = Rounds<false>;
type FollowOn = Rounds<true>;

impl<const FOLLOW_ON: bool> Rounds<FOLLOW_ON> {
    /// One round; whether more is due at once.
    async fn round(&self, publisher: &Publisher) -> Result<bool, RoleError> {
        let relay = &self.relay;
        let batch = relay.settings.batch_size as usize;
        Ok(if FOLLOW_ON {
            relay
                .deliver_follow_ons(publisher, Utc::now())
                .await?
                .published
                >= batch
        } else {
            // A full round means more is due: go on at once. Not after failed
            // publishes: those rows are due again right away, and retrying them
            // in a loop would only hammer a broken broker.
            let round = relay.redeliver_due(publisher, Utc::now()).await?;
            round.claimed >= batch && round.failed == 0
        })
    }

    fn wait(&self) -> std::time::Duration {
        match FOLLOW_ON {
            true => self.relay.settings.follow_on_interval,
            false => self.relay.settings.schedule.next_wait(Utc::now()),
        }
    }
}

impl<const FOLLOW_ON: bool> Role for Rounds<FOLLOW_ON> {
    const NAME: &'static str = if FOLLOW_ON {
        "relay follow-on"
    } else {
        "relay scheduler"
    };

    /// The first round runs at once: rows that fell due while the process was
    /// down go now.
    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        loop {
            if self.publisher.is_none() {
                self.publisher = Some(self.relay.deps.broker.publisher().await?);
            }
            let p = self.publisher.as_ref().expect("set just above");
            let more = match self.round(p).await {
                Ok(more) => more,
                Err(e) => {
                    self.publisher = None;
                    return Err(e);
                }
            };
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if !more {
                // The follow-on loop is also woken by capture recording later
                // events in this process (another instance's wait out their
                // interval).
                let woken = async {
                    match FOLLOW_ON {
                        true => self.relay.deps.follow_ons.notified().await,
                        false => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(self.wait()) => {}
                    _ = woken => {}
                }
            }
        }
    }

    async fn finish(&mut self) {
        if let Some(p) = self.publisher.take() {
            p.close().await;
        }
    }
}

/// The span every log line about one delivery is in: a log search for an order
/// number, an entity id or a consumer finds all of them.
fn delivery_span(row: &Claimed) -> tracing::Span {
    tracing::info_span!(
        "delivery",
        entity_id = row.entity_id,
        increment_id = row.increment_id.as_deref().unwrap_or(""),
        consumer = %row.consumer,
        attempt = row.attempts + 1
    )
}

/// A capture message as a ledger row, or why it cannot be one. Only this
/// shop's capture publishes here (only its broker user may); a message from
/// another source is refused, not recorded as one of this shop's orders.
fn parse_captured(body: &[u8], shop: &str) -> Result<NewOrder, String> {
    let captured: CapturedOrder =
        serde_json::from_slice(body).map_err(|e| format!("not a capture message: {e}"))?;
    if captured.source != shop {
        return Err(format!(
            "published by source `{}`, not by this shop's capture (`{shop}`)",
            message::truncate(&captured.source, 64)
        ));
    }
    let key = captured
        .key()
        .map_err(|e| format!("order has no usable entity_id: {e}"))?;
    Ok(NewOrder {
        key,
        captured_at: captured.captured_at,
        // Moved, not copied: parsing made it its own allocation already.
        message: Box::<str>::from(captured.order).into_string(),
        held: captured.held,
    })
}
