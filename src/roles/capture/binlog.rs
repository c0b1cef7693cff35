//! Following Magento's binary log (`capture.mode = "binlog"`): a trigger, not
//! a source.
//!
//! The follower registers with the Magento database server as a replica and
//! reads its binary log as it is written. For each transaction it notes only
//! whether it inserted orders and their ids; at the commit (XID) it announces
//! them, and capture reads them at once with its committed-read path — the
//! same SELECT polling uses, so an order's message never depends on how it was
//! noticed. Polling goes on every `capture.binlog.poll_interval` as the safety
//! net, so no order depends on the binlog alone.
//!
//! Bounded under bulk writes: row images are decoded one event at a time and
//! dropped; updates and deletes are not decoded at all (only inserts announce
//! orders), and a transaction inserting more than [`MAX_NOTED`] orders is
//! announced by its highest id alone. A mass action over 100,000 orders costs
//! the follower a few kilobytes.
//!
//! Anything that stops the follower (binlog off, not ROW, grants missing, the
//! saved file purged, the stream cut or silent past three heartbeats) ends
//! [`Follower::run`] with a [`Stop`] saying what to set; capture then warns,
//! polls at its normal interval and tries again after `capture.binlog.retry`.
//!
//! If the process dies anywhere here, nothing is lost: the ledger keeps the
//! binlog position after which every announced order was captured, a restart
//! reads from there (announcing again what may have been read; capture's
//! ledger absorbs repeats), and polling covers everything regardless.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

use futures_util::StreamExt;
use mysql_async::{
    binlog::events::{EventData, RowsEventData},
    prelude::*,
    BinlogStreamRequest, Conn, Opts,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{config::BinlogSettings, ledger::BinlogPosition};

/// Order ids remembered per announcement; beyond it only the highest is kept
/// (capture reads everything above its position anyway).
pub const MAX_NOTED: usize = 1_000;

/// What the follower announced since capture last looked.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pending {
    /// Order ids inserted by the commits announced (at most [`MAX_NOTED`]).
    pub ids: Vec<u32>,
    /// The highest of all of them, noted or not.
    pub max_id: u32,
    /// Commits that inserted orders.
    pub commits: u64,
    /// The position after the last commit read (with or without orders).
    pub through: Option<BinlogPosition>,
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

    fn commit(&self, inserted: &[u32], through: BinlogPosition) {
        let mut p = self.pending.lock().expect("no panics while held");
        p.through = Some(through);
        if !inserted.is_empty() {
            p.note(inserted);
            p.commits += 1;
            drop(p);
            self.notify.notify_one();
        }
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

/// Reads one Magento database's binary log for inserts into its order table.
#[derive(Debug, Clone)]
pub struct Follower {
    pub opts: Opts,
    pub settings: BinlogSettings,
    pub database: String,
    pub table: String,
    /// `entity_id`'s place among the order table's columns.
    pub id_column: usize,
}

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
        let mut inserted: Vec<u32> = Vec::new();
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
                EventData::QueryEvent(q) if query(&q, "BEGIN") => inserted.clear(),
                EventData::RowsEvent(rows) => {
                    if let Err(e) = self.note_inserts(&stream, &rows, &mut inserted) {
                        return Stop::Cut(format!("unreadable row event: {e}"));
                    }
                }
                // A transaction's end: XID for InnoDB, a COMMIT query otherwise.
                EventData::XidEvent(_) => commit(signal, &mut inserted, &file, log_pos),
                EventData::QueryEvent(q) if query(&q, "COMMIT") => {
                    commit(signal, &mut inserted, &file, log_pos)
                }
                _ => {}
            }
        }
    }

    /// Adds the ids of orders a row event inserted; anything else is skipped
    /// undecoded.
    fn note_inserts(
        &self,
        stream: &mysql_async::BinlogStream,
        rows: &RowsEventData<'_>,
        inserted: &mut Vec<u32>,
    ) -> std::io::Result<()> {
        if !matches!(
            rows,
            RowsEventData::WriteRowsEvent(_) | RowsEventData::WriteRowsEventV1(_)
        ) {
            return Ok(());
        }
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Ok(());
        };
        if tme.database_name() != self.database || tme.table_name() != self.table {
            return Ok(());
        }
        for row in rows.rows(tme) {
            let (_, after) = row?;
            let id = after.as_ref().and_then(|r| match r.as_ref(self.id_column) {
                Some(mysql_async::binlog::value::BinlogValue::Value(v)) => match v {
                    mysql_async::Value::Int(i) => u32::try_from(*i).ok(),
                    mysql_async::Value::UInt(u) => u32::try_from(*u).ok(),
                    _ => None,
                },
                _ => None,
            });
            if let Some(id) = id {
                if inserted.len() < MAX_NOTED {
                    inserted.push(id);
                } else if let Some(last) = inserted.last_mut() {
                    // Keep the highest in the last slot: what capture must reach.
                    *last = (*last).max(id);
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

/// Announces one transaction's inserted orders (if any) and where it ended.
fn commit(signal: &Signal, inserted: &mut Vec<u32>, file: &str, pos: u64) {
    signal.commit(
        inserted,
        BinlogPosition {
            file: file.to_owned(),
            pos,
        },
    );
    inserted.clear();
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

    #[test]
    fn a_commit_without_orders_moves_the_position_but_wakes_nobody() {
        let s = Signal::default();
        let at = BinlogPosition {
            file: "binlog.000001".into(),
            pos: 900,
        };
        s.commit(&[], at.clone());
        let p = s.take();
        assert!(!p.has_orders());
        assert_eq!(p.through, Some(at));
        assert_eq!(s.take(), Pending::default(), "taken once");
    }
}
