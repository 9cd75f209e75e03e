"""Issue 13, item 11's leftover: after a storage outage, staged outputs were not retried (the job
failed OutputUploadFailed) while stdout was. Now both wait for storage, for a bounded time."""

from __future__ import annotations

import json
import time

import pytest

from batchai_cli.storage.blob import BlobStore
from batchai_cli.storage.credentials import parse_connection_string
from tests.fixtures.azurite import StoppableAzurite
from tests.jobs.conftest import until

pytestmark = pytest.mark.integration


@pytest.fixture
def storage(tmp_path, monkeypatch):
    """An Azurite of the test's own, with a container, that the test can stop and start."""
    azurite = StoppableAzurite(tmp_path / "azurite")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("BATCHAI_STORAGE_RETRIES", "0")  # each request fails fast; the agent's own retries wait
    store = BlobStore("outputs", credentials=parse_connection_string(azurite.connection_string))
    store.create_root()
    yield azurite, store
    store.close()
    azurite.stop()


def staged_job(azurite, marker, go) -> dict:
    """A job writing an output on a staged copy of the container, once the test says go."""
    volume = {
        "accountName": azurite.account_name,
        "containerName": "outputs",
        "credentials": {"accountKey": azurite.account_key},
        "relativeMountPath": "bfs",
    }
    command = (
        f"touch {marker}; while [ ! -e {go} ]; do sleep 0.1; done; "
        "echo weights > $AZ_BATCHAI_OUTPUT_MODEL/model.bin; echo trained"
    )
    return {
        "nodeCount": 1,
        "customToolkitSettings": {"commandLine": command},
        "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs",
        "outputDirectories": [{"id": "MODEL", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs"}],
        "mountVolumes": {"azureBlobFileSystems": [volume]},
    }


def test_outputs_wait_for_storage_to_come_back(lab, storage, tmp_path, monkeypatch):
    azurite, store = storage
    monkeypatch.setenv("BATCHAI_VOLUMES", "copy")
    monkeypatch.setenv("BATCHAI_OUTPUT_RETRY_SECONDS", "40")
    monkeypatch.setenv("BATCHAI_LOG_RETRY_SECONDS", "40")
    marker, go = tmp_path / "started", tmp_path / "go"
    assert lab.submit("outage", staged_job(azurite, marker, go)).code == 0
    until(marker.exists, 60, "the job to start")
    azurite.stop()
    go.touch()  # the job ends and uploads while storage is away
    time.sleep(6)
    azurite.start()
    waited = lab.wait("outage", timeout=90)
    shown = lab.show("outage")
    segment = shown["jobOutputDirectoryPathSegment"]
    log = store.read(f"{segment}/stdouterr/execution.log").decode()
    assert waited.code == 0, (shown["executionInfo"], log)
    assert store.read(f"{segment}/outputs/model.bin") == b"weights\n"
    assert store.read(f"{segment}/stdouterr/stdout.txt") == b"trained\n"
    assert "Storage did not take 1 of the new or changed files and folders of $AZ_BATCHAI_JOB_MOUNT_ROOT/bfs (" in log
    assert "trying again for up to 40 s." in log
    assert "Uploaded 1 new or changed files of $AZ_BATCHAI_JOB_MOUNT_ROOT/bfs to " in log
    assert "(storage answered again after " in log


def test_outputs_are_reported_when_storage_stays_away(lab, storage, tmp_path, monkeypatch):
    """Bounded: storage that does not come back within BATCHAI_OUTPUT_RETRY_SECONDS fails the job
    with OutputUploadFailed naming the file, in about that time."""
    azurite, _store = storage
    monkeypatch.setenv("BATCHAI_VOLUMES", "copy")
    monkeypatch.setenv("BATCHAI_OUTPUT_RETRY_SECONDS", "3")
    monkeypatch.setenv("BATCHAI_LOG_RETRY_SECONDS", "1")
    marker, go = tmp_path / "started", tmp_path / "go"
    assert lab.submit("gone", staged_job(azurite, marker, go)).code == 0
    until(marker.exists, 60, "the job to start")
    azurite.stop()
    started = time.monotonic()
    go.touch()
    waited = lab.wait("gone", timeout=60)
    assert waited.code == 1
    assert time.monotonic() - started < 30
    errors = lab.show("gone")["executionInfo"]["errors"]
    upload = next(error for error in errors if error["code"] == "OutputUploadFailed")
    assert upload["message"].startswith("$AZ_BATCHAI_JOB_MOUNT_ROOT/bfs/")
    assert upload["message"].split(": ", 1)[0].endswith("/outputs/model.bin")
    assert "did not answer" in upload["message"]
    assert json.dumps(errors).count(azurite.account_key) == 0
