//! The status page in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver: it shows the seeded orders with
//! their states, a click re-sends an order, and pause shows as paused.

use std::{process::Child, time::Duration};

use fantoccini::{Client, ClientBuilder, Locator};
use order_sync::ledger::{RowKey, State};
use serde_json::json;

use crate::support::{ack_delivery, body, free_port, http, next_within, TestEnv};

const TOKEN: &str = "page-token-0123456789";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on its own port, in a process group of its own with the
/// Chromium it starts; the whole group is killed on drop, so a failing test
/// leaves no browser behind.
struct Driver(Child, String);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// Every browser step gets this long; a hung browser fails the test, it never hangs it.
const STEP: Duration = Duration::from_secs(30);

async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("browser step `{what}` took over {STEP:?}"))
}

async fn browser(id: &str) -> (Driver, Client) {
    let port = free_port();
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .process_group(0)
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
        let session = ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await;
        match session {
            Ok(c) => {
                let timeouts = fantoccini::wd::TimeoutConfiguration::new(
                    Some(Duration::from_secs(10)),
                    Some(Duration::from_secs(20)),
                    Some(Duration::ZERO),
                );
                step("set timeouts", c.update_timeouts(timeouts))
                    .await
                    .unwrap();
                return (driver, c);
            }
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not open a Chromium session through chromedriver on port {port}: {last:?}");
}

/// Clicks the element with this id (the page then loads what the click posts).
async fn click(c: &Client, id: &str) {
    step(&format!("click #{id}"), async {
        c.find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("no #{id}: {e}"))
            .click()
            .await
            .unwrap()
    })
    .await;
}

/// Waits for the page that an action loads: the one whose notice says `text`.
async fn wait_notice(c: &Client, text: &str) {
    let deadline = std::time::Instant::now() + STEP;
    loop {
        // The old page may still be there, or go stale under our hands: look again.
        if let Ok(Ok(el)) =
            tokio::time::timeout(Duration::from_secs(5), c.find(Locator::Id("notice"))).await
        {
            if let Ok(Ok(t)) = tokio::time::timeout(Duration::from_secs(5), el.text()).await {
                if t.contains(text) {
                    return;
                }
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no page with the notice `{text}` within {STEP:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the pause banner says: "true", "false" or "partly".
async fn paused(banner: &fantoccini::elements::Element) -> String {
    banner
        .attr("data-paused")
        .await
        .unwrap()
        .unwrap_or_default()
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
            // Reads opened explicitly, to show the buttons off before sign-in;
            // protected reads are shown by the control tests.
            ("ORDER_SYNC__HTTP__PROTECT_READS", "false"),
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
    let ledger = env.parts().deps.ledger;
    ledger
        .park(
            &[RowKey::placed(ids[2], "wms")],
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

    let (driver, c) = browser(&env.id).await;
    // One bound on the whole browser session, whatever step would hang.
    tokio::time::timeout(Duration::from_secs(240), async {
        step("load /", c.goto(&format!("{base}/"))).await.unwrap();
        assert_eq!(shown_state(&c, ids[0], "erp").await, "synced");
        // The charts: a line per series, drawn (a picture of it has pixels),
        // and a bar for each consumer with an order waiting.
        let chart = c.find(Locator::Id("throughput")).await.unwrap();
        let lines = c
            .find_all(Locator::Css("#throughput polyline.series"))
            .await
            .unwrap();
        assert_eq!(lines.len(), 3, "captured, synced erp, synced wms");
        let legend = c
            .find(Locator::Css("p.legend"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(legend.contains("captured (3)"), "{legend}");
        assert!(legend.contains("synced erp (1)"), "{legend}");
        let png = chart.screenshot().await.unwrap();
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 1000,
            "the chart renders"
        );
        if let Ok(path) = std::env::var("ORDER_SYNC_CHART_SCREENSHOT") {
            std::fs::write(path, &png).unwrap();
        }
        c.find(Locator::Css("#oldest rect[data-consumer='wms']"))
            .await
            .expect("wms has orders waiting");
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
        step("log in", login.submit()).await.unwrap();
        wait_notice(&c, "Unlocked").await;
        // The browser keeps a session, never the token itself.
        let cookies = c.get_all_cookies().await.unwrap();
        let session = cookies
            .iter()
            .find(|k| k.name() == "order_sync_session")
            .expect("a session cookie");
        assert!(
            !session.value().contains(TOKEN),
            "the cookie holds the token"
        );
        assert!(!cookies.iter().any(|k| k.value().contains(TOKEN)));

        // Re-send the synced order with its button: its state changes.
        step("click re-send", async {
            c.find(Locator::Css(&format!("#order-{} button.resync", ids[0])))
                .await
                .unwrap()
                .click()
                .await
                .unwrap()
        })
        .await;
        wait_notice(&c, "Re-sending 1 order").await;
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
        click(&c, "pause-all").await;
        wait_notice(&c, "Paused all consumers").await;
        let pause = c.find(Locator::Id("pause-state")).await.unwrap();
        assert_eq!(paused(&pause).await, "true");
        // ORDER_SYNC_SCREENSHOT=page.png keeps a picture of the page to look at.
        if let Ok(path) = std::env::var("ORDER_SYNC_SCREENSHOT") {
            std::fs::write(path, c.screenshot().await.unwrap()).unwrap();
        }
        assert!(pause.text().await.unwrap().contains("PAUSED"));
        assert_eq!(ledger.pauses().await.unwrap()[0].consumer, "*");
        click(&c, "resume-all").await;
        wait_notice(&c, "Resumed all consumers").await;
        let pause = c.find(Locator::Id("pause-state")).await.unwrap();
        assert_eq!(paused(&pause).await, "false");

        // The filter finds the stuck ones.
        step(
            "load the parked filter",
            c.goto(&format!("{base}/?state=parked")),
        )
        .await
        .unwrap();
        let rows = c
            .find_all(Locator::Css("#orders tr[data-entity-id]"))
            .await
            .unwrap();
        let mut shown = Vec::new();
        for r in rows {
            shown.push(r.attr("data-entity-id").await.unwrap().unwrap());
        }
        assert_eq!(shown, [ids[2].to_string()]);
        // Tick two orders and re-send the selection.
        step("load /", c.goto(&format!("{base}/"))).await.unwrap();
        for id in [ids[1], ids[2]] {
            step("tick an order", async {
                c.find(Locator::Css(&format!("#order-{id} input[type=checkbox]")))
                    .await
                    .unwrap()
                    .click()
                    .await
                    .unwrap()
            })
            .await;
        }
        click(&c, "resync-selected").await;
        wait_notice(&c, "Re-sending 2 order(s) (4 row(s))").await;
        assert_eq!(
            ledger
                .delivery(ids[2], "wms")
                .await
                .unwrap()
                .unwrap()
                .resyncs,
            1,
            "the parked order was in the selection"
        );

        step("close the browser", c.close()).await.unwrap();
    })
    .await
    .expect("the browser session finished within 4 minutes");
    drop(driver);

    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
