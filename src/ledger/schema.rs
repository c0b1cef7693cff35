//! The ledger's schema, as numbered migrations applied in order and recorded in
//! `order_sync_migrations`. A migration is never edited once released; a change
//! is a new entry, so an existing ledger migrates in place.

use chrono::Utc;
use mysql_async::prelude::*;

use super::{naive, Ledger, LedgerError};
use crate::{config::LedgerSettings, db};

/// (version, name, statements). Statements are idempotent (`IF NOT EXISTS`), so
/// a migration interrupted half-way (MySQL DDL is not transactional) re-runs cleanly.
pub const MIGRATIONS: &[(u32, &str, &[&str])] = &[
    (
        1,
        "orders, deliveries and capture position",
        &[
            // The order as captured, stored once however many consumers there are.
            "CREATE TABLE IF NOT EXISTS order_sync_orders (
            entity_id INT UNSIGNED NOT NULL PRIMARY KEY,
            increment_id VARCHAR(50) NULL,
            store_id SMALLINT UNSIGNED NULL,
            placed_at DATETIME NULL COMMENT 'sales_order.created_at, UTC',
            captured_at DATETIME(6) NOT NULL,
            message LONGTEXT NOT NULL COMMENT 'the order JSON as captured',
            KEY order_sync_orders_increment (increment_id, store_id),
            KEY order_sync_orders_captured (captured_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            // One row per (order, consumer): the sync state the old admin grid showed.
            "CREATE TABLE IF NOT EXISTS order_sync_deliveries (
            entity_id INT UNSIGNED NOT NULL,
            consumer VARCHAR(64) NOT NULL,
            increment_id VARCHAR(50) NULL,
            store_id SMALLINT UNSIGNED NULL,
            message_id VARCHAR(191) NOT NULL,
            state ENUM('pending','published','synced','failed','parked') NOT NULL DEFAULT 'pending',
            attempts INT UNSIGNED NOT NULL DEFAULT 0,
            captured_at DATETIME(6) NOT NULL,
            last_published_at DATETIME(6) NULL,
            next_attempt_at DATETIME(6) NULL,
            synced_at DATETIME(6) NULL,
            last_error TEXT NULL,
            updated_at DATETIME(6) NOT NULL,
            PRIMARY KEY (entity_id, consumer),
            UNIQUE KEY order_sync_deliveries_message (message_id),
            KEY order_sync_deliveries_due (state, next_attempt_at),
            KEY order_sync_deliveries_increment (increment_id, store_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            // How far capture has read, per source.
            "CREATE TABLE IF NOT EXISTS order_sync_capture_position (
            source VARCHAR(64) NOT NULL PRIMARY KEY,
            last_entity_id INT UNSIGNED NOT NULL,
            updated_at DATETIME(6) NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            // entity_ids below the position not seen yet: inserts whose checkout
            // transaction had not committed when a later order was read.
            "CREATE TABLE IF NOT EXISTS order_sync_capture_gaps (
            source VARCHAR(64) NOT NULL,
            entity_id INT UNSIGNED NOT NULL,
            first_seen_at DATETIME(6) NOT NULL,
            PRIMARY KEY (source, entity_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ],
    ),
    (
        2,
        "instances",
        &[
            // Every running order-sync process, refreshed every few seconds, so
            // status output can say who is doing what (and who holds capture).
            "CREATE TABLE IF NOT EXISTS order_sync_instances (
            instance_id VARCHAR(128) NOT NULL PRIMARY KEY,
            hostname VARCHAR(255) NOT NULL,
            pid INT UNSIGNED NOT NULL,
            roles VARCHAR(64) NOT NULL,
            capture_leader TINYINT(1) NOT NULL DEFAULT 0,
            started_at DATETIME(6) NOT NULL,
            last_seen_at DATETIME(6) NOT NULL,
            KEY order_sync_instances_seen (last_seen_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ],
    ),
    (
        3,
        "operator controls: pause, resync, write-back",
        &[
            // A row per paused consumer; `*` pauses them all. In the ledger, not
            // in a process, so every instance obeys it and it survives restarts.
            "CREATE TABLE IF NOT EXISTS order_sync_pauses (
            consumer VARCHAR(64) NOT NULL PRIMARY KEY,
            paused_at DATETIME(6) NOT NULL,
            paused_by VARCHAR(255) NOT NULL,
            reason VARCHAR(500) NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            // How often an operator re-sent this row: part of its message_id, so a
            // re-sent order is a new message to consumers that de-duplicate.
            "ALTER TABLE order_sync_deliveries ADD COLUMN resyncs INT UNSIGNED NOT NULL DEFAULT 0",
            // When parking was written back to Magento's order history.
            "ALTER TABLE order_sync_deliveries ADD COLUMN noted_at DATETIME(6) NULL",
            // When "synced" was written back to Magento's order history.
            "ALTER TABLE order_sync_orders ADD COLUMN written_back_at DATETIME(6) NULL",
            "ALTER TABLE order_sync_orders ADD KEY order_sync_orders_placed (placed_at)",
            "ALTER TABLE order_sync_deliveries ADD KEY order_sync_deliveries_synced (state, synced_at)",
        ],
    ),
    (
        4,
        "binlog position",
        &[
            // Where `capture.mode = "binlog"` has read Magento's binary log to:
            // the commit after which every order it announced was captured.
            // NULL: not followed yet (or its file was purged), start at the end.
            "ALTER TABLE order_sync_capture_position ADD COLUMN binlog_file VARCHAR(255) NULL",
            "ALTER TABLE order_sync_capture_position ADD COLUMN binlog_pos BIGINT UNSIGNED NULL",
        ],
    ),
    (
        5,
        "counts that stay flat with history",
        &[
            // Open rows (every state but synced) by consumer, and the oldest of
            // each: the backlog's size, not the history's (see ledger::counts).
            "ALTER TABLE order_sync_deliveries ADD KEY order_sync_deliveries_open (state, consumer, captured_at)",
            // Synced rows per consumer, kept by the writers that add or remove them.
            "CREATE TABLE IF NOT EXISTS order_sync_synced_counts (
            consumer VARCHAR(64) NOT NULL PRIMARY KEY,
            n BIGINT NOT NULL
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            // One last full count, taken while no instance runs (migrations
            // hold their lock before any role starts); re-running it is exact.
            "INSERT INTO order_sync_synced_counts (consumer, n) \
             SELECT consumer, COUNT(*) FROM order_sync_deliveries WHERE state = 'synced' GROUP BY consumer \
             ON DUPLICATE KEY UPDATE n = VALUES(n)",
        ],
    ),
    (
        6,
        "order lifecycle events",
        &[
            // Rows per (order, consumer, seq): seq 0 is the order's placement,
            // 1.. its later events in the order they happened. Existing rows
            // become seq 0 `placed` rows; their message ids do not change.
            "ALTER TABLE order_sync_deliveries \
             ADD COLUMN seq SMALLINT UNSIGNED NOT NULL DEFAULT 0 AFTER consumer, \
             ADD COLUMN event VARCHAR(32) NOT NULL DEFAULT 'placed' AFTER seq",
            // Both in one statement, so an interruption leaves the old key or the new one.
            "ALTER TABLE order_sync_deliveries DROP PRIMARY KEY, ADD PRIMARY KEY (entity_id, consumer, seq)",
            "ALTER TABLE order_sync_deliveries MODIFY state \
             ENUM('pending','published','synced','failed','parked','held','skipped') NOT NULL DEFAULT 'pending'",
            // An order's events after its placement, as capture recorded them.
            "CREATE TABLE IF NOT EXISTS order_sync_events (
            entity_id INT UNSIGNED NOT NULL,
            seq SMALLINT UNSIGNED NOT NULL,
            event VARCHAR(32) NOT NULL,
            document_id INT UNSIGNED NULL COMMENT 'invoice, shipment or credit memo entity_id',
            occurred_at DATETIME NULL COMMENT 'Magento created_at / updated_at, UTC',
            captured_at DATETIME(6) NOT NULL,
            message LONGTEXT NOT NULL COMMENT 'the event JSON as captured',
            PRIMARY KEY (entity_id, seq),
            UNIQUE KEY order_sync_events_document (event, document_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
            // The last state and status the ledger saw, to tell a change from a repeat.
            "ALTER TABLE order_sync_orders ADD COLUMN state VARCHAR(32) NULL, ADD COLUMN status VARCHAR(32) NULL",
            // Where the change scan has read `updated_at` to.
            "ALTER TABLE order_sync_capture_position ADD COLUMN changes_at DATETIME NULL",
        ],
    ),
    (
        7,
        "document positions that start before their first read",
        &[
            // A document kind's position not resolved yet: it starts at the
            // first document created at or after this time (UTC), whenever
            // the first scan that can read the table runs. NULL: resolved.
            "ALTER TABLE order_sync_capture_position ADD COLUMN starts_at DATETIME NULL",
        ],
    ),
    (
        8,
        "status page sessions signed out",
        &[
            // A session cookie is an HMAC that every instance can check; one
            // signed out is listed here until it would have expired anyway.
            "CREATE TABLE IF NOT EXISTS order_sync_revoked_sessions (
            id CHAR(32) NOT NULL PRIMARY KEY,
            expires_at DATETIME NOT NULL,
            KEY order_sync_revoked_sessions_expires (expires_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=ascii COLLATE=ascii_bin",
        ],
    ),
    (
        9,
        "what each order became in the sync service",
        &[
            // The sync service's answer, from its synced (or failed) ack:
            // its own id for the order and where it shows it.
            "ALTER TABLE order_sync_deliveries ADD COLUMN remote_id VARCHAR(255) NULL, \
             ADD COLUMN remote_url VARCHAR(2000) NULL",
        ],
    ),
    (
        10,
        "backfill runs",
        &[
            // One row per backfill, from the CLI, the API or the status page,
            // updated after each chunk so every instance's page shows where it
            // is. `active` is 1 while it runs and NULL after: the unique key
            // lets one run per consumer at a time (NULLs never collide).
            "CREATE TABLE IF NOT EXISTS order_sync_backfills (
            id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
            shop VARCHAR(64) NOT NULL,
            consumer VARCHAR(64) NOT NULL,
            request TEXT NOT NULL COMMENT 'what was asked, as the CLI flags say it',
            started_by VARCHAR(64) NOT NULL,
            state ENUM('running','done','interrupted','failed') NOT NULL,
            active TINYINT(1) NULL,
            total BIGINT UNSIGNED NOT NULL DEFAULT 0,
            looked_at BIGINT UNSIGNED NOT NULL DEFAULT 0,
            given BIGINT UNSIGNED NOT NULL DEFAULT 0,
            skipped BIGINT UNSIGNED NOT NULL DEFAULT 0,
            events BIGINT UNSIGNED NOT NULL DEFAULT 0,
            upto INT UNSIGNED NULL,
            waiting TINYINT(1) NOT NULL DEFAULT 0,
            error TEXT NULL,
            started_at DATETIME(6) NOT NULL,
            updated_at DATETIME(6) NOT NULL,
            finished_at DATETIME(6) NULL,
            UNIQUE KEY order_sync_backfills_one (shop, consumer, active),
            KEY order_sync_backfills_started (started_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ],
    ),
    (
        11,
        "binlog place of an order's last change",
        &[
            // Where in Magento's binary log the last change recorded from it
            // was committed (file number << 32 | offset): a change the
            // follower reads again after a restart is at or before it, and
            // is not recorded twice even when the order went back and forth.
            "ALTER TABLE order_sync_orders ADD COLUMN binlog_at BIGINT UNSIGNED NULL",
        ],
    ),
];

/// Server errors that mean an `ALTER` of an interrupted migration already
/// happened: duplicate column (1060) or key name (1061). MySQL has no
/// `ADD COLUMN IF NOT EXISTS`, so re-runs rely on these instead.
pub fn already_applied(e: &mysql_async::Error) -> bool {
    matches!(e, mysql_async::Error::Server(s) if matches!(s.code, 1060 | 1061))
}

/// Every table of a fully migrated ledger.
pub const TABLES: [&str; 11] = [
    "order_sync_migrations",
    "order_sync_orders",
    "order_sync_deliveries",
    "order_sync_events",
    "order_sync_capture_position",
    "order_sync_capture_gaps",
    "order_sync_instances",
    "order_sync_pauses",
    "order_sync_synced_counts",
    "order_sync_revoked_sessions",
    "order_sync_backfills",
];

/// The version a fully migrated ledger is at.
pub fn latest() -> u32 {
    MIGRATIONS.last().map(|m| m.0).unwrap_or(0)
}

impl Ledger {
    /// Applies every migration not yet applied; returns the resulting version.
    /// A named lock keeps two instances starting together from racing.
    pub async fn migrate(&self) -> Result<u32, LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let locked: Option<Option<i64>> = conn
            .query_first("SELECT GET_LOCK('order_sync_migrate', 60)")
            .await?;
        if locked.flatten() != Some(1) {
            return Err(LedgerError::Locked(
                "another instance held the migration lock `order_sync_migrate` for 60s",
            ));
        }
        let result = async {
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS order_sync_migrations (
                    version INT UNSIGNED NOT NULL PRIMARY KEY,
                    name VARCHAR(200) NOT NULL,
                    applied_at DATETIME(6) NOT NULL
                ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            )
            .await?;
            let current = current_version(&mut conn).await?;
            if current > latest() {
                return Err(LedgerError::TooNew {
                    found: current,
                    known: latest(),
                });
            }
            for (version, name, statements) in MIGRATIONS {
                if *version <= current {
                    continue;
                }
                for sql in *statements {
                    match conn.query_drop(*sql).await {
                        Err(e) if already_applied(&e) => {}
                        other => other?,
                    }
                }
                conn.exec_drop(
                    "INSERT INTO order_sync_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, naive(Utc::now())),
                )
                .await?;
                tracing::info!(version, name, "Ledger migrated.");
            }
            Ok(latest())
        }
        .await;
        let _ = conn
            .query_drop("SELECT RELEASE_LOCK('order_sync_migrate')")
            .await;
        result
    }

    /// Fails unless the schema is exactly what this build expects.
    /// Fails unless every ledger table is there (one statement that reads no
    /// row: the server opens each table, and names the first one missing).
    /// For readiness: a table dropped under a running ledger is not ready.
    pub async fn check_tables(&self) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        conn.query_drop(format!("SELECT 1 FROM {} LIMIT 0", TABLES.join(", ")))
            .await?;
        Ok(())
    }

    pub async fn check_version(&self) -> Result<(), LedgerError> {
        let mut conn = self.pool.get_conn().await?;
        let exists: Option<u8> = conn
            .query_first(
                "SELECT 1 FROM information_schema.tables \
                 WHERE table_schema = DATABASE() AND table_name = 'order_sync_migrations'",
            )
            .await?;
        let found = if exists.is_some() {
            current_version(&mut conn).await?
        } else {
            0
        };
        match found.cmp(&latest()) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(LedgerError::TooNew {
                found,
                known: latest(),
            }),
            std::cmp::Ordering::Less => Err(LedgerError::NotMigrated {
                found,
                expected: latest(),
            }),
        }
    }
}

async fn current_version(conn: &mut mysql_async::Conn) -> Result<u32, LedgerError> {
    Ok(conn
        .query_first::<Option<u32>, _>("SELECT MAX(version) FROM order_sync_migrations")
        .await?
        .flatten()
        .unwrap_or(0))
}

/// Creates the ledger database if it does not exist (for `migrate` and first start).
pub async fn ensure_database(settings: &LedgerSettings) -> Result<(), LedgerError> {
    db::create_database(&settings.url)
        .await
        .map_err(|e| match e {
            db::CreateError::Url(u) => LedgerError::Url(u),
            db::CreateError::Db(d) => LedgerError::Db(d),
        })
}
