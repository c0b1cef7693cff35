//! Capture: Magento orders → `<prefix>.orders`.
//!
//! Each poll reads committed orders above the saved position *and* the ids
//! below it that were missing last time (gaps), publishes them with confirms,
//! and only then moves the position, in the ledger, in one transaction.
//!
//! Why gaps: Magento takes an `entity_id` when checkout inserts the order, but
//! the row is visible only at commit. A slow checkout holding id 41 can commit
//! after id 42 was read; reading `entity_id > 42` from then on would skip 41
//! forever. So every id skipped below the position is remembered and re-read on
//! each poll until it shows up or `capture.gap_timeout` passes (a rolled-back
//! checkout leaves its id unused for good).
//!
//! If the process dies after publishing and before saving, the next poll
//! publishes the same orders again; the relay records each order once.
//!
//! Only one instance captures at a time: the holder of a named lock in the
//! ledger database ([`NamedLock`]), checked before every poll.
//!
//! What starts a poll: a timer (`capture.mode = "poll"`), or each commit that
//! inserted orders, read from Magento's binary log ([`binlog`]), with a slow
//! timer as the safety net and the normal one whenever the binlog cannot be
//! followed.
//!
//! Id steps: on a cluster handing out ids in steps (an
//! `auto_increment_increment` above 1), only ids the server can hand out are awaited ([`IdStep`]); open gaps
//! are capped at `capture.max_open_gaps` (the oldest given up) and read in
//! chunks.

pub mod binlog;
pub mod health;
pub mod lifecycle;
pub mod seen;

