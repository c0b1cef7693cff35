//! Webhook consumers against real receivers (tests/webhooks/receiver.py),
//! over HTTPS with a certificate from a CA made here and over plain HTTP on
//! loopback: signatures verify with the documented recipe (which rejects
//! forgeries and replays), every way a receiver can fail is a failed delivery
//! that is re-delivered and parked, and a delivery cut by kill -9 is made again.

use std::{path::PathBuf, process::Command, time::Duration};

use order_sync::ledger::State;
use serde_json::Value;

use crate::support::{free_port, Proc, TestEnv};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const SECRET: &str = "whsec-test-0123456789abcdef";

/// A receiver process and the requests it logged.
struct Receiver {
    _child: Proc,
    log: PathBuf,
    base: String,
}

impl Receiver {
    fn start(id: &str, tls: Option<&PathBuf>) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("{id}-{port}-receiver.log"));
        let mut cmd = Command::new("python3");
        cmd.arg(format!("{ROOT}/tests/webhooks/receiver.py"))
            .arg(port.to_string())
            .arg(SECRET)
            .arg(&log);
        if let Some(certs) = tls {
            cmd.arg(certs.join("server.pem"))
                .arg(certs.join("server.key"));
        }
        let child = Proc::spawn(cmd.stdout(std::process::Stdio::null()));
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let scheme = if tls.is_some() {
            "https://localhost"
        } else {
            "http://127.0.0.1"
        };
        Self {
            _child: child,
            log,
            base: format!("{scheme}:{port}"),
        }
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        for suffix in ["", ".body", ".header"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.log.display()));
        }
    }
}

/// Runs the documented recipe in one language on a real request: whether it
/// said genuine.
fn recipe(command: &[&str], header: &str, body: &std::path::Path, now: Option<i64>) -> bool {
    let mut cmd = Command::new(command[0]);
    cmd.args(&command[1..]).arg(SECRET).arg(header).arg(body);
    if let Some(now) = now {
        cmd.arg(now.to_string());
    }
    cmd.status()
        .expect("the recipe's interpreter runs")
        .success()
}

/// A CA and a localhost certificate it signed (deploy/tls/local-tls.sh certs).
fn certificates(id: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{id}-webhook-tls"));
    let out = Command::new(format!("{ROOT}/deploy/tls/local-tls.sh"))
        .arg("certs")
        .env("DIR", &dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.join("certs")
}

/// The settings of webhook consumer `name` POSTing to `url`.
fn webhook(name: &str, url: &str) -> Vec<(String, String)> {
    let key = |k: &str| {
        format!(
            "ORDER_SYNC__CONSUMERS__{}__WEBHOOK__{k}",
            name.to_uppercase()
        )
    };
    vec![
        (key("URL"), url.to_owned()),
        (key("SECRET_ENV"), "WEBHOOK_SECRET".into()),
        (key("TIMEOUT"), "1s".into()),
    ]
}

fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap()
        / 1024
}

