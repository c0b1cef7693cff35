#!/usr/bin/env python3
"""Derives the invoice, shipment and credit memo tables order-sync reads from
Magento 2's Sales declarative schema (db_schema.xml, kept in ../shared/magento,
not shipped with this project), as MariaDB DDL.

Why from the XML: the reference mysqldumps hold only the order tables. The
declarative schema is what Magento itself installs these tables from, so the
columns, types, defaults and keys are Magento's own. Foreign keys to tables
outside this set are dropped.

Magento 1's documents are not these (a real Magento 1 has `hidden_tax_*` and
`weee_*` columns and none of Magento 2's `discount_tax_compensation_*`): they
come from a real OpenMage install's dump, `derive-schema.py m1-documents`.

Usage (from the project root):
  python3 deploy/magento/derive-documents.py m2 ../shared/magento/magento2-Sales-db_schema.xml > deploy/magento/magento2-sales-documents-schema.sql
"""
import sys
import xml.etree.ElementTree as ET

TABLES = [
    "sales_invoice", "sales_invoice_item", "sales_invoice_comment",
    "sales_shipment", "sales_shipment_item", "sales_shipment_track", "sales_shipment_comment",
    "sales_creditmemo", "sales_creditmemo_item", "sales_creditmemo_comment",
]
XSI = "{http://www.w3.org/2001/XMLSchema-instance}type"


def name_for(kind, table):
    if kind != "m2":
        raise SystemExit("only m2: Magento 1's documents come from derive-schema.py m1-documents")
    return table


def column(c):
    t = c.get(XSI)
    name = c.get("name")
    unsigned = " UNSIGNED" if c.get("unsigned") == "true" else ""
    if t in ("int", "smallint", "bigint", "tinyint"):
        sql = f"{t.upper()}{unsigned}"
    elif t == "decimal":
        sql = f"DECIMAL({c.get('precision', '10')},{c.get('scale', '0')})"
    elif t == "varchar":
        sql = f"VARCHAR({c.get('length', '255')})"
    elif t in ("text", "mediumtext", "longtext", "blob", "mediumblob", "date", "datetime", "timestamp"):
        sql = t.upper()
    else:
        raise SystemExit(f"unknown column type {t} for {name}")
    nullable = c.get("nullable", "true") == "true"
    sql += "" if nullable else " NOT NULL"
    default = c.get("default")
    if default is not None:
        if t in ("timestamp", "datetime") and default == "CURRENT_TIMESTAMP":
            sql += " DEFAULT CURRENT_TIMESTAMP"
        elif t in ("int", "smallint", "bigint", "tinyint", "decimal"):
            sql += f" DEFAULT {default}"
        else:
            sql += f" DEFAULT '{default}'"
    elif nullable:
        sql += " DEFAULT NULL"
    if c.get("on_update") == "true":
        sql += " ON UPDATE CURRENT_TIMESTAMP"
    if c.get("identity") == "true":
        sql += " AUTO_INCREMENT"
    return f"  `{name}` {sql}"


def main(kind, path):
    root = ET.parse(path).getroot()
    tables = {t.get("name"): t for t in root.findall("table")}
    print(f"-- Derived by deploy/magento/derive-documents.py ({kind}) from Magento 2's Sales db_schema.xml.")
    print("-- Invoices, shipments and credit memos with their items, tracks and comments.\n")
    for table in TABLES:
        t = tables[table]
        lines = [column(c) for c in t.findall("column")]
        for con in t.findall("constraint"):
            cols = ", ".join(f"`{c.get('name')}`" for c in con.findall("column"))
            if con.get(XSI) == "primary":
                lines.append(f"  PRIMARY KEY ({cols})")
            elif con.get(XSI) == "unique":
                lines.append(f"  UNIQUE KEY `{con.get('referenceId')}` ({cols})")
        for idx in t.findall("index"):
            if idx.get("indexType") == "fulltext":
                continue
            cols = ", ".join(f"`{c.get('name')}`" for c in idx.findall("column"))
            lines.append(f"  KEY `{idx.get('referenceId')}` ({cols})")
        body = ",\n".join(lines)
        print(f"CREATE TABLE `{name_for(kind, table)}` (\n{body}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3;\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
