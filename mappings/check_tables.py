#!/usr/bin/env python3
"""Check the mapping tables in mappings/<system>/<entity>.yaml.

Rules (the Swift loader enforces the same): known system/entity, contract file exists,
schema and writeSchema exist, `id`/`modifiedAt` exist in the read schema, every native path
exists in the schema(s) its direction needs (following $ref, allOf, array items; `[]` steps
into an array), canonical paths come from docs/canonical-model.md, converters from
docs/converters.md (or identity/reference), each canonical path at most once, `vatRate` only
and always on VAT-inclusive price rows, group rows only for personName.

Usage: python3 mappings/check_tables.py [table.yaml ...]   (default: every table). Exit 1 on errors.
"""
import os, re, sys, glob
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = {"customerp", "customwebshop", "powerofficego"}
ENTITIES = {"customer": "Customer", "product": "Product", "order": "Order"}
KEYS = {"system", "entity", "contract", "schema", "writeSchema", "id", "modifiedAt", "fields"}
ROW_KEYS = {"canonical", "native", "converter", "direction", "vatRate"}
VAT_CONVERTERS = {"vatInclusivePrice", "vatInclusivePriceString"}


class Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader, node):
    m = yaml.SafeLoader.construct_mapping(loader, node)
    m["__line__"] = node.start_mark.line + 1
    return m


Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def canonical_paths():
    """entity -> set of paths, from the tables under '### Customer|Product|Order'."""
    text = open(os.path.join(ROOT, "docs/canonical-model.md"), encoding="utf-8").read()
    out, current = {}, None
    for line in text.splitlines():
        h = re.match(r"^### (Customer|Product|Order)\s*$", line)
        if h:
            current = h.group(1).lower()
            out[current] = set()
            continue
        if line.startswith("## "):
            current = None
        if current:
            m = re.match(r"^\| `([A-Za-z0-9.]+)` \|", line)
            if m:
                out[current].add(m.group(1))
    return out


def converter_names():
    """Fixed names and enum tables from docs/converters.md."""
    text = open(os.path.join(ROOT, "docs/converters.md"), encoding="utf-8").read()
    names, enum_tables = {"identity", "reference"}, set()
    section = None
    for line in text.splitlines():
        if line.startswith("#"):
            section = line
        m = re.match(r"^\| (`[^|]+`(?: / `[^|]+`)*) \|", line)
        if not m:
            continue
        cells = re.findall(r"`([^`]+)`", m.group(1))
        if section and "Enum tables" in section:
            enum_tables.update(cells)
        elif section and "Converter names" in section:
            names.update(c for c in cells if "<" not in c)
    names.update("enum:" + t for t in enum_tables)
    return names


def known_converter(name, names):
    if name in names:
        return True
    if name.startswith("dateInZone:"):
        return bool(re.match(r"^[A-Za-z_]+(/[A-Za-z_+\-0-9]+)*$", name.split(":", 1)[1]))
    return False


def contract_path(contract):
    p = os.path.join(ROOT, contract)
    if os.path.exists(p):
        return p
    if contract.startswith("specs/"):  # the shared PowerOffice Go spec
        for base in (os.path.join(ROOT, "..", "shared"), "/work/shared"):
            q = os.path.join(base, contract)
            if os.path.exists(q):
                return q
    return None


class Spec:
    def __init__(self, path):
        self.doc = yaml.safe_load(open(path, encoding="utf-8"))
        self.schemas = self.doc.get("components", {}).get("schemas", {})

    def resolve(self, s, depth=0):
        while isinstance(s, dict) and "$ref" in s and depth < 50:
            ref = s["$ref"]
            assert ref.startswith("#/components/schemas/"), ref
            s = self.schemas[ref.rsplit("/", 1)[1]]
            depth += 1
        return s

    def properties(self, s):
        s = self.resolve(s)
        props = dict(s.get("properties", {}))
        for part in s.get("allOf", []) + s.get("oneOf", []) + s.get("anyOf", []):
            props.update(self.properties(part))
        return props

    def lookup(self, schema_name, path):
        """Return None if found, else the reason."""
        s = self.schemas.get(schema_name)
        if s is None:
            return f"no schema {schema_name}"
        for step in path.split("."):
            array = step.endswith("[]")
            name = step[:-2] if array else step
            props = self.properties(s)
            if name not in props:
                return f"{schema_name} has no {path!r} (no member {name!r})"
            s = self.resolve(props[name])
            if array:
                if s.get("type") != "array":
                    return f"{name!r} in {path!r} is not an array in {schema_name}"
                s = self.resolve(s["items"])
            elif s.get("type") == "array":
                return f"{name!r} in {path!r} is an array in {schema_name}: write {name}[]"
        return None


