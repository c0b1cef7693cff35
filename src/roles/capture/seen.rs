//! Recording what the binlog follower saw (`capture.mode = "binlog"`): each
//! change of an order's state or status and each new document, as a later
//! event, in the binlog's commit order, within milliseconds of the commit.
//!
//! A change is recorded from its row images: the after image's identifiers
//! are the order's part of the message, the before image is `previous`, and
//! the ledger takes it only if it holds exactly the before image
//! ([`crate::ledger::Change::moved_from`]). That one rule keeps every change
//! once: a change the scan recorded first (the follower was behind), one
//! replayed after a restart, or one made before capture read the order's
//! placement finds the ledger in another state and adds nothing. Documents
//! are read by id (the committed read, like the scan's) and recorded once per
//! document as before.
//!
//! What waits: a document not visible yet (the binlog is written just before
//! the commit is), or an event of an order whose placement the relay has not
//! recorded yet, is kept and tried again at the next wake, for at most
//! [`SEEN_WAIT`]; an order's later items wait behind its first waiting one,
//! so its events stay in commit order. What is kept here is lost if the
//! process dies: the scan, which leaves only the last
//! [`super::lifecycle::BINLOG_GRACE`] to the follower, records it then (a
//! change then as one, from the ledger's state to Magento's).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    binlog::{Seen, MAX_SEEN},
    lifecycle::{date, document_change, placement, LifecycleOutcome, Placement},
    Capture, RoleError,
};
use crate::{ledger::KnownOrder, magento::documents::Document, message::Event};

/// How long a seen change or document waits for its order's placement or
/// its own commit to show before it is left to the scan.
pub const SEEN_WAIT: Duration = Duration::from_secs(30);

/// What to do with one seen item now ([`decide`]).
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Record it now.
    Record,
    /// Keep it for the next wake.
    Keep,
    /// Leave it: an order order-sync does not hold, or kept too long.
    Leave,
}

/// The pure part of a wake: what becomes of an item of order `order`, seen
/// `age` ago, whose document (if it is one) `visible` or not, whose order the
/// ledger holds or may soon (`placement`), when an earlier item of the same
/// order is `behind` (kept).
pub(super) fn decide(visible: bool, placement: Placement, behind: bool, age: Duration) -> Next {
    let keep = if age < SEEN_WAIT {
        Next::Keep
    } else {
        Next::Leave
    };
    if !visible || behind {
        return keep;
    }
    match placement {
        Placement::Known => Next::Record,
        Placement::Waiting => keep,
        Placement::Unknown => Next::Leave,
    }
}

