//! The order message body: the order as Magento's REST API returns it
//! (`GET /V1/orders/{id}`), built from the rows as stored, so a sync service
//! that reads REST orders reads these with no mapping.
//!
//! Departures from REST, all deliberate:
//! * every column is present under its own name, including ones REST omits;
//!   DECIMALs are strings with the database's exact digits, not floats;
//! * `addresses` lists every address row as stored, next to REST's
//!   `billing_address` and `extension_attributes.shipping_assignments`;
//! * shipping assignments carry the address and method, not a second copy of
//!   the items (they are in `items`); a virtual order has none;
//! * JSON held in text columns (`product_options`, `additional_information`) is
//!   decoded; PHP-serialized text (Magento 1, old Magento 2 rows) is left as text;
//! * fields on the deny list (`message.deny_fields`) are removed.

use serde_json::{Map, Value};

/// The order's child rows, each as a JSON object.
#[derive(Debug, Default)]
pub struct Children {
    pub items: Vec<Map<String, Value>>,
    pub addresses: Vec<Map<String, Value>>,
    pub payments: Vec<Map<String, Value>>,
    pub status_histories: Vec<Map<String, Value>>,
}

/// Builds the order object from its row and children, then applies the deny list.
pub fn order(
    mut order: Map<String, Value>,
    children: Children,
    deny: &DenyList,
) -> Map<String, Value> {
    let items: Vec<Value> = children
        .items
        .into_iter()
        .map(|mut item| {
            decode_json_text(&mut item, "product_options");
            Value::Object(item)
        })
        .collect();
    let address_of = |kind: &str| {
        children
            .addresses
            .iter()
            .filter(|a| a.get("address_type").and_then(Value::as_str) == Some(kind))
            .cloned()
            .collect::<Vec<_>>()
    };
    let billing = address_of("billing")
        .into_iter()
        .next()
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let method = order.get("shipping_method").cloned().unwrap_or(Value::Null);
    let assignments: Vec<Value> = address_of("shipping")
        .into_iter()
        .map(|address| {
            let mut shipping = Map::new();
            shipping.insert("address".into(), Value::Object(address));
            shipping.insert("method".into(), method.clone());
            let mut assignment = Map::new();
            assignment.insert("shipping".into(), Value::Object(shipping));
            Value::Object(assignment)
        })
        .collect();
    let payment = children
        .payments
        .into_iter()
        .next()
        .map(|mut p| {
            decode_json_text(&mut p, "additional_information");
            Value::Object(p)
        })
        .unwrap_or(Value::Null);

    order.insert("items".into(), Value::Array(items));
    order.insert("billing_address".into(), billing);
    order.insert("payment".into(), payment);
    order.insert(
        "status_histories".into(),
        Value::Array(
            children
                .status_histories
                .into_iter()
                .map(Value::Object)
                .collect(),
        ),
    );
    order.insert(
        "addresses".into(),
        Value::Array(children.addresses.into_iter().map(Value::Object).collect()),
    );
    let mut ext = Map::new();
    ext.insert("shipping_assignments".into(), Value::Array(assignments));
    order.insert("extension_attributes".into(), Value::Object(ext));
    deny.apply(&mut order);
    order
}

/// Replaces a text field holding a JSON object or array by its decoded value.
/// Anything else (PHP-serialized data, plain text) is left as it is.
fn decode_json_text(row: &mut Map<String, Value>, field: &str) {
    if let Some(Value::String(text)) = row.get(field) {
        let t = text.trim_start();
        if t.starts_with('{') || t.starts_with('[') {
            if let Ok(v @ (Value::Object(_) | Value::Array(_))) =
                serde_json::from_str::<Value>(text)
            {
                row.insert(field.to_owned(), v);
            }
        }
    }
}

/// Fields removed from every order before it is published.
///
/// Entries are paths into the order: `protect_code`, `payment.cc_number_enc`,
/// `items.product_options`. Arrays are walked through (so `addresses.telephone`
/// removes every address's phone, in `addresses`, `billing_address` and the
/// shipping assignments). The last segment may end in `*` to match a prefix:
/// `payment.cc_debug_*`.
#[derive(Debug, Clone, Default)]
pub struct DenyList {
    paths: Vec<Vec<String>>,
}

impl DenyList {
    pub fn new(entries: &[String]) -> Self {
        Self {
            paths: entries
                .iter()
                .map(|e| e.split('.').map(str::to_owned).collect())
                .collect(),
        }
    }

