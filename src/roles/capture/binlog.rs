//! Following Magento's binary log (`capture.mode = "binlog"`).
//!
//! The follower registers with the Magento database server as a replica and
//! reads its binary log as it is written. For each transaction it notes
//! which orders it inserted, which orders' state or status it changed (the
//! row's before and after images) and which invoices, shipments and credit
//! memos it created, in the order the transaction wrote them; at the commit
//! (XID) it announces them, in commit order. Capture reads announced orders
//! at once with its committed-read path — the same SELECT polling uses, so
//! an order's message never depends on how it was noticed — and records the
//! changes and documents as later events ([`super::seen`]). Polling and the
//! lifecycle scan go on as the safety net, so nothing depends on the binlog
//! alone.
//!
//! Bounded under bulk writes: row images are decoded one event at a time and
//! dropped; of an update only the order's identifiers are kept, and only when
//! its state or status changed; deletes are not decoded. A transaction
//! inserting more than [`MAX_NOTED`] orders is announced by its highest id
//! alone, and past [`MAX_SEEN`] changes not yet taken the rest are left to the
//! scan ([`Pending::overflowed`]). A mass action over 100,000 orders costs the
//! follower a few kilobytes.
//!
//! Anything that stops the follower (binlog off, not ROW, grants missing, the
//! saved file purged, the stream cut or silent past three heartbeats) ends
//! [`Follower::run`] with a [`Stop`] saying what to set; capture then warns,
//! polls at its normal interval and tries again after `capture.binlog.retry`.
//!
//! If the process dies anywhere here, nothing is lost: the ledger keeps the
//! binlog position after which every announced order was captured and every
//! announced change recorded (or handed to the scan), a restart reads from
//! there (announcing again what may have been read; the ledger absorbs
//! repeats: an order once, a document once, a change only from the state the
//! ledger holds), and polling covers everything regardless.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use futures_util::StreamExt;
use mysql_async::{
    binlog::{
        events::{EventData, RowsEventData, TableMapEvent},
        row::BinlogRow,
        value::BinlogValue,
    },
    consts::ColumnType,
    prelude::*,
    BinlogStreamRequest, Conn, Opts,
};
use serde_json::{Map, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::BinlogSettings,
    ledger::BinlogPosition,
    magento::documents::{store_of, OrderChange, ORDER_IDENTIFIERS},
    message::Event,
};

/// Order ids remembered per announcement; beyond it only the highest is kept
/// (capture reads everything above its position anyway).
pub const MAX_NOTED: usize = 1_000;

/// Changes and documents held for capture at most; past it the rest are
/// left to the lifecycle scan.
pub const MAX_SEEN: usize = 10_000;

/// What a committed transaction did that capture records as a later event.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// An order's state or status changed: its identifiers as the
    /// transaction left them, and its state and status before.
    Moved {
        change: Box<OrderChange>,
        before: (Option<String>, Option<String>),
        /// Where its transaction committed ([`BinlogPosition::ordinal`]).
        at: Option<u64>,
    },
    /// An invoice, shipment or credit memo was created.
    Document { event: Event, entity_id: u32 },
}

/// What the follower announced since capture last looked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pending {
    /// Order ids inserted by the commits announced (at most [`MAX_NOTED`]).
    pub ids: Vec<u32>,
    /// The highest of all of them, noted or not.
    pub max_id: u32,
    /// Commits that inserted orders.
    pub commits: u64,
    /// The position after the last commit read (with or without orders).
    pub through: Option<BinlogPosition>,
    /// Changes and documents, in commit order (at most [`MAX_SEEN`]).
    pub seen: Vec<Seen>,
    /// More were seen than kept: the lifecycle scan must look now.
    pub overflowed: bool,
}

impl Pending {
    fn note(&mut self, ids: &[u32]) {
        for id in ids {
            self.max_id = self.max_id.max(*id);
            if self.ids.len() < MAX_NOTED {
                self.ids.push(*id);
            }
        }
    }

