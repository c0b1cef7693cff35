//! The test harness: every test gets its own Magento and ledger databases and
//! its own broker prefix, built from the real Magento 2 schema, and removes
//! them when it ends (also when it panics). Services are real; an unreachable
//! one fails the test with its URL and how to start it.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
        ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    types::FieldTable,
    BasicProperties, Channel, Connection,
};
use mysql_async::{prelude::*, Conn, Pool};
use order_sync::{
    app::{self, Parts, Roles},
    config::{self, Settings},
    ledger::{Delivery, State},
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use crate::kit::{amqp_url, broker_conn, mysql_server, MAGENTO1_SCHEMA, MAGENTO_SCHEMA};
use crate::kit::{
    create_database, create_database_on, drop_databases, drop_databases_on, unique_id,
};

/// Removes one test's databases and broker names when dropped, including on
/// panic; made before anything is created so a failing setup cleans up too.
struct Guard {
    id: String,
    topology: order_sync::broker::Topology,
    /// A vhost the test made for itself, if any.
    vhost: Option<String>,
    /// The server holding the Magento database, when not the test server.
    magento_server: Option<String>,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Drop cannot await, and may run inside a runtime: use a thread with its own.
        let id = self.id.clone();
        let topology = self.topology.clone();
        let vhost = self.vhost.clone();
        let magento_server = self.magento_server.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().unwrap();
            rt.block_on(async move {
                let amqp = broker_conn().await;
                cleanup(
                    &id,
                    topology,
                    vhost.as_deref(),
                    magento_server.as_deref(),
                    &amqp,
                )
                .await;
            });
        })
        .join();
    }
}

/// A child process of a test, killed when dropped: a test that fails half-way
/// leaves no order-sync running behind it.
pub struct Proc(std::process::Child);

impl Proc {
    pub fn spawn(cmd: &mut std::process::Command) -> Self {
        Proc(cmd.spawn().expect("start a child process"))
    }
}

impl From<std::process::Child> for Proc {
    fn from(child: std::process::Child) -> Self {
        Proc(child)
    }
}