use std::{
    collections::{BTreeSet, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use lapin::{
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use self::{
    binlog::{Follower, Following, Layout, Pending, Seen, Stop},
    health::{Part, Said},
};
use super::{sleep_or_shutdown, Deps, Role, RoleError};
use crate::{
    broker::{topology::CAPTURE_ROUTING_KEY, Outgoing, Publisher},
    config::{CaptureMode, CaptureSettings, StartFrom},
    ledger::{BinlogPosition, CapturePosition, NamedLock, NewOrder},
    magento::{IdStep, OrderScope, PlacedOrder},
    message::CapturedOrder,
};

/// Ids skipped in one jump beyond this are not tracked as gaps: such a jump is
/// an `AUTO_INCREMENT` change or an import, not checkouts committing late.
const MAX_GAP_SPAN: u32 = 10_000;

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    pub published: usize,
    /// Read but left out by `capture.filter`.
    pub filtered: usize,
    /// Too large for the broker: recorded and parked instead of published.
    pub parked: usize,
    /// Highest entity_id read so far.
    pub position: u32,
    /// Ids below the position still awaited.
    pub open_gaps: usize,
    /// Gaps given up on this poll (older than `gap_timeout`).
    pub abandoned: Vec<u32>,
    /// Gaps given up on this poll because `max_open_gaps` was reached.
    pub dropped: Vec<u32>,
    /// The ids still awaited after this poll, ascending.
    pub awaited: Vec<u32>,
}

pub struct Capture {
    deps: Deps,
    settings: CaptureSettings,
    /// Resolved on the first poll (website codes need a lookup).
    filter: Option<OrderScope>,
    publisher: Option<Publisher>,
    lock: Option<NamedLock>,
    /// Which ids the server can hand out; learned per leadership.
    id_step: Option<IdStep>,
    /// The position as last saved, kept while leading: the leader is its only
    /// writer, so a poll need not read it back. Dropped on any error and on a
    /// change of leadership, then read from the ledger again.
    position: Option<CapturePosition>,
    /// Whether this instance holds the capture lock (shown in status output).
    leader: Arc<AtomicBool>,
    said_standby: bool,
    /// `capture.mode = "binlog"`: the running follower, if any.
    following: Option<Following>,
    /// When to try the binlog again after a fall back to polling.
    retry_binlog_at: Option<Instant>,
    /// The binlog position last saved, and when.
    binlog_saved: Option<(BinlogPosition, Instant)>,
    /// When the last lifecycle scan ran ([`lifecycle`]).
    lifecycle_ran: Option<Instant>,
    /// When the last order poll ran.
    polled_at: Option<Instant>,
    /// Orders the change scan compared with the ledger, at their
    /// `updated_at`: not looked up again while they stay in the overlap.
    compared: std::collections::HashMap<u32, lifecycle::ComparedKey>,
    /// Changes and documents the binlog showed, waiting for their order's
    /// placement or their commit to show ([`seen`]), with when they came.
    kept: Vec<(Seen, Instant)>,
}

/// How long capture re-reads quickly for orders the binlog announced but the
/// committed read does not show yet (the binlog is written just before the
/// storage engine's commit is visible).
const ANNOUNCED_WAIT: Duration = Duration::from_secs(1);

/// How soon a wake tries again what the binlog showed but could not be
/// recorded yet ([`seen`]).
const KEPT_RETRY: Duration = Duration::from_millis(20);

/// The binlog position is saved at most this often (a restart re-reads at
/// most this much of the log).
const BINLOG_SAVE_EVERY: Duration = Duration::from_secs(1);

impl Capture {
    pub fn new(deps: &Deps, settings: &CaptureSettings) -> Self {
        Self {
            deps: deps.clone(),
            settings: settings.clone(),
            filter: None,
            publisher: None,
            lock: None,
            id_step: None,
            position: None,
            leader: Arc::new(AtomicBool::new(false)),
            said_standby: false,
            following: None,
            retry_binlog_at: None,
            binlog_saved: None,
            lifecycle_ran: None,
            polled_at: None,
            compared: Default::default(),
            kept: Vec::new(),
        }
    }

    /// Shares the "holds the capture lock" flag with the caller (for heartbeats).
    pub fn with_leader_flag(mut self, flag: Arc<AtomicBool>) -> Self {
        self.leader = flag;
        self
    }

    /// Makes sure this instance holds the capture lock, taking it if it is free.
    /// Returns false when another instance holds it.
    async fn lead(&mut self) -> Result<bool, RoleError> {
        let source = &self.deps.shop;
        if let Some(held) = self.lock.as_mut() {
            if held.still_held().await {
                return Ok(true);
            }
            // Our lock connection died (killed, network): the server has freed
            // the lock and another instance may be capturing now. Stop first.
            tracing::warn!(source = %source, "Lost the capture lock; stopping capture until it is ours again.");
            self.leader.store(false, Ordering::SeqCst);
            self.deps.capture_health.clear();
            if let Some(l) = self.lock.take() {
                l.release().await;
            }
        }
        match self.deps.ledger.try_capture_lock(source).await? {
            Some(l) => {
                self.lock = Some(l);
                self.leader.store(true, Ordering::SeqCst);
                // A new leader re-reads its position, filters and id step from scratch.
                self.filter = None;
                self.id_step = None;
                self.position = None;
                self.compared.clear();
                tracing::info!(source = %source, "This instance now captures.");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `capture.filter`, resolved once per leadership.
    async fn filter(&mut self) -> Result<&OrderScope, RoleError> {
        if self.filter.is_none() {
            self.filter = Some(self.deps.magento.order_scope(&self.settings.filter).await?);
        }
        Ok(self.filter.as_ref().expect("resolved just above"))
    }

    /// One poll at `now` (gaps older than `gap_timeout` before it are given up).
    pub async fn step(&mut self, now: DateTime<Utc>) -> Result<PollOutcome, RoleError> {
        // Taken, not borrowed: a poll that fails half-way leaves it unknown.
        let position = match self.position.take() {
            Some(p) => p,
            None => match self.deps.ledger.capture_position(&self.deps.shop).await? {
                Some(p) => p,
                None => self.start_position(now).await?,
            },
        };
        let gap_ids: Vec<u32> = position.gaps.iter().map(|(id, _)| *id).collect();
        let orders = self
            .deps
            .magento
            .read_orders(position.last_entity_id, self.settings.batch_size, &gap_ids)
            .await?;

        if self.id_step.is_none() {
            let step = self.deps.magento.id_step().await?;
            if step.increment > 1 {
                tracing::info!(
                    increment = step.increment,
                    "The Magento database hands out ids in steps; only ids it can hand out are awaited."
                );
            }
            self.id_step = Some(step);
        }
        let id_step = self.id_step.as_mut().expect("set just above");
        for o in &orders {
            id_step.learn(o.entity_id);
        }
        let filter = self.filter().await?;
        let (wanted, skipped): (Vec<&PlacedOrder>, Vec<&PlacedOrder>) =
            orders.iter().partition(|o| filter.matches(o));
        for o in &skipped {
            tracing::debug!(entity_id = o.entity_id, "Order left out by capture.filter.");
        }
        let (fits, too_large): (Vec<_>, Vec<_>) = wanted
            .into_iter()
            .map(|o| (o, self.outgoing(o, now)))
            .partition(|(_, m)| m.body.len() <= self.deps.broker.max_message_bytes());
        if !too_large.is_empty() {
            self.park_too_large(&too_large, now).await?;
        }
        if !fits.is_empty() {
            let (fits, messages): (Vec<&PlacedOrder>, Vec<Outgoing>) = fits.into_iter().unzip();
            let publisher = self.publisher().await?;
            for (order, result) in fits.iter().zip(publisher.publish_all(&messages).await) {
                if let Err(e) = result {
                    // Position is not moved: the whole batch is read and published
                    // again next time, and the ledger absorbs the repeats.
                    tracing::warn!(entity_id = order.entity_id, error = %e, "Publishing a captured order failed.");
                    return Err(e.into());
                }
            }
        }

        let id_step = self.id_step.as_ref().expect("set above");
        let Advance {
            next,
            opened,
            closed,
            abandoned,
            dropped,
        } = advance(
            &position,
            &orders.iter().map(|o| o.entity_id).collect::<Vec<_>>(),
            now,
            &self.settings,
            id_step,
        );
        if !dropped.is_empty() {
            tracing::warn!(
                given_up = dropped.len(),
                lowest = dropped.first(),
                highest = dropped.last(),
                max_open_gaps = self.settings.max_open_gaps,
                "Too many order ids awaited at once (capture.max_open_gaps); giving up the oldest. \
                 Orders among them that commit later are not captured."
            );
            self.deps
                .metrics
                .capture_gaps_dropped
                .inc_by(dropped.len() as u64);
        }
        for id in &abandoned {
            tracing::warn!(
                entity_id = id,
                waited = ?self.settings.gap_timeout,
                "Giving up on an order id never committed; assuming its checkout rolled back."
            );
        }
        // Nothing read and no gap changed: nothing to save (an idle shop costs
        // its Magento read per poll, and nothing in the ledger).
        if next != position.last_entity_id || !opened.is_empty() || !closed.is_empty() {
            self.deps
                .ledger
                .save_capture_position(&self.deps.shop, next, &opened, &closed, now)
                .await?;
        }
        let closed_set: HashSet<u32> = closed.iter().copied().collect();
        let mut gaps: Vec<(u32, DateTime<Utc>)> = position
            .gaps
            .into_iter()
            .filter(|(id, _)| !closed_set.contains(id))
            .chain(opened.iter().map(|id| (*id, now)))
            .collect();
        gaps.sort_unstable_by_key(|(id, _)| *id);
        let awaited: Vec<u32> = gaps.iter().map(|(id, _)| *id).collect();
        self.position = Some(CapturePosition {
            last_entity_id: next,
            gaps,
        });
        let open_gaps = awaited.len();
        self.deps.metrics.capture_open_gaps.set(open_gaps as i64);
        let published = orders.len() - skipped.len() - too_large.len();
        self.deps.metrics.captured.inc_by(published as u64);
        if !orders.is_empty() {
            tracing::info!(
                published,
                filtered = skipped.len(),
                parked = too_large.len(),
                position = next,
                open_gaps,
                "Captured orders."
            );
        }
        Ok(PollOutcome {
            published,
            filtered: skipped.len(),
            parked: too_large.len(),
            position: next,
            open_gaps,
            abandoned,
            dropped,
            awaited,
        })
    }

    /// Orders whose message the broker would refuse go straight to the ledger,
    /// parked with the reason: kept and visible, never silently dropped.
    async fn park_too_large(
        &self,
        orders: &[(&PlacedOrder, Outgoing)],
        now: DateTime<Utc>,
    ) -> Result<(), RoleError> {
        let limit = self.deps.broker.max_message_bytes();
        for (order, msg) in orders {
            tracing::error!(
                entity_id = order.entity_id,
                size = msg.body.len(),
                "Parked an order too large to publish."
            );
            let reason = format!(
                "order message of {} bytes is larger than broker.max_message_bytes ({limit}); not sent",
                msg.body.len()
            );
            let record = NewOrder::from_placed(order, now);
            let audience = self.deps.audience().await?;
            self.deps
                .ledger
                .record_parked(
                    std::slice::from_ref(&record),
                    audience,
                    &self.deps.shop,
                    &reason,
                    now,
                )
                .await?;
        }
        Ok(())
    }

    async fn start_position(&self, now: DateTime<Utc>) -> Result<CapturePosition, RoleError> {
        let start = match self.settings.start_from {
            StartFrom::Beginning => 0,
            StartFrom::Latest => self.deps.magento.max_entity_id().await?,
        };
        self.deps
            .ledger
            .save_capture_position(&self.deps.shop, start, &[], &[], now)
            .await?;
        tracing::info!(
            after_entity_id = start,
            start_from = ?self.settings.start_from,
            "Fresh ledger: capture starts after this order id."
        );
        Ok(CapturePosition {
            last_entity_id: start,
            gaps: vec![],
        })
    }

    async fn publisher(&mut self) -> Result<&Publisher, RoleError> {
        if self.publisher.is_none() {
            self.publisher = Some(self.deps.broker.publisher().await?);
        }
        Ok(self.publisher.as_ref().expect("set just above"))
    }

    fn outgoing(&self, order: &PlacedOrder, now: DateTime<Utc>) -> Outgoing {
        let json = serde_json::to_string(&order.json).expect("a JSON map always serializes");
        let raw = RawValue::from_string(json).expect("serde_json output is valid JSON");
        let held = self
            .settings
            .holds(order.json.get("state").and_then(|v| v.as_str()));
        let envelope = CapturedOrder::new(&self.deps.shop, now, raw, held);
        let mut headers = FieldTable::default();
        headers.insert("entity_id".into(), AMQPValue::LongUInt(order.entity_id));
        if let Some(inc) = order.json.get("increment_id").and_then(|v| v.as_str()) {
            headers.insert("increment_id".into(), AMQPValue::LongString(inc.into()));
        }
        Outgoing {
            exchange: self.deps.broker.topology().orders_exchange(),
            routing_key: CAPTURE_ROUTING_KEY.to_owned(),
            body: serde_json::to_vec(&envelope).expect("envelope serializes"),
            properties: BasicProperties::default()
                .with_content_type("application/json".into())
                .with_message_id(format!("{}:{}", self.deps.shop, order.entity_id).into())
                .with_type(CAPTURE_ROUTING_KEY.into())
                .with_app_id("order-sync".into())
                .with_timestamp(now.timestamp() as u64)
                .with_headers(headers),
        }
    }
}

impl Role for Capture {
    const NAME: &'static str = "capture";

    /// Polls while this instance holds the capture lock, standing by while
    /// another does. A poll in hand is finished (its confirms awaited) before
    /// returning.
    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        let mut backlog = false;
        let mut poll_failed = false;
        // A new session polls at once.
        self.polled_at = None;
        while !shutdown.is_cancelled() {
            if !self.lead().await? {
                self.stop_following().await;
                if !self.said_standby {
                    tracing::info!(source = %self.deps.shop, "Another instance captures; standing by.");
                    self.said_standby = true;
                }
                if !sleep_or_shutdown(self.settings.takeover_check, shutdown).await {
                    break;
                }
                continue;
            }
            self.said_standby = false;
            self.keep_following(shutdown).await?;
            let announced = self
                .following
                .as_ref()
                .map(|f| f.signal.take())
                .unwrap_or_default();
            // After a failed poll the binlog's commits it was for are spent:
            // the next try comes at the normal interval, not the safety net's.
            let interval =
                match !poll_failed && self.following.as_ref().is_some_and(|f| f.signal.is_live()) {
                    true => self.settings.binlog.poll_interval,
                    false => self.settings.poll_interval,
                };
            // The order poll runs when the binlog read a commit, when a
            // backlog is being drained, and on its own interval; a wake for
            // the lifecycle scan alone costs Magento no order poll.
            let poll_due = backlog
                || announced.commits > 0
                || announced.through.is_some()
                || self.polled_at.is_none_or(|t| t.elapsed() >= interval);
            backlog = false;
            let mut served = false;
            if poll_due {
                let result = self.poll_for(&announced, shutdown).await;
                self.polled_at = Some(Instant::now());
                poll_failed = result.is_err();
                match result {
                    Ok((outcome, read)) => {
                        served = read;
                        self.recovered(Part::Orders);
                        // A full batch means a backlog: go straight on.
                        let read = outcome.published + outcome.filtered + outcome.parked;
                        backlog = read >= self.settings.batch_size as usize;
                    }
                    Err(e) => {
                        // The channel may be the broken part; take a fresh one next time.
                        self.publisher = None;
                        self.failed(Part::Orders, &e);
                        // A Magento read that failed (refused, cut off, timed
                        // out) is tried again at the next poll on a clean
                        // connection; the lifecycle scan goes on meanwhile.
                        // A broker or ledger failure ends the session: its
                        // connections are what needs renewing.
                        if !matches!(e, RoleError::Magento(_)) {
                            return Err(e);
                        }
                    }
                }
            }
            // After the orders they follow: the changes and documents the
            // binlog showed, in commit order. A failure keeps them for the
            // next wake and holds the saved binlog position where it is.
            if announced.overflowed {
                // More than the follower holds: the scan looks now.
                self.lifecycle_ran = None;
            }
            if !announced.seen.is_empty() || !self.kept.is_empty() {
                match self.record_seen(announced.seen, Utc::now()).await {
                    Ok(_) => self.recovered(Part::Lifecycle),
                    Err(e) => {
                        served = false;
                        self.failed(Part::Lifecycle, &e);
                    }
                }
            }
            if let (true, Some(through)) = (served, &announced.through) {
                if let Err(e) = self.save_binlog_position(through).await {
                    self.failed(Part::Orders, &e);
                    return Err(e);
                }
            }
            if self.lifecycle_wanted()
                && self
                    .lifecycle_ran
                    .is_none_or(|t| t.elapsed() >= self.settings.lifecycle.poll_interval)
            {
                self.lifecycle_ran = Some(Instant::now());
                // Never ends the session: a refused document table must not
                // stop the capture of new orders. Nothing of a failed scan
                // was saved, so the next one reads the same again.
                match self.lifecycle_step(Utc::now()).await {
                    Ok(_) => self.recovered(Part::Lifecycle),
                    Err(e) => self.failed(Part::Lifecycle, &e),
                }
            }
            if backlog {
                continue;
            }
            // A follower still connecting can announce too: wait on it either way.
            let signal = self.following.as_ref().map(|f| &f.signal);
            let mut wait = interval;
            if self.lifecycle_wanted() {
                wait = wait.min(self.settings.lifecycle.poll_interval);
            }
            if !self.kept.is_empty() {
                // A change waiting for its placement's record is tried again soon.
                wait = wait.min(KEPT_RETRY);
            }
            let announced = async {
                match signal {
                    Some(s) => s.announced().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
                _ = announced => {}
            }
        }
        Ok(())
    }

    async fn finish(&mut self) {
        self.stop_following().await;
        if let Some(p) = self.publisher.take() {
            p.close().await;
        }
        if let Some(l) = self.lock.take() {
            l.release().await;
        }
        self.leader.store(false, Ordering::SeqCst);
    }
}

impl Capture {
    /// Counts and (not on every poll) logs a failed attempt of `part`.
    fn failed(&self, part: Part, error: &RoleError) {
        self.deps
            .metrics
            .capture_errors
            .get_or_create(&crate::metrics::Metrics::part(part.as_str()))
            .inc();
        if self.deps.capture_health.failed(part, error) == Said::Log {
            tracing::warn!(
                part = part.as_str(),
                error = %error,
                hint = error.hint().unwrap_or_default(),
                "Capture failed; trying again at the next poll."
            );
        }
    }

    fn recovered(&self, part: Part) {
        if let Some(after) = self.deps.capture_health.succeeded(part) {
            tracing::info!(
                part = part.as_str(),
                failing_for = %humantime::format_duration(Duration::from_secs(after.as_secs())),
                "Capture works again."
            );
        }
    }

    /// One poll, then — when the binlog announced orders the committed read
    /// does not show yet — quick re-reads until it does (or [`ANNOUNCED_WAIT`]
    /// passes; the safety-net poll takes over from there). Says whether every
    /// announced order was read (the binlog position may then be saved).
    async fn poll_for(
        &mut self,
        announced: &Pending,
        shutdown: &CancellationToken,
    ) -> Result<(PollOutcome, bool), RoleError> {
        let mut outcome = self.step(Utc::now()).await?;
        let mut read = announced.read_by(outcome.position, &outcome.awaited);
        let started = Instant::now();
        let mut pause = Duration::from_millis(1);
        while !read && started.elapsed() < ANNOUNCED_WAIT {
            if !sleep_or_shutdown(pause, shutdown).await {
                return Ok((outcome, false));
            }
            pause = (pause * 2).min(Duration::from_millis(50));
            outcome = self.step(Utc::now()).await?;
            read = announced.read_by(outcome.position, &outcome.awaited);
        }
        if !read {
            tracing::debug!(
                max_id = announced.max_id,
                "Orders the binlog announced are not visible yet; the next poll looks again."
            );
        }
        Ok((outcome, read))
    }

    /// Saves where the binlog has been served to, at most every
    /// [`BINLOG_SAVE_EVERY`].
    async fn save_binlog_position(&mut self, at: &BinlogPosition) -> Result<(), RoleError> {
        let due = match &self.binlog_saved {
            Some((saved, when)) => saved != at && when.elapsed() >= BINLOG_SAVE_EVERY,
            None => true,
        };
        if due {
            self.deps
                .ledger
                .save_binlog_position(&self.deps.shop, Some(at))
                .await?;
            self.binlog_saved = Some((at.clone(), Instant::now()));
        }
        Ok(())
    }

    /// `capture.mode = "binlog"`: notices a follower that stopped (warns,
    /// falls back to polling) and starts one when it is due.
    async fn keep_following(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        if self.settings.mode != CaptureMode::Binlog {
            self.deps.metrics.set_capture_mode("poll");
            return Ok(());
        }
        if self
            .following
            .as_ref()
            .is_some_and(|f| f.task.is_finished())
        {
            let f = self.following.take().expect("checked just above");
            let stop = f.task.await.unwrap_or_else(|e| Stop::Cut(e.to_string()));
            tracing::warn!(
                reason = %stop,
                retry_in = %humantime::format_duration(self.settings.binlog.retry),
                "Cannot follow the Magento database's binary log; capture polls every \
                 capture.poll_interval until it can."
            );
            if let Stop::Purged(_) = stop {
                // Polling covers the purged stretch; the next follower starts
                // at the log's end.
                self.deps
                    .ledger
                    .save_binlog_position(&self.deps.shop, None)
                    .await?;
                self.binlog_saved = None;
            }
            self.retry_binlog_at = Some(Instant::now() + self.settings.binlog.retry);
        }
        let due = self.retry_binlog_at.is_none_or(|t| Instant::now() >= t);
        if self.following.is_none() && due {
            match self.follower().await {
                Ok(follower) => {
                    let from = self.deps.ledger.binlog_position(&self.deps.shop).await?;
                    self.following = Some(Following::start(follower, from, shutdown));
                }
                // A refused or cut Magento read must not stop capture:
                // polling goes on, and the follower is tried again later.
                Err(RoleError::Magento(e)) => {
                    tracing::warn!(
                        error = %e,
                        retry_in = %humantime::format_duration(self.settings.binlog.retry),
                        "Cannot read the order table's layout to follow the binary log; capture \
                         polls every capture.poll_interval until it can."
                    );
                    self.retry_binlog_at = Some(Instant::now() + self.settings.binlog.retry);
                }
                Err(e) => return Err(e),
            }
        }
        let live = self.following.as_ref().is_some_and(|f| f.signal.is_live());
        self.deps
            .metrics
            .set_capture_mode(if live { "binlog" } else { "poll" });
        Ok(())
    }

    /// A follower for the Magento database, knowing where the columns it
    /// decodes are.
    async fn follower(&self) -> Result<Follower, RoleError> {
        let table = self.deps.magento.tables().order.clone();
        let places = self.deps.magento.column_places(&table).await?;
        let changes = match self.lifecycle_wanted() {
            true => Some(self.layout(&places).await?),
            false => None,
        };
        Ok(Follower {
            opts: self.deps.magento.opts().clone(),
            settings: self.settings.binlog.clone(),
            database: self.deps.magento.database().to_owned(),
            id_column: place_in(&places, &table, "entity_id")?,
            table,
            changes,
        })
    }

    /// Where the follower finds what it decodes of changes and documents. A
    /// document table whose columns order-sync may not see (no grant) is left
    /// to the scan, which says what is refused.
    async fn layout(
        &self,
        order_places: &std::collections::HashMap<String, usize>,
    ) -> Result<Layout, RoleError> {
        let table = &self.deps.magento.tables().order;
        let mut identifiers = [0; crate::magento::documents::ORDER_IDENTIFIERS.len()];
        for (slot, name) in identifiers
            .iter_mut()
            .zip(crate::magento::documents::ORDER_IDENTIFIERS)
        {
            *slot = place_in(order_places, table, name)?;
        }
        let mut documents = Vec::new();
        for kind in self.deps.magento.document_tables() {
            let places = self.deps.magento.column_places(&kind.main).await?;
            if places.is_empty() {
                tracing::warn!(
                    table = %kind.main,
                    "The binlog follower cannot see this document table's columns (no grant?): \
                     its documents come from the lifecycle scan."
                );
                continue;
            }
            documents.push((
                kind.event,
                kind.main.clone(),
                place_in(&places, &kind.main, "entity_id")?,
            ));
        }
        Ok(Layout {
            identifiers,
            updated_at: place_in(order_places, table, "updated_at")?,
            documents,
        })
    }

    async fn stop_following(&mut self) {
        if let Some(f) = self.following.take() {
            f.stop().await;
        }
        self.retry_binlog_at = None;
    }
}

/// Where `column` is in `table` (from [`crate::magento::Magento::column_places`]).
fn place_in(
    places: &std::collections::HashMap<String, usize>,
    table: &str,
    column: &str,
) -> Result<usize, RoleError> {
    places.get(column).copied().ok_or_else(|| {
        RoleError::Magento(crate::magento::MagentoError::MissingColumn {
            table: table.to_owned(),
            column: column.to_owned(),
        })
    })
}

/// The next position and the gap changes after reading some orders.
#[derive(Debug, Default, PartialEq, Eq)]
struct Advance {
    next: u32,
    /// Ids newly awaited (skipped below the new position).
    opened: Vec<u32>,
    /// Ids no longer awaited: found, abandoned or dropped.
    closed: Vec<u32>,
    /// Awaited longer than `gap_timeout`.
    abandoned: Vec<u32>,
    /// Given up, oldest first, to stay within `max_open_gaps`.
    dropped: Vec<u32>,
}

fn advance(
    position: &CapturePosition,
    read: &[u32],
    now: DateTime<Utc>,
    settings: &CaptureSettings,
    id_step: &IdStep,
) -> Advance {
    let last = position.last_entity_id;
    let found: BTreeSet<u32> = read.iter().copied().collect();
    let next = found.iter().copied().max().unwrap_or(last).max(last);
    let span_start = last.max(next.saturating_sub(MAX_GAP_SPAN));
    let mut opened: Vec<u32> = (span_start + 1..next)
        .filter(|id| !found.contains(id) && id_step.possible(*id))
        .collect();
    let timeout = chrono::Duration::from_std(settings.gap_timeout).unwrap_or(chrono::Duration::MAX);
    let mut closed = Vec::new();
    let mut abandoned = Vec::new();
    let mut kept = Vec::new();
    for (id, since) in &position.gaps {
        if found.contains(id) {
            closed.push(*id);
        } else if now - *since > timeout {
            abandoned.push(*id);
            closed.push(*id);
        } else {
            kept.push(*id);
        }
    }
    // Over the cap: give up the lowest ids, the oldest and least likely to
    // be a checkout still committing.
    let cap = settings.max_open_gaps as usize;
    let mut dropped = Vec::new();
    let open = kept.len() + opened.len();
    if open > cap {
        let excess = open - cap;
        let mut all: Vec<u32> = kept.iter().chain(opened.iter()).copied().collect();
        all.sort_unstable();
        dropped = all[..excess].to_vec();
        let gone: HashSet<u32> = dropped.iter().copied().collect();
        opened.retain(|id| !gone.contains(id));
        closed.extend(kept.iter().filter(|id| gone.contains(id)));
    }
    Advance {
        next,
        opened,
        closed,
        abandoned,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn order(id: u32) -> u32 {
        id
    }

    fn settings() -> CaptureSettings {
        CaptureSettings {
            poll_interval: Duration::from_secs(1),
            batch_size: 100,
            gap_timeout: Duration::from_secs(60),
            start_from: StartFrom::Beginning,
            takeover_check: Duration::from_secs(1),
            max_open_gaps: 10_000,
            mode: CaptureMode::Poll,
            binlog: crate::config::BinlogSettings {
                server_id: 0,
                poll_interval: Duration::from_secs(5),
                retry: Duration::from_secs(30),
                heartbeat: Duration::from_secs(1),
            },
            filter: crate::config::FilterSettings::default(),
            hold_states: vec![],
            hold_canceled: crate::config::HoldCanceled::Send,
            lifecycle: crate::config::LifecycleSettings {
                poll_interval: Duration::from_secs(1),
                overlap: Duration::from_secs(60),
                batch_size: 500,
            },
        }
    }

    #[test]
    fn ids_skipped_below_the_new_position_become_gaps() {
        let pos = CapturePosition {
            last_entity_id: 10,
            gaps: vec![],
        };
        let a = advance(
            &pos,
            &[order(12), order(15)],
            Utc::now(),
            &settings(),
            &IdStep::one(),
        );
        assert_eq!(a.next, 15);
        assert_eq!(a.opened, vec![11, 13, 14]);
        assert!(a.closed.is_empty());
    }

    #[test]
    fn a_gap_that_shows_up_is_closed_and_an_old_one_abandoned() {
        let now = Utc::now();
        let pos = CapturePosition {
            last_entity_id: 20,
            gaps: vec![
                (11, now - chrono::Duration::seconds(5)),
                (13, now - chrono::Duration::seconds(61)),
            ],
        };
        let a = advance(&pos, &[order(11)], now, &settings(), &IdStep::one());
        assert_eq!(a.next, 20);
        assert!(a.opened.is_empty());
        assert_eq!(a.closed, vec![11, 13]);
        assert_eq!(a.abandoned, vec![13]);
    }

    #[test]
    fn a_huge_id_jump_tracks_only_the_last_span() {
        let pos = CapturePosition::default();
        let mut s = settings();
        s.max_open_gaps = 1_000_000;
        let a = advance(&pos, &[order(1_000_000)], Utc::now(), &s, &IdStep::one());
        assert_eq!(a.opened.len(), (MAX_GAP_SPAN - 1) as usize);
    }

    #[test]
    fn ids_the_server_cannot_hand_out_are_never_awaited() {
        // auto_increment_increment = 3, offset 2: ids 2, 5, 8, 11, ...
        let mut step = IdStep::new(3, 2);
        let pos = CapturePosition {
            last_entity_id: 2,
            gaps: vec![],
        };
        let a = advance(&pos, &[order(11)], Utc::now(), &settings(), &step);
        assert_eq!(a.opened, vec![5, 8]);
        // A second writer (offset 3) shows up: its ids become possible too.
        step.learn(12);
        let pos = CapturePosition {
            last_entity_id: 12,
            gaps: vec![],
        };
        let a = advance(&pos, &[order(21)], Utc::now(), &settings(), &step);
        assert_eq!(a.opened, vec![14, 15, 17, 18, 20]);
    }

    #[test]
    fn past_the_cap_the_lowest_awaited_ids_are_given_up() {
        let now = Utc::now();
        let mut s = settings();
        s.max_open_gaps = 2;
        let pos = CapturePosition {
            last_entity_id: 10,
            gaps: vec![(4, now), (7, now)],
        };
        let a = advance(&pos, &[order(13)], now, &s, &IdStep::one());
        assert_eq!(a.dropped, vec![4, 7]);
        assert_eq!(a.opened, vec![11, 12]);
        assert_eq!(a.closed, vec![4, 7]);
        assert!(a.abandoned.is_empty());
    }
}
