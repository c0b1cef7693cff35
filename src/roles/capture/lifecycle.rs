//! Capture of an order's later life: invoices, shipments and credit memos,
//! and changes of its state or status; and the release of held placements.
//!
//! Documents are read by id like orders, with the same late-commit gaps
//! (one capture position per kind, `<shop>#invoiced`, …). A kind's position
//! is saved before its table is first read, as "documents created from now
//! on" (`start_from = "latest"`), and resolved to an id by the first scan
//! that can read it: a scan refused or failing at the start loses nothing
//! committed meanwhile. A failed scan saves nothing, so the next reads the
//! same again; it never stops the order poll (see `health`). Changes are found
//! by scanning `sales_order.updated_at` from `capture.lifecycle.overlap`
//! before where the last scan ended, and comparing each order's state and
//! status with the last ones the ledger saw: a change is neither missed by a
//! late commit nor sent twice. A window holding more orders than one scan
//! reads is read on, by `updated_at` and id, by the next scans (a pass), and
//! the position moves only when the pass is done.
//!
//! What polling cannot see: two changes between two scans (new → processing
//! → complete within a second) show as one, from the first state to the
//! last. In binlog mode the follower decodes every change and document from
//! the row images, in commit order, and capture records them within
//! milliseconds ([`super::seen`]); the scan then leaves changes younger than
//! [`BINLOG_GRACE`] to it and is the safety net for what it missed.
//!
//! An event is recorded only for an order the ledger holds. One capture has
//! published but the relay not yet recorded is waited for (its document
//! stays awaited, the change scan does not move past it) for at most
//! [`PLACEMENT_WAIT`]; an order order-sync never captured (placed before it
//! started, left out by the filter) gets no later events.

use std::{
    collections::{HashMap, HashSet},
    time::Instant,
};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::{
    orders::{advance, OrderPoll},
    Deps, RoleError,
};
use crate::{
    config::{CaptureSettings, HoldCanceled, StartFrom},
    ledger::{CapturePosition, Change, KnownOrder, Release, Start},
    magento::{
        documents::{store_of, Document, DocumentTables, OrderChange, Snapshot},
        IdStep,
    },
    message::Event,
};

/// How long an event waits for its order's placement to be recorded before
/// it is taken as one for an order order-sync does not know.
pub const PLACEMENT_WAIT: chrono::Duration = chrono::Duration::minutes(5);

/// How long the change scan leaves a change to the binlog follower
/// (`capture.mode = "binlog"`, while it reads): a follower is milliseconds
/// behind, so a change older than this that the ledger lacks was missed.
pub const BINLOG_GRACE: chrono::Duration = chrono::Duration::seconds(3);

/// Most pages of changed orders read per scan.
const MAX_CHANGE_PAGES: usize = 20;

/// What one lifecycle scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LifecycleOutcome {
    /// Events recorded.
    pub events: usize,
    /// Held placements released (sent or dropped).
    pub released: usize,
    /// Documents and changes of orders the ledger does not hold, skipped.
    pub unknown: usize,
    /// Documents and changes waiting for their order's placement.
    pub waiting: usize,
}

pub(super) fn date(text: Option<&str>) -> Option<NaiveDateTime> {
    text.and_then(|s| NaiveDateTime::parse_from_str(s, MAGENTO_TIME).ok())
}

/// A time as Magento writes it, the reverse of [`date`]: compared as text
/// with `updated_at` and `created_at`.
pub(super) fn time_text(t: NaiveDateTime) -> String {
    t.format(MAGENTO_TIME).to_string()
}

const MAGENTO_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// The order's part of a later event's message.
fn event_json(order: &Map<String, Value>, extra: Option<(&str, Value)>) -> String {
    let mut out = Map::new();
    out.insert("order".into(), Value::Object(order.clone()));
    if let Some((key, value)) = extra {
        out.insert(key.into(), value);
    }
    serde_json::to_string(&out).expect("a JSON map always serializes")
}

/// The lifecycle scan's own state, kept while this instance leads.
pub struct LifecycleScan {
    deps: Deps,
    settings: CaptureSettings,
    /// When the last scan ran.
    pub(super) ran: Option<Instant>,
    /// Orders the change scan compared with the ledger, at their
    /// `updated_at`: not looked up again while they stay in the overlap.
    compared: HashMap<u32, ComparedKey>,
    /// The pass over the change window under way, if one scan did not finish it.
    pass: Option<Pass>,
}

