//! Real TLS: a RabbitMQ node with a TLS listener and a MariaDB server with TLS,
//! their certificates signed by a private CA made for the test
//! (deploy/tls/local-tls.sh). The pipeline runs over `amqps://` and
//! `require_ssl`, trusting that CA; without it, start-up fails clearly.

use std::{process::Command, time::Duration};

use mysql_async::prelude::*;
use serde_json::json;

use crate::support::{body, insert_order, next_within, TestEnv, MAGENTO_SCHEMA};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/tls/local-tls.sh");

/// The TLS servers, stopped (and their files removed) when dropped.
struct TlsServers {
    ca: String,
    amqps: String,
    amqp: String,
    mysql: String,
}

impl TlsServers {
    fn start() -> Self {
        let out = Command::new(SCRIPT)
            .arg("start")
            .output()
            .expect("deploy/tls/local-tls.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
                .unwrap_or_else(|| {
                    let _ = Command::new(SCRIPT).arg("stop").output();
                    panic!(
                        "local-tls.sh start gave no {key}: {stdout}\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                })
        };
        Self {
            ca: get("CA"),
            amqps: get("AMQPS"),
            amqp: get("AMQP"),
            mysql: get("MYSQL"),
        }
    }

    /// A database on the TLS server, with the URL order-sync gets for it.
    fn url(&self, db: &str, trust: bool) -> String {
        let ca = if trust {
            format!("&ssl_ca={}", self.ca)
        } else {
            String::new()
        };
        format!("{}/{db}?require_ssl=true{ca}", self.mysql)
    }
}

impl Drop for TlsServers {
    fn drop(&mut self) {
        let _ = Command::new(SCRIPT).arg("stop").output();
    }
}

#[tokio::test]
async fn the_pipeline_runs_over_tls_to_the_broker_and_both_databases_and_refuses_an_untrusted_certificate(
) {
    let tls = TlsServers::start();
    let env = TestEnv::new(&["erp"], &[]).await;
    let (magento_db, ledger_db) = (format!("{}_magento", env.id), format!("{}_ledger", env.id));
    // The test's own connection trusts the CA the same way order-sync does.
    let admin = mysql_async::Pool::new(
        mysql_async::Opts::from_url(&format!("{}/mysql", tls.mysql))
            .map(|o| {
                mysql_async::OptsBuilder::from_opts(o).ssl_opts(Some(
                    mysql_async::SslOpts::default()
                        .with_root_certs(vec![std::path::PathBuf::from(&tls.ca).into()]),
                ))
            })
            .unwrap(),
    );
    let mut conn = admin
        .get_conn()
        .await
        .expect("the test reaches MariaDB over TLS");
    conn.query_drop(format!("CREATE DATABASE `{magento_db}`"))
        .await
        .unwrap();
    conn.query_drop(format!("CREATE DATABASE `{ledger_db}`"))
        .await
        .unwrap();
    conn.query_drop(format!("USE `{magento_db}`"))
        .await
        .unwrap();
    conn.query_drop(MAGENTO_SCHEMA).await.unwrap();
    let mut tx = conn
        .start_transaction(mysql_async::TxOpts::default())
        .await
        .unwrap();
    let id = insert_order(&mut tx).await;
    tx.commit().await.unwrap();

    let run = |trust: bool| {
        let mut cmd = env.order_sync(&["run"]);
        cmd.env("ORDER_SYNC__BROKER__URL", &tls.amqps)
            .env("ORDER_SYNC__MAGENTO__URL", tls.url(&magento_db, trust))
            .env("ORDER_SYNC__LEDGER__URL", tls.url(&ledger_db, trust));
        if trust {
            cmd.env("SSL_CERT_FILE", &tls.ca);
        }
        cmd
    };

    // Not trusting the CA: start-up stops, naming the key and the certificate.
    let out = run(false).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert!(stderr.contains(".url"), "{stderr}");
    // The one-shot commands say the same, with the same exit code.
    let out = env
        .order_sync(&["migrate"])
        .env("ORDER_SYNC__LEDGER__URL", tls.url(&ledger_db, false))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "migrate: {stderr}");
    assert!(
        stderr.contains("ledger.url") && stderr.contains("certificate"),
        "{stderr}"
    );
    let out = env
        .order_sync(&["topology"])
        .env("ORDER_SYNC__BROKER__URL", &tls.amqps)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "topology: {stderr}");
    assert!(
        stderr.contains("broker.url") && stderr.contains("certificate"),
        "{stderr}"
    );

    // Trusting it: an order goes all the way, every hop encrypted.
    let mut child = crate::support::Proc::spawn(
        run(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let broker = lapin::Connection::connect(&tls.amqp, Default::default())
        .await
        .unwrap();
    let queue = env.topology().consumer_queue("erp");
    // Until order-sync has declared its queues (a failed consume closes its channel).
    let (_ch, mut consumer) = loop {
        let ch = broker.create_channel().await.unwrap();
        match ch
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                Default::default(),
                Default::default(),
            )
            .await
        {
            Ok(c) => break (ch, c),
            Err(_) => {
                assert!(child.try_wait().unwrap().is_none(), "order-sync stopped");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let d = next_within(&mut consumer, Duration::from_secs(60))
        .await
        .expect("the order arrives over TLS");
    assert_eq!(body(&d)["order"]["entity_id"], id);
    let publ = broker.create_channel().await.unwrap();
    publ.basic_publish(
        env.topology().acks_exchange().as_str().into(),
        "erp".into(),
        Default::default(),
        json!({"consumer": "erp", "entity_id": id, "status": "synced"})
            .to_string()
            .as_bytes(),
        Default::default(),
    )
    .await
    .unwrap();
    crate::support::ack_delivery(&d).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let state: Option<String> = conn
            .query_first(format!(
                "SELECT state FROM `{ledger_db}`.order_sync_deliveries WHERE entity_id = {id}"
            ))
            .await
            .unwrap();
        if state.as_deref() == Some("synced") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not synced: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let cipher: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    assert!(
        cipher.is_some_and(|(_, c)| !c.is_empty()),
        "the test's own link is TLS"
    );
    drop(child);
    let _ = broker.close(200, "done".into()).await;
    drop(conn);
    admin.disconnect().await.unwrap();
    env.cleanup().await;
}
