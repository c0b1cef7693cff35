//! Wiring: builds the parts from settings, prepares the ledger and the broker
//! topology, and runs the chosen roles (and the HTTP surface) until shutdown.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio_util::sync::CancellationToken;

use order_sync_consumer::supervise::Reconnect;

use crate::{
    broker::{untrusted_certificate, Broker, BrokerError, Topology},
    config::Settings,
    http,
    ledger::{self, Ledger, LedgerError},
    magento::{DenyList, Magento, MagentoError},
    message::Event,
    metrics::Metrics,
    roles::{
        acks::AckListener, capture::Capture, heartbeat::Heartbeat, relay::Relay,
        retention::Retention, webhooks::Webhooks, write_back::WriteBack, Deps, Role, RoleError,
    },
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

    /// As status output shows them.
    fn listed(self) -> &'static str {
        match (self.capture, self.relay) {
            (true, true) => "capture,relay,acks",
            (true, false) => "capture",
            _ => "relay,acks",
        }
    }
}

/// A start-up problem no retry can fix, with the key to look at: the
/// settings are wrong (the CLI exits 2, and systemd does not restart it).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("ledger.url ({url}): {source}")]
    Ledger { url: String, source: LedgerError },
    #[error("magento.url ({url}): {source}")]
    Magento { url: String, source: MagentoError },
    #[error("broker.url: {0}")]
    Broker(BrokerError),
    #[error(transparent)]
    Webhooks(crate::roles::webhooks::WebhookError),
    #[error("http.listen: cannot listen on {addr}: {source}")]
    Http {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// Consumers' `fields` or `deny_fields` naming what no order has.
    #[error("{}", .0.join("; "))]
    Fields(Vec<String>),
    #[error("shop.name is `{name}`, but the ledger holds capture positions only for {others}: a renamed shop would start again from capture.start_from and miss or repeat orders. Set shop.name back, or move the position to the new name first: UPDATE order_sync_capture_position SET source = '{name}' WHERE source = '<old name>' (and the same in order_sync_capture_gaps)")]
    ShopRenamed { name: String, others: String },
}

/// A broker error of a one-shot command (`topology`), as a start-up error
/// naming `broker.url` when the settings are wrong (a refused login, an
/// untrusted certificate), as `run` reports it; otherwise unchanged.
pub fn broker_settings_error(e: BrokerError) -> Result<StartError, BrokerError> {
    if wrong_broker_settings(&e) {
        Ok(StartError::Broker(e))
    } else {
        Err(e)
    }
}

/// A ledger error of a one-shot command (`migrate`), as a start-up error
/// naming `ledger.url` when no wait can fix it (refused, unknown database,
/// untrusted certificate); otherwise unchanged.
pub fn ledger_settings_error(url: &str, e: LedgerError) -> Result<StartError, LedgerError> {
    match &e {
        LedgerError::Db(db) if wrong_settings(db) => Ok(StartError::Ledger {
            url: url.to_owned(),
            source: e,
        }),
        _ => Err(e),
    }
}

/// Ledger answers that no wait can fix.
fn fatal_ledger(e: &LedgerError) -> bool {
    match e {
        LedgerError::Db(e) => wrong_settings(e),
        // Another instance is migrating: wait for it.
        LedgerError::Locked(_) => false,
        _ => true,
    }
}

/// Broker answers that mean the settings are wrong: the login is refused.
/// (A vhost that does not exist yet is waited for: it may be being created.)
fn wrong_broker_settings(e: &BrokerError) -> bool {
    matches!(e, BrokerError::Connect { reason, .. }
        if reason.contains("ACCESS_REFUSED") || untrusted_certificate(reason))
}

/// Server answers that mean the settings are wrong, not that the server is away:
/// access denied (1044, 1045, 1142, 1143), unknown database (1049), no such table (1146),
/// or a TLS certificate that does not verify (no wait makes it trusted).
fn wrong_settings(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1044 | 1045 | 1049 | 1142 | 1143 | 1146))
        || untrusted_certificate(&e.to_string())
}

pub fn topology(settings: &Settings) -> Topology {
    Topology::with_names(
        &settings.broker.prefix,
        &settings.consumers.push(),
        settings.broker.queue_type,
        settings.broker.names.clone(),
    )
}

/// The connected parts of one process, and the settings they came from.
#[derive(Clone)]
pub struct Parts {
    pub settings: Settings,
    pub deps: Deps,
}

