//! The order message: fixture orders built on the real Magento schemas go
//! through the pipeline, and what a consumer receives is checked two ways:
//! against a golden file (the documented shape), and column by column against
//! the database row it came from (nothing lost, nothing altered).
//!
//! `UPDATE_GOLDEN=1 deploy/test.sh message` rewrites the golden files from the
//! live output; review the diff before committing it.

use std::{collections::HashMap, path::PathBuf, time::Duration};

use mysql_async::{prelude::*, Conn, Value as Sql};
use serde_json::Value;

use crate::support::{ack_delivery, body, TestEnv};

/// One fixture: a name and the statements that place it (in one transaction).
/// `@id` holds the new order's entity_id after the first statement.
struct Fixture {
    name: &'static str,
    sql: Vec<String>,
}

const TS: &str = "'2024-03-01 10:00:00'";

fn order_insert(columns: &str, values: &str) -> Vec<String> {
    vec![
        format!("INSERT INTO sales_order (created_at, updated_at, {columns}) VALUES ({TS}, {TS}, {values})"),
        "SET @id = LAST_INSERT_ID()".into(),
    ]
}

fn item(values: &str) -> String {
    format!(
        "INSERT INTO sales_order_item (order_id, created_at, updated_at, store_id, sku, name, product_type, \
         qty_ordered, price, base_price, row_total, product_options, parent_item_id) VALUES (@id, {TS}, {TS}, {values})"
    )
}

fn address(kind: &str, street: &str, extra: &str) -> String {
    format!(
        "INSERT INTO sales_order_address (parent_id, address_type, firstname, lastname, street, city, \
         postcode, country_id, telephone, email) VALUES (@id, '{kind}', 'Veronica', 'Costello', {street}, \
         {extra}, '49628-7978', 'US', '(555) 229-3326', 'roni@example.com')"
    )
}

fn payment(method: &str, additional: &str) -> String {
    format!(
        "INSERT INTO sales_order_payment (parent_id, method, amount_ordered, base_amount_ordered, \
         cc_number_enc, cc_last_4, cc_debug_request_body, additional_information) \
         VALUES (@id, '{method}', '123.4500', '123.4500', '0:3:encrypted-card', '1111', 'gateway request', {additional})"
    )
}

fn history(comment: &str) -> String {
    format!(
        "INSERT INTO sales_order_status_history (parent_id, is_customer_notified, is_visible_on_front, \
         comment, status, created_at, entity_name) VALUES (@id, 1, 0, {comment}, 'pending', {TS}, 'order')"
    )
}

