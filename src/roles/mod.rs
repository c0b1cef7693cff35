//! The long-running roles, all of one shape.
//!
//! * [`capture`]: Magento → `<prefix>.orders`;
//! * [`relay`]: `<prefix>.orders.relay` → ledger → `<prefix>.que.<consumer>`,
//!   and re-delivery of what is due;
//! * [`acks`]: `<prefix>.acks.listener` → ledger;
//! * [`webhooks`]: consumers delivered by signed HTTPS POST instead of a queue;
//! * [`retention`] and [`write_back`]: housekeeping beside the relay;
//! * [`heartbeat`]: this process's row in the instances table.
//!
//! Each role is built from one [`Deps`] (the connected parts of the process)
//! plus its own settings, has a public one-step function taking `now` that
//! tests drive directly (`Capture::step`, `Relay::redeliver_due`,
//! `AckListener::handle_batch`, `Retention::step`, `WriteBack::step`), and
//! implements [`Role`], whose provided [`Role::run`] is the one supervisor loop:
//! a role's life is a series of sessions; a session holds its channels and
//! works unit by unit; when the broker or a database goes away the session
//! ends with an error, nothing half-done has been acknowledged, and the loop
//! waits (with backoff, and for shutdown) before starting another. On shutdown
//! the unit in hand is finished first.

pub mod acks;
pub mod capture;
pub mod heartbeat;
pub mod relay;
pub mod retention;
pub mod webhooks;
pub mod write_back;

use std::{future::Future, sync::Arc};

pub use order_sync_consumer::supervise::sleep_or_shutdown;
use order_sync_consumer::supervise::Reconnect;
use tokio_util::sync::CancellationToken;

use crate::{
    broker::{Broker, BrokerError},
    config::ConsumerSettings,
    ledger::{Audience, Ledger, LedgerError},
    magento::{shape::Shapes, Magento, MagentoError},
    metrics::Metrics,
};

/// Why a session ended; every variant means "reconnect and redo the unit".
#[derive(Debug, thiserror::Error)]
pub enum RoleError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Magento(#[from] MagentoError),
    #[error("the RabbitMQ consumer on `{0}` ended (connection or channel closed)")]
    ConsumerEnded(String),
}

impl RoleError {
    /// What to do about it, where the error says (a missing grant).
    pub fn hint(&self) -> Option<String> {
        match self {
            RoleError::Magento(e) => e.hint(),
            _ => None,
        }
    }
}

impl From<lapin::Error> for RoleError {
    fn from(e: lapin::Error) -> Self {
        RoleError::Broker(BrokerError::Channel(e))
    }
}

/// What every role is built from: the connected parts of one process.
#[derive(Clone)]
pub struct Deps {
    /// `shop.name`: the source of every message and message id.
    pub shop: String,
    /// Who gets orders, and which of them fetch over HTTP.
    pub consumers: ConsumerSettings,
    pub ledger: Ledger,
    pub broker: Broker,
    pub magento: Magento,
    pub metrics: Arc<Metrics>,
    /// Whether capture's parts are working (written by capture, read by `/readyz`).
    pub capture_health: Arc<capture::health::CaptureHealth>,
    /// What of each order each consumer gets (`fields`, `deny_fields`).
    pub shapes: Arc<Shapes>,
    /// Who gets which orders, resolved once (website codes need Magento).
    pub audience: Arc<tokio::sync::OnceCell<Audience>>,
    /// Rung by capture when it recorded later events, so the relay's
    /// follow-on loop sends them now rather than at its next round.
    pub follow_ons: Arc<tokio::sync::Notify>,
}

impl Deps {
    /// Who gets which orders: `consumers` with each consumer's websites
    /// resolved to their stores, read from Magento the first time only.
    pub async fn audience(&self) -> Result<&Audience, MagentoError> {
        self.audience
            .get_or_try_init(|| async {
                let mut stores = std::collections::HashMap::new();
                for code in Audience::websites(&self.consumers) {
                    let ids = self
                        .magento
                        .store_ids_of_websites(std::slice::from_ref(&code))
                        .await?;
                    if ids.is_empty() {
                        tracing::warn!(website = %code, "A consumer's website has no stores in Magento; it gets none of their orders.");
                    }
                    stores.insert(code, ids);
                }
                Ok(Audience::new(&self.consumers, &stores))
            })
            .await
    }
}

/// A long-running role: sessions, and one supervisor loop around them.
pub trait Role: Send + Sized + 'static {
    /// The role's name in logs.
    const NAME: &'static str;

    /// One session: works until shutdown (`Ok`) or until a service fails (`Err`).
    fn session(
        &mut self,
        shutdown: &CancellationToken,
    ) -> impl Future<Output = Result<(), RoleError>> + Send;

    /// Called once after the last session: give back what outlives sessions.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Runs sessions until shutdown, waiting with backoff after each failed one.
    /// Never fails: a role that cannot work waits for its services.
    fn run(mut self, shutdown: CancellationToken) -> impl Future<Output = ()> + Send {
        async move {
            tracing::info!(role = Self::NAME, "Role started.");
            let mut reconnect = Reconnect::new(Self::NAME);
            loop {
                reconnect.session_started();
                match self.session(&shutdown).await {
                    Ok(()) => break,
                    Err(e) => {
                        if !reconnect.wait(&e, &shutdown).await {
                            break;
                        }
                    }
                }
            }
            self.finish().await;
            tracing::info!(role = Self::NAME, "Role stopped.");
        }
    }
}
