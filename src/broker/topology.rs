//! Every exchange, queue and binding order-sync uses, derived from the prefix
//! and the consumer list, so one function declares them, prints them and (in
//! tests) deletes them.
//!
//! ```text
//! capture --(sales_order_place_after)--> <p>.orders (topic) --> <p>.orders.relay --> relay
//! relay   --(<consumer>)---------------> <p>.que (direct)   --> <p>.que.<consumer> --> sync service
//! sync service --(any key)-------------> <p>.acks (topic)   --> <p>.acks.listener  --> ack listener
//! rejected/dead-lettered ---------------> <p>.dlx (direct)   --> <p>.dead.{orders,acks,que.<consumer>}
//! ```

use lapin::{
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, ShortString},
    Channel, ExchangeKind,
};

pub use crate::config::{Names, QueueType};

/// The routing key capture publishes with.
pub const CAPTURE_ROUTING_KEY: &str = "sales_order_place_after";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
    consumers: Vec<String>,
    queue_type: QueueType,
    names: Names,
}

/// One exchange to declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSpec {
    pub name: String,
    pub kind: &'static str,
}

/// One queue to declare, with the dead-letter routing it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    pub name: String,
    /// Where rejected messages go: (exchange, routing key); none for dead queues.
    pub dead_letter: Option<(String, String)>,
    /// Deliveries of one message before it is dead-lettered (working queues).
    pub delivery_limit: i64,
}

/// Deliveries of one message from order-sync's own inbox queues before it is
/// dead-lettered. High: a session that fails mid-batch returns its messages
/// (counting a delivery each), and an outage must not dead-letter real work;
/// the roles check the ledger before they consume.
pub const INBOX_DELIVERY_LIMIT: i64 = 100;
/// Deliveries of one message from a consumer's queue before it is
/// dead-lettered. The ledger, not the queue, drives re-delivery: a message
/// dead-lettered here is published again when its row falls due.
pub const CONSUMER_DELIVERY_LIMIT: i64 = 20;
/// Most messages a dead queue keeps; the oldest are dropped first.
pub const DEAD_MAX_LENGTH: i64 = 100_000;
/// Most bytes a dead queue keeps (256 MiB); the oldest are dropped first.
pub const DEAD_MAX_BYTES: i64 = 256 * 1024 * 1024;

/// One binding of a queue to an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingSpec {
    pub exchange: String,
    pub queue: String,
    pub routing_key: String,
}

impl Topology {
    /// The default names (`<prefix>.orders`, `<prefix>.que.<consumer>`, …).
    pub fn new(prefix: &str, consumers: &[String], queue_type: QueueType) -> Self {
        Self::with_names(prefix, consumers, queue_type, Names::default())
    }

    pub fn with_names(
        prefix: &str,
        consumers: &[String],
        queue_type: QueueType,
        names: Names,
    ) -> Self {
        Self {
            prefix: prefix.to_owned(),
            consumers: consumers.to_vec(),
            queue_type,
            names,
        }
    }