    /// Whether an order was announced.
    pub fn has_orders(&self) -> bool {
        self.commits > 0
    }

    /// Whether a poll that left capture at `position` with `awaited` ids
    /// (sorted, as [`super::PollOutcome::awaited`] is) still open has read
    /// every order announced.
    pub fn read_by(&self, position: u32, awaited: &[u32]) -> bool {
        self.max_id <= position && !self.ids.iter().any(|id| awaited.binary_search(id).is_ok())
    }
}

/// Shared between the follower (which announces) and capture (which takes).
#[derive(Debug, Default)]
pub struct Signal {
    notify: Notify,
    pending: Mutex<Pending>,
    live: AtomicBool,
}

impl Signal {
    /// Waits for the next announcement (one made since the last wait counts).
    pub async fn announced(&self) {
        self.notify.notified().await
    }

    /// Everything announced since the last take.
    pub fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().expect("no panics while held"))
    }

    /// True while the follower is reading the stream.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    fn commit(&self, tx: &mut Transaction, through: BinlogPosition) {
        let at = through.ordinal();
        let mut p = self.pending.lock().expect("no panics while held");
        p.through = Some(through);
        let (inserted, seen) = (&tx.inserted, &mut tx.seen);
        let wake = !inserted.is_empty() || !seen.is_empty() || tx.spilled;
        if !inserted.is_empty() {
            p.note(inserted);
            p.commits += 1;
        }
        // A mass action is the scan's, whole: one change per order, as polling.
        p.overflowed |= tx.spilled;
        // An order's updates in the transaction that inserted it are part of
        // its placement, which is read as the transaction left it.
        seen.retain(
            |s| !matches!(s, Seen::Moved { change, .. } if inserted.contains(&change.entity_id)),
        );
        for s in seen.iter_mut() {
            if let Seen::Moved { at: place, .. } = s {
                *place = at;
            }
        }
        let room = MAX_SEEN.saturating_sub(p.seen.len());
        if seen.len() > room {
            p.overflowed = true;
            seen.truncate(room);
        }
        p.seen.append(seen);
        drop(p);
        if wake {
            self.notify.notify_one();
        }
    }
}

/// What the transaction being read did so far; announced at its commit.
#[derive(Debug, Default)]
struct Transaction {
    inserted: Vec<u32>,
    seen: Vec<Seen>,
    /// It changed more than [`MAX_SEEN`] orders and documents: a mass
    /// action, left whole to the scan (nothing of it is held).
    spilled: bool,
}

impl Transaction {
    fn insert(&mut self, id: u32) {
        if self.inserted.len() < MAX_NOTED {
            self.inserted.push(id);
        } else if let Some(last) = self.inserted.last_mut() {
            // Keep the highest in the last slot: what capture must reach.
            *last = (*last).max(id);
        }
    }

    fn see(&mut self, item: Seen) {
        if self.spilled {
            return;
        }
        if self.seen.len() >= MAX_SEEN {
            self.spilled = true;
            self.seen = Vec::new();
            return;
        }
        self.seen.push(item);
    }

    fn clear(&mut self) {
        self.inserted.clear();
        self.seen.clear();
        self.spilled = false;
    }
}

/// Why the follower stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// The server cannot be followed as configured; the text says what to set.
    Unusable(String),
    /// The saved position's file is gone from the server (purged while stopped).
    Purged(String),
    /// The stream broke or went silent.
    Cut(String),
    /// Shut down on request.
    Shutdown,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Unusable(s) | Stop::Purged(s) | Stop::Cut(s) => f.write_str(s),
            Stop::Shutdown => f.write_str("shut down"),
        }
    }
}

/// Reads one Magento database's binary log for inserts into its order table
/// and, when later events are wanted, changes of orders and new documents.
#[derive(Debug, Clone)]
pub struct Follower {
    pub opts: Opts,
    pub settings: BinlogSettings,
    pub database: String,
    pub table: String,
    /// `entity_id`'s place among the order table's columns.
    pub id_column: usize,
    /// What to decode beyond inserted orders; `None`: nothing.
    pub changes: Option<Layout>,
}

