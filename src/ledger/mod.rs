//! The ledger: order-sync's own tables, the record of every order and its sync
//! state per consumer.
//!
//! Every state change is one short transaction, and the broker message that
//! caused it is acknowledged only after that commit. All times are UTC and
//! passed in by the caller, so tests can move the clock instead of sleeping.

pub mod migrations;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, IsolationLevel, Pool, TxOpts, Value};

use crate::{
    config::LedgerSettings,
    db,
    message::{message_id, truncate, Ack, AckRejection, AckStatus, OrderKey},
    retry::RetryPolicy,
};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Url(#[from] db::DbUrlError),
    /// The server is unreachable or the connection broke: retry the unit.
    #[error("ledger database error: {0}")]
    Db(#[from] mysql_async::Error),
    #[error("ledger schema is at version {found}, newer than this build knows ({known}); upgrade order-sync")]
    TooNew { found: u32, known: u32 },
    #[error("ledger schema is at version {found}, expected {expected}; run `order-sync migrate`")]
    NotMigrated { found: u32, expected: u32 },
    #[error("ledger server {0} lacks SELECT ... FOR UPDATE SKIP LOCKED; order-sync needs MariaDB 10.6 or MySQL 8.0 or newer")]
    ServerTooOld(String),
}

/// Whether a `VERSION()` string names MariaDB ≥ 10.6 or MySQL ≥ 8.0.
pub fn supports_skip_locked(version: &str) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    if version.to_ascii_lowercase().contains("mariadb") {
        (major, minor) >= (10, 6)
    } else {
        major >= 8
    }
}

/// A server-wide lock name for one shop's capture; MariaDB caps names at 64 characters.
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

/// Held by the one instance that captures for a shop: a MariaDB named lock on a
/// connection of its own. The server frees it when that connection ends, so a
/// crashed or cut-off holder gives way at once, without a lease to wait out.
pub struct CaptureLock {
    conn: mysql_async::Conn,
    name: String,
}

impl CaptureLock {
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

/// Sync state of one (order, consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Pending,
    Published,
    Synced,
    Failed,
    Parked,
}

impl State {
    pub const ALL: [State; 5] = [
        State::Pending,
        State::Published,
        State::Synced,
        State::Failed,
        State::Parked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Published => "published",
            State::Synced => "synced",
            State::Failed => "failed",
            State::Parked => "parked",
        }
    }
    fn parse(s: &str) -> State {
        match s {
            "pending" => State::Pending,
            "published" => State::Published,
            "synced" => State::Synced,
            "failed" => State::Failed,
            _ => State::Parked,
        }
    }
}

/// One ledger row, as read back for status and tests.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Delivery {
    pub entity_id: u32,
    pub consumer: String,
    pub increment_id: Option<String>,
    pub store_id: Option<u16>,
    pub message_id: String,
    pub state: State,
    pub attempts: u32,
    pub captured_at: DateTime<Utc>,
    pub last_published_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub synced_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Times an operator re-sent this row.
    pub resyncs: u32,
}

/// An order to record, as taken from a capture message.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub key: OrderKey,
    pub captured_at: DateTime<Utc>,
    /// The order JSON, exactly as captured.
    pub message: String,
}

/// A row taken for publishing, with what is needed to build the message.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub entity_id: u32,
    pub consumer: String,
    pub message_id: String,
    pub increment_id: Option<String>,
    /// Deliveries made before this one.
    pub attempts: u32,
    pub captured_at: DateTime<Utc>,
    pub message: String,
}

/// What a re-delivery round took from the ledger.
#[derive(Debug, Default)]
pub struct Round {
    pub to_publish: Vec<Claimed>,
    /// (entity_id, consumer) rows parked in this round.
    pub parked: Vec<(u32, String)>,
}

/// What an ack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckOutcome {
    Synced {
        entity_id: u32,
    },
    Failed {
        entity_id: u32,
        retry_at: DateTime<Utc>,
    },
}

