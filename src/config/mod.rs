//! Settings: one typed tree, loaded in layers and validated before any role starts.
//!
//! Layers, later ones winning: the defaults compiled in from `config/default.toml`
//! (so every key always has a documented value), an optional file given with
//! `--config`, then environment variables `ORDER_SYNC__SECTION__KEY`
//! (lists comma-separated, e.g. `ORDER_SYNC__CONSUMERS__NAMES=erp,wms`).
//!
//! Every problem is reported as `key: what is wrong`, all of them at once, so an
//! operator fixes a broken deployment in one round. Each section checks itself
//! (`validate` beside its type). URLs are kept in [`SecretUrl`], whose
//! `Debug`/`Display` never show the password.

mod broker;
mod roles;
mod secret;
mod sources;
mod surface;

use std::{fmt, path::Path};

use serde::Deserialize;

pub use broker::{
    BrokerSettings, ConsumerOptions, ConsumerSettings, Names, QueueType, WebhookSettings,
};
pub use roles::{
    AckSettings, BackoffSettings, BinlogSettings, CaptureMode, CaptureSettings, FilterSettings,
    HoldCanceled, LifecycleSettings, RelaySettings, RetentionSettings, Schedule, StartFrom,
    WriteBackSettings,
};
pub use secret::{Secret, SecretUrl};
pub use sources::{LedgerSettings, MagentoSettings, ShopSettings, TablePrefix};
pub use surface::{HttpSettings, LogFormat, LogSettings, MessageFormat, MessageSettings};

/// The defaults, compiled in so that the binary runs with only the keys that differ.
pub const DEFAULT_TOML: &str = include_str!("../../config/default.toml");

/// Why settings could not be loaded. Each entry names the key it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {path}: {message}")]
    File { path: String, message: String },
    #[error("invalid configuration:\n{}", .0.iter().map(|e| format!("  - {e}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<KeyError>),
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn key_error(key: &str, message: impl Into<String>) -> KeyError {
    KeyError {
        key: key.to_owned(),
        message: message.into(),
    }
}

/// The problems found so far, each under its key.
#[derive(Default)]
struct Problems(Vec<KeyError>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(key_error(key, message));
    }

    fn check(&mut self, ok: bool, key: &str, message: impl Into<String>) {
        if !ok {
            self.add(key, message);
        }
    }

    /// A number that must lie in `range`; the message names the bounds.
    fn within<T: PartialOrd + std::fmt::Display>(
        &mut self,
        value: T,
        range: std::ops::RangeInclusive<T>,
        key: &str,
    ) {
        if !range.contains(&value) {
            let message = format!("must be between {} and {}", range.start(), range.end());
            self.add(key, message);
        }
    }
}

/// What shop names, prefixes and consumer names may be: they end up in queue
/// names, message ids and lock names.
const NAME_RULE: &str = "must be 1-64 characters of letters, digits, `-`, `_` or `.`";

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The whole configuration tree. Field docs are the short form of the comments in
/// `config/default.toml`, which is the reference operators read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub shop: ShopSettings,
    pub magento: MagentoSettings,
    pub ledger: LedgerSettings,
    pub broker: BrokerSettings,
    pub consumers: ConsumerSettings,
    pub capture: CaptureSettings,
    pub relay: RelaySettings,
    pub acks: AckSettings,
    pub message: MessageSettings,
    pub http: HttpSettings,
    pub retention: RetentionSettings,
    pub write_back: WriteBackSettings,
    pub log: LogSettings,
}

