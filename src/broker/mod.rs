//! The RabbitMQ side: a pool of connections, channels taken from it, and a
//! publisher whose every publish is persistent, mandatory and confirmed.
//!
//! The pooled object is a connection (deadpool-lapin); a role opens its own
//! channel per session and enables confirms on it once. A message the broker
//! returns as unroutable still arrives as an *ack* carrying the message, so
//! [`Publisher`] turns that into [`BrokerError::Returned`]: nothing is counted
//! as published unless the broker routed it and took responsibility for it.
//! The publish and confirm steps are `order_sync_consumer::amqp`'s, the same a
//! sync service built on that crate uses.

pub mod topology;

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use deadpool_lapin::{Pool, PoolConfig, Runtime, Timeouts};
use lapin::{
    options::{BasicQosOptions, ConfirmSelectOptions},
    BasicProperties, Channel, ConnectionProperties, PublisherConfirm,
};
use order_sync_consumer::{
    amqp::{self, Refused},
    SyncConsumer,
};

use crate::config::{BrokerSettings, SecretUrl};
pub use topology::Topology;

/// What can go wrong talking to the broker, split by what the caller does about it.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No connection could be had: the broker is down, unreachable or refused us.
    #[error("cannot connect to RabbitMQ at {url}: {reason}")]
    Connect { url: String, reason: String },
    /// The channel or connection failed mid-work; reconnect and redo the unit.
    #[error("RabbitMQ channel failed: {0}")]
    Channel(#[from] lapin::Error),
    /// The broker refused responsibility for a message (e.g. a queue limit).
    #[error("RabbitMQ nacked the message published to `{exchange}` with key `{routing_key}`")]
    Nacked {
        exchange: String,
        routing_key: String,
    },
    /// No queue was bound for the message: a topology problem, never a success.
    #[error("RabbitMQ returned the message published to `{exchange}` with key `{routing_key}` as unroutable: {code} {text}")]
    Returned {
        exchange: String,
        routing_key: String,
        code: u16,
        text: String,
    },
}

/// A pool of broker connections for one process: one deadpool-lapin pool per
/// node of the cluster (`broker.url` first, then `broker.failover_urls`).
/// Channels come from the node last reached; when it cannot be reached the
/// next one is tried, so a role whose node is lost resumes on another.
#[derive(Clone)]
pub struct Broker {
    nodes: Arc<Vec<(SecretUrl, Pool)>>,
    current: Arc<AtomicUsize>,
    topology: Topology,
    prefetch: u16,
    max_message_bytes: usize,
}

impl Broker {
    /// Builds the pools; connects lazily, so this succeeds while the broker is down.
    pub fn new(settings: &BrokerSettings, topology: Topology, role: &str) -> Self {
        let name = format!("order-sync {role} ({})", topology.prefix());
        let nodes = std::iter::once(&settings.url)
            .chain(settings.failover_urls.iter())
            .map(|url| {
                let cfg = deadpool_lapin::Config {
                    url: Some(with_frame_max(url.expose(), settings.frame_max)),
                    pool: Some(PoolConfig {
                        max_size: settings.pool_max,
                        // Bounded waits: a role whose broker is gone must notice
                        // and back off rather than hang on the pool forever.
                        timeouts: Timeouts {
                            wait: Some(Duration::from_secs(10)),
                            create: Some(Duration::from_secs(10)),
                            recycle: Some(Duration::from_secs(5)),
                        },
                        ..PoolConfig::default()
                    }),
                };
                let name = name.clone();
                let pool = cfg
                    .create_pool(
                        move || {
                            ConnectionProperties::default()
                                .with_connection_name(name.clone().into())
                        },
                        Runtime::Tokio1,
                    )
                    // Only fails for an unsupported runtime; this build fixes Tokio.
                    .expect("deadpool-lapin supports the Tokio runtime");
                (url.clone(), pool)
            })
            .collect();
        Self {
            nodes: Arc::new(nodes),
            current: Arc::new(AtomicUsize::new(0)),
            topology,
            prefetch: settings.prefetch,
            max_message_bytes: settings.max_message_bytes,
        }
    }