impl Parts {
    pub fn new(settings: &Settings, role: &str) -> Result<Self, StartError> {
        Ok(Self {
            settings: settings.clone(),
            deps: Deps {
                audience: Default::default(),
                follow_ons: Default::default(),
                shapes: Arc::new(crate::magento::shape::Shapes::new(&settings.consumers)),
                shop: settings.shop.name.clone(),
                consumers: settings.consumers.clone(),
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
                metrics: {
                    let metrics = Metrics::default();
                    metrics.prime(&settings.consumers.names);
                    Arc::new(metrics)
                },
                capture_health: Default::default(),
            },
        })
    }

    /// Every Magento table capture will read with these settings: the order
    /// tables, the store tables for a website filter, and the tables of each
    /// later event some consumer subscribes to.
    pub fn capture_reads(&self) -> Vec<crate::magento::access::Read> {
        let events: Vec<Event> = Event::ALL
            .into_iter()
            .filter(|e| !self.settings.consumers.subscribed(*e).is_empty())
            .collect();
        self.deps.magento.capture_reads(
            !self.settings.capture.filter.website_codes.is_empty(),
            &events,
        )
    }

    /// Each consumer's `fields` and `deny_fields` that name nothing an order
    /// has (from Magento's columns), each with its key; none read when no
    /// consumer has either.
    pub async fn check_fields(&self) -> Result<Option<StartError>, MagentoError> {
        let c = &self.settings.consumers;
        let shaped = c.names.iter().any(|n| {
            let o = c.options(n);
            !o.fields.is_empty() || !o.deny_fields.is_empty()
        });
        if !shaped {
            return Ok(None);
        }
        let paths = self.deps.magento.order_paths().await?;
        let mut problems = vec![];
        for n in &c.names {
            let o = c.options(n);
            for (key, list) in [("fields", &o.fields), ("deny_fields", &o.deny_fields)] {
                for f in list {
                    if let Some(why) = paths.unknown(f) {
                        problems.push(format!("consumers.{n}.{key}: `{f}`: {why}"));
                    }
                }
            }
        }
        Ok((!problems.is_empty()).then_some(StartError::Fields(problems)))
    }

