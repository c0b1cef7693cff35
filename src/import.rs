//! Taking over from the original OrderSyncQueRunner module (Magento 1): its
//! queue table, `<prefix>ordersyncquerunner_que`, becomes ledger rows, so a
//! shop moves to order-sync without losing or repeating a sync.
//!
//! The table is only read. It comes in two variants in the wild: the first
//! release's `increment_id INT UNSIGNED`, later `VARCHAR(50)`; an `is_new_order`
//! column present or missing (present and 0 means the ERP took the order over
//! the module's SOAP API: it has it). It has no unique key, so an order can
//! have several rows: one synced row makes the order synced.
//!
//! For every order still in Magento the order message is built now, with the
//! same read capture uses, and recorded for the consumers named: synced
//! (keeping `synced_at`) or pending, due at once. Orders gone from Magento are
//! reported and skipped. The capture position is moved to the highest order
//! the module knew, so capture takes every order placed after it and none
//! before it twice. Running the import again changes nothing.

use std::{collections::BTreeMap, fmt::Write};

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::prelude::*;

use crate::{
    ledger::{Ledger, LedgerError, NewOrder},
    magento::{Magento, MagentoError},
};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Magento(#[from] MagentoError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading `{table}`: {source}")]
    Table {
        table: String,
        source: mysql_async::Error,
    },
    #[error("`{0}` is not in the Magento database: is magento.table_prefix right, and was the module installed?")]
    NoTable(String),
}

/// One row of the original table, as read.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
struct QueRow {
    id: u32,
    entity_id: Option<u32>,
    increment_id: Option<String>,
    synced_at: Option<NaiveDateTime>,
    is_new_order: i64,
}

/// What the import does (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    pub rows: usize,
    /// Orders (entity ids) in the table, after merging duplicate rows.
    pub orders: usize,
    /// Rows merged into another row of the same order.
    pub duplicates: usize,
    /// Orders taken as synced: `synced_at` set.
    pub synced: Vec<u32>,
    /// Orders taken as synced because the ERP took them over SOAP (`is_new_order = 0`).
    pub taken_by_erp: Vec<u32>,
    /// Orders to send: never synced.
    pub pending: Vec<u32>,
    /// Orders in the table but no longer in Magento: skipped.
    pub missing: Vec<u32>,
    /// Rows naming no order at all.
    pub unnamed: usize,
    /// Ledger rows created (0 on a second run, and with --dry-run).
    pub created: usize,
    /// Where capture goes on from.
    pub position: Option<u32>,
}

impl ImportReport {
    pub fn render(&self, consumers: &[String], dry_run: bool) -> String {
        let mut out = String::new();
        let verb = if dry_run { "would take" } else { "took" };
        let _ = writeln!(
            out,
            "{} row(s) for {} order(s) ({} duplicate row(s) merged, {} naming no order)",
            self.rows, self.orders, self.duplicates, self.unnamed
        );
        let _ = writeln!(
            out,
            "{verb} {} as synced, {} as synced by the ERP over SOAP (is_new_order = 0), {} as pending, for {}",
            self.synced.len(),
            self.taken_by_erp.len(),
            self.pending.len(),
            consumers.join(", ")
        );
        if !self.missing.is_empty() {
            let _ = writeln!(
                out,
                "skipped {} order(s) no longer in Magento: entity_id {}",
                self.missing.len(),
                list(&self.missing)
            );
        }
        if let Some(p) = self.position {
            let _ = writeln!(
                out,
                "capture {} after entity_id {p}",
                if dry_run { "would go on" } else { "goes on" }
            );
        }
        if !dry_run {
            let _ = writeln!(out, "{} ledger row(s) created", self.created);
        }
        out
    }
}

