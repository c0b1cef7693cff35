//! The broker and the sync services on it: `[broker]`, `[broker.names]`, `[consumers]`.

use crate::message::Event;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::{valid_name, MessageFormat, Problems, Secret, SecretUrl, NAME_RULE};

/// The RabbitMQ broker.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerSettings {
    /// `amqp://user:password@host:port/vhost` (vhost `/` is `%2f`), or `amqps://`.
    pub url: SecretUrl,
    /// The other nodes of a RabbitMQ cluster, tried in turn when a node is lost.
    pub failover_urls: Vec<SecretUrl>,
    /// Prefix of every exchange and queue name; isolates shops sharing a broker.
    pub prefix: String,
    /// `quorum` (replicated, the default) or `classic`.
    pub queue_type: QueueType,
    /// Upper bound of pooled broker connections.
    pub pool_max: usize,
    /// Unacknowledged deliveries the relay and ack listener take at once.
    pub prefetch: u16,
    /// Largest message order-sync publishes; a larger order is parked, not sent.
    pub max_message_bytes: usize,
    /// AMQP frame size asked of the broker; sets the client's buffer memory.
    pub frame_max: u32,
    /// Exchange and queue names, as templates over `{prefix}`.
    pub names: Names,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

/// Name templates: `{prefix}` is `broker.prefix`, `{consumer}` a consumer's
/// name, `{name}` what a dead-letter queue holds (`orders`, `acks`, `que.<consumer>`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Names {
    /// Capture publishes here (topic exchange).
    pub orders_exchange: String,
    /// The relay's inbox, bound to `orders_exchange`.
    pub relay_queue: String,
    /// The relay publishes here (direct exchange, routing key = consumer name).
    pub que_exchange: String,
    /// One per sync service: what it consumes.
    pub consumer_queue: String,
    /// Sync services publish their acks here (topic exchange).
    pub acks_exchange: String,
    /// The ack listener's inbox, bound to `acks_exchange`.
    pub acks_queue: String,
    /// Where every queue's rejected messages go (direct exchange).
    pub dead_exchange: String,
    /// One per working queue, holding what was rejected there.
    pub dead_queue: String,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            orders_exchange: "{prefix}.orders".into(),
            relay_queue: "{prefix}.orders.relay".into(),
            que_exchange: "{prefix}.que".into(),
            consumer_queue: "{prefix}.que.{consumer}".into(),
            acks_exchange: "{prefix}.acks".into(),
            acks_queue: "{prefix}.acks.listener".into(),
            dead_exchange: "{prefix}.dlx".into(),
            dead_queue: "{prefix}.dead.{name}".into(),
        }
    }
}

impl BrokerSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        self.url.check("broker.url", &["amqp", "amqps"], p);
        for url in &self.failover_urls {
            url.check("broker.failover_urls", &["amqp", "amqps"], p);
        }
        p.check(valid_name(&self.prefix), "broker.prefix", NAME_RULE);
        p.check(self.pool_max >= 2, "broker.pool_max", "must be at least 2");
        p.check(self.prefetch >= 1, "broker.prefetch", "must be at least 1");
        p.within(
            self.max_message_bytes,
            4096..=512 * 1024 * 1024,
            "broker.max_message_bytes",
        );
        p.within(self.frame_max, 4096..=131_072, "broker.frame_max");
        self.names.validate(p);
    }
}

impl Names {
    fn validate(&self, p: &mut Problems) {
        for (key, template, needs) in [
            ("broker.names.orders_exchange", &self.orders_exchange, None),
            ("broker.names.relay_queue", &self.relay_queue, None),
            ("broker.names.que_exchange", &self.que_exchange, None),
            (
                "broker.names.consumer_queue",
                &self.consumer_queue,
                Some("{consumer}"),
            ),
            ("broker.names.acks_exchange", &self.acks_exchange, None),
            ("broker.names.acks_queue", &self.acks_queue, None),
            ("broker.names.dead_exchange", &self.dead_exchange, None),
            ("broker.names.dead_queue", &self.dead_queue, Some("{name}")),
        ] {
            let filled = template
                .replace("{prefix}", "p")
                .replace("{consumer}", "c")
                .replace("{name}", "n");
            p.check(
                !filled.is_empty() && filled.len() <= 200 && !filled.starts_with("amq."),
                key,
                "must be a name of at most 200 characters, not starting with `amq.`",
            );
            if let Some(placeholder) = needs {
                p.check(
                    template.contains(placeholder),
                    key,
                    format!("must contain {placeholder}, or every one would share one queue"),
                );
            }
        }
    }
}

