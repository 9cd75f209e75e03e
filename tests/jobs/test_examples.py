"""The examples in examples/ run as the README says: the local demo job and the Azurite recipe."""

from __future__ import annotations

import json
import shutil

import pytest

from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string
from tests.helpers import REPO


def test_local_example_job(lab, tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(REPO / "examples" / "local", examples / "local")
    job_file = examples / "local" / "job.json"
    created = lab.batchai(
        "job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "train", "-c", "c", "-f", str(job_file)
    )
    assert created.code == 0, created.err
    body = created.json()
    storage = tmp_path / "demo-output" / "storage"
    # Relative local paths are relative to job.json's folder.
    assert body["stdOutErrPathPrefix"] == str(storage)
    assert body["inputDirectories"] == [{"id": "SCRIPTS", "path": str(examples / "local")}]
    assert lab.wait("train").code == 0
    root = storage / body["jobOutputDirectoryPathSegment"]
    lines = (root / "stdouterr" / "stdout.txt").read_text().splitlines()
    assert len(lines) == 11 and lines[0].startswith("epoch  20  loss ") and lines[-1].startswith("saved ")
    model = json.loads((root / "outputs" / "model" / "model.json").read_text())
    assert abs(model["weight"] - 3) < 0.1 and abs(model["bias"] - 2) < 0.1
    assert (root / "stdouterr" / "stdout-job_prep.txt").read_text().startswith("preparing ")


@pytest.mark.integration
def test_azurite_recipe_example(lab, azurite, monkeypatch):
    monkeypatch.setenv("AZURE_BATCHAI_STORAGE_ACCOUNT", azurite.account_name)
    monkeypatch.setenv("AZURE_BATCHAI_STORAGE_KEY", azurite.account_key)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container = open_store("azureblob://batchaisample", parse_connection_string(azurite.connection_string))
    container.create_root()
    container.write("scripts/train.py", (REPO / "examples" / "local" / "train.py").read_bytes())
    created = lab.batchai(
        "job",
        "create",
        "-g",
        "rg",
        "-w",
        "ws",
        "-e",
        "exp",
        "-n",
        "recipe",
        "-c",
        "c",
        "-f",
        str(REPO / "examples" / "azurite" / "job.json"),
    )
    assert created.code == 0, created.err
    assert lab.wait("recipe").code == 0
    segment = created.json()["jobOutputDirectoryPathSegment"]
    assert container.read(f"{segment}/stdouterr/stdout.txt").decode().splitlines()[-1].startswith("saved ")
    model = json.loads(container.read(f"{segment}/outputs/model/model.json"))
    assert abs(model["weight"] - 3) < 0.1
