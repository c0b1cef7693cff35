//! An order's later events: recording what capture saw happen to an order
//! after its placement (a document, a change of state or status), each with
//! its place in the order's life (`seq`, 1, 2, … after the placement's 0) and
//! one row per subscribed consumer; and holding or releasing a placement.
//!
//! Capture is the only writer and records events in the order it saw them,
//! so `seq` is the order they happened in as far as Magento's tables tell.
//! Re-recording is harmless: a document already recorded, a state the
//! ledger already holds for the order, a move from a state it does not hold
//! (the binlog's before image), or one committed at or before the order's
//! last move read from the binlog, adds nothing.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, Params, TxOpts, Value};

use super::State::{Held, Pending, Skipped};
use super::{
    audience::Audience, from_rows, id_params, marks, naive, transaction, Ledger, LedgerError, State,
};
use crate::message::{event_message_id, truncate, Event};

/// What happened to one order, to record as one unit.
#[derive(Debug, Clone)]
pub struct Change {
    pub entity_id: u32,
    pub increment_id: Option<String>,
    pub store_id: Option<u16>,
    /// An invoice, shipment or credit memo: recorded once per document.
    pub document: Option<(Event, u32)>,
    /// The order's state and status after this change, when it is one.
    pub moved_to: Option<(Option<String>, Option<String>)>,
    /// The state and status the move was from, when known (the binlog's
    /// before image): then it is recorded only if the ledger holds exactly
    /// that, so a change the scan recorded first, or one replayed after a
    /// restart, is not recorded again.
    pub moved_from: Option<(Option<String>, Option<String>)>,
    /// Where the binlog committed the move ([`crate::ledger::BinlogPosition::ordinal`]):
    /// recorded only past the order's last one.
    pub binlog_at: Option<u64>,
    /// When Magento says it happened (`created_at` / `updated_at`, UTC).
    pub occurred_at: Option<NaiveDateTime>,
    /// What becomes of the order's held placement, if it is held.
    pub release: Option<Release>,
    /// The events, in order, each with its JSON (`{"order": …, "invoice": …}`).
    pub events: Vec<(Event, String)>,
}

/// How a held placement ends.
#[derive(Debug, Clone)]
pub enum Release {
    /// Sent now; with the order re-read as it is now, or as it was when held.
    Send { message: Option<String> },
    /// Never sent: its rows end `skipped`, with the reason.
    Drop { reason: String },
}

/// What the ledger knows of an order capture sees change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownOrder {
    pub state: Option<String>,
    pub status: Option<String>,
    /// Some consumer's placement of it is held.
    pub held: bool,
}

/// What [`Ledger::record_changes`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Events recorded (each once, however many consumers).
    pub events: usize,
    /// Rows created for consumers.
    pub rows: usize,
    /// Placements released from a hold (sent or dropped).
    pub released: usize,
}

impl Ledger {
    /// The orders among `ids` the ledger holds, with their last seen state.
    pub async fn known_orders(&self, ids: &[u32]) -> Result<HashMap<u32, KnownOrder>, LedgerError> {
        let mut out = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut conn = self.pool.get_conn().await?;
        for chunk in ids.chunks(1000) {
            let rows: Vec<(u32, Option<String>, Option<String>, i64)> = from_rows(
                conn.exec(
                    format!(
                        "SELECT o.entity_id, o.state, o.status, \
                         EXISTS (SELECT 1 FROM order_sync_deliveries d \
                                 WHERE d.entity_id = o.entity_id AND d.seq = 0 AND d.state = '{Held}') \
                         FROM order_sync_orders o WHERE o.entity_id IN ({})",
                        marks(chunk.len())
                    ),
                    id_params(chunk),
                )
                .await?,
            )?;
            out.extend(rows.into_iter().map(|(id, state, status, held)| {
                (
                    id,
                    KnownOrder {
                        state,
                        status,
                        held: held != 0,
                    },
                )
            }));
        }
        Ok(out)
    }

    /// Records changes in one transaction, in the order given: releases,
    /// then each event with the next `seq` of its order and a pending row,
    /// due now, for each subscriber of it in `audience` that holds the
    /// order's placement (a `status_changed` to a status the consumer writes
    /// itself excepted). A document already recorded, or a move to the state
    /// and status the ledger already holds, is skipped whole.
    pub async fn record_changes(
        &self,
        changes: &[Change],
        audience: &Audience,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<Recorded, LedgerError> {
        if changes.is_empty() {
            return Ok(Recorded::default());
        }
        transaction!(self, TxOpts::default(), |tx| {
            record_all(&mut tx, changes, audience, source, now).await?
        })
    }

    /// Where the scan of order changes has read `updated_at` to.
    pub async fn changes_position(
        &self,
        source: &str,
    ) -> Result<Option<NaiveDateTime>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let at: Option<Option<NaiveDateTime>> = conn
            .exec_first(
                "SELECT changes_at FROM order_sync_capture_position WHERE source = ?",
                (source,),
            )
            .await?;
        Ok(at.flatten())
    }