#[tokio::test]
async fn webhook_receivers_get_signed_posts_and_every_way_they_fail_is_retried_then_parked() {
    let names = ["ok", "ce", "fail", "slow", "redirect", "huge", "reset"];
    let mut env = TestEnv::new(
        &names,
        &[
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "2"),
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "300ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "600ms"),
            ("ORDER_SYNC__CONSUMERS__CE__FORMAT", "cloudevents"),
        ],
    )
    .await;
    let certs = certificates(&env.id);
    let https = Receiver::start(&env.id, Some(&certs));
    let http = Receiver::start(&env.id, None);
    let mut settings = Vec::new();
    settings.extend(webhook("ok", &format!("{}/ok", https.base)));
    settings.extend(webhook("ce", &format!("{}/ok", https.base)));
    for path in ["fail", "slow", "redirect", "huge", "reset"] {
        settings.extend(webhook(path, &format!("{}/{path}", http.base)));
    }
    env.env.extend(settings);
    let mut child = Proc::spawn(
        env.order_sync(&["run"])
            .env("WEBHOOK_SECRET", SECRET)
            .env("SSL_CERT_FILE", certs.join("ca.pem"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    let id = env.place_order().await;
    let rows = env
        .wait_for_ledger(Duration::from_secs(60), "every webhook settled", |rows| {
            rows.len() == names.len()
                && rows
                    .iter()
                    .all(|r| matches!(r.state, State::Synced | State::Parked))
        })
        .await;
    assert!(child.try_wait().unwrap().is_none(), "order-sync stopped");
    let row = |c: &str| rows.iter().find(|r| r.consumer == c).unwrap();
    assert_eq!(row("ok").state, State::Synced, "{:?}", row("ok"));
    assert_eq!(row("ce").state, State::Synced);
    for (consumer, why) in [
        ("fail", "HTTP 500: ERP down"),
        ("slow", "timed out"),
        ("redirect", "redirects are not followed"),
        ("huge", "longer than 65536 bytes"),
        ("reset", "request failed"),
    ] {
        let r = row(consumer);
        assert_eq!(
            (r.state, r.attempts),
            (State::Parked, 2),
            "{consumer}: {r:?}"
        );
        let error = r.last_error.as_deref().unwrap_or("");
        assert!(error.contains(why), "{consumer}: {error}");
        assert!(!error.contains("127.0.0.1"), "the URL is not kept: {error}");
    }
    // The recipe verifies each signature, and rejects a replay and a forgery.
    let received = https.requests();
    assert_eq!(received.len(), 2, "{received:?}");
    for r in &received {
        assert_eq!(r["verified"], true, "{r}");
        assert_eq!(r["replay_rejected"], true, "{r}");
        assert_eq!(r["forged_rejected"], true, "{r}");
    }
    // The CloudEvents consumer's POST parsed with the official SDK.
    let event = received
        .iter()
        .find_map(|r| r["cloudevent"].as_object().cloned())
        .expect("a CloudEvent");
    assert_eq!(event["type"], "sales_order_place_after_que");
    assert_eq!(event["subject"], format!("{id:09}"));
    assert_eq!(event["source"], env.id.as_str());
    assert!(
        received.iter().any(|r| r["cloudevent"].is_null()),
        "ok got no CE headers"
    );
    // The same checks in PHP and Node, on a real request.
    let header = std::fs::read_to_string(format!("{}.header", https.log.display())).unwrap();
    let body = PathBuf::from(format!("{}.body", https.log.display()));
    let tampered = body.with_extension("tampered");
    let mut bytes = std::fs::read(&body).unwrap();
    bytes.push(b' ');
    std::fs::write(&tampered, bytes).unwrap();
    let later = chrono::Utc::now().timestamp() + 600;
    for (interpreter, file) in [
        ("python3", "verify.py"),
        ("php", "verify.php"),
        ("node", "verify.js"),
    ] {
        let path = format!("{ROOT}/docs/webhooks/{file}");
        let command = [interpreter, path.as_str()];
        assert!(
            recipe(&command, &header, &body, None),
            "{command:?}: genuine"
        );
        assert!(
            !recipe(&command, &header, &tampered, None),
            "{command:?}: forged"
        );
        assert!(
            !recipe(&command, &header, &body, Some(later)),
            "{command:?}: replayed"
        );
    }
    let _ = std::fs::remove_file(&tampered);
    // Failed deliveries came twice each (max_attempts), then stopped.
    let plain = http.requests();
    for path in ["/fail", "/slow", "/redirect", "/huge", "/reset"] {
        assert_eq!(
            plain.iter().filter(|r| r["path"] == path).count(),
            2,
            "{path}"
        );
    }
    // A 50 MB answer was not read into memory.
    let peak = peak_rss_mib(child.id());
    assert!(peak < 150, "peak RSS {peak} MiB");
    drop(child);
    let _ = std::fs::remove_dir_all(certs.parent().unwrap());
    env.cleanup().await;
}

#[tokio::test]
async fn a_webhook_delivery_cut_by_kill_9_is_made_again_and_synced_once() {
    let mut env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__RELAY__SCHEDULE", "200ms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "1s"),
            ("ORDER_SYNC__RELAY__BACKOFF__MAX_INTERVAL", "2s"),
        ],
    )
    .await;
    let receiver = Receiver::start(&env.id, None);
    env.env
        .extend(webhook("erp", &format!("{}/slow-ok", receiver.base)));
    let run = |env: &TestEnv| {
        Proc::spawn(
            env.order_sync(&["run"])
                .env("WEBHOOK_SECRET", SECRET)
                .env("ORDER_SYNC__CONSUMERS__ERP__WEBHOOK__TIMEOUT", "5s")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null()),
        )
    };
    let mut first = run(&env);
    env.place_order().await;
    // The POST is under way (the receiver answers after 1.5 s): kill -9 now.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.requests().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no POST arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    let _ = first.wait();
    let _second = run(&env);
    let rows = env
        .wait_for_ledger(
            Duration::from_secs(30),
            "synced after the restart",
            |rows| rows.len() == 1 && rows[0].state == State::Synced,
        )
        .await;
    let received = receiver.requests();
    assert!(
        received.len() >= 2,
        "delivered again after the kill: {received:?}"
    );
    assert!(
        received
            .iter()
            .all(|r| r["message_id"] == rows[0].message_id.as_str()),
        "the same message each time"
    );
    env.cleanup().await;
}
