//! Settings: one typed tree, loaded in layers and validated before any role starts.
//!
//! Layers, later ones winning: the defaults compiled in from `config/default.toml`
//! (so every key always has a documented value), an optional file given with
//! `--config`, then environment variables `ORDER_SYNC__SECTION__KEY`
//! (lists comma-separated, e.g. `ORDER_SYNC__CONSUMERS__NAMES=erp,wms`).
//!
//! Every problem is reported as `key: what is wrong`, all of them at once, so an
//! operator fixes a broken deployment in one round. URLs are kept in [`SecretUrl`],
//! whose `Debug`/`Display` never show the password.

use std::{fmt, path::Path, str::FromStr, time::Duration};

use serde::Deserialize;

/// The defaults, compiled in so that the binary runs with only the keys that differ.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

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

/// Deleting what is done with, by itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    /// Run the purge on `schedule` at all.
    pub enabled: bool,
    /// When: an interval or a cron expression.
    pub schedule: Schedule,
    /// Orders synced for every consumer longer ago than this are deleted.
    #[serde(with = "humantime_serde")]
    pub synced_older_than: Duration,
}

/// Comments in Magento's order history when an order is synced or parked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteBackSettings {
    /// Off by default: it is order-sync's only write to Magento.
    pub enabled: bool,
    /// The Magento database with INSERT on the status history table; empty: `magento.url`.
    pub url: SecretUrl,
    /// How often to look for orders to comment on.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// A secret such as a token: never shown in logs or `Debug` output.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { "***" })
    }
}

/// The HTTP status surface (`/healthz`, `/readyz`, `/metrics`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Serve it at all.
    pub enabled: bool,
    /// Address and port to listen on.
    pub listen: std::net::SocketAddr,
    /// Bearer token for changes (resync, pause, un-park, HTTP acks); empty: refused.
    pub api_token: Secret,
    /// Require the token for reading too (API, status page); `/healthz`, `/readyz`, `/metrics` stay open.
    pub protect_reads: bool,
}

/// What goes into the order message.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageSettings {
    /// Fields removed from every order before publishing (paths like `payment.cc_number_enc`).
    pub deny_fields: Vec<String>,
}

/// Identifies the shop whose orders these are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSettings {
    /// Source name carried in every message and message id; unique per shop.
    pub name: String,
}

/// Where the Magento orders are read from (never written).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagentoSettings {
    /// `mysql://user:password@host:port/database` of the Magento database.
    pub url: SecretUrl,
    /// Magento's table prefix (`db/table_prefix` in env.php), empty for none.
    pub table_prefix: String,
    /// Magento major version: 2 reads `sales_order*`, 1 (or OpenMage) `sales_flat_order*`.
    pub version: u8,
}

/// The ledger database order-sync owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// `mysql://user:password@host:port/database` of the ledger.
    pub url: SecretUrl,
    /// Create and migrate the ledger tables when a role starts.
    pub migrate_on_start: bool,
    /// Upper bound of pooled ledger connections.
    pub pool_max: usize,
}

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
    pub names: crate::broker::topology::Names,
}

/// The sync services that receive orders.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSettings {
    /// Names of the sync services; each gets its own queue and ledger rows.
    pub names: Vec<String>,
    /// Those of `names` that fetch orders over HTTP instead of from a queue.
    pub pull: Vec<String>,
}

impl ConsumerSettings {
    /// The consumers that get a queue and are published to.
    pub fn push(&self) -> Vec<String> {
        self.names
            .iter()
            .filter(|n| !self.pull.contains(n))
            .cloned()
            .collect()
    }
}

/// Reading new orders from Magento.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureSettings {
    /// How often to look for new orders.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Most orders read and published per poll.
    pub batch_size: u32,
    /// How long an entity_id gap is re-checked before it is taken as a rolled-back insert.
    #[serde(with = "humantime_serde")]
    pub gap_timeout: Duration,
    /// Where a fresh ledger starts: `latest` (orders placed from now on) or `beginning`.
    pub start_from: StartFrom,
    /// How often a standby instance checks whether it can take over capture.
    #[serde(with = "humantime_serde")]
    pub takeover_check: Duration,
    /// Which orders are published; empty lists mean all.
    pub filter: FilterSettings,
}

