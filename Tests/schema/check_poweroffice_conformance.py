#!/usr/bin/env python3
"""Check recorded PowerOffice Go simulator responses against the real OpenAPI document.

    check_poweroffice_conformance.py [--spec PATH] RECORDING.jsonl

Each line of RECORDING is one exchange the simulator answered:
    {"method": "GET", "path": "/Customers/{id}", "status": 200,
     "contentType": "application/json; charset=utf-8", "body": <JSON or null>, "bodyText": "..."}
where `path` is the spec's path template. For each exchange the script finds the operation
(path and method must be in the spec) and the response for the status, which must be listed
explicitly (a status only covered by `default` fails: the simulator should not invent
statuses). When that response has an application/json schema, the body must be JSON of a
JSON type and validate against the schema, with `$ref`s resolved and OpenAPI 3.0 `nullable`
translated to JSON Schema; formats date, date-time and uuid are checked. A 204 must have an
empty body. Responses the spec lists without content (401, 403, 429, DELETE's 200) are
accepted without a body check.

Prints one line per exchange and a summary; exits 0 when all conform, 1 when any does not,
2 on bad usage, 3 when PyYAML or jsonschema is missing.
"""
import argparse
import copy
import datetime
import json
import pathlib
import re
import sys

try:
    import jsonschema
    import yaml
except ImportError as error:
    print(f"check_poweroffice_conformance: {error.name} is not installed (pip install jsonschema pyyaml)", file=sys.stderr)
    sys.exit(3)

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_SPEC = ROOT / "specs" / "powerofficego-v2.openapi.yaml"
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})$")
UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def to_json_schema(node):
    """OpenAPI 3.0 schema object -> JSON Schema (2020-12): `nullable: true` admits null."""
    if isinstance(node, list):
        return [to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: to_json_schema(value) for key, value in node.items()
           if key not in ("nullable", "example", "xml", "discriminator", "externalDocs")}
    if node.get("nullable"):
        if "type" in out:
            types = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = types + ["null"]
            if "enum" in out and None not in out["enum"]:
                out["enum"] = out["enum"] + [None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def format_checker():
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks("date", raises=ValueError)
    def is_date(value):
        if not isinstance(value, str):
            return True
        if not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
            raise ValueError("not yyyy-MM-dd")
        datetime.date.fromisoformat(value)
        return True

    @checker.checks("date-time")
    def is_date_time(value):
        return not isinstance(value, str) or bool(DATE_TIME.match(value))

    @checker.checks("uuid")
    def is_uuid(value):
        return not isinstance(value, str) or bool(UUID.match(value))

    return checker


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default=str(DEFAULT_SPEC))
    parser.add_argument("recording")
    args = parser.parse_args()

    spec = yaml.safe_load(pathlib.Path(args.spec).read_text(encoding="utf-8"))
    components = {"schemas": to_json_schema(spec["components"]["schemas"])}
    checker = format_checker()
    try:
        lines = [json.loads(line) for line in pathlib.Path(args.recording).read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as error:
        print(f"check_poweroffice_conformance: cannot read {args.recording}: {error}", file=sys.stderr)
        return 2
    if not lines:
        print("check_poweroffice_conformance: the recording is empty", file=sys.stderr)
        return 2

    failures = 0
    covered = set()
    for exchange in lines:
        method, path, status = exchange["method"].lower(), exchange["path"], str(exchange["status"])
        label = f"{exchange['method']} {path} -> {status}"
        operation = spec["paths"].get(path, {}).get(method)
        if operation is None:
            failures += 1
            print(f"FAIL {label}: no such operation in the spec")
            continue
        response = operation["responses"].get(status)
        if response is None:
            failures += 1
            print(f"FAIL {label}: status not listed for this operation (only 'default' would cover it)")
            continue
        covered.add((exchange["method"], path, status))
        body_text = exchange.get("bodyText") or ""
        schema = response.get("content", {}).get("application/json", {}).get("schema")
        if status == "204":
            if body_text:
                failures += 1
                print(f"FAIL {label}: 204 with a body")
            else:
                print(f"ok   {label}: empty")
            continue
        if schema is None:
            print(f"ok   {label}: the spec gives no body schema")
            continue
        content_type = (exchange.get("contentType") or "").split(";")[0].strip().lower()
        if not (content_type == "application/json" or content_type.endswith("+json")):
            failures += 1
            print(f"FAIL {label}: Content-Type {content_type!r} is not JSON")
            continue
        if exchange.get("body") is None:
            failures += 1
            print(f"FAIL {label}: the body is not JSON: {body_text[:200]!r}")
            continue
        root = dict(to_json_schema(copy.deepcopy(schema)))
        root["components"] = components
        validator = jsonschema.Draft202012Validator(root, format_checker=checker)
        errors = sorted(validator.iter_errors(exchange["body"]), key=lambda e: list(e.absolute_path))
        if errors:
            failures += 1
            for error in errors[:10]:
                where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
                print(f"FAIL {label}: {where}: {error.message[:300]}")
        else:
            print(f"ok   {label}: conforms to {schema.get('$ref', schema.get('type'))}")

    print(f"{len(lines) - failures}/{len(lines)} responses conform; "
          f"{len(covered)} distinct (method, path, status) checked")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
