//! The messages on the wire: what capture publishes, what sync services receive,
//! and the acknowledgement they send back.
//!
//! The order itself travels as raw JSON text from capture to the ledger and on
//! to every consumer, so it is serialized once and never re-parsed into floats
//! or re-ordered on the way.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{broker::topology::CAPTURE_ROUTING_KEY, magento::shape::Shape};

/// Version of the envelope layout; bumped on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// An event in an order's life; one list for both sides of the wire, kept
/// in the consumer crate.
pub use order_sync_consumer::Event;

/// An event column; a name this build does not know is an error, not a guess.
pub(crate) fn event_value(v: mysql_async::Value) -> Result<Event, mysql_async::FromValueError> {
    use mysql_async::prelude::FromValue;
    let text = String::from_value_opt(v)?;
    Event::parse(&text).ok_or(mysql_async::FromValueError(mysql_async::Value::Bytes(
        text.into_bytes(),
    )))
}

/// An event as a column value (its subscription name).
pub(crate) fn event_to_value(e: Event) -> mysql_async::Value {
    mysql_async::Value::from(e.as_str())
}

/// What capture publishes to `<prefix>.orders`: written with the order
/// borrowed (`O = &RawValue`, no copy of its text), read with it owned.
#[derive(Debug, Serialize, Deserialize)]
pub struct CapturedOrder<O = Box<RawValue>> {
    pub schema_version: u32,
    /// Always `sales_order_place_after`.
    pub event: String,
    pub source: String,
    pub captured_at: DateTime<Utc>,
    pub order: O,
    /// The order was in one of `capture.hold_states`: recorded, not sent yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub held: bool,
}

impl<O> CapturedOrder<O> {
    pub fn new(source: &str, captured_at: DateTime<Utc>, order: O, held: bool) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            event: CAPTURE_ROUTING_KEY.to_owned(),
            source: source.to_owned(),
            captured_at,
            order,
            held,
        }
    }
}

impl CapturedOrder {
    /// The identifying fields of the order inside.
    pub fn key(&self) -> Result<OrderKey, serde_json::Error> {
        serde_json::from_str(self.order.get())
    }
}

/// The fields of an order the ledger indexes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct OrderKey {
    pub entity_id: u32,
    pub increment_id: Option<String>,
    pub store_id: Option<u16>,
    /// Magento's `created_at`, UTC, `YYYY-MM-DD HH:MM:SS`.
    pub created_at: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

/// What a sync service receives on `<prefix>.que.<consumer>`.
#[derive(Debug, Serialize)]
struct QueMessage<'a> {
    schema_version: u32,
    /// The event's name: `sales_order_place_after_que`, `sales_order_invoice_save_after_que`, ….
    event: &'static str,
    /// Stable for every delivery of this order to this consumer; echo it in the ack.
    message_id: &'a str,
    source: &'a str,
    consumer: &'a str,
    captured_at: DateTime<Utc>,
    /// 1 for the first delivery, growing with each further copy.
    attempt: u32,
    /// Deliveries before the order is parked (`relay.max_attempts`): the
    /// last attempt is the one where `attempt == max_attempts`.
    max_attempts: u32,
    /// The order (placed), or the order's identifiers, state and status.
    order: &'a RawValue,
    /// The event's position in the order's life: 0 placed, then 1, 2, ….
    #[serde(skip_serializing_if = "is_zero")]
    sequence: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    invoice: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shipment: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    creditmemo: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a RawValue>,
}

fn is_zero(n: &u16) -> bool {
    *n == 0
}

/// An event's stored JSON after placement: the order's identifiers, state and
/// status, and the document or change it is about. Kept as raw text, so
/// DECIMAL strings and key order pass through untouched.
#[derive(Debug, Deserialize)]
pub struct EventDetails<'a> {
    #[serde(borrow)]
    pub order: &'a RawValue,
    #[serde(borrow, default)]
    pub invoice: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub shipment: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub creditmemo: Option<&'a RawValue>,
    /// `status_changed` and `canceled`: the state and status before.
    #[serde(borrow, default)]
    pub previous: Option<&'a RawValue>,
}

