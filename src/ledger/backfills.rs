//! Backfill runs: one row per `order-sync backfill`, however it was started
//! (CLI, API, status page), updated after each chunk, so every instance's
//! status page and `GET /api/backfills` show where it is.
//!
//! One run per consumer at a time: a run holds a MariaDB named lock for
//! its consumer ([`NamedLock`], a connection of its own) from start to end,
//! so a second start, on any instance, is refused while the first lives. A
//! run whose process died (kill -9, a lost host) loses the lock with its
//! connection at once: its row, still `running`, is shown stalled, and the
//! next start marks it interrupted and takes its place, without a lease to
//! wait out. The row's `active` column (1 while running, NULL after, under a
//! unique key) keeps the table itself from holding two. Nothing of the
//! orders depends on this table: the delivery rows are the backfill's
//! effect, and a re-run skips what they hold.

use chrono::{DateTime, Utc};
use mysql_async::prelude::*;

use super::{
    from_rows, naive, opt_utc_to_value, opt_utc_value, utc_to_value, utc_value, Ledger,
    LedgerError, NamedLock,
};

/// How a run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Running,
    /// Looked at every order it was asked for.
    Done,
    /// Stopped before the end (shutdown, or its process died): run it again.
    Interrupted,
    /// A service failed; the error says which.
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Interrupted => "interrupted",
            Self::Failed => "failed",
        }
    }
}

/// A backfill run as the ledger has it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, FromRow)]
pub struct BackfillRun {
    pub id: u64,
    pub consumer: String,
    /// What was asked, as the CLI's flags say it.
    pub request: String,
    /// `cli`, `http` or `status page`.
    pub started_by: String,
    /// `running`, `done`, `interrupted` or `failed`.
    pub state: String,
    /// Orders in Magento it looks at.
    pub total: u64,
    pub looked_at: u64,
    /// Orders given to the consumer.
    pub given: u64,
    /// Orders it already had, or not of its stores or states.
    pub skipped: u64,
    /// Later-event rows created.
    pub events: u64,
    /// The watermark: the highest entity_id it takes.
    pub upto: Option<u32>,
    /// Waiting for the consumer to take what it was given.
    pub waiting: bool,
    pub error: Option<String>,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    pub started_at: DateTime<Utc>,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    pub updated_at: DateTime<Utc>,
    #[mysql(
        deserialize_with = "opt_utc_value",
        serialize_with = "opt_utc_to_value"
    )]
    pub finished_at: Option<DateTime<Utc>>,
    /// Still `running`, but no process holds its lock: it died without a
    /// word, and the next start takes over.
    pub stalled: bool,
}

/// A run in progress: its id, and the lock that says so while its process lives.
pub struct RunGuard {
    pub id: u64,
    lock: NamedLock,
}

impl std::fmt::Debug for RunGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunGuard")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RunGuard {
    /// False once the lock's connection was lost: another start may take
    /// over, so this run must stop.
    pub async fn still_held(&mut self) -> bool {
        self.lock.still_held().await
    }

    /// Lets the next run start (after [`Ledger::finish_backfill`]).
    pub async fn release(self) {
        self.lock.release().await
    }
}

/// Where a run is, as it writes it after each chunk.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunProgress {
    pub total: u64,
    pub looked_at: u64,
    pub given: u64,
    pub skipped: u64,
    pub events: u64,
    pub upto: u32,
    pub waiting: bool,
}

// `stalled` is filled in from the lock after reading (see `with_liveness`).
const COLUMNS: &str = "id, consumer, request, started_by, state, total, looked_at, given, \
     skipped, events, upto, waiting, error, started_at, updated_at, finished_at, \
     FALSE AS stalled";

/// The named lock a run for `consumer` of `shop` holds.
fn run_key(shop: &str, consumer: &str) -> String {
    format!("backfill:{shop}:{consumer}")
}