def check(path, canon, names):
    errs = []
    rel = os.path.relpath(path, ROOT)

    def err(line, msg):
        errs.append(f"{rel}:{line}: {msg}")

    try:
        t = yaml.load(open(path, encoding="utf-8"), Loader=Loader)
    except yaml.YAMLError as e:
        return [f"{rel}: {e}"]
    if not isinstance(t, dict):
        return [f"{rel}:1: not a mapping"]
    top = t.get("__line__", 1)
    for k in sorted(set(t) - KEYS - {"__line__"}):
        err(top, f"unknown key {k!r}")
    for k in sorted(KEYS - set(t)):
        err(top, f"missing key {k!r}")
    if errs:
        return errs
    system, entity = t["system"], t["entity"]
    if system not in SYSTEMS:
        err(top, f"unknown system {system!r}")
    if entity not in ENTITIES:
        return errs + [f"{rel}:{top}: unknown entity {entity!r}"]
    parts = os.path.normpath(rel).split(os.sep)
    if parts[-2:] != [system, entity + ".yaml"]:
        err(top, f"file should be mappings/{system}/{entity}.yaml")
    cp = contract_path(t["contract"])
    if cp is None:
        return errs + [f"{rel}:{top}: contract {t['contract']!r} not found"]
    spec = Spec(cp)
    missing = [key for key in ("schema", "writeSchema") if t[key] not in spec.schemas]
    for key in missing:
        err(top, f"{key}: no schema {t[key]!r} in {t['contract']}")
    if missing:
        return errs
    for key in ("id", "modifiedAt"):
        r = spec.lookup(t["schema"], t[key])
        if r:
            err(top, f"{key}: {r}")
    seen = {}
    paths = canon[entity]
    if not isinstance(t["fields"], list) or not t["fields"]:
        return errs + [f"{rel}:{top}: fields must be a non-empty list"]
    for row in t["fields"]:
        line = row.get("__line__", top) if isinstance(row, dict) else top
        if not isinstance(row, dict):
            err(line, "a field row must be a mapping")
            continue
        for k in sorted(set(row) - ROW_KEYS - {"__line__"}):
            err(line, f"unknown key {k!r}")
        for k in ("canonical", "native", "converter"):
            if k not in row:
                err(line, f"missing {k!r}")
        if any(k not in row for k in ("canonical", "native", "converter")):
            continue
        conv, direction = row["converter"], row.get("direction", "both")
        if direction not in ("both", "read", "write"):
            err(line, f"direction must be both, read or write, not {direction!r}")
            continue
        c, n = row["canonical"], row["native"]
        group = isinstance(c, list) or isinstance(n, list)
        if group:
            if conv != "personName":
                err(line, "a group row (lists) is only allowed for the personName converter")
            if not (isinstance(c, list) and isinstance(n, list) and len(c) == len(n) == 4):
                err(line, "personName needs canonical [kind, name, firstName, lastName] and four native paths")
                continue
        elif conv == "personName":
            err(line, "personName needs a group row (canonical and native lists)")
            continue
        cs, ns = (c, n) if group else ([c], [n])
        if not known_converter(conv, names):
            err(line, f"unknown converter {conv!r}")
        for cpath in cs:
            if cpath not in paths:
                err(line, f"unknown canonical {entity} path {cpath!r}")
            elif cpath in seen:
                err(line, f"canonical {cpath!r} already mapped at line {seen[cpath]}")
            else:
                seen[cpath] = line
        for npath in ns:
            if not isinstance(npath, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*(\[\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\])?)*$", npath):
                err(line, f"bad native path {npath!r}")
                continue
            wanted = {"both": ["schema", "writeSchema"], "read": ["schema"], "write": ["writeSchema"]}[direction]
            for key in dict.fromkeys(wanted):
                r = spec.lookup(t[key], npath)
                if r:
                    err(line, f"native ({direction}): {r}")
        is_line = any(p.startswith("lines.") for p in cs)
        for npath in ns:
            if isinstance(npath, str) and is_line != ("[]" in npath):
                err(line, "order line fields (lines.*) map to native paths through an array (`x[]`), and only they do")
        if conv in VAT_CONVERTERS:
            rate = row.get("vatRate")
            want = "lines.vatRate" if is_line else "vatRate"
            if rate is None:
                err(line, f"{conv} needs vatRate: {want}")
            elif rate != want or rate not in paths:
                err(line, f"vatRate must be {want!r}, not {rate!r}")
        elif "vatRate" in row:
            err(line, f"vatRate is only for {', '.join(sorted(VAT_CONVERTERS))} rows")
    return errs


def main(argv):
    canon, names = canonical_paths(), converter_names()
    assert all(canon.get(e) for e in ENTITIES), "could not read docs/canonical-model.md"
    files = argv or sorted(glob.glob(os.path.join(ROOT, "mappings", "*", "*.yaml")))
    errs = []
    for f in files:
        errs += check(os.path.abspath(f), canon, names)
    for e in errs:
        print(e)
    print(f"{len(files)} tables, {len(errs)} errors", file=sys.stderr)
    return 1 if errs else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
