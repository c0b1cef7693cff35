//! deploy/rabbitmq/definitions.json, the broker set-up for docker compose:
//! it must declare exactly what `order-sync topology` declares, and its users
//! must have what they need and nothing more. Checked on paper and by
//! importing it into the real broker and logging in as its users.

use std::{collections::BTreeSet, process::Command, time::Duration};

use lapin::{options::*, types::FieldTable, BasicProperties, Connection};
use order_sync::{broker::Topology, config::QueueType};
use serde_json::Value;

use crate::support::TestEnv;

const DEFINITIONS: &str = include_str!("../../deploy/rabbitmq/definitions.json");

fn definitions() -> Value {
    serde_json::from_str(DEFINITIONS).expect("definitions.json is JSON")
}

/// The compose demo shop: prefix `demo`, consumers erp and wms, vhost `shop`.
fn compose_topology() -> Topology {
    Topology::new("demo", &["erp".into(), "wms".into()], QueueType::Quorum)
}

/// Items of one section as comparable strings, vhost left out.
fn items(v: &Value, section: &str) -> BTreeSet<String> {
    v[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section}"))
        .iter()
        .map(|i| {
            let mut i = i.clone();
            i.as_object_mut().unwrap().remove("vhost");
            i.to_string()
        })
        .collect()
}

fn permission(v: &Value, user: &str, what: &str) -> regex::Regex {
    let p = v["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["user"] == user)
        .unwrap_or_else(|| panic!("no permissions for {user}"));
    regex::Regex::new(p[what].as_str().unwrap()).unwrap()
}

#[test]
fn definitions_json_holds_exactly_the_topology_order_sync_declares() {
    let file = definitions();
    let declared = compose_topology().definitions("shop", str::to_owned);
    for section in ["exchanges", "queues", "bindings", "topic_permissions"] {
        assert_eq!(
            items(&file, section),
            items(&declared, section),
            "{section} differ; regenerate with `order-sync topology --definitions shop`"
        );
    }
    assert_eq!(file["vhosts"][0]["name"], "shop");
    assert!(file["queues"]
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["arguments"]["x-queue-type"] == "quorum"));
    let policy = &file["policies"][0];
    assert_eq!(policy["apply-to"], "queues");
    assert!(regex::Regex::new(policy["pattern"].as_str().unwrap())
        .unwrap()
        .is_match("demo.que.erp"));
}

#[test]
fn each_user_in_definitions_json_may_do_what_its_role_needs_and_no_more() {
    let file = definitions();
    let t = compose_topology();
    let exchanges: Vec<String> = t.exchanges().into_iter().map(|e| e.name).collect();
    let queues: Vec<String> = t.queues().into_iter().map(|q| q.name).collect();
    let everything: Vec<&String> = exchanges.iter().chain(&queues).collect();
    for what in ["configure", "write", "read"] {
        let re = permission(&file, "order-sync", what);
        for name in &everything {
            assert!(re.is_match(name), "order-sync may not {what} {name}");
        }
        assert!(
            !re.is_match("other-shop.orders"),
            "order-sync stays in its prefix"
        );
    }
    for consumer in ["erp", "wms"] {
        let other = if consumer == "erp" { "wms" } else { "erp" };
        let read = permission(&file, consumer, "read");
        let write = permission(&file, consumer, "write");
        let configure = permission(&file, consumer, "configure");
        assert!(read.is_match(&t.consumer_queue(consumer)));
        assert!(write.is_match(&t.acks_exchange()));
        for name in &everything {
            if **name != t.consumer_queue(consumer) {
                assert!(!read.is_match(name), "{consumer} may read {name}");
            }
            if **name != t.acks_exchange() {
                assert!(!write.is_match(name), "{consumer} may write {name}");
            }
            assert!(!configure.is_match(name), "{consumer} may configure {name}");
        }
        assert!(!read.is_match(&t.consumer_queue(other)));
    }
}