impl std::ops::Deref for Proc {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Proc {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Already exited (and waited for) is fine: both calls then just fail.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One test's world.
pub struct TestEnv {
    pub id: String,
    pub settings: Settings,
    pub env: Vec<(String, String)>,
    pub magento: Pool,
    pub amqp: Connection,
    pub channel: Channel,
    guard: Guard,
    /// Held while the world lives: shared, or alone (see [`TestEnv::alone`]).
    _share: Share,
}

/// The suite runs its tests in parallel on two cores. A test that measures
/// time (a p99 bound) runs alone: it waits for the running worlds to end,
/// and new ones wait for it.
static TIMING: std::sync::LazyLock<std::sync::Arc<tokio::sync::RwLock<()>>> =
    std::sync::LazyLock::new(Default::default);

enum Share {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Alone(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

impl TestEnv {
    /// A world with these consumers and extra `ORDER_SYNC__*` overrides.
    pub async fn new(consumers: &[&str], overrides: &[(&str, &str)]) -> Self {
        Self::with_magento_on(None, consumers, overrides).await
    }

    /// [`TestEnv::new`] for a test whose assertions are timings: no other
    /// world runs beside it, so the other tests' load does not decide it.
    pub async fn alone(consumers: &[&str], overrides: &[(&str, &str)]) -> Self {
        let alone = Share::Alone(TIMING.clone().write_owned().await);
        Self::build(None, consumers, overrides, alone).await
    }

    /// [`TestEnv::new`] with the Magento database on the server at
    /// `magento_server` (no database in the URL) instead of the test server.
    pub async fn with_magento_on(
        magento_server: Option<&str>,
        consumers: &[&str],
        overrides: &[(&str, &str)],
    ) -> Self {
        let shared = Share::Shared(TIMING.clone().read_owned().await);
        Self::build(magento_server, consumers, overrides, shared).await
    }

    async fn build(
        magento_server: Option<&str>,
        consumers: &[&str],
        overrides: &[(&str, &str)],
        share: Share,
    ) -> Self {
        // Logs go through the test harness, shown only for failing tests.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "order_sync=info,warn".into()),
            )
            .try_init();
        let id = unique_id("ost");
        let consumer_names: Vec<String> = consumers.iter().map(|c| c.to_string()).collect();
        let guard = Guard {
            id: id.clone(),
            topology: order_sync::broker::Topology::new(
                &id,
                &consumer_names,
                order_sync::config::QueueType::Quorum,
            ),
            vhost: None,
            magento_server: magento_server.map(str::to_owned),
            done: false,
        };
        let server = mysql_server();
        let magento_server = magento_server.map(str::to_owned).unwrap_or(server.clone());
        // A test that sets magento.version = 1 gets the Magento 1.9 schema
        // (tables prefixed `magev1_`), every other one Magento 2.4's.
        let magento1 = overrides
            .iter()
            .any(|(k, v)| *k == "ORDER_SYNC__MAGENTO__VERSION" && *v == "1");
        let schema = if magento1 {
            MAGENTO1_SCHEMA
        } else {
            MAGENTO_SCHEMA
        };
        let magento =
            create_database_on(&magento_server, &format!("{id}_magento"), Some(schema), 4).await;
        create_database(&format!("{id}_ledger"), None, 1)
            .await
            .disconnect()
            .await
            .unwrap();

        let mut env: Vec<(String, String)> = vec![
            ("ORDER_SYNC__SHOP__NAME", id.clone()),
            (
                "ORDER_SYNC__MAGENTO__URL",
                format!("{magento_server}/{id}_magento"),
            ),
            ("ORDER_SYNC__LEDGER__URL", format!("{server}/{id}_ledger")),
            ("ORDER_SYNC__BROKER__URL", amqp_url()),
            ("ORDER_SYNC__BROKER__PREFIX", id.clone()),
            ("ORDER_SYNC__CONSUMERS__NAMES", consumers.join(",")),
            ("ORDER_SYNC__CAPTURE__POLL_INTERVAL", "50ms".into()),
            ("ORDER_SYNC__CAPTURE__START_FROM", "beginning".into()),
            ("ORDER_SYNC__LOG__FILTER", "order_sync=debug,warn".into()),
            // Tests run many instances at once; the one that wants HTTP picks a port.
            ("ORDER_SYNC__HTTP__ENABLED", "false".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (k, v) in overrides {
            env.retain(|(ek, _)| ek != k);
            env.push((k.to_string(), v.to_string()));
        }
        let settings = config::load_with_env(None, env.clone()).expect("test settings are valid");
        let amqp = broker_conn().await;
        let channel = amqp.create_channel().await.unwrap();
        let parts = Parts::new(&settings, "test-setup").unwrap();
        parts
            .deps
            .ledger
            .migrate()
            .await
            .expect("migrate the test ledger");
        parts
            .deps
            .broker
            .declare_topology()
            .await
            .expect("declare the test topology");
        parts.close().await;
        Self {
            id,
            settings,
            env,
            magento,
            amqp,
            channel,
            guard,
            _share: share,
        }
    }

    /// A world whose order-sync serves HTTP on a port of its own (on
    /// loopback, no token): the world and `127.0.0.1:<port>`.
    pub async fn with_http(consumers: &[&str]) -> (Self, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        let env = Self::new(
            consumers,
            &[
                ("ORDER_SYNC__HTTP__ENABLED", "true"),
                ("ORDER_SYNC__HTTP__LISTEN", &listen),
            ],
        )
        .await;
        (env, listen)
    }

    /// The order-sync binary with this test's settings (and nothing else of
    /// the test process's environment).
    pub fn order_sync(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_order-sync"));
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `order-sync run` as a child process, its output discarded.
    pub fn spawn_run(&self) -> Proc {
        Proc::spawn(
            self.order_sync(&["run"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )
    }

    pub fn parts(&self) -> Parts {
        Parts::new(&self.settings, "test").unwrap()
    }

    /// Runs the whole pipeline in this process until the returned token is cancelled.
    pub fn spawn_pipeline(&self) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let shutdown = CancellationToken::new();
        let parts = self.parts();
        let token = shutdown.clone();
        let handle = tokio::spawn(async move {
            parts.run(Roles::ALL, token).await.expect("pipeline runs");
        });
        (shutdown, handle)
    }

    pub fn topology(&self) -> order_sync::broker::Topology {
        app::topology(&self.settings)
    }

    pub async fn magento_conn(&self) -> Conn {
        self.magento.get_conn().await.unwrap()
    }

    /// Places one order (with items, addresses and a payment) in its own transaction.
    pub async fn place_order(&self) -> u32 {
        let mut conn = self.magento_conn().await;
        let mut tx = conn
            .start_transaction(mysql_async::TxOpts::default())
            .await
            .unwrap();
        let id = insert_order(&mut tx).await;
        tx.commit().await.unwrap();
        id
    }

    pub async fn place_orders(&self, n: usize) -> Vec<u32> {
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            ids.push(self.place_order().await);
        }
        ids
    }

    pub async fn consume(&self, queue: &str) -> lapin::Consumer {
        let ch = self.amqp.create_channel().await.unwrap();
        ch.basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap()
    }

    /// Takes one message from a queue, waiting up to `within` for it.
    pub async fn get(&self, queue: &str, within: Duration) -> Option<lapin::message::Delivery> {
        let deadline = Instant::now() + within;
        loop {
            let got = self
                .channel
                .basic_get(queue.into(), BasicGetOptions::default())
                .await
                .unwrap();
            if let Some(m) = got {
                return Some(m.delivery);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Messages ready in a queue.
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let ch = self.amqp.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = ch.close(200, "".into()).await;
        q.message_count()
    }

    /// Publishes an ack body the way a sync service would, confirmed.
    /// Publishes an ack as its sync service would: routed by the consumer it
    /// names (`ack` when it names none).
    pub async fn publish_ack(&self, body: &[u8]) {
        let key = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["consumer"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "ack".into());
        self.publish_ack_as(body, &key, None).await;
    }

    /// Publishes an ack with this routing key and, when given, `user_id`.
    pub async fn publish_ack_as(&self, body: &[u8], routing_key: &str, user_id: Option<&str>) {
        let ch = self.amqp.create_channel().await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        let mut properties =
            BasicProperties::default().with_content_type("application/json".into());
        if let Some(user) = user_id {
            properties = properties.with_user_id(user.into());
        }
        let confirm = ch
            .basic_publish(
                self.topology().acks_exchange().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
        let _ = ch.close(200, "".into()).await;
    }

    pub async fn ack_json(&self, ack: Value) {
        self.publish_ack(&serde_json::to_vec(&ack).unwrap()).await;
    }

    /// Waits until capture has saved a position (it has run once), or fails
    /// after `within`: orders placed from then on are captured live.
    pub async fn wait_for_capture_start(&self, within: Duration) {
        let ledger = self.parts().deps.ledger;
        let deadline = Instant::now() + within;
        while ledger.capture_position(&self.id).await.unwrap().is_none() {
            assert!(Instant::now() < deadline, "capture never started");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `check` holds for the ledger rows, or fails after `within`.
    pub async fn wait_for_ledger(
        &self,
        within: Duration,
        what: &str,
        check: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let ledger = self.parts().deps.ledger;
        let deadline = Instant::now() + within;
        loop {
            let rows = ledger.deliveries().await.unwrap();
            if check(&rows) {
                ledger.disconnect().await;
                return rows;
            }
            if Instant::now() >= deadline {
                // Name the rows that are not synced (with their details), not all of them.
                let synced = rows.iter().filter(|r| r.state == State::Synced).count();
                let others: Vec<&Delivery> = rows
                    .iter()
                    .filter(|r| r.state != State::Synced)
                    .take(10)
                    .collect();
                panic!(
                    "timed out waiting for {what}; ledger has {} rows, {synced} synced; first others: {others:#?}",
                    rows.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Drops the databases and the broker names. Called by Drop as well.
    /// A vhost name of this test's own, deleted with the rest at the end.
    pub fn own_vhost(&mut self) -> String {
        let name = format!("{}_vhost", self.id);
        self.guard.vhost = Some(name.clone());
        name
    }

    pub async fn cleanup(mut self) {
        self.guard.done = true;
        let vhost = self.guard.vhost.clone();
        let magento_server = self.guard.magento_server.clone();
        cleanup(
            &self.id,
            self.topology(),
            vhost.as_deref(),
            magento_server.as_deref(),
            &self.amqp,
        )
        .await;
    }
}

async fn cleanup(
    id: &str,
    topology: order_sync::broker::Topology,
    vhost: Option<&str>,
    magento_server: Option<&str>,
    amqp: &Connection,
) {
    if let Some(server) = magento_server {
        drop_databases_on(server, &[format!("{id}_magento")]).await;
    }
    if let Some(vhost) = vhost {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["delete_vhost", vhost, "-q"])
            .output();
    }
    drop_databases(&[
        format!("{id}_magento"),
        format!("{id}_ledger"),
        format!("{id}_demo"),
    ])
    .await;
    if let Ok(ch) = amqp.create_channel().await {
        for q in topology.queues() {
            let _ = ch
                .queue_delete(q.name.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for e in topology.exchanges() {
            let _ = ch
                .exchange_delete(e.name.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = ch.close(200, "".into()).await;
    }
}

/// The ledger's counts, which keep synced rows as they come and go, are
/// exactly what a full count of the rows says.
pub async fn assert_counts_exact(ledger: &order_sync::ledger::Ledger) {
    let mut conn = ledger.pool().get_conn().await.unwrap();
    let full: Vec<(String, String, u64)> = conn
        .query(
            "SELECT consumer, CAST(state AS CHAR), COUNT(*) FROM order_sync_deliveries \
             GROUP BY consumer, state",
        )
        .await
        .unwrap();
    let mut full: Vec<(String, String, u64)> = full;
    full.sort();
    let mut kept: Vec<(String, String, u64)> = ledger
        .counts()
        .await
        .unwrap()
        .into_iter()
        .map(|(c, s, n)| (c, s.as_str().to_owned(), n))
        .collect();
    kept.sort();
    assert_eq!(kept, full, "counts() against a full count");
}

/// A second website, `b2b`, with its own store 2 (Magento 2 tables), as a
/// shop with a B2B storefront has.
pub const B2B_WEBSITE: [&str; 3] = [
    "INSERT INTO store_website (website_id, code, name, sort_order, default_group_id, is_default) VALUES (2, 'b2b', 'B2B', 0, 2, 0)",
    "INSERT INTO store_group (group_id, website_id, name, root_category_id, default_store_id, code) VALUES (2, 2, 'B2B', 2, 2, 'b2b_group')",
    "INSERT INTO store (store_id, code, website_id, group_id, name, sort_order, is_active) VALUES (2, 'b2b_en', 2, 2, 'B2B English', 0, 1)",
];

/// Inserts an order the way Magento's checkout does: the order row, then its
/// items, addresses and payment, in the caller's transaction.
pub async fn insert_order(tx: &mut mysql_async::Transaction<'_>) -> u32 {
    tx.query_drop(
        "INSERT INTO sales_order (state, status, store_id, customer_email, customer_firstname, \
         customer_lastname, customer_is_guest, base_currency_code, order_currency_code, \
         grand_total, base_grand_total, subtotal, total_item_count, store_name) \
         VALUES ('new', 'pending', 1, 'roni@example.com', 'Veronica', 'Costello', 0, 'USD', 'USD', \
         '123.4500', '123.4500', '118.4500', 2, 'Main Website\nMain Website Store\nDefault Store View')",
    )
    .await
    .unwrap();
    let id = tx.last_insert_id().unwrap() as u32;
    tx.query_drop(format!(
        "UPDATE sales_order SET increment_id = LPAD({id}, 9, '0') WHERE entity_id = {id}"
    ))
    .await
    .unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, row_total) VALUES \
         ({id}, 1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'simple', 1, '52.0000', '52.0000'), \
         ({id}, 1, '24-MB01', 'Joust Duffle Bag', 'simple', 2, '33.2250', '66.4500')"
    ))
    .await
    .unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order_address (parent_id, address_type, firstname, lastname, street, city, postcode, country_id, telephone) VALUES \
         ({id}, 'billing', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US', '(555) 229-3326'), \
         ({id}, 'shipping', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US', '(555) 229-3326')"
    ))
    .await
    .unwrap();
    tx.query_drop(format!(
        "INSERT INTO sales_order_payment (parent_id, method, amount_ordered) VALUES ({id}, 'checkmo', '123.4500')"
    ))
    .await
    .unwrap();
    id
}

/// The `attempt` header of a delivery to a consumer.
pub fn attempt_header(d: &lapin::message::Delivery) -> u32 {
    match d
        .properties
        .headers()
        .as_ref()
        .unwrap()
        .inner()
        .get("attempt")
    {
        Some(lapin::types::AMQPValue::LongUInt(n)) => *n,
        other => panic!("attempt header missing or mistyped: {other:?}"),
    }
}

/// The JSON body of a delivery.
pub fn body(d: &lapin::message::Delivery) -> Value {
    serde_json::from_slice(&d.data).expect("message body is JSON")
}

pub async fn ack_delivery(d: &lapin::message::Delivery) {
    d.ack(BasicAckOptions::default()).await.unwrap();
}

/// A stream of deliveries with a deadline per message.
pub async fn next_within(
    consumer: &mut lapin::Consumer,
    within: Duration,
) -> Option<lapin::message::Delivery> {
    match tokio::time::timeout(within, consumer.next()).await {
        Ok(Some(Ok(d))) => Some(d),
        _ => None,
    }
}

pub fn all_in_state(rows: &[Delivery], n: usize, state: State) -> bool {
    rows.len() == n && rows.iter().all(|r| r.state == state)
}

/// Force-closes every broker connection whose name contains `part`, as a
/// network fault or a broker restart would.
pub fn close_broker_connections(part: &str) -> usize {
    // The plain format prints pids as `close_connection` takes them (the JSON
    // one does not); each line is `<pid>\t<client properties>`.
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "-q"])
        .output()
        .expect("rabbitmqctl must be on PATH for fault tests (it ships with rabbitmq-server)");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut closed = 0;
    for line in text.lines() {
        let Some((pid, props)) = line.split_once('\t') else {
            continue;
        };
        if props.contains(part) {
            let status = std::process::Command::new("rabbitmqctl")
                .args([
                    "close_connection",
                    pid.trim(),
                    "fault injected by test",
                    "-q",
                ])
                .status()
                .unwrap();
            if status.success() {
                closed += 1;
            }
        }
    }
    closed
}

/// Kills every MariaDB session using database `db`, except the given ids.
pub async fn kill_db_connections(db: &str, except: &[u64]) -> usize {
    kill_db_connections_on(&mysql_server(), db, except).await
}

/// [`kill_db_connections`] on the server at `server`.
pub async fn kill_db_connections_on(server: &str, db: &str, except: &[u64]) -> usize {
    let mut conn = crate::kit::server_conn_on(server).await;
    let ids: Vec<u64> = conn
        .exec(
            "SELECT id FROM information_schema.processlist WHERE db = ? AND id <> CONNECTION_ID()",
            (db,),
        )
        .await
        .unwrap();
    let mut killed = 0;
    for id in ids.into_iter().filter(|id| !except.contains(id)) {
        if conn
            .query_drop(format!("KILL CONNECTION {id}"))
            .await
            .is_ok()
        {
            killed += 1;
        }
    }
    let _ = conn.disconnect().await;
    killed
}

/// A port nobody listens on yet.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP request with a real client: (status, body as text).
pub async fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, String) {
    let payload = body.map(|v| ("application/json", serde_json::to_vec(v).unwrap()));
    request(method, url, token, payload, &[]).await
}

/// A form POST, as the status page's buttons send it.
pub async fn http_form(url: &str, token: Option<&str>, form: &str) -> (u16, String) {
    http_form_with(url, token, form, &[]).await
}

/// A form POST with extra headers (a cookie, where a browser says it came
/// from). Any `Set-Cookie` answers come first in the returned text.
pub async fn http_form_with(
    url: &str,
    token: Option<&str>,
    form: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let payload = (
        "application/x-www-form-urlencoded",
        form.as_bytes().to_vec(),
    );
    request("POST", url, token, Some(payload), headers).await
}

async fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let (status, answer_headers, text) = request_full(method, url, token, body, headers).await;
    let cookies: Vec<String> = answer_headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    (
        status,
        if cookies.is_empty() {
            text
        } else {
            format!("{}\n{text}", cookies.join("\n"))
        },
    )
}

/// A request with a real client, a form body if given, and extra headers:
/// (status, the answer's headers, body as text).
pub async fn http_raw(
    method: &str,
    url: &str,
    form: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, axum::http::HeaderMap, String) {
    let body = form.map(|f| ("application/x-www-form-urlencoded", f.as_bytes().to_vec()));
    request_full(method, url, None, body, headers).await
}

async fn request_full(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
    headers: &[(&str, &str)],
) -> (u16, axum::http::HeaderMap, String) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let mut req = axum::http::Request::builder().method(method).uri(url);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let payload = match body {
        Some((content_type, bytes)) => {
            req = req.header("content-type", content_type);
            bytes::Bytes::from(bytes)
        }
        None => bytes::Bytes::new(),
    };
    let resp = tokio::time::timeout(
        Duration::from_secs(20),
        client.request(req.body(http_body_util::Full::new(payload)).unwrap()),
    )
    .await
    .unwrap_or_else(|_| panic!("{method} {url}: no answer within 20s"))
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let answer_headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    (status, answer_headers, text)
}

/// [`http`] for a JSON answer.
pub async fn http_json(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, text) = http(method, url, token, body).await;
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{method} {url} gave {status} and no JSON ({e}): {text}"));
    (status, v)
}
