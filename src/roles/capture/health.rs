//! Whether capture's two jobs are working: the order poll (with the
//! binlog-triggered read) and the lifecycle scan.
//!
//! A failing read no longer ends capture's session (one refused table must
//! not stop the capture of new orders), so a failure that goes on has to be
//! seen some other way: each job records its failures and successes here,
//! `/readyz` answers 503 once a job has failed for longer than
//! [`FAILING_AFTER`] polls, and `order_sync_capture_failing_seconds{part}`
//! says for how long (an alert rule uses it). Logs say when a failure starts,
//! when its message changes, every minute while it goes on, and when
//! it ends, not once per poll.

use std::{
    collections::BTreeMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// The parts of capture that fail on their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// Reading new orders (polled or binlog-triggered) and publishing them.
    Orders,
    /// Reading invoices, shipments, credit memos and state changes.
    Lifecycle,
}

impl Part {
    pub const ALL: [Part; 2] = [Part::Orders, Part::Lifecycle];

    /// The `part` label of the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Orders => "orders",
            Part::Lifecycle => "lifecycle",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Part::Orders => "the order poll",
            Part::Lifecycle => "the scan of invoices, shipments, credit memos and state changes",
        }
    }
}

/// Consecutive failed polls after which a part counts as failing (and
/// `/readyz` says so): one failed poll is a blip a retry fixes.
pub const FAILING_AFTER: u32 = 3;

/// How often a failure that goes on is logged again.
const REPEAT_LOG: Duration = Duration::from_secs(60);

#[derive(Debug, Clone)]
struct Failing {
    since: Instant,
    failures: u32,
    error: String,
    logged: Instant,
}

/// What a caller should do about one failure: log it or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Said {
    /// A new failure, or a new message, or a reminder: log it.
    Log,
    /// Logged recently with the same message.
    Quiet,
}

/// Shared by capture (which writes) and the HTTP surface (which reads).
#[derive(Debug, Default)]
pub struct CaptureHealth {
    parts: Mutex<BTreeMap<Part, Failing>>,
}

impl CaptureHealth {
    /// Records a failed attempt of `part`.
    pub fn failed(&self, part: Part, error: &impl std::fmt::Display) -> Said {
        let error = error.to_string();
        let now = Instant::now();
        let mut parts = self.parts.lock().expect("health lock is never poisoned");
        match parts.get_mut(&part) {
            Some(f) => {
                f.failures += 1;
                let changed = f.error != error;
                f.error = error;
                if changed || f.logged.elapsed() >= REPEAT_LOG {
                    f.logged = now;
                    Said::Log
                } else {
                    Said::Quiet
                }
            }
            None => {
                parts.insert(
                    part,
                    Failing {
                        since: now,
                        failures: 1,
                        error,
                        logged: now,
                    },
                );
                Said::Log
            }
        }
    }

    /// Records a successful attempt of `part`; returns how long it had been
    /// failing, if it had.
    pub fn succeeded(&self, part: Part) -> Option<Duration> {
        let mut parts = self.parts.lock().expect("health lock is never poisoned");
        parts.remove(&part).map(|f| f.since.elapsed())
    }

    /// Forgets every failure (capture stopped leading: another instance's
    /// health is its own).
    pub fn clear(&self) {
        self.parts
            .lock()
            .expect("health lock is never poisoned")
            .clear();
    }

    /// How long `part` has been failing, counting only once it failed
    /// [`FAILING_AFTER`] times in a row (zero otherwise).
    pub fn failing_for(&self, part: Part) -> Duration {
        let parts = self.parts.lock().expect("health lock is never poisoned");
        parts
            .get(&part)
            .filter(|f| f.failures >= FAILING_AFTER)
            .map_or(Duration::ZERO, |f| f.since.elapsed())
    }

    /// One line per part failing [`FAILING_AFTER`] times in a row or more,
    /// for `/readyz`.
    pub fn problems(&self) -> Vec<String> {
        let parts = self.parts.lock().expect("health lock is never poisoned");
        parts
            .iter()
            .filter(|(_, f)| f.failures >= FAILING_AFTER)
            .map(|(part, f)| {
                format!(
                    "capture: {} has failed {} times in a row for {}s: {}",
                    part.what(),
                    f.failures,
                    f.since.elapsed().as_secs(),
                    f.error
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_counts_as_failing_only_after_several_failures_in_a_row() {
        let h = CaptureHealth::default();
        assert_eq!(h.failed(Part::Lifecycle, &"refused"), Said::Log);
        assert_eq!(h.failed(Part::Lifecycle, &"refused"), Said::Quiet);
        assert!(h.problems().is_empty(), "two failures are not yet failing");
        assert_eq!(h.failed(Part::Lifecycle, &"refused"), Said::Quiet);
        let problems = h.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("3 times in a row") && problems[0].contains("refused"),
            "{problems:?}"
        );
        assert!(h.succeeded(Part::Orders).is_none(), "orders never failed");
        assert!(h.succeeded(Part::Lifecycle).is_some());
        assert!(h.problems().is_empty());
        assert_eq!(h.failing_for(Part::Lifecycle), Duration::ZERO);
    }

    #[test]
    fn a_new_message_is_logged_at_once() {
        let h = CaptureHealth::default();
        h.failed(Part::Orders, &"refused");
        assert_eq!(h.failed(Part::Orders, &"lock wait timeout"), Said::Log);
    }
}