fn rabbitmqctl(args: &[&str]) -> String {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .expect("rabbitmqctl runs (apt-get install rabbitmq-server)");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Deletes the users a test imported, also when it panics.
struct Users(Vec<String>);

impl Drop for Users {
    fn drop(&mut self) {
        for u in &self.0 {
            let _ = Command::new("rabbitmqctl")
                .args(["delete_user", u, "-q"])
                .output();
        }
    }
}

#[tokio::test]
async fn definitions_json_imports_into_rabbitmq_and_its_users_work_as_intended() {
    let mut env = TestEnv::new(&["erp"], &[]).await;
    let vhost = env.own_vhost();
    // The file as is, but with this test's vhost and user names, so it can be
    // imported into the shared broker and removed afterwards.
    let text = DEFINITIONS
        .replace("\"shop\"", &format!("\"{vhost}\""))
        .replace("\"user\": \"", &format!("\"user\": \"{}-", env.id))
        .replace(
            "\"name\": \"order-sync\"",
            &format!("\"name\": \"{}-order-sync\"", env.id),
        )
        .replace(
            "\"name\": \"erp\"",
            &format!("\"name\": \"{}-erp\"", env.id),
        )
        .replace(
            "\"name\": \"wms\"",
            &format!("\"name\": \"{}-wms\"", env.id),
        )
        .replace(
            "\"name\": \"admin\"",
            &format!("\"name\": \"{}-admin\"", env.id),
        );
    let _users = Users(
        ["order-sync", "erp", "wms", "admin"]
            .iter()
            .map(|u| format!("{}-{u}", env.id))
            .collect(),
    );
    let path = std::env::temp_dir().join(format!("{}-definitions.json", env.id));
    std::fs::write(&path, text).unwrap();
    rabbitmqctl(&["import_definitions", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert!(rabbitmqctl(&["list_policies", "-p", &vhost]).contains("demo-poison-messages"));

    let url = |user: &str, password: &str| {
        format!("amqp://{}-{user}:{password}@127.0.0.1:5672/{vhost}", env.id)
    };
    // order-sync, as its own user, finds the topology exactly as it would declare it.
    let out = env
        .order_sync(&["topology"])
        .env("ORDER_SYNC__BROKER__URL", url("order-sync", "order-sync"))
        .env("ORDER_SYNC__BROKER__PREFIX", "demo")
        .env("ORDER_SYNC__CONSUMERS__NAMES", "erp,wms")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "order-sync topology against the imported definitions: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // erp reads its own queue and publishes acks; nothing else.
    let erp = tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(&url("erp", "erp"), Default::default()),
    )
    .await
    .unwrap()
    .expect("erp logs in with the demo password");
    let ch = erp.create_channel().await.unwrap();
    ch.confirm_select(Default::default()).await.unwrap();
    ch.basic_publish(
        "demo.acks".into(),
        "erp".into(),
        BasicPublishOptions::default(),
        br#"{"consumer":"erp","entity_id":1,"status":"synced"}"#,
        BasicProperties::default(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    ch.basic_get("demo.que.erp".into(), BasicGetOptions::default())
        .await
        .expect("erp reads its queue");
    // erp may publish acks only under its own name: wms's are not its to send.
    let other = erp.create_channel().await.unwrap();
    other.confirm_select(Default::default()).await.unwrap();
    let refused = async {
        other
            .basic_publish(
                "demo.acks".into(),
                "wms".into(),
                BasicPublishOptions::default(),
                br#"{"consumer":"wms","entity_id":1,"status":"synced"}"#,
                BasicProperties::default(),
            )
            .await?
            .await
    }
    .await
    .expect_err("erp may not publish under wms's routing key");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");
    let refused = ch
        .basic_get("demo.que.wms".into(), BasicGetOptions::default())
        .await
        .expect_err("erp may not read wms's queue");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");
    let ch = erp.create_channel().await.unwrap();
    let refused = ch
        .queue_declare(
            "demo.mine".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("erp may not create queues");
    assert!(refused.to_string().contains("ACCESS_REFUSED"), "{refused}");
    let _ = erp.close(200, "done".into()).await;
    env.cleanup().await;
}

#[tokio::test]
async fn a_poison_message_on_a_consumer_queue_is_dead_lettered_after_its_delivery_limit() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let t = env.topology();
    let queue = t.consumer_queue("erp");
    env.channel
        .basic_publish(
            t.que_exchange().as_str().into(),
            "erp".into(),
            BasicPublishOptions::default(),
            b"poison",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    // A sync service that crashes on it, again and again.
    let mut deliveries = 0;
    while let Some(d) = env.get(&queue, Duration::from_secs(2)).await {
        deliveries += 1;
        assert!(deliveries <= 30, "still delivered after {deliveries} tries");
        d.nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert!(deliveries >= 20, "dead-lettered after only {deliveries}");
    let dead = env
        .get(&t.dead_queue("que.erp"), Duration::from_secs(10))
        .await
        .expect("in the dead queue");
    assert_eq!(dead.data, b"poison");
    env.cleanup().await;
}
