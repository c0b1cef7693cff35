//! Recording orders in the ledger: the order row once, and one delivery row
//! per consumer — pending and claimed for the relay that recorded it, parked
//! when it can never be published, or as another tool left it (the import).

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, Value};

use super::State::Pending;
use super::{
    after, audience::Audience, counts::SyncedDelta, exec_sized, exec_sized_drop, from_rows,
    id_params, marks, naive, read_committed, transaction, Change, Claimed, Ledger, LedgerError,
    State,
};
use crate::{
    magento::PlacedOrder,
    message::{message_id, truncate, Event, OrderKey},
};

/// An order to record, as taken from a capture message.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub key: OrderKey,
    pub captured_at: DateTime<Utc>,
    /// The order JSON, exactly as captured.
    pub message: String,
    /// In one of `capture.hold_states`: its rows start held, not sent.
    pub held: bool,
}

impl NewOrder {
    /// An order as read from Magento, to record.
    pub fn from_placed(order: &PlacedOrder, captured_at: DateTime<Utc>) -> Self {
        Self {
            key: order.key.clone(),
            captured_at,
            message: order.json.get().to_owned(),
            held: false,
        }
    }
}

/// The cancellation of an order first seen already cancelled: its identifiers
/// as captured, and no state seen before it.
fn canceled_at_first_sight(o: &NewOrder) -> Change {
    let k = &o.key;
    let json = serde_json::json!({
        "order": {
            "entity_id": k.entity_id,
            "increment_id": k.increment_id,
            "store_id": k.store_id,
            "state": k.state,
            "status": k.status,
            "created_at": k.created_at,
        },
        "previous": { "state": null, "status": null },
    });
    Change {
        entity_id: k.entity_id,
        increment_id: k.increment_id.clone(),
        store_id: k.store_id,
        document: None,
        // The ledger already holds `canceled` from the placement.
        moved_to: None,
        moved_from: None,
        binlog_at: None,
        occurred_at: None,
        release: None,
        events: vec![(Event::Canceled, json.to_string())],
    }
}

