//! What a sync service answers about an order — its own id for it, and where
//! it shows it — kept by order-sync and shown wherever the order is.

use std::time::Duration;

use order_sync::ledger::State;
use serde_json::{json, Value};

use crate::support::{free_port, http, http_json, TestEnv};

#[tokio::test]
async fn the_id_a_sync_service_answers_is_kept_and_shown_by_show_the_api_the_page_and_the_history_comment(
) {
    let listen = format!("127.0.0.1:{}", free_port());
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
            ("ORDER_SYNC__HTTP__PROTECT_READS", "false"),
        ],
    )
    .await;
    let id = env.place_order().await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_ledger(Duration::from_secs(20), "both rows published", |r| {
        r.len() == 2 && r.iter().all(|d| d.state == State::Published)
    })
    .await;
    // The ERP says what the order became there; a failed ack may already
    // know it, and a later ack without it keeps it.
    env.ack_json(
        json!({"consumer": "erp", "entity_id": id, "status": "failed",
        "error": "half-way", "remote_id": "SO-4711"}),
    )
    .await;
    env.wait_for_ledger(Duration::from_secs(20), "erp failed", |r| {
        r.iter()
            .any(|d| d.consumer == "erp" && d.state == State::Failed)
    })
    .await;
    env.ack_json(
        json!({"consumer": "erp", "entity_id": id, "status": "synced",
        "remote_url": "https://erp.example/so/4711"}),
    )
    .await;
    env.ack_json(json!({"consumer": "wms", "entity_id": id, "status": "synced"}))
        .await;
    let rows = env
        .wait_for_ledger(Duration::from_secs(20), "both synced", |r| {
            r.iter().all(|d| d.state == State::Synced)
        })
        .await;
    let erp = rows.iter().find(|d| d.consumer == "erp").unwrap();
    assert_eq!(erp.remote_id.as_deref(), Some("SO-4711"));
    assert_eq!(
        erp.remote_url.as_deref(),
        Some("https://erp.example/so/4711")
    );
    let wms = rows.iter().find(|d| d.consumer == "wms").unwrap();
    assert_eq!(
        (wms.remote_id.as_deref(), wms.remote_url.as_deref()),
        (None, None)
    );

    // The API.
    let base = format!("http://{listen}");
    let (status, order) = http_json("GET", &format!("{base}/api/orders/{id}"), None, None).await;
    assert_eq!(status, 200, "{order}");
    let erp_json = order["order"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["consumer"] == "erp")
        .unwrap();
    assert_eq!(erp_json["remote_id"], "SO-4711");
    assert_eq!(erp_json["remote_url"], "https://erp.example/so/4711");
    assert_eq!(
        order["order"]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["consumer"] == "wms")
            .unwrap()["remote_id"],
        Value::Null
    );
    // The status page's order view links the id to the ERP's page.
    let (status, page) = http("GET", &format!("{base}/orders/{id}"), None, None).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"href="https://erp.example/so/4711""#) && page.contains(">SO-4711</a>"),
        "{page}"
    );
    // The terminal.
    let out = env
        .order_sync(&["show", "--entity-id", &id.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("in erp: SO-4711  https://erp.example/so/4711"),
        "{text}"
    );
    shutdown.cancel();
    pipeline.await.unwrap();

    // The history comment in Magento names it.
    let write_back = env.parts().write_back().unwrap();
    let w = write_back.step(chrono::Utc::now()).await.unwrap();
    assert_eq!(w.synced, 1);
    let mut m = env.magento_conn().await;
    let comments: Vec<String> = mysql_async::prelude::Queryable::exec(
        &mut m,
        "SELECT comment FROM sales_order_status_history WHERE parent_id = ?",
        (id,),
    )
    .await
    .unwrap();
    assert_eq!(comments, ["Order synced: erp (SO-4711), wms"]);
    drop(m);
    env.cleanup().await;
}

#[tokio::test]
async fn an_answer_order_sync_cannot_keep_is_refused_whole_naming_the_field_and_changes_nothing() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let id = env.place_order().await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_ledger(Duration::from_secs(20), "published", |r| {
        r.len() == 1 && r[0].state == State::Published
    })
    .await;
    let too_long = "S".repeat(256);
    for (ack, says) in [
        (
            json!({"consumer": "erp", "entity_id": id, "status": "synced", "remote_id": too_long}),
            "ack field `remote_id` is 256 characters long; at most 255 are kept",
        ),
        (
            json!({"consumer": "erp", "entity_id": id, "status": "synced",
                "remote_id": "SO-1", "remote_url": "javascript:alert(1)"}),
            "ack field `remote_url` must be http(s)://",
        ),
    ] {
        env.ack_json(ack).await;
        let reason = crate::acks::next_reason(&env).await;
        assert!(reason.contains(says), "{reason}");
    }
    let rows = env.parts().deps.ledger.deliveries().await.unwrap();
    assert_eq!(
        (rows[0].state, rows[0].remote_id.as_deref()),
        (State::Published, None),
        "nothing of a refused ack is applied"
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
