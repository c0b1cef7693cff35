//! The binlog trigger (`capture.mode = "binlog"`): keeps a [`Follower`]
//! running (started when due, noticed when it stops, retried after
//! `capture.binlog.retry`), hands capture what it announced, and saves the
//! binlog position capture has served.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{
    binlog::{Follower, Following, Layout, Pending, Signal, Stop},
    Deps, RoleError,
};
use crate::{
    config::{CaptureMode, CaptureSettings},
    ledger::BinlogPosition,
};

/// The binlog position is saved at most this often (a restart re-reads at
/// most this much of the log).
const BINLOG_SAVE_EVERY: Duration = Duration::from_secs(1);

/// The follower capture runs, if any, and where it was last saved.
pub struct BinlogTrigger {
    deps: Deps,
    settings: CaptureSettings,
    /// The running follower, if any.
    following: Option<Following>,
    /// When to try the binlog again after a fall back to polling.
    retry_at: Option<Instant>,
    /// The binlog position last saved, and when.
    saved: Option<(BinlogPosition, Instant)>,
}

impl BinlogTrigger {
    pub fn new(deps: &Deps, settings: &CaptureSettings) -> Self {
        Self {
            deps: deps.clone(),
            settings: settings.clone(),
            following: None,
            retry_at: None,
            saved: None,
        }
    }

    /// What the follower announced since the last take (nothing without one).
    pub(super) fn take(&self) -> Pending {
        self.following
            .as_ref()
            .map(|f| f.signal.take())
            .unwrap_or_default()
    }

    /// True while a follower reads the stream.
    pub(super) fn is_live(&self) -> bool {
        self.following.as_ref().is_some_and(|f| f.signal.is_live())
    }

    /// The running follower's signal (a follower still connecting can
    /// announce too).
    pub(super) fn signal(&self) -> Option<&Signal> {
        self.following.as_ref().map(|f| &*f.signal)
    }

    /// Saves where the binlog has been served to, at most every
    /// [`BINLOG_SAVE_EVERY`].
    pub(super) async fn save(&mut self, at: &BinlogPosition) -> Result<(), RoleError> {
        let due = match &self.saved {
            Some((saved, when)) => saved != at && when.elapsed() >= BINLOG_SAVE_EVERY,
            None => true,
        };
        if due {
            self.deps
                .ledger
                .save_binlog_position(&self.deps.shop, Some(at))
                .await?;
            self.saved = Some((at.clone(), Instant::now()));
        }
        Ok(())
    }

    /// `capture.mode = "binlog"`: notices a follower that stopped (warns,
    /// falls back to polling) and starts one when it is due.
    pub(super) async fn keep(
        &mut self,
        lifecycle_wanted: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), RoleError> {
        if self.settings.mode != CaptureMode::Binlog {
            self.deps.metrics.set_capture_mode("poll");
            return Ok(());
        }
        if self
            .following
            .as_ref()
            .is_some_and(|f| f.task.is_finished())
        {
            let f = self.following.take().expect("checked just above");
            let stop = f.task.await.unwrap_or_else(|e| Stop::Cut(e.to_string()));
            tracing::warn!(
                reason = %stop,
                retry_in = %humantime::format_duration(self.settings.binlog.retry),
                "Cannot follow the Magento database's binary log; capture polls every \
                 capture.poll_interval until it can."
            );
            if let Stop::Purged(_) = stop {
                // Polling covers the purged stretch; the next follower starts
                // at the log's end.
                self.deps
                    .ledger
                    .save_binlog_position(&self.deps.shop, None)
                    .await?;
                self.saved = None;
            }
            self.retry_at = Some(Instant::now() + self.settings.binlog.retry);
        }
        let due = self.retry_at.is_none_or(|t| Instant::now() >= t);
        if self.following.is_none() && due {
            match self.follower(lifecycle_wanted).await {
                Ok(follower) => {
                    let from = self.deps.ledger.binlog_position(&self.deps.shop).await?;
                    self.following = Some(Following::start(follower, from, shutdown));
                }
                // A refused or cut Magento read must not stop capture:
                // polling goes on, and the follower is tried again later.
                Err(RoleError::Magento(e)) => {
                    tracing::warn!(
                        error = %e,
                        retry_in = %humantime::format_duration(self.settings.binlog.retry),
                        "Cannot read the order table's layout to follow the binary log; capture \
                         polls every capture.poll_interval until it can."
                    );
                    self.retry_at = Some(Instant::now() + self.settings.binlog.retry);
                }
                Err(e) => return Err(e),
            }
        }
        let live = self.following.as_ref().is_some_and(|f| f.signal.is_live());
        self.deps
            .metrics
            .set_capture_mode(if live { "binlog" } else { "poll" });
        Ok(())
    }

    /// A follower for the Magento database, knowing where the columns it
    /// decodes are.
    async fn follower(&self, lifecycle_wanted: bool) -> Result<Follower, RoleError> {
        let table = self.deps.magento.tables().order.clone();
        let places = self.deps.magento.column_places(&table).await?;
        let changes = match lifecycle_wanted {
            true => Some(self.layout(&places).await?),
            false => None,
        };
        Ok(Follower {
            opts: self.deps.magento.opts().clone(),
            settings: self.settings.binlog.clone(),
            database: self.deps.magento.database().to_owned(),
            id_column: place_in(&places, &table, "entity_id")?,
            table,
            changes,
        })
    }

    /// Where the follower finds what it decodes of changes and documents. A
    /// document table whose columns order-sync may not see (no grant) is left
    /// to the scan, which says what is refused.
    async fn layout(
        &self,
        order_places: &std::collections::HashMap<String, usize>,
    ) -> Result<Layout, RoleError> {
        let table = &self.deps.magento.tables().order;
        let mut identifiers = [0; crate::magento::documents::ORDER_IDENTIFIERS.len()];
        for (slot, name) in identifiers
            .iter_mut()
            .zip(crate::magento::documents::ORDER_IDENTIFIERS)
        {
            *slot = place_in(order_places, table, name)?;
        }
        let mut documents = Vec::new();
        for kind in self.deps.magento.document_tables() {
            let places = self.deps.magento.column_places(&kind.main).await?;
            if places.is_empty() {
                tracing::warn!(
                    table = %kind.main,
                    "The binlog follower cannot see this document table's columns (no grant?): \
                     its documents come from the lifecycle scan."
                );
                continue;
            }
            documents.push((
                kind.event,
                kind.main.clone(),
                place_in(&places, &kind.main, "entity_id")?,
            ));
        }
        Ok(Layout {
            identifiers,
            updated_at: place_in(order_places, table, "updated_at")?,
            documents,
        })
    }

    pub(super) async fn stop(&mut self) {
        if let Some(f) = self.following.take() {
            f.stop().await;
        }
        self.retry_at = None;
    }
}

/// Where `column` is in `table` (from [`crate::magento::Magento::column_places`]).
fn place_in(
    places: &std::collections::HashMap<String, usize>,
    table: &str,
    column: &str,
) -> Result<usize, RoleError> {
    places.get(column).copied().ok_or_else(|| {
        RoleError::Magento(crate::magento::MagentoError::MissingColumn {
            table: table.to_owned(),
            column: column.to_owned(),
        })
    })
}
