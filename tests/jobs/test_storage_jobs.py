"""A recipe-style job.json against real storage services: Azure File shares on the Files emulator and
a blob container on Azurite, mounted with rclone, with stdout/stderr and outputs landing there."""

from __future__ import annotations

import json
import uuid

import pytest

from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string

pytestmark = pytest.mark.integration

ACCOUNT_PLACEHOLDER = "<AZURE_BATCHAI_STORAGE_ACCOUNT>"


@pytest.fixture
def storage(azurite, azfiles_emulator, monkeypatch):
    """One connection string that names both services, as Azure's would; jobs inherit it."""
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};"
        f"AccountKey={azurite.account_key};BlobEndpoint={azurite.blob_endpoint};"
        f"FileEndpoint={azfiles_emulator.endpoint};"
    )
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
    credentials = parse_connection_string(connection)
    suffix = uuid.uuid4().hex[:8]
    names = {"logs": f"logs{suffix}", "scripts": f"scripts{suffix}", "data": f"data{suffix}"}
    stores = {
        "logs": open_store(f"azurefile://{names['logs']}", credentials),
        "scripts": open_store(f"azurefile://{names['scripts']}", credentials),
        "data": open_store(f"azureblob://{names['data']}", credentials),
    }
    for store in stores.values():
        store.create_root()
    return names, stores, azurite


def recipe(names: dict) -> dict:
    return {
        "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/custom.json",
        "properties": {
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": "bash $AZ_BATCHAI_JOB_MOUNT_ROOT/scripts/train.sh"},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs",
            "inputDirectories": [{"id": "DATASET", "path": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data/mnist"}],
            "outputDirectories": [
                {"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/logs", "pathSuffix": "Models"}
            ],
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "azureFileUrl": f"https://{ACCOUNT_PLACEHOLDER}.file.core.windows.net/{names['logs']}",
                        "relativeMountPath": "logs",
                    },
                    {
                        "azureFileUrl": f"https://{ACCOUNT_PLACEHOLDER}.file.core.windows.net/{names['scripts']}",
                        "relativeMountPath": "scripts",
                    },
                ],
                "azureBlobFileSystems": [
                    {"accountName": ACCOUNT_PLACEHOLDER, "containerName": names["data"], "relativeMountPath": "data"},
                ],
            },
        },
    }


def test_recipe_job_on_azure_files_and_blob(lab, storage, tmp_path):
    names, stores, azurite = storage
    stores["scripts"].write(
        "train.sh",
        b"echo training on $(cat $AZ_BATCHAI_INPUT_DATASET/train.txt)\n"
        b"echo model-weights > $AZ_BATCHAI_OUTPUT_MODEL/model.bin\n"
        b"mkdir $AZ_BATCHAI_OUTPUT_MODEL/checkpoints\n"
        b"echo warning >&2\n",
    )
    stores["data"].write("mnist/train.txt", b"60000 digits")
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(recipe(names)))
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
        str(job_file),
        "--storage-account-name",
        azurite.account_name,
        "--storage-account-key",
        azurite.account_key,
    )
    assert created.code == 0, created.err
    shown = created.json()
    # The service never returned keys, and neither does batchai.
    shares = shown["mountVolumes"]["azureFileShares"]
    assert [s["credentials"] for s in shares] == [{"accountKey": None, "accountKeySecretReference": None}] * 2
    assert shares[0]["accountName"] == azurite.account_name
    assert azurite.account_key not in created.out
    waited = lab.wait("recipe")
    segment = shown["jobOutputDirectoryPathSegment"]
    logs = stores["logs"]
    assert waited.code == 0, logs.read(f"{segment}/stdouterr/execution.log").decode()
    assert logs.read(f"{segment}/stdouterr/stdout.txt") == b"training on 60000 digits\n"
    assert logs.read(f"{segment}/stdouterr/stderr.txt") == b"warning\n"
    assert logs.read(f"{segment}/outputs/Models/model.bin") == b"model-weights\n"
    assert logs.stat(f"{segment}/outputs/Models/checkpoints").is_dir  # an empty folder the job made
    log = logs.read(f"{segment}/stdouterr/execution.log").decode()
    print(log)
    data_url = f"http://127.0.0.1:{azurite.port}/{azurite.account_name}/{names['data']}"
    assert (
        f"Mounted {data_url} at $AZ_BATCHAI_JOB_MOUNT_ROOT/data with rclone azureblob (blobfuse2 not installed)." in log
    )
    # Port 445 is closed here, so the shares are mounted over the Files REST API.
    assert "with rclone azurefiles (no kernel cifs mount: " in log
    assert f"Unmounted {data_url} from " in log
    # Nothing but the new output was uploaded back: the script share is as it was.
    assert sorted(entry.path for entry in stores["scripts"].walk()) == ["train.sh"]


def test_stdout_on_a_blob_container_is_appended_live(lab, storage, tmp_path):
    names, stores, azurite = storage
    job = {
        "properties": {
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": "for i in 1 2 3; do echo line $i; done"},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data/logs",
            "mountVolumes": {
                "azureBlobFileSystems": [
                    {
                        "accountName": azurite.account_name,
                        "containerName": names["data"],
                        "relativeMountPath": "data",
                        "credentials": {"accountKey": azurite.account_key},
                    }
                ]
            },
        }
    }
    job_file = tmp_path / "blob.json"
    job_file.write_text(json.dumps(job))
    created = lab.batchai(
        "job", "create", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "blob", "-c", "c", "-f", str(job_file)
    )
    assert created.code == 0, created.err
    assert lab.wait("blob").code == 0
    segment = created.json()["jobOutputDirectoryPathSegment"]
    assert stores["data"].read(f"logs/{segment}/stdouterr/stdout.txt") == b"line 1\nline 2\nline 3\n"


def test_a_volume_whose_storage_cannot_be_reached(lab, tmp_path, monkeypatch):
    """An Azure File share on a port where nothing listens: the job fails with the mount named."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    key = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={key};"
        f"FileEndpoint=http://127.0.0.1:{port}/devstoreaccount1;",
    )
    out = tmp_path / "out"
    job = {
        "nodeCount": 1,
        "customToolkitSettings": {"commandLine": "echo never"},
        "stdOutErrPathPrefix": str(out),
        "mountVolumes": {
            "azureFileShares": [
                {
                    "accountName": "devstoreaccount1",
                    "azureFileUrl": "https://devstoreaccount1.file.core.windows.net/x",
                    "credentials": {"accountKey": key},
                    "relativeMountPath": "afs",
                }
            ]
        },
    }
    assert lab.submit("unreachable", job).code == 0
    assert lab.wait("unreachable", timeout=120).code == 1
    shown = lab.show("unreachable")
    (error,) = shown["executionInfo"]["errors"]
    assert error["code"] == "MountFailed"
    assert error["message"].startswith("Cannot mount $AZ_BATCHAI_JOB_MOUNT_ROOT/afs: ")
    assert key not in json.dumps(shown)
    log = (out / shown["jobOutputDirectoryPathSegment"] / "stdouterr" / "execution.log").read_text()
    assert "echo never" not in log
