//! Integration tests against real RabbitMQ and MariaDB. One binary, so the
//! crate and its dependencies link once; each test owns its databases and
//! broker names (see `support`), so they run in parallel.

mod acks;
mod backfill;
mod binlog;
mod broker_setup;
mod capture;
mod capture_faults;
mod cluster;
mod consumers;
mod contract;
mod control;
mod deploy;
mod faults;
mod flow;
mod import;
mod instances;
#[path = "../kit/mod.rs"]
mod kit;
mod lifecycle;
mod magento_admin;
mod magento_bridge;
mod message;
mod observe;
mod once;
mod ops;
mod page;
mod process;
mod redelivery;
mod remote;
mod scale;
mod support;
mod tls;
mod webhooks;
