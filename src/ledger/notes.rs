//! Bookkeeping for the Magento write-back: which orders' "synced" and which
//! rows' "parked" comments are written. A comment is taken here before it is
//! written, so it is written at most once (a crash in between loses a
//! comment, never doubles it); a failed write gives it back.

use chrono::{DateTime, Utc};
use mysql_async::prelude::*;

use super::State::{Parked, Synced};
use super::{from_rows, id_params, marks, naive, Ledger, LedgerError};

/// An order synced for every consumer, whose comment is not written yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncedNote {
    pub entity_id: u32,
    /// Each consumer, with the id the order has there if it said one.
    pub consumers: Vec<(String, Option<String>)>,
}

impl SyncedNote {
    /// "Order synced: erp (SO-4711), wms".
    pub fn comment(&self) -> String {
        let each: Vec<String> = self
            .consumers
            .iter()
            .map(|(c, remote)| match remote {
                Some(r) => format!("{c} ({r})"),
                None => c.clone(),
            })
            .collect();
        format!("Order synced: {}", each.join(", "))
    }
}

/// A parked row whose comment is not written yet.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ParkedNote {
    pub entity_id: u32,
    pub consumer: String,
    pub last_error: Option<String>,
}

impl Ledger {
    /// Orders whose placement is synced for every consumer and whose history
    /// comment is not written yet, with their consumers (ordered by name)
    /// and what each said the order became there; at most `limit` orders.
    /// Later events do not count: the comment says the order reached them.
    pub async fn synced_to_note(&self, limit: u32) -> Result<Vec<SyncedNote>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let ids: Vec<u32> = conn
            .exec(
                format!(
                    "SELECT o.entity_id FROM order_sync_orders o \
                 JOIN order_sync_deliveries d ON d.entity_id = o.entity_id AND d.seq = 0 \
                 WHERE o.written_back_at IS NULL \
                 GROUP BY o.entity_id HAVING SUM(d.state <> '{Synced}') = 0 \
                 ORDER BY o.entity_id LIMIT ?"
                ),
                (limit,),
            )
            .await?;
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let rows: Vec<(u32, String, Option<String>)> = from_rows(
            conn.exec(
                format!(
                    "SELECT entity_id, consumer, remote_id FROM order_sync_deliveries \
                     WHERE entity_id IN ({}) AND seq = 0 ORDER BY entity_id, consumer",
                    marks(ids.len())
                ),
                id_params(&ids),
            )
            .await?,
        )?;
        let mut notes: Vec<SyncedNote> = Vec::with_capacity(ids.len());
        for (entity_id, consumer, remote_id) in rows {
            match notes.last_mut() {
                Some(n) if n.entity_id == entity_id => n.consumers.push((consumer, remote_id)),
                _ => notes.push(SyncedNote {
                    entity_id,
                    consumers: vec![(consumer, remote_id)],
                }),
            }
        }
        Ok(notes)
    }

    /// Takes the write-back of an order's "synced" comment; false if another
    /// instance took it first.
    pub async fn take_synced_note(
        &self,
        entity_id: u32,
        now: DateTime<Utc>,
    ) -> Result<bool, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_orders SET written_back_at = ? \
             WHERE entity_id = ? AND written_back_at IS NULL",
            (naive(now), entity_id),
        )
        .await?;
        Ok(conn.affected_rows() == 1)
    }

    /// Gives a taken write-back back (the write failed), to try again later.
    pub async fn untake_synced_note(&self, entity_id: u32) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_orders SET written_back_at = NULL WHERE entity_id = ?",
            (entity_id,),
        )
        .await?;
        Ok(())
    }

    /// Parked rows whose comment is not written yet; at most `limit`.
    pub async fn parked_to_note(&self, limit: u32) -> Result<Vec<ParkedNote>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        from_rows(
            conn.exec(
                format!(
                    "SELECT entity_id, consumer, last_error FROM order_sync_deliveries \
                 WHERE state = '{Parked}' AND noted_at IS NULL ORDER BY entity_id LIMIT ?"
                ),
                (limit,),
            )
            .await?,
        )
    }

    /// Takes (with `now`) or gives back (with `None`) a parked row's comment;
    /// taking returns false if another instance took it first.
    pub async fn take_parked_note(
        &self,
        entity_id: u32,
        consumer: &str,
        now: Option<DateTime<Utc>>,
    ) -> Result<bool, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let sql = if now.is_some() {
            "UPDATE order_sync_deliveries SET noted_at = ? \
             WHERE entity_id = ? AND consumer = ? AND noted_at IS NULL"
        } else {
            "UPDATE order_sync_deliveries SET noted_at = ? WHERE entity_id = ? AND consumer = ?"
        };
        conn.exec_drop(sql, (now.map(naive), entity_id, consumer))
            .await?;
        Ok(conn.affected_rows() == 1)
    }
}
