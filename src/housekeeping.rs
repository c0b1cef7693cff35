//! The two background jobs that run beside the relay: retention (delete what
//! is synced for every consumer and old enough) and the optional write-back of
//! sync results into Magento's order history. Neither is on the path of an
//! order: when one fails it logs and tries again later; sync goes on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mysql_async::{prelude::*, Pool};
use tokio_util::sync::CancellationToken;

use crate::{
    config::{RetentionSettings, Settings},
    db,
    ledger::{Ledger, LedgerError},
    magento::Tables,
    message::truncate,
    supervise::sleep_or_shutdown,
};

/// Deletes orders synced for every consumer longer ago than the setting, on its schedule.
#[derive(Clone)]
pub struct Retention {
    ledger: Ledger,
    settings: RetentionSettings,
}

impl Retention {
    pub fn new(ledger: Ledger, settings: RetentionSettings) -> Self {
        Self { ledger, settings }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        if !self.settings.enabled {
            return;
        }
        loop {
            let wait = self.settings.schedule.next_wait(Utc::now());
            if !sleep_or_shutdown(wait, &shutdown).await {
                return;
            }
            match self.purge_once(Utc::now()).await {
                Ok(n) => tracing::info!(
                    orders = n,
                    "Retention: purged orders synced for every consumer."
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "Retention purge failed; trying again at the next scheduled time.")
                }
            }
        }
    }

    /// One purge as of `now`; returns the orders deleted.
    pub async fn purge_once(&self, now: DateTime<Utc>) -> Result<u64, LedgerError> {
        let age = chrono::Duration::from_std(self.settings.synced_older_than)
            .unwrap_or(chrono::Duration::days(3650));
        self.ledger.purge_synced_before(now - age).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteBackError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("write_back.url: {0}")]
    Url(#[from] db::DbUrlError),
}

/// What one write-back step wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written {
    pub synced: usize,
    pub parked: usize,
    pub failed: usize,
}

/// Writes "Order synced: erp, wms" and "Order sync parked for erp: …" into
/// Magento's status history, at most once per event (taken in the ledger first).
#[derive(Clone)]
pub struct WriteBack {
    ledger: Ledger,
    magento: Pool,
    tables: Tables,
    interval: Duration,
}

impl WriteBack {
    pub fn new(ledger: Ledger, settings: &Settings) -> Result<Self, WriteBackError> {
        let url = if settings.write_back.url.expose().is_empty() {
            &settings.magento.url
        } else {
            &settings.write_back.url
        };
        let magento = db::pool(url, 2, vec!["SET time_zone = '+00:00'".into()])?;
        let tables = match settings.magento.version {
            1 => Tables::magento1(&settings.magento.table_prefix),
            _ => Tables::magento2(&settings.magento.table_prefix),
        };
        Ok(Self {
            ledger,
            magento,
            tables,
            interval: settings.write_back.interval,
        })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.step(Utc::now()).await {
                Ok(w) if w.failed > 0 => tracing::warn!(
                    failed = w.failed,
                    "Some Magento history comments could not be written; will try again."
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Write-back could not read the ledger; will try again.")
                }
            }
            if !sleep_or_shutdown(self.interval, &shutdown).await {
                break;
            }
        }
        let _ = self.magento.disconnect().await;
    }

    /// Writes the comments that are due; a failed write is given back to retry.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<Written, WriteBackError> {
        let mut written = Written::default();
        for (entity_id, consumers) in self.ledger.synced_to_note(100).await? {
            if !self.ledger.take_synced_note(entity_id, now).await? {
                continue;
            }
            let comment = format!("Order synced: {}", consumers.join(", "));
            match self.comment(entity_id, &comment).await {
                Ok(()) => written.synced += 1,
                Err(e) => {
                    tracing::warn!(entity_id, error = %e, "Could not write the synced comment to Magento.");
                    self.ledger.untake_synced_note(entity_id).await?;
                    written.failed += 1;
                }
            }
        }
        for (entity_id, consumer, error) in self.ledger.parked_to_note(100).await? {
            if !self
                .ledger
                .take_parked_note(entity_id, &consumer, Some(now))
                .await?
            {
                continue;
            }
            let comment = format!(
                "Order sync parked for {consumer}: {}",
                truncate(error.as_deref().unwrap_or("no reason recorded"), 500)
            );
            match self.comment(entity_id, &comment).await {
                Ok(()) => written.parked += 1,
                Err(e) => {
                    tracing::warn!(entity_id, consumer = %consumer, error = %e, "Could not write the parked comment to Magento.");
                    self.ledger
                        .take_parked_note(entity_id, &consumer, None)
                        .await?;
                    written.failed += 1;
                }
            }
        }
        Ok(written)
    }

    /// One status history row, as Magento's own `addCommentToStatusHistory`
    /// would add it: the order's current status, not shown to the customer.
    async fn comment(&self, entity_id: u32, comment: &str) -> Result<(), mysql_async::Error> {
        let mut conn = self.magento.get_conn().await?;
        conn.exec_drop(
            format!(
                "INSERT INTO `{history}` (parent_id, is_customer_notified, is_visible_on_front, \
                 comment, status, created_at, entity_name) \
                 SELECT entity_id, 0, 0, ?, status, UTC_TIMESTAMP(), 'order' \
                 FROM `{order}` WHERE entity_id = ?",
                history = self.tables.status_history,
                order = self.tables.order
            ),
            (comment, entity_id),
        )
        .await
    }
}