impl Ledger {
    /// Records orders and creates their rows for every consumer, in one
    /// transaction. Returns the rows that are new, already reserved for the
    /// caller to publish at once (until `now + lease`, after which the
    /// re-delivery round takes them if the caller died). Orders already in the
    /// ledger (a re-published capture) produce no new rows: nothing twice.
    ///
    /// An order already `canceled` when first seen (declined and cancelled
    /// at checkout, or while order-sync was stopped) also gets its
    /// cancellation, as its event 1 for the consumers in `canceled_to`, in
    /// the same transaction: the change scan never sees it move to
    /// `canceled`, since the ledger learns it as `canceled`.
    pub async fn record_orders(
        &self,
        orders: &[NewOrder],
        audience: &Audience,
        source: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, LedgerError> {
        if orders.is_empty() {
            return Ok(vec![]);
        }
        transaction!(self, read_committed(), |tx| {
            let fresh = insert_orders(&mut tx, orders.iter(), audience, source).await?;
            let held = held_ids(orders);
            let pending = RowStart {
                state: State::Pending,
                next_attempt_at: Some(after(now, lease)),
                synced_at: None,
                last_error: None,
            };
            let waiting = RowStart {
                state: State::Held,
                next_attempt_at: None,
                synced_at: None,
                last_error: None,
            };
            insert_deliveries(&mut tx, &fresh, now, |row| {
                if held.contains(&row.entity_id) {
                    waiting
                } else {
                    pending
                }
            })
            .await?;
            let new: std::collections::HashSet<u32> =
                fresh.iter().map(|(f, _)| f.entity_id).collect();
            let cancellations: Vec<Change> = orders
                .iter()
                .filter(|o| o.key.state.as_deref() == Some("canceled") && !o.held)
                .filter(|o| new.contains(&o.key.entity_id))
                .map(canceled_at_first_sight)
                .collect();
            // Nothing more to write for a batch without one (the usual case).
            if audience.wants(Event::Canceled) && !cancellations.is_empty() {
                super::events::record_all(&mut tx, &cancellations, audience, source, now).await?;
            }
            fresh
                .into_iter()
                .map(|(f, _)| f)
                .filter(|f| !held.contains(&f.entity_id))
                .collect::<Vec<_>>()
        })
    }

    /// Records orders that can never be published (larger than the broker
    /// takes) with every consumer's row parked at once, with the reason: kept,
    /// visible, re-drivable once the limit is raised. One transaction.
    pub async fn record_parked(
        &self,
        orders: &[NewOrder],
        audience: &Audience,
        source: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if orders.is_empty() {
            return Ok(());
        }
        let reason = truncate(reason, 2000);
        transaction!(self, read_committed(), |tx| {
            let fresh = insert_orders(&mut tx, orders.iter(), audience, source).await?;
            let start = RowStart {
                state: State::Parked,
                next_attempt_at: None,
                synced_at: None,
                last_error: Some(&reason),
            };
            insert_deliveries(&mut tx, &fresh, now, |_| start).await?;
        })
    }

    /// Records orders taken over from another sync tool: each either synced
    /// (at the time given) or pending and due at once, for every consumer of
    /// `audience` the order is for. Orders and rows already in the ledger are
    /// left as they are, so an import run twice changes nothing. One
    /// transaction.
    pub async fn record_imported(
        &self,
        orders: &[(NewOrder, Option<DateTime<Utc>>)],
        audience: &Audience,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<usize, LedgerError> {
        if orders.is_empty() {
            return Ok(0);
        }
        // An order listed twice is recorded as first listed, as insert_orders keeps it.
        let mut synced: HashMap<u32, Option<DateTime<Utc>>> = HashMap::new();
        for (o, at) in orders {
            synced.entry(o.key.entity_id).or_insert(*at);
        }
        transaction!(self, read_committed(), |tx| {
            let fresh =
                insert_orders(&mut tx, orders.iter().map(|(o, _)| o), audience, source).await?;
            insert_deliveries(&mut tx, &fresh, now, |row| {
                match synced.get(&row.entity_id).copied().flatten() {
                    Some(at) => RowStart {
                        state: State::Synced,
                        next_attempt_at: None,
                        synced_at: Some(at),
                        last_error: None,
                    },
                    None => RowStart {
                        state: State::Pending,
                        next_attempt_at: Some(now),
                        synced_at: None,
                        last_error: None,
                    },
                }
            })
            .await?;
            let mut counted = SyncedDelta::default();
            for (row, _) in &fresh {
                if synced.get(&row.entity_id).copied().flatten().is_some() {
                    counted.add(&row.consumer, 1);
                }
            }
            counted.apply(&mut tx).await?;
            fresh.len()
        })
    }
}

/// What one chunk of a backfill recorded.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Backfilled {
    /// Orders given to the consumer (placement rows created).
    pub orders: usize,
    /// Orders it already had (or that are not for it): nothing done.
    pub skipped: usize,
    /// Rows of later events created for it.
    pub events: usize,
}

impl Ledger {
    /// Gives `consumer` (the one consumer of `audience`) the orders it does
    /// not have yet, in one transaction: each order's placement row, due now
    /// (held if the order is in a hold state), then its later events — those
    /// the ledger already recorded, then `documents` it had not (read from
    /// Magento for these orders), and for an order new to the ledger that is
    /// already cancelled, its cancellation — each a pending row behind the
    /// placement, as the claim's order rule keeps them. An order new to the
    /// ledger is recorded as read now. Run twice, the second run adds
    /// nothing: orders the consumer has are skipped whole.
    pub async fn record_backfill(
        &self,
        orders: &[NewOrder],
        documents: &[Change],
        audience: &Audience,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<Backfilled, LedgerError> {
        if orders.is_empty() {
            return Ok(Backfilled::default());
        }
        let Some(consumer) = audience
            .subscribers(Event::Placed)
            .next()
            .map(str::to_owned)
        else {
            return Ok(Backfilled::default());
        };
        let ids: Vec<u32> = orders.iter().map(|o| o.key.entity_id).collect();
        transaction!(self, read_committed(), |tx| {
            let known: std::collections::HashSet<u32> = from_rows::<u32>(
                tx.exec(
                    format!(
                        "SELECT entity_id FROM order_sync_orders WHERE entity_id IN ({}) FOR UPDATE",
                        marks(ids.len())
                    ),
                    id_params(&ids),
                )
                .await?,
            )?
            .into_iter()
            .collect();
            let fresh = insert_orders(&mut tx, orders.iter(), audience, source).await?;
            let held = held_ids(orders);
            insert_deliveries(&mut tx, &fresh, now, |row| RowStart {
                state: if held.contains(&row.entity_id) {
                    State::Held
                } else {
                    State::Pending
                },
                next_attempt_at: (!held.contains(&row.entity_id)).then_some(now),
                synced_at: None,
                last_error: None,
            })
            .await?;
            let given: Vec<u32> = fresh.iter().map(|(f, _)| f.entity_id).collect();
            let mut done = Backfilled {
                orders: given.len(),
                skipped: orders.len() - given.len(),
                events: 0,
            };
            let events: Vec<&str> = Event::ALL
                .into_iter()
                .filter(|e| *e != Event::Placed && audience.wants(*e))
                .map(Event::as_str)
                .collect();
            if !given.is_empty() && !events.is_empty() {
                // What the ledger already knows happened to these orders.
                let mut params: Vec<mysql_async::Value> = vec![
                    consumer.as_str().into(),
                    source.into(),
                    consumer.as_str().into(),
                    naive(now).into(),
                    naive(now).into(),
                ];
                params.extend(id_params(&given));
                params.extend(events.iter().map(|e| (*e).into()));
                tx.exec_drop(
                    format!(
                        "INSERT IGNORE INTO order_sync_deliveries \
                         (entity_id, consumer, seq, event, increment_id, store_id, message_id, \
                          state, attempts, captured_at, next_attempt_at, updated_at) \
                         SELECT e.entity_id, ?, e.seq, e.event, o.increment_id, o.store_id, \
                          CONCAT(?, ':', e.entity_id, ':', e.seq, '-', e.event, ':', ?), \
                          '{Pending}', 0, e.captured_at, ?, ? \
                         FROM order_sync_events e JOIN order_sync_orders o ON o.entity_id = e.entity_id \
                         WHERE e.entity_id IN ({}) AND e.event IN ({}) ORDER BY e.entity_id, e.seq",
                        marks(given.len()),
                        marks(events.len())
                    ),
                    params,
                )
                .await?;
                done.events += tx.affected_rows() as usize;
                // Then what Magento holds that the ledger did not, and the
                // cancellation of an order new to the ledger.
                let given: std::collections::HashSet<u32> = given.into_iter().collect();
                let mut later: Vec<Change> = documents
                    .iter()
                    .filter(|c| given.contains(&c.entity_id))
                    .cloned()
                    .collect();
                later.extend(
                    orders
                        .iter()
                        .filter(|o| o.key.state.as_deref() == Some("canceled") && !o.held)
                        .filter(|o| {
                            given.contains(&o.key.entity_id) && !known.contains(&o.key.entity_id)
                        })
                        .map(canceled_at_first_sight),
                );
                if !later.is_empty() {
                    done.events +=
                        super::events::record_all(&mut tx, &later, audience, source, now)
                            .await?
                            .rows;
                }
            }
            done
        })
    }

    /// How many of the orders `ids` `consumer` already has a placement row for.
    pub async fn placed_for(&self, ids: &[u32], consumer: &str) -> Result<usize, LedgerError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut conn = self.pool.get_conn().await?;
        let mut params = id_params(ids);
        params.push(consumer.into());
        let n: Option<u64> = conn
            .exec_first(
                format!(
                    "SELECT COUNT(*) FROM order_sync_deliveries \
                     WHERE entity_id IN ({}) AND consumer = ? AND seq = 0",
                    marks(ids.len())
                ),
                params,
            )
            .await?;
        Ok(n.unwrap_or(0) as usize)
    }