impl Settings {
    /// What these settings do, one line per area, secrets hidden: what
    /// `order-sync check-config` prints.
    pub fn summary(&self) -> String {
        let yes_no = |b: bool| if b { "on" } else { "off" };
        let consumers: Vec<String> = self
            .consumers
            .names
            .iter()
            .map(|n| {
                let how = if self.consumers.is_pull(n) {
                    "pull"
                } else if self.consumers.is_webhook(n) {
                    "webhook"
                } else {
                    "queue"
                };
                match &self.consumers.options(n).broker_user {
                    Some(u) => format!("{n} ({how}, broker user {u})"),
                    None => format!("{n} ({how})"),
                }
            })
            .collect();
        let filter = &self.capture.filter;
        let filtered = !(filter.store_ids.is_empty()
            && filter.website_codes.is_empty()
            && filter.states.is_empty()
            && filter.statuses.is_empty());
        let lines = [
            ("shop", self.shop.name.clone()),
            (
                "magento",
                format!(
                    "version {}, {} (table prefix {:?})",
                    self.magento.version,
                    self.magento.url,
                    self.magento.table_prefix.as_str()
                ),
            ),
            ("ledger", format!("{}", self.ledger.url)),
            (
                "broker",
                format!(
                    "{} and {} failover node(s), prefix {}, {:?} queues",
                    self.broker.url,
                    self.broker.failover_urls.len(),
                    self.broker.prefix,
                    self.broker.queue_type
                ),
            ),
            ("consumers", consumers.join(", ")),
            (
                "capture",
                format!(
                    "every {}, up to {} orders a poll, fresh ledger starts at {:?}, filter {}",
                    humantime::format_duration(self.capture.poll_interval),
                    self.capture.batch_size,
                    self.capture.start_from,
                    if filtered { "set" } else { "none" }
                ),
            ),
            (
                "relay",
                format!(
                    "re-delivery {:?}, at most {} deliveries, backoff {} x{} up to {}",
                    self.relay.schedule,
                    self.relay.max_attempts,
                    humantime::format_duration(self.relay.backoff.initial),
                    self.relay.backoff.multiplier,
                    humantime::format_duration(self.relay.backoff.max_interval)
                ),
            ),
            (
                "http",
                if self.http.enabled {
                    format!(
                        "{}, operator token {}, reads {}",
                        self.http.listen,
                        if self.http.api_token.is_empty() {
                            "not set"
                        } else {
                            "set"
                        },
                        if self.http.protect_reads {
                            "protected"
                        } else {
                            "open"
                        }
                    )
                } else {
                    "off".into()
                },
            ),
            (
                "retention",
                format!(
                    "{}, orders synced longer than {} ago",
                    yes_no(self.retention.enabled),
                    humantime::format_duration(self.retention.synced_older_than)
                ),
            ),
            ("write-back", yes_no(self.write_back.enabled).into()),
            ("log", format!("{:?}, {}", self.log.format, self.log.filter)),
        ];
        let mut out: String = lines
            .iter()
            .map(|(k, v)| format!("{k:<11} {v}\n"))
            .collect();
        // Each consumer's part of the shop and of each order, when it has one.
        for n in &self.consumers.names {
            let o = self.consumers.options(n);
            let mut said = vec![format!(
                "events {}",
                self.consumers
                    .events(n)
                    .iter()
                    .map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
            let list = |v: &[String]| v.join(", ");
            if !o.stores.is_empty() || !o.websites.is_empty() {
                let stores: Vec<String> = o.stores.iter().map(u16::to_string).collect();
                let mut parts = vec![];
                if !stores.is_empty() {
                    parts.push(format!("stores {}", stores.join(", ")));
                }
                if !o.websites.is_empty() {
                    parts.push(format!("websites {}", list(&o.websites)));
                }
                said.push(format!("only {}", parts.join(" or ")));
            }
            if !o.states.is_empty() {
                said.push(format!("only orders placed in {}", list(&o.states)));
            }
            if o.fields.is_empty() {
                said.push("the whole order".into());
            } else {
                said.push(format!(
                    "only the fields {} (and {})",
                    list(&o.fields),
                    crate::magento::shape::ALWAYS_KEPT.join(", ")
                ));
            }
            let mut deny = self.message.deny_fields.clone();
            deny.extend(o.deny_fields.iter().cloned());
            if !deny.is_empty() {
                said.push(format!("without {}", list(&deny)));
            }
            if !o.own_statuses.is_empty() {
                said.push(format!(
                    "not sent its own status changes to {}",
                    list(&o.own_statuses)
                ));
            }
            out.push_str(&format!("{:<11} {n}: {}\n", "consumer", said.join("; ")));
        }
        out
    }

    /// Checks everything a type cannot: ranges, URL schemes, names; every
    /// section in turn, all problems together.
    /// Each pull consumer's token is its own, and none is the operators':
    /// a token shared would let one consumer fetch or settle another's
    /// orders, or a sync service act as an operator.
    fn check_tokens_distinct(&self, p: &mut Problems) {
        let operator = &self.http.api_token;
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for name in &self.consumers.pull {
            let token = self.consumers.options(name).token.expose();
            if token.is_empty() {
                continue;
            }
            let key = format!("consumers.{name}.token");
            p.check(
                operator.is_empty() || token != operator.expose(),
                &key,
                "must differ from http.api_token (the operators' token)",
            );
            if let Some((other, _)) = seen.iter().find(|(_, t)| *t == token) {
                p.check(
                    false,
                    &key,
                    format!(
                        "must differ from consumers.{other}.token: each pull consumer has its own"
                    ),
                );
            }
            seen.push((name, token));
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut p = Problems::default();
        self.shop.validate(&mut p);
        self.magento.validate(&mut p);
        self.ledger.validate(&mut p);
        self.broker.validate(&mut p);
        self.consumers.validate(&mut p);
        self.capture.validate(&mut p);
        self.relay.validate(&mut p);
        self.acks.validate(&mut p);
        self.message.validate(&mut p);
        self.http.validate(&mut p);
        self.retention.validate(&mut p);
        self.write_back.validate(&mut p);
        self.log.validate(&mut p);
        self.check_tokens_distinct(&mut p);
        if p.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(p.0))
        }
    }
}

/// Keys whose environment variable is a comma-separated list.
const LIST_KEYS: &[&str] = &[
    "consumers.names",
    "consumers.pull",
    "broker.failover_urls",
    "message.deny_fields",
    "capture.filter.store_ids",
    "capture.filter.website_codes",
    "capture.filter.states",
    "capture.filter.statuses",
    "capture.hold_states",
];

/// A consumer's list keys, `ORDER_SYNC__CONSUMERS__<NAME>__<KEY>`.
const CONSUMER_LIST_KEYS: &[&str] = &[
    "events",
    "stores",
    "websites",
    "states",
    "fields",
    "deny_fields",
    "own_statuses",
];

/// The key a per-consumer list variable (`ORDER_SYNC__CONSUMERS__WMS__STORES`)
/// sets, for the list variables whose key holds a name.
fn consumer_list_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix("ORDER_SYNC__CONSUMERS__")?;
    CONSUMER_LIST_KEYS.iter().find_map(|key| {
        let name = rest.strip_suffix(&format!("__{}", key.to_uppercase()))?;
        (!name.is_empty() && !name.contains("__"))
            .then(|| format!("consumers.{}.{key}", name.to_lowercase()))
    })
}

