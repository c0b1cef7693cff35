//! order-sync takes a Magento shop's order sync (ERP, warehouse, CRM) out of
//! checkout. It reads placed orders from the Magento database, publishes them to
//! RabbitMQ, and keeps re-delivering each one as `sales_order_place_after_que` to
//! every registered sync service until that service acknowledges it.
//!
//! # Layout
//!
//! The modules follow the data's path (`ARCHITECTURE.md` has the invariants
//! each keeps and the path of one order through them):
//!
//! * [`magento`] reads placed, committed orders (read-only);
//! * [`broker`] is the RabbitMQ side: pool, confirmed publisher, [`broker::topology`];
//! * [`ledger`] is order-sync's own record: one row per order and consumer,
//!   one file per concern;
//! * [`roles`] are the long-running loops, all of one shape: capture
//!   (Magento → `<prefix>.orders`), relay (→ ledger → one queue per consumer,
//!   re-delivering with [`retry`] backoff and parking what keeps failing),
//!   acks, retention, write-back, heartbeat;
//! * [`message`] defines every message on the wire;
//! * [`control`] is what operators do (re-send, pause, resume, un-park) and the
//!   one parser of what they type, for the CLI, the JSON API and the status page;
//! * [`http`] serves the status page, the JSON API (with the pull interface),
//!   `/healthz`, `/readyz` and Prometheus [`metrics`];
//! * [`status`] renders the ledger for a terminal; [`cli`] is the command line;
//! * [`app`] wires the roles together; [`config`] and [`telemetry`] set them up;
//! * [`demo`] is a fake shop to watch it work; [`import`] takes over the
//!   original OrderSyncQueRunner module's queue table.
//!
//! The sync-service side (and the AMQP steps both sides share) is the
//! `order-sync-consumer` crate.
#![warn(unreachable_pub)]

pub mod app;
pub mod backfill;
pub mod broker;
pub mod cli;
pub mod config;
pub mod control;
pub mod db;
pub mod demo;
pub mod http;
pub mod import;
pub mod ledger;
pub mod magento;
pub mod message;
pub mod metrics;
pub mod retry;
pub mod roles;
pub mod status;
pub mod telemetry;