    /// The placements `consumer` has that are not settled yet (pending,
    /// published or failed): what a backfill waits on before giving more.
    pub async fn unsettled_placements(&self, consumer: &str) -> Result<u64, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        Ok(conn
            .exec_first(
                format!(
                    "SELECT COUNT(*) FROM order_sync_deliveries \
                     WHERE state IN ({}) AND consumer = ? AND seq = 0",
                    State::sql_list(&State::OPEN)
                ),
                (consumer,),
            )
            .await?
            .unwrap_or(0))
    }
}

const ORDER_COLUMNS: &str =
    "(entity_id, increment_id, store_id, placed_at, captured_at, message, state, status)";
const ORDER_MARKS: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";

fn order_values(o: &NewOrder) -> Vec<Value> {
    let placed = o
        .key
        .created_at
        .as_deref()
        .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok());
    vec![
        o.key.entity_id.into(),
        o.key.increment_id.clone().into(),
        o.key.store_id.into(),
        placed.into(),
        naive(o.captured_at).into(),
        o.message.as_str().into(),
        o.key.state.clone().into(),
        o.key.status.clone().into(),
    ]
}

/// Inserts every order in one statement per chunk, when all are new (the
/// usual case: a backlog draining). Which insert creates an order's row
/// decides who publishes it, so when any was known already the inserts are
/// undone (to a savepoint) and it says false: the caller inserts one by one
/// to learn which.
async fn insert_all_new(
    tx: &mut mysql_async::Transaction<'_>,
    orders: &[&NewOrder],
) -> Result<bool, LedgerError> {
    tx.query_drop("SAVEPOINT order_sync_insert_orders").await?;
    let mut inserted = 0u64;
    let mut rest = orders;
    while !rest.is_empty() {
        // At most 200 orders or 256 KiB of order text a statement, and always
        // one: each pooled connection keeps a buffer as large as the largest
        // statement it sent, so larger ones cost memory for good and save
        // little (a few round trips per batch).
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len() && n < 200 && (n == 0 || bytes + rest[n].message.len() <= 256 << 10) {
            bytes += rest[n].message.len();
            n += 1;
        }
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        inserted += exec_sized_drop(
            tx,
            format!(
                "INSERT IGNORE INTO order_sync_orders {ORDER_COLUMNS} VALUES {}",
                vec![ORDER_MARKS; chunk.len()].join(", ")
            ),
            chunk.iter().flat_map(|o| order_values(o)).collect(),
        )
        .await?;
    }
    if inserted == orders.len() as u64 {
        tx.query_drop("RELEASE SAVEPOINT order_sync_insert_orders")
            .await?;
        Ok(true)
    } else {
        tx.query_drop("ROLLBACK TO SAVEPOINT order_sync_insert_orders")
            .await?;
        Ok(false)
    }
}

