//! Wiring: builds the parts from settings, prepares the ledger and the broker
//! topology, and runs the chosen roles until shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::{
    acks::AckListener,
    broker::{Broker, Topology},
    capture::Capture,
    config::Settings,
    ledger::{self, Ledger, LedgerError},
    magento::{DenyList, Magento, MagentoError},
    relay::Relay,
    retry::RetryPolicy,
    supervise::{Reconnect, RoleError},
};

/// Which roles this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub capture: bool,
    /// The relay and the ack listener, which always run together.
    pub relay: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        capture: true,
        relay: true,
    };
    pub const CAPTURE: Roles = Roles {
        capture: true,
        relay: false,
    };
    pub const RELAY: Roles = Roles {
        capture: false,
        relay: true,
    };

    fn name(self) -> &'static str {
        match (self.capture, self.relay) {
            (true, true) => "run",
            (true, false) => "capture",
            _ => "relay",
        }
    }
}

/// A start-up problem no retry can fix, with the key to look at.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("ledger.url ({url}): {source}")]
    Ledger { url: String, source: LedgerError },
    #[error("magento.url ({url}): {source}")]
    Magento { url: String, source: MagentoError },
}

/// Server answers that mean the settings are wrong, not that the server is away:
/// access denied (1044, 1045, 1142, 1143), unknown database (1049), no such table (1146).
fn wrong_settings(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1049 | 1142 | 1143 | 1146))
}

pub fn topology(settings: &Settings) -> Topology {
    Topology::new(
        &settings.broker.prefix,
        &settings.consumers.names,
        settings.broker.queue_type,
    )
}

/// The connected parts of one process.
#[derive(Clone)]
pub struct Parts {
    pub settings: Settings,
    pub ledger: Ledger,
    pub broker: Broker,
    pub magento: Magento,
}

impl Parts {
    pub fn new(settings: &Settings, role: &str) -> Result<Self, StartError> {
        Ok(Self {
            settings: settings.clone(),
            ledger: Ledger::new(&settings.ledger).map_err(|source| StartError::Ledger {
                url: settings.ledger.url.redacted(),
                source,
            })?,
            broker: Broker::new(&settings.broker, topology(settings), role),
            magento: Magento::new(
                &settings.magento,
                DenyList::new(&settings.message.deny_fields),
            )
            .map_err(|source| StartError::Magento {
                url: settings.magento.url.redacted(),
                source,
            })?,
        })
    }

    pub fn capture(&self) -> Capture {
        Capture::new(
            self.magento.clone(),
            self.ledger.clone(),
            self.broker.clone(),
            &self.settings,
        )
    }

    pub fn relay(&self) -> Relay {
        Relay::new(
            self.ledger.clone(),
            self.broker.clone(),
            self.settings.relay.clone(),
            self.settings.consumers.names.clone(),
            self.settings.shop.name.clone(),
        )
        .with_max_message_bytes(self.settings.broker.max_message_bytes)
    }

    pub fn ack_listener(&self) -> AckListener {
        AckListener::new(
            self.ledger.clone(),
            self.broker.clone(),
            self.settings.consumers.names.clone(),
            RetryPolicy::from_settings(&self.settings.relay),
            self.settings.acks.max_body_bytes,
        )
    }

    /// Migrates (or checks) the ledger, checks Magento's tables when capturing,
    /// and declares the topology. Waits out unreachable services (logging each
    /// try), so `docker compose up` may start order-sync before its databases;
    /// stops at once on problems no wait can fix. Returns false on shutdown.
    pub async fn prepare(
        &self,
        roles: Roles,
        shutdown: &CancellationToken,
    ) -> Result<bool, StartError> {
        let mut reconnect = Reconnect::new("start-up");
        loop {
            let step: Result<(), RoleError> = async {
                if self.settings.ledger.migrate_on_start {
                    ledger::ensure_database(&self.settings.ledger).await?;
                    self.ledger.migrate().await?;
                } else {
                    self.ledger.check_version().await?;
                }
                if roles.capture {
                    self.magento.check_schema().await?;
                }
                self.broker.declare_topology().await?;
                Ok(())
            }
            .await;
            match step {
                Ok(()) => return Ok(true),
                Err(RoleError::Ledger(source)) if !matches!(&source, LedgerError::Db(e) if !wrong_settings(e)) =>
                {
                    return Err(StartError::Ledger {
                        url: self.settings.ledger.url.redacted(),
                        source,
                    });
                }
                Err(RoleError::Magento(source)) if !matches!(&source, MagentoError::Db(e) if !wrong_settings(e)) =>
                {
                    return Err(StartError::Magento {
                        url: self.settings.magento.url.redacted(),
                        source,
                    });
                }
                // Unreachable or restarting services: wait for them.
                Err(e) => {
                    if !reconnect.wait(&e, shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Runs the roles until shutdown, then waits for each to finish its unit.
    pub async fn run(self, roles: Roles, shutdown: CancellationToken) -> Result<(), StartError> {
        if !self.prepare(roles, &shutdown).await? {
            return Ok(());
        }
        tracing::info!(
            mode = roles.name(),
            shop = %self.settings.shop.name,
            prefix = %self.settings.broker.prefix,
            "order-sync is running."
        );
        let mut tasks = tokio::task::JoinSet::new();
        if roles.capture {
            tasks.spawn(self.capture().run(shutdown.clone()));
        }
        if roles.relay {
            tasks.spawn(self.relay().run(shutdown.clone()));
            tasks.spawn(self.ack_listener().run(shutdown.clone()));
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "A role stopped with an error."),
                Err(e) => tracing::error!(error = %e, "A role panicked."),
            }
            // One role ending means the process is no longer whole: stop the rest.
            shutdown.cancel();
        }
        self.close().await;
        Ok(())
    }

    pub async fn close(self) {
        self.broker.close().await;
        self.ledger.disconnect().await;
        self.magento.disconnect().await;
    }
}

/// How long a graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
