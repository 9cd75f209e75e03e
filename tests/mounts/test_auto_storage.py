"""`cluster create --use-auto-storage`: az's share and container, created in the configured account
and mounted on the nodes at autoafs and autobfs."""

from __future__ import annotations

import pytest

from batchai_cli.storage import open_store
from batchai_cli.storage.credentials import parse_connection_string
from tests.jobs.conftest import custom

pytestmark = pytest.mark.integration


def test_use_auto_storage_creates_and_mounts_the_share_and_container(
    lab, azurite, azfiles_emulator, tmp_path, monkeypatch, no_stale_mounts
):
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};AccountKey={azurite.account_key};"
        f"BlobEndpoint={azurite.blob_endpoint};FileEndpoint={azfiles_emulator.endpoint};"
    )
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection)
    cluster = lab.cluster("auto", 1, "--use-auto-storage")
    volumes = cluster["nodeSetup"]["mountVolumes"]
    assert [v["relativeMountPath"] for v in volumes["azureFileShares"]] == ["autoafs"]
    assert volumes["azureFileShares"][0]["azureFileUrl"].endswith("/batchaishare")
    assert [(v["containerName"], v["relativeMountPath"]) for v in volumes["azureBlobFileSystems"]] == [
        ("batchaicontainer", "autobfs")
    ]
    credentials = parse_connection_string(connection)
    open_store("azureblob://batchaicontainer", credentials).write("in.txt", b"auto")
    out = tmp_path / "out"
    job = custom("cat $AZ_BATCHAI_MOUNT_ROOT/autobfs/in.txt > $AZ_BATCHAI_MOUNT_ROOT/autoafs/copy.txt", out)
    assert lab.submit("auto-job", job, cluster="auto").code == 0
    assert lab.wait("auto-job").code == 0
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "auto", "-y").code == 0
    assert open_store("azurefile://batchaishare", credentials).read("copy.txt") == b"auto"


def test_use_auto_storage_without_an_account_says_what_to_give(lab, monkeypatch):
    for name in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_BATCHAI_STORAGE_ACCOUNT", "AZURE_STORAGE_ACCOUNT"):
        monkeypatch.delenv(name, raising=False)
    result = lab.create_cluster("noacct", 1, "--use-auto-storage")
    assert result.code == 2
    assert "--use-auto-storage needs a storage account and its key" in result.err