/// Inserts the order rows of `orders` (deduplicated) in the caller's
/// transaction and returns the delivery rows to create, with each order's
/// store: for a new order, those of the consumers of `audience` it is for
/// (its store; its state, unless it starts held: a held order's state is
/// asked when it is released), and for an order already recorded only those
/// of consumers added since.
///
/// The relay whose insert creates the order row owns its delivery rows: all
/// the batch's orders go in one statement per chunk when all are new, and one
/// statement per order otherwise, to learn which. A second relay given the
/// same order (capture published it twice) waits on that row's key lock, then
/// inserts nothing and publishes nothing, so consumers never get attempt 1
/// twice.
async fn insert_orders<'o>(
    tx: &mut mysql_async::Transaction<'_>,
    orders: impl Iterator<Item = &'o NewOrder>,
    audience: &Audience,
    source: &str,
) -> Result<Vec<(Claimed, Option<u16>)>, LedgerError> {
    let mut orders: Vec<&NewOrder> = orders.collect();
    orders.sort_by_key(|o| o.key.entity_id);
    orders.dedup_by_key(|o| o.key.entity_id);
    let mut known_ids = Vec::new();
    if !insert_all_new(tx, &orders).await? {
        // Some were known: one statement per order tells which.
        let one =
            format!("INSERT IGNORE INTO order_sync_orders {ORDER_COLUMNS} VALUES {ORDER_MARKS}");
        for o in &orders {
            tx.exec_drop(one.as_str(), order_values(o)).await?;
            if tx.affected_rows() == 0 {
                known_ids.push(o.key.entity_id);
            }
        }
    }
    let existing: Vec<(u32, String)> = if known_ids.is_empty() {
        vec![]
    } else {
        // A known order's row, locked: two writers giving the same order to
        // one consumer (the relay and a backfill) take turns here, and the
        // second reads the rows the first committed, so neither publishes a
        // row the other created.
        exec_sized::<(u32,)>(
            tx,
            format!(
                "SELECT entity_id FROM order_sync_orders WHERE entity_id IN ({}) FOR UPDATE",
                marks(known_ids.len())
            ),
            id_params(&known_ids),
        )
        .await?;
        exec_sized(
            tx,
            format!(
                "SELECT entity_id, consumer FROM order_sync_deliveries \
                 WHERE entity_id IN ({}) AND seq = 0 FOR UPDATE",
                marks(known_ids.len())
            ),
            id_params(&known_ids),
        )
        .await?
    };
    let mut fresh = Vec::new();
    for o in &orders {
        for c in audience.subscribers(Event::Placed) {
            let seen = existing
                .iter()
                .any(|(id, ec)| *id == o.key.entity_id && ec == c);
            let for_it = audience.takes_store(c, o.key.store_id)
                && (o.held || audience.takes_state(c, o.key.state.as_deref()));
            if !seen && for_it {
                fresh.push((
                    Claimed {
                        entity_id: o.key.entity_id,
                        consumer: c.to_owned(),
                        seq: 0,
                        event: Event::Placed,
                        message_id: message_id(source, o.key.entity_id, c),
                        increment_id: o.key.increment_id.clone(),
                        attempts: 0,
                        captured_at: o.captured_at,
                        message: o.message.clone(),
                    },
                    o.key.store_id,
                ));
            }
        }
    }
    Ok(fresh)
}

