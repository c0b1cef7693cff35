#!/usr/bin/env python3
"""Derives the Magento schemas order-sync's demo and tests use from the reference
mysqldumps kept in ../shared/magento (not shipped with this project):

  magento2-sales-schema.sql         from the Magento 2.4.5-p1 dump (MySQL 8.0.31)
  magento1-magev1-sales-schema.sql  from the Magento 1.9.3.2 dump with table prefix `magev1_`
  magento1-magev1-sales-documents-schema.sql
                                    from the OpenMage 19.4.23 (Magento 1.9.4.5) dump of a
                                    real install: its invoice, shipment and credit memo
                                    tables, given the prefix `magev1_` the order tables have

Why derived and not copied: order-sync only needs the tables it reads (orders, their
children, stores), and the dump was made on MySQL 8, whose `utf8mb4_0900_ai_ci`
collation MariaDB lacks. The foreign key to `customer_entity` is dropped because the
customer tables are not part of the reference data; everything else is kept as dumped,
so the columns, types and defaults are Magento's own.

Usage (from the project root):
  python3 deploy/magento/derive-schema.py m2 ../shared/magento/magento2.4.5-p1-mysqldump-sales_order-ddl.sql > deploy/magento/magento2-sales-schema.sql
  python3 deploy/magento/derive-schema.py m1 ../shared/magento/magento1.9.3.2-prefix-magev1-sales_flat_order.sql > deploy/magento/magento1-magev1-sales-schema.sql
  python3 deploy/magento/derive-schema.py m1-documents ../shared/magento/openmage-19.4.23-sales-ddl.sql > deploy/magento/magento1-magev1-sales-documents-schema.sql
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

M1_DOCUMENTS = [
    "sales_flat_invoice", "sales_flat_invoice_item", "sales_flat_invoice_comment",
    "sales_flat_shipment", "sales_flat_shipment_item", "sales_flat_shipment_track",
    "sales_flat_shipment_comment",
    "sales_flat_creditmemo", "sales_flat_creditmemo_item", "sales_flat_creditmemo_comment",
]


def m1_documents(path):
    """The document tables of the OpenMage dump (mysqldump --no-data of MariaDB
    10.11: no per-table comment, each table starts at its DROP TABLE), under
    the prefix of the Magento 1 order tables: every table name the blocks
    name, in CREATE, DROP and REFERENCES, gets `magev1_`. The AUTO_INCREMENT
    the installer's own test rows left is dropped, so ids start at 1."""
    text = open(path, encoding="utf-8").read()
    first = text.index("DROP TABLE IF EXISTS `")
    footer = text.index("/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;")
    header = text[text.index("/*!40101"):first]
    blocks = re.split(r"(?=DROP TABLE IF EXISTS `)", text[first:footer])
    by_name = {re.match(r"DROP TABLE IF EXISTS `([^`]+)`", b).group(1): b for b in blocks if b}
    out = [
        "-- Derived by deploy/magento/derive-schema.py (m1-documents) from the mysqldump of a\n"
        "-- real OpenMage 19.4.23 (Magento 1.9.4.5) install (MariaDB 10.11). Changes: only the\n"
        "-- invoice, shipment and credit memo tables; table prefix magev1_ added (as the order\n"
        "-- tables have it); AUTO_INCREMENT start dropped.\n",
        header,
    ]
    for name in M1_DOCUMENTS:
        b = by_name[name]
        b = re.sub(r"`((?:sales_flat|core)_\w+)`", r"`magev1_\1`", b)
        b = re.sub(r" AUTO_INCREMENT=\d+", "", b)
        out.append(b)
    out.append(text[footer:])
    sys.stdout.write("".join(out))


def main(kind, path):
    if kind == "m1-documents":
        return m1_documents(path)
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
