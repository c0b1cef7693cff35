//! The ack listener: `<prefix>.acks.listener` → ledger.
//!
//! Each ack changes at most the one row it names, in one transaction, and the
//! broker message is acked only after that commit. Anything that cannot be
//! applied (malformed, oversized, unknown order or consumer, duplicate, late) is
//! republished to the dead-letter exchange with the reason in the
//! `x-order-sync-reason` header, then acked: it is kept for a person to read,
//! it never blocks the queue, and the listener goes on.

use chrono::Utc;
use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicRejectOptions},
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{Broker, Outgoing, Publisher},
    ledger::{AckOutcome, Ledger},
    message::{parse_ack, truncate, AckRejection},
    retry::RetryPolicy,
    supervise::{Reconnect, RoleError},
};

/// What became of one ack message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckDisposition {
    Applied(AckOutcome),
    DeadLettered(AckRejection),
}

#[derive(Clone)]
pub struct AckListener {
    ledger: Ledger,
    broker: Broker,
    consumers: Vec<String>,
    policy: RetryPolicy,
    max_body_bytes: usize,
}

impl AckListener {
    pub fn new(
        ledger: Ledger,
        broker: Broker,
        consumers: Vec<String>,
        policy: RetryPolicy,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            ledger,
            broker,
            consumers,
            policy,
            max_body_bytes,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) -> Result<(), RoleError> {
        let mut reconnect = Reconnect::new("ack listener");
        tracing::info!("Ack listener started.");
        loop {
            reconnect.session_started();
            match self.session(&shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    if !reconnect.wait(&e, &shutdown).await {
                        break;
                    }
                }
            }
        }
        tracing::info!("Ack listener stopped.");
        Ok(())
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        let channel = self.broker.consumer_channel().await?;
        let publisher = self.broker.publisher().await?;
        let queue = self.broker.topology().acks_queue();
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "order-sync-acks".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            let next = tokio::select! {
                d = consumer.next() => d,
                _ = shutdown.cancelled() => break,
            };
            let Some(delivery) = next else {
                return Err(RoleError::ConsumerEnded(queue));
            };
            let delivery = delivery?;
            if let Err(e) = self.handle(&publisher, &delivery).await {
                // Not applied: give it back for another try, after reconnecting.
                let _ = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..BasicNackOptions::default()
                    })
                    .await;
                return Err(e);
            }
        }
        publisher.close().await;
        let _ = channel.close(200, "shutdown".into()).await;
        Ok(())
    }

    /// Applies or dead-letters one ack, then settles the broker message.
    pub async fn handle(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
    ) -> Result<AckDisposition, RoleError> {
        let disposition = match parse_ack(&delivery.data, self.max_body_bytes, &self.consumers) {
            Err(rejection) => AckDisposition::DeadLettered(rejection),
            Ok(ack) => match self
                .ledger
                .apply_ack(&ack, Utc::now(), &self.policy)
                .await?
            {
                Ok(outcome) => AckDisposition::Applied(outcome),
                Err(rejection) => AckDisposition::DeadLettered(rejection),
            },
        };
        match &disposition {
            AckDisposition::Applied(AckOutcome::Synced { entity_id }) => {
                tracing::info!(entity_id, "Order synced.")
            }
            AckDisposition::Applied(AckOutcome::Failed {
                entity_id,
                retry_at,
            }) => {
                tracing::warn!(entity_id, retry_at = %retry_at, "Sync service reported a failure; will re-deliver.")
            }
            AckDisposition::DeadLettered(reason) => {
                tracing::warn!(reason = %reason, size = delivery.data.len(), "Dead-lettering an ack.");
                if !self.dead_letter(publisher, delivery, reason).await? {
                    return Ok(disposition);
                }
            }
        }
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(disposition)
    }

    async fn dead_letter(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        reason: &AckRejection,
    ) -> Result<bool, RoleError> {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            "x-order-sync-reason".into(),
            AMQPValue::LongString(truncate(&reason.to_string(), 500).into()),
        );
        headers.insert(
            "x-original-routing-key".into(),
            AMQPValue::LongString(delivery.routing_key.as_str().into()),
        );
        let topology = self.broker.topology();
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