/// The orders among `orders` that start held.
fn held_ids(orders: &[NewOrder]) -> std::collections::HashSet<u32> {
    orders
        .iter()
        .filter(|o| o.held)
        .map(|o| o.key.entity_id)
        .collect()
}

/// How a new delivery row starts.
#[derive(Clone, Copy)]
struct RowStart<'a> {
    state: State,
    next_attempt_at: Option<DateTime<Utc>>,
    synced_at: Option<DateTime<Utc>>,
    last_error: Option<&'a str>,
}

/// Creates the delivery rows [`insert_orders`] returned, each starting as
/// `start` says for it; one batched statement.
async fn insert_deliveries<'a>(
    tx: &mut mysql_async::Transaction<'_>,
    fresh: &[(Claimed, Option<u16>)],
    now: DateTime<Utc>,
    start: impl Fn(&Claimed) -> RowStart<'a> + Sync,
) -> Result<(), LedgerError> {
    // One statement per chunk, not one per row: a batch of a draining
    // backlog is hundreds of rows. Fourteen columns, so a chunk of 500 is
    // far inside the protocol's 65,535 parameters.
    for chunk in fresh.chunks(500) {
        let mut params: Vec<Value> = Vec::with_capacity(chunk.len() * 13);
        for (f, store) in chunk {
            let start = start(f);
            params.extend([
                f.entity_id.into(),
                f.consumer.as_str().into(),
                f.seq.into(),
                f.event.as_str().into(),
                f.increment_id.clone().into(),
                (*store).into(),
                f.message_id.as_str().into(),
                start.state.into(),
                naive(f.captured_at).into(),
                start.next_attempt_at.map(naive).into(),
                start.synced_at.map(naive).into(),
                start.last_error.into(),
                naive(now).into(),
            ]);
        }
        exec_sized_drop(
            tx,
            format!(
                "INSERT IGNORE INTO order_sync_deliveries \
                 (entity_id, consumer, seq, event, increment_id, store_id, message_id, state, \
                  attempts, captured_at, next_attempt_at, synced_at, last_error, updated_at) \
                 VALUES {}",
                vec!["(?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?)"; chunk.len()].join(", ")
            ),
            params,
        )
        .await?;
    }
    Ok(())
}
