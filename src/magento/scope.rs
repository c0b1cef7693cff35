//! `capture.filter`, resolved: which of the shop's orders order-sync sends
//! at all. Capture asks it of each order it reads; a backfill adds it to its
//! SQL, so neither gives an order the other would leave out.

use std::collections::HashSet;

use crate::config::FilterSettings;

use super::{Magento, MagentoError, PlacedOrder};

/// `capture.filter` with website codes resolved to store ids. Empty lists
/// (and `stores: None`) mean no restriction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderScope {
    /// `store_ids` and the stores of `website_codes` together; `Some` of an
    /// empty set when the websites have no store: nothing is in scope.
    pub stores: Option<HashSet<u16>>,
    pub states: Vec<String>,
    pub statuses: Vec<String>,
}

impl OrderScope {
    /// Whether an order, as read, is in scope.
    pub fn matches(&self, order: &PlacedOrder) -> bool {
        let key = &order.key;
        if !self.store_matches(key.store_id) {
            return false;
        }
        let listed = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| x == v))
        };
        listed(&self.states, key.state.as_deref()) && listed(&self.statuses, key.status.as_deref())
    }

    /// Whether an order of `store` is in scope, the other conditions aside
    /// (for later events: their order was in scope when captured).
    pub fn store_matches(&self, store: Option<u16>) -> bool {
        match &self.stores {
            None => true,
            Some(stores) => store.is_some_and(|s| stores.contains(&s)),
        }
    }

    /// The same test as SQL conditions on the order table (` AND …` each).
    pub(super) fn sql(&self, sql: &mut String, params: &mut Vec<mysql_async::Value>) {
        if let Some(stores) = &self.stores {
            if stores.is_empty() {
                sql.push_str(" AND FALSE");
            } else {
                let mut stores: Vec<u16> = stores.iter().copied().collect();
                stores.sort_unstable();
                in_list(sql, params, "store_id", stores);
            }
        }
        in_list(sql, params, "state", self.states.iter().map(String::as_str));
        in_list(
            sql,
            params,
            "status",
            self.statuses.iter().map(String::as_str),
        );
    }
}

/// ` AND column IN (?, …)`, nothing for an empty list.
pub(super) fn in_list<V: Into<mysql_async::Value>>(
    sql: &mut String,
    params: &mut Vec<mysql_async::Value>,
    column: &str,
    values: impl IntoIterator<Item = V>,
) {
    let before = params.len();
    params.extend(values.into_iter().map(Into::into));
    let n = params.len() - before;
    if n > 0 {
        sql.push_str(&format!(" AND {column} IN ({})", vec!["?"; n].join(", ")));
    }
}

impl Magento {
    /// Resolves `capture.filter` against the shop's stores and websites.
    pub async fn order_scope(&self, f: &FilterSettings) -> Result<OrderScope, MagentoError> {
        let stores = if f.store_ids.is_empty() && f.website_codes.is_empty() {
            None
        } else {
            let mut set: HashSet<u16> = f.store_ids.iter().copied().collect();
            let of_websites = self.store_ids_of_websites(&f.website_codes).await?;
            if !f.website_codes.is_empty() && of_websites.is_empty() {
                tracing::warn!(website_codes = ?f.website_codes, "No store belongs to the websites in capture.filter.website_codes.");
            }
            set.extend(of_websites);
            Some(set)
        };
        Ok(OrderScope {
            stores,
            states: f.states.clone(),
            statuses: f.statuses.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(scope: &OrderScope) -> (String, usize) {
        let (mut sql, mut params) = (String::new(), Vec::new());
        scope.sql(&mut sql, &mut params);
        (sql, params.len())
    }

    #[test]
    fn no_filter_adds_no_condition() {
        assert_eq!(sql_of(&OrderScope::default()), (String::new(), 0));
    }

    #[test]
    fn websites_without_stores_leave_nothing_in_scope() {
        let scope = OrderScope {
            stores: Some(HashSet::new()),
            ..Default::default()
        };
        assert_eq!(sql_of(&scope).0, " AND FALSE");
        assert!(!scope.store_matches(Some(1)));
    }

    #[test]
    fn stores_states_and_statuses_each_narrow_the_query() {
        let scope = OrderScope {
            stores: Some([3, 1].into()),
            states: vec!["new".into(), "processing".into()],
            statuses: vec!["pending".into()],
        };
        assert_eq!(
            sql_of(&scope),
            (
                " AND store_id IN (?, ?) AND state IN (?, ?) AND status IN (?)".into(),
                5
            )
        );
    }
}