/// Capture's saved position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapturePosition {
    pub last_entity_id: u32,
    /// Open gaps: (entity_id, first seen).
    pub gaps: Vec<(u32, DateTime<Utc>)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_locked_needs_mariadb_10_6_or_mysql_8() {
        assert!(supports_skip_locked("10.11.19-MariaDB-0+deb12u1"));
        assert!(supports_skip_locked("10.6.0-MariaDB"));
        assert!(!supports_skip_locked("10.5.23-MariaDB"));
        assert!(supports_skip_locked("8.0.31-0ubuntu0.22.04.1"));
        assert!(!supports_skip_locked("5.7.17-0ubuntu0.16.04.1"));
    }

    #[test]
    fn lock_names_fit_mariadb_and_stay_distinct() {
        let a = lock_name(&"x".repeat(60), "shop-a");
        let b = lock_name(&"x".repeat(60), "shop-b");
        assert!(a.len() <= 64 && b.len() <= 64);
        assert_ne!(a, b);
        assert_eq!(lock_name("ledger", "demo"), "order_sync:ledger:demo");
    }
}

#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    opts: mysql_async::Opts,
}

/// One running order-sync process, as recorded in `order_sync_instances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub instance_id: String,
    pub hostname: String,
    pub pid: u32,
    pub roles: String,
    pub capture_leader: bool,
    pub started_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Server answers worth retrying at once: deadlock (1213), lock wait timeout (1205).
fn contended(e: &LedgerError) -> bool {
    matches!(e, LedgerError::Db(mysql_async::Error::Server(s)) if matches!(s.code, 1205 | 1213))
}

/// Runs a ledger transaction again when the server chose it as a deadlock
/// victim; with several relays sharing the ledger that is expected, not an error.
macro_rules! retry_contended {
    ($body:expr) => {{
        let mut tries = 0;
        loop {
            match $body {
                Err(e) if contended(&e) && tries < 5 => {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "Ledger transaction contended; retrying.");
                    tokio::time::sleep(Duration::from_millis(10 * tries)).await;
                }
                other => break other,
            }
        }
    }};
}

fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(3650))
}

/// `?, ?, ?` for an IN list.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

mod ops;
pub use ops::{
    parse_time, FilterError, ListError, OrderFilter, OrderPage, OrderView, Pause, Selection,
    ALL_CONSUMERS,
};

const DELIVERY_COLUMNS: &str =
    "entity_id, consumer, increment_id, store_id, message_id, state, attempts, \
     captured_at, last_published_at, next_attempt_at, synced_at, last_error, resyncs";

fn delivery_from_row(mut r: mysql_async::Row) -> Delivery {
    // Column order is DELIVERY_COLUMNS; the types match the table definition.
    Delivery {
        entity_id: r.take(0).unwrap_or_default(),
        consumer: r.take(1).unwrap_or_default(),
        increment_id: r.take(2).unwrap_or_default(),
        store_id: r.take(3).unwrap_or_default(),
        message_id: r.take(4).unwrap_or_default(),
        state: State::parse(&r.take::<String, _>(5).unwrap_or_default()),
        attempts: r.take(6).unwrap_or_default(),
        captured_at: utc(r.take(7).unwrap_or_default()),
        last_published_at: r.take::<Option<NaiveDateTime>, _>(8).flatten().map(utc),
        next_attempt_at: r.take::<Option<NaiveDateTime>, _>(9).flatten().map(utc),
        synced_at: r.take::<Option<NaiveDateTime>, _>(10).flatten().map(utc),
        last_error: r.take(11).unwrap_or_default(),
        resyncs: r.take(12).unwrap_or_default(),
    }
}

impl Ledger {
    /// A ledger on the configured database; connects lazily.
    pub fn new(settings: &LedgerSettings) -> Result<Self, LedgerError> {
        let opts = db::pool_opts(&settings.url, settings.pool_max, vec![])?;
        Ok(Self {
            pool: Pool::new(opts.clone()),
            opts,
        })
    }