impl Ledger {
    /// Records the start of a run for `consumer` and takes its lock: the
    /// run, or (`Err`) the one already going, if its row could be read. A
    /// row left `running` by a process that died is marked interrupted first.
    pub async fn start_backfill(
        &self,
        shop: &str,
        consumer: &str,
        request: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<RunGuard, Option<BackfillRun>>, LedgerError> {
        let Some(lock) = self.try_named_lock(&run_key(shop, consumer)).await? else {
            let mut conn = self.pool.get_conn().await?;
            let running = from_rows::<BackfillRun>(
                conn.exec(
                    format!(
                        "SELECT {COLUMNS} FROM order_sync_backfills \
                         WHERE shop = ? AND consumer = ? AND active = 1"
                    ),
                    (shop, consumer),
                )
                .await?,
            )?
            .pop();
            return Ok(Err(running));
        };
        let mut conn = self.pool.get_conn().await?;
        // With the lock held, a row still running lost its process: a live
        // one would hold the lock.
        conn.exec_drop(
            "UPDATE order_sync_backfills SET state = 'interrupted', active = NULL, \
             finished_at = ?, error = 'its process ended without recording it (killed, or \
             its host or connection lost); the next run took over' \
             WHERE shop = ? AND consumer = ? AND active = 1",
            (naive(now), shop, consumer),
        )
        .await?;
        conn.exec_drop(
            "INSERT INTO order_sync_backfills (shop, consumer, request, started_by, state, \
             active, started_at, updated_at) VALUES (?, ?, ?, ?, 'running', 1, ?, ?)",
            (shop, consumer, request, by, naive(now), naive(now)),
        )
        .await?;
        let id = conn.last_insert_id().unwrap_or_default();
        Ok(Ok(RunGuard { id, lock }))
    }

    /// Marks the running ones among `runs` whose lock no process holds.
    async fn with_liveness(
        &self,
        shop: &str,
        mut runs: Vec<BackfillRun>,
    ) -> Result<Vec<BackfillRun>, LedgerError> {
        for run in runs
            .iter_mut()
            .filter(|r| r.state == RunState::Running.as_str())
        {
            // Asked, not taken: taking it, even for a moment, could refuse a
            // start that comes meanwhile.
            run.stalled = self.named_lock_free(&run_key(shop, &run.consumer)).await?;
        }
        Ok(runs)
    }

    /// Writes where a run is (its heartbeat too).
    pub async fn backfill_progress(
        &self,
        id: u64,
        p: &RunProgress,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_backfills SET total = ?, looked_at = ?, given = ?, skipped = ?, \
             events = ?, upto = ?, waiting = ?, updated_at = ? WHERE id = ? AND state = 'running'",
            (
                p.total,
                p.looked_at,
                p.given,
                p.skipped,
                p.events,
                p.upto,
                p.waiting,
                naive(now),
                id,
            ),
        )
        .await?;
        Ok(())
    }

    /// Records how a run ended; it no longer blocks a new one.
    pub async fn finish_backfill(
        &self,
        id: u64,
        state: RunState,
        p: &RunProgress,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        debug_assert!(state != RunState::Running);
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "UPDATE order_sync_backfills SET state = ?, active = NULL, total = ?, looked_at = ?, \
             given = ?, skipped = ?, events = ?, upto = ?, waiting = 0, error = ?, \
             updated_at = ?, finished_at = ? WHERE id = ?",
            (
                state.as_str(),
                p.total,
                p.looked_at,
                p.given,
                p.skipped,
                p.events,
                p.upto,
                error,
                naive(now),
                naive(now),
                id,
            ),
        )
        .await?;
        Ok(())
    }

    /// The shop's latest runs, newest first.
    pub async fn backfills(&self, shop: &str, limit: u32) -> Result<Vec<BackfillRun>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let runs = from_rows(
            conn.exec(
                format!(
                    "SELECT {COLUMNS} FROM order_sync_backfills WHERE shop = ? \
                     ORDER BY id DESC LIMIT {limit}"
                ),
                (shop,),
            )
            .await?,
        )?;
        drop(conn);
        self.with_liveness(shop, runs).await
    }

    /// One of the shop's runs, by id.
    pub async fn backfill_run(
        &self,
        shop: &str,
        id: u64,
    ) -> Result<Option<BackfillRun>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let runs = from_rows(
            conn.exec(
                format!("SELECT {COLUMNS} FROM order_sync_backfills WHERE shop = ? AND id = ?"),
                (shop, id),
            )
            .await?,
        )?;
        drop(conn);
        Ok(self.with_liveness(shop, runs).await?.pop())
    }
}