impl LifecycleScan {
    pub fn new(deps: &Deps, settings: &CaptureSettings) -> Self {
        Self {
            deps: deps.clone(),
            settings: settings.clone(),
            ran: None,
            compared: HashMap::new(),
            pass: None,
        }
    }

    /// A new leader compares from scratch.
    pub(super) fn forget(&mut self) {
        self.compared.clear();
        self.pass = None;
    }

    /// Whether the binlog follower (`live`) is reading and decoding changes now.
    fn binlog_sees_changes(&self, live: bool) -> bool {
        self.wanted() && live
    }

    /// While the binlog follower decodes changes: the time (as Magento
    /// writes it) from which a change or document is left to it.
    fn recent_for_binlog(&self, live: bool, now: DateTime<Utc>) -> Option<String> {
        self.binlog_sees_changes(live)
            .then(|| time_text(now.naive_utc() - BINLOG_GRACE))
    }

    /// Whether this shop needs the lifecycle scan at all.
    pub(super) fn wanted(&self) -> bool {
        self.deps.consumers.want_lifecycle() || !self.settings.hold_states.is_empty()
    }

    /// One scan at `now`: documents of each kind someone subscribes to, then
    /// changes; recorded in the ledger in the order they happened, then the
    /// positions saved. `orders` has its filter resolved; `live`: the binlog
    /// follower reads the stream.
    pub(super) async fn step(
        &mut self,
        orders: &OrderPoll,
        live: bool,
        now: DateTime<Utc>,
    ) -> Result<LifecycleOutcome, RoleError> {
        let deps = self.deps.clone();
        let audience = deps.audience().await?;
        let mut outcome = LifecycleOutcome::default();
        let mut changes: Vec<Change> = Vec::new();
        let mut positions: Vec<(String, CapturePosition, Vec<u32>)> = Vec::new();

        let kinds: Vec<DocumentTables> = self
            .deps
            .magento
            .document_tables()
            .iter()
            .filter(|k| audience.wants(k.event))
            .cloned()
            .collect();
        // Where each kind and the change scan had got to (from the ledger).
        let mut starts: Vec<(String, CapturePosition)> = Vec::with_capacity(kinds.len());
        for kind in &kinds {
            let source = format!("{}#{}", self.deps.shop, kind.event);
            let position = self.document_position(kind, &source, now).await?;
            starts.push((source, position));
        }
        // The change scan's start is saved before the first read too, so a
        // first scan that fails loses no change made meanwhile. (Before the
        // first order is captured there is no row to save it in, and no
        // captured order whose change could be lost.)
        let ended = match self.deps.ledger.changes_position(&self.deps.shop).await? {
            Some(at) => at,
            None => {
                self.deps
                    .ledger
                    .save_changes_position(&self.deps.shop, now.naive_utc())
                    .await?;
                now.naive_utc()
            }
        };

        // Everything read from Magento as of one moment: an invoice and the
        // state change its save made are seen in the same scan or neither.
        let mut snapshot = self.deps.magento.snapshot().await?;
        let mut read = Vec::with_capacity(kinds.len());
        for (kind, (_, position)) in kinds.iter().zip(&starts) {
            let awaited: Vec<u32> = position.gaps.iter().map(|(id, _)| *id).collect();
            read.push(
                snapshot
                    .documents(
                        kind,
                        position.last_entity_id,
                        self.settings.lifecycle.batch_size,
                        &awaited,
                    )
                    .await?,
            );
        }
        // Orders capture has not read yet are left out: their placement will
        // carry their state as it is then.
        let captured = match &orders.position {
            Some(p) => p.last_entity_id,
            None => self
                .deps
                .ledger
                .capture_position(&self.deps.shop)
                .await?
                .map_or(0, |p| p.last_entity_id),
        };
        let (mut scan, complete, cursor) = self
            .scan_changes(&mut snapshot, orders, live, ended, captured, now)
            .await?;
        snapshot.finish().await?;

        let recent = self.recent_for_binlog(live, now);
        for ((source, position), docs) in starts.into_iter().zip(read) {
            let order_ids: Vec<u32> = docs.iter().map(|d| d.order_id).collect();
            let known = self.deps.ledger.known_orders(&order_ids).await?;
            let mut found = Vec::with_capacity(docs.len());
            for doc in docs {
                // The binlog follower's, as a recent change is (see
                // `compare_changes`): left unread, so awaited as a gap.
                if recent
                    .as_ref()
                    .zip(doc.created_at.as_ref())
                    .is_some_and(|(r, c)| c >= r)
                {
                    continue;
                }
                match self.place_of(orders, &doc, &known, now) {
                    Placement::Known => {
                        found.push(doc.entity_id);
                        changes.push(document_change(doc));
                    }
                    Placement::Waiting => outcome.waiting += 1,
                    Placement::Unknown => {
                        tracing::debug!(
                            event = %doc.event,
                            document = doc.entity_id,
                            order = doc.order_id,
                            "A document of an order order-sync does not hold; not sent."
                        );
                        outcome.unknown += 1;
                        found.push(doc.entity_id);
                    }
                }
            }
            positions.push((source, position, found));
        }

        let remember = std::mem::take(&mut scan.compared);
        outcome.unknown += scan.unknown;
        outcome.waiting += scan.waiting;
        changes.extend(scan.changes);

        in_order(&mut changes);
        let recorded = self
            .deps
            .ledger
            .record_changes(&changes, audience, &self.deps.shop, now)
            .await?;
        outcome.events = recorded.events;
        outcome.released = recorded.released;

        let step = IdStep::one();
        for (source, position, found) in positions {
            let a = advance(&position, &found, now, &self.settings, &step);
            if a.next != position.last_entity_id || !a.opened.is_empty() || !a.closed.is_empty() {
                self.deps
                    .ledger
                    .save_capture_position(&source, a.next, &a.opened, &a.closed, now)
                    .await?;
            }
        }
        // A pass read to the end moves the position: the next starts the
        // overlap before when this one began, and not after a change left to
        // a later scan. One stopped by the page limit moves nothing but its
        // cursor, kept here: a restart reads the pass again, and the ledger
        // knows what it recorded.
        let began = self.pass.as_ref().map_or(now.naive_utc(), |p| p.began);
        let hold_back = earliest(self.pass.as_ref().and_then(|p| p.hold_back), scan.hold_back);
        let (position, pass) = if complete {
            (Some(pass_end(began, hold_back, self.overlap())), None)
        } else {
            let pass = Pass {
                cursor,
                began,
                hold_back,
            };
            (None, Some(pass))
        };
        // Only now that they are recorded: rows compared need no second look
        // while they stay in the overlap.
        if let Some(at) = position {
            let since = time_text(at - self.overlap());
            self.compared
                .retain(|_, key| key.updated_at() >= since.as_str());
            self.deps
                .ledger
                .save_changes_position(&self.deps.shop, at)
                .await?;
        }
        self.compared.extend(remember);
        self.pass = pass;
        if recorded.events > 0 || recorded.released > 0 {
            self.deps.follow_ons.notify_one();
            tracing::info!(
                events = recorded.events,
                rows = recorded.rows,
                released = recorded.released,
                "Captured order events."
            );
        }
        self.deps
            .metrics
            .captured_events
            .inc_by(recorded.events as u64);
        Ok(outcome)
    }

