//! [`SyncConsumer`]: consume one consumer's queue, hand each order to the
//! service's function, publish the ack, then acknowledge the delivery.

use std::{
    collections::{HashSet, VecDeque},
    future::Future,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

use lapin::{
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
        ConfirmSelectOptions,
    },
    types::FieldTable,
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::{
    amqp::{self, Next, Refused},
    supervise::Reconnect,
    OrderMessage, SyncedFile,
};

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The function succeeded; a `synced` ack was published.
    Synced,
    /// The function failed with this text; a `failed` ack was published.
    Failed(String),
    /// Already synced by this process: not handed over again, the ack re-sent.
    Duplicate,
    /// Not an order message: dead-lettered.
    Rejected(String),
}

/// Why a session of the consumer ended.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// No node of the broker could be reached (or it refused the login).
    #[error("cannot connect to RabbitMQ at {url}: {reason}")]
    Connect {
        /// The node's URL, without its password.
        url: String,
        /// What the connection attempt said.
        reason: String,
    },
    /// The channel or connection failed mid-work.
    #[error("RabbitMQ channel failed: {0}")]
    Channel(#[from] lapin::Error),
    /// What was synced could not be written to the [`SyncedFile`]: the
    /// delivery is not acknowledged, and comes again.
    #[error("cannot record the synced message in the synced file: {0}")]
    Synced(std::io::Error),
    /// The broker did not take the ack.
    #[error("the ack was not taken by the broker: {0}")]
    Refused(#[from] Refused),
    /// The broker ended the consumer on the queue.
    #[error("the RabbitMQ consumer on `{0}` ended (connection or channel closed)")]
    Ended(String),
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

/// What an order became in the sync service, for its `synced` ack: the
/// service's own id for it (`remote_id`, at most 255 characters) and where it
/// shows it (`remote_url`, http(s)). order-sync keeps both and shows them
/// with the order. A function that returns `Ok(())` says nothing more.
///
/// ```
/// use order_sync_consumer::Remote;
/// let r = Remote::id("SO-4711").with_url("https://erp.example/so/4711");
/// assert_eq!(r.id.as_deref(), Some("SO-4711"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Remote {
    /// The service's own id for the order.
    pub id: Option<String>,
    /// Where the service shows that record.
    pub url: Option<String>,
}

impl Remote {
    /// The order became `id` in the sync service.
    pub fn id(id: impl Into<String>) -> Self {
        Self {
            id: Some(id.into()),
            url: None,
        }
    }

    /// And is shown at `url`.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }
}

impl From<()> for Remote {
    fn from(_: ()) -> Self {
        Self::default()
    }
}

/// A confirm-mode channel that publishes acks, and the connection it lives on.
pub struct AckPublisher {
    channel: Channel,
    /// Kept so the channel lives; the consuming session opens its channel here too.
    connection: Connection,
}

/// A sync service's consumer of one queue.
pub struct SyncConsumer {
    urls: Vec<String>,
    /// The node that answered last; the next session starts there.
    current: AtomicUsize,
    name: String,
    queue: String,
    acks_exchange: String,
    prefetch: u16,
    seen: Mutex<Seen>,
    /// What was synced, kept across restarts (when given).
    synced: Option<SyncedFile>,
}

impl SyncConsumer {
    /// A consumer named `consumer` on the default queue names of `prefix`
    /// (order-sync's `broker.prefix`): it reads `<prefix>.que.<consumer>` and
    /// acks to `<prefix>.acks`.
    pub fn new(url: &str, prefix: &str, consumer: &str) -> Self {
        Self {
            urls: vec![url.to_owned()],
            current: AtomicUsize::new(0),
            name: consumer.to_owned(),
            queue: format!("{prefix}.que.{consumer}"),
            acks_exchange: format!("{prefix}.acks"),
            prefetch: 50,
            seen: Mutex::new(Seen {
                order: VecDeque::new(),
                set: HashSet::new(),
                capacity: 10_000,
            }),
            synced: None,
        }
    }

    /// Keeps what this service synced in `file` too, so a repeat of a
    /// message is recognised after a restart: written (and on disk) before
    /// the ack is published. Only a crash while your function runs, or
    /// before that write, brings an order to it twice.
    pub fn with_synced_file(mut self, file: SyncedFile) -> Self {
        self.synced = Some(file);
        self
    }

    /// Other nodes of the cluster, tried in turn when the current one is lost.
    pub fn with_failover_urls(mut self, urls: impl IntoIterator<Item = String>) -> Self {
        self.urls.extend(urls);
        self
    }

    /// The queue to read, where order-sync's `broker.names` renames it.
    pub fn with_queue(mut self, queue: impl Into<String>) -> Self {
        self.queue = queue.into();
        self
    }

    /// The exchange acks go to, where order-sync's `broker.names` renames it.
    pub fn with_acks_exchange(mut self, exchange: impl Into<String>) -> Self {
        self.acks_exchange = exchange.into();
        self
    }

    /// Unacknowledged deliveries taken at once (default 50).
    pub fn with_prefetch(mut self, prefetch: u16) -> Self {
        self.prefetch = prefetch.max(1);
        self
    }

    /// The consumer's name, as in order-sync's `consumers.names`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The queue this consumer reads.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// A connection to the first node that answers, starting with the one
    /// that answered last.
    async fn connect(&self) -> Result<Connection, ConsumerError> {
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for step in 0..self.urls.len() {
            let i = (start + step) % self.urls.len();
            let properties = ConnectionProperties::default()
                .with_connection_name(format!("order-sync consumer {}", self.name).into());
            match Connection::connect(&self.urls[i], properties).await {
                Ok(c) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(c);
                }
                Err(e) => {
                    last = Some(ConsumerError::Connect {
                        url: redacted(&self.urls[i]),
                        reason: e.to_string(),
                    })
                }
            }
        }
        Err(last.unwrap_or_else(|| ConsumerError::Connect {
            url: String::new(),
            reason: "no broker URL given".into(),
        }))
    }

    /// A connection of its own with a confirm-mode channel, for publishing
    /// acks outside [`run`](Self::run) (as tests driving [`handle`](Self::handle) do).
    pub async fn publisher(&self) -> Result<AckPublisher, ConsumerError> {
        let connection = self.connect().await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(AckPublisher {
            channel,
            connection,
        })
    }

    /// Consumes until shutdown, reconnecting as needed. The queue must exist
    /// (order-sync declares it); this needs only read access to it and write
    /// access to the acks exchange.
    pub async fn run<F, Fut, R>(&self, handler: F, shutdown: CancellationToken)
    where
        F: Fn(OrderMessage) -> Fut,
        Fut: Future<Output = Result<R, String>>,
        R: Into<Remote>,
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
    }

    async fn session<F, Fut, R>(
        &self,
        handler: &F,
        shutdown: &CancellationToken,
    ) -> Result<(), ConsumerError>
    where
        F: Fn(OrderMessage) -> Fut,
        Fut: Future<Output = Result<R, String>>,
        R: Into<Remote>,
    {
        let publisher = self.publisher().await?;
        let channel = publisher.connection.create_channel().await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                self.queue.as_str().into(),
                format!("sync-{}", self.name).as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            match amqp::next_batch(&mut deliveries, self.prefetch as usize, shutdown).await? {
                Next::Batch(batch) => {
                    for delivery in &batch {
                        self.handle(&publisher, delivery, handler).await?;
                    }
                }
                Next::Shutdown => break,
                Next::Ended => return Err(ConsumerError::Ended(self.queue.clone())),
            }
        }
        // Unacknowledged deliveries go back to the queue when the channel closes.
        let _ = channel.close(200, "shutdown".into()).await;
        let _ = publisher.connection.close(200, "shutdown".into()).await;
        Ok(())
    }

    /// One delivery: hand it over (unless already synced), publish the ack,
    /// and only then acknowledge the broker message.
    pub async fn handle<F, Fut, R>(
        &self,
        publisher: &AckPublisher,
        delivery: &Delivery,
        handler: &F,
    ) -> Result<Handled, ConsumerError>
    where
        F: Fn(OrderMessage) -> Fut,
        Fut: Future<Output = Result<R, String>>,
        R: Into<Remote>,
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
            .expect("no code panics while holding this lock")
            .contains(&msg.message_id)
            || self
                .synced
                .as_ref()
                .is_some_and(|f| f.contains(&msg.message_id));
        let (message_id, entity_id) = (msg.message_id.clone(), msg.entity_id());
        let mut remote = Remote::default();
        let outcome = if duplicate {
            Handled::Duplicate
        } else {
            match handler(msg).await {
                Ok(r) => {
                    remote = r.into();
                    Handled::Synced
                }
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
        if let Some(id) = remote.id {
            ack["remote_id"] = Value::String(id);
        }
        if let Some(url) = remote.url {
            ack["remote_url"] = Value::String(url);
        }
        if let (Handled::Synced, Some(file)) = (&outcome, &self.synced) {
            file.remember(&message_id).map_err(ConsumerError::Synced)?;
        }
        // Routed by the consumer's own name: order-sync applies an ack only
        // when its routing key names the consumer it is for.
        let confirm = amqp::send(
            &publisher.channel,
            &self.acks_exchange,
            &self.name,
            &serde_json::to_vec(&ack).expect("a JSON value serializes"),
            BasicProperties::default().with_content_type("application/json".into()),
        )
        .await?;
        amqp::confirmation(confirm.await?)?;
        if outcome == Handled::Synced {
            self.seen
                .lock()
                .expect("no code panics while holding this lock")
                .insert(message_id);
        }
        delivery.ack(BasicAckOptions::default()).await?;
        Ok(outcome)
    }
}

/// A URL with its password hidden, for error messages; nothing of one that
/// does not parse, since any part of it could be the secret.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                // Cannot fail: a URL with a password has a host.
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<unparseable url>".into(),
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

    #[test]
    fn passwords_are_hidden_in_connection_errors() {
        assert_eq!(
            redacted("amqp://erp:hunter2@rabbit:5672/%2f"),
            "amqp://erp:***@rabbit:5672/%2f"
        );
        assert_eq!(redacted("amqp://rabbit/%2f"), "amqp://rabbit/%2f");
        assert_eq!(redacted("amqp://erp:hunter2@[rabbit"), "<unparseable url>");
    }
}
