"""The JSON Schemas in schemas/: well-formed, stable ids, faithful to the 2018-05-01 swagger, not drifted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from batchai_cli.config import schema_dir
from tests.config import build_schemas

SCHEMA_FILES = sorted(Path(schema_dir()).glob("*/*.json"))


def test_schema_dir_is_the_repository_folder_in_a_checkout():
    assert Path(schema_dir()) == build_schemas.SCHEMAS
    assert {path.parent.name for path in SCHEMA_FILES} == {"2017-09-01-preview", "2018-03-01", "2018-05-01"}


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_each_schema_is_draft_2020_12_with_a_stable_id(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://batchai.dev/schemas/{path.parent.name}/{path.name}"
    assert schema["title"] and schema["description"]


def test_the_wheel_ships_the_schemas():
    pyproject = (build_schemas.REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"schemas" = "batchai_cli/schemas"' in pyproject


def test_checked_in_schemas_match_the_builder():
    swagger = json.loads(build_schemas.SWAGGER.read_text(encoding="utf-8"))
    built = build_schemas.build_all(swagger)
    on_disk = {f"{p.parent.name}/{p.name}": p.read_text(encoding="utf-8") for p in SCHEMA_FILES}
    assert sorted(built) == sorted(on_disk), "run: python -m tests.config.build_schemas"
    for relative, schema in built.items():
        assert build_schemas.dump(schema) == on_disk[relative], (
            f"{relative} drifted: python -m tests.config.build_schemas"
        )


@pytest.mark.parametrize("kind", ["job", "cluster", "file-server"])
def test_every_swagger_property_is_in_the_file_level_schema(kind):
    """Every writable property of the create bodies: type, enum, default and description."""
    swagger = json.loads(build_schemas.SWAGGER.read_text(encoding="utf-8"))["definitions"]
    schema = json.loads((schema_dir() / "2018-05-01" / f"{kind}.json").read_text(encoding="utf-8"))
    defs = schema["$defs"]
    checked = 0
    for name, ours in defs.items():
        theirs = swagger.get(name)
        if theirs is None or theirs.get("type") == "string":
            continue
        assert ours.get("description") == theirs.get("description"), name
        for prop, spec in theirs.get("properties", {}).items():
            if spec.get("readOnly"):
                assert prop not in ours["properties"], f"{name}.{prop} is read-only"
                continue
            mine = ours["properties"][prop]
            assert mine.get("description") == spec.get("description") or mine["description"].startswith(
                spec["description"]
            ), f"{name}.{prop}"
            for key in ("type", "enum", "default"):
                if key in spec:
                    assert mine.get(key) == spec[key], f"{name}.{prop}.{key}"
            if "$ref" in spec:
                assert mine["$ref"] == "#/$defs/" + spec["$ref"].rsplit("/", 1)[1]
            checked += 1
    assert checked > {"job": 80, "cluster": 40, "file-server": 10}[kind]


def test_required_fields_follow_the_two_levels():
    job = json.loads((schema_dir() / "2018-05-01" / "job.json").read_text(encoding="utf-8"))["$defs"]
    assert job["JobBaseProperties"]["required"] == ["nodeCount", "stdOutErrPathPrefix"]
    assert job["AzureFileShareReference"]["required"] == ["azureFileUrl", "relativeMountPath"]
    submit = json.loads((schema_dir() / "2018-05-01" / "job.submit.json").read_text(encoding="utf-8"))
    assert submit["$ref"] == "job.json"
    assert submit["$defs"]["AzureFileShareReference"]["required"] == ["accountName", "credentials"]


def test_engine_is_documented_as_a_batchai_extension():
    cluster = json.loads((schema_dir() / "2018-05-01" / "cluster.json").read_text(encoding="utf-8"))["$defs"]
    assert "batchai extension" in cluster["Engine"]["description"]
    assert "az" in cluster["Engine"]["description"]
    assert cluster["Engine"]["properties"]["type"]["enum"] == ["local", "slurm"]
    old = json.loads((schema_dir() / "2018-03-01" / "cluster.json").read_text(encoding="utf-8"))["$defs"]
    assert "Engine" not in old
