//! Applying sync services' acknowledgements: each ack changes at most the one
//! row it names, and a batch of acks is one transaction (one commit, so one
//! disk flush, however many acks).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use mysql_async::{prelude::*, TxOpts};

use super::State::{Failed, Synced};
use super::{
    after, counts::SyncedDelta, from_row, from_rows, id_params, marks, naive, opt_utc_value,
    state::state_value, transaction, Ledger, LedgerError, State,
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
            let mut results = Vec::with_capacity(acks.len());
            let mut synced = SyncedDelta::default();
            for ack in acks {
                let result = apply_one(&mut tx, ack, now, policy).await?;
                if let Ok(AckOutcome::Synced { .. }) = result {
                    synced.add(&ack.consumer, 1);
                }
                results.push(result);
            }
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
        let rows: Vec<PlacedRow> = from_rows(
            conn.exec(
                format!(
                    "SELECT entity_id, placed_at FROM order_sync_orders WHERE entity_id IN ({})",
                    marks(entity_ids.len())
                ),
                id_params(entity_ids),
            )
            .await?,
        )?;
        Ok(rows
            .into_iter()
            .filter_map(|r| Some((r.entity_id, r.placed_at?)))
            .collect())
    }
}

/// One ack inside the caller's transaction: finds its row (locking it) and
/// updates it, or says why it cannot. Rejections change nothing.
async fn apply_one(
    tx: &mut mysql_async::Transaction<'_>,
    ack: &Ack,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
) -> Result<Result<AckOutcome, AckRejection>, LedgerError> {
    let select = "SELECT entity_id, seq, increment_id, store_id, message_id, state, attempts \
                  FROM order_sync_deliveries";
    // A message id names any event's row; the order's ids alone name its
    // placement (what acks named before later events existed).
    let mut row: Option<mysql_async::Row> = None;
    if let Some(mid) = &ack.message_id {
        row = tx
            .exec_first(
                format!("{select} WHERE message_id = ? AND consumer = ? FOR UPDATE"),
                (mid.as_str(), ack.consumer.as_str()),
            )
            .await?;
    }
    if row.is_none() {
        row = if let Some(id) = ack.entity_id {
            tx.exec_first(
                format!("{select} WHERE entity_id = ? AND consumer = ? AND seq = 0 FOR UPDATE"),
                (id, ack.consumer.as_str()),
            )
            .await?
        } else if let (Some(inc), Some(store)) = (&ack.increment_id, ack.store_id) {
            tx.exec_first(
                format!(
                    "{select} WHERE increment_id = ? AND store_id = ? AND consumer = ? \
                     AND seq = 0 FOR UPDATE"
                ),
                (inc.as_str(), store, ack.consumer.as_str()),
            )
            .await?
        } else {
            None
        };
    }
    let Some(row) = row.map(from_row::<AckedRow>).transpose()? else {
        return Ok(Err(AckRejection::UnknownOrder));
    };
    if let Some(given) = &ack.message_id {
        if given != &row.message_id {
            return Ok(Err(AckRejection::MessageIdMismatch {
                given: truncate(given, 200),
            }));
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
        return Ok(Err(AckRejection::ConflictingIds(row.entity_id)));
    }
    let AckedRow {
        entity_id,
        seq,
        increment_id,
        state,
        attempts,
        ..
    } = row;
    let outcome = match (ack.status, state) {
        (AckStatus::Synced, State::Synced) => return Ok(Err(AckRejection::Duplicate)),
        // Never sent: nothing a consumer has can be acked.
        (_, State::Held | State::Skipped) => {
            return Ok(Err(AckRejection::Late(state.as_str().to_owned())))
        }
        (AckStatus::Synced, _) => {
            // A synced ack for a parked row is good news: the service got
            // there in the end, so it is taken.
            tx.exec_drop(
                format!(
                    "UPDATE order_sync_deliveries SET state = '{Synced}', synced_at = ?, \
                 next_attempt_at = NULL, updated_at = ?, \
                 remote_id = COALESCE(?, remote_id), remote_url = COALESCE(?, remote_url) \
                 WHERE entity_id = ? AND consumer = ? AND seq = ?"
                ),
                (
                    naive(now),
                    naive(now),
                    ack.remote_id.as_deref(),
                    ack.remote_url.as_deref(),
                    entity_id,
                    ack.consumer.as_str(),
                    seq,
                ),
            )
            .await?;
            AckOutcome::Synced {
                entity_id,
                increment_id,
            }
        }
        (AckStatus::Failed, State::Synced | State::Parked) => {
            return Ok(Err(AckRejection::Late(state.as_str().to_owned())))
        }
        (AckStatus::Failed, _) => {
            let retry_at = after(now, policy.delay_after(attempts.max(1)));
            let error = ack
                .error
                .as_deref()
                .map(|e| truncate(e, 2000))
                .unwrap_or_else(|| "failed (no error text given)".into());
            tx.exec_drop(
                format!(
                    "UPDATE order_sync_deliveries SET state = '{Failed}', last_error = ?, \
                 next_attempt_at = ?, updated_at = ?, \
                 remote_id = COALESCE(?, remote_id), remote_url = COALESCE(?, remote_url) \
                 WHERE entity_id = ? AND consumer = ? AND seq = ?"
                ),
                (
                    error,
                    naive(retry_at),
                    naive(now),
                    ack.remote_id.as_deref(),
                    ack.remote_url.as_deref(),
                    entity_id,
                    ack.consumer.as_str(),
                    seq,
                ),
            )
            .await?;
            AckOutcome::Failed {
                entity_id,
                increment_id,
                retry_at,
            }
        }
    };
    Ok(Ok(outcome))
}
