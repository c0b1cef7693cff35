//! Pauses: a row per paused consumer (`*` for all), in the ledger rather than
//! in a process, so every instance obeys it and it survives restarts.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use mysql_async::prelude::*;

use super::{from_rows, naive, utc_to_value, utc_value, Ledger, LedgerError};

/// The name that pauses every consumer at once.
pub const ALL_CONSUMERS: &str = "*";

/// A pause in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, FromRow)]
pub struct Pause {
    /// A consumer's name, or `*` for all of them.
    pub consumer: String,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    pub paused_at: DateTime<Utc>,
    pub paused_by: String,
    pub reason: Option<String>,
}

impl Ledger {
    /// Pauses publishing to one consumer, or to all with [`ALL_CONSUMERS`].
    /// Capture and the ledger go on; acks are still applied.
    pub async fn pause(
        &self,
        consumer: &str,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "INSERT INTO order_sync_pauses (consumer, paused_at, paused_by, reason) \
             VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE paused_by = VALUES(paused_by), \
             reason = VALUES(reason)",
            (consumer, naive(now), by, reason),
        )
        .await?;
        Ok(())
    }

    /// Lifts one consumer's pause, or every pause (the `*` one included) when
    /// `None`; returns whether there was one.
    pub async fn resume(&self, consumer: Option<&str>) -> Result<bool, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        match consumer {
            Some(c) => {
                conn.exec_drop("DELETE FROM order_sync_pauses WHERE consumer = ?", (c,))
                    .await?
            }
            None => conn.query_drop("DELETE FROM order_sync_pauses").await?,
        }
        Ok(conn.affected_rows() > 0)
    }

    /// Every pause in force, by consumer.
    pub async fn pauses(&self) -> Result<Vec<Pause>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        from_rows(
            conn.query(
                "SELECT consumer, paused_at, paused_by, reason FROM order_sync_pauses \
                 ORDER BY consumer",
            )
            .await?,
        )
    }

    /// Which of `consumers` are paused now.
    pub async fn paused(&self, consumers: &[String]) -> Result<HashSet<String>, LedgerError> {
        let pauses = self.pauses().await?;
        if pauses.iter().any(|p| p.consumer == ALL_CONSUMERS) {
            return Ok(consumers.iter().cloned().collect());
        }
        Ok(pauses
            .into_iter()
            .map(|p| p.consumer)
            .filter(|c| consumers.contains(c))
            .collect())
    }
}
