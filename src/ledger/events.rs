//! An order's later events: recording what capture saw happen to an order
//! after its placement (a document, a change of state or status), each with
//! its place in the order's life (`seq`, 1, 2, … after the placement's 0) and
//! one row per subscribed consumer; and holding or releasing a placement.
//!
//! Capture is the only writer and records events in the order it saw them,
//! so `seq` is the order they happened in as far as Magento's tables tell.
//! Re-recording is harmless: a document already recorded, or a state the
//! ledger already holds for the order, adds nothing.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, Params, TxOpts};

use super::{from_rows, id_params, marks, naive, transaction, Ledger, LedgerError, State};
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
                                 WHERE d.entity_id = o.entity_id AND d.seq = 0 AND d.state = 'held') \
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
    /// due now, for each consumer in `subscribers` of it. A document already
    /// recorded, or a move to the state and status the ledger already holds,
    /// is skipped whole.
    pub async fn record_changes(
        &self,
        changes: &[Change],
        subscribers: &HashMap<Event, Vec<String>>,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<Recorded, LedgerError> {
        if changes.is_empty() {
            return Ok(Recorded::default());
        }
        transaction!(self, TxOpts::default(), |tx| {
            let mut done = Recorded::default();
            for change in changes {
                record_one(&mut tx, change, subscribers, source, now, &mut done).await?;
            }
            done
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

async fn record_one(
    tx: &mut mysql_async::Transaction<'_>,
    change: &Change,
    subscribers: &HashMap<Event, Vec<String>>,
    source: &str,
    now: DateTime<Utc>,
    done: &mut Recorded,
) -> Result<(), LedgerError> {
    let id = change.entity_id;
    if let Some((event, document_id)) = change.document {
        let seen: Option<u8> = tx
            .exec_first(
                "SELECT 1 FROM order_sync_events WHERE event = ? AND document_id = ?",
                (event.as_str(), document_id),
            )
            .await?;
        if seen.is_some() {
            return Ok(());
        }
    }
    if let Some((state, status)) = &change.moved_to {
        let known: Option<(Option<String>, Option<String>)> = tx
            .exec_first(
                "SELECT state, status FROM order_sync_orders WHERE entity_id = ? FOR UPDATE",
                (id,),
            )
            .await?;
        if known.as_ref() == Some(&(state.clone(), status.clone())) {
            return Ok(());
        }
        tx.exec_drop(
            "UPDATE order_sync_orders SET state = ?, status = ? WHERE entity_id = ?",
            (state.as_deref(), status.as_deref(), id),
        )
        .await?;
    }
    match &change.release {
        Some(Release::Send { message }) => {
            if let Some(m) = message {
                tx.exec_drop(
                    "UPDATE order_sync_orders SET message = ? WHERE entity_id = ?",
                    (m.as_str(), id),
                )
                .await?;
            }
            tx.exec_drop(
                "UPDATE order_sync_deliveries SET state = 'pending', next_attempt_at = ?, \
                 updated_at = ? WHERE entity_id = ? AND seq = 0 AND state = 'held'",
                (naive(now), naive(now), id),
            )
            .await?;
            done.released += tx.affected_rows() as usize;
        }
        Some(Release::Drop { reason }) => {
            tx.exec_drop(
                "UPDATE order_sync_deliveries SET state = 'skipped', next_attempt_at = NULL, \
                 last_error = ?, updated_at = ? WHERE entity_id = ? AND seq = 0 AND state = 'held'",
                (truncate(reason, 2000), naive(now), id),
            )
            .await?;
            done.released += tx.affected_rows() as usize;
        }
        None => {}
    }
    for (event, message) in &change.events {
        let Some(consumers) = subscribers.get(event).filter(|c| !c.is_empty()) else {
            continue;
        };
        let last: Option<Option<u16>> = tx
            .exec_first(
                "SELECT MAX(seq) FROM order_sync_events WHERE entity_id = ?",
                (id,),
            )
            .await?;
        let seq = last.flatten().unwrap_or(0) + 1;
        tx.exec_drop(
            "INSERT INTO order_sync_events \
             (entity_id, seq, event, document_id, occurred_at, captured_at, message) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                id,
                seq,
                event.as_str(),
                change.document.filter(|(e, _)| e == event).map(|(_, d)| d),
                change.occurred_at,
                naive(now),
                message.as_str(),
            ),
        )
        .await?;
        tx.exec_batch(
            "INSERT IGNORE INTO order_sync_deliveries \
             (entity_id, consumer, seq, event, increment_id, store_id, message_id, state, \
              attempts, captured_at, next_attempt_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            consumers.iter().map(|c| {
                Params::Positional(vec![
                    id.into(),
                    c.as_str().into(),
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
            }),
        )
        .await?;
        done.events += 1;
        done.rows += consumers.len();
    }
    Ok(())
}
