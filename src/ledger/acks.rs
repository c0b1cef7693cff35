//! Applying sync services' acknowledgements: each ack changes at most the one
//! row it names, and a batch of acks is one transaction (one commit, so one
//! disk flush, however many acks).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mysql_async::{prelude::*, TxOpts, Value};

use super::State::{Failed, Synced};
use super::{
    after, counts::SyncedDelta, exec_sized, exec_sized_drop, from_row, id_params, marks, naive,
    opt_utc_value, state::state_value, transaction, Ledger, LedgerError, State,
};
use crate::{
    message::{truncate, Ack, AckRejection, AckStatus},
    retry::RetryPolicy,
};

/// What an ack did, with the order it was for (as the ledger knows it, so log
/// lines carry the increment id even when the ack named only the entity id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    Synced {
        entity_id: u32,
        increment_id: Option<String>,
    },
    Failed {
        entity_id: u32,
        increment_id: Option<String>,
        retry_at: DateTime<Utc>,
    },
}

impl AckOutcome {
    pub fn entity_id(&self) -> u32 {
        match self {
            AckOutcome::Synced { entity_id, .. } | AckOutcome::Failed { entity_id, .. } => {
                *entity_id
            }
        }
    }

    pub fn increment_id(&self) -> Option<&str> {
        match self {
            AckOutcome::Synced { increment_id, .. } | AckOutcome::Failed { increment_id, .. } => {
                increment_id.as_deref()
            }
        }
    }
}

/// The row an ack names, locked for the update.
#[derive(FromRow)]
struct AckedRow {
    entity_id: u32,
    consumer: String,
    seq: u16,
    increment_id: Option<String>,
    store_id: Option<u16>,
    message_id: String,
    #[mysql(deserialize_with = "state_value")]
    state: State,
    attempts: u32,
}

#[derive(FromRow)]
struct PlacedRow {
    entity_id: u32,
    #[mysql(
        deserialize_with = "opt_utc_value",
        serialize_with = "opt_utc_to_value"
    )]
    placed_at: Option<DateTime<Utc>>,
}

impl Ledger {
    /// Applies one ack to the one row it names, or says why it cannot.
    pub async fn apply_ack(
        &self,
        ack: &Ack,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Result<AckOutcome, AckRejection>, LedgerError> {
        Ok(self
            .apply_acks(&[ack], now, policy)
            .await?
            .pop()
            .expect("one result per ack"))
    }

    /// Applies a batch of acks in one transaction, each to the one row it
    /// names. Results are in input order; an ack for a row an earlier ack in
    /// the batch already synced is a duplicate, as it would be one at a time.
    ///
    /// Set-based, because a draining backlog brings acks by the hundred: one
    /// locking read for every row named by message id, the decisions in
    /// memory (in input order, each seeing what the ones before it did), then
    /// one update for the rows that became synced and one for those that
    /// failed. Only acks naming an order by its ids alone (or a message id
    /// this consumer has no row for) are looked up one by one.
    pub async fn apply_acks(
        &self,
        acks: &[&Ack],
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Vec<Result<AckOutcome, AckRejection>>, LedgerError> {
        if acks.is_empty() {
            return Ok(vec![]);
        }
        transaction!(self, TxOpts::default(), |tx| {
            let mut batch = Batch::lock_named(&mut tx, acks).await?;
            let mut results = Vec::with_capacity(acks.len());
            let mut synced = SyncedDelta::default();
            for ack in acks {
                let result = match batch.row_for(&mut tx, ack).await? {
                    None => Err(AckRejection::UnknownOrder),
                    Some(row) => row.take(ack, now, policy),
                };
                if let Ok(AckOutcome::Synced { .. }) = result {
                    synced.add(&ack.consumer, 1);
                }
                results.push(result);
            }
            batch.write(&mut tx, now).await?;
            synced.apply(&mut tx).await?;
            results
        })
    }

    /// When each order was placed in Magento (for the placed → synced histogram).
    pub async fn placed_at(
        &self,
        entity_ids: &[u32],
    ) -> Result<HashMap<u32, DateTime<Utc>>, LedgerError> {
        if entity_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<PlacedRow> = exec_sized(
            &mut conn,
            format!(
                "SELECT entity_id, placed_at FROM order_sync_orders WHERE entity_id IN ({})",
                marks(entity_ids.len())
            ),
            id_params(entity_ids),
        )
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.entity_id, r.placed_at?)))
            .collect())
    }
}

/// The rows a batch of acks names, locked, each with what the batch has done
/// to it so far.
#[derive(Default)]
struct Batch {
    rows: Vec<Named>,
    /// Row index by message id.
    by_message: HashMap<String, usize>,
    /// Row index by (entity_id, consumer, seq).
    by_key: HashMap<(u32, String, u16), usize>,
}

/// One locked row and the change this batch makes to it.
struct Named {
    row: AckedRow,
    change: Option<Change>,
}

