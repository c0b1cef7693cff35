//! The optional write-back of sync results into Magento's order history, as
//! the original module did: "Order synced: erp (SO-4711), wms" once an order is synced
//! for every consumer, "Order sync parked for erp: …" when a row is parked.
//! It is order-sync's only write to Magento, off by default. Each comment is
//! taken in the ledger before it is written, so it is written at most once; a
//! failed write is given back and tried again. Not on the path of an order.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mysql_async::{prelude::*, Pool};
use tokio_util::sync::CancellationToken;

use super::{sleep_or_shutdown, Deps, Role, RoleError};
use crate::{
    config::{MagentoSettings, WriteBackSettings},
    db,
    ledger::{Ledger, LedgerError, ParkedNote},
    magento::Tables,
    message::truncate,
};

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
    /// Writes with `write_back.url`, or `magento.url` when that is empty, into
    /// the tables of the deps' Magento.
    pub fn new(
        deps: &Deps,
        settings: &WriteBackSettings,
        magento: &MagentoSettings,
    ) -> Result<Self, db::DbUrlError> {
        let url = if settings.url.expose().is_empty() {
            &magento.url
        } else {
            &settings.url
        };
        Ok(Self {
            ledger: deps.ledger.clone(),
            magento: db::pool(url, 2, vec!["SET time_zone = '+00:00'".into()])?,
            tables: deps.magento.tables().clone(),
            interval: settings.interval,
        })
    }

    /// Writes the comments that are due; a failed write is given back to retry.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<Written, LedgerError> {
        let mut written = Written::default();
        for note in self.ledger.synced_to_note(100).await? {
            let entity_id = note.entity_id;
            if !self.ledger.take_synced_note(entity_id, now).await? {
                continue;
            }
            let comment = note.comment();
            match self.comment(entity_id, &comment).await {
                Ok(()) => written.synced += 1,
                Err(e) => {
                    tracing::warn!(entity_id, error = %e, "Could not write the synced comment to Magento.");
                    self.ledger.untake_synced_note(entity_id).await?;
                    written.failed += 1;
                }
            }
        }
        for ParkedNote {
            entity_id,
            consumer,
            last_error,
        } in self.ledger.parked_to_note(100).await?
        {
            if !self
                .ledger
                .take_parked_note(entity_id, &consumer, Some(now))
                .await?
            {
                continue;
            }
            let comment = format!(
                "Order sync parked for {consumer}: {}",
                truncate(last_error.as_deref().unwrap_or("no reason recorded"), 500)
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

impl Role for WriteBack {
    const NAME: &'static str = "write-back";

    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        loop {
            let w = self.step(Utc::now()).await?;
            if w.failed > 0 {
                tracing::warn!(
                    failed = w.failed,
                    "Some Magento history comments could not be written; will try again."
                );
            }
            if !sleep_or_shutdown(self.interval, shutdown).await {
                return Ok(());
            }
        }
    }

    async fn finish(&mut self) {
        let _ = self.magento.clone().disconnect().await;
    }
}
