//! docs/asyncapi.yaml is the wire contract: the messages the pipeline really
//! sends, the acks the consumer helper really sends, the documented examples
//! and every golden order are validated against its JSON Schemas (by
//! tests/contract/validate.py, with the `jsonschema` package), and a broken
//! message is shown to fail, so the check is not vacuous.

use std::{path::PathBuf, process::Command, time::Duration};

use lapin::{options::*, types::FieldTable};
use order_sync::broker::sync_consumer;
use order_sync_consumer::OrderMessage;

use crate::support::TestEnv;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Runs the validator: (passed, what it printed).
pub(crate) fn validate(args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(format!("{ROOT}/tests/contract/validate.py"))
        .arg(format!("{ROOT}/docs/asyncapi.yaml"))
        .args(args)
        .output()
        .expect("python3 runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("ModuleNotFoundError"),
        "the contract check needs PyYAML and jsonschema: pip install -r tests/contract/requirements.txt \
         (deploy/test.sh does): {text}"
    );
    (out.status.success(), text)
}

/// A queue of this test's own bound to `exchange`, to see what goes through it.
async fn tap(env: &TestEnv, exchange: &str) -> String {
    let name = format!("{}.tap.{exchange}", env.id);
    env.channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    env.channel
        .queue_bind(
            name.as_str().into(),
            exchange.into(),
            "#".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    name
}

fn write(env: &TestEnv, what: &str, body: &[u8]) -> PathBuf {
    let path = std::env::temp_dir().join(format!("{}-{what}.json", env.id));
    std::fs::write(&path, body).unwrap();
    path
}

#[test]
fn the_asyncapi_document_is_valid_for_the_official_parser() {
    let out = Command::new("node")
        .arg(format!("{ROOT}/tests/contract/check-asyncapi.mjs"))
        .arg(format!("{ROOT}/docs/asyncapi.yaml"))
        .output()
        .expect("node runs (apt-get install -y nodejs npm; deploy/test.sh does)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.contains("ERR_MODULE_NOT_FOUND"),
        "the AsyncAPI parser is not installed: (cd tests/contract && npm ci) (deploy/test.sh does): {text}"
    );
    assert!(
        out.status.success() && text.contains("valid AsyncAPI document"),
        "{text}"
    );
}

#[tokio::test]
async fn real_messages_acks_and_documented_examples_match_the_asyncapi_schemas() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let topology = env.topology();
    let captured_tap = tap(&env, &topology.orders_exchange()).await;
    let acks_tap = tap(&env, &topology.acks_exchange()).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.place_orders(2).await;

    let mut files = Vec::new();
    let queue = topology.consumer_queue("erp");
    let delivered = env
        .get(&queue, Duration::from_secs(20))
        .await
        .expect("an order for erp");
    files.push(("OrderToSync", write(&env, "delivered", &delivered.data)));
    let captured = env
        .get(&captured_tap, Duration::from_secs(20))
        .await
        .expect("a captured order");
    files.push(("CapturedOrder", write(&env, "captured", &captured.data)));
    // Acks as the consumer helper sends them, synced and failed.
    let consumer = sync_consumer(&env.settings.broker, "erp");
    let publisher = consumer.publisher().await.unwrap();
    consumer
        .handle(&publisher, &delivered, &|_m: OrderMessage| async {
            Ok::<(), String>(())
        })
        .await
        .unwrap();
    let second = env
        .get(&queue, Duration::from_secs(20))
        .await
        .expect("the second order");
    consumer
        .handle(&publisher, &second, &|_m: OrderMessage| async {
            Err::<(), String>("ERP down".into())
        })
        .await
        .unwrap();
    for n in 0..2 {
        let ack = env
            .get(&acks_tap, Duration::from_secs(20))
            .await
            .expect("an ack");
        files.push(("Ack", write(&env, &format!("ack{n}"), &ack.data)));
    }
    shutdown.cancel();
    pipeline.await.unwrap();

    for (schema, path) in &files {
        let (ok, text) = validate(&[schema, path.to_str().unwrap()]);
        assert!(
            ok,
            "a real {schema} does not match docs/asyncapi.yaml:\n{text}"
        );
    }
    let (ok, text) = validate(&["--examples"]);
    assert!(ok, "the document's own examples:\n{text}");
    let examples: Vec<String> = ["magento2", "magento1"]
        .iter()
        .map(|v| format!("{ROOT}/docs/examples/{v}-message.json"))
        .collect();
    let mut args = vec!["OrderToSync"];
    args.extend(examples.iter().map(String::as_str));
    let (ok, text) = validate(&args);
    assert!(ok, "docs/examples:\n{text}");
    // A whole example of every later event, each against its own schema.
    for (event, schema) in crate::lifecycle::SCHEMAS {
        let path = format!("{ROOT}/docs/examples/{event}.json");
        assert!(std::path::Path::new(&path).exists(), "{path} is missing");
        let (ok, text) = validate(&[schema, &path]);
        assert!(ok, "{path}:\n{text}");
    }
    let golden: Vec<String> = std::fs::read_dir(format!("{ROOT}/tests/golden/magento2"))
        .unwrap()
        .chain(std::fs::read_dir(format!("{ROOT}/tests/golden/magento1")).unwrap())
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".json"))
        .collect();
    assert!(golden.len() >= 10);
    let mut args = vec!["Order"];
    args.extend(golden.iter().map(String::as_str));
    let (ok, text) = validate(&args);
    assert!(ok, "golden orders:\n{text}");

    // Not vacuous: an order without its entity_id and an ack with a made-up status fail.
    let mut broken: serde_json::Value = serde_json::from_slice(&delivered.data).unwrap();
    broken["order"].as_object_mut().unwrap().remove("entity_id");
    let broken = write(&env, "broken", &serde_json::to_vec(&broken).unwrap());
    let (ok, text) = validate(&["OrderToSync", broken.to_str().unwrap()]);
    assert!(!ok && text.contains("entity_id"), "{text}");
    let bad_ack = write(
        &env,
        "bad-ack",
        br#"{"consumer": "erp", "entity_id": 1, "status": "done"}"#,
    );
    let (ok, text) = validate(&["Ack", bad_ack.to_str().unwrap()]);
    assert!(!ok && text.contains("done"), "{text}");

    for (_, path) in files {
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_file(broken);
    let _ = std::fs::remove_file(bad_ack);
    env.cleanup().await;
}

