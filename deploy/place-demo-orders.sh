#!/usr/bin/env bash
# Places N demo orders (default 1) in the demo Magento database the way
# checkout does: the order, two items, billing and shipping addresses and a
# payment, in one transaction each.
#
#   deploy/place-demo-orders.sh 5
set -euo pipefail
n="${1:-1}"
for _ in $(seq 1 "$n"); do
  mariadb -h127.0.0.1 -uorder_sync -porder_sync magento_demo <<'SQL'
START TRANSACTION;
INSERT INTO sales_order (state, status, store_id, customer_email, customer_firstname, customer_lastname,
  customer_is_guest, base_currency_code, order_currency_code, grand_total, base_grand_total, subtotal,
  total_item_count, store_name)
VALUES ('new', 'pending', 1, 'roni@example.com', 'Veronica', 'Costello', 0, 'USD', 'USD',
  '123.4500', '123.4500', '118.4500', 2, 'Main Website\nMain Website Store\nDefault Store View');
SET @id = LAST_INSERT_ID();
UPDATE sales_order SET increment_id = LPAD(@id, 9, '0') WHERE entity_id = @id;
INSERT INTO sales_order_item (order_id, store_id, sku, name, product_type, qty_ordered, price, row_total) VALUES
  (@id, 1, 'MH01-XS-Black', 'Chaz Kangeroo Hoodie', 'simple', 1, '52.0000', '52.0000'),
  (@id, 1, '24-MB01', 'Joust Duffle Bag', 'simple', 2, '33.2250', '66.4500');
INSERT INTO sales_order_address (parent_id, address_type, firstname, lastname, street, city, postcode, country_id, telephone) VALUES
  (@id, 'billing', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US', '(555) 229-3326'),
  (@id, 'shipping', 'Veronica', 'Costello', '6146 Honey Bluff Parkway', 'Calder', '49628-7978', 'US', '(555) 229-3326');
INSERT INTO sales_order_payment (parent_id, method, amount_ordered) VALUES (@id, 'checkmo', '123.4500');
COMMIT;
SELECT CONCAT('placed order ', LPAD(@id, 9, '0'), ' (entity_id ', @id, ')') AS '';
SQL
done
