//! Prometheus metrics. Counters are bumped by the roles as they work; the
//! ledger-derived figures (rows by state, oldest unsynced order, capture lag)
//! are read from the ledger when `/metrics` is scraped, so they are right
//! whichever instance did the work.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabel {
    pub consumer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub consumer: String,
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServiceLabel {
    pub service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabel {
    pub mode: String,
}

/// A part of capture (`orders`, `lifecycle`): `job` is Prometheus's own label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartLabel {
    pub part: String,
}

/// A step every order passes on its way (`stage_seconds`): see [`Stage`].
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: String,
}

/// The steps of the pipeline whose time `order_sync_stage_seconds` adds up,
/// so that a slow drain shows which one it waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Capture reading a batch of orders (and their children) from Magento.
    CaptureRead,
    /// Capture publishing a batch and awaiting its confirms.
    CapturePublish,
    /// Capture saving its position.
    CaptureSave,
    /// The relay inbox recording a batch of captured orders in the ledger.
    InboxRecord,
    /// The relay publishing rows to consumer queues and awaiting confirms.
    RelayPublish,
    /// The relay recording those publishes in the ledger.
    RelayMark,
    /// The ack listener applying a batch of acks to the ledger.
    AcksApply,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::CaptureRead,
        Stage::CapturePublish,
        Stage::CaptureSave,
        Stage::InboxRecord,
        Stage::RelayPublish,
        Stage::RelayMark,
        Stage::AcksApply,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::CaptureRead => "capture_read",
            Stage::CapturePublish => "capture_publish",
            Stage::CaptureSave => "capture_save",
            Stage::InboxRecord => "inbox_record",
            Stage::RelayPublish => "relay_publish",
            Stage::RelayMark => "relay_mark",
            Stage::AcksApply => "acks_apply",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AckLabel {
    pub consumer: String,
    pub status: String,
}

/// Every metric order-sync exports, under the `order_sync_` prefix.
pub struct Metrics {
    registry: Registry,
    /// Orders capture published (confirmed by the broker).
    pub captured: Counter,
    /// Events after placement capture recorded (invoices, shipments, …).
    pub captured_events: Counter,
    /// Deliveries to consumer queues, first ones and re-deliveries.
    pub published: Family<ConsumerLabel, Counter>,
    /// The re-deliveries among them.
    pub redelivered: Family<ConsumerLabel, Counter>,
    /// Acks applied, by status.
    pub acks: Family<AckLabel, Counter>,
    /// Rows parked.
    pub parked: Family<ConsumerLabel, Counter>,
    /// Duration of each re-delivery round.
    pub relay_round_seconds: Histogram,
    /// Time spent in each [`Stage`].
    pub stage_seconds: Family<StageLabel, Histogram>,
    /// Ledger rows by consumer and state (read at scrape).
    pub rows: Family<StateLabel, Gauge>,
    /// Age of the oldest order not yet synced for some consumer (read at scrape).
    pub oldest_unsynced_seconds: Gauge<f64, AtomicU64>,
    /// Orders in Magento above capture's position (read at scrape).
    pub capture_lag_orders: Gauge,
    /// 1 while this instance holds the capture lock.
    pub capture_leader: Gauge,
    /// What triggers capture now: 1 for the mode in use (`poll` or `binlog`), 0 for the other.
    pub capture_mode: Family<ModeLabel, Gauge>,
    /// Ids below capture's position still awaited (late commits).
    pub capture_open_gaps: Gauge,
    /// Awaited ids given up because `capture.max_open_gaps` was reached.
    pub capture_gaps_dropped: Counter,
    /// Failed attempts of a part of capture (a refused read, a lost connection).
    pub capture_errors: Family<PartLabel, Counter>,
    /// How long a part of capture has been failing, once it failed several
    /// polls in a row; 0 while it works (set at each scrape).
    pub capture_failing_seconds: Family<PartLabel, Gauge<f64, AtomicU64>>,
    /// 1 while the last broker operation of this instance succeeded.
    pub broker_up: Gauge,
    /// 1 while a service (broker, ledger, magento) answered the last check.
    pub up: Family<ServiceLabel, Gauge>,
    /// From the order's placement in Magento to its synced ack, per consumer.
    pub placed_to_synced_seconds: Family<ConsumerLabel, Histogram>,
    /// 1 while publishing is paused for a consumer (read at scrape).
    pub paused: Family<ConsumerLabel, Gauge>,
}

fn stage_histogram() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
}

