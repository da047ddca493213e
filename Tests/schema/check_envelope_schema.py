#!/usr/bin/env python3
"""Validate envelope examples against docs/schemas/envelope.v1.schema.json.

    check_envelope_schema.py [--schema PATH] [--valid DIR] [--invalid DIR] [FILE...]

Every *.json file in --valid (and every FILE) must conform to the schema; every *.json file
in --invalid must be rejected by it. An invalid file named `<field>--<anything>.json` must be
rejected because of that top-level field (an error at or below it, or it being required), so
a document cannot pass the check by being broken in some other, unintended way. Prints one line per file and exits 0 when all files
behave as expected, 1 when any does not, 2 on bad usage or an unreadable schema, and 3 when
the `jsonschema` package is missing (pip install jsonschema, or apt install python3-jsonschema).

The ParleyMessagingTests run this with examples written by the Swift encoder.
"""
import argparse
import json
import pathlib
import sys

try:
    import jsonschema
except ImportError:
    print("check_envelope_schema: the Python package 'jsonschema' is not installed "
          "(pip install jsonschema, or apt install python3-jsonschema)", file=sys.stderr)
    sys.exit(3)

DEFAULT_SCHEMA = pathlib.Path(__file__).resolve().parents[2] / "docs" / "schemas" / "envelope.v1.schema.json"


def json_files(directory):
    if directory is None:
        return []
    path = pathlib.Path(directory)
    if not path.is_dir():
        print(f"check_envelope_schema: not a directory: {path}", file=sys.stderr)
        sys.exit(2)
    return sorted(path.glob("*.json"))


def expected_field(path):
    """`trace--missing-traceparent.json` -> "trace"; None when the name names no field."""
    field, separator, _ = path.stem.partition("--")
    return field if separator else None


def about(error, field):
    """Whether a validation error concerns the top-level `field`."""
    if field is None:
        return True
    if list(error.absolute_path)[:1] == [field]:
        return True
    return error.validator == "required" and f"'{field}'" in error.message


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schema", default=str(DEFAULT_SCHEMA))
    parser.add_argument("--valid", help="directory of examples that must conform")
    parser.add_argument("--invalid", help="directory of examples that must be rejected")
    parser.add_argument("files", nargs="*", help="more examples that must conform")
    args = parser.parse_args()

    try:
        schema = json.loads(pathlib.Path(args.schema).read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)
    except (OSError, ValueError, jsonschema.exceptions.SchemaError) as error:
        print(f"check_envelope_schema: bad schema {args.schema}: {error}", file=sys.stderr)
        return 2
    validator = jsonschema.Draft202012Validator(schema)

    expectations = [(pathlib.Path(f), True) for f in args.files]
    expectations += [(f, True) for f in json_files(args.valid)]
    expectations += [(f, False) for f in json_files(args.invalid)]
    if not expectations:
        print("check_envelope_schema: no example files given", file=sys.stderr)
        return 2

    failures = 0
    for path, should_conform in expectations:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            print(f"FAIL {path.name}: cannot read JSON: {error}")
            failures += 1
            continue
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        if should_conform and errors:
            failures += 1
            for error in errors:
                where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
                print(f"FAIL {path.name}: should conform but {where}: {error.message}")
        elif not should_conform and not errors:
            failures += 1
            print(f"FAIL {path.name}: should be rejected but conforms")
        elif not should_conform and not any(about(error, expected_field(path)) for error in errors):
            failures += 1
            reasons = "; ".join(error.message[:100] for error in errors)
            print(f"FAIL {path.name}: should be rejected because of {expected_field(path)!r}, but: {reasons}")
        else:
            verdict = "conforms" if should_conform else f"rejected ({errors[0].message[:100]})"
            print(f"ok   {path.name}: {verdict}")

    print(f"{len(expectations) - failures}/{len(expectations)} examples as expected")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
