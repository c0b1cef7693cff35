//! The deployment files, checked without a Docker engine or systemd running:
//! docker-compose.yml by docker-compose itself (`config`) and against the
//! other files it names; each service's configuration by the real binary;
//! the systemd units by `systemd-analyze verify`; the production example by
//! `check-config`. (deploy/check-dockerfile.sh, run by .ci/run, does the
//! Dockerfile's build natively.)

use std::process::Command;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_order-sync");

/// The API token the compose checks run with (compose has no default).
const COMPOSE_TOKEN: &str = "compose-check-token-0123456789";

/// `docker-compose config` (variables filled in, anchors merged) as JSON.
fn compose() -> Value {
    let out = Command::new("docker-compose")
        .args(["-f", &format!("{ROOT}/docker-compose.yml"), "config"])
        .env("ORDER_SYNC_API_TOKEN", COMPOSE_TOKEN)
        .output()
        .unwrap_or_else(|e| {
            panic!("docker-compose is needed to validate docker-compose.yml ({e}): apt-get install -y docker-compose (deploy/test.sh does)")
        });
    assert!(
        out.status.success(),
        "docker-compose.yml is invalid: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(&out.stdout)?;
            child.wait_with_output()
        })
        .expect("python3 with PyYAML (pip install -r tests/contract/requirements.txt)");
    serde_json::from_slice(&json.stdout).expect("compose config as JSON")
}

