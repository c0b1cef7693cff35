//! `order-sync backfill`: a consumer added later gets the older orders from
//! Magento, each once, while live capture goes on and live orders are not
//! held up behind them; a kill -9 half-way is resumed by running it again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use mysql_async::prelude::*;
use order_sync::{backfill, broker::sync_consumer, ledger::State, magento::BackfillFilter};
use order_sync_consumer::OrderMessage;
use tokio_util::sync::CancellationToken;

use serde_json::{json, Value};

use crate::control::{sign_in, wait_http, TOKEN};
use crate::support::{free_port, http_form_with, http_json, http_raw, insert_order, Proc, TestEnv};

/// What a consumer got: (entity_id, event, sequence) → when, each delivery.
type Got = Arc<Mutex<Vec<(u32, String, u32, Instant)>>>;

/// A sync service on `consumer`'s queue (the consumer crate, acking each).
fn service(
    env: &TestEnv,
    consumer: &str,
    stop: &CancellationToken,
) -> (Got, tokio::task::JoinHandle<()>) {
    let got: Got = Arc::default();
    let c = sync_consumer(&env.settings.broker, consumer).with_prefetch(50);
    let (keep, stop) = (got.clone(), stop.clone());
    let task = tokio::spawn(async move {
        c.run(
            |m: OrderMessage| {
                let keep = keep.clone();
                async move {
                    let id = m.entity_id().unwrap_or_default() as u32;
                    keep.lock()
                        .unwrap()
                        .push((id, m.event.clone(), m.sequence, Instant::now()));
                    Ok::<(), String>(())
                }
            },
            stop,
        )
        .await
    });
    (got, task)
}

/// `n` orders placed at once, as older orders in a shop's database are: one
/// template order, copied by set-based inserts.
async fn older_orders(env: &TestEnv, n: u32) -> Vec<u32> {
    let mut conn = env.magento_conn().await;
    conn.query_drop("SET SESSION max_recursive_iterations = 1000000")
        .await
        .unwrap();
    let mut tx = conn.start_transaction(Default::default()).await.unwrap();
    let first = insert_order(&mut tx).await;
    tx.exec_drop(
        "INSERT INTO sales_order (state, status, store_id, customer_email, customer_firstname, \
         customer_lastname, customer_is_guest, base_currency_code, order_currency_code, \
         grand_total, base_grand_total, subtotal, total_item_count, store_name) \
         SELECT o.state, o.status, o.store_id, o.customer_email, o.customer_firstname, \
         o.customer_lastname, o.customer_is_guest, o.base_currency_code, o.order_currency_code, \
         o.grand_total, o.base_grand_total, o.subtotal, o.total_item_count, o.store_name \
         FROM sales_order o JOIN (WITH RECURSIVE s(k) AS (SELECT 2 UNION ALL SELECT k + 1 FROM s WHERE k < ?) \
         SELECT k FROM s) s WHERE o.entity_id = ?",
        (n, first),
    )
    .await
    .unwrap();
    tx.query_drop(
        "UPDATE sales_order SET increment_id = LPAD(entity_id, 9, '0') WHERE increment_id IS NULL",
    )
    .await
    .unwrap();
    // Older orders are older: placed and last saved days ago, as a shop's
    // are, not in the minute the change scan looks back over.
    tx.exec_drop(
        "UPDATE sales_order SET created_at = UTC_TIMESTAMP() - INTERVAL 2 DAY, \
         updated_at = UTC_TIMESTAMP() - INTERVAL 2 DAY WHERE entity_id >= ?",
        (first,),
    )
    .await
    .unwrap();
    tx.exec_drop(
        "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, row_total) \
         SELECT o.entity_id, 1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'simple', 1, '52.0000', '52.0000' \
         FROM sales_order o WHERE o.entity_id > ?",
        (first,),
    )
    .await
    .unwrap();
    let ids: Vec<u32> = tx
        .exec(
            "SELECT entity_id FROM sales_order WHERE entity_id >= ? ORDER BY entity_id",
            (first,),
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), n as usize);
    ids
}

