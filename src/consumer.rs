//! A helper for writing a sync service in Rust: consume one consumer's queue,
//! hand each order to your function, and publish the right ack for what it
//! returns. It does what every consumer must get right:
//!
//! * the broker message is acknowledged only after the ack is confirmed by the
//!   broker, so a crash in between means the order comes again, never that it
//!   is lost;
//! * a re-delivery of an order already synced by this process (same
//!   `message_id`) is not handed to your function again: its synced ack is
//!   re-sent instead (the first one may be what got lost);
//! * a message that is not an order message is rejected to the queue's
//!   dead-letter queue, not retried forever;
//! * a lost connection is retried with backoff, across the configured nodes.
//!
//! ```no_run
//! # async fn demo() {
//! use order_sync::consumer::{OrderMessage, SyncConsumer};
//! let consumer = SyncConsumer::new("amqp://erp:erp@127.0.0.1:5672/%2f", "order-sync", "erp");
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! consumer
//!     .run(|msg: OrderMessage| async move {
//!         // Send msg.order to the ERP here; Err(text) reports a failure.
//!         println!("order {}", msg.order["increment_id"]);
//!         Ok(())
//!     }, shutdown)
//!     .await;
//! # }
//! ```

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    sync::Mutex,
};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::{
    message::Delivery,
    options::{BasicAckOptions, BasicConsumeOptions, BasicRejectOptions},
    types::FieldTable,
    BasicProperties,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{Broker, Outgoing, Publisher, Topology},
    config::{self, BrokerSettings, QueueType, SecretUrl},
    supervise::{Reconnect, RoleError},
};

/// What a sync service receives: the envelope of docs/messages.md.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderMessage {
    pub schema_version: u32,
    pub event: String,
    pub message_id: String,
    pub source: String,
    pub consumer: String,
    pub captured_at: DateTime<Utc>,
    pub attempt: u32,
    /// The order, shaped like Magento's REST order.
    pub order: Value,
}

impl OrderMessage {
    pub fn entity_id(&self) -> Option<u64> {
        self.order["entity_id"].as_u64()
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    Synced,
    Failed(String),
    /// Already synced by this process: not handed over again, the ack re-sent.
    Duplicate,
    /// Not an order message: dead-lettered.
    Rejected(String),
}

/// Message ids recently synced, oldest forgotten first.
struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
    capacity: usize,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }
    fn insert(&mut self, id: String) {
        if self.set.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

pub struct SyncConsumer {
    broker: Broker,
    name: String,
    seen: Mutex<Seen>,
}

impl SyncConsumer {
    /// A consumer named `consumer` on the queues of `prefix` (`broker.prefix`),
    /// with the default broker settings otherwise.
    pub fn new(url: &str, prefix: &str, consumer: &str) -> Self {
        let mut settings = config::load_with_env(None, Vec::<(String, String)>::new())
            .expect("the compiled-in defaults are valid")
            .broker;
        settings.url = SecretUrl::new(url);
        settings.prefix = prefix.to_owned();
        Self::with_settings(&settings, consumer)
    }

    /// With full broker settings: failover nodes, frame size, prefetch, names.
    pub fn with_settings(settings: &BrokerSettings, consumer: &str) -> Self {
        let topology = Topology::with_names(
            &settings.prefix,
            &[consumer.to_owned()],
            QueueType::Quorum,
            settings.names.clone(),
        );
        Self {
            broker: Broker::new(settings, topology, &format!("consumer {consumer}")),
            name: consumer.to_owned(),
            seen: Mutex::new(Seen {
                order: VecDeque::new(),
                set: HashSet::new(),
                capacity: 10_000,
            }),
        }
    }

    /// Consumes until shutdown, reconnecting as needed. The queue must exist
    /// (order-sync declares it); this needs only read access to it and write
    /// access to the acks exchange.
    pub async fn run<F, Fut>(&self, handler: F, shutdown: CancellationToken)
    where
        F: Fn(OrderMessage) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let mut reconnect = Reconnect::new("sync consumer");
        loop {
            reconnect.session_started();
            match self.session(&handler, &shutdown).await {
                Ok(()) => break,
                Err(e) => {
                    if !reconnect.wait(&e, &shutdown).await {
                        break;
                    }
                }
            }
        }
        self.broker.close().await;
    }

    async fn session<F, Fut>(
        &self,
        handler: &F,
        shutdown: &CancellationToken,
    ) -> Result<(), RoleError>
    where
        F: Fn(OrderMessage) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let channel = self.broker.consumer_channel().await?;
        let publisher = self.broker.publisher().await?;
        let queue = self.broker.topology().consumer_queue(&self.name);
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                format!("sync-{}", self.name).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            let next = tokio::select! {
                d = deliveries.next() => d,
                _ = shutdown.cancelled() => break,
            };
            let Some(delivery) = next else {
                return Err(RoleError::ConsumerEnded(queue));
            };
            self.handle(&publisher, &delivery?, handler).await?;
        }
        publisher.close().await;
        let _ = channel.close(200, "shutdown".into()).await;
        Ok(())
    }

    /// One delivery: hand it over (unless already synced), publish the ack,
    /// and only then acknowledge the broker message.
    pub async fn handle<F, Fut>(
        &self,
        publisher: &Publisher,
        delivery: &Delivery,
        handler: &F,
    ) -> Result<Handled, RoleError>
    where
        F: Fn(OrderMessage) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let msg: OrderMessage = match serde_json::from_slice(&delivery.data) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "Not an order message; dead-lettering it.");
                delivery
                    .reject(BasicRejectOptions { requeue: false })
                    .await?;
                return Ok(Handled::Rejected(e.to_string()));
            }
        };
        let duplicate = self
            .seen
            .lock()
            .expect("not poisoned")
            .contains(&msg.message_id);
        let (message_id, entity_id) = (msg.message_id.clone(), msg.entity_id());
        let outcome = if duplicate {
            Handled::Duplicate
        } else {
            match handler(msg).await {
                Ok(()) => Handled::Synced,
                Err(e) => Handled::Failed(e),
            }
        };
        let mut ack = json!({
            "message_id": message_id,
            "consumer": self.name,
            "entity_id": entity_id,
            "status": if matches!(outcome, Handled::Failed(_)) { "failed" } else { "synced" },
        });
        if let Handled::Failed(e) = &outcome {
            ack["error"] = Value::String(e.clone());
        }
        publisher
            .publish(Outgoing {
                exchange: self.broker.topology().acks_exchange(),
                routing_key: self.name.clone(),
                body: serde_json::to_vec(&ack).expect("an ack serializes"),
                properties: BasicProperties::default()
                    .with_content_type("application/json".into())
                    .with_delivery_mode(2),
            })
            .await?;
        if outcome == Handled::Synced {
            self.seen.lock().expect("not poisoned").insert(message_id);
        }
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seen_set_forgets_the_oldest_first() {
        let mut s = Seen {
            order: VecDeque::new(),
            set: HashSet::new(),
            capacity: 2,
        };
        for id in ["a", "b", "a", "c"] {
            s.insert(id.into());
        }
        assert!(!s.contains("a") && s.contains("b") && s.contains("c"));
    }
}
