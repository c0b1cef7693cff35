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
    ledger::{Audience, Ledger, LedgerError, NewOrder},
    magento::{Magento, MagentoError},
};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Magento(#[from] MagentoError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading `{table}`: {problem}")]
    BadRow { table: String, problem: String },
    #[error("reading `{table}`: {source}")]
    Table {
        table: String,
        source: mysql_async::Error,
    },
    #[error("`{0}` is not in the Magento database: is magento.table_prefix right, and was the module installed?")]
    NoTable(String),
    #[error("{count} order(s) in Magento above entity_id {position} are not in `{table}` \
             (entity_id {first} to {last}, placed {placed_from} to {placed_to} UTC): capture would send \
             them to every consumer as new. The module's cleanup cron deletes synced rows, so these \
             are most likely synced already. Say where capture goes on: --from <entity_id> (orders \
             from it on are sent as new) or --after <date> (orders placed after it are sent as \
             new); --dry-run shows what either would send")]
    CleanedUp {
        table: String,
        position: u32,
        count: u64,
        first: u32,
        last: u32,
        placed_from: String,
        placed_to: String,
    },
}

impl ImportError {
    /// The caller's to fix (the table, its grants, where capture goes on),
    /// not a failure of a service.
    pub fn is_caller_error(&self) -> bool {
        match self {
            ImportError::NoTable(_)
            | ImportError::CleanedUp { .. }
            | ImportError::BadRow { .. } => true,
            ImportError::Magento(e) => !matches!(e, MagentoError::Db(_) | MagentoError::Url(_)),
            ImportError::Table { source, .. } => crate::magento::access::is_refused(source),
            ImportError::Ledger(_) => false,
        }
    }
}

/// Where capture goes on after the import, when the operator says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoOn {
    /// After the highest order the table knew (refused when Magento has
    /// older orders above it that the table does not: its cleanup gap).
    AfterTable,
    /// Orders from this entity_id on are new (`--from`).
    From(u32),
    /// Orders placed after this time (UTC) are new (`--after`).
    After(NaiveDateTime),
}

/// Orders Magento has above capture's position after the import: what
/// capture will send as new.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentAsNew {
    pub count: u64,
    pub first: Option<u32>,
    pub last: Option<u32>,
    pub placed_from: Option<NaiveDateTime>,
    pub placed_to: Option<NaiveDateTime>,
}

/// Orders placed this long before the import can be ones placed since the
/// module was switched off; older ones above its last row are its cleanup
/// cron's work.
const SWITCH_OFF_WINDOW: chrono::Duration = chrono::Duration::hours(1);

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
    /// Whether the import moved capture's position (not when capture, or an
    /// earlier import, was already there or beyond).
    pub position_moved: bool,
    /// What capture will send as new after the import.
    pub new_orders: SentAsNew,
}

