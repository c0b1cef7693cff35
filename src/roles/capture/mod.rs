//! Capture: Magento orders → `<prefix>.orders`, and their later events into
//! the ledger.
//!
//! One type per job, the role holding them together:
//! - [`orders::OrderPoll`]: committed orders above the saved position and the
//!   gaps below it, published with confirms, then the position saved;
//! - [`trigger::BinlogTrigger`]: `capture.mode = "binlog"`, the follower of
//!   Magento's binary log ([`binlog`]) that announces commits (a poll at once)
//!   and the changes and documents they made ([`seen`]);
//! - [`lifecycle::LifecycleScan`]: documents and state changes read by
//!   polling, the safety net in binlog mode and the source in poll mode;
//! - [`Capture`]: leadership (only one instance captures at a time: the
//!   holder of a named lock in the ledger database, [`NamedLock`], checked
//!   before every wake) and the loop, which asks `wake` (pure) what is due.
//!
//! What starts a poll: a timer (`capture.mode = "poll"`), or each commit that
//! inserted orders, read from the binary log, with a slow timer as the safety
//! net and the normal one whenever the binlog cannot be followed.

pub mod binlog;
pub mod health;
pub mod lifecycle;
pub mod orders;
pub mod seen;
pub mod trigger;

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use self::orders::PollOutcome;
use self::{
    binlog::{Pending, Seen},
    health::{Part, Said},
    lifecycle::LifecycleScan,
    orders::OrderPoll,
    trigger::BinlogTrigger,
};
use super::{sleep_or_shutdown, Deps, Role, RoleError};
use crate::{config::CaptureSettings, ledger::NamedLock};

pub struct Capture {
    deps: Deps,
    settings: CaptureSettings,
    /// The order poll: filter, publisher, id step and position.
    orders: OrderPoll,
    /// `capture.mode = "binlog"`: the follower and the saved binlog position.
    trigger: BinlogTrigger,
    lock: Option<NamedLock>,
    /// Whether this instance holds the capture lock (shown in status output).
    leader: Arc<AtomicBool>,
    said_standby: bool,
    /// The lifecycle scan ([`lifecycle`]).
    scan: LifecycleScan,
    /// When the last order poll ran.
    polled_at: Option<Instant>,
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

/// What one wake of capture finds (the input of [`wake`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Found {
    /// The binlog announced a commit since the last wake (with orders or not).
    pub announced: bool,
    /// The last poll read a full batch.
    pub backlog: bool,
    /// The last poll failed.
    pub poll_failed: bool,
    /// A follower reads the binlog stream.
    pub live: bool,
    /// Since the last order poll, or `None` for none yet this session.
    pub since_poll: Option<Duration>,
    /// Someone wants later events (or holds): the scan runs.
    pub lifecycle_wanted: bool,
    /// Since the last lifecycle scan, or `None` for one due now.
    pub since_scan: Option<Duration>,
    /// The binlog showed changes not yet recorded.
    pub kept: bool,
}

/// What capture does on one wake, and how long it may sleep after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Wake {
    pub poll: bool,
    pub scan: bool,
    /// The longest sleep after this wake (an announcement wakes it sooner).
    pub sleep: Duration,
}

/// The pure part of capture's loop. The order poll runs when the binlog read
/// a commit, when a backlog is being drained, and on its interval: the
/// safety net's while the follower is live, the normal one otherwise and
/// after a failed poll (the commits it was for are spent). A wake for the
/// scan alone costs Magento no order poll.
pub(super) fn wake(found: Found, settings: &CaptureSettings) -> Wake {
    let interval = match !found.poll_failed && found.live {
        true => settings.binlog.poll_interval,
        false => settings.poll_interval,
    };
    let poll = found.backlog || found.announced || found.since_poll.is_none_or(|t| t >= interval);
    let scan_every = settings.lifecycle.poll_interval;
    let scan = found.lifecycle_wanted && found.since_scan.is_none_or(|t| t >= scan_every);
    let mut sleep = match found.backlog {
        true => Duration::ZERO,
        false => interval,
    };
    if found.lifecycle_wanted {
        sleep = sleep.min(scan_every);
    }
    if found.kept {
        sleep = sleep.min(KEPT_RETRY);
    }
    Wake { poll, scan, sleep }
}

impl Capture {
    pub fn new(deps: &Deps, settings: &CaptureSettings) -> Self {
        Self {
            deps: deps.clone(),
            settings: settings.clone(),
            orders: OrderPoll::new(deps, settings),
            trigger: BinlogTrigger::new(deps, settings),
            lock: None,
            leader: Arc::new(AtomicBool::new(false)),
            said_standby: false,
            scan: LifecycleScan::new(deps, settings),
            polled_at: None,
            kept: Vec::new(),
        }
    }

    /// One order poll at `now` (gaps older than `gap_timeout` before it are
    /// given up): what tests drive.
    pub async fn step(&mut self, now: DateTime<Utc>) -> Result<PollOutcome, RoleError> {
        self.orders.step(now).await
    }

