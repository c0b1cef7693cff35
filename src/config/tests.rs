//! Loading and checking settings, key by key.

use std::time::Duration;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn message(r: Result<Settings, ConfigError>) -> String {
    r.expect_err("config should be rejected").to_string()
}

#[test]
fn defaults_alone_are_valid() {
    let s = load_with_env(None, env(&[])).unwrap();
    assert_eq!(s.consumers.names, vec!["erp".to_string()]);
    assert_eq!(s.relay.schedule, Schedule::Every(Duration::from_secs(30)));
}

#[test]
fn environment_overrides_nested_keys_and_lists() {
    let s = load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,wms"),
            ("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "5s"),
            ("ORDER_SYNC__CAPTURE__BATCH_SIZE", "7"),
        ]),
    )
    .unwrap();
    assert_eq!(s.consumers.names, vec!["erp", "wms"]);
    assert_eq!(s.relay.backoff.initial, Duration::from_secs(5));
    assert_eq!(s.capture.batch_size, 7);
}

#[test]
fn a_cron_schedule_like_the_original_module_is_accepted() {
    let s: Schedule = "*/5 * * * *".parse().unwrap();
    assert!(matches!(s, Schedule::Cron(_)));
    let now = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:02:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    assert_eq!(s.next_wait(now), Duration::from_secs(180));
}

#[test]
fn a_wrong_type_names_the_key() {
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__CAPTURE__BATCH_SIZE", "lots")]),
    ));
    assert!(m.contains("capture.batch_size"), "{m}");
}

#[test]
fn an_unparseable_duration_names_the_key() {
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__RELAY__BACKOFF__INITIAL", "soon")]),
    ));
    assert!(m.contains("relay.backoff.initial"), "{m}");
}

#[test]
fn an_unknown_key_is_named() {
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__CAPTURE__POLL_INTERVALL", "1s")]),
    ));
    assert!(m.contains("poll_intervall"), "{m}");
}

#[test]
fn a_bad_schedule_names_the_key() {
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__RELAY__SCHEDULE", "every tuesday")]),
    ));
    assert!(m.contains("relay.schedule"), "{m}");
}

#[test]
fn range_errors_are_all_reported_with_their_keys() {
    let m = message(load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__RELAY__MAX_ATTEMPTS", "0"),
            ("ORDER_SYNC__BROKER__URL", "http://example.org/"),
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,erp"),
        ]),
    ));
    assert!(m.contains("relay.max_attempts: must be at least 1"), "{m}");
    assert!(m.contains("broker.url: scheme `http`"), "{m}");
    assert!(m.contains("consumers.names: lists a name twice"), "{m}");
}

#[test]
fn passwords_never_appear_in_errors_or_debug_output() {
    let m = message(load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__LEDGER__URL", "postgres://u:hunter2@db/x"),
            ("ORDER_SYNC__MAGENTO__URL", "mysql://u:hunter2@db/"),
        ]),
    ));
    assert!(!m.contains("hunter2"), "{m}");
    assert!(m.contains("ledger.url"), "{m}");
    assert!(m.contains("magento.url: names no database"), "{m}");
    let url = SecretUrl::new("amqp://guest:hunter2@rabbit:5672/%2f");
    assert!(!format!("{url:?} {url}").contains("hunter2"));
    assert_eq!(url.redacted(), "amqp://guest:***@rabbit:5672/%2f");
}

#[test]
fn queue_names_are_templates_checked_for_their_placeholders() {
    let s = load_with_env(
        None,
        env(&[(
            "ORDER_SYNC__BROKER__NAMES__CONSUMER_QUEUE",
            "sync.{prefix}.{consumer}",
        )]),
    )
    .unwrap();
    assert_eq!(s.broker.names.consumer_queue, "sync.{prefix}.{consumer}");
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__BROKER__NAMES__CONSUMER_QUEUE", "{prefix}.que")]),
    ));
    assert!(
        m.contains("broker.names.consumer_queue: must contain {consumer}"),
        "{m}"
    );
}

#[test]
fn sizes_and_deny_paths_are_checked() {
    let m = message(load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__BROKER__FRAME_MAX", "1024"),
            ("ORDER_SYNC__BROKER__MAX_MESSAGE_BYTES", "10"),
            ("ORDER_SYNC__MESSAGE__DENY_FIELDS", "payment..x,pay*ment.y"),
        ]),
    ));
    assert!(m.contains("broker.frame_max"), "{m}");
    assert!(m.contains("broker.max_message_bytes"), "{m}");
    assert_eq!(m.matches("message.deny_fields").count(), 2, "{m}");
}

#[test]
fn a_table_prefix_with_anything_but_letters_digits_and_underscores_is_refused() {
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "mage`; DROP")]),
    ));
    assert!(m.contains("magento.table_prefix"), "{m}");
    let s = load_with_env(None, env(&[("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "m2_")])).unwrap();
    assert_eq!(
        s.magento.table_prefix.table("sales_order"),
        "m2_sales_order"
    );
}

#[test]
fn a_token_of_digits_keeps_its_leading_zeros_and_an_empty_list_is_empty() {
    let s = load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__HTTP__API_TOKEN", "0012345678901234567"),
            ("ORDER_SYNC__CONSUMERS__PULL", ""),
            ("ORDER_SYNC__CAPTURE__FILTER__STORE_IDS", "1,2"),
            ("ORDER_SYNC__HTTP__PROTECT_READS", "false"),
        ]),
    )
    .unwrap();
    assert_eq!(s.http.api_token.expose(), "0012345678901234567");
    assert!(s.consumers.pull.is_empty());
    assert_eq!(s.capture.filter.store_ids, vec![1, 2]);
    assert!(!s.http.protect_reads);
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__HTTP__LISTEN", "0.0.0.0:9464")]),
    ));
    assert!(
        m.contains("http.listen: listening on 0.0.0.0:9464 without http.api_token"),
        "{m}"
    );
    let m = message(load_with_env(
        None,
        env(&[("ORDER_SYNC__HTTP__API_TOKEN", "has a space in it 123")]),
    ));
    assert!(
        m.contains("http.api_token: may only hold printable ASCII"),
        "{m}"
    );
}

