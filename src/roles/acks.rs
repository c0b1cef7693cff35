//! The ack listener: `<prefix>.acks.listener` → ledger.
//!
//! Each ack changes at most the one row it names, in one transaction, and the
//! broker message is acked only after that commit. Anything that cannot be
//! applied (malformed, oversized, unknown order or consumer, duplicate, late) is
//! republished to the dead-letter exchange with the reason in the
//! `x-order-sync-reason` header, then acked: it is kept for a person to read,
//! it never blocks the queue, and the listener goes on.

use chrono::{DateTime, Utc};
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use order_sync_consumer::amqp::{next_batch, Next};
use tokio_util::sync::CancellationToken;

use super::{Deps, Role, RoleError};
use crate::{
    broker::{Outgoing, Publisher},
    config::{AckSettings, RelaySettings},
    ledger::{AckOutcome, LedgerError},
    message::{parse_ack, truncate, Ack, AckRejection},
    metrics::{AckLabel, Metrics, Stage},
    retry::RetryPolicy,
};

/// What became of one ack message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckDisposition {
    Applied(AckOutcome),
    DeadLettered(AckRejection),
}

#[derive(Clone)]
pub struct AckListener {
    deps: Deps,
    policy: RetryPolicy,
    max_body_bytes: usize,
    prefetch: u16,
}

impl AckListener {
    /// Built from the relay's settings too: a `failed` ack schedules the next
    /// delivery with the relay's backoff.
    pub fn new(deps: &Deps, relay: &RelaySettings, acks: &AckSettings) -> Self {
        Self {
            deps: deps.clone(),
            policy: RetryPolicy::from_settings(relay),
            max_body_bytes: acks.max_body_bytes,
            prefetch: acks.prefetch,
        }
    }

    /// Applies or dead-letters one ack, then settles the broker message.
    pub async fn handle(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        now: DateTime<Utc>,
    ) -> Result<AckDisposition, RoleError> {
        let mut out = self
            .handle_batch(publisher, std::slice::from_ref(delivery), now)
            .await?;
        Ok(out.pop().expect("one disposition per delivery"))
    }

