//! What people ask of the ledger: lists and lookups of orders (for the JSON
//! API, the status page and the CLI), totals, and the changes they make —
//! re-send, un-park, purge. Selections and filters arrive already parsed and
//! checked (`control::input`); each change is one short statement or
//! transaction.

use chrono::{DateTime, Utc};
use mysql_async::{prelude::*, TxOpts, Value};

use super::State::{Parked, Pending, Skipped, Synced};
use super::{
    counts::{unsynced, SyncedDelta},
    from_row, from_rows, id_params, marks, naive, opt_utc_to_value, opt_utc_value, transaction,
    utc_value, Delivery, Ledger, LedgerError, State,
};
use crate::message::{truncate, Event};

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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Orders with a row in this state (for `consumer`, when given).
    pub state: Option<State>,
    pub consumer: Option<String>,
    pub store_id: Option<u16>,
    pub increment_id: Option<String>,
    /// Placed at or after.
    pub placed_from: Option<DateTime<Utc>>,
    /// Placed before.
    pub placed_to: Option<DateTime<Utc>>,
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

/// An order row of `order_sync_orders`, without its message.
#[derive(FromRow)]
struct OrderRow {
    entity_id: u32,
    increment_id: Option<String>,
    store_id: Option<u16>,
    #[mysql(
        deserialize_with = "opt_utc_value",
        serialize_with = "opt_utc_to_value"
    )]
    placed_at: Option<DateTime<Utc>>,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    captured_at: DateTime<Utc>,
}

impl OrderRow {
    fn with(self, deliveries: Vec<Delivery>) -> OrderView {
        OrderView {
            entity_id: self.entity_id,
            increment_id: self.increment_id,
            store_id: self.store_id,
            placed_at: self.placed_at,
            captured_at: self.captured_at,
            deliveries,
        }
    }
}

const ORDER_COLUMNS: &str = "entity_id, increment_id, store_id, placed_at, captured_at";

impl Ledger {
    /// When the oldest order not synced for some consumer was captured.
    pub async fn oldest_unsynced(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let t: Option<Option<chrono::NaiveDateTime>> = conn
            .query_first(format!(
                "SELECT MIN(captured_at) FROM order_sync_deliveries WHERE {}",
                unsynced()
            ))
            .await?;
        Ok(t.flatten().map(|t| t.and_utc()))
    }

