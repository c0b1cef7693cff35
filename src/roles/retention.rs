//! Retention: deletes orders synced for every consumer longer ago than
//! `retention.synced_older_than`, on its schedule — the original module's
//! cleanup cron. Never an order with a row in any other state. Not on the path
//! of an order: a failed purge is logged and tried again; sync goes on.

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{sleep_or_shutdown, Deps, Role, RoleError};
use crate::{config::RetentionSettings, ledger::Ledger};

#[derive(Clone)]
pub struct Retention {
    ledger: Ledger,
    settings: RetentionSettings,
}

impl Retention {
    pub fn new(deps: &Deps, settings: &RetentionSettings) -> Self {
        Self {
            ledger: deps.ledger.clone(),
            settings: settings.clone(),
        }
    }

    /// One purge as of `now`; returns the orders deleted.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<u64, RoleError> {
        let age = chrono::Duration::from_std(self.settings.synced_older_than)
            .unwrap_or(chrono::Duration::days(3650));
        Ok(self.ledger.purge_synced_before(now - age).await?)
    }
}

impl Role for Retention {
    const NAME: &'static str = "retention";

    /// Waits for the next scheduled time, then purges; a session that fails
    /// starts again by waiting for the next one.
    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        loop {
            let wait = self.settings.schedule.next_wait(Utc::now());
            if !sleep_or_shutdown(wait, shutdown).await {
                return Ok(());
            }
            let n = self.step(Utc::now()).await?;
            tracing::info!(
                orders = n,
                "Retention: purged orders synced for every consumer."
            );
        }
    }
}
