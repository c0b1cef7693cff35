//! `order-sync backfill`: give one consumer the orders it never got — placed
//! before it was added to `consumers.names`, before order-sync started, left
//! out of an import, or removed from the ledger by retention — read from
//! Magento as they are now, with their invoices, shipments and credit memos
//! as later events for a consumer that subscribes to them.
//!
//! **No gap and no double with live capture** (the watermark): live capture
//! owns every order above its saved position and every open gap below it
//! (the ids it still waits for); a backfill takes only ids at or below the
//! position it read when it started, and never an open gap. Orders between
//! are captured live and reach the consumer through the relay as always. An
//! order both touch — captured long ago, so known to the ledger — gets the
//! consumer's row once: the ledger locks the order's row while it creates
//! rows for it, and both writers create only rows that do not exist yet.
//!
//! **Pace**: a chunk is recorded only while fewer than `window` of the
//! consumer's placements are unsettled, so at most about a window of
//! backfilled orders sits in its queue ahead of a live order, and a
//! consumer that is down makes the backfill wait rather than pile up.
//! **Resume**: run the same command again; orders the consumer has are
//! skipped (a kill -9 loses at most the chunk being written, whose
//! transaction rolls back).
//!
//! **Record**: a run started with [`begin`] and carried out by [`carry_out`]
//! (the CLI, the API, the status page's form) has a row in the ledger
//! (`ledger::backfills`) with its progress after each chunk; one run per
//! consumer at a time.

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    config::CaptureSettings,
    ledger::{Audience, LedgerError, NewOrder, RunGuard, RunProgress, RunState},
    magento::{BackfillFilter, MagentoError},
    roles::{
        capture::lifecycle::{document_change, in_order},
        sleep_or_shutdown, Deps,
    },
};

/// What to backfill, for whom.
#[derive(Debug, Clone)]
pub struct Request {
    pub consumer: String,
    pub filter: BackfillFilter,
    /// Orders read and recorded per step.
    pub chunk: u32,
    /// Most of the consumer's placements left unsettled before the next chunk.
    pub window: u64,
    pub dry_run: bool,
}

/// Where a backfill is, for a progress bar or the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    /// Orders in Magento the backfill looks at.
    pub total: u64,
    /// Looked at so far.
    pub done: u64,
    /// Given to the consumer so far (or, dry, that would be).
    pub given: u64,
    /// Waiting for the consumer to take what it was given.
    pub waiting: bool,
}

/// What a backfill did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub progress: Progress,
    /// Orders it already had, or not of its stores or states.
    pub skipped: u64,
    /// Later-event rows created for it.
    pub events: u64,
    /// The watermark: the highest id taken; live capture owns those above.
    pub upto: u32,
    /// Ids below it left to live capture (open gaps).
    pub left_to_capture: usize,
    /// Stopped by shutdown before the end (run it again to go on).
    pub interrupted: bool,
}