    /// Where a document kind's scan reads from. A kind seen for the first
    /// time starts at the beginning, or (`start_from = "latest"`) with the
    /// documents created from now on: that start is saved in the ledger
    /// before Magento is read, and resolved to an id by the first scan that
    /// can read the table, so documents committed while the table was
    /// refused (or Magento was down) are read once it can be.
    async fn document_position(
        &self,
        kind: &DocumentTables,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<CapturePosition, RoleError> {
        let since = match self.deps.ledger.document_position(source).await? {
            Some(Start::At(p)) => return Ok(p),
            Some(Start::Pending { since }) => since,
            None => match self.settings.start_from {
                StartFrom::Beginning => {
                    self.deps
                        .ledger
                        .save_capture_position(source, 0, &[], &[], now)
                        .await?;
                    return Ok(CapturePosition::default());
                }
                StartFrom::Latest => {
                    let since = now.naive_utc();
                    self.deps
                        .ledger
                        .mark_document_start(source, since, now)
                        .await?;
                    since
                }
            },
        };
        // The overlap covers a document whose checkout-side clock, or whose
        // commit, was a little behind ours.
        let after = self
            .deps
            .magento
            .document_start(kind, since - self.overlap())
            .await?;
        self.deps
            .ledger
            .resolve_document_start(source, after, now)
            .await?;
        tracing::info!(
            event = %kind.event,
            after_entity_id = after,
            since = %since,
            "Later events of this kind are read from documents created since capture began."
        );
        Ok(CapturePosition {
            last_entity_id: after,
            gaps: vec![],
        })
    }

    /// Whether the ledger holds `doc`'s order, may soon, or never will.
    pub(super) fn place_of(
        &self,
        orders: &OrderPoll,
        doc: &Document,
        known: &HashMap<u32, KnownOrder>,
        now: DateTime<Utc>,
    ) -> Placement {
        let store = doc.order.as_ref().and_then(store_of);
        let filter = orders.filter.as_ref().expect("resolved before");
        if !filter.store_matches(store) {
            return Placement::Unknown;
        }
        let created = doc
            .order
            .as_ref()
            .and_then(|o| date(o.get("created_at").and_then(Value::as_str)));
        placement(known.contains_key(&doc.order_id), created, now)
    }

    /// The orders whose `updated_at` falls in this scan's window (from the
    /// overlap before where the last scan `ended`, or on from the pass's
    /// cursor), read and compared with the ledger page by page; with whether
    /// the window was read to its end, and where reading stopped.
    async fn scan_changes(
        &self,
        snapshot: &mut Snapshot,
        orders: &OrderPoll,
        live: bool,
        ended: NaiveDateTime,
        captured: u32,
        now: DateTime<Utc>,
    ) -> Result<(Scan, bool, (String, u32)), RoleError> {
        let mut cursor = match &self.pass {
            Some(pass) => pass.cursor.clone(),
            None => (time_text(ended - self.overlap()), 0u32),
        };
        let limit = self.settings.lifecycle.batch_size;
        let mut scan = Scan::default();
        let mut complete = false;
        for _ in 0..MAX_CHANGE_PAGES {
            let page = snapshot
                .changes(&cursor.0, cursor.1, captured, limit)
                .await?;
            let full = page.len() >= limit as usize;
            if let Some(last) = page.last() {
                cursor = (last.updated_at.clone(), last.entity_id);
            }
            // A row already compared with this `updated_at`, state and
            // status (an earlier scan's overlap) has nothing new. The time
            // alone would not do: it has whole seconds, and a save within the
            // same second as the last one changes the state without changing
            // it. Compared page by page, and only what changed kept: in a
            // drain the overlap holds every order, and the twenty pages of a
            // scan, each row with its identifiers as a map, took some 20 MiB.
            let fresh: Vec<OrderChange> = page
                .into_iter()
                .filter(|r| self.compared.get(&r.entity_id) != Some(&ComparedKey::of(r)))
                .collect();
            self.compare_changes(orders, live, fresh, now, &mut scan)
                .await?;
            if !full {
                complete = true;
                break;
            }
        }
        Ok((scan, complete, cursor))
    }

    fn overlap(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.settings.lifecycle.overlap)
            .unwrap_or(chrono::Duration::minutes(1))
    }

