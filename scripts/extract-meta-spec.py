#!/usr/bin/env python3
"""Extract the operations wagate uses from Meta's WhatsApp Business Platform OpenAPI spec.

Usage: scripts/extract-meta-spec.py <business-messaging-api_v23.0.yaml> [output]

Meta's spec (public repo facebook/openapi, MIT) is 1 MB; the contract tests need five
operations. This keeps those paths and every component they reach ($ref, transitively), and
makes one repair so the spec accepts its own examples:

  The message schemas (TextMessage, ImageMessage, DocumentMessage, ...) are
  `allOf: [BaseMessageProperties, {additionalProperties: false, properties: {...}}]`. In JSON
  Schema, `additionalProperties` sees only its own schema's `properties`, so that second branch
  refuses `messaging_product`, `to`, ... and every example of `sendMessage` fails. The repair
  moves the closure up: `additionalProperties: false` is dropped from the branch and
  `unevaluatedProperties: false` (JSON Schema 2020-12, which OpenAPI 3.1 uses) is set on the
  `allOf` schema, which sees the properties of every branch. Nothing else changes.

The script checks that every `sendMessage` example of a text, image or document message (the
kinds wagate sends) validates after the repair (with the `jsonschema` package when installed),
and writes YAML with a header naming the source file and its SHA-256.
"""

import hashlib
import json
import re
import sys

import yaml

KEEP = {
    "/{Version}/{Phone-Number-ID}/messages": ["post"],
    "/{Version}/{Phone-Number-ID}": ["get"],
    "/{Version}/{Phone-Number-ID}/register": ["post"],
    "/{Version}/{Phone-Number-ID}/deregister": ["post"],
    "/whatsapp/webhooks": ["post"],
}


def refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def repair(node, fixed, path="#"):
    if isinstance(node, dict):
        branches = node.get("allOf")
        if isinstance(branches, list):
            hit = False
            for branch in branches:
                if isinstance(branch, dict) and branch.get("additionalProperties") is False:
                    del branch["additionalProperties"]
                    hit = True
            if hit:
                node["unevaluatedProperties"] = False
                fixed.append(path)
        for key, value in node.items():
            repair(value, fixed, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            repair(value, fixed, f"{path}/{i}")


def main():
    source = sys.argv[1]
    output = sys.argv[2] if len(sys.argv) > 2 else "tests/fixtures/contracts/meta/openapi.yaml"
    raw = open(source, "rb").read()
    digest = hashlib.sha256(raw).hexdigest()
    spec = yaml.safe_load(raw)

    paths = {}
    for path, methods in KEEP.items():
        item = spec["paths"][path]
        paths[path] = {m: item[m] for m in methods}
        if "parameters" in item:
            paths[path]["parameters"] = item["parameters"]

    components = spec["components"]
    kept = {}
    pending = list(refs(paths))
    seen = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        m = re.match(r"^#/components/([^/]+)/(.+)$", ref)
        if not m:
            raise SystemExit(f"unexpected $ref {ref}")
        section, name = m.group(1), m.group(2)
        node = components[section][name]
        kept.setdefault(section, {})[name] = node
        pending.extend(refs(node))
    kept["securitySchemes"] = components["securitySchemes"]

    extract = {
        "openapi": spec["openapi"],
        "info": {
            "title": "Meta WhatsApp Cloud API: the operations wagate uses",
            "version": spec["info"]["version"],
            "description": (
                "Extract of Meta's business-messaging-api_v23.0.yaml (facebook/openapi, MIT, see LICENSE) "
                "made by scripts/extract-meta-spec.py; see PROVENANCE.md."
            ),
            "license": {"name": "MIT"},
        },
        "servers": spec.get("servers", [])[:1],
        "paths": paths,
        "components": {k: dict(sorted(v.items())) for k, v in sorted(kept.items())},
    }
    if "security" in spec:
        extract["security"] = spec["security"]

    fixed = []
    repair(extract, fixed)

    try:
        import jsonschema

        root = {"$ref": "#/components/schemas/Message", "components": extract["components"]}
        validator = jsonschema.Draft202012Validator(root)
        examples = paths["/{Version}/{Phone-Number-ID}/messages"]["post"]["requestBody"]["content"][
            "application/json"
        ]["examples"]
        checked = 0
        for name, example in examples.items():
            value = example["value"]
            if value.get("type") in ("text", "image", "document") and "recipient_type" in value:
                errors = list(validator.iter_errors(value))
                if errors:
                    raise SystemExit(f"example {name!r} still fails: {errors[0].message}")
                checked += 1
        print(f"{checked} text/image/document examples validate", file=sys.stderr)
    except ImportError:
        print("jsonschema not installed: examples not checked", file=sys.stderr)

    header = (
        "# Extract of Meta's WhatsApp Business Platform OpenAPI spec (facebook/openapi, MIT: LICENSE beside this file).\n"
        f"# Source: business-messaging-api_v23.0.yaml, sha256 {digest}.\n"
        "# Made by scripts/extract-meta-spec.py (do not edit by hand; see PROVENANCE.md).\n"
        f"# Repaired allOf closures ({len(fixed)}): " + ", ".join(p.rsplit('/', 1)[-1] for p in fixed) + "\n"
    )
    with open(output, "w") as out:
        out.write(header)
        yaml.safe_dump(extract, out, sort_keys=False, allow_unicode=True, width=100)
    print(f"wrote {output}: {len(paths)} paths, {sum(len(v) for v in kept.values())} components", file=sys.stderr)


if __name__ == "__main__":
    main()
