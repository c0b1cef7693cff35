//! The message a sync service receives.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// What a sync service receives: the envelope of `docs/messages.md`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrderMessage {
    /// Version of the envelope layout.
    pub schema_version: u32,
    /// The event, e.g. `sales_order_place_after_que`.
    pub event: String,
    /// The same on every delivery of this order to this consumer; echoed in the ack.
    pub message_id: String,
    /// The shop (`shop.name`).
    pub source: String,
    /// The consumer this delivery is for.
    pub consumer: String,
    /// When order-sync captured the order.
    pub captured_at: DateTime<Utc>,
    /// 1 for the first delivery, growing with each further copy.
    pub attempt: u32,
    /// Deliveries before order-sync parks the order (`relay.max_attempts`);
    /// `None` from an order-sync older than this field.
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// The order, shaped like Magento's REST order (for a later event: its
    /// identifiers, state and status).
    pub order: Value,
    /// The event's place in the order's life: 0 for the placement.
    #[serde(default)]
    pub sequence: u32,
    /// `sales_order_invoice_save_after_que`: the invoice.
    #[serde(default)]
    pub invoice: Option<Value>,
    /// `sales_order_shipment_save_after_que`: the shipment, with `tracks`.
    #[serde(default)]
    pub shipment: Option<Value>,
    /// `sales_order_creditmemo_save_after_que`: the credit memo.
    #[serde(default)]
    pub creditmemo: Option<Value>,
    /// `order_cancel_after_que`, `sales_order_save_after_que`: the state and
    /// status before the change.
    #[serde(default)]
    pub previous: Option<Value>,
}

/// An event in an order's life, as consumers subscribe to it
/// (`[consumers.<name>] events`) and as the ledger records it. Each travels as
/// the Magento event it stands for with `_que` appended (the message's
/// `event` and AMQP `type`), so the Magento bridge can dispatch it under the
/// name existing observers know.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Event {
    /// The order was placed (and, if it was held, left `capture.hold_states`):
    /// `sales_order_place_after_que`, the whole order.
    Placed,
    /// An invoice was created: `sales_order_invoice_save_after_que`,
    /// [`OrderMessage::invoice`].
    Invoiced,
    /// A shipment was created: `sales_order_shipment_save_after_que`,
    /// [`OrderMessage::shipment`].
    Shipped,
    /// A credit memo was created: `sales_order_creditmemo_save_after_que`,
    /// [`OrderMessage::creditmemo`].
    Refunded,
    /// The order's state became `canceled`: `order_cancel_after_que`,
    /// [`OrderMessage::previous`].
    Canceled,
    /// The order's state or status changed: `sales_order_save_after_que`,
    /// [`OrderMessage::previous`].
    StatusChanged,
}

impl Event {
    /// Every event, in the order of an order's life.
    pub const ALL: [Event; 6] = [
        Event::Placed,
        Event::Invoiced,
        Event::Shipped,
        Event::Refunded,
        Event::Canceled,
        Event::StatusChanged,
    ];

    /// The subscription name: `placed`, `invoiced`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Placed => "placed",
            Event::Invoiced => "invoiced",
            Event::Shipped => "shipped",
            Event::Refunded => "refunded",
            Event::Canceled => "canceled",
            Event::StatusChanged => "status_changed",
        }
    }

    /// The message's `event`: the Magento event name plus `_que`.
    pub fn que_name(self) -> &'static str {
        match self {
            Event::Placed => "sales_order_place_after_que",
            Event::Invoiced => "sales_order_invoice_save_after_que",
            Event::Shipped => "sales_order_shipment_save_after_que",
            Event::Refunded => "sales_order_creditmemo_save_after_que",
            Event::Canceled => "order_cancel_after_que",
            Event::StatusChanged => "sales_order_save_after_que",
        }
    }

    /// The event named `s` (a subscription name), or `None`.
    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// The event whose message `event` is `s`, or `None` (a newer order-sync's).
    pub fn from_que_name(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.que_name() == s)
    }

    /// All subscription names, comma-separated, for error messages.
    pub fn names() -> String {
        Event::ALL.map(Event::as_str).join(", ")
    }

    /// The key of the document an event carries, if it carries one.
    pub fn document(self) -> Option<&'static str> {
        match self {
            Event::Invoiced => Some("invoice"),
            Event::Shipped => Some("shipment"),
            Event::Refunded => Some("creditmemo"),
            _ => None,
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl OrderMessage {
    /// What this message is about; `None` for an event this version does
    /// not know (a newer order-sync's).
    pub fn kind(&self) -> Option<Event> {
        Event::from_que_name(&self.event)
    }

    /// The order's Magento `entity_id`.
    pub fn entity_id(&self) -> Option<u64> {
        self.order["entity_id"].as_u64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_event_example_reads_with_its_kind_and_document() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/examples");
        let cases = [
            ("sales_order_invoice_save_after_que", Event::Invoiced),
            ("sales_order_shipment_save_after_que", Event::Shipped),
            ("sales_order_creditmemo_save_after_que", Event::Refunded),
            ("order_cancel_after_que", Event::Canceled),
            ("sales_order_save_after_que", Event::StatusChanged),
        ];
        for (name, kind) in cases {
            let text = std::fs::read_to_string(format!("{root}/{name}.json")).unwrap();
            let m: OrderMessage = serde_json::from_str(&text).unwrap();
            assert_eq!(m.kind(), Some(kind), "{name}");
            assert!(m.sequence >= 1 && m.entity_id().is_some(), "{name}");
            let carried = match kind {
                Event::Invoiced => m.invoice.is_some(),
                Event::Shipped => m.shipment.is_some(),
                Event::Refunded => m.creditmemo.is_some(),
                _ => m.previous.is_some(),
            };
            assert!(carried, "{name} carries what it is about");
        }
        let placed = std::fs::read_to_string(format!("{root}/magento2-message.json")).unwrap();
        let m: OrderMessage = serde_json::from_str(&placed).unwrap();
        assert_eq!((m.kind(), m.sequence), (Some(Event::Placed), 0));
    }
}
