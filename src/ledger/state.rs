//! The sync state of one (order, consumer) row: the one list of state names
//! the SQL, the JSON API, the status page and the CLI all use.

use mysql_async::{prelude::FromValue, FromValueError, Value};

/// Sync state of one (order, consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Recorded, not yet published (or reserved by a publisher right now).
    Pending,
    /// Published; waiting for the consumer's ack.
    Published,
    /// The consumer acked it `synced`.
    Synced,
    /// The consumer acked it `failed`; due again after the backoff.
    Failed,
    /// Used up its deliveries, or could never be delivered: waits for a person.
    Parked,
    /// A placed order in one of `capture.hold_states` (not paid yet): recorded,
    /// not sent; it becomes pending when the order leaves those states.
    Held,
    /// Settled without a delivery: an operator skipped it, or the order was
    /// cancelled while held and `capture.hold_canceled = "drop"`. Later events
    /// of the order are not held up by it.
    Skipped,
}

impl State {
    /// Every state, in the order the status page and `status` show them.
    pub const ALL: [State; 7] = [
        State::Held,
        State::Pending,
        State::Published,
        State::Failed,
        State::Parked,
        State::Skipped,
        State::Synced,
    ];

    /// States that let an order's next event go: the consumer has this one,
    /// or nobody will send it.
    pub const SETTLED: [State; 2] = [State::Synced, State::Skipped];

    /// States a row is still owed a delivery in: the relay takes these when due.
    pub const OPEN: [State; 3] = [State::Pending, State::Published, State::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Published => "published",
            State::Synced => "synced",
            State::Failed => "failed",
            State::Parked => "parked",
            State::Held => "held",
            State::Skipped => "skipped",
        }
    }

    /// The state named `s`, or `None` for a name that is not one.
    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// `'pending', 'published', 'failed'`: a list of states for SQL.
    pub fn sql_list(states: &[State]) -> String {
        states
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// All names, comma-separated, for error messages.
    pub fn names() -> String {
        State::ALL.map(State::as_str).join(", ")
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<State> for Value {
    fn from(s: State) -> Value {
        Value::from(s.as_str())
    }
}

/// A state column; a name this build does not know is an error, not a guess.
pub(crate) fn state_value(v: Value) -> Result<State, FromValueError> {
    let text = String::from_value_opt(v)?;
    State::parse(&text).ok_or(FromValueError(Value::Bytes(text.into_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_name_reads_back_and_an_unknown_one_is_refused() {
        for s in State::ALL {
            assert_eq!(state_value(Value::from(s.as_str())).unwrap(), s);
        }
        assert!(state_value(Value::from("parkd")).is_err());
        assert_eq!(State::parse("synced"), Some(State::Synced));
        assert_eq!(State::parse("Synced"), None);
    }

    /// The ledger's statements name states through [`State`] (`'{Synced}'`
    /// with the variant in scope, or [`State::sql_list`]), so a renamed or
    /// added state cannot leave a statement behind. Migrations are history
    /// and keep their text.
    #[test]
    fn no_statement_of_the_ledger_spells_a_state_name_itself() {
        let sources = [
            ("acks.rs", include_str!("acks.rs")),
            ("audience.rs", include_str!("audience.rs")),
            ("instances.rs", include_str!("instances.rs")),
            ("pauses.rs", include_str!("pauses.rs")),
            ("sessions.rs", include_str!("sessions.rs")),
            ("backfills.rs", include_str!("backfills.rs")),
            ("counts.rs", include_str!("counts.rs")),
            ("deliveries.rs", include_str!("deliveries.rs")),
            ("events.rs", include_str!("events.rs")),
            ("notes.rs", include_str!("notes.rs")),
            ("operator.rs", include_str!("operator.rs")),
            ("position.rs", include_str!("position.rs")),
            ("recording.rs", include_str!("recording.rs")),
            ("mod.rs", include_str!("mod.rs")),
        ];
        for (file, text) in sources {
            for state in State::ALL {
                let spelled = format!("'{state}'");
                assert!(
                    !text.contains(&spelled),
                    "src/ledger/{file} spells {spelled}: use '{{{state:?}}}' from State"
                );
            }
        }
    }
}