    /// Refuses servers without `SELECT … FOR UPDATE SKIP LOCKED`, which lets
    /// several relays share the re-delivery work: MariaDB 10.6, MySQL 8.0.
    pub async fn check_server(&self) -> Result<String, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let version: String = conn
            .query_first("SELECT VERSION()")
            .await?
            .unwrap_or_default();
        if supports_skip_locked(&version) {
            Ok(version)
        } else {
            Err(LedgerError::ServerTooOld(version))
        }
    }

    /// Tries to become the one capturing instance for `source` (non-blocking).
    pub async fn try_capture_lock(&self, source: &str) -> Result<Option<CaptureLock>, LedgerError> {
        let mut conn = mysql_async::Conn::new(self.opts.clone()).await?;
        let database: Option<String> = conn.query_first("SELECT DATABASE()").await?.flatten();
        let name = lock_name(database.as_deref().unwrap_or(""), source);
        let got: Option<Option<i64>> = conn
            .exec_first("SELECT GET_LOCK(?, 0)", (name.as_str(),))
            .await?;
        if got.flatten() == Some(1) {
            Ok(Some(CaptureLock { conn, name }))
        } else {
            let _ = conn.disconnect().await;
            Ok(None)
        }
    }

    /// Records that this instance is alive and what it does.
    pub async fn heartbeat(&self, me: &Instance) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "INSERT INTO order_sync_instances \
             (instance_id, hostname, pid, roles, capture_leader, started_at, last_seen_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE roles = VALUES(roles), capture_leader = VALUES(capture_leader), \
             last_seen_at = VALUES(last_seen_at)",
            (
                me.instance_id.as_str(),
                me.hostname.as_str(),
                me.pid,
                me.roles.as_str(),
                me.capture_leader,
                naive(me.started_at),
                naive(me.last_seen_at),
            ),
        )
        .await?;
        // Forget instances gone for a day; recent ones stay visible as "gone".
        conn.exec_drop(
            "DELETE FROM order_sync_instances WHERE last_seen_at < ?",
            (naive(me.last_seen_at - chrono::Duration::days(1)),),
        )
        .await?;
        Ok(())
    }

    /// Removes an instance's record (on graceful stop).
    pub async fn forget_instance(&self, instance_id: &str) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "DELETE FROM order_sync_instances WHERE instance_id = ?",
            (instance_id,),
        )
        .await?;
        Ok(())
    }

    /// Instances seen since `since`, most recent first.
    pub async fn instances(&self, since: DateTime<Utc>) -> Result<Vec<Instance>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, String, u32, String, bool, NaiveDateTime, NaiveDateTime)> = conn
            .exec(
                "SELECT instance_id, hostname, pid, roles, capture_leader, started_at, last_seen_at \
                 FROM order_sync_instances WHERE last_seen_at >= ? ORDER BY last_seen_at DESC",
                (naive(since),),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(instance_id, hostname, pid, roles, capture_leader, started, seen)| Instance {
                    instance_id,
                    hostname,
                    pid,
                    roles,
                    capture_leader,
                    started_at: utc(started),
                    last_seen_at: utc(seen),
                },
            )
            .collect())
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies every migration not yet applied; returns the resulting version.
    /// A named lock keeps two instances starting together from racing.
    pub async fn migrate(&self) -> Result<u32, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.query_drop("SELECT GET_LOCK('order_sync_migrate', 60)")
            .await?;
        let result = async {
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS order_sync_migrations (
                    version INT UNSIGNED NOT NULL PRIMARY KEY,
                    name VARCHAR(200) NOT NULL,
                    applied_at DATETIME(6) NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            )
            .await?;
            let current = current_version(&mut conn).await?;
            if current > migrations::latest() {
                return Err(LedgerError::TooNew {
                    found: current,
                    known: migrations::latest(),
                });
            }
            for (version, name, statements) in migrations::MIGRATIONS {
                if *version <= current {
                    continue;
                }
                for sql in *statements {
                    match conn.query_drop(*sql).await {
                        Err(e) if migrations::already_applied(&e) => {}
                        other => other?,
                    }
                }
                conn.exec_drop(
                    "INSERT INTO order_sync_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, naive(Utc::now())),
                )
                .await?;
                tracing::info!(version, name, "Ledger migrated.");
            }
            Ok(migrations::latest())
        }
        .await;
        let _ = conn
            .query_drop("SELECT RELEASE_LOCK('order_sync_migrate')")
            .await;
        result
    }

    /// Fails unless the schema is exactly what this build expects.
    pub async fn check_version(&self) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let exists: Option<u8> = conn
            .query_first(
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = 'order_sync_migrations'",
            )
            .await?;
        let found = if exists.is_some() {
            current_version(&mut conn).await?
        } else {
            0
        };
        match found.cmp(&migrations::latest()) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(LedgerError::TooNew {
                found,
                known: migrations::latest(),
            }),
            std::cmp::Ordering::Less => Err(LedgerError::NotMigrated {
                found,
                expected: migrations::latest(),
            }),
        }
    }

    // ---- capture -------------------------------------------------------------

    pub async fn capture_position(
        &self,
        source: &str,
    ) -> Result<Option<CapturePosition>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let last: Option<u32> = conn
            .exec_first(
                "SELECT last_entity_id FROM order_sync_capture_position WHERE source = ?",
                (source,),
            )
            .await?;
        let Some(last_entity_id) = last else {
            return Ok(None);
        };
        let gaps: Vec<(u32, NaiveDateTime)> = conn
            .exec(
                "SELECT entity_id, first_seen_at FROM order_sync_capture_gaps \
                 WHERE source = ? ORDER BY entity_id",
                (source,),
            )
            .await?;
        Ok(Some(CapturePosition {
            last_entity_id,
            gaps: gaps.into_iter().map(|(id, t)| (id, utc(t))).collect(),
        }))
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
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
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
        tx.commit().await?;
        Ok(())
    }

    // ---- relay ---------------------------------------------------------------

    /// Records orders and creates their rows for every consumer, in one
    /// transaction. Returns the rows that are new, already reserved for the
    /// caller to publish at once (until `now + lease`, after which the
    /// re-delivery round takes them if the caller died). Orders already in the
    /// ledger (a re-published capture) produce no new rows: nothing twice.
    pub async fn record_orders(
        &self,
        orders: &[NewOrder],
        consumers: &[String],
        source: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, LedgerError> {
        retry_contended!(
            self.try_record_orders(orders, consumers, source, now, lease)
                .await
        )
    }

    async fn try_record_orders(
        &self,
        orders: &[NewOrder],
        consumers: &[String],
        source: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Vec<Claimed>, LedgerError> {
        if orders.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn
            .start_transaction(
                TxOpts::default()
                    .with_isolation_level(IsolationLevel::ReadCommitted)
                    .clone(),
            )
            .await?;
        // One statement per order: the relay whose insert creates the order row
        // owns its delivery rows. A second relay given the same order (capture
        // published it twice) waits on that row's key lock, then inserts
        // nothing and publishes nothing, so consumers never get attempt 1 twice.
        let mut orders: Vec<&NewOrder> = orders.iter().collect();
        orders.sort_by_key(|o| o.key.entity_id);
        orders.dedup_by_key(|o| o.key.entity_id);
        let mut new_ids = Vec::new();
        let mut known_ids = Vec::new();
        for o in &orders {
            let placed = o
                .key
                .created_at
                .as_deref()
                .and_then(|s| NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok());
            tx.exec_drop(
                "INSERT IGNORE INTO order_sync_orders \
                 (entity_id, increment_id, store_id, placed_at, captured_at, message) \
                 VALUES (?, ?, ?, ?, ?, ?)",
                (
                    o.key.entity_id,
                    o.key.increment_id.clone(),
                    o.key.store_id,
                    placed,
                    naive(o.captured_at),
                    o.message.as_str(),
                ),
            )
            .await?;
            if tx.affected_rows() == 1 {
                new_ids.push(o.key.entity_id);
            } else {
                known_ids.push(o.key.entity_id);
            }
        }
        // Known orders only get rows for consumers added since they were recorded.
        let existing: Vec<(u32, String)> = if known_ids.is_empty() {
            vec![]
        } else {
            tx.exec(
                format!(
                    "SELECT entity_id, consumer FROM order_sync_deliveries \
                     WHERE entity_id IN ({}) FOR UPDATE",
                    marks(known_ids.len())
                ),
                known_ids
                    .iter()
                    .map(|id| Value::from(*id))
                    .collect::<Vec<_>>(),
            )
            .await?
        };
        let mut fresh = Vec::new();
        for o in &orders {
            for c in consumers {
                let seen = existing
                    .iter()
                    .any(|(id, ec)| *id == o.key.entity_id && ec == c);
                if !seen {
                    fresh.push(Claimed {
                        entity_id: o.key.entity_id,
                        consumer: c.clone(),
                        message_id: message_id(source, o.key.entity_id, c),
                        increment_id: o.key.increment_id.clone(),
                        attempts: 0,
                        captured_at: o.captured_at,
                        message: o.message.clone(),
                    });
                }
            }
        }
        let store_of = |id: u32| {
            orders
                .iter()
                .find(|o| o.key.entity_id == id)
                .and_then(|o| o.key.store_id)
        };
        tx.exec_batch(
            "INSERT IGNORE INTO order_sync_deliveries \
             (entity_id, consumer, increment_id, store_id, message_id, state, attempts, \
              captured_at, next_attempt_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?)",
            fresh.iter().map(|f| {
                (
                    f.entity_id,
                    f.consumer.as_str(),
                    f.increment_id.clone(),
                    store_of(f.entity_id),
                    f.message_id.as_str(),
                    naive(f.captured_at),
                    naive(after(now, lease)),
                    naive(now),
                )
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(fresh)
    }

    /// Takes up to `limit` rows that are due and not synced, for the given
    /// consumers. Rows that have used up their deliveries are parked instead.
    /// Taken rows are reserved until `now + lease`, so a second relay (or this
    /// one, if it dies before publishing) does not take them in the meantime;
    /// `SKIP LOCKED` lets concurrent relays share the work without waiting.
    pub async fn claim_due(
        &self,
        consumers: &[String],
        now: DateTime<Utc>,
        limit: u32,
        max_attempts: u32,
        lease: Duration,
    ) -> Result<Round, LedgerError> {
        retry_contended!(
            self.try_claim_due(consumers, now, limit, max_attempts, lease)
                .await
        )
    }

    async fn try_claim_due(
        &self,
        consumers: &[String],
        now: DateTime<Utc>,
        limit: u32,
        max_attempts: u32,
        lease: Duration,
    ) -> Result<Round, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn
            .start_transaction(
                TxOpts::default()
                    .with_isolation_level(IsolationLevel::ReadCommitted)
                    .clone(),
            )
            .await?;
        let mut params: Vec<Value> = vec![naive(now).into()];
        params.extend(consumers.iter().map(|c| Value::from(c.as_str())));
        params.push(limit.into());
        // Only delivery rows are locked (MariaDB has no `FOR UPDATE OF`), so
        // relays taking different consumers' rows of one order never block.
        let rows: Vec<(u32, String, String, Option<String>, u32, NaiveDateTime)> = tx
            .exec(
                format!(
                    "SELECT entity_id, consumer, message_id, increment_id, attempts, captured_at \
                     FROM order_sync_deliveries \
                     WHERE state IN ('pending', 'published', 'failed') \
                       AND next_attempt_at <= ? AND consumer IN ({}) \
                     ORDER BY next_attempt_at \
                     LIMIT ? \
                     FOR UPDATE SKIP LOCKED",
                    marks(consumers.len())
                ),
                params,
            )
            .await?;
        let mut round = Round::default();
        let mut publish = Vec::new();
        for (entity_id, consumer, message_id, increment_id, attempts, captured_at) in rows {
            if attempts >= max_attempts {
                round.parked.push((entity_id, consumer));
            } else {
                publish.push((
                    entity_id,
                    consumer,
                    message_id,
                    increment_id,
                    attempts,
                    captured_at,
                ));
            }
        }
        if !publish.is_empty() {
            let mut ids: Vec<u32> = publish.iter().map(|p| p.0).collect();
            ids.sort_unstable();
            ids.dedup();
            let messages: Vec<(u32, String)> = tx
                .exec(
                    format!(
                        "SELECT entity_id, message FROM order_sync_orders WHERE entity_id IN ({})",
                        marks(ids.len())
                    ),
                    ids.into_iter().map(Value::from).collect::<Vec<_>>(),
                )
                .await?;
            let messages: std::collections::HashMap<u32, String> = messages.into_iter().collect();
            tx.exec_batch(
                "UPDATE order_sync_deliveries SET next_attempt_at = ?, updated_at = ? \
                 WHERE entity_id = ? AND consumer = ?",
                publish
                    .iter()
                    .map(|p| (naive(after(now, lease)), naive(now), p.0, p.1.as_str())),
            )
            .await?;
            round.to_publish = publish
                .into_iter()
                .map(
                    |(entity_id, consumer, message_id, increment_id, attempts, captured_at)| {
                        Claimed {
                            message: messages
                                .get(&entity_id)
                                .cloned()
                                .unwrap_or_else(|| "null".into()),
                            entity_id,
                            consumer,
                            message_id,
                            increment_id,
                            attempts,
                            captured_at: utc(captured_at),
                        }
                    },
                )
                .collect();
        }
        if !round.parked.is_empty() {
            tx.exec_batch(
                "UPDATE order_sync_deliveries SET state = 'parked', next_attempt_at = NULL, \
                 last_error = COALESCE(last_error, ?), updated_at = ? \
                 WHERE entity_id = ? AND consumer = ?",
                round.parked.iter().map(|(id, c)| {
                    (
                        format!("no synced ack after {max_attempts} deliveries"),
                        naive(now),
                        *id,
                        c.as_str(),
                    )
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(round)
    }

    /// Records confirmed publishes: one more delivery, and when the next is due.
    /// A consumer may ack before this runs (it got the message before the
    /// confirm came back): the delivery still counts, but the state and the
    /// schedule stay as the ack left them.
    pub async fn mark_published(
        &self,
        rows: &[&Claimed],
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get_conn().await?;
        // One transaction: one commit (and disk flush) for the whole batch,
        // where autocommit would flush once per row.
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        // MariaDB applies SET clauses left to right, each seeing the ones
        // before it: both IFs read `state` before it is changed.
        tx.exec_batch(
            "UPDATE order_sync_deliveries \
             SET attempts = attempts + 1, last_published_at = ?, \
                 next_attempt_at = IF(state IN ('synced', 'parked'), next_attempt_at, ?), \
                 state = IF(state IN ('synced', 'parked'), state, 'published'), \
                 updated_at = ? \
             WHERE entity_id = ? AND consumer = ?",
            rows.iter().map(|c| {
                (
                    naive(now),
                    naive(after(now, policy.delay_after(c.attempts + 1))),
                    naive(now),
                    c.entity_id,
                    c.consumer.as_str(),
                )
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Parks rows at once, with the reason: for what no retry can deliver
    /// (an order too large for the broker). Kept, visible, re-drivable.
    pub async fn park(
        &self,
        rows: &[(u32, &str)],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        tx.exec_batch(
            "UPDATE order_sync_deliveries SET state = 'parked', next_attempt_at = NULL, \
             last_error = ?, updated_at = ? WHERE entity_id = ? AND consumer = ? AND state <> 'synced'",
            rows.iter()
                .map(|(id, c)| (truncate(reason, 2000), naive(now), *id, *c)),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that publishing failed and gives the row's claim back: it is due
    /// at once, for the next re-delivery round (whichever instance runs it),
    /// rather than when the claim would have run out. A broker node lost in a
    /// cluster fails a batch of publishes this way; they go again on the next
    /// round, through the node the roles reconnected to.
    /// Takes a batch of (row, error), in one transaction: a lost node fails a
    /// whole batch at once.
    pub async fn record_publish_errors(
        &self,
        failed: &[(&Claimed, String)],
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        if failed.is_empty() {
            return Ok(());
        }
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        tx.exec_batch(
            "UPDATE order_sync_deliveries SET last_error = ?, next_attempt_at = ?, updated_at = ? \
             WHERE entity_id = ? AND consumer = ? AND state IN ('pending', 'published', 'failed')",
            failed.iter().map(|(row, error)| {
                (
                    truncate(&format!("publish failed: {error}"), 2000),
                    naive(now),
                    naive(now),
                    row.entity_id,
                    row.consumer.as_str(),
                )
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- acks ----------------------------------------------------------------

    /// Applies one ack to the one row it names, or says why it cannot.
    pub async fn apply_ack(
        &self,
        ack: &Ack,
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Result<AckOutcome, AckRejection>, LedgerError> {
        Ok(self
            .apply_acks(&[ack], now, policy)
            .await?
            .pop()
            .expect("one result per ack"))
    }

    /// Applies a batch of acks in one transaction (one commit, so one disk
    /// flush, however many acks), each to the one row it names. Results are in
    /// input order; an ack for a row an earlier ack in the batch already synced
    /// is a duplicate, as it would be one at a time.
    pub async fn apply_acks(
        &self,
        acks: &[&Ack],
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Vec<Result<AckOutcome, AckRejection>>, LedgerError> {
        if acks.is_empty() {
            return Ok(vec![]);
        }
        retry_contended!(self.try_apply_acks(acks, now, policy).await)
    }

    async fn try_apply_acks(
        &self,
        acks: &[&Ack],
        now: DateTime<Utc>,
        policy: &RetryPolicy,
    ) -> Result<Vec<Result<AckOutcome, AckRejection>>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await?;
        let mut results = Vec::with_capacity(acks.len());
        for ack in acks {
            results.push(apply_one(&mut tx, ack, now, policy).await?);
        }
        tx.commit().await?;
        Ok(results)
    }

    // ---- reading -------------------------------------------------------------

    /// Every row, ordered by order and consumer (for status output and tests).
    pub async fn deliveries(&self) -> Result<Vec<Delivery>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<mysql_async::Row> = conn
            .query(format!(
                "SELECT {DELIVERY_COLUMNS} FROM order_sync_deliveries ORDER BY entity_id, consumer"
            ))
            .await?;
        Ok(rows.into_iter().map(delivery_from_row).collect())
    }

    pub async fn delivery(
        &self,
        entity_id: u32,
        consumer: &str,
    ) -> Result<Option<Delivery>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<mysql_async::Row> = conn
            .exec_first(
                format!(
                    "SELECT {DELIVERY_COLUMNS} FROM order_sync_deliveries \
                     WHERE entity_id = ? AND consumer = ?"
                ),
                (entity_id, consumer),
            )
            .await?;
        Ok(row.map(delivery_from_row))
    }

    /// Row counts by (consumer, state).
    pub async fn counts(&self) -> Result<Vec<(String, State, u64)>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, String, u64)> = conn
            .query(
                "SELECT consumer, state, COUNT(*) FROM order_sync_deliveries \
                 GROUP BY consumer, state ORDER BY consumer, state",
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(c, s, n)| (c, State::parse(&s), n))
            .collect())
    }

    /// When the oldest order not synced for some consumer was captured.
    pub async fn oldest_unsynced(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let t: Option<Option<NaiveDateTime>> = conn
            .query_first(
                "SELECT MIN(captured_at) FROM order_sync_deliveries WHERE state <> 'synced'",
            )
            .await?;
        Ok(t.flatten().map(utc))
    }

    /// Number of orders recorded.
    pub async fn order_count(&self) -> Result<u64, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        Ok(conn
            .query_first("SELECT COUNT(*) FROM order_sync_orders")
            .await?
            .unwrap_or(0))
    }

    pub async fn disconnect(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// One ack inside the caller's transaction: finds its row (locking it) and
/// updates it, or says why it cannot. Rejections change nothing.
async fn apply_one(
    tx: &mut mysql_async::Transaction<'_>,
    ack: &Ack,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
) -> Result<Result<AckOutcome, AckRejection>, LedgerError> {
    let select = "SELECT entity_id, message_id, state, attempts FROM order_sync_deliveries";
    let row: Option<(u32, String, String, u32)> = if let Some(id) = ack.entity_id {
        tx.exec_first(
            format!("{select} WHERE entity_id = ? AND consumer = ? FOR UPDATE"),
            (id, ack.consumer.as_str()),
        )
        .await?
    } else if let (Some(inc), Some(store)) = (&ack.increment_id, ack.store_id) {
        tx.exec_first(
            format!("{select} WHERE increment_id = ? AND store_id = ? AND consumer = ? FOR UPDATE"),
            (inc.as_str(), store, ack.consumer.as_str()),
        )
        .await?
    } else if let Some(mid) = &ack.message_id {
        tx.exec_first(
            format!("{select} WHERE message_id = ? AND consumer = ? FOR UPDATE"),
            (mid.as_str(), ack.consumer.as_str()),
        )
        .await?
    } else {
        None
    };
    let Some((entity_id, expected_id, state, attempts)) = row else {
        return Ok(Err(AckRejection::UnknownOrder));
    };
    if let Some(given) = &ack.message_id {
        if given != &expected_id {
            return Ok(Err(AckRejection::MessageIdMismatch {
                given: truncate(given, 200),
                expected: expected_id,
            }));
        }
    }
    let state = State::parse(&state);
    let outcome = match (ack.status, state) {
        (AckStatus::Synced, State::Synced) => return Ok(Err(AckRejection::Duplicate)),
        (AckStatus::Synced, _) => {
            // A synced ack for a parked row is good news: the service got
            // there in the end, so it is taken.
            tx.exec_drop(
                "UPDATE order_sync_deliveries SET state = 'synced', synced_at = ?, \
                 next_attempt_at = NULL, updated_at = ? WHERE entity_id = ? AND consumer = ?",
                (naive(now), naive(now), entity_id, ack.consumer.as_str()),
            )
            .await?;
            AckOutcome::Synced { entity_id }
        }
        (AckStatus::Failed, State::Synced | State::Parked) => {
            return Ok(Err(AckRejection::Late(state.as_str().to_owned())))
        }
        (AckStatus::Failed, _) => {
            let retry_at = after(now, policy.delay_after(attempts.max(1)));
            let error = ack
                .error
                .as_deref()
                .map(|e| truncate(e, 2000))
                .unwrap_or_else(|| "failed (no error text given)".into());
            tx.exec_drop(
                "UPDATE order_sync_deliveries SET state = 'failed', last_error = ?, \
                 next_attempt_at = ?, updated_at = ? WHERE entity_id = ? AND consumer = ?",
                (
                    error,
                    naive(retry_at),
                    naive(now),
                    entity_id,
                    ack.consumer.as_str(),
                ),
            )
            .await?;
            AckOutcome::Failed {
                entity_id,
                retry_at,
            }
        }
    };
    Ok(Ok(outcome))
}

async fn current_version(conn: &mut mysql_async::Conn) -> Result<u32, LedgerError> {
    Ok(conn
        .query_first::<Option<u32>, _>("SELECT MAX(version) FROM order_sync_migrations")
        .await?
        .flatten()
        .unwrap_or(0))
}

/// Creates the ledger database if it does not exist (for `migrate` and first start).
pub async fn ensure_database(settings: &LedgerSettings) -> Result<(), LedgerError> {
    db::create_database(&settings.url)
        .await
        .map_err(|e| match e {
            db::CreateError::Url(u) => LedgerError::Url(u),
            db::CreateError::Db(d) => LedgerError::Db(d),
        })
}
