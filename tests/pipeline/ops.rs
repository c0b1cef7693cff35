//! What operators and their monitoring see over HTTP.

use std::time::Duration;

use mysql_async::prelude::*;
use order_sync::ledger::State;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::TestEnv;

/// A plain HTTP/1.0 GET: (status code, body).
async fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    (code, body.to_owned())
}

/// One Prometheus scrape of `/metrics`, parsed.
async fn scrape_metrics(port: u16) -> prometheus_parse::Scrape {
    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The value of one sample, found by name and labels, from a parsed scrape.
fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let s = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match s.value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => panic!("{name} is not a plain number"),
    }
}

#[tokio::test]
async fn health_readiness_and_metrics_tell_the_state_of_the_pipeline() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
        ],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let ids = env.place_orders(5).await;
    env.wait_for_ledger(Duration::from_secs(20), "all rows published", |rows| {
        rows.len() == 10 && rows.iter().all(|r| r.state == State::Published)
    })
    .await;
    // The backlog, as a scrape shows it while nobody acks: risen to every order.
    let stuck = scrape_metrics(port).await;
    for consumer in ["erp", "wms"] {
        assert_eq!(
            sample(
                &stuck,
                "order_sync_ledger_rows",
                &[("consumer", consumer), ("state", "published")]
            ),
            5.0
        );
    }
    for id in &ids {
        env.ack_json(json!({"consumer": "erp", "entity_id": id, "status": "synced"}))
            .await;
    }
    env.ack_json(
        json!({"consumer": "wms", "entity_id": ids[0], "status": "failed", "error": "WMS down"}),
    )
    .await;
    env.wait_for_ledger(Duration::from_secs(20), "acks applied", |rows| {
        rows.iter().filter(|r| r.state == State::Synced).count() == 5
            && rows.iter().any(|r| r.state == State::Failed)
    })
    .await;

    assert_eq!(get(port, "/healthz").await.0, 200);
    let (code, body) = get(port, "/readyz").await;
    assert_eq!(code, 200, "{body}");

    let (code, body) = get(port, "/metrics").await;
    assert_eq!(code, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert_eq!(
        sample(&scrape, "order_sync_captured_orders_total", &[]),
        5.0
    );
    assert_eq!(
        sample(
            &scrape,
            "order_sync_published_messages_total",
            &[("consumer", "erp")]
        ),
        5.0
    );
    assert_eq!(
        sample(
            &scrape,
            "order_sync_acks_total",
            &[("consumer", "erp"), ("status", "synced")]
        ),
        5.0
    );
    assert_eq!(
        sample(
            &scrape,
            "order_sync_acks_total",
            &[("consumer", "wms"), ("status", "failed")]
        ),
        1.0
    );
    assert_eq!(
        sample(
            &scrape,
            "order_sync_ledger_rows",
            &[("consumer", "erp"), ("state", "synced")]
        ),
        5.0
    );
    assert_eq!(
        sample(
            &scrape,
            "order_sync_ledger_rows",
            &[("consumer", "wms"), ("state", "published")]
        ),
        4.0
    );
    assert_eq!(
        sample(
            &scrape,
            "order_sync_ledger_rows",
            &[("consumer", "wms"), ("state", "failed")]
        ),
        1.0
    );
    assert_eq!(sample(&scrape, "order_sync_capture_leader", &[]), 1.0);
    assert_eq!(sample(&scrape, "order_sync_capture_lag_orders", &[]), 0.0);
    assert!(sample(&scrape, "order_sync_oldest_unsynced_seconds", &[]) > 0.0);
    assert_eq!(
        sample(&scrape, "order_sync_up", &[("service", "broker")]),
        1.0
    );
    assert_eq!(
        sample(&scrape, "order_sync_up", &[("service", "ledger")]),
        1.0
    );
    assert_eq!(
        sample(&scrape, "order_sync_paused", &[("consumer", "wms")]),
        0.0
    );
    let placed_to_synced = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "order_sync_placed_to_synced_seconds"
                && s.labels.get("consumer") == Some("erp")
        })
        .expect("placed to synced histogram for erp");
    match &placed_to_synced.value {
        prometheus_parse::Value::Histogram(buckets) => {
            assert_eq!(buckets.last().unwrap().count, 5.0, "five orders synced")
        }
        other => panic!("not a histogram: {other:?}"),
    }
    let relay_rounds = scrape
        .samples
        .iter()
        .any(|s| s.metric == "order_sync_relay_round_seconds");
    assert!(relay_rounds, "relay round duration is exported");
    // Five orders went through every stage: each has taken some batches.
    for stage in order_sync::metrics::Stage::ALL {
        let batches = scrape.samples.iter().find_map(|s| {
            let this = s.metric == "order_sync_stage_seconds"
                && s.labels.get("stage") == Some(stage.as_str());
            match (&s.value, this) {
                (prometheus_parse::Value::Histogram(b), true) => b.last().map(|b| b.count),
                _ => None,
            }
        });
        assert!(
            batches.is_some_and(|n| n >= 1.0),
            "stage {} timed: {batches:?}",
            stage.as_str()
        );
    }

    // wms catches up: the backlog falls to nothing.
    for id in &ids {
        env.ack_json(json!({"consumer": "wms", "entity_id": id, "status": "synced"}))
            .await;
    }
    env.wait_for_ledger(Duration::from_secs(20), "wms caught up", |rows| {
        rows.iter().all(|r| r.state == State::Synced)
    })
    .await;
    let caught_up = scrape_metrics(port).await;
    for state in ["published", "failed"] {
        assert_eq!(
            sample(
                &caught_up,
                "order_sync_ledger_rows",
                &[("consumer", "wms"), ("state", state)]
            ),
            0.0,
            "{state}"
        );
    }
    assert_eq!(
        sample(&caught_up, "order_sync_oldest_unsynced_seconds", &[]),
        0.0
    );

    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn readiness_fails_naming_the_broker_when_it_cannot_be_reached() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut settings = env.settings.clone();
    settings.http.enabled = true;
    settings.http.listen = listen.parse().unwrap();
    settings.broker.url = order_sync::config::SecretUrl::new("amqp://guest:guest@127.0.0.1:1/%2f");
    // Start-up waits for the broker, so serve the surface the same way run does.
    let (_parts, shutdown, server) = serve_surface(&settings, &listen).await;
    let (code, body) = get(port, "/readyz").await;
    assert_eq!(code, 503);
    assert!(body.contains("broker"), "{body}");
    assert!(!body.contains("ledger"), "{body}");
    // Whoever reaches the port learns which service, not where or as whom.
    assert!(
        !body.contains("127.0.0.1") && !body.contains("guest"),
        "{body}"
    );
    // A failing ledger answers the API generically too (details in the log).
    let mut settings = settings.clone();
    settings.ledger.url =
        order_sync::config::SecretUrl::new("mysql://nobody:secret@127.0.0.1:1/ledger");
    settings.http.protect_reads = false;
    let parts = order_sync::app::Parts::new(&settings, "test").unwrap();
    let surface = parts.surface(Default::default(), std::sync::Arc::new(true.into()));
    let api_port = free_port();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", api_port))
        .await
        .unwrap();
    let api = tokio::spawn(order_sync::http::serve(listener, surface, shutdown.clone()));
    let (code, body) = get(api_port, "/api/summary").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the ledger is unavailable"), "{body}");
    assert!(
        !body.contains("127.0.0.1") && !body.contains("nobody"),
        "{body}"
    );
    shutdown.cancel();
    api.await.unwrap();
    server.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn readiness_fails_naming_the_ledger_when_one_of_its_tables_is_gone() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut settings = env.settings.clone();
    settings.http.enabled = true;
    settings.http.listen = listen.parse().unwrap();
    let (parts, shutdown, server) = serve_surface(&settings, &listen).await;
    let (code, body) = get(port, "/readyz").await;
    assert_eq!(code, 200, "{body}");
    let ledger = parts.deps.ledger.clone();
    ledger
        .pool()
        .get_conn()
        .await
        .unwrap()
        .query_drop("DROP TABLE order_sync_pauses")
        .await
        .unwrap();
    let (code, body) = get(port, "/readyz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("ledger"), "{body}");
    shutdown.cancel();
    let _ = server.await;
    parts.close().await;
    env.cleanup().await;
}

/// The HTTP surface alone on `listen`, its roles taken as running: the parts,
/// the token that stops it, and its task.
async fn serve_surface(
    settings: &order_sync::config::Settings,
    listen: &str,
) -> (
    order_sync::app::Parts,
    tokio_util::sync::CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let parts = order_sync::app::Parts::new(settings, "test").unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let surface = parts.surface(Default::default(), std::sync::Arc::new(true.into()));
    let listener = tokio::net::TcpListener::bind(listen).await.unwrap();
    let server = tokio::spawn(order_sync::http::serve(listener, surface, shutdown.clone()));
    (parts, shutdown, server)
}
