#!/usr/bin/env python3
"""Derives the Magento schemas order-sync's demo and tests use from the reference
mysqldumps kept in ../shared/magento (not shipped with this project):

  magento2-sales-schema.sql         from the Magento 2.4.5-p1 dump (MySQL 8.0.31)
  magento1-magev1-sales-schema.sql  from the Magento 1.9.3.2 dump with table prefix `magev1_`

Why derived and not copied: order-sync only needs the tables it reads (orders, their
children, stores), and the dump was made on MySQL 8, whose `utf8mb4_0900_ai_ci`
collation MariaDB lacks. The foreign key to `customer_entity` is dropped because the
customer tables are not part of the reference data; everything else is kept as dumped,
so the columns, types and defaults are Magento's own.

Usage (from the project root):
  python3 deploy/magento/derive-schema.py m2 ../shared/magento/magento2.4.5-p1-mysqldump-sales_order-ddl.sql > deploy/magento/magento2-sales-schema.sql
  python3 deploy/magento/derive-schema.py m1 ../shared/magento/magento1.9.3.2-prefix-magev1-sales_flat_order.sql > deploy/magento/magento1-magev1-sales-schema.sql
"""
import re
import sys

KEEP = {
    "m2": [
        "store_website", "store_group", "store",
        "sales_order", "sales_order_item", "sales_order_address",
        "sales_order_payment", "sales_order_status_history",
        "sales_sequence_meta", "sales_sequence_profile", "sequence_order_0", "sequence_order_1",
    ],
    "m1": [
        "magev1_core_website", "magev1_core_store_group", "magev1_core_store",
        "magev1_sales_flat_order", "magev1_sales_flat_order_item", "magev1_sales_flat_order_address",
        "magev1_sales_flat_order_payment", "magev1_sales_flat_order_status_history",
    ],
}

SOURCE = {
    "m2": "a Magento 2.4.5-p1 mysqldump\n-- (MySQL 8.0.31)",
    "m1": "a Magento 1.9.3.2 mysqldump\n-- (MySQL 5.7.17, table prefix magev1_)",
}

def main(kind, path):
    text = open(path, encoding="utf-8").read()
    first = text.index("--\n-- Table structure for table")
    footer = text.index("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;")
    header = text[:first]
    blocks = re.split(r"(?=--\n-- Table structure for table `)", text[first:footer])
    by_name = {}
    for b in blocks:
        m = re.match(r"--\n-- Table structure for table `([^`]+)`", b)
        if m:
            by_name[m.group(1)] = b
    out = [
        "-- Derived by deploy/magento/derive-schema.py from " + SOURCE[kind] + ". Changes: only the tables order-sync reads; collation\n"
        "-- utf8mb4_0900_ai_ci -> utf8mb4_general_ci (MariaDB lacks it); FK to\n"
        "-- customer_entity dropped (customer tables are not included).\n",
        header,
    ]
    for name in KEEP[kind]:
        b = by_name[name]
        b = b.replace("utf8mb4_0900_ai_ci", "utf8mb4_general_ci")
        b = re.sub(r"\n  CONSTRAINT `[^`]+` FOREIGN KEY \(`customer_id`\) REFERENCES `\w*customer_entity`[^\n]*", "", b)
        # Removing the last constraint of a table may leave a dangling comma.
        b = re.sub(r",\n\) ENGINE", "\n) ENGINE", b)
        out.append(b)
    out.append(text[footer:])
    sys.stdout.write("".join(out))

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
