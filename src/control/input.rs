//! Operator input → what the ledger is asked: one parser for the CLI, the JSON
//! API and the status page alike, so the three cannot drift apart. Every
//! problem is an [`InputError`] naming the field (flag, JSON key or form field).

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::ledger::{OrderFilter, Selection, State};

/// Input that cannot be used, with the field it came in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InputError {
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Most ids one request may name; a larger selection is a range.
pub const MAX_IDS: usize = 10_000;

/// Most characters of free text (a pause reason).
pub const MAX_TEXT: usize = 500;

/// Refuses a list longer than [`MAX_IDS`].
pub fn at_most(field: &str, n: usize) -> Result<(), InputError> {
    if n > MAX_IDS {
        return Err(InputError::new(
            field,
            format!("{n} ids are more than {MAX_IDS}; select a range (since/until) instead"),
        ));
    }
    Ok(())
}

/// Refuses free text longer than [`MAX_TEXT`] characters.
pub fn short_text(field: &str, text: &str) -> Result<(), InputError> {
    let n = text.chars().count();
    if n > MAX_TEXT {
        return Err(InputError::new(
            field,
            format!("{n} characters are more than {MAX_TEXT}"),
        ));
    }
    Ok(())
}

/// A time given as `2026-11-27`, `2026-11-27T10:00:00Z` (any offset) or
/// `2026-11-27 10:00:00` (UTC).
pub fn parse_time(field: &str, s: &str) -> Result<DateTime<Utc>, InputError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Ok(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            InputError::new(
                field,
                format!("`{s}` is not a date like 2026-11-27 or 2026-11-27T10:00:00Z"),
            )
        })
}

/// Entity ids given as text (CLI arguments, form fields).
pub fn entity_ids<S: AsRef<str>>(field: &str, given: &[S]) -> Result<Vec<u32>, InputError> {
    given
        .iter()
        .map(|s| {
            let s = s.as_ref().trim();
            s.parse()
                .map_err(|_| InputError::new(field, format!("`{s}` is not an entity_id")))
        })
        .collect()
}

fn number<T: std::str::FromStr>(field: &str, s: &str) -> Result<T, InputError> {
    s.parse()
        .map_err(|_| InputError::new(field, format!("`{s}` is not a number")))
}

/// Which orders to act on, as given: exactly one of the ids or a range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectionInput {
    pub entity_ids: Option<Vec<u32>>,
    pub increment_ids: Option<Vec<String>>,
    /// Orders placed at or after (UTC).
    pub since: Option<String>,
    /// ... and before (default: now).
    pub until: Option<String>,
}

impl SelectionInput {
    /// The selection, or why there is none: not exactly one form given, a
    /// date that is not one, or an empty range.
    pub fn parse(&self, now: DateTime<Utc>) -> Result<Selection, InputError> {
        if let Some(ids) = &self.entity_ids {
            at_most("entity_ids", ids.len())?;
        }
        if let Some(ids) = &self.increment_ids {
            at_most("increment_ids", ids.len())?;
            if let Some(long) = ids.iter().find(|i| i.len() > 50) {
                return Err(InputError::new(
                    "increment_ids",
                    format!("`{}…` is longer than an increment id (50)", &long[..20]),
                ));
            }
        }
        let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
        match (&self.entity_ids, &self.increment_ids, blank(&self.since)) {
            (Some(ids), None, true) => Ok(Selection::EntityIds(ids.clone())),
            (None, Some(ids), true) => Ok(Selection::IncrementIds(ids.clone())),
            (None, None, false) => {
                let since = parse_time("since", self.since.as_deref().unwrap_or(""))?;
                let until = match self.until.as_deref().filter(|u| !u.trim().is_empty()) {
                    Some(u) => parse_time("until", u)?,
                    None => now,
                };
                if since >= until {
                    return Err(InputError::new(
                        "until",
                        format!("the range is empty: {since} is not before {until}"),
                    ));
                }
                Ok(Selection::Placed { since, until })
            }
            _ => Err(InputError::new(
                "selection",
                "give exactly one of entity_ids, increment_ids, or since (with an optional until)",
            )),
        }
    }
}

