//! Where capture is: the highest entity_id read per source, the ids below it
//! not seen yet (gaps, see `roles::capture`), and the named lock that makes one
//! instance the capturing one.

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, TxOpts, Value};

use super::{from_rows, marks, naive, transaction, utc_value, Ledger, LedgerError};

/// Capture's saved position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturePosition {
    pub last_entity_id: u32,
    /// Open gaps: (entity_id, first seen).
    pub gaps: Vec<(u32, DateTime<Utc>)>,
}

#[derive(FromRow)]
struct GapRow {
    entity_id: u32,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    first_seen_at: DateTime<Utc>,
}

/// A document kind's position as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    At(CapturePosition),
    /// Not resolved yet: starts at the first document created at or after
    /// `since` ([`Ledger::mark_document_start`]).
    Pending {
        since: NaiveDateTime,
    },
}

/// A place in the server's binary log: the file and the offset of the next event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
}

impl BinlogPosition {
    /// The position as one number that grows along the log, across its
    /// files (`<file number> << 32 | offset`; a binlog file is at most
    /// 4 GiB), or `None` for a file name without a number.
    pub fn ordinal(&self) -> Option<u64> {
        let number: u32 = self.file.rsplit_once('.')?.1.parse().ok()?;
        let pos = u32::try_from(self.pos).ok()?;
        Some(u64::from(number) << 32 | u64::from(pos))
    }
}

impl std::fmt::Display for BinlogPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.pos)
    }
}

/// A MariaDB named lock on a connection of its own: held by the one instance
/// that captures for a shop, and by a backfill run for its consumer. The
/// server frees it when that connection ends, so a crashed or cut-off holder
/// gives way at once, without a lease to wait out.
pub struct NamedLock {
    conn: mysql_async::Conn,
    name: String,
}

impl NamedLock {
    /// True while this connection still holds the lock. Checked before every
    /// poll: a holder whose connection was killed must stop capturing.
    pub async fn still_held(&mut self) -> bool {
        let r: Result<Option<Option<i64>>, _> = self
            .conn
            .exec_first(
                "SELECT IS_USED_LOCK(?) = CONNECTION_ID()",
                (self.name.as_str(),),
            )
            .await;
        matches!(r, Ok(Some(Some(1))))
    }

    pub async fn release(mut self) {
        let _ = self
            .conn
            .exec_drop("SELECT RELEASE_LOCK(?)", (self.name.as_str(),))
            .await;
        let _ = self.conn.disconnect().await;
    }
}

/// A server-wide lock name for `key` (a shop's capture, a backfill's consumer)
/// in one database; MariaDB caps names at 64 characters.
fn lock_name(database: &str, source: &str) -> String {
    let name = format!("order_sync:{database}:{source}");
    if name.len() <= 64 {
        return name;
    }
    // Long names: keep them distinct with a hash of the whole.
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    format!("order_sync:{:016x}", h.finish())
}

impl Ledger {
    /// Tries to become the one capturing instance for `source` (non-blocking).
    pub async fn try_capture_lock(&self, source: &str) -> Result<Option<NamedLock>, LedgerError> {
        self.try_named_lock(source).await
    }

