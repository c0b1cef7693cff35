//! order-sync takes a Magento shop's order sync (ERP, warehouse, CRM) out of
//! checkout. It reads placed orders from the Magento database, publishes them to
//! RabbitMQ, and keeps re-delivering each one as `sales_order_place_after_que` to
//! every registered sync service until that service acknowledges it.
//!
//! # Layout
//!
//! The modules follow the data's path:
//!
//! * [`magento`] reads placed, committed orders (read-only);
//! * [`capture`] publishes them to the durable `<prefix>.orders` exchange;
//! * [`broker`] is the RabbitMQ side: pool, confirmed publisher, [`broker::topology`];
//! * [`relay`] records each order in the [`ledger`] and delivers it to one queue
//!   per consumer, re-delivering on a schedule with [`retry`] backoff and parking
//!   what keeps failing;
//! * [`acks`] applies the sync services' acknowledgements to the ledger;
//! * [`message`] defines every message on the wire;
//! * [`status`] renders what the ledger says for `order-sync status`;
//! * [`control`] is what operators do (re-send, pause, resume, un-park), from
//!   the CLI, the JSON API or the status page alike;
//! * [`housekeeping`] runs retention and the optional Magento write-back;
//! * [`http`] serves the status page, the JSON API (with the pull interface),
//!   `/healthz`, `/readyz` and Prometheus [`metrics`];
//! * [`app`] wires the roles together; [`config`] and [`telemetry`] set them up;
//!   [`supervise`] is the reconnect loop every role shares.
//!
//! Every role has the same shape: `run(self, shutdown)` loops until the
//! cancellation token fires, and a public one-step function (`poll_once`,
//! `redeliver_due`, `handle`) does one unit of work, so tests drive steps.

pub mod acks;
pub mod app;
pub mod broker;
pub mod capture;
pub mod config;
pub mod consumer;
pub mod control;
pub mod db;
pub mod demo;
pub mod housekeeping;
pub mod http;
pub mod ledger;
pub mod magento;
pub mod message;
pub mod metrics;
pub mod relay;
pub mod retry;
pub mod status;
pub mod supervise;
pub mod telemetry;