/// Loads settings from the compiled-in defaults, an optional file and the environment.
pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
    load_with_env(file, std::env::vars())
}

/// [`load`] with the environment given explicitly, so tests do not touch the process env.
pub fn load_with_env(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Settings, ConfigError> {
    let mut builder = config::Config::builder().add_source(config::File::from_str(
        DEFAULT_TOML,
        config::FileFormat::Toml,
    ));
    if let Some(path) = file {
        if !path.exists() {
            return Err(ConfigError::File {
                path: path.display().to_string(),
                message: "no such file".into(),
            });
        }
        builder = builder.add_source(config::File::from(path).format(config::FileFormat::Toml));
    }
    let mut env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("ORDER_SYNC__"))
        .collect();
    // List variables are split here, not by the `config` crate: its list
    // parsing needs `try_parsing`, which would also turn a token of digits
    // into a number (losing leading zeros) and a one-element list into a
    // number. An empty variable is an empty list.
    let named: Vec<(String, String)> = env
        .keys()
        .filter_map(|var| Some((var.clone(), consumer_list_key(var)?)))
        .collect();
    let fixed = LIST_KEYS.iter().map(|key| {
        (
            format!("ORDER_SYNC__{}", key.replace('.', "__").to_uppercase()),
            key.to_string(),
        )
    });
    for (var, key) in fixed.chain(named) {
        if let Some(value) = env.remove(&var) {
            let items: Vec<String> = value
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect();
            builder = builder
                .set_override(key, items)
                .expect("a list of strings is a valid override");
        }
    }
    // Everything else stays text until its typed key reads it.
    builder = builder.add_source(
        config::Environment::with_prefix("ORDER_SYNC")
            .prefix_separator("__")
            .separator("__")
            .source(Some(env)),
    );
    let raw = builder.build().map_err(|e| from_config_error(e, file))?;
    let settings: Settings = raw
        .try_deserialize()
        .map_err(|e| from_config_error(e, file))?;
    settings.validate()?;
    Ok(settings)
}

/// Turns the `config` crate's error into ours, keeping the key it names.
fn from_config_error(e: config::ConfigError, file: Option<&Path>) -> ConfigError {
    match e {
        config::ConfigError::Type {
            key: Some(key),
            unexpected,
            expected,
            ..
        } => ConfigError::Invalid(vec![key_error(
            &key,
            format!("invalid type: {unexpected}, expected {expected}"),
        )]),
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => {
            // The inner message may repeat "for key `x`"; keep one format.
            let message = error.to_string();
            let message = message.split(" for key `").next().unwrap_or("").to_owned();
            ConfigError::Invalid(vec![key_error(&key, message)])
        }
        config::ConfigError::Message(m) => {
            // serde messages for unknown/missing fields carry no path; name the field.
            let key = field_in_message(&m).unwrap_or("?").to_owned();
            ConfigError::Invalid(vec![key_error(&key, m)])
        }
        config::ConfigError::FileParse { uri, cause } => ConfigError::File {
            path: uri.unwrap_or_else(|| file.map(|p| p.display().to_string()).unwrap_or_default()),
            message: cause.to_string(),
        },
        config::ConfigError::NotFound(key) => {
            ConfigError::Invalid(vec![key_error(&key, "missing")])
        }
        other => ConfigError::Invalid(vec![key_error("?", other.to_string())]),
    }
}

fn field_in_message(m: &str) -> Option<&str> {
    let start = m.find('`')? + 1;
    let len = m[start..].find('`')?;
    Some(&m[start..start + len])
}

#[cfg(test)]
mod tests;
