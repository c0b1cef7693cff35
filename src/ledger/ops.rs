//! What operators do to the ledger: look up orders, pause and resume, re-send,
//! un-park, purge; what HTTP pull consumers do (take pending orders); and what
//! the Magento write-back reads. Each change is one short transaction.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, TxOpts, Value};

use super::{marks, naive, utc, Claimed, Delivery, Ledger, LedgerError, State, DELIVERY_COLUMNS};
use crate::retry::RetryPolicy;

/// The name that pauses every consumer at once.
pub const ALL_CONSUMERS: &str = "*";

/// A pause in force.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pause {
    /// A consumer's name, or `*` for all of them.
    pub consumer: String,
    pub paused_at: DateTime<Utc>,
    pub paused_by: String,
    pub reason: Option<String>,
}

/// Which orders an operator means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    EntityIds(Vec<u32>),
    /// Magento increment ids; in a multi-store shop one may name an order per store.
    IncrementIds(Vec<String>),
    /// Orders placed (Magento `created_at`, UTC) in `[since, until)`.
    Placed {
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    },
}

/// Filters for listing orders; every given one must match.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderFilter {
    /// Orders with a row in this state (for `consumer`, when given).
    pub state: Option<String>,
    pub consumer: Option<String>,
    pub store_id: Option<u16>,
    pub increment_id: Option<String>,
    /// Placed at or after (RFC 3339 or `YYYY-MM-DD`).
    pub placed_from: Option<String>,
    /// Placed before.
    pub placed_to: Option<String>,
    /// Page size (default 50, at most 500).
    pub limit: Option<u32>,
    /// Keyset pagination: only orders with a smaller entity_id (the last page's `next`).
    pub before: Option<u32>,
}

/// One order with its rows, as the API and the status page show it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderView {
    pub entity_id: u32,
    pub increment_id: Option<String>,
    pub store_id: Option<u16>,
    pub placed_at: Option<DateTime<Utc>>,
    pub captured_at: DateTime<Utc>,
    pub deliveries: Vec<Delivery>,
}

impl OrderView {
    pub fn parked(&self) -> bool {
        self.deliveries.iter().any(|d| d.state == State::Parked)
    }
}

/// A page of orders and where the next one starts.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OrderPage {
    pub orders: Vec<OrderView>,
    /// Pass as `before` for the next page; absent on the last.
    pub next: Option<u32>,
}

/// A filter value that is not one.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FilterError {
    pub field: &'static str,
    pub message: String,
}

/// Parses `2026-11-27`, `2026-11-27T10:00:00Z` or `2026-11-27 10:00:00` (UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// entity_id, increment_id, store_id, placed_at, captured_at.
type OrderRow = (
    u32,
    Option<String>,
    Option<u16>,
    Option<NaiveDateTime>,
    NaiveDateTime,
);

/// An [`OrderRow`] and the order JSON.
type StoredOrder = (
    u32,
    Option<String>,
    Option<u16>,
    Option<NaiveDateTime>,
    NaiveDateTime,
    String,
);

const STATES: [&str; 5] = ["pending", "published", "synced", "failed", "parked"];

impl Ledger {
    // ---- pause ---------------------------------------------------------------

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