fn magento2_fixtures() -> Vec<Fixture> {
    let base = "increment_id, store_id, state, status, customer_email, customer_firstname, customer_lastname, \
                customer_id, customer_is_guest, customer_group_id, base_currency_code, order_currency_code, \
                base_to_order_rate, grand_total, base_grand_total, subtotal, shipping_method, protect_code, \
                total_item_count";
    let mut fixtures = vec![
        Fixture {
            name: "registered_customer",
            sql: [
                order_insert(base, "'000000001', 1, 'processing', 'processing', 'roni@example.com', 'Veronica', \
                    'Costello', 42, 0, 1, 'USD', 'USD', '1.0000', '123.4500', '123.4500', '118.4500', \
                    'flatrate_flatrate', 'a1b2c3d4e5f6', 2"),
                vec![
                    item("1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'simple', '1.0000', '52.0000', '52.0000', '52.0000', '{\"info_buyRequest\":{\"qty\":1}}', NULL"),
                    item("1, '24-MB01', 'Joust Duffle Bag', 'simple', '2.0000', '33.2250', '33.2250', '66.4500', NULL, NULL"),
                    address("billing", "'6146 Honey Bluff Parkway'", "'Calder'"),
                    address("shipping", "'6146 Honey Bluff Parkway'", "'Calder'"),
                    payment("checkmo", "'{\"method_title\":\"Check / Money order\"}'"),
                    history("'Order placed.'"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "guest",
            sql: [
                order_insert(base, "'000000002', 1, 'new', 'pending', 'guest@example.com', 'Gus', 'Guest', \
                    NULL, 1, 0, 'USD', 'USD', '1.0000', '45.0000', '45.0000', '40.0000', 'flatrate_flatrate', \
                    'ffff0000', 1"),
                vec![
                    item("1, '24-WB04', 'Overnight Duffle', 'simple', '1.0000', '40.0000', '40.0000', '40.0000', NULL, NULL"),
                    address("billing", "'1 Main St'", "'Springfield'"),
                    address("shipping", "'1 Main St'", "'Springfield'"),
                    payment("checkmo", "NULL"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "virtual_order",
            sql: [
                order_insert(&format!("{base}, is_virtual"), "'000000003', 1, 'complete', 'complete', \
                    'roni@example.com', 'Veronica', 'Costello', 42, 0, 1, 'USD', 'USD', '1.0000', '15.0000', \
                    '15.0000', '15.0000', NULL, 'b00b00', 1, 1"),
                vec![
                    item("1, 'gift-card-15', 'Gift Card', 'virtual', '1.0000', '15.0000', '15.0000', '15.0000', NULL, NULL"),
                    address("billing", "'6146 Honey Bluff Parkway'", "'Calder'"),
                    payment("free", "'[]'"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "configurable_product",
            sql: [
                order_insert(base, "'000000004', 1, 'new', 'pending', 'roni@example.com', 'Veronica', 'Costello', \
                    42, 0, 1, 'USD', 'USD', '1.0000', '59.0000', '59.0000', '54.0000', 'flatrate_flatrate', \
                    'c0ffee', 1"),
                vec![
                    item("1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'configurable', '1.0000', '54.0000', '54.0000', '54.0000', \
                          '{\"attributes_info\":[{\"label\":\"Size\",\"value\":\"XS\"},{\"label\":\"Color\",\"value\":\"Black\"}],\"simple_sku\":\"MH01-XS-Black\"}', NULL"),
                    "SET @parent = LAST_INSERT_ID()".into(),
                    item("1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie-XS-Black', 'simple', '1.0000', '0.0000', '0.0000', '0.0000', NULL, @parent"),
                    address("billing", "'6146 Honey Bluff Parkway'", "'Calder'"),
                    address("shipping", "'6146 Honey Bluff Parkway'", "'Calder'"),
                    payment("checkmo", "NULL"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "multi_currency",
            sql: [
                order_insert(base, "'000000005', 1, 'new', 'pending', 'hans@example.de', 'Hans', 'Müller', 7, 0, 1, \
                    'EUR', 'USD', '1.0850', '108.5000', '100.0000', '100.0000', 'flatrate_flatrate', 'e0e0', 1"),
                vec![
                    item("1, '24-MB02', 'Fusion Backpack', 'simple', '1.0000', '108.5000', '100.0000', '108.5000', NULL, NULL"),
                    address("billing", "'Unter den Linden 1'", "'Berlin'"),
                    address("shipping", "'Unter den Linden 1'", "'Berlin'"),
                    payment("checkmo", "NULL"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "extreme_amounts",
            sql: [
                order_insert(&format!("{base}, discount_amount, weight"), "'000000006', 1, 'new', 'pending', \
                    'roni@example.com', 'Veronica', 'Costello', 42, 0, 1, 'USD', 'USD', '1.0000', '0.0001', \
                    '99999999.9999', '99999999.9999', 'flatrate_flatrate', 'ab', 1, '-0.0001', '99999999.9999'"),
                vec![
                    item("1, 'tiny', 'Tiny', 'simple', '0.0001', '0.0001', '0.0001', '0.0000', NULL, NULL"),
                    address("billing", "'1 Main St'", "'Springfield'"),
                    payment("checkmo", "NULL"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "unicode_names_and_multiline_street",
            sql: [
                order_insert(base, "'000000007', 1, 'new', 'pending', 'zoe@example.jp', '😀 Zoë', \
                    '山田 \"Taro\" O''Brien \\\\ back', 42, 0, 1, 'JPY', 'JPY', '1.0000', '1200.0000', \
                    '1200.0000', '1200.0000', 'flatrate_flatrate', 'cafe', 1"),
                vec![
                    item("1, 'ギフト', 'ギフト 🎁 \"gift\"', 'simple', '1.0000', '1200.0000', '1200.0000', '1200.0000', NULL, NULL"),
                    address("billing", "'Line 1\\nLine 2\\nBuilding \"A\"'", "'東京'"),
                    address("shipping", "'Line 1\\nLine 2\\nBuilding \"A\"'", "'東京'"),
                    payment("checkmo", "NULL"),
                    history("'Tab\\there, newline\\nthere, backslash \\\\ and \"quotes\"'"),
                ],
            ]
            .concat(),
        },
        Fixture {
            name: "null_heavy",
            sql: order_insert("increment_id", "NULL"),
        },
        Fixture {
            name: "php_serialized_legacy_data",
            sql: [
                order_insert(&format!("{base}, legacy_note"), "'000000009', 1, 'new', 'pending', 'roni@example.com', \
                    'Veronica', 'Costello', 42, 0, 1, 'USD', 'USD', '1.0000', '10.0000', '10.0000', '10.0000', \
                    'flatrate_flatrate', 'dd', 1, X'FF4F6C64'"),
                vec![
                    item("1, 'old', 'Old Product', 'simple', '1.0000', '10.0000', '10.0000', '10.0000', \
                          'a:1:{s:15:\"info_buyRequest\";a:1:{s:3:\"qty\";i:1;}}', NULL"),
                    address("billing", "'1 Main St'", "'Springfield'"),
                    payment("checkmo", "'a:1:{s:12:\"method_title\";s:5:\"Check\";}'"),
                ],
            ]
            .concat(),
        },
    ];
    for f in &mut fixtures {
        f.sql.insert(0, "START TRANSACTION".into());
        f.sql.push("COMMIT".into());
    }
    fixtures
}

/// Shops that converted their tables to utf8mb4 store emoji; Magento's own
/// dump is utf8mb3. A custom module's binary column stands in for legacy bytes.
const PREPARE_MAGENTO2: &[&str] = &[
    "ALTER TABLE sales_order CONVERT TO CHARACTER SET utf8mb4",
    "ALTER TABLE sales_order_item CONVERT TO CHARACTER SET utf8mb4",
    "ALTER TABLE sales_order_address CONVERT TO CHARACTER SET utf8mb4",
    "ALTER TABLE sales_order_status_history CONVERT TO CHARACTER SET utf8mb4",
    "ALTER TABLE sales_order ADD COLUMN legacy_note VARBINARY(64) NULL",
];

async fn place(env: &TestEnv, fixtures: &[Fixture]) {
    let mut conn = env.magento_conn().await;
    for f in fixtures {
        for sql in &f.sql {
            conn.query_drop(sql)
                .await
                .unwrap_or_else(|e| panic!("fixture {}: {e}\n{sql}", f.name));
        }
    }
}

/// Runs capture and relay one step each and returns what the consumer got, by entity_id.
async fn deliver_all(env: &TestEnv, consumer: &str) -> HashMap<u64, Value> {
    let parts = env.parts();
    let relay = parts.relay();
    let publisher = parts.deps.broker.publisher().await.unwrap();
    parts.capture().step(chrono::Utc::now()).await.unwrap();
    let mut batch = Vec::new();
    while let Some(d) = env
        .get(&env.topology().relay_queue(), Duration::from_millis(300))
        .await
    {
        batch.push(d);
    }
    relay
        .handle_inbox(&publisher, batch, chrono::Utc::now())
        .await
        .unwrap();
    let mut got = HashMap::new();
    while let Some(d) = env
        .get(
            &env.topology().consumer_queue(consumer),
            Duration::from_millis(500),
        )
        .await
    {
        let msg = body(&d);
        ack_delivery(&d).await;
        got.insert(msg["order"]["entity_id"].as_u64().unwrap(), msg);
    }
    got
}

fn golden_path(version: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(version)
        .join(format!("{name}.json"))
}

/// Compares the order as delivered with its golden file (or rewrites the file).
fn check_golden(version: &str, name: &str, order: &Value) {
    let path = golden_path(version, name);
    let pretty = serde_json::to_string_pretty(order).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pretty).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no golden file {}; run with UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    let golden: Value = serde_json::from_str(&text).unwrap();
    assert!(
        golden == *order,
        "{name}: the delivered order differs from {}; delivered:\n{pretty}",
        path.display()
    );
}

/// Checks a whole message (envelope and order) against the documented example
/// in docs/examples, with the fields that differ per run normalized.
fn check_example(version: &str, msg: &Value) {
    let mut msg = msg.clone();
    let consumer = msg["consumer"].as_str().unwrap().to_owned();
    let id = msg["order"]["entity_id"].as_u64().unwrap();
    msg["source"] = "demo".into();
    msg["message_id"] = format!("demo:{id}:{consumer}").into();
    msg["captured_at"] = "2024-03-01T10:00:00.250000Z".into();
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("docs/examples")
        .join(format!("{version}-message.json"));
    let pretty = serde_json::to_string_pretty(&msg).unwrap() + "\n";
    if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pretty).unwrap();
        return;
    }
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("no example {}; run with UPDATE_GOLDEN=1", path.display()));
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert!(
        doc == msg,
        "{} no longer matches what is sent:\n{pretty}",
        path.display()
    );
}

/// Reads rows over the text protocol as (column, raw bytes or NULL).
async fn raw_rows(conn: &mut Conn, sql: String) -> Vec<Vec<(String, Option<Vec<u8>>)>> {
    let rows: Vec<mysql_async::Row> = conn.query(sql).await.unwrap();
    rows.into_iter()
        .map(|r| {
            let names: Vec<String> = r
                .columns_ref()
                .iter()
                .map(|c| c.name_str().into_owned())
                .collect();
            names
                .into_iter()
                .zip(r.unwrap())
                .map(|(n, v)| {
                    let bytes = match v {
                        Sql::NULL => None,
                        Sql::Bytes(b) => Some(b),
                        other => Some(other.as_sql(true).into_bytes()),
                    };
                    (n, bytes)
                })
                .collect()
        })
        .collect()
}

/// Every column of a database row against the same object in the message.
fn assert_row_matches(
    what: &str,
    row: &[(String, Option<Vec<u8>>)],
    json: &Value,
    denied: &[&str],
) {
    for (column, raw) in row {
        if denied.contains(&column.as_str()) {
            assert!(
                json.get(column).is_none(),
                "{what}.{column} is on the deny list but was sent"
            );
            continue;
        }
        let sent = json
            .get(column)
            .unwrap_or_else(|| panic!("{what}.{column} missing from the message"));
        match raw {
            None => assert!(
                sent.is_null(),
                "{what}.{column}: NULL in the database, {sent} sent"
            ),
            Some(bytes) => {
                let text = String::from_utf8_lossy(bytes);
                let ok = match sent {
                    Value::String(s) => *s == text,
                    Value::Number(n) => {
                        n.to_string() == text || text.parse::<f64>().ok() == n.as_f64()
                    }
                    // JSON held in a text column, sent decoded.
                    Value::Object(_) | Value::Array(_) => {
                        serde_json::from_str::<Value>(&text).ok().as_ref() == Some(sent)
                    }
                    _ => false,
                };
                assert!(
                    ok,
                    "{what}.{column}: database has {text:?}, message has {sent}"
                );
            }
        }
    }
}

struct TableNames {
    order: String,
    item: String,
    address: String,
    payment: String,
    history: String,
}

impl TableNames {
    fn magento2() -> Self {
        Self {
            order: "sales_order".into(),
            item: "sales_order_item".into(),
            address: "sales_order_address".into(),
            payment: "sales_order_payment".into(),
            history: "sales_order_status_history".into(),
        }
    }
    fn magento1(prefix: &str) -> Self {
        Self {
            order: format!("{prefix}sales_flat_order"),
            item: format!("{prefix}sales_flat_order_item"),
            address: format!("{prefix}sales_flat_order_address"),
            payment: format!("{prefix}sales_flat_order_payment"),
            history: format!("{prefix}sales_flat_order_status_history"),
        }
    }
}

/// The whole order, table by table and column by column, against the database.
async fn assert_order_matches_database(env: &TestEnv, t: &TableNames, id: u64, order: &Value) {
    let mut conn = env.magento_conn().await;
    let denied_order = ["protect_code"];
    let denied_payment = [
        "cc_number_enc",
        "cc_cid_enc",
        "cc_ss_issue",
        "cc_debug_request_body",
        "cc_debug_response_body",
        "cc_debug_response_serialized",
        "echeck_routing_number",
        "echeck_account_name",
    ];
    let row = raw_rows(
        &mut conn,
        format!("SELECT * FROM `{}` WHERE entity_id = {id}", t.order),
    )
    .await;
    assert_row_matches(&format!("order {id}"), &row[0], order, &denied_order);

    let by_key = |list: &Value, key: &str, value: &[u8]| -> Value {
        let want = String::from_utf8_lossy(value);
        list.as_array()
            .unwrap()
            .iter()
            .find(|x| x[key].to_string() == want)
            .cloned()
            .unwrap_or_else(|| panic!("no element with {key} = {want} in {list}"))
    };
    let key_of = |row: &[(String, Option<Vec<u8>>)], key: &str| -> Vec<u8> {
        row.iter()
            .find(|(n, _)| n == key)
            .unwrap()
            .1
            .clone()
            .unwrap()
    };
    for (table, parent, key, list) in [
        (&t.item, "order_id", "item_id", "items"),
        (&t.address, "parent_id", "entity_id", "addresses"),
        (&t.history, "parent_id", "entity_id", "status_histories"),
    ] {
        let rows = raw_rows(
            &mut conn,
            format!("SELECT * FROM `{table}` WHERE `{parent}` = {id}"),
        )
        .await;
        assert_eq!(
            rows.len(),
            order[list].as_array().unwrap().len(),
            "order {id}: {list}"
        );
        for row in &rows {
            let sent = by_key(&order[list], key, &key_of(row, key));
            assert_row_matches(&format!("order {id} {list}"), row, &sent, &[]);
        }
    }
    let payments = raw_rows(
        &mut conn,
        format!("SELECT * FROM `{}` WHERE parent_id = {id}", t.payment),
    )
    .await;
    match payments.first() {
        Some(p) => assert_row_matches(
            &format!("order {id} payment"),
            p,
            &order["payment"],
            &denied_payment,
        ),
        None => assert!(order["payment"].is_null()),
    }
}

#[tokio::test]
async fn every_fixture_order_arrives_exactly_as_magento_stored_it() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut conn = env.magento_conn().await;
    for sql in PREPARE_MAGENTO2 {
        conn.query_drop(*sql).await.unwrap();
    }
    drop(conn);
    let fixtures = magento2_fixtures();
    place(&env, &fixtures).await;
    let got = deliver_all(&env, "erp").await;
    assert_eq!(got.len(), fixtures.len(), "every fixture delivered");

    let tables = TableNames::magento2();
    for (i, f) in fixtures.iter().enumerate() {
        let id = i as u64 + 1;
        let msg = &got[&id];
        assert_eq!(msg["event"], "sales_order_place_after_que");
        assert_eq!(msg["schema_version"], 1);
        check_golden("magento2", f.name, &msg["order"]);
        assert_order_matches_database(&env, &tables, id, &msg["order"]).await;
    }

    check_example("magento2", &got[&1]);

    // Spot checks of what the shape promises, beyond "same as the database".
    let registered = &got[&1]["order"];
    assert_eq!(
        registered["grand_total"], "123.4500",
        "decimals as exact strings"
    );
    assert_eq!(
        registered["items"][0]["product_options"]["info_buyRequest"]["qty"],
        1
    );
    assert_eq!(
        registered["payment"]["additional_information"]["method_title"],
        "Check / Money order"
    );
    assert_eq!(
        registered["extension_attributes"]["shipping_assignments"][0]["shipping"]["address"]
            ["address_type"],
        "shipping"
    );
    assert!(registered.get("protect_code").is_none());
    assert!(registered["payment"].get("cc_number_enc").is_none());
    assert_eq!(registered["payment"]["cc_last_4"], "1111");
    assert!(got[&2]["order"]["customer_id"].is_null(), "guest");
    assert_eq!(
        got[&3]["order"]["extension_attributes"]["shipping_assignments"],
        serde_json::json!([])
    );
    let child = &got[&4]["order"]["items"][1];
    assert_eq!(
        child["parent_item_id"],
        got[&4]["order"]["items"][0]["item_id"]
    );
    assert_eq!(got[&6]["order"]["grand_total"], "0.0001");
    assert_eq!(got[&6]["order"]["subtotal"], "99999999.9999");
    assert_eq!(got[&7]["order"]["customer_firstname"], "😀 Zoë");
    assert_eq!(
        got[&7]["order"]["addresses"][0]["street"],
        "Line 1\nLine 2\nBuilding \"A\""
    );
    assert!(got[&8]["order"]["increment_id"].is_null());
    assert_eq!(
        got[&9]["order"]["legacy_note"], "\u{FFFD}Old",
        "invalid bytes replaced, order kept"
    );
    assert!(got[&9]["order"]["items"][0]["product_options"]
        .as_str()
        .unwrap()
        .starts_with("a:1:"));
    env.cleanup().await;
}

#[tokio::test]
async fn a_magento1_order_with_a_table_prefix_arrives_in_the_same_shape() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__MAGENTO__VERSION", "1"),
            ("ORDER_SYNC__MAGENTO__TABLE_PREFIX", "magev1_"),
        ],
    )
    .await;
    let mut conn = env.magento_conn().await;
    for sql in [
        format!(
            "INSERT INTO magev1_sales_flat_order (increment_id, store_id, state, status, customer_email, \
             customer_firstname, customer_lastname, customer_id, customer_is_guest, base_currency_code, \
             order_currency_code, grand_total, base_grand_total, subtotal, shipping_method, protect_code, \
             total_item_count, created_at, updated_at) VALUES ('100000001', 1, 'new', 'pending', \
             'roni@example.com', 'Veronica', 'Costello', 42, 0, 'USD', 'USD', '123.4500', '123.4500', \
             '118.4500', 'flatrate_flatrate', 'aa11', 1, {TS}, {TS})"
        ),
        "SET @id = LAST_INSERT_ID()".into(),
        format!(
            "INSERT INTO magev1_sales_flat_order_item (order_id, store_id, sku, name, product_type, qty_ordered, \
             price, row_total, product_options, created_at, updated_at) VALUES (@id, 1, 'hde001', 'Hoodie', \
             'simple', '1.0000', '118.4500', '118.4500', 'a:1:{{s:15:\"info_buyRequest\";a:0:{{}}}}', {TS}, {TS})"
        ),
        "INSERT INTO magev1_sales_flat_order_address (parent_id, address_type, firstname, lastname, street, \
         city, postcode, country_id) VALUES (@id, 'billing', 'Veronica', 'Costello', 'Main St 1', 'Calder', \
         '49628', 'US'), (@id, 'shipping', 'Veronica', 'Costello', 'Main St 1', 'Calder', '49628', 'US')"
            .into(),
        "INSERT INTO magev1_sales_flat_order_payment (parent_id, method, amount_ordered, cc_number_enc, \
         additional_information) VALUES (@id, 'checkmo', '123.4500', 'enc', 'a:0:{}')"
            .into(),
        format!(
            "INSERT INTO magev1_sales_flat_order_status_history (parent_id, is_customer_notified, \
             is_visible_on_front, comment, status, created_at, entity_name) VALUES (@id, 1, 0, 'Placed.', \
             'pending', {TS}, 'order')"
        ),
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    drop(conn);
    let got = deliver_all(&env, "erp").await;
    let msg = &got[&1];
    assert_eq!(msg["order"]["increment_id"], "100000001");
    check_golden("magento1", "prefixed_magev1_order", &msg["order"]);
    check_example("magento1", msg);
    assert_order_matches_database(&env, &TableNames::magento1("magev1_"), 1, &msg["order"]).await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_order_of_a_filtered_out_store_is_not_published() {
    let env = TestEnv::new(
        &["erp"],
        &[
            ("ORDER_SYNC__CAPTURE__FILTER__WEBSITE_CODES", "base"),
            ("ORDER_SYNC__CAPTURE__FILTER__STATES", "new"),
        ],
    )
    .await;
    let mut conn = env.magento_conn().await;
    // A second website with its own store: orders there belong to another ERP.
    for sql in crate::support::B2B_WEBSITE {
        conn.query_drop(sql).await.unwrap();
    }
    let wanted = env.place_order().await;
    let other_store = env.place_order().await;
    conn.query_drop(format!(
        "UPDATE sales_order SET store_id = 2 WHERE entity_id = {other_store}"
    ))
    .await
    .unwrap();
    let other_state = env.place_order().await;
    conn.query_drop(format!(
        "UPDATE sales_order SET state = 'holded' WHERE entity_id = {other_state}"
    ))
    .await
    .unwrap();
    drop(conn);

    let got = deliver_all(&env, "erp").await;
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), vec![wanted as u64]);
    let ledger = env.parts().deps.ledger;
    assert_eq!(
        ledger.order_count().await.unwrap(),
        1,
        "filtered orders are not in the ledger"
    );
    // And they are not re-considered later.
    assert_eq!(
        env.parts()
            .capture()
            .step(chrono::Utc::now())
            .await
            .unwrap()
            .published,
        0
    );
    env.cleanup().await;
}

#[tokio::test]
async fn an_order_with_a_thousand_items_is_delivered_whole() {
    let env = TestEnv::new(&["erp"], &[]).await;
    let mut conn = env.magento_conn().await;
    conn.query_drop("INSERT INTO sales_order (increment_id, store_id, state, status, grand_total) VALUES ('000000001', 1, 'new', 'pending', '1000.0000')")
        .await
        .unwrap();
    let values: Vec<String> = (0..1000)
        .map(|i| {
            format!("(1, 1, 'SKU-{i:04}', 'Item {i}', 'simple', '1.0000', '1.0000', '1.0000')")
        })
        .collect();
    conn.query_drop(format!(
        "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, row_total) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    drop(conn);
    let got = deliver_all(&env, "erp").await;
    let order = &got[&1]["order"];
    assert_eq!(order["items"].as_array().unwrap().len(), 1000);
    assert_eq!(order["items"][999]["sku"], "SKU-0999");
    assert_order_matches_database(&env, &TableNames::magento2(), 1, order).await;
    env.cleanup().await;
}

#[tokio::test]
async fn an_order_too_large_for_the_broker_is_parked_with_the_reason_not_lost() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[("ORDER_SYNC__BROKER__MAX_MESSAGE_BYTES", "65536")],
    )
    .await;
    let mut conn = env.magento_conn().await;
    conn.query_drop("INSERT INTO sales_order (increment_id, store_id, state, status) VALUES ('000000001', 1, 'new', 'pending')")
        .await
        .unwrap();
    let values: Vec<String> = (0..200)
        .map(|i| format!("(1, 1, 'SKU-{i:04}', 'Item {i}', 'simple', '1.0000')"))
        .collect();
    conn.query_drop(format!(
        "INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered) VALUES {}",
        values.join(", ")
    ))
    .await
    .unwrap();
    drop(conn);
    let small = env.place_order().await;

    let got = deliver_all(&env, "erp").await;
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        vec![small as u64],
        "the small order still goes"
    );
    let ledger = env.parts().deps.ledger;
    for consumer in ["erp", "wms"] {
        let row = ledger
            .delivery(1, consumer)
            .await
            .unwrap()
            .expect("large order is in the ledger");
        assert_eq!(row.state, order_sync::ledger::State::Parked);
        assert!(
            row.last_error
                .as_deref()
                .unwrap()
                .contains("larger than broker.max_message_bytes"),
            "{row:?}"
        );
    }
    env.cleanup().await;
}

#[tokio::test]
async fn each_consumer_gets_only_its_websites_orders_and_only_its_fields_as_golden_bodies() {
    let env = TestEnv::new(
        &["erp", "wms"],
        &[
            ("ORDER_SYNC__CONSUMERS__WMS__WEBSITES", "b2b"),
            (
                "ORDER_SYNC__CONSUMERS__WMS__FIELDS",
                "increment_id,created_at,items.sku,items.qty_ordered,billing_address,payment.method",
            ),
            (
                "ORDER_SYNC__CONSUMERS__WMS__DENY_FIELDS",
                "billing_address.telephone",
            ),
        ],
    )
    .await;
    let mut conn = env.magento_conn().await;
    for sql in PREPARE_MAGENTO2
        .iter()
        .copied()
        .chain(crate::support::B2B_WEBSITE)
    {
        conn.query_drop(sql).await.unwrap();
    }
    drop(conn);
    let fixtures = magento2_fixtures();
    place(&env, &fixtures).await;
    // Two of them are the B2B website's.
    let b2b = [1u64, 3];
    let mut conn = env.magento_conn().await;
    conn.query_drop("UPDATE sales_order SET store_id = 2 WHERE entity_id IN (1, 3)")
        .await
        .unwrap();
    drop(conn);

    let erp = deliver_all(&env, "erp").await;
    assert_eq!(erp.len(), fixtures.len(), "erp gets every store's orders");
    assert!(
        erp[&1]["order"]["grand_total"].is_string(),
        "and all of each"
    );
    let wms = deliver_all(&env, "wms").await;
    let mut got: Vec<u64> = wms.keys().copied().collect();
    got.sort_unstable();
    assert_eq!(got, b2b, "wms gets only the b2b website's orders");
    for id in b2b {
        let order = &wms[&id]["order"];
        let keys: Vec<&str> = order
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for k in &keys {
            assert!(
                [
                    "entity_id",
                    "increment_id",
                    "store_id",
                    "state",
                    "status",
                    "created_at",
                    "items",
                    "billing_address",
                    "payment"
                ]
                .contains(k),
                "order {id} has `{k}`, which wms did not ask for"
            );
        }
        assert!(order["billing_address"].get("telephone").is_none());
        check_golden("shaped", fixtures[id as usize - 1].name, order);
    }
    // Nothing of the other orders waits for wms in the ledger either.
    let rows = env.parts().deps.ledger.deliveries().await.unwrap();
    assert_eq!(
        rows.iter().filter(|r| r.consumer == "wms").count(),
        b2b.len()
    );
    env.cleanup().await;
}

#[tokio::test]
async fn a_field_path_no_order_has_stops_start_up_naming_its_key_and_check_config_shows_each_shape()
{
    let mut env = TestEnv::new(&["erp", "wms"], &[]).await;
    env.env.extend([
        (
            "ORDER_SYNC__CONSUMERS__WMS__FIELDS".to_owned(),
            "increment_id,shipping_address,items.skew,items.sku".to_owned(),
        ),
        (
            "ORDER_SYNC__CONSUMERS__WMS__STORES".to_owned(),
            "2".to_owned(),
        ),
    ]);
    for args in [&["check-config", "--live"][..], &["run"][..]] {
        let out = env.order_sync(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("consumers.wms.fields: `shipping_address`: an order has no field `shipping_address`")
                && stderr.contains("consumers.wms.fields: `items.skew`: `items` has no field `skew`")
                && !stderr.contains("`items.sku`"),
            "{args:?}: {stderr}"
        );
    }
    // What each consumer gets, offline.
    env.env
        .retain(|(k, _)| k != "ORDER_SYNC__CONSUMERS__WMS__FIELDS");
    env.env.push((
        "ORDER_SYNC__CONSUMERS__WMS__FIELDS".to_owned(),
        "increment_id,items.sku".to_owned(),
    ));
    let out = env.order_sync(&["check-config"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("consumer    erp: events placed; the whole order"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "consumer    wms: events placed; only stores 2; only the fields increment_id, items.sku \
             (and entity_id, increment_id, store_id, state, status)"
        ),
        "{stdout}"
    );
    // A path that is not one at all is a configuration error.
    env.env.push((
        "ORDER_SYNC__CONSUMERS__WMS__DENY_FIELDS".to_owned(),
        "items..sku".to_owned(),
    ));
    let out = env.order_sync(&["check-config"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("consumers.wms.deny_fields"), "{stderr}");
    env.cleanup().await;
}