impl Report {
    pub fn render(&self, consumer: &str, dry_run: bool) -> String {
        let p = &self.progress;
        let verb = if dry_run { "would give" } else { "gave" };
        let mut out = format!(
            "backfill for {consumer}: looked at {} of {} order(s) up to entity_id {} (live capture has the rest), {verb} {}, skipped {} (already there, or not of its stores or states)",
            p.done, p.total, self.upto, p.given, self.skipped
        );
        if !dry_run {
            out.push_str(&format!(", {} later event row(s)", self.events));
        }
        if self.left_to_capture > 0 {
            out.push_str(&format!(
                "; {} id(s) capture still waits for are left to it",
                self.left_to_capture
            ));
        }
        if self.interrupted {
            out.push_str("; interrupted: run it again to go on");
        }
        out.push('\n');
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    #[error("--consumer: `{0}` is not in consumers.names")]
    UnknownConsumer(String),
    #[error("capture has no position for shop `{0}` yet: start order-sync once, so the backfill knows where live capture takes over")]
    NoPosition(String),
    #[error("--chunk and --window must be at least 1")]
    BadPace,
    #[error("{consumer} has a backfill running ({run}): wait for it, or stop it, then start again (it goes on where it stopped)")]
    AlreadyRunning { consumer: String, run: String },
    #[error("the backfill lost its lock in the ledger database (its connection dropped), so another run may have taken over; run it again to go on where it stopped")]
    LostLock,
    #[error(transparent)]
    Magento(#[from] MagentoError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl BackfillError {
    /// Whether the caller can fix it (exit 2), rather than a service failing.
    pub fn is_caller_error(&self) -> bool {
        matches!(
            self,
            Self::UnknownConsumer(_)
                | Self::NoPosition(_)
                | Self::BadPace
                | Self::AlreadyRunning { .. }
        )
    }
}

impl Request {
    /// The request as the CLI's flags say it, for the record of a run.
    pub fn describe(&self) -> String {
        let f = &self.filter;
        let mut out = format!("--consumer {}", self.consumer);
        let day = |t: chrono::NaiveDateTime| t.and_utc().to_rfc3339_opts(SecondsFormat::Secs, true);
        if let Some(t) = f.since {
            out.push_str(&format!(" --since {}", day(t)));
        }
        if let Some(t) = f.until {
            out.push_str(&format!(" --until {}", day(t)));
        }
        if !f.states.is_empty() {
            out.push_str(&format!(" --state {}", f.states.join(",")));
        }
        if !f.stores.is_empty() {
            let stores: Vec<String> = f.stores.iter().map(u16::to_string).collect();
            out.push_str(&format!(" --store {}", stores.join(",")));
        }
        out.push_str(&format!(" --chunk {} --window {}", self.chunk, self.window));
        if self.dry_run {
            out.push_str(" --dry-run");
        }
        out
    }
}

impl Report {
    fn run_progress(&self) -> RunProgress {
        RunProgress {
            total: self.progress.total,
            looked_at: self.progress.done,
            given: self.progress.given,
            skipped: self.skipped,
            events: self.events,
            upto: self.upto,
            waiting: self.progress.waiting,
        }
    }
}

/// What a caller can get wrong, checked before anything is recorded.
async fn check(deps: &Deps, req: &Request) -> Result<(), BackfillError> {
    if !deps.consumers.names.contains(&req.consumer) {
        return Err(BackfillError::UnknownConsumer(req.consumer.clone()));
    }
    if req.chunk == 0 || req.window == 0 {
        return Err(BackfillError::BadPace);
    }
    if deps.ledger.capture_position(&deps.shop).await?.is_none() {
        return Err(BackfillError::NoPosition(deps.shop.clone()));
    }
    Ok(())
}

/// Checks the request and records the start of its run (`by`: `cli`,
/// `http`, `status page`); refused while the consumer has one going. A dry
/// run is not recorded: use [`backfill`] for it.
pub async fn begin(deps: &Deps, req: &Request, by: &str) -> Result<RunGuard, BackfillError> {
    check(deps, req).await?;
    match deps
        .ledger
        .start_backfill(&deps.shop, &req.consumer, &req.describe(), by, Utc::now())
        .await?
    {
        Ok(run) => Ok(run),
        Err(running) => Err(BackfillError::AlreadyRunning {
            consumer: req.consumer.clone(),
            run: match running {
                Some(r) => format!("run {}, started by {}", r.id, r.started_by),
                // Its lock is taken but its row not (or no longer) there.
                None => "its start or end is being recorded".into(),
            },
        }),
    }
}

/// Carries out the run [`begin`] recorded: the backfill, its progress in the
/// ledger after each chunk, and how it ended.
pub async fn carry_out(
    deps: &Deps,
    capture: &CaptureSettings,
    req: &Request,
    mut run: RunGuard,
    progress: impl FnMut(&Progress),
    shutdown: &CancellationToken,
) -> Result<Report, BackfillError> {
    let mut report = Report::default();
    let result = fill(
        deps,
        capture,
        req,
        Some(&mut run),
        &mut report,
        progress,
        shutdown,
    )
    .await;
    let (state, error) = match &result {
        Ok(()) if report.interrupted => (RunState::Interrupted, None),
        Ok(()) => (RunState::Done, None),
        Err(e) => (RunState::Failed, Some(e.to_string())),
    };
    // The orders' rows are already committed; this is only the record. A
    // ledger down now leaves the run shown stalled once its lock goes, and
    // the next start takes over.
    let id = run.id;
    if let Err(e) = deps
        .ledger
        .finish_backfill(
            id,
            state,
            &report.run_progress(),
            error.as_deref(),
            Utc::now(),
        )
        .await
    {
        tracing::warn!(error = %e, run = id, "Could not record how the backfill ended.");
    }
    run.release().await;
    result.map(|()| report)
}

/// Runs a backfill to its end (or shutdown), calling `progress` after each
/// step, without a record in the ledger (a dry run, or a caller that keeps
/// its own). `capture`: the shop's capture settings, so an order outside
/// `capture.filter` is not given and one still in `capture.hold_states` is
/// given held, as capture would.
pub async fn backfill(
    deps: &Deps,
    capture: &CaptureSettings,
    req: &Request,
    progress: impl FnMut(&Progress),
    shutdown: &CancellationToken,
) -> Result<Report, BackfillError> {
    check(deps, req).await?;
    let mut report = Report::default();
    fill(deps, capture, req, None, &mut report, progress, shutdown).await?;
    Ok(report)
}

/// The backfill itself, into `report` (so a failure still says how far it got).
async fn fill(
    deps: &Deps,
    capture: &CaptureSettings,
    req: &Request,
    mut run: Option<&mut RunGuard>,
    report: &mut Report,
    mut progress: impl FnMut(&Progress),
    shutdown: &CancellationToken,
) -> Result<(), BackfillError> {
    let position = deps
        .ledger
        .capture_position(&deps.shop)
        .await?
        .ok_or_else(|| BackfillError::NoPosition(deps.shop.clone()))?;
    let gaps: HashSet<u32> = position.gaps.iter().map(|(id, _)| *id).collect();
    let upto = position.last_entity_id;
    let audience = deps
        .audience()
        .await?
        .only(std::slice::from_ref(&req.consumer));
    let kinds: Vec<_> = deps
        .magento
        .document_tables()
        .iter()
        .filter(|k| audience.wants(k.event))
        .cloned()
        .collect();
    report.upto = upto;
    // Never an order capture would leave out.
    let scope = deps.magento.order_scope(&capture.filter).await?;
    report.progress.total = deps
        .magento
        .backfill_count(0, upto, &req.filter, &scope)
        .await?;
    let id = run.as_ref().map(|r| r.id);
    let mut tell = |report: &Report| {
        progress(&report.progress);
        let deps = deps.clone();
        let p = report.run_progress();
        async move {
            if let Some(id) = id {
                deps.ledger.backfill_progress(id, &p, Utc::now()).await?;
            }
            Ok::<(), BackfillError>(())
        }
    };
    tell(report).await?;
    let mut cursor = 0;
    loop {
        if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        }
        if !req.dry_run && !wait_for_room(deps, req, report, &mut tell, shutdown).await? {
            report.interrupted = true;
            break;
        }
        // Lost with its connection, the lock may already be another run's:
        // two runs would pace the consumer twice, so this one gives way.
        if let Some(run) = run.as_deref_mut() {
            if !run.still_held().await {
                return Err(BackfillError::LostLock);
            }
        }
        let mut ids = deps
            .magento
            .backfill_ids(cursor, upto, &req.filter, &scope, req.chunk)
            .await?;
        let Some(last) = ids.last().copied() else {
            break;
        };
        cursor = last;
        report.progress.done += ids.len() as u64;
        let before = ids.len();
        ids.retain(|id| !gaps.contains(id));
        report.left_to_capture += before - ids.len();
        let now = Utc::now();
        if req.dry_run {
            let has = deps.ledger.placed_for(&ids, &req.consumer).await?;
            report.progress.given += (ids.len() - has) as u64;
            report.skipped += has as u64;
        } else {
            let step = step(deps, &capture.hold_states, &audience, &kinds, &ids, now).await?;
            report.progress.given += step.orders as u64;
            report.skipped += step.skipped as u64;
            report.events += step.events as u64;
        }
        tell(report).await?;
    }
    Ok(())
}

/// Waits while the consumer has `window` or more placements unsettled,
/// telling so (and, to the ledger, that the run is alive) every few
/// seconds; false on shutdown.
async fn wait_for_room<F, Fut>(
    deps: &Deps,
    req: &Request,
    report: &mut Report,
    tell: &mut F,
    shutdown: &CancellationToken,
) -> Result<bool, BackfillError>
where
    F: FnMut(&Report) -> Fut,
    Fut: std::future::Future<Output = Result<(), BackfillError>>,
{
    let mut told = std::time::Instant::now();
    loop {
        let open = deps.ledger.unsettled_placements(&req.consumer).await?;
        if open < req.window {
            if report.progress.waiting {
                report.progress.waiting = false;
                tell(report).await?;
            }
            return Ok(true);
        }
        if !report.progress.waiting || told.elapsed() >= ALIVE_EVERY {
            report.progress.waiting = true;
            tell(report).await?;
            told = std::time::Instant::now();
        }
        if !sleep_or_shutdown(Duration::from_millis(100), shutdown).await {
            return Ok(false);
        }
    }
}

/// How often a waiting run writes its row, so the page shows it is alive.
const ALIVE_EVERY: Duration = Duration::from_secs(5);

/// One chunk: the orders as they are now and their documents, read from
/// Magento, then recorded for the consumer in one ledger transaction.
async fn step(
    deps: &Deps,
    hold_states: &[String],
    audience: &Audience,
    kinds: &[crate::magento::documents::DocumentTables],
    ids: &[u32],
    now: DateTime<Utc>,
) -> Result<crate::ledger::Backfilled, BackfillError> {
    if ids.is_empty() {
        return Ok(Default::default());
    }
    let orders: Vec<NewOrder> = deps
        .magento
        .read_orders_by_id(ids)
        .await?
        .iter()
        .map(|o| {
            let mut order = NewOrder::from_placed(o, now);
            order.held = order
                .key
                .state
                .as_ref()
                .is_some_and(|s| hold_states.contains(s));
            order
        })
        .collect();
    let mut documents = Vec::new();
    if !kinds.is_empty() {
        // One snapshot: the documents of these orders as of one moment.
        let mut snapshot = deps.magento.snapshot().await?;
        for kind in kinds {
            documents.extend(
                snapshot
                    .documents_of(kind, ids)
                    .await?
                    .into_iter()
                    .map(document_change),
            );
        }
        snapshot.finish().await?;
        in_order(&mut documents);
    }
    Ok(deps
        .ledger
        .record_backfill(&orders, &documents, audience, &deps.shop, now)
        .await?)
}
