//! The Magento side: reads placed, committed orders with their child rows.
//!
//! Read-only by construction: every read runs in a `READ ONLY` transaction with
//! a consistent snapshot, so an order and its items, addresses and payment are
//! read as of one moment, and nothing uncommitted is ever seen. Magento writes an
//! order and its children in one transaction, so a visible order is a complete one.
//! Sessions use UTC (`time_zone = '+00:00'`), which is what Magento stores.

pub mod access;
pub mod documents;
pub mod rows;
pub mod scope;
pub mod shape;

use std::collections::HashMap;

use mysql_async::{prelude::*, Pool, TxOpts};
use serde_json::{value::RawValue, Map, Value};

use crate::{
    config::{MagentoSettings, TablePrefix},
    db,
    message::OrderKey,
};
pub use scope::OrderScope;
pub use shape::DenyList;

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
    #[error("the Magento user {account} (magento.url) may not read {}; grant it: {}",
        tables.iter().map(|r| format!("`{}` ({})", r.read.table, r.read.why)).collect::<Vec<_>>().join(", "),
        tables.iter().map(|r| r.grant.as_str()).collect::<Vec<_>>().join(" "))]
    Refused {
        account: String,
        tables: Vec<access::Refused>,
    },
}

/// Which orders a backfill takes, beside its id range; empty means any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillFilter {
    /// Placed at or after (UTC).
    pub since: Option<chrono::NaiveDateTime>,
    /// Placed before (UTC).
    pub until: Option<chrono::NaiveDateTime>,
    /// In one of these states now.
    pub states: Vec<String>,
    pub stores: Vec<u16>,
}

impl BackfillFilter {
    /// The query for the orders asked, within `scope` (`capture.filter`).
    fn sql(
        &self,
        select: &str,
        scope: &OrderScope,
        after: u32,
        upto: u32,
    ) -> (String, Vec<mysql_async::Value>) {
        let mut sql = format!("{select} WHERE entity_id > ? AND entity_id <= ?");
        let mut params: Vec<mysql_async::Value> = vec![after.into(), upto.into()];
        if let Some(t) = self.since {
            sql.push_str(" AND created_at >= ?");
            params.push(t.into());
        }
        if let Some(t) = self.until {
            sql.push_str(" AND created_at < ?");
            params.push(t.into());
        }
        scope::in_list(
            &mut sql,
            &mut params,
            "state",
            self.states.iter().map(String::as_str),
        );
        scope::in_list(
            &mut sql,
            &mut params,
            "store_id",
            self.stores.iter().copied(),
        );
        scope.sql(&mut sql, &mut params);
        (sql, params)
    }
}

/// Physical table names, with the shop's prefix. Built only from a
/// [`TablePrefix`], so every name is safe between backticks.
#[derive(Debug, Clone)]
pub struct Tables {
    pub order: String,
    pub item: String,
    pub address: String,
    pub payment: String,
    pub status_history: String,
    pub store: String,
    pub website: String,
}

impl Tables {
    /// Magento 2: `sales_order*`, `store`, `store_website`.
    pub fn magento2(prefix: &TablePrefix) -> Self {
        let t = |name: &str| prefix.table(name);
        Self {
            order: t("sales_order"),
            item: t("sales_order_item"),
            address: t("sales_order_address"),
            payment: t("sales_order_payment"),
            status_history: t("sales_order_status_history"),
            store: t("store"),
            website: t("store_website"),
        }
    }