fn placed_to_synced_histogram() -> Histogram {
    // From sub-second (a healthy pipeline) to days (an outage, then a resync).
    Histogram::new([
        0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 21600.0, 86400.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("order_sync");
        let m = Metrics {
            captured: Counter::default(),
            captured_events: Counter::default(),
            published: Family::default(),
            redelivered: Family::default(),
            acks: Family::default(),
            parked: Family::default(),
            relay_round_seconds: Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            stage_seconds: Family::new_with_constructor(stage_histogram),
            rows: Family::default(),
            oldest_unsynced_seconds: Gauge::default(),
            capture_lag_orders: Gauge::default(),
            capture_leader: Gauge::default(),
            capture_mode: Family::default(),
            capture_open_gaps: Gauge::default(),
            capture_gaps_dropped: Counter::default(),
            capture_errors: Family::default(),
            capture_failing_seconds: Family::default(),
            broker_up: Gauge::default(),
            up: Family::default(),
            placed_to_synced_seconds: Family::new_with_constructor(placed_to_synced_histogram),
            paused: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "captured_orders",
            "Orders captured from Magento and published",
            m.captured.clone(),
        );
        registry.register(
            "captured_events",
            "Events after placement (invoiced, shipped, refunded, canceled, status_changed) captured",
            m.captured_events.clone(),
        );
        registry.register(
            "published_messages",
            "Messages published to consumer queues",
            m.published.clone(),
        );
        registry.register(
            "redelivered_messages",
            "Re-deliveries published to consumer queues",
            m.redelivered.clone(),
        );
        registry.register(
            "acks",
            "Acknowledgements applied, by status",
            m.acks.clone(),
        );
        registry.register("parked_rows", "Ledger rows parked", m.parked.clone());
        registry.register(
            "relay_round_seconds",
            "Duration of a re-delivery round",
            m.relay_round_seconds.clone(),
        );
        registry.register(
            "stage_seconds",
            "Time spent in each step of the pipeline (capture_read, capture_publish, capture_save, \
             inbox_record, relay_publish, relay_mark, acks_apply), per batch",
            m.stage_seconds.clone(),
        );
        registry.register(
            "ledger_rows",
            "Ledger rows by consumer and state",
            m.rows.clone(),
        );
        registry.register(
            "oldest_unsynced_seconds",
            "Age of the oldest captured order not yet synced for every consumer",
            m.oldest_unsynced_seconds.clone(),
        );
        registry.register(
            "capture_lag_orders",
            "Orders in Magento not yet captured",
            m.capture_lag_orders.clone(),
        );
        registry.register(
            "capture_leader",
            "1 while this instance captures",
            m.capture_leader.clone(),
        );
        registry.register(
            "capture_mode",
            "1 for what triggers capture now (poll or binlog)",
            m.capture_mode.clone(),
        );
        registry.register(
            "capture_open_gaps",
            "Order ids below capture's position still awaited",
            m.capture_open_gaps.clone(),
        );
        registry.register(
            "capture_gaps_dropped",
            "Awaited order ids given up because capture.max_open_gaps was reached",
            m.capture_gaps_dropped.clone(),
        );
        registry.register(
            "capture_errors",
            "Failed attempts of a part of capture (orders, lifecycle)",
            m.capture_errors.clone(),
        );
        registry.register(
            "capture_failing_seconds",
            "How long a part of capture has been failing poll after poll (0 while it works)",
            m.capture_failing_seconds.clone(),
        );
        registry.register(
            "broker_up",
            "1 while this instance reaches RabbitMQ",
            m.broker_up.clone(),
        );
        registry.register(
            "up",
            "1 while the service answered this instance's last check",
            m.up.clone(),
        );
        registry.register(
            "placed_to_synced_seconds",
            "Time from an order's placement in Magento to its synced ack",
            m.placed_to_synced_seconds.clone(),
        );
        registry.register(
            "paused",
            "1 while publishing to the consumer is paused",
            m.paused.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// Adds the time since `started` to `stage`.
    pub fn stage(&self, stage: Stage, started: std::time::Instant) {
        self.stage_seconds
            .get_or_create(&StageLabel {
                stage: stage.as_str().to_owned(),
            })
            .observe(started.elapsed().as_secs_f64());
    }

    /// Shows `mode` (`poll` or `binlog`) as what triggers capture.
    pub fn set_capture_mode(&self, mode: &str) {
        for m in ["poll", "binlog"] {
            let label = ModeLabel { mode: m.to_owned() };
            self.capture_mode
                .get_or_create(&label)
                .set((m == mode) as i64);
        }
    }

    pub fn part(part: &str) -> PartLabel {
        PartLabel {
            part: part.to_owned(),
        }
    }

    pub fn consumer(consumer: &str) -> ConsumerLabel {
        ConsumerLabel {
            consumer: consumer.to_owned(),
        }
    }

    /// Creates every per-consumer series at 0, so a scrape shows each family
    /// from the start (a dashboard reads 0, not "no data", and `rate()` has a
    /// first sample to start from).
    pub fn prime(&self, consumers: &[String]) {
        for part in ["orders", "lifecycle"] {
            let _ = self.capture_errors.get_or_create(&Self::part(part));
            let _ = self
                .capture_failing_seconds
                .get_or_create(&Self::part(part));
        }
        for c in consumers {
            let label = Self::consumer(c);
            let _ = self.published.get_or_create(&label);
            let _ = self.redelivered.get_or_create(&label);
            let _ = self.parked.get_or_create(&label);
            let _ = self.paused.get_or_create(&label);
            let _ = self.placed_to_synced_seconds.get_or_create(&label);
            for status in ["synced", "failed"] {
                let _ = self.acks.get_or_create(&AckLabel {
                    consumer: c.clone(),
                    status: status.into(),
                });
            }
        }
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