/// What an applied ack leaves on its row; one row gets one update however
/// many acks of the batch named it (the last decides its state, the remote
/// ids given along the way are kept as they would be one at a time).
#[derive(Clone, Default)]
struct Change {
    /// `Some` for failed: when to deliver again.
    retry_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    remote_id: Option<String>,
    remote_url: Option<String>,
}

/// Most rows one statement names (seven parameters each in an update, far
/// inside the protocol's 65,535).
const ROWS_PER_UPDATE: usize = 1000;

const SELECT_NAMED: &str = "SELECT entity_id, consumer, seq, increment_id, store_id, message_id, \
                            state, attempts FROM order_sync_deliveries";

impl Batch {
    /// Locks every row the batch names by message id, in one statement.
    async fn lock_named(
        tx: &mut mysql_async::Transaction<'_>,
        acks: &[&Ack],
    ) -> Result<Self, LedgerError> {
        let mut batch = Batch::default();
        let mut ids: Vec<&str> = acks
            .iter()
            .filter_map(|a| a.message_id.as_deref())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(ROWS_PER_UPDATE) {
            let rows: Vec<AckedRow> = exec_sized(
                tx,
                format!(
                    "{SELECT_NAMED} WHERE message_id IN ({}) FOR UPDATE",
                    marks(chunk.len())
                ),
                chunk.iter().map(|id| Value::from(*id)).collect(),
            )
            .await?;
            for row in rows {
                batch.insert(row);
            }
        }
        Ok(batch)
    }

    fn insert(&mut self, row: AckedRow) -> usize {
        let key = (row.entity_id, row.consumer.clone(), row.seq);
        if let Some(&i) = self.by_key.get(&key) {
            return i;
        }
        let i = self.rows.len();
        self.by_message.insert(row.message_id.clone(), i);
        self.by_key.insert(key, i);
        self.rows.push(Named { row, change: None });
        i
    }

    /// The row an ack names, as this batch has left it: by message id among
    /// the locked rows, else looked up (and locked) by the order's ids.
    async fn row_for(
        &mut self,
        tx: &mut mysql_async::Transaction<'_>,
        ack: &Ack,
    ) -> Result<Option<&mut Named>, LedgerError> {
        let by_message = ack
            .message_id
            .as_ref()
            .and_then(|m| self.by_message.get(m).copied())
            .filter(|&i| self.rows[i].row.consumer == ack.consumer);
        let i = match by_message {
            Some(i) => i,
            None => match lookup_by_order(tx, ack).await? {
                Some(row) => self.insert(row),
                None => return Ok(None),
            },
        };
        Ok(Some(&mut self.rows[i]))
    }

    /// The batch's updates: one statement for the rows it synced, one for
    /// those it failed (each chunked at [`ROWS_PER_UPDATE`]).
    async fn write(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let (synced, failed): (Vec<_>, Vec<_>) = self
            .rows
            .iter()
            .filter_map(|n| Some((&n.row, n.change.as_ref()?)))
            .partition(|(_, c)| c.retry_at.is_none());
        for chunk in synced.chunks(ROWS_PER_UPDATE) {
            let mut params = changed_rows(chunk);
            params.extend([naive(now).into(), naive(now).into()]);
            exec_sized_drop(
                tx,
                format!(
                    "UPDATE order_sync_deliveries d JOIN ({}) v \
                     ON d.entity_id = v.entity_id AND d.consumer = v.consumer AND d.seq = v.seq \
                     SET d.state = '{Synced}', d.synced_at = ?, d.next_attempt_at = NULL, \
                     d.updated_at = ?, d.last_error = COALESCE(v.x, d.last_error), \
                     d.remote_id = COALESCE(v.remote_id, d.remote_id), \
                     d.remote_url = COALESCE(v.remote_url, d.remote_url)",
                    changed_rows_table(chunk.len())
                ),
                params,
            )
            .await?;
        }
        for chunk in failed.chunks(ROWS_PER_UPDATE) {
            let mut params = changed_rows(chunk);
            params.push(naive(now).into());
            exec_sized_drop(
                tx,
                format!(
                    "UPDATE order_sync_deliveries d JOIN ({}) v \
                     ON d.entity_id = v.entity_id AND d.consumer = v.consumer AND d.seq = v.seq \
                     SET d.state = '{Failed}', d.last_error = v.last_error, \
                     d.next_attempt_at = v.x, d.updated_at = ?, \
                     d.remote_id = COALESCE(v.remote_id, d.remote_id), \
                     d.remote_url = COALESCE(v.remote_url, d.remote_url)",
                    changed_rows_table(chunk.len())
                ),
                params,
            )
            .await?;
        }
        Ok(())
    }
}