    /// Closes the pools; connections still checked out close when dropped.
    pub async fn close(&self) {
        for (_, pool) in self.nodes.iter() {
            pool.close();
        }
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Unacknowledged deliveries a consuming session takes at once
    /// (`broker.prefetch`), and so the most it handles in one batch.
    pub fn prefetch(&self) -> u16 {
        self.prefetch
    }

    /// The largest message order-sync publishes (`broker.max_message_bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// A fresh channel on a pooled connection, from the first node that answers,
    /// starting with the one that answered last.
    pub async fn channel(&self) -> Result<Channel, BrokerError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..self.nodes.len() {
            let i = (start + step) % self.nodes.len();
            let (url, pool) = &self.nodes[i];
            match pool.get().await {
                Ok(conn) => {
                    if i != start {
                        tracing::warn!(node = %url, "Switched to another RabbitMQ node.");
                        self.current.store(i, Ordering::Relaxed);
                    }
                    return Ok(conn.create_channel().await?);
                }
                Err(e) => {
                    let mut reason = e.to_string();
                    if reason.contains("ACCESS_REFUSED") {
                        reason.push_str(" (check the user and password in broker.url)");
                    } else if untrusted_certificate(&reason) {
                        reason.push_str(" (the broker's certificate is not trusted: add its CA to the system's trust store, or point SSL_CERT_FILE at it)");
                    } else if reason.contains("vhost") && reason.contains("not found") {
                        reason.push_str(" (create it with `rabbitmqctl add_vhost`)");
                    }
                    last = Some(BrokerError::Connect {
                        url: url.redacted(),
                        reason,
                    });
                }
            }
        }
        Err(last.expect("there is always at least one node"))
    }

    /// A channel for consuming, taking at most `prefetch` unacknowledged
    /// deliveries at once (which bounds what the consumer holds in memory).
    pub async fn consumer_channel(&self, prefetch: u16) -> Result<Channel, BrokerError> {
        let channel = self.channel().await?;
        channel
            .basic_qos(prefetch.max(1), BasicQosOptions::default())
            .await?;
        Ok(channel)
    }

    /// A channel with publisher confirms enabled.
    pub async fn publisher(&self) -> Result<Publisher, BrokerError> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher { channel })
    }

    /// Declares every exchange, queue and binding (idempotent). A queue that
    /// exists with other arguments (declared by an older order-sync, before
    /// delivery limits and dead-queue bounds) is kept as it is, with a warning
    /// saying what is not in force: re-declaring it would need it deleted.
    pub async fn declare_topology(&self) -> Result<(), BrokerError> {
        let t = &self.topology;
        let mut channel = self.channel().await?;
        t.declare_exchanges(&channel).await?;
        for q in t.queues() {
            match t.declare_queue(&channel, &q).await {
                Ok(()) => {}
                Err(e) if e.to_string().contains("PRECONDITION_FAILED") => {
                    // The broker closed the channel: check it exists on a new one.
                    channel = self.channel().await?;
                    t.queue_exists(&channel, &q.name).await?;
                    tracing::warn!(
                        queue = %q.name,
                        error = %e,
                        "Queue exists with other arguments; its delivery limit or length bounds are not in force. Apply them with a RabbitMQ policy, or delete the queue once drained so order-sync re-creates it."
                    );
                }
                Err(e) => return Err(e.into()),
            }
        }
        t.declare_bindings(&channel).await?;
        let _ = channel.close(200, "topology declared".into()).await;
        Ok(())
    }
}

