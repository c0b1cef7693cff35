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
    /// The order, shaped like Magento's REST order.
    pub order: Value,
}

impl OrderMessage {
    /// The order's Magento `entity_id`.
    pub fn entity_id(&self) -> Option<u64> {
        self.order["entity_id"].as_u64()
    }
}