    /// Applies a batch of acks in one ledger transaction, dead-letters those
    /// that cannot apply, and only then settles each broker message.
    pub async fn handle_batch(
        &self,
        publisher: &Publisher,
        batch: &[Delivery],
        now: DateTime<Utc>,
    ) -> Result<Vec<AckDisposition>, RoleError> {
        let parsed: Vec<Result<Ack, AckRejection>> = batch
            .iter()
            .map(|d| {
                let ack = self.parse(&d.data)?;
                let user = d.properties.user_id().as_ref().map(|u| u.as_str());
                self.check_sender(&ack, d.routing_key.as_str(), user)?;
                Ok(ack)
            })
            .collect();
        let valid: Vec<&Ack> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
        let started = std::time::Instant::now();
        let mut applied = self.apply(&valid, now).await?.into_iter();
        self.deps.metrics.stage(Stage::AcksApply, started);
        let mut dispositions = Vec::with_capacity(batch.len());
        let mut last_to_ack = None;
        for (delivery, p) in batch.iter().zip(parsed) {
            let (consumer, disposition) = match p {
                Err(rejection) => (None, AckDisposition::DeadLettered(rejection)),
                Ok(ack) => (
                    Some(ack.consumer),
                    match applied.next().expect("one result per valid ack") {
                        Ok(outcome) => AckDisposition::Applied(outcome),
                        Err(rejection) => AckDisposition::DeadLettered(rejection),
                    },
                ),
            };
            // The order's ids come from its ledger row, so a log search by order
            // number finds the ack even when the ack named only the entity id.
            let span = match (&disposition, &consumer) {
                (AckDisposition::Applied(outcome), Some(consumer)) => tracing::info_span!(
                    "ack",
                    consumer = %consumer,
                    entity_id = outcome.entity_id(),
                    increment_id = outcome.increment_id().unwrap_or(""),
                ),
                (_, Some(consumer)) => tracing::info_span!("ack", consumer = %consumer),
                _ => tracing::info_span!("ack"),
            };
            let settled_by_reject = match &disposition {
                AckDisposition::Applied(AckOutcome::Synced { .. }) => {
                    span.in_scope(|| tracing::debug!("Order synced."));
                    false
                }
                AckDisposition::Applied(AckOutcome::Failed { retry_at, .. }) => {
                    span.in_scope(|| tracing::warn!(retry_at = %retry_at, "Sync service reported a failure; will re-deliver."));
                    false
                }
                AckDisposition::DeadLettered(reason) => {
                    span.in_scope(|| tracing::warn!(reason = %reason, size = delivery.data.len(), "Dead-lettering an ack."));
                    !self.dead_letter(publisher, delivery, reason).await?
                }
            };
            if !settled_by_reject {
                last_to_ack = Some(delivery);
            }
            dispositions.push(disposition);
        }
        // One ack for the batch, after its ledger commit: the deliveries came
        // in order on one channel, and those not acked are settled already.
        if let Some(last) = last_to_ack {
            last.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok(dispositions)
    }

    /// Applies parsed acks in one ledger transaction and counts them; the one
    /// path for acks from the queue and from HTTP, so both have the same effect.
    pub async fn apply(
        &self,
        acks: &[&Ack],
        now: DateTime<Utc>,
    ) -> Result<Vec<Result<AckOutcome, AckRejection>>, LedgerError> {
        let results = self.deps.ledger.apply_acks(acks, now, &self.policy).await?;
        let mut synced = Vec::new();
        for (ack, result) in acks.iter().zip(&results) {
            let status = match result {
                Ok(AckOutcome::Synced { entity_id, .. }) => {
                    synced.push((*entity_id, ack.consumer.as_str()));
                    "synced"
                }
                Ok(AckOutcome::Failed { .. }) => "failed",
                Err(_) => continue,
            };
            self.deps
                .metrics
                .acks
                .get_or_create(&AckLabel {
                    consumer: ack.consumer.clone(),
                    status: status.into(),
                })
                .inc();
        }
        if !synced.is_empty() && self.deps.consumers.want_lifecycle() {
            // A synced event lets its order's next one go: the follow-on loop
            // sends it now rather than at its next round.
            self.deps.follow_ons.notify_one();
        }
        if !synced.is_empty() {
            // Only for the histogram: a failed read costs a sample, not an ack.
            let ids: Vec<u32> = synced.iter().map(|s| s.0).collect();
            if let Ok(placed) = self.deps.ledger.placed_at(&ids).await {
                for (id, consumer) in synced {
                    if let Some(t) = placed.get(&id) {
                        let secs = (now - *t).num_milliseconds().max(0) as f64 / 1000.0;
                        self.deps
                            .metrics
                            .placed_to_synced_seconds
                            .get_or_create(&Metrics::consumer(consumer))
                            .observe(secs);
                    }
                }
            }
        }
        Ok(results)
    }

    pub fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Parses an ack body the way the listener does, with this listener's limits.
    pub fn parse(&self, body: &[u8]) -> Result<Ack, AckRejection> {
        parse_ack(body, self.max_body_bytes, &self.deps.consumers.names)
    }

    /// Whether an ack may speak for the consumer it names: over AMQP its
    /// routing key must be that consumer (the shipped definitions let each
    /// consumer's broker user publish only under its own name), and with
    /// `consumers.<name>.broker_user` it must carry that user as its
    /// `user_id`, which RabbitMQ checks against the connection's login.
    pub fn check_sender(
        &self,
        ack: &Ack,
        routing_key: &str,
        user_id: Option<&str>,
    ) -> Result<(), AckRejection> {
        if routing_key != ack.consumer {
            return Err(AckRejection::WrongRoutingKey {
                consumer: truncate(&ack.consumer, 64),
                routing_key: truncate(routing_key, 64),
            });
        }
        if let Some(user) = &self.deps.consumers.options(&ack.consumer).broker_user {
            if user_id != Some(user.as_str()) {
                return Err(AckRejection::WrongUser {
                    consumer: ack.consumer.clone(),
                });
            }
        }
        Ok(())
    }

    /// Keeps a refused ack for a person: republished to the dead-letter
    /// exchange with the reason in a header (true), or, when that fails,
    /// rejected to the queue's own dead-letter queue (false).
    ///
    /// An oversized ack is rejected whole to the dead-letter queue by the
    /// broker (no copy of its body in this process: that is what keeps the
    /// listener's memory bound), and a small note follows it there with the
    /// reason header, its size, routing key and sender (false).
    async fn dead_letter(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        reason: &AckRejection,
    ) -> Result<bool, RoleError> {
        if matches!(reason, AckRejection::TooLarge { .. }) {
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await?;
            let note = serde_json::json!({
                "note": "the ack before this one in this queue was refused unread",
                "reason": reason.to_string(),
                "bytes": delivery.data.len(),
                "routing_key": delivery.routing_key.as_str(),
                "user_id": delivery.properties.user_id().as_ref().map(|u| u.as_str()),
                "message_id": delivery.properties.message_id().as_ref().map(|m| m.as_str()),
            });
            let headers = with_reason(FieldTable::default(), reason, delivery);
            let msg = Outgoing {
                exchange: self.deps.broker.topology().dead_exchange(),
                routing_key: "acks".into(),
                body: note.to_string().into_bytes(),
                properties: BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_type("order-sync.refused-ack-note".into())
                    .with_headers(headers),
            };
            if let Err(e) = publisher.publish(msg).await {
                // The ack itself is kept whole; only the note is missing.
                tracing::warn!(error = %e, "Could not publish the note on an oversized ack.");
            }
            return Ok(false);
        }
        let headers = with_reason(
            delivery.properties.headers().clone().unwrap_or_default(),
            reason,
            delivery,
        );
        let topology = self.deps.broker.topology();
        let msg = Outgoing {
            exchange: topology.dead_exchange(),
            routing_key: "acks".into(),
            body: delivery.data.clone(),
            properties: BasicProperties::default()
                .with_content_type(
                    delivery
                        .properties
                        .content_type()
                        .clone()
                        .unwrap_or_else(|| "application/octet-stream".into()),
                )
                .with_headers(headers),
        };
        if let Err(e) = publisher.publish(msg).await {
            // Keep it anyway: the queue's own dead-lettering has no reason
            // header but loses nothing.
            tracing::warn!(error = %e, "Could not republish a rejected ack with its reason; rejecting it to the dead-letter queue.");
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await?;
            return Ok(false);
        }
        Ok(true)
    }
}

/// `headers` with why an ack was refused and the routing key it came with.
fn with_reason(mut headers: FieldTable, reason: &AckRejection, delivery: &Delivery) -> FieldTable {
    headers.insert(
        "x-order-sync-reason".into(),
        AMQPValue::LongString(truncate(&reason.to_string(), 500).into()),
    );
    headers.insert(
        "x-original-routing-key".into(),
        AMQPValue::LongString(delivery.routing_key.as_str().into()),
    );
    headers
}

impl Role for AckListener {
    const NAME: &'static str = "ack listener";

    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        // The ledger first: a session that takes acks it cannot apply returns
        // them, counting a delivery each against the queue's limit.
        self.deps.ledger.check_server().await?;
        let broker = &self.deps.broker;
        // The prefetch bounds what the listener holds: at most this many acks,
        // each no larger than the broker's max_message_size.
        let channel = broker.consumer_channel(self.prefetch).await?;
        let publisher = broker.publisher().await?;
        let queue = broker.topology().acks_queue();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "order-sync-acks".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        // One ledger commit per batch of what has arrived.
        let max = self.prefetch as usize;
        loop {
            match next_batch(&mut consumer, max, shutdown).await? {
                Next::Batch(batch) => {
                    if let Err(e) = self.handle_batch(&publisher, &batch, Utc::now()).await {
                        // Not applied: give them back for another try, after reconnecting.
                        for d in &batch {
                            let _ = d
                                .nack(BasicNackOptions {
                                    requeue: true,
                                    ..BasicNackOptions::default()
                                })
                                .await;
                        }
                        return Err(e);
                    }
                }
                Next::Shutdown => break,
                Next::Ended => return Err(RoleError::ConsumerEnded(queue)),
            }
        }
        publisher.close().await;
        let _ = channel.close(200, "shutdown".into()).await;
        Ok(())
    }
}