/// One delivery of a stored order to one consumer.
#[derive(Debug, Clone, Copy)]
pub struct Delivering<'a> {
    pub event: Event,
    /// 0 for placed, then the event's place in the order's life.
    pub seq: u16,
    pub message_id: &'a str,
    pub consumer: &'a str,
    pub captured_at: DateTime<Utc>,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// `relay.max_attempts`: a failure on the attempt that reaches it parks
    /// the order instead of bringing it again.
    pub max_attempts: u32,
    /// The order JSON as stored in the ledger.
    pub order: &'a str,
    /// What of the order this consumer gets (`consumers.<name>.fields`,
    /// `deny_fields`); `None`: all of it, passed through as stored.
    pub shape: Option<&'a Shape>,
}

impl Delivering<'_> {
    /// The message body: the one place a consumer message is assembled, for
    /// the relay's queues, the pull API and the API's "message as sent".
    pub fn body(&self, source: &str) -> Vec<u8> {
        let stored = stored_order(self.order);
        // A later event's stored JSON holds `order` and its document; a
        // placement's is the order itself.
        let details = match self.event {
            Event::Placed => None,
            _ => serde_json::from_str::<EventDetails>(stored.get()).ok(),
        };
        let order: &RawValue = details.as_ref().map_or(&*stored, |d| d.order);
        let shaped = self.shape.and_then(|shape| shaped(order, shape));
        serde_json::to_vec(&QueMessage {
            schema_version: SCHEMA_VERSION,
            event: self.event.que_name(),
            message_id: self.message_id,
            source,
            consumer: self.consumer,
            captured_at: self.captured_at,
            attempt: self.attempt,
            max_attempts: self.max_attempts,
            order: shaped.as_deref().unwrap_or(order),
            sequence: self.seq,
            invoice: details.as_ref().and_then(|d| d.invoice),
            shipment: details.as_ref().and_then(|d| d.shipment),
            creditmemo: details.as_ref().and_then(|d| d.creditmemo),
            previous: details.as_ref().and_then(|d| d.previous),
        })
        .expect("a message of strings, numbers and valid JSON serializes")
    }

    /// The message as a JSON value, for API responses.
    pub fn json(&self, source: &str) -> serde_json::Value {
        serde_json::from_slice(&self.body(source)).expect("serde_json reads what it wrote")
    }
}

/// The CloudEvents 1.0 attributes of one delivery, by their bare names: each
/// binding's binary content mode puts them in headers under its own prefix
/// (`cloudEvents_` over AMQP, `ce-` over HTTP) and leaves the body as it is.
pub fn cloud_event_attributes(
    delivery: &Delivering,
    increment_id: Option<&str>,
    source: &str,
) -> Vec<(&'static str, String)> {
    let mut attributes = vec![
        ("specversion", "1.0".to_owned()),
        ("id", delivery.message_id.to_owned()),
        ("source", source.to_owned()),
        ("type", delivery.event.que_name().to_owned()),
        (
            "time",
            delivery
                .captured_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        ),
    ];
    if let Some(inc) = increment_id {
        attributes.push(("subject", inc.to_owned()));
    }
    attributes
}

/// What CloudEvents' HTTP binding percent-encodes in a header value: space,
/// `"`, `%` and everything outside printable ASCII (non-ASCII is always
/// encoded, as UTF-8 bytes).
const CE_HEADER: &percent_encoding::AsciiSet =
    &percent_encoding::CONTROLS.add(b' ').add(b'"').add(b'%');

/// An attribute's value as a `ce-` HTTP header carries it: percent-encoded,
/// so any increment id (`Zoë`, a CR/LF a shop's import left in one) makes a
/// valid header and reads back as it was.
pub fn ce_header_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, CE_HEADER).to_string()
}

