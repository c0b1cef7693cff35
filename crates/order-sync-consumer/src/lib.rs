//! Write a sync service for order-sync in Rust.
//!
//! order-sync delivers every Magento order to each sync service (ERP,
//! warehouse, CRM) on a queue of its own, `<prefix>.que.<consumer>`, and
//! re-delivers it until the service publishes a `synced` ack. [`SyncConsumer`]
//! does what every such service must get right:
//!
//! * the broker message is acknowledged only after the ack is confirmed by the
//!   broker, so a crash in between means the order comes again, never that it
//!   is lost;
//! * a re-delivery of an order already synced by this process (same
//!   `message_id`) is not handed to your function again: its synced ack is
//!   re-sent instead (the first one may be what got lost); with
//!   [`SyncConsumer::with_synced_file`] also after a restart ([`SyncedFile`]);
//! * what the order became in the service (its id there, a link) goes back
//!   with the ack when the function returns a [`Remote`] instead of `()`;
//! * a message that is not an order message is rejected to the queue's
//!   dead-letter queue, not retried forever;
//! * a lost connection is retried with backoff, across the configured nodes.
//!
//! ```no_run
//! # async fn demo() {
//! use order_sync_consumer::{OrderMessage, SyncConsumer};
//! let consumer = SyncConsumer::new("amqp://erp:erp@127.0.0.1:5672/%2f", "order-sync", "erp");
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! consumer
//!     .run(|msg: OrderMessage| async move {
//!         // Send msg.order to the ERP here; Err(text) reports a failure.
//!         println!("order {}", msg.order["increment_id"]);
//!         Ok(())
//!     }, shutdown)
//!     .await;
//! # }
//! ```
//!
//! # Layout
//!
//! * [`SyncConsumer`] and [`OrderMessage`]: the sync-service side of the
//!   contract (`docs/asyncapi.yaml` in the order-sync repository);
//! * [`amqp`]: the AMQP steps both sides share — a confirmed, mandatory,
//!   persistent publish whose unroutable return counts as a failure, and
//!   draining what a queue already holds into one batch;
//! * [`supervise`]: the backoff between a failed session and the next one.
//!
//! order-sync's own roles are built on [`amqp`] and [`supervise`] too, so a
//! sync service written with this crate behaves as the service does.
#![warn(missing_docs, unreachable_pub)]

pub mod amqp;
mod message;
pub mod supervise;
mod sync;
mod synced;

pub use message::{Event, OrderMessage};
pub use sync::{AckPublisher, ConsumerError, Handled, Remote, SyncConsumer};
pub use synced::SyncedFile;
