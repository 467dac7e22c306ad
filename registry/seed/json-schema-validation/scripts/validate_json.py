#!/usr/bin/env python3
"""Validate JSON documents against a JSON Schema using only the standard library.

Supports the commonly used subset of draft 2020-12 / draft-07 keywords:
type, enum, const, properties, required, additionalProperties,
patternProperties, propertyNames, minProperties, maxProperties, items
(schema form), prefixItems, minItems, maxItems, uniqueItems, contains,
minimum, maximum, exclusiveMinimum, exclusiveMaximum, multipleOf,
minLength, maxLength, pattern, format (date, date-time, email, uri, uuid,
ipv4), allOf, anyOf, oneOf, not, if/then/else, and local $ref
("#/$defs/..." or "#/definitions/..."). Unknown keywords are ignored and
reported once with --strict.

Exit codes: 0 all documents valid, 1 validation errors found,
2 bad arguments or unreadable/invalid JSON.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
from datetime import date, datetime
from pathlib import Path
from urllib.parse import urlparse

KNOWN = {
    "$schema", "$id", "$ref", "$defs", "definitions", "$comment", "title", "description",
    "default", "examples", "type", "enum", "const", "properties", "required",
    "additionalProperties", "patternProperties", "propertyNames", "minProperties",
    "maxProperties", "items", "prefixItems", "minItems", "maxItems", "uniqueItems",
    "contains", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
    "minLength", "maxLength", "pattern", "format", "allOf", "anyOf", "oneOf", "not",
    "if", "then", "else", "deprecated", "readOnly", "writeOnly",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def type_matches(value, expected: str) -> bool:
    if expected == "null":
        return value is None
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer())
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected == "string":
        return isinstance(value, str)
    if expected == "array":
        return isinstance(value, list)
    if expected == "object":
        return isinstance(value, dict)
    return False


def format_ok(value: str, fmt: str) -> bool:
    try:
        if fmt == "date":
            date.fromisoformat(value)
        elif fmt == "date-time":
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        elif fmt == "email":
            return bool(EMAIL.match(value))
        elif fmt in ("uri", "url"):
            parsed = urlparse(value)
            return bool(parsed.scheme and (parsed.netloc or parsed.path))
        elif fmt == "uuid":
            return bool(UUID.match(value))
        elif fmt == "ipv4":
            ipaddress.IPv4Address(value)
        elif fmt == "ipv6":
            ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


def pointer(path: list) -> str:
    if not path:
        return "$"
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class Validator:
    def __init__(self, root: dict, strict: bool) -> None:
        self.root = root
        self.strict = strict
        self.unknown: set[str] = set()

    def resolve(self, ref: str) -> dict:
        if not ref.startswith("#"):
            raise ValueError(f"only local $ref values are supported, got {ref!r}")
        node = self.root
        for part in ref.lstrip("#/").split("/") if ref not in ("#", "#/") else []:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[part]
        return node

    def errors(self, value, schema, path: list) -> list[str]:
        if schema is True or schema == {}:
            return []
        if schema is False:
            return [f"{pointer(path)}: no value is allowed here"]
        out: list[str] = []
        here = pointer(path)
        if self.strict:
            self.unknown.update(k for k in schema if k not in KNOWN)
        if "$ref" in schema:
            out += self.errors(value, self.resolve(schema["$ref"]), path)

        if "type" in schema:
            expected = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(type_matches(value, t) for t in expected):
                return out + [f"{here}: expected {' or '.join(expected)}, got {type(value).__name__}"]
        if "enum" in schema and not any(same(value, option) for option in schema["enum"]):
            out.append(f"{here}: {value!r} is not one of {schema['enum']!r}")
        if "const" in schema and not same(value, schema["const"]):
            out.append(f"{here}: must equal {schema['const']!r}")

        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                out.append(f"{here}: {value} is less than minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                out.append(f"{here}: {value} is greater than maximum {schema['maximum']}")
            if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
                out.append(f"{here}: {value} must be greater than {schema['exclusiveMinimum']}")
            if "exclusiveMaximum" in schema and value >= schema["exclusiveMaximum"]:
                out.append(f"{here}: {value} must be less than {schema['exclusiveMaximum']}")
            if "multipleOf" in schema and (value / schema["multipleOf"]) % 1 != 0:
                out.append(f"{here}: {value} is not a multiple of {schema['multipleOf']}")

        if isinstance(value, str):
            if "minLength" in schema and len(value) < schema["minLength"]:
                out.append(f"{here}: string shorter than {schema['minLength']} characters")
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                out.append(f"{here}: string longer than {schema['maxLength']} characters")
            if "pattern" in schema and not re.search(schema["pattern"], value):
                out.append(f"{here}: {value!r} does not match pattern {schema['pattern']!r}")
            if "format" in schema and not format_ok(value, schema["format"]):
                out.append(f"{here}: {value!r} is not a valid {schema['format']}")

        if isinstance(value, list):
            out += self.array_errors(value, schema, path)
        if isinstance(value, dict):
            out += self.object_errors(value, schema, path)

        for sub in schema.get("allOf", []):
            out += self.errors(value, sub, path)
        if "anyOf" in schema and not any(not self.errors(value, s, path) for s in schema["anyOf"]):
            out.append(f"{here}: does not match any schema in anyOf")
        if "oneOf" in schema:
            matches = sum(1 for s in schema["oneOf"] if not self.errors(value, s, path))
            if matches != 1:
                out.append(f"{here}: matches {matches} schemas in oneOf, expected exactly 1")
        if "not" in schema and not self.errors(value, schema["not"], path):
            out.append(f"{here}: must not match the 'not' schema")
        if "if" in schema:
            branch = "then" if not self.errors(value, schema["if"], path) else "else"
            if branch in schema:
                out += self.errors(value, schema[branch], path)
        return out

    def array_errors(self, value: list, schema: dict, path: list) -> list[str]:
        out: list[str] = []
        here = pointer(path)
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(f"{here}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(f"{here}: more than {schema['maxItems']} items")
        if schema.get("uniqueItems"):
            seen = [json.dumps(v, sort_keys=True) for v in value]
            if len(seen) != len(set(seen)):
                out.append(f"{here}: items are not unique")
        prefix = schema.get("prefixItems", [])
        for index, item_schema in enumerate(prefix[: len(value)]):
            out += self.errors(value[index], item_schema, path + [index])
        items = schema.get("items")
        if isinstance(items, list):  # draft-07 tuple form
            for index, item_schema in enumerate(items[: len(value)]):
                out += self.errors(value[index], item_schema, path + [index])
        elif items is not None:
            for index in range(len(prefix), len(value)):
                out += self.errors(value[index], items, path + [index])
        if "contains" in schema and not any(not self.errors(v, schema["contains"], path) for v in value):
            out.append(f"{here}: no item matches 'contains'")
        return out

    def object_errors(self, value: dict, schema: dict, path: list) -> list[str]:
        out: list[str] = []
        here = pointer(path)
        for name in schema.get("required", []):
            if name not in value:
                out.append(f"{here}: missing required property '{name}'")
        if "minProperties" in schema and len(value) < schema["minProperties"]:
            out.append(f"{here}: fewer than {schema['minProperties']} properties")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            out.append(f"{here}: more than {schema['maxProperties']} properties")
        properties = schema.get("properties", {})
        patterns = schema.get("patternProperties", {})
        for key, item in value.items():
            if "propertyNames" in schema:
                out += [f"{here}: property name {key!r} invalid ({e.split(': ', 1)[-1]})"
                        for e in self.errors(key, schema["propertyNames"], path)]
            matched = False
            if key in properties:
                matched = True
                out += self.errors(item, properties[key], path + [key])
            for regex, sub in patterns.items():
                if re.search(regex, key):
                    matched = True
                    out += self.errors(item, sub, path + [key])
            if not matched and "additionalProperties" in schema:
                extra = schema["additionalProperties"]
                if extra is False:
                    out.append(f"{here}: unexpected property '{key}'")
                else:
                    out += self.errors(item, extra, path + [key])
        return out


def load_json(path: str):
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def documents(path: str, json_lines: bool):
    if not json_lines:
        yield path, load_json(path)
        return
    text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield f"{path}:{number}", json.loads(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Validate JSON files against a JSON Schema (stdlib only).")
    parser.add_argument("schema", help="path to the JSON Schema file")
    parser.add_argument("documents", nargs="+", help="JSON files to validate (- for stdin)")
    parser.add_argument("--jsonl", action="store_true", help="treat each document file as JSON Lines")
    parser.add_argument("--max-errors", type=int, default=50, help="errors to print per document (default: 50)")
    parser.add_argument("--strict", action="store_true", help="warn about schema keywords this tool ignores")
    parser.add_argument("--quiet", action="store_true", help="only print failures")
    args = parser.parse_args(argv)

    try:
        schema = load_json(args.schema)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot load schema {args.schema}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(schema, (dict, bool)):
        print("error: a schema must be a JSON object or boolean", file=sys.stderr)
        return 2

    validator = Validator(schema if isinstance(schema, dict) else {}, args.strict)
    failed = checked = 0
    for doc_path in args.documents:
        try:
            for label, document in documents(doc_path, args.jsonl):
                checked += 1
                problems = validator.errors(document, schema, [])
                if problems:
                    failed += 1
                    print(f"FAIL {label}: {len(problems)} error(s)")
                    for problem in problems[: args.max_errors]:
                        print(f"  {problem}")
                elif not args.quiet:
                    print(f"ok   {label}")
        except (OSError, json.JSONDecodeError) as exc:
            print(f"error: cannot read {doc_path}: {exc}", file=sys.stderr)
            return 2
        except (ValueError, KeyError, re.error) as exc:
            print(f"error: schema problem while checking {doc_path}: {exc}", file=sys.stderr)
            return 2

    if validator.unknown:
        print(f"warning: ignored schema keywords: {', '.join(sorted(validator.unknown))}", file=sys.stderr)
    print(f"{checked - failed}/{checked} document(s) valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
