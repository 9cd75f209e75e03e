"""Jobs with Blob containers mounted through rclone against Azurite: what is fetched, what is
left behind, and the staged copy where FUSE is not possible."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.jobs.conftest import custom, until, wait_state
from tests.mounts.counting_proxy import CountingProxy

pytestmark = pytest.mark.integration

MiB = 1024 * 1024


@pytest.fixture
def container(azurite):
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container(f"mnt{uuid.uuid4().hex[:12]}")
    yield client
    client.delete_container()


def blob_volume(azurite, name: str, **more) -> dict:
    return {
        "azureBlobFileSystems": [
            {
                "accountName": azurite.account_name,
                "containerName": name,
                "relativeMountPath": "data",
                "credentials": {"accountKey": azurite.account_key},
                **more,
            }
        ]
    }


def connection(azurite, port: int) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={azurite.account_name};AccountKey={azurite.account_key};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{azurite.account_name};"
    )


def execution_log(lab, name: str, out) -> str:
    return (lab.stdouterr(name, out) / "execution.log").read_text()


def test_one_file_of_a_2_gib_container_fetches_only_that_file(
    lab, azurite, container, tmp_path, monkeypatch, no_stale_mounts
):
    from azure.storage.blob import BlobSasPermissions, generate_blob_sas

    shard = os.urandom(64 * MiB)
    container.upload_blob("shards/shard-00.bin", shard)
    sas = generate_blob_sas(
        azurite.account_name,
        container.container_name,
        "shards/shard-00.bin",
        account_key=azurite.account_key,
        permission=BlobSasPermissions(read=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=1),
    )
    source = f"{container.get_blob_client('shards/shard-00.bin').url}?{sas}"
    for index in range(1, 32):  # 32 x 64 MiB = 2 GiB, copied inside Azurite
        container.get_blob_client(f"shards/shard-{index:02}.bin").start_copy_from_url(source, requires_sync=True)
    assert sum(blob.size for blob in container.list_blobs()) == 2048 * MiB
    wanted = os.urandom(4 * MiB)
    container.upload_blob("dataset/one.bin", wanted)
    proxy = CountingProxy(azurite.port)
    try:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", connection(azurite, proxy.port))
        out = tmp_path / "out"
        job = custom("md5sum < $AZ_BATCHAI_JOB_MOUNT_ROOT/data/dataset/one.bin", out)
        job["mountVolumes"] = blob_volume(azurite, container.container_name)
        assert lab.submit("one", job).code == 0
        waited = lab.wait("one", timeout=120)
        log = execution_log(lab, "one", out)
        assert waited.code == 0, log
        assert (lab.stdouterr("one", out) / "stdout.txt").read_text().split()[0] == hashlib.md5(wanted).hexdigest()
        assert "with rclone azureblob (blobfuse2 not installed)." in log
        # The file, plus listings and headers: nothing of the 2 GiB of shards.
        assert 4 * MiB <= proxy.served < 4 * MiB + 256 * 1024, proxy.served
    finally:
        proxy.close()


def test_outputs_written_through_the_mount_are_listed_while_the_job_runs(
    lab, azurite, container, tmp_path, monkeypatch, no_stale_mounts
):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    out = tmp_path / "out"
    job = custom("echo step-1 > $AZ_BATCHAI_OUTPUT_TB/events.1 && sleep 30", out)
    job["mountVolumes"] = blob_volume(azurite, container.container_name)
    job["outputDirectories"] = [{"id": "TB", "pathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/data"}]
    assert lab.submit("live", job).code == 0
    wait_state(lab, "live", ("running",))

    def listed():
        result = lab.batchai("job", "file", "list", "-g", "rg", "-w", "ws", "-e", "exp", "-j", "live", "-d", "TB")
        return result.code == 0 and "events.1" in result.out and result.out

    until(listed, timeout=20, what="events.1 in job file list while the job runs")
    assert lab.show("live")["executionState"] == "running"
    lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "live", "-y")
    wait_state(lab, "live", ("failed",))


def test_a_node_without_fuse_falls_back_to_a_staged_copy_and_says_so(
    lab, azurite, container, tmp_path, monkeypatch, no_stale_mounts
):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    monkeypatch.setenv("BATCHAI_FUSE_DEVICE", str(tmp_path / "no-such-fuse"))
    container.upload_blob("in.txt", b"staged")
    out = tmp_path / "out"
    job = custom("cat $AZ_BATCHAI_JOB_MOUNT_ROOT/data/in.txt", out)
    job["mountVolumes"] = blob_volume(azurite, container.container_name)
    assert lab.submit("copy", job).code == 0
    assert lab.wait("copy").code == 0
    assert (lab.stdouterr("copy", out) / "stdout.txt").read_text() == "staged"
    log = execution_log(lab, "copy", out)
    assert (
        f"(a copy, not a mount: blobfuse2 not installed; FUSE is not available on this node "
        f"({tmp_path / 'no-such-fuse'} does not exist); changes are uploaded when the job ends)." in log
    )
    # Forcing a mount where none is possible fails the job with the reason.
    monkeypatch.setenv("BATCHAI_VOLUMES", "mount")
    assert lab.submit("forced", job).code == 0
    assert lab.wait("forced").code == 1
    (error,) = lab.show("forced")["executionInfo"]["errors"]
    assert error["code"] == "MountFailed"
    assert (
        "--volumes mount was asked for, but this node cannot mount $AZ_BATCHAI_JOB_MOUNT_ROOT/data" in error["message"]
    )


def test_a_killed_agent_leaves_no_mount_after_the_next_job(
    lab, azurite, container, tmp_path, monkeypatch, home, no_stale_mounts
):
    from batchai_cli.agent import mounts

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    out = tmp_path / "out"
    job = custom("sleep 60", out)
    job["mountVolumes"] = blob_volume(azurite, container.container_name)
    assert lab.submit("crash", job).code == 0
    (point,) = until(lambda: mounts.mount_points(str(home)), timeout=30, what="the mount")
    record = until(lambda: (found := mounts.find_record(point, str(home))) and found.pid and found, timeout=10)
    os.kill(record.owner, signal.SIGKILL)  # the agent dies without unmounting
    from batchai_cli.agent import layout

    layout.kill_job_processes(lab.show("crash"))
    wait_state(lab, "crash", ("failed",), timeout=60)
    assert mounts.mount_points(str(home)) == [point]  # left behind
    second = custom("echo next", out)
    assert lab.submit("next", second).code == 0
    assert lab.wait("next").code == 0
    assert mounts.mount_points(str(home)) == []
    log = execution_log(lab, "next", out)
    assert f"Unmounting a stale mount left on this node: {point} (its agent (process {record.owner}) is gone)." in log


def test_no_key_on_any_command_line(lab, azurite, container, tmp_path, monkeypatch, no_stale_mounts):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    out = tmp_path / "out"
    job = custom("sleep 30", out)
    job["mountVolumes"] = blob_volume(azurite, container.container_name)
    assert lab.submit("ps", job).code == 0
    from batchai_cli.agent import mounts

    until(lambda: mounts.mount_points(str(lab.home)), timeout=30, what="the mount")
    command_lines = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                command_lines.append(handle.read().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            pass
    assert any("rclone" in line and " mount " in line for line in command_lines)
    assert not [line for line in command_lines if azurite.account_key in line]
    lab.batchai("job", "terminate", "-g", "rg", "-w", "ws", "-e", "exp", "-n", "ps", "-y")
    wait_state(lab, "ps", ("failed",))
    until(lambda: not mounts.mount_points(str(lab.home)), timeout=30, what="the unmount after terminate")
    assert json.dumps(lab.show("ps")).count(azurite.account_key) == 0


def test_volumes_copy_forces_a_staged_copy(lab, azurite, container, tmp_path, monkeypatch, no_stale_mounts):
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container.upload_blob("in.txt", b"copied")
    out = tmp_path / "out"
    job = custom("cat $AZ_BATCHAI_JOB_MOUNT_ROOT/data/in.txt", out)
    job["mountVolumes"] = blob_volume(azurite, container.container_name)
    assert lab.submit("forced-copy", job, "--volumes", "copy").code == 0
    assert lab.wait("forced-copy").code == 0
    assert (lab.stdouterr("forced-copy", out) / "stdout.txt").read_text() == "copied"
    assert "(a copy, not a mount: --volumes copy was asked for; " in execution_log(lab, "forced-copy", out)


def test_cluster_volumes_stay_mounted_for_the_nodes_life(
    lab, azurite, container, tmp_path, monkeypatch, no_stale_mounts
):
    from batchai_cli.agent import mounts

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    container.upload_blob("shared.txt", b"for every job")
    lab.cluster(
        "mc",
        1,
        "--bfs-name",
        container.container_name,
        "--storage-account-name",
        azurite.account_name,
        "--storage-account-key",
        azurite.account_key,
    )
    out = tmp_path / "out"
    job = custom("cat $AZ_BATCHAI_MOUNT_ROOT/bfs/shared.txt", out)
    for name in ("first", "second"):
        assert lab.submit(name, job, cluster="mc").code == 0
        assert lab.wait(name).code == 0, execution_log(lab, name, out)
        assert (lab.stdouterr(name, out) / "stdout.txt").read_text() == "for every job"
    (point,) = mounts.mount_points(str(lab.home))
    assert point.endswith("/mounts/bfs")
    assert "is mounted at $AZ_BATCHAI_MOUNT_ROOT/bfs already (rclone azureblob, for the node's life)." in (
        execution_log(lab, "second", out)
    )
    assert lab.batchai("cluster", "delete", "-g", "rg", "-w", "ws", "-n", "mc", "-y").code == 0
    assert mounts.mount_points(str(lab.home)) == []


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist (create it, or correct the job's mountVolumes)."),
        ("wrong-key", "The storage account refused access to http://127.0.0.1:"),
    ],
)
def test_bad_volumes_fail_the_job_with_a_clear_error(lab, azurite, container, tmp_path, monkeypatch, case, expected):
    import base64

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    out = tmp_path / "out"
    job = custom("echo never", out)
    wrong = base64.b64encode(b"not the key" * 6).decode()
    name = "missing-container" if case == "missing" else container.container_name
    job["mountVolumes"] = blob_volume(azurite, name)
    if case == "wrong-key":
        job["mountVolumes"]["azureBlobFileSystems"][0]["credentials"] = {"accountKey": wrong}
    assert lab.submit(case, job).code == 0
    assert lab.wait(case).code == 1
    (error,) = lab.show(case)["executionInfo"]["errors"]
    assert error["code"] == "MountFailed"
    assert expected in error["message"]
    assert wrong not in error["message"]
    log = execution_log(lab, case, out)
    assert expected in log
    assert "echo never" not in log


def test_an_unmanaged_file_system_runs_its_mount_command_with_the_path_appended(lab, tmp_path, no_stale_mounts):
    source = tmp_path / "nfs-export"
    source.mkdir()
    (source / "data.txt").write_text("from the export")
    out = tmp_path / "out"
    job = custom("cat $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs/data.txt", out)
    job["mountVolumes"] = {
        "unmanagedFileSystems": [{"mountCommand": f"mount --bind {source}", "relativeMountPath": "nfs"}]
    }
    assert lab.submit("unmanaged", job).code == 0
    assert lab.wait("unmanaged").code == 0, execution_log(lab, "unmanaged", out)
    assert (lab.stdouterr("unmanaged", out) / "stdout.txt").read_text() == "from the export"
    log = execution_log(lab, "unmanaged", out)
    assert f"Mounted $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs with its mountCommand: mount --bind {source} " in log
    job["mountVolumes"]["unmanagedFileSystems"][0]["mountCommand"] = "false"
    assert lab.submit("bad-command", job).code == 0
    assert lab.wait("bad-command").code == 1
    (error,) = lab.show("bad-command")["executionInfo"]["errors"]
    prefix = "Cannot mount $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs: The mountCommand of $AZ_BATCHAI_JOB_MOUNT_ROOT/nfs"
    assert error["message"].startswith(f"{prefix} exited with code 1: false /")
    assert error["message"].endswith("/jobs/ws/exp/bad-command/mounts/nfs")