    pub fn apply(&self, order: &mut Map<String, Value>) {
        for path in &self.paths {
            remove(order, path);
            // An address denied in `addresses` is denied wherever REST puts it too.
            if path.first().map(String::as_str) == Some("addresses") && path.len() > 1 {
                let rest = &path[1..];
                if let Some(Value::Object(b)) = order.get_mut("billing_address") {
                    remove(b, rest);
                }
                if let Some(Value::Object(ext)) = order.get_mut("extension_attributes") {
                    if let Some(Value::Array(sa)) = ext.get_mut("shipping_assignments") {
                        for a in sa {
                            if let Some(Value::Object(addr)) = a.pointer_mut("/shipping/address") {
                                remove(addr, rest);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn remove(obj: &mut Map<String, Value>, path: &[String]) {
    let Some((head, rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        if let Some(prefix) = head.strip_suffix('*') {
            obj.retain(|k, _| !k.starts_with(prefix));
        } else {
            obj.remove(head);
        }
        return;
    }
    match obj.get_mut(head) {
        Some(Value::Object(inner)) => remove(inner, rest),
        Some(Value::Array(list)) => {
            for v in list {
                if let Value::Object(inner) = v {
                    remove(inner, rest);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn json_text_is_decoded_and_php_serialized_text_is_kept() {
        let children = Children {
            items: vec![
                obj(json!({"item_id": 1, "product_options": "{\"info_buyRequest\":{\"qty\":1}}"})),
                obj(json!({"item_id": 2, "product_options": "a:1:{s:3:\"qty\";i:1;}"})),
            ],
            payments: vec![obj(
                json!({"method": "checkmo", "additional_information": "{\"method_title\":\"Check\"}"}),
            )],
            ..Children::default()
        };
        let o = order(obj(json!({"entity_id": 1})), children, &DenyList::default());
        assert_eq!(
            o["items"][0]["product_options"]["info_buyRequest"]["qty"],
            1
        );
        assert_eq!(o["items"][1]["product_options"], "a:1:{s:3:\"qty\";i:1;}");
        assert_eq!(
            o["payment"]["additional_information"]["method_title"],
            "Check"
        );
    }

    #[test]
    fn addresses_go_where_rest_puts_them_and_a_virtual_order_has_no_assignment() {
        let children = Children {
            addresses: vec![
                obj(json!({"address_type": "billing", "city": "Calder"})),
                obj(json!({"address_type": "shipping", "city": "Berlin"})),
            ],
            ..Children::default()
        };
        let o = order(
            obj(json!({"shipping_method": "flatrate_flatrate"})),
            children,
            &DenyList::default(),
        );
        assert_eq!(o["billing_address"]["city"], "Calder");
        let sa = &o["extension_attributes"]["shipping_assignments"][0]["shipping"];
        assert_eq!(sa["address"]["city"], "Berlin");
        assert_eq!(sa["method"], "flatrate_flatrate");
        assert_eq!(o["addresses"].as_array().unwrap().len(), 2);

        let virt = order(
            obj(json!({"is_virtual": 1})),
            Children::default(),
            &DenyList::default(),
        );
        assert_eq!(
            virt["extension_attributes"]["shipping_assignments"],
            json!([])
        );
        assert_eq!(virt["billing_address"], Value::Null);
        assert_eq!(virt["payment"], Value::Null);
    }

    #[test]
    fn denied_fields_are_removed_everywhere_they_appear() {
        let deny = DenyList::new(&[
            "protect_code".into(),
            "payment.cc_debug_*".into(),
            "addresses.telephone".into(),
            "items.product_options".into(),
        ]);
        let children = Children {
            items: vec![obj(json!({"sku": "a", "product_options": "{}"}))],
            addresses: vec![
                obj(json!({"address_type": "billing", "telephone": "1"})),
                obj(json!({"address_type": "shipping", "telephone": "2"})),
            ],
            payments: vec![obj(
                json!({"method": "x", "cc_debug_request_body": "s", "cc_debug_response_body": "t", "cc_last_4": "1111"}),
            )],
            ..Children::default()
        };
        let o = order(
            obj(json!({"protect_code": "secret", "entity_id": 1})),
            children,
            &deny,
        );
        let text = serde_json::to_string(&o).unwrap();
        for gone in ["protect_code", "cc_debug", "telephone", "product_options"] {
            assert!(!text.contains(gone), "{gone} left in {text}");
        }
        assert_eq!(o["payment"]["cc_last_4"], "1111");
        assert_eq!(o["entity_id"], 1);
    }
}
