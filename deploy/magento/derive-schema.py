#!/usr/bin/env python3
"""Derives deploy/magento/magento2-sales-schema.sql from the Magento 2.4.5-p1 mysqldump
kept in ../shared/magento (not shipped with this project).

Why derived and not copied: order-sync only needs the tables it reads (orders, their
children, stores), and the dump was made on MySQL 8, whose `utf8mb4_0900_ai_ci`
collation MariaDB lacks. The foreign key to `customer_entity` is dropped because the
customer tables are not part of the reference data; everything else is kept as dumped,
so the columns, types and defaults are Magento's own.

Usage: python3 deploy/magento/derive-schema.py ../shared/magento/magento2.4.5-p1-mysqldump-sales_order-ddl.sql
"""
import re
import sys

KEEP = [
    "store_website", "store_group", "store",
    "sales_order", "sales_order_item", "sales_order_address",
    "sales_order_payment", "sales_order_status_history",
    "sales_sequence_meta", "sales_sequence_profile", "sequence_order_0", "sequence_order_1",
]

def main(path):
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
        "-- Derived by deploy/magento/derive-schema.py from a Magento 2.4.5-p1 mysqldump\n"
        "-- (MySQL 8.0.31). Changes: only the tables order-sync reads; collation\n"
        "-- utf8mb4_0900_ai_ci -> utf8mb4_general_ci (MariaDB lacks it); FK to\n"
        "-- customer_entity dropped (customer tables are not included).\n",
        header,
    ]
    for name in KEEP:
        b = by_name[name]
        b = b.replace("utf8mb4_0900_ai_ci", "utf8mb4_general_ci")
        b = re.sub(r"\n  CONSTRAINT `[^`]+` FOREIGN KEY \(`customer_id`\) REFERENCES `customer_entity`[^\n]*", "", b)
        # Removing the last constraint of a table may leave a dangling comma.
        b = re.sub(r",\n\) ENGINE", "\n) ENGINE", b)
        out.append(b)
    out.append(text[footer:])
    sys.stdout.write("".join(out))

if __name__ == "__main__":
    main(sys.argv[1])