/// List filters from query pairs; empty values (as an HTML form sends them)
/// mean "no filter".
pub fn order_filter<K: AsRef<str>, V: AsRef<str>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Result<OrderFilter, InputError> {
    let mut f = OrderFilter::default();
    for (k, v) in pairs {
        let (k, v) = (k.as_ref(), v.as_ref().trim());
        if v.is_empty() {
            continue;
        }
        match k {
            "state" => {
                f.state = Some(State::parse(v).ok_or_else(|| {
                    InputError::new("state", format!("`{v}` is not one of {}", State::names()))
                })?)
            }
            "consumer" => f.consumer = Some(v.to_owned()),
            "increment_id" => f.increment_id = Some(v.to_owned()),
            "placed_from" => f.placed_from = Some(parse_time("placed_from", v)?),
            "placed_to" => f.placed_to = Some(parse_time("placed_to", v)?),
            "store_id" => f.store_id = Some(number("store_id", v)?),
            "limit" => f.limit = Some(number("limit", v)?),
            "before" => f.before = Some(number("before", v)?),
            other => {
                return Err(InputError::new(
                    other,
                    "unknown filter; use state, consumer, store_id, increment_id, placed_from, placed_to, limit, before",
                ))
            }
        }
    }
    Ok(f)
}

/// An event's subscription name (`placed`, `invoiced`, …).
pub fn event(text: &str) -> Result<crate::message::Event, InputError> {
    crate::message::Event::parse(text.trim()).ok_or_else(|| {
        InputError::new(
            "event",
            format!(
                "`{}` is not an event; use {}",
                text.chars().take(40).collect::<String>(),
                crate::message::Event::names()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        parse_time("now", "2026-11-28T12:00:00Z").unwrap()
    }

    #[test]
    fn operator_dates_are_read_as_utc_in_three_forms() {
        let day = parse_time("since", "2026-11-27").unwrap();
        assert_eq!(day.to_rfc3339(), "2026-11-27T00:00:00+00:00");
        assert_eq!(
            parse_time("since", "2026-11-27 10:30:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-27T10:30:00+00:00"
        );
        assert_eq!(
            parse_time("since", "2026-11-27T12:30:00+02:00")
                .unwrap()
                .to_rfc3339(),
            "2026-11-27T10:30:00+00:00"
        );
        let e = parse_time("since", "yesterday").unwrap_err();
        assert_eq!(e.field, "since");
    }

    #[test]
    fn a_bad_until_is_refused_not_taken_as_now() {
        let input = SelectionInput {
            since: Some("2026-11-01".into()),
            until: Some("soon".into()),
            ..Default::default()
        };
        let e = input.parse(now()).unwrap_err();
        assert_eq!(e.field, "until");
        let open = SelectionInput {
            since: Some("2026-11-01".into()),
            until: Some(String::new()),
            ..Default::default()
        };
        assert!(matches!(
            open.parse(now()).unwrap(),
            Selection::Placed { until, .. } if until == now()
        ));
    }

    #[test]
    fn a_selection_needs_exactly_one_form_and_a_range_that_is_not_empty() {
        let both = SelectionInput {
            entity_ids: Some(vec![1]),
            since: Some("2026-11-01".into()),
            ..Default::default()
        };
        assert_eq!(both.parse(now()).unwrap_err().field, "selection");
        assert_eq!(
            SelectionInput::default().parse(now()).unwrap_err().field,
            "selection"
        );
        let backwards = SelectionInput {
            since: Some("2026-11-20".into()),
            until: Some("2026-11-10".into()),
            ..Default::default()
        };
        assert!(backwards
            .parse(now())
            .unwrap_err()
            .message
            .contains("empty"));
    }

    #[test]
    fn long_lists_and_long_text_are_refused_naming_the_field() {
        let many = SelectionInput {
            entity_ids: Some((0..=MAX_IDS as u32).collect()),
            ..Default::default()
        };
        assert_eq!(many.parse(now()).unwrap_err().field, "entity_ids");
        assert_eq!(
            short_text("reason", &"x".repeat(MAX_TEXT + 1))
                .unwrap_err()
                .field,
            "reason"
        );
        assert!(short_text("reason", &"é".repeat(MAX_TEXT)).is_ok());
    }

    #[test]
    fn filters_name_the_field_that_is_wrong_and_skip_empty_ones() {
        let f = order_filter([("state", "parked"), ("store_id", ""), ("limit", "5")]).unwrap();
        assert_eq!(f.state, Some(State::Parked));
        assert_eq!(f.store_id, None);
        assert_eq!(f.limit, Some(5));
        assert_eq!(
            order_filter([("state", "lost")]).unwrap_err().field,
            "state"
        );
        assert_eq!(
            order_filter([("placed_to", "2026-13-01")])
                .unwrap_err()
                .field,
            "placed_to"
        );
        assert_eq!(
            order_filter([("colour", "red")]).unwrap_err().field,
            "colour"
        );
        assert_eq!(
            entity_ids("entity_id", &["12", "x"]).unwrap_err().message,
            "`x` is not an entity_id"
        );
    }
}