/// Which orders capture publishes. Empty means no restriction.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSettings {
    /// Only orders of these store ids (together with `website_codes`).
    pub store_ids: Vec<u16>,
    /// Only orders of stores in these websites (codes, e.g. `base`).
    pub website_codes: Vec<String>,
    /// Only orders in these states (e.g. `new`, `processing`).
    pub states: Vec<String>,
    /// Only orders with these statuses (e.g. `pending`).
    pub statuses: Vec<String>,
}

/// Re-delivery of what is due and not yet synced.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaySettings {
    /// When to look for due rows: an interval (`30s`) or a cron expression (`*/5 * * * *`).
    pub schedule: Schedule,
    /// Most rows re-published per round trip to the ledger.
    pub batch_size: u32,
    /// Deliveries of one order to one consumer before the row is parked.
    pub max_attempts: u32,
    /// How long a claimed row is reserved for the publisher that claimed it.
    #[serde(with = "humantime_serde")]
    pub claim_timeout: Duration,
    /// Re-delivery to a consumer pauses while its queue holds more ready messages than this.
    pub pause_redelivery_above: u32,
    /// Delay before re-delivering an unacknowledged or failed order.
    pub backoff: BackoffSettings,
}

/// Exponential backoff between deliveries of one order to one consumer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffSettings {
    /// Delay after the first delivery.
    #[serde(with = "humantime_serde")]
    pub initial: Duration,
    /// Factor applied to the delay after each further delivery.
    pub multiplier: f64,
    /// The delay never grows beyond this.
    #[serde(with = "humantime_serde")]
    pub max_interval: Duration,
}

