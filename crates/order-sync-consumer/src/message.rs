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
    /// 1 for the first delivery, growing with each re-delivery.
    pub attempt: u32,
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

/// What a message is about, from its `event`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `sales_order_place_after_que`: the whole order.
    Placed,
    /// `sales_order_invoice_save_after_que`: [`OrderMessage::invoice`].
    Invoiced,
    /// `sales_order_shipment_save_after_que`: [`OrderMessage::shipment`].
    Shipped,
    /// `sales_order_creditmemo_save_after_que`: [`OrderMessage::creditmemo`].
    Refunded,
    /// `order_cancel_after_que`: [`OrderMessage::previous`].
    Canceled,
    /// `sales_order_save_after_que`: [`OrderMessage::previous`].
    StatusChanged,
    /// An event this version does not know (a newer order-sync).
    Other,
}

impl OrderMessage {
    /// What this message is about.
    pub fn kind(&self) -> EventKind {
        match self.event.as_str() {
            "sales_order_place_after_que" => EventKind::Placed,
            "sales_order_invoice_save_after_que" => EventKind::Invoiced,
            "sales_order_shipment_save_after_que" => EventKind::Shipped,
            "sales_order_creditmemo_save_after_que" => EventKind::Refunded,
            "order_cancel_after_que" => EventKind::Canceled,
            "sales_order_save_after_que" => EventKind::StatusChanged,
            _ => EventKind::Other,
        }
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
            ("sales_order_invoice_save_after_que", EventKind::Invoiced),
            ("sales_order_shipment_save_after_que", EventKind::Shipped),
            ("sales_order_creditmemo_save_after_que", EventKind::Refunded),
            ("order_cancel_after_que", EventKind::Canceled),
            ("sales_order_save_after_que", EventKind::StatusChanged),
        ];
        for (name, kind) in cases {
            let text = std::fs::read_to_string(format!("{root}/{name}.json")).unwrap();
            let m: OrderMessage = serde_json::from_str(&text).unwrap();
            assert_eq!(m.kind(), kind, "{name}");
            assert!(m.sequence >= 1 && m.entity_id().is_some(), "{name}");
            let carried = match kind {
                EventKind::Invoiced => m.invoice.is_some(),
                EventKind::Shipped => m.shipment.is_some(),
                EventKind::Refunded => m.creditmemo.is_some(),
                _ => m.previous.is_some(),
            };
            assert!(carried, "{name} carries what it is about");
        }
        let placed = std::fs::read_to_string(format!("{root}/magento2-message.json")).unwrap();
        let m: OrderMessage = serde_json::from_str(&placed).unwrap();
        assert_eq!((m.kind(), m.sequence), (EventKind::Placed, 0));
    }
}