/// The sync services that receive orders.
///
/// Not `deny_unknown_fields`: every other key is a consumer's own table
/// (`[consumers.erp]`), checked by `validate` against `names`.
#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerSettings {
    /// Names of the sync services; each gets its own queue and ledger rows.
    pub names: Vec<String>,
    /// Those of `names` that fetch orders over HTTP instead of from a queue.
    pub pull: Vec<String>,
    /// Per-consumer settings, `[consumers.<name>]`.
    #[serde(flatten)]
    pub each: BTreeMap<String, ConsumerOptions>,
}

/// One consumer's own settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerOptions {
    /// The RabbitMQ user this consumer logs in as; when set, its acks must
    /// carry that user as their (broker-validated) `user_id` property.
    pub broker_user: Option<String>,
    /// A pull consumer's own bearer token for `/api/pull/<name>`; from the
    /// environment (`ORDER_SYNC__CONSUMERS__<NAME>__TOKEN`).
    pub token: Secret,
    /// This consumer's message format, when not `message.format`.
    pub format: Option<MessageFormat>,
    /// Deliver to this consumer by HTTPS POST instead of a queue.
    pub webhook: Option<WebhookSettings>,
    /// The events of an order's life this consumer gets, of `placed`,
    /// `invoiced`, `shipped`, `refunded`, `canceled`, `status_changed`;
    /// unset means `["placed"]` (what every consumer got before events).
    pub events: Option<Vec<String>>,
    /// Only orders of these store ids reach this consumer (with `websites`:
    /// either); empty means every store `capture.filter` lets through.
    #[serde(deserialize_with = "store_ids")]
    pub stores: Vec<u16>,
    /// Only orders of the stores in these websites (codes, e.g. `base`).
    pub websites: Vec<String>,
    /// Only orders in one of these states when their `placed` goes (for a
    /// held order, when it is released: `capture.hold_states` still apply);
    /// empty means every state.
    pub states: Vec<String>,
    /// The order fields this consumer gets, as paths (`increment_id`,
    /// `items.sku`, `shipping_address`, a `*` may end one); empty means the
    /// whole order. `entity_id`, `increment_id`, `store_id`, `state` and
    /// `status` are always kept.
    pub fields: Vec<String>,
    /// Order fields removed for this consumer, beside `message.deny_fields`.
    pub deny_fields: Vec<String>,
    /// Statuses this consumer writes into Magento itself: a `status_changed`
    /// to one of them is recorded for the others, not sent back to it.
    pub own_statuses: Vec<String>,
}

/// Store ids as numbers, or as the text an environment variable gives
/// (`ORDER_SYNC__CONSUMERS__WMS__STORES=1,2`): per-consumer tables are read
/// through a map, where the config crate keeps every value as it found it.
fn store_ids<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Number(u16),
        Text(String),
    }
    Vec::<Id>::deserialize(d)?
        .into_iter()
        .map(|id| match id {
            Id::Number(n) => Ok(n),
            Id::Text(t) => t.trim().parse().map_err(|_| {
                serde::de::Error::custom(format!("`{t}` is not a store id (0 to 65535)"))
            }),
        })
        .collect()
}

/// A consumer delivered by HTTPS POST (`[consumers.<name>.webhook]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where each message is POSTed: `https://` (`http://` only to this host).
    pub url: SecretUrl,
    /// The environment variable holding the signing secret (16+ characters).
    pub secret_env: String,
    /// How long the receiver may take to answer.
    #[serde(with = "humantime_serde", default = "default_webhook_timeout")]
    pub timeout: std::time::Duration,
    /// Requests in flight to this receiver at once.
    #[serde(default = "default_webhook_concurrency")]
    pub concurrency: usize,
}

fn default_webhook_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(10)
}

fn default_webhook_concurrency() -> usize {
    4
}

impl WebhookSettings {
    /// The signing secret, from the environment.
    pub fn secret(&self) -> Option<Secret> {
        std::env::var(&self.secret_env)
            .ok()
            .filter(|s| s.len() >= 16)
            .map(Secret::new)
    }

    fn validate(&self, name: &str, p: &mut Problems) {
        let key = format!("consumers.{name}.webhook.url");
        match url::Url::parse(self.url.expose()) {
            Ok(u) => {
                let local = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
                p.check(
                    u.scheme() == "https" || (u.scheme() == "http" && local),
                    &key,
                    format!("must be https:// (http:// only to this host): {}", self.url),
                );
            }
            Err(e) => p.add(&key, format!("not a URL ({e}): {}", self.url)),
        }
        // The variable itself is read when the webhooks start (a missing one
        // stops start-up naming this key): settings load without it.
        p.check(
            !self.secret_env.is_empty(),
            &format!("consumers.{name}.webhook.secret_env"),
            "name the environment variable holding the signing secret",
        );
        p.within(
            self.concurrency,
            1..=64,
            &format!("consumers.{name}.webhook.concurrency"),
        );
        p.check(
            self.timeout >= std::time::Duration::from_millis(100),
            &format!("consumers.{name}.webhook.timeout"),
            "must be at least 100ms",
        );
    }
}