    /// Orders of the window compared with what the ledger last saw of them,
    /// what they show added to `scan`.
    async fn compare_changes(
        &self,
        orders: &OrderPoll,
        live: bool,
        rows: Vec<OrderChange>,
        now: DateTime<Utc>,
        scan: &mut Scan,
    ) -> Result<(), RoleError> {
        // Rows compared before are already left out (`scan_changes`).
        let ids: Vec<u32> = rows.iter().map(|r| r.entity_id).collect();
        let known = self.deps.ledger.known_orders(&ids).await?;
        let filter = orders.filter.as_ref().expect("resolved before");
        let mut seen = HashSet::new();
        let mut paid_ids: Vec<u32> = Vec::new();
        // While the binlog follower decodes changes, a recent change is its
        // to record, in commit order and with every step between: the scan
        // looks at it only once it is older than BINLOG_GRACE (and records it
        // then only if the follower missed it: the ledger would hold it).
        let recent = self.recent_for_binlog(live, now);
        for row in rows {
            if !seen.insert(row.entity_id) || !filter.store_matches(row.store_id) {
                continue;
            }
            if recent.as_ref().is_some_and(|r| row.updated_at >= *r) {
                scan.hold_back = earliest(scan.hold_back, date(Some(&row.updated_at)));
                continue;
            }
            let Some(k) = known.get(&row.entity_id) else {
                let created = date(row.order.get("created_at").and_then(Value::as_str));
                match placement(false, created, now) {
                    Placement::Waiting => {
                        scan.waiting += 1;
                        scan.hold_back = earliest(scan.hold_back, date(Some(&row.updated_at)));
                    }
                    _ => scan.unknown += 1,
                }
                continue;
            };
            scan.compared.push((row.entity_id, ComparedKey::of(&row)));
            if k.state == row.state && k.status == row.status {
                continue;
            }
            let (change, paid) = self.change_of(row, k);
            if paid {
                paid_ids.push(change.entity_id);
            }
            scan.changes.push(change);
        }
        self.fill_paid(&mut scan.changes, paid_ids).await
    }