#[test]
fn the_compose_file_is_valid_and_starts_each_service_after_what_it_needs() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    for name in [
        "rabbitmq",
        "mariadb",
        "order-sync",
        "demo-orders",
        "consumer-erp",
        "consumer-wms",
    ] {
        assert!(services.contains_key(name), "no service {name}");
    }
    for (name, s) in services {
        if let Some(deps) = s["depends_on"].as_object() {
            for (dep, how) in deps {
                assert_eq!(
                    how["condition"], "service_healthy",
                    "{name} waits for {dep} to be healthy"
                );
                assert!(
                    services[dep]["healthcheck"].is_object(),
                    "{dep} has a health check"
                );
            }
        }
        for v in s["volumes"].as_array().into_iter().flatten() {
            let source = v["source"].as_str().or(v.as_str()).unwrap_or_default();
            if v["type"] == "bind" {
                assert!(
                    std::path::Path::new(source).exists(),
                    "{name} mounts {source}, which is missing"
                );
            } else if v["type"] == "volume" {
                assert!(
                    c["volumes"].get(source).is_some(),
                    "{name} uses undeclared volume {source}"
                );
            }
        }
    }
    // Nothing is published beyond this host.
    for (name, s) in services {
        for port in s["ports"].as_array().into_iter().flatten() {
            let text = port.to_string();
            assert!(
                text.contains("127.0.0.1"),
                "{name} publishes {text} to every interface"
            );
        }
    }
    assert!(services["order-sync"]["depends_on"]
        .get("rabbitmq")
        .is_some());
    assert!(services["order-sync"]["depends_on"]
        .get("mariadb")
        .is_some());
    assert!(services["consumer-erp"]["depends_on"]
        .get("order-sync")
        .is_some());

    // Every service run from the order-sync image is configured well enough to start.
    let definitions: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/deploy/rabbitmq/definitions.json")).unwrap(),
    )
    .unwrap();
    let grants =
        std::fs::read_to_string(format!("{ROOT}/deploy/mariadb/20-order-sync.sql")).unwrap();
    for (name, s) in services
        .iter()
        .filter(|(_, s)| s["image"] == "order-sync:local")
    {
        let env: Vec<(String, String)> = s["environment"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        let out = Command::new(BIN)
            .arg("check-config")
            .env_clear()
            .envs(env.iter().cloned())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Its command is one the binary knows.
        let command: Vec<&str> = s["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let help = Command::new(BIN)
            .arg(command[0])
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            help.status.success(),
            "{name}: `order-sync {}` is not a command",
            command[0]
        );
        let get = |k: &str| {
            env.iter()
                .find(|(ek, _)| ek == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        // The broker user it logs in as is in definitions.json, the demo password being its name.
        let broker = url::Url::parse(&get("ORDER_SYNC__BROKER__URL")).unwrap();
        assert_eq!(
            broker.username(),
            broker.password().unwrap(),
            "{name}: demo password convention"
        );
        assert!(
            definitions["users"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["name"] == broker.username()),
            "{name} logs in to RabbitMQ as `{}`, a user definitions.json does not create",
            broker.username()
        );
        assert_eq!(
            broker.path(),
            "/shop",
            "{name} uses the vhost of definitions.json"
        );
        let magento = url::Url::parse(&get("ORDER_SYNC__MAGENTO__URL")).unwrap();
        assert!(
            grants.contains(&format!(
                "'{}'@'%' IDENTIFIED BY '{}'",
                magento.username(),
                magento.password().unwrap()
            )),
            "{name} logs in to MariaDB as `{}`, a user 20-order-sync.sql does not create",
            magento.username()
        );
    }
}

#[test]
fn the_compose_magento_reader_may_select_only_the_tables_capture_reads() {
    let grants =
        std::fs::read_to_string(format!("{ROOT}/deploy/mariadb/20-order-sync.sql")).unwrap();
    let tables = order_sync::magento::Tables::magento2(&Default::default());
    for table in [
        &tables.order,
        &tables.item,
        &tables.address,
        &tables.payment,
        &tables.status_history,
        &tables.store,
        &tables.website,
    ] {
        assert!(
            grants.contains(&format!(
                "GRANT SELECT ON magento_demo.{table} TO 'order_sync'@'%';"
            )),
            "no SELECT grant on {table}"
        );
    }
    assert!(
        !grants.contains("ON magento_demo.* TO 'order_sync'"),
        "order_sync may read all of Magento"
    );
}

#[test]
fn compose_has_no_default_api_token() {
    let out = Command::new("docker-compose")
        .args(["-f", &format!("{ROOT}/docker-compose.yml"), "config"])
        .env_remove("ORDER_SYNC_API_TOKEN")
        .output()
        .expect("docker-compose (deploy/test.sh installs it)");
    assert!(!out.status.success(), "compose started without a token");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("ORDER_SYNC_API_TOKEN"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let dir = std::env::temp_dir().join(format!("order-sync-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for unit in ["order-sync@.service", "order-sync-migrate@.service"] {
        let text = std::fs::read_to_string(format!("{ROOT}/deploy/systemd/{unit}"))
            .unwrap()
            // Verify checks that the binary exists: point it at this build's.
            .replace("/usr/local/bin/order-sync", BIN);
        std::fs::write(dir.join(unit.replace('@', "@demo")), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("order-sync@demo.service"))
        .arg(dir.join("order-sync-migrate@demo.service"))
        .output()
        .expect("systemd-analyze (apt-get install -y systemd)");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    // Only the units' own lines matter; the host's other units may have warnings.
    let ours: Vec<&str> = text.lines().filter(|l| l.contains("order-sync")).collect();
    assert!(out.status.success() && ours.is_empty(), "{text}");
}

#[test]
fn the_production_example_configuration_is_valid_and_uses_tls_everywhere() {
    let out = Command::new(BIN)
        .args([
            "--config",
            &format!("{ROOT}/deploy/production.toml"),
            "check-config",
        ])
        .env_clear()
        .env(
            "ORDER_SYNC__HTTP__API_TOKEN",
            "a-token-of-more-than-16-characters",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(format!("{ROOT}/deploy/production.toml")).unwrap();
    let urls: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split('"').nth(1))
        .filter(|v| v.contains("://"))
        .collect();
    assert!(urls.len() >= 6, "{urls:?}");
    for u in urls {
        assert!(
            u.starts_with("amqps://") || u.contains("require_ssl=true"),
            "{u} is not TLS"
        );
    }
}
