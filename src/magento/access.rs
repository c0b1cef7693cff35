//! Which Magento tables order-sync reads, and whether its user may.
//!
//! Start-up (and `check-config --live`, and the import) asks the server
//! itself: `SELECT * FROM t LIMIT 0` on every table a job will read reads no
//! row and fails exactly as the real read would, with 1142 for a table the
//! user may not read and 1146 for one that does not exist.
//! `information_schema` cannot tell the two apart (it hides tables the user
//! has no privilege on), which made a refused table look like a missing one.

use mysql_async::prelude::*;

use super::{Magento, MagentoError};
use crate::message::Event;

/// One table a job reads, and why (for the error that names it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub table: String,
    pub why: String,
}

impl Read {
    fn new(table: &str, why: impl Into<String>) -> Self {
        Self {
            table: table.to_owned(),
            why: why.into(),
        }
    }
}

/// A table the user may not read, as the server refused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub read: Read,
    /// `GRANT SELECT ON ... TO ...;`
    pub grant: String,
}

/// Server codes for a refused read: no SELECT on the table (1142) or on
/// some of its columns (1143).
pub fn is_refused(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1142 | 1143))
}

fn is_missing_table(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if s.code == 1146)
}

/// `'user'@'host'` from `CURRENT_USER()`'s `user@host`.
fn quoted_account(current: &str) -> String {
    match current.rsplit_once('@') {
        Some((user, host)) => format!("'{user}'@'{host}'"),
        None => format!("'{current}'"),
    }
}

impl Magento {
    /// The tables capture reads, given which later events are subscribed to
    /// and whether `capture.filter.website_codes` is set. Held orders need
    /// only the order tables (their release re-reads the order).
    pub fn capture_reads(&self, website_filter: bool, events: &[Event]) -> Vec<Read> {
        let t = &self.tables;
        let mut reads: Vec<Read> = [&t.order, &t.item, &t.address, &t.payment, &t.status_history]
            .into_iter()
            .map(|table| Read::new(table, "orders"))
            .collect();
        if website_filter {
            reads.push(Read::new(&t.store, "capture.filter.website_codes"));
            reads.push(Read::new(&t.website, "capture.filter.website_codes"));
        }
        for kind in &self.documents {
            if !events.contains(&kind.event) {
                continue;
            }
            let why = format!("the {} event", kind.event);
            reads.push(Read::new(&kind.main, why.clone()));
            for (_, child) in &kind.children {
                reads.push(Read::new(child, why.clone()));
            }
        }
        reads
    }

    /// Checks that every table in `reads` exists and may be read. Names
    /// every refused table at once, with the statement that grants it.
    pub async fn check_access(&self, reads: &[Read]) -> Result<(), MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let mut refused = Vec::new();
        for read in reads {
            match conn
                .query_drop(format!("SELECT * FROM `{}` LIMIT 0", read.table))
                .await
            {
                Ok(()) => {}
                Err(e) if is_refused(&e) => refused.push(read.clone()),
                Err(e) if is_missing_table(&e) => {
                    return Err(MagentoError::MissingTable {
                        table: read.table.clone(),
                        database: self.database.clone(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        if refused.is_empty() {
            return Ok(());
        }
        let current: Option<String> = conn.query_first("SELECT CURRENT_USER()").await?;
        let account = quoted_account(current.as_deref().unwrap_or("?"));
        Err(MagentoError::Refused {
            account: account.clone(),
            tables: refused
                .into_iter()
                .map(|read| Refused {
                    grant: format!(
                        "GRANT SELECT ON `{}`.`{}` TO {account};",
                        self.database, read.table
                    ),
                    read,
                })
                .collect(),
        })
    }
}

impl MagentoError {
    /// What to do about it, where the error says.
    pub fn hint(&self) -> Option<String> {
        match self {
            MagentoError::Db(e) if is_refused(e) => Some(
                "the Magento user may not read a table capture needs; \
                 `order-sync check-config --live` names every grant missing"
                    .into(),
            ),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_quoted_as_a_grant_names_it() {
        assert_eq!(quoted_account("reader@%"), "'reader'@'%'");
        assert_eq!(quoted_account("a@b@localhost"), "'a@b'@'localhost'");
    }
}
