//! Delivery rows, one per (order, consumer): recording captured orders,
//! claiming what is due, and recording what publishing did.
//!
//! A row is reserved for the publisher that took it until `next_attempt_at`
//! (the claim), so a second relay — or this one after a crash — takes it only
//! when the claim has run out; it is marked published only after the broker's
//! confirm ([`Ledger::mark_published`]).

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use mysql_async::{prelude::*, TxOpts, Value};

use super::State::{Parked, Pending, Published, Skipped, Synced};
use super::{
    after, exec_sized_drop, from_row, from_rows, id_params, marks, naive, opt_utc_to_value,
    opt_utc_value, read_committed, state::state_value, transaction, utc_to_value, utc_value,
    Ledger, LedgerError, State,
};
use crate::{
    magento::shape::Shapes,
    message::{event_to_value, event_value, truncate, Delivering, Event},
    retry::RetryPolicy,
};

/// One ledger row, as read back for status, the API and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize, FromRow)]
pub struct Delivery {
    pub entity_id: u32,
    pub consumer: String,
    /// 0 for the placement, then the event's place in the order's life.
    pub seq: u16,
    #[mysql(deserialize_with = "event_value", serialize_with = "event_to_value")]
    pub event: Event,
    pub increment_id: Option<String>,
    pub store_id: Option<u16>,
    pub message_id: String,
    #[mysql(deserialize_with = "state_value")]
    pub state: State,
    pub attempts: u32,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    pub captured_at: DateTime<Utc>,
    #[mysql(
        deserialize_with = "opt_utc_value",
        serialize_with = "opt_utc_to_value"
    )]
    pub last_published_at: Option<DateTime<Utc>>,
    #[mysql(
        deserialize_with = "opt_utc_value",
        serialize_with = "opt_utc_to_value"
    )]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[mysql(
        deserialize_with = "opt_utc_value",
        serialize_with = "opt_utc_to_value"
    )]
    pub synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// What the order became in the sync service, as its ack said.
    pub remote_id: Option<String>,
    /// Where the sync service shows it, as its ack said.
    pub remote_url: Option<String>,
    /// Times an operator re-sent this row.
    pub resyncs: u32,
    /// The earliest event of the same order for the same consumer that is
    /// not settled yet, when this row comes after it: this row waits behind it.
    pub blocked_by: Option<u16>,
}

/// The columns of [`Delivery`], for SELECTs `FROM order_sync_deliveries`
/// (unaliased: `blocked_by` refers to it by name).
pub(super) const DELIVERY_COLUMNS: DeliveryColumns = DeliveryColumns;

/// [`DELIVERY_COLUMNS`], written into a statement with `{DELIVERY_COLUMNS}`.
pub(super) struct DeliveryColumns;

impl std::fmt::Display for DeliveryColumns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
    "entity_id, consumer, seq, event, increment_id, store_id, message_id, state, attempts, \
         captured_at, last_published_at, next_attempt_at, synced_at, last_error, remote_id, \
         remote_url, resyncs, \
         (SELECT MIN(b.seq) FROM order_sync_deliveries b \
          WHERE b.entity_id = order_sync_deliveries.entity_id \
            AND b.consumer = order_sync_deliveries.consumer \
            AND b.seq < order_sync_deliveries.seq \
            AND b.state NOT IN ('{Synced}', '{Skipped}')) AS blocked_by"
        )
    }
}

/// A row taken for publishing, with what is needed to build the message.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub entity_id: u32,
    pub consumer: String,
    pub seq: u16,
    pub event: Event,
    pub message_id: String,
    pub increment_id: Option<String>,
    /// Deliveries made before this one.
    pub attempts: u32,
    pub captured_at: DateTime<Utc>,
    pub message: String,
}

impl Claimed {
    /// The delivery this claim is for, the one after its `attempts`: the same
    /// message whether a queue, a webhook or the pull API carries it, with
    /// the `max_attempts` after which a failure parks it, and as much of the
    /// order as the consumer's shape in `shapes` lets through.
    pub fn next_delivery<'a>(&'a self, max_attempts: u32, shapes: &'a Shapes) -> Delivering<'a> {
        Delivering {
            event: self.event,
            seq: self.seq,
            message_id: &self.message_id,
            consumer: &self.consumer,
            captured_at: self.captured_at,
            attempt: self.attempts + 1,
            max_attempts,
            order: &self.message,
            shape: shapes.of(&self.consumer),
        }
    }
}

