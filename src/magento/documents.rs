//! An order's later life as Magento stores it: invoices, shipments and credit
//! memos (each with its items, comments and, for shipments, tracks), and
//! changes of the order's state or status.
//!
//! Documents are read like orders: by id above a position plus awaited ids
//! below it, in a read-only transaction with a consistent snapshot, so a
//! document is read whole and only once committed. Each is shaped as
//! Magento's REST API returns it (`GET /V1/invoices/{id}`, …): every column,
//! DECIMALs as exact strings, UTC dates, and `items`, `comments` (and
//! `tracks`) as arrays; the deny list applies as it does to orders.

use mysql_async::{prelude::*, Transaction, TxOpts};
use serde_json::{Map, Value};

use super::{by_parent, id_list, rows, Magento, MagentoError};
use crate::{config::TablePrefix, message::Event};

/// One kind of document's tables.
#[derive(Debug, Clone)]
pub struct DocumentTables {
    pub event: Event,
    pub main: String,
    /// (key in the message, table), each linked by `parent_id`.
    pub children: Vec<(&'static str, String)>,
}

impl DocumentTables {
    /// Invoices, shipments and credit memos, under Magento 2's names
    /// (`sales_invoice`, …) or Magento 1's (`sales_flat_invoice`, …).
    pub fn all(prefix: &TablePrefix, magento1: bool) -> Vec<DocumentTables> {
        let t = |name: &str| {
            if magento1 {
                prefix.table(&name.replacen("sales_", "sales_flat_", 1))
            } else {
                prefix.table(name)
            }
        };
        vec![
            DocumentTables {
                event: Event::Invoiced,
                main: t("sales_invoice"),
                children: vec![
                    ("items", t("sales_invoice_item")),
                    ("comments", t("sales_invoice_comment")),
                ],
            },
            DocumentTables {
                event: Event::Shipped,
                main: t("sales_shipment"),
                children: vec![
                    ("items", t("sales_shipment_item")),
                    ("tracks", t("sales_shipment_track")),
                    ("comments", t("sales_shipment_comment")),
                ],
            },
            DocumentTables {
                event: Event::Refunded,
                main: t("sales_creditmemo"),
                children: vec![
                    ("items", t("sales_creditmemo_item")),
                    ("comments", t("sales_creditmemo_comment")),
                ],
            },
        ]
    }
}

/// The order fields every later event carries.
pub const ORDER_IDENTIFIERS: [&str; 6] = [
    "entity_id",
    "increment_id",
    "store_id",
    "state",
    "status",
    "created_at",
];

/// A document as read, with its order's identifiers, state and status.
#[derive(Debug, Clone)]
pub struct Document {
    pub event: Event,
    pub entity_id: u32,
    pub order_id: u32,
    /// The document's `created_at`, UTC, as Magento stores it.
    pub created_at: Option<String>,
    pub json: Map<String, Value>,
    /// `ORDER_IDENTIFIERS` of its order; `None` if the order row is gone.
    pub order: Option<Map<String, Value>>,
}

/// An order whose `updated_at` is in the scanned window.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderChange {
    pub entity_id: u32,
    pub store_id: Option<u16>,
    pub state: Option<String>,
    pub status: Option<String>,
    pub updated_at: String,
    /// `ORDER_IDENTIFIERS`.
    pub order: Map<String, Value>,
}

fn u32_of(row: &Map<String, Value>, key: &str) -> u32 {
    row.get(key).and_then(Value::as_u64).unwrap_or_default() as u32
}

/// An order's `store_id`; one that is not a store id (Magento's is a
/// SMALLINT UNSIGNED) is none, never wrapped into another store's.
pub fn store_of(order: &Map<String, Value>) -> Option<u16> {
    order
        .get("store_id")
        .and_then(Value::as_u64)
        .and_then(|s| u16::try_from(s).ok())
}