    pub async fn pauses(&self) -> Result<Vec<Pause>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, NaiveDateTime, String, Option<String>)> = conn
            .query(
                "SELECT consumer, paused_at, paused_by, reason FROM order_sync_pauses \
                 ORDER BY consumer",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(consumer, at, by, reason)| Pause {
                consumer,
                paused_at: utc(at),
                paused_by: by,
                reason,
            })
            .collect())
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

    /// Makes rows due now that were reserved for publishing but will not be
    /// published by their taker (paused, or pulled over HTTP).
    pub async fn release(&self, rows: &[&Claimed], now: DateTime<Utc>) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        tx.exec_batch(
            "UPDATE order_sync_deliveries SET next_attempt_at = ? \
             WHERE entity_id = ? AND consumer = ? AND state = 'pending'",
            rows.iter()
                .map(|r| (naive(now), r.entity_id, r.consumer.as_str())),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- finding orders ------------------------------------------------------

    /// The entity_ids an operator's selection names, in ascending order, from
    /// `after` on, at most `limit` (for doing large ranges in steps).
    pub async fn select_orders(
        &self,
        selection: &Selection,
        after_id: u32,
        limit: u32,
    ) -> Result<Vec<u32>, LedgerError> {
        let Some((condition, mut params)) = selection_filter(selection) else {
            return Ok(vec![]);
        };
        let mut conn = self.pool.get_conn().await?;
        params.push(after_id.into());
        params.push(limit.into());
        Ok(conn
            .exec(
                format!(
                    "SELECT entity_id FROM order_sync_orders WHERE {condition} \
                     AND entity_id > ? ORDER BY entity_id LIMIT ?"
                ),
                params,
            )
            .await?)
    }

    /// How many orders a selection names.
    pub async fn count_orders(&self, selection: &Selection) -> Result<u64, LedgerError> {
        let Some((condition, params)) = selection_filter(selection) else {
            return Ok(0);
        };
        let mut conn = self.pool.get_conn().await?;
        Ok(conn
            .exec_first(
                format!("SELECT COUNT(*) FROM order_sync_orders WHERE {condition}"),
                params,
            )
            .await?
            .unwrap_or(0))
    }

    /// Orders matching a filter, newest first, one page.
    pub async fn list_orders(&self, filter: &OrderFilter) -> Result<OrderPage, ListError> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut params: Vec<Value> = vec![];
        if filter.state.is_some() || filter.consumer.is_some() {
            let mut sub = "EXISTS (SELECT 1 FROM order_sync_deliveries d \
                 WHERE d.entity_id = o.entity_id"
                .to_owned();
            if let Some(state) = &filter.state {
                if !STATES.contains(&state.as_str()) {
                    return Err(ListError::Filter(FilterError {
                        field: "state",
                        message: format!("`{state}` is not one of {}", STATES.join(", ")),
                    }));
                }
                sub.push_str(" AND d.state = ?");
                params.push(state.as_str().into());
            }
            if let Some(consumer) = &filter.consumer {
                sub.push_str(" AND d.consumer = ?");
                params.push(consumer.as_str().into());
            }
            sub.push(')');
            conditions.push(sub);
        }
        if let Some(store) = filter.store_id {
            conditions.push("o.store_id = ?".into());
            params.push(store.into());
        }
        if let Some(inc) = &filter.increment_id {
            conditions.push("o.increment_id = ?".into());
            params.push(inc.as_str().into());
        }
        for (field, value, op) in [
            ("placed_from", &filter.placed_from, ">="),
            ("placed_to", &filter.placed_to, "<"),
        ] {
            if let Some(v) = value {
                let t = parse_time(v).ok_or_else(|| {
                    ListError::Filter(FilterError {
                        field,
                        message: format!(
                            "`{v}` is not a date like 2026-11-27 or 2026-11-27T10:00:00Z"
                        ),
                    })
                })?;
                conditions.push(format!("o.placed_at {op} ?"));
                params.push(naive(t).into());
            }
        }
        if let Some(before) = filter.before {
            conditions.push("o.entity_id < ?".into());
            params.push(before.into());
        }
        params.push((limit + 1).into());
        let mut conn = self.pool.get_conn().await?;
        let mut rows: Vec<OrderRow> = conn
            .exec(
                format!(
                    "SELECT o.entity_id, o.increment_id, o.store_id, o.placed_at, o.captured_at \
                     FROM order_sync_orders o WHERE {} ORDER BY o.entity_id DESC LIMIT ?",
                    conditions.join(" AND ")
                ),
                params,
            )
            .await?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.0)
        } else {
            None
        };
        let ids: Vec<u32> = rows.iter().map(|r| r.0).collect();
        let mut by_order = self.deliveries_of(&mut conn, &ids).await?;
        Ok(OrderPage {
            orders: rows
                .into_iter()
                .map(
                    |(entity_id, increment_id, store_id, placed, captured)| OrderView {
                        entity_id,
                        increment_id,
                        store_id,
                        placed_at: placed.map(utc),
                        captured_at: utc(captured),
                        deliveries: by_order.remove(&entity_id).unwrap_or_default(),
                    },
                )
                .collect(),
            next,
        })
    }

    async fn deliveries_of(
        &self,
        conn: &mut mysql_async::Conn,
        ids: &[u32],
    ) -> Result<HashMap<u32, Vec<Delivery>>, LedgerError> {
        let mut out: HashMap<u32, Vec<Delivery>> = HashMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let rows: Vec<mysql_async::Row> = conn
            .exec(
                format!(
                    "SELECT {DELIVERY_COLUMNS} FROM order_sync_deliveries \
                     WHERE entity_id IN ({}) ORDER BY entity_id, consumer",
                    marks(ids.len())
                ),
                ids.iter().map(|i| Value::from(*i)).collect::<Vec<_>>(),
            )
            .await?;
        for d in rows.into_iter().map(super::delivery_from_row) {
            out.entry(d.entity_id).or_default().push(d);
        }
        Ok(out)
    }

    /// One order with its rows and the order JSON as captured.
    pub async fn order(&self, entity_id: u32) -> Result<Option<(OrderView, String)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<StoredOrder> = conn
            .exec_first(
                "SELECT entity_id, increment_id, store_id, placed_at, captured_at, message \
                 FROM order_sync_orders WHERE entity_id = ?",
                (entity_id,),
            )
            .await?;
        let Some((_, increment_id, store_id, placed, captured, message)) = row else {
            return Ok(None);
        };
        let deliveries = self
            .deliveries_of(&mut conn, &[entity_id])
            .await?
            .remove(&entity_id)
            .unwrap_or_default();
        Ok(Some((
            OrderView {
                entity_id,
                increment_id,
                store_id,
                placed_at: placed.map(utc),
                captured_at: utc(captured),
                deliveries,
            },
            message,
        )))
    }

    // ---- re-sending ----------------------------------------------------------

    /// Sends orders again: their rows (all consumers', or one's) become pending
    /// with fresh attempts, due now, under a new message_id
    /// (`<source>:<entity_id>:<consumer>:r<n>`), so a consumer that
    /// de-duplicates on message_id takes the re-send. Returns rows changed.
    pub async fn resync(
        &self,
        entity_ids: &[u32],
        consumer: Option<&str>,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        if entity_ids.is_empty() {
            return Ok(0);
        }
        let mut params: Vec<Value> = vec![source.into(), naive(now).into(), naive(now).into()];
        params.extend(entity_ids.iter().map(|i| Value::from(*i)));
        let mut sql = format!(
            // SET clauses apply left to right: message_id sees the new resyncs.
            "UPDATE order_sync_deliveries SET resyncs = resyncs + 1, \
             message_id = CONCAT(?, ':', entity_id, ':', consumer, ':r', resyncs), \
             state = 'pending', attempts = 0, next_attempt_at = ?, synced_at = NULL, \
             last_error = NULL, noted_at = NULL, updated_at = ? \
             WHERE entity_id IN ({})",
            marks(entity_ids.len())
        );
        if let Some(c) = consumer {
            sql.push_str(" AND consumer = ?");
            params.push(c.into());
        }
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(sql, params).await?;
        Ok(conn.affected_rows())
    }

    /// Gives parked rows their deliveries back: pending, due now, attempts from
    /// zero, same message_id (it is the same request, not a new one). Without
    /// ids, every parked row (of `consumer`, when given). Returns rows changed.
    pub async fn unpark(
        &self,
        entity_ids: Option<&[u32]>,
        consumer: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        let mut sql = "UPDATE order_sync_deliveries SET state = 'pending', attempts = 0, \
             next_attempt_at = ?, noted_at = NULL, updated_at = ? WHERE state = 'parked'"
            .to_owned();
        let mut params: Vec<Value> = vec![naive(now).into(), naive(now).into()];
        if let Some(ids) = entity_ids {
            if ids.is_empty() {
                return Ok(0);
            }
            sql.push_str(&format!(" AND entity_id IN ({})", marks(ids.len())));
            params.extend(ids.iter().map(|i| Value::from(*i)));
        }
        if let Some(c) = consumer {
            sql.push_str(" AND consumer = ?");
            params.push(c.into());
        }
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(sql, params).await?;
        Ok(conn.affected_rows())
    }

    // ---- retention -----------------------------------------------------------

    /// Deletes orders synced for every consumer before `cutoff`, with their
    /// rows, in batches; never an order with a row in any other state. Returns
    /// orders deleted.
    pub async fn purge_synced_before(&self, cutoff: DateTime<Utc>) -> Result<u64, LedgerError> {
        let mut total = 0;
        loop {
            let mut conn = self.pool.get_conn().await?;
            let ids: Vec<u32> = conn
                .exec(
                    "SELECT o.entity_id FROM order_sync_orders o \
                     WHERE o.captured_at < ? AND NOT EXISTS (\
                       SELECT 1 FROM order_sync_deliveries d WHERE d.entity_id = o.entity_id \
                       AND (d.state <> 'synced' OR d.synced_at >= ?)) \
                     ORDER BY o.entity_id LIMIT 1000",
                    (naive(cutoff), naive(cutoff)),
                )
                .await?;
            if ids.is_empty() {
                return Ok(total);
            }
            let mut tx = conn.start_transaction(TxOpts::default()).await?;
            let params: Vec<Value> = ids.iter().map(|i| Value::from(*i)).collect();
            // Re-checked under lock: a row re-sent since the read above stays.
            let keep: Vec<u32> = tx
                .exec(
                    format!(
                        "SELECT DISTINCT entity_id FROM order_sync_deliveries \
                         WHERE entity_id IN ({}) AND (state <> 'synced' OR synced_at >= ?) \
                         FOR UPDATE",
                        marks(ids.len())
                    ),
                    params
                        .iter()
                        .cloned()
                        .chain([naive(cutoff).into()])
                        .collect::<Vec<_>>(),
                )
                .await?;
            let gone: Vec<Value> = ids
                .iter()
                .filter(|i| !keep.contains(i))
                .map(|i| Value::from(*i))
                .collect();
            if !gone.is_empty() {
                for table in ["order_sync_deliveries", "order_sync_orders"] {
                    tx.exec_drop(
                        format!(
                            "DELETE FROM {table} WHERE entity_id IN ({})",
                            marks(gone.len())
                        ),
                        gone.clone(),
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            total += gone.len() as u64;
            if ids.len() < 1000 {
                return Ok(total);
            }
        }
    }

    // ---- pull over HTTP ------------------------------------------------------

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
                now,
                limit,
                policy.max_attempts,
                std::time::Duration::from_secs(60),
            )
            .await?;
        let rows: Vec<&Claimed> = round.to_publish.iter().collect();
        self.mark_published(&rows, now, policy).await?;
        Ok(round.to_publish)
    }

    // ---- Magento write-back --------------------------------------------------

    /// Orders synced for every consumer whose history comment is not written
    /// yet, with their consumers; at most `limit`.
    pub async fn synced_to_note(&self, limit: u32) -> Result<Vec<(u32, Vec<String>)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(u32, String)> = conn
            .exec(
                "SELECT o.entity_id, GROUP_CONCAT(d.consumer ORDER BY d.consumer SEPARATOR ',') \
                 FROM order_sync_orders o JOIN order_sync_deliveries d ON d.entity_id = o.entity_id \
                 WHERE o.written_back_at IS NULL \
                 GROUP BY o.entity_id HAVING SUM(d.state <> 'synced') = 0 \
                 ORDER BY o.entity_id LIMIT ?",
                (limit,),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, c)| (id, c.split(',').map(str::to_owned).collect()))
            .collect())
    }

    /// Takes the write-back of an order's "synced" comment; false if another
    /// instance took it first. Taken before writing, so a comment is written at
    /// most once (a crash in between loses a comment, never doubles it).
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

    /// Parked rows whose comment is not written yet: (entity_id, consumer, error).
    pub async fn parked_to_note(
        &self,
        limit: u32,
    ) -> Result<Vec<(u32, String, Option<String>)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        Ok(conn
            .exec(
                "SELECT entity_id, consumer, last_error FROM order_sync_deliveries \
                 WHERE state = 'parked' AND noted_at IS NULL ORDER BY entity_id LIMIT ?",
                (limit,),
            )
            .await?)
    }

    /// Takes (or, with `taken = false`, gives back) a parked row's comment.
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

    /// When each order was placed in Magento (for the placed → synced histogram).
    pub async fn placed_at(
        &self,
        entity_ids: &[u32],
    ) -> Result<HashMap<u32, DateTime<Utc>>, LedgerError> {
        if entity_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(u32, Option<NaiveDateTime>)> = conn
            .exec(
                format!(
                    "SELECT entity_id, placed_at FROM order_sync_orders WHERE entity_id IN ({})",
                    marks(entity_ids.len())
                ),
                entity_ids
                    .iter()
                    .map(|i| Value::from(*i))
                    .collect::<Vec<_>>(),
            )
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, t)| t.map(|t| (id, utc(t))))
            .collect())
    }
}