/// A due row as [`Ledger::claim_due`] reads it, before its message is joined.
#[derive(FromRow)]
struct DueRow {
    entity_id: u32,
    consumer: String,
    seq: u16,
    #[mysql(deserialize_with = "event_value", serialize_with = "event_to_value")]
    event: Event,
    message_id: String,
    increment_id: Option<String>,
    attempts: u32,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    captured_at: DateTime<Utc>,
}

/// Names one row: an order's event for one consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub entity_id: u32,
    pub consumer: String,
    pub seq: u16,
}

impl RowKey {
    /// An order's placement row for `consumer`.
    pub fn placed(entity_id: u32, consumer: &str) -> Self {
        Self {
            entity_id,
            consumer: consumer.to_owned(),
            seq: 0,
        }
    }
}

impl From<&Claimed> for RowKey {
    fn from(c: &Claimed) -> Self {
        Self {
            entity_id: c.entity_id,
            consumer: c.consumer.clone(),
            seq: c.seq,
        }
    }
}

/// The claim's SELECT, with the values (or `?`) given as SQL text: `now`, the
/// consumer list and the limit. An order's later event goes only once every
/// earlier one of it is settled for this consumer, and once its placement is
/// recorded (it may still be on its way through the broker): in order, per
/// order. Both lookups are by primary key.
///
/// `unanswered` says whose `published` rows (a copy out, no answer yet) may
/// be taken: all consumers', none, or those listed as SQL text.
pub(super) fn claim_select(
    now: &str,
    consumers: &str,
    limit: &str,
    first_only: bool,
    unanswered: Unanswered<&str>,
) -> String {
    let unanswered = match unanswered {
        Unanswered::All => String::new(),
        Unanswered::None => format!("AND d.state <> '{}'", State::Published.as_str()),
        Unanswered::Of(list) => format!(
            "AND (d.state <> '{}' OR d.consumer IN ({list}))",
            State::Published.as_str()
        ),
    };
    format!(
        "SELECT d.entity_id, d.consumer, d.seq, d.event, d.message_id, d.increment_id, \
                d.attempts, d.captured_at \
         FROM order_sync_deliveries d \
         WHERE d.state IN ({open}) AND d.next_attempt_at <= {now} AND d.consumer IN ({consumers}) {first} {unanswered} \
           AND (d.seq = 0 OR (\
             EXISTS (SELECT 1 FROM order_sync_orders o WHERE o.entity_id = d.entity_id) \
             AND NOT EXISTS (SELECT 1 FROM order_sync_deliveries e \
               WHERE e.entity_id = d.entity_id AND e.consumer = d.consumer \
                 AND e.seq < d.seq AND e.state NOT IN ({settled})))) \
         ORDER BY d.next_attempt_at LIMIT {limit}",
        open = State::sql_list(&State::OPEN),
        settled = State::sql_list(&State::SETTLED),
        first = if first_only { "AND d.attempts = 0" } else { "" },
    )
}

/// Whose rows with a copy out and no answer yet (`published`) a claim may
/// take: a webhook or pull delivery not answered is due again after the
/// backoff (`All`); a queue's copy only once it cannot still be in the queue
/// or held by a consumer (the relay says whose: `Of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered<T> {
    All,
    None,
    Of(T),
}

/// How a delivery reached its consumer, which decides when it is due again
/// if no answer comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried {
    /// Published to the consumer's queue: the broker keeps the copy until
    /// the consumer takes it, and gives it back if the consumer dies holding
    /// it, so a second copy is due only after `relay.unanswered_after` (and
    /// the relay checks the queue then).
    Queue,
    /// POSTed to a webhook or handed out by the pull API: a delivery not
    /// answered is due again after the backoff.
    Direct,
}

/// The stored JSON of each (order, seq): the order's for a placement, the
/// event's own for later events.
pub(super) async fn messages_of(
    tx: &mut mysql_async::Transaction<'_>,
    keys: impl Iterator<Item = (u32, u16)>,
) -> Result<HashMap<(u32, u16), String>, LedgerError> {
    type Keys = Vec<(u32, u16)>;
    let (mut placed, mut later): (Keys, Keys) = keys.partition(|(_, seq)| *seq == 0);
    for list in [&mut placed, &mut later] {
        list.sort_unstable();
        list.dedup();
    }
    let mut out = HashMap::new();
    if !placed.is_empty() {
        let ids: Vec<u32> = placed.iter().map(|(id, _)| *id).collect();
        let rows: Vec<(u32, String)> = from_rows(
            tx.exec(
                format!(
                    "SELECT entity_id, message FROM order_sync_orders WHERE entity_id IN ({})",
                    marks(ids.len())
                ),
                id_params(&ids),
            )
            .await?,
        )?;
        out.extend(rows.into_iter().map(|(id, m)| ((id, 0), m)));
    }
    if !later.is_empty() {
        let pairs = vec!["(?, ?)"; later.len()].join(", ");
        let params: Vec<Value> = later
            .iter()
            .flat_map(|(id, seq)| [Value::from(*id), Value::from(*seq)])
            .collect();
        let rows: Vec<(u32, u16, String)> = from_rows(
            tx.exec(
                format!(
                    "SELECT entity_id, seq, message FROM order_sync_events \
                     WHERE (entity_id, seq) IN ({pairs})"
                ),
                params,
            )
            .await?,
        )?;
        out.extend(rows.into_iter().map(|(id, seq, m)| ((id, seq), m)));
    }
    Ok(out)
}

