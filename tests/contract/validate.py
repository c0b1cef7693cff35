#!/usr/bin/env python3
"""Validates JSON documents against a schema of docs/asyncapi.yaml.

    validate.py docs/asyncapi.yaml SCHEMA FILE...   # e.g. OrderToSync a.json b.json
    validate.py docs/asyncapi.yaml --examples       # every message example in the document

Prints one line per problem and exits 1 if there is any. Needs PyYAML and
jsonschema (pip install -r tests/contract/requirements.txt).
"""
import json
import sys

import jsonschema
import yaml


def validator(doc, schema):
    # The schema refers to others as "#/components/schemas/X": keep them in the root.
    root = {"$ref": schema, "components": doc["components"]}
    return jsonschema.Draft7Validator(root, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)


def check(doc, schema, instance, label):
    problems = 0
    for e in validator(doc, schema).iter_errors(instance):
        path = "/".join(str(p) for p in e.absolute_path) or "(root)"
        print(f"{label}: {path}: {e.message}")
        problems += 1
    return problems


def main():
    doc = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
    problems = 0
    if sys.argv[2] == "--examples":
        for name, message in doc["components"]["messages"].items():
            payload = message.get("payload", {})
            for example in message.get("examples", []):
                problems += check(doc, payload["$ref"], example["payload"], f"{name} example {example.get('name')}")
    else:
        schema = f"#/components/schemas/{sys.argv[2]}"
        for path in sys.argv[3:]:
            problems += check(doc, schema, json.load(open(path, encoding="utf-8")), path)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