    /// Paid orders leave their hold as they are now: read in one go, and set
    /// as the message of their release.
    pub(super) async fn fill_paid(
        &self,
        changes: &mut [Change],
        paid_ids: Vec<u32>,
    ) -> Result<(), RoleError> {
        if paid_ids.is_empty() {
            return Ok(());
        }
        let orders: HashMap<u32, String> = self
            .deps
            .magento
            .read_orders_by_id(&paid_ids)
            .await?
            .into_iter()
            .map(|o| (o.entity_id, o.json.get().to_owned()))
            .collect();
        let paid: HashSet<u32> = paid_ids.into_iter().collect();
        for change in changes {
            if let Some(Release::Send { message }) = &mut change.release {
                if paid.contains(&change.entity_id) {
                    *message = orders.get(&change.entity_id).cloned();
                }
            }
        }
        Ok(())
    }

    /// What an order's move from the ledger's state to Magento's means, and
    /// whether it is a held order now paid (its placement then goes out as the
    /// order is now: the caller reads those orders, all at once).
    pub(super) fn change_of(&self, row: OrderChange, known: &KnownOrder) -> (Change, bool) {
        let moved_to = Some((row.state.clone(), row.status.clone()));
        let mut change = Change {
            entity_id: row.entity_id,
            increment_id: row
                .order
                .get("increment_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            store_id: row.store_id,
            document: None,
            moved_to,
            moved_from: None,
            binlog_at: None,
            occurred_at: date(Some(&row.updated_at)),
            release: None,
            events: vec![],
        };
        let canceled = row.state.as_deref() == Some("canceled");
        let previous = || serde_json::json!({ "state": known.state, "status": known.status });
        let events = |order: &Map<String, Value>| {
            let json = event_json(order, Some(("previous", previous())));
            let mut out = vec![];
            if canceled && known.state.as_deref() != Some("canceled") {
                out.push((Event::Canceled, json.clone()));
            }
            out.push((Event::StatusChanged, json));
            out
        };
        if known.held {
            if self.settings.holds(row.state.as_deref()) {
                // Still unpaid: the placement waits on.
            } else if canceled {
                match self.settings.hold_canceled {
                    HoldCanceled::Send => {
                        change.release = Some(Release::Send { message: None });
                        change.events = events(&row.order);
                    }
                    HoldCanceled::Drop => {
                        change.release = Some(Release::Drop {
                            reason: "cancelled while held (capture.hold_canceled = \"drop\"); \
                                     never sent"
                                .into(),
                        })
                    }
                }
            } else {
                change.release = Some(Release::Send { message: None });
                return (change, true);
            }
        } else if known.state.is_some() {
            change.events = events(&row.order);
        }
        // A ledger row from before events knew no state: this first sight
        // only sets it.
        (change, false)
    }
}

/// What a change-scan row was compared at: `updated_at`, state, status.
/// The scan keeps one for every order updated within its overlap, which
/// during a drain is every order: so one allocation, not three (50,000 of
/// them took some 15 MiB as a tuple of strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ComparedKey {
    /// `updated_at`, then the state, then the status, end to end.
    text: Box<str>,
    /// Where `updated_at` and the state end in `text`.
    cuts: [u16; 2],
    /// Whether the state and the status are there at all (None is not "").
    some: [bool; 2],
}