impl ConsumerSettings {
    /// The consumers that get a queue and are published to (neither pulling
    /// over HTTP nor delivered by webhook).
    pub fn push(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| !self.pull.contains(n) && !self.is_webhook(n))
            .cloned()
            .collect()
    }

    /// The consumers delivered by webhook, with their settings.
    pub fn webhooks(&self) -> Vec<(String, WebhookSettings)> {
        self.names
            .iter()
            .filter_map(|n| Some((n.clone(), self.each.get(n)?.webhook.clone()?)))
            .collect()
    }

    /// Whether `name` is delivered by webhook.
    pub fn is_webhook(&self, name: &str) -> bool {
        self.each.get(name).is_some_and(|o| o.webhook.is_some())
    }

    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            !self.names.is_empty(),
            "consumers.names",
            "name at least one sync service",
        );
        for name in &self.names {
            p.check(
                valid_name(name),
                "consumers.names",
                format!("`{name}` {NAME_RULE}"),
            );
        }
        let mut sorted = self.names.clone();
        sorted.sort();
        sorted.dedup();
        p.check(
            sorted.len() == self.names.len(),
            "consumers.names",
            "lists a name twice",
        );
        for name in &self.pull {
            p.check(
                self.names.contains(name),
                "consumers.pull",
                format!("`{name}` is not in consumers.names"),
            );
            let token = &self.options(name).token;
            p.check(
                token.expose().len() >= 16,
                &format!("consumers.{name}.token"),
                "a pull consumer needs its own token of at least 16 characters \
                 (ORDER_SYNC__CONSUMERS__<NAME>__TOKEN)",
            );
            super::surface::check_token_chars(token, &format!("consumers.{name}.token"), p);
        }
        for (name, options) in &self.each {
            p.check(
                self.names.contains(name),
                &format!("consumers.{name}"),
                "is not in consumers.names",
            );
            if let Some(webhook) = &options.webhook {
                webhook.validate(name, p);
                p.check(
                    !self.pull.contains(name),
                    &format!("consumers.{name}.webhook"),
                    "a consumer pulls over HTTP or gets webhooks, not both",
                );
            }
            if let Some(events) = &options.events {
                let key = format!("consumers.{name}.events");
                p.check(!events.is_empty(), &key, "name at least one event");
                for e in events {
                    p.check(
                        Event::parse(e).is_some(),
                        &key,
                        format!("`{e}` is not an event; use {}", Event::names()),
                    );
                }
            }
            p.check(
                options.token.is_empty() || self.pull.contains(name),
                &format!("consumers.{name}.token"),
                "only pull consumers (consumers.pull) use a token",
            );
            for (key, paths) in [
                ("fields", &options.fields),
                ("deny_fields", &options.deny_fields),
            ] {
                for field in paths {
                    p.check(
                        super::surface::is_field_path(field),
                        &format!("consumers.{name}.{key}"),
                        format!(
                            "`{field}` is not a field path like `items.sku` (a `*` may end it)"
                        ),
                    );
                }
            }
            for (key, list) in [
                ("websites", &options.websites),
                ("states", &options.states),
                ("own_statuses", &options.own_statuses),
            ] {
                p.check(
                    list.iter().all(|v| !v.trim().is_empty()),
                    &format!("consumers.{name}.{key}"),
                    "lists an empty name",
                );
            }
        }
    }

    /// A consumer's own settings (the defaults when it has no table).
    pub fn options(&self, name: &str) -> &ConsumerOptions {
        /// What a consumer without a table of its own has.
        const NONE: &ConsumerOptions = &ConsumerOptions {
            broker_user: None,
            token: Secret::EMPTY,
            format: None,
            webhook: None,
            events: None,
            stores: Vec::new(),
            websites: Vec::new(),
            states: Vec::new(),
            fields: Vec::new(),
            deny_fields: Vec::new(),
            own_statuses: Vec::new(),
        };
        self.each.get(name).unwrap_or(NONE)
    }

    /// The events `name` subscribes to (`placed` alone unless it says otherwise).
    pub fn events(&self, name: &str) -> Vec<Event> {
        match &self.options(name).events {
            None => vec![Event::Placed],
            Some(list) => list.iter().filter_map(|e| Event::parse(e)).collect(),
        }
    }

    /// The consumers subscribed to `event`, in `names` order.
    pub fn subscribed(&self, event: Event) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| self.events(n).contains(&event))
            .cloned()
            .collect()
    }

    /// Whether any consumer wants events after placement.
    pub fn want_lifecycle(&self) -> bool {
        self.names
            .iter()
            .any(|n| self.events(n).iter().any(|e| *e != Event::Placed))
    }

    /// Whether `name` fetches over HTTP.
    pub fn is_pull(&self, name: &str) -> bool {
        self.pull.iter().any(|p| p == name)
    }
}
