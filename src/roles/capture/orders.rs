//! The order poll: committed orders above the saved position, and the ids
//! below it still awaited (gaps), published with confirms; only then is the
//! position moved, in the ledger, in one transaction.
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
//! Id steps: on a cluster handing out ids in steps (an
//! `auto_increment_increment` above 1), only ids the server can hand out are
//! awaited ([`IdStep`]); open gaps are capped at `capture.max_open_gaps` (the
//! oldest given up) and read in chunks.

use std::{
    collections::{BTreeSet, HashSet},
    time::Instant,
};

use chrono::{DateTime, Utc};
use lapin::{
    types::{AMQPValue, FieldTable},
    BasicProperties,
};

use super::{Deps, RoleError};
use crate::{
    broker::{topology::CAPTURE_ROUTING_KEY, Outgoing, Publisher},
    config::{CaptureSettings, StartFrom},
    ledger::{CapturePosition, NewOrder},
    magento::{IdStep, OrderScope, PlacedOrder},
    message::CapturedOrder,
    metrics::Stage,
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

/// The order poll's state, kept while this instance leads.
pub struct OrderPoll {
    deps: Deps,
    settings: CaptureSettings,
    /// Resolved on the first poll (website codes need a lookup).
    pub(super) filter: Option<OrderScope>,
    publisher: Option<Publisher>,
    /// Which ids the server can hand out; learned per leadership.
    id_step: Option<IdStep>,
    /// The position as last saved, kept while leading: the leader is its only
    /// writer, so a poll need not read it back. Dropped on any error and on a
    /// change of leadership, then read from the ledger again.
    pub(super) position: Option<CapturePosition>,
    /// The batch after the last one, read while that one was confirmed.
    prefetched: Option<Prefetched>,
}

/// A batch read ahead, and the position it was read from: used only by a
/// poll that starts from exactly that position.
struct Prefetched {
    from: CapturePosition,
    orders: Vec<PlacedOrder>,
}

impl OrderPoll {
    pub fn new(deps: &Deps, settings: &CaptureSettings) -> Self {
        Self {
            deps: deps.clone(),
            settings: settings.clone(),
            filter: None,
            publisher: None,
            id_step: None,
            position: None,
            prefetched: None,
        }
    }

    /// A new leader re-reads its position, filter and id step from scratch.
    pub(super) fn forget(&mut self) {
        self.filter = None;
        self.id_step = None;
        self.position = None;
        self.prefetched = None;
    }

    /// After a failed poll: the channel may be the broken part.
    pub(super) fn drop_publisher(&mut self) {
        self.publisher = None;
    }

    pub(super) async fn close(&mut self) {
        if let Some(p) = self.publisher.take() {
            p.close().await;
        }
    }

    /// `capture.filter`, resolved once per leadership.
    pub(super) async fn filter(&mut self) -> Result<&OrderScope, RoleError> {
        if self.filter.is_none() {
            self.filter = Some(self.deps.magento.order_scope(&self.settings.filter).await?);
        }
        Ok(self.filter.as_ref().expect("resolved just above"))
    }

    /// The committed orders above `position` and those of its gaps that are
    /// there now.
    async fn read(&self, position: &CapturePosition) -> Result<Vec<PlacedOrder>, RoleError> {
        let gap_ids: Vec<u32> = position.gaps.iter().map(|(id, _)| *id).collect();
        let started = Instant::now();
        let orders = self
            .deps
            .magento
            .read_orders(position.last_entity_id, self.settings.batch_size, &gap_ids)
            .await?;
        if !orders.is_empty() {
            self.deps.metrics.stage(Stage::CaptureRead, started);
        }
        Ok(orders)
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
        let orders = match self.prefetched.take() {
            Some(p) if p.from == position => p.orders,
            _ => self.read(&position).await?,
        };

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
        let closed_set: HashSet<u32> = closed.iter().copied().collect();
        let mut gaps: Vec<(u32, DateTime<Utc>)> = position
            .gaps
            .into_iter()
            .filter(|(id, _)| !closed_set.contains(id))
            .chain(opened.iter().map(|id| (*id, now)))
            .collect();
        gaps.sort_unstable_by_key(|(id, _)| *id);
        let next_position = CapturePosition {
            last_entity_id: next,
            gaps,
        };
        let (fits, messages): (Vec<&PlacedOrder>, Vec<Outgoing>) = fits.into_iter().unzip();
        if !fits.is_empty() {
            self.publisher().await?;
        }
        // A full batch means more is waiting: the next one is read while this
        // one's confirms and position save are awaited (the read never moves
        // the position; it is kept only if they all succeed).
        let full = orders.len() >= self.settings.batch_size as usize;
        let changed = next != position.last_entity_id || !opened.is_empty() || !closed.is_empty();
        let this = &*self;
        let settle = async {
            if !fits.is_empty() {
                let publisher = this.publisher.as_ref().expect("opened above");
                let started = Instant::now();
                let results = publisher.publish_all(&messages).await;
                this.deps.metrics.stage(Stage::CapturePublish, started);
                for (order, result) in fits.iter().zip(results) {
                    if let Err(e) = result {
                        // Position is not moved: the whole batch is read and published
                        // again next time, and the ledger absorbs the repeats.
                        tracing::warn!(entity_id = order.entity_id, error = %e, "Publishing a captured order failed.");
                        return Err(RoleError::from(e));
                    }
                }
            }
            // Nothing read and no gap changed: nothing to save (an idle shop
            // costs its Magento read per poll, and nothing in the ledger).
            if changed {
                let started = Instant::now();
                this.deps
                    .ledger
                    .save_capture_position(&this.deps.shop, next, &opened, &closed, now)
                    .await?;
                this.deps.metrics.stage(Stage::CaptureSave, started);
            }
            Ok(())
        };
        let ahead = async {
            match full {
                true => Some(this.read(&next_position).await),
                false => None,
            }
        };
        let (settled, ahead) = tokio::join!(settle, ahead);
        settled?;
        // Said and counted only once the position holds: a failed poll gives
        // the same ids up again on the next one.
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
        match ahead {
            Some(Ok(orders)) => {
                self.prefetched = Some(Prefetched {
                    from: next_position.clone(),
                    orders,
                })
            }
            // The next poll reads it again, and meets the error there.
            Some(Err(e)) => tracing::debug!(error = %e, "Reading the next batch ahead failed."),
            None => {}
        }
        let awaited: Vec<u32> = next_position.gaps.iter().map(|(id, _)| *id).collect();
        self.position = Some(next_position);
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
        let held = self.settings.holds(order.key.state.as_deref());
        let envelope = CapturedOrder::new(&self.deps.shop, now, &*order.json, held);
        let mut headers = FieldTable::default();
        headers.insert("entity_id".into(), AMQPValue::LongUInt(order.entity_id));
        if let Some(inc) = order.key.increment_id.as_deref() {
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

/// The next position and the gap changes after reading some orders.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Advance {
    pub(super) next: u32,
    /// Ids newly awaited (skipped below the new position).
    pub(super) opened: Vec<u32>,
    /// Ids no longer awaited: found, abandoned or dropped.
    pub(super) closed: Vec<u32>,
    /// Awaited longer than `gap_timeout`.
    pub(super) abandoned: Vec<u32>,
    /// Given up, oldest first, to stay within `max_open_gaps`.
    pub(super) dropped: Vec<u32>,
}

pub(super) fn advance(
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

    use crate::config::CaptureMode;

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
