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
//! ledger database ([`CaptureLock`]), checked before every poll.

use std::{
    collections::{BTreeSet, HashSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use chrono::{DateTime, Utc};
use lapin::{
    types::{AMQPValue, FieldTable},
    BasicProperties,
};
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use super::{sleep_or_shutdown, Deps, Role, RoleError};
use crate::{
    broker::{topology::CAPTURE_ROUTING_KEY, Outgoing, Publisher},
    config::{CaptureSettings, FilterSettings, StartFrom},
    ledger::{CaptureLock, CapturePosition, NewOrder},
    magento::PlacedOrder,
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
}

pub struct Capture {
    deps: Deps,
    settings: CaptureSettings,
    /// Resolved on the first poll (website codes need a lookup).
    filter: Option<Filter>,
    publisher: Option<Publisher>,
    lock: Option<CaptureLock>,
    /// Whether this instance holds the capture lock (shown in status output).
    leader: Arc<AtomicBool>,
    said_standby: bool,
}

/// `capture.filter`, with website codes resolved to store ids.
#[derive(Debug)]
struct Filter {
    stores: Option<HashSet<u16>>,
    states: Vec<String>,
    statuses: Vec<String>,
}

impl Filter {
    fn matches(&self, order: &PlacedOrder) -> bool {
        let field = |name: &str| order.json.get(name).and_then(|v| v.as_str());
        if let Some(stores) = &self.stores {
            let store = order.json.get("store_id").and_then(|v| v.as_u64());
            if !store.is_some_and(|s| stores.contains(&(s as u16))) {
                return false;
            }
        }
        let listed = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        };
        listed(&self.states, field("state")) && listed(&self.statuses, field("status"))
    }
}

impl Capture {
    pub fn new(deps: &Deps, settings: &CaptureSettings) -> Self {
        Self {
            deps: deps.clone(),
            settings: settings.clone(),
            filter: None,
            publisher: None,
            lock: None,
            leader: Arc::new(AtomicBool::new(false)),
            said_standby: false,
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
            if let Some(l) = self.lock.take() {
                l.release().await;
            }
        }
        match self.deps.ledger.try_capture_lock(source).await? {
            Some(l) => {
                self.lock = Some(l);
                self.leader.store(true, Ordering::SeqCst);
                // A new leader re-reads its position and filters from scratch.
                self.filter = None;
                tracing::info!(source = %source, "This instance now captures.");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// `capture.filter`, resolved once per leadership.
    async fn filter(&mut self) -> Result<&Filter, RoleError> {
        if self.filter.is_none() {
            self.filter = Some(self.resolve_filter().await?);
        }
        Ok(self.filter.as_ref().expect("resolved just above"))
    }

    async fn resolve_filter(&self) -> Result<Filter, RoleError> {
        let FilterSettings {
            store_ids,
            website_codes,
            states,
            statuses,
        } = &self.settings.filter;
        let stores = if store_ids.is_empty() && website_codes.is_empty() {
            None
        } else {
            let mut set: HashSet<u16> = store_ids.iter().copied().collect();
            let of_websites = self
                .deps
                .magento
                .store_ids_of_websites(website_codes)
                .await?;
            if !website_codes.is_empty() && of_websites.is_empty() {
                tracing::warn!(website_codes = ?website_codes, "No store belongs to the websites in capture.filter.website_codes.");
            }
            set.extend(of_websites);
            Some(set)
        };
        Ok(Filter {
            stores,
            states: states.clone(),
            statuses: statuses.clone(),
        })
    }

    /// One poll at `now` (gaps older than `gap_timeout` before it are given up).
    pub async fn step(&mut self, now: DateTime<Utc>) -> Result<PollOutcome, RoleError> {
        let position = match self.deps.ledger.capture_position(&self.deps.shop).await? {
            Some(p) => p,
            None => self.start_position(now).await?,
        };
        let gap_ids: Vec<u32> = position.gaps.iter().map(|(id, _)| *id).collect();
        let orders = self
            .deps
            .magento
            .read_orders(position.last_entity_id, self.settings.batch_size, &gap_ids)
            .await?;

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

        let (next, opened, closed, abandoned) = advance(&position, &orders, now, &self.settings);
        for id in &abandoned {
            tracing::warn!(
                entity_id = id,
                waited = ?self.settings.gap_timeout,
                "Giving up on an order id never committed; assuming its checkout rolled back."
            );
        }
        // Nothing read and no gap changed: nothing to save (an idle shop costs
        // one read of the position per poll, no writes).
        if next != position.last_entity_id || !opened.is_empty() || !closed.is_empty() {
            self.deps
                .ledger
                .save_capture_position(&self.deps.shop, next, &opened, &closed, now)
                .await?;
        }
        let open_gaps = position.gaps.len() + opened.len() - (closed.len());
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
            self.deps
                .ledger
                .record_parked(
                    std::slice::from_ref(&record),
                    &self.deps.consumers.names,
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
        let envelope = CapturedOrder::new(&self.deps.shop, now, raw);
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
        while !shutdown.is_cancelled() {
            if !self.lead().await? {
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
            let outcome = match self.step(Utc::now()).await {
                Ok(o) => o,
                Err(e) => {
                    // The channel may be the broken part; take a fresh one next time.
                    self.publisher = None;
                    return Err(e);
                }
            };
            // A full batch means a backlog: go straight on.
            let read = outcome.published + outcome.filtered + outcome.parked;
            if read < self.settings.batch_size as usize
                && !sleep_or_shutdown(self.settings.poll_interval, shutdown).await
            {
                break;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) {
        if let Some(p) = self.publisher.take() {
            p.close().await;
        }
        if let Some(l) = self.lock.take() {
            l.release().await;
        }
        self.leader.store(false, Ordering::SeqCst);
    }
}

/// The next position and the gap changes after reading `orders`.
/// Returns (new position, gaps opened, gaps closed, gaps abandoned).
fn advance(
    position: &CapturePosition,
    orders: &[PlacedOrder],
    now: DateTime<Utc>,
    settings: &CaptureSettings,
) -> (u32, Vec<u32>, Vec<u32>, Vec<u32>) {
    let last = position.last_entity_id;
    let found: BTreeSet<u32> = orders.iter().map(|o| o.entity_id).collect();
    let next = found.iter().copied().max().unwrap_or(last).max(last);
    let span_start = last.max(next.saturating_sub(MAX_GAP_SPAN));
    let opened: Vec<u32> = (span_start + 1..next)
        .filter(|id| !found.contains(id))
        .collect();
    let timeout = chrono::Duration::from_std(settings.gap_timeout).unwrap_or(chrono::Duration::MAX);
    let mut closed = Vec::new();
    let mut abandoned = Vec::new();
    for (id, since) in &position.gaps {
        if found.contains(id) {
            closed.push(*id);
        } else if now - *since > timeout {
            abandoned.push(*id);
            closed.push(*id);
        }
    }
    (next, opened, closed, abandoned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;
    use std::time::Duration;

    fn order(id: u32) -> PlacedOrder {
        PlacedOrder {
            entity_id: id,
            json: Map::new(),
        }
    }

    fn settings() -> CaptureSettings {
        CaptureSettings {
            poll_interval: Duration::from_secs(1),
            batch_size: 100,
            gap_timeout: Duration::from_secs(60),
            start_from: StartFrom::Beginning,
            takeover_check: Duration::from_secs(1),
            filter: FilterSettings::default(),
        }
    }

    #[test]
    fn ids_skipped_below_the_new_position_become_gaps() {
        let pos = CapturePosition {
            last_entity_id: 10,
            gaps: vec![],
        };
        let (next, opened, closed, _) =
            advance(&pos, &[order(12), order(15)], Utc::now(), &settings());
        assert_eq!(next, 15);
        assert_eq!(opened, vec![11, 13, 14]);
        assert!(closed.is_empty());
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
        let (next, opened, closed, abandoned) = advance(&pos, &[order(11)], now, &settings());
        assert_eq!(next, 20);
        assert!(opened.is_empty());
        assert_eq!(closed, vec![11, 13]);
        assert_eq!(abandoned, vec![13]);
    }

    #[test]
    fn a_huge_id_jump_tracks_only_the_last_span() {
        let pos = CapturePosition::default();
        let (_, opened, _, _) = advance(&pos, &[order(1_000_000)], Utc::now(), &settings());
        assert_eq!(opened.len(), (MAX_GAP_SPAN - 1) as usize);
    }
}