    /// Magento 1 / OpenMage: `sales_flat_order*`, `core_store`, `core_website`.
    /// The columns order-sync relies on have the same names as in Magento 2.
    pub fn magento1(prefix: &TablePrefix) -> Self {
        let t = |name: &str| prefix.table(name);
        Self {
            order: t("sales_flat_order"),
            item: t("sales_flat_order_item"),
            address: t("sales_flat_order_address"),
            payment: t("sales_flat_order_payment"),
            status_history: t("sales_flat_order_status_history"),
            store: t("core_store"),
            website: t("core_website"),
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

/// Most awaited ids read by one statement.
const GAP_CHUNK: usize = 1_000;

/// Which ids the server can hand out: those congruent to one of `residues`
/// modulo `increment`. One writer has one residue (its offset); a cluster
/// whose nodes all write has one per node, learned from the ids seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdStep {
    pub increment: u32,
    residues: std::collections::BTreeSet<u32>,
}

impl IdStep {
    pub fn new(increment: u32, offset: u32) -> Self {
        let increment = increment.max(1);
        // The server ignores an offset larger than the increment.
        let offset = if offset > increment { 1 } else { offset };
        Self {
            increment,
            residues: [offset % increment].into(),
        }
    }

    /// Every id is possible (the server's default).
    pub fn one() -> Self {
        Self::new(1, 1)
    }

    /// Records that `id` exists, so its residue is possible from now on.
    pub fn learn(&mut self, id: u32) {
        if self.increment > 1 {
            self.residues.insert(id % self.increment);
        }
    }

    /// Whether the server could have handed out `id`.
    pub fn possible(&self, id: u32) -> bool {
        self.increment == 1 || self.residues.contains(&(id % self.increment))
    }
}

/// A placed order, read with its child rows.
#[derive(Debug, Clone)]
pub struct PlacedOrder {
    pub entity_id: u32,
    /// The order as JSON text: every `sales_order` column plus `items`,
    /// `addresses`, `billing_address`, `payment` and `status_histories`.
    /// Text, not a tree: a Magento order's `serde_json` tree takes several
    /// times its text, and a batch holds a hundred or more at once.
    pub json: Box<RawValue>,
    /// Its identifying fields, read from the tree before it became text.
    pub key: OrderKey,
}

impl PlacedOrder {
    /// The order built from its row and children, as text with its key.
    fn new(entity_id: u32, order: Map<String, Value>) -> Self {
        let text = |name: &str| order.get(name).and_then(Value::as_str).map(str::to_owned);
        // Field by field and lenient: an odd increment id or store loses
        // that field of the key, never the order.
        let key = OrderKey {
            entity_id,
            increment_id: text("increment_id"),
            store_id: documents::store_of(&order),
            created_at: text("created_at"),
            state: text("state"),
            status: text("status"),
        };
        let json = serde_json::value::to_raw_value(&order).expect("a JSON map always serializes");
        Self {
            entity_id,
            json,
            key,
        }
    }
}

#[derive(Clone)]
pub struct Magento {
    pool: Pool,
    /// For connections of their own (the binlog follower's replication stream).
    opts: mysql_async::Opts,
    tables: Tables,
    documents: Vec<documents::DocumentTables>,
    database: String,
    deny: DenyList,
}

impl Magento {
    pub fn new(settings: &MagentoSettings, deny: DenyList) -> Result<Self, MagentoError> {
        let opts = db::pool_opts(
            &settings.url,
            4,
            vec![
                "SET time_zone = '+00:00'".into(),
                "SET NAMES utf8mb4".into(),
                format!(
                    "SET SESSION lock_wait_timeout = {}",
                    settings.lock_wait_timeout.as_secs().max(1)
                ),
            ],
        )?;
        let pool = Pool::new(opts.clone());
        let tables = match settings.version {
            1 => Tables::magento1(&settings.table_prefix),
            _ => Tables::magento2(&settings.table_prefix),
        };
        let documents =
            documents::DocumentTables::all(&settings.table_prefix, settings.version == 1);
        Ok(Self {
            pool,
            opts,
            tables,
            documents,
            database: db::database_name(&settings.url).unwrap_or_default(),
            deny,
        })
    }

    /// The store ids of the websites with these codes.
    pub async fn store_ids_of_websites(&self, codes: &[String]) -> Result<Vec<u16>, MagentoError> {
        if codes.is_empty() {
            return Ok(vec![]);
        }
        let mut conn = self.pool.get_conn().await?;
        let marks = vec!["?"; codes.len()].join(", ");
        Ok(conn
            .exec(
                format!(
                    "SELECT s.store_id FROM `{}` s JOIN `{}` w ON w.website_id = s.website_id \
                     WHERE w.code IN ({marks}) ORDER BY s.store_id",
                    self.tables.store, self.tables.website
                ),
                codes.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .await?)
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

    /// The paths an order message has, two levels deep, from Magento's own
    /// columns: each top-level field with the fields under it (none for a
    /// plain column). For checking consumers' `fields` and `deny_fields`.
    pub async fn order_paths(&self) -> Result<shape::OrderPaths, MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let t = &self.tables;
        let mut of = Vec::with_capacity(5);
        for table in [&t.order, &t.item, &t.address, &t.payment, &t.status_history] {
            let columns: Vec<String> = conn
                .exec(
                    "SELECT column_name FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position",
                    (table,),
                )
                .await?;
            of.push(columns);
        }
        let [order, item, address, payment, history]: [Vec<String>; 5] =
            of.try_into().expect("five tables read");
        Ok(shape::OrderPaths::new(
            order, item, address, payment, history,
        ))
    }

    /// The ids of the orders a backfill takes, above `after` and at most
    /// `upto`, that match `filter`: lowest first, at most `limit`. A range
    /// scan of the primary key, filtered.
    pub async fn backfill_ids(
        &self,
        after: u32,
        upto: u32,
        filter: &BackfillFilter,
        scope: &OrderScope,
        limit: u32,
    ) -> Result<Vec<u32>, MagentoError> {
        let (sql, params) = filter.sql(
            &format!("SELECT entity_id FROM `{}`", self.tables.order),
            scope,
            after,
            upto,
        );
        let mut conn = self.pool.get_conn().await?;
        Ok(conn
            .exec(format!("{sql} ORDER BY entity_id LIMIT {limit}"), params)
            .await?)
    }

    /// How many orders [`Magento::backfill_ids`] would give, all chunks together.
    pub async fn backfill_count(
        &self,
        after: u32,
        upto: u32,
        filter: &BackfillFilter,
        scope: &OrderScope,
    ) -> Result<u64, MagentoError> {
        let (sql, params) = filter.sql(
            &format!("SELECT COUNT(*) FROM `{}`", self.tables.order),
            scope,
            after,
            upto,
        );
        let mut conn = self.pool.get_conn().await?;
        Ok(conn.exec_first(sql, params).await?.unwrap_or(0))
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

    /// The options for a connection of its own to the Magento database.
    pub fn opts(&self) -> &mysql_async::Opts {
        &self.opts
    }

    /// The Magento database's name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// How the server hands out ids: `auto_increment_increment` and
    /// `auto_increment_offset` (Galera and group replication set them > 1).
    pub async fn id_step(&self) -> Result<IdStep, MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let (increment, offset): (u32, u32) = conn
            .query_first("SELECT @@GLOBAL.auto_increment_increment, @@GLOBAL.auto_increment_offset")
            .await?
            .unwrap_or((1, 1));
        Ok(IdStep::new(increment, offset))
    }

    /// Where each column of `table` is among its columns (0-based), as the
    /// binary log's row images list them.
    pub async fn column_places(
        &self,
        table: &str,
    ) -> Result<std::collections::HashMap<String, usize>, MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let rows: Vec<(String, u32)> = conn
            .exec(
                "SELECT COLUMN_NAME, ORDINAL_POSITION FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                (table,),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(name, place)| (name, place.saturating_sub(1) as usize))
            .collect())
    }

    /// These committed orders (those that exist), each with its children.
    pub async fn read_orders_by_id(&self, ids: &[u32]) -> Result<Vec<PlacedOrder>, MagentoError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        self.read_orders(u32::MAX, 0, ids).await
    }

    /// The pool, for reading tables beside the order tables (the import of
    /// the original module's queue).
    pub fn pool(&self) -> &Pool {
        &self.pool
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
        // Awaited ids in bounded chunks: one statement never grows with a gap storm.
        for chunk in also.chunks(GAP_CHUNK) {
            let gap_rows: Vec<mysql_async::Row> = tx
                .query(format!(
                    "SELECT * FROM `{}` WHERE entity_id IN ({}) ORDER BY entity_id",
                    t.order,
                    id_list(chunk)
                ))
                .await?;
            orders.extend(gap_rows);
        }
        // Rows stay rows (a few bytes per column) until their order is
        // shaped; each order is then text before the next is built.
        let id_of = rows::int_column(&orders, "entity_id");
        let mut orders: Vec<(u32, mysql_async::Row)> = orders
            .into_iter()
            .map(|r| (id_of(&r).unwrap_or_default() as u32, r))
            .collect();
        orders.sort_by_key(|(id, _)| *id);
        orders.dedup_by_key(|(id, _)| *id);
        if orders.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        let order_names = rows::Names::of(&orders[0].1);
        let ids: Vec<u32> = orders.iter().map(|(id, _)| *id).collect();
        let list = id_list(&ids);
        let mut items = self
            .children(&mut tx, &t.item, "order_id", "item_id", &list)
            .await?;
        let mut addresses = self
            .children(&mut tx, &t.address, "parent_id", "entity_id", &list)
            .await?;
        let mut payments = self
            .children(&mut tx, &t.payment, "parent_id", "entity_id", &list)
            .await?;
        let mut histories = self
            .children(&mut tx, &t.status_history, "parent_id", "entity_id", &list)
            .await?;
        tx.commit().await?;
        let take = |(names, groups): &mut Grouped, id: u32| {
            groups
                .remove(&id)
                .unwrap_or_default()
                .into_iter()
                .map(|r| rows::named_row_to_json(r, names))
                .collect::<Vec<_>>()
        };
        Ok(orders
            .into_iter()
            .map(|(entity_id, row)| {
                let children = shape::Children {
                    items: take(&mut items, entity_id),
                    addresses: take(&mut addresses, entity_id),
                    payments: take(&mut payments, entity_id),
                    status_histories: take(&mut histories, entity_id),
                };
                let order = shape::order(
                    rows::named_row_to_json(row, &order_names),
                    children,
                    &self.deny,
                );
                PlacedOrder::new(entity_id, order)
            })
            .collect())
    }

    /// A child table's rows of these orders, grouped by order, each group in
    /// `key` order.
    async fn children(
        &self,
        tx: &mut mysql_async::Transaction<'_>,
        table: &str,
        parent: &str,
        key: &str,
        ids: &str,
    ) -> Result<Grouped, MagentoError> {
        // By parent, then key: the parent's index gives that order (InnoDB
        // keeps the primary key in it), so the server reads the rows in
        // order instead of sorting them; grouped by parent, each group is
        // still in key order.
        let rows: Vec<mysql_async::Row> = tx
            .query(format!(
                "SELECT * FROM `{table}` WHERE `{parent}` IN ({ids}) ORDER BY `{parent}`, `{key}`"
            ))
            .await?;
        let names = rows.first().map(rows::Names::of).unwrap_or_default();
        let parent_of = rows::int_column(&rows, parent);
        let groups = by_parent(
            rows.into_iter()
                .map(|r| (parent_of(&r).unwrap_or_default(), r)),
        );
        Ok((names, groups))
    }

    pub async fn disconnect(self) {
        let _ = self.pool.disconnect().await;
    }
}

/// A child table's rows of a batch by order, with the names of its columns.
type Grouped = (rows::Names, HashMap<u32, Vec<mysql_async::Row>>);

/// A batch's child rows grouped by order, each group in the order read.
fn by_parent<T>(rows: impl IntoIterator<Item = (u64, T)>) -> HashMap<u32, Vec<T>> {
    let mut groups: HashMap<u32, Vec<T>> = HashMap::new();
    for (parent, row) in rows {
        groups.entry(parent as u32).or_default().push(row);
    }
    groups
}

fn id_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}