    /// One lifecycle scan at `now` ([`lifecycle`]): what tests drive.
    pub async fn lifecycle_step(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<lifecycle::LifecycleOutcome, RoleError> {
        self.orders.filter().await?;
        let live = self.trigger.is_live();
        self.scan.step(&self.orders, live, now).await
    }

    /// Whether this shop needs the lifecycle scan at all.
    fn lifecycle_wanted(&self) -> bool {
        self.scan.wanted()
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
                self.orders.forget();
                self.scan.forget();
                tracing::info!(source = %source, "This instance now captures.");
                Ok(true)
            }
            None => Ok(false),
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
                self.trigger.stop().await;
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
            self.trigger.keep(self.lifecycle_wanted(), shutdown).await?;
            let announced = self.trigger.take();
            if announced.overflowed {
                // More than the follower holds: the scan looks now.
                self.scan.ran = None;
            }
            let due = wake(self.found(&announced, backlog, poll_failed), &self.settings);
            let mut served = false;
            if due.poll {
                let result = self.poll_for(&announced, shutdown).await;
                self.polled_at = Some(Instant::now());
                poll_failed = result.is_err();
                backlog = false;
                match result {
                    Ok((outcome, read)) => {
                        served = read;
                        self.recovered(Part::Orders);
                        // A full batch means a backlog: go straight on.
                        let read = outcome.published + outcome.filtered + outcome.parked;
                        backlog = read >= self.settings.batch_size as usize;
                    }
                    Err(e) => {
                        self.orders.drop_publisher();
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
                if let Err(e) = self.trigger.save(through).await {
                    self.failed(Part::Orders, &e);
                    return Err(e);
                }
            }
            if due.scan {
                self.scan.ran = Some(Instant::now());
                // Never ends the session: a refused document table must not
                // stop the capture of new orders. Nothing of a failed scan
                // was saved, so the next one reads the same again.
                match self.lifecycle_step(Utc::now()).await {
                    Ok(_) => self.recovered(Part::Lifecycle),
                    Err(e) => self.failed(Part::Lifecycle, &e),
                }
            }
            let next = wake(
                self.found(&Pending::default(), backlog, poll_failed),
                &self.settings,
            );
            if next.sleep.is_zero() {
                continue;
            }
            // A follower still connecting can announce too: wait on it either way.
            let signal = self.trigger.signal();
            let announced = async {
                match signal {
                    Some(s) => s.announced().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(next.sleep) => {}
                _ = announced => {}
            }
        }
        Ok(())
    }

    async fn finish(&mut self) {
        self.trigger.stop().await;
        self.orders.close().await;
        if let Some(l) = self.lock.take() {
            l.release().await;
        }
        self.leader.store(false, Ordering::SeqCst);
    }
}

impl Capture {
    /// What this wake finds, for [`wake`].
    fn found(&self, announced: &Pending, backlog: bool, poll_failed: bool) -> Found {
        Found {
            announced: announced.commits > 0 || announced.through.is_some(),
            backlog,
            poll_failed,
            live: self.trigger.is_live(),
            since_poll: self.polled_at.map(|t| t.elapsed()),
            lifecycle_wanted: self.lifecycle_wanted(),
            since_scan: self.scan.ran.map(|t| t.elapsed()),
            kept: !self.kept.is_empty(),
        }
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CaptureSettings {
        crate::config::load_with_env(None, std::iter::empty())
            .expect("the defaults load")
            .capture
    }

    #[test]
    fn a_commit_the_binlog_announced_is_polled_at_once_and_a_quiet_wake_costs_no_poll() {
        let s = settings();
        let quiet = Found {
            live: true,
            since_poll: Some(Duration::from_millis(10)),
            ..Found::default()
        };
        assert!(!wake(quiet, &s).poll);
        let announced = Found {
            announced: true,
            ..quiet
        };
        assert!(wake(announced, &s).poll);
        let first = Found {
            since_poll: None,
            ..quiet
        };
        assert!(wake(first, &s).poll, "a new session polls at once");
    }

    #[test]
    fn a_live_follower_stretches_the_poll_to_the_safety_net_until_a_poll_fails() {
        let s = settings();
        let between = (s.poll_interval + s.binlog.poll_interval) / 2;
        let live = Found {
            live: true,
            since_poll: Some(between),
            ..Found::default()
        };
        assert!(!wake(live, &s).poll);
        assert_eq!(wake(live, &s).sleep, s.binlog.poll_interval);
        let failed = Found {
            poll_failed: true,
            ..live
        };
        assert!(wake(failed, &s).poll);
        let polling = Found {
            live: false,
            ..live
        };
        assert!(wake(polling, &s).poll);
        assert_eq!(wake(polling, &s).sleep, s.poll_interval);
    }

    #[test]
    fn a_backlog_goes_straight_on_and_kept_changes_are_tried_again_soon() {
        let s = settings();
        let backlog = Found {
            backlog: true,
            since_poll: Some(Duration::ZERO),
            ..Found::default()
        };
        assert!(wake(backlog, &s).poll);
        assert_eq!(wake(backlog, &s).sleep, Duration::ZERO);
        let kept = Found {
            kept: true,
            since_poll: Some(Duration::ZERO),
            ..Found::default()
        };
        assert_eq!(wake(kept, &s).sleep, KEPT_RETRY);
    }

    #[test]
    fn the_scan_runs_on_its_own_interval_only_when_someone_wants_it() {
        let s = settings();
        let every = s.lifecycle.poll_interval;
        let unwanted = Found {
            since_poll: Some(Duration::ZERO),
            since_scan: None,
            ..Found::default()
        };
        assert!(!wake(unwanted, &s).scan);
        let wanted = Found {
            lifecycle_wanted: true,
            since_scan: Some(every / 2),
            ..unwanted
        };
        assert!(!wake(wanted, &s).scan);
        assert!(wake(wanted, &s).sleep <= every);
        let due = Found {
            since_scan: Some(every),
            ..wanted
        };
        assert!(wake(due, &s).scan);
        let overflowed = Found {
            since_scan: None,
            ..wanted
        };
        assert!(wake(overflowed, &s).scan, "the follower overflowed: now");
    }
}
