//! The shop and the two databases: `[shop]`, `[magento]`, `[ledger]`.

use std::fmt;

use serde::Deserialize;

use super::{valid_name, Problems, SecretUrl, NAME_RULE};

/// Identifies the shop whose orders these are.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSettings {
    /// Source name carried in every message and message id; unique per shop.
    pub name: String,
}

impl ShopSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(valid_name(&self.name), "shop.name", NAME_RULE);
    }
}

/// Where the Magento orders are read from (never written).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MagentoSettings {
    /// `mysql://user:password@host:port/database` of the Magento database.
    pub url: SecretUrl,
    /// Magento's table prefix (`db/table_prefix` in env.php), empty for none.
    pub table_prefix: TablePrefix,
    /// Magento major version: 2 reads `sales_order*`, 1 (or OpenMage) `sales_flat_order*`.
    pub version: u8,
    /// Longest a read waits for a table lock (`lock_wait_timeout`, whole
    /// seconds): a read blocked by an `ALTER TABLE` or `LOCK TABLES` fails
    /// and is tried again at the next poll instead of stalling capture.
    #[serde(with = "humantime_serde")]
    pub lock_wait_timeout: std::time::Duration,
}

impl MagentoSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        p.check(
            matches!(self.version, 1 | 2),
            "magento.version",
            "must be 1 (Magento 1 / OpenMage) or 2",
        );
        self.url.check("magento.url", &["mysql"], p);
        p.check(
            self.lock_wait_timeout.as_secs() >= 1,
            "magento.lock_wait_timeout",
            "must be at least 1s (the server counts whole seconds)",
        );
    }
}

/// A Magento table prefix: letters, digits and `_`, at most 32. It can only be
/// built from a string that passed that check, so a table name made from it
/// is safe to put between backticks in SQL.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TablePrefix(String);

impl TablePrefix {
    /// The prefix in front of `name`.
    pub fn table(&self, name: &str) -> String {
        format!("{}{name}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TablePrefix {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() <= 32 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            Ok(Self(s))
        } else {
            Err("may only hold letters, digits and `_` (at most 32)".into())
        }
    }
}

impl TryFrom<&str> for TablePrefix {
    type Error = String;
    fn try_from(s: &str) -> Result<Self, String> {
        s.to_owned().try_into()
    }
}

impl fmt::Debug for TablePrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The ledger database order-sync owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerSettings {
    /// `mysql://user:password@host:port/database` of the ledger.
    pub url: SecretUrl,
    /// Create and migrate the ledger tables when a role starts.
    pub migrate_on_start: bool,
    /// Upper bound of pooled ledger connections.
    pub pool_max: usize,
}

impl LedgerSettings {
    pub(super) fn validate(&self, p: &mut Problems) {
        self.url.check("ledger.url", &["mysql"], p);
        p.check(self.pool_max >= 2, "ledger.pool_max", "must be at least 2");
    }
}