    fn name(&self, template: &str) -> String {
        template.replace("{prefix}", &self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }
    pub fn orders_exchange(&self) -> String {
        self.name(&self.names.orders_exchange)
    }
    pub fn relay_queue(&self) -> String {
        self.name(&self.names.relay_queue)
    }
    pub fn que_exchange(&self) -> String {
        self.name(&self.names.que_exchange)
    }
    pub fn consumer_queue(&self, consumer: &str) -> String {
        self.name(&self.names.consumer_queue)
            .replace("{consumer}", consumer)
    }
    pub fn acks_exchange(&self) -> String {
        self.name(&self.names.acks_exchange)
    }
    pub fn acks_queue(&self) -> String {
        self.name(&self.names.acks_queue)
    }
    pub fn dead_exchange(&self) -> String {
        self.name(&self.names.dead_exchange)
    }
    pub fn dead_queue(&self, what: &str) -> String {
        self.name(&self.names.dead_queue).replace("{name}", what)
    }

    pub fn exchanges(&self) -> Vec<ExchangeSpec> {
        vec![
            ExchangeSpec {
                name: self.orders_exchange(),
                kind: "topic",
            },
            ExchangeSpec {
                name: self.que_exchange(),
                kind: "direct",
            },
            ExchangeSpec {
                name: self.acks_exchange(),
                kind: "topic",
            },
            ExchangeSpec {
                name: self.dead_exchange(),
                kind: "direct",
            },
        ]
    }

    /// Working queues and their dead-letter queues. Dead-letter routing keys are
    /// fixed per queue (`x-dead-letter-routing-key`) so a rejected ack, whatever
    /// key it was published with, lands in the one dead queue for acks.
    pub fn queues(&self) -> Vec<QueueSpec> {
        let dlx = self.dead_exchange();
        let mut working = vec![
            (
                self.relay_queue(),
                "orders".to_owned(),
                INBOX_DELIVERY_LIMIT,
            ),
            (self.acks_queue(), "acks".to_owned(), INBOX_DELIVERY_LIMIT),
        ];
        for c in &self.consumers {
            working.push((
                self.consumer_queue(c),
                format!("que.{c}"),
                CONSUMER_DELIVERY_LIMIT,
            ));
        }
        let mut queues = Vec::new();
        for (name, dead_key, limit) in &working {
            queues.push(QueueSpec {
                name: name.clone(),
                dead_letter: Some((dlx.clone(), dead_key.clone())),
                delivery_limit: *limit,
            });
        }
        for (_, dead_key, _) in &working {
            queues.push(QueueSpec {
                name: self.dead_queue(dead_key),
                dead_letter: None,
                delivery_limit: 0,
            });
        }
        queues
    }

    pub fn bindings(&self) -> Vec<BindingSpec> {
        let mut b = vec![
            BindingSpec {
                exchange: self.orders_exchange(),
                queue: self.relay_queue(),
                routing_key: CAPTURE_ROUTING_KEY.to_owned(),
            },
            BindingSpec {
                exchange: self.acks_exchange(),
                queue: self.acks_queue(),
                routing_key: "#".to_owned(),
            },
        ];
        for c in &self.consumers {
            b.push(BindingSpec {
                exchange: self.que_exchange(),
                queue: self.consumer_queue(c),
                routing_key: c.clone(),
            });
        }
        for q in self.queues() {
            if let Some((exchange, key)) = &q.dead_letter {
                b.push(BindingSpec {
                    exchange: exchange.clone(),
                    queue: self.dead_queue(key),
                    routing_key: key.clone(),
                });
            }
        }
        b
    }

    /// The arguments a queue is declared with. Redeclaring with different
    /// arguments is refused by the broker, so this is the one place they're made.
    ///
    /// Bounds: a working queue dead-letters a message delivered more than its
    /// delivery limit (quorum queues; a poison message cannot loop forever),
    /// and a dead queue keeps at most [`DEAD_MAX_LENGTH`] messages and
    /// [`DEAD_MAX_BYTES`], dropping the oldest first (`drop-head`).
    pub fn queue_arguments(&self, q: &QueueSpec) -> FieldTable {
        let mut args = FieldTable::default();
        for (key, value) in self.queue_argument_values(q) {
            args.insert(key.into(), value);
        }
        args
    }

    fn queue_argument_values(&self, q: &QueueSpec) -> Vec<(&'static str, AMQPValue)> {
        let kind = match self.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        let mut args = vec![("x-queue-type", long_string(kind))];
        match &q.dead_letter {
            Some((exchange, key)) => {
                args.push(("x-dead-letter-exchange", long_string(exchange)));
                args.push(("x-dead-letter-routing-key", long_string(key)));
                if self.queue_type == QueueType::Quorum {
                    args.push(("x-delivery-limit", AMQPValue::LongLongInt(q.delivery_limit)));
                }
            }
            None => {
                args.push(("x-max-length", AMQPValue::LongLongInt(DEAD_MAX_LENGTH)));
                args.push(("x-max-length-bytes", AMQPValue::LongLongInt(DEAD_MAX_BYTES)));
                args.push(("x-overflow", long_string("drop-head")));
            }
        }
        args
    }

    /// Declares the exchanges on `channel`.
    pub async fn declare_exchanges(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for e in self.exchanges() {
            let kind = match e.kind {
                "topic" => ExchangeKind::Topic,
                _ => ExchangeKind::Direct,
            };
            channel
                .exchange_declare(e.name.into(), kind, durable, FieldTable::default())
                .await?;
        }
        Ok(())
    }

    /// Declares one queue with its arguments.
    pub async fn declare_queue(
        &self,
        channel: &Channel,
        q: &QueueSpec,
    ) -> Result<(), lapin::Error> {
        channel
            .queue_declare(
                q.name.as_str().into(),
                QueueDeclareOptions::durable(),
                self.queue_arguments(q),
            )
            .await
            .map(|_| ())
    }

    /// Checks that a queue exists, whatever its arguments.
    pub async fn queue_exists(&self, channel: &Channel, name: &str) -> Result<(), lapin::Error> {
        channel
            .queue_declare(
                name.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map(|_| ())
    }

    /// Declares the bindings on `channel`.
    pub async fn declare_bindings(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for b in self.bindings() {
            channel
                .queue_bind(
                    b.queue.into(),
                    b.exchange.into(),
                    b.routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// The exchanges, queues and bindings in RabbitMQ's definitions format
    /// (`rabbitmqctl import_definitions`, the management UI's import), for a
    /// broker set up ahead of order-sync; deploy/rabbitmq/definitions.json is
    /// checked against this.
    ///
    /// `user_of` names each consumer's broker user
    /// (`consumers.<name>.broker_user`, else the consumer's name): the user
    /// whose topic permission limits its acks to its own routing key.
    pub fn definitions(&self, vhost: &str, user_of: impl Fn(&str) -> String) -> serde_json::Value {
        use serde_json::json;
        let exchanges: Vec<_> = self
            .exchanges()
            .into_iter()
            .map(|e| {
                json!({"name": e.name, "vhost": vhost, "type": e.kind, "durable": true,
                       "auto_delete": false, "internal": false, "arguments": {}})
            })
            .collect();
        let queues: Vec<_> = self
            .queues()
            .into_iter()
            .map(|q| {
                let arguments: serde_json::Map<String, serde_json::Value> = self
                    .queue_argument_values(&q)
                    .into_iter()
                    .map(|(k, v)| {
                        let v = match v {
                            AMQPValue::LongString(s) => json!(s.to_string()),
                            AMQPValue::LongLongInt(n) => json!(n),
                            other => json!(format!("{other:?}")),
                        };
                        (k.to_owned(), v)
                    })
                    .collect();
                json!({"name": q.name, "vhost": vhost, "durable": true,
                       "auto_delete": false, "arguments": arguments})
            })
            .collect();
        let bindings: Vec<_> = self
            .bindings()
            .into_iter()
            .map(|b| {
                json!({"source": b.exchange, "vhost": vhost, "destination": b.queue,
                       "destination_type": "queue", "routing_key": b.routing_key, "arguments": {}})
            })
            .collect();
        // Each consumer's broker user may publish acks only under the
        // consumer's own routing key.
        let topic_permissions: Vec<_> = self
            .consumers
            .iter()
            .map(|c| {
                // `exchange` is a name, not a pattern; `write` matches routing keys.
                json!({"user": user_of(c), "vhost": vhost, "exchange": self.acks_exchange(),
                       "write": format!("^{}$", regex_escape(c)), "read": "^$"})
            })
            .collect();
        json!({"exchanges": exchanges, "queues": queues, "bindings": bindings,
               "topic_permissions": topic_permissions})
    }

    /// A human-readable listing, as printed by `order-sync topology`.
    pub fn describe(&self) -> String {
        let mut out = String::from("exchanges:\n");
        for e in self.exchanges() {
            out.push_str(&format!("  {} ({}, durable)\n", e.name, e.kind));
        }
        out.push_str("queues:\n");
        for q in self.queues() {
            let kind = match self.queue_type {
                QueueType::Quorum => "quorum",
                QueueType::Classic => "classic",
            };
            match &q.dead_letter {
                Some((x, k)) => out.push_str(&format!(
                    "  {} ({kind}, durable, dead letters -> {x} key {k})\n",
                    q.name
                )),
                None => out.push_str(&format!("  {} ({kind}, durable)\n", q.name)),
            }
        }
        out.push_str("bindings:\n");
        for b in self.bindings() {
            out.push_str(&format!(
                "  {} --[{}]--> {}\n",
                b.exchange, b.routing_key, b.queue
            ));
        }
        out
    }
}

/// `s` as a regular expression matching only itself (names hold letters,
/// digits, `-`, `_`, `.` and the template's literal text).
fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = ".^$*+?()[]{}|\\/".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// Convenience for lapin's name type.
pub fn short(s: &str) -> ShortString {
    s.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_working_queue_has_a_bound_dead_letter_queue() {
        let t = Topology::new("shop1", &["erp".into(), "wms".into()], QueueType::Quorum);
        let bindings = t.bindings();
        for q in t.queues() {
            if let Some((x, key)) = q.dead_letter {
                assert!(
                    bindings
                        .iter()
                        .any(|b| b.exchange == x && b.routing_key == key),
                    "no dead queue bound for {}",
                    q.name
                );
            }
        }
        assert!(t
            .queues()
            .iter()
            .any(|q| q.name == "shop1.que.wms" && q.dead_letter.is_some()));
        assert!(t
            .describe()
            .contains("shop1.orders --[sales_order_place_after]--> shop1.orders.relay"));
    }

    #[test]
    fn a_consumers_ack_permission_goes_to_its_broker_user() {
        let t = Topology::new("shop1", &["erp".into(), "wms".into()], QueueType::Quorum);
        let defs = t.definitions("shop", |c| {
            if c == "erp" {
                "erp-prod".into()
            } else {
                c.into()
            }
        });
        let perms = defs["topic_permissions"].as_array().unwrap();
        let of = |user: &str| {
            perms
                .iter()
                .find(|p| p["user"] == user)
                .map(|p| p["write"].as_str().unwrap().to_owned())
        };
        assert_eq!(of("erp-prod").as_deref(), Some("^erp$"));
        assert_eq!(of("erp"), None, "the consumer's name is not the user");
        assert_eq!(of("wms").as_deref(), Some("^wms$"));
    }
}
