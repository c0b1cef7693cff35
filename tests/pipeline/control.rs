//! Operating it: the JSON API (with its token), the pull interface, pause and
//! resume, re-send, un-park, retention, the Magento write-back, and the CLI.

use std::time::Duration;

use mysql_async::prelude::*;
use order_sync::ledger::{RowKey, State};
use serde_json::{json, Value};

use crate::support::{
    ack_delivery, body, free_port, http, http_form, http_form_with, http_json, http_raw,
    next_within, TestEnv,
};

pub(crate) const TOKEN: &str = "test-token-0123456789";
/// The pull consumer `legacy`'s own token.
pub(crate) const LEGACY: &str = "legacy-token-0123456789";

/// A world with the HTTP surface on its own port, a pushing `erp` and a
/// pulling `legacy` consumer, and quick re-delivery rounds.
pub(crate) async fn env_with_api(extra: &[(&str, &str)]) -> (TestEnv, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut overrides = vec![
        ("ORDER_SYNC__HTTP__ENABLED", "true"),
        ("ORDER_SYNC__HTTP__LISTEN", listen.as_str()),
        ("ORDER_SYNC__HTTP__API_TOKEN", TOKEN),
        ("ORDER_SYNC__CONSUMERS__PULL", "legacy"),
        ("ORDER_SYNC__CONSUMERS__LEGACY__TOKEN", LEGACY),
        ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
        ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1h"),
        ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "2h"),
    ];
    overrides.extend_from_slice(extra);
    let env = TestEnv::new(&["erp", "legacy"], &overrides).await;
    (env, format!("http://{listen}"))
}

