//! The ledger: order-sync's own tables, the record of every order and its sync
//! state per consumer.
//!
//! Every state change is one short transaction (`transaction!`), and the
//! broker message that caused it is acknowledged only after that commit. All
//! times are UTC and passed in by the caller, so tests move the clock instead
//! of sleeping. Rows are read by column name ([`FromRow`] derives) and a value
//! that does not fit its type is an error ([`LedgerError::Row`]), never a
//! silent zero.
//!
//! One file per concern:
//! * [`schema`]: the tables, as numbered migrations;
//! * [`position`]: where capture is, its gaps, and the capture lock;
//! * [`recording`]: recording orders and their delivery rows;
//! * [`deliveries`]: claiming due rows, publish results, pull;
//! * [`acks`]: applying sync services' acknowledgements;
//! * [`operator`]: what people ask for — lists, lookups, re-send, un-park, purge;
//! * [`backfills`]: backfill runs and their progress;
//! * [`pauses`], [`instances`], [`notes`] (the Magento write-back's bookkeeping).

pub mod acks;
pub mod audience;
pub mod backfills;
pub mod counts;
pub mod deliveries;
pub mod events;
pub mod instances;
pub mod notes;
pub mod operator;
pub mod pauses;
pub mod position;
pub mod recording;
pub mod schema;
mod sessions;
mod state;

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use mysql_async::{prelude::*, FromValueError, Pool, Row, Value};

use crate::{config::LedgerSettings, db};
pub use acks::AckOutcome;
pub use audience::Audience;
pub use backfills::{BackfillRun, RunGuard, RunProgress, RunState};
pub use deliveries::{Carried, Claimed, Delivery, Round, RowKey, Unanswered};
pub use events::{Change, KnownOrder, Recorded, Release};
pub use instances::Instance;
pub use notes::{ParkedNote, SyncedNote};
pub use operator::{OrderFilter, OrderPage, OrderView, Selection};
pub use pauses::{Pause, ALL_CONSUMERS};
pub use position::{BinlogPosition, CapturePosition, NamedLock, Start};
pub use recording::{Backfilled, NewOrder};
pub use schema::ensure_database;
pub use state::State;

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Url(#[from] db::DbUrlError),
    /// The server is unreachable or the connection broke: retry the unit.
    #[error("ledger database error: {0}")]
    Db(#[from] mysql_async::Error),
    /// A row did not have the shape this build expects: the schema drifted.
    #[error(
        "ledger row does not fit {what}: {detail}; is the schema what `order-sync migrate` made?"
    )]
    Row { what: &'static str, detail: String },
    /// A named lock this needs stayed with another instance.
    #[error("{0}; try again")]
    Locked(&'static str),
    #[error("ledger schema is at version {found}, newer than this build knows ({known}); upgrade order-sync")]
    TooNew { found: u32, known: u32 },
    #[error("ledger schema is at version {found}, expected {expected}; run `order-sync migrate`")]
    NotMigrated { found: u32, expected: u32 },
    #[error("ledger server {0} lacks SELECT ... FOR UPDATE SKIP LOCKED; order-sync needs MariaDB 10.6 or MySQL 8.0 or newer")]
    ServerTooOld(String),
}

/// The handle every role and command shares; cheap to clone (one pool).
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    opts: mysql_async::Opts,
}

/// Server answers worth retrying at once: deadlock (1213), lock wait timeout (1205).
fn contended(e: &LedgerError) -> bool {
    matches!(e, LedgerError::Db(mysql_async::Error::Server(s)) if matches!(s.code, 1205 | 1213))
}

