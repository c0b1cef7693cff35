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

/// The order fields every shaped message still has: what names the order
/// and what its events are about.
pub const ALWAYS_KEPT: [&str; 5] = ["entity_id", "increment_id", "store_id", "state", "status"];

/// What one consumer gets of each order (`consumers.<name>.fields` and
/// `deny_fields`): only the fields on its allow-list, if it has one (plus
/// [`ALWAYS_KEPT`]), then without those on its deny list.
#[derive(Debug, Clone, Default)]
pub struct Shape {
    allow: Option<Tree>,
    deny: DenyList,
}

/// Allowed paths: each name with what is allowed under it (`None`: all).
#[derive(Debug, Clone, Default)]
struct Tree(Vec<(String, Option<Tree>)>);

impl Tree {
    fn add(&mut self, path: &[&str]) {
        let Some((head, rest)) = path.split_first() else {
            return;
        };
        let i = match self.0.iter().position(|(k, _)| k == head) {
            Some(i) => i,
            None => {
                self.0.push(((*head).to_owned(), Some(Tree::default())));
                self.0.len() - 1
            }
        };
        let slot = &mut self.0[i].1;
        if rest.is_empty() || rest == ["*"] {
            *slot = None;
        } else if let Some(sub) = slot {
            sub.add(rest);
        }
    }

    /// What is allowed under `key`: `Some(None)` all of it, `Some(Some(t))`
    /// what `t` allows, `None` nothing.
    fn get(&self, key: &str) -> Option<Option<&Tree>> {
        self.0
            .iter()
            .find(|(k, _)| match k.strip_suffix('*') {
                Some(prefix) => key.starts_with(prefix),
                None => k == key,
            })
            .map(|(_, t)| t.as_ref())
    }

    fn keep(&self, obj: &mut Map<String, Value>, top: bool) {
        obj.retain(|k, v| {
            if top && ALWAYS_KEPT.contains(&k.as_str()) {
                return true;
            }
            match self.get(k) {
                None => false,
                Some(None) => true,
                Some(Some(sub)) => {
                    match v {
                        Value::Object(inner) => sub.keep(inner, false),
                        Value::Array(list) => {
                            for item in list {
                                if let Value::Object(inner) = item {
                                    sub.keep(inner, false);
                                }
                            }
                        }
                        _ => {}
                    }
                    true
                }
            }
        });
    }
}

impl Shape {
    /// From a consumer's `fields` (empty: the whole order) and `deny_fields`.
    pub fn new(fields: &[String], deny: &[String]) -> Self {
        let allow = (!fields.is_empty()).then(|| {
            let mut t = Tree::default();
            for f in fields {
                t.add(&f.split('.').collect::<Vec<_>>());
            }
            t
        });
        Self {
            allow,
            deny: DenyList::new(deny),
        }
    }

    /// Whether this shape changes anything.
    pub fn is_whole(&self) -> bool {
        self.allow.is_none() && self.deny.paths.is_empty()
    }

    pub fn apply(&self, order: &mut Map<String, Value>) {
        if let Some(allow) = &self.allow {
            allow.keep(order, true);
        }
        self.deny.apply(order);
    }
}

/// The fields an order message has (see [`order`]), two levels deep.
#[derive(Debug, Clone, Default)]
pub struct OrderPaths(Vec<(String, Vec<String>)>);

impl OrderPaths {
    /// From the columns of the order, item, address, payment and status
    /// history tables.
    pub fn new(
        order: Vec<String>,
        item: Vec<String>,
        address: Vec<String>,
        payment: Vec<String>,
        history: Vec<String>,
    ) -> Self {
        let mut paths: Vec<(String, Vec<String>)> =
            order.into_iter().map(|c| (c, vec![])).collect();
        paths.push(("items".into(), item));
        paths.push(("billing_address".into(), address.clone()));
        paths.push(("addresses".into(), address));
        paths.push(("payment".into(), payment));
        paths.push(("status_histories".into(), history));
        paths.push((
            "extension_attributes".into(),
            vec!["shipping_assignments".into()],
        ));
        Self(paths)
    }

