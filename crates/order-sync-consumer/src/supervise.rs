//! The backoff between sessions of a long-running loop.
//!
//! A loop that talks to a broker or a database is a series of sessions: a
//! session holds its channels and works unit by unit; when a service goes away
//! it ends with an error, nothing half-done has been acknowledged, and the loop
//! waits (with backoff, and for shutdown) before starting another.

use std::{
    fmt::Display,
    time::{Duration, Instant},
};

use backoff::{backoff::Backoff, ExponentialBackoff};
use tokio_util::sync::CancellationToken;

/// A session that ran at least this long was a success interrupted, not a
/// retry storm: the next failure starts the backoff from the beginning.
const HEALTHY_SESSION: Duration = Duration::from_secs(30);

/// Backoff between sessions of one loop.
pub struct Reconnect {
    what: &'static str,
    backoff: ExponentialBackoff,
    started: Instant,
}

impl Reconnect {
    /// Backoff from 200 ms up to 15 s, for the loop named `what` in logs.
    pub fn new(what: &'static str) -> Self {
        Self {
            what,
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
    pub async fn wait(&mut self, error: &impl Display, shutdown: &CancellationToken) -> bool {
        if self.started.elapsed() > HEALTHY_SESSION {
            self.backoff.reset();
        }
        let delay = self
            .backoff
            .next_backoff()
            .unwrap_or(Duration::from_secs(15));
        tracing::warn!(role = self.what, error = %error, retry_in = ?delay, "Session failed; retrying.");
        sleep_or_shutdown(delay, shutdown).await
    }
}

/// Sleeps for `d` unless shutdown comes first; returns false on shutdown.
pub async fn sleep_or_shutdown(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.cancelled() => false,
    }
}