/// What a re-delivery round took from the ledger.
#[derive(Debug, Default)]
pub struct Round {
    pub to_publish: Vec<Claimed>,
    /// (entity_id, consumer, seq) rows parked in this round.
    pub parked: Vec<RowKey>,
}

impl Ledger {
    /// Takes up to `limit` rows that are due and not synced, for the given
    /// consumers. Rows that have used up their deliveries are parked instead.
    /// Taken rows are reserved until `now + lease`, so a second relay (or this
    /// one, if it dies before publishing) does not take them in the meantime;
    /// `SKIP LOCKED` lets concurrent relays share the work without waiting.
    ///
    /// Rows with a copy out and no answer (`published`) are taken only for
    /// the consumers `unanswered` names: see [`Unanswered`].
    pub async fn claim_due(
        &self,
        consumers: &[String],
        unanswered: Unanswered<&[String]>,
        now: DateTime<Utc>,
        limit: u32,
        max_attempts: u32,
        lease: Duration,
    ) -> Result<Round, LedgerError> {
        self.claim(
            consumers,
            unanswered,
            now,
            limit,
            max_attempts,
            lease,
            false,
        )
        .await
    }

    /// Takes up to `limit` due rows never delivered yet (an order's next
    /// event whose turn came, a released hold), as [`Ledger::claim_due`] does.
    pub async fn claim_first_deliveries(
        &self,
        consumers: &[String],
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Round, LedgerError> {
        self.claim(
            consumers,
            Unanswered::None,
            now,
            limit,
            u32::MAX,
            lease,
            true,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn claim(
        &self,
        consumers: &[String],
        unanswered: Unanswered<&[String]>,
        now: DateTime<Utc>,
        limit: u32,
        max_attempts: u32,
        lease: Duration,
        first_only: bool,
    ) -> Result<Round, LedgerError> {
        let mut params: Vec<Value> = vec![naive(now).into()];
        params.extend(consumers.iter().map(|c| Value::from(c.as_str())));
        let unanswered_marks;
        let unanswered = match unanswered {
            Unanswered::All => Unanswered::All,
            Unanswered::None => Unanswered::None,
            Unanswered::Of([]) => Unanswered::None,
            Unanswered::Of(list) => {
                params.extend(list.iter().map(|c| Value::from(c.as_str())));
                unanswered_marks = marks(list.len());
                Unanswered::Of(unanswered_marks.as_str())
            }
        };
        params.push(limit.into());
        // Only delivery rows are locked (MariaDB has no `FOR UPDATE OF`), so
        // relays taking different consumers' rows of one order never block.
        let select = format!(
            "{} FOR UPDATE SKIP LOCKED",
            claim_select("?", &marks(consumers.len()), "?", first_only, unanswered)
        );
        transaction!(self, read_committed(), |tx| {
            let rows: Vec<DueRow> = from_rows(tx.exec(select.as_str(), params.clone()).await?)?;
            let (exhausted, due): (Vec<DueRow>, Vec<DueRow>) =
                rows.into_iter().partition(|r| r.attempts >= max_attempts);
            let mut round = Round {
                parked: exhausted
                    .into_iter()
                    .map(|r| RowKey {
                        entity_id: r.entity_id,
                        consumer: r.consumer,
                        seq: r.seq,
                    })
                    .collect(),
                to_publish: vec![],
            };
            if !due.is_empty() {
                let messages =
                    messages_of(&mut tx, due.iter().map(|r| (r.entity_id, r.seq))).await?;
                // Taken rows are `pending` until their confirm is recorded: an
                // ack that comes before that (a fast consumer) is then told
                // apart from the state the row was taken in.
                tx.exec_batch(
                    format!("UPDATE order_sync_deliveries SET state = '{Pending}', next_attempt_at = ?, updated_at = ? \
                     WHERE entity_id = ? AND consumer = ? AND seq = ?"),
                    due.iter().map(|p| {
                        (
                            naive(after(now, lease)),
                            naive(now),
                            p.entity_id,
                            p.consumer.as_str(),
                            p.seq,
                        )
                    }),
                )
                .await?;
                round.to_publish = due
                    .into_iter()
                    .map(|r| Claimed {
                        // An order row missing under its deliveries cannot
                        // happen (one transaction writes both); `null` keeps the
                        // delivery going rather than wedging the round.
                        message: messages
                            .get(&(r.entity_id, r.seq))
                            .cloned()
                            .unwrap_or_else(|| "null".into()),
                        entity_id: r.entity_id,
                        consumer: r.consumer,
                        seq: r.seq,
                        event: r.event,
                        message_id: r.message_id,
                        increment_id: r.increment_id,
                        attempts: r.attempts,
                        captured_at: r.captured_at,
                    })
                    .collect();
            }
            if !round.parked.is_empty() {
                tx.exec_batch(
                    format!("UPDATE order_sync_deliveries SET state = '{Parked}', next_attempt_at = NULL, \
                     last_error = COALESCE(last_error, ?), updated_at = ? \
                     WHERE entity_id = ? AND consumer = ? AND seq = ?"),
                    round.parked.iter().map(|k| {
                        (
                            format!("no synced ack after {max_attempts} deliveries"),
                            naive(now),
                            k.entity_id,
                            k.consumer.as_str(),
                            k.seq,
                        )
                    }),
                )
                .await?;
            }
            round
        })
    }

    /// Records confirmed publishes: one more delivery, and when the next is
    /// due if no answer comes (by how it was `carried`).
    /// A consumer may ack before this runs (it got the message before the
    /// confirm came back): the delivery still counts, but the state and the
    /// schedule stay as the ack left them. A claim leaves its rows `pending`,
    /// so any other state here is an ack's (or an operator's).
    pub async fn mark_published(
        &self,
        rows: &[&Claimed],
        now: DateTime<Utc>,
        policy: &RetryPolicy,
        carried: Carried,
    ) -> Result<(), LedgerError> {
        let unanswered_for = |c: &Claimed| match carried {
            Carried::Queue => policy.unanswered_after,
            Carried::Direct => policy.delay_after(c.attempts + 1),
        };
        if rows.is_empty() {
            return Ok(());
        }
        // Rows due again at the same time share one statement (all of a
        // queue batch do), naming them by their unique message id: one
        // round trip where a statement per row would make hundreds.
        let mut by_due: Vec<(DateTime<Utc>, Vec<&str>)> = Vec::new();
        for c in rows {
            let due = after(now, unanswered_for(c));
            match by_due.iter_mut().find(|(d, _)| *d == due) {
                Some((_, ids)) => ids.push(c.message_id.as_str()),
                None => by_due.push((due, vec![c.message_id.as_str()])),
            }
        }
        // One transaction: one commit (and disk flush) for the whole batch,
        // where autocommit would flush once per row.
        transaction!(self, TxOpts::default(), |tx| {
            for (due, ids) in &by_due {
                for chunk in ids.chunks(1000) {
                    let mut params: Vec<Value> =
                        vec![naive(now).into(), naive(*due).into(), naive(now).into()];
                    params.extend(chunk.iter().map(|id| Value::from(*id)));
                    // MariaDB applies a single-table UPDATE's SET clauses left
                    // to right, each seeing the ones before it: both IFs read
                    // `state` before it is changed.
                    exec_sized_drop(
                        &mut tx,
                        format!(
                            "UPDATE order_sync_deliveries \
                             SET attempts = attempts + 1, last_published_at = ?, \
                                 next_attempt_at = IF(state = '{Pending}', ?, next_attempt_at), \
                                 state = IF(state = '{Pending}', '{Published}', state), \
                                 updated_at = ? \
                             WHERE message_id IN ({})",
                            marks(chunk.len())
                        ),
                        params,
                    )
                    .await?;
                }
            }
        })
    }

    /// Parks rows at once, with the reason: for what no retry can deliver
    /// (a message too large for the broker). Kept, visible, re-drivable.
    pub async fn park(
        &self,
        rows: &[RowKey],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let reason = truncate(reason, 2000);
        transaction!(self, TxOpts::default(), |tx| {
            tx.exec_batch(
                format!(
                    "UPDATE order_sync_deliveries SET state = '{Parked}', next_attempt_at = NULL, \
                 last_error = ?, updated_at = ? \
                 WHERE entity_id = ? AND consumer = ? AND seq = ? AND state <> '{Synced}'"
                ),
                rows.iter().map(|r| {
                    (
                        reason.as_str(),
                        naive(now),
                        r.entity_id,
                        r.consumer.as_str(),
                        r.seq,
                    )
                }),
            )
            .await?;
        })
    }

    /// Records that publishing failed and gives the rows' claims back: they are
    /// due at once, for the next re-delivery round (whichever instance runs
    /// it), rather than when the claim would have run out. A broker node lost
    /// in a cluster fails a whole batch at once; they go again on the next
    /// round, through the node the roles reconnected to. One transaction.
    pub async fn record_publish_errors(
        &self,
        failed: &[(&Claimed, String)],
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if failed.is_empty() {
            return Ok(());
        }
        transaction!(self, TxOpts::default(), |tx| {
            tx.exec_batch(
                format!(
                    "UPDATE order_sync_deliveries SET last_error = ?, next_attempt_at = ?, \
                     updated_at = ? WHERE entity_id = ? AND consumer = ? AND seq = ? AND state IN ({})",
                    State::sql_list(&State::OPEN)
                ),
                failed.iter().map(|(row, error)| {
                    (
                        truncate(&format!("publish failed: {error}"), 2000),
                        naive(now),
                        naive(now),
                        row.entity_id,
                        row.consumer.as_str(),
                        row.seq,
                    )
                }),
            )
            .await?;
        })
    }

    /// Makes rows due now that were reserved for publishing but will not be
    /// published by their taker (paused, or pulled over HTTP).
    pub async fn release(&self, rows: &[&Claimed], now: DateTime<Utc>) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        transaction!(self, TxOpts::default(), |tx| {
            tx.exec_batch(
                format!(
                    "UPDATE order_sync_deliveries SET next_attempt_at = ? \
                 WHERE entity_id = ? AND consumer = ? AND seq = ? AND state = '{Pending}'"
                ),
                rows.iter()
                    .map(|r| (naive(now), r.entity_id, r.consumer.as_str(), r.seq)),
            )
            .await?;
        })
    }

    /// Hands up to `limit` due rows of one consumer to a caller that fetches
    /// them over HTTP: each counts as a delivery at once (the response is the
    /// delivery), and is due again after the back-off unless acked. Rows that
    /// used up their deliveries are parked instead, as in a re-delivery round.
    pub async fn pull(
        &self,
        consumer: &str,
        now: DateTime<Utc>,
        limit: u32,
        policy: &RetryPolicy,
    ) -> Result<Vec<Claimed>, LedgerError> {
        let consumers = [consumer.to_owned()];
        let round = self
            .claim_due(
                &consumers,
                Unanswered::All,
                now,
                limit,
                policy.max_attempts,
                Duration::from_secs(60),
            )
            .await?;
        let rows: Vec<&Claimed> = round.to_publish.iter().collect();
        self.mark_published(&rows, now, policy, Carried::Direct)
            .await?;
        Ok(round.to_publish)
    }

    /// Every row, ordered by order and consumer (for status output and tests).
    pub async fn deliveries(&self) -> Result<Vec<Delivery>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        from_rows(
            conn.query(format!(
                "SELECT {DELIVERY_COLUMNS} FROM order_sync_deliveries ORDER BY entity_id, consumer, seq"
            ))
            .await?,
        )
    }

    /// One order's placement row for one consumer.
    pub async fn delivery(
        &self,
        entity_id: u32,
        consumer: &str,
    ) -> Result<Option<Delivery>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                format!(
                    "SELECT {DELIVERY_COLUMNS} FROM order_sync_deliveries \
                     WHERE entity_id = ? AND consumer = ? AND seq = 0"
                ),
                (entity_id, consumer),
            )
            .await?;
        row.map(from_row).transpose()
    }

    /// The rows of these orders, by order.
    pub(super) async fn deliveries_of(
        conn: &mut mysql_async::Conn,
        ids: &[u32],
    ) -> Result<HashMap<u32, Vec<Delivery>>, LedgerError> {
        let mut out: HashMap<u32, Vec<Delivery>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<Delivery> = from_rows(
            conn.exec(
                format!(
                    "SELECT {DELIVERY_COLUMNS} FROM order_sync_deliveries \
                     WHERE entity_id IN ({}) ORDER BY entity_id, consumer, seq",
                    marks(ids.len())
                ),
                id_params(ids),
            )
            .await?,
        )?;
        for d in rows {
            out.entry(d.entity_id).or_default().push(d);
        }
        Ok(out)
    }
}