    /// Orders captured per minute since `since`, oldest first: (minute, count).
    pub async fn captured_per_minute(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, u64)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(chrono::NaiveDateTime, u64)> = from_rows(
            conn.exec(
                "SELECT DATE_FORMAT(captured_at, '%Y-%m-%d %H:%i:00') AS minute, COUNT(*) \
                 FROM order_sync_orders WHERE captured_at >= ? GROUP BY minute ORDER BY minute",
                (naive(since),),
            )
            .await?,
        )?;
        Ok(rows.into_iter().map(|(m, n)| (m.and_utc(), n)).collect())
    }

    /// Rows synced per minute and consumer since `since`: (consumer, minute, count).
    pub async fn synced_per_minute(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>, u64)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, chrono::NaiveDateTime, u64)> = from_rows(
            conn.exec(
                format!("SELECT consumer, DATE_FORMAT(synced_at, '%Y-%m-%d %H:%i:00') AS minute, COUNT(*) \
                 FROM order_sync_deliveries WHERE state = '{Synced}' AND synced_at >= ? \
                 GROUP BY consumer, minute ORDER BY consumer, minute"),
                (naive(since),),
            )
            .await?,
        )?;
        Ok(rows
            .into_iter()
            .map(|(c, m, n)| (c, m.and_utc(), n))
            .collect())
    }

    /// Per consumer, when its oldest row not yet synced was captured.
    pub async fn oldest_unsynced_by_consumer(
        &self,
    ) -> Result<Vec<(String, DateTime<Utc>)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, chrono::NaiveDateTime)> = from_rows(
            conn.query(format!(
                "SELECT consumer, MIN(captured_at) FROM order_sync_deliveries \
                     WHERE {} GROUP BY consumer ORDER BY consumer",
                unsynced()
            ))
            .await?,
        )?;
        Ok(rows.into_iter().map(|(c, t)| (c, t.and_utc())).collect())
    }

    /// Number of orders recorded.
    pub async fn order_count(&self) -> Result<u64, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        Ok(conn
            .query_first("SELECT COUNT(*) FROM order_sync_orders")
            .await?
            .unwrap_or(0))
    }

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
    pub async fn list_orders(&self, filter: &OrderFilter) -> Result<OrderPage, LedgerError> {
        let limit = filter.limit.unwrap_or(50).clamp(1, 500);
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut params: Vec<Value> = vec![];
        if filter.state.is_some() || filter.consumer.is_some() {
            let mut sub = "EXISTS (SELECT 1 FROM order_sync_deliveries d \
                 WHERE d.entity_id = o.entity_id"
                .to_owned();
            if let Some(state) = filter.state {
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
        for (value, op) in [(filter.placed_from, ">="), (filter.placed_to, "<")] {
            if let Some(t) = value {
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
        let mut rows: Vec<OrderRow> = from_rows(
            conn.exec(
                format!(
                    "SELECT {ORDER_COLUMNS} FROM order_sync_orders o WHERE {} \
                     ORDER BY o.entity_id DESC LIMIT ?",
                    conditions.join(" AND ")
                ),
                params,
            )
            .await?,
        )?;
        let next = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|r| r.entity_id)
        } else {
            None
        };
        let ids: Vec<u32> = rows.iter().map(|r| r.entity_id).collect();
        let mut by_order = Ledger::deliveries_of(&mut conn, &ids).await?;
        Ok(OrderPage {
            orders: rows
                .into_iter()
                .map(|r| {
                    let deliveries = by_order.remove(&r.entity_id).unwrap_or_default();
                    r.with(deliveries)
                })
                .collect(),
            next,
        })
    }

    /// One order with its rows and the order JSON as captured.
    pub async fn order(&self, entity_id: u32) -> Result<Option<(OrderView, String)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                format!(
                    "SELECT {ORDER_COLUMNS}, message FROM order_sync_orders WHERE entity_id = ?"
                ),
                (entity_id,),
            )
            .await?;
        let Some(mut row) = row else {
            return Ok(None);
        };
        let message: String = row
            .take_opt("message")
            .and_then(Result::ok)
            .ok_or_else(|| LedgerError::Row {
                what: "an order's message",
                detail: "column message is missing or not text".into(),
            })?;
        let order: OrderRow = from_row(row)?;
        let deliveries = Ledger::deliveries_of(&mut conn, &[entity_id])
            .await?
            .remove(&entity_id)
            .unwrap_or_default();
        Ok(Some((order.with(deliveries), message)))
    }

    /// Sends orders again: their rows (all consumers', or one's) become pending
    /// with fresh attempts, due now, under a new message_id
    /// (`<source>:<entity_id>:<consumer>:r<n>`), so a consumer that
    /// de-duplicates on message_id takes the re-send. Returns rows changed.
    pub async fn resync(
        &self,
        entity_ids: &[u32],
        consumer: Option<&str>,
        event: Option<Event>,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        // An event's name is one of a fixed list, safe to inline.
        let only = event.map_or("1 = 1".to_owned(), |e| format!("event = '{}'", e.as_str()));
        self.update_deliveries(
            // SET clauses apply left to right: message_id sees the new resyncs.
            &format!(
                "resyncs = resyncs + 1, \
             message_id = CONCAT(?, ':', entity_id, ':', \
               IF(seq = 0, '', CONCAT(seq, '-', event, ':')), consumer, ':r', resyncs), \
             state = '{Pending}', attempts = 0, next_attempt_at = ?, synced_at = NULL, \
             last_error = NULL, noted_at = NULL, updated_at = ?"
            ),
            vec![source.into(), naive(now).into(), naive(now).into()],
            &only,
            Some(entity_ids),
            consumer,
            true,
        )
        .await
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
        self.update_deliveries(
            &format!("state = '{Pending}', attempts = 0, next_attempt_at = ?, noted_at = NULL, updated_at = ?"),
            vec![naive(now).into(), naive(now).into()],
            &format!("state = '{Parked}'"),
            entity_ids,
            consumer,
            false,
        )
        .await
    }

    /// Gives up on parked rows of these orders (of `consumer`, when given)
    /// for good: they become `skipped`, recording who and when, and the
    /// orders' later events that waited behind them go on. Returns rows changed.
    pub async fn skip(
        &self,
        entity_ids: &[u32],
        consumer: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, LedgerError> {
        let note = format!(
            "skipped by {} at {}",
            truncate(by, 200),
            now.format("%Y-%m-%d %H:%M:%S UTC")
        );
        self.update_deliveries(
            &format!(
                "state = '{Skipped}', next_attempt_at = NULL, \
             last_error = CONCAT(?, COALESCE(CONCAT('; was: ', last_error), '')), updated_at = ?"
            ),
            vec![note.into(), naive(now).into()],
            &format!("state = '{Parked}'"),
            Some(entity_ids),
            consumer,
            false,
        )
        .await
    }

    /// `UPDATE order_sync_deliveries SET {set} WHERE {condition}`, narrowed to
    /// these orders (all when `None`; none when empty) and this consumer (all
    /// when `None`), as one statement; returns the rows changed. With
    /// `leaves_synced`, synced rows it changes are taken off the synced counts
    /// in the same transaction.
    async fn update_deliveries(
        &self,
        set: &str,
        params: Vec<Value>,
        condition: &str,
        entity_ids: Option<&[u32]>,
        consumer: Option<&str>,
        leaves_synced: bool,
    ) -> Result<u64, LedgerError> {
        let mut condition = condition.to_owned();
        let mut narrow: Vec<Value> = Vec::new();
        if let Some(ids) = entity_ids {
            if ids.is_empty() {
                return Ok(0);
            }
            condition.push_str(&format!(" AND entity_id IN ({})", marks(ids.len())));
            narrow.extend(id_params(ids));
        }
        if let Some(c) = consumer {
            condition.push_str(" AND consumer = ?");
            narrow.push(c.into());
        }
        let sql = format!("UPDATE order_sync_deliveries SET {set} WHERE {condition}");
        let all: Vec<Value> = params.into_iter().chain(narrow.iter().cloned()).collect();
        transaction!(self, TxOpts::default(), |tx| {
            let lost = if leaves_synced {
                SyncedDelta::losing(&mut tx, &condition, narrow.clone()).await?
            } else {
                SyncedDelta::default()
            };
            tx.exec_drop(sql.as_str(), all.clone()).await?;
            let changed = tx.affected_rows();
            lost.apply(&mut tx).await?;
            changed
        })
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
                    format!(
                        "SELECT o.entity_id FROM order_sync_orders o \
                     WHERE o.captured_at < ? AND NOT EXISTS (\
                       SELECT 1 FROM order_sync_deliveries d WHERE d.entity_id = o.entity_id \
                       AND (d.state NOT IN ('{Synced}', '{Skipped}') OR d.synced_at >= ?)) \
                     ORDER BY o.entity_id LIMIT 1000"
                    ),
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
                         WHERE entity_id IN ({}) AND (state NOT IN ('{Synced}', '{Skipped}') OR synced_at >= ?) \
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
                // Every row of these orders is synced: all leave the counts.
                SyncedDelta::losing(
                    &mut tx,
                    &format!("entity_id IN ({})", marks(gone.len())),
                    gone.clone(),
                )
                .await?
                .apply(&mut tx)
                .await?;
                for table in [
                    "order_sync_deliveries",
                    "order_sync_events",
                    "order_sync_orders",
                ] {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_selection_names_nothing() {
        assert!(selection_filter(&Selection::EntityIds(vec![])).is_none());
        assert!(selection_filter(&Selection::IncrementIds(vec![])).is_none());
        let (sql, params) = selection_filter(&Selection::EntityIds(vec![1, 2])).unwrap();
        assert_eq!(sql, "entity_id IN (?, ?)");
        assert_eq!(params.len(), 2);
    }
}
