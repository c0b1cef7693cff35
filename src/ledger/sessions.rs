//! Status page sessions signed out. A session is an HMAC any instance can
//! check without the ledger; signing out must still end it on every
//! instance, so its id is listed here until it would have expired.

use chrono::{DateTime, Utc};
use mysql_async::prelude::*;

use super::{naive, Ledger, LedgerError};

impl Ledger {
    /// Ends session `id` (valid until `expires`) on every instance, and
    /// forgets sessions that have expired anyway.
    pub async fn revoke_session(
        &self,
        id: &str,
        expires: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.exec_drop(
            "INSERT IGNORE INTO order_sync_revoked_sessions (id, expires_at) VALUES (?, ?)",
            (id, naive(expires)),
        )
        .await?;
        conn.exec_drop(
            "DELETE FROM order_sync_revoked_sessions WHERE expires_at < ? LIMIT 1000",
            (naive(now),),
        )
        .await?;
        Ok(())
    }

    /// Whether session `id` was signed out.
    pub async fn session_revoked(&self, id: &str) -> Result<bool, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let found: Option<u8> = conn
            .exec_first(
                "SELECT 1 FROM order_sync_revoked_sessions WHERE id = ?",
                (id,),
            )
            .await?;
        Ok(found.is_some())
    }
}