/// The order cut to a consumer's shape (`None` if it is not a JSON object,
/// which then goes as stored). Key order is kept and DECIMAL strings stay
/// strings; numbers pass through serde_json's own representation.
fn shaped(order: &RawValue, shape: &Shape) -> Option<Box<RawValue>> {
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(order.get()).ok()?;
    shape.apply(&mut map);
    serde_json::value::to_raw_value(&map).ok()
}

/// The stored order JSON, as it goes into a message: borrowed as is (it is
/// JSON order-sync wrote), or, were the text ever corrupt, sent as a JSON
/// string rather than lost.
fn stored_order(text: &str) -> std::borrow::Cow<'_, RawValue> {
    match serde_json::from_str::<&RawValue>(text) {
        Ok(raw) => std::borrow::Cow::Borrowed(raw),
        Err(_) => std::borrow::Cow::Owned(
            RawValue::from_string(serde_json::to_string(text).expect("a string serializes"))
                .expect("a JSON string is valid JSON"),
        ),
    }
}

/// The message id of every delivery of one order's placement to one consumer.
pub fn message_id(source: &str, entity_id: u32, consumer: &str) -> String {
    format!("{source}:{entity_id}:{consumer}")
}

/// The message id of every delivery of an order's later event to one
/// consumer: the event's place in the order's life and its name make it
/// unique, and it never changes between deliveries.
pub fn event_message_id(
    source: &str,
    entity_id: u32,
    seq: u16,
    event: Event,
    consumer: &str,
) -> String {
    format!("{source}:{entity_id}:{seq}-{event}:{consumer}")
}

/// An acknowledgement from a sync service, published to `<prefix>.acks`.
///
/// ```json
/// {"message_id": "default:42:erp", "consumer": "erp", "entity_id": 42, "status": "synced"}
/// {"consumer": "erp", "increment_id": "000000042", "store_id": 1, "status": "failed", "error": "ERP timeout"}
/// {"message_id": "default:42:erp", "consumer": "erp", "status": "synced", "remote_id": "SO-4711", "remote_url": "https://erp.example/so/4711"}
/// ```
/// The order is named by `entity_id`, or by `increment_id` with `store_id`, or by
/// `message_id` alone; every identifier given must name the same order. Any
/// other field is refused. Over AMQP the routing key must be `consumer`.
/// `remote_id` and `remote_url` say what the order became in the sync
/// service (its record there); the ledger keeps them on the row.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    pub consumer: String,
    pub status: AckStatus,
    #[serde(default)]
    pub message_id: Option<String>,
    #[serde(default)]
    pub entity_id: Option<u32>,
    #[serde(default)]
    pub increment_id: Option<String>,
    #[serde(default)]
    pub store_id: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    /// The sync service's own id for the order (at most
    /// [`MAX_REMOTE_ID`] characters, no control characters).
    #[serde(default)]
    pub remote_id: Option<String>,
    /// Where the service shows that record: an `https://` or `http://` URL
    /// of at most [`MAX_REMOTE_URL`] characters.
    #[serde(default)]
    pub remote_url: Option<String>,
}

/// Longest `remote_id` an ack may carry.
pub const MAX_REMOTE_ID: usize = 255;
/// Longest `remote_url` an ack may carry.
pub const MAX_REMOTE_URL: usize = 2000;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AckStatus {
    Synced,
    Failed,
}

/// Why an ack was not applied; it is dead-lettered with this reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckRejection {
    #[error("ack of {size} bytes is larger than the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("ack is not valid UTF-8")]
    NotUtf8,
    #[error("ack is not a valid ack message: {0}")]
    Malformed(String),
    #[error("ack names no order: give entity_id, increment_id with store_id, or message_id")]
    NoOrder,
    #[error("ack is from unknown consumer `{0}`")]
    UnknownConsumer(String),
    #[error("ack is for an order the ledger does not hold")]
    UnknownOrder,
    /// The reason never says what the right one is: it would hand a guesser the answer.
    #[error("ack message_id `{given}` does not match the order")]
    MessageIdMismatch { given: String },
    #[error("ack names two different orders: its increment_id and store_id are not those of entity_id {0}")]
    ConflictingIds(u32),
    #[error("ack for consumer `{consumer}` was published with routing key `{routing_key}`; publish a consumer's acks with its own name as the routing key")]
    WrongRoutingKey {
        consumer: String,
        routing_key: String,
    },
    #[error("ack for consumer `{consumer}` was not published by its broker user (consumers.{consumer}.broker_user)")]
    WrongUser { consumer: String },
    #[error("ack names consumer `{consumer}`, not the one this credential is for")]
    NotYours { consumer: String },
    #[error("duplicate ack: the order is already synced for this consumer")]
    Duplicate,
    #[error("late ack: the order is already {0} for this consumer")]
    Late(String),
    #[error("ack field `{field}` {problem}")]
    BadRemote {
        field: &'static str,
        problem: String,
    },
}