/// The acknowledgement listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckSettings {
    /// Acks larger than this are dead-lettered unread.
    pub max_body_bytes: usize,
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` for people, `json` for log collectors.
    pub format: LogFormat,
    /// Filter in `RUST_LOG` syntax; `RUST_LOG` itself wins when set.
    pub filter: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    Quorum,
    Classic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    Latest,
    Beginning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// When the relay looks for due rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The wait from `now` until the next round.
    pub fn next_wait(&self, now: chrono::DateTime<chrono::Utc>) -> Duration {
        match self {
            Schedule::Every(d) => *d,
            Schedule::Cron(cron) => cron
                .find_next_occurrence(&now, false)
                .ok()
                .and_then(|next| (next - now).to_std().ok())
                // A pattern with no future occurrence was rejected at load; this
                // fallback only keeps the loop alive if that ever changes.
                .unwrap_or(Duration::from_secs(60)),
        }
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if let Ok(d) = humantime::parse_duration(s) {
            if d.is_zero() {
                return Err("must be longer than zero".into());
            }
            return Ok(Schedule::Every(d));
        }
        match croner::Cron::from_str(s) {
            Ok(cron) => {
                if cron
                    .find_next_occurrence(&chrono::Utc::now(), false)
                    .is_err()
                {
                    return Err(format!("cron expression `{s}` never fires"));
                }
                Ok(Schedule::Cron(Box::new(cron)))
            }
            Err(e) => Err(format!(
                "`{s}` is neither a duration (like `30s`) nor a cron expression (like `*/5 * * * *`): {e}"
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A connection URL that may hold a password. Shown redacted everywhere.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password; only for handing to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut u) => {
                if u.password().is_some() {
                    // Cannot fail: a URL with a password has a host.
                    let _ = u.set_password(Some("***"));
                }
                u.to_string()
            }
            // Unparseable: show nothing that could be a secret.
            Err(_) => "<unparseable url>".into(),
        }
    }

    fn parsed(&self) -> Result<url::Url, String> {
        url::Url::parse(&self.0).map_err(|e| format!("not a valid URL ({e}): {}", self.redacted()))
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
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
    let env: config::Map<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("ORDER_SYNC__"))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("ORDER_SYNC")
            .prefix_separator("__")
            .separator("__")
            .list_separator(",")
            .with_list_parse_key("consumers.names")
            .with_list_parse_key("consumers.pull")
            .with_list_parse_key("broker.failover_urls")
            .with_list_parse_key("message.deny_fields")
            .with_list_parse_key("capture.filter.store_ids")
            .with_list_parse_key("capture.filter.website_codes")
            .with_list_parse_key("capture.filter.states")
            .with_list_parse_key("capture.filter.statuses")
            .try_parsing(true)
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

impl Settings {
    /// Checks everything a type cannot: ranges, URL schemes, names.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: &str, message: &str| {
            if !ok {
                errors.push(key_error(key, message));
            }
        };
        check(
            valid_name(&self.shop.name),
            "shop.name",
            "must be 1-64 characters of letters, digits, `-`, `_` or `.`",
        );
        check(
            matches!(self.magento.version, 1 | 2),
            "magento.version",
            "must be 1 (Magento 1 / OpenMage) or 2",
        );
        check(
            self.magento.table_prefix.len() <= 32
                && self
                    .magento
                    .table_prefix
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "magento.table_prefix",
            "may only hold letters, digits and `_` (at most 32)",
        );
        let urls = [
            ("magento.url", &self.magento.url, &["mysql"][..]),
            ("ledger.url", &self.ledger.url, &["mysql"][..]),
            ("broker.url", &self.broker.url, &["amqp", "amqps"][..]),
        ]
        .into_iter()
        .chain(
            self.broker
                .failover_urls
                .iter()
                .map(|u| ("broker.failover_urls", u, &["amqp", "amqps"][..])),
        );
        for (key, url, schemes) in urls {
            match url.parsed() {
                Ok(u) if !schemes.contains(&u.scheme()) => errors.push(key_error(
                    key,
                    format!(
                        "scheme `{}` is not supported, use {}: {}",
                        u.scheme(),
                        schemes.join(" or "),
                        url.redacted()
                    ),
                )),
                Ok(u) if u.host_str().unwrap_or("").is_empty() => {
                    errors.push(key_error(key, format!("has no host: {}", url.redacted())))
                }
                Ok(u) if schemes == ["mysql"] && u.path().trim_matches('/').is_empty() => errors
                    .push(key_error(
                        key,
                        format!("names no database: {}", url.redacted()),
                    )),
                Ok(_) => {}
                Err(m) => errors.push(key_error(key, m)),
            }
        }
        let mut check = |ok: bool, key: &str, message: &str| {
            if !ok {
                errors.push(key_error(key, message));
            }
        };
        check(
            valid_name(&self.broker.prefix),
            "broker.prefix",
            "must be 1-64 characters of letters, digits, `-`, `_` or `.`",
        );
        check(
            self.broker.pool_max >= 2,
            "broker.pool_max",
            "must be at least 2",
        );
        check(
            self.broker.prefetch >= 1,
            "broker.prefetch",
            "must be at least 1",
        );
        check(
            (4096..=512 * 1024 * 1024).contains(&self.broker.max_message_bytes),
            "broker.max_message_bytes",
            "must be between 4096 and 536870912",
        );
        check(
            (4096..=131_072).contains(&self.broker.frame_max),
            "broker.frame_max",
            "must be between 4096 and 131072",
        );
        for field in &self.message.deny_fields {
            check(
                !field.is_empty()
                    && field.split('.').all(|seg| !seg.is_empty())
                    && !field.trim_end_matches('*').contains('*'),
                "message.deny_fields",
                &format!(
                    "`{field}` is not a field path like `payment.cc_number_enc` (a `*` may end it)"
                ),
            );
        }
        let n = &self.broker.names;
        for (key, template, needs) in [
            ("broker.names.orders_exchange", &n.orders_exchange, None),
            ("broker.names.relay_queue", &n.relay_queue, None),
            ("broker.names.que_exchange", &n.que_exchange, None),
            (
                "broker.names.consumer_queue",
                &n.consumer_queue,
                Some("{consumer}"),
            ),
            ("broker.names.acks_exchange", &n.acks_exchange, None),
            ("broker.names.acks_queue", &n.acks_queue, None),
            ("broker.names.dead_exchange", &n.dead_exchange, None),
            ("broker.names.dead_queue", &n.dead_queue, Some("{name}")),
        ] {
            let filled = template
                .replace("{prefix}", "p")
                .replace("{consumer}", "c")
                .replace("{name}", "n");
            check(
                !filled.is_empty() && filled.len() <= 200 && !filled.starts_with("amq."),
                key,
                "must be a name of at most 200 characters, not starting with `amq.`",
            );
            if let Some(placeholder) = needs {
                check(
                    template.contains(placeholder),
                    key,
                    &format!("must contain {placeholder}, or every one would share one queue"),
                );
            }
        }
        check(
            self.ledger.pool_max >= 2,
            "ledger.pool_max",
            "must be at least 2",
        );
        check(
            !self.consumers.names.is_empty(),
            "consumers.names",
            "name at least one sync service",
        );
        for name in &self.consumers.names {
            check(
                valid_name(name),
                "consumers.names",
                &format!("`{name}` must be 1-64 characters of letters, digits, `-`, `_` or `.`"),
            );
        }
        let mut sorted = self.consumers.names.clone();
        sorted.sort();
        sorted.dedup();
        check(
            sorted.len() == self.consumers.names.len(),
            "consumers.names",
            "lists a name twice",
        );
        for name in &self.consumers.pull {
            check(
                self.consumers.names.contains(name),
                "consumers.pull",
                &format!("`{name}` is not in consumers.names"),
            );
        }
        check(
            self.retention.synced_older_than >= Duration::from_secs(60),
            "retention.synced_older_than",
            "must be at least 1m",
        );
        check(
            self.write_back.interval >= Duration::from_millis(100),
            "write_back.interval",
            "must be at least 100ms",
        );
        if self.write_back.enabled && !self.write_back.url.expose().is_empty() {
            match self.write_back.url.parsed() {
                Ok(u) if u.scheme() == "mysql" && !u.path().trim_matches('/').is_empty() => {}
                Ok(_) => errors.push(key_error(
                    "write_back.url",
                    format!(
                        "must be mysql://user:password@host:port/database: {}",
                        self.write_back.url.redacted()
                    ),
                )),
                Err(m) => errors.push(key_error("write_back.url", m)),
            }
        }
        let mut check = |ok: bool, key: &str, message: &str| {
            if !ok {
                errors.push(key_error(key, message));
            }
        };
        check(
            self.http.api_token.is_empty() || self.http.api_token.expose().len() >= 16,
            "http.api_token",
            "must be at least 16 characters (or empty to refuse changes over HTTP)",
        );
        check(
            !self.capture.poll_interval.is_zero(),
            "capture.poll_interval",
            "must be longer than zero",
        );
        check(
            (1..=10_000).contains(&self.capture.batch_size),
            "capture.batch_size",
            "must be between 1 and 10000",
        );
        check(
            !self.capture.takeover_check.is_zero(),
            "capture.takeover_check",
            "must be longer than zero",
        );
        check(
            self.capture.gap_timeout >= Duration::from_secs(1),
            "capture.gap_timeout",
            "must be at least 1s",
        );
        check(
            (1..=10_000).contains(&self.relay.batch_size),
            "relay.batch_size",
            "must be between 1 and 10000",
        );
        check(
            self.relay.max_attempts >= 1,
            "relay.max_attempts",
            "must be at least 1",
        );
        check(
            self.relay.claim_timeout >= Duration::from_secs(1),
            "relay.claim_timeout",
            "must be at least 1s",
        );
        check(
            !self.relay.backoff.initial.is_zero(),
            "relay.backoff.initial",
            "must be longer than zero",
        );
        check(
            self.relay.backoff.multiplier.is_finite() && self.relay.backoff.multiplier >= 1.0,
            "relay.backoff.multiplier",
            "must be a number of at least 1.0",
        );
        check(
            self.relay.backoff.max_interval >= self.relay.backoff.initial,
            "relay.backoff.max_interval",
            "must not be shorter than relay.backoff.initial",
        );
        check(
            (64..=16 * 1024 * 1024).contains(&self.acks.max_body_bytes),
            "acks.max_body_bytes",
            "must be between 64 and 16777216",
        );
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            errors.push(key_error("log.filter", e.to_string()));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errors))
        }
    }
}

fn valid_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn message(r: Result<Settings, ConfigError>) -> String {
        r.expect_err("config should be rejected").to_string()
    }

    #[test]
    fn defaults_alone_are_valid() {
        let s = load_with_env(None, env(&[])).unwrap();
        assert_eq!(s.consumers.names, vec!["erp".to_string()]);
        assert_eq!(s.relay.schedule, Schedule::Every(Duration::from_secs(30)));
    }

    #[test]
    fn environment_overrides_nested_keys_and_lists() {
        let s = load_with_env(
            None,
            env(&[
                ("ORDER_SYNC__CONSUMERS__NAMES", "erp,wms"),
                ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "5s"),
                ("ORDER_SYNC__CAPTURE__BATCH_SIZE", "7"),
            ]),
        )
        .unwrap();
        assert_eq!(s.consumers.names, vec!["erp", "wms"]);
        assert_eq!(s.relay.backoff.initial, Duration::from_secs(5));
        assert_eq!(s.capture.batch_size, 7);
    }

    #[test]
    fn a_cron_schedule_like_the_original_module_is_accepted() {
        let s: Schedule = "*/5 * * * *".parse().unwrap();
        assert!(matches!(s, Schedule::Cron(_)));
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:02:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(s.next_wait(now), Duration::from_secs(180));
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let m = message(load_with_env(
            None,
            env(&[("ORDER_SYNC__CAPTURE__BATCH_SIZE", "lots")]),
        ));
        assert!(m.contains("capture.batch_size"), "{m}");
    }

    #[test]
    fn an_unparseable_duration_names_the_key() {
        let m = message(load_with_env(
            None,
            env(&[("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "soon")]),
        ));
        assert!(m.contains("relay.backoff.initial"), "{m}");
    }

    #[test]
    fn an_unknown_key_is_named() {
        let m = message(load_with_env(
            None,
            env(&[("ORDER_SYNC__CAPTURE__POLL_INTERVALL", "1s")]),
        ));
        assert!(m.contains("poll_intervall"), "{m}");
    }

    #[test]
    fn a_bad_schedule_names_the_key() {
        let m = message(load_with_env(
            None,
            env(&[("ORDER_SYNC__RELAY__SCHEDULE", "every tuesday")]),
        ));
        assert!(m.contains("relay.schedule"), "{m}");
    }

    #[test]
    fn range_errors_are_all_reported_with_their_keys() {
        let m = message(load_with_env(
            None,
            env(&[
                ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "0"),
                ("ORDER_SYNC__BROKER__URL", "http://example.org/"),
                ("ORDER_SYNC__CONSUMERS__NAMES", "erp,erp"),
            ]),
        ));
        assert!(m.contains("relay.max_attempts: must be at least 1"), "{m}");
        assert!(m.contains("broker.url: scheme `http`"), "{m}");
        assert!(m.contains("consumers.names: lists a name twice"), "{m}");
    }

    #[test]
    fn passwords_never_appear_in_errors_or_debug_output() {
        let m = message(load_with_env(
            None,
            env(&[
                ("ORDER_SYNC__LEDGER__URL", "postgres://u:hunter2@db/x"),
                ("ORDER_SYNC__MAGENTO__URL", "mysql://u:hunter2@db/"),
            ]),
        ));
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("ledger.url"), "{m}");
        assert!(m.contains("magento.url: names no database"), "{m}");
        let url = SecretUrl::new("amqp://guest:hunter2@rabbit:5672/%2f");
        assert!(!format!("{url:?} {url}").contains("hunter2"));
        assert_eq!(url.redacted(), "amqp://guest:***@rabbit:5672/%2f");
    }

    #[test]
    fn queue_names_are_templates_checked_for_their_placeholders() {
        let s = load_with_env(
            None,
            env(&[(
                "ORDER_SYNC__BROKER__NAMES__CONSUMER_QUEUE",
                "sync.{prefix}.{consumer}",
            )]),
        )
        .unwrap();
        assert_eq!(s.broker.names.consumer_queue, "sync.{prefix}.{consumer}");
        let m = message(load_with_env(
            None,
            env(&[("ORDER_SYNC__BROKER__NAMES__CONSUMER_QUEUE", "{prefix}.que")]),
        ));
        assert!(
            m.contains("broker.names.consumer_queue: must contain {consumer}"),
            "{m}"
        );
    }

    #[test]
    fn sizes_and_deny_paths_are_checked() {
        let m = message(load_with_env(
            None,
            env(&[
                ("ORDER_SYNC__BROKER__FRAME_MAX", "1024"),
                ("ORDER_SYNC__BROKER__MAX_MESSAGE_BYTES", "10"),
                ("ORDER_SYNC__MESSAGE__DENY_FIELDS", "payment..x,pay*ment.y"),
            ]),
        ));
        assert!(m.contains("broker.frame_max"), "{m}");
        assert!(m.contains("broker.max_message_bytes"), "{m}");
        assert_eq!(m.matches("message.deny_fields").count(), 2, "{m}");
    }

    #[test]
    fn a_missing_config_file_is_named() {
        let m = message(load_with_env(
            Some(Path::new("/nonexistent/order-sync.toml")),
            env(&[]),
        ));
        assert!(m.contains("/nonexistent/order-sync.toml"), "{m}");
    }
}