fn list(ids: &[u32]) -> String {
    let shown: Vec<String> = ids.iter().take(20).map(u32::to_string).collect();
    let more = ids.len().saturating_sub(20);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// Reads the original module's table and records its state in the ledger
/// (unless `dry_run`), for `consumers`.
pub async fn import_seed_queue(
    magento: &Magento,
    ledger: &Ledger,
    table: &str,
    consumers: &[String],
    source: &str,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    let rows = read_table(magento, table).await?;
    let mut report = ImportReport {
        rows: rows.len(),
        ..Default::default()
    };
    // Every row of an order merged: synced if any row is (the latest time),
    // taken by the ERP if any row says so.
    let mut by_order: BTreeMap<u32, (Option<NaiveDateTime>, bool)> = BTreeMap::new();
    let mut merged = 0;
    let mut take = |id: u32, synced: Option<NaiveDateTime>, taken: bool| {
        let e = by_order.entry(id).or_insert((None, false));
        e.0 = e.0.max(synced);
        e.1 |= taken;
        merged += 1;
    };
    let mut by_increment: Vec<(String, Option<NaiveDateTime>, bool)> = Vec::new();
    for r in rows {
        let taken = r.is_new_order == 0;
        match (r.entity_id, r.increment_id) {
            (Some(id), _) => take(id, r.synced_at, taken),
            (None, Some(inc)) => by_increment.push((inc, r.synced_at, taken)),
            (None, None) => report.unnamed += 1,
        }
    }
    // Rows that name their order only by number: find their entity_ids.
    let numbers: Vec<&str> = by_increment.iter().map(|(i, _, _)| i.as_str()).collect();
    let entities = entities_of(magento, &numbers).await?;
    for (inc, synced, taken) in &by_increment {
        match entities.get(inc) {
            Some(id) => take(*id, *synced, *taken),
            None => report.unnamed += 1,
        }
    }
    report.orders = by_order.len();
    report.duplicates = merged - by_order.len();
    let ids: Vec<u32> = by_order.keys().copied().collect();
    // A chunk at a time, read then recorded: the messages of a whole table
    // are never in memory at once.
    for chunk in ids.chunks(500) {
        let mut records = Vec::with_capacity(chunk.len());
        let found = magento.read_orders_by_id(chunk).await?;
        let mut found_ids = found.iter().map(|o| o.entity_id).peekable();
        for id in chunk {
            if found_ids.peek() == Some(id) {
                found_ids.next();
            } else {
                report.missing.push(*id);
            }
        }
        for order in &found {
            let (synced_at, taken) = by_order[&order.entity_id];
            let synced = match (synced_at, taken) {
                (Some(at), _) => {
                    report.synced.push(order.entity_id);
                    Some(at.and_utc())
                }
                (None, true) => {
                    report.taken_by_erp.push(order.entity_id);
                    Some(now)
                }
                (None, false) => {
                    report.pending.push(order.entity_id);
                    None
                }
            };
            if !dry_run {
                records.push((NewOrder::from_placed(order, now), synced));
            }
            // The highest order the module knew that is still there: one
            // deleted since may have had the highest id, and capture must
            // not skip orders placed after the one before it.
            report.position = report.position.max(Some(order.entity_id));
        }
        if !dry_run {
            report.created += ledger
                .record_imported(&records, consumers, source, now)
                .await?;
        }
    }
    if dry_run {
        return Ok(report);
    }
    if let Some(position) = report.position {
        // GREATEST: never moves a position capture already went beyond.
        ledger
            .save_capture_position(source, position, &[], &[], now)
            .await?;
    }
    Ok(report)
}

async fn read_table(magento: &Magento, table: &str) -> Result<Vec<QueRow>, ImportError> {
    let mut conn = magento.pool().get_conn().await.map_err(MagentoError::Db)?;
    let columns: Vec<String> = conn
        .exec(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ?",
            (table,),
        )
        .await
        .map_err(MagentoError::Db)?;
    if columns.is_empty() {
        return Err(ImportError::NoTable(table.to_owned()));
    }
    let has = |c: &str| columns.iter().any(|k| k.eq_ignore_ascii_case(c));
    // Both variants read alike: the number as text, and 1 where the column
    // that says "the ERP took it" is missing.
    let is_new = if has("is_new_order") {
        "is_new_order"
    } else {
        "1"
    };
    let sql = format!(
        "SELECT id, entity_id, CAST(increment_id AS CHAR) AS increment_id, synced_at, \
         CAST({is_new} AS SIGNED) AS is_new_order FROM `{table}` ORDER BY id"
    );
    let rows: Vec<mysql_async::Row> =
        conn.query(sql).await.map_err(|source| ImportError::Table {
            table: table.to_owned(),
            source,
        })?;
    rows.into_iter()
        .map(|r| {
            QueRow::from_row_opt(r).map_err(|_| ImportError::Table {
                table: table.to_owned(),
                source: mysql_async::Error::Other("a row of unexpected shape".into()),
            })
        })
        .collect()
}

/// The entity_id of each of these order numbers that Magento has (the lowest,
/// where a multi-store shop reuses a number), in one query per 1,000.
async fn entities_of(
    magento: &Magento,
    numbers: &[&str],
) -> Result<BTreeMap<String, u32>, ImportError> {
    let mut found = BTreeMap::new();
    if numbers.is_empty() {
        return Ok(found);
    }
    let mut conn = magento.pool().get_conn().await.map_err(MagentoError::Db)?;
    for chunk in numbers.chunks(1000) {
        let rows: Vec<(String, u32)> = conn
            .exec(
                format!(
                    "SELECT increment_id, MIN(entity_id) FROM `{}` WHERE increment_id IN ({}) \
                     GROUP BY increment_id",
                    magento.tables().order,
                    vec!["?"; chunk.len()].join(", ")
                ),
                chunk.to_vec(),
            )
            .await
            .map_err(MagentoError::Db)?;
        found.extend(rows);
    }
    Ok(found)
}
