//! This process's row in `order_sync_instances`, refreshed every
//! [`HEARTBEAT`] and removed on the way out, so status output lists who is
//! running and who holds capture. Status is not worth stopping for: failures
//! only delay the next beat.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::{sleep_or_shutdown, Deps, Role, RoleError};
use crate::ledger::{Instance, Ledger};

/// How often each process records itself.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

pub struct Heartbeat {
    ledger: Ledger,
    instance_id: String,
    hostname: String,
    roles: &'static str,
    started_at: DateTime<Utc>,
    leader: Arc<AtomicBool>,
}

impl Heartbeat {
    /// `roles` as shown in status output (`capture,relay,acks`); `leader` is
    /// the flag capture sets while it holds the lock.
    pub fn new(deps: &Deps, roles: &'static str, leader: Arc<AtomicBool>) -> Self {
        let (instance_id, hostname) = instance_id();
        Self {
            ledger: deps.ledger.clone(),
            instance_id,
            hostname,
            roles,
            started_at: Utc::now(),
            leader,
        }
    }

    /// Records this instance as seen at `now`.
    pub async fn step(&self, now: DateTime<Utc>) -> Result<(), RoleError> {
        let me = Instance {
            instance_id: self.instance_id.clone(),
            hostname: self.hostname.clone(),
            pid: std::process::id(),
            roles: self.roles.into(),
            capture_leader: self.leader.load(Ordering::SeqCst),
            started_at: self.started_at,
            last_seen_at: now,
        };
        Ok(self.ledger.heartbeat(&me).await?)
    }
}

impl Role for Heartbeat {
    const NAME: &'static str = "heartbeat";

    async fn session(&mut self, shutdown: &CancellationToken) -> Result<(), RoleError> {
        loop {
            self.step(Utc::now()).await?;
            if !sleep_or_shutdown(HEARTBEAT, shutdown).await {
                return Ok(());
            }
        }
    }

    async fn finish(&mut self) {
        let _ = self.ledger.forget_instance(&self.instance_id).await;
    }
}

/// An id for this process: host, pid and a random part (pids are reused),
/// and the host name.
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