/// Checks what an ack says the order became in the sync service.
pub fn check_remote(ack: &Ack) -> Result<(), AckRejection> {
    let bad = |field, problem: String| Err(AckRejection::BadRemote { field, problem });
    if let Some(id) = &ack.remote_id {
        let chars = id.chars().count();
        if id.trim().is_empty() {
            return bad("remote_id", "is empty".into());
        }
        if chars > MAX_REMOTE_ID {
            return bad(
                "remote_id",
                format!("is {chars} characters long; at most {MAX_REMOTE_ID} are kept"),
            );
        }
        if id.chars().any(char::is_control) {
            return bad("remote_id", "holds a control character".into());
        }
    }
    if let Some(u) = &ack.remote_url {
        let chars = u.chars().count();
        if chars > MAX_REMOTE_URL {
            return bad(
                "remote_url",
                format!("is {chars} characters long; at most {MAX_REMOTE_URL} are kept"),
            );
        }
        match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "https" | "http") => {}
            Ok(p) => {
                return bad(
                    "remote_url",
                    format!("must be http(s)://, not {}:", p.scheme()),
                )
            }
            Err(e) => return bad("remote_url", format!("is not a URL ({e})")),
        }
    }
    Ok(())
}

/// Parses an ack body, refusing anything that is not exactly an ack.
pub fn parse_ack(body: &[u8], limit: usize, consumers: &[String]) -> Result<Ack, AckRejection> {
    if body.len() > limit {
        return Err(AckRejection::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(body).map_err(|_| AckRejection::NotUtf8)?;
    let ack: Ack =
        serde_json::from_str(text).map_err(|e| AckRejection::Malformed(e.to_string()))?;
    if !consumers.iter().any(|c| c == &ack.consumer) {
        return Err(AckRejection::UnknownConsumer(truncate(&ack.consumer, 64)));
    }
    let named = ack.entity_id.is_some()
        || (ack.increment_id.is_some() && ack.store_id.is_some())
        || ack.message_id.is_some();
    if !named {
        return Err(AckRejection::NoOrder);
    }
    check_remote(&ack)?;
    Ok(ack)
}

/// Cuts text to at most `max` characters for logs and ledger columns.
pub fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ce_header_value_is_percent_encoded_as_the_http_binding_says() {
        let raw = "Zo\u{eb}-4 %\"q\"<>\r\n";
        let encoded = ce_header_value(raw);
        assert_eq!(encoded, "Zo%C3%AB-4%20%25%22q%22<>%0D%0A");
        // Sent raw, a CR/LF can never be a header; encoded, it can.
        assert!(axum::http::HeaderValue::from_str(raw).is_err());
        assert!(axum::http::HeaderValue::from_str(&encoded).is_ok());
        assert_eq!(ce_header_value("000000042"), "000000042");
        let back = percent_encoding::percent_decode_str(&encoded)
            .decode_utf8()
            .unwrap();
        assert_eq!(back, raw);
    }

    fn consumers() -> Vec<String> {
        vec!["erp".into()]
    }

    #[test]
    fn a_minimal_synced_ack_parses() {
        let ack = parse_ack(
            br#"{"consumer":"erp","entity_id":7,"status":"synced"}"#,
            1000,
            &consumers(),
        )
        .unwrap();
        assert_eq!(ack.entity_id, Some(7));
        assert_eq!(ack.status, AckStatus::Synced);
    }

    #[test]
    fn an_ack_may_say_what_the_order_became_and_a_bad_answer_is_refused_naming_the_field() {
        let c = consumers();
        let ack = parse_ack(
            br#"{"consumer":"erp","entity_id":7,"status":"synced","remote_id":"SO-4711","remote_url":"https://erp.example/so/4711"}"#,
            10_000,
            &c,
        )
        .unwrap();
        assert_eq!(ack.remote_id.as_deref(), Some("SO-4711"));
        assert_eq!(
            ack.remote_url.as_deref(),
            Some("https://erp.example/so/4711")
        );
        let long = format!(
            r#"{{"consumer":"erp","entity_id":7,"status":"synced","remote_id":"{}"}}"#,
            "é".repeat(MAX_REMOTE_ID + 1)
        );
        let cases: Vec<(String, &str, &str)> = vec![
            (long, "remote_id", "256 characters long"),
            (
                r#"{"consumer":"erp","entity_id":7,"status":"synced","remote_id":"  "}"#.into(),
                "remote_id",
                "empty",
            ),
            (
                r#"{"consumer":"erp","entity_id":7,"status":"synced","remote_id":"SO\n1"}"#.into(),
                "remote_id",
                "control character",
            ),
            (
                r#"{"consumer":"erp","entity_id":7,"status":"synced","remote_url":"javascript:alert(1)"}"#.into(),
                "remote_url",
                "http(s)",
            ),
            (
                r#"{"consumer":"erp","entity_id":7,"status":"synced","remote_url":"not a url"}"#.into(),
                "remote_url",
                "not a URL",
            ),
        ];
        for (body, field, says) in cases {
            let r = parse_ack(body.as_bytes(), 10_000, &c).unwrap_err();
            let text = r.to_string();
            assert!(
                matches!(r, AckRejection::BadRemote { field: f, .. } if f == field)
                    && text.contains(says),
                "{body} gave {text}"
            );
        }
        // Exactly the limit is kept.
        let max = format!(
            r#"{{"consumer":"erp","entity_id":7,"status":"synced","remote_id":"{}"}}"#,
            "é".repeat(MAX_REMOTE_ID)
        );
        assert!(parse_ack(max.as_bytes(), 10_000, &c).is_ok());
    }

    #[test]
    fn hostile_acks_are_rejected_with_a_reason() {
        let c = consumers();
        type Expect = fn(&AckRejection) -> bool;
        let cases: Vec<(&[u8], Expect)> = vec![
            (b"not json", |r| matches!(r, AckRejection::Malformed(_))),
            (b"\xff\xfe\x00", |r| matches!(r, AckRejection::NotUtf8)),
            (
                br#"{"consumer":"erp","entity_id":"7","status":"synced"}"#,
                |r| matches!(r, AckRejection::Malformed(_)),
            ),
            (
                br#"{"consumer":"erp","entity_id":7,"status":"done"}"#,
                |r| matches!(r, AckRejection::Malformed(_)),
            ),
            (
                br#"{"consumer":"crm","entity_id":7,"status":"synced"}"#,
                |r| matches!(r, AckRejection::UnknownConsumer(_)),
            ),
            (br#"{"consumer":"erp","status":"synced"}"#, |r| {
                matches!(r, AckRejection::NoOrder)
            }),
            (
                br#"{"consumer":"erp","increment_id":"1; DROP TABLE x","status":"synced"}"#,
                |r| matches!(r, AckRejection::NoOrder),
            ),
            (br#"[1,2,3]"#, |r| matches!(r, AckRejection::Malformed(_))),
        ];
        for (body, ok) in cases {
            let r = parse_ack(body, 1000, &c).unwrap_err();
            assert!(ok(&r), "{:?} gave {r:?}", String::from_utf8_lossy(body));
        }
        let big = vec![b' '; 2000];
        assert!(matches!(
            parse_ack(&big, 1000, &c),
            Err(AckRejection::TooLarge { .. })
        ));
    }
}