    /// Saves where the scan of order changes has read to (after recording
    /// what it found).
    pub async fn save_changes_position(
        &self,
        source: &str,
        at: NaiveDateTime,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_capture_position SET changes_at = ? WHERE source = ?",
            (at, source),
        )
        .await?;
        Ok(())
    }
}

/// Where the binlog committed an order's last move recorded from it.
type BinlogAt = Option<u64>;

/// What the ledger already holds of the orders and documents in a batch,
/// read once per batch (and kept up to date as the batch goes).
struct Known {
    documents: HashSet<(Event, u32)>,
    states: HashMap<u32, (Option<String>, Option<String>)>,
    /// Where the binlog committed each order's last change recorded from it.
    binlog_at: HashMap<u32, u64>,
    last_seq: HashMap<u32, u16>,
    /// (order, consumer) holding the order's placement: the only consumers
    /// its later events go to.
    placed: HashSet<(u32, String)>,
}

impl Known {
    async fn read(
        tx: &mut mysql_async::Transaction<'_>,
        changes: &[Change],
    ) -> Result<Self, LedgerError> {
        let mut ids: Vec<u32> = changes.iter().map(|c| c.entity_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let documents: Vec<(Event, u32)> = changes.iter().filter_map(|c| c.document).collect();
        let mut known = Known {
            documents: HashSet::new(),
            states: HashMap::new(),
            binlog_at: HashMap::new(),
            last_seq: HashMap::new(),
            placed: HashSet::new(),
        };
        for chunk in documents.chunks(1000) {
            let params: Vec<Value> = chunk
                .iter()
                .flat_map(|(e, d)| [Value::from(e.as_str()), Value::from(*d)])
                .collect();
            let rows: Vec<(String, u32)> = from_rows(
                tx.exec(
                    format!(
                        "SELECT event, document_id FROM order_sync_events \
                         WHERE (event, document_id) IN ({})",
                        vec!["(?, ?)"; chunk.len()].join(", ")
                    ),
                    params,
                )
                .await?,
            )?;
            known.documents.extend(
                rows.into_iter()
                    .filter_map(|(e, d)| Some((Event::parse(&e)?, d))),
            );
        }
        for chunk in ids.chunks(1000) {
            let rows: Vec<(u32, Option<String>, Option<String>, BinlogAt)> = from_rows(
                tx.exec(
                    format!(
                        "SELECT entity_id, state, status, binlog_at FROM order_sync_orders \
                         WHERE entity_id IN ({}) FOR UPDATE",
                        marks(chunk.len())
                    ),
                    id_params(chunk),
                )
                .await?,
            )?;
            for (id, st, su, at) in rows {
                known.states.insert(id, (st, su));
                if let Some(at) = at {
                    known.binlog_at.insert(id, at);
                }
            }
            let rows: Vec<(u32, u16)> = from_rows(
                tx.exec(
                    format!(
                        "SELECT entity_id, MAX(seq) FROM order_sync_events \
                         WHERE entity_id IN ({}) GROUP BY entity_id",
                        marks(chunk.len())
                    ),
                    id_params(chunk),
                )
                .await?,
            )?;
            known.last_seq.extend(rows);
            let rows: Vec<(u32, String)> = from_rows(
                tx.exec(
                    format!(
                        "SELECT entity_id, consumer FROM order_sync_deliveries \
                         WHERE entity_id IN ({}) AND seq = 0",
                        marks(chunk.len())
                    ),
                    id_params(chunk),
                )
                .await?,
            )?;
            known.placed.extend(rows);
        }
        Ok(known)
    }
}

/// Records a batch in the caller's transaction: what the ledger holds is
/// read once, each change is decided in order against it, and every kind of
/// write goes as one batched statement.
pub(super) async fn record_all(
    tx: &mut mysql_async::Transaction<'_>,
    changes: &[Change],
    audience: &Audience,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Recorded, LedgerError> {
    let mut known = Known::read(tx, changes).await?;
    let mut done = Recorded::default();
    // State, status, binlog place, order.
    let mut moves: Vec<(Option<String>, Option<String>, BinlogAt, u32)> = vec![];
    let mut messages: Vec<(&str, u32)> = vec![];
    let mut sent: Vec<u32> = vec![];
    let mut dropped: Vec<(String, u32)> = vec![];
    // Held placements released in a state a consumer does not take.
    let mut not_for: Vec<(u32, String)> = vec![];
    let mut events: Vec<Params> = vec![];
    let mut rows: Vec<Params> = vec![];
    for change in changes {
        let id = change.entity_id;
        if let Some(doc) = change.document {
            if !known.documents.insert(doc) {
                continue;
            }
        }
        if let Some(moved) = &change.moved_to {
            if known.states.get(&id) == Some(moved) {
                continue;
            }
            if change
                .moved_from
                .as_ref()
                .is_some_and(|from| known.states.get(&id) != Some(from))
            {
                continue;
            }
            let last = known.binlog_at.get(&id).copied();
            if let (Some(at), Some(last)) = (change.binlog_at, last) {
                if at <= last {
                    continue;
                }
            }
            known.states.insert(id, moved.clone());
            let at = change.binlog_at.or(last);
            if let Some(at) = at {
                known.binlog_at.insert(id, at);
            }
            moves.push((moved.0.clone(), moved.1.clone(), at, id));
        }
        match &change.release {
            Some(Release::Send { message }) => {
                if let Some(m) = message {
                    messages.push((m.as_str(), id));
                }
                sent.push(id);
                // The state it is sent in decides who takes it.
                let state = known.states.get(&id).and_then(|(st, _)| st.clone());
                for c in audience.subscribers(Event::Placed) {
                    if !audience.takes_state(c, state.as_deref())
                        && known.placed.remove(&(id, c.to_owned()))
                    {
                        not_for.push((id, c.to_owned()));
                    }
                }
            }
            Some(Release::Drop { reason }) => dropped.push((truncate(reason, 2000), id)),
            None => {}
        }
        let status = change.moved_to.as_ref().and_then(|(_, st)| st.as_deref());
        for (event, message) in &change.events {
            let consumers: Vec<&str> = audience
                .subscribers(*event)
                // A consumer of placements gets the events of the orders it
                // was given; one of later events only, those of its stores.
                .filter(|c| {
                    if audience.gets(c, Event::Placed) {
                        known.placed.contains(&(id, (*c).to_owned()))
                    } else {
                        audience.takes_store(c, change.store_id)
                    }
                })
                .filter(|c| !(*event == Event::StatusChanged && audience.is_own_status(c, status)))
                .collect();
            // Recorded while anyone subscribes, so the order's history is
            // whole for a consumer given the order later (a backfill).
            if !audience.wants(*event) {
                continue;
            }
            let seq = known.last_seq.get(&id).copied().unwrap_or(0) + 1;
            known.last_seq.insert(id, seq);
            let document = change.document.filter(|(e, _)| e == event).map(|(_, d)| d);
            events.push(Params::Positional(vec![
                id.into(),
                seq.into(),
                event.as_str().into(),
                document.into(),
                change.occurred_at.into(),
                naive(now).into(),
                message.as_str().into(),
            ]));
            rows.extend(consumers.iter().map(|c| {
                Params::Positional(vec![
                    id.into(),
                    (*c).into(),
                    seq.into(),
                    event.as_str().into(),
                    change.increment_id.clone().into(),
                    change.store_id.into(),
                    event_message_id(source, id, seq, *event, c).into(),
                    State::Pending.into(),
                    naive(now).into(),
                    naive(now).into(),
                    naive(now).into(),
                ])
            }));
            done.events += 1;
            done.rows += consumers.len();
        }
    }
    if !moves.is_empty() {
        tx.exec_batch(
            "UPDATE order_sync_orders SET state = ?, status = ?, binlog_at = ? WHERE entity_id = ?",
            moves,
        )
        .await?;
    }
    if !messages.is_empty() {
        tx.exec_batch(
            "UPDATE order_sync_orders SET message = ? WHERE entity_id = ?",
            messages,
        )
        .await?;
    }
    if !sent.is_empty() {
        let mut params: Vec<Value> = vec![naive(now).into(), naive(now).into()];
        params.extend(id_params(&sent));
        tx.exec_drop(
            format!(
                "UPDATE order_sync_deliveries SET state = '{Pending}', next_attempt_at = ?, \
                 updated_at = ? WHERE entity_id IN ({}) AND seq = 0 AND state = '{Held}'",
                marks(sent.len())
            ),
            params,
        )
        .await?;
        done.released += tx.affected_rows() as usize;
    }
    for (id, consumer) in &not_for {
        // Its placement, and any event recorded while it was held: none
        // was ever sent, and none is for this consumer.
        tx.exec_drop(
            format!(
                "DELETE FROM order_sync_deliveries WHERE entity_id = ? AND consumer = ? \
             AND state IN ('{Held}', '{Pending}')"
            ),
            (id, consumer.as_str()),
        )
        .await?;
    }
    for (reason, id) in dropped {
        tx.exec_drop(
            format!(
                "UPDATE order_sync_deliveries SET state = '{Skipped}', next_attempt_at = NULL, \
             last_error = ?, updated_at = ? WHERE entity_id = ? AND seq = 0 AND state = '{Held}'"
            ),
            (reason, naive(now), id),
        )
        .await?;
        done.released += tx.affected_rows() as usize;
    }
    if !events.is_empty() {
        tx.exec_batch(
            "INSERT INTO order_sync_events \
             (entity_id, seq, event, document_id, occurred_at, captured_at, message) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            events,
        )
        .await?;
    }
    if !rows.is_empty() {
        tx.exec_batch(
            "INSERT IGNORE INTO order_sync_deliveries \
             (entity_id, consumer, seq, event, increment_id, store_id, message_id, state, \
              attempts, captured_at, next_attempt_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            rows,
        )
        .await?;
    }
    Ok(done)
}