    /// `check-config --live`: what start-up checks of the services, without
    /// migrating, declaring or running anything: the ledger answers and is
    /// migrated (or can be), and the Magento user may read every table
    /// capture will read.
    pub async fn check_live(&self) -> Result<Vec<String>, StartError> {
        let d = &self.deps;
        let magento_error = |source| StartError::Magento {
            url: self.settings.magento.url.redacted(),
            source,
        };
        let reads = self.capture_reads();
        d.magento
            .check_access(&reads)
            .await
            .map_err(magento_error)?;
        d.magento.check_schema().await.map_err(magento_error)?;
        if let Some(e) = self.check_fields().await.map_err(magento_error)? {
            return Err(e);
        }
        let mut said = vec![format!(
            "magento: the user may read all {} table(s) capture reads ({})",
            reads.len(),
            reads
                .iter()
                .map(|r| r.table.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )];
        d.ledger
            .check_server()
            .await
            .map_err(|source| StartError::Ledger {
                url: self.settings.ledger.url.redacted(),
                source,
            })?;
        said.push("ledger: the server answers".into());
        Ok(said)
    }

    pub fn capture(&self) -> Capture {
        Capture::new(&self.deps, &self.settings.capture)
    }

    pub fn relay(&self) -> Relay {
        Relay::new(&self.deps, &self.settings.relay, &self.settings.message)
    }

    pub fn ack_listener(&self) -> AckListener {
        AckListener::new(&self.deps, &self.settings.relay, &self.settings.acks)
    }

    pub fn webhooks(&self) -> Result<Webhooks, crate::roles::webhooks::WebhookError> {
        Webhooks::new(
            &self.deps,
            &self.settings.relay,
            &self.settings.acks,
            &self.settings.message,
        )
    }

    pub fn retention(&self) -> Retention {
        Retention::new(&self.deps, &self.settings.retention)
    }

    pub fn write_back(&self) -> Result<WriteBack, crate::db::DbUrlError> {
        WriteBack::new(
            &self.deps,
            &self.settings.write_back,
            &self.settings.magento,
        )
    }

    /// The HTTP surface over these parts.
    pub fn surface(
        &self,
        capture_leader: Arc<AtomicBool>,
        running: Arc<AtomicBool>,
    ) -> http::Surface {
        http::Surface::new(
            &self.deps,
            &self.settings.http,
            &self.settings.capture,
            self.ack_listener(),
            capture_leader,
            running,
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
            let step: Result<Option<StartError>, RoleError> = async {
                // A fresh install's ledger database does not exist yet: create
                // it before anything connects to it.
                if self.settings.ledger.migrate_on_start {
                    ledger::ensure_database(&self.settings.ledger).await?;
                }
                let d = &self.deps;
                d.ledger.check_server().await?;
                if self.settings.ledger.migrate_on_start {
                    d.ledger.migrate().await?;
                } else {
                    d.ledger.check_version().await?;
                }
                if let Some(e) = self.check_fields().await? {
                    return Ok(Some(e));
                }
                if roles.capture {
                    d.magento.check_access(&self.capture_reads()).await?;
                    d.magento.check_schema().await?;
                    let sources = d.ledger.capture_sources().await?;
                    if !sources.is_empty() && !sources.contains(&d.shop) {
                        return Ok(Some(StartError::ShopRenamed {
                            name: d.shop.clone(),
                            others: sources
                                .iter()
                                .map(|s| format!("`{s}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        }));
                    }
                }
                if d.ledger.is_galera().await? {
                    tracing::warn!(
                        "The ledger is on a Galera cluster: named locks are per node, so two instances on \
                         different nodes could both capture. Point ledger.url at one node (or a proxy \
                         that sends every connection to the same node); see the README's security section."
                    );
                }
                d.broker.declare_topology().await?;
                Ok(None)
            }
            .await;
            match step {
                Ok(None) => return Ok(true),
                Ok(Some(fatal)) => return Err(fatal),
                Err(RoleError::Broker(e)) if wrong_broker_settings(&e) => {
                    return Err(StartError::Broker(e));
                }
                Err(RoleError::Ledger(source)) if fatal_ledger(&source) => {
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
        let leader = Arc::new(AtomicBool::new(false));
        let running = Arc::new(AtomicBool::new(true));
        let http = if self.settings.http.enabled {
            let addr = self.settings.http.listen;
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Http { addr, source })?;
            let surface = self
                .surface(leader.clone(), running.clone())
                .stopping_with(shutdown.clone());
            let backfills = surface.backfill_tasks();
            let serving = tokio::spawn(http::serve(listener, surface, shutdown.clone()));
            Some((serving, backfills))
        } else {
            None
        };
        // Status output only: not a role whose end stops the others.
        let heartbeat = tokio::spawn(
            Heartbeat::new(&self.deps, roles.listed(), leader.clone()).run(shutdown.clone()),
        );
        if roles.capture {
            tasks.spawn(
                self.capture()
                    .with_leader_flag(leader.clone())
                    .run(shutdown.clone()),
            );
        }
        if roles.relay {
            let follow_on = self.settings.consumers.want_lifecycle()
                || !self.settings.capture.hold_states.is_empty();
            tasks.spawn(self.relay().run(shutdown.clone(), follow_on));
            tasks.spawn(self.ack_listener().run(shutdown.clone()));
            match self.webhooks() {
                Ok(w) if w.any() => {
                    tasks.spawn(w.run(shutdown.clone()));
                }
                Ok(_) => {}
                Err(e) => return Err(StartError::Webhooks(e)),
            }
            if self.settings.retention.enabled {
                tasks.spawn(self.retention().run(shutdown.clone()));
            }
            if self.settings.write_back.enabled {
                match self.write_back() {
                    Ok(w) => {
                        tasks.spawn(w.run(shutdown.clone()));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "Magento write-back is off: its database URL is unusable.")
                    }
                }
            }
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(()) if !shutdown.is_cancelled() => {
                    tracing::error!("A role ended on its own; stopping the others.")
                }
                Ok(()) => {}
                Err(e) => tracing::error!(error = %e, "A role panicked."),
            }
            // One role ending means the process is no longer whole: stop the rest.
            shutdown.cancel();
        }
        running.store(false, Ordering::Relaxed);
        let _ = heartbeat.await;
        if let Some((serving, backfills)) = http {
            let _ = serving.await;
            // A backfill stops at its next chunk and records that it was
            // interrupted; the orders it gave are committed already.
            backfills.close();
            backfills.wait().await;
        }
        self.close().await;
        Ok(())
    }

    pub async fn close(self) {
        self.deps.broker.close().await;
        self.deps.ledger.disconnect().await;
        self.deps.magento.disconnect().await;
    }
}

/// How long a graceful shutdown may take before the process exits anyway.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