/// Where the columns the follower decodes are in each table's row images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The order table's [`ORDER_IDENTIFIERS`], in that order.
    pub identifiers: [usize; ORDER_IDENTIFIERS.len()],
    /// The order table's `updated_at`.
    pub updated_at: usize,
    /// Each document kind's main table and its `entity_id`'s place.
    pub documents: Vec<(Event, String, usize)>,
}

const STATE: usize = 3;
const STATUS: usize = 4;

impl Follower {
    /// Follows the binlog from `from` (or from its current end) until it
    /// cannot, announcing commits on `signal`.
    pub async fn run(
        &self,
        from: Option<BinlogPosition>,
        signal: &Signal,
        shutdown: &CancellationToken,
    ) -> Stop {
        let stop = tokio::select! {
            _ = shutdown.cancelled() => Stop::Shutdown,
            stop = self.follow(from, signal) => stop,
        };
        signal.live.store(false, Ordering::SeqCst);
        // Wake capture, so it falls back to its normal interval now.
        signal.notify.notify_one();
        stop
    }

    async fn follow(&self, from: Option<BinlogPosition>, signal: &Signal) -> Stop {
        let mut conn = match Conn::new(self.opts.clone()).await {
            Ok(c) => c,
            Err(e) => return Stop::Cut(format!("cannot connect to the Magento database: {e}")),
        };
        let user = who(&mut conn).await;
        let start = match self.preflight(&mut conn, &user, from).await {
            Ok(p) => p,
            Err(stop) => {
                let _ = conn.disconnect().await;
                return stop;
            }
        };
        // The server sends a heartbeat when idle, so a dead link is noticed.
        let heartbeat_ns = self.settings.heartbeat.as_nanos() as u64;
        if let Err(e) = conn
            .query_drop(format!("SET @master_heartbeat_period = {heartbeat_ns}"))
            .await
        {
            return Stop::Cut(format!("cannot set the heartbeat: {e}"));
        }
        let request = BinlogStreamRequest::new(self.settings.server_id)
            .with_filename(start.file.as_bytes())
            .with_pos(start.pos);
        let mut stream = match conn.get_binlog_stream(request).await {
            Ok(s) => s,
            Err(e) => return classify(&e, &start, &user),
        };
        let silence = self.settings.heartbeat * 3;
        let mut file = start.file.clone();
        // Until the stream's format description arrives, the parser does not
        // know the server checksums its events, so a rotate event's name
        // still ends in the 4-byte checksum, whose bytes may be digits or a
        // dot (`…-bin.0000013`, `…-bin.000001\u{fffd}.1` were saved). The
        // rotate event before it is the server's fake one, naming the file
        // asked for: `start.file`, already known. Later rotates are read
        // with their checksum taken off.
        let mut described = false;
        let mut tx = Transaction::default();
        loop {
            let event = match tokio::time::timeout(silence, stream.next()).await {
                Err(_) => {
                    return Stop::Cut(format!(
                        "no binlog event or heartbeat for {}",
                        humantime::format_duration(silence)
                    ))
                }
                Ok(None) => return Stop::Cut("the server ended the binlog stream".into()),
                Ok(Some(Err(e))) => return classify(&e, &start, &user),
                Ok(Some(Ok(event))) => event,
            };
            if !signal.live.swap(true, Ordering::SeqCst) {
                tracing::info!(from = %start, "Following the Magento database's binary log.");
            }
            let log_pos = u64::from(event.header().log_pos());
            let data = match event.read_data() {
                Ok(Some(d)) => d,
                // Event types this reader does not know carry nothing for us.
                Ok(None) => continue,
                Err(e) => return Stop::Cut(format!("unreadable binlog event: {e}")),
            };
            let query = |q: &mysql_async::binlog::events::QueryEvent<'_>, word: &str| {
                q.query().eq_ignore_ascii_case(word)
            };
            match data {
                EventData::FormatDescriptionEvent(_) => described = true,
                EventData::RotateEvent(r) if described => {
                    file = String::from_utf8_lossy(r.name_raw()).into_owned()
                }
                EventData::RotateEvent(_) => {}
                EventData::QueryEvent(q) if query(&q, "BEGIN") => tx.clear(),
                EventData::RowsEvent(rows) => {
                    if let Err(e) = self.note_rows(&stream, &rows, &mut tx) {
                        return Stop::Cut(format!("unreadable row event: {e}"));
                    }
                }
                // A transaction's end: XID for InnoDB, a COMMIT query otherwise.
                EventData::XidEvent(_) => commit(signal, &mut tx, &file, log_pos),
                EventData::QueryEvent(q) if query(&q, "COMMIT") => {
                    commit(signal, &mut tx, &file, log_pos)
                }
                _ => {}
            }
        }
    }

    /// Notes what a row event did: orders inserted, and (when wanted) order
    /// changes of state or status and documents created; anything else is
    /// skipped undecoded.
    fn note_rows(
        &self,
        stream: &mysql_async::BinlogStream,
        rows: &RowsEventData<'_>,
        tx: &mut Transaction,
    ) -> std::io::Result<()> {
        let write = matches!(
            rows,
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_)
        );
        let update = matches!(
            rows,
            RowsEventData::UpdateRowsEvent(_) | RowsEventData::UpdateRowsEventV1(_)
        );
        if !write && !update {
            return Ok(());
        }
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Ok(());
        };
        if tme.database_name() != self.database {
            return Ok(());
        }
        let orders = tme.table_name() == self.table;
        if write && orders {
            for row in rows.rows(tme) {
                let (_, after) = row?;
                if let Some(id) = after.as_ref().and_then(|r| id_at(r, self.id_column)) {
                    tx.insert(id);
                }
            }
            return Ok(());
        }
        let Some(layout) = &self.changes else {
            return Ok(());
        };
        if tx.spilled {
            // Left to the scan: nothing more of this transaction is decoded.
            return Ok(());
        }
        if update && orders {
            for row in rows.rows(tme) {
                if let (Some(before), Some(after)) = row? {
                    if let Some(moved) = layout.moved(tme, &before, &after) {
                        tx.see(moved);
                    }
                }
            }
        } else if write {
            let Some((event, _, place)) = layout
                .documents
                .iter()
                .find(|(_, table, _)| tme.table_name() == table.as_str())
            else {
                return Ok(());
            };
            for row in rows.rows(tme) {
                let (_, after) = row?;
                if let Some(id) = after.as_ref().and_then(|r| id_at(r, *place)) {
                    tx.see(Seen::Document {
                        event: *event,
                        entity_id: id,
                    });
                }
            }
        }
        Ok(())
    }

    /// Checks what following needs and returns where to start: `from`, or the
    /// log's current end. Each failure says which setting or grant is missing.
    async fn preflight(
        &self,
        conn: &mut Conn,
        user: &str,
        from: Option<BinlogPosition>,
    ) -> Result<BinlogPosition, Stop> {
        let cut = |e: mysql_async::Error| Stop::Cut(format!("checking the binlog settings: {e}"));
        let (log_bin, format, server_id): (Option<u8>, Option<String>, Option<u32>) = conn
            .query_first("SELECT @@GLOBAL.log_bin, @@GLOBAL.binlog_format, @@GLOBAL.server_id")
            .await
            .map_err(cut)?
            .unwrap_or((None, None, None));
        if log_bin != Some(1) {
            return Err(Stop::Unusable(
                "the Magento database server's binary log is off: set `log_bin` (e.g. \
                 `log_bin = mysql-bin` under [mysqld]) and restart it"
                    .into(),
            ));
        }
        let format = format.unwrap_or_default();
        if !format.eq_ignore_ascii_case("ROW") {
            return Err(Stop::Unusable(format!(
                "the Magento database server has binlog_format = {format}: set \
                 `binlog_format = ROW` (SET GLOBAL binlog_format = 'ROW', and in its configuration)"
            )));
        }
        if server_id == Some(self.settings.server_id) {
            return Err(Stop::Unusable(format!(
                "capture.binlog.server_id = {} is the Magento database server's own server_id: \
                 pick an id no server or replica uses",
                self.settings.server_id
            )));
        }
        let status: Result<Option<(String, u64)>, _> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map(|r: Option<mysql_async::Row>| {
                r.and_then(|mut r| Some((r.take::<String, _>(0)?, r.take::<u64, _>(1)?)))
            });
        let end = match status {
            Ok(Some((file, pos))) => BinlogPosition { file, pos },
            Ok(None) => {
                return Err(Stop::Unusable(
                    "the Magento database server reports no binary log (SHOW MASTER STATUS is \
                     empty): set `log_bin` and restart it"
                        .into(),
                ))
            }
            Err(e) if denied(&e) => {
                return Err(Stop::Unusable(format!(
                    "{user} may not read the binlog position: GRANT BINLOG MONITOR ON *.* TO {user} \
                     (MariaDB 10.5+; REPLICATION CLIENT on MySQL)"
                )));
            }
            Err(e) => return Err(cut(e)),
        };
        // Streaming needs REPLICATION SLAVE; a missing grant shows as the
        // stream's first error (see `classify`), roles and all.
        Ok(from.unwrap_or(end))
    }
}