/// Signs in on the status page as a browser on the same site does: the
/// session cookie (`name=value`) and the whole answer.
pub(crate) async fn sign_in(base: &str, token: &str) -> (String, String) {
    let host = base.trim_start_matches("http://");
    let (status, answer) = http_form_with(
        &format!("{base}/ui/login"),
        None,
        &format!("token={token}"),
        &[("origin", base), ("host", host)],
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    let cookie = answer
        .lines()
        .find(|l| l.starts_with("order_sync_session="))
        .expect("a session cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (cookie, answer)
}

/// Presses "Pause all" on the status page, signed in with `cookie`, as the
/// browser on the same site does; the answer's status.
async fn pause_from_the_page(base: &str, cookie: &str) -> u16 {
    let host = base.trim_start_matches("http://");
    let headers = [("cookie", cookie), ("origin", base), ("host", host)];
    http_form_with(&format!("{base}/ui/pause"), None, "", &headers)
        .await
        .0
}

pub(crate) async fn wait_http(base: &str) {
    for _ in 0..200 {
        if tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(base.trim_start_matches("http://")),
        )
        .await
        .is_ok_and(|c| c.is_ok())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the HTTP surface at {base} did not come up");
}

fn entity(msg: &Value) -> u32 {
    msg["order"]["entity_id"].as_u64().unwrap() as u32
}

#[tokio::test]
async fn changes_without_the_right_token_are_refused_and_change_nothing() {
    let (env, base) = env_with_api(&[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let id = env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "the order recorded", |r| {
        r.len() == 2
    })
    .await;

    for token in [None, Some("wrong-token-but-long-enough")] {
        for (path, body) in [
            ("/api/pause", json!({})),
            ("/api/resync", json!({ "entity_ids": [id] })),
            ("/api/unpark", json!({})),
            ("/api/resume", json!({})),
        ] {
            let (status, answer) =
                http_json("POST", &format!("{base}{path}"), token, Some(&body)).await;
            assert_eq!(status, 401, "{path} with {token:?}: {answer}");
            assert!(
                answer["error"].as_str().unwrap().contains("token"),
                "{answer}"
            );
        }
        let (status, _) = http("GET", &format!("{base}/api/pull/legacy"), token, None).await;
        assert_eq!(status, 401);
    }
    // The operators' token is not a consumer's: it neither fetches nor acks
    // for legacy; and legacy's token changes nothing an operator can.
    let (status, _) = http("GET", &format!("{base}/api/pull/legacy"), Some(TOKEN), None).await;
    assert_eq!(status, 401, "the operator token on a pull path");
    let (status, _) = http(
        "POST",
        &format!("{base}/api/pull/legacy/acks"),
        Some(TOKEN),
        Some(&json!({"entity_id": id, "status": "synced"})),
    )
    .await;
    assert_eq!(status, 401, "the operator token acking for legacy");
    let (status, _) = http(
        "POST",
        &format!("{base}/api/pause"),
        Some(LEGACY),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 401, "a consumer token pausing");
    // A push consumer has no pull path, whatever the token (and says no
    // more about it than about a name that does not exist).
    for path in ["/api/pull/erp", "/api/pull/erp/acks"] {
        let method = if path.ends_with("acks") {
            "POST"
        } else {
            "GET"
        };
        let (status, _) = http(
            method,
            &format!("{base}{path}"),
            Some(LEGACY),
            Some(&json!({"entity_id": id, "status": "synced"})),
        )
        .await;
        assert_eq!(status, 401, "{path}");
    }
    let ledger = env.parts().deps.ledger;
    assert!(ledger.pauses().await.unwrap().is_empty(), "nothing paused");
    let rows = ledger.deliveries().await.unwrap();
    assert!(rows.iter().all(|r| r.resyncs == 0), "nothing re-sent");
    assert!(
        rows.iter().all(|r| r.attempts <= 1),
        "nothing pulled: {rows:#?}"
    );
    // Reading needs the token too, by default: orders hold personal data.
    let (status, _) = http("GET", &format!("{base}/api/summary"), None, None).await;
    assert_eq!(status, 401);
    let (status, _) = http("GET", &format!("{base}/api/summary"), Some(LEGACY), None).await;
    assert_eq!(status, 401, "a consumer token does not read the API");
    let (status, _) = http("GET", &format!("{base}/api/summary"), Some(TOKEN), None).await;
    assert_eq!(status, 200);
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn with_no_token_configured_changes_over_http_are_off_and_reads_can_be_protected() {
    let (env, listen) = TestEnv::with_http(&["erp"]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let base = format!("http://{listen}");
    wait_http(&base).await;
    let (status, answer) = http_json(
        "POST",
        &format!("{base}/api/pause"),
        Some(TOKEN),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("http.api_token"));
    assert!(env.parts().deps.ledger.pauses().await.unwrap().is_empty());
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;

    // Reads are protected unless protect_reads is turned off explicitly.
    let (env, base) = env_with_api(&[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    for path in ["/api/summary", "/api/orders", "/"] {
        let (status, _) = http("GET", &format!("{base}{path}"), None, None).await;
        assert_eq!(status, 401, "{path} without a token");
        let (status, _) = http("GET", &format!("{base}{path}"), Some(TOKEN), None).await;
        assert_eq!(status, 200, "{path} with the token");
    }
    let (status, _) = http("GET", &format!("{base}/metrics"), None, None).await;
    assert_eq!(status, 200, "metrics stay open for Prometheus");
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
    let (env, base) = env_with_api(&[("ORDER_SYNC__HTTP__PROTECT_READS", "false")]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let (status, _) = http("GET", &format!("{base}/api/summary"), None, None).await;
    assert_eq!(status, 200, "open reads when asked for");
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn the_status_page_refuses_cross_site_forms_and_its_session_is_no_api_credential_and_ends_at_sign_out(
) {
    let (env, base) = env_with_api(&[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let host = base.trim_start_matches("http://");
    // Signing in gives a session cookie that is not the token.
    let (cookie, answer) = sign_in(&base, TOKEN).await;
    assert!(!cookie.contains(TOKEN), "{cookie}");
    assert!(
        answer.contains("HttpOnly") && answer.contains("SameSite=Strict"),
        "{answer}"
    );
    // The session works on the page ...
    let status = pause_from_the_page(&base, &cookie).await;
    assert_eq!(status, 303, "a same-site form with the session pauses");
    let ledger = env.parts().deps.ledger;
    assert_eq!(ledger.pauses().await.unwrap().len(), 1);
    ledger.resume(None).await.unwrap();
    // ... but not from another site, and not on the API.
    for headers in [
        vec![
            ("cookie", cookie.as_str()),
            ("origin", "https://evil.example"),
            ("host", host),
        ],
        vec![
            ("cookie", cookie.as_str()),
            ("sec-fetch-site", "cross-site"),
            ("host", host),
        ],
    ] {
        let (status, page) = http_form_with(&format!("{base}/ui/pause"), None, "", &headers).await;
        assert_eq!(status, 403, "{page}");
        assert!(page.contains("another site"), "{page}");
    }
    assert!(ledger.pauses().await.unwrap().is_empty(), "nothing paused");
    let (status, _) = http_form_with(
        &format!("{base}/api/summary"),
        None,
        "",
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(status, 405, "POST is not a summary");
    let client_get = |cookie: String| {
        let url = format!("{base}/api/summary");
        async move {
            use http_body_util::BodyExt;
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
            let req = axum::http::Request::get(url)
                .header("cookie", cookie)
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = client.request(req).await.unwrap();
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
    };
    assert_eq!(
        client_get(cookie.clone()).await,
        401,
        "the API takes no cookie"
    );
    // Signing out ends the session on the server: the value, kept or
    // copied, no longer works, while another sign-in's session still does.
    let (other, _) = sign_in(&base, TOKEN).await;
    let headers = [
        ("cookie", cookie.as_str()),
        ("origin", base.as_str()),
        ("host", host),
    ];
    let (status, _) = http_form_with(&format!("{base}/ui/logout"), None, "", &headers).await;
    assert_eq!(status, 303);
    assert_eq!(pause_from_the_page(&base, &cookie).await, 401, "signed out");
    assert!(ledger.pauses().await.unwrap().is_empty(), "nothing paused");
    assert_eq!(
        pause_from_the_page(&base, &other).await,
        303,
        "the other session"
    );
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_bad_date_is_refused_alike_by_the_status_page_the_api_and_the_cli() {
    let (env, base) = env_with_api(&[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "the order recorded", |r| {
        r.len() == 2
    })
    .await;
    // The page used to take an unreadable `until` as "now" and re-send.
    let (status, page) = http_form(
        &format!("{base}/ui/resync"),
        Some(TOKEN),
        "since=2020-01-01&until=soon",
    )
    .await;
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("until: `soon` is not a date"), "{page}");
    let (status, v) = http_json(
        "POST",
        &format!("{base}/api/resync"),
        Some(TOKEN),
        Some(&json!({"since": "2020-01-01", "until": "soon"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("until: `soon` is not a date"),
        "{v}"
    );
    let out = env
        .order_sync(&["resync", "--since", "2020-01-01", "--until", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("until: `soon` is not a date"));
    // A ticked box that is not an entity id is refused too, not dropped.
    let (status, page) = http_form(&format!("{base}/ui/resync"), Some(TOKEN), "entity_id=1x").await;
    assert_eq!(status, 400, "{page}");
    env.wait_for_ledger(Duration::from_secs(5), "no row re-sent", |rows| {
        rows.len() == 2 && rows.iter().all(|r| r.resyncs == 0)
    })
    .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn the_api_lists_shows_resends_pauses_and_unparks_orders() {
    // Reads opened explicitly: this test is about what the API says.
    let (env, base) = env_with_api(&[("ORDER_SYNC__HTTP__PROTECT_READS", "false")]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let ids = env.place_orders(3).await;
    let queue = env.topology().consumer_queue("erp");
    let mut erp = env.consume(&queue).await;
    // erp syncs the first order, fails the second, never answers the third.
    for _ in 0..3 {
        let d = next_within(&mut erp, Duration::from_secs(20))
            .await
            .expect("erp gets each order");
        let msg = body(&d);
        let id = entity(&msg);
        ack_delivery(&d).await;
        if id == ids[0] {
            env.ack_json(json!({"consumer": "erp", "entity_id": id, "status": "synced"}))
                .await;
        } else if id == ids[1] {
            env.ack_json(json!({"consumer": "erp", "entity_id": id, "status": "failed", "error": "ERP says no: SKU unknown"})).await;
        }
    }
    env.wait_for_ledger(Duration::from_secs(20), "erp's acks applied", |rows| {
        rows.iter()
            .any(|r| r.entity_id == ids[1] && r.state == State::Failed)
            && rows
                .iter()
                .any(|r| r.entity_id == ids[0] && r.consumer == "erp" && r.state == State::Synced)
    })
    .await;

    // Filters and pages.
    let (status, page) = http_json(
        "GET",
        &format!("{base}/api/orders?state=failed&consumer=erp"),
        None,
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let listed: Vec<u64> = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["entity_id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, [ids[1] as u64]);
    let (_, first) = http_json("GET", &format!("{base}/api/orders?limit=2"), None, None).await;
    assert_eq!(first["orders"].as_array().unwrap().len(), 2);
    let next = first["next"].as_u64().expect("a next page");
    let (_, second) = http_json(
        "GET",
        &format!("{base}/api/orders?limit=2&before={next}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        second["orders"][0]["entity_id"].as_u64(),
        Some(ids[0] as u64)
    );
    assert!(second["next"].is_null());
    let inc = format!("{:09}", ids[2]);
    let (_, by_inc) = http_json(
        "GET",
        &format!("{base}/api/orders?increment_id={inc}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        by_inc["orders"][0]["entity_id"].as_u64(),
        Some(ids[2] as u64)
    );
    for bad in [
        "state=lost",
        "store_id=x",
        "placed_from=yesterday",
        "colour=red",
    ] {
        let (status, answer) =
            http_json("GET", &format!("{base}/api/orders?{bad}"), None, None).await;
        assert_eq!(status, 400, "{bad}: {answer}");
        let field = bad.split('=').next().unwrap();
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{bad}: {answer}"
        );
    }

    // One order in detail: each consumer's state, the error, the message as sent.
    let (status, detail) =
        http_json("GET", &format!("{base}/api/orders/{}", ids[1]), None, None).await;
    assert_eq!(status, 200);
    let erp_row = detail["order"]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["consumer"] == "erp")
        .unwrap();
    assert_eq!(erp_row["state"], "failed");
    assert_eq!(erp_row["last_error"], "ERP says no: SKU unknown");
    assert_eq!(
        detail["messages"]["erp"]["event"],
        "sales_order_place_after_que"
    );
    assert_eq!(
        detail["messages"]["erp"]["order"]["entity_id"].as_u64(),
        Some(ids[1] as u64)
    );
    let (status, _) = http_json("GET", &format!("{base}/api/orders/99999"), None, None).await;
    assert_eq!(status, 404);

    // Re-send the synced order to erp: a new message_id, delivered again.
    let (status, report) = http_json(
        "POST",
        &format!("{base}/api/resync"),
        Some(TOKEN),
        Some(&json!({"entity_ids": [ids[0]], "consumer": "erp"})),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report, json!({"orders": 1, "rows": 1}));
    let d = next_within(&mut erp, Duration::from_secs(20))
        .await
        .expect("the re-send arrives");
    let msg = body(&d);
    assert_eq!(entity(&msg), ids[0]);
    assert_eq!(msg["message_id"], format!("{}:{}:erp:r1", env.id, ids[0]));
    assert_eq!(msg["attempt"], 1);
    ack_delivery(&d).await;
    env.ack_json(json!({"consumer": "erp", "message_id": msg["message_id"], "status": "synced"}))
        .await;
    for (bad, field) in [
        (json!({}), "exactly one"),
        (json!({"since": "last week"}), "since"),
        (json!({"entity_ids": [1], "consumer": "crm"}), "crm"),
        (json!({"entity_ids": [1], "colour": "red"}), "colour"),
    ] {
        let (status, answer) = http_json(
            "POST",
            &format!("{base}/api/resync"),
            Some(TOKEN),
            Some(&bad),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{bad}: {answer}"
        );
    }

    // Pause: capture still records, nothing is published; resume sends it.
    let (status, _) = http_json(
        "POST",
        &format!("{base}/api/pause"),
        Some(TOKEN),
        Some(&json!({"reason": "ERP maintenance"})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, summary) = http_json("GET", &format!("{base}/api/summary"), None, None).await;
    assert_eq!(summary["pauses"][0]["consumer"], "*");
    assert_eq!(summary["pauses"][0]["reason"], "ERP maintenance");
    let held = env.place_order().await;
    env.wait_for_ledger(
        Duration::from_secs(20),
        "the order placed while paused is recorded",
        |rows| rows.iter().filter(|r| r.entity_id == held).count() == 2,
    )
    .await;
    assert!(
        next_within(&mut erp, Duration::from_millis(1500))
            .await
            .is_none(),
        "nothing is published while paused"
    );
    let (_, pulled) = http_json(
        "GET",
        &format!("{base}/api/pull/legacy"),
        Some(LEGACY),
        None,
    )
    .await;
    assert_eq!(pulled["paused"], true);
    let (status, answer) =
        http_json("POST", &format!("{base}/api/resume"), Some(TOKEN), None).await;
    assert_eq!((status, answer), (200, json!({"resumed": true})));
    let d = next_within(&mut erp, Duration::from_secs(20))
        .await
        .expect("held order goes out after resume");
    assert_eq!(entity(&body(&d)), held);
    ack_delivery(&d).await;

    // Un-park: the row gets its deliveries back.
    let ledger = env.parts().deps.ledger;
    ledger
        .park(
            &[RowKey::placed(ids[2], "erp")],
            "test: parked by hand",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let (status, answer) = http_json(
        "POST",
        &format!("{base}/api/unpark"),
        Some(TOKEN),
        Some(&json!({"consumer": "erp"})),
    )
    .await;
    assert_eq!((status, answer), (200, json!({"rows": 1})));
    let row = ledger.delivery(ids[2], "erp").await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (State::Pending, 0));
    let d = next_within(&mut erp, Duration::from_secs(20))
        .await
        .expect("un-parked order is re-sent");
    assert_eq!(entity(&body(&d)), ids[2]);
    ack_delivery(&d).await;

    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_sync_service_without_amqp_pulls_orders_and_acks_them_over_http() {
    let (env, base) = env_with_api(&[]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let ids = env.place_orders(4).await;
    env.wait_for_ledger(Duration::from_secs(20), "orders recorded", |r| r.len() == 8)
        .await;
    assert!(
        !env.topology().describe().contains("que.legacy"),
        "a pull consumer has no queue filling up"
    );

    let url = format!("{base}/api/pull/legacy?limit=3");
    let (status, first) = http_json("GET", &url, Some(LEGACY), None).await;
    assert_eq!(status, 200, "{first}");
    let first = first["messages"].as_array().unwrap().clone();
    assert_eq!(first.len(), 3);
    assert!(first
        .iter()
        .all(|m| m["event"] == "sales_order_place_after_que"
            && m["attempt"] == 1
            && m["consumer"] == "legacy"));
    // Handed out means delivered: the rest comes next, not the same again.
    let (_, second) = http_json("GET", &url, Some(LEGACY), None).await;
    let second = second["messages"].as_array().unwrap().clone();
    assert_eq!(second.len(), 1);

    // Acks in the AMQP format, `consumer` optional; one bad one changes nothing.
    let mut acks: Vec<Value> = first
        .iter()
        .chain(&second)
        .map(|m| json!({"message_id": m["message_id"], "entity_id": m["order"]["entity_id"], "status": "synced"}))
        .collect();
    acks.push(json!({"entity_id": 424242, "status": "synced"}));
    acks.push(json!({"entity_id": ids[0], "consumer": "erp", "status": "synced"}));
    let (status, answer) = http_json(
        "POST",
        &format!("{base}/api/pull/legacy/acks"),
        Some(LEGACY),
        Some(&Value::Array(acks)),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(
        results.iter().filter(|r| r["applied"] == true).count(),
        4,
        "{answer}"
    );
    assert!(
        results[4]["reason"]
            .as_str()
            .unwrap()
            .contains("does not hold"),
        "{answer}"
    );
    assert!(
        results[5]["reason"].as_str().unwrap().contains("erp"),
        "{answer}"
    );
    let rows = env.parts().deps.ledger.deliveries().await.unwrap();
    assert!(
        rows.iter()
            .filter(|r| r.consumer == "legacy")
            .all(|r| r.state == State::Synced),
        "{rows:#?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.consumer == "erp")
            .all(|r| r.state != State::Synced),
        "an ack names its own consumer only"
    );

    // Without that path's own token, every name gets the same answer: a push
    // consumer, a pull one and a name that does not exist cannot be told apart.
    let mut answers = Vec::new();
    for path in ["erp", "legacy", "nosuchconsumer"] {
        for token in [None, Some("not-a-token-of-anyone")] {
            answers.push(http("GET", &format!("{base}/api/pull/{path}"), token, None).await);
        }
    }
    answers.push(http("GET", &format!("{base}/api/pull/erp"), Some(LEGACY), None).await);
    assert!(
        answers.iter().all(|a| a == &answers[0]) && answers[0].0 == 401,
        "{answers:#?}"
    );
    let (status, _) = http_json(
        "POST",
        &format!("{base}/api/pull/legacy/acks"),
        Some(LEGACY),
        None,
    )
    .await;
    assert_eq!(status, 400, "an empty body is not an ack");
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn retention_deletes_only_orders_synced_for_every_consumer_long_enough_ago() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[("ORDER_SYNC__RETENTION__SYNCED_OLDER_THAN", "7d")],
    )
    .await;
    let parts = env.parts();
    let ids = env.place_orders(3).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_ledger(Duration::from_secs(20), "orders recorded", |r| r.len() == 6)
        .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    let mut conn = parts.deps.ledger.pool().get_conn().await.unwrap();
    // Order 0: synced for both, 8 days ago. Order 1: synced for erp only.
    // Order 2: synced for both, but only yesterday.
    conn.exec_drop(
        "UPDATE order_sync_deliveries SET state = 'synced', synced_at = UTC_TIMESTAMP() - INTERVAL 8 DAY WHERE entity_id = ? OR (entity_id = ? AND consumer = 'erp')",
        (ids[0], ids[1]),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "UPDATE order_sync_deliveries SET state = 'synced', synced_at = UTC_TIMESTAMP() - INTERVAL 1 DAY WHERE entity_id = ?",
        (ids[2],),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "UPDATE order_sync_orders SET captured_at = UTC_TIMESTAMP() - INTERVAL 9 DAY",
        (),
    )
    .await
    .unwrap();
    drop(conn);
    let retention = parts.retention();
    assert_eq!(retention.step(chrono::Utc::now()).await.unwrap(), 1);
    let left: Vec<u32> = parts
        .deps
        .ledger
        .deliveries()
        .await
        .unwrap()
        .iter()
        .map(|d| d.entity_id)
        .collect();
    assert!(!left.contains(&ids[0]));
    assert_eq!(
        left.iter().filter(|i| **i == ids[1]).count(),
        2,
        "half-synced order kept whole"
    );
    assert_eq!(
        left.iter().filter(|i| **i == ids[2]).count(),
        2,
        "recently synced order kept"
    );
    assert!(parts.deps.ledger.order(ids[0]).await.unwrap().is_none());
    assert_eq!(
        retention.step(chrono::Utc::now()).await.unwrap(),
        0,
        "nothing twice"
    );
    env.cleanup().await;
}

#[tokio::test]
async fn write_back_comments_once_in_the_magento_order_history_and_retries_a_failed_write() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[("ORDER_SYNC__WRITE_BACK__ENABLED", "true")],
    )
    .await;
    let parts = env.parts();
    let id = env.place_order().await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_ledger(Duration::from_secs(20), "order recorded", |r| r.len() == 2)
        .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    let write_back = parts.write_back().unwrap();
    let ledger = &parts.deps.ledger;
    let history = || async {
        let mut m = env.magento_conn().await;
        m.exec::<(String, String), _, _>(
            "SELECT comment, status FROM sales_order_status_history WHERE parent_id = ? ORDER BY entity_id",
            (id,),
        )
        .await
        .unwrap()
    };
    let now = chrono::Utc::now();
    assert_eq!(
        write_back.step(now).await.unwrap(),
        Default::default(),
        "nothing synced yet"
    );

    let policy = order_sync::retry::RetryPolicy::from_settings(&env.settings.relay);
    for c in ["erp", "wms"] {
        let ack: order_sync::message::Ack =
            serde_json::from_value(json!({"consumer": c, "entity_id": id, "status": "synced"}))
                .unwrap();
        ledger.apply_ack(&ack, now, &policy).await.unwrap().unwrap();
    }
    // The table is gone for a moment: the write fails, is logged, and comes again.
    let mut m = env.magento_conn().await;
    m.query_drop("RENAME TABLE sales_order_status_history TO status_history_away")
        .await
        .unwrap();
    let w = write_back.step(now).await.unwrap();
    assert_eq!((w.synced, w.failed), (0, 1));
    m.query_drop("RENAME TABLE status_history_away TO sales_order_status_history")
        .await
        .unwrap();
    let w = write_back.step(now).await.unwrap();
    assert_eq!((w.synced, w.failed), (1, 0));
    assert_eq!(
        history().await,
        [("Order synced: erp, wms".to_owned(), "pending".to_owned())]
    );
    assert_eq!(
        write_back.step(now).await.unwrap(),
        Default::default(),
        "once only"
    );

    ledger
        .resync(&[id], Some("wms"), None, &env.id, now)
        .await
        .unwrap();
    ledger
        .park(
            &[RowKey::placed(id, "wms")],
            "no synced ack after 10 deliveries",
            now,
        )
        .await
        .unwrap();
    let w = write_back.step(now).await.unwrap();
    assert_eq!(w.parked, 1);
    assert_eq!(
        history().await.last().unwrap().0,
        "Order sync parked for wms: no synced ack after 10 deliveries"
    );
    env.cleanup().await;
}

/// Runs the binary with this test's settings: (exit code, stdout, stderr).
fn cli(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let out = env.order_sync(args).output().expect("run order-sync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_cli_shows_resends_pauses_unparks_and_purges_with_exit_codes_scripts_can_use() {
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let ids = env.place_orders(3).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.wait_for_ledger(Duration::from_secs(20), "orders recorded", |r| r.len() == 6)
        .await;
    shutdown.cancel();
    pipeline.await.unwrap();
    let ledger = env.parts().deps.ledger;
    let inc = format!("{:09}", ids[1]);

    let (code, out, err) = cli(&env, &["show", &inc]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("order {inc} (entity_id {},", ids[1])),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("erp") && l.contains("published")),
        "{out}"
    );
    let (code, out, _) = cli(
        &env,
        &["show", "--json", "--entity-id", &ids[1].to_string()],
    );
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown[0]["deliveries"].as_array().unwrap().len(), 2);
    let (code, _, err) = cli(&env, &["show", "no-such-order"]);
    assert_eq!(code, 3, "not found: {err}");

    let (code, out, err) = cli(
        &env,
        &["pause", "--consumer", "wms", "--reason", "WMS upgrade"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("paused"), "{out}");
    let (_, status, _) = cli(&env, &["status"]);
    assert!(
        status.contains("PAUSED for wms") && status.contains("WMS upgrade"),
        "{status}"
    );
    assert_eq!(
        ledger
            .paused(&["erp".into(), "wms".into()])
            .await
            .unwrap()
            .len(),
        1
    );
    let (code, out, _) = cli(&env, &["resume", "--consumer", "wms"]);
    assert_eq!(code, 0);
    assert!(out.contains("resumed"), "{out}");
    let (code, _, err) = cli(&env, &["pause", "--consumer", "crm"]);
    assert_eq!(code, 2, "an unknown consumer is a usage error");
    assert!(err.contains("crm") && err.contains("erp, wms"), "{err}");

    let (code, out, err) = cli(&env, &["resync", &inc, "--consumer", "erp"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("re-sending 1 order(s): 1 ledger row(s)"),
        "{out}"
    );
    let row = ledger.delivery(ids[1], "erp").await.unwrap().unwrap();
    assert_eq!((row.state, row.resyncs), (State::Pending, 1));
    let (code, out, err) = cli(&env, &["resync", "--since", "2000-01-01"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("re-sending 3 order(s): 6 ledger row(s)"),
        "{out}"
    );
    let (code, _, _) = cli(
        &env,
        &["resync", "--since", "2000-01-01", "--until", "2000-01-02"],
    );
    assert_eq!(code, 3, "an empty range matched nothing");
    let (code, _, err) = cli(&env, &["resync", "--since", "sometime"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--since"), "{err}");

    ledger
        .park(
            &[RowKey::placed(ids[0], "erp"), RowKey::placed(ids[2], "wms")],
            "test",
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    let (code, out, _) = cli(&env, &["unpark", &ids[0].to_string()]);
    assert_eq!(code, 0);
    assert!(out.starts_with("1 parked row"), "{out}");
    let (_, out, _) = cli(&env, &["unpark"]);
    assert!(out.starts_with("1 parked row"), "{out}");

    let mut conn = ledger.pool().get_conn().await.unwrap();
    conn.exec_drop(
        "UPDATE order_sync_deliveries SET state = 'synced', synced_at = UTC_TIMESTAMP() - INTERVAL 10 DAY WHERE entity_id = ?",
        (ids[0],),
    )
    .await
    .unwrap();
    conn.exec_drop(
        "UPDATE order_sync_orders SET captured_at = UTC_TIMESTAMP() - INTERVAL 10 DAY",
        (),
    )
    .await
    .unwrap();
    drop(conn);
    let (code, out, err) = cli(&env, &["purge", "--synced-older-than", "7d"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("deleted 1 order(s)"), "{out}");
    assert!(ledger.order(ids[0]).await.unwrap().is_none());
    assert!(ledger.order(ids[1]).await.unwrap().is_some());
    env.cleanup().await;
}

#[tokio::test]
async fn the_local_demo_prints_its_token_and_the_status_page_buttons_work_with_it() {
    use std::io::BufRead;
    let env = TestEnv::new(&["erp", "wms"], &[]).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    // deploy/run-local.sh as a newcomer runs it, with this test's names (and
    // this build's binary, not a release build).
    let mut cmd =
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/run-local.sh"));
    cmd.env_remove("ORDER_SYNC__HTTP__API_TOKEN")
        .env("ORDER_SYNC_BIN", env!("CARGO_BIN_EXE_order-sync"))
        .env("RATE", "5")
        .env("ORDER_SYNC__HTTP__LISTEN", &listen)
        .env(
            "ORDER_SYNC__MAGENTO__URL",
            format!("{}/{}_demo", crate::support::mysql_server(), env.id),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    for (k, v) in &env.env {
        if k != "ORDER_SYNC__MAGENTO__URL" && !k.starts_with("ORDER_SYNC__HTTP") {
            cmd.env(k, v);
        }
    }
    let mut child = crate::support::Proc::spawn(&mut cmd);
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let token = lines
        .find_map(|l| {
            l.ok()?
                .split_once("API token: ")
                .map(|(_, t)| t.trim().to_owned())
        })
        .expect("run-local.sh prints the token");
    assert!(token.len() >= 32, "a fresh random token: {token}");
    wait_http(&base).await;
    // The page asks for it; with it, the buttons work.
    let (status, _) = http("GET", &format!("{base}/"), None, None).await;
    assert_eq!(status, 401);
    let (cookie, _) = sign_in(&base, &token).await;
    let status = pause_from_the_page(&base, &cookie).await;
    assert_eq!(status, 303);
    env.wait_for_ledger(Duration::from_secs(30), "demo orders recorded", |r| {
        !r.is_empty()
    })
    .await;
    let paused = env.parts().deps.ledger.pauses().await.unwrap();
    assert_eq!(paused.len(), 1, "the page's button paused publishing");
    drop(child);
    env.cleanup().await;
}

#[tokio::test]
async fn the_status_page_cannot_be_framed_nor_show_a_notice_it_did_not_make() {
    let (env, base) = env_with_api(&[("ORDER_SYNC__HTTP__PROTECT_READS", "false")]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    wait_http(&base).await;
    let (cookie, _) = sign_in(&base, TOKEN).await;
    for path in ["/", "/api/summary", "/readyz"] {
        let (_, headers, _) = http_raw("GET", &format!("{base}{path}"), None, &[]).await;
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(
            headers["content-security-policy"], "frame-ancestors 'none'",
            "{path}"
        );
    }
    // A bad id in an API path gets the API's JSON error, naming the field.
    let (status, answer) = http_json("GET", &format!("{base}/api/orders/abc"), None, None).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("entity_id"),
        "{answer}"
    );
    // A link with any text of an attacker's shows none of it.
    let forged = "Your session expired: sign in again at https://evil.example";
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("notice", forged)
        .append_pair("sig", "00")
        .finish();
    let (status, page) = http("GET", &format!("{base}/?{q}"), None, None).await;
    assert_eq!(status, 200);
    assert!(!page.contains("evil.example"), "a forged notice was shown");
    // The page's own notice, after an action, is shown.
    let host = base.trim_start_matches("http://");
    let (status, headers, answer) = http_raw(
        "POST",
        &format!("{base}/ui/pause"),
        Some(""),
        &[("origin", &base), ("host", host), ("cookie", &cookie)],
    )
    .await;
    assert_eq!(status, 303, "{answer}");
    let location = headers["location"].to_str().unwrap().to_owned();
    let (_, page) = http("GET", &format!("{base}{location}"), None, None).await;
    assert!(page.contains("Paused all consumers."), "{location}: {page}");
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
