//! The status page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver: it shows the seeded orders with
//! their states, a click re-sends an order, and pause shows as paused.

use std::{process::Child, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use order_sync::ledger::State;
use serde_json::json;

use crate::support::{ack_delivery, body, free_port, http, next_within, TestEnv};

const TOKEN: &str = "page-token-0123456789";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on its own port; killed on drop.
struct Driver(Child, String);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

async fn browser(id: &str) -> (Driver, Client) {
    let port = free_port();
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {CHROMEDRIVER} ({e}): install Chromium and its driver with \
                 `apt-get install -y chromium chromium-driver` (deploy/test.sh does)"
            )
        });
    let profile = std::env::temp_dir().join(format!("{id}-chromium"));
    let driver = Driver(child, profile.display().to_string());
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1366,900",
                format!("--user-data-dir={}", profile.display()),
            ]
        }
    });
    let caps = caps.as_object().unwrap().clone();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last = None;
    // chromedriver takes a moment to listen.
    for _ in 0..100 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not open a Chromium session through chromedriver on port {port}: {last:?}");
}

/// The state shown for one order and consumer.
async fn shown_state(c: &Client, entity_id: u32, consumer: &str) -> String {
    c.find(Locator::Css(&format!(
        "#order-{entity_id} td[data-consumer='{consumer}']"
    )))
    .await
    .unwrap_or_else(|e| panic!("no cell for order {entity_id} / {consumer}: {e}"))
    .attr("data-state")
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn an_operator_finds_stuck_orders_resends_one_and_pauses_in_a_real_browser() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
            ("ORDER_SYNC__HTTP__API_TOKEN", TOKEN),
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1h"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "2h"),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(3).await;
    // erp syncs the first order; the rest stay stuck (published, no ack).
    let mut erp = env.consume(&env.topology().consumer_queue("erp")).await;
    for _ in 0..3 {
        let d = next_within(&mut erp, Duration::from_secs(20))
            .await
            .expect("erp gets each order");
        let id = body(&d)["order"]["entity_id"].as_u64().unwrap() as u32;
        ack_delivery(&d).await;
        if id == ids[0] {
            env.ack_json(json!({"consumer": "erp", "entity_id": id, "status": "synced"}))
                .await;
        }
    }
    env.wait_for_ledger(Duration::from_secs(20), "erp synced the first", |rows| {
        rows.iter()
            .any(|r| r.entity_id == ids[0] && r.consumer == "erp" && r.state == State::Synced)
    })
    .await;
    let ledger = env.parts().ledger;
    ledger
        .park(
            &[(ids[2], "wms")],
            "no synced ack after 10 deliveries",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let base = format!("http://{listen}");
    let (status, html) = http("GET", &format!("{base}/"), None, None).await;
    assert_eq!(status, 200);
    assert!(
        !html.contains("<script"),
        "the page needs no JavaScript to read"
    );

    let (_driver, c) = browser(&env.id).await;
    c.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(shown_state(&c, ids[0], "erp").await, "synced");
    assert_eq!(shown_state(&c, ids[1], "erp").await, "published");
    assert_eq!(shown_state(&c, ids[2], "wms").await, "parked");
    let parked_row = c
        .find(Locator::Css(&format!("#order-{}", ids[2])))
        .await
        .unwrap();
    assert_eq!(
        parked_row.attr("class").await.unwrap().as_deref(),
        Some("parked")
    );
    let error = parked_row.text().await.unwrap();
    assert!(
        error.contains("no synced ack after 10 deliveries"),
        "{error}"
    );
    let totals = c
        .find(Locator::Css(
            "#totals tr[data-consumer='wms'] td[data-state='parked']",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(totals.trim(), "1");
    // Buttons are off until the token is given.
    let resync = c
        .find(Locator::Css(&format!("#order-{} button.resync", ids[0])))
        .await
        .unwrap();
    assert!(!resync.is_enabled().await.unwrap());

    let login = c.form(Locator::Css("#login")).await.unwrap();
    login.set_by_name("token", TOKEN).await.unwrap();
    login.submit().await.unwrap();
    let notice = c
        .find(Locator::Id("notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("Unlocked"), "{notice}");

    // Re-send the synced order with its button: its state changes.
    c.find(Locator::Css(&format!("#order-{} button.resync", ids[0])))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let notice = c
        .find(Locator::Id("notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(notice.contains("Re-sending 1 order"), "{notice}");
    let state = shown_state(&c, ids[0], "erp").await;
    assert!(
        state == "pending" || state == "published",
        "re-sent order shows {state}"
    );
    let d = next_within(&mut erp, Duration::from_secs(20))
        .await
        .expect("the re-sent order reaches erp");
    assert_eq!(body(&d)["order"]["entity_id"].as_u64(), Some(ids[0] as u64));
    ack_delivery(&d).await;

    // Pause: the page says so; the ledger agrees.
    c.find(Locator::Id("pause-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pause = c.find(Locator::Id("pause-state")).await.unwrap();
    assert_eq!(
        pause.attr("data-paused").await.unwrap().as_deref(),
        Some("true")
    );
    // ORDER_SYNC_SCREENSHOT=page.png keeps a picture of the page to look at.
    if let Ok(path) = std::env::var("ORDER_SYNC_SCREENSHOT") {
        std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
    }
    assert!(pause.text().await.unwrap().contains("PAUSED"));
    assert_eq!(ledger.pauses().await.unwrap()[0].consumer, "*");
    c.find(Locator::Id("resume-all"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let pause = c.find(Locator::Id("pause-state")).await.unwrap();
    assert_eq!(
        pause.attr("data-paused").await.unwrap().as_deref(),
        Some("false")
    );

    // The filter finds the stuck ones.
    c.goto(&format!("{base}/?state=parked")).await.unwrap();
    let rows = c
        .find_all(Locator::Css("#orders tr[data-entity-id]"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for r in rows {
        shown.push(r.attr("data-entity-id").await.unwrap().unwrap());
    }
    assert_eq!(shown, [ids[2].to_string()]);
    c.close().await.unwrap();

    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