/// The WHERE condition (on `order_sync_orders`) and its parameters for a
/// selection; `None` when it names nothing.
fn selection_filter(selection: &Selection) -> Option<(String, Vec<Value>)> {
    match selection {
        Selection::EntityIds(ids) if ids.is_empty() => None,
        Selection::IncrementIds(ids) if ids.is_empty() => None,
        Selection::EntityIds(ids) => Some((
            format!("entity_id IN ({})", marks(ids.len())),
            ids.iter().map(|i| Value::from(*i)).collect(),
        )),
        Selection::IncrementIds(ids) => Some((
            format!("increment_id IN ({})", marks(ids.len())),
            ids.iter().map(|i| Value::from(i.as_str())).collect(),
        )),
        Selection::Placed { since, until } => Some((
            "placed_at >= ? AND placed_at < ?".into(),
            vec![naive(*since).into(), naive(*until).into()],
        )),
    }
}

/// Why a listing failed: a bad filter (the caller's fault) or the ledger.
#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error(transparent)]
    Filter(#[from] FilterError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl From<mysql_async::Error> for ListError {
    fn from(e: mysql_async::Error) -> Self {
        ListError::Ledger(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operator_dates_are_read_as_utc_in_three_forms() {
        let day = parse_time("2026-11-27").unwrap();
        assert_eq!(day.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(
            parse_time("2026-11-27 10:30:00").unwrap().to_rfc3339(),
            "2026-11-27T10:30:00+00:00"
        );
        assert_eq!(
            parse_time("2026-11-27T12:30:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-27T10:30:00+00:00"
        );
        assert!(parse_time("yesterday").is_none());
    }
}