    /// Why `path` names nothing an order message has, if it does not: its
    /// first two names are checked (deeper ones are inside decoded JSON or
    /// shipping assignments, whose keys vary).
    pub fn unknown(&self, path: &str) -> Option<String> {
        let segs: Vec<&str> = path.split('.').collect();
        let matches = |pattern: &str, name: &str| match pattern.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pattern == name,
        };
        let tops: Vec<&(String, Vec<String>)> =
            self.0.iter().filter(|(k, _)| matches(segs[0], k)).collect();
        if tops.is_empty() {
            return Some(format!("an order has no field `{}`", segs[0]));
        }
        if let Some(second) = segs.get(1) {
            let under: Vec<&String> = tops.iter().flat_map(|(_, sub)| sub).collect();
            if tops.iter().all(|(_, sub)| sub.is_empty()) {
                return Some(format!("`{}` has no fields under it", segs[0]));
            }
            if !under.iter().any(|k| matches(second, k)) {
                return Some(format!("`{}` has no field `{second}`", segs[0]));
            }
        }
        None
    }
}

/// Each consumer's [`Shape`], for those that have one.
#[derive(Debug, Clone, Default)]
pub struct Shapes(std::collections::HashMap<String, Shape>);

impl Shapes {
    pub fn new(consumers: &crate::config::ConsumerSettings) -> Self {
        Self(
            consumers
                .names
                .iter()
                .map(|n| {
                    let o = consumers.options(n);
                    (n.clone(), Shape::new(&o.fields, &o.deny_fields))
                })
                .filter(|(_, s)| !s.is_whole())
                .collect(),
        )
    }

    /// The shape of `consumer`'s messages; `None`: the whole order.
    pub fn of(&self, consumer: &str) -> Option<&Shape> {
        self.0.get(consumer)
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
    fn a_shape_keeps_the_allowed_paths_and_the_identifiers_then_removes_the_denied() {
        let mut order = obj(json!({
            "entity_id": 7, "increment_id": "000000007", "store_id": 2, "state": "new",
            "status": "pending", "grand_total": "10.0000", "customer_email": "a@example.com",
            "base_grand_total": "10.0000", "base_subtotal": "9.0000",
            "items": [{"sku": "A", "qty_ordered": "1.0000", "price": "5.0000"},
                      {"sku": "B", "qty_ordered": "2.0000", "price": "2.5000"}],
            "billing_address": {"city": "Calder", "telephone": "555"},
            "payment": null,
        }));
        let shape = Shape::new(
            &[
                "items.sku".into(),
                "items.qty_ordered".into(),
                "billing_address".into(),
                "base_*".into(),
                "payment.method".into(),
            ],
            &["billing_address.telephone".into()],
        );
        shape.apply(&mut order);
        assert_eq!(
            Value::Object(order),
            json!({
                "entity_id": 7, "increment_id": "000000007", "store_id": 2, "state": "new",
                "status": "pending", "base_grand_total": "10.0000", "base_subtotal": "9.0000",
                "items": [{"sku": "A", "qty_ordered": "1.0000"}, {"sku": "B", "qty_ordered": "2.0000"}],
                "billing_address": {"city": "Calder"},
                "payment": null,
            })
        );
        assert!(Shape::new(&[], &[]).is_whole());
    }

    #[test]
    fn a_field_path_is_checked_against_the_columns_two_levels_deep() {
        let paths = OrderPaths::new(
            vec!["entity_id".into(), "base_grand_total".into()],
            vec!["sku".into(), "product_options".into()],
            vec!["city".into()],
            vec!["method".into()],
            vec!["comment".into()],
        );
        for ok in [
            "entity_id",
            "base_*",
            "items.sku",
            "items.*",
            "billing_address.city",
            "addresses.city",
            "payment.method",
            "extension_attributes.shipping_assignments.x",
            "items.product_options.info_buyRequest",
        ] {
            assert_eq!(paths.unknown(ok), None, "{ok}");
        }
        assert_eq!(
            paths.unknown("shipping_address").unwrap(),
            "an order has no field `shipping_address`"
        );
        assert_eq!(
            paths.unknown("items.skew").unwrap(),
            "`items` has no field `skew`"
        );
        assert_eq!(
            paths.unknown("entity_id.x").unwrap(),
            "`entity_id` has no fields under it"
        );
        assert!(paths.unknown("grand_*").is_some());
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
