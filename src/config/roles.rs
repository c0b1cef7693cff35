//! How the roles work: `[capture]`, `[relay]`, `[acks]`, `[retention]`,
//! `[write_back]`, and the [`Schedule`] type they share.

use std::{str::FromStr, time::Duration};

use serde::Deserialize;

use super::{Problems, SecretUrl};

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
    /// Most ids below the position re-checked at once; past it the oldest are
    /// given up (with a warning and `capture_gaps_dropped`).
    pub max_open_gaps: u32,
    /// What tells capture to look: `poll` (every `poll_interval`) or `binlog`
    /// (each commit that wrote orders, read from the binary log, with polling
    /// as the safety net; see `[capture.binlog]`).
    pub mode: CaptureMode,
    /// `capture.mode = "binlog"`: the replication client.
    pub binlog: BinlogSettings,
    /// Which orders are published; empty lists mean all.
    pub filter: FilterSettings,
    /// Order states a placed order is held in: recorded and shown as held,
    /// its `placed` event sent when it leaves them. Empty: nothing is held.
    pub hold_states: Vec<String>,
    /// An order cancelled while held: `send` (its `placed`, then its
    /// cancellation) or `drop` (nothing; its rows end `skipped`).
    pub hold_canceled: HoldCanceled,
    /// Invoices, shipments, credit memos and state changes (`[capture.lifecycle]`).
    pub lifecycle: LifecycleSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HoldCanceled {
    Send,
    Drop,
}

/// Capture of what happens to an order after it was placed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleSettings {
    /// How often documents and state changes are looked for (only when a
    /// consumer subscribes to a later event or `hold_states` is set).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How far back each scan of `updated_at` reaches before where the last
    /// one ended: a save that commits this much after its `updated_at` is
    /// still seen.
    #[serde(with = "humantime_serde")]
    pub overlap: Duration,
    /// Most documents of each kind, and most changed orders, read per scan.
    pub batch_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureMode {
    Poll,
    Binlog,
}

/// The binary-log trigger (`capture.mode = "binlog"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinlogSettings {
    /// The replica id order-sync registers with; unique among the server's
    /// replicas and different from the server's own `server_id`.
    pub server_id: u32,
    /// The safety-net poll while the binlog is followed.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// After falling back to polling, how long until the binlog is tried again.
    #[serde(with = "humantime_serde")]
    pub retry: Duration,
    /// The server sends a heartbeat this often when it has nothing to send; a
    /// stream silent for three of them is taken as cut.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    Latest,
    Beginning,
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

impl CaptureSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            !self.poll_interval.is_zero(),
            "capture.poll_interval",
            "must be longer than zero",
        );
        p.within(self.batch_size, 1..=10_000, "capture.batch_size");
        p.check(
            !self.takeover_check.is_zero(),
            "capture.takeover_check",
            "must be longer than zero",
        );
        p.check(
            self.gap_timeout >= Duration::from_secs(1),
            "capture.gap_timeout",
            "must be at least 1s",
        );
        p.within(self.max_open_gaps, 1..=1_000_000, "capture.max_open_gaps");
        if self.mode == CaptureMode::Binlog {
            p.check(
                self.binlog.server_id != 0,
                "capture.binlog.server_id",
                "must be set (a replica id unique on the Magento database server) when capture.mode = \"binlog\"",
            );
        }
        p.check(
            !self.binlog.poll_interval.is_zero(),
            "capture.binlog.poll_interval",
            "must be longer than zero",
        );
        p.check(
            !self.binlog.retry.is_zero(),
            "capture.binlog.retry",
            "must be longer than zero",
        );
        p.check(
            self.binlog.heartbeat >= Duration::from_millis(100),
            "capture.binlog.heartbeat",
            "must be at least 100ms",
        );
        p.check(
            !self.lifecycle.poll_interval.is_zero(),
            "capture.lifecycle.poll_interval",
            "must be longer than zero",
        );
        p.check(
            self.lifecycle.overlap >= Duration::from_secs(1),
            "capture.lifecycle.overlap",
            "must be at least 1s",
        );
        p.within(
            self.lifecycle.batch_size,
            1..=10_000,
            "capture.lifecycle.batch_size",
        );
        for s in &self.hold_states {
            p.check(
                s != "canceled" && !s.is_empty(),
                "capture.hold_states",
                format!("`{s}` cannot be held (an order leaves a hold by changing state)"),
            );
        }
    }

    /// Whether `state` is one an order is held in.
    pub fn holds(&self, state: Option<&str>) -> bool {
        state.is_some_and(|s| self.hold_states.iter().any(|h| h == s))
    }
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
    /// A copy in a consumer's queue that was never answered is sent again
    /// only after this long, and only once the queue has held no ready
    /// message for this long and the acks queue none: then the copy cannot
    /// still be waiting or held (keep it above the broker's
    /// `consumer_timeout`, 30 min by default).
    #[serde(with = "humantime_serde")]
    pub unanswered_after: Duration,
    /// How often rows never sent yet are looked for between rounds: an
    /// order's next event once the one before it is synced, a released hold.
    #[serde(with = "humantime_serde")]
    pub follow_on_interval: Duration,
    /// Delay before the next delivery after a `failed` ack (and, for webhook and
    /// pull consumers, after a delivery not answered).
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

impl RelaySettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.within(self.batch_size, 1..=10_000, "relay.batch_size");
        p.check(
            self.follow_on_interval >= Duration::from_millis(10),
            "relay.follow_on_interval",
            "must be at least 10ms",
        );
        p.check(
            self.max_attempts >= 1,
            "relay.max_attempts",
            "must be at least 1",
        );
        p.check(
            self.claim_timeout >= Duration::from_secs(1),
            "relay.claim_timeout",
            "must be at least 1s",
        );
        p.check(
            self.unanswered_after >= Duration::from_secs(1),
            "relay.unanswered_after",
            "must be at least 1s",
        );
        let b = &self.backoff;
        p.check(
            !b.initial.is_zero(),
            "relay.backoff.initial",
            "must be longer than zero",
        );
        p.check(
            b.multiplier.is_finite() && b.multiplier >= 1.0,
            "relay.backoff.multiplier",
            "must be a number of at least 1.0",
        );
        p.check(
            b.max_interval >= b.initial,
            "relay.backoff.max_interval",
            "must not be shorter than relay.backoff.initial",
        );
    }
}

/// The acknowledgement listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckSettings {
    /// Acks larger than this are dead-lettered unread.
    pub max_body_bytes: usize,
    /// Unacknowledged acks the listener takes at once; with the broker's
    /// `max_message_size` it bounds the listener's memory.
    pub prefetch: u16,
}

impl AckSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.within(
            self.max_body_bytes,
            64..=16 * 1024 * 1024,
            "acks.max_body_bytes",
        );
        p.within(self.prefetch, 1..=1000, "acks.prefetch");
    }
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

impl RetentionSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.synced_older_than >= Duration::from_secs(60),
            "retention.synced_older_than",
            "must be at least 1m",
        );
    }
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

impl WriteBackSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            self.interval >= Duration::from_millis(100),
            "write_back.interval",
            "must be at least 100ms",
        );
        if self.enabled && !self.url.expose().is_empty() {
            self.url.check("write_back.url", &["mysql"], p);
        }
    }
}

/// When a periodic job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    Every(Duration),
    Cron(Box<croner::Cron>),
}

impl Schedule {
    /// The wait from `now` until the next run.
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
