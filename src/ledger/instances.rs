//! Running order-sync processes, each refreshed every few seconds, so status
//! output can say who is doing what and who holds capture.

use chrono::{DateTime, Utc};
use mysql_async::prelude::*;

use super::{from_rows, naive, utc_to_value, utc_value, Ledger, LedgerError};

/// One running order-sync process, as recorded in `order_sync_instances`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, FromRow)]
pub struct Instance {
    pub instance_id: String,
    pub hostname: String,
    pub pid: u32,
    pub roles: String,
    pub capture_leader: bool,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    pub started_at: DateTime<Utc>,
    #[mysql(deserialize_with = "utc_value", serialize_with = "utc_to_value")]
    pub last_seen_at: DateTime<Utc>,
}

impl Ledger {
    /// Records that this instance is alive and what it does.
    pub async fn heartbeat(&self, me: &Instance) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "INSERT INTO order_sync_instances \
             (instance_id, hostname, pid, roles, capture_leader, started_at, last_seen_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON DUPLICATE KEY UPDATE roles = VALUES(roles), capture_leader = VALUES(capture_leader), \
             last_seen_at = VALUES(last_seen_at)",
            (
                me.instance_id.as_str(),
                me.hostname.as_str(),
                me.pid,
                me.roles.as_str(),
                me.capture_leader,
                naive(me.started_at),
                naive(me.last_seen_at),
            ),
        )
        .await?;
        // Forget instances gone for a day; recent ones stay visible as "gone".
        conn.exec_drop(
            "DELETE FROM order_sync_instances WHERE last_seen_at < ?",
            (naive(me.last_seen_at - chrono::Duration::days(1)),),
        )
        .await?;
        Ok(())
    }

    /// Removes an instance's record (on graceful stop).
    pub async fn forget_instance(&self, instance_id: &str) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "DELETE FROM order_sync_instances WHERE instance_id = ?",
            (instance_id,),
        )
        .await?;
        Ok(())
    }

    /// Instances seen since `since`, most recent first.
    pub async fn instances(&self, since: DateTime<Utc>) -> Result<Vec<Instance>, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        from_rows(
            conn.exec(
                "SELECT instance_id, hostname, pid, roles, capture_leader, started_at, last_seen_at \
                 FROM order_sync_instances WHERE last_seen_at >= ? ORDER BY last_seen_at DESC",
                (naive(since),),
            )
            .await?,
        )
    }
}
