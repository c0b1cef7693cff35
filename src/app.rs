//! Wiring: builds the parts from settings, prepares the ledger and the broker
//! topology, and runs the chosen roles until shutdown.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use crate::{
    acks::AckListener,
    broker::{Broker, Topology},
    capture::Capture,
    config::Settings,
    housekeeping::{Retention, WriteBack},
    http,
    ledger::{self, Instance, Ledger, LedgerError},
    magento::{DenyList, Magento, MagentoError},
    metrics::Metrics,
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
    #[error("http.listen: cannot listen on {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Server answers that mean the settings are wrong, not that the server is away:
/// access denied (1044, 1045, 1142, 1143), unknown database (1049), no such table (1146).
fn wrong_settings(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1049 | 1142 | 1143 | 1146))
}

pub fn topology(settings: &Settings) -> Topology {
    Topology::with_names(
        &settings.broker.prefix,
        &settings.consumers.push(),
        settings.broker.queue_type,
        settings.broker.names.clone(),
    )
}

/// The connected parts of one process.
#[derive(Clone)]
pub struct Parts {
    pub settings: Settings,
    pub ledger: Ledger,
    pub broker: Broker,
    pub magento: Magento,
    pub metrics: Arc<Metrics>,
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
            metrics: Arc::new(Metrics::default()),
        })
    }

    pub fn capture(&self) -> Capture {
        Capture::new(
            self.magento.clone(),
            self.ledger.clone(),
            self.broker.clone(),
            &self.settings,
        )
        .with_metrics(self.metrics.clone())
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
        .with_push_consumers(self.settings.consumers.push())
        .with_metrics(self.metrics.clone())
    }

    pub fn ack_listener(&self) -> AckListener {
        AckListener::new(
            self.ledger.clone(),
            self.broker.clone(),
            self.settings.consumers.names.clone(),
            RetryPolicy::from_settings(&self.settings.relay),
            self.settings.acks.max_body_bytes,
        )
        .with_batch_size(self.settings.broker.prefetch as usize)
        .with_metrics(self.metrics.clone())
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
                // A fresh install's ledger database does not exist yet: create
                // it before anything connects to it.
                if self.settings.ledger.migrate_on_start {
                    ledger::ensure_database(&self.settings.ledger).await?;
                }
                self.ledger.check_server().await?;
                if self.settings.ledger.migrate_on_start {
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
        let mut housekeeping = Vec::new();
        let leader = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(true));
        let http = if self.settings.http.enabled {
            let addr = self.settings.http.listen;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Http { addr, source })?;
            let surface = http::Surface::new(self.clone(), leader.clone(), running.clone());
            Some(tokio::spawn(http::serve(
                listener,
                surface,
                shutdown.clone(),
            )))
        } else {
            None
        };
        let heartbeat = tokio::spawn(heartbeat(
            self.ledger.clone(),
            roles,
            leader.clone(),
            shutdown.clone(),
        ));
        if roles.capture {
            tasks.spawn(
                self.capture()
                    .with_leader_flag(leader.clone())
                    .run(shutdown.clone()),
            );
        }
        if roles.relay {
            tasks.spawn(self.relay().run(shutdown.clone()));
            tasks.spawn(self.ack_listener().run(shutdown.clone()));
            // Housekeeping is not a role: it logs its failures and is never
            // a reason to stop the process.
            if self.settings.retention.enabled {
                let retention =
                    Retention::new(self.ledger.clone(), self.settings.retention.clone());
                housekeeping.push(tokio::spawn(retention.run(shutdown.clone())));
            }
            if self.settings.write_back.enabled {
                match WriteBack::new(self.ledger.clone(), &self.settings) {
                    Ok(w) => housekeeping.push(tokio::spawn(w.run(shutdown.clone()))),
                    Err(e) => {
                        tracing::error!(error = %e, "Magento write-back is off: its database URL is unusable.")
                    }
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(())) if !shutdown.is_cancelled() => {
                    tracing::error!("A role ended on its own; stopping the others.")
                }
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "A role stopped with an error."),
                Err(e) => tracing::error!(error = %e, "A role panicked."),
            }
            // One role ending means the process is no longer whole: stop the rest.
            shutdown.cancel();
        }
        running.store(false, Ordering::Relaxed);
        for h in housekeeping {
            let _ = h.await;
        }
        let _ = heartbeat.await;
        if let Some(h) = http {
            let _ = h.await;
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

/// How often each process records itself in `order_sync_instances`.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// An id for this process: host, pid and a random part (pids are reused).
pub fn instance_id() -> (String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (format!("{host}:{}:{nonce:08x}", std::process::id()), host)
}

/// Records this process in the ledger every [`HEARTBEAT`] until shutdown, and
/// removes it on the way out, so status output lists who is running and who
/// holds capture. Failures are logged only: status is not worth stopping for.
async fn heartbeat(
    ledger: Ledger,
    roles: Roles,
    leader: Arc<AtomicBool>,
    shutdown: CancellationToken,
) {
    let (instance_id, hostname) = instance_id();
    let started_at = chrono::Utc::now();
    let roles_text = match (roles.capture, roles.relay) {
        (true, true) => "capture,relay,acks",
        (true, false) => "capture",
        _ => "relay,acks",
    };
    loop {
        let me = Instance {
            instance_id: instance_id.clone(),
            hostname: hostname.clone(),
            pid: std::process::id(),
            roles: roles_text.into(),
            capture_leader: leader.load(Ordering::SeqCst),
            started_at,
            last_seen_at: chrono::Utc::now(),
        };
        if let Err(e) = ledger.heartbeat(&me).await {
            tracing::debug!(error = %e, "Could not record this instance's heartbeat.");
        }
        if !crate::supervise::sleep_or_shutdown(HEARTBEAT, &shutdown).await {
            break;
        }
    }
    let _ = ledger.forget_instance(&instance_id).await;
}

/// How long a graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