impl Capture {
    /// Records `seen` (and what earlier wakes kept) at `now`. On an error
    /// everything stays kept for the next wake.
    pub async fn record_seen(
        &mut self,
        seen: Vec<Seen>,
        now: DateTime<Utc>,
    ) -> Result<LifecycleOutcome, RoleError> {
        let arrived = Instant::now();
        self.kept.extend(seen.into_iter().map(|s| (s, arrived)));
        if self.kept.len() > MAX_SEEN {
            // The oldest are the scan's by now.
            let over = self.kept.len() - MAX_SEEN;
            self.kept.drain(..over);
        }
        if self.kept.is_empty() {
            return Ok(LifecycleOutcome::default());
        }
        let deps = self.deps.clone();
        let audience = deps.audience().await?;
        self.orders.filter().await?;

        let mut docs = self.read_seen_documents().await?;
        let mut order_ids: Vec<u32> = docs.values().map(|d| d.order_id).collect();
        order_ids.extend(self.kept.iter().filter_map(|(s, _)| match s {
            Seen::Moved { change, .. } => Some(change.entity_id),
            Seen::Document { .. } => None,
        }));
        order_ids.sort_unstable();
        order_ids.dedup();
        let known = self.deps.ledger.known_orders(&order_ids).await?;

        let mut outcome = LifecycleOutcome::default();
        let mut changes = Vec::new();
        let mut paid_ids = Vec::new();
        let mut kept = Vec::new();
        // Orders with an item kept: their later items wait behind it.
        let mut behind: HashSet<u32> = HashSet::new();
        for (item, since) in &self.kept {
            let (item, since) = (item.clone(), *since);
            let age = since.elapsed();
            match item {
                Seen::Document { event, entity_id } => {
                    let doc = docs.remove(&(event, entity_id));
                    let order = doc.as_ref().map(|d| d.order_id);
                    let place = match &doc {
                        Some(d) => self.scan.place_of(&self.orders, d, &known, now),
                        None => Placement::Waiting,
                    };
                    let blocked = order.is_some_and(|o| behind.contains(&o));
                    match decide(doc.is_some(), place, blocked, age) {
                        Next::Record => changes.push(document_change(doc.expect("visible"))),
                        Next::Keep => {
                            behind.extend(order);
                            kept.push((Seen::Document { event, entity_id }, since));
                            outcome.waiting += 1;
                        }
                        Next::Leave => outcome.unknown += 1,
                    }
                }
                Seen::Moved {
                    change: row,
                    before,
                    at,
                } => {
                    let filter = self.orders.filter.as_ref().expect("resolved before");
                    if !filter.store_matches(row.store_id) {
                        continue;
                    }
                    let id = row.entity_id;
                    let held = known.get(&id).map(|k| k.held);
                    let created = date(row.order.get("created_at").and_then(Value::as_str));
                    let place = placement(held.is_some(), created, now);
                    match decide(true, place, behind.contains(&id), age) {
                        Next::Record => {
                            // The move is from the before image, not from what
                            // the ledger holds: `previous` is what it was.
                            let was = KnownOrder {
                                state: before.0.clone(),
                                status: before.1.clone(),
                                held: held.unwrap_or_default(),
                            };
                            let (mut change, paid) = self.scan.change_of(*row, &was);
                            change.moved_from = Some(before);
                            change.binlog_at = at;
                            if paid {
                                paid_ids.push(id);
                            }
                            changes.push(change);
                        }
                        Next::Keep => {
                            behind.insert(id);
                            kept.push((
                                Seen::Moved {
                                    change: row,
                                    before,
                                    at,
                                },
                                since,
                            ));
                            outcome.waiting += 1;
                        }
                        Next::Leave => outcome.unknown += 1,
                    }
                }
            }
        }
        // Until these writes succeed everything stays kept: a failure loses
        // nothing, and the next wake tries the same again.
        self.scan.fill_paid(&mut changes, paid_ids).await?;
        let recorded = self
            .deps
            .ledger
            .record_changes(&changes, audience, &self.deps.shop, now)
            .await?;
        self.kept = kept;
        outcome.events = recorded.events;
        outcome.released = recorded.released;
        if recorded.events > 0 || recorded.released > 0 {
            tracing::debug!(
                events = recorded.events,
                released = recorded.released,
                "Recorded order events the binlog showed."
            );
            self.deps.follow_ons.notify_one();
        }
        self.deps
            .metrics
            .captured_events
            .inc_by(recorded.events as u64);
        Ok(outcome)
    }

    /// The kept documents, read by id in one snapshot, by (kind, id).
    async fn read_seen_documents(&self) -> Result<HashMap<(Event, u32), Document>, RoleError> {
        let mut wanted: HashMap<Event, Vec<u32>> = HashMap::new();
        for (item, _) in &self.kept {
            if let Seen::Document { event, entity_id } = item {
                wanted.entry(*event).or_default().push(*entity_id);
            }
        }
        let mut out = HashMap::new();
        if wanted.is_empty() {
            return Ok(out);
        }
        let mut snapshot = self.deps.magento.snapshot().await?;
        for kind in self.deps.magento.document_tables() {
            let Some(ids) = wanted.get(&kind.event) else {
                continue;
            };
            for doc in snapshot.documents(kind, u32::MAX, 0, ids).await? {
                out.insert((doc.event, doc.entity_id), doc);
            }
        }
        snapshot.finish().await?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEW: Duration = Duration::from_millis(5);

    #[test]
    fn an_item_of_a_held_order_whose_commit_shows_is_recorded() {
        assert_eq!(decide(true, Placement::Known, false, NEW), Next::Record);
    }

    #[test]
    fn a_document_not_visible_yet_or_an_order_still_being_placed_is_kept_until_the_wait_ends() {
        assert_eq!(decide(false, Placement::Known, false, NEW), Next::Keep);
        assert_eq!(decide(true, Placement::Waiting, false, NEW), Next::Keep);
        assert_eq!(
            decide(true, Placement::Waiting, false, SEEN_WAIT),
            Next::Leave
        );
    }

    #[test]
    fn an_item_behind_a_kept_one_of_its_order_waits_even_if_it_could_go() {
        assert_eq!(decide(true, Placement::Known, true, NEW), Next::Keep);
    }

    #[test]
    fn an_order_order_sync_never_captured_is_left() {
        assert_eq!(decide(true, Placement::Unknown, false, NEW), Next::Leave);
    }
}