fn text_of(row: &Map<String, Value>, key: &str) -> Option<String> {
    row.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn identifier_columns() -> String {
    ORDER_IDENTIFIERS
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Magento {
    /// The document tables of this shop's Magento version.
    pub fn document_tables(&self) -> &[DocumentTables] {
        &self.documents
    }

    /// A read-only transaction with a consistent snapshot, for one scan:
    /// documents and changes read in it are as of one moment, so an invoice
    /// and the state change its save made are seen together or not at all.
    ///
    /// mysql_async's own transaction, not a `START TRANSACTION` of ours: a
    /// scan that fails half-way drops it, and mysql_async rolls it back when
    /// the connection returns to the pool (or discards the connection if it
    /// cannot). A transaction the driver does not know about stayed open on
    /// the pooled connection, held a snapshot on the shop's database, and made
    /// every later read on it fail (1568, "transaction characteristics can't
    /// be changed while a transaction is in progress").
    pub async fn snapshot(&self) -> Result<Snapshot, MagentoError> {
        let mut opts = TxOpts::default();
        opts.with_readonly(true).with_consistent_snapshot(true);
        let tx = self.pool.start_transaction(opts).await?;
        Ok(Snapshot {
            tx,
            magento: self.clone(),
        })
    }

    /// Where a kind's position starts so that every document created at or
    /// after `since` is read: just before the first of them, or, if there is
    /// none yet, after the highest id committed now (0 for none). One
    /// statement, so both are of one moment.
    pub async fn document_start(
        &self,
        kind: &DocumentTables,
        since: chrono::NaiveDateTime,
    ) -> Result<u32, MagentoError> {
        let mut conn = self.pool.get_conn().await?;
        let row: Option<(Option<u32>, Option<u32>)> = conn
            .exec_first(
                format!(
                    "SELECT (SELECT MIN(entity_id) FROM `{0}` WHERE created_at >= ?), \
                     (SELECT MAX(entity_id) FROM `{0}`)",
                    kind.main
                ),
                (since,),
            )
            .await?;
        Ok(match row {
            Some((Some(first), _)) => first - 1,
            Some((None, Some(max))) => max,
            _ => 0,
        })
    }
}

/// One scan's view of Magento ([`Magento::snapshot`]).
pub struct Snapshot {
    tx: Transaction<'static>,
    magento: Magento,
}

impl Snapshot {
    /// Ends the snapshot. Dropping it instead rolls it back.
    pub async fn finish(self) -> Result<(), MagentoError> {
        self.tx.commit().await?;
        Ok(())
    }

    /// Committed documents of one kind with `entity_id > after` (at most
    /// `limit`, lowest first) plus those among `also` now committed, each
    /// with its children and its order's identifiers.
    pub async fn documents(
        &mut self,
        kind: &DocumentTables,
        after: u32,
        limit: u32,
        also: &[u32],
    ) -> Result<Vec<Document>, MagentoError> {
        let tx = &mut self.tx;
        let mut found: Vec<mysql_async::Row> = tx
            .query(format!(
                "SELECT * FROM `{}` WHERE entity_id > {after} ORDER BY entity_id LIMIT {limit}",
                kind.main
            ))
            .await?;
        for chunk in also.chunks(super::GAP_CHUNK) {
            let rows: Vec<mysql_async::Row> = tx
                .query(format!(
                    "SELECT * FROM `{}` WHERE entity_id IN ({}) ORDER BY entity_id",
                    kind.main,
                    id_list(chunk)
                ))
                .await?;
            found.extend(rows);
        }
        self.whole(kind, found).await
    }

    /// Every committed document of one kind of the orders `order_ids`, each
    /// with its children and its order's identifiers, lowest id first (a
    /// backfill's reading of an order's past).
    pub async fn documents_of(
        &mut self,
        kind: &DocumentTables,
        order_ids: &[u32],
    ) -> Result<Vec<Document>, MagentoError> {
        let mut found: Vec<mysql_async::Row> = Vec::new();
        for chunk in order_ids.chunks(super::GAP_CHUNK) {
            let rows: Vec<mysql_async::Row> = self
                .tx
                .query(format!(
                    "SELECT * FROM `{}` WHERE order_id IN ({}) ORDER BY entity_id",
                    kind.main,
                    id_list(chunk)
                ))
                .await?;
            found.extend(rows);
        }
        self.whole(kind, found).await
    }

    /// Documents' main rows made whole: children, the order's identifiers,
    /// the deny list.
    async fn whole(
        &mut self,
        kind: &DocumentTables,
        found: Vec<mysql_async::Row>,
    ) -> Result<Vec<Document>, MagentoError> {
        let this = &self.magento;
        let tx = &mut self.tx;
        let mut docs: Vec<Map<String, Value>> = found.into_iter().map(rows::row_to_json).collect();
        docs.sort_by_key(|d| u32_of(d, "entity_id"));
        docs.dedup_by_key(|d| u32_of(d, "entity_id"));
        if docs.is_empty() {
            return Ok(vec![]);
        }
        let ids: Vec<u32> = docs.iter().map(|d| u32_of(d, "entity_id")).collect();
        let list = id_list(&ids);
        let mut children = Vec::with_capacity(kind.children.len());
        for (key, table) in &kind.children {
            let rows: Vec<mysql_async::Row> = tx
                .query(format!(
                    "SELECT * FROM `{table}` WHERE `parent_id` IN ({list}) ORDER BY `entity_id`"
                ))
                .await?;
            let rows = rows.into_iter().map(|r| {
                let json = rows::row_to_json(r);
                (u32_of(&json, "parent_id") as u64, json)
            });
            children.push((*key, by_parent(rows)));
        }
        let mut order_ids: Vec<u32> = docs.iter().map(|d| u32_of(d, "order_id")).collect();
        order_ids.sort_unstable();
        order_ids.dedup();
        let orders: Vec<mysql_async::Row> = tx
            .query(format!(
                "SELECT {} FROM `{}` WHERE entity_id IN ({})",
                identifier_columns(),
                this.tables.order,
                id_list(&order_ids)
            ))
            .await?;
        let mut orders: std::collections::HashMap<u32, Map<String, Value>> = orders
            .into_iter()
            .map(rows::row_to_json)
            .map(|o| (u32_of(&o, "entity_id"), o))
            .collect();
        Ok(docs
            .into_iter()
            .map(|mut doc| {
                let entity_id = u32_of(&doc, "entity_id");
                for (key, groups) in children.iter_mut() {
                    let rows = groups.remove(&entity_id).unwrap_or_default();
                    doc.insert(
                        (*key).into(),
                        Value::Array(rows.into_iter().map(Value::Object).collect()),
                    );
                }
                this.deny.apply(&mut doc);
                let order_id = u32_of(&doc, "order_id");
                Document {
                    event: kind.event,
                    entity_id,
                    order_id,
                    created_at: text_of(&doc, "created_at"),
                    order: orders.remove(&order_id).map(|mut o| {
                        this.deny.apply(&mut o);
                        o
                    }),
                    json: doc,
                }
            })
            .collect())
    }

    /// Orders up to `max_entity_id` after the cursor (`updated_at`, UTC
    /// `YYYY-MM-DD HH:MM:SS`, then `entity_id`) in that order, at most
    /// `limit`: the candidates for a change of state or status. `(since, 0)`
    /// starts at `since`.
    pub async fn changes(
        &mut self,
        since: &str,
        after_id: u32,
        max_entity_id: u32,
        limit: u32,
    ) -> Result<Vec<OrderChange>, MagentoError> {
        let this = &self.magento;
        let rows: Vec<mysql_async::Row> = self
            .tx
            .exec(
                format!(
                    "SELECT {}, `updated_at` AS order_sync_updated_at FROM `{}` \
                     WHERE (updated_at > ? OR (updated_at = ? AND entity_id > ?)) \
                       AND entity_id <= ? \
                     ORDER BY updated_at, entity_id LIMIT {limit}",
                    identifier_columns(),
                    this.tables.order
                ),
                (since, since, after_id, max_entity_id),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut order = rows::row_to_json(r);
                let updated_at = order
                    .remove("order_sync_updated_at")
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                this.deny.apply(&mut order);
                OrderChange {
                    entity_id: u32_of(&order, "entity_id"),
                    store_id: store_of(&order),
                    state: text_of(&order, "state"),
                    status: text_of(&order, "status"),
                    updated_at,
                    order,
                }
            })
            .collect())
    }
}