impl ImportReport {
    pub fn render(&self, consumers: &[String], dry_run: bool) -> String {
        let mut out = String::new();
        // A run that created nothing found everything imported before: it
        // says so rather than repeating what the first run did.
        let unchanged = !dry_run && self.created == 0;
        let verb = match (dry_run, unchanged) {
            (true, _) => "would take",
            (false, true) => "found, all already in the ledger and left unchanged:",
            (false, false) => "took",
        };
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
            if dry_run || self.position_moved {
                let _ = writeln!(
                    out,
                    "capture {} after entity_id {p}",
                    if dry_run { "would go on" } else { "goes on" }
                );
            } else {
                let _ = writeln!(
                    out,
                    "capture's position is already at or past entity_id {p}: unchanged"
                );
            }
        }
        let n = &self.new_orders;
        match (n.first, n.last) {
            (Some(first), Some(last)) => {
                let _ = writeln!(
                    out,
                    "{} {} order(s) as new to every consumer: entity_id {first} to {last}, placed {} to {} UTC",
                    if dry_run { "capture would send" } else { "capture sends" },
                    n.count,
                    n.placed_from.map(|t| t.to_string()).unwrap_or_default(),
                    n.placed_to.map(|t| t.to_string()).unwrap_or_default(),
                );
            }
            _ => {
                let _ = writeln!(out, "no order in Magento above it is sent as new");
            }
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
/// (unless `dry_run`), for the consumers of `audience` (each only the orders
/// it is for); capture goes on where `go_on` says.
///
/// Before anything is recorded, the orders capture would then send as new
/// are counted: the module's cleanup cron deletes synced rows, so one old
/// pending row left in the table would put capture's position far below
/// orders synced long ago. When Magento has orders above the position
/// placed more than an hour ago, the import refuses (changing nothing)
/// unless `go_on` names the position; `dry_run` reports instead.
#[allow(clippy::too_many_arguments)]
pub async fn import_seed_queue(
    magento: &Magento,
    ledger: &Ledger,
    table: &str,
    audience: &Audience,
    source: &str,
    go_on: GoOn,
    dry_run: bool,
    now: DateTime<Utc>,
) -> Result<ImportReport, ImportError> {
    // Every table the import reads, checked first: a refused one is named
    // with its grant (information_schema hides it, which read as "missing").
    let mut reads = magento.capture_reads(false, &[]);
    reads.insert(
        0,
        crate::magento::access::Read {
            table: table.to_owned(),
            why: "the original module's queue".into(),
        },
    );
    match magento.check_access(&reads).await {
        Err(MagentoError::MissingTable { table: t, .. }) if t == table => {
            return Err(ImportError::NoTable(table.to_owned()))
        }
        other => other?,
    }
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

    // Where capture will go on, and what it will then send as new, decided
    // before anything is written.
    let highest = highest_existing(magento, &ids).await?;
    let captured = ledger
        .capture_position(source)
        .await?
        .map(|p| p.last_entity_id);
    let position = match go_on {
        GoOn::AfterTable => highest,
        GoOn::From(id) => Some(id.saturating_sub(1)),
        GoOn::After(at) => Some(last_placed_by(magento, at).await?),
    };
    // A position capture already went beyond stays (GREATEST on save).
    let effective = position.max(captured).unwrap_or(0);
    report.new_orders = sent_as_new(magento, effective).await?;
    if go_on == GoOn::AfterTable && !dry_run {
        let n = &report.new_orders;
        let cleaned_up = n
            .placed_from
            .is_some_and(|first| now.naive_utc() - first > SWITCH_OFF_WINDOW);
        if cleaned_up {
            return Err(ImportError::CleanedUp {
                table: table.to_owned(),
                position: effective,
                count: n.count,
                first: n.first.unwrap_or_default(),
                last: n.last.unwrap_or_default(),
                placed_from: n.placed_from.map(|t| t.to_string()).unwrap_or_default(),
                placed_to: n.placed_to.map(|t| t.to_string()).unwrap_or_default(),
            });
        }
    }
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
        }
        if !dry_run {
            report.created += ledger
                .record_imported(&records, audience, source, now)
                .await?;
        }
    }
    report.position = position;
    if dry_run {
        return Ok(report);
    }
    if let Some(position) = report.position {
        // Only a position that moves is written: a second run changes
        // nothing, not even the row's `updated_at`. (GREATEST on save too:
        // never moves a position capture went beyond meanwhile.)
        if captured.is_none_or(|c| c < position) {
            ledger
                .save_capture_position(source, position, &[], &[], now)
                .await?;
            report.position_moved = true;
        }
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
            QueRow::from_row_opt(r).map_err(|e| ImportError::BadRow {
                table: table.to_owned(),
                problem: bad_row(&e.0),
            })
        })
        .collect()
}

