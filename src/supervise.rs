//! What every long-running role shares: the error type its sessions end with,
//! and the backoff between a failed session and the next one.
//!
//! A role's `run` is a loop of sessions. A session holds a channel (and a
//! consumer) and works unit by unit; when the broker or a database goes away
//! the session ends with an error, nothing half-done has been acknowledged,
//! and the loop waits (with backoff, and for shutdown) before starting another.

use std::time::{Duration, Instant};

use backoff::{backoff::Backoff, ExponentialBackoff};
use tokio_util::sync::CancellationToken;

use crate::{broker::BrokerError, ledger::LedgerError, magento::MagentoError};

#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Magento(#[from] MagentoError),
    #[error("the RabbitMQ consumer on `{0}` ended (connection or channel closed)")]
    ConsumerEnded(String),
}

impl From<lapin::Error> for RoleError {
    fn from(e: lapin::Error) -> Self {
        RoleError::Broker(BrokerError::Channel(e))
    }
}

/// Backoff between sessions of one role.
pub struct Reconnect {
    role: &'static str,
    backoff: ExponentialBackoff,
    started: Instant,
}

impl Reconnect {
    pub fn new(role: &'static str) -> Self {
        Self {
            role,
            backoff: ExponentialBackoff {
                initial_interval: Duration::from_millis(200),
                current_interval: Duration::from_millis(200),
                max_interval: Duration::from_secs(15),
                max_elapsed_time: None,
                ..ExponentialBackoff::default()
            },
            started: Instant::now(),
        }
    }

    /// Marks the start of a session.
    pub fn session_started(&mut self) {
        self.started = Instant::now();
    }

    /// Logs the failure and waits before the next session. Returns false if
    /// shutdown came first.
    pub async fn wait(&mut self, error: &RoleError, shutdown: &CancellationToken) -> bool {
        // A session that ran a while was a success interrupted, not a retry storm.
        if self.started.elapsed() > Duration::from_secs(30) {
            self.backoff.reset();
        }
        let delay = self
            .backoff
            .next_backoff()
            .unwrap_or(Duration::from_secs(15));
        tracing::warn!(role = self.role, error = %error, retry_in = ?delay, "Session failed; retrying.");
        tokio::select! {
            _ = tokio::time::sleep(delay) => true,
            _ = shutdown.cancelled() => false,
        }
    }
}

/// Sleeps for `d` unless shutdown comes first; returns false on shutdown.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.cancelled() => false,
    }
}
