//! The Magento side: reads placed, committed orders with their child rows.
//!
//! Read-only by construction: every read runs in a `READ ONLY` transaction with
//! a consistent snapshot, so an order and its items, addresses and payment are
//! read as of one moment, and nothing uncommitted is ever seen. Magento writes an
//! order and its children in one transaction, so a visible order is a complete one.
//! Sessions use UTC (`time_zone = '+00:00'`), which is what Magento stores.

pub mod rows;

use mysql_async::{prelude::*, Pool, TxOpts};
use serde_json::{Map, Value};

use crate::{config::MagentoSettings, db};

#[derive(Debug, thiserror::Error)]
pub enum MagentoError {
    #[error(transparent)]
    Url(#[from] db::DbUrlError),
    #[error("Magento database error: {0}")]
    Db(#[from] mysql_async::Error),
    #[error("Magento table `{table}` not found in database `{database}` (check magento.url and magento.table_prefix)")]
    MissingTable { table: String, database: String },
    #[error("Magento table `{table}` has no column `{column}` (is magento.version right?)")]
    MissingColumn { table: String, column: String },
}

/// Physical table names, with the shop's prefix.
#[derive(Debug, Clone)]
pub struct Tables {
    pub order: String,
    pub item: String,
    pub address: String,
    pub payment: String,
    pub status_history: String,
}

impl Tables {
    pub fn magento2(prefix: &str) -> Self {
        let t = |name: &str| format!("{prefix}{name}");
        Self {
            order: t("sales_order"),
            item: t("sales_order_item"),
            address: t("sales_order_address"),
            payment: t("sales_order_payment"),
            status_history: t("sales_order_status_history"),
        }
    }

    /// Each table with the columns order-sync relies on: its key and its link to the order.
    fn all(&self) -> [(&str, [&'static str; 2]); 5] {
        [
            (&self.order, ["entity_id", "increment_id"]),
            (&self.item, ["item_id", "order_id"]),
            (&self.address, ["entity_id", "parent_id"]),
            (&self.payment, ["entity_id", "parent_id"]),
            (&self.status_history, ["entity_id", "parent_id"]),
        ]
    }
}

/// A placed order, read with its child rows.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub entity_id: u32,
    /// The order as JSON: every `sales_order` column plus `items`, `addresses`,
    /// `billing_address`, `payment` and `status_histories`.
    pub json: Map<String, Value>,
}

#[derive(Clone)]
pub struct Magento {
    pool: Pool,
    tables: Tables,
    database: String,
}

impl Magento {
    pub fn new(settings: &MagentoSettings) -> Result<Self, MagentoError> {
        let pool = db::pool(
            &settings.url,
            4,
            vec![
                "SET time_zone = '+00:00'".into(),
                "SET NAMES utf8mb4".into(),
            ],
        )?;
        Ok(Self {
            pool,
            tables: Tables::magento2(&settings.table_prefix),
            database: db::database_name(&settings.url).unwrap_or_default(),
        })
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Fails with the missing table or column, so a wrong prefix or database is
    /// reported at start rather than as an SQL error on every poll.
    pub async fn check_schema(&self) -> Result<(), MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        for (table, needed) in self.tables.all() {
            let columns: Vec<String> = conn
                .exec(
                    "SELECT column_name FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ?",
                    (table,),
                )
                .await?;
            if columns.is_empty() {
                return Err(MagentoError::MissingTable {
                    table: table.to_owned(),
                    database: self.database.clone(),
                });
            }
            for column in needed {
                if !columns.iter().any(|c| c.eq_ignore_ascii_case(column)) {
                    return Err(MagentoError::MissingColumn {
                        table: table.to_owned(),
                        column: column.to_owned(),
                    });
                }
            }
        }
        Ok(())
    }

    /// The highest order id committed now (0 for none).
    pub async fn max_entity_id(&self) -> Result<u32, MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let max: Option<Option<u32>> = conn
            .query_first(format!(
                "SELECT MAX(entity_id) FROM `{}`",
                self.tables.order
            ))
            .await?;
        Ok(max.flatten().unwrap_or(0))
    }

    /// Committed orders with `entity_id > after` (at most `limit`, lowest first)
    /// plus those among `also` that are now committed, each with its children.
    pub async fn read_orders(
        &self,
        after: u32,
        limit: u32,
        also: &[u32],
    ) -> Result<Vec<PlacedOrder>, MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let mut opts = TxOpts::default();
        opts.with_readonly(true).with_consistent_snapshot(true);
        let mut tx = conn.start_transaction(opts).await?;
        let t = &self.tables;
        // Ids are integers this process produced; inlining them keeps the text
        // protocol, whose values arrive as the server's exact text (DECIMALs too).
        let mut orders: Vec<mysql_async::Row> = tx
            .query(format!(
                "SELECT * FROM `{}` WHERE entity_id > {after} ORDER BY entity_id LIMIT {limit}",
                t.order
            ))
            .await?;
        if !also.is_empty() {
            let gap_rows: Vec<mysql_async::Row> = tx
                .query(format!(
                    "SELECT * FROM `{}` WHERE entity_id IN ({}) ORDER BY entity_id",
                    t.order,
                    id_list(also)
                ))
                .await?;
            orders.extend(gap_rows);
        }
        let mut placed: Vec<PlacedOrder> = orders
            .into_iter()
            .map(|r| {
                let json = rows::row_to_json(r);
                let entity_id = json
                    .get("entity_id")
                    .and_then(Value::as_u64)
                    .unwrap_or_default() as u32;
                PlacedOrder { entity_id, json }
            })
            .collect();
        placed.sort_by_key(|o| o.entity_id);
        placed.dedup_by_key(|o| o.entity_id);
        if placed.is_empty() {
            tx.commit().await?;
            return Ok(placed);
        }
        let ids: Vec<u32> = placed.iter().map(|o| o.entity_id).collect();
        let list = id_list(&ids);
        let items = self
            .children(&mut tx, &t.item, "order_id", "item_id", &list)
            .await?;
        let addresses = self
            .children(&mut tx, &t.address, "parent_id", "entity_id", &list)
            .await?;
        let payments = self
            .children(&mut tx, &t.payment, "parent_id", "entity_id", &list)
            .await?;
        let histories = self
            .children(&mut tx, &t.status_history, "parent_id", "entity_id", &list)
            .await?;
        tx.commit().await?;
        for o in &mut placed {
            let id = o.entity_id as u64;
            let of = |rows: &[(u64, Map<String, Value>)]| -> Vec<Value> {
                rows.iter()
                    .filter(|(p, _)| *p == id)
                    .map(|(_, r)| Value::Object(r.clone()))
                    .collect()
            };
            let addrs = of(&addresses);
            let billing = addrs
                .iter()
                .find(|a| a.get("address_type").and_then(Value::as_str) == Some("billing"))
                .cloned()
                .unwrap_or(Value::Null);
            o.json.insert("items".into(), Value::Array(of(&items)));
            o.json.insert("billing_address".into(), billing);
            o.json.insert("addresses".into(), Value::Array(addrs));
            o.json.insert(
                "payment".into(),
                of(&payments).into_iter().next().unwrap_or(Value::Null),
            );
            o.json
                .insert("status_histories".into(), Value::Array(of(&histories)));
        }
        Ok(placed)
    }

    async fn children(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        table: &str,
        parent: &str,
        key: &str,
        ids: &str,
    ) -> Result<Vec<(u64, Map<String, Value>)>, MagentoError> {
        let rows: Vec<mysql_async::Row> = tx
            .query(format!(
                "SELECT * FROM `{table}` WHERE `{parent}` IN ({ids}) ORDER BY `{key}`"
            ))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let json = rows::row_to_json(r);
                let p = json.get(parent).and_then(Value::as_u64).unwrap_or_default();
                (p, json)
            })
            .collect())
    }

    pub async fn disconnect(self) {
        let _ = self.pool.disconnect().await;
    }
}

fn id_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