/// Announces one transaction's inserted orders and changes (if any) and where
/// it ended.
fn commit(signal: &Signal, tx: &mut Transaction, file: &str, pos: u64) {
    signal.commit(
        tx,
        BinlogPosition {
            file: file.to_owned(),
            pos,
        },
    );
    tx.clear();
}

impl Layout {
    /// The change an update of an order row made, if it moved its state or
    /// status. Row images without those columns (`binlog_row_image` other
    /// than FULL) say nothing: the scan sees such a change.
    fn moved(
        &self,
        tme: &TableMapEvent<'_>,
        before: &BinlogRow,
        after: &BinlogRow,
    ) -> Option<Seen> {
        let text = |row: &BinlogRow, place: usize| match row.as_ref(place)? {
            BinlogValue::Value(mysql_async::Value::Bytes(b)) => {
                Some(Some(String::from_utf8_lossy(b).into_owned()))
            }
            BinlogValue::Value(mysql_async::Value::NULL) => Some(None),
            _ => None,
        };
        let (state, status) = (self.identifiers[STATE], self.identifiers[STATUS]);
        let was = (text(before, state)?, text(before, status)?);
        let now = (text(after, state)?, text(after, status)?);
        if was == now {
            return None;
        }
        let mut order = Map::new();
        for (name, place) in ORDER_IDENTIFIERS.iter().zip(self.identifiers) {
            order.insert((*name).into(), json_of(tme, after, place));
        }
        let updated_at = match json_of(tme, after, self.updated_at) {
            Value::String(s) => s,
            _ => String::new(),
        };
        Some(Seen::Moved {
            change: Box::new(OrderChange {
                entity_id: order.get("entity_id").and_then(Value::as_u64)? as u32,
                store_id: store_of(&order),
                state: now.0,
                status: now.1,
                updated_at,
                order,
            }),
            before: was,
            at: None,
        })
    }
}

