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

use std::{collections::HashSet, time::Duration};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::{
    ledger::{Audience, LedgerError, NewOrder},
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
            Self::UnknownConsumer(_) | Self::NoPosition(_) | Self::BadPace
        )
    }
}

/// Runs a backfill to its end (or shutdown), calling `progress` after each
/// step. `hold_states`: `capture.hold_states`, so an order still in one is
/// given held, as capture would.
pub async fn backfill(
    deps: &Deps,
    hold_states: &[String],
    req: &Request,
    mut progress: impl FnMut(&Progress),
    shutdown: &CancellationToken,
) -> Result<Report, BackfillError> {
    if !deps.consumers.names.contains(&req.consumer) {
        return Err(BackfillError::UnknownConsumer(req.consumer.clone()));
    }
    if req.chunk == 0 || req.window == 0 {
        return Err(BackfillError::BadPace);
    }
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
    let mut report = Report {
        upto,
        ..Default::default()
    };
    report.progress.total = deps.magento.backfill_count(0, upto, &req.filter).await?;
    progress(&report.progress);
    let mut cursor = 0;
    loop {
        if shutdown.is_cancelled() {
            report.interrupted = true;
            break;
        }
        if !req.dry_run && !wait_for_room(deps, req, &mut report, &mut progress, shutdown).await? {
            report.interrupted = true;
            break;
        }
        let mut ids = deps
            .magento
            .backfill_ids(cursor, upto, &req.filter, req.chunk)
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
            let step = step(deps, hold_states, &audience, &kinds, &ids, now).await?;
            report.progress.given += step.orders as u64;
            report.skipped += step.skipped as u64;
            report.events += step.events as u64;
        }
        progress(&report.progress);
    }
    Ok(report)
}

/// Waits while the consumer has `window` or more placements unsettled;
/// false on shutdown.
async fn wait_for_room(
    deps: &Deps,
    req: &Request,
    report: &mut Report,
    progress: &mut impl FnMut(&Progress),
    shutdown: &CancellationToken,
) -> Result<bool, BackfillError> {
    loop {
        let open = deps.ledger.unsettled_placements(&req.consumer).await?;
        if open < req.window {
            if report.progress.waiting {
                report.progress.waiting = false;
                progress(&report.progress);
            }
            return Ok(true);
        }
        if !report.progress.waiting {
            report.progress.waiting = true;
            progress(&report.progress);
        }
        if !sleep_or_shutdown(Duration::from_millis(100), shutdown).await {
            return Ok(false);
        }
    }
}

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
