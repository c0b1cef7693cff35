//! The test kit shared by the integration tests (`tests/pipeline`) and the
//! benchmark (`benches/pipeline.rs`): where the real services are, unique
//! names, and databases made and dropped. A service that cannot be reached
//! fails with its URL and how to start it; nothing is skipped.
#![allow(dead_code)]

use std::{
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use lapin::{Connection, ConnectionProperties};
use mysql_async::{prelude::*, Conn, Pool};

/// The Magento 2.4 sales tables, derived from the reference dump.
pub const MAGENTO_SCHEMA: &str = concat!(
    include_str!("../../deploy/magento/magento2-sales-schema.sql"),
    include_str!("../../deploy/magento/magento2-sales-documents-schema.sql")
);
/// The Magento 1.9 sales tables, with the `magev1_` table prefix.
pub const MAGENTO1_SCHEMA: &str = concat!(
    include_str!("../../deploy/magento/magento1-magev1-sales-schema.sql"),
    include_str!("../../deploy/magento/magento1-magev1-sales-documents-schema.sql")
);

/// The MariaDB/MySQL server (no database): `ORDER_SYNC_TEST_MYSQL`.
pub fn mysql_server() -> String {
    std::env::var("ORDER_SYNC_TEST_MYSQL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The RabbitMQ broker: `ORDER_SYNC_TEST_AMQP`.
pub fn amqp_url() -> String {
    std::env::var("ORDER_SYNC_TEST_AMQP")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A name no other test, bench or earlier run uses, starting with `kind`.
pub fn unique_id(kind: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let r: u32 = rand::random();
    format!("{kind}{}_{n}_{r:08x}", std::process::id())
}

/// A connection to the server, or a panic saying how to start it.
pub async fn server_conn() -> Conn {
    server_conn_on(&mysql_server()).await
}

/// A connection to the server at `url` (no database), or a panic saying how to start it.
pub async fn server_conn_on(url: &str) -> Conn {
    let url = url.to_owned();
    match tokio::time::timeout(Duration::from_secs(10), Conn::from_url(url.as_str())).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "MariaDB/MySQL is not reachable at {url} ({e}). Start it with \
             `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd` \
             (or `deploy/services.sh`), or point ORDER_SYNC_TEST_MYSQL at a server."
        ),
        Err(_) => panic!("MariaDB/MySQL at {url} did not answer within 10s; is it running?"),
    }
}

/// A connection to the broker, or a panic saying how to start it.
pub async fn broker_conn() -> Connection {
    let url = amqp_url();
    match tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&url, ConnectionProperties::default()),
    )
    .await
    {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => panic!(
            "RabbitMQ is not reachable at {url} ({e}). Start it with `rabbitmq-server -detached` \
             (or `deploy/services.sh`), or point ORDER_SYNC_TEST_AMQP at a broker."
        ),
        Err(_) => panic!("RabbitMQ at {url} did not answer within 10s; is it running?"),
    }
}

/// Creates database `name` (with `schema` loaded, if given) and returns a
/// pool of up to `pool_max` connections to it.
pub async fn create_database(name: &str, schema: Option<&str>, pool_max: usize) -> Pool {
    create_database_on(&mysql_server(), name, schema, pool_max).await
}

/// [`create_database`] on the server at `server`.
pub async fn create_database_on(
    server: &str,
    name: &str,
    schema: Option<&str>,
    pool_max: usize,
) -> Pool {
    let mut conn = server_conn_on(server).await;
    conn.query_drop(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        .await
        .expect("create a test database");
    if let Some(sql) = schema {
        conn.query_drop(format!("USE `{name}`")).await.unwrap();
        conn.query_drop(sql).await.expect("load the schema");
    }
    let _ = conn.disconnect().await;
    Pool::new(format!("{server}/{name}?pool_min=0&pool_max={pool_max}").as_str())
}

/// Drops these databases if they exist; never fails (it runs in clean-ups).
pub async fn drop_databases(names: &[String]) {
    drop_databases_on(&mysql_server(), names).await
}

/// [`drop_databases`] on the server at `server`.
pub async fn drop_databases_on(server: &str, names: &[String]) {
    if let Ok(mut conn) = Conn::from_url(server).await {
        for db in names {
            // A test that failed half-way can leave a connection in a
            // transaction on its database (its runtime stopped mid-await):
            // the drop would wait on its metadata lock for ever.
            let open: Vec<u64> = conn
                .exec(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()",
                    (db.as_str(),),
                )
                .await
                .unwrap_or_default();
            for id in open {
                let _ = conn.query_drop(format!("KILL {id}")).await;
            }
            let _ = conn
                .query_drop(format!("DROP DATABASE IF EXISTS `{db}`"))
                .await;
        }
        let _ = conn.disconnect().await;
    }
}

const BINLOG_SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/deploy/mariadb/local-binlog.sh"
);

/// A MariaDB server with `log_bin` of this test's own, stopped and removed when dropped.
pub struct BinlogServer {
    pub port: u16,
    /// `mysql://order_sync:order_sync@127.0.0.1:PORT` (every privilege).
    pub url: String,
}

impl BinlogServer {
    pub fn start(extra: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(BINLOG_SCRIPT)
            .arg("start")
            .env("BASE", port.to_string())
            .env("EXTRA", extra)
            .output()
            .expect("deploy/mariadb/local-binlog.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let url = stdout
            .lines()
            .find_map(|l| l.strip_prefix("MYSQL="))
            .unwrap_or_else(|| {
                panic!(
                    "local-binlog.sh start gave no MYSQL=: {stdout}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .to_owned();
        Self { port, url }
    }

    pub async fn admin(&self) -> Conn {
        Conn::from_url(self.url.as_str())
            .await
            .expect("the binlog server accepts its admin user")
    }

    /// Waits until a replica (order-sync's follower) is reading the binlog; its thread id.
    pub async fn wait_for_follower(&self, within: Duration) -> u64 {
        let mut admin = self.admin().await;
        let deadline = Instant::now() + within;
        loop {
            let dump: Option<u64> = admin
                .query_first(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
                )
                .await
                .unwrap();
            if let Some(id) = dump {
                return id;
            }
            assert!(
                Instant::now() < deadline,
                "no binlog follower connected within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl BinlogServer {
    /// Statements the server has run so far (`Questions`).
    pub async fn questions(&self) -> u64 {
        let mut c = self.admin().await;
        let row: Option<(String, u64)> = c
            .query_first("SHOW GLOBAL STATUS LIKE 'Questions'")
            .await
            .unwrap();
        let _ = c.disconnect().await;
        row.map(|r| r.1).unwrap_or(0)
    }
}

impl Drop for BinlogServer {
    fn drop(&mut self) {
        let _ = Command::new(BINLOG_SCRIPT)
            .arg("stop")
            .env("BASE", self.port.to_string())
            .output();
    }
}
