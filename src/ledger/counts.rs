//! Row counts that cost the same at any history size.
//!
//! Counting synced rows is a scan of every row ever synced (seconds at
//! millions of rows), and every scrape, `/api/summary`, status page and
//! `status` asks. So every other state (held, pending, published, failed,
//! parked, and skipped, which only operators and cancelled holds make) is
//! counted where it is (an index on state and consumer: as many entries as
//! the backlog and the skipped rows), and synced rows are counted as they come and go: each
//! write that moves rows into or out of `synced` adjusts
//! `order_sync_synced_counts` in its own transaction, so the count is exactly
//! as committed as the rows. Counters are always the last rows such a
//! transaction locks, in consumer order, so they add no lock cycles.
//!
//! The writers: acks (synced), import (synced rows), resync (synced rows sent
//! again) and retention (synced rows deleted).

use std::collections::BTreeMap;

use mysql_async::{prelude::*, Value};

use super::State::Synced;
use super::{from_rows, state::state_value, Ledger, LedgerError, State};

/// Synced rows gained (or, negative, lost) per consumer in one transaction.
#[derive(Debug, Default)]
pub(super) struct SyncedDelta(BTreeMap<String, i64>);

impl SyncedDelta {
    pub(super) fn add(&mut self, consumer: &str, n: i64) {
        *self.0.entry(consumer.to_owned()).or_default() += n;
    }

    /// Applies the changes in the caller's transaction (one statement).
    pub(super) async fn apply(
        self,
        tx: &mut mysql_async::Transaction<'_>,
    ) -> Result<(), LedgerError> {
        let changes: Vec<(String, i64)> = self.0.into_iter().filter(|(_, n)| *n != 0).collect();
        if changes.is_empty() {
            return Ok(());
        }
        let params: Vec<Value> = changes
            .iter()
            .flat_map(|(c, n)| [Value::from(c.as_str()), Value::from(*n)])
            .collect();
        tx.exec_drop(
            format!(
                "INSERT INTO order_sync_synced_counts (consumer, n) VALUES {} \
                 ON DUPLICATE KEY UPDATE n = n + VALUES(n)",
                vec!["(?, ?)"; changes.len()].join(", ")
            ),
            params,
        )
        .await?;
        Ok(())
    }

    /// The synced rows among those `condition` selects, locked, counted per
    /// consumer as a loss: call before an UPDATE or DELETE takes them out of
    /// `synced`.
    pub(super) async fn losing(
        tx: &mut mysql_async::Transaction<'_>,
        condition: &str,
        params: Vec<Value>,
    ) -> Result<Self, LedgerError> {
        let rows: Vec<(String, i64)> = tx
            .exec(
                format!(
                    "SELECT consumer, COUNT(*) FROM order_sync_deliveries \
                     WHERE ({condition}) AND state = '{Synced}' GROUP BY consumer FOR UPDATE"
                ),
                params,
            )
            .await?;
        let mut d = Self::default();
        for (c, n) in rows {
            d.add(&c, -n);
        }
        Ok(d)
    }
}

/// The states counted where they are: every one but synced.
fn open_states() -> String {
    let open: Vec<State> = State::ALL
        .into_iter()
        .filter(|s| *s != State::Synced)
        .collect();
    State::sql_list(&open)
}

#[derive(FromRow)]
struct CountRow {
    consumer: String,
    #[mysql(deserialize_with = "state_value")]
    state: State,
    n: u64,
}

impl Ledger {
    /// Row counts by (consumer, state), each state listed only when non-zero.
    pub async fn counts(&self) -> Result<Vec<(String, State, u64)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let open: Vec<CountRow> = from_rows(
            conn.query(format!(
                "SELECT consumer, state, COUNT(*) AS n FROM order_sync_deliveries \
                 WHERE state IN ({}) GROUP BY consumer, state",
                open_states()
            ))
            .await?,
        )?;
        let synced: Vec<(String, i64)> = from_rows(
            conn.query("SELECT consumer, n FROM order_sync_synced_counts WHERE n > 0")
                .await?,
        )?;
        let mut all: Vec<(String, State, u64)> = open
            .into_iter()
            .map(|r| (r.consumer, r.state, r.n))
            .chain(
                synced
                    .into_iter()
                    .map(|(c, n)| (c, State::Synced, n as u64)),
            )
            .collect();
        all.sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
        Ok(all)
    }
}

/// `state IN (…)` for every state but synced: what the open-rows index serves.
pub(super) fn unsynced() -> String {
    format!("state IN ({})", open_states())
}

/// How the server runs one operator read (one `EXPLAIN` line per table).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReadPlan {
    pub read: &'static str,
    pub table: Option<String>,
    /// The access type: `range`, `ref`, `index`, `ALL` (a full scan), …
    pub access: Option<String>,
    pub key: Option<String>,
    /// The server's estimate of rows examined.
    pub rows: Option<u64>,
}

impl Ledger {
    /// `EXPLAIN` of every read a scrape, `/api/summary`, the status page,
    /// `status` and a re-delivery round make of the deliveries table, with
    /// representative values: each should use an index and examine about as
    /// many rows as the backlog, whatever the history (BENCHMARKS.md shows them).
    pub async fn explain_operator_reads(&self) -> Result<Vec<ReadPlan>, LedgerError> {
        let reads: [(&'static str, String); 6] = [
            (
                "open counts",
                format!(
                    "SELECT consumer, state, COUNT(*) FROM order_sync_deliveries \
                     WHERE {} GROUP BY consumer, state",
                    unsynced()
                ),
            ),
            (
                "synced counts",
                "SELECT consumer, n FROM order_sync_synced_counts WHERE n > 0".into(),
            ),
            (
                "oldest unsynced",
                format!(
                    "SELECT MIN(captured_at) FROM order_sync_deliveries WHERE {}",
                    unsynced()
                ),
            ),
            (
                "synced per minute",
                format!(
                    "SELECT consumer, COUNT(*) FROM order_sync_deliveries \
                 WHERE state = '{Synced}' AND synced_at >= UTC_TIMESTAMP() - INTERVAL 1 HOUR \
                 GROUP BY consumer"
                ),
            ),
            (
                "re-delivery claim",
                super::deliveries::claim_select(
                    "UTC_TIMESTAMP()",
                    "'erp', 'wms'",
                    "100",
                    false,
                    super::deliveries::Unanswered::Of("'erp'"),
                ),
            ),
            (
                "follow-on claim",
                super::deliveries::claim_select(
                    "UTC_TIMESTAMP()",
                    "'erp', 'wms'",
                    "100",
                    true,
                    super::deliveries::Unanswered::None,
                ),
            ),
        ];
        let mut conn = self.pool.get_conn().await?;
        let mut plans = Vec::new();
        for (read, sql) in reads {
            let rows: Vec<mysql_async::Row> = conn.query(format!("EXPLAIN {sql}")).await?;
            for mut r in rows {
                let text = |r: &mut mysql_async::Row, c: &str| -> Option<String> {
                    r.take::<Option<String>, _>(c).flatten()
                };
                plans.push(ReadPlan {
                    read,
                    table: text(&mut r, "table"),
                    access: text(&mut r, "type"),
                    key: text(&mut r, "key"),
                    rows: text(&mut r, "rows").and_then(|n| n.parse().ok()),
                });
            }
        }
        Ok(plans)
    }
}
