//! Operator actions, the same from the CLI, the JSON API and the status page:
//! re-send, pause, resume, un-park. What operators type is parsed once, by
//! [`input`]; each action checks the consumer it is given before touching the
//! ledger.

pub mod input;

use chrono::{DateTime, Utc};

use crate::ledger::{Ledger, LedgerError, Selection, ALL_CONSUMERS};
pub use input::InputError;

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The caller named a consumer that is not configured.
    #[error("unknown consumer `{0}`; configured: {1}")]
    UnknownConsumer(String, String),
    /// The caller's input is not usable.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The ledger failed: retry later.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl ControlError {
    /// Whether the caller is at fault (a 400 over HTTP, exit code 2 in the CLI).
    pub fn is_caller_error(&self) -> bool {
        !matches!(self, ControlError::Ledger(_))
    }
}

/// What a re-send did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ResyncReport {
    /// Orders named by the selection and found in the ledger.
    pub orders: u64,
    /// Ledger rows made pending again.
    pub rows: u64,
}

/// Orders re-sent per ledger transaction.
const STEP: u32 = 500;

#[derive(Clone)]
pub struct Control {
    ledger: Ledger,
    source: String,
    consumers: Vec<String>,
}

impl Control {
    pub fn new(ledger: Ledger, source: String, consumers: Vec<String>) -> Self {
        Self {
            ledger,
            source,
            consumers,
        }
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    pub fn consumers(&self) -> &[String] {
        &self.consumers
    }

    /// Checks a consumer name against the configuration.
    pub fn check_consumer(&self, consumer: Option<&str>) -> Result<(), ControlError> {
        match consumer {
            Some(c) if !self.consumers.iter().any(|k| k == c) => Err(
                ControlError::UnknownConsumer(c.to_owned(), self.consumers.join(", ")),
            ),
            _ => Ok(()),
        }
    }

    /// How many orders a selection names (for a progress bar).
    pub async fn count(&self, selection: &Selection) -> Result<u64, ControlError> {
        Ok(self.ledger.count_orders(selection).await?)
    }

    /// Re-sends the selected orders (to one consumer, or all), in steps of
    /// `STEP` orders; `progress` hears the orders done so far after each.
    pub async fn resync(
        &self,
        selection: &Selection,
        consumer: Option<&str>,
        event: Option<&str>,
        now: DateTime<Utc>,
        mut progress: impl FnMut(u64),
    ) -> Result<ResyncReport, ControlError> {
        self.check_consumer(consumer)?;
        let event = event.map(input::event).transpose()?;
        let mut report = ResyncReport::default();
        let mut after_id = 0;
        loop {
            let ids = self.ledger.select_orders(selection, after_id, STEP).await?;
            if ids.is_empty() {
                break;
            }
            report.rows += self
                .ledger
                .resync(&ids, consumer, event, &self.source, now)
                .await?;
            report.orders += ids.len() as u64;
            progress(report.orders);
            if ids.len() < STEP as usize {
                break;
            }
            after_id = *ids.last().expect("not empty");
        }
        Ok(report)
    }

    /// Pauses one consumer, or all when `None`.
    pub async fn pause(
        &self,
        consumer: Option<&str>,
        by: &str,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), ControlError> {
        self.check_consumer(consumer)?;
        if let Some(r) = reason {
            input::short_text("reason", r)?;
        }
        self.ledger
            .pause(consumer.unwrap_or(ALL_CONSUMERS), by, reason, now)
            .await?;
        Ok(())
    }

    /// Resumes one consumer, or lifts every pause when `None`. Returns whether
    /// a pause was lifted.
    pub async fn resume(&self, consumer: Option<&str>) -> Result<bool, ControlError> {
        self.check_consumer(consumer)?;
        Ok(self.ledger.resume(consumer).await?)
    }

    /// Skips parked rows of these orders for good (see [`Ledger::skip`]).
    pub async fn skip(
        &self,
        entity_ids: &[u32],
        consumer: Option<&str>,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, ControlError> {
        self.check_consumer(consumer)?;
        input::at_most("entity_ids", entity_ids.len())?;
        if entity_ids.is_empty() {
            return Err(ControlError::Input(input::InputError::new(
                "entity_ids",
                "name the orders whose parked rows to skip",
            )));
        }
        Ok(self.ledger.skip(entity_ids, consumer, by, now).await?)
    }

    pub async fn unpark(
        &self,
        entity_ids: Option<&[u32]>,
        consumer: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, ControlError> {
        self.check_consumer(consumer)?;
        if let Some(ids) = entity_ids {
            input::at_most("entity_ids", ids.len())?;
        }
        Ok(self.ledger.unpark(entity_ids, consumer, now).await?)
    }
}