impl ComparedKey {
    fn of(row: &OrderChange) -> Self {
        let (state, status) = (row.state.as_deref(), row.status.as_deref());
        let text = [
            row.updated_at.as_str(),
            state.unwrap_or(""),
            status.unwrap_or(""),
        ]
        .concat();
        // A cut past u16 would only make two keys unequal: compared again.
        let cut = |n: usize| u16::try_from(n).unwrap_or(u16::MAX);
        Self {
            cuts: [
                cut(row.updated_at.len()),
                cut(row.updated_at.len() + state.map_or(0, str::len)),
            ],
            some: [state.is_some(), status.is_some()],
            text: text.into_boxed_str(),
        }
    }

    fn updated_at(&self) -> &str {
        self.text
            .get(..usize::from(self.cuts[0]))
            .unwrap_or(&self.text)
    }
}

/// A pass over the change window that one scan's pages could not finish:
/// the next scan reads on after its cursor. Resuming by time alone would
/// not do: a window of more orders updated within a few seconds than one
/// scan reads (a drain, a mass action in the admin) would have every scan
/// read the same first pages, and an order past them would never be seen.
#[derive(Debug, Clone)]
struct Pass {
    /// The `updated_at` and entity_id of the last row read so far.
    cursor: (String, u32),
    /// When the pass's first scan ran: a commit after it, late by up to the
    /// overlap, falls within the overlap before this, which is where the
    /// pass saves the position once it is done.
    began: NaiveDateTime,
    /// The oldest change left to a later pass (its placement on its way,
    /// or the binlog follower's to record).
    hold_back: Option<NaiveDateTime>,
}

/// What a scan of changed orders found.
#[derive(Debug, Default)]
struct Scan {
    changes: Vec<Change>,
    /// Rows compared with the ledger, by entity_id.
    compared: Vec<(u32, ComparedKey)>,
    unknown: usize,
    waiting: usize,
    /// The oldest change left to a later scan.
    hold_back: Option<NaiveDateTime>,
}

/// The position a finished pass saves: the next pass starts the overlap
/// before when this one `began`, or at the oldest change it left to a later
/// one, whichever is earlier. (Starting at that change when it is younger
/// than the overlap would skip the overlap's late commits.)
fn pass_end(
    began: NaiveDateTime,
    hold_back: Option<NaiveDateTime>,
    overlap: chrono::Duration,
) -> NaiveDateTime {
    hold_back.map_or(began, |h| (h + overlap).min(began))
}

/// The earlier of two optional times.
fn earliest(a: Option<NaiveDateTime>, b: Option<NaiveDateTime>) -> Option<NaiveDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Placement {
    Known,
    Waiting,
    Unknown,
}

/// An order the ledger does not hold is waited for while it was placed
/// within [`PLACEMENT_WAIT`]: capture has not read it yet, or its placement
/// is on its way through the relay.
pub(super) fn placement(
    known: bool,
    created: Option<NaiveDateTime>,
    now: DateTime<Utc>,
) -> Placement {
    if known {
        Placement::Known
    } else if created.is_some_and(|c| now.naive_utc() - c < PLACEMENT_WAIT) {
        Placement::Waiting
    } else {
        Placement::Unknown
    }
}