/// Runs `$body` in one transaction on `$ledger` (`$tx` names it inside) and
/// commits; with several relays sharing the ledger a deadlock victim is
/// expected, not an error, so the whole transaction is run again (up to five
/// times). A body that fails rolls back (the transaction is dropped).
macro_rules! transaction {
    ($ledger:expr, $opts:expr, |$tx:ident| $body:expr) => {{
        let mut tries = 0u64;
        loop {
            let attempt: Result<_, $crate::ledger::LedgerError> = async {
                let mut $tx = $ledger.pool.start_transaction($opts).await?;
                let out = $body;
                $tx.commit().await?;
                Ok(out)
            }
            .await;
            match attempt {
                Err(e) if $crate::ledger::contended(&e) && tries < 5 => {
                    tries += 1;
                    tracing::debug!(error = %e, tries, "Ledger transaction contended; retrying.");
                    tokio::time::sleep(std::time::Duration::from_millis(10 * tries)).await;
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use transaction;

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

    /// Whether the ledger server is a Galera cluster node (`wsrep_on`), where
    /// named locks (the capture lock) hold only on the node that granted them.
    pub async fn is_galera(&self) -> Result<bool, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let on: Option<Option<String>> =
            conn.query_first("SHOW VARIABLES LIKE 'wsrep_on'")
                .await
                .map(|r: Option<(String, Option<String>)>| r.map(|(_, v)| v))?;
        Ok(on.flatten().is_some_and(|v| v.eq_ignore_ascii_case("ON")))
    }

    /// The pool, for tests that inspect the tables directly.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn disconnect(self) {
        let _ = self.pool.disconnect().await;
    }
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

/// Read committed: a claim or a record sees rows other relays committed.
fn read_committed() -> mysql_async::TxOpts {
    mysql_async::TxOpts::default()
        .with_isolation_level(mysql_async::IsolationLevel::ReadCommitted)
        .clone()
}

/// Rows read by name into `T`; a row that does not fit is an error naming `T`.
fn from_rows<T: FromRow>(rows: Vec<Row>) -> Result<Vec<T>, LedgerError> {
    rows.into_iter().map(from_row).collect()
}

fn from_row<T: FromRow>(row: Row) -> Result<T, LedgerError> {
    T::from_row_opt(row).map_err(|e| LedgerError::Row {
        what: std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("a row"),
        detail: format!(
            "columns {}",
            e.0.columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    })
}

fn naive(t: DateTime<Utc>) -> NaiveDateTime {
    t.naive_utc()
}

fn after(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(3650))
}

/// `?, ?, ?` for an IN list.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Runs a statement whose text is made for one batch's size (an IN list or
/// a multi-row VALUES of that many): prepared, run and closed at once.
/// Cached, each batch size would be its own statement in the connection's
/// cache, holding its parameters' metadata (hundreds of KiB for a 200-order
/// insert) until pushed out, and pushing out the fixed statements that the
/// cache is for. Returns the rows it read.
async fn exec_sized<T: FromRow + Send + 'static>(
    q: &mut impl Queryable,
    sql: String,
    params: Vec<Value>,
) -> Result<Vec<T>, LedgerError> {
    let stmt = q.prep(sql).await?;
    let rows: Vec<Row> = q.exec(&stmt, params).await?;
    q.close(stmt).await?;
    from_rows(rows)
}

/// [`exec_sized`] for a statement that reads nothing; returns the rows it
/// changed.
async fn exec_sized_drop(
    tx: &mut mysql_async::Transaction<'_>,
    sql: String,
    params: Vec<Value>,
) -> Result<u64, LedgerError> {
    let stmt = tx.prep(sql).await?;
    tx.exec_drop(&stmt, params).await?;
    let changed = tx.affected_rows();
    tx.close(stmt).await?;
    Ok(changed)
}

/// Ids as statement parameters.
fn id_params(ids: &[u32]) -> Vec<Value> {
    ids.iter().map(|i| Value::from(*i)).collect()
}

/// For `#[mysql(deserialize_with)]`: a DATETIME column as UTC.
fn utc_value(v: Value) -> Result<DateTime<Utc>, FromValueError> {
    NaiveDateTime::from_value_opt(v).map(|t| t.and_utc())
}

/// For `#[mysql(serialize_with)]`: the reverse of [`utc_value`].
fn utc_to_value(t: DateTime<Utc>) -> Value {
    t.naive_utc().into()
}

/// For `#[mysql(serialize_with)]`: the reverse of [`opt_utc_value`].
fn opt_utc_to_value(t: Option<DateTime<Utc>>) -> Value {
    t.map(|t| t.naive_utc()).into()
}

/// For `#[mysql(deserialize_with)]`: a NULL-able DATETIME column as UTC.
fn opt_utc_value(v: Value) -> Result<Option<DateTime<Utc>>, FromValueError> {
    Option::<NaiveDateTime>::from_value_opt(v).map(|t| t.map(|t| t.and_utc()))
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
}
