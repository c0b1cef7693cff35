//! The monitoring that ships with order-sync: Prometheus alert rules (checked
//! and unit-tested by promtool) and a Grafana dashboard, each of whose queries
//! names metrics a running order-sync really exports.

use std::{collections::BTreeSet, process::Command, time::Duration};

use crate::support::{http, TestEnv};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(format!("{ROOT}/deploy/prometheus"))
        .output()
        .expect("promtool runs (apt-get install prometheus; deploy/test-tools.sh does)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool(&["check", "rules", "alerts.yml"]);
    assert!(checked.contains("SUCCESS: 7 rules found"), "{checked}");
    let tested = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(tested.contains("SUCCESS"), "{tested}");
}

/// The order-sync metric families a query text names (suffixes of counters
/// and histograms folded into their family).
fn families_in(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"order_sync_[a-z_]+").unwrap();
    re.find_iter(text)
        .map(|m| {
            let name = m.as_str();
            ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let (env, listen) = TestEnv::with_http(&["erp"]).await;
    let (shutdown, pipeline) = env.spawn_pipeline();
    env.place_order().await;
    env.wait_for_ledger(Duration::from_secs(20), "an order recorded", |r| {
        !r.is_empty()
    })
    .await;
    let (status, body) = http("GET", &format!("http://{listen}/metrics"), None, None).await;
    assert_eq!(status, 200);
    let exported: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let alerts = std::fs::read_to_string(format!("{ROOT}/deploy/prometheus/alerts.yml")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/deploy/grafana/order-sync.json")).unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 10, "{exprs:?}");
    for (what, text) in [("alerts.yml", alerts), ("the dashboard", exprs.join("\n"))] {
        let used = families_in(&text);
        assert!(!used.is_empty());
        for family in used {
            assert!(
                exported.contains(&family),
                "{what} queries {family}, which /metrics does not export: {exported:?}"
            );
        }
    }
    shutdown.cancel();
    pipeline.await.unwrap();
    env.cleanup().await;
}