fn request(consumer: &str) -> backfill::Request {
    backfill::Request {
        consumer: consumer.into(),
        filter: BackfillFilter::default(),
        chunk: 100,
        window: 100,
        dry_run: false,
    }
}

/// Placement deliveries per order.
fn placements(got: &Got) -> HashMap<u32, usize> {
    let mut n = HashMap::new();
    for (id, event, ..) in got.lock().unwrap().iter() {
        if event == "sales_order_place_after_que" {
            *n.entry(*id).or_default() += 1;
        }
    }
    n
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

#[tokio::test]
async fn a_new_consumer_gets_five_thousand_older_orders_once_while_live_orders_still_arrive_within_a_second(
) {
    // Alone: its bound is on latency, which the rest of the suite's load on
    // two cores would decide otherwise.
    let env = TestEnv::alone(
        &["erp", "wms"],
        &[("ORDER_SYNC__CAPTURE__START_FROM", "latest")],
    )
    .await;
    // Placed before order-sync started: capture starts after them.
    let older = older_orders(&env, 5000).await;
    let stop = CancellationToken::new();
    let (erp, erp_task) = service(&env, "erp", &stop);
    let (wms, wms_task) = service(&env, "wms", &stop);
    let (shutdown, pipeline) = env.spawn_pipeline();
    // Capture has its position once it has run.
    env.wait_for_capture_start(Duration::from_secs(20)).await;

    // 20 orders a second keep coming while the backfill runs.
    let placing = CancellationToken::new();
    let live: Arc<Mutex<Vec<(u32, Instant)>>> = Arc::default();
    let placer = {
        let (env_live, stop, magento) = (
            live.clone(),
            placing.clone(),
            env.settings.magento.url.clone(),
        );
        tokio::spawn(async move {
            let mut conn = mysql_async::Conn::from_url(magento.expose()).await.unwrap();
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while !stop.is_cancelled() {
                tick.tick().await;
                let mut tx = conn.start_transaction(Default::default()).await.unwrap();
                let id = insert_order(&mut tx).await;
                tx.commit().await.unwrap();
                env_live.lock().unwrap().push((id, Instant::now()));
            }
        })
    };
    let deps = env.parts().deps;
    // A live order waits behind at most about a window of backfilled ones
    // in the queue: 50 of them keep that well under a second for this
    // debug-built service on a busy two-core machine (at 100 it was 1.03 s
    // on a slow day).
    let paced = backfill::Request {
        chunk: 50,
        window: 50,
        ..request("wms")
    };
    let report = backfill::backfill(
        &deps,
        &env.settings.capture,
        &paced,
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    placing.cancel();
    placer.await.unwrap();
    assert_eq!(report.progress.total, 5000, "{report:?}");
    assert_eq!(report.progress.given, 5000, "{report:?}");
    let live: Vec<(u32, Instant)> = live.lock().unwrap().clone();
    assert!(live.len() >= 20, "orders kept coming: {}", live.len());

    let want = older.len() + live.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while placements(&wms).len() < want || placements(&erp).len() < live.len() {
        assert!(
            Instant::now() < deadline,
            "wms got {} of {want}, erp {} of {}",
            placements(&wms).len(),
            placements(&erp).len(),
            live.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let at_wms = placements(&wms);
    let twice: Vec<_> = at_wms.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered twice to wms: {twice:?}");
    assert!(older.iter().all(|id| at_wms.contains_key(id)));
    let at_erp = placements(&erp);
    assert!(
        older.iter().all(|id| !at_erp.contains_key(id)),
        "the backfill was for wms alone"
    );
    assert!(at_erp.values().all(|n| *n == 1));
    // Live orders did not wait behind the backfill.
    for (name, got) in [("wms", &wms), ("erp", &erp)] {
        let received: HashMap<u32, Instant> = got
            .lock()
            .unwrap()
            .iter()
            .map(|(id, _, _, at)| (*id, *at))
            .collect();
        let waits: Vec<Duration> = live
            .iter()
            .map(|(id, placed)| received[id].saturating_duration_since(*placed))
            .collect();
        let worst = p99(waits);
        assert!(
            worst <= Duration::from_secs(1),
            "{name}: live orders' p99 from commit to delivery was {worst:?}"
        );
    }
    env.wait_for_ledger(Duration::from_secs(30), "all synced", |rows| {
        rows.len() == older.len() + 2 * live.len() && rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    // Run again: nothing more.
    let again = backfill::backfill(
        &deps,
        &env.settings.capture,
        &request("wms"),
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(again.progress.given, 0, "{again:?}");
    assert_eq!(again.skipped, again.progress.total, "{again:?}");
    stop.cancel();
    let _ = tokio::join!(erp_task, wms_task);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_backfill_never_gives_an_order_that_capture_filter_leaves_out() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
            ("ORDER_SYNC__CAPTURE__FILTER__WEBSITE_CODES", "base"),
            ("ORDER_SYNC__CAPTURE__FILTER__STATES", "new,processing"),
        ],
    )
    .await;
    let older = older_orders(&env, 30).await;
    let mut conn = env.magento_conn().await;
    for sql in crate::support::B2B_WEBSITE {
        conn.query_drop(sql).await.unwrap();
    }
    conn.exec_drop(
        "UPDATE sales_order SET store_id = 2 WHERE entity_id IN (?, ?, ?, ?, ?)",
        (older[0], older[1], older[2], older[3], older[4]),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "UPDATE sales_order SET state = 'canceled', status = 'canceled' \
         WHERE entity_id IN (?, ?, ?, ?, ?)",
        (older[5], older[6], older[7], older[8], older[9]),
    )
    .await
    .unwrap();
    drop(conn);
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_capture_start(Duration::from_secs(20)).await;

    let deps = env.parts().deps;
    let report = backfill::backfill(
        &deps,
        &env.settings.capture,
        &request("wms"),
        |_| {},
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        (report.progress.total, report.progress.given),
        (20, 20),
        "another store's and cancelled orders are not even looked at: {report:?}"
    );
    let mut given: Vec<u32> = deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.consumer == "wms")
        .map(|r| r.entity_id)
        .collect();
    given.sort_unstable();
    assert_eq!(given, older[10..]);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_backfill_cut_by_kill_9_is_resumed_by_running_it_again_and_doubles_nothing() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[("ORDER_SYNC__CAPTURE__START_FROM", "latest")],
    )
    .await;
    let older = older_orders(&env, 1500).await;
    let stop = CancellationToken::new();
    let (wms, wms_task) = service(&env, "wms", &stop);
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_capture_start(Duration::from_secs(20)).await;
    let args = [
        "backfill",
        "--consumer",
        "wms",
        "--chunk",
        "50",
        "--window",
        "50",
    ];
    let mut first = Proc::spawn(
        env.order_sync(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    env.wait_for_ledger(
        Duration::from_secs(30),
        "part of the backfill given",
        |rows| rows.iter().filter(|r| r.consumer == "wms").count() >= 300,
    )
    .await;
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &first.id().to_string()])
        .status();
    let _ = first.wait();
    let given = env
        .parts()
        .deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.consumer == "wms")
        .count();
    assert!(given < older.len(), "killed before the end: {given}");

    // Off the test's one thread: the pipeline and the service it waits on
    // run here meanwhile.
    let mut again = env.order_sync(&args);
    let out = tokio::task::spawn_blocking(move || again.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("looked at 1500 of 1500 order(s)")
            && stdout.contains(&format!("gave {}", older.len() - given)),
        "{stdout}"
    );
    // The killed run's record was taken over by the second, at once.
    let runs = env
        .parts()
        .deps
        .ledger
        .backfills(&env.settings.shop.name, 10)
        .await
        .unwrap();
    let states: Vec<_> = runs.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(states, ["done", "interrupted"], "{runs:?}");
    assert!(runs[1]
        .error
        .as_deref()
        .unwrap()
        .contains("the next run took over"));
    let rows = env
        .wait_for_ledger(
            Duration::from_secs(60),
            "every older order synced for wms",
            |rows| {
                rows.iter()
                    .filter(|r| r.consumer == "wms" && r.state == State::Synced)
                    .count()
                    == older.len()
            },
        )
        .await;
    assert!(rows.iter().all(|r| r.attempts == 1), "one delivery each");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let at_wms = placements(&wms);
    assert_eq!(at_wms.len(), older.len());
    assert!(at_wms.values().all(|n| *n == 1), "nothing delivered twice");
    stop.cancel();
    let _ = wms_task.await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_backfill_asked_wrongly_changes_nothing_and_says_which_flag() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let cases: [(&[&str], &str); 4] = [
        (
            &["backfill", "--consumer", "crm"],
            "--consumer: `crm` is not in consumers.names",
        ),
        (
            &["backfill", "--consumer", "wms", "--since", "last tuesday"],
            "--since",
        ),
        (
            &["backfill", "--consumer", "wms", "--window", "0"],
            "--chunk and --window must be at least 1",
        ),
        // Capture never ran here: no watermark to stop at.
        (
            &["backfill", "--consumer", "wms"],
            "capture has no position for shop",
        ),
    ];
    for (args, says) in cases {
        let out = env.order_sync(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    assert!(env
        .parts()
        .deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .is_empty());
    env.cleanup().await;
}

/// A world with the HTTP surface and the operators' token: (world, base URL).
async fn env_with_http(consumers: &[&str]) -> (TestEnv, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let env = TestEnv::new(
        consumers,
        &[
            ("ORDER_SYNC__CAPTURE__START_FROM", "latest"),
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
            ("ORDER_SYNC__HTTP__API_TOKEN", TOKEN),
        ],
    )
    .await;
    (env, format!("http://{listen}"))
}

/// The status page, signed in.
async fn page(base: &str, cookie: &str) -> String {
    let (status, _, html) = http_raw("GET", &format!("{base}/"), None, &[("cookie", cookie)]).await;
    assert_eq!(status, 200, "{html}");
    html
}

/// Polls one run over the API until `done` says so; its last answer.
async fn wait_for_run(base: &str, id: u64, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, run) = http_json(
            "GET",
            &format!("{base}/api/backfills/{id}"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{run}");
        if done(&run) {
            return run;
        }
        assert!(
            Instant::now() < deadline,
            "run {id}: {what} within 60s; last: {run}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_backfill_started_over_the_api_runs_in_the_service_one_per_consumer_and_shows_its_progress_on_the_page(
) {
    let (env, base) = env_with_http(&["erp", "wms"]).await;
    let older = older_orders(&env, 300).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    env.wait_for_capture_start(Duration::from_secs(20)).await;
    let url = format!("{base}/api/backfill");

    // Asked wrongly: refused, naming the field; nothing recorded.
    let (status, _) = http_json("POST", &url, None, Some(&json!({ "consumer": "wms" }))).await;
    assert_eq!(status, 401);
    for (asked, says) in [
        (
            json!({ "consumer": "crm" }),
            "consumer: `crm` is not in consumers.names",
        ),
        (json!({}), "consumer: required"),
        (
            json!({ "consumer": "wms", "since": "last tuesday" }),
            "since",
        ),
        (
            json!({ "consumer": "wms", "window": 0 }),
            "chunk and window must be at least 1",
        ),
        (
            json!({ "consumer": "wms", "from": "2026-01-01" }),
            "unknown field `from`",
        ),
    ] {
        let (status, answer) = http_json("POST", &url, Some(TOKEN), Some(&asked)).await;
        assert_eq!(status, 400, "{asked}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(says),
            "{asked}: {answer}"
        );
    }
    let (_, runs) = http_json("GET", &format!("{base}/api/backfills"), Some(TOKEN), None).await;
    assert_eq!(runs["backfills"], json!([]), "nothing recorded: {runs}");

    // A dry run answers at once and gives nothing.
    let (status, dry) = http_json(
        "POST",
        &url,
        Some(TOKEN),
        Some(&json!({ "consumer": "wms", "dry_run": true })),
    )
    .await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["report"]["progress"]["given"], 300, "{dry}");

    // No one takes wms's orders yet: the run gives a window and waits.
    let asked = json!({ "consumer": "wms", "chunk": 50, "window": 50 });
    let (status, started) = http_json("POST", &url, Some(TOKEN), Some(&asked)).await;
    assert_eq!(status, 202, "{started}");
    let id = started["id"].as_u64().unwrap();
    assert_eq!(started["request"], "--consumer wms --chunk 50 --window 50");
    let (status, second) = http_json("POST", &url, Some(TOKEN), Some(&asked)).await;
    assert_eq!(status, 409, "one run per consumer at a time: {second}");
    assert!(
        second["error"]
            .as_str()
            .unwrap()
            .contains(&format!("run {id}, started by http")),
        "{second}"
    );
    let waiting = wait_for_run(&base, id, "waiting for wms", |r| r["waiting"] == true).await;
    assert_eq!(waiting["state"], "running");
    assert_eq!(waiting["total"], 300);
    assert_eq!(waiting["given"], 50, "{waiting}");
    let (cookie, _) = sign_in(&base, TOKEN).await;
    let html = page(&base, &cookie).await;
    assert!(
        html.contains(&format!("data-run=\"{id}\" data-state=\"running\""))
            && html.contains("waiting for wms to take its orders"),
        "{html}"
    );

    // wms comes: the run goes on to the end, each order once.
    let stop = CancellationToken::new();
    let (wms, wms_task) = service(&env, "wms", &stop);
    let done = wait_for_run(&base, id, "done", |r| r["state"] == "done").await;
    assert_eq!(
        (
            &done["looked_at"],
            &done["given"],
            &done["skipped"],
            &done["stalled"]
        ),
        (&json!(300), &json!(300), &json!(0), &json!(false)),
        "{done}"
    );
    env.wait_for_ledger(
        Duration::from_secs(30),
        "every older order synced for wms",
        |rows| {
            rows.iter()
                .filter(|r| r.consumer == "wms" && r.state == State::Synced)
                .count()
                == older.len()
        },
    )
    .await;
    let at_wms = placements(&wms);
    assert_eq!(at_wms.len(), older.len());
    assert!(at_wms.values().all(|n| *n == 1), "nothing twice");
    let html = page(&base, &cookie).await;
    assert!(
        html.contains(&format!("data-run=\"{id}\" data-state=\"done\"")),
        "{html}"
    );

    stop.cancel();
    let _ = wms_task.await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn the_page_form_starts_a_backfill_and_a_stop_records_it_interrupted_for_the_cli_to_go_on() {
    let (env, base) = env_with_http(&["erp", "wms"]).await;
    let older = older_orders(&env, 120).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    env.wait_for_capture_start(Duration::from_secs(20)).await;
    let host = base.trim_start_matches("http://");

    // Not signed in: the form is refused.
    let (status, _) = http_form_with(
        &format!("{base}/ui/backfill"),
        None,
        "consumer=wms",
        &[("origin", &base), ("host", host)],
    )
    .await;
    assert_eq!(status, 401);
    let (cookie, _) = sign_in(&base, TOKEN).await;
    let headers = [
        ("cookie", cookie.as_str()),
        ("origin", base.as_str()),
        ("host", host),
    ];
    let (status, answer) = http_form_with(
        &format!("{base}/ui/backfill"),
        None,
        "consumer=wms&stores=one",
        &headers,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("stores: `one` is not a store id"),
        "{answer}"
    );
    let (status, answer) = http_form_with(
        &format!("{base}/ui/backfill"),
        None,
        "consumer=wms&since=2000-01-01&states=&stores=1",
        &headers,
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    let (_, runs) = http_json("GET", &format!("{base}/api/backfills"), Some(TOKEN), None).await;
    let run = &runs["backfills"][0];
    let id = run["id"].as_u64().unwrap();
    assert_eq!(run["started_by"], "status page", "{runs}");
    assert_eq!(
        run["request"],
        "--consumer wms --since 2000-01-01T00:00:00Z --store 1 --chunk 200 --window 200"
    );

    // The page's default window (200) is more than the 120 orders: the run
    // gives them all and ends without waiting for wms.
    let done = wait_for_run(&base, id, "an end", |r| r["state"] != "running").await;
    assert_eq!(
        (&done["state"], &done["given"]),
        (&json!("done"), &json!(120)),
        "{done}"
    );

    // A run cut by the service's stop is recorded interrupted.
    let (status, started) = http_json(
        "POST",
        &format!("{base}/api/backfill"),
        Some(TOKEN),
        Some(&json!({ "consumer": "erp", "chunk": 10, "window": 10 })),
    )
    .await;
    assert_eq!(status, 202, "{started}");
    let second = started["id"].as_u64().unwrap();
    wait_for_run(&base, second, "waiting for erp", |r| r["waiting"] == true).await;
    shutdown.cancel();
    pipeline.await.unwrap();
    let ledger = env.parts().deps.ledger;
    let run = ledger
        .backfill_run(&env.settings.shop.name, second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (run.state.as_str(), run.given),
        ("interrupted", 10),
        "{run:?}"
    );

    // The CLI goes on where it stopped: erp gets the rest, once each.
    let mut cli = env.order_sync(&["backfill", "--consumer", "erp", "--window", "1000"]);
    let out = tokio::task::spawn_blocking(move || cli.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("gave {}", older.len() - 10)),
        "{stdout}"
    );
    let runs = ledger.backfills(&env.settings.shop.name, 10).await.unwrap();
    assert_eq!(
        (
            runs[0].started_by.as_str(),
            runs[0].state.as_str(),
            runs[0].given
        ),
        ("cli", "done", (older.len() - 10) as u64),
        "{runs:?}"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_run_whose_process_died_is_shown_stalled_and_the_next_start_takes_over_at_once() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let parts = env.parts();
    let ledger = &parts.deps.ledger;
    ledger.migrate().await.unwrap();
    let shop = &env.settings.shop.name;
    let now = chrono::Utc::now();
    let first = ledger
        .start_backfill(shop, "wms", "--consumer wms", "cli", now)
        .await
        .unwrap()
        .expect("the first run starts");
    let id = first.id;
    // While it lives, a second start is refused, naming the first.
    let refused = ledger
        .start_backfill(shop, "wms", "--consumer wms", "http", now)
        .await
        .unwrap()
        .expect_err("one run per consumer");
    assert_eq!(refused.as_ref().map(|r| r.id), Some(id));
    assert!(
        !ledger
            .backfill_run(shop, id)
            .await
            .unwrap()
            .unwrap()
            .stalled
    );
    // Another consumer is not held up by it.
    let erp = ledger
        .start_backfill(shop, "erp", "--consumer erp", "http", now)
        .await
        .unwrap()
        .expect("another consumer's run starts");
    // Its process dies: the lock's connection goes, the row stays "running".
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ledger
        .backfill_run(shop, id)
        .await
        .unwrap()
        .unwrap()
        .stalled
    {
        assert!(
            Instant::now() < deadline,
            "the dead run shown stalled within 10s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let runs = ledger.backfills(shop, 10).await.unwrap();
    let stalled: Vec<_> = runs
        .iter()
        .filter(|r| r.stalled)
        .map(|r| r.consumer.as_str())
        .collect();
    assert_eq!(
        stalled,
        ["wms"],
        "the live erp run is not stalled: {runs:?}"
    );
    let second = ledger
        .start_backfill(shop, "wms", "--consumer wms", "http", chrono::Utc::now())
        .await
        .unwrap()
        .expect("the dead run is taken over at once");
    let old = ledger.backfill_run(shop, id).await.unwrap().unwrap();
    assert_eq!((old.state.as_str(), old.stalled), ("interrupted", false));
    assert!(old.error.unwrap().contains("the next run took over"));
    let new = ledger.backfill_run(shop, second.id).await.unwrap().unwrap();
    assert_eq!((new.state.as_str(), new.stalled), ("running", false));
    second.release().await;
    erp.release().await;
    parts.close().await;
    env.cleanup().await;
}
