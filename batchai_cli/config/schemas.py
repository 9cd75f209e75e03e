"""Where the JSON Schemas live, which one a file asks for through `$schema`, and validators for them.

jsonschema is imported inside functions only: `batchai --help` must not pay for it.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KINDS = ("job", "cluster", "file-server")
VERSIONS = ("2017-09-01-preview", "2018-03-01", "2018-05-01")
CURRENT = "2018-05-01"
BASE_URL = "https://batchai.dev/schemas"

TOOLKIT_SETTINGS = {
    "cntkSettings": "cntk",
    "tensorFlowSettings": "tensorflow",
    "caffeSettings": "caffe",
    "caffe2Settings": "caffe2",
    "chainerSettings": "chainer",
    "horovodSettings": "horovod",
    "customMpiSettings": "mpi",
    "customToolkitSettings": "custom",
    "pyTorchSettings": "pytorch",
}
# File names of the official Azure/BatchAI schemas (and ours) -> (kind, toolkit settings key).
_SCHEMA_FILES = {
    "job": ("job", None),
    "cluster": ("cluster", None),
    "nfs": ("file-server", None),
    "file-server": ("file-server", None),
    **{tool: ("job", key) for key, tool in TOOLKIT_SETTINGS.items()},
}
_VERSION = re.compile(r"(\d{4}-\d{2}-\d{2}(?:-preview)?)")
_FILE = re.compile(r"([^/?#]+?)(?:\.submit)?\.json(?:[?#].*)?$")


def schema_dir() -> Path:
    """schemas/ inside the wheel (batchai_cli/schemas), else the repository's top-level schemas/."""
    packaged = Path(__file__).resolve().parent.parent / "schemas"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "schemas"


def schema_id(version: str, kind: str, level: str = "file") -> str:
    suffix = ".submit.json" if level == "submit" else ".json"
    return f"{BASE_URL}/{version}/{kind}{suffix}"


@dataclass(frozen=True)
class SchemaChoice:
    """What a file's `$schema` says: the API version, and the kind and toolkit when the file name tells."""

    version: str
    kind: str | None = None
    toolkit: str | None = None
    problem: str | None = None  # why the value could not be read (a warning), if so
    unsupported: str | None = None  # a version batchai does not read (an error), if so


def choose_schema(value: Any) -> SchemaChoice:
    """Read `$schema` (absent: 2018-05-01). Official Azure/BatchAI URLs and batchai's own both work."""
    if value is None:
        return SchemaChoice(CURRENT)
    if not isinstance(value, str):
        return SchemaChoice(CURRENT)  # the schema reports the wrong type
    match = _VERSION.search(value)
    if not match:
        return SchemaChoice(
            CURRENT, problem="names no API version (such as 2018-05-01); reading the file as 2018-05-01"
        )
    version = match.group(1)
    if version not in VERSIONS:
        return SchemaChoice(CURRENT, unsupported=version)
    name = _FILE.search(value)
    kind, toolkit = _SCHEMA_FILES.get(name.group(1).lower(), (None, None)) if name else (None, None)
    problem = None
    if kind is None:
        problem = f"names no schema batchai knows ({value.rsplit('/', 1)[-1]}); reading the file as API {version}"
    return SchemaChoice(version, kind, toolkit, problem)


@functools.cache
def load_schema(schema_url: str) -> dict:
    relative = schema_url[len(BASE_URL) + 1 :]
    return json.loads((schema_dir() / relative).read_text(encoding="utf-8"))


@functools.cache
def _registry():
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    resources = []
    for path in sorted(schema_dir().glob("*/*.json")):
        contents = load_schema(f"{BASE_URL}/{path.parent.name}/{path.name}")
        resources.append((contents["$id"], Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@functools.cache
def validator(schema_url: str):
    """A Draft 2020-12 validator for one of our schemas, with the others resolvable by `$id`."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(load_schema(schema_url), registry=_registry())


def resolve(root: dict, node: Any) -> Any:
    """Follow local `#/$defs/...` references inside one schema document."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def prune_unknown(data: Any, schema: dict, root: dict) -> Any:
    """A copy of data without the keys the schema does not know (az's deserializer dropped them)."""
    schema = resolve(root, schema)
    if isinstance(data, dict) and isinstance(schema, dict):
        properties = schema.get("properties", {})
        closed = schema.get("additionalProperties") is False
        return {
            key: prune_unknown(value, properties.get(key, {}), root)
            for key, value in data.items()
            if key in properties or not closed
        }
    if isinstance(data, list) and isinstance(schema, dict):
        return [prune_unknown(item, schema.get("items", {}), root) for item in data]
    return data