/// Runs the CloudEvents SDK check on one delivery: the attributes it parsed.
fn cloud_event(d: &lapin::message::Delivery) -> Result<serde_json::Value, String> {
    use std::io::Write;
    let headers: serde_json::Map<String, serde_json::Value> = d
        .properties
        .headers()
        .clone()
        .unwrap_or_default()
        .inner()
        .iter()
        .filter_map(|(k, v)| match v {
            lapin::types::AMQPValue::LongString(s) => {
                Some((k.to_string(), serde_json::Value::String(s.to_string())))
            }
            _ => None,
        })
        .collect();
    let content_type = d
        .properties
        .content_type()
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let message = serde_json::json!({
        "properties": {"content-type": content_type},
        "headers": headers,
        "body": String::from_utf8_lossy(&d.data),
    });
    let mut child = Command::new("python3")
        .arg(format!("{ROOT}/tests/contract/cloudevents_check.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect(
            "python3 with the CloudEvents SDK (pip install -r tests/contract/requirements.txt)",
        );
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test]
async fn a_consumer_set_to_cloudevents_gets_events_the_official_sdk_parses_and_others_the_default()
{
    let env = TestEnv::new(
        &["erp", "wms"],
        &[("ORDER_SYNC__CONSUMERS__ERP__FORMAT", "cloudevents")],
    )
    .await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    let id = env.place_order().await;
    let topology = env.topology();
    let erp = env
        .get(&topology.consumer_queue("erp"), Duration::from_secs(20))
        .await
        .expect("an order for erp");
    let event = cloud_event(&erp).unwrap_or_else(|e| panic!("not a CloudEvent: {e}"));
    let body: serde_json::Value = serde_json::from_slice(&erp.data).unwrap();
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["id"], body["message_id"]);
    assert_eq!(event["source"], env.id.as_str());
    assert_eq!(event["type"], "sales_order_place_after_que");
    assert_eq!(event["subject"], format!("{id:09}"));
    assert_eq!(event["datacontenttype"], "application/json");
    assert!(!event["time"].as_str().unwrap().is_empty());
    // The data is the envelope a default consumer reads: nothing to relearn.
    assert_eq!(event["data.message_id"], body["message_id"]);
    assert_eq!(body["order"]["entity_id"], id);
    // wms keeps the default format: no CloudEvents attributes.
    let wms = env
        .get(&topology.consumer_queue("wms"), Duration::from_secs(20))
        .await
        .expect("an order for wms");
    assert!(cloud_event(&wms).is_err(), "wms got CloudEvents headers");
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
