"""Build schemas/ from the Batch AI 2018-05-01 swagger: `python -m tests.config.build_schemas`.

The schemas are generated once and checked in, so the wheel needs neither this script nor the
swagger; tests/config/test_schemas.py rebuilds them and fails when the checked-in files drift.

Three steps:
1. every create-body definition of the swagger, faithfully: properties, types, enums, defaults,
   titles, descriptions, required fields (read-only fields left out);
2. the rules the swagger states only in prose (exactly one toolkit, manual or autoScale, value or
   secret reference, ...) and the file level: what az filled in before sending becomes optional
   (build_file_level.py);
3. the older API versions, as edits of the 2018-05-01 definitions (build_old_schemas.py), and the
   submit level, as overlays that add back what az filled in (build_submit_schemas.py).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SWAGGER = REPO / "tests" / "data" / "reference" / "batchai-2018-05-01.swagger.json"
SCHEMAS = REPO / "schemas"
BASE_URL = "https://batchai.dev/schemas"
DRAFT = "https://json-schema.org/draft/2020-12/schema"

ROOTS = {"job": "JobBaseProperties", "cluster": "ClusterBaseProperties", "file-server": "FileServerBaseProperties"}
TITLES = {
    "job": "Batch AI job file (job.json)",
    "cluster": "Batch AI cluster file (cluster.json)",
    "file-server": "Batch AI file server file",
}
TOOLKITS = [
    "cntkSettings",
    "pyTorchSettings",
    "tensorFlowSettings",
    "caffeSettings",
    "caffe2Settings",
    "chainerSettings",
    "customToolkitSettings",
    "customMpiSettings",
    "horovodSettings",
]

INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
# -- step 1: the swagger, faithfully ----------------------------------------------------------------


def convert_property(prop: dict) -> dict:
    out: dict = {}
    for key in ("title", "description"):
        if key in prop:
            out[key] = prop[key]
    if "$ref" in prop:
        out["$ref"] = "#/$defs/" + prop["$ref"].rsplit("/", 1)[1]
        if "default" in prop:
            out["default"] = prop["default"]
        return out
    kind = prop.get("type", "object")
    out["type"] = kind
    if "enum" in prop:
        out["enum"] = list(prop["enum"])
    if "default" in prop:
        out["default"] = prop["default"]
    if kind == "integer" and prop.get("format") == "int32":
        out.update(INT32)
    if kind == "array":
        out["items"] = convert_property(prop["items"])
    if kind == "object" and "properties" in prop:
        out.update(convert_object(prop))
    return out


def convert_object(definition: dict) -> dict:
    properties = {
        name: convert_property(prop)
        for name, prop in definition.get("properties", {}).items()
        if not prop.get("readOnly")
    }
    out: dict = {"type": "object", "properties": properties}
    required = [name for name in definition.get("required", []) if name in properties]
    if required:
        out["required"] = required
    # Closed objects: an editor flags unknown keys, and batchai turns them into warnings.
    out["additionalProperties"] = False
    return out


def convert_definition(definition: dict) -> dict:
    if definition.get("type") == "string":
        out = {key: definition[key] for key in ("title", "description") if key in definition}
        out.update({"type": "string", "enum": list(definition["enum"])})
        if "default" in definition:
            out["default"] = definition["default"]
        return out
    out = {key: definition[key] for key in ("title", "description") if key in definition}
    out.update(convert_object(definition))
    return out


def swagger_definitions(swagger: dict) -> dict[str, dict]:
    defs = swagger["definitions"]
    wanted: set[str] = set()
    pending = list(ROOTS.values())
    while pending:
        name = pending.pop()
        if name in wanted:
            continue
        wanted.add(name)
        pending.extend(_refs(defs[name]))
    return {name: convert_definition(defs[name]) for name in sorted(wanted, key=str.lower)}


def _refs(node) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"].rsplit("/", 1)[1]] if "$ref" in node else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


# -- step 3: one self-contained schema per kind ---------------------------------------------------


EDITOR_KEYS = {
    "$schema": {
        "type": "string",
        "description": "The JSON Schema of this file, for editors; batchai reads the "
        "API version (2017-09-01-preview, 2018-03-01 or 2018-05-01) from it.",
    },
    "$comment": {"description": "A comment; ignored."},
}


def kind_schema(
    defs: dict[str, dict], kind: str, version: str, description: str, top_level: dict | None = None
) -> dict:
    root = ROOTS[kind]
    used = _closure(defs, root)
    used_defs = {name: copy.deepcopy(defs[name]) for name in sorted(used, key=str.lower)}
    base = used_defs[root]
    base["properties"] = {**EDITOR_KEYS, **base["properties"]}
    return {
        "$schema": DRAFT,
        "$id": f"{BASE_URL}/{version}/{kind}.json",
        "title": f"{TITLES[kind]}, API {version}",
        "description": description,
        "type": "object",
        # The {"properties": {...}} form, or the same fields at the top level (az accepted both).
        "if": {"required": ["properties"]},
        "then": {
            "properties": {**EDITOR_KEYS, **(top_level or {}), "properties": {"$ref": f"#/$defs/{root}"}},
            "additionalProperties": False,
        },
        "else": {"$ref": f"#/$defs/{root}"},
        "$defs": used_defs,
    }


def _closure(defs: dict, root: str) -> set[str]:
    seen: set[str] = set()
    pending = [root]
    while pending:
        name = pending.pop()
        if name not in seen:
            seen.add(name)
            pending.extend(_refs(defs[name]))
    return seen


FILE_LEVEL_DESCRIPTION = (
    "What you write in a {kind} file for batchai (and for az batchai before it), API version {version}. "
    "This is the file level: fields that az filled in before sending ({filled}) may be left out, and the "
    "storage placeholders <AZURE_BATCHAI_STORAGE_ACCOUNT> and <AZURE_BATCHAI_STORAGE_KEY> are allowed. "
    "Unknown keys are reported as warnings (az silently dropped them). Check a file with "
    "`batchai validate {kind} FILE`."
)
FILLED = {
    "job": "cluster from -c, mount accountName from azureFileUrl, credentials from the storage options",
    "cluster": "vmSize, userAccountSettings and scaleSettings from the options, mount accountName and credentials",
    "file-server": "vmSize, the admin account and the data disks from the options",
}


def build_all(swagger: dict) -> dict[str, dict]:
    """Relative path under schemas/ -> schema document."""
    from tests.config.build_file_level import file_level
    from tests.config.build_old_schemas import OLD_TOP_LEVEL, OLD_VERSIONS, old_definitions
    from tests.config.build_submit_schemas import submit_schemas

    current = file_level(swagger_definitions(swagger))
    out: dict[str, dict] = {}
    for version, defs in [("2018-05-01", current)] + [(v, old_definitions(current, v)) for v in OLD_VERSIONS]:
        top_level = OLD_TOP_LEVEL if version in OLD_VERSIONS else None
        for kind in ROOTS:
            text = FILE_LEVEL_DESCRIPTION.format(kind=kind, version=version, filled=FILLED[kind])
            out[f"{version}/{kind}.json"] = kind_schema(defs, kind, version, text, top_level)
    for kind, schema in submit_schemas().items():
        out[f"2018-05-01/{kind}.submit.json"] = schema
    return out


def dump(schema: dict) -> str:
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    swagger = json.loads(SWAGGER.read_text(encoding="utf-8"))
    for relative, schema in build_all(swagger).items():
        target = SCHEMAS / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(dump(schema), encoding="utf-8")
        print(f"wrote schemas/{relative}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