/// A derived table of `n` changed rows: (entity_id, consumer, seq,
/// last_error, x, remote_id, remote_url), where `x` is the retry time of a
/// failed row and the error an earlier ack of the batch left on a synced one.
fn changed_rows_table(n: usize) -> String {
    let mut sql = String::from(
        "SELECT ? AS entity_id, ? AS consumer, ? AS seq, ? AS last_error, ? AS x, \
         ? AS remote_id, ? AS remote_url",
    );
    for _ in 1..n {
        sql.push_str(" UNION ALL SELECT ?, ?, ?, ?, ?, ?, ?");
    }
    sql
}

fn changed_rows(rows: &[(&AckedRow, &Change)]) -> Vec<Value> {
    let mut params = Vec::with_capacity(rows.len() * 7 + 2);
    for (row, change) in rows {
        let (last_error, x): (Value, Value) = match change.retry_at {
            Some(at) => (change.last_error.clone().into(), naive(at).into()),
            None => (Value::NULL, change.last_error.clone().into()),
        };
        params.extend([
            row.entity_id.into(),
            row.consumer.clone().into(),
            row.seq.into(),
            last_error,
            x,
            change.remote_id.clone().into(),
            change.remote_url.clone().into(),
        ]);
    }
    params
}

/// The row an ack names by the order's ids (what acks named before later
/// events existed: the order's placement), locked for the update.
async fn lookup_by_order(
    tx: &mut mysql_async::Transaction<'_>,
    ack: &Ack,
) -> Result<Option<AckedRow>, LedgerError> {
    let row: Option<mysql_async::Row> = if let Some(id) = ack.entity_id {
        tx.exec_first(
            format!("{SELECT_NAMED} WHERE entity_id = ? AND consumer = ? AND seq = 0 FOR UPDATE"),
            (id, ack.consumer.as_str()),
        )
        .await?
    } else if let (Some(inc), Some(store)) = (&ack.increment_id, ack.store_id) {
        tx.exec_first(
            format!(
                "{SELECT_NAMED} WHERE increment_id = ? AND store_id = ? AND consumer = ? \
                 AND seq = 0 FOR UPDATE"
            ),
            (inc.as_str(), store, ack.consumer.as_str()),
        )
        .await?
    } else {
        None
    };
    row.map(from_row).transpose()
}

impl Named {
    /// Decides one ack against the row as the batch has left it, and records
    /// its change; rejections change nothing.
    fn take(
        &mut self,
        ack: &Ack,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<AckOutcome, AckRejection> {
        let row = &self.row;
        if let Some(given) = &ack.message_id {
            if given != &row.message_id {
                return Err(AckRejection::MessageIdMismatch {
                    given: truncate(given, 200),
                });
            }
        }
        // Found by entity_id: an increment_id or store_id given as well must be
        // this order's, or the ack means two orders and settles neither.
        let entity_differs = ack.entity_id.is_some_and(|e| e != row.entity_id);
        let increment_differs = ack
            .increment_id
            .as_ref()
            .is_some_and(|inc| row.increment_id.as_ref() != Some(inc));
        let store_differs = ack.store_id.is_some_and(|s| row.store_id != Some(s));
        if entity_differs || increment_differs || store_differs {
            return Err(AckRejection::ConflictingIds(row.entity_id));
        }
        let (entity_id, increment_id) = (row.entity_id, row.increment_id.clone());
        let mut change = self.change.clone().unwrap_or_default();
        if ack.remote_id.is_some() {
            change.remote_id.clone_from(&ack.remote_id);
        }
        if ack.remote_url.is_some() {
            change.remote_url.clone_from(&ack.remote_url);
        }
        let outcome = match (ack.status, row.state) {
            (AckStatus::Synced, State::Synced) => return Err(AckRejection::Duplicate),
            // Never sent: nothing a consumer has can be acked.
            (_, State::Held | State::Skipped) => {
                return Err(AckRejection::Late(row.state.as_str().to_owned()))
            }
            // A synced ack for a parked row is good news: the service got
            // there in the end, so it is taken.
            (AckStatus::Synced, _) => {
                change.retry_at = None;
                self.row.state = State::Synced;
                AckOutcome::Synced {
                    entity_id,
                    increment_id,
                }
            }
            (AckStatus::Failed, State::Synced | State::Parked) => {
                return Err(AckRejection::Late(row.state.as_str().to_owned()))
            }
            (AckStatus::Failed, _) => {
                let retry_at = after(now, policy.delay_after(row.attempts.max(1)));
                change.retry_at = Some(retry_at);
                change.last_error = Some(
                    ack.error
                        .as_deref()
                        .map(|e| truncate(e, 2000))
                        .unwrap_or_else(|| "failed (no error text given)".into()),
                );
                self.row.state = State::Failed;
                AckOutcome::Failed {
                    entity_id,
                    increment_id,
                    retry_at,
                }
            }
        };
        self.change = Some(change);
        Ok(outcome)
    }
}