/// Sorts one scan's changes per order, in the order they happened by
/// Magento's clock. Polling sees a state change only as the order is now,
/// stamped with the order's last save, which may be a later document's: a
/// shipment (the order becomes `complete`) and a partial credit memo 0.1 s
/// later show one change to `complete` at the credit memo's time. So a state
/// change goes right after the last document of the scan that can have made
/// that state ([`caused_by`]: a shipment or invoice for `complete`, a credit
/// memo for `closed`), and before any document after it. A state no
/// document makes (`canceled`, `holded`, a custom one) goes by its own time,
/// counted a second late: a document and the state change the same save made
/// can be a second apart either way (whole seconds, and one column may be
/// rounded where the other is truncated), and the document comes first.
/// Orders are independent of each other, so they are simply kept apart.
pub(crate) fn in_order(changes: &mut Vec<Change>) {
    // Documents keep the order they were read in (kind by kind, by id) where
    // their times are equal: the key's last part is their place in the scan.
    let keys: Vec<(u32, Option<NaiveDateTime>, usize)> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let Some((state, _)) = &c.moved_to else {
                return (c.entity_id, c.occurred_at, 2 * i);
            };
            // The change is stamped with the order's last save, so what made
            // it is no later than that (a second's slack, as below).
            let latest = c.occurred_at.map(|t| t + chrono::Duration::seconds(1));
            let cause = changes
                .iter()
                .enumerate()
                .filter(|(_, d)| d.entity_id == c.entity_id)
                .filter_map(|(j, d)| Some((j, d.document?.0, d.occurred_at)))
                .filter(|(_, kind, _)| caused_by(state.as_deref(), *kind))
                .filter(|(_, _, at)| match (at, latest) {
                    (Some(at), Some(latest)) => *at <= latest,
                    _ => true,
                })
                .max_by_key(|(j, _, at)| (*at, *j));
            match cause {
                Some((j, _, at)) => (c.entity_id, at, 2 * j + 1),
                None => (
                    c.entity_id,
                    c.occurred_at.map(|t| t + chrono::Duration::seconds(1)),
                    2 * changes.len() + i,
                ),
            }
        })
        .collect();
    let mut keyed: Vec<_> = keys.into_iter().zip(changes.drain(..)).collect();
    keyed.sort_by_key(|(key, _)| *key);
    changes.extend(keyed.into_iter().map(|(_, c)| c));
}

/// Whether a document of `kind` can have moved its order to `state` (as
/// Magento's own saves do: an invoice or shipment completes an order or
/// puts it in processing, a credit memo closes it).
fn caused_by(state: Option<&str>, kind: Event) -> bool {
    match state {
        Some("processing") | Some("complete") => {
            matches!(kind, Event::Invoiced | Event::Shipped)
        }
        Some("closed") => kind == Event::Refunded,
        _ => false,
    }
}

