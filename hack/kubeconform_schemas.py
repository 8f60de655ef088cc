"""Write strict JSON schemas for kubeconform, offline, laid out as `{group}/{kind}_{version}.json`.

Sources: the Kubernetes OpenAPI v2 document (swagger.json: built-in kinds), CustomResourceDefinition
YAML files (openAPIV3Schema of every served version) and ready-made JSON schemas (`--extra DIR`,
same layout). "Strict" as in kubeconform's own schema sets: an object schema with properties and no
say on unknown fields gets `additionalProperties: false`, so a misspelt field is an error.

Usage: kubeconform_schemas.py --out DIR --openapi-v2 swagger.json [--crds CRD.yaml...] [--extra DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

Schema = dict[str, Any]
REF_PREFIX = "#/definitions/"
INT_OR_STRING: Schema = {"oneOf": [{"type": "string"}, {"type": "integer"}]}
QUANTITY: Schema = {"oneOf": [{"type": "string"}, {"type": "number"}]}
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
# Kinds that exist once per group version (DeleteOptions, WatchEvent): not objects anyone applies.
NAMED_SCHEMAS = ("properties", "definitions", "patternProperties")
SKIPPED_KINDS = {"DeleteOptions", "WatchEvent", "Status", "APIResourceList", "APIGroup", "APIGroupList"}


def group_dir(group: str, version: str) -> str:
    """kubeconform's `{{ .Group }}`: the API group, or the version itself for the core group."""
    return group or version


def strict(node: Any) -> Any:
    """A copy where every object with properties refuses unknown ones, descriptions dropped."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: Schema = {}
    for key, value in node.items():
        if key in ("description", "example"):
            continue
        if key in NAMED_SCHEMAS and isinstance(value, dict):  # names here are data, not keywords
            out[key] = {name: strict(schema) for name, schema in value.items()}
        else:
            out[key] = strict(value)
    if node.get("format") == "int-or-string" or node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out.pop("format", None)
        out.pop("anyOf", None)
        out.pop("x-kubernetes-int-or-string", None)
        out.update(INT_OR_STRING)
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    if "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    for key in list(out):
        if key.startswith("x-kubernetes-"):
            del out[key]
    return out


def references(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF_PREFIX):
            found.add(ref[len(REF_PREFIX) :])
        for value in node.values():
            references(value, found)
    elif isinstance(node, list):
        for value in node:
            references(value, found)


def reachable(roots: Schema, definitions: dict[str, Schema]) -> dict[str, Schema]:
    """The definitions `roots` refers to, transitively (recursive ones included once)."""
    todo: set[str] = set()
    references(roots, todo)
    out: dict[str, Schema] = {}
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out[name] = definitions[name]
        more: set[str] = set()
        references(definitions[name], more)
        todo |= more - set(out)
    return out


def builtin_definitions(swagger: Schema) -> dict[str, Schema]:
    definitions: dict[str, Schema] = {}
    for name, schema in swagger["definitions"].items():
        if name.endswith(".util.intstr.IntOrString"):
            definitions[name] = dict(INT_OR_STRING)
        elif name.endswith(".api.resource.Quantity"):
            definitions[name] = dict(QUANTITY)
        else:
            definitions[name] = strict(schema)
    return definitions


def standalone(schema: Schema, definitions: dict[str, Schema]) -> Schema:
    """Draft 4, the dialect of OpenAPI v2/v3.0 (boolean exclusiveMinimum); every definition it refers to
    is inside it (its own `definitions` win)."""
    schema = dict(schema)
    own = {name: strict(body) for name, body in (schema.pop("definitions", None) or {}).items()}
    needed = reachable(schema, {**definitions, **own})
    out = {"$schema": "http://json-schema.org/draft-04/schema#", **schema}
    if needed:
        out["definitions"] = needed
    return out


def write(out: Path, group: str, version: str, kind: str, schema: Schema) -> None:
    path = out / group_dir(group, version) / f"{kind.lower()}_{version}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema, sort_keys=True))


def with_object_meta(schema: Schema) -> Schema:
    """Custom resources get the real ObjectMeta (a CRD says only `metadata: {type: object}`)."""
    properties = dict(schema.get("properties") or {})
    properties["metadata"] = {"$ref": REF_PREFIX + OBJECT_META}
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    return {**schema, "properties": properties}


def write_builtins(out: Path, swagger: Schema, definitions: dict[str, Schema]) -> int:
    count = 0
    for name, raw in swagger["definitions"].items():
        for gvk in raw.get("x-kubernetes-group-version-kind") or []:
            if gvk["kind"] in SKIPPED_KINDS or gvk["kind"].endswith("List"):
                continue
            write(out, gvk["group"], gvk["version"], gvk["kind"], standalone(definitions[name], definitions))
            count += 1
    return count


def write_crds(out: Path, files: list[Path], definitions: dict[str, Schema]) -> int:
    count = 0
    for file in files:
        for crd in yaml.safe_load_all(file.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if not version.get("served", True):
                    continue
                schema = with_object_meta(strict(version["schema"]["openAPIV3Schema"]))
                write(
                    out,
                    spec["group"],
                    version["name"],
                    spec["names"]["kind"],
                    standalone(schema, definitions),
                )
                count += 1
    return count


def write_extra(out: Path, extra: Path, definitions: dict[str, Schema]) -> int:
    count = 0
    for file in sorted(extra.glob("*/*.json")):
        schema = with_object_meta(strict(json.loads(file.read_text())))
        target = out / file.parent.name / file.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(standalone(schema, definitions), sort_keys=True))
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--openapi-v2", type=Path, required=True, help="Kubernetes swagger.json")
    parser.add_argument("--crds", type=Path, nargs="*", default=[])
    parser.add_argument("--extra", type=Path, help="directory of ready-made {group}/{kind}_{version}.json")
    args = parser.parse_args(argv)
    swagger = json.loads(args.openapi_v2.read_text())
    definitions = builtin_definitions(swagger)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    builtins = write_builtins(args.out, swagger, definitions)
    crds = write_crds(args.out, args.crds, definitions)
    extra = write_extra(args.out, args.extra, definitions) if args.extra else 0
    print(
        f"kubeconform schemas: {builtins} built-in, {crds} from CRDs, {extra} extra -> {args.out}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