/// Which column of a row of the queue table does not hold what the module
/// writes there, with the row's id and the value: the first found.
fn bad_row(row: &mysql_async::Row) -> String {
    use mysql_async::{prelude::FromValue, Value};
    let shown = |v: &Value| crate::message::truncate(&v.as_sql(true), 64);
    // The column's value as SQL, when it is not a `T`.
    let fits = |column: &str, fits: fn(Value) -> bool| -> Option<String> {
        let value: Value = row.get(column)?;
        (!fits(value.clone())).then(|| shown(&value))
    };
    fn is<T: FromValue>(v: Value) -> bool {
        T::from_value_opt(v).is_ok()
    }
    let id = match row.get_opt::<u32, _>("id") {
        Some(Ok(id)) => id.to_string(),
        _ => row
            .get::<Value, _>("id")
            .map_or_else(|| "?".into(), |v| shown(&v)),
    };
    let columns: [(&str, &str, Option<String>); 5] = [
        ("id", "a positive whole number", fits("id", is::<u32>)),
        (
            "entity_id",
            "an order's entity_id (a positive whole number) or NULL",
            fits("entity_id", is::<Option<u32>>),
        ),
        (
            "increment_id",
            "text or NULL",
            fits("increment_id", is::<Option<String>>),
        ),
        (
            "synced_at",
            "a date and time or NULL",
            fits("synced_at", is::<Option<NaiveDateTime>>),
        ),
        (
            "is_new_order",
            "a whole number",
            fits("is_new_order", is::<i64>),
        ),
    ];
    match columns
        .into_iter()
        .find_map(|(c, want, bad)| bad.map(|v| (c, want, v)))
    {
        Some((column, want, value)) => {
            format!("row id {id}: column `{column}` holds {value}, where the module writes {want}")
        }
        None => format!("row id {id} does not have the module's columns"),
    }
}

/// The highest of these orders still in Magento: one deleted since may have
/// had the highest id, and capture must not skip orders placed after the
/// one before it.
async fn highest_existing(magento: &Magento, ids: &[u32]) -> Result<Option<u32>, ImportError> {
    let mut conn = magento.pool().get_conn().await.map_err(MagentoError::Db)?;
    let mut highest = None;
    for chunk in ids.chunks(1000) {
        let max: Option<Option<u32>> = conn
            .query_first(format!(
                "SELECT MAX(entity_id) FROM `{}` WHERE entity_id IN ({})",
                magento.tables().order,
                chunk
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ))
            .await
            .map_err(MagentoError::Db)?;
        highest = highest.max(max.flatten());
    }
    Ok(highest)
}

/// The last order placed at or before `at` (0 for none): `--after`.
async fn last_placed_by(magento: &Magento, at: NaiveDateTime) -> Result<u32, ImportError> {
    let mut conn = magento.pool().get_conn().await.map_err(MagentoError::Db)?;
    let max: Option<Option<u32>> = conn
        .exec_first(
            format!(
                "SELECT MAX(entity_id) FROM `{}` WHERE created_at <= ?",
                magento.tables().order
            ),
            (at,),
        )
        .await
        .map_err(MagentoError::Db)?;
    Ok(max.flatten().unwrap_or(0))
}

/// The orders above `position`: what capture sends as new from there.
async fn sent_as_new(magento: &Magento, position: u32) -> Result<SentAsNew, ImportError> {
    let mut conn = magento.pool().get_conn().await.map_err(MagentoError::Db)?;
    type Row = (
        u64,
        Option<u32>,
        Option<u32>,
        Option<NaiveDateTime>,
        Option<NaiveDateTime>,
    );
    let row: Option<Row> = conn
        .exec_first(
            format!(
                "SELECT COUNT(*), MIN(entity_id), MAX(entity_id), MIN(created_at), MAX(created_at) \
                 FROM `{}` WHERE entity_id > ?",
                magento.tables().order
            ),
            (position,),
        )
        .await
        .map_err(MagentoError::Db)?;
    Ok(row
        .map(|(count, first, last, placed_from, placed_to)| SentAsNew {
            count,
            first,
            last,
            placed_from,
            placed_to,
        })
        .unwrap_or_default())
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
