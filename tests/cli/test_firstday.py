"""What a new user hit on the first day (issue 12), as whole outputs of the commands they typed."""

from __future__ import annotations

from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parent.parent / "data" / "corpus" / "batchai-recipes"
STORAGE_VARIABLES = (
    "AZURE_BATCHAI_STORAGE_ACCOUNT",
    "AZURE_BATCHAI_STORAGE_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
)


@pytest.fixture
def no_storage_settings(monkeypatch):
    for name in STORAGE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def workspace(batchai):
    assert batchai("workspace", "create", "-g", "rg", "-n", "ws", "-o", "none").code == 0
    assert batchai("experiment", "create", "-g", "rg", "-w", "ws", "-n", "exp", "-o", "none").code == 0
    return batchai


def create_job(batchai, recipe: str, *extra: str):
    cluster = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.BatchAI/workspaces/ws/clusters/c"
    return batchai(
        "job",
        "create",
        "-g",
        "rg",
        "-w",
        "ws",
        "-e",
        "exp",
        "-n",
        "j",
        "-c",
        cluster,
        "-f",
        str(RECIPES / recipe),
        *extra,
    )


def test_a_missing_storage_account_is_said_once_with_what_works_here(workspace, no_storage_settings):
    result = create_job(workspace, "Horovod__Horovod-Tensorflow__job.json")
    assert result.code == 1
    path = RECIPES / "Horovod__Horovod-Tensorflow__job.json"
    assert result.out == ""
    assert result.err == (
        f"{path}:11:17: error: $.properties.mountVolumes.azureFileShares[0]: The storage account name "
        "(<AZURE_BATCHAI_STORAGE_ACCOUNT>) is not configured; 2 mounts need it: azureFileShares[0], "
        "azureFileShares[1].\n"
        "                    {\n"
        "                    ^\n"
        "ERROR: Please configure Azure Storage account name via AZURE_BATCHAI_STORAGE_ACCOUNT. batchai has no az "
        "configuration file: give --storage-account-name NAME --storage-account-key KEY, set "
        "AZURE_BATCHAI_STORAGE_ACCOUNT and AZURE_BATCHAI_STORAGE_KEY, or set AZURE_STORAGE_CONNECTION_STRING (its "
        "AccountName and AccountKey are used when nothing more specific is given).\n"
    )


def test_a_missing_key_is_said_once_for_every_mount_that_needs_it(workspace, no_storage_settings):
    result = create_job(workspace, "TensorFlow__TensorFlow-GPU-Distributed__job.json", "--storage-account-name", "acc")
    assert result.code == 1
    assert result.err.count("error:") == 1
    assert result.err.count("ERROR: Please configure Azure Storage account key via AZURE_BATCHAI_STORAGE_KEY.") == 1
    assert "az configuration file:" in result.err and "storage_key value" not in result.err
    assert "3 mounts need it: azureFileShares[0], azureFileShares[1], azureBlobFileSystems[0]." in result.err