/// An unsigned id from a row image.
fn id_at(row: &BinlogRow, place: usize) -> Option<u32> {
    match row.as_ref(place)? {
        BinlogValue::Value(mysql_async::Value::Int(i)) => u32::try_from(*i).ok(),
        BinlogValue::Value(mysql_async::Value::UInt(u)) => u32::try_from(*u).ok(),
        _ => None,
    }
}

/// A row image's value as the committed read gives it
/// ([`crate::magento::rows`]): numbers as numbers, DECIMALs and text as
/// text, dates as `YYYY-MM-DD HH:MM:SS` in UTC (a TIMESTAMP is logged as
/// seconds since the epoch, a DATETIME as its parts).
fn json_of(tme: &TableMapEvent<'_>, row: &BinlogRow, place: usize) -> Value {
    use mysql_async::Value as Sql;
    let Some(BinlogValue::Value(value)) = row.as_ref(place) else {
        return Value::Null;
    };
    let kind = tme.get_column_type(place).ok().flatten();
    match value {
        Sql::NULL => Value::Null,
        Sql::Int(i) => Value::from(*i),
        Sql::UInt(u) => Value::from(*u),
        Sql::Float(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        Sql::Double(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Sql::Bytes(b) => {
            let text = String::from_utf8_lossy(b).into_owned();
            match kind {
                Some(ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2) => {
                    let seconds = text.split('.').next().and_then(|s| s.parse::<i64>().ok());
                    match seconds.and_then(|s| chrono::DateTime::from_timestamp(s, 0)) {
                        // MariaDB's zero date is logged as 0.
                        Some(_) if seconds == Some(0) => "0000-00-00 00:00:00".into(),
                        Some(at) => Value::String(super::lifecycle::time_text(at.naive_utc())),
                        None => Value::String(text),
                    }
                }
                _ => Value::String(text),
            }
        }
        Sql::Date(y, mo, d, h, mi, s, _) => {
            Value::String(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"))
        }
        other => Value::String(other.as_sql(true).trim_matches('\'').to_owned()),
    }
}

/// The current user as `'name'@'host'`, for grant statements.
async fn who(conn: &mut Conn) -> String {
    let user: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .ok()
        .flatten();
    match user.as_deref().and_then(|u| u.rsplit_once('@')) {
        Some((name, host)) => format!("'{name}'@'{host}'"),
        None => "order-sync's Magento database user".into(),
    }
}

/// Access denied (1045), or a privilege missing (1227).
fn denied(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1045 | 1227))
}

/// What a failing stream means: a purged position, a missing grant, or a cut.
fn classify(e: &mysql_async::Error, from: &BinlogPosition, user: &str) -> Stop {
    match e {
        // ER_MASTER_FATAL_ERROR_READING_BINLOG: the requested file is gone.
        mysql_async::Error::Server(s)
            if s.code == 1236
                && (s.message.contains("first log file") || s.message.contains("purged")) =>
        {
            Stop::Purged(format!(
                "the saved binlog position {from} is no longer on the server (purged): {}",
                s.message
            ))
        }
        e if denied(e) => Stop::Unusable(format!(
            "{user} may not stream the binary log ({e}): GRANT REPLICATION SLAVE ON *.* TO {user}"
        )),
        e => Stop::Cut(format!("the binlog stream failed: {e}")),
    }
}

/// A follower running in its own task, with the signal it announces on.
pub struct Following {
    pub signal: Arc<Signal>,
    pub task: tokio::task::JoinHandle<Stop>,
    pub cancel: CancellationToken,
}

impl Following {
    pub fn start(
        follower: Follower,
        from: Option<BinlogPosition>,
        parent: &CancellationToken,
    ) -> Self {
        let signal = Arc::new(Signal::default());
        let cancel = parent.child_token();
        let task = {
            let (signal, cancel) = (signal.clone(), cancel.clone());
            tokio::spawn(async move { follower.run(from, &signal, &cancel).await })
        };
        Self {
            signal,
            task,
            cancel,
        }
    }

    /// Stops the follower and waits for it.
    pub async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_announcement_is_read_once_every_id_is_at_or_below_the_position_and_not_awaited() {
        let mut p = Pending::default();
        p.note(&[41, 43]);
        assert!(!p.read_by(42, &[]), "43 is above the position");
        assert!(!p.read_by(43, &[41]), "41 is still awaited");
        assert!(p.read_by(43, &[40]));
    }

    #[test]
    fn a_bulk_insert_is_remembered_by_its_highest_id_beyond_the_cap() {
        let mut p = Pending::default();
        let ids: Vec<u32> = (1..=5_000).collect();
        p.note(&ids);
        assert_eq!(p.ids.len(), MAX_NOTED);
        assert_eq!(p.max_id, 5_000);
        assert!(!p.read_by(4_999, &[]));
    }

    fn moved(id: u32) -> Seen {
        Seen::Moved {
            change: Box::new(OrderChange {
                entity_id: id,
                store_id: Some(1),
                state: Some("processing".into()),
                status: Some("processing".into()),
                updated_at: "2026-12-03 10:00:00".into(),
                order: Map::new(),
            }),
            before: (Some("new".into()), Some("pending".into())),
            at: None,
        }
    }

    #[test]
    fn changes_are_announced_in_commit_order_with_their_place_and_not_for_an_order_inserted_with_them(
    ) {
        let s = Signal::default();
        let at = |pos| BinlogPosition {
            file: "binlog.000003".into(),
            pos,
        };
        s.commit(&mut tx(&[7], vec![moved(7), moved(5)]), at(100));
        s.commit(&mut tx(&[], vec![moved(6)]), at(200));
        let p = s.take();
        let places: Vec<(u32, Option<u64>)> = p
            .seen
            .iter()
            .map(|x| match x {
                Seen::Moved { change, at, .. } => (change.entity_id, *at),
                Seen::Document { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(places, [(5, Some(3 << 32 | 100)), (6, Some(3 << 32 | 200))]);
        assert!(!p.overflowed);
    }

    fn tx(inserted: &[u32], seen: Vec<Seen>) -> Transaction {
        Transaction {
            inserted: inserted.to_vec(),
            seen,
            spilled: false,
        }
    }

    #[test]
    fn past_the_cap_changes_are_left_to_the_scan_and_it_is_told() {
        let s = Signal::default();
        let at = |pos| BinlogPosition {
            file: "binlog.000001".into(),
            pos,
        };
        // Transactions of a few changes each, more than capture took meanwhile.
        for n in 0..MAX_SEEN as u32 / 4 + 2 {
            let four = (0..4).map(|i| moved(n * 4 + i)).collect();
            s.commit(&mut tx(&[], four), at(u64::from(n) + 4));
        }
        let p = s.take();
        assert_eq!(p.seen.len(), MAX_SEEN);
        assert!(p.overflowed);
    }

    #[test]
    fn a_mass_action_is_left_whole_to_the_scan_and_holds_nothing() {
        let mut mass = Transaction::default();
        for id in 0..MAX_SEEN as u32 + 5 {
            mass.see(moved(id));
        }
        assert!(mass.spilled);
        assert!(mass.seen.is_empty(), "nothing of it is kept");
        mass.insert(3);
        let s = Signal::default();
        s.commit(
            &mut mass,
            BinlogPosition {
                file: "binlog.000001".into(),
                pos: 4,
            },
        );
        let p = s.take();
        assert!(p.seen.is_empty());
        assert!(p.overflowed, "the scan is told");
        assert_eq!(p.ids, [3], "its orders are still announced");
        mass.clear();
        assert!(!mass.spilled, "the next transaction starts afresh");
    }

    #[test]
    fn a_binlog_position_grows_across_files() {
        let at = |file: &str, pos| BinlogPosition {
            file: file.into(),
            pos,
        };
        assert!(at("binlog.000002", 4).ordinal() > at("binlog.000001", 9_000_000).ordinal());
        assert!(at("binlog.000001", 400).ordinal() > at("binlog.000001", 300).ordinal());
        assert_eq!(at("odd-name", 4).ordinal(), None);
    }

    #[test]
    fn a_commit_without_orders_moves_the_position_but_wakes_nobody() {
        let s = Signal::default();
        let at = BinlogPosition {
            file: "binlog.000001".into(),
            pos: 900,
        };
        s.commit(&mut Transaction::default(), at.clone());
        let p = s.take();
        assert!(!p.has_orders());
        assert_eq!(p.through, Some(at));
        assert_eq!(s.take(), Pending::default(), "taken once");
    }
}