    /// Tries to take the lock `key` names in this ledger's database (non-blocking).
    pub(super) async fn try_named_lock(&self, key: &str) -> Result<Option<NamedLock>, LedgerError> {
        // A connection of its own, never pooled: the lock lives and dies with it.
        let mut conn = mysql_async::Conn::new(self.opts.clone()).await?;
        let database: Option<String> = conn.query_first("SELECT DATABASE()").await?.flatten();
        let name = lock_name(database.as_deref().unwrap_or(""), key);
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, 0)", (name.as_str(),))
            .await?;
        if got.flatten() == Some(1) {
            Ok(Some(NamedLock { conn, name }))
        } else {
            let _ = conn.disconnect().await;
            Ok(None)
        }
    }

    /// Whether no connection holds the lock `key` names, asked without
    /// taking it (on a pooled connection).
    pub(super) async fn named_lock_free(&self, key: &str) -> Result<bool, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let database: Option<String> = conn.query_first("SELECT DATABASE()").await?.flatten();
        let name = lock_name(database.as_deref().unwrap_or(""), key);
        let free: Option<Option<i64>> = conn
            .exec_first("SELECT IS_FREE_LOCK(?)", (name.as_str(),))
            .await?;
        Ok(free.flatten() == Some(1))
    }

    /// The sources (shop names) the ledger holds a capture position for.
    pub async fn capture_sources(&self) -> Result<Vec<String>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        from_rows(
            conn.query("SELECT source FROM order_sync_capture_position ORDER BY source")
                .await?,
        )
    }

    pub async fn capture_position(
        &self,
        source: &str,
    ) -> Result<Option<CapturePosition>, LedgerError> {
        Ok(match self.document_position(source).await? {
            Some(Start::At(p)) => Some(p),
            // Only document kinds have pending starts; read as "not started".
            Some(Start::Pending { .. }) | None => None,
        })
    }

    /// A document kind's position: where it is, or (not resolved yet) from
    /// when it starts.
    pub async fn document_position(&self, source: &str) -> Result<Option<Start>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<(u32, Option<NaiveDateTime>)> = conn
            .exec_first(
                "SELECT last_entity_id, starts_at FROM order_sync_capture_position WHERE source = ?",
                (source,),
            )
            .await?;
        let last_entity_id = match row {
            None => return Ok(None),
            Some((_, Some(since))) => return Ok(Some(Start::Pending { since })),
            Some((last, None)) => last,
        };
        let gaps: Vec<GapRow> = from_rows(
            conn.exec(
                "SELECT entity_id, first_seen_at FROM order_sync_capture_gaps \
                 WHERE source = ? ORDER BY entity_id",
                (source,),
            )
            .await?,
        )?;
        Ok(Some(Start::At(CapturePosition {
            last_entity_id,
            gaps: gaps
                .into_iter()
                .map(|g| (g.entity_id, g.first_seen_at))
                .collect(),
        })))
    }

    /// Records that a document kind's position starts at the first document
    /// created at or after `since`, before anything is read from Magento: a
    /// first scan that fails (a refused table, Magento down) then loses none
    /// of the documents committed meanwhile. Does nothing to a position that
    /// exists.
    pub async fn mark_document_start(
        &self,
        source: &str,
        since: NaiveDateTime,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "INSERT IGNORE INTO order_sync_capture_position \
             (source, last_entity_id, updated_at, starts_at) VALUES (?, 0, ?, ?)",
            (source, naive(now), since),
        )
        .await?;
        Ok(())
    }

    /// Resolves a pending start to the id after which documents are read.
    pub async fn resolve_document_start(
        &self,
        source: &str,
        after: u32,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_capture_position SET last_entity_id = ?, starts_at = NULL, \
             updated_at = ? WHERE source = ? AND starts_at IS NOT NULL",
            (after, naive(now), source),
        )
        .await?;
        Ok(())
    }

    /// Where binlog capture of `source` had got to, if it has followed the binlog.
    pub async fn binlog_position(
        &self,
        source: &str,
    ) -> Result<Option<BinlogPosition>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<(Option<String>, Option<u64>)> = conn
            .exec_first(
                "SELECT binlog_file, binlog_pos FROM order_sync_capture_position WHERE source = ?",
                (source,),
            )
            .await?;
        Ok(match row {
            Some((Some(file), Some(pos))) => Some(BinlogPosition { file, pos }),
            _ => None,
        })
    }

    /// Saves (or, with `None`, forgets) where binlog capture has got to. Only
    /// after the orders of every commit before it were captured: a restart
    /// from here misses nothing the binlog announced.
    pub async fn save_binlog_position(
        &self,
        source: &str,
        at: Option<&BinlogPosition>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_capture_position SET binlog_file = ?, binlog_pos = ? WHERE source = ?",
            (at.map(|p| p.file.as_str()), at.map(|p| p.pos), source),
        )
        .await?;
        Ok(())
    }

    /// Saves capture's progress in one transaction: the new position, gaps
    /// opened below it, and gaps closed (captured) or given up.
    pub async fn save_capture_position(
        &self,
        source: &str,
        last_entity_id: u32,
        opened: &[u32],
        closed: &[u32],
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        transaction!(self, TxOpts::default(), |tx| {
            tx.exec_drop(
                "INSERT INTO order_sync_capture_position (source, last_entity_id, updated_at) \
                 VALUES (?, ?, ?) \
                 ON DUPLICATE KEY UPDATE last_entity_id = GREATEST(last_entity_id, VALUES(last_entity_id)), \
                 updated_at = VALUES(updated_at)",
                (source, last_entity_id, naive(now)),
            )
            .await?;
            if !opened.is_empty() {
                tx.exec_batch(
                    "INSERT IGNORE INTO order_sync_capture_gaps (source, entity_id, first_seen_at) \
                     VALUES (?, ?, ?)",
                    opened.iter().map(|id| (source, *id, naive(now))),
                )
                .await?;
            }
            for chunk in closed.chunks(1000) {
                let mut params: Vec<Value> = vec![source.into()];
                params.extend(chunk.iter().map(|id| Value::from(*id)));
                tx.exec_drop(
                    format!(
                        "DELETE FROM order_sync_capture_gaps WHERE source = ? AND entity_id IN ({})",
                        marks(chunk.len())
                    ),
                    params,
                )
                .await?;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_mariadb_and_stay_distinct() {
        let a = lock_name(&"x".repeat(60), "shop-a");
        let b = lock_name(&"x".repeat(60), "shop-b");
        assert!(a.len() <= 64 && b.len() <= 64);
        assert_ne!(a, b);
        assert_eq!(lock_name("ledger", "demo"), "order_sync:ledger:demo");
    }
}