pub(crate) fn document_change(doc: Document) -> Change {
    let key = doc.event.document().expect("documents have a key");
    let order = doc.order.unwrap_or_default();
    let json = event_json(&order, Some((key, Value::Object(doc.json))));
    Change {
        entity_id: doc.order_id,
        increment_id: order
            .get("increment_id")
            .and_then(Value::as_str)
            .map(str::to_owned),
        store_id: store_of(&order),
        document: Some((doc.event, doc.entity_id)),
        moved_to: None,
        moved_from: None,
        binlog_at: None,
        occurred_at: date(doc.created_at.as_deref()),
        release: None,
        events: vec![(doc.event, json)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_pass_next_starts_an_overlap_before_it_began_or_at_what_it_left_if_older() {
        let at = |s: &str| date(Some(s)).unwrap();
        let began = at("2026-12-08 10:00:00");
        let overlap = chrono::Duration::minutes(1);
        assert_eq!(pass_end(began, None, overlap), began);
        // A change 2 s old left to the binlog follower: the overlap still
        // covers a commit up to a minute late.
        assert_eq!(
            pass_end(began, Some(at("2026-12-08 09:59:58")), overlap),
            began
        );
        // A placement waited for since 09:50: read again from there.
        assert_eq!(
            pass_end(began, Some(at("2026-12-08 09:50:00")), overlap) - overlap,
            at("2026-12-08 09:50:00")
        );
    }

    fn change(entity_id: u32, at: &str, moved: bool) -> Change {
        Change {
            entity_id,
            increment_id: None,
            store_id: None,
            document: (!moved).then_some((Event::Invoiced, 1)),
            moved_to: moved.then(|| (Some("processing".into()), Some("processing".into()))),
            moved_from: None,
            binlog_at: None,
            occurred_at: date(Some(at)),
            release: None,
            events: vec![],
        }
    }

    #[test]
    fn a_compared_key_is_equal_only_for_the_same_time_state_and_status() {
        let row = |state: Option<&str>, status: Option<&str>| OrderChange {
            entity_id: 7,
            store_id: None,
            state: state.map(str::to_owned),
            status: status.map(str::to_owned),
            updated_at: "2026-12-08 00:30:00".into(),
            order: Default::default(),
        };
        let key = |state, status| ComparedKey::of(&row(state, status));
        assert_eq!(
            key(Some("new"), Some("pending")),
            key(Some("new"), Some("pending"))
        );
        assert_eq!(key(None, None), key(None, None));
        for (a, b) in [
            (
                (Some("new"), Some("pending")),
                (Some("newp"), Some("ending")),
            ),
            ((Some(""), None), (None, Some(""))),
            ((None, None), (Some(""), Some(""))),
            ((Some("new"), None), (None, Some("new"))),
        ] {
            assert_ne!(key(a.0, a.1), key(b.0, b.1), "{a:?} and {b:?}");
        }
        let mut later = row(Some("new"), Some("pending"));
        later.updated_at = "2026-12-08 00:30:01".into();
        assert_ne!(ComparedKey::of(&later), key(Some("new"), Some("pending")));
        assert_eq!(key(Some("new"), None).updated_at(), "2026-12-08 00:30:00");
    }

    #[test]
    fn a_document_goes_before_the_state_change_of_its_save_even_a_second_later() {
        let mut c = vec![
            change(7, "2026-11-29 00:36:59", true),
            change(7, "2026-11-29 00:37:00", false),
        ];
        in_order(&mut c);
        assert!(c[0].document.is_some() && c[1].moved_to.is_some());
    }

    fn document(entity_id: u32, at: &str, kind: Event, id: u32) -> Change {
        Change {
            document: Some((kind, id)),
            moved_to: None,
            moved_from: None,
            binlog_at: None,
            ..change(entity_id, at, false)
        }
    }

    fn moved(entity_id: u32, at: &str, state: &str) -> Change {
        Change {
            document: None,
            moved_to: Some((Some(state.into()), Some(state.into()))),
            moved_from: None,
            binlog_at: None,
            ..change(entity_id, at, true)
        }
    }

    fn what(c: &[Change]) -> Vec<String> {
        c.iter()
            .map(|c| match (&c.document, &c.moved_to) {
                (Some((kind, _)), _) => kind.as_str().to_owned(),
                (None, Some((state, _))) => format!("-> {}", state.as_deref().unwrap_or("?")),
                (None, None) => "?".into(),
            })
            .collect()
    }

    #[test]
    fn a_shipment_then_a_partial_credit_memo_in_one_scan_keep_the_completion_between_them() {
        // One scan: the order is `complete` now, stamped with the credit
        // memo's save; the shipment made it so.
        let mut c = vec![
            document(7, "2026-11-29 00:37:00", Event::Shipped, 3),
            document(7, "2026-11-29 00:37:00", Event::Refunded, 4),
            moved(7, "2026-11-29 00:37:00", "complete"),
        ];
        in_order(&mut c);
        assert_eq!(what(&c), ["shipped", "-> complete", "refunded"]);
    }

    #[test]
    fn a_closing_goes_after_the_credit_memo_that_made_it_and_a_cancellation_by_its_own_time() {
        let mut c = vec![
            document(7, "2026-11-29 00:37:00", Event::Invoiced, 1),
            document(7, "2026-11-29 00:37:01", Event::Refunded, 2),
            moved(7, "2026-11-29 00:37:01", "closed"),
            document(8, "2026-11-29 00:37:00", Event::Invoiced, 5),
            moved(8, "2026-11-29 00:37:00", "canceled"),
        ];
        in_order(&mut c);
        assert_eq!(
            what(&c),
            [
                "invoiced",
                "refunded",
                "-> closed",
                "invoiced",
                "-> canceled"
            ]
        );
    }

    #[test]
    fn a_state_change_seconds_before_a_document_goes_first() {
        let mut c = vec![
            change(7, "2026-11-29 00:37:05", false),
            change(7, "2026-11-29 00:37:00", true),
            change(3, "2026-11-29 00:38:00", false),
        ];
        in_order(&mut c);
        assert_eq!(c[0].entity_id, 3, "orders kept apart");
        assert!(c[1].moved_to.is_some() && c[2].document.is_some());
    }
}