/// The URL with `frame_max` added to its query, unless it has one already.
fn with_frame_max(url: &str, frame_max: u32) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "frame_max") => {
            u.query_pairs_mut()
                .append_pair("frame_max", &frame_max.to_string());
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub exchange: String,
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

/// A confirm-mode channel. Every publish is persistent and mandatory.
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes one message and waits for the broker to take it.
    pub async fn publish(&self, msg: Outgoing) -> Result<(), BrokerError> {
        let pending = self.send(&msg).await?;
        confirmed(&msg, pending.await?)
    }

    /// Publishes all messages before waiting for any confirm, so a batch costs
    /// one round trip rather than one per message. Results are in input order;
    /// a channel failure fails every message not yet confirmed.
    pub async fn publish_all(&self, msgs: &[Outgoing]) -> Vec<Result<(), BrokerError>> {
        let mut pending = Vec::with_capacity(msgs.len());
        for msg in msgs {
            pending.push(self.send(msg).await);
        }
        let mut results = Vec::with_capacity(msgs.len());
        for (msg, p) in msgs.iter().zip(pending) {
            results.push(match p {
                Ok(confirm) => match confirm.await {
                    Ok(c) => confirmed(msg, c),
                    Err(e) => Err(e.into()),
                },
                Err(e) => Err(e),
            });
        }
        results
    }

    async fn send(&self, msg: &Outgoing) -> Result<PublisherConfirm, BrokerError> {
        Ok(amqp::send(
            &self.channel,
            &msg.exchange,
            &msg.routing_key,
            &msg.body,
            msg.properties.clone(),
        )
        .await?)
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "done".into()).await;
    }
}

/// Whether a connection failed because the server's certificate was not
/// trusted (rustls' wording, the same for the broker and both databases).
pub fn untrusted_certificate(error: &str) -> bool {
    error.contains("certificate") || error.contains("UnknownIssuer")
}

fn confirmed(msg: &Outgoing, c: lapin::Confirmation) -> Result<(), BrokerError> {
    amqp::confirmation(c).map_err(|refused| match refused {
        Refused::Nacked => BrokerError::Nacked {
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
        },
        Refused::Returned { code, text } => BrokerError::Returned {
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            code,
            text,
        },
    })
}

/// A sync-service consumer for `consumer` on this configuration's broker
/// nodes and queue names (the demo's sync services, and tests).
pub fn sync_consumer(settings: &BrokerSettings, consumer: &str) -> SyncConsumer {
    let topology = Topology::with_names(
        &settings.prefix,
        &[consumer.to_owned()],
        settings.queue_type,
        settings.names.clone(),
    );
    SyncConsumer::new(settings.url.expose(), &settings.prefix, consumer)
        .with_failover_urls(settings.failover_urls.iter().map(|u| u.expose().to_owned()))
        .with_queue(topology.consumer_queue(consumer))
        .with_acks_exchange(topology.acks_exchange())
        .with_prefetch(settings.prefetch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueType;

    #[test]
    fn frame_max_is_added_to_urls_without_one() {
        assert_eq!(
            with_frame_max("amqp://u:p@h:5672/%2f", 16384),
            "amqp://u:p@h:5672/%2f?frame_max=16384"
        );
        assert_eq!(
            with_frame_max("amqp://h/%2f?heartbeat=10", 8192),
            "amqp://h/%2f?heartbeat=10&frame_max=8192"
        );
        assert_eq!(
            with_frame_max("amqp://h/v?frame_max=4096", 16384),
            "amqp://h/v?frame_max=4096"
        );
    }

    #[tokio::test]
    async fn amqps_urls_and_named_vhosts_build_a_pool() {
        for url in [
            "amqps://user:pass@rabbit.example:5671/shop1",
            "amqp://user:pass@rabbit.example:5672/%2f",
            "amqp://rabbit.example",
        ] {
            let settings = BrokerSettings {
                url: SecretUrl::new(url),
                prefix: "p".into(),
                queue_type: QueueType::Quorum,
                pool_max: 2,
                prefetch: 1,
                max_message_bytes: 1 << 20,
                frame_max: 16384,
                names: Default::default(),
                failover_urls: vec![SecretUrl::new("amqp://other.example")],
            };
            let broker = Broker::new(
                &settings,
                Topology::new("p", &[], QueueType::Quorum),
                "test",
            );
            broker.close().await;
        }
    }
}
