//! The Magento admin pages (integrations/bridge/src/Admin, shown by both the
//! Magento 2 and the Magento 1 module): their PHPUnit tests drive the grid,
//! the order tab and the actions against this running order-sync's API, with
//! only Magento's admin replaced; here the ledger shows what they did.

use std::time::Duration;

use order_sync::ledger::{RowKey, State, ALL_CONSUMERS};

use crate::control::{wait_http, TOKEN};
use crate::magento_bridge::run_phpunit;
use crate::support::{free_port, TestEnv};

#[tokio::test]
async fn a_shop_operator_sees_each_orders_sync_in_the_magento_admin_and_re_sends_un_parks_and_skips_it_there(
) {
    let listen = format!("127.0.0.1:{}", free_port());
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__HTTP__ENABLED", "true"),
            ("ORDER_SYNC__HTTP__LISTEN", &listen),
            ("ORDER_SYNC__HTTP__API_TOKEN", TOKEN),
        ],
    )
    .await;
    let base = format!("http://{listen}");
    let ledger = env.parts().deps.ledger;
    ledger.migrate().await.unwrap();
    // Nothing is published: every row stays as the scene sets it.
    ledger
        .pause(ALL_CONSUMERS, "test", None, chrono::Utc::now())
        .await
        .unwrap();
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let ids = env.place_orders(3).await;
    env.wait_for_ledger(Duration::from_secs(20), "the orders recorded", |rows| {
        rows.len() == 6
    })
    .await;
    let parked = [ids[0], ids[1]];
    ledger
        .park(
            &parked.map(|id| RowKey::placed(id, "wms")),
            "given up in the test",
            chrono::Utc::now(),
        )
        .await
        .unwrap();

    run_phpunit(
        "AdminTest",
        &[
            ("ORDER_SYNC_URL", &base),
            ("ORDER_SYNC_TOKEN", TOKEN),
            ("ORDERS", &serde_json::to_string(&ids).unwrap()),
            ("PARKED", &serde_json::to_string(&parked).unwrap()),
        ],
        5,
    )
    .await;

    // What the admin did, in the ledger.
    let rows = ledger.deliveries().await.unwrap();
    let row = |id: u32, consumer: &str| {
        rows.iter()
            .find(|r| r.entity_id == id && r.consumer == consumer)
            .unwrap()
    };
    assert_eq!(row(ids[0], "wms").state, State::Pending, "un-parked");
    let skipped = row(ids[1], "wms");
    assert_eq!(skipped.state, State::Skipped);
    assert!(
        skipped
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("skipped by http (magento admin jane) at "),
        "{skipped:?}"
    );
    assert_eq!(
        (row(ids[2], "erp").resyncs, row(ids[2], "wms").resyncs),
        (1, 1),
        "re-sent"
    );
    assert_eq!(
        row(ids[0], "erp").resyncs,
        0,
        "the wrong token changed nothing"
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