#[test]
fn a_pull_consumer_needs_its_own_token_and_consumer_tables_name_known_consumers() {
    let m = message(load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,legacy"),
            ("ORDER_SYNC__CONSUMERS__PULL", "legacy"),
            ("ORDER_SYNC__CONSUMERS__CRM__BROKER_USER", "crm"),
        ]),
    ));
    assert!(m.contains("consumers.legacy.token"), "{m}");
    assert!(
        m.contains("consumers.crm: is not in consumers.names"),
        "{m}"
    );
    let s = load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,legacy"),
            ("ORDER_SYNC__CONSUMERS__PULL", "legacy"),
            (
                "ORDER_SYNC__CONSUMERS__LEGACY__TOKEN",
                "legacy-token-0123456789",
            ),
            ("ORDER_SYNC__CONSUMERS__ERP__BROKER_USER", "erp-user"),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.consumers.options("erp").broker_user.as_deref(),
        Some("erp-user")
    );
    assert_eq!(
        s.consumers.options("legacy").token.expose(),
        "legacy-token-0123456789"
    );
}

#[test]
fn a_webhook_must_be_https_beyond_this_host_and_is_not_also_pulled() {
    let m = message(load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "crm"),
            ("ORDER_SYNC__CONSUMERS__PULL", "crm"),
            ("ORDER_SYNC__CONSUMERS__CRM__TOKEN", "crm-token-0123456789"),
            (
                "ORDER_SYNC__CONSUMERS__CRM__WEBHOOK__URL",
                "http://crm.example.com/hook",
            ),
            (
                "ORDER_SYNC__CONSUMERS__CRM__WEBHOOK__SECRET_ENV",
                "CRM_SECRET",
            ),
        ]),
    ));
    assert!(
        m.contains("consumers.crm.webhook.url: must be https://"),
        "{m}"
    );
    assert!(m.contains("consumers.crm.webhook: a consumer pulls"), "{m}");
    let s = load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,crm"),
            (
                "ORDER_SYNC__CONSUMERS__CRM__WEBHOOK__URL",
                "https://crm.example.com/hook",
            ),
            (
                "ORDER_SYNC__CONSUMERS__CRM__WEBHOOK__SECRET_ENV",
                "CRM_SECRET",
            ),
        ]),
    )
    .unwrap();
    assert_eq!(
        s.consumers.push(),
        vec!["erp".to_string()],
        "no queue for crm"
    );
    assert_eq!(s.consumers.webhooks()[0].1.concurrency, 4);
    assert!(s.summary().contains("crm (webhook)"));
}

#[test]
fn the_summary_is_short_and_hides_passwords() {
    let s = load_with_env(
        None,
        env(&[("ORDER_SYNC__LEDGER__URL", "mysql://u:hunter2@db/ledger")]),
    )
    .unwrap();
    let text = s.summary();
    assert!(text.lines().count() < 20, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("mysql://u:***@db/ledger"), "{text}");
}

#[test]
fn a_missing_config_file_is_named() {
    let m = message(load_with_env(
        Some(Path::new("/nonexistent/order-sync.toml")),
        env(&[]),
    ));
    assert!(m.contains("/nonexistent/order-sync.toml"), "{m}");
}

#[test]
fn a_pull_token_may_be_neither_the_operators_nor_another_consumers() {
    let m = message(load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,wms,crm"),
            ("ORDER_SYNC__CONSUMERS__PULL", "wms,crm"),
            ("ORDER_SYNC__HTTP__API_TOKEN", "operators-token-0123456789"),
            (
                "ORDER_SYNC__CONSUMERS__WMS__TOKEN",
                "operators-token-0123456789",
            ),
            (
                "ORDER_SYNC__CONSUMERS__CRM__TOKEN",
                "operators-token-0123456789",
            ),
        ]),
    ));
    assert!(
        m.contains("consumers.wms.token: must differ from http.api_token"),
        "{m}"
    );
    assert!(
        m.contains("consumers.crm.token: must differ from consumers.wms.token"),
        "{m}"
    );
    let ok = load_with_env(
        None,
        env(&[
            ("ORDER_SYNC__CONSUMERS__NAMES", "erp,wms,crm"),
            ("ORDER_SYNC__CONSUMERS__PULL", "wms,crm"),
            ("ORDER_SYNC__HTTP__API_TOKEN", "operators-token-0123456789"),
            (
                "ORDER_SYNC__CONSUMERS__WMS__TOKEN",
                "wms-token-0123456789abc",
            ),
            (
                "ORDER_SYNC__CONSUMERS__CRM__TOKEN",
                "crm-token-0123456789abc",
            ),
        ]),
    );
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
}
